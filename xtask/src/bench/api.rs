//! `cargo xtask bench api`: the release API over ephemeral, seeded PostgreSQL and Redis, loaded
//! by wrk scenario after scenario, with start-up time and memory read from `/proc`; and, in the
//! same run, the ceiling: a server on the same stack that only sends the cached list's bytes
//! (`api/examples/ceiling.rs`), so that every figure also reads as a fraction of what this
//! machine can do at all.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};

use super::host::{free_port, target_dir};
use serde::Serialize;

use super::http::{http_fetch, http_get};
use super::load::{Failures, Load, LoadRun, Settings};
use super::memory::{peak_rss_kib, reset_peak_rss};
use super::replicas::{self, Coherence};
use super::report::{Figures, ScenarioFigures};
use super::service::{
    Launch, Service, build_release, random_token, seeded_database, start_backing,
};
use super::{LoadArgs, LoadDefaults, Session};

/// How long the warm-up pass before a scenario lasts, over one connection: long enough to fill
/// every cache entry (and the connection pool) so that the measured pass sees the steady state,
/// short enough to be cheap, and a broken API shows in it at once.
const WARM_UP_SECS: u32 = 1;

/// The Lua scripts of the scenarios, relative to the repository root.
const SCRIPT_DIR: &str = "xtask/bench";

/// The variable through which the write scenario's script gets the API token.
const TOKEN_ENV: &str = "WANDER_BENCH_TOKEN";

/// The targets the figures are compared against in the printout (never enforced): the cached
/// reads at least this share of the ceiling's requests per second, with a p99 at most this
/// multiple of the ceiling's, at this many connections.
const TARGET_OF_CEILING: f64 = 0.5;
const TARGET_P99_OVER_CEILING: f64 = 2.0;
const TARGET_CONNECTIONS: u32 = 50;
/// The scenarios the ceiling targets are about.
const CEILING_TARGETED: [&str; 2] = ["cached_list", "single_deployment"];
const TARGET_PEAK_RSS_MB: f64 = 24.0;
const TARGET_READY_MS: f64 = 50.0;

/// The ceiling server, an example of the `api` package.
const CEILING_EXAMPLE: &str = "ceiling";

/// Options of `cargo xtask bench api`.
pub(crate) type Args = LoadArgs<Defaults>;

/// The defaults of `cargo xtask bench api`.
#[derive(Debug)]
pub(crate) struct Defaults;

impl LoadDefaults for Defaults {
    const CONNECTIONS: &'static str = "50";
}

/// Which API process a scenario loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Instance {
    /// The API as deployed, with Redis.
    Cached,
    /// A second API whose `REDIS_URL` points at a closed port, so every read bypasses the cache
    /// and the figures are PostgreSQL's alone.
    Uncached,
}

impl Instance {
    fn label(self) -> &'static str {
        match self {
            Self::Cached => "API",
            Self::Uncached => "API without Redis",
        }
    }
}

/// One way of loading the API.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    /// The name in the table and the JSON.
    name: &'static str,
    /// What it loads, for the progress line.
    what: &'static str,
    instance: Instance,
    /// The URL path wrk requests when there is no script (and the one a script's URL names).
    path: &'static str,
    /// A Lua script in [`SCRIPT_DIR`] that writes the requests.
    script: Option<&'static str>,
    /// Whether a warm-up pass ([`WARM_UP_SECS`]) runs first. Not for writes, whose rows would only add noise.
    warm_up: bool,
    /// The `X-Cache` that `path` must answer with after the warm-up, proving that the scenario
    /// measures the path it is named after.
    expect_cache: Option<&'static str>,
}

