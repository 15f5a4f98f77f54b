//! What the Wander services (`api`, `web`) share as processes, so each fact has one place.
//!
//! # Layout
//! - [`config`]: typed reading of environment variables, the error that names a bad one, and
//!   [`config::Secret`] for values that must never be printed.
//! - [`telemetry`]: logging, human-readable on a terminal and JSON with `LOG_FORMAT=json`,
//!   whose lines [`json_log`] writes.
//! - [`shutdown`]: the SIGTERM / Ctrl-C future that starts a graceful shutdown.
//! - [`http`]: the request-id header and response compression.
//! - [`access_log`]: the `request` span around each request and its one access line.
//! - [`lifecycle`]: the whole of a service's `main`, from its configuration to its exit code.

pub mod access_log;
pub mod config;
pub mod http;
pub mod json_log;
pub mod lifecycle;
pub mod shutdown;
pub mod telemetry;

pub use lifecycle::run;
pub use shutdown::shutdown_signal;
