//! `cargo xtask bench`: load benchmarks that write their figures to `target/bench/`.
//!
//! The group holds what every benchmark needs: the release build, throwaway PostgreSQL and
//! Redis, starting a service (the API the same way for both wrk benchmarks) and timing its start,
//! running wrk and judging its report, reading a process's memory from `/proc`, bare HTTP
//! requests, the machine description and the table; and what the wrk benchmarks share: their
//! options, their figures and how those are printed and written. Each benchmark (`api.rs`,
//! `web.rs`, `dev.rs`) decides what to start and what to load.
//! Figures are measured and reported, never asserted: a slow machine must not fail a build.

pub(crate) mod api;
pub(crate) mod dev;
pub(crate) mod web;
mod wrk;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde::Serialize;
use testkit::{PostgresServer, RedisServer, Seed, TestDatabase};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use tokio::runtime::Runtime;

use crate::cmd::Cmd;
use crate::context::Context;
use crate::interrupt::{EXIT_INTERRUPTED, Interrupt};
use crate::test::provision;
use crate::ui::Ui;

use self::wrk::WrkReport;

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

    /// Runs wrk with `load` and returns its parsed report. An error when wrk fails, its report
    /// cannot be read, or Ctrl-C was pressed meanwhile (wrk is then killed).
    fn wrk(&mut self, wrk: &Path, load: &Load) -> anyhow::Result<WrkReport> {
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

/// Finds `program` on PATH, or says how to install it.
fn require_program(program: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt as _;
            candidate
                .metadata()
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
        .with_context(|| {
            format!("{program} is not installed (not found on PATH): run `cargo xtask setup`")
        })
}

/// The cargo target directory (`CARGO_TARGET_DIR`, else `target/` in the repository), where
/// release builds and the benchmark's files go.
fn target_dir(ctx: &Context) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| "target".into(), PathBuf::from);
    ctx.root().join(dir)
}

/// A port on 127.0.0.1 that nothing listens on right now. Another process could take it before
/// ours binds it; on a developer machine that race is rare enough to just report.
fn free_port() -> anyhow::Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("looking for a free port")?;
    Ok(listener.local_addr()?.port())
}

/// How often a start-up probe asks the service: fine enough to time a start of a few tens of
/// milliseconds, coarse enough not to steal the CPU the service starts on.
const READY_POLL: Duration = Duration::from_millis(2);

/// How long a service may take to answer its probe before the benchmark gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a service is left alone after it is ready before its idle RSS is read, so that the
/// figure is the resting process, not one still finishing its first connections.
const IDLE_SETTLE: Duration = Duration::from_millis(250);

/// RFC 3339 in UTC to the second, like the API's own timestamps: `2025-01-31T09:30:00Z`.
const GENERATED_AT: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// How many log lines an error about a failed start shows.
const LOG_LINES: usize = 20;

/// What a wrk benchmark has ready before it starts anything: its checked settings, wrk, the
/// folder for the services' logs, and where the figures go.
#[derive(Debug)]
struct LoadRun {
    settings: Settings,
    wrk: PathBuf,
    /// `target/bench/`, created.
    dir: PathBuf,
    /// `--out`, else `<name>.json` in [`LoadRun::dir`].
    out: PathBuf,
}

impl LoadRun {
    /// Checks the options and finds wrk before anything is built, then creates the folder of
    /// the benchmark called `name`.
    fn prepare<D: LoadDefaults>(
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
    fn write(&self, report: &impl Serialize) -> anyhow::Result<()> {
        write_json(&self.out, report)?;
        println!("\nfigures written to {}", self.out.display());
        Ok(())
    }
}

/// The scenarios whose load saw failed requests: each is reported as it happens, and together
/// they are the run's error in the end.
#[derive(Debug, Default)]
struct Failures(Vec<String>);

impl Failures {
    /// Notes the verdict of `scenario`'s load.
    fn check(&mut self, ui: &Ui, scenario: &str, verdict: Result<(), String>) {
        if let Err(problem) = verdict {
            ui.outcome(format!("{scenario}: {problem}"));
            self.0.push(format!("{scenario}: {problem}"));
        }
    }

