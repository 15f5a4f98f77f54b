//! Cache-aside in Redis for the GET endpoints, built to be optional: every Redis call has a short
//! deadline and fails fast while disconnected, so a slow or absent Redis costs a request almost
//! nothing and the API answers from PostgreSQL (`X-Cache: BYPASS`).
//!
//! Entries live under `{prefix}:e:{generation}:{resource}`. A write bumps the generation
//! (`INCR {prefix}:gen`) instead of deleting keys, which closes the classic cache-aside race: a
//! reader that loaded stale rows before the write stores them under the old generation, where no
//! one looks any more, and they expire with their TTL. When the bump itself fails (Redis down),
//! the cache is marked stale and is not read again until a bump succeeds, so nothing written
//! before the outage can be served after it.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use axum::body::Bytes;
use fred::{
    prelude::{
        Builder, Client, ClientLike, Config as RedisConfig, Expiration, KeysInterface, Options,
        ReconnectPolicy, Value,
    },
    types::{ClusterHash, CustomCommand, Key, scripts::Script},
};

use crate::config::Config;

/// Reads the current generation (`KEYS[1]`, absent means 0) and the entry of `ARGV[2]` under it
/// (`ARGV[1]` is the entry prefix); returns both so a miss knows which key to fill.
const LOOKUP_LUA: &str = r"
local generation = redis.call('GET', KEYS[1]) or '0'
return {generation, redis.call('GET', ARGV[1] .. generation .. ':' .. ARGV[2])}
";

/// The script's SHA-1, which `EVALSHA` names it by.
static LOOKUP_SHA1: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| Script::from_lua(LOOKUP_LUA).sha1().to_string());

/// How a response relates to the cache; sent to clients as `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from Redis.
    Hit,
    /// Loaded from PostgreSQL and stored for the next request.
    Miss,
    /// Redis was unavailable; loaded from PostgreSQL and not stored.
    Bypass,
}

impl CacheStatus {
    /// The `X-Cache` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Bypass => "BYPASS",
        }
    }
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// A stored response body.
    Hit(Bytes),
    /// Nothing stored; store the fresh body under this key.
    Miss(Key),
    /// Redis is unavailable; do not try to store.
    Bypass,
}

/// The Redis-backed response cache.
#[derive(Debug)]
pub struct Cache {
    client: Client,
    /// Per-command options: a deadline and fail-fast while disconnected, no retries.
    options: Options,
    prefix: String,
    /// `{prefix}:e:`, what every entry key starts with.
    entry_prefix: String,
    ttl: Duration,
    /// Set when a write could not bump the generation; cleared by the next successful bump.
    stale: AtomicBool,
}

/// The cache failed; callers fall back or report it, never crash.
pub type CacheError = fred::error::Error;

impl Cache {
    /// Creates the client and starts connecting in the background. Never blocks on Redis: the
    /// API starts and serves without it, and the client keeps reconnecting until it is back.
    pub fn connect(config: &Config) -> Result<Self, CacheError> {
        let mut redis_config = RedisConfig::from_url(config.redis_url.expose())?;
        // Keep retrying the first connection too, instead of failing start-up.
        redis_config.fail_fast = false;
        let connect_timeout = config.cache_timeout.max(Duration::from_millis(500));
        let client = Builder::from_config(redis_config)
            .with_connection_config(|c| {
                c.connection_timeout = connect_timeout;
                c.internal_command_timeout = connect_timeout;
                c.max_command_attempts = 1;
                c.tcp.nodelay = Some(true);
            })
            .with_performance_config(|p| p.default_command_timeout = config.cache_timeout)
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .build()?;
        client.connect();
        Ok(Self {
            client,
            options: Options {
                fail_fast: true,
                timeout: Some(config.cache_timeout),
                max_attempts: Some(1),
                ..Options::default()
            },
            prefix: config.cache_prefix.clone(),
            entry_prefix: format!("{}:e:", config.cache_prefix),
            ttl: config.cache_ttl,
            stale: AtomicBool::new(false),
        })
    }

    fn generation_key(&self) -> String {
        format!("{}:gen", self.prefix)
    }

