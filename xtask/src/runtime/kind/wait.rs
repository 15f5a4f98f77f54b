//! Waiting for a workload's rollout through a watch, and saying why when it does not finish.
//!
//! The object is read once, then watched by name, and `rollout`'s rules judge every version the
//! API server sends: a `Failed` verdict ends the wait at once instead of letting it run into the
//! timeout, and any failure (timeout included) carries what `explain` finds in the workload's
//! pods, their events and the last log lines of a crashing container.

use std::fmt::Debug;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use futures_util::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, LogParams, WatchEvent, WatchParams};
use kube::{Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;

use super::explain;
use super::rollout::{self, Rollout};
use crate::stack::WorkloadKind;

use crate::stack::NAME_LABEL;

/// How many log lines of a crashing container the error shows.
const LOG_LINES: i64 = 20;

/// How long one watch request may stay open before the server ends it and we watch again;
/// below the API server's own limit, so the re-watch is ours and planned.
const WATCH_SECONDS: u32 = 240;

/// Waits until the workload `kind`/`name` in `namespace` has rolled out, by `kubectl rollout
/// status`'s rules, calling `on_progress` with each new progress message.
///
/// Fails at once when the rollout cannot finish (e.g. `ProgressDeadlineExceeded`), and after
/// `timeout` otherwise; either error explains the pods that are not ready.
pub(crate) async fn wait_rollout(
    client: &Client,
    namespace: &str,
    kind: WorkloadKind,
    name: &str,
    timeout: Duration,
    on_progress: &mut (dyn FnMut(&str) + Send),
) -> Result<()> {
    let mut last: Option<String> = None;
    let outcome = {
        let follow = async {
            match kind {
                WorkloadKind::Deployment => {
                    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
                    follow(
                        &api,
                        kind,
                        name,
                        rollout::deployment_status,
                        &mut last,
                        on_progress,
                    )
                    .await
                }
                WorkloadKind::StatefulSet => {
                    let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
                    // The watch and the forced rollback share the progress line, one at a time.
                    let progress = std::sync::Mutex::new(&mut *on_progress);
                    let report = |message: &str| {
                        if let Ok(mut progress) = progress.lock() {
                            progress(message);
                        }
                    };
                    // One closure, copied: each side holds its own.
                    let (mut report_too, mut report) = (report, report);
                    tokio::select! {
                        done = follow(
                            &api,
                            kind,
                            name,
                            rollout::statefulset_status,
                            &mut last,
                            &mut report,
                        ) => done,
                        never = replace_stuck_pods(client, namespace, name, &mut report_too) => {
                            match never {}
                        }
                    }
                }
            }
        };
        tokio::time::timeout(timeout, follow).await
    };
    let headline = match outcome {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(Stop::Broken(error))) => return Err(error),
        Ok(Err(Stop::Failed(message))) => message,
        Err(_elapsed) => {
            let stage = last.map_or_else(String::new, |message| format!(" ({message})"));
            format!(
                "{} {name:?} did not finish rolling out within {timeout:?}{stage}",
                kind.as_str().to_lowercase(),
            )
        }
    };
    let why = explanation(client, namespace, name).await;
    Err(anyhow!("{headline}\n{why}").context(format!(
        "waiting for {} {name:?} in namespace {namespace:?}",
        kind.as_str().to_lowercase()
    )))
}

/// Why `follow` stopped short of `Done`.
#[derive(Debug)]
enum Stop {
    /// The rollout failed; the message says why, and the pods are worth explaining.
    Failed(String),
    /// The wait itself failed (the API, a missing object); explaining pods would not help.
    Broken(anyhow::Error),
}

impl From<anyhow::Error> for Stop {
    fn from(error: anyhow::Error) -> Self {
        Self::Broken(error)
    }
}

