//! The three probes of a container (startup, liveness, readiness) as the kubelet runs them: one
//! probe action, judged as the kubelet judges it, and the thresholds that turn single results
//! into a verdict. `dev` waits with them, `status` runs the readiness probe, and the docker
//! runtime's kubelet ([`super::kubelet`]) runs all three for as long as the stack is up.
//!
//! The kubelet judges an exec probe by its exit code alone and an HTTP probe by its status code
//! alone (200 to 399): a probe that must check what the service answers does so itself, which is
//! why the Redis probe in `manifests/redis.yaml` compares the reply with `PONG`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail};
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};

/// One probe action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Check {
    /// A command run inside the container, without a shell; exit code 0 passes.
    Exec(Vec<String>),
    /// An HTTP GET on a container port; a status from 200 to 399 passes.
    Http { port: u16, path: String },
    /// A TCP connection to a container port; connecting passes.
    Tcp { port: u16 },
}

/// A probe with Kubernetes' timing and thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Probe {
    pub(crate) check: Check,
    pub(crate) initial_delay_secs: u32,
    pub(crate) period_secs: u32,
    pub(crate) timeout_secs: u32,
    /// Consecutive successes that make a failing probe pass again.
    pub(crate) success_threshold: u32,
    /// Consecutive failures that make a passing probe fail.
    pub(crate) failure_threshold: u32,
}

impl Probe {
    /// How long one run may take.
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.into())
    }

    /// The time between two runs.
    pub(crate) fn period(&self) -> Duration {
        Duration::from_secs(self.period_secs.into())
    }

    /// The time from the container's start to the first run.
    pub(crate) fn initial_delay(&self) -> Duration {
        Duration::from_secs(self.initial_delay_secs.into())
    }
}

/// A container's probes; a missing probe always passes, as in Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Probes {
    pub(crate) startup: Option<Probe>,
    pub(crate) liveness: Option<Probe>,
    pub(crate) readiness: Option<Probe>,
}

/// Reads a container's three probes, with the kubelet's defaults for unset fields.
pub(crate) fn probes_of(container: &Container) -> anyhow::Result<Probes> {
    let read = |probe: &Option<k8s_openapi::api::core::v1::Probe>, which: &str, single: bool| {
        probe
            .as_ref()
            .map(|probe| read_probe(container, probe, single))
            .transpose()
            .map_err(|err| anyhow!("{which}: {err:#}"))
    };
    Ok(Probes {
        startup: read(&container.startup_probe, "startupProbe", true)?,
        liveness: read(&container.liveness_probe, "livenessProbe", true)?,
        readiness: read(&container.readiness_probe, "readinessProbe", false)?,
    })
}

/// One probe. `single_success`: liveness and startup probes must have a success threshold of 1,
/// which the API server enforces.
fn read_probe(
    container: &Container,
    probe: &k8s_openapi::api::core::v1::Probe,
    single_success: bool,
) -> anyhow::Result<Probe> {
    let check = if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        if command.is_empty() {
            bail!("exec.command is empty");
        }
        Check::Exec(command)
    } else if let Some(http) = &probe.http_get {
        Check::Http {
            port: to_port(container_port(container, &http.port)?)?,
            path: http.path.clone().unwrap_or_else(|| "/".to_owned()),
        }
    } else if let Some(tcp) = &probe.tcp_socket {
        Check::Tcp {
            port: to_port(container_port(container, &tcp.port)?)?,
        }
    } else {
        bail!("only exec, httpGet and tcpSocket probes are supported by the docker runtime");
    };
    let field = |value: Option<i32>, default: u32, min: u32, name: &str| match value {
        None => Ok(default),
        Some(v) => u32::try_from(v)
            .ok()
            .filter(|v| *v >= min)
            .ok_or_else(|| anyhow!("{name} must be at least {min}, not {v}")),
    };
    let success_threshold = field(probe.success_threshold, 1, 1, "successThreshold")?;
    if single_success && success_threshold != 1 {
        bail!("successThreshold must be 1 for liveness and startup probes");
    }
    Ok(Probe {
        check,
        initial_delay_secs: field(probe.initial_delay_seconds, 0, 0, "initialDelaySeconds")?,
        period_secs: field(probe.period_seconds, 10, 1, "periodSeconds")?,
        timeout_secs: field(probe.timeout_seconds, 1, 1, "timeoutSeconds")?,
        success_threshold,
        failure_threshold: field(probe.failure_threshold, 3, 1, "failureThreshold")?,
    })
}

