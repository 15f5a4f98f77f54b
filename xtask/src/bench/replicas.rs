//! Part of `cargo xtask bench api`: the near cache's coherence across replicas. A second API
//! process joins the first on the same database, Redis and cache prefix; round after round, the
//! second holds the list in its near cache, a write goes through the first, and the second is
//! read right after the `201`. Reported: how many of those reads showed the write (all of them,
//! or the fence is broken), what the fence adds to a write, and when the second replica emptied
//! its near cache relative to the moment the writer's client had its answer, from the second's
//! own log line for each invalidation push.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use serde::Serialize;

use super::Session;
use super::host::free_port;
use super::http::{Fetched, http_send};
use super::output::round;
use super::service::{Launch, Service};

/// Writes measured with the writer alone, then with both replicas.
const ROUNDS: usize = 100;

/// The list the second replica holds near.
const LIST: &str = "/api/deployments?limit=5";

/// What the second replica logs for each invalidation push (at debug level).
const PUSH_LINE: &str = "near cache emptied by an invalidation push";

/// The replicas' figures in the JSON report.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Coherence {
    pub(super) rounds: usize,
    /// Reads of the second replica, right after a write's `201` from the first, that showed it.
    pub(super) fresh_reads: usize,
    /// Rounds whose read was answered from the second replica's near cache just before the write.
    pub(super) near_before_write: usize,
    /// A write's round trip (`POST`, `201` read) with the writer alone.
    pub(super) write_ms_alone: Spread,
    /// The same with a second replica, whose catching up the write waits for.
    pub(super) write_ms_with_replica: Spread,
    /// How long before the writer's client had its `201` the second replica had emptied its
    /// near cache (negative: after), per write.
    pub(super) invalidated_before_ack_ms: Spread,
}

/// Median, 99th percentile and extremes of a set of figures, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct Spread {
    pub(super) p50: f64,
    pub(super) p99: f64,
    pub(super) min: f64,
    pub(super) max: f64,
}

impl Spread {
    fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let index = ((values.len() as f64 - 1.0) * q).round() as usize;
            round(values.get(index).copied().unwrap_or_default(), 3)
        };
        Self {
            p50: at(0.5),
            p99: at(0.99),
            min: at(0.0),
            max: at(1.0),
        }
    }
}

/// What the measurement needs from the benchmark: the writer (already running), the binary to
/// start the second replica from, and what both connect to.
pub(super) struct Setup<'a> {
    pub(super) writer: &'a Service,
    pub(super) binary: &'a Path,
    pub(super) log: &'a Path,
    pub(super) database_url: &'a str,
    pub(super) redis_url: &'a str,
    pub(super) token: &'a str,
}

/// Runs the rounds; see the module documentation.
pub(super) fn measure(session: &mut Session<'_>, setup: &Setup<'_>) -> anyhow::Result<Coherence> {
    let mut alone = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let (took, _) = write(setup, &format!("alone-{round}"))?;
        alone.push(took.as_secs_f64() * 1e3);
    }

    let reader = Service::start(
        session,
        &Launch {
            label: "second API replica",
            binary: setup.binary,
            log: setup.log,
            port: free_port()?,
            addr_var: "API_ADDR",
            probe: "/livez",
            env: &[
                ("DATABASE_URL", setup.database_url),
                ("REDIS_URL", setup.redis_url),
                ("API_TOKEN", setup.token),
                ("LOG_FORMAT", "json"),
                ("RUST_LOG", "info,api::cache::session=debug"),
            ],
        },
    )?;
    wait_cache_in_use(&reader)?;

    let mut with_replica = Vec::with_capacity(ROUNDS);
    let mut acks = Vec::with_capacity(ROUNDS);
    let (mut fresh_reads, mut near_before_write) = (0, 0);
    for round in 0..ROUNDS {
        if hold_near(&reader)? {
            near_before_write += 1;
        }
        let sent = SystemTime::now();
        let (took, id) = write(setup, &format!("replica-{round}"))?;
        let acknowledged = SystemTime::now();
        with_replica.push(took.as_secs_f64() * 1e3);
        acks.push((sent, acknowledged));
        if newest(&reader)? == id {
            fresh_reads += 1;
        }
        session.check_interrupt()?;
    }
    // The log thread writes as soon as it is idle; leave it a moment before reading.
    std::thread::sleep(Duration::from_millis(300));
    let pushes = push_times(&std::fs::read_to_string(setup.log)?)?;
    drop(reader);

    let mut before_ack = Vec::with_capacity(ROUNDS);
    for (sent, acknowledged) in acks {
        let Some(push) = pushes.iter().find(|push| **push >= sent) else {
            bail!(
                "the second replica logged no invalidation for a write sent at {sent:?}; see {}",
                setup.log.display()
            );
        };
        let ms = match acknowledged.duration_since(*push) {
            Ok(before) => before.as_secs_f64() * 1e3,
            Err(after) => -after.duration().as_secs_f64() * 1e3,
        };
        before_ack.push(ms);
    }
    Ok(Coherence {
        rounds: ROUNDS,
        fresh_reads,
        near_before_write,
        write_ms_alone: Spread::of(alone),
        write_ms_with_replica: Spread::of(with_replica),
        invalidated_before_ack_ms: Spread::of(before_ack),
    })
}

