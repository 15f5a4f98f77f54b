//! What the user sees while a command works: one line per step with a spinner, the current
//! sub-step and the elapsed time on a terminal; plain lines elsewhere (CI, pipes, `NO_COLOR`).

use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use console::style;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How much to say, chosen once from the flags and the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verbosity {
    /// Only failures and the final summary.
    Quiet,
    /// One line per step.
    Normal,
    /// Every sub-step and build line too.
    Verbose,
}

/// The output of one command run. Cheap to clone; clones share the same terminal.
#[derive(Debug, Clone)]
pub(crate) struct Ui {
    verbosity: Verbosity,
    /// Spinners that redraw in place: only on an interactive terminal outside CI.
    animate: bool,
    /// Colour on stderr (off with `NO_COLOR`, on a pipe, or on a dumb terminal).
    color: bool,
    /// Timings of finished steps, for the summary.
    timings: Arc<Mutex<Vec<(String, Duration)>>>,
}

impl Ui {
    /// Decides from the environment: spinners only when stderr is a terminal and `CI` is unset;
    /// colour as the `console` crate decides it (`NO_COLOR`, `CLICOLOR_FORCE`, TTY).
    pub(crate) fn new(verbosity: Verbosity) -> Self {
        let animate = std::io::stderr().is_terminal()
            && std::env::var_os("CI").is_none()
            && console::Term::stderr().features().is_attended();
        let color = console::colors_enabled_stderr();
        Self {
            verbosity,
            animate: animate && color,
            color,
            timings: Arc::default(),
        }
    }

    /// The same settings with colour decided for stdout: for a result printed there (the
    /// `status` table), which may go to a file while stderr is a terminal.
    pub(crate) fn for_stdout(&self) -> Self {
        Self {
            color: console::colors_enabled(),
            animate: false,
            ..self.clone()
        }
    }

    /// Whether stdout is for people (a terminal) rather than a program.
    pub(crate) fn interactive() -> bool {
        std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
    }

    /// Whether `-v` was given: each sub-step then gets a line of its own (otherwise it shows at
    /// most as the spinner's message).
    pub(crate) fn verbose(&self) -> bool {
        self.verbosity == Verbosity::Verbose
    }

    /// Starts a step: a spinner with its title on a terminal, an announcing line elsewhere.
    pub(crate) fn step(&self, title: impl Into<String>) -> Step {
        let title = title.into();
        let bar = if self.animate && self.verbosity != Verbosity::Quiet {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let template = "{spinner:.cyan} {prefix:.bold} {wide_msg:.dim} {elapsed:>4.dim}";
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_spinner())
                    .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
            );
            bar.set_prefix(title.clone());
            bar.enable_steady_tick(Duration::from_millis(100));
            Some(bar)
        } else {
            if self.verbosity != Verbosity::Quiet {
                eprintln!("{} {title}", self.paint_dim("==>"));
            }
            None
        };
        Step {
            ui: self.clone(),
            title,
            started: Instant::now(),
            bar,
            last_sub: Mutex::new(String::new()),
            finished: false,
        }
    }

    /// A line of information outside any step (a notice the user should read).
    pub(crate) fn note(&self, line: impl AsRef<str>) {
        if self.verbosity != Verbosity::Quiet {
            eprintln!("{} {}", self.paint_cyan("note:"), line.as_ref());
        }
    }

    /// A warning: printed even in quiet mode.
    pub(crate) fn warn(&self, line: impl AsRef<str>) {
        eprintln!("{} {}", self.paint_yellow("warning:"), line.as_ref());
    }

    /// A progress line of a command whose output mixes with that of the programs it runs on
    /// the same terminal (`test`, `bench`, `setup`, `sqlx-prepare`): marked `[xtask] ` to tell
    /// it from theirs. Quiet mode leaves it out.
    pub(crate) fn progress(&self, line: impl AsRef<str>) {
        if self.verbosity != Verbosity::Quiet {
            eprintln!("{}", self.marked(line.as_ref()));
        }
    }

    /// A `[xtask] ` line that quiet mode shows too: a failure, or the command's result.
    pub(crate) fn outcome(&self, line: impl AsRef<str>) {
        eprintln!("{}", self.marked(line.as_ref()));
    }

    /// A `[xtask] error: ` line about an error the command carries on after (it fails in the
    /// end): printed even in quiet mode.
    pub(crate) fn progress_error(&self, line: impl AsRef<str>) {
        let label = self.paint_red("error:");
        eprintln!("{}", self.marked(&format!("{label} {}", line.as_ref())));
    }

    /// A `[xtask] warning: ` line: printed even in quiet mode.
    pub(crate) fn progress_warn(&self, line: impl AsRef<str>) {
        let label = self.paint_yellow("warning:");
        eprintln!("{}", self.marked(&format!("{label} {}", line.as_ref())));
    }

    /// `line` after the `[xtask]` mark.
    fn marked(&self, line: &str) -> String {
        format!("{} {line}", self.paint_dim("[xtask]"))
    }

    /// The finished steps and how long each took, in order.
    pub(crate) fn timings(&self) -> Vec<(String, Duration)> {
        self.timings.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// `text` styled when colour is on, as it is otherwise.
    fn paint(
        &self,
        text: &str,
        styled: fn(console::StyledObject<String>) -> console::StyledObject<String>,
    ) -> String {
        if self.color {
            styled(style(text.to_owned())).to_string()
        } else {
            text.to_owned()
        }
    }

    fn paint_dim(&self, text: &str) -> String {
        self.paint(text, console::StyledObject::dim)
    }

    fn paint_cyan(&self, text: &str) -> String {
        self.paint(text, |s| s.cyan().bold())
    }

    fn paint_yellow(&self, text: &str) -> String {
        self.paint(text, |s| s.yellow().bold())
    }

    /// `text` in bold green when stderr takes colour, else unchanged: for what succeeded.
    pub(crate) fn paint_green(&self, text: &str) -> String {
        self.paint(text, |s| s.green().bold())
    }

    /// `text` in bold red when stderr takes colour, else unchanged: for what failed.
    pub(crate) fn paint_red(&self, text: &str) -> String {
        self.paint(text, |s| s.red().bold())
    }

    /// `text` in bold when stderr takes colour, else unchanged: the `status` table's header.
    pub(crate) fn paint_bold(&self, text: &str) -> String {
        self.paint(text, console::StyledObject::bold)
    }
}

