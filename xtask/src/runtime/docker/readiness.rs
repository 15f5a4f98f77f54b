//! Waiting for a container to be ready: its startup probe until it passes, then its readiness
//! probe (with its success threshold), run by us, and the rules that turn what the engine
//! reports into "ready", "keep waiting" or "failed, and why".

use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::StreamExt as _;

use super::DockerRuntime;
use super::plan::ContainerPlan;
use super::probe::{self, Change, Probe, Target, Tracker};

/// What one look at a container found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Observation {
    /// The engine's state: `created`, `running`, `restarting`, `exited`, `dead`, ...
    pub(crate) state: String,
    pub(crate) exit_code: Option<i64>,
    pub(crate) oom_killed: bool,
    /// How often the engine restarted it since we (re)created it.
    pub(crate) restarts: i64,
    /// The probe's result, when the container was running and the probe ran.
    pub(crate) probe: Option<Result<(), String>>,
}

/// The decision for one observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Ready,
    Wait(String),
    /// Waiting longer cannot help.
    Failed(String),
}

/// The readiness rules. A container that exited, died, was OOM-killed or restarted has failed:
/// with restart policy `unless-stopped` the engine would keep restarting a crashing process,
/// and waiting out the timeout would only hide the cause.
pub(crate) fn assess(seen: &Observation) -> Verdict {
    if seen.oom_killed {
        return Verdict::Failed(
            "it ran out of memory (OOM-killed); raise its memory limit in manifests/".into(),
        );
    }
    match seen.state.as_str() {
        "exited" | "dead" => {
            let code = seen
                .exit_code
                .map_or_else(|| "an unknown code".to_owned(), |c| c.to_string());
            return Verdict::Failed(format!("its process exited with {code}"));
        }
        "restarting" => {
            return Verdict::Failed(format!(
                "its process exited with {} (the engine keeps restarting it)",
                seen.exit_code.unwrap_or_default()
            ));
        }
        _ => {}
    }
    if seen.restarts > 0 {
        return Verdict::Failed(format!(
            "its process exited with {} and was restarted {} time(s)",
            seen.exit_code.unwrap_or_default(),
            seen.restarts
        ));
    }
    if seen.state != "running" {
        return Verdict::Wait(format!("container is {}", seen.state));
    }
    match &seen.probe {
        None | Some(Ok(())) => Verdict::Ready,
        Some(Err(why)) => Verdict::Wait(why.clone()),
    }
}

/// Polls until ready; on failure the error names the cause and shows the last log lines.
pub(crate) async fn wait(
    runtime: &DockerRuntime,
    plan: &ContainerPlan,
    timeout: Duration,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let name = &plan.container_name;
    // Poll fast: the probe's period is for a cluster under load, not for a developer waiting.
    let mut polls = poll_intervals();
    let mut last_wait = String::from("starting");
    // A crashing process restarted between two looks shows as running with exit code 0; the
    // engine's `die` events keep the real code.
    let mut deaths = match runtime.inspect(name).await? {
        Some(details) => Some(deaths_of(runtime, details.id.as_deref().unwrap_or(name))),
        None => None,
    };
    let mut last_exit: Option<i64> = None;
    let mut gates = Gates::new(plan);
    let delay = plan
        .probes
        .startup
        .as_ref()
        .or(plan.probes.readiness.as_ref())
        .map_or(Duration::ZERO, Probe::initial_delay);
    loop {
        let Some(details) = runtime.inspect(name).await? else {
            bail!(
                "{}: container {name} disappeared while starting; was `down` run meanwhile?",
                plan.workload
            );
        };
        let state = details.state.as_ref();
        let running = state.and_then(|s| s.running).unwrap_or(false);
        let restarts = details.restart_count.unwrap_or(0);
        if restarts > 0 && last_exit.is_none() {
            // Restarted before we saw it die: its `die` event (with the exit code) is on its
            // way; a moment's wait for it beats reporting a wrong code.
            if let Ok(Some(code)) =
                tokio::time::timeout(Duration::from_secs(2), next_death(&mut deaths)).await
            {
                last_exit = Some(code);
            }
        }
        let mut seen = Observation {
            state: state
                .and_then(|s| s.status)
                .map(|s| s.to_string())
                .unwrap_or_default(),
            exit_code: last_exit.or(state.and_then(|s| s.exit_code)),
            oom_killed: state.and_then(|s| s.oom_killed).unwrap_or(false),
            restarts,
            probe: None,
        };
        if running {
            let ip = super::describe(&details, &runtime.names().network()).ip;
            let target = Target {
                container: name,
                ip: ip.as_deref(),
                published: &plan.published,
            };
            seen.probe = Some(if started.elapsed() < delay {
                Err("initial delay".to_owned())
            } else {
                gates.check(runtime, target).await
            });
        }
        match assess(&seen) {
            Verdict::Ready => return Ok(started.elapsed()),
            Verdict::Failed(why) => {
                let logs = runtime.last_logs(name, 20).await;
                bail!(
                    "{} failed to start: {why}\n{}\nnext: fix the cause, then run `cargo xtask dev` again (`cargo xtask logs {}` shows everything)",
                    plan.workload,
                    indent_logs(&logs),
                    plan.workload
                );
            }
            Verdict::Wait(why) if refuses_the_password(&why) => {
                bail!(
                    "{} runs but refuses the stack's password: {why}\nnext: {STALE_DATA_HINT}",
                    plan.workload
                );
            }
            Verdict::Wait(why) => {
                if why != last_wait {
                    on_progress(&format!("{}: {why}", plan.workload));
                    last_wait = why;
                }
            }
        }
        if started.elapsed() >= timeout {
            let logs = runtime.last_logs(name, 20).await;
            bail!(
                "{} was not ready after {}s (last check: {last_wait})\n{}\nnext: `cargo xtask logs {}`, or raise the wait with --timeout",
                plan.workload,
                timeout.as_secs(),
                indent_logs(&logs),
                plan.workload
            );
        }
        let pause = tokio::time::sleep(polls.next().unwrap_or(POLL_EVERY));
        tokio::pin!(pause);
        loop {
            tokio::select! {
                () = &mut pause => break,
                Some(code) = next_death(&mut deaths) => last_exit = Some(code),
            }
        }
    }
}