    /// An error when any of the `scenarios` failed: the figures describe a broken `service`, so
    /// they are not written to `out`; `logs` says where to look.
    fn verdict(
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
struct Settings {
    duration_s: u32,
    connections: u32,
    threads: u32,
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
    fn announce(&self, ui: &Ui, scenario: &str, what: &str) {
        ui.progress(format!(
            "{scenario}: {what} ({}s, {} connections)",
            self.duration_s, self.connections
        ));
    }
}

/// The measured service's start (for the API, with migrations already applied: the database is
/// cloned from a migrated template), i.e. what a restarted pod costs.
#[derive(Debug, Clone, Copy, Serialize)]
struct Startup {
    /// From spawning the process to its first `200` on its probe.
    ready_ms: f64,
    /// Resident memory once started and idle, in MiB.
    idle_rss_mb: f64,
}

/// The figures every wrk benchmark writes (`bench web` adds the page's weight).
#[derive(Debug, Serialize)]
struct Figures {
    /// RFC 3339, UTC.
    generated_at: String,
    machine: Machine,
    settings: Settings,
    startup: Startup,
    scenarios: Vec<ScenarioFigures>,
    /// The highest of the scenarios' peaks, in MiB.
    peak_rss_mb: f64,
}

impl Figures {
    /// The figures of a run on this machine, now.
    fn new(
        settings: Settings,
        startup: Startup,
        scenarios: Vec<ScenarioFigures>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            generated_at: generated_at()?,
            machine: Machine::detect(),
            settings,
            startup,
            peak_rss_mb: scenarios
                .iter()
                .map(|row| row.peak_rss_mb)
                .fold(0.0, f64::max),
            scenarios,
        })
    }

    /// Prints the figures for people: the table, the start-up line, `more` (when there is),
    /// then `targets`.
    fn print(&self, more: Option<&str>, targets: &[String]) {
        print!("\n{}", render_table(&self.scenarios));
        println!(
            "\nstart-up: ready in {:.1} ms, idle RSS {:.1} MB; peak RSS under load {:.1} MB",
            self.startup.ready_ms, self.startup.idle_rss_mb, self.peak_rss_mb
        );
        if let Some(more) = more {
            print!("\n{more}");
        }
        println!("\ntargets (reported, not enforced):");
        for line in targets {
            println!("  {line}");
        }
    }
}

/// Now, as the JSON's `generated_at`.
fn generated_at() -> anyhow::Result<String> {
    OffsetDateTime::now_utc()
        .format(GENERATED_AT)
        .context("formatting the time")
}

/// `cargo build --release` of `packages`; their binaries land in `<target>/release/`.
fn build_release(session: &Session<'_>, packages: &[&str]) -> anyhow::Result<()> {
    let ctx = session.ctx;
    ctx.ui().progress(format!(
        "building {} in release mode",
        packages.join(" and ")
    ));
    let mut cmd = Cmd::cargo().args(["build", "--release"]);
    for package in packages {
        cmd = cmd.args(["--package", package]);
    }
    cmd.current_dir(ctx.root()).run(ctx.ui())?;
    session.check_interrupt()
}

/// Throwaway PostgreSQL and Redis servers, stopped when dropped. Bind them before the service
/// processes so that they outlive those (locals drop in reverse order).
fn start_backing(session: &Session<'_>) -> anyhow::Result<(PostgresServer, RedisServer)> {
    let ui = session.ctx.ui();
    let postgres = provision(
        ui,
        "PostgreSQL",
        PostgresServer::start,
        PostgresServer::admin_url,
    );
    session.check_interrupt()?;
    let postgres = postgres?;
    let redis = provision(ui, "Redis", RedisServer::start, RedisServer::url);
    session.check_interrupt()?;
    Ok((postgres, redis?))
}

/// A fresh copy of the seeded database on `postgres`: each API instance gets its own.
fn seeded_database(
    session: &Session<'_>,
    postgres: &PostgresServer,
) -> anyhow::Result<TestDatabase> {
    session
        .runtime
        .block_on(TestDatabase::create(&postgres.admin_url(), Seed::Seeded))
        .context("creating the seeded benchmark database")
}

/// How to start one service of the stack.
#[derive(Debug, Clone, Copy)]
struct Launch<'a> {
    /// What the messages call it: "API", "dashboard".
    label: &'static str,
    binary: &'a Path,
    /// Where its stdout and stderr go.
    log: &'a Path,
    /// The port it listens on, on 127.0.0.1.
    port: u16,
    /// The variable that tells it where to listen (`API_ADDR`, `WEB_ADDR`).
    addr_var: &'static str,
    /// The path that answers `200` once it serves (`/livez`, `/healthz`).
    probe: &'static str,
    /// Its whole environment besides the address.
    env: &'a [(&'a str, &'a str)],
}