/// One running step. Ends with [`Step::done`] or [`Step::fail`]; dropped unfinished (Ctrl-C, an
/// early `?`), it clears its spinner so the terminal is left clean.
#[derive(Debug)]
pub(crate) struct Step {
    ui: Ui,
    title: String,
    started: Instant,
    bar: Option<ProgressBar>,
    last_sub: Mutex<String>,
    finished: bool,
}

impl Step {
    /// Shows what the step is doing now (the spinner's message; a line in verbose mode).
    pub(crate) fn sub(&self, what: &str) {
        let what = what.trim();
        if what.is_empty() {
            return;
        }
        if let Ok(mut last) = self.last_sub.lock() {
            what.clone_into(&mut last);
        }
        match &self.bar {
            Some(bar) => {
                if self.ui.verbose() {
                    bar.println(format!("    {what}"));
                }
                bar.set_message(what.to_owned());
            }
            None => {
                if self.ui.verbose() {
                    eprintln!("    {what}");
                }
            }
        }
    }

    /// The callback form of [`Step::sub`], for code that reports progress line by line.
    pub(crate) fn reporter(&self) -> impl Fn(&str) + Sync + '_ {
        move |line| self.sub(line)
    }

    /// Prints a line above the spinner (kept in the scrollback).
    pub(crate) fn println(&self, line: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.println(line.as_ref()),
            None => eprintln!("{}", line.as_ref()),
        }
    }

    /// Ends the step successfully with a short summary ("3 images up to date").
    pub(crate) fn done(mut self, summary: impl AsRef<str>) -> Duration {
        let elapsed = self.started.elapsed();
        self.finished = true;
        if let Ok(mut timings) = self.ui.timings.lock() {
            timings.push((self.title.clone(), elapsed));
        }
        let line = format!(
            "{} {} {} {}",
            self.ui.paint_green("✓"),
            self.title,
            self.ui.paint_dim(summary.as_ref()),
            self.ui.paint_dim(&format!("({})", human_duration(elapsed)))
        );
        match self.bar.take() {
            Some(bar) => {
                bar.finish_and_clear();
                eprintln!("{line}");
            }
            None if self.ui.verbosity != Verbosity::Quiet => eprintln!("{line}"),
            None => {}
        }
        elapsed
    }

    /// Ends the step by `result`: done with the summary `describe` gives of its value, or failed
    /// (the error goes on to whoever reports it).
    pub(crate) fn conclude<T>(
        self,
        result: anyhow::Result<T>,
        describe: impl FnOnce(&T) -> String,
    ) -> anyhow::Result<T> {
        match result {
            Ok(value) => {
                self.done(describe(&value));
                Ok(value)
            }
            Err(err) => {
                self.fail();
                Err(err)
            }
        }
    }

    /// Ends the step as failed; the error itself is printed by whoever reports it.
    pub(crate) fn fail(mut self) {
        self.finished = true;
        let last = self.last_sub.lock().map(|s| s.clone()).unwrap_or_default();
        let during = if last.is_empty() {
            String::new()
        } else {
            format!(" (while: {last})")
        };
        let line = format!(
            "{} {}{}",
            self.ui.paint_red("✗"),
            self.title,
            self.ui.paint_dim(&during)
        );
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!("{line}");
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if !self.finished && self.ui.verbosity != Verbosity::Quiet {
            eprintln!("{} {}", self.ui.paint_yellow("-"), self.title);
        }
    }
}

/// `0.4s`, `12.3s`, `2m05s`: short enough for a progress line.
pub(crate) fn human_duration(elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = elapsed.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_seconds_then_minutes() {
        for (millis, expected) in [
            (0, "0.0s"),
            (440, "0.4s"),
            (12_345, "12.3s"),
            (59_949, "59.9s"),
            (60_000, "1m00s"),
            (125_000, "2m05s"),
        ] {
            assert_eq!(human_duration(Duration::from_millis(millis)), expected);
        }
    }

    #[test]
    fn finished_steps_are_timed_in_order() {
        let ui = Ui {
            verbosity: Verbosity::Quiet,
            animate: false,
            color: false,
            timings: Arc::default(),
        };
        ui.step("first").done("ok");
        let second = ui.step("second");
        second.sub("working");
        second.done("ok");
        drop(ui.step("abandoned"));
        let concluded = ui.step("third").conclude(Ok(3), |n| format!("{n} things"));
        assert_eq!(concluded.unwrap(), 3);
        let failed = ui
            .step("fourth")
            .conclude(Err::<(), _>(anyhow::anyhow!("no")), |()| String::new());
        assert_eq!(failed.unwrap_err().to_string(), "no");
        let names: Vec<_> = ui.timings().into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["first", "second", "third"]);
    }

    #[test]
    fn progress_lines_carry_the_xtask_mark() {
        let ui = Ui {
            verbosity: Verbosity::Quiet,
            animate: false,
            color: false,
            timings: Arc::default(),
        };
        assert_eq!(
            ui.marked("api/.sqlx is up to date"),
            "[xtask] api/.sqlx is up to date"
        );
    }
}
