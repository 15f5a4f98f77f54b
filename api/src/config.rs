//! Typed configuration, read once from the environment at start.
//!
//! Every setting has a default that works on a developer machine with the stack from
//! `cargo xtask dev`, so `cargo run -p api` needs no variables at all. A value that is set but
//! malformed is an error naming the variable, never silently replaced by the default.

use std::{net::SocketAddr, time::Duration};

use servicekit::config::Env;
pub use servicekit::config::{ConfigError, Secret};

/// Everything the API reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP server listens (`API_ADDR`). Loopback by default: nothing on the LAN.
    pub addr: SocketAddr,
    /// PostgreSQL connection string (`DATABASE_URL`); it carries a password, so it never prints.
    pub database_url: Secret,
    /// Redis connection string (`REDIS_URL`).
    pub redis_url: Secret,
    /// Bearer token required by mutations (`API_TOKEN`); `None` leaves them open, for local use.
    pub api_token: Option<Secret>,
    /// Browser origins allowed by CORS (`CORS_ORIGIN`, comma-separated): the dashboard's.
    pub cors_origins: Vec<String>,
    /// Most connections the pool keeps open (`DATABASE_MAX_CONNECTIONS`).
    pub db_max_connections: u32,
    /// How long a request waits for a database connection before answering 503
    /// (`DATABASE_ACQUIRE_TIMEOUT_MS`): short, so an outage fails fast instead of piling up.
    pub db_acquire_timeout: Duration,
    /// Server-side cap on one SQL statement (`DATABASE_STATEMENT_TIMEOUT_MS`).
    pub db_statement_timeout: Duration,
    /// Budget for one Redis round trip before the request bypasses the cache (`CACHE_TIMEOUT_MS`).
    pub cache_timeout: Duration,
    /// Lifetime of a cached response (`CACHE_TTL_SECS`).
    pub cache_ttl: Duration,
    /// Prefix of every key this API writes (`CACHE_PREFIX`), so several instances or test runs can
    /// share one Redis without touching each other's keys.
    pub cache_prefix: String,
    /// Most responses each process keeps in its near cache (`CACHE_NEAR_ENTRIES`); 0 turns the
    /// near cache off, leaving Redis as the only tier.
    pub near_cache_entries: usize,
    /// Most bytes the near cache holds, bodies and keys (`CACHE_NEAR_BYTES`).
    pub near_cache_bytes: usize,
    /// Whole-request deadline (`REQUEST_TIMEOUT_MS`).
    pub request_timeout: Duration,
    /// Largest accepted request body in bytes (`MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// `json` for one JSON object per log line, anything else for human-readable lines (`LOG_FORMAT`).
    pub log_json: bool,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests can supply variables without touching the
    /// process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let api_token = env.string("API_TOKEN", "");
        let cache_prefix = env.string("CACHE_PREFIX", "wander");
        if cache_prefix.is_empty() || cache_prefix.contains(['*', '?', '[', ']', ' ']) {
            return Err(ConfigError::new(
                "CACHE_PREFIX",
                &cache_prefix,
                "use a non-empty name without spaces or glob characters",
            ));
        }
        let cors_origins: Vec<String> = env
            .string("CORS_ORIGIN", "http://127.0.0.1:3000,http://localhost:3000")
            .split(',')
            .map(|origin| origin.trim().trim_end_matches('/').to_owned())
            .filter(|origin| !origin.is_empty())
            .collect();
        for origin in &cors_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(ConfigError::new(
                    "CORS_ORIGIN",
                    origin,
                    "each origin must look like http://host:port",
                ));
            }
        }
        Ok(Self {
            addr: env.parse("API_ADDR", "127.0.0.1:8080")?,
            database_url: Secret::new(env.string(
                "DATABASE_URL",
                "postgres://wander:wander@127.0.0.1:5432/wander",
            )),
            redis_url: Secret::new(env.string("REDIS_URL", "redis://127.0.0.1:6379")),
            api_token: (!api_token.is_empty()).then_some(Secret::new(api_token)),
            cors_origins,
            db_max_connections: env.bounded("DATABASE_MAX_CONNECTIONS", 10, 1..=1000)?,
            db_acquire_timeout: env.millis("DATABASE_ACQUIRE_TIMEOUT_MS", 2_000)?,
            db_statement_timeout: env.millis("DATABASE_STATEMENT_TIMEOUT_MS", 5_000)?,
            cache_timeout: env.millis("CACHE_TIMEOUT_MS", 150)?,
            cache_ttl: Duration::from_secs(env.bounded("CACHE_TTL_SECS", 60, 1..=86_400)?),
            cache_prefix,
            near_cache_entries: env.bounded("CACHE_NEAR_ENTRIES", 1_024, 0..=1_000_000)?,
            near_cache_bytes: env.bounded(
                "CACHE_NEAR_BYTES",
                4 * 1024 * 1024,
                4 * 1024..=1024 * 1024 * 1024,
            )?,
            request_timeout: env.millis("REQUEST_TIMEOUT_MS", 10_000)?,
            max_body_bytes: env.bounded("MAX_BODY_BYTES", 16 * 1024, 256..=10 * 1024 * 1024)?,
            log_json: env.string("LOG_FORMAT", "").eq_ignore_ascii_case("json"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_need_no_environment() {
        let config = config(&[]).unwrap();
        assert_eq!(config.addr.to_string(), "127.0.0.1:8080");
        assert!(config.api_token.is_none());
        assert_eq!(config.db_acquire_timeout, Duration::from_secs(2));
        assert_eq!(
            config.cors_origins,
            ["http://127.0.0.1:3000", "http://localhost:3000"]
        );
    }

    #[test]
    fn malformed_values_name_the_variable() {
        for (name, value) in [
            ("API_ADDR", "not-an-address"),
            ("DATABASE_MAX_CONNECTIONS", "0"),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", "-5"),
            ("CACHE_TTL_SECS", "forever"),
            ("MAX_BODY_BYTES", "99999999999"),
            ("CORS_ORIGIN", "example.com"),
            ("CACHE_PREFIX", "a*"),
            ("CACHE_NEAR_ENTRIES", "-1"),
            ("CACHE_NEAR_BYTES", "1k"),
        ] {
            let err = config(&[(name, value)]).unwrap_err().to_string();
            assert!(err.starts_with(name), "{name}: {err}");
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let config = config(&[
            ("API_TOKEN", "hunter2"),
            ("DATABASE_URL", "postgres://u:pw@h/db"),
        ])
        .unwrap();
        let printed = format!("{config:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("pw@"),
            "{printed}"
        );
        assert_eq!(config.api_token.unwrap().expose(), "hunter2");
    }

    #[test]
    fn cors_origins_are_trimmed_and_split() {
        let config = config(&[("CORS_ORIGIN", " http://a:1/ , https://b ")]).unwrap();
        assert_eq!(config.cors_origins, ["http://a:1", "https://b"]);
    }
}