/// Reads the object, then watches it, until `judge` says it is done or failed.
async fn follow<K>(
    api: &Api<K>,
    kind: WorkloadKind,
    name: &str,
    judge: fn(&K) -> Rollout,
    last: &mut Option<String>,
    on_progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), Stop>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let what = kind.as_str().to_lowercase();
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(WATCH_SECONDS);
    loop {
        // A fresh read each time round: it also recovers from an expired resourceVersion.
        let object = api.get_opt(name).await.with_context(|| {
            format!("reading {what} {name:?} (is the cluster reachable? see `cargo xtask status`)")
        })?;
        let Some(object) = object else {
            return Err(Stop::Broken(anyhow!(
                "{what} {name:?} does not exist; run `cargo xtask dev` to apply the manifests"
            )));
        };
        if judged(judge(&object), last, on_progress)? {
            return Ok(());
        }
        let version = object.resource_version().unwrap_or_default();
        let mut events = api
            .watch(&params, &version)
            .await
            .with_context(|| format!("watching {what} {name:?}"))?
            .boxed();
        while let Some(event) = events
            .try_next()
            .await
            .with_context(|| format!("watching {what} {name:?}"))?
        {
            match event {
                WatchEvent::Added(object) | WatchEvent::Modified(object) => {
                    if judged(judge(&object), last, on_progress)? {
                        return Ok(());
                    }
                }
                WatchEvent::Deleted(_) => {
                    return Err(Stop::Failed(format!(
                        "{what} {name:?} was deleted while its rollout was awaited"
                    )));
                }
                WatchEvent::Bookmark(_) => {}
                // Usually 410 Gone (the version expired): read again and watch from there.
                WatchEvent::Error(_) => break,
            }
        }
    }
}

/// Reports a new progress message; `Ok(true)` when done, `Err` when failed.
fn judged(
    verdict: Rollout,
    last: &mut Option<String>,
    on_progress: &mut (dyn FnMut(&str) + Send),
) -> Result<bool, Stop> {
    match verdict {
        Rollout::Done => Ok(true),
        Rollout::Failed(message) => Err(Stop::Failed(message)),
        Rollout::Progressing(message) => {
            if last.as_deref() != Some(message.as_str()) {
                on_progress(&message);
                *last = Some(message);
            }
            Ok(false)
        }
    }
}

/// What the workload's pods say: `explain`'s findings, then the last lines of crashing
/// containers. Never fails: what cannot be read is said instead, below the headline.
async fn explanation(client: &Client, namespace: &str, name: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = ListParams::default().labels(&format!("{NAME_LABEL}={name}"));
    let pods_found = match pods.list(&selector).await {
        Ok(list) => list.items,
        Err(error) => return format!("  (could not list its pods: {error})\n"),
    };
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut out = String::new();
    let events_found = match events.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(error) => {
            let _ = writeln!(out, "  (could not list events: {error})");
            Vec::new()
        }
    };
    if pods_found.is_empty() {
        out.push_str(&no_pods(name, &events_found));
        return out;
    }
    let findings = explain::explain(&pods_found, &events_found);
    out.push_str(&explain::render(&findings));
    for (pod, container, previous) in crashing(&pods_found) {
        let params = LogParams {
            container: Some(container.clone()),
            previous,
            tail_lines: Some(LOG_LINES),
            ..LogParams::default()
        };
        let which = if previous {
            "previous run"
        } else {
            "current run"
        };
        match pods.logs(&pod, &params).await {
            Ok(text) if !text.trim().is_empty() => {
                let _ = writeln!(out, "  last lines of {pod}/{container} ({which}):");
                for line in text.lines() {
                    let _ = writeln!(out, "    | {line}");
                }
            }
            Ok(_) => {
                let _ = writeln!(out, "  {pod}/{container} logged nothing ({which})");
            }
            Err(error) => {
                let _ = writeln!(
                    out,
                    "  (could not read the logs of {pod}/{container}: {error})"
                );
            }
        }
    }
    out
}

/// How often a StatefulSet's rollout is looked at for a pod that holds it up.
const STUCK_CHECK: Duration = Duration::from_secs(2);

