//! Typed configuration, read once from the environment at start.
//!
//! Every setting has a default that works on a developer machine next to an API on its default
//! address, so `cargo run -p web` needs no variables. A value that is set but malformed is an error
//! naming the variable, never silently replaced by the default.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

pub use servicekit::config::{ConfigError, Secret};

/// Everything the dashboard reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP server listens (`WEB_ADDR`). Loopback by default: nothing on the LAN.
    pub addr: SocketAddr,
    /// Base URL of the API (`API_URL`), called server-side over plain HTTP; no trailing slash.
    pub api_url: String,
    /// Bearer token sent with mutations (`API_TOKEN`); `None` when the API runs without one.
    pub api_token: Option<Secret>,
    /// Budget for one API call, connect included (`API_TIMEOUT_MS`): short, so a slow API costs
    /// a page that much at most before it renders with a notice.
    pub api_timeout: Duration,
    /// The browser origins allowed to submit the dashboard's forms (`WEB_ORIGIN`,
    /// comma-separated). `None` derives them from the bound address (see [`Config::origins_for`]).
    pub origins: Option<Vec<String>>,
    /// `json` for one JSON object per log line, anything else for human-readable lines
    /// (`LOG_FORMAT`).
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
        let get = |name: &str, default: &str| lookup(name).unwrap_or_else(|| default.to_owned());

        let raw_addr = get("WEB_ADDR", "127.0.0.1:3000");
        let addr = raw_addr
            .trim()
            .parse()
            .map_err(|err: std::net::AddrParseError| {
                ConfigError::new("WEB_ADDR", &raw_addr, err.to_string())
            })?;

        let raw_api_url = get("API_URL", "http://127.0.0.1:8080");
        let api_url = parse_api_url(&raw_api_url)?;

        let raw_timeout = get("API_TIMEOUT_MS", "2000");
        let api_timeout = match raw_timeout.trim().parse::<u64>() {
            Ok(ms) if (1..=60_000).contains(&ms) => Duration::from_millis(ms),
            _ => {
                return Err(ConfigError::new(
                    "API_TIMEOUT_MS",
                    &raw_timeout,
                    "must be a number of milliseconds between 1 and 60000",
                ));
            }
        };

        let token = get("API_TOKEN", "");
        let origins = match lookup("WEB_ORIGIN") {
            Some(raw) if !raw.trim().is_empty() => Some(parse_origins(&raw)?),
            _ => None,
        };

        Ok(Self {
            addr,
            api_url,
            api_token: (!token.is_empty()).then_some(Secret::new(token)),
            api_timeout,
            origins,
            log_json: get("LOG_FORMAT", "").eq_ignore_ascii_case("json"),
        })
    }

    /// The origins trusted to submit forms once the server is bound to `bound`: the configured
    /// ones, or else the bound address itself, plus `localhost` when it is a loopback or
    /// wildcard address (what a browser on this machine shows in its address bar).
    pub fn origins_for(&self, bound: SocketAddr) -> Vec<String> {
        if let Some(origins) = &self.origins {
            return origins.clone();
        }
        let port = bound.port();
        let mut origins = Vec::new();
        match bound.ip() {
            ip if ip.is_unspecified() || ip.is_loopback() => {
                let loopback = match ip {
                    IpAddr::V6(_) if !ip.is_unspecified() => format!("http://[::1]:{port}"),
                    _ => format!("http://127.0.0.1:{port}"),
                };
                origins.push(loopback);
                origins.push(format!("http://localhost:{port}"));
            }
            IpAddr::V4(ip) => origins.push(format!("http://{ip}:{port}")),
            IpAddr::V6(ip) => origins.push(format!("http://[{ip}]:{port}")),
        }
        origins
    }
}

/// Accepts `http://host[:port][/prefix]`; `https` is refused because no TLS stack is compiled
/// in (the API is called inside the cluster, see DESIGN decision 9).
fn parse_api_url(raw: &str) -> Result<String, ConfigError> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url = reqwest::Url::parse(trimmed)
        .map_err(|err| ConfigError::new("API_URL", raw, err.to_string()))?;
    if url.scheme() != "http" {
        return Err(ConfigError::new(
            "API_URL",
            raw,
            "use an http:// URL; the dashboard calls the API over plain HTTP inside the cluster",
        ));
    }
    if url.host_str().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            "API_URL",
            raw,
            "use the form http://host:port, without a query or fragment",
        ));
    }
    Ok(trimmed.to_owned())
}

fn parse_origins(raw: &str) -> Result<Vec<String>, ConfigError> {
    let origins: Vec<String> = raw
        .split(',')
        .map(|origin| origin.trim().trim_end_matches('/').to_owned())
        .filter(|origin| !origin.is_empty())
        .collect();
    for origin in &origins {
        let valid = reqwest::Url::parse(origin).is_ok_and(|url| {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some()
                && url.path() == "/"
                && url.query().is_none()
        });
        if !valid {
            return Err(ConfigError::new(
                "WEB_ORIGIN",
                origin,
                "each origin must look like http://host:port",
            ));
        }
    }
    Ok(origins)
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
        assert_eq!(config.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(config.api_url, "http://127.0.0.1:8080");
        assert_eq!(config.api_timeout, Duration::from_secs(2));
        assert!(config.api_token.is_none());
        assert!(!config.log_json);
        assert_eq!(
            config.origins_for(config.addr),
            ["http://127.0.0.1:3000", "http://localhost:3000"]
        );
    }

    #[test]
    fn malformed_values_name_the_variable() {
        for (name, value) in [
            ("WEB_ADDR", "localhost"),
            ("API_URL", "not a url"),
            ("API_URL", "https://api.example"),
            ("API_URL", "http://api:8080/?x=1"),
            ("API_TIMEOUT_MS", "0"),
            ("API_TIMEOUT_MS", "soon"),
            ("WEB_ORIGIN", "example.com"),
            ("WEB_ORIGIN", "http://a:1/path"),
        ] {
            let err = config(&[(name, value)]).unwrap_err().to_string();
            assert!(err.starts_with(name), "{name}: {err}");
        }
    }

    #[test]
    fn origins_come_from_the_variable_or_the_bound_address() {
        let explicit = config(&[("WEB_ORIGIN", " http://a:1/ , https://b ")]).unwrap();
        assert_eq!(
            explicit.origins_for("127.0.0.1:3000".parse().unwrap()),
            ["http://a:1", "https://b"]
        );
        let derived = config(&[]).unwrap();
        assert_eq!(
            derived.origins_for("0.0.0.0:3000".parse().unwrap()),
            ["http://127.0.0.1:3000", "http://localhost:3000"]
        );
        assert_eq!(
            derived.origins_for("10.1.2.3:8000".parse().unwrap()),
            ["http://10.1.2.3:8000"]
        );
    }

    #[test]
    fn api_url_loses_its_trailing_slash_and_the_token_does_not_print() {
        let config = config(&[("API_URL", "http://api:8080/"), ("API_TOKEN", "hunter2")]).unwrap();
        assert_eq!(config.api_url, "http://api:8080");
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(config.api_token.unwrap().expose(), "hunter2");
    }
}
