//! Starting what a benchmark measures: the release build, throwaway PostgreSQL and Redis with a
//! seeded database, and the service processes themselves, timed until they answer and stopped
//! when dropped.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use testkit::{PostgresServer, RedisServer, Seed, TestDatabase};

use super::Session;
use super::host::free_port;
use super::http::http_get;
use super::memory::{kib_to_mib, rss_kib};
use super::output::round;
use super::report::Startup;
use crate::cmd::Cmd;
use crate::test::provision;
use crate::ui::Ui;

/// How often a start-up probe asks the service: fine enough to time a start of a few tens of
/// milliseconds, coarse enough not to steal the CPU the service starts on.
const READY_POLL: Duration = Duration::from_millis(2);

/// How long a service may take to answer its probe before the benchmark gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a service is left alone after it is ready before its idle RSS is read, so that the
/// figure is the resting process, not one still finishing its first connections.
const IDLE_SETTLE: Duration = Duration::from_millis(250);

/// How many log lines an error about a failed start shows.
const LOG_LINES: usize = 20;

/// `cargo build --release` of `packages`, and of `examples` of theirs; the binaries land in
/// `<target>/release/`, the examples in `<target>/release/examples/`.
pub(super) fn build_release(
    session: &Session<'_>,
    packages: &[&str],
    examples: &[&str],
) -> anyhow::Result<()> {
    let ctx = session.ctx;
    ctx.ui().progress(format!(
        "building {} in release mode",
        packages.join(" and ")
    ));
    let mut cmd = Cmd::cargo().args(["build", "--release"]);
    for package in packages {
        cmd = cmd.args(["--package", package]);
    }
    if !examples.is_empty() {
        // Naming an example builds only the targets named, so the binaries are named too.
        cmd = cmd.arg("--bins");
        for example in examples {
            cmd = cmd.args(["--example", example]);
        }
    }
    cmd.current_dir(ctx.root()).run(ctx.ui())?;
    session.check_interrupt()
}

/// Throwaway PostgreSQL and Redis servers, stopped when dropped. Bind them before the service
/// processes so that they outlive those (locals drop in reverse order).
pub(super) fn start_backing(
    session: &Session<'_>,
) -> anyhow::Result<(PostgresServer, RedisServer)> {
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
pub(super) fn seeded_database(
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
pub(super) struct Launch<'a> {
    /// What the messages call it: "API", "dashboard".
    pub(super) label: &'static str,
    pub(super) binary: &'a Path,
    /// Where its stdout and stderr go.
    pub(super) log: &'a Path,
    /// The port it listens on, on 127.0.0.1.
    pub(super) port: u16,
    /// The variable that tells it where to listen (`API_ADDR`, `WEB_ADDR`).
    pub(super) addr_var: &'static str,
    /// The path that answers `200` once it serves (`/livez`, `/healthz`).
    pub(super) probe: &'static str,
    /// Its whole environment besides the address.
    pub(super) env: &'a [(&'a str, &'a str)],
}

/// A running service; killed (and reaped) when dropped, whatever made the benchmark stop.
#[derive(Debug)]
pub(super) struct Service {
    label: &'static str,
    child: Child,
    pub(super) port: u16,
    /// Where its stdout and stderr go.
    pub(super) log: PathBuf,
    /// From spawn to the first `200` on its probe.
    pub(super) ready_ms: f64,
}

impl Service {
    /// Starts the binary with only the launch's environment (plus its address), so that a
    /// developer's RUST_LOG or pool settings cannot skew the figures, and waits until it serves.
    pub(super) fn start(session: &mut Session<'_>, launch: &Launch<'_>) -> anyhow::Result<Self> {
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
    pub(super) fn start_api(
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
    pub(super) fn settle(&self, ui: &Ui, label: &str) -> anyhow::Result<Startup> {
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

    /// Its process id, for reading its memory.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the service ended, if it did.
    pub(super) fn exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
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
pub(super) fn random_token() -> anyhow::Result<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
