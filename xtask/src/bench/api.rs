//! `cargo xtask bench api`: the release API over ephemeral, seeded PostgreSQL and Redis, loaded
//! by wrk scenario after scenario, with start-up time and memory read from `/proc`.

use std::path::Path;

use anyhow::{Context as _, anyhow, bail};

use super::host::{free_port, target_dir};
use super::http::http_get;
use super::load::{Failures, Load, LoadRun, Settings};
use super::memory::{peak_rss_kib, reset_peak_rss};
use super::report::{Figures, ScenarioFigures};
use super::service::{Service, build_release, random_token, seeded_database, start_backing};
use super::{LoadArgs, LoadDefaults, Session};

/// How long the warm-up pass before a scenario lasts, over one connection: long enough to fill
/// every cache entry (and the connection pool) so that the measured pass sees the steady state,
/// short enough to be cheap, and a broken API shows in it at once.
const WARM_UP_SECS: u32 = 1;

/// The Lua scripts of the scenarios, relative to the repository root.
const SCRIPT_DIR: &str = "xtask/bench";

/// The variable through which the write scenario's script gets the API token.
const TOKEN_ENV: &str = "WANDER_BENCH_TOKEN";

/// The targets the figures are compared against in the printout (never enforced).
const TARGET_CACHED_P99_MS: f64 = 5.0;
const TARGET_CONNECTIONS: u32 = 50;
const TARGET_PEAK_RSS_MB: f64 = 40.0;
const TARGET_READY_MS: f64 = 200.0;

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

/// The JSON written to `--out`.
type Report = Figures;

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

    build_release(session, &["api"])?;
    let binary = target_dir(ctx).join("release/api");

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
        }

        for scenario in SCENARIOS.iter().filter(|s| s.instance == instance) {
            let (row, verdict) = run_scenario(session, &mut api, scenario, &loads)?;
            failures.check(ui, scenario.name, verdict);
            figures.push(row);
        }
    }

    let startup = startup.context("the cached API never started")?;
    let report = Report::new(bench.settings, startup, figures)?;
    report.print(None, &target_lines(&report));
    failures.verdict(
        SCENARIOS.len(),
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

/// The figures set against the targets, one line each, for people to read.
fn target_lines(report: &Report) -> Vec<String> {
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    let mut lines = Vec::new();
    if let Some(cached) = report.scenarios.iter().find(|s| s.name == "cached_list") {
        let caveat = if report.settings.connections == TARGET_CONNECTIONS {
            String::new()
        } else {
            format!(
                " (measured at {} connections, not {TARGET_CONNECTIONS})",
                report.settings.connections
            )
        };
        lines.push(format!(
            "cached_list p99 < {TARGET_CACHED_P99_MS} ms at {TARGET_CONNECTIONS} connections: \
             {:.3} ms, {}{caveat}",
            cached.p99_ms,
            verdict(cached.p99_ms < TARGET_CACHED_P99_MS)
        ));
    }
    lines.push(format!(
        "peak RSS under load < {TARGET_PEAK_RSS_MB} MB: {:.1} MB, {}",
        report.peak_rss_mb,
        verdict(report.peak_rss_mb < TARGET_PEAK_RSS_MB)
    ));
    lines.push(format!(
        "ready within {TARGET_READY_MS} ms of start: {:.1} ms, {}",
        report.startup.ready_ms,
        verdict(report.startup.ready_ms < TARGET_READY_MS)
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

    fn report(connections: u32, p99_ms: f64, peak_rss_mb: f64, ready_ms: f64) -> Report {
        sample_figures(
            connections,
            Startup {
                ready_ms,
                idle_rss_mb: 9.5,
            },
            ScenarioFigures {
                name: "cached_list".into(),
                requests_per_sec: 20_000.0,
                p50_ms: 1.0,
                p99_ms,
                max_ms: 20.0,
                requests: 200_000,
                errors: 0,
                peak_rss_mb,
            },
        )
    }

    #[test]
    fn targets_are_reported_as_met_or_missed() {
        assert_eq!(
            target_lines(&report(50, 4.2, 30.0, 80.0)),
            [
                "cached_list p99 < 5 ms at 50 connections: 4.200 ms, met",
                "peak RSS under load < 40 MB: 30.0 MB, met",
                "ready within 200 ms of start: 80.0 ms, met",
            ]
        );
        let lines = target_lines(&report(100, 7.0, 41.0, 250.0));
        assert_eq!(
            lines[0],
            "cached_list p99 < 5 ms at 50 connections: 7.000 ms, MISSED \
             (measured at 100 connections, not 50)"
        );
        assert!(lines[1].ends_with("MISSED") && lines[2].ends_with("MISSED"));
    }

    #[test]
    fn the_json_has_the_documented_fields() {
        let json = serde_json::to_value(report(50, 4.2, 30.0, 80.0)).unwrap();
        assert_eq!(
            keys(&json),
            [
                "generated_at",
                "machine",
                "peak_rss_mb",
                "scenarios",
                "settings",
                "startup"
            ]
        );
        assert_eq!(keys(&json["machine"]), ["cpus", "kernel"]);
        assert_eq!(
            keys(&json["settings"]),
            ["connections", "duration_s", "threads"]
        );
        assert_eq!(keys(&json["startup"]), ["idle_rss_mb", "ready_ms"]);
        assert_eq!(
            keys(&json["scenarios"][0]),
            [
                "errors",
                "max_ms",
                "name",
                "p50_ms",
                "p99_ms",
                "peak_rss_mb",
                "requests",
                "requests_per_sec"
            ]
        );
    }
}