/// A running service; killed (and reaped) when dropped, whatever made the benchmark stop.
#[derive(Debug)]
struct Service {
    label: &'static str,
    child: Child,
    port: u16,
    /// Where its stdout and stderr go.
    log: PathBuf,
    /// From spawn to the first `200` on its probe.
    ready_ms: f64,
}

impl Service {
    /// Starts the binary with only the launch's environment (plus its address), so that a
    /// developer's RUST_LOG or pool settings cannot skew the figures, and waits until it serves.
    fn start(session: &mut Session<'_>, launch: &Launch<'_>) -> anyhow::Result<Self> {
        let Launch {
            label,
            binary,
            log,
            port,
            addr_var,
            probe,
            env,
        } = *launch;
        let file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let stderr = file
            .try_clone()
            .with_context(|| format!("opening {}", log.display()))?;
        let mut cmd = Cmd::new(binary)
            .env_clear()
            .env(addr_var, format!("127.0.0.1:{port}"));
        for (key, value) in env {
            cmd = cmd.env(key, value);
        }
        let started = Instant::now();
        let child = cmd.spawn(session.ctx.ui(), file, stderr)?;
        let mut service = Self {
            label,
            child,
            port,
            log: log.to_owned(),
            ready_ms: 0.0,
        };
        loop {
            if let Ok(head) = http_get(port, probe)
                && head.status == 200
            {
                service.ready_ms = started.elapsed().as_secs_f64() * 1_000.0;
                return Ok(service);
            }
            session.check_interrupt()?;
            if let Some(status) = service.exited()? {
                bail!(
                    "the {label} exited ({status}) before answering GET {probe}; the end of \
                     {}:\n{}",
                    log.display(),
                    log_tail(log, LOG_LINES)
                );
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "the {label} did not answer GET {probe} on port {port} within {}s; the end \
                     of {}:\n{}",
                    READY_TIMEOUT.as_secs(),
                    log.display(),
                    log_tail(log, LOG_LINES)
                );
            }
            thread::sleep(READY_POLL);
        }
    }

    /// Starts the release API `binary` (its output in `log`) over the database at `database_url`
    /// and the Redis at `redis_url`, taking `token` for its mutations.
    fn start_api(
        session: &mut Session<'_>,
        binary: &Path,
        log: &Path,
        (database_url, redis_url): (&str, &str),
        token: &str,
    ) -> anyhow::Result<Self> {
        Self::start(
            session,
            &Launch {
                label: "API",
                binary,
                log,
                port: free_port()?,
                addr_var: "API_ADDR",
                probe: "/livez",
                env: &[
                    ("DATABASE_URL", database_url),
                    ("REDIS_URL", redis_url),
                    ("API_TOKEN", token),
                    ("LOG_FORMAT", "json"),
                ],
            },
        )
    }

    /// Its start-up figures, its memory read once it has been left alone for [`IDLE_SETTLE`];
    /// said in a progress line that calls it `label`.
    fn settle(&self, ui: &Ui, label: &str) -> anyhow::Result<Startup> {
        thread::sleep(IDLE_SETTLE);
        let idle_rss_mb = kib_to_mib(rss_kib(self.pid())?);
        ui.progress(format!(
            "{label} ready in {:.1} ms (idle RSS {idle_rss_mb:.1} MB, log {})",
            self.ready_ms,
            self.log.display()
        ));
        Ok(Startup {
            ready_ms: round(self.ready_ms, 1),
            idle_rss_mb,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the service ended, if it did.
    fn exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .with_context(|| format!("checking on the {} process", self.label))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // Already gone (Ctrl-C reaches it too) is fine; either way it is reaped here.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bearer token nobody can guess, for the API instances of this run only.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0_u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("reading /dev/urandom for the API token")?;
    Ok(bytes.iter().fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    }))
}

