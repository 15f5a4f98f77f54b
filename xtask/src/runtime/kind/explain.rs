//! Plain-language causes, with a next step, for pods that do not become ready.
//!
//! A rollout that times out says only "0 of 1 updated replicas are available"; the reason sits in
//! the pod's container states and in its events, spelled in Kubernetes' terms. This turns the
//! usual ones into a sentence and a command to run, and passes the rest on as Kubernetes gave them.

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use k8s_openapi::jiff::Timestamp;

/// One reason a pod is not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// The pod's name, so the user can find it in `cargo xtask status`.
    pub(crate) pod: String,
    /// What went wrong, in one line.
    pub(crate) cause: String,
    /// What to do next, in one line.
    pub(crate) fix: String,
}

use crate::stack::NAME_LABEL as SERVICE_LABEL;

/// Longest piece of a Kubernetes message kept in a cause; scheduler and pull messages can run long.
const MAX_MESSAGE: usize = 300;

/// Why each of `pods` is not ready, in pod order; ready, finished and terminating pods give none.
///
/// `events` may hold events about anything; those about each pod are picked out by name (and
/// namespace when both sides have one), and the newest of a kind wins.
pub(crate) fn explain(pods: &[Pod], events: &[Event]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for pod in pods {
        explain_pod(pod, events, &mut findings);
    }
    findings
}

/// The findings as indented lines, a cause and its fix under it; empty when there are none.
pub(crate) fn render(findings: &[Finding]) -> String {
    let mut out = String::new();
    for finding in findings {
        let _ = writeln!(out, "  {}: {}", finding.pod, finding.cause);
        let _ = writeln!(out, "    fix: {}", finding.fix);
    }
    out
}

fn explain_pod(pod: &Pod, events: &[Event], findings: &mut Vec<Finding>) {
    if pod.metadata.deletion_timestamp.is_some() {
        // On its way out (the old pod of a rollout): whatever it shows is not the problem.
        return;
    }
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.as_deref().unwrap_or("Pending");
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let condition = |kind: &str| conditions.iter().find(|c| c.type_ == kind);
    if phase == "Succeeded" || condition("Ready").is_some_and(|c| c.status == "True") {
        return;
    }
    let about_pod: Vec<&Event> = events.iter().filter(|e| is_about(e, pod)).collect();
    let service = service_name(pod);
    let mut push = |cause: String, fix: String| {
        findings.push(Finding {
            pod: name.clone(),
            cause,
            fix,
        });
    };

    if phase == "Failed" {
        let reason = status.reason.as_deref().unwrap_or("Failed");
        let detail = status.message.as_deref().map(one_line).unwrap_or_default();
        push(
            format!("the pod failed ({reason}): {detail}")
                .trim_end_matches([':', ' '])
                .to_owned(),
            format!(
                "its controller starts a replacement; if that fails too, see `cargo xtask logs {service}`"
            ),
        );
        return;
    }

    let scheduling_event = newest(
        about_pod
            .iter()
            .copied()
            .filter(|e| reason_is(e, "FailedScheduling")),
    );
    let unscheduled = condition("PodScheduled").map(|c| c.status == "False");
    let not_on_a_node = pod
        .spec
        .as_ref()
        .is_none_or(|spec| spec.node_name.is_none());
    if unscheduled == Some(true)
        || (unscheduled.is_none() && not_on_a_node && scheduling_event.is_some())
    {
        let message = scheduling_event
            .and_then(|e| e.message.as_deref())
            .or_else(|| condition("PodScheduled").and_then(|c| c.message.as_deref()))
            .map_or_else(|| "no node can take it".to_owned(), one_line);
        let fix = scheduling_fix(&message);
        push(format!("Pending, cannot be scheduled: {message}"), fix);
        return;
    }

    let inits = status
        .init_container_statuses
        .as_deref()
        .unwrap_or_default();
    let mut found = false;
    for container in inits {
        let done = container
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0);
        if done {
            continue;
        }
        let label = format!("init container {}", container.name);
        if let Some((cause, fix)) =
            explain_container(pod, container, &label, &about_pod, &service, true)
        {
            push(cause, fix);
            found = true;
        }
    }
    if !found {
        // While an init container is stuck the others only say PodInitializing: no news.
        for container in status.container_statuses.as_deref().unwrap_or_default() {
            let label = format!("container {}", container.name);
            if let Some((cause, fix)) =
                explain_container(pod, container, &label, &about_pod, &service, false)
            {
                push(cause, fix);
                found = true;
            }
        }
    }
    if found {
        return;
    }
    // Nothing in the container states: the newest warning is the best lead there is.
    let warning = newest(
        about_pod
            .iter()
            .copied()
            .filter(|e| e.type_.as_deref() == Some("Warning")),
    );
    if let Some(event) = warning {
        let reason = event.reason.as_deref().unwrap_or("Warning");
        let message = event.message.as_deref().map(one_line).unwrap_or_default();
        push(format!("{reason}: {message}"), event_fix(reason, &service));
    } else {
        push(
            format!("{phase} and not ready, with no warning recorded yet"),
            "wait a little longer (a first start can be slow), then see `cargo xtask status`"
                .into(),
        );
    }
}

