//! `cargo xtask bench dev`: how long `cargo xtask dev` takes on the docker runtime, cold (images
//! cached, no containers), warm (nothing changed) and after a one-line change in the API (until
//! the new API answers); how long `dev --watch` takes from a saved change in the API or the
//! dashboard to the new version answering; and how big the API and web images are.
//!
//! It runs this very binary as a user would, on a stack of its own (name, state folder, host
//! ports), so a developer's stack is left alone; the source edit is undone whatever happens.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;

use super::Session;
use super::host::{free_port, target_dir};
use super::output::{generated_at, round, write_json};
use super::report::Machine;
use crate::ui::Ui;

/// Options of `cargo xtask bench dev`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// How many times each scenario runs (the table shows the median, the JSON every run).
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub(crate) runs: u32,
    /// How many saves each watch scenario times (the median is reported).
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub(crate) watch_runs: u32,
    /// Where to write the figures as JSON [default: target/bench/dev.json in the repository].
    #[arg(long, value_name = "PATH")]
    pub(crate) out: Option<PathBuf>,
}

/// The file whose one-line change the rebuild scenario makes: part of the API only.
const EDITED_FILE: &str = "api/src/lib.rs";

/// The watch scenarios' edits: a handler's answer and the dashboard's heading, each run making
/// them say something new that the benchmark waits to see.
const WATCHED_API_FILE: &str = "api/src/routes/health.rs";
const WATCHED_API_LINE: &str = "status: \"ok\".to_owned(),";
const WATCHED_WEB_FILE: &str = "web/templates/dashboard.html";
const WATCHED_WEB_LINE: &str = "<h1>Dashboard</h1>";

/// How long the watch loop may take to come up, and one save to answer.
const WATCH_START: Duration = Duration::from_secs(900);
const WATCH_CYCLE: Duration = Duration::from_secs(300);

/// One scenario's timings.
#[derive(Debug, Clone, Serialize)]
struct Scenario {
    name: &'static str,
    what: &'static str,
    runs_s: Vec<f64>,
    median_s: f64,
}

/// The whole report.
#[derive(Debug, Serialize)]
struct Report {
    generated_at: String,
    machine: Machine,
    scenarios: Vec<Scenario>,
    /// Each watch cycle's own line: what it did, with its build and replace times.
    watch_cycles: Vec<String>,
    api_image_mb: f64,
    web_image_mb: f64,
}

/// Runs `cargo xtask ...` on the benchmark's own stack.
struct Stack {
    exe: PathBuf,
    root: PathBuf,
    name: String,
    state: tempfile::TempDir,
    web_port: u16,
    api_port: u16,
}

impl Stack {
    /// `cargo xtask ARGS` on this stack.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.exe);
        command
            .args(args)
            .current_dir(&self.root)
            .env("WANDER_RUNTIME", "docker")
            .env("WANDER_STACK", &self.name)
            .env("WANDER_STATE_DIR", self.state.path())
            .env("WANDER_WEB_PORT", self.web_port.to_string())
            .env("WANDER_API_PORT", self.api_port.to_string())
            .env("CI", "true")
            .env("NO_COLOR", "1");
        command
    }

    fn xtask(&self, args: &[&str]) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let output = self
            .command(args)
            .output()
            .with_context(|| format!("running `cargo xtask {}`", args.join(" ")))?;
        let took = started.elapsed();
        if !output.status.success() {
            bail!(
                "`cargo xtask {}` failed ({}):\n{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(took)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.xtask(&["down", "--volumes"]);
    }
}

/// Puts a file back as it was when dropped: the one-line change never outlives the benchmark.
struct Restore {
    path: PathBuf,
    original: Vec<u8>,
    /// Where a failure to put it back is reported.
    ui: Ui,
}

impl Restore {
    /// Keeps `path` as it is now, to be put back when dropped, without changing it.
    fn keep(ui: &Ui, path: &Path) -> anyhow::Result<Self> {
        let original =
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            original,
            ui: ui.clone(),
        })
    }

    /// Writes the original with its one `from` replaced by `to`.
    fn write_replaced(&self, from: &str, to: &str) -> anyhow::Result<()> {
        let text = String::from_utf8_lossy(&self.original);
        if text.matches(from).count() != 1 {
            bail!("{} no longer holds `{from}` once", self.path.display());
        }
        std::fs::write(&self.path, text.replacen(from, to, 1))
            .with_context(|| format!("editing {}", self.path.display()))
    }

    fn edit(ui: &Ui, path: &Path, line: &str) -> anyhow::Result<Self> {
        let original =
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let mut changed = original.clone();
        changed.extend_from_slice(line.as_bytes());
        std::fs::write(path, changed).with_context(|| format!("editing {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            original,
            ui: ui.clone(),
        })
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Err(err) = std::fs::write(&self.path, &self.original) {
            self.ui.progress_error(format!(
                "could not restore {}: {err}; `git checkout -- {}` does",
                self.path.display(),
                self.path.display()
            ));
        }
    }
}