/// How often a container that is not ready yet is looked at, once it has been a while.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// The pauses between looks: from 25 ms, doubling up to [`POLL_EVERY`]. A small app is ready
/// some 100 ms after it starts, and in the watch loop every look saved is time from the save.
fn poll_intervals() -> impl Iterator<Item = Duration> {
    std::iter::successors(Some(Duration::from_millis(25)), |pause| {
        Some((*pause * 2).min(POLL_EVERY))
    })
}

type Deaths = std::pin::Pin<Box<dyn futures_util::Stream<Item = i64> + Send>>;

/// The exit codes of a container's process, each time it dies, since the container was made.
fn deaths_of(runtime: &DockerRuntime, id: &str) -> Deaths {
    let filters = std::collections::HashMap::from([
        ("container", vec![id.to_owned()]),
        ("event", vec!["die".to_owned()]),
    ]);
    let options = bollard::query_parameters::EventsOptionsBuilder::new()
        .since("0")
        .filters(&filters)
        .build();
    Box::pin(
        runtime
            .docker()
            .events(Some(options))
            .filter_map(|event| async move {
                event.ok()?.actor?.attributes?.get("exitCode")?.parse().ok()
            }),
    )
}

async fn next_death(deaths: &mut Option<Deaths>) -> Option<i64> {
    match deaths {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// Runs the plan's readiness probe once, for `status`: `None` when it has no probe.
pub(crate) async fn check_once(
    runtime: &DockerRuntime,
    plan: &ContainerPlan,
    ip: Option<&str>,
) -> Option<Result<(), String>> {
    let readiness = plan.probes.readiness.as_ref()?;
    let target = Target {
        container: &plan.container_name,
        ip,
        published: &plan.published,
    };
    Some(
        probe::run(
            runtime.docker(),
            &readiness.check,
            target,
            readiness.timeout(),
        )
        .await,
    )
}

/// The probes `dev` waits on, in the kubelet's order: the startup probe until it passes, then
/// the readiness probe until it has passed as often in a row as its success threshold says.
struct Gates {
    startup: Option<(Probe, Tracker)>,
    readiness: Option<(Probe, Tracker)>,
}

impl Gates {
    fn new(plan: &ContainerPlan) -> Self {
        let gate =
            |probe: &Option<Probe>| probe.as_ref().map(|p| (p.clone(), Tracker::new(p, false)));
        Self {
            startup: gate(&plan.probes.startup),
            readiness: gate(&plan.probes.readiness),
        }
    }

    /// One look: `Ok` once every gate has passed, else why not yet.
    async fn check(&mut self, runtime: &DockerRuntime, target: Target<'_>) -> Result<(), String> {
        for (which, gate) in [
            ("startup", &mut self.startup),
            ("readiness", &mut self.readiness),
        ] {
            let Some((probe, tracker)) = gate else {
                continue;
            };
            if tracker.passing() {
                continue;
            }
            // Poll fast, whatever the probe's period: it is for a cluster under load, not for
            // a developer waiting.
            let result = probe::run(runtime.docker(), &probe.check, target, probe.timeout()).await;
            if tracker.record(&result) == Change::Passed {
                continue;
            }
            return Err(match result {
                Err(why) if which == "startup" => format!("starting: {why}"),
                Err(why) => why,
                Ok(()) => format!(
                    "{which} probe passed; it must pass {} times in a row",
                    probe.success_threshold
                ),
            });
        }
        Ok(())
    }
}

fn indent_logs(logs: &str) -> String {
    if logs.is_empty() {
        return "  (it printed nothing)".to_owned();
    }
    let lines: Vec<String> = logs.lines().map(|l| format!("  | {l}")).collect();
    format!("  its last log lines:\n{}", lines.join("\n"))
}

/// What to do when the database refuses the password the stack generated: its data volume was
/// initialised with another one, and PostgreSQL only reads the password on a first start.
const STALE_DATA_HINT: &str = "the database's data volume was initialised with another password (by another checkout using the same stack name, or before .wander/secrets.json was deleted); `cargo xtask down --volumes` removes that data so that `cargo xtask dev` starts it afresh, or give this checkout a stack of its own with WANDER_STACK";

/// Whether a failed readiness check is PostgreSQL refusing the password: waiting cannot help.
fn refuses_the_password(why: &str) -> bool {
    why.contains("password authentication failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_start_quick_and_settle_at_the_steady_pace() {
        let pauses: Vec<u64> = poll_intervals()
            .take(7)
            .map(|pause| pause.as_millis() as u64)
            .collect();
        assert_eq!(pauses, [25, 50, 100, 200, 250, 250, 250]);
    }

    #[test]
    fn a_refused_password_is_told_apart_from_a_server_still_starting() {
        assert!(refuses_the_password(
            "psql: error: connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  password authentication failed for user \"wander\""
        ));
        assert!(!refuses_the_password(
            "psql: error: connection to server at \"127.0.0.1\", port 5432 failed: Connection refused"
        ));
        assert!(
            STALE_DATA_HINT.contains("down --volumes") && STALE_DATA_HINT.contains("WANDER_STACK")
        );
    }

    fn seen(state: &str) -> Observation {
        Observation {
            state: state.to_owned(),
            exit_code: None,
            oom_killed: false,
            restarts: 0,
            probe: None,
        }
    }

    #[test]
    fn readiness_rules() {
        let cases: Vec<(Observation, &str)> = vec![
            (seen("running"), "ready"),
            (
                Observation {
                    probe: Some(Ok(())),
                    ..seen("running")
                },
                "ready",
            ),
            (
                Observation {
                    probe: Some(Err("GET /health answered 503".into())),
                    ..seen("running")
                },
                "wait",
            ),
            (seen("created"), "wait"),
            (
                Observation {
                    exit_code: Some(1),
                    ..seen("exited")
                },
                "failed",
            ),
            (
                Observation {
                    exit_code: Some(0),
                    ..seen("exited")
                },
                "failed",
            ),
            (seen("dead"), "failed"),
            (
                Observation {
                    exit_code: Some(2),
                    ..seen("restarting")
                },
                "failed",
            ),
            (
                Observation {
                    restarts: 1,
                    probe: Some(Ok(())),
                    ..seen("running")
                },
                "failed",
            ),
            (
                Observation {
                    oom_killed: true,
                    ..seen("running")
                },
                "failed",
            ),
        ];
        for (observation, expected) in cases {
            let verdict = assess(&observation);
            let got = match &verdict {
                Verdict::Ready => "ready",
                Verdict::Wait(_) => "wait",
                Verdict::Failed(_) => "failed",
            };
            assert_eq!(got, expected, "{observation:?} -> {verdict:?}");
        }
    }

    #[test]
    fn failures_say_what_happened() {
        let Verdict::Failed(why) = assess(&Observation {
            exit_code: Some(101),
            ..seen("exited")
        }) else {
            panic!("not a failure")
        };
        assert!(why.contains("101"), "{why}");
        let Verdict::Failed(why) = assess(&Observation {
            oom_killed: true,
            ..seen("exited")
        }) else {
            panic!("not a failure")
        };
        assert!(why.contains("memory"), "{why}");
    }

    #[test]
    fn log_lines_are_indented_and_silence_is_said() {
        assert_eq!(indent_logs(""), "  (it printed nothing)");
        assert_eq!(indent_logs("a\nb"), "  its last log lines:\n  | a\n  | b");
    }
}
