//! Logging: human-readable lines on a terminal, one JSON object per line with `LOG_FORMAT=json`
//! (for log shippers in the cluster). `RUST_LOG` filters as usual.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global subscriber; later calls (as in tests) are no-ops.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,fred=warn,tower_http=info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init()
    } else {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        registry
            .with(fmt::layer().with_target(false).with_ansi(colour))
            .try_init()
    };
    // Already installed: keep the first one.
    drop(result);
}