    /// Looks up `resource` (a normalised description such as `deployments?status=failed`) in one
    /// round trip: the script reads the generation and the entry of that generation together.
    pub async fn lookup(&self, resource: &str) -> Lookup {
        // Known to be disconnected: do not even queue a command.
        if !self.client.is_connected() {
            return Lookup::Bypass;
        }
        if self.stale.load(Ordering::Acquire) && self.invalidate().await.is_err() {
            return Lookup::Bypass;
        }
        // EVALSHA goes through `custom`: fred's `WithOptions` does not implement its Lua
        // interface, which would silently drop the deadline and fail-fast options.
        let redis = self.client.with_options(&self.options);
        let evalsha = |sha: String| {
            let args: Vec<Value> = vec![
                sha.into(),
                1.into(),
                self.generation_key().into(),
                self.entry_prefix.clone().into(),
                resource.into(),
            ];
            redis.custom::<(String, Option<Bytes>), _>(
                CustomCommand::new_static("EVALSHA", ClusterHash::FirstKey, false),
                args,
            )
        };
        let mut reply = evalsha(LOOKUP_SHA1.clone()).await;
        if matches!(&reply, Err(err) if err.details().starts_with("NOSCRIPT")) {
            // First use on this Redis (or after a restart): load the script, then retry once.
            let load = redis
                .custom::<String, _>(
                    CustomCommand::new_static("SCRIPT", ClusterHash::Random, false),
                    vec!["LOAD", LOOKUP_LUA],
                )
                .await;
            reply = match load {
                Ok(sha) => evalsha(sha).await,
                Err(err) => Err(err),
            };
        }
        match reply {
            Ok((_, Some(body))) => Lookup::Hit(body),
            Ok((generation, None)) => Lookup::Miss(Key::from(format!(
                "{}{generation}:{resource}",
                self.entry_prefix
            ))),
            Err(err) => bypass(&err),
        }
    }

    /// Stores a freshly loaded body under the key a lookup returned. Failures only cost a future
    /// hit, so they are logged and swallowed.
    pub async fn store(&self, key: Key, body: Bytes) {
        let expire = Expiration::PX(self.ttl.as_millis() as i64);
        let result: Result<(), _> = self
            .client
            .with_options(&self.options)
            .set(key, body, Some(expire), None, false)
            .await;
        if let Err(err) = result {
            tracing::warn!(error = %err, "could not store a cache entry");
        }
    }

    /// Makes every cached entry unreachable; called after each write. When Redis cannot be told,
    /// the cache stays out of use until it can.
    pub async fn invalidate(&self) -> Result<(), CacheError> {
        let result: Result<u64, _> = self
            .client
            .with_options(&self.options)
            .incr(self.generation_key())
            .await;
        match result {
            Ok(_) => {
                self.stale.store(false, Ordering::Release);
                Ok(())
            }
            Err(err) => {
                if !self.stale.swap(true, Ordering::AcqRel) {
                    tracing::warn!(error = %err, "could not invalidate the cache; bypassing it until Redis answers");
                }
                Err(err)
            }
        }
    }

    /// Deletes every entry of this API's cache and returns how many there were.
    pub async fn clear(&self) -> Result<u64, CacheError> {
        self.invalidate().await?;
        let redis = self.client.with_options(&self.options);
        let pattern = format!("{}:e:*", self.prefix);
        let mut cursor = "0".to_owned();
        let mut deleted = 0;
        loop {
            let (next, keys): (String, Vec<Key>) = redis
                .scan_page(cursor, pattern.as_str(), Some(500), None)
                .await?;
            if !keys.is_empty() {
                deleted += redis.unlink::<u64, _>(keys).await?;
            }
            if next == "0" {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    /// Round-trip time of a `PING`, for the health check.
    pub async fn ping(&self) -> Result<Duration, CacheError> {
        let started = Instant::now();
        let _: String = self.client.with_options(&self.options).ping(None).await?;
        Ok(started.elapsed())
    }

    /// Closes the connection at shutdown.
    pub async fn close(&self) {
        let _ = self.client.quit().await;
    }
}

fn bypass(err: &CacheError) -> Lookup {
    tracing::debug!(error = %err, "cache unavailable, bypassing");
    Lookup::Bypass
}
