//! Cache-aside for the GET endpoints in two tiers: a [near cache](near) in this process in front
//! of Redis. Built to be optional: every Redis call has a short deadline and fails fast while
//! disconnected, so a slow or absent Redis costs a request almost nothing and the API answers
//! from PostgreSQL (`X-Cache: BYPASS`).
//!
//! Entries live under `{prefix}:e:{generation}:{resource}`. A write bumps the generation
//! (`INCR {prefix}:gen`) instead of deleting keys, which closes the classic cache-aside race: a
//! reader that loaded stale rows before the write stores them under the old generation, where no
//! one looks any more, and they expire with their TTL. The same bump reaches every API process
//! as an invalidation push and empties its near cache; the [session] decides when either tier
//! may be used at all, and is what keeps a lost push from ever serving an old answer.

mod near;
mod script;
mod session;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::body::Bytes;
use fred::{
    prelude::{
        Builder, Client, ClientLike, Config as RedisConfig, Expiration, KeysInterface, Options,
        ReconnectPolicy, Value,
    },
    types::{Key, RespVersion},
};
use tokio::task::JoinHandle;

use self::{
    near::NearCache,
    script::{LuaScript, sha1_of},
    session::{Loss, Session, Tracking},
};
pub use self::{
    near::Usage,
    session::{HEARTBEAT, LEASE},
};
use crate::config::Config;

/// Reads the current generation (`KEYS[1]`, absent means 0) and the entry of `ARGV[2]` under it
/// (`ARGV[1]` is the entry prefix), with the entry's remaining time to live in milliseconds:
/// `{generation}` on a miss, `{generation, body, pttl}` on a hit.
const LOOKUP_LUA: &str = r"
local generation = redis.call('GET', KEYS[1]) or '0'
local key = ARGV[1] .. generation .. ':' .. ARGV[2]
local body = redis.call('GET', key)
if not body then return {generation} end
return {generation, body, redis.call('PTTL', key)}
";

static LOOKUP: LuaScript = LuaScript::new(LOOKUP_LUA, || sha1_of(LOOKUP_LUA));

/// How a response relates to the cache; sent to clients as `X-Cache` and `Cache-Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from this process's near cache.
    NearHit,
    /// Served from Redis.
    RedisHit,
    /// Loaded from PostgreSQL and stored for the next request.
    Miss,
    /// The cache was unavailable; loaded from PostgreSQL and not stored.
    Bypass,
}

impl CacheStatus {
    /// The `X-Cache` header value: both tiers' hits are `HIT`.
    pub fn x_cache(self) -> &'static str {
        match self {
            Self::NearHit | Self::RedisHit => "HIT",
            Self::Miss => "MISS",
            Self::Bypass => "BYPASS",
        }
    }

    /// The `Cache-Status` header value (RFC 9211): one member per tier that saw the request,
    /// Redis (`redis`) first as the one nearer the origin, then this process (`api`).
    pub fn cache_status(self) -> &'static str {
        match self {
            Self::NearHit => "api; hit",
            Self::RedisHit => "redis; hit, api; fwd=miss",
            Self::Miss => "redis; fwd=miss, api; fwd=miss",
            Self::Bypass => "redis; fwd=bypass, api; fwd=bypass",
        }
    }
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// A stored response body, and which tier held it.
    Hit(Bytes, CacheStatus),
    /// Nothing stored; [`store`](Cache::store) the fresh body with this.
    Miss(Fill),
    /// The cache is unavailable; do not try to store.
    Bypass,
}

/// Where a missed lookup's body goes: the Redis key of the generation the lookup saw, and the
/// near cache's epoch from before the lookup.
#[derive(Debug)]
pub struct Fill {
    key: Key,
    epoch: u64,
}

