//! `wait_rollout` against kube's mocked API service: scripted answers, checked requests.

// The fixtures take `json!` values as written at the call, which reads better than borrows.
#![allow(clippy::needless_pass_by_value)]

use std::time::Duration;

use kube::Client;
use serde_json::{Value, json};

use super::*;
use crate::runtime::kind::testing::{Asked, Reply, api_deployment as deployment, serving};

/// One scripted answer: the request's URI must contain `expect`.
struct Step {
    expect: &'static str,
    reply: Reply,
}

fn step(expect: &'static str, reply: Reply) -> Step {
    Step { expect, reply }
}

/// A client whose API server answers `script` in order; returns the URIs it was asked for,
/// decoded. Requests beyond the script are recorded as `UNEXPECTED <uri>` and answered 500.
fn mocked(script: Vec<Step>) -> (Client, Asked) {
    let mut script = script.into_iter();
    serving(move |uri| {
        let step = script.next()?;
        assert!(
            uri.contains(step.expect),
            "expected {:?} in {uri}",
            step.expect
        );
        Some(step.reply)
    })
}

fn statefulset(version: &str, generation: i64, status: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": { "name": "postgres", "namespace": "wander", "generation": generation,
                      "resourceVersion": version },
        "spec": {
            "replicas": 1, "serviceName": "postgres",
            "selector": { "matchLabels": { "app.kubernetes.io/name": "postgres" } },
            "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "partition": 0 } },
            "template": { "spec": { "containers": [{ "name": "postgres", "image": "postgres:18" }] } }
        },
        "status": status,
    })
}

fn modified(object: Value) -> Value {
    json!({ "type": "MODIFIED", "object": object })
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({ "apiVersion": "v1", "kind": kind, "metadata": { "resourceVersion": "1" }, "items": items })
}

/// A pod of `api` that is not ready, its one container in `state`, restarted `restarts` times.
fn api_pod(state: Value, restarts: i32) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "api-7c9d-x2k4f", "namespace": "wander",
                      "labels": { "app.kubernetes.io/name": "api" } },
        "spec": { "nodeName": "wander-control-plane",
                  "containers": [{ "name": "api", "image": "wander/api:3f9a" }] },
        "status": {
            "phase": "Running",
            "conditions": [{ "type": "PodScheduled", "status": "True" },
                           { "type": "Ready", "status": "False" }],
            "containerStatuses": [{ "name": "api", "image": "wander/api:3f9a", "imageID": "",
                                    "ready": false, "restartCount": restarts, "state": state,
                                    "lastState": if restarts > 0 {
                                        json!({ "terminated": { "exitCode": 1, "reason": "Error" } })
                                    } else { json!({}) } }]
        }
    })
}

async fn run(
    client: &Client,
    kind: WorkloadKind,
    name: &str,
    timeout: Duration,
) -> (Result<()>, Vec<String>) {
    let mut messages = Vec::new();
    let mut progress = |message: &str| messages.push(message.to_owned());
    let result = wait_rollout(client, "wander", kind, name, timeout, &mut progress).await;
    (result, messages)
}

