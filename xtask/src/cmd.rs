//! The one way the xtask runs other programs: arguments kept separate (never through a shell),
//! the command echoed in verbose mode, and a message saying what was attempted when it fails.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output, Stdio};

use anyhow::{Context as _, bail};

use crate::interrupt::Interrupt;
use crate::ui::Ui;

/// A program to run with its arguments, environment and working directory.
#[derive(Debug, Clone)]
pub(crate) struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    /// Start from an empty environment instead of inheriting ours (see [`Cmd::env_clear`]).
    clear_env: bool,
    dir: Option<PathBuf>,
}

/// A child started in a process group of its own; dropped before it has ended, the whole group
/// is killed, its own children too (which killing the child alone would leave running).
#[derive(Debug)]
pub(crate) struct GroupChild(tokio::process::Child);

impl std::ops::Deref for GroupChild {
    type Target = tokio::process::Child;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for GroupChild {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        // `id()` is None once the child has been waited for: nothing of it is left to stop.
        if let Some(pid) = self.0.id() {
            kill_group(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Sends `signal` to the process group led by `pid` (a child started by [`Cmd::spawn`] or
/// [`Cmd::spawn_piped`]).
pub(crate) fn kill_group(pid: u32, signal: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), signal);
    }
}

/// How a command that may be interrupted ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finished {
    /// It ran to its end.
    Exited(ExitStatus),
    /// Ctrl-C was pressed while it ran; it ended (or was ended) with this status.
    Interrupted(ExitStatus),
}

impl Cmd {
    /// A command for `program`, looked up on PATH when it is a bare name; nothing runs until one of
    /// the run or spawn methods.
    pub(crate) fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            clear_env: false,
            dir: None,
        }
    }

    /// `cargo`, as the one that started us when known (`CARGO`), else from PATH.
    pub(crate) fn cargo() -> Self {
        Self::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
    }

    /// Appends one argument, passed as it is: no shell splits or expands it.
    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends several arguments, each passed as it is.
    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Sets a variable for the program, also after [`Cmd::env_clear`]; the echoed command line does
    /// not show it.
    pub(crate) fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Gives the program only the variables set with [`Cmd::env`], none of ours: for a server
    /// whose behaviour must not depend on what the developer happens to have exported.
    pub(crate) fn env_clear(mut self) -> Self {
        self.clear_env = true;
        self
    }

    /// The directory the program starts in (else ours): cargo commands pass the repository root, so
    /// they act on the workspace wherever `cargo xtask` was started.
    pub(crate) fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Runs the command with the terminal attached; an error unless it exits with 0.
    pub(crate) fn run(&self, ui: &Ui) -> anyhow::Result<()> {
        self.echo(ui);
        let status = self
            .std()
            .status()
            .with_context(|| format!("could not start `{self}`"))?;
        if !status.success() {
            bail!("`{self}` failed ({status})");
        }
        Ok(())
    }

    /// Runs the command with its output captured; a non-zero exit is not an error here, only a
    /// failure to start is.
    pub(crate) fn output(&self, ui: &Ui) -> anyhow::Result<Output> {
        self.echo(ui);
        self.std()
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("could not start `{self}`"))
    }

    /// Like [`Cmd::output`], but gives up when Ctrl-C is pressed: the program is killed and
    /// `None` returned, so a long measurement does not hold up the clean-up after it.
    pub(crate) async fn output_interruptible(
        &self,
        ui: &Ui,
        interrupt: &mut Interrupt,
    ) -> anyhow::Result<Option<Output>> {
        self.echo(ui);
        let child = tokio::process::Command::from(self.std())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Dropping the unfinished wait below (on Ctrl-C) then ends the program too.
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("could not start `{self}`"))?;
        tokio::select! {
            output = child.wait_with_output() => {
                output.map(Some).with_context(|| format!("waiting for `{self}`"))
            }
            () = interrupt.requested() => Ok(None),
        }
    }

    /// Starts the command in the background with its output sent to `stdout` and `stderr`,
    /// for a server that the caller stops (the returned child is not killed on drop). It runs in
    /// a process group of its own, whose id is its process id, so that the caller can stop it
    /// with everything it started ([`kill_group`]).
    pub(crate) fn spawn(
        &self,
        ui: &Ui,
        stdout: impl Into<Stdio>,
        stderr: impl Into<Stdio>,
    ) -> anyhow::Result<Child> {
        self.echo(ui);
        let mut command = self.std();
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("could not start `{self}`"))
    }

    /// Starts the command with stdout and stderr piped to the caller, as a child that is killed
    /// with every process it started when dropped: abandoning the caller (Ctrl-C, or a SIGTERM
    /// sent to the xtask alone) leaves no compiler or download behind.
    pub(crate) fn spawn_piped(&self, ui: &Ui) -> anyhow::Result<GroupChild> {
        self.echo(ui);
        let mut command = self.std();
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        tokio::process::Command::from(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map(GroupChild)
            .with_context(|| format!("could not start `{self}`"))
    }

    /// Runs the command with the terminal attached until it ends, noticing Ctrl-C meanwhile.
    ///
    /// The terminal sends Ctrl-C to the child as well, so it normally stops by itself; one that
    /// is still running after `grace` is killed.
    pub(crate) async fn run_interruptible(
        &self,
        ui: &Ui,
        interrupt: &mut Interrupt,
        grace: std::time::Duration,
    ) -> anyhow::Result<Finished> {
        self.echo(ui);
        let mut child = tokio::process::Command::from(self.std())
            .spawn()
            .with_context(|| format!("could not start `{self}`"))?;
        let waited = tokio::select! {
            status = child.wait() => {
                let status = status.with_context(|| format!("waiting for `{self}`"))?;
                return Ok(Finished::Exited(status));
            }
            () = interrupt.requested() => tokio::time::timeout(grace, child.wait()).await,
        };
        let status = match waited {
            Ok(status) => status,
            Err(_elapsed) => {
                eprintln!(
                    "[xtask] `{self}` is still running {}s after Ctrl-C; killing it",
                    grace.as_secs()
                );
                child
                    .kill()
                    .await
                    .with_context(|| format!("killing `{self}`"))?;
                child.wait().await
            }
        };
        Ok(Finished::Interrupted(
            status.with_context(|| format!("waiting for `{self}`"))?,
        ))
    }

    fn echo(&self, ui: &Ui) {
        if ui.verbose() {
            eprintln!("$ {self}");
        }
    }

    fn std(&self) -> std::process::Command {
        let mut command = std::process::Command::new(&self.program);
        command.args(&self.args);
        if self.clear_env {
            command.env_clear();
        }
        command.envs(self.envs.iter().map(|(key, value)| (key, value)));
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command
    }
}

