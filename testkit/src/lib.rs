//! Shared test infrastructure: throwaway PostgreSQL and Redis servers, a fresh database per test.
//!
//! `cargo xtask test` starts one [`PostgresServer`] and one [`RedisServer`] for the whole run and
//! hands their addresses to every test process through [`PG_URL_ENV`] and [`REDIS_URL_ENV`]. A
//! test then asks for its own database with [`TestDatabase::create`], cloned from a migrated (and
//! optionally seeded) template, so tests never see each other's rows. Fault tests that need to
//! stop and restart a server start a private one of their own with the same types.
//!
//! Servers are held as values: dropping one stops it at once and deletes its files. Keep them in
//! locals (or fields of a local), never in a `static`, which Rust never drops.
//!
//! Browser tests start a [`Chromedriver`] of their own and open sessions of headless Chromium
//! through it with [`headless_chromium_capabilities`].
//!
//! # Layout
//! - `postgres.rs`: [`PostgresServer`], initdb plus a `postgres` child process, found on the host.
//! - `redis.rs`: [`RedisServer`], a `redis-server` child process without persistence.
//! - `database.rs`: [`TestDatabase`], templates keyed by a hash of the migrations and the seed.
//! - `chromedriver.rs`: [`Chromedriver`], the WebDriver server of Debian's Chromium, and the
//!   capabilities of a headless session that makes no connections of its own.
//! - `process.rs`: free ports, readiness polling, stopping children and killing process trees,
//!   shared by the servers.
//! - `axe.rs`: [`axe_core_source`], the accessibility engine the browser test runs in pages.
//! - `encoding.rs`: [`decode_body`], a compressed response's body as the server meant it.

mod axe;
mod chromedriver;
mod database;
mod encoding;
mod postgres;
mod process;
mod redis;

pub use axe::{AXE_CORE_ENV, axe_core_source};
pub use encoding::decode_body;

pub use chromedriver::{
    CHROME_BIN_ENV, Chromedriver, chromium_binary, headless_chromium_capabilities,
};
pub use database::{Seed, TestDatabase, migrator, reset_sql, seed_sql};
pub use postgres::PostgresServer;
pub use redis::RedisServer;

/// Names the variable holding the admin URL of the run's shared PostgreSQL server, so that the
/// xtask that sets it and the tests that read it agree on one spelling.
pub const PG_URL_ENV: &str = "WANDER_TEST_PG_URL";

/// Names the variable holding the URL of the run's shared Redis server.
pub const REDIS_URL_ENV: &str = "WANDER_TEST_REDIS_URL";

/// The admin URL of the shared PostgreSQL server that `cargo xtask test` started for this run.
///
/// Panics with a message naming the command to use when the variable is missing: a test run
/// through plain `cargo test` has no server to talk to, and saying so beats a connection error.
pub fn pg_admin_url() -> String {
    required_env(PG_URL_ENV)
}

/// The URL of the shared Redis server that `cargo xtask test` started for this run.
///
/// Panics like [`pg_admin_url`] when the variable is missing.
pub fn redis_url() -> String {
    required_env(REDIS_URL_ENV)
}

fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!("{name} is not set: run the tests with `cargo xtask test`"),
    }
}

#[cfg(test)]
mod tests {
    use super::required_env;

    #[test]
    #[should_panic(
        expected = "WANDER_TEST_NEVER_SET is not set: run the tests with `cargo xtask test`"
    )]
    fn a_missing_url_panics_with_the_command_to_run() {
        required_env("WANDER_TEST_NEVER_SET");
    }
}
