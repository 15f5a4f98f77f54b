//! `cargo xtask bench`: load benchmarks that write their figures to `target/bench/`.
//!
//! The group holds what every benchmark needs: the release build, throwaway PostgreSQL and
//! Redis, starting a service (the API the same way for both wrk benchmarks) and timing its start
//! (`service.rs`), running wrk (`load.rs`) and judging its report (`wrk.rs`), reading a process's
//! memory from `/proc` (`memory.rs`), bare HTTP requests (`http.rs`), programs, folders and ports
//! of this machine (`host.rs`), the machine description and the table (`report.rs`); and what the
//! wrk benchmarks share: their options (here), their figures and how those are printed and
//! written (`report.rs`). Each benchmark (`api.rs`, `web.rs`, `dev.rs`) decides what to start and
//! what to load.
//! Figures are measured and reported, never asserted: a slow machine must not fail a build.

pub(crate) mod api;
pub(crate) mod dev;
mod host;
mod http;
mod load;
mod memory;
mod output;
mod replicas;
mod report;
mod service;
#[cfg(test)]
mod testing;
pub(crate) mod web;
mod wrk;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use tokio::runtime::Runtime;

use crate::context::Context;
use crate::interrupt::{EXIT_INTERRUPTED, Interrupt};

/// Options of `cargo xtask bench`: which part of the stack to measure.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub(crate) target: Target,
}

/// What can be benchmarked.
#[derive(Debug, Subcommand)]
pub(crate) enum Target {
    /// Load the API (release build) over ephemeral, seeded PostgreSQL and Redis with wrk.
    ///
    /// Six scenarios (cached list, filtered list, single deployment, /health, a write-heavy mix,
    /// and the list straight from PostgreSQL) each report requests/s, p50/p99/max latency and
    /// the API's peak RSS; start-up time and idle RSS are measured too. Prints a table and
    /// writes the figures as JSON. Fails when wrk sees error answers or socket errors, since
    /// those figures would describe a broken API.
    Api(api::Args),
    /// Load the dashboard (release build) in front of the release API, over ephemeral, seeded
    /// PostgreSQL and Redis, with wrk; and weigh the dashboard page.
    ///
    /// Four scenarios (the dashboard with the API warm, the dashboard filtered, a deployment's
    /// page, /healthz) each report requests/s, p50/p99/max latency and the dashboard's peak
    /// RSS; its start-up time and idle RSS are measured too, and the page's weight (HTML plus
    /// every resource it loads) and its requests to other origins. Prints a table and writes
    /// the figures as JSON. Fails when wrk sees error answers or socket errors.
    Web(web::Args),
    /// Time `cargo xtask dev` on the docker runtime: cold (images cached, no containers), warm
    /// (nothing changed) and after a one-line change in the API until the new API answers; and
    /// weigh the API and web images.
    ///
    /// Runs on a stack of its own (its own name and host ports), so a running stack is left
    /// alone; the edit of api/src/lib.rs is undone whatever happens.
    Dev(dev::Args),
}

/// What sets the options of one wrk benchmark apart from another's.
pub(crate) trait LoadDefaults {
    /// The default of `--connections`: the count the benchmark's latency target is set at.
    const CONNECTIONS: &'static str;
}

/// Options of a wrk benchmark (`bench api`, `bench web`), with `D`'s defaults.
#[derive(Debug, clap::Args)]
pub(crate) struct LoadArgs<D: LoadDefaults> {
    /// How long each scenario loads the service, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=600))]
    pub(crate) duration: u32,
    /// Connections wrk keeps open (concurrent requests).
    // `default_value`, not `default_value_t`: clap keeps the latter's text in one static for
    // every `D`, so the first benchmark's default would be both's.
    #[arg(long, value_name = "N", default_value = D::CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) connections: u32,
    /// Threads wrk drives the connections from; at most `--connections`.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub(crate) threads: u32,
    /// Where to write the figures as JSON [default: target/bench/<benchmark>.json in the
    /// repository: api.json, web.json].
    #[arg(long, value_name = "PATH")]
    pub(crate) out: Option<PathBuf>,
    #[arg(skip)]
    defaults: std::marker::PhantomData<D>,
}

/// Runs one benchmark; after Ctrl-C the exit code is 130 whatever the benchmark returned, since its
/// failure then stems from the interruption.
pub(crate) fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new().context("starting the async runtime")?;
    let _entered = runtime.enter();
    let mut session = Session {
        ctx,
        interrupt: Interrupt::listen()?,
        runtime: &runtime,
    };
    let result = match &args.target {
        Target::Api(args) => api::run(&mut session, args),
        Target::Web(args) => web::run(&mut session, args),
        Target::Dev(args) => dev::run(&mut session, args),
    };
    // Whatever failed after Ctrl-C failed because of it (the servers got it too); everything
    // the benchmark started has been dropped, so stopped, by now.
    if session.interrupt.is_requested() {
        ctx.ui().outcome("interrupted");
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    result.map(|()| ExitCode::SUCCESS)
}

/// What a benchmark run carries around: the context, Ctrl-C, and the runtime for async steps.
#[derive(Debug)]
pub(crate) struct Session<'a> {
    ctx: &'a Context,
    interrupt: Interrupt,
    runtime: &'a Runtime,
}

impl Session<'_> {
    /// An error once Ctrl-C was pressed, so that the benchmark unwinds (dropping, which stops,
    /// everything it started) instead of starting the next step.
    fn check_interrupt(&self) -> anyhow::Result<()> {
        if self.interrupt.is_requested() {
            bail!("interrupted");
        }
        Ok(())
    }
}
