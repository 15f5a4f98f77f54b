//! One wrk run and what surrounds it: the load and wrk's command line for it, the checked
//! settings, what a wrk benchmark has ready before it starts anything, and the scenarios whose
//! load saw failed requests.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Serialize;

use super::host::{require_program, target_dir};
use super::output::write_json;
use super::wrk::{self, WrkReport};
use super::{LoadArgs, LoadDefaults, Session};
use crate::cmd::Cmd;
use crate::context::Context;
use crate::ui::Ui;

impl Session<'_> {
    /// Runs wrk with `load` and returns its parsed report. An error when wrk fails, its report
    /// cannot be read, or Ctrl-C was pressed meanwhile (wrk is then killed).
    pub(super) fn wrk(&mut self, wrk: &Path, load: &Load) -> anyhow::Result<WrkReport> {
        let mut cmd = Cmd::new(wrk)
            .args(wrk_args(load))
            .current_dir(self.ctx.root());
        for (key, value) in &load.env {
            cmd = cmd.env(key, value);
        }
        let output = self
            .runtime
            .block_on(cmd.output_interruptible(self.ctx.ui(), &mut self.interrupt))?;
        self.check_interrupt()?;
        let Some(output) = output else {
            bail!("interrupted");
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "`{cmd}` failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                stdout.trim()
            );
        }
        wrk::parse(&stdout).with_context(|| format!("reading the report of `{cmd}`:\n{stdout}"))
    }
}

/// One wrk run: where to, how hard, for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Load {
    pub(crate) url: String,
    /// A Lua script that writes the requests, when one URL is not enough.
    pub(crate) script: Option<PathBuf>,
    /// Variables for the script (`os.getenv`).
    pub(crate) env: Vec<(String, String)>,
    pub(crate) threads: u32,
    pub(crate) connections: u32,
    pub(crate) duration_s: u32,
}

/// wrk's command line for `load`, always with `--latency` since the report needs percentiles.
fn wrk_args(load: &Load) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        format!("--threads={}", load.threads).into(),
        format!("--connections={}", load.connections).into(),
        format!("--duration={}s", load.duration_s).into(),
        "--latency".into(),
    ];
    if let Some(script) = &load.script {
        args.push("--script".into());
        args.push(script.into());
    }
    args.push(load.url.clone().into());
    args
}

/// What a wrk benchmark has ready before it starts anything: its checked settings, wrk, the
/// folder for the services' logs, and where the figures go.
#[derive(Debug)]
pub(super) struct LoadRun {
    pub(super) settings: Settings,
    pub(super) wrk: PathBuf,
    /// `target/bench/`, created.
    pub(super) dir: PathBuf,
    /// `--out`, else `<name>.json` in [`LoadRun::dir`].
    pub(super) out: PathBuf,
}

impl LoadRun {
    /// Checks the options and finds wrk before anything is built, then creates the folder of
    /// the benchmark called `name`.
    pub(super) fn prepare<D: LoadDefaults>(
        ctx: &Context,
        args: &LoadArgs<D>,
        name: &str,
    ) -> anyhow::Result<Self> {
        let settings = Settings::checked(args.duration, args.connections, args.threads)?;
        let wrk = require_program("wrk")?;
        let dir = target_dir(ctx).join("bench");
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| dir.join(format!("{name}.json")));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            settings,
            wrk,
            dir,
            out,
        })
    }

    /// Writes the figures to `--out` and says where.
    pub(super) fn write(&self, report: &impl Serialize) -> anyhow::Result<()> {
        write_json(&self.out, report)?;
        println!("\nfigures written to {}", self.out.display());
        Ok(())
    }
}

/// The scenarios whose load saw failed requests: each is reported as it happens, and together
/// they are the run's error in the end.
#[derive(Debug, Default)]
pub(super) struct Failures(Vec<String>);

impl Failures {
    /// Notes the verdict of `scenario`'s load.
    pub(super) fn check(&mut self, ui: &Ui, scenario: &str, verdict: Result<(), String>) {
        if let Err(problem) = verdict {
            ui.outcome(format!("{scenario}: {problem}"));
            self.0.push(format!("{scenario}: {problem}"));
        }
    }

    /// An error when any of the `scenarios` failed: the figures describe a broken `service`, so
    /// they are not written to `out`; `logs` says where to look.
    pub(super) fn verdict(
        self,
        scenarios: usize,
        service: &str,
        out: &Path,
        logs: &str,
    ) -> anyhow::Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        bail!(
            "{} of {scenarios} scenarios had failed requests, so their figures describe a \
             broken {service} and {} was not written: {}; {logs}",
            self.0.len(),
            out.display(),
            self.0.join("; "),
        );
    }
}

/// How hard each scenario loaded the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(super) struct Settings {
    pub(super) duration_s: u32,
    pub(super) connections: u32,
    pub(super) threads: u32,
}

impl Settings {
    /// The settings, checked against each other (clap checks each alone).
    fn checked(duration_s: u32, connections: u32, threads: u32) -> anyhow::Result<Self> {
        if threads > connections {
            bail!(
                "--threads {threads} is more than --connections {connections}: wrk needs a \
                 connection per thread; lower --threads or raise --connections"
            );
        }
        Ok(Self {
            duration_s,
            connections,
            threads,
        })
    }

    /// The progress line before `scenario` loads the service.
    pub(super) fn announce(&self, ui: &Ui, scenario: &str, what: &str) {
        ui.progress(format!(
            "{scenario}: {what} ({}s, {} connections)",
            self.duration_s, self.connections
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_gets_the_load_the_latency_flag_and_the_script_before_the_url() {
        let mut load = Load {
            url: "http://127.0.0.1:1234/health".into(),
            script: None,
            env: Vec::new(),
            threads: 2,
            connections: 50,
            duration_s: 10,
        };
        assert_eq!(
            wrk_args(&load),
            [
                "--threads=2",
                "--connections=50",
                "--duration=10s",
                "--latency",
                "http://127.0.0.1:1234/health"
            ]
        );
        load.script = Some("xtask/bench/write_mix.lua".into());
        let args = wrk_args(&load);
        assert_eq!(
            args[4..],
            [
                "--script",
                "xtask/bench/write_mix.lua",
                "http://127.0.0.1:1234/health"
            ]
        );
    }

    #[test]
    fn threads_may_not_outnumber_connections() {
        assert!(Settings::checked(10, 50, 2).is_ok());
        assert!(Settings::checked(10, 2, 2).is_ok());
        let err = Settings::checked(10, 1, 2).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--threads 2 is more than --connections 1")
        );
    }
}
