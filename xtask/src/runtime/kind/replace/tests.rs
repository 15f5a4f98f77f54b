//! The cluster's side of a replacement against kube's mocked API service: what is sent for a
//! rebuilt image and for a restart, and the rollout waited for only when something changed.
//!
//! The restart request is the one `kubectl rollout restart` sends (a strategic merge patch of
//! the pod template's `kubectl.kubernetes.io/restartedAt`, kubectl's
//! `pkg/cmd/rollout/rollout_restart.go` and `pkg/polymorphichelpers/objectrestarter.go`); the
//! answers are shaped as the API server's: the object after the write, a
//! `PartialObjectMetadata` for a metadata read.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::*;
use crate::context::Context;
use crate::runtime::kind::testing::{Seen, api_deployment, lines, ok, scripted};

fn stack() -> Stack {
    Stack::load(&Context::for_tests().root().join("manifests")).unwrap()
}

/// The API's Deployment at `version`, of `generation`, rolled out for `observed`.
fn deployment(version: &str, generation: i64, observed: i64) -> Value {
    api_deployment(
        version,
        generation,
        json!({ "observedGeneration": observed, "replicas": 1, "updatedReplicas": 1,
                "readyReplicas": 1, "availableReplicas": 1 }),
    )
}

fn metadata(version: &str) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
        "metadata": { "name": "api", "namespace": "wander", "resourceVersion": version },
    })
}

async fn roll_api(
    client: &kube::Client,
    change: Change<'_>,
) -> (anyhow::Result<bool>, Vec<String>) {
    let stack = stack();
    let api = stack.named_workload("api").unwrap();
    let progress = Mutex::new(Vec::new());
    let result = roll(
        client,
        &stack,
        api,
        change,
        Duration::from_secs(5),
        &|line| {
            progress.lock().unwrap().push(line.to_owned());
        },
    )
    .await;
    (result, progress.into_inner().unwrap())
}

fn body(seen: &Seen) -> Value {
    serde_json::from_str(&seen.body).unwrap()
}

#[tokio::test]
async fn a_rebuilt_image_is_applied_to_its_workload_alone_and_rolled_out() {
    let (client, requests) = scripted(ok(vec![
        metadata("41"),
        // The write moved the object: a new template, generation 7.
        deployment("42", 7, 6),
        // The controller has seen it and the new pod is available.
        deployment("43", 7, 7),
    ]));
    let images = BTreeMap::from([(
        "wander/api:dev".to_owned(),
        "wander/api:h-feedfeedfeed".to_owned(),
    )]);
    let (rolled, progress) = roll_api(&client, Change::Images(&images)).await;
    assert!(rolled.unwrap());
    let path = "/apis/apps/v1/namespaces/wander/deployments/api";
    let seen = requests.lock().unwrap().clone();
    let lines = lines(&requests);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with(&format!("GET {path}")), "{}", lines[0]);
    assert!(
        lines[1].starts_with(&format!("PATCH {path}?")),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].ends_with("fieldManager=wander-xtask"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("force=true"), "{}", lines[1]);
    assert_eq!(
        seen[1].content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    let sent = body(&seen[1]);
    assert_eq!(
        sent["spec"]["template"]["spec"]["containers"][0]["image"],
        "wander/api:h-feedfeedfeed"
    );
    assert!(lines[2].starts_with(&format!("GET {path}")), "{}", lines[2]);
    assert_eq!(progress, ["applying its object"]);
}

#[tokio::test]
async fn an_image_already_running_rolls_nothing_and_waits_for_nothing() {
    let (client, requests) = scripted(ok(vec![metadata("42"), deployment("42", 7, 7)]));
    let images = BTreeMap::from([(
        "wander/api:dev".to_owned(),
        "wander/api:h-feedfeedfeed".to_owned(),
    )]);
    let (rolled, _) = roll_api(&client, Change::Images(&images)).await;
    assert!(!rolled.unwrap());
    assert_eq!(lines(&requests).len(), 2, "{:?}", lines(&requests));
}

