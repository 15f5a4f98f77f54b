//! The report from pod fixtures, and `collect` against kube's mocked API service.

// The fixtures take `json!` values as written at the call, which reads better than borrows.
#![allow(clippy::needless_pass_by_value)]

use serde_json::{Value, json};

use super::*;
use crate::runtime::kind::testing::{lines, ok, scripted};

fn stack() -> Stack {
    Stack::of_repository()
}

/// A pod of `service`: `ready`, its container `waiting` for a reason (or running), restarted
/// `restarts` times, created at `created` and started at `started` (seconds since the epoch).
fn pod(service: &str, name: &str, ready: bool, waiting: Option<&str>, restarts: i32) -> Value {
    let state = match waiting {
        Some(reason) => {
            json!({ "waiting": { "reason": reason, "message": "back-off 5m0s restarting failed container" } })
        }
        None => json!({ "running": { "startedAt": "2026-11-28T10:00:00Z" } }),
    };
    // The pod template's labels, as the controller gives them, plus one of its own.
    let mut labels = json!(
        stack()
            .workload(service)
            .map(|w| w.labels.clone())
            .unwrap_or_default()
    );
    labels["pod-template-hash"] = json!("abc");
    json!({
        "metadata": {
            "name": name,
            "namespace": "wander",
            "creationTimestamp": "2026-11-28T10:00:00Z",
            "labels": labels
        },
        "spec": { "containers": [{ "name": service, "image": format!("wander/{service}:0123456789ab") }] },
        "status": {
            "phase": "Running",
            "startTime": "2026-11-28T10:00:00Z",
            "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }],
            "containerStatuses": [{
                "name": service, "ready": ready, "restartCount": restarts,
                "image": "", "imageID": "", "state": state,
                "lastState": if restarts > 0 { json!({ "terminated": { "exitCode": 3, "reason": "Error" } }) } else { json!({}) }
            }]
        }
    })
}

fn pods(values: &[Value]) -> Vec<Pod> {
    values
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect()
}

fn at(rfc3339: &str) -> Timestamp {
    rfc3339.parse().unwrap()
}

#[test]
fn a_ready_pod_is_healthy_with_its_image_uptime_and_restarts() {
    let stack = stack();
    let api = stack.workload("api").unwrap();
    let status = service_status(
        api,
        &pods(&[pod("api", "api-1", true, None, 2)]),
        &[],
        vec!["127.0.0.1:8080->api:8080 (1 ready)".to_owned()],
        at("2026-11-28T11:02:05Z"),
    );
    assert_eq!(status.state, "running 1/1");
    assert_eq!(status.health, "healthy");
    assert_eq!(status.reason, None);
    assert_eq!(status.image, "wander/api:0123456789ab");
    assert_eq!(status.uptime_secs, Some(3725));
    assert_eq!(status.restarts, 2);
}

#[test]
fn a_crashing_pod_shows_its_waiting_reason_and_a_plain_cause() {
    let stack = stack();
    let api = stack.workload("api").unwrap();
    let status = service_status(
        api,
        &pods(&[pod("api", "api-1", false, Some("CrashLoopBackOff"), 4)]),
        &[],
        Vec::new(),
        at("2026-11-28T10:01:00Z"),
    );
    assert_eq!(status.state, "crashloopbackoff 0/1");
    assert_eq!(status.health, "unhealthy");
    let reason = status.reason.unwrap();
    assert!(reason.starts_with("api-1: "), "{reason}");
    assert!(reason.contains("exit"), "{reason}");
    assert!(reason.contains("fix: "), "{reason}");
}

#[test]
fn no_pod_is_absent_and_terminating_pods_do_not_count() {
    let stack = stack();
    let web = stack.workload("web").unwrap();
    let mut leaving = pod("web", "web-old", true, None, 0);
    leaving["metadata"]["deletionTimestamp"] = json!("2026-11-28T10:05:00Z");
    for fixture in [Vec::new(), pods(&[leaving])] {
        let status = service_status(web, &fixture, &[], Vec::new(), at("2026-11-28T10:06:00Z"));
        assert_eq!(status.state, "absent");
        assert_eq!(status.health, "unknown");
        assert!(status.reason.unwrap().contains("cargo xtask dev"));
    }
}