/// The two-tier response cache.
#[derive(Debug)]
pub struct Cache {
    client: Client,
    /// Per-command options: a deadline and fail-fast while disconnected, no retries.
    options: Options,
    prefix: String,
    /// The session's keys and this replica's name, which writes need for their fence.
    tracking: Tracking,
    /// `{prefix}:e:`, what every entry key starts with.
    entry_prefix: String,
    ttl: Duration,
    session: Arc<Session>,
    tasks: [JoinHandle<()>; 2],
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
        // Invalidation pushes share the connection with replies only in RESP3.
        redis_config.version = RespVersion::RESP3;
        let connect_timeout = config.cache_timeout.max(Duration::from_millis(500));
        let min_reconnect_delay = u32::try_from(LEASE.as_millis()).unwrap_or(u32::MAX);
        let client = Builder::from_config(redis_config)
            .with_connection_config(|c| {
                c.connection_timeout = connect_timeout;
                c.internal_command_timeout = connect_timeout;
                c.max_command_attempts = 1;
                c.tcp.nodelay = Some(true);
            })
            .with_performance_config(|p| p.default_command_timeout = config.cache_timeout)
            // Never sooner than a lease: by the time a new connection can answer, the lease
            // confirmed on the old one has run out, whether or not its loss was noticed.
            .set_policy(ReconnectPolicy::new_exponential(
                0,
                min_reconnect_delay,
                2_000,
                2,
            ))
            .build()?;
        let session = Arc::new(Session::new(NearCache::new(
            config.near_cache_entries,
            config.near_cache_bytes,
        )));
        let tracking = Tracking::new(client.clone(), &config.cache_prefix);
        let tasks = session::spawn(tracking.clone(), Arc::clone(&session));
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
            tracking,
            entry_prefix: format!("{}:e:", config.cache_prefix),
            ttl: config.cache_ttl,
            session,
            tasks,
        })
    }

    /// Looks up `resource` (a normalised description such as `deployments?status=failed`): in
    /// the near cache, then in Redis in one round trip (a script reads the generation and the
    /// entry of that generation together). A Redis hit is kept near for the entry's remaining
    /// lifetime.
    pub async fn lookup(&self, resource: &str) -> Lookup {
        let now = Instant::now();
        if !self.session.usable(now) {
            return Lookup::Bypass;
        }
        if let Some(body) = self.session.near.get(resource, now) {
            return Lookup::Hit(body, CacheStatus::NearHit);
        }
        let epoch = self.session.near.epoch();
        let reply: Result<Vec<Value>, _> = LOOKUP
            .run(
                &self.client.with_options(&self.options),
                vec![self.tracking.generation_key.as_str().into()],
                vec![self.entry_prefix.as_str().into(), resource.into()],
            )
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(err) => return self.bypass(&err),
        };
        let mut fields = reply.into_iter();
        let generation = fields.next().and_then(|g| g.as_string());
        match (generation, fields.next(), fields.next()) {
            (Some(generation), None, None) => Lookup::Miss(Fill {
                key: Key::from(format!("{}{generation}:{resource}", self.entry_prefix)),
                epoch,
            }),
            (Some(_), Some(body), Some(pttl)) => {
                let Some(body) = body.as_bytes().map(Bytes::copy_from_slice) else {
                    return Lookup::Bypass;
                };
                // -1 (no expiry) cannot be one of ours; keep it for the full TTL then.
                let ttl = pttl
                    .as_i64()
                    .and_then(|ms| u64::try_from(ms).ok())
                    .map_or(self.ttl, Duration::from_millis);
                self.session.near.insert(resource, epoch, body.clone(), ttl);
                Lookup::Hit(body, CacheStatus::RedisHit)
            }
            _ => {
                tracing::warn!("the cache lookup script answered in an unexpected shape");
                Lookup::Bypass
            }
        }
    }

    /// Stores a freshly loaded body where a missed lookup said, in Redis and then near.
    /// Failures only cost a future hit, so they are logged and swallowed.
    pub async fn store(&self, resource: &str, fill: Fill, body: Bytes) {
        let expire = Expiration::PX(i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX));
        let result: Result<(), _> = self
            .client
            .with_options(&self.options)
            .set(fill.key, body.clone(), Some(expire), None, false)
            .await;
        match result {
            Ok(()) => {
                self.session
                    .near
                    .insert(resource, fill.epoch, body, self.ttl);
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not store a cache entry");
                self.session.lose(Loss::CommandFailed);
            }
        }
    }

    /// Makes every cached entry unreachable, in every API process; called after each write,
    /// and returns once no replica can serve what the write changed (see the
    /// [session](session) for how). When Redis cannot be told, returns only once the other
    /// replicas' leases have run out, and the cache stays out of use here until a bump succeeds.
    pub async fn invalidate(&self) -> Result<(), CacheError> {
        let ticket = self.session.begin();
        let result: Result<u64, _> = self
            .client
            .with_options(&self.options)
            .incr(self.tracking.generation_key.as_str())
            .await;
        match result {
            Ok(generation) => {
                let answered = Instant::now();
                // Lookups sent from now on see the new generation; fills that began before
                // are dropped. The push will do this again.
                self.session.near.invalidate();
                self.session.bumped(ticket);
                session::fence(&self.tracking, generation, answered).await;
                Ok(())
            }
            Err(err) => {
                self.session.lose(Loss::CommandFailed);
                tokio::time::sleep_until((ticket.sent() + LEASE).into()).await;
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

    /// Round-trip time of a `PING`, for the health check; an error while the cache is out of
    /// use, even if Redis answers, because requests bypass it then.
    pub async fn ping(&self) -> Result<Duration, CacheError> {
        let started = Instant::now();
        let _: String = self.client.with_options(&self.options).ping(None).await?;
        if !self.session.usable(Instant::now()) {
            return Err(CacheError::new(
                fred::error::ErrorKind::Unknown,
                "Redis answers, but its invalidations are not confirmed yet",
            ));
        }
        Ok(started.elapsed())
    }

    /// How full the near cache is.
    pub fn near_usage(&self) -> Usage {
        self.session.near.usage()
    }

    /// Closes the connection at shutdown (the session's tasks stop when the cache is dropped).
    pub async fn close(&self) {
        let _ = self.client.quit().await;
    }

    fn bypass(&self, err: &CacheError) -> Lookup {
        tracing::debug!(error = %err, "cache unavailable, bypassing");
        self.session.lose(Loss::CommandFailed);
        Lookup::Bypass
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