/// A port given by number or by the name of one of the container's ports.
pub(crate) fn container_port(container: &Container, port: &IntOrString) -> anyhow::Result<i32> {
    match port {
        IntOrString::Int(number) => Ok(*number),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port)
            .ok_or_else(|| anyhow!("the container has no port named {name}")),
    }
}

/// A container port number as a TCP port.
pub(crate) fn to_port(port: i32) -> anyhow::Result<u16> {
    u16::try_from(port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| anyhow!("{port} is not a TCP port"))
}

/// A container port published on the host (a probe of that port goes there first).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Published {
    pub(crate) service: String,
    pub(crate) container_port: u16,
    pub(crate) host_ip: String,
    pub(crate) host_port: u16,
}

/// Where a probe goes: the container, its address on the stack network and its published ports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) container: &'a str,
    pub(crate) ip: Option<&'a str>,
    pub(crate) published: &'a [Published],
}

/// The most of a probe's output kept for a message, as the kubelet keeps the start of it.
const MAX_OUTPUT: usize = 400;

/// Runs one probe action once, within `timeout`. HTTP and TCP probes go to the published host
/// port when there is one (which also works where container addresses are not routable, as on
/// Docker Desktop), else to the container's address on the stack network. The error says why it
/// failed, with an exec probe's output.
pub(crate) async fn run(
    docker: &bollard::Docker,
    check: &Check,
    target: Target<'_>,
    timeout: Duration,
) -> Result<(), String> {
    let address = |port: u16| -> Result<SocketAddr, String> {
        if let Some(p) = target.published.iter().find(|p| p.container_port == port) {
            return format!("{}:{}", p.host_ip, p.host_port)
                .parse()
                .map_err(|_| format!("bad host address {}", p.host_ip));
        }
        let ip = target.ip.ok_or("no address on the stack network yet")?;
        format!("{ip}:{port}")
            .parse()
            .map_err(|_| format!("bad container address {ip}"))
    };
    match check {
        Check::Exec(command) => {
            let shown = command.join(" ");
            let ran = tokio::time::timeout(
                timeout,
                super::exec::capture(docker, target.container, command, None, &[]),
            )
            .await;
            match ran {
                Err(_) => Err(format!(
                    "`{shown}` timed out after {}s",
                    timeout.as_secs_f32()
                )),
                Ok(Err(err)) => Err(format!("`{shown}` could not run: {err:#}")),
                Ok(Ok(out)) if out.exit_code == 0 => Ok(()),
                Ok(Ok(out)) => {
                    let text = format!("{}{}", out.stdout_text(), out.stderr_text());
                    let text = text.trim();
                    if text.is_empty() {
                        Err(format!("`{shown}` exited with {}", out.exit_code))
                    } else {
                        Err(format!(
                            "`{shown}` exited with {}: {}",
                            out.exit_code,
                            shorten(text)
                        ))
                    }
                }
            }
        }
        Check::Http { port, path } => {
            let addr = address(*port)?;
            let url = format!("http://{addr}{path}");
            let client = reqwest::Client::builder()
                .timeout(timeout)
                // The kubelet does not follow redirects to other hosts; a redirect is a pass.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| e.to_string())?;
            match client.get(&url).send().await {
                Ok(response) if (200..400).contains(&response.status().as_u16()) => Ok(()),
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    let body = body.trim();
                    if body.is_empty() {
                        Err(format!("GET {path} answered {status}"))
                    } else {
                        Err(format!("GET {path} answered {status}: {}", shorten(body)))
                    }
                }
                Err(err) if err.is_timeout() => Err(format!(
                    "GET {path}: no answer within {}s",
                    timeout.as_secs_f32()
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
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(err)) => Err(format!("port {port}: {err}")),
                Err(_) => Err(format!("port {port}: timed out")),
            }
        }
    }
}