/// Waiting reasons of a container that will not get better by waiting.
const BROKEN: [&str; 5] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// The pods that hold up a StatefulSet's rollout forever, with why: with `OrderedReady` (the
/// default) the controller replaces a pod only once every pod is Running and Ready, so a pod of
/// the old revision that crashes is never replaced by the fixed template (the "forced
/// rollback" of the StatefulSet documentation, which asks for the broken pod to be deleted by
/// hand). A pod is such a one when it runs another revision than the update's, is not Ready,
/// and a container of it is in a back-off or an error that waiting cannot end.
pub(crate) fn stuck_pods(statefulset: &StatefulSet, pods: &[Pod]) -> Vec<(String, String)> {
    let Some(status) = &statefulset.status else {
        return Vec::new();
    };
    let Some(update) = status.update_revision.as_deref() else {
        return Vec::new();
    };
    let ordered = statefulset
        .spec
        .as_ref()
        .and_then(|s| s.pod_management_policy.as_deref())
        .is_none_or(|p| p == "OrderedReady");
    if !ordered || status.current_revision.as_deref() == Some(update) {
        return Vec::new();
    }
    let mut stuck = Vec::new();
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let revision = pod
            .labels()
            .get("controller-revision-hash")
            .map(String::as_str);
        if revision == Some(update) {
            continue;
        }
        let pod_status = pod.status.as_ref();
        let ready = pod_status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready {
            continue;
        }
        let broken = pod_status
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
            .find_map(|c| {
                let reason = c.state.as_ref()?.waiting.as_ref()?.reason.as_deref()?;
                BROKEN
                    .contains(&reason)
                    .then(|| format!("container {} is in {reason}", c.name))
            });
        if let Some(why) = broken {
            stuck.push((pod.name_any(), why));
        }
    }
    stuck
}

/// Deletes, as they appear, the pods of StatefulSet `name` that hold up its rollout (see
/// [`stuck_pods`]), saying so; the controller then makes them anew from the current template.
/// Runs until dropped.
async fn replace_stuck_pods(
    client: &Client,
    namespace: &str,
    name: &str,
    report: &mut (dyn FnMut(&str) + Send),
) -> std::convert::Infallible {
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = ListParams::default().labels(&format!("{NAME_LABEL}={name}"));
    loop {
        tokio::time::sleep(STUCK_CHECK).await;
        let Ok(Some(statefulset)) = statefulsets.get_opt(name).await else {
            continue;
        };
        let Ok(found) = pods.list(&selector).await else {
            continue;
        };
        for (pod, why) in stuck_pods(&statefulset, &found.items) {
            if pods
                .delete(&pod, &kube::api::DeleteParams::default())
                .await
                .is_ok()
            {
                report(&format!(
                    "deleted pod {pod}: it runs the previous revision and {why}, and the StatefulSet controller would wait for it forever"
                ));
            }
        }
    }
}

/// Why a workload has no pod at all. Its controller says so in `FailedCreate` events (on the
/// Deployment's ReplicaSet `<name>-<hash>`, or on the StatefulSet itself), whose message is the
/// API server's refusal, such as Pod Security admission's `violates PodSecurity
/// "restricted:latest": ...` (kubernetes/kubernetes, pkg/controller/controller_utils.go:
/// `Error creating: %v`); the newest is shown. Without one, the template's labels are the
/// likely cause.
pub(crate) fn no_pods(name: &str, events: &[Event]) -> String {
    let newest = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("FailedCreate"))
        .filter(|e| {
            let object = &e.involved_object;
            match (object.kind.as_deref(), object.name.as_deref()) {
                (Some("StatefulSet"), Some(owner)) => owner == name,
                (Some("ReplicaSet"), Some(owner)) => owner
                    .strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|hash| !hash.is_empty() && !hash.contains('-')),
                _ => false,
            }
        })
        .max_by_key(|e| {
            e.last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0))
        });
    match newest.and_then(|e| e.message.as_deref()) {
        Some(message) => {
            // client-go's event aggregation may prefix it; the API server's words follow.
            let message = message
                .trim_start_matches("(combined from similar events): ")
                .trim_start_matches("Error creating: ");
            format!(
                "  its pods cannot be created: {message}\n  fix the pod template in manifests/ (the namespace enforces restricted Pod Security), then run `cargo xtask dev` again\n"
            )
        }
        None => format!(
            "  no pod is labelled {NAME_LABEL}={name}; check the workload's template in manifests/\n"
        ),
    }
}

/// The containers worth showing logs of, as (pod, container, previous run?): those that
/// restarted (their previous run is the one that crashed) or that have terminated.
fn crashing(pods: &[Pod]) -> Vec<(String, String, bool)> {
    let mut found = Vec::new();
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(status) = &pod.status else { continue };
        let all = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for container in all {
            let terminated = container
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some_and(|t| t.exit_code != 0);
            if container.restart_count > 0 || terminated {
                let previous = container.restart_count > 0 && !terminated;
                found.push((pod.name_any(), container.name.clone(), previous));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests;
