//! The cache session: when the cache may be used at all, and when a write may be acknowledged.
//!
//! Redis tells this process about every write to the generation key through server-assisted
//! client-side caching (`CLIENT TRACKING ON BCAST PREFIX {prefix}:gen` over RESP3, on the one
//! connection the cache uses), and each of those pushes empties the near cache. Two things are
//! built on top, because a push is asynchronous and can be lost:
//!
//! **A lease.** A connection drop (a new one starts without tracking), a frozen Redis or an
//! overflowing push channel cannot be seen at the moment it happens. So every [`HEARTBEAT`] a
//! *beat* asks Redis, on that connection, whether tracking is on (`CLIENT TRACKINGINFO`); the
//! answer renews the lease until [`LEASE`] after the beat was sent, and both tiers are used only
//! while it runs. Anything that might have lost a push (a connection error, a reconnect, a failed
//! command, tracking found off) *loses* the session: the lease ends, the near cache is emptied,
//! and the session is stale, so it bumps the generation before its lease is renewed (Redis itself
//! may hold entries older than a write some process could not announce while it was away).
//!
//! **A write fence.** A push reaches the other replicas a little after the writer hears back from
//! Redis, and a client that reads from another replica right after the write's `201` must not
//! get the old list. So each replica publishes, in `{prefix}:beat:{id}` (listed in
//! `{prefix}:replicas`, expiring with its lease), the generation up to which it has processed
//! every push, and a write is acknowledged once every live replica has published at least the
//! generation the write's bump produced. Redis orders a connection's pushes and replies, but a
//! push queued in the same event-loop turn as a reply goes out after it; so a beat's reply proves
//! the pushes of the turn of the *previous* beat, and the published value trails by one beat.
//! Each push wakes a beat at once, and beats chain until the published value catches up: a fence
//! costs a few round trips. A replica that does not publish in time (gone, partitioned, frozen)
//! is waited for at most [`LEASE`] after the bump: by then any lease it renewed before the bump
//! has run out, and a lease renewed after it was renewed by a reply that followed the push.
//!
//! A write whose bump fails waits the same [`LEASE`] before it is acknowledged, for the same
//! reason.

use std::{
    sync::{
        Arc, LazyLock, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use fred::{
    prelude::{
        Client, ClientLike, EventInterface, KeysInterface, Options, TrackingInterface, Value,
    },
    types::{ClusterHash, CustomCommand},
};
use tokio::{
    sync::{
        Notify,
        broadcast::error::{RecvError, TryRecvError},
    },
    task::JoinHandle,
};

use super::{
    near::NearCache,
    script::{LuaScript, sha1_of},
};

/// How long one confirmation lets the cache be used.
pub const LEASE: Duration = Duration::from_millis(200);

/// How often the session is confirmed: four times a lease, so one late answer does not end it.
pub const HEARTBEAT: Duration = Duration::from_millis(50);

/// The origin of lease deadlines, which are kept as nanoseconds since it in one atomic.
static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

fn nanos_since_origin(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*ORIGIN).as_nanos()).unwrap_or(u64::MAX)
}

/// Why a session was lost; logged once per loss.
#[derive(Debug, Clone, Copy)]
pub(super) enum Loss {
    ConnectionError,
    Reconnected,
    CommandFailed,
    TrackingOff,
    PushesDropped,
}

impl Loss {
    fn describe(self) -> &'static str {
        match self {
            Self::ConnectionError => "the connection to Redis failed",
            Self::Reconnected => "the client reconnected to Redis without tracking",
            Self::CommandFailed => "a cache command failed",
            Self::TrackingOff => "Redis reports tracking off on this connection",
            Self::PushesDropped => "invalidation messages were dropped",
        }
    }
}

#[derive(Debug)]
struct State {
    /// Counts losses; a confirmation renews the lease only if none happened since it began.
    losses: u64,
    /// Redis may hold entries from before a write that could not be announced.
    stale: bool,
    /// Whether the lease ran when the last loss came, so a loss is logged once.
    confirmed: bool,
}

/// What a confirmation or a bump started from; see [`Session::begin`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket {
    losses: u64,
    sent: Instant,
}

impl Ticket {
    /// When it began.
    pub(super) fn sent(self) -> Instant {
        self.sent
    }
}

/// The lease, the near cache it guards, and the bookkeeping of losses.
#[derive(Debug)]
pub(super) struct Session {
    pub(super) near: NearCache,
    /// End of the lease in nanoseconds since [`ORIGIN`]; 0 when there is none.
    lease_until: AtomicU64,
    state: Mutex<State>,
}