/// A probe's output cut to a message's length, on one line.
fn shorten(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= MAX_OUTPUT {
        one_line
    } else {
        let head: String = one_line.chars().take(MAX_OUTPUT).collect();
        format!("{head}…")
    }
}

/// The thresholds of one probe over its results: passing or failing, as the kubelet decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tracker {
    success_threshold: u32,
    failure_threshold: u32,
    passing: bool,
    successes: u32,
    failures: u32,
    /// The last failure's message.
    pub(crate) last_failure: Option<String>,
}

/// What one result did to a probe's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    None,
    /// It passes from now on.
    Passed,
    /// It fails from now on (the failure threshold was reached).
    Failed,
}

impl Tracker {
    /// A tracker that starts as `passing` (liveness: yes; readiness and startup: no).
    pub(crate) fn new(probe: &Probe, passing: bool) -> Self {
        Self {
            success_threshold: probe.success_threshold.max(1),
            failure_threshold: probe.failure_threshold.max(1),
            passing,
            successes: 0,
            failures: 0,
            last_failure: None,
        }
    }

    /// Whether the probe passes.
    pub(crate) fn passing(&self) -> bool {
        self.passing
    }

    /// Counts one result.
    pub(crate) fn record(&mut self, result: &Result<(), String>) -> Change {
        match result {
            Ok(()) => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                if !self.passing && self.successes >= self.success_threshold {
                    self.passing = true;
                    return Change::Passed;
                }
            }
            Err(why) => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                self.last_failure = Some(why.clone());
                // Reported once, when the count reaches the threshold: for a probe that never
                // passed (startup) as for one that did (liveness).
                if self.failures == self.failure_threshold {
                    self.passing = false;
                    return Change::Failed;
                }
            }
        }
        Change::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(success: u32, failure: u32) -> Probe {
        Probe {
            check: Check::Tcp { port: 1 },
            initial_delay_secs: 0,
            period_secs: 1,
            timeout_secs: 1,
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    fn run(tracker: &mut Tracker, results: &str) -> Vec<Change> {
        results
            .chars()
            .map(|c| {
                let result = if c == '+' {
                    Ok(())
                } else {
                    Err("no".to_owned())
                };
                tracker.record(&result)
            })
            .collect()
    }

    #[test]
    fn thresholds_count_consecutive_results_as_the_kubelet_does() {
        use Change::{Failed as F, None as N, Passed as P};
        // (success threshold, failure threshold, starts passing, results, changes, passing after)
        type Case<'a> = (u32, u32, bool, &'a str, &'a [Change], bool);
        let cases: &[Case<'_>] = &[
            // A liveness probe (passing at first) fails only at the third failure in a row.
            (1, 3, true, "--+--", &[N, N, N, N, N], true),
            (1, 3, true, "---", &[N, N, F], false),
            // After failing, one success makes it pass again (threshold 1).
            (1, 3, true, "---+", &[N, N, F, P], true),
            // Readiness starts failing: the first success passes it.
            (1, 3, false, "+", &[P], true),
            // A success threshold of 2 needs two in a row.
            (2, 1, false, "+-++", &[N, F, N, P], true),
            // Failures past the threshold report the change once.
            (1, 2, true, "----", &[N, F, N, N], false),
        ];
        for (success, failure, passing, results, changes, after) in cases {
            let mut tracker = Tracker::new(&probe(*success, *failure), *passing);
            let got = run(&mut tracker, results);
            assert_eq!(&got, changes, "{success}/{failure} {passing} {results}");
            assert_eq!(tracker.passing(), *after, "{success}/{failure} {results}");
        }
    }

    #[test]
    fn output_is_kept_short_and_on_one_line() {
        assert_eq!(
            shorten("MISCONF Redis\nis  configured"),
            "MISCONF Redis is configured"
        );
        let long = "x".repeat(1000);
        let short = shorten(&long);
        assert_eq!(short.chars().count(), MAX_OUTPUT + 1);
        assert!(short.ends_with('…'));
    }
}