/// Records a deployment through the writer; returns the round trip and the new id.
fn write(setup: &Setup<'_>, version: &str) -> anyhow::Result<(Duration, i64)> {
    let body = format!(
        r#"{{"service_id":1,"environment_id":1,"version":"{version}","deployed_by":"bench"}}"#
    );
    let authorization = format!("Bearer {}", setup.token);
    let started = Instant::now();
    let response = http_send(
        setup.writer.port,
        "POST",
        "/api/deployments",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &authorization),
        ],
        body.as_bytes(),
    )?;
    let took = started.elapsed();
    if response.head.status != 201 {
        bail!(
            "POST /api/deployments answered {}; see {}",
            response.head.status,
            setup.writer.log.display()
        );
    }
    Ok((took, id_of(&response, "id")?))
}

/// Reads the list from `reader` until its near cache answers (a few reads after a write);
/// returns whether it did.
fn hold_near(reader: &Service) -> anyhow::Result<bool> {
    for _ in 0..50 {
        let response = super::http::http_fetch(reader.port, LIST)?;
        if response.head.header("cache-status") == Some("api; hit") {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(false)
}

/// The newest deployment's id in `reader`'s list.
fn newest(reader: &Service) -> anyhow::Result<i64> {
    let response = super::http::http_fetch(reader.port, LIST)?;
    let page: serde_json::Value =
        serde_json::from_slice(&response.body).context("the list is not JSON")?;
    page["deployments"][0]["id"]
        .as_i64()
        .context("the list has no deployments")
}

fn id_of(response: &Fetched, field: &str) -> anyhow::Result<i64> {
    let value: serde_json::Value =
        serde_json::from_slice(&response.body).context("the answer is not JSON")?;
    value[field]
        .as_i64()
        .with_context(|| format!("the answer has no {field}"))
}

/// Waits until `replica`'s health check says its cache is in use.
fn wait_cache_in_use(replica: &Service) -> anyhow::Result<()> {
    for _ in 0..200 {
        let health = super::http::http_fetch(replica.port, "/health")?;
        let health: serde_json::Value = serde_json::from_slice(&health.body).unwrap_or_default();
        if health["checks"]["redis"]["status"] == "up" {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!(
        "the second replica's cache did not come into use within 5 s; see {}",
        replica.log.display()
    )
}

/// The moments of the invalidation pushes a replica logged, in order.
fn push_times(log: &str) -> anyhow::Result<Vec<SystemTime>> {
    let mut times = Vec::new();
    for line in log.lines().filter(|line| line.contains(PUSH_LINE)) {
        let line: serde_json::Value = serde_json::from_str(line).context("a log line")?;
        let stamp = line["timestamp"]
            .as_str()
            .context("a line without timestamp")?;
        let at = time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
            .with_context(|| format!("the timestamp {stamp}"))?;
        let nanos = u64::try_from(at.unix_timestamp_nanos()).context("a time before 1970")?;
        times.push(SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos));
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_are_read_off_the_sorted_figures() {
        let spread = Spread::of((1..=100).rev().map(f64::from).collect());
        let figures = [spread.min, spread.p50, spread.p99, spread.max];
        assert!(
            figures
                .iter()
                .zip([1.0, 51.0, 99.0, 100.0])
                .all(|(got, want)| (got - want).abs() < 1e-9),
            "{spread:?}"
        );
    }

    #[test]
    fn push_times_come_from_the_replica_log_lines() {
        let log = format!(
            "{{\"timestamp\":\"2026-12-06T16:25:02.166882Z\",\"level\":\"DEBUG\",\"message\":\"{PUSH_LINE}\"}}\n\
             {{\"timestamp\":\"2026-12-06T16:25:03.000000Z\",\"level\":\"INFO\",\"message\":\"other\"}}\n"
        );
        let times = push_times(&log).unwrap();
        assert_eq!(times.len(), 1);
        let micros = times[0]
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_micros();
        assert_eq!(micros % 1_000_000, 166_882);
        assert!(
            push_times("{\"message\":\"near cache emptied by an invalidation push\"}").is_err()
        );
    }
}