/// The last `lines` lines of the log at `path`, for an error message.
fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            match &all[all.len().saturating_sub(lines)..] {
                [] => "(the log is empty)".to_owned(),
                tail => tail.join("\n"),
            }
        }
        Err(err) => format!("(could not read {}: {err})", path.display()),
    }
}

/// The status and headers of an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ResponseHead {
    status: u16,
    headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The first header called `name` (any case).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// `GET path` over a new connection, reading only the response head. Plain std, no client
/// library: the readiness poll sends hundreds of these and each must cost next to nothing.
fn http_get(port: u16, path: &str) -> io::Result<ResponseHead> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_nodelay(true)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut received = Vec::new();
    let mut chunk = [0_u8; 1024];
    loop {
        if let Some(head) = parse_response_head(&received) {
            return Ok(head);
        }
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed before a complete response head",
            ));
        }
        received.extend_from_slice(&chunk[..read]);
    }
}

/// The head of the response in `received`, once all of it (up to the blank line) is there.
fn parse_response_head(received: &[u8]) -> Option<ResponseHead> {
    let end = received
        .windows(4)
        .position(|window| window == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&received[..end]);
    let mut lines = head.split("\r\n");
    // "HTTP/1.1 200 OK"; a head without a readable status counts as "no response yet".
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Some(ResponseHead { status, headers })
}

/// A whole HTTP response, as fetched by [`http_fetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fetched {
    head: ResponseHead,
    /// The bytes of the status line and headers on the wire, blank line included.
    head_bytes: usize,
    /// The body, de-chunked when it came chunked.
    body: Vec<u8>,
}

/// `GET path` over a new connection, reading the whole response (the server closes the
/// connection after it). Like [`http_get`], plain std: a handful of requests needs no client.
fn http_fetch(port: u16, path: &str) -> anyhow::Result<Fetched> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let fetch = || -> io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        )?;
        let mut received = Vec::new();
        stream.read_to_end(&mut received)?;
        Ok(received)
    };
    let received = fetch().with_context(|| format!("GET {path} on port {port}"))?;
    parse_response(&received)
        .with_context(|| format!("GET {path} on port {port}: the response is not valid HTTP"))
}

/// A complete response read off a closed connection.
fn parse_response(received: &[u8]) -> Option<Fetched> {
    let head = parse_response_head(received)?;
    let head_bytes = received.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let raw_body = &received[head_bytes..];
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|coding| coding.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(raw_body)?
    } else {
        raw_body.to_vec()
    };
    Some(Fetched {
        head,
        head_bytes,
        body,
    })
}

/// The payload of a `Transfer-Encoding: chunked` body (sizes in hex, extensions ignored).
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_line = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size_hex = size_line.split(';').next()?.trim();
        let size = usize::from_str_radix(size_hex, 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// Resets the peak resident set size the kernel keeps for `pid` (VmHWM) to its current size,
/// so that the peak read after a scenario belongs to that scenario alone.
fn reset_peak_rss(pid: u32) -> anyhow::Result<()> {
    let path = format!("/proc/{pid}/clear_refs");
    std::fs::write(&path, "5").with_context(|| format!("resetting the peak RSS through {path}"))
}

/// The peak resident set size of `pid` since its start or the last [`reset_peak_rss`], in KiB.
fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    proc_status_kib(pid, "VmHWM")
}

/// The current resident set size of `pid`, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    proc_status_kib(pid, "VmRSS")
}

fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status_field_kib(&status, field).with_context(|| format!("{path} has no {field} line"))
}

