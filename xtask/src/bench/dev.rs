//! `cargo xtask bench dev`: how long `cargo xtask dev` takes on the docker runtime, cold (images
//! cached, no containers), warm (nothing changed) and after a one-line change in the API (until
//! the new API answers), and how big the API and web images are.
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
use super::report::{Machine, generated_at, write_json};
use crate::ui::Ui;

/// Options of `cargo xtask bench dev`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// How many times each scenario runs (the table shows the median, the JSON every run).
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub(crate) runs: u32,
    /// Where to write the figures as JSON [default: target/bench/dev.json in the repository].
    #[arg(long, value_name = "PATH")]
    pub(crate) out: Option<PathBuf>,
}

/// The file whose one-line change the rebuild scenario makes: part of the API only.
const EDITED_FILE: &str = "api/src/lib.rs";

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
    fn xtask(&self, args: &[&str]) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let output = Command::new(&self.exe)
            .args(args)
            .current_dir(&self.root)
            .env("WANDER_RUNTIME", "docker")
            .env("WANDER_STACK", &self.name)
            .env("WANDER_STATE_DIR", self.state.path())
            .env("WANDER_WEB_PORT", self.web_port.to_string())
            .env("WANDER_API_PORT", self.api_port.to_string())
            .env("CI", "true")
            .env("NO_COLOR", "1")
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
                EDITED_FILE
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
    // Back to the unedited API, so its image is the current one again (not timed).
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
        Ok(super::report::round(
            inspected.size.unwrap_or(0) as f64 / 1_000_000.0,
            1,
        ))
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
        ],
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

fn scenario(name: &'static str, what: &'static str, runs: &[Duration]) -> Scenario {
    let mut seconds: Vec<f64> = runs
        .iter()
        .map(|d| super::report::round(d.as_secs_f64(), 2))
        .collect();
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
            "{:<11} {:>7.2} s  (runs: {})  {}",
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
        "images      api {:.1} MB, web {:.1} MB",
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