/// The cause and fix for one container that is not ready, or `None` when it is fine.
fn explain_container(
    pod: &Pod,
    container: &ContainerStatus,
    label: &str,
    about_pod: &[&Event],
    service: &str,
    init: bool,
) -> Option<(String, String)> {
    if !init && container.ready {
        return None;
    }
    let state = container.state.clone().unwrap_or_default();
    let last = container
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref());
    let restarts = container.restart_count;
    let logs = format!("see why with `cargo xtask logs {service}`");

    if let Some(waiting) = &state.waiting {
        let reason = waiting.reason.as_deref().unwrap_or_default();
        let message = waiting.message.as_deref().map(one_line).unwrap_or_default();
        match reason {
            "ErrImagePull" | "ImagePullBackOff" | "ErrImageNeverPull" => {
                return Some((
                    format!(
                        "image {} is not loaded into the cluster's node, so {label} cannot start ({reason})",
                        container.image
                    ),
                    "run `cargo xtask dev` again; it loads images into the cluster".into(),
                ));
            }
            "InvalidImageName" => {
                return Some((
                    format!(
                        "{label} names an invalid image {}: {message}",
                        container.image
                    ),
                    format!("correct the image of {} in manifests/", container.name),
                ));
            }
            "CreateContainerConfigError" => {
                return Some((
                    format!("{label} cannot be configured: {message}"),
                    config_fix(&message),
                ));
            }
            "CreateContainerError" | "RunContainerError" | "ContainerCannotRun" => {
                return Some((
                    format!("{label} cannot be started ({reason}): {message}"),
                    format!(
                        "check the command, mounts and security settings of {} in manifests/",
                        container.name
                    ),
                ));
            }
            _ => {}
        }
    }

    let terminated = state.terminated.as_ref().or(last);
    if let Some(end) = terminated.filter(|t| t.reason.as_deref() == Some("OOMKilled")) {
        let limit = memory_limit(pod, &container.name)
            .map(|limit| format!(" of {limit}"))
            .unwrap_or_default();
        return Some((
            format!(
                "{label} was killed for using more than its memory limit{limit} (OOMKilled, exit code {}, restarted {restarts} times)",
                end.exit_code
            ),
            format!(
                "raise resources.limits.memory of {} in manifests/, or find what grows with `cargo xtask logs {service}`",
                container.name
            ),
        ));
    }

    let crash_looping = state
        .waiting
        .as_ref()
        .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"));
    let exited_badly = state.terminated.as_ref().is_some_and(|t| t.exit_code != 0);
    if crash_looping || exited_badly {
        let exit = terminated.map_or_else(
            || "exited".to_owned(),
            |t| {
                let reason = t.reason.as_deref().unwrap_or("Error");
                let hint = exit_hint(t.exit_code)
                    .map(|h| format!(", {h}"))
                    .unwrap_or_default();
                let said = t
                    .message
                    .as_deref()
                    .map(one_line)
                    .filter(|m| !m.is_empty())
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                format!("exited with code {} ({reason}{hint}){said}", t.exit_code)
            },
        );
        let verb = if crash_looping {
            "keeps crashing"
        } else {
            "crashed"
        };
        return Some((
            format!("{label} {verb}: {exit}, restarted {restarts} times"),
            logs,
        ));
    }

    if let Some(waiting) = &state.waiting {
        let reason = waiting.reason.as_deref().unwrap_or("Waiting");
        let message = waiting.message.as_deref().map(one_line).unwrap_or_default();
        if matches!(reason, "ContainerCreating" | "PodInitializing") {
            // Stuck being created: volumes and the sandbox report through events, not the state.
            let warning = newest(about_pod.iter().copied().filter(|e| {
                e.type_.as_deref() == Some("Warning") && about_container(e, &container.name)
            }));
            if let Some(event) = warning {
                let event_reason = event.reason.as_deref().unwrap_or("Warning");
                let event_message = event.message.as_deref().map(one_line).unwrap_or_default();
                return Some((
                    format!("{label} is stuck in {reason}: {event_reason}: {event_message}"),
                    event_fix(event_reason, service),
                ));
            }
            return Some((
                format!("{label} is still being created ({reason})"),
                "wait a little longer, then see `cargo xtask status`".into(),
            ));
        }
        let detail = if message.is_empty() {
            String::new()
        } else {
            format!(": {message}")
        };
        return Some((
            format!("{label} is waiting ({reason}){detail}"),
            format!("see `cargo xtask status`; if it stays so, {logs}"),
        ));
    }

    if state.running.is_some() {
        let probe = newest(
            about_pod
                .iter()
                .copied()
                .filter(|e| reason_is(e, "Unhealthy") && about_container(e, &container.name)),
        );
        if let Some(event) = probe {
            let message = event.message.as_deref().map(one_line).unwrap_or_default();
            return Some((
                format!("{label} runs but is not ready: {message}"),
                format!("{logs}; its probes are in manifests/"),
            ));
        }
        let what = if init {
            "is still running"
        } else {
            "runs but is not ready yet"
        };
        return Some((
            format!("{label} {what}, with no probe failure recorded"),
            format!("wait a little longer; if it stays so, {logs}"),
        ));
    }
    None
}