/// Every scenario, in the order run (and reported).
const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "cached_list",
        what: "GET /api/deployments from the cache",
        instance: Instance::Cached,
        path: "/api/deployments",
        script: None,
        warm_up: true,
        expect_cache: Some("HIT"),
    },
    Scenario {
        name: "filtered_list",
        what: "GET /api/deployments over 240 filter combinations, cached",
        instance: Instance::Cached,
        path: "/api/deployments",
        script: Some("filtered_list.lua"),
        warm_up: true,
        expect_cache: None,
    },
    Scenario {
        name: "single_deployment",
        what: "GET /api/deployments/{1..28}, cached",
        instance: Instance::Cached,
        path: "/api/deployments/1",
        script: Some("single_deployment.lua"),
        warm_up: true,
        expect_cache: None,
    },
    Scenario {
        name: "health",
        what: "GET /health, which queries PostgreSQL and Redis every time",
        instance: Instance::Cached,
        path: "/health",
        script: None,
        warm_up: true,
        expect_cache: None,
    },
    Scenario {
        name: "write_mix",
        what: "20% POST /api/deployments, 80% GET /api/deployments missing the cache after writes",
        instance: Instance::Cached,
        path: "/api/deployments",
        script: Some("write_mix.lua"),
        warm_up: false,
        expect_cache: None,
    },
    Scenario {
        name: "list_database_path",
        what: "GET /api/deployments with Redis unreachable, from PostgreSQL alone",
        instance: Instance::Uncached,
        path: "/api/deployments",
        script: None,
        warm_up: true,
        expect_cache: Some("BYPASS"),
    },
];

/// The ceiling's scenario: what wrk sends the cached list, sent to the ceiling server (not one of
/// [`SCENARIOS`]: its instance is the API whose bytes it sends, and decides nothing).
const CEILING: Scenario = Scenario {
    name: "ceiling",
    what: "the cached list's bytes from a server that does nothing else",
    instance: Instance::Cached,
    path: "/api/deployments",
    script: None,
    warm_up: true,
    expect_cache: None,
};

/// The JSON written to `--out`.
#[derive(Debug, Serialize)]
struct Report {
    /// The API's figures; its start-up and peak memory are the cached instance's.
    #[serde(flatten)]
    figures: Figures,
    /// The ceiling server under the same load, measured in the same run.
    ceiling: ScenarioFigures,
    /// Every API scenario set against the ceiling.
    of_ceiling: Vec<OfCeiling>,
    /// Writes through one replica read through another.
    replicas: Coherence,
}

/// One scenario as a fraction of the ceiling.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct OfCeiling {
    name: String,
    /// Its requests per second over the ceiling's.
    requests_per_sec: f64,
    /// Its p99 latency over the ceiling's.
    p99: f64,
}

impl Report {
    fn new(figures: Figures, ceiling: ScenarioFigures, replicas: Coherence) -> Self {
        let ratio = |value: f64, of: f64| if of > 0.0 { round3(value / of) } else { 0.0 };
        let of_ceiling = figures
            .scenarios
            .iter()
            .map(|s| OfCeiling {
                name: s.name.clone(),
                requests_per_sec: ratio(s.requests_per_sec, ceiling.requests_per_sec),
                p99: ratio(s.p99_ms, ceiling.p99_ms),
            })
            .collect();
        Self {
            figures,
            ceiling,
            of_ceiling,
            replicas,
        }
    }
}

fn round3(value: f64) -> f64 {
    (value * 1_000.0).round() / 1_000.0
}