/// Times `dev` `--runs` times per scenario after one untimed warm-up, on a stack of its own that is
/// taken down when the run ends; then weighs the images and writes the figures.
pub(crate) fn run(session: &mut Session<'_>, args: &Args) -> anyhow::Result<()> {
    let ctx = session.ctx;
    let stack = Stack {
        exe: std::env::current_exe().context("finding the xtask binary")?,
        root: ctx.root().to_owned(),
        name: format!("bench-dev-{}", std::process::id()),
        state: tempfile::tempdir().context("creating a state folder")?,
        web_port: free_port()?,
        api_port: free_port()?,
    };
    let ui = ctx.ui();
    ui.progress("warming up: the first `dev` builds whatever images are missing");
    stack.xtask(&["dev", "--no-open"])?;
    session.check_interrupt()?;

    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut change = Vec::new();
    for run in 1..=args.runs {
        ui.progress(format!("run {run} of {}", args.runs));
        stack.xtask(&["down", "--volumes"])?;
        cold.push(stack.xtask(&["dev", "--no-open"])?);
        session.check_interrupt()?;
        warm.push(stack.xtask(&["dev", "--no-open"])?);
        session.check_interrupt()?;
        // Code, not a comment: the compiler has a function to build, as after a real edit.
        let edit = Restore::edit(
            ui,
            &ctx.root().join(EDITED_FILE),
            &format!(
                "#[doc(hidden)]\npub fn bench_dev_marker() -> &'static str {{ \"{} {run}\" }}\n",
                std::process::id()
            ),
        )?;
        change.push(stack.xtask(&["dev", "--no-open"])?);
        drop(edit);
        session.check_interrupt()?;
    }
    let (watch_api, watch_web, watch_cycles) = watch_changes(session, &stack, args.watch_runs)?;
    // Back to the unedited, optimised images (not timed).
    stack.xtask(&["dev", "--no-open"])?;

    let docker = session.runtime.block_on(crate::docker::connect())?;
    let size = |app| -> anyhow::Result<f64> {
        let image = session.runtime.block_on(crate::images::app::ensure_app(
            ctx,
            &docker,
            app,
            crate::images::app::Profile::Optimised,
            &|_| {},
        ))?;
        let inspected = session
            .runtime
            .block_on(docker.inspect_image(&image.reference))?;
        #[allow(clippy::cast_precision_loss)] // image sizes are far below 2^52 bytes
        Ok(round(inspected.size.unwrap_or(0) as f64 / 1_000_000.0, 1))
    };
    let report = Report {
        generated_at: generated_at()?,
        machine: Machine::detect(),
        scenarios: vec![
            scenario(
                "cold",
                "dev with images cached, no containers or volumes",
                &cold,
            ),
            scenario("warm", "dev again with nothing changed", &warm),
            scenario(
                "api_change",
                "dev after a one-line change in api/, until the new API answers",
                &change,
            ),
            scenario(
                "watch_api_change",
                "dev --watch: a saved change to an API handler, until the new API answers it",
                &watch_api,
            ),
            scenario(
                "watch_web_change",
                "dev --watch: a saved change to a dashboard template, until the page shows it",
                &watch_web,
            ),
        ],
        watch_cycles,
        api_image_mb: size(crate::images::app::App::Api)?,
        web_image_mb: size(crate::images::app::App::Web)?,
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| target_dir(ctx).join("bench/dev.json"));
    write_json(&out, &report)?;
    println!("{}", render(&report));
    ui.outcome(format!("figures written to {}", out.display()));
    Ok(())
}