/// Whether `event` is about `pod`: same name, and same namespace when both say.
fn is_about(event: &Event, pod: &Pod) -> bool {
    let object = &event.involved_object;
    let kind_fits = object.kind.as_deref().is_none_or(|kind| kind == "Pod");
    let same_namespace = match (&object.namespace, &pod.metadata.namespace) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    kind_fits && same_namespace && object.name.is_some() && object.name == pod.metadata.name
}

/// Whether `event` concerns the container `name`, or the pod as a whole.
fn about_container(event: &Event, name: &str) -> bool {
    // kubelet points at the container as `spec.containers{api}` or `spec.initContainers{migrate}`.
    event
        .involved_object
        .field_path
        .as_deref()
        .is_none_or(|path| path.ends_with(&format!("{{{name}}}")))
}

fn reason_is(event: &Event, reason: &str) -> bool {
    event.reason.as_deref() == Some(reason)
}

/// The newest of `events`; among equally old ones (or ones with no time), the last given.
fn newest<'a>(events: impl Iterator<Item = &'a Event>) -> Option<&'a Event> {
    events.max_by_key(|e| when(e))
}

/// When an event last happened, from whichever of its timestamps is set.
fn when(event: &Event) -> Option<Timestamp> {
    event
        .series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref())
        .map(|t| t.0)
        .or_else(|| event.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The service `cargo xtask logs` knows the pod by: its name label, else its first container.
fn service_name(pod: &Pod) -> String {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(SERVICE_LABEL).cloned())
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|spec| spec.containers.first())
                .map(|c| c.name.clone())
        })
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default())
}

/// The container's memory limit as written in the pod spec, e.g. `256Mi`.
fn memory_limit(pod: &Pod, container: &str) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let found = spec
        .containers
        .iter()
        .find(|c| c.name == container)
        .or_else(|| {
            spec.init_containers
                .iter()
                .flatten()
                .find(|c| c.name == container)
        })?;
    let limits = found.resources.as_ref()?.limits.as_ref()?;
    limits.get("memory").map(|q| q.0.clone())
}