/// Measures the release API with Redis and without (an unreachable one); the JSON is written only
/// when no scenario had failed requests, the table is printed either way.
pub(super) fn run(session: &mut Session<'_>, args: &Args) -> anyhow::Result<()> {
    let bench = LoadRun::prepare(session.ctx, args, "api")?;
    let ctx = session.ctx;
    let ui = ctx.ui();
    let scripts = ctx.root().join(SCRIPT_DIR);
    for script in SCENARIOS.iter().filter_map(|scenario| scenario.script) {
        let path = scripts.join(script);
        if !path.is_file() {
            bail!("the wrk script {} is missing", path.display());
        }
    }

    build_release(session, &["api"], &[CEILING_EXAMPLE])?;
    let binary = target_dir(ctx).join("release/api");
    let ceiling_binary = target_dir(ctx)
        .join("release/examples")
        .join(CEILING_EXAMPLE);

    // Declared before the API processes, so they outlive them: locals drop in reverse order,
    // and every early return below (error or Ctrl-C) stops the APIs first, then the servers.
    let (postgres, redis) = start_backing(session)?;

    let token = random_token()?;
    let loads = Loads {
        wrk: &bench.wrk,
        scripts: &scripts,
        token: &token,
        settings: bench.settings,
    };
    let mut startup = None;
    let mut ceiling = None;
    let mut replicas = None;
    let mut figures = Vec::new();
    let mut failures = Failures::default();
    for instance in [Instance::Cached, Instance::Uncached] {
        // Each instance gets a fresh copy of the seed, so the rows the write mix adds do not
        // change what the database-only list reads.
        let database = seeded_database(session, &postgres)?;
        let (redis_url, log_name) = match instance {
            Instance::Cached => (redis.url(), "api.log"),
            Instance::Uncached => (
                format!("redis://127.0.0.1:{}", free_port()?),
                "api-uncached.log",
            ),
        };
        let mut api = Service::start_api(
            session,
            &binary,
            &bench.dir.join(log_name),
            (&database.url, &redis_url),
            &token,
        )?;
        let started = api.settle(ui, instance.label())?;
        if instance == Instance::Cached {
            startup = Some(started);
            // Measured first, right before the cached list it is the ceiling of.
            let (row, verdict) = run_ceiling(session, &api, &ceiling_binary, &bench.dir, &loads)?;
            failures.check(ui, CEILING.name, verdict);
            ceiling = Some(row);
        }

        for scenario in SCENARIOS.iter().filter(|s| s.instance == instance) {
            let (row, verdict) = run_scenario(session, &mut api, scenario, &loads)?;
            failures.check(ui, scenario.name, verdict);
            figures.push(row);
        }
        if instance == Instance::Cached {
            ui.progress(
                "replicas: writes through this API, read at once through a second one on the \
                 same database, Redis and cache prefix",
            );
            replicas = Some(replicas::measure(
                session,
                &replicas::Setup {
                    writer: &api,
                    binary: &binary,
                    log: &bench.dir.join("api-replica.log"),
                    database_url: &database.url,
                    redis_url: &redis_url,
                    token: &token,
                },
            )?);
        }
    }

    let startup = startup.context("the cached API never started")?;
    let ceiling = ceiling.context("the ceiling was never measured")?;
    let replicas = replicas.context("the replicas were never measured")?;
    let report = Report::new(
        Figures::new(bench.settings, startup, figures)?,
        ceiling,
        replicas,
    );
    report
        .figures
        .print(Some(&ceiling_table(&report)), &target_lines(&report));
    failures.verdict(
        SCENARIOS.len() + 1,
        "API",
        &bench.out,
        &format!("the API logs are in {}", bench.dir.display()),
    )?;
    bench.write(&report)
}

/// What every scenario's wrk runs share.
#[derive(Debug, Clone, Copy)]
struct Loads<'a> {
    wrk: &'a Path,
    scripts: &'a Path,
    token: &'a str,
    settings: Settings,
}

impl Loads<'_> {
    /// The measured load of `scenario` on the API at `port`.
    fn measured(&self, scenario: &Scenario, port: u16) -> Load {
        Load {
            url: format!("http://127.0.0.1:{port}{}", scenario.path),
            script: scenario.script.map(|script| self.scripts.join(script)),
            env: vec![(TOKEN_ENV.to_owned(), self.token.to_owned())],
            threads: self.settings.threads,
            connections: self.settings.connections,
            duration_s: self.settings.duration_s,
        }
    }

    /// The warm-up pass before `scenario`: the same requests, one at a time.
    fn warm_up(&self, scenario: &Scenario, port: u16) -> Load {
        Load {
            threads: 1,
            connections: 1,
            duration_s: WARM_UP_SECS,
            ..self.measured(scenario, port)
        }
    }
}