#[tokio::test]
async fn a_stale_status_is_waited_past_until_the_fresh_one_is_done() {
    let done = json!({ "observedGeneration": 3, "replicas": 1, "updatedReplicas": 1,
                       "readyReplicas": 1, "availableReplicas": 1 });
    let (client, seen) = mocked(vec![
        // Right after the apply: complete, but for generation 2.
        step(
            "/apis/apps/v1/namespaces/wander/deployments/api",
            Reply::Json(deployment(
                "10",
                3,
                json!({ "observedGeneration": 2, "replicas": 1,
                "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1 }),
            )),
        ),
        step(
            "watch=true",
            Reply::Watch(vec![
                modified(deployment(
                    "11",
                    3,
                    json!({ "observedGeneration": 3, "replicas": 2,
                    "updatedReplicas": 1, "availableReplicas": 1 }),
                )),
                modified(deployment(
                    "12",
                    3,
                    json!({ "observedGeneration": 3, "replicas": 1,
                    "updatedReplicas": 1, "availableReplicas": 0 }),
                )),
                // The same verdict again: no repeated message.
                modified(deployment(
                    "13",
                    3,
                    json!({ "observedGeneration": 3, "replicas": 1,
                    "updatedReplicas": 1, "availableReplicas": 0 }),
                )),
                modified(deployment("14", 3, done)),
            ]),
        ),
    ]);
    let (result, messages) = run(
        &client,
        WorkloadKind::Deployment,
        "api",
        Duration::from_secs(5),
    )
    .await;
    result.unwrap();
    assert_eq!(
        messages,
        [
            "Waiting for deployment spec update to be observed...",
            "Waiting for deployment \"api\" rollout to finish: 1 old replicas are pending termination...",
            "Waiting for deployment \"api\" rollout to finish: 0 of 1 updated replicas are available...",
        ]
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[1].contains("resourceVersion=10"), "{}", seen[1]);
    assert!(
        seen[1].contains("fieldSelector=metadata.name=api"),
        "{}",
        seen[1]
    );
}

#[tokio::test]
async fn a_watch_that_ends_or_expires_is_resumed_from_a_fresh_read() {
    let ready = json!({ "observedGeneration": 2, "replicas": 1, "readyReplicas": 1,
                        "updatedReplicas": 1, "currentRevision": "postgres-1",
                        "updateRevision": "postgres-1" });
    let (client, seen) = mocked(vec![
        step(
            "statefulsets/postgres",
            Reply::Json(statefulset("5", 2, json!({ "observedGeneration": 1 }))),
        ),
        // The server closes the watch with nothing to say.
        step("watch=true", Reply::Watch(vec![])),
        step(
            "statefulsets/postgres",
            Reply::Json(statefulset(
                "6",
                2,
                json!({ "observedGeneration": 2, "replicas": 1 }),
            )),
        ),
        step(
            "watch=true",
            Reply::Watch(vec![
                json!({ "type": "ERROR", "object": { "kind": "Status", "apiVersion": "v1",
                "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410 } }),
            ]),
        ),
        step(
            "statefulsets/postgres",
            Reply::Json(statefulset("9", 2, ready)),
        ),
    ]);
    let (result, messages) = run(
        &client,
        WorkloadKind::StatefulSet,
        "postgres",
        Duration::from_secs(5),
    )
    .await;
    result.unwrap();
    assert_eq!(
        messages,
        [
            "Waiting for statefulset spec update to be observed...",
            "Waiting for 1 pods to be ready..."
        ]
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(seen[3].contains("resourceVersion=6"), "{}", seen[3]);
}

#[tokio::test]
async fn progress_deadline_exceeded_fails_at_once_with_the_crash_and_its_last_lines() {
    let crashing = api_pod(
        json!({ "waiting": { "reason": "CrashLoopBackOff", "message": "back-off 40s" } }),
        3,
    );
    let (client, seen) = mocked(vec![
        step(
            "deployments/api",
            Reply::Json(deployment(
                "20",
                2,
                json!({ "observedGeneration": 2, "replicas": 1,
                "updatedReplicas": 1, "unavailableReplicas": 1,
                "conditions": [{ "type": "Progressing", "status": "False",
                                 "reason": "ProgressDeadlineExceeded" }] }),
            )),
        ),
        step(
            "/api/v1/namespaces/wander/pods?&labelSelector=app.kubernetes.io/name=api",
            Reply::Json(list("PodList", vec![crashing])),
        ),
        step(
            "/api/v1/namespaces/wander/events",
            Reply::Json(list("EventList", vec![])),
        ),
        step(
            "/api/v1/namespaces/wander/pods/api-7c9d-x2k4f/log",
            Reply::Text("starting api\nerror: DATABASE_URL is not set\n"),
        ),
    ]);
    // A long timeout: the failure must not wait for it.
    let started = std::time::Instant::now();
    let (result, _) = run(
        &client,
        WorkloadKind::Deployment,
        "api",
        Duration::from_secs(60),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let error = format!("{:#}", result.unwrap_err());
    assert!(
        error.contains("deployment \"api\" exceeded its progress deadline"),
        "{error}"
    );
    assert!(
        error.contains("api-7c9d-x2k4f: container api keeps crashing"),
        "{error}"
    );
    assert!(
        error.contains("last lines of api-7c9d-x2k4f/api (previous run):"),
        "{error}"
    );
    assert!(
        error.contains("    | error: DATABASE_URL is not set"),
        "{error}"
    );
    let seen = seen.lock().unwrap().clone();
    assert!(
        !seen.iter().any(|uri| uri.contains("watch=true")),
        "{seen:?}"
    );
    let logs = &seen[3];
    for part in ["container=api", "previous=true", "tailLines=20"] {
        assert!(logs.contains(part), "{part} in {logs}");
    }
}

#[tokio::test]
async fn a_timeout_is_an_error_that_names_the_unloaded_image() {
    let pulling = api_pod(
        json!({ "waiting": { "reason": "ImagePullBackOff",
                             "message": "Back-off pulling image \"wander/api:3f9a\"" } }),
        0,
    );
    let (client, seen) = mocked(vec![
        step(
            "deployments/api",
            Reply::Json(deployment(
                "30",
                1,
                json!({ "observedGeneration": 1, "replicas": 1,
                "updatedReplicas": 1, "availableReplicas": 0 }),
            )),
        ),
        step("watch=true", Reply::Hang),
        step(
            "labelSelector=app.kubernetes.io/name=api",
            Reply::Json(list("PodList", vec![pulling])),
        ),
        step("/events", Reply::Json(list("EventList", vec![]))),
    ]);
    let (result, messages) = run(
        &client,
        WorkloadKind::Deployment,
        "api",
        Duration::from_millis(300),
    )
    .await;
    let error = format!("{:#}", result.unwrap_err());
    assert!(
        error.contains("deployment \"api\" did not finish rolling out within 300ms (Waiting for deployment \"api\" rollout to finish: 0 of 1 updated replicas are available...)"),
        "{error}"
    );
    assert!(
        error.contains("image wander/api:3f9a is not loaded into the cluster's node"),
        "{error}"
    );
    assert_eq!(messages.len(), 1);
    // No logs asked for: the container never ran.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "{seen:?}");
}

#[tokio::test]
async fn a_missing_workload_is_said_plainly_without_waiting() {
    let (client, seen) = mocked(vec![step("deployments/web", Reply::NotFound)]);
    let (result, _) = run(
        &client,
        WorkloadKind::Deployment,
        "web",
        Duration::from_secs(60),
    )
    .await;
    let error = format!("{:#}", result.unwrap_err());
    assert!(
        error.contains("deployment \"web\" does not exist; run `cargo xtask dev`"),
        "{error}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn crashing_containers_are_picked_with_the_run_worth_reading() {
    let pod = |state: Value, restarts: i32| -> Pod {
        serde_json::from_value(api_pod(state, restarts)).unwrap()
    };
    let cases = vec![
        (
            "restarted, now waiting: its previous run crashed",
            pod(json!({ "waiting": { "reason": "CrashLoopBackOff" } }), 2),
            vec![true],
        ),
        (
            "failed once, not restarted yet: the current run",
            pod(json!({ "terminated": { "exitCode": 2 } }), 0),
            vec![false],
        ),
        (
            "never ran",
            pod(json!({ "waiting": { "reason": "ImagePullBackOff" } }), 0),
            vec![],
        ),
        (
            "running, no restart",
            pod(json!({ "running": {} }), 0),
            vec![],
        ),
    ];
    for (name, pod, want) in cases {
        let got: Vec<bool> = crashing(&[pod])
            .into_iter()
            .map(|(_, _, previous)| previous)
            .collect();
        assert_eq!(got, want, "{name}");
    }
}

/// A `FailedCreate` event as the ReplicaSet controller records it when Pod Security admission
/// refuses a pod (message from a real `kubectl events` output of such a refusal, names ours).
fn failed_create(kind: &str, owner: &str, at: &str, message: &str) -> Event {
    serde_json::from_value(json!({
        "metadata": { "name": format!("{owner}.1"), "namespace": "wander" },
        "involvedObject": { "kind": kind, "namespace": "wander", "name": owner, "apiVersion": "apps/v1" },
        "reason": "FailedCreate",
        "type": "Warning",
        "message": message,
        "lastTimestamp": at,
        "source": { "component": "replicaset-controller" },
    }))
    .unwrap()
}

#[test]
fn a_workload_without_pods_is_explained_by_its_controllers_failed_creates() {
    let refusal = "pods \"api-5dc589cf94-c9qk7\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"api\" must set securityContext.allowPrivilegeEscalation=false)";
    let events = [
        failed_create(
            "ReplicaSet",
            "api-5dc589cf94",
            "2026-12-05T10:00:00Z",
            "Error creating: pods \"api-5dc589cf94-aaaaa\" is forbidden: an older refusal",
        ),
        failed_create(
            "ReplicaSet",
            "api-5dc589cf94",
            "2026-12-05T10:00:09Z",
            &format!("(combined from similar events): Error creating: {refusal}"),
        ),
        // Another workload's, whose name begins like this one's.
        failed_create(
            "ReplicaSet",
            "api-gateway-7f9c",
            "2026-12-05T10:00:10Z",
            "Error creating: not this one",
        ),
    ];
    let text = no_pods("api", &events);
    assert!(
        text.starts_with(&format!("  its pods cannot be created: {refusal}\n")),
        "{text}"
    );
    // A StatefulSet records them on itself.
    let text = no_pods(
        "postgres",
        &[failed_create(
            "StatefulSet",
            "postgres",
            "2026-12-05T10:00:00Z",
            "create Pod postgres-0 in StatefulSet postgres failed error: pods \"postgres-0\" is forbidden: violates PodSecurity \"restricted:latest\": runAsNonRoot != true",
        )],
    );
    assert!(text.contains("violates PodSecurity"), "{text}");
    // Nothing recorded: the labels are the likely cause.
    assert!(no_pods("web", &events).contains("no pod is labelled"));
}

/// A StatefulSet in the middle of a rollout from revision `postgres-old` to `postgres-new`.
fn rolling_statefulset(policy: Option<&str>, current: &str) -> StatefulSet {
    let mut spec = json!({ "selector": {}, "serviceName": "postgres", "template": {} });
    if let Some(policy) = policy {
        spec["podManagementPolicy"] = json!(policy);
    }
    serde_json::from_value(json!({
        "metadata": { "name": "postgres", "namespace": "wander" },
        "spec": spec,
        "status": { "replicas": 1, "currentRevision": current, "updateRevision": "postgres-new" },
    }))
    .unwrap()
}

/// A pod of the StatefulSet at `revision`, its container waiting for `waiting` (a reason) or
/// running, as the kubelet reports it.
fn revision_pod(name: &str, revision: &str, ready: bool, waiting: Option<&str>) -> Pod {
    let state = match waiting {
        Some(reason) => {
            json!({ "waiting": { "reason": reason, "message": format!("back-off 40s restarting failed container=postgres pod={name}_wander(0f7d)") } })
        }
        None => json!({ "running": { "startedAt": "2026-12-05T10:00:00Z" } }),
    };
    serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": "wander", "labels": {
            "app.kubernetes.io/name": "postgres", "controller-revision-hash": revision,
            "statefulset.kubernetes.io/pod-name": name } },
        "status": {
            "phase": "Running",
            "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }],
            "containerStatuses": [{ "name": "postgres", "ready": ready, "restartCount": 4,
                "image": "postgres:15", "imageID": "", "state": state }],
        },
    }))
    .unwrap()
}

#[test]
fn a_broken_pod_of_the_previous_revision_holds_up_an_ordered_rollout() {
    let rolling = rolling_statefulset(None, "postgres-old");
    let crashing_old = revision_pod(
        "postgres-0",
        "postgres-old",
        false,
        Some("CrashLoopBackOff"),
    );
    // (StatefulSet, pods, the pods to delete)
    let cases: Vec<(StatefulSet, Vec<Pod>, Vec<&str>)> = vec![
        (
            rolling.clone(),
            vec![crashing_old.clone()],
            vec!["postgres-0"],
        ),
        (
            rolling.clone(),
            vec![revision_pod(
                "postgres-0",
                "postgres-old",
                false,
                Some("ImagePullBackOff"),
            )],
            vec!["postgres-0"],
        ),
        // Of the new revision already: the controller's own business.
        (
            rolling.clone(),
            vec![revision_pod(
                "postgres-0",
                "postgres-new",
                false,
                Some("CrashLoopBackOff"),
            )],
            vec![],
        ),
        // Old but Ready, or old and still starting: the rollout will get to it.
        (
            rolling.clone(),
            vec![revision_pod("postgres-0", "postgres-old", true, None)],
            vec![],
        ),
        (
            rolling.clone(),
            vec![revision_pod(
                "postgres-0",
                "postgres-old",
                false,
                Some("ContainerCreating"),
            )],
            vec![],
        ),
        // Parallel pod management replaces pods without waiting; no rollout, nothing stuck.
        (
            rolling_statefulset(Some("Parallel"), "postgres-old"),
            vec![crashing_old.clone()],
            vec![],
        ),
        (
            rolling_statefulset(None, "postgres-new"),
            vec![crashing_old],
            vec![],
        ),
    ];
    for (statefulset, pods, expected) in cases {
        let stuck = stuck_pods(&statefulset, &pods);
        let names: Vec<&str> = stuck.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, expected, "{pods:?}");
        for (_, why) in &stuck {
            assert!(why.starts_with("container postgres is in "), "{why}");
        }
    }
}