/// A `Name:   1234 kB` field of `/proc/<pid>/status`, in KiB.
fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name != field {
            return None;
        }
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// KiB as MiB with one decimal: the unit of the memory figures (and of the "40 MB" target).
fn kib_to_mib(kib: u64) -> f64 {
    round(kib as f64 / 1024.0, 1)
}

/// `value` rounded to `decimals` places, so the JSON holds figures, not float noise.
fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10_f64.powi(decimals);
    (value * scale).round() / scale
}

/// Where the figures were taken, for comparing runs across machines.
#[derive(Debug, Clone, Serialize)]
struct Machine {
    /// CPUs this process may use (cgroup and affinity limits included).
    cpus: usize,
    /// `uname -r`.
    kernel: String,
}

impl Machine {
    fn detect() -> Self {
        Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(
                |_| "unknown".to_owned(),
                |release| release.trim().to_owned(),
            ),
        }
    }
}

/// The figures of one scenario, as they appear in the JSON and the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct ScenarioFigures {
    name: String,
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    requests: u64,
    /// Non-2xx/3xx answers plus socket errors.
    errors: u64,
    /// The measured process's peak RSS during this scenario, in MiB.
    peak_rss_mb: f64,
}

impl ScenarioFigures {
    fn new(name: &str, report: &WrkReport, peak_rss_kib: u64) -> Self {
        Self {
            name: name.to_owned(),
            requests_per_sec: round(report.requests_per_sec, 1),
            p50_ms: round(report.latency.p50, 3),
            p99_ms: round(report.latency.p99, 3),
            max_ms: round(report.latency.max, 3),
            requests: report.requests,
            errors: report.errors(),
            peak_rss_mb: kib_to_mib(peak_rss_kib),
        }
    }
}