/// Warms up (when the scenario wants it), checks the cache path, then measures. Returns the
/// figures and whether they can be trusted; an error only when the scenario could not run.
fn run_scenario(
    session: &mut Session<'_>,
    api: &mut Service,
    scenario: &Scenario,
    loads: &Loads<'_>,
) -> anyhow::Result<(ScenarioFigures, Result<(), String>)> {
    loads
        .settings
        .announce(session.ctx.ui(), scenario.name, scenario.what);
    if scenario.warm_up {
        let warm_up = session.wrk(loads.wrk, &loads.warm_up(scenario, api.port))?;
        warm_up.verdict().map_err(|problem| {
            anyhow!(
                "the warm-up of {} failed ({problem}), so the API is not answering as it \
                 should; see its log {}",
                scenario.name,
                api.log.display()
            )
        })?;
    }
    if let Some(expected) = scenario.expect_cache {
        let head = http_get(api.port, scenario.path)
            .with_context(|| format!("GET {} before {}", scenario.path, scenario.name))?;
        let cache = head.header("x-cache");
        if head.status != 200 || cache != Some(expected) {
            bail!(
                "{} measures the {expected} path, but GET {} answered {} with X-Cache {}; \
                 see the API log {}",
                scenario.name,
                scenario.path,
                head.status,
                cache.unwrap_or("(none)"),
                api.log.display()
            );
        }
    }
    reset_peak_rss(api.pid())?;
    let report = session.wrk(loads.wrk, &loads.measured(scenario, api.port))?;
    let peak = peak_rss_kib(api.pid())?;
    if let Some(status) = api.exited()? {
        bail!(
            "the API exited ({status}) during {}; see its log {}",
            scenario.name,
            api.log.display()
        );
    }
    Ok((
        ScenarioFigures::new(scenario.name, &report, peak),
        report.verdict(),
    ))
}

/// Starts the ceiling server with the exact bytes the cached API answers `GET` of the list
/// with, and measures it as the cached list is measured.
fn run_ceiling(
    session: &mut Session<'_>,
    api: &Service,
    binary: &Path,
    dir: &Path,
    loads: &Loads<'_>,
) -> anyhow::Result<(ScenarioFigures, Result<(), String>)> {
    let fetched = http_fetch(api.port, CEILING.path)
        .with_context(|| format!("GET {} for the ceiling's body", CEILING.path))?;
    if fetched.head.status != 200 {
        bail!(
            "GET {} answered {}, so the ceiling has no body to send; see the API log {}",
            CEILING.path,
            fetched.head.status,
            api.log.display()
        );
    }
    let body = dir.join("ceiling-body.json");
    std::fs::write(&body, &fetched.body).with_context(|| format!("writing {}", body.display()))?;
    let body = body.to_string_lossy().into_owned();
    let mut server = Service::start(
        session,
        &Launch {
            label: "ceiling server",
            binary,
            log: &dir.join("ceiling.log"),
            port: free_port()?,
            addr_var: "CEILING_ADDR",
            probe: "/livez",
            env: &[("CEILING_BODY", &body)],
        },
    )?;
    run_scenario(session, &mut server, &CEILING, loads)
}

/// The API's scenarios as fractions of the ceiling, a line each, for people to read.
fn ceiling_table(report: &Report) -> String {
    let ceiling = &report.ceiling;
    let mut out = format!(
        "ceiling (the cached list's bytes from a server that does nothing else): {:.0} \
         requests/s, p99 {:.3} ms\n",
        ceiling.requests_per_sec, ceiling.p99_ms
    );
    for row in &report.of_ceiling {
        let _ = writeln!(
            out,
            "  {:<20} {:>5.1} % of its requests/s, p99 {:.2}x its p99",
            row.name,
            row.requests_per_sec * 100.0,
            row.p99
        );
    }
    out
}

