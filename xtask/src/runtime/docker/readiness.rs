//! Waiting for a container to be ready: its readiness probe, run by us, and the rules that turn
//! what the engine reports into "ready", "keep waiting" or "failed, and why".

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::StreamExt as _;

use super::DockerRuntime;
use super::plan::{Check, ContainerPlan};

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
    let poll = Duration::from_millis(250);
    let mut last_wait = String::from("starting");
    // A crashing process restarted between two looks shows as running with exit code 0; the
    // engine's `die` events keep the real code.
    let mut deaths = match runtime.inspect(name).await? {
        Some(details) => Some(deaths_of(runtime, details.id.as_deref().unwrap_or(name))),
        None => None,
    };
    let mut last_exit: Option<i64> = None;
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
        if running && let Some(readiness) = &plan.readiness {
            let delay = Duration::from_secs(readiness.initial_delay_secs.into());
            seen.probe = Some(if started.elapsed() < delay {
                Err("initial delay".to_owned())
            } else {
                let ip = super::describe(&details, &runtime.names().network()).ip;
                let deadline = Duration::from_secs(readiness.timeout_secs.into());
                probe(runtime, plan, &readiness.check, ip.as_deref(), deadline).await
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
        let pause = tokio::time::sleep(poll);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                () = &mut pause => break,
                Some(code) = next_death(&mut deaths) => last_exit = Some(code),
            }
        }
    }
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
    let readiness = plan.readiness.as_ref()?;
    let deadline = Duration::from_secs(readiness.timeout_secs.into());
    Some(probe(runtime, plan, &readiness.check, ip, deadline).await)
}

fn indent_logs(logs: &str) -> String {
    if logs.is_empty() {
        return "  (it printed nothing)".to_owned();
    }
    let lines: Vec<String> = logs.lines().map(|l| format!("  | {l}")).collect();
    format!("  its last log lines:\n{}", lines.join("\n"))
}

/// Runs one probe. HTTP and TCP probes go to the published host port when there is one (which
/// also works where container addresses are not routable, as on Docker Desktop), else to the
/// container's address on the stack network.
async fn probe(
    runtime: &DockerRuntime,
    plan: &ContainerPlan,
    check: &Check,
    ip: Option<&str>,
    deadline: Duration,
) -> Result<(), String> {
    let address = |port: u16| -> Result<SocketAddr, String> {
        if let Some(p) = plan.published.iter().find(|p| p.container_port == port) {
            return format!("{}:{}", p.host_ip, p.host_port)
                .parse()
                .map_err(|_| format!("bad host address {}", p.host_ip));
        }
        let ip = ip.ok_or("no address on the stack network yet")?;
        format!("{ip}:{port}")
            .parse()
            .map_err(|_| format!("bad container address {ip}"))
    };
    match check {
        Check::Exec(command) => {
            match tokio::time::timeout(
                deadline.max(Duration::from_secs(2)),
                super::exec::capture(runtime.docker(), &plan.container_name, command, None, &[]),
            )
            .await
            {
                Err(_) => Err(format!("`{}` timed out", command.join(" "))),
                Ok(Err(err)) => Err(format!("`{}` could not run: {err:#}", command.join(" "))),
                Ok(Ok(out)) if out.exit_code == 0 => Ok(()),
                Ok(Ok(out)) => Err(format!(
                    "`{}` exited with {}",
                    command.join(" "),
                    out.exit_code
                )),
            }
        }
        Check::Http { port, path } => {
            let addr = address(*port)?;
            let url = format!("http://{addr}{path}");
            let client = reqwest::Client::builder()
                .timeout(deadline)
                .build()
                .map_err(|e| e.to_string())?;
            match client.get(&url).send().await {
                Ok(response) if (200..400).contains(&response.status().as_u16()) => Ok(()),
                Ok(response) => Err(format!("GET {path} answered {}", response.status())),
                Err(err) if err.is_timeout() => Err(format!(
                    "GET {path}: no answer within {}s",
                    deadline.as_secs_f32()
                )),
                // Refused, or (through Docker's port proxy, which accepts for a container that
                // is not listening yet) reset before an answer: the normal state while it starts.
                Err(err) if err.is_connect() || err.is_request() => {
                    Err(format!("GET {path}: not answering yet"))
                }
                Err(err) => Err(format!("GET {path}: {err}")),
            }
        }
        Check::Tcp { port } => {
            let addr = address(*port)?;
            match tokio::time::timeout(deadline, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(err)) => Err(format!("port {port}: {err}")),
                Err(_) => Err(format!("port {port}: timed out")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