/// Runs `dev --watch` on the benchmark's stack and times `runs` saves of an API handler and of
/// a dashboard template, each from the write to the new answer; the loop is idle (its cycle
/// line printed) before each save. Returns both timings and the cycle lines.
fn watch_changes(
    session: &Session<'_>,
    stack: &Stack,
    runs: u32,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>, Vec<String>)> {
    let ui = session.ctx.ui();
    ui.progress("starting dev --watch (the first time: our crates compiled unoptimised)");
    let mut watch = Watch::start(stack)?;
    watch.wait_for("watching the sources of", 1, WATCH_START)?;
    let api = Restore::keep(ui, &stack.root.join(WATCHED_API_FILE))?;
    let web = Restore::keep(ui, &stack.root.join(WATCHED_WEB_FILE))?;
    let (mut api_runs, mut web_runs) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        ui.progress(format!("watch run {run} of {runs}"));
        let marker = format!("ok-bench-{}-{run}", std::process::id());
        let cycles = watch.count("rebuilt and replaced");
        api.write_replaced(
            WATCHED_API_LINE,
            &format!("status: \"{marker}\".to_owned(),"),
        )?;
        let saved = Instant::now();
        answers(stack.api_port, "/livez", &marker)?;
        api_runs.push(saved.elapsed());
        watch.wait_for("rebuilt and replaced", cycles + 1, WATCH_CYCLE)?;
        session.check_interrupt()?;

        let heading = format!("<h1>Dashboard {marker}</h1>");
        let cycles = watch.count("rebuilt and replaced");
        web.write_replaced(WATCHED_WEB_LINE, &heading)?;
        let saved = Instant::now();
        answers(stack.web_port, "/", &heading)?;
        web_runs.push(saved.elapsed());
        watch.wait_for("rebuilt and replaced", cycles + 1, WATCH_CYCLE)?;
        session.check_interrupt()?;
    }
    let lines = watch
        .stderr()
        .lines()
        .filter(|line| line.starts_with('✓') && line.contains("rebuilt and replaced"))
        .map(str::to_owned)
        .collect();
    drop((api, web));
    drop(watch);
    Ok((api_runs, web_runs, lines))
}

/// `dev --watch` as a child of the benchmark, its stderr gathered; stopped when dropped.
struct Watch {
    child: std::process::Child,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Watch {
    fn start(stack: &Stack) -> anyhow::Result<Self> {
        let mut child = stack
            .command(&["dev", "--watch", "--no-open"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("starting `cargo xtask dev --watch`")?;
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let into = std::sync::Arc::clone(&stderr);
        let pipe = child.stderr.take().context("no stderr to read")?;
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Ok(mut text) = into.lock() {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
        });
        Ok(Self { child, stderr })
    }

    fn stderr(&self) -> String {
        self.stderr.lock().map(|t| t.clone()).unwrap_or_default()
    }

    fn count(&self, needle: &str) -> usize {
        self.stderr().matches(needle).count()
    }

    /// Waits until stderr holds `needle` `times` times.
    fn wait_for(&mut self, needle: &str, times: usize, limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        while self.count(needle) < times {
            if let Some(status) = self.child.try_wait()? {
                bail!("dev --watch ended ({status}):\n{}", self.stderr());
            }
            if started.elapsed() > limit {
                bail!("no `{needle}` after {limit:?}:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Ctrl-C, as a developer stops it; then make sure.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGINT,
            );
        }
        let stopping = Instant::now();
        while stopping.elapsed() < Duration::from_secs(5) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `path` on 127.0.0.1:`port` every 20 ms until its body holds `needle`.
fn answers(port: u16, path: &str, needle: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Ok(fetched) = super::http::http_fetch(port, path)
            && String::from_utf8_lossy(&fetched.body).contains(needle)
        {
            return Ok(());
        }
        if started.elapsed() > WATCH_CYCLE {
            bail!("127.0.0.1:{port}{path} never showed `{needle}`");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn scenario(name: &'static str, what: &'static str, runs: &[Duration]) -> Scenario {
    let mut seconds: Vec<f64> = runs.iter().map(|d| round(d.as_secs_f64(), 2)).collect();
    let runs_s = seconds.clone();
    seconds.sort_by(f64::total_cmp);
    let median_s = seconds.get(seconds.len() / 2).copied().unwrap_or_default();
    Scenario {
        name,
        what,
        runs_s,
        median_s,
    }
}

fn render(report: &Report) -> String {
    let mut out = String::new();
    for scenario in &report.scenarios {
        let _ = writeln!(
            out,
            "{:<16} {:>7.2} s  (runs: {})  {}",
            scenario.name,
            scenario.median_s,
            scenario
                .runs_s
                .iter()
                .map(|s| format!("{s:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            scenario.what
        );
    }
    let _ = write!(
        out,
        "images           api {:.1} MB, web {:.1} MB",
        report.api_image_mb, report.web_image_mb
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_run() {
        let runs = [3.0, 1.0, 2.0].map(Duration::from_secs_f64);
        let scenario = scenario("warm", "", &runs);
        assert_eq!(scenario.runs_s, [3.0, 1.0, 2.0]);
        assert!((scenario.median_s - 2.0).abs() < f64::EPSILON);
    }

    #[test]
    fn an_edit_is_undone_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lib.rs");
        std::fs::write(&path, "fn a() {}\n").unwrap();
        let ctx = crate::context::Context::for_tests();
        let edit = Restore::edit(ctx.ui(), &path, "// x\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "fn a() {}\n// x\n");
        drop(edit);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "fn a() {}\n");
    }
}
