//! `cargo xtask bench`: load benchmarks that write their figures to `target/bench/`.
//!
//! The group holds what every benchmark needs: running wrk and judging its report, reading a
//! process's memory from `/proc`, a bare HTTP probe, the machine description and the table. Each
//! benchmark (`api.rs`, later `web` and `dev`) decides what to start and what to load.
//! Figures are measured and reported, never asserted: a slow machine must not fail a build.

pub(crate) mod api;
mod wrk;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde::Serialize;
use tokio::runtime::Runtime;

use crate::Context;
use crate::cmd::Cmd;
use crate::interrupt::{EXIT_INTERRUPTED, Interrupt};

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
}

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
    };
    // Whatever failed after Ctrl-C failed because of it (the servers got it too); everything
    // the benchmark started has been dropped, so stopped, by now.
    if session.interrupt.is_requested() {
        eprintln!("[xtask] interrupted");
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
            .block_on(cmd.output_interruptible(self.ctx, &mut self.interrupt))?;
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