impl Session {
    /// A session that is not yet confirmed, and stale: a process that just started cannot know
    /// what the writes before it announced.
    pub(super) fn new(near: NearCache) -> Self {
        Self {
            near,
            lease_until: AtomicU64::new(0),
            state: Mutex::new(State {
                losses: 0,
                stale: true,
                confirmed: false,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the cache may be used at `now`.
    pub(super) fn usable(&self, now: Instant) -> bool {
        nanos_since_origin(now) < self.lease_until.load(Ordering::Acquire)
    }

    /// Notes the start of a confirmation or a bump, before its command is sent.
    pub(super) fn begin(&self) -> Ticket {
        Ticket {
            losses: self.state().losses,
            sent: Instant::now(),
        }
    }

    /// Ends the lease, empties the near cache and marks the session stale.
    pub(super) fn lose(&self, why: Loss) {
        let mut state = self.state();
        self.lease_until.store(0, Ordering::Release);
        self.near.invalidate();
        state.losses += 1;
        state.stale = true;
        if std::mem::take(&mut state.confirmed) {
            tracing::warn!(
                reason = why.describe(),
                "Redis cache suspended until its invalidations are confirmed again"
            );
        }
    }

    /// How many losses so far.
    fn losses(&self) -> u64 {
        self.state().losses
    }

    /// Whether the generation must be bumped before the lease can be renewed.
    pub(super) fn is_stale(&self) -> bool {
        self.state().stale
    }

    /// A bump that began at `ticket` succeeded: entries older than it are unreachable, unless a
    /// loss since then may have let another write go unannounced.
    pub(super) fn bumped(&self, ticket: Ticket) {
        let mut state = self.state();
        if state.losses == ticket.losses {
            state.stale = false;
        }
    }

    /// Renews the lease for a confirmation that began at `ticket`, unless the session was lost
    /// since or is stale.
    fn renew(&self, ticket: Ticket) {
        let mut state = self.state();
        if state.losses != ticket.losses || state.stale {
            return;
        }
        self.lease_until
            .store(nanos_since_origin(ticket.sent + LEASE), Ordering::Release);
        if !std::mem::replace(&mut state.confirmed, true) {
            tracing::info!("Redis cache in use: invalidations tracked");
        }
    }
}

/// The session's connection-level facts: the client, its keys, and the options of the
/// session's own commands (a deadline of one lease).
#[derive(Debug, Clone)]
pub(super) struct Tracking {
    pub(super) client: Client,
    pub(super) options: Options,
    /// This process's name among the replicas: random, as every pod may have process id 1.
    pub(super) replica: String,
    /// `{prefix}:gen`, the only key whose writes are tracked.
    pub(super) generation_key: String,
    /// `{prefix}:replicas`, the set of replicas that publish beats.
    pub(super) replicas_key: String,
    /// `{prefix}:beat:`, followed by a replica's name: the generation it has caught up with.
    pub(super) beat_prefix: String,
}

impl Tracking {
    /// The facts of `client` for the cache under `prefix`, with a name of its own.
    pub(super) fn new(client: Client, prefix: &str) -> Self {
        use std::hash::BuildHasher;
        // std's hasher keys are random per process, which is all a name needs here.
        let replica = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
        Self {
            client,
            options: Options {
                fail_fast: true,
                timeout: Some(LEASE),
                max_attempts: Some(1),
                ..Options::default()
            },
            replica: format!("{replica:016x}"),
            generation_key: format!("{prefix}:gen"),
            replicas_key: format!("{prefix}:replicas"),
            beat_prefix: format!("{prefix}:beat:"),
        }
    }
}

/// Publishes this replica's caught-up generation (`ARGV[1]`) for one lease (`ARGV[2]` ms) under
/// `KEYS[1]`, lists the replica (`ARGV[3]`) in `KEYS[2]`, and returns the generation
/// (`KEYS[3]`) as it is now.
const BEAT_LUA: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return redis.call('GET', KEYS[3]) or '0'
";
static BEAT: LuaScript = LuaScript::new(BEAT_LUA, || sha1_of(BEAT_LUA));

/// Counts the replicas listed in `KEYS[1]`, other than `ARGV[2]`, whose beat (`ARGV[3]` and the
/// name) has not reached generation `ARGV[1]`; forgets those whose beat has expired.
const FENCE_LUA: &str = r"
local behind = 0
for _, replica in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if replica ~= ARGV[2] then
    local seen = redis.call('GET', ARGV[3] .. replica)
    if not seen then
      redis.call('SREM', KEYS[1], replica)
    elseif tonumber(seen) < tonumber(ARGV[1]) then
      behind = behind + 1
    end
  end
end
return behind
";
static FENCE: LuaScript = LuaScript::new(FENCE_LUA, || sha1_of(FENCE_LUA));

/// How long a waiting write asks again at once whether the other replicas have caught up (they
/// usually have within a few round trips), before it asks once a millisecond.
const FENCE_EAGER: Duration = Duration::from_millis(2);
const FENCE_POLL: Duration = Duration::from_millis(1);

/// Waits until every other live replica has caught up with `generation` (which a bump that
/// was answered at `answered` produced), or until [`LEASE`] after `answered`.
pub(super) async fn fence(tracking: &Tracking, generation: u64, answered: Instant) {
    let deadline = answered + LEASE;
    let redis = tracking.client.with_options(&tracking.options);
    loop {
        let behind: Result<u64, _> = FENCE
            .run(
                &redis,
                vec![tracking.replicas_key.as_str().into()],
                vec![
                    generation.to_string().into(),
                    tracking.replica.as_str().into(),
                    tracking.beat_prefix.as_str().into(),
                ],
            )
            .await;
        match behind {
            Ok(0) => return,
            Ok(_) if answered.elapsed() < FENCE_EAGER => tokio::task::yield_now().await,
            Ok(_) if Instant::now() < deadline => tokio::time::sleep(FENCE_POLL).await,
            Ok(behind) => {
                tracing::warn!(
                    replicas = behind,
                    "replicas did not confirm a cache invalidation within a lease; their leases have run out instead"
                );
                return;
            }
            Err(err) => {
                tracing::debug!(error = %err, "could not check the other replicas; waiting out their leases");
                tokio::time::sleep_until(deadline.into()).await;
                return;
            }
        }
    }
}

/// Starts the two tasks that keep `session`: one empties the near cache on each push and wakes
/// the other, which beats. Subscribes before returning, so call it before connecting the client.
pub(super) fn spawn(tracking: Tracking, session: Arc<Session>) -> [JoinHandle<()>; 2] {
    let mut invalidations = tracking.client.invalidation_rx();
    let mut drained = tracking.client.invalidation_rx();
    let mut errors = tracking.client.error_rx();
    let mut reconnects = tracking.client.reconnect_rx();
    let wake = Arc::new(Notify::new());

    let (on_push, woken) = (Arc::clone(&session), Arc::clone(&wake));
    let pushes = tokio::spawn(async move {
        loop {
            match invalidations.recv().await {
                Ok(_) => {
                    on_push.near.invalidate();
                    // What `cargo xtask bench api` times invalidations by.
                    tracing::debug!("near cache emptied by an invalidation push");
                }
                Err(RecvError::Lagged(_)) => on_push.lose(Loss::PushesDropped),
                Err(RecvError::Closed) => return,
            }
            woken.notify_one();
        }
    });

    let heartbeat = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(HEARTBEAT);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beats = Beats::default();
        loop {
            tokio::select! {
                biased;
                event = errors.recv() => match event {
                    Err(RecvError::Closed) => return,
                    Ok((err, _)) => {
                        tracing::debug!(error = %err, "Redis connection error");
                        session.lose(Loss::ConnectionError);
                    }
                    Err(RecvError::Lagged(_)) => session.lose(Loss::ConnectionError),
                },
                event = reconnects.recv() => match event {
                    Err(RecvError::Closed) => return,
                    _ => session.lose(Loss::Reconnected),
                },
                () = wake.notified() => {}
                _ = ticker.tick() => {}
            }
            // Beat until what this replica publishes covers the generation Redis had when the
            // beats began (three beats after a push); later writes wake another round.
            let mut target = None;
            for _ in 0..MAX_BEATS_PER_ROUND {
                match beat(&tracking, &session, &mut beats, &mut drained).await {
                    Outcome::Failed => break,
                    Outcome::TrackingTurnedOn => {}
                    Outcome::Beat {
                        published,
                        generation,
                    } => {
                        if published >= *target.get_or_insert(generation) {
                            break;
                        }
                    }
                }
            }
        }
    });
    [pushes, heartbeat]
}

/// The most beats one wake-up sends back to back; a round needs three.
const MAX_BEATS_PER_ROUND: usize = 8;

/// How a beat went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The session is lost; the next tick tries again.
    Failed,
    /// This is a new connection, and tracking is on now: beat again to confirm it.
    TrackingTurnedOn,
    /// Confirmed: it published `published`, and read the generation as `generation`.
    Beat { published: u64, generation: u64 },
}

/// What the beats have established about this replica's pushes.
#[derive(Debug, Default)]
struct Beats {
    /// The generation the previous beat read, if no loss came since.
    previous: Option<u64>,
    /// The generation up to which every push has been processed: what the next beat publishes.
    caught_up: u64,
}

/// One beat: confirms tracking (turning it on if this is a new connection), publishes the
/// caught-up generation, bumps the generation if the session is stale, and renews the lease.
async fn beat(
    tracking: &Tracking,
    session: &Session,
    beats: &mut Beats,
    pushes: &mut tokio::sync::broadcast::Receiver<fred::types::client::Invalidation>,
) -> Outcome {
    let ticket = session.begin();
    let redis = tracking.client.with_options(&tracking.options);
    let published = beats.caught_up;
    let lease_ms = LEASE.as_millis().to_string();
    let (info, generation) = tokio::join!(
        redis.custom::<Value, _>(
            CustomCommand::new_static("CLIENT", ClusterHash::Random, false),
            vec!["TRACKINGINFO"],
        ),
        BEAT.run::<_, u64>(
            &redis,
            vec![
                format!("{}{}", tracking.beat_prefix, tracking.replica).into(),
                tracking.replicas_key.as_str().into(),
                tracking.generation_key.as_str().into(),
            ],
            vec![
                published.to_string().into(),
                lease_ms.into(),
                tracking.replica.as_str().into(),
            ],
        ),
    );
    // Pushes that came before these replies on the connection are in the channel by now.
    loop {
        match pushes.try_recv() {
            Ok(_) => session.near.invalidate(),
            Err(TryRecvError::Lagged(_)) => session.lose(Loss::PushesDropped),
            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
        }
    }
    let generation = match (info.map(|info| tracking_on(&info)), generation) {
        (Ok(true), Ok(generation)) => generation,
        (Ok(false), _) => {
            session.lose(Loss::TrackingOff);
            beats.previous = None;
            // Confirmed, and the chain started again, by the next beat: at once if this worked.
            return match tracking
                .client
                .start_tracking(tracking.generation_key.as_str(), true, false, false, false)
                .await
            {
                Ok(()) => Outcome::TrackingTurnedOn,
                Err(err) => {
                    tracing::debug!(error = %err, "could not turn on Redis tracking");
                    Outcome::Failed
                }
            };
        }
        (Err(err), _) | (_, Err(err)) => {
            tracing::debug!(error = %err, "the cache heartbeat failed");
            session.lose(Loss::CommandFailed);
            beats.previous = None;
            return Outcome::Failed;
        }
    };
    if session.is_stale() {
        let bump: Result<u64, _> = redis.incr(tracking.generation_key.as_str()).await;
        match bump {
            Ok(_) => session.bumped(ticket),
            Err(err) => {
                tracing::debug!(error = %err, "could not bump the cache generation");
                session.lose(Loss::CommandFailed);
                beats.previous = None;
                return Outcome::Failed;
            }
        }
    }
    session.renew(ticket);
    if session.losses() != ticket.losses {
        beats.previous = None;
        return Outcome::Failed;
    }
    // This reply came after every push of the turn in which the previous beat ran.
    if let Some(previous) = beats.previous {
        beats.caught_up = beats.caught_up.max(previous);
    }
    beats.previous = Some(generation);
    Outcome::Beat {
        published,
        generation,
    }
}

/// Whether a `CLIENT TRACKINGINFO` reply says tracking is on in broadcast mode. RESP3 answers
/// with a map whose `flags` hold `on` and `bcast` (Redis's `clientTrackingInfoCommand`).
fn tracking_on(info: &Value) -> bool {
    let Value::Map(fields) = info else {
        return false;
    };
    fields.clone().inner().iter().any(|(key, value)| {
        key.as_str() == Some("flags")
            && matches!(value, Value::Array(flags)
            if ["on", "bcast"].iter().all(|wanted| {
                flags.iter().any(|flag| flag.as_str().as_deref() == Some(*wanted))
            }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session::new(NearCache::new(8, 1 << 20))
    }

    #[test]
    fn a_new_session_is_unusable_until_bumped_and_renewed() {
        let session = session();
        let ticket = session.begin();
        session.renew(ticket);
        assert!(!session.usable(Instant::now()), "stale: not renewed");
        session.bumped(ticket);
        session.renew(ticket);
        assert!(session.usable(Instant::now()));
        assert!(!session.usable(ticket.sent + LEASE), "the lease runs out");
    }

    #[test]
    fn a_loss_during_a_confirmation_keeps_the_lease_ended() {
        let session = session();
        let ticket = session.begin();
        session.bumped(ticket);
        session.renew(ticket);
        let during = session.begin();
        session.lose(Loss::ConnectionError);
        session.bumped(during);
        session.renew(during);
        assert!(!session.usable(Instant::now()));
        assert!(
            session.is_stale(),
            "a bump from before the loss does not count"
        );
    }

    #[test]
    fn a_loss_empties_the_near_cache() {
        let session = session();
        let epoch = session.near.epoch();
        session
            .near
            .insert("a", epoch, "x".into(), Duration::from_secs(9));
        session.lose(Loss::PushesDropped);
        assert_eq!(session.near.usage().entries, 0);
        assert!(
            !session
                .near
                .insert("a", epoch, "x".into(), Duration::from_secs(9))
        );
    }
}