/// What an exit code usually means, for the codes with a common meaning.
fn exit_hint(code: i32) -> Option<String> {
    let hint = match code {
        0 => "the process ended on its own, but a service must keep running".to_owned(),
        126 => "the command is not executable".to_owned(),
        127 => "the command was not found in the image".to_owned(),
        137 => "killed by SIGKILL, e.g. after failing its liveness probe".to_owned(),
        139 => "segmentation fault".to_owned(),
        143 => "stopped by SIGTERM".to_owned(),
        129..=159 => format!("killed by signal {}", code - 128),
        _ => return None,
    };
    Some(hint)
}

/// The next step for a pod the scheduler cannot place, from the scheduler's own words.
fn scheduling_fix(message: &str) -> String {
    if message.contains("Insufficient memory") || message.contains("Insufficient cpu") {
        "lower resources.requests in manifests/, or give Docker more memory and CPUs (the kind node is a container)".into()
    } else if message.contains("PersistentVolumeClaim") {
        "check the volume claim binds: kind's default StorageClass `standard` must exist (`cargo xtask status`)".into()
    } else if message.contains("taint") {
        "the node is tainted (often not Ready yet, or short of disk); run `cargo xtask doctor`, or recreate the cluster with `cargo xtask down` then `cargo xtask dev`".into()
    } else {
        "compare the pod's requests, nodeSelector and affinity in manifests/ with the node".into()
    }
}

/// The next step for a container whose env or volumes refer to something missing.
fn config_fix(message: &str) -> String {
    let lower = message.to_lowercase();
    if lower.contains("secret") {
        "run `cargo xtask dev` again; it applies the generated Secrets (and check the key names in manifests/)".into()
    } else if lower.contains("configmap") {
        "add the missing ConfigMap or key in manifests/config.yaml, then run `cargo xtask dev` again".into()
    } else if lower.contains("runasnonroot") {
        "the image would run as root: give it a numeric non-root USER, or set runAsUser in manifests/".into()
    } else {
        "correct the container's env and volume references in manifests/, then run `cargo xtask dev` again".into()
    }
}

/// The next step after a warning event that the container states did not explain.
fn event_fix(reason: &str, service: &str) -> String {
    match reason {
        "FailedMount" | "FailedAttachVolume" => {
            "create what the message names (a ConfigMap, Secret or claim in manifests/), then run `cargo xtask dev` again".into()
        }
        "FailedCreatePodSandBox" => {
            "the node cannot set up the pod's network; recreate the cluster with `cargo xtask down` then `cargo xtask dev`".into()
        }
        "Unhealthy" | "BackOff" => format!("see why with `cargo xtask logs {service}`"),
        _ => "see `cargo xtask status`; the reason is Kubernetes' own".into(),
    }
}