/// The scenarios as an aligned plain-text table, one line per scenario.
fn render_table(rows: &[ScenarioFigures]) -> String {
    let header = [
        "scenario",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "requests",
        "errors",
        "peak RSS MB",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|row| {
            [
                row.name.clone(),
                format!("{:.1}", row.requests_per_sec),
                format!("{:.3}", row.p50_ms),
                format!("{:.3}", row.p99_ms),
                format!("{:.3}", row.max_ms),
                row.requests.to_string(),
                row.errors.to_string(),
                format!("{:.1}", row.peak_rss_mb),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut table = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (column, (cell, width)) in cells.iter().zip(widths).enumerate() {
            // The name is text and reads left-aligned; the figures line up on the right.
            let _ = match column {
                0 => write!(text, "{cell:<width$}"),
                _ => write!(text, "  {cell:>width$}"),
            };
        }
        table.push_str(text.trim_end());
        table.push('\n');
    };
    line(&header);
    for row in &cells {
        line(&row.each_ref().map(String::as_str));
    }
    table
}

/// Writes `value` as pretty JSON to `path`, creating its directory.
fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut json = serde_json::to_string_pretty(value).context("serialising the figures")?;
    json.push('\n');
    std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The figures of a run at `connections` connections on a made-up machine: `scenario` alone,
    /// after `startup`.
    pub(super) fn sample_figures(
        connections: u32,
        startup: Startup,
        scenario: ScenarioFigures,
    ) -> Figures {
        Figures {
            generated_at: "2025-01-01T00:00:00Z".into(),
            machine: Machine {
                cpus: 2,
                kernel: "6.1.0".into(),
            },
            settings: Settings {
                duration_s: 10,
                connections,
                threads: 2,
            },
            startup,
            peak_rss_mb: scenario.peak_rss_mb,
            scenarios: vec![scenario],
        }
    }

    /// The keys of a JSON object, sorted.
    pub(super) fn keys(value: &serde_json::Value) -> Vec<String> {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }

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
    fn a_response_head_is_read_once_complete() {
        let response = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nX-Cache: HIT\r\n\
                         content-length: 2\r\n\r\n{}";
        let head = parse_response_head(response).unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.header("x-cache"), Some("HIT"));
        assert_eq!(head.header("Content-Type"), Some("application/json"));
        assert_eq!(head.header("location"), None);
        // Not all there yet, or not HTTP: no head.
        assert_eq!(parse_response_head(&response[..30]), None);
        assert_eq!(parse_response_head(b"garbage\r\n\r\n"), None);
    }

    #[test]
    fn a_whole_response_is_read_plain_or_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        let fetched = parse_response(plain).unwrap();
        assert_eq!(fetched.head.status, 200);
        assert_eq!(fetched.head_bytes, plain.len() - 5);
        assert_eq!(fetched.body, b"hello");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                        5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap().body, b"hello, world");
        let truncated = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
        assert_eq!(parse_response(truncated), None);
    }

    #[test]
    fn memory_fields_are_read_from_proc_status() {
        let status = "Name:\tapi\nVmPeak:\t  712340 kB\nVmHWM:\t   23456 kB\nVmRSS:\t   20480 kB\n\
                      Threads:\t4\n";
        assert_eq!(status_field_kib(status, "VmHWM"), Some(23_456));
        assert_eq!(status_field_kib(status, "VmRSS"), Some(20_480));
        assert_eq!(status_field_kib(status, "Threads"), None, "not in kB");
        assert_eq!(status_field_kib(status, "VmSwap"), None);
        assert!((kib_to_mib(20_480) - 20.0).abs() < f64::EPSILON);
        assert!((kib_to_mib(23_456) - 22.9).abs() < f64::EPSILON);
    }

    #[test]
    fn our_own_memory_can_be_read_and_its_peak_reset() {
        let pid = std::process::id();
        reset_peak_rss(pid).unwrap();
        let peak = peak_rss_kib(pid).unwrap();
        let rss = rss_kib(pid).unwrap();
        assert!(peak > 0 && rss > 0);
    }

    #[test]
    fn the_table_aligns_names_left_and_figures_right() {
        let row = |name: &str, rps: f64, requests: u64| ScenarioFigures {
            name: name.into(),
            requests_per_sec: rps,
            p50_ms: 0.5,
            p99_ms: 4.25,
            max_ms: 31.0,
            requests,
            errors: 0,
            peak_rss_mb: 21.3,
        };
        let table = render_table(&[
            row("cached_list", 12_345.6, 123_456),
            row("health", 980.0, 9_800),
        ]);
        assert_eq!(
            table,
            "\
scenario       req/s  p50 ms  p99 ms  max ms  requests  errors  peak RSS MB
cached_list  12345.6   0.500   4.250  31.000    123456       0         21.3
health         980.0   0.500   4.250  31.000      9800       0         21.3
"
        );
    }

    #[test]
    fn the_json_goes_where_asked_with_its_directory_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deeper/api.json");
        write_json(&path, &Machine::detect()).unwrap();
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(written["cpus"].as_u64().unwrap() >= 1);
        assert!(!written["kernel"].as_str().unwrap().is_empty());
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

    #[test]
    fn the_generation_time_is_rfc_3339_utc_to_the_second() {
        let at = time::macros::datetime!(2025-01-31 09:30:05.123456 UTC);
        assert_eq!(at.format(GENERATED_AT).unwrap(), "2025-01-31T09:30:05Z");
        assert_eq!(generated_at().unwrap().len(), "2025-01-31T09:30:05Z".len());
    }

    #[test]
    fn tokens_are_random_hex() {
        let first = random_token().unwrap();
        assert_eq!(first.len(), 32);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(first, random_token().unwrap());
    }

    #[test]
    fn a_log_tail_shows_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
        assert_eq!(log_tail(&path, 2), "two\nthree");
        std::fs::write(&path, "").unwrap();
        assert_eq!(log_tail(&path, 2), "(the log is empty)");
        assert!(log_tail(&dir.path().join("missing"), 2).starts_with("(could not read"));
    }

    #[test]
    fn a_missing_program_points_at_setup() {
        let err = require_program("surely-no-such-load-generator").unwrap_err();
        assert_eq!(
            err.to_string(),
            "surely-no-such-load-generator is not installed (not found on PATH): \
             run `cargo xtask setup`"
        );
        assert!(require_program("sh").is_ok());
    }
}