#[test]
fn one_unready_pod_of_two_makes_the_service_unhealthy() {
    let stack = stack();
    let web = stack.workload("web").unwrap();
    let status = service_status(
        web,
        &pods(&[
            pod("web", "web-1", true, None, 0),
            pod("web", "web-2", false, None, 0),
        ]),
        &[],
        Vec::new(),
        at("2026-11-28T10:06:00Z"),
    );
    assert_eq!(status.state, "running 1/2");
    assert_eq!(status.health, "unhealthy");
}

#[test]
fn pods_belong_to_the_workload_whose_template_labels_they_all_carry() {
    let stack = stack();
    let api = stack.workload("api").unwrap();
    let mine = &pods(&[pod("api", "api-1", true, None, 0)])[0];
    let other = &pods(&[pod("web", "web-1", true, None, 0)])[0];
    assert!(belongs_to(mine, api));
    assert!(!belongs_to(other, api));
    let mut partial = pod("api", "api-2", true, None, 0);
    partial["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("app.kubernetes.io/component");
    assert!(!belongs_to(&pods(&[partial])[0], api));
}

fn slice(service: &str, ready: &[bool]) -> Value {
    let endpoints: Vec<Value> = ready
        .iter()
        .map(|r| json!({ "addresses": ["10.244.0.5"], "conditions": { "ready": r } }))
        .collect();
    json!({
        "metadata": { "name": format!("{service}-x1"), "labels": { "kubernetes.io/service-name": service } },
        "addressType": "IPv4",
        "endpoints": endpoints
    })
}

#[test]
fn ports_say_where_a_service_is_reached_and_its_ready_endpoints() {
    let stack = stack();
    let slices: Vec<EndpointSlice> = [slice("api", &[true, false]), slice("postgres", &[true])]
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    let endpoints = ready_endpoints(&slices);
    assert_eq!(
        ports(&stack, stack.workload("api").unwrap(), &endpoints),
        ["127.0.0.1:8080->api:8080 (1 ready)"]
    );
    assert_eq!(
        ports(&stack, stack.workload("postgres").unwrap(), &endpoints),
        ["postgres:5432 (1 ready)"]
    );
    assert_eq!(
        ports(&stack, stack.workload("redis").unwrap(), &endpoints),
        ["redis:6379 (0 ready)"]
    );
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({ "apiVersion": "v1", "kind": kind, "metadata": {}, "items": items })
}

#[tokio::test]
async fn collect_reads_the_namespace_once_and_reports_every_workload() {
    let (client, seen) = scripted(ok(vec![
        list(
            "PodList",
            vec![
                pod("postgres", "postgres-0", true, None, 0),
                pod("redis", "redis-1", true, None, 0),
                pod("api", "api-1", true, None, 0),
                pod("web", "web-1", false, Some("ImagePullBackOff"), 0),
            ],
        ),
        list("EventList", Vec::new()),
        list("EndpointSliceList", vec![slice("api", &[true])]),
    ]));
    let ctx = crate::context::Context::for_tests();
    let secrets = serde_json::from_str(r#"{"postgres_password":"p","api_token":"t"}"#).unwrap();
    let session = KindSession::new(&ctx, stack(), secrets, client);
    let report = collect(&session, "kind-wander").await.unwrap();
    assert_eq!(report.runtime, "kind");
    assert_eq!(report.stack, "kind-wander/wander");
    assert!(!report.healthy);
    let names: Vec<&str> = report.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["postgres", "redis", "api", "web"]);
    let web = &report.services[3];
    assert_eq!(web.state, "imagepullbackoff 0/1");
    assert!(web.reason.as_deref().unwrap().contains("web-1"), "{web:?}");
    assert_eq!(
        report.services[2].ports,
        ["127.0.0.1:8080->api:8080 (1 ready)"]
    );
    let seen = lines(&seen);
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen[0].starts_with("GET /api/v1/namespaces/wander/pods"),
        "{seen:?}"
    );
    assert!(
        seen[1].starts_with("GET /api/v1/namespaces/wander/events"),
        "{seen:?}"
    );
    assert!(
        seen[2].starts_with("GET /apis/discovery.k8s.io/v1/namespaces/wander/endpointslices"),
        "{seen:?}"
    );
}