#[tokio::test]
async fn a_restart_sets_kubectls_annotation_under_its_own_field_manager() {
    let (client, requests) = scripted(ok(vec![deployment("50", 8, 7), deployment("51", 8, 8)]));
    let before = Timestamp::now().round(Unit::Second).unwrap();
    let (rolled, progress) = roll_api(&client, Change::Restart).await;
    assert!(rolled.unwrap());
    let seen = requests.lock().unwrap().clone();
    let path = "/apis/apps/v1/namespaces/wander/deployments/api";
    assert!(
        seen[0].line.starts_with(&format!("PATCH {path}?")),
        "{}",
        seen[0].line
    );
    assert!(
        seen[0]
            .line
            .ends_with(&format!("fieldManager={RESTART_FIELD_MANAGER}")),
        "{}",
        seen[0].line
    );
    assert!(!seen[0].line.contains("force"), "{}", seen[0].line);
    assert_eq!(
        seen[0].content_type.as_deref(),
        Some("application/strategic-merge-patch+json")
    );
    let sent = body(&seen[0]);
    let annotations = sent["spec"]["template"]["metadata"]["annotations"]
        .as_object()
        .unwrap();
    assert_eq!(annotations.len(), 1, "{sent}");
    let at: Timestamp = annotations[RESTARTED_AT].as_str().unwrap().parse().unwrap();
    assert!(at >= before, "{at} is before {before}");
    // RFC 3339 to the second, as kubectl writes it.
    assert!(
        !annotations[RESTARTED_AT].as_str().unwrap().contains('.'),
        "{sent}"
    );
    assert!(
        seen[1].line.starts_with(&format!("GET {path}")),
        "{}",
        seen[1].line
    );
    assert_eq!(seen.len(), 2);
    assert_eq!(progress, ["restarting its pods"]);
}

#[tokio::test]
async fn a_restart_of_a_workload_the_cluster_lacks_says_how_to_start_the_stack() {
    let (client, _) = scripted(vec![crate::runtime::kind::testing::not_found(
        "deployments.apps \"api\"",
    )]);
    let (rolled, _) = roll_api(&client, Change::Restart).await;
    let err = format!("{:#}", rolled.unwrap_err());
    assert!(err.contains("restarting Deployment api"), "{err}");
    assert!(err.contains("cargo xtask dev"), "{err}");
}

#[test]
fn a_failed_rollout_says_whether_the_version_before_still_serves() {
    assert_eq!(
        serving_now("api", Some(vec!["api-5d8f-abcde".to_owned()])),
        "the previous version still serves (api-5d8f-abcde)"
    );
    assert_eq!(
        serving_now("api", Some(Vec::new())),
        "no pod of api is ready: nothing serves it now"
    );
    assert!(serving_now("api", None).contains("unknown"));
}

#[tokio::test]
async fn the_ready_pods_are_those_of_the_workload_that_are_ready() {
    let stack = stack();
    // A pod carries its template's labels and the controller's `pod-template-hash`.
    let pod = |name: &str, app: &str, ready: &str| {
        let mut labels = stack.named_workload(app).unwrap().labels.clone();
        labels.insert("pod-template-hash".to_owned(), "5d8f9c7b6".to_owned());
        json!({
            "metadata": { "name": name, "labels": labels },
            "status": { "conditions": [{ "type": "Ready", "status": ready }] }
        })
    };
    let (client, _) = scripted(ok(vec![json!({
        "apiVersion": "v1", "kind": "PodList", "metadata": { "resourceVersion": "9" },
        "items": [
            pod("api-old-1", "api", "True"),
            pod("api-new-2", "api", "False"),
            pod("web-1", "web", "True"),
        ]
    })]));
    let api = stack.named_workload("api").unwrap();
    assert_eq!(
        ready_pods(&client, "wander", api).await,
        Some(vec!["api-old-1".to_owned()])
    );
    let (unreachable, _) = scripted(vec![]);
    assert_eq!(ready_pods(&unreachable, "wander", api).await, None);
}
