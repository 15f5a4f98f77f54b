//! The pure parts of `dev` on kind, and the node wait against kube's mocked API service.

use serde_json::{Value, json};

use super::*;
use crate::runtime::kind::testing::{lines, ok, scripted};
use crate::stack::WorkloadKind;

fn node(name: &str, ready: Option<(&str, &str)>) -> Node {
    let conditions: Vec<Value> = ready
        .map(|(status, message)| {
            vec![json!({ "type": "Ready", "status": status, "reason": "KubeletNotReady", "message": message })]
        })
        .unwrap_or_default();
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "status": { "conditions": conditions }
    }))
    .unwrap()
}

#[test]
fn nodes_that_are_not_ready_are_named_with_their_reason() {
    let nodes = [
        node("wander-control-plane", Some(("True", ""))),
        node(
            "wander-worker",
            Some(("False", "container runtime network not ready")),
        ),
        node("wander-worker2", None),
    ];
    assert_eq!(
        not_ready_nodes(&nodes),
        [
            "wander-worker: container runtime network not ready",
            "wander-worker2: no Ready condition yet"
        ]
    );
    assert!(not_ready_nodes(&nodes[..1]).is_empty());
}

fn node_list(nodes: &[Node]) -> Value {
    json!({ "apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": nodes })
}

#[tokio::test]
async fn the_wait_for_nodes_ends_once_every_node_is_ready() {
    let not_yet = node("wander-control-plane", Some(("False", "starting")));
    let ready = node("wander-control-plane", Some(("True", "")));
    let (client, seen) = scripted(ok(vec![
        node_list(&[]),
        node_list(std::slice::from_ref(&not_yet)),
        node_list(&[ready]),
    ]));
    let names = wait_nodes_ready(&client, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(names, ["wander-control-plane"]);
    let seen = lines(&seen);
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|line| line.starts_with("GET /api/v1/nodes"))
    );
}

#[tokio::test]
async fn nodes_that_stay_unready_fail_the_wait_with_their_reason() {
    let not_ready = node(
        "wander-control-plane",
        Some(("False", "PLEG is not healthy")),
    );
    let (client, _) = scripted(ok(vec![node_list(&[not_ready]); 5]));
    let err = wait_nodes_ready(&client, Duration::from_millis(10))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("wander-control-plane: PLEG is not healthy"),
        "{err}"
    );
    assert!(err.contains("cargo xtask down"), "{err}");
}

fn stack() -> Stack {
    Stack::of_repository()
}

#[test]
fn published_workloads_are_checked_on_kinds_host_ports_and_the_rest_not() {
    let stack = stack();
    let url = |name: &str| host_url(&stack, stack.workload(name).unwrap());
    assert_eq!(url("api").as_deref(), Some("http://127.0.0.1:8080"));
    assert_eq!(url("web").as_deref(), Some("http://127.0.0.1:3000"));
    assert_eq!(url("postgres"), None);
    assert_eq!(url("redis"), None);
}

#[test]
fn a_workload_counts_as_changed_only_when_its_own_object_changed() {
    let stack = stack();
    let api = stack.workload("api").unwrap();
    assert_eq!(api.kind, WorkloadKind::Deployment);
    let applied = |kind: &'static str, name: &str, changed: bool| Applied {
        kind,
        name: name.to_owned(),
        changed,
        warnings: Vec::new(),
    };
    assert!(workload_changed(&[applied("Deployment", "api", true)], api));
    assert!(!workload_changed(
        &[
            applied("Deployment", "api", false),
            applied("Service", "api", true),
            applied("StatefulSet", "api", true),
            applied("Deployment", "web", true),
        ],
        api
    ));
}

#[test]
fn the_images_line_says_what_was_built_and_what_was_sent() {
    let resolved: BTreeMap<String, Resolved> = [("wander/api", true), ("redis:7", false)]
        .into_iter()
        .map(|(name, built)| {
            (
                name.to_owned(),
                Resolved {
                    reference: format!("{name}-ref"),
                    built,
                    notice: None,
                },
            )
        })
        .collect();
    let loaded = [
        load::Loaded {
            image: "wander/api-ref".to_owned(),
            node: "wander-control-plane".to_owned(),
            outcome: load::Outcome::Loaded {
                bytes: 8_000_000,
                elapsed: Duration::from_millis(2_500),
            },
        },
        load::Loaded {
            image: "redis:7-ref".to_owned(),
            node: "wander-control-plane".to_owned(),
            outcome: load::Outcome::Present,
        },
    ];
    assert_eq!(
        images_summary(&resolved, &loaded),
        "1 built, 1 up to date; 1 loaded into the nodes (2.5s), 1 already there"
    );
    assert_eq!(
        transfer_line(&loaded[0]).as_deref(),
        Some("  wander/api-ref → wander-control-plane: 8.0 MB in 2.5s")
    );
    assert_eq!(transfer_line(&loaded[1]), None);
    assert_eq!(
        images_summary(&resolved, &loaded[1..]),
        "1 built, 1 up to date; all already in the nodes"
    );
}

#[tokio::test]
async fn stopped_node_containers_are_started_and_running_ones_left_alone() {
    use crate::images::toolbox::testing;
    let test = "kind-stopped-nodes";
    testing::with_engine(test, |docker, toolbox| async move {
        // Two stand-ins for node containers: one running, one stopped as `docker stop` leaves
        // it (kind's nodes restart on failure only, so it stays so).
        let running = testing::start(&docker, &toolbox, test, &["sleep", "600"]).await;
        let stopped = testing::start(&docker, &toolbox, test, &["sleep", "600"]).await;
        docker
            .stop_container(
                &stopped,
                Some(
                    bollard::query_parameters::StopContainerOptionsBuilder::new()
                        .t(0)
                        .build(),
                ),
            )
            .await
            .unwrap();
        let nodes = [running.clone(), stopped.clone()];
        let started = start_stopped_nodes(&docker, &nodes).await.unwrap();
        assert_eq!(started, std::slice::from_ref(&stopped));
        for node in &nodes {
            let details = docker.inspect_container(node, None).await.unwrap();
            assert!(crate::runtime::docker::is_running(&details), "{node}");
        }
        assert!(
            start_stopped_nodes(&docker, &nodes)
                .await
                .unwrap()
                .is_empty()
        );
        let err = start_stopped_nodes(&docker, &["wander-no-such-node".to_owned()])
            .await
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("wander-no-such-node"),
            "{err:#}"
        );
    })
    .await;
}