impl fmt::Display for Cmd {
    /// The command as a person would type it (quoted where needed); for messages only, it is
    /// never handed to a shell.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let program = Path::new(&self.program)
            .file_name()
            .unwrap_or(&self.program)
            .to_string_lossy();
        f.write_str(&program)?;
        for arg in &self.args {
            let arg = arg.to_string_lossy();
            if arg.is_empty()
                || arg.contains(|c: char| c.is_whitespace() || "'\"$`\\*?()[]{};&|<>".contains(c))
            {
                write!(f, " '{}'", arg.replace('\'', r"'\''"))?;
            } else {
                write!(f, " {arg}")?;
            }
        }
        Ok(())
    }
}

/// A program's output relayed line by line as it comes: each line goes on to a progress
/// callback, and the last few are kept for the error should the program fail.
pub(crate) struct Relay<'a> {
    on_line: &'a (dyn Fn(&str) + Sync),
    kept: VecDeque<String>,
    keep: usize,
}

impl<'a> Relay<'a> {
    /// Relays to `on_line`, keeping the last `keep` lines.
    pub(crate) fn new(on_line: &'a (dyn Fn(&str) + Sync), keep: usize) -> Self {
        Self {
            on_line,
            kept: VecDeque::with_capacity(keep),
            keep,
        }
    }

    /// Passes `line` on and keeps it, forgetting the oldest line kept beyond `keep`.
    pub(crate) fn line(&mut self, line: String) {
        (self.on_line)(&line);
        if self.kept.len() == self.keep {
            self.kept.pop_front();
        }
        self.kept.push_back(line);
    }

    /// The lines kept, oldest first, one a line.
    pub(crate) fn last_lines(&self) -> String {
        let lines: Vec<&str> = self.kept.iter().map(String::as_str).collect();
        lines.join("\n")
    }
}

