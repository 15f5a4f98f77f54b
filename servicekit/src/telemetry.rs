//! Logging: human-readable lines on a terminal, one JSON object per line with `LOG_FORMAT=json`
//! (for log shippers in the cluster). `RUST_LOG` filters as usual.
//!
//! Lines are written by a background thread, so a request never waits on stdout (a slow terminal
//! or a container log pipe); under extreme overload lines are dropped rather than requests slowed.
//! The thread writes whatever lines have queued up with one system call, then flushes as soon as
//! none is waiting: under load that is one `write` for many requests instead of one each (stdout
//! alone is line-buffered), and an idle service's lines still appear at once.

use std::io::IsTerminal;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::json_log::JsonLayer;

/// How many bytes of log lines one write to stdout carries at most.
const STDOUT_BUFFER: usize = 64 * 1024;

/// Keeps the log writer alive; dropping it at exit flushes what is still buffered.
#[must_use = "logs are lost unless the guard lives until the process exits"]
#[derive(Debug)]
pub struct LogGuard(#[allow(dead_code)] WorkerGuard);

/// Installs the global subscriber writing to stdout. Later calls (as in tests) leave the first
/// subscriber in place.
pub fn init(json: bool) -> LogGuard {
    let stdout = std::io::BufWriter::with_capacity(STDOUT_BUFFER, std::io::stdout());
    let (writer, guard) = tracing_appender::non_blocking(stdout);
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,fred=warn,tower_http=info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        // The request span alone carries everything on each line, as `span`.
        registry.with(JsonLayer::new(writer)).try_init()
    } else {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        registry
            .with(
                fmt::layer()
                    .with_target(false)
                    .with_ansi(colour)
                    .with_writer(writer),
            )
            .try_init()
    };
    // Already installed: keep the first one.
    drop(result);
    LogGuard(guard)
}