/// `text` on one line, and not too long to read.
fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() <= MAX_MESSAGE {
        return joined;
    }
    let cut: String = joined.chars().take(MAX_MESSAGE).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// An `api` pod as the Deployment creates it, with `status` as the kubelet reported it.
    fn pod(name: &str, status: Value) -> Pod {
        let mut object = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": "wander",
                "labels": { "app.kubernetes.io/name": "api", "pod-template-hash": "6d5f8c7b9" }
            },
            "spec": {
                "nodeName": "wander-control-plane",
                "initContainers": [{ "name": "wait-db", "image": "wander/toolbox:1" }],
                "containers": [{
                    "name": "api",
                    "image": "wander/api:3f9a1c",
                    "resources": { "limits": { "cpu": "1", "memory": "256Mi" } }
                }]
            }
        });
        object["status"] = status;
        serde_json::from_value(object).expect("a valid Pod")
    }

    fn not_ready() -> Value {
        json!([
            { "type": "PodScheduled", "status": "True" },
            { "type": "Initialized", "status": "True" },
            { "type": "ContainersReady", "status": "False", "reason": "ContainersNotReady" },
            { "type": "Ready", "status": "False", "reason": "ContainersNotReady" }
        ])
    }

    fn init_done() -> Value {
        json!([{
            "name": "wait-db", "image": "wander/toolbox:1", "ready": false, "restartCount": 0,
            "state": { "terminated": { "exitCode": 0, "reason": "Completed" } }
        }])
    }

    /// A pod whose `api` container is in `state` (with `last` as its previous end).
    fn api_pod(name: &str, state: Value, last: Value, restarts: i32) -> Pod {
        let mut status = json!({
                "phase": "Running",
                "conditions": not_ready(),
                "initContainerStatuses": init_done(),
                "containerStatuses": [{
                    "name": "api", "image": "wander/api:3f9a1c", "imageID": "",
                    "ready": false, "started": false, "restartCount": restarts
                }]
        });
        status["containerStatuses"][0]["state"] = state;
        status["containerStatuses"][0]["lastState"] = last;
        pod(name, status)
    }

    fn event(
        pod: &str,
        reason: &str,
        kind: &str,
        message: &str,
        at: &str,
        path: Option<&str>,
    ) -> Event {
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": { "name": format!("{pod}.{reason}.{at}"), "namespace": "wander" },
            "involvedObject": { "kind": "Pod", "name": pod, "namespace": "wander", "fieldPath": path },
            "reason": reason,
            "type": kind,
            "message": message,
            "firstTimestamp": "2025-06-01T10:00:00Z",
            "lastTimestamp": at,
            "count": 1
        }))
        .expect("a valid Event")
    }

    struct Case {
        name: &'static str,
        pods: Vec<Pod>,
        events: Vec<Event>,
        /// (pod, exact cause, a piece of the fix) for each finding, in order.
        expected: Vec<(&'static str, &'static str, &'static str)>,
    }

    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "image not loaded",
                pods: vec![api_pod(
                    "api-6d5f8c7b9-x2kqz",
                    json!({ "waiting": { "reason": "ImagePullBackOff",
                        "message": "Back-off pulling image \"wander/api:3f9a1c\"" } }),
                    json!({}),
                    0,
                )],
                events: vec![event(
                    "api-6d5f8c7b9-x2kqz",
                    "Failed",
                    "Warning",
                    "Failed to pull image \"wander/api:3f9a1c\": failed to resolve reference",
                    "2025-06-01T10:00:05Z",
                    Some("spec.containers{api}"),
                )],
                expected: vec![(
                    "api-6d5f8c7b9-x2kqz",
                    "image wander/api:3f9a1c is not loaded into the cluster's node, so container api cannot start (ImagePullBackOff)",
                    "run `cargo xtask dev` again; it loads images into the cluster",
                )],
            },
            Case {
                name: "image pull error before the back-off",
                pods: vec![api_pod(
                    "api-1",
                    json!({ "waiting": { "reason": "ErrImagePull", "message": "rpc error: code = NotFound" } }),
                    json!({}),
                    0,
                )],
                events: vec![],
                expected: vec![(
                    "api-1",
                    "image wander/api:3f9a1c is not loaded into the cluster's node, so container api cannot start (ErrImagePull)",
                    "loads images into the cluster",
                )],
            },
            Case {
                name: "crash loop",
                pods: vec![api_pod(
                    "api-2",
                    json!({ "waiting": { "reason": "CrashLoopBackOff",
                        "message": "back-off 40s restarting failed container=api pod=api-2_wander(0b1c)" } }),
                    json!({ "terminated": { "exitCode": 1, "reason": "Error",
                        "startedAt": "2025-06-01T10:00:10Z", "finishedAt": "2025-06-01T10:00:11Z" } }),
                    4,
                )],
                events: vec![],
                expected: vec![(
                    "api-2",
                    "container api keeps crashing: exited with code 1 (Error), restarted 4 times",
                    "`cargo xtask logs api`",
                )],
            },
            Case {
                name: "crash loop on a command the image lacks, with its termination message",
                pods: vec![api_pod(
                    "api-3",
                    json!({ "waiting": { "reason": "CrashLoopBackOff" } }),
                    json!({ "terminated": { "exitCode": 127, "reason": "Error",
                        "message": "exec /usr/local/bin/api:\n no such file or directory" } }),
                    2,
                )],
                events: vec![],
                expected: vec![(
                    "api-3",
                    "container api keeps crashing: exited with code 127 (Error, the command was not found in the image): exec /usr/local/bin/api: no such file or directory, restarted 2 times",
                    "`cargo xtask logs api`",
                )],
            },
            Case {
                name: "out of memory wins over the crash loop it causes",
                pods: vec![api_pod(
                    "api-4",
                    json!({ "waiting": { "reason": "CrashLoopBackOff" } }),
                    json!({ "terminated": { "exitCode": 137, "reason": "OOMKilled" } }),
                    3,
                )],
                events: vec![],
                expected: vec![(
                    "api-4",
                    "container api was killed for using more than its memory limit of 256Mi (OOMKilled, exit code 137, restarted 3 times)",
                    "raise resources.limits.memory of api in manifests/",
                )],
            },
            Case {
                name: "missing Secret key",
                pods: vec![api_pod(
                    "api-5",
                    json!({ "waiting": { "reason": "CreateContainerConfigError",
                        "message": "couldn't find key api-token in Secret wander/wander-secrets" } }),
                    json!({}),
                    0,
                )],
                events: vec![],
                expected: vec![(
                    "api-5",
                    "container api cannot be configured: couldn't find key api-token in Secret wander/wander-secrets",
                    "it applies the generated Secrets",
                )],
            },
            Case {
                name: "missing ConfigMap",
                pods: vec![api_pod(
                    "api-6",
                    json!({ "waiting": { "reason": "CreateContainerConfigError",
                        "message": "configmap \"wander-config\" not found" } }),
                    json!({}),
                    0,
                )],
                events: vec![],
                expected: vec![(
                    "api-6",
                    "container api cannot be configured: configmap \"wander-config\" not found",
                    "manifests/config.yaml",
                )],
            },
            Case {
                name: "unschedulable: the newest scheduler message wins",
                pods: vec![pod(
                    "api-7",
                    json!({
                        "phase": "Pending",
                        "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                            "message": "0/1 nodes are available: 1 Insufficient cpu." }]
                    }),
                )],
                events: vec![
                    event(
                        "api-7",
                        "FailedScheduling",
                        "Warning",
                        "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
                        "2025-06-01T10:02:00Z",
                        None,
                    ),
                    event(
                        "api-7",
                        "FailedScheduling",
                        "Warning",
                        "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.",
                        "2025-06-01T10:00:00Z",
                        None,
                    ),
                    event(
                        "api-other",
                        "FailedScheduling",
                        "Warning",
                        "0/1 nodes are available: about another pod.",
                        "2025-06-01T10:09:00Z",
                        None,
                    ),
                ],
                expected: vec![(
                    "api-7",
                    "Pending, cannot be scheduled: 0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
                    "give Docker more memory",
                )],
            },
            Case {
                name: "unschedulable with no event: the condition's message",
                pods: vec![pod(
                    "api-8",
                    json!({
                        "phase": "Pending",
                        "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                            "message": "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims." }]
                    }),
                )],
                events: vec![],
                expected: vec![(
                    "api-8",
                    "Pending, cannot be scheduled: 0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.",
                    "StorageClass `standard`",
                )],
            },
            Case {
                name: "readiness probe failing: the newest output of this container",
                pods: vec![api_pod(
                    "api-9",
                    json!({ "running": { "startedAt": "2025-06-01T10:00:03Z" } }),
                    json!({}),
                    0,
                )],
                events: vec![
                    event(
                        "api-9",
                        "Unhealthy",
                        "Warning",
                        "Readiness probe failed: Get \"http://10.244.0.7:8080/health\": dial tcp 10.244.0.7:8080: connect: connection refused",
                        "2025-06-01T10:00:04Z",
                        Some("spec.containers{api}"),
                    ),
                    event(
                        "api-9",
                        "Unhealthy",
                        "Warning",
                        "Readiness probe failed: HTTP probe failed with statuscode: 503",
                        "2025-06-01T10:01:30Z",
                        Some("spec.containers{api}"),
                    ),
                    event(
                        "api-9",
                        "Unhealthy",
                        "Warning",
                        "Readiness probe failed: from a sidecar, newer but not ours",
                        "2025-06-01T10:05:00Z",
                        Some("spec.containers{proxy}"),
                    ),
                ],
                expected: vec![(
                    "api-9",
                    "container api runs but is not ready: Readiness probe failed: HTTP probe failed with statuscode: 503",
                    "`cargo xtask logs api`",
                )],
            },
            Case {
                name: "running, not ready, nothing recorded",
                pods: vec![api_pod(
                    "api-10",
                    json!({ "running": { "startedAt": "2025-06-01T10:00:03Z" } }),
                    json!({}),
                    0,
                )],
                events: vec![],
                expected: vec![(
                    "api-10",
                    "container api runs but is not ready yet, with no probe failure recorded",
                    "wait a little longer",
                )],
            },
            Case {
                name: "stuck creating: a volume that cannot mount",
                pods: vec![api_pod(
                    "api-11",
                    json!({ "waiting": { "reason": "ContainerCreating" } }),
                    json!({}),
                    0,
                )],
                events: vec![event(
                    "api-11",
                    "FailedMount",
                    "Warning",
                    "MountVolume.SetUp failed for volume \"config\" : configmap \"redis-config\" not found",
                    "2025-06-01T10:00:30Z",
                    None,
                )],
                expected: vec![(
                    "api-11",
                    "container api is stuck in ContainerCreating: FailedMount: MountVolume.SetUp failed for volume \"config\" : configmap \"redis-config\" not found",
                    "create what the message names",
                )],
            },
            Case {
                name: "init container crash loop hides the main container",
                pods: vec![pod(
                    "api-12",
                    json!({
                        "phase": "Pending",
                        "conditions": [{ "type": "PodScheduled", "status": "True" },
                                       { "type": "Initialized", "status": "False" }],
                        "initContainerStatuses": [{
                            "name": "wait-db", "image": "wander/toolbox:1", "imageID": "", "ready": false,
                            "restartCount": 5,
                            "state": { "waiting": { "reason": "CrashLoopBackOff" } },
                            "lastState": { "terminated": { "exitCode": 2, "reason": "Error" } }
                        }],
                        "containerStatuses": [{
                            "name": "api", "image": "wander/api:3f9a1c", "imageID": "", "ready": false,
                            "restartCount": 0, "state": { "waiting": { "reason": "PodInitializing" } }
                        }]
                    }),
                )],
                events: vec![],
                expected: vec![(
                    "api-12",
                    "init container wait-db keeps crashing: exited with code 2 (Error), restarted 5 times",
                    "`cargo xtask logs api`",
                )],
            },
            Case {
                name: "unknown waiting reason is passed on",
                pods: vec![api_pod(
                    "api-13",
                    json!({ "waiting": { "reason": "ContainerStatusUnknown", "message": "The container could not be located" } }),
                    json!({}),
                    0,
                )],
                events: vec![],
                expected: vec![(
                    "api-13",
                    "container api is waiting (ContainerStatusUnknown): The container could not be located",
                    "`cargo xtask status`",
                )],
            },
            Case {
                name: "evicted pod",
                pods: vec![pod(
                    "api-14",
                    json!({ "phase": "Failed", "reason": "Evicted",
                            "message": "The node was low on resource: memory." }),
                )],
                events: vec![],
                expected: vec![(
                    "api-14",
                    "the pod failed (Evicted): The node was low on resource: memory.",
                    "starts a replacement",
                )],
            },
            Case {
                name: "ready, terminating and finished pods say nothing",
                pods: vec![
                    pod(
                        "api-ready",
                        json!({ "phase": "Running", "conditions": [{ "type": "Ready", "status": "True" }],
                                "containerStatuses": [{ "name": "api", "image": "wander/api:3f9a1c", "imageID": "",
                                    "ready": true, "restartCount": 1, "state": { "running": {} },
                                    "lastState": { "terminated": { "exitCode": 137, "reason": "OOMKilled" } } }] }),
                    ),
                    {
                        let mut old = api_pod(
                            "api-old",
                            json!({ "waiting": { "reason": "CrashLoopBackOff" } }),
                            json!({ "terminated": { "exitCode": 1, "reason": "Error" } }),
                            9,
                        );
                        old.metadata.deletion_timestamp =
                            serde_json::from_value(json!("2025-06-01T10:00:00Z")).expect("time");
                        old
                    },
                    pod("seed-job", json!({ "phase": "Succeeded" })),
                ],
                events: vec![],
                expected: vec![],
            },
            Case {
                name: "no container states: the newest warning",
                pods: vec![pod(
                    "api-15",
                    json!({ "phase": "Pending", "conditions": [{ "type": "PodScheduled", "status": "True" }] }),
                )],
                events: vec![
                    event(
                        "api-15",
                        "Scheduled",
                        "Normal",
                        "Successfully assigned wander/api-15",
                        "2025-06-01T10:00:09Z",
                        None,
                    ),
                    event(
                        "api-15",
                        "FailedCreatePodSandBox",
                        "Warning",
                        "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network",
                        "2025-06-01T10:00:08Z",
                        None,
                    ),
                ],
                expected: vec![(
                    "api-15",
                    "FailedCreatePodSandBox: Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network",
                    "recreate the cluster",
                )],
            },
        ]
    }

    #[test]
    fn pods_are_explained_in_plain_words() {
        for case in cases() {
            let findings = explain(&case.pods, &case.events);
            assert_eq!(
                findings.len(),
                case.expected.len(),
                "{}: {findings:#?}",
                case.name
            );
            for (finding, (pod, cause, fix)) in findings.iter().zip(&case.expected) {
                assert_eq!(finding.pod, *pod, "{}", case.name);
                assert_eq!(finding.cause, *cause, "{}", case.name);
                assert!(
                    finding.fix.contains(fix),
                    "{}: fix {:?} lacks {fix:?}",
                    case.name,
                    finding.fix
                );
                assert!(
                    !finding.cause.contains('\n') && !finding.fix.contains('\n'),
                    "{}",
                    case.name
                );
            }
        }
    }

    #[test]
    fn findings_follow_pod_order() {
        let pods = [
            api_pod(
                "api-b",
                json!({ "waiting": { "reason": "ImagePullBackOff" } }),
                json!({}),
                0,
            ),
            api_pod(
                "api-a",
                json!({ "waiting": { "reason": "CrashLoopBackOff" } }),
                json!({}),
                1,
            ),
        ];
        let names: Vec<_> = explain(&pods, &[]).into_iter().map(|f| f.pod).collect();
        assert_eq!(names, ["api-b", "api-a"]);
    }

    #[test]
    fn events_from_another_namespace_are_ignored() {
        let pods = [api_pod("api-1", json!({ "running": {} }), json!({}), 0)];
        let mut elsewhere = event(
            "api-1",
            "Unhealthy",
            "Warning",
            "Readiness probe failed: elsewhere",
            "2025-06-01T10:00:00Z",
            None,
        );
        elsewhere.involved_object.namespace = Some("other".into());
        let findings = explain(&pods, &[elsewhere]);
        assert_eq!(
            findings[0].cause,
            "container api runs but is not ready yet, with no probe failure recorded"
        );
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "x".repeat(MAX_MESSAGE + 50);
        let pods = [api_pod(
            "api-1",
            json!({ "waiting": { "reason": "CreateContainerConfigError", "message": long } }),
            json!({}),
            0,
        )];
        let cause = &explain(&pods, &[])[0].cause;
        assert!(cause.ends_with('…'), "{cause}");
        assert!(cause.chars().count() < MAX_MESSAGE + 50, "{cause}");
    }

    #[test]
    fn render_indents_each_cause_and_its_fix() {
        let findings = [
            Finding {
                pod: "api-1".into(),
                cause: "it broke".into(),
                fix: "mend it".into(),
            },
            Finding {
                pod: "web-2".into(),
                cause: "it hangs".into(),
                fix: "wait".into(),
            },
        ];
        assert_eq!(
            render(&findings),
            "  api-1: it broke\n    fix: mend it\n  web-2: it hangs\n    fix: wait\n"
        );
        assert_eq!(render(&[]), "");
    }
}
