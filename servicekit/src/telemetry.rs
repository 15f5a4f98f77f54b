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
use tracing_subscriber::{EnvFilter, Layer, Registry, filter::Targets, fmt, prelude::*};

use crate::json_log::JsonLayer;

/// What is logged when `RUST_LOG` is unset or unreadable.
const DEFAULT_FILTER: &str = "info,sqlx=warn,fred=warn";

/// The filter `spec` (`RUST_LOG`) describes. Targets and levels alone, as it nearly always says,
/// make a [`Targets`] filter, which decides once per call site; span and field directives
/// (`[request{path=/health}]=debug`) need an [`EnvFilter`], which looks up every span on every
/// enter and exit, under a lock, to apply them.
fn filter(spec: Option<String>) -> Box<dyn Layer<Registry> + Send + Sync> {
    let spec = spec.unwrap_or_else(|| DEFAULT_FILTER.to_owned());
    if let Ok(targets) = spec.parse::<Targets>() {
        return Box::new(targets);
    }
    match EnvFilter::try_new(&spec) {
        Ok(filter) => Box::new(filter),
        Err(_) => Box::new(DEFAULT_FILTER.parse::<Targets>().unwrap_or_default()),
    }
}

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
    let registry = tracing_subscriber::registry().with(filter(std::env::var("RUST_LOG").ok()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::{Level, Metadata, callsite::Identifier, field::FieldSet, metadata::Kind};

    /// Whether the filter made from `spec` lets an event of `level` from `target` through.
    fn enabled(spec: Option<&str>, target: &'static str, level: Level) -> bool {
        struct Site;
        impl tracing::Callsite for Site {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                unreachable!("only the identity is used")
            }
        }
        static SITE: Site = Site;
        let metadata = Metadata::new(
            "event",
            target,
            level,
            None,
            None,
            None,
            FieldSet::new(&[], Identifier(&SITE)),
            Kind::EVENT,
        );
        let subscriber = Registry::default().with(filter(spec.map(str::to_owned)));
        tracing::Subscriber::enabled(&subscriber, &metadata)
    }

    #[test]
    fn the_default_is_info_with_the_chatty_clients_at_warn() {
        assert!(enabled(None, "api::routes", Level::INFO));
        assert!(!enabled(None, "api::routes", Level::DEBUG));
        assert!(!enabled(None, "sqlx::query", Level::INFO));
        assert!(enabled(None, "fred::router", Level::WARN));
    }

    #[test]
    fn targets_and_levels_filter_as_rust_log_says() {
        let spec = Some("warn,api::cache=debug");
        assert!(enabled(spec, "api::cache::session", Level::DEBUG));
        assert!(!enabled(spec, "api::routes", Level::INFO));
    }

    #[test]
    fn span_directives_are_kept_and_nonsense_falls_back_to_the_default() {
        let directives = "warn,[request{path=/health}]=debug";
        let spec = Some(directives);
        assert!(
            directives.parse::<Targets>().is_err(),
            "only EnvFilter reads spans"
        );
        assert!(enabled(spec, "api::routes", Level::WARN));
        assert!(!enabled(spec, "api::routes", Level::INFO));
        assert!(enabled(
            Some("=== not a filter"),
            "api::routes",
            Level::INFO
        ));
        assert!(!enabled(
            Some("=== not a filter"),
            "api::routes",
            Level::DEBUG
        ));
    }
}