impl fmt::Debug for Relay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("kept", &self.kept)
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_shown_as_typed_with_quotes_only_where_needed() {
        let cmd =
            Cmd::new("/usr/bin/cargo").args(["nextest", "run", "-E", "test(a b)", "", "it's"]);
        assert_eq!(
            cmd.to_string(),
            r"cargo nextest run -E 'test(a b)' '' 'it'\''s'"
        );
    }

    #[test]
    fn a_failing_command_says_which_command_failed() {
        let ui = Ui::new(crate::ui::Verbosity::Normal);
        let err = Cmd::new("false").run(&ui).unwrap_err();
        assert!(err.to_string().starts_with("`false` failed"), "{err}");
        let err = Cmd::new("surely-no-such-program").run(&ui).unwrap_err();
        assert_eq!(err.to_string(), "could not start `surely-no-such-program`");
    }

    #[test]
    fn output_is_captured_with_the_environment_and_directory_given() {
        let ui = Ui::new(crate::ui::Verbosity::Normal);
        let output = Cmd::new("env")
            .env("XTASK_TEST_VALUE", "hello")
            .output(&ui)
            .unwrap();
        assert!(output.status.success());
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            stdout.lines().any(|line| line == "XTASK_TEST_VALUE=hello"),
            "{stdout}"
        );

        let dir = std::env::temp_dir().canonicalize().unwrap();
        let output = Cmd::new("pwd").current_dir(&dir).output(&ui).unwrap();
        assert_eq!(
            String::from_utf8(output.stdout).unwrap().trim_end(),
            dir.to_str().unwrap()
        );
    }

    #[test]
    fn a_cleared_environment_holds_only_what_was_set() {
        let ui = Ui::new(crate::ui::Verbosity::Normal);
        let output = Cmd::new("/usr/bin/env")
            .env_clear()
            .env("XTASK_ONLY", "this")
            .output(&ui)
            .unwrap();
        assert_eq!(
            String::from_utf8(output.stdout).unwrap(),
            "XTASK_ONLY=this\n"
        );
    }

    #[test]
    fn a_spawned_command_writes_where_it_was_told() {
        let ui = Ui::new(crate::ui::Verbosity::Normal);
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("out.log")).unwrap();
        let mut child = Cmd::new("sh")
            .args(["-c", "echo out; echo err >&2"])
            .spawn(&ui, log.try_clone().unwrap(), log)
            .unwrap();
        assert!(child.wait().unwrap().success());
        let written = std::fs::read_to_string(dir.path().join("out.log")).unwrap();
        assert_eq!(written, "out\nerr\n");
    }

    #[test]
    fn a_relay_passes_every_line_on_and_keeps_the_last_ones() {
        let seen = std::sync::Mutex::new(Vec::new());
        let on_line = |line: &str| seen.lock().unwrap().push(line.to_owned());
        let mut relay = Relay::new(&on_line, 2);
        assert_eq!(relay.last_lines(), "");
        for line in ["one", "two", "three"] {
            relay.line(line.to_owned());
        }
        assert_eq!(relay.last_lines(), "two\nthree");
        assert_eq!(*seen.lock().unwrap(), ["one", "two", "three"]);
    }

    #[test]
    fn captured_output_is_returned_and_abandoned_on_ctrl_c() {
        let ui = Ui::new(crate::ui::Verbosity::Normal);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let _entered = runtime.enter();
        let mut interrupt = Interrupt::listen().unwrap();

        let output = runtime
            .block_on(
                Cmd::new("echo")
                    .arg("hello")
                    .output_interruptible(&ui, &mut interrupt),
            )
            .unwrap()
            .unwrap();
        assert_eq!(output.stdout, b"hello\n");

        // Ctrl-C, as the terminal would send it, while a long command runs.
        let pid = std::process::id().to_string();
        let started = std::time::Instant::now();
        let output = runtime.block_on(async {
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                let _ = tokio::process::Command::new("kill")
                    .args(["-INT", &pid])
                    .status()
                    .await;
            });
            Cmd::new("sleep")
                .arg("30")
                .output_interruptible(&ui, &mut interrupt)
                .await
        });
        assert!(output.unwrap().is_none());
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert!(interrupt.is_requested());
    }
}