/// The figures set against the targets, one line each, for people to read.
fn target_lines(report: &Report) -> Vec<String> {
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    let figures = &report.figures;
    let caveat = if figures.settings.connections == TARGET_CONNECTIONS {
        String::new()
    } else {
        format!(
            " (measured at {} connections, not {TARGET_CONNECTIONS})",
            figures.settings.connections
        )
    };
    let mut lines = Vec::new();
    for row in report
        .of_ceiling
        .iter()
        .filter(|row| CEILING_TARGETED.contains(&row.name.as_str()))
    {
        lines.push(format!(
            "{} >= {:.0} % of the ceiling's requests/s, p99 <= {TARGET_P99_OVER_CEILING}x its p99, at \
             {TARGET_CONNECTIONS} connections: {:.1} %, {:.2}x, {}{caveat}",
            row.name,
            TARGET_OF_CEILING * 100.0,
            row.requests_per_sec * 100.0,
            row.p99,
            verdict(
                row.requests_per_sec >= TARGET_OF_CEILING && row.p99 <= TARGET_P99_OVER_CEILING
            )
        ));
    }
    lines.push(format!(
        "peak RSS under load < {TARGET_PEAK_RSS_MB} MB: {:.1} MB, {}",
        figures.peak_rss_mb,
        verdict(figures.peak_rss_mb < TARGET_PEAK_RSS_MB)
    ));
    lines.push(format!(
        "ready within {TARGET_READY_MS} ms of start: {:.1} ms, {}",
        figures.startup.ready_ms,
        verdict(figures.startup.ready_ms < TARGET_READY_MS)
    ));
    let replicas = &report.replicas;
    lines.push(format!(
        "a replica's read right after a write through another shows it: {} of {} ({} read from \
         its near cache just before), {}",
        replicas.fresh_reads,
        replicas.rounds,
        replicas.near_before_write,
        verdict(replicas.fresh_reads == replicas.rounds)
    ));
    lines.push(format!(
        "  the second replica emptied its near cache {:.3} ms (p50; p99 {:.3}, least {:.3}) \
         before the writer's client had its 201; a write takes {:.3} ms (p50) with it, {:.3} ms \
         alone",
        replicas.invalidated_before_ack_ms.p50,
        replicas.invalidated_before_ack_ms.p99,
        replicas.invalidated_before_ack_ms.min,
        replicas.write_ms_with_replica.p50,
        replicas.write_ms_alone.p50,
    ));
    lines
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::bench::report::Startup;
    use crate::bench::testing::{keys, sample_figures};

    #[test]
    fn every_scenario_is_named_once_and_its_script_is_in_the_repository() {
        let names: HashSet<_> = SCENARIOS.iter().map(|s| s.name).collect();
        assert_eq!(names.len(), SCENARIOS.len());
        assert_eq!(
            SCENARIOS.iter().map(|s| s.name).collect::<Vec<_>>(),
            [
                "cached_list",
                "filtered_list",
                "single_deployment",
                "health",
                "write_mix",
                "list_database_path"
            ]
        );
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench");
        for script in SCENARIOS.iter().filter_map(|s| s.script) {
            let text = std::fs::read_to_string(dir.join(script)).unwrap();
            assert!(
                text.starts_with("-- wrk script for"),
                "{script} lacks its header"
            );
            assert!(text.contains("function request()"), "{script}");
        }
        // The write script reads the token from the variable the xtask sets.
        let write_mix = std::fs::read_to_string(dir.join("write_mix.lua")).unwrap();
        assert!(write_mix.contains(TOKEN_ENV));
    }

    #[test]
    fn only_the_database_path_runs_without_redis_and_writes_are_not_warmed_up() {
        for scenario in SCENARIOS {
            assert_eq!(
                scenario.instance == Instance::Uncached,
                scenario.name == "list_database_path",
                "{}",
                scenario.name
            );
            assert_eq!(
                scenario.warm_up,
                scenario.name != "write_mix",
                "{}",
                scenario.name
            );
        }
    }

    #[test]
    fn the_warm_up_sends_the_scenario_s_requests_over_one_connection() {
        let loads = Loads {
            wrk: Path::new("/usr/bin/wrk"),
            scripts: Path::new("/repo/xtask/bench"),
            token: "secret",
            settings: Settings {
                duration_s: 10,
                connections: 50,
                threads: 2,
            },
        };
        let filtered = &SCENARIOS[1];
        let measured = loads.measured(filtered, 4000);
        assert_eq!(measured.url, "http://127.0.0.1:4000/api/deployments");
        assert_eq!(
            measured.script.as_deref(),
            Some(Path::new("/repo/xtask/bench/filtered_list.lua"))
        );
        assert_eq!(
            (measured.threads, measured.connections, measured.duration_s),
            (2, 50, 10)
        );
        let warm_up = loads.warm_up(filtered, 4000);
        assert_eq!(
            (warm_up.threads, warm_up.connections, warm_up.duration_s),
            (1, 1, 1)
        );
        assert_eq!(
            (&warm_up.url, &warm_up.script),
            (&measured.url, &measured.script)
        );
    }

    fn row(name: &str, requests_per_sec: f64, p99_ms: f64, peak_rss_mb: f64) -> ScenarioFigures {
        ScenarioFigures {
            name: name.into(),
            requests_per_sec,
            p50_ms: 1.0,
            p99_ms,
            max_ms: 20.0,
            requests: 200_000,
            errors: 0,
            peak_rss_mb,
        }
    }

    /// A run whose cached list does `rps` at `p99_ms` against a ceiling of 100,000 requests/s
    /// at 2 ms, and whose single deployment does half of that.
    fn report(connections: u32, rps: f64, p99_ms: f64, peak_rss_mb: f64, ready_ms: f64) -> Report {
        let mut figures = sample_figures(
            connections,
            Startup {
                ready_ms,
                idle_rss_mb: 9.5,
            },
            row("cached_list", rps, p99_ms, peak_rss_mb),
        );
        figures
            .scenarios
            .push(row("single_deployment", rps / 2.0, p99_ms, peak_rss_mb));
        Report::new(figures, row("ceiling", 100_000.0, 2.0, 4.0), coherence(100))
    }

    /// Replica figures of 100 rounds, `fresh` of whose reads showed the write.
    fn coherence(fresh: usize) -> Coherence {
        let spread = |p50: f64| replicas::Spread {
            p50,
            p99: p50 * 2.0,
            min: p50 / 2.0,
            max: p50 * 3.0,
        };
        Coherence {
            rounds: 100,
            fresh_reads: fresh,
            near_before_write: 98,
            write_ms_alone: spread(1.5),
            write_ms_with_replica: spread(2.0),
            invalidated_before_ack_ms: spread(0.25),
        }
    }

    #[test]
    fn every_scenario_is_set_against_the_ceiling_of_the_same_run() {
        let report = report(50, 60_000.0, 3.0, 20.0, 30.0);
        assert_eq!(
            report.of_ceiling,
            [
                OfCeiling {
                    name: "cached_list".into(),
                    requests_per_sec: 0.6,
                    p99: 1.5,
                },
                OfCeiling {
                    name: "single_deployment".into(),
                    requests_per_sec: 0.3,
                    p99: 1.5,
                },
            ]
        );
        // The ceiling's own memory is not the API's.
        assert!((report.figures.peak_rss_mb - 20.0).abs() < f64::EPSILON);
        let table = ceiling_table(&report);
        assert!(table.contains("100000 requests/s, p99 2.000 ms"), "{table}");
        assert!(
            table.contains("cached_list           60.0 % of its requests/s, p99 1.50x"),
            "{table}"
        );
        // A ceiling that measured nothing gives ratios of 0, never a division by zero.
        let empty = Report::new(
            sample_figures(
                50,
                Startup {
                    ready_ms: 1.0,
                    idle_rss_mb: 1.0,
                },
                row("cached_list", 1.0, 1.0, 1.0),
            ),
            row("ceiling", 0.0, 0.0, 0.0),
            coherence(100),
        );
        assert!(empty.of_ceiling[0].requests_per_sec.abs() < f64::EPSILON);
    }

    #[test]
    fn targets_are_reported_as_met_or_missed() {
        assert_eq!(
            target_lines(&report(50, 60_000.0, 3.0, 20.0, 30.0)),
            [
                "cached_list >= 50 % of the ceiling's requests/s, p99 <= 2x its p99, at 50 \
                 connections: 60.0 %, 1.50x, met",
                "single_deployment >= 50 % of the ceiling's requests/s, p99 <= 2x its p99, at 50 \
                 connections: 30.0 %, 1.50x, MISSED",
                "peak RSS under load < 24 MB: 20.0 MB, met",
                "ready within 50 ms of start: 30.0 ms, met",
                "a replica's read right after a write through another shows it: 100 of 100 (98 \
                 read from its near cache just before), met",
                "  the second replica emptied its near cache 0.250 ms (p50; p99 0.500, least \
                 0.125) before the writer's client had its 201; a write takes 2.000 ms (p50) \
                 with it, 1.500 ms alone",
            ]
        );
        let mut stale = report(50, 60_000.0, 3.0, 20.0, 30.0);
        stale.replicas = coherence(99);
        assert!(
            target_lines(&stale)[4]
                .ends_with("99 of 100 (98 read from its near cache just before), MISSED")
        );
        let lines = target_lines(&report(100, 90_000.0, 5.0, 25.0, 60.0));
        assert!(
            lines[0].ends_with("2.50x, MISSED (measured at 100 connections, not 50)"),
            "{}",
            lines[0]
        );
        assert!(lines[2].ends_with("MISSED") && lines[3].ends_with("MISSED"));
    }

    #[test]
    fn the_json_has_the_documented_fields() {
        let json = serde_json::to_value(report(50, 60_000.0, 3.0, 20.0, 30.0)).unwrap();
        assert_eq!(
            keys(&json),
            [
                "ceiling",
                "generated_at",
                "machine",
                "of_ceiling",
                "peak_rss_mb",
                "replicas",
                "scenarios",
                "settings",
                "startup"
            ]
        );
        assert_eq!(
            keys(&json["replicas"]),
            [
                "fresh_reads",
                "invalidated_before_ack_ms",
                "near_before_write",
                "rounds",
                "write_ms_alone",
                "write_ms_with_replica"
            ]
        );
        assert_eq!(
            keys(&json["replicas"]["write_ms_alone"]),
            ["max", "min", "p50", "p99"]
        );
        assert_eq!(keys(&json["machine"]), ["cpus", "kernel"]);
        assert_eq!(
            keys(&json["settings"]),
            ["connections", "duration_s", "threads"]
        );
        assert_eq!(keys(&json["startup"]), ["idle_rss_mb", "ready_ms"]);
        let scenario = [
            "errors",
            "max_ms",
            "name",
            "p50_ms",
            "p99_ms",
            "peak_rss_mb",
            "requests",
            "requests_per_sec",
        ];
        assert_eq!(keys(&json["scenarios"][0]), scenario);
        assert_eq!(keys(&json["ceiling"]), scenario);
        assert_eq!(
            keys(&json["of_ceiling"][0]),
            ["name", "p99", "requests_per_sec"]
        );
    }
}
