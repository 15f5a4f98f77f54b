//! `cargo xtask` on the docker runtime, end to end: the real binary, the real Docker engine,
//! the real images (built by the xtask itself), the real stack.
//!
//! Each test runs its own stack (name, state folder, host ports), so they run side by side and
//! beside a developer's own stack, and removes it at the end.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod helpers;

use std::net::TcpListener;

use helpers::{TestStack, copy_manifests, edit, leftovers, one_workload_manifests};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn dev_brings_the_stack_up_and_every_command_works_on_it() {
    let stack = TestStack::new("e2e");

    // From nothing to a healthy, seeded stack.
    let run = stack.run(&["dev", "--no-open"]);
    run.assert_ok();
    assert!(run.stderr.contains("the stack is up"), "{run:#?}");
    assert!(
        run.stderr
            .contains(&format!("http://127.0.0.1:{}", stack.web_port)),
        "{run:#?}"
    );

    // The API answers on its host port with the seed.
    let page: Value = reqwest::get(stack.api("/api/deployments?limit=1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 28, "{page}");
    // The dashboard renders the seeded rows, fetched server-side from the API container.
    let html = reqwest::get(stack.web("/")).await.unwrap();
    assert_eq!(html.status(), 200);
    let html = html.text().await.unwrap();
    assert!(
        html.contains("v2.0.0-rc.2"),
        "the newest seeded deployment is missing from the dashboard"
    );

    // status --json: every service running and healthy, with its image and ports.
    let run = stack.run(&["status", "--json"]);
    run.assert_ok();
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["healthy"], true, "{status}");
    let services = status["services"].as_array().unwrap();
    let names: Vec<&str> = services
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["postgres", "redis", "api", "web"]);
    for service in services {
        assert_eq!(service["state"], "running", "{service}");
        assert_eq!(service["health"], "healthy", "{service}");
        assert!(!service["image"].as_str().unwrap().is_empty(), "{service}");
    }
    let api = &services[2];
    assert!(
        api["ports"][0]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{}->8080", stack.api_port)),
        "{api}"
    );
    // The table form says the same, for people.
    let run = stack.run(&["status"]);
    run.assert_ok();
    assert!(run.stdout.starts_with("SERVICE"), "{run:#?}");
    assert_eq!(run.stdout.matches("healthy").count(), 4, "{run:#?}");

    // logs api: the API's own lines, unprefixed; logs: everything, prefixed per service.
    let run = stack.run(&["logs", "api"]);
    run.assert_ok();
    assert!(run.stdout.contains("listening"), "{run:#?}");
    let run = stack.run(&["logs", "--tail", "5"]);
    run.assert_ok();
    for service in ["postgres", "redis", "api", "web"] {
        assert!(
            run.stdout.lines().any(|l| l.starts_with(service)),
            "no {service} line in {run:#?}"
        );
    }

    // db-shell -c runs one statement non-interactively.
    let run = stack.run(&["db-shell", "-c", "SELECT count(*) FROM deployments"]);
    run.assert_ok();
    assert!(run.stdout.contains("28"), "{run:#?}");
    // A failing statement fails the command with psql's exit code and message.
    let run = stack.run(&["db-shell", "-c", "SELECT * FROM no_such_table"]);
    assert_ne!(run.code, Some(0), "{run:#?}");
    assert!(run.stderr.contains("no_such_table"), "{run:#?}");

    // The token lets a mutation through; seed keeps it, seed --reset restores the seed.
    let token = stack.run(&["token"]);
    token.assert_ok();
    let token = token.stdout.trim().to_owned();
    assert_eq!(token.len(), 64);
    let created = reqwest::Client::new()
        .post(stack.api("/api/deployments"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "service_id": 1, "environment_id": 1, "version": "v9.9.9", "deployed_by": "e2e@test"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let count = |stack: &TestStack| {
        let run = stack.run(&["db-shell", "-c", "SELECT 'n=' || count(*) FROM deployments"]);
        run.assert_ok();
        run.stdout
            .split("n=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(count(&stack), "29");
    stack.run(&["seed"]).assert_ok();
    assert_eq!(count(&stack), "29");
    let run = stack.run(&["seed", "--reset"]);
    run.assert_ok();
    assert!(run.stderr.contains("28 deployments"), "{run:#?}");
    assert_eq!(count(&stack), "28");

    // shell runs a command beside a service without a shell of its own (the API's image).
    let run = stack.run(&["shell", "api", "--", "ps"]);
    run.assert_ok();
    assert!(
        run.stdout.contains("/api"),
        "the API's process is not visible: {run:#?}"
    );

    // A second dev with nothing changed rebuilds nothing and recreates nothing.
    let before = container_ids(&stack.name).await;
    let run = stack.run(&["dev", "--no-open"]);
    run.assert_ok();
    assert!(run.stderr.contains("4 up to date"), "{run:#?}");
    assert!(run.stderr.contains("(0 of 4 services changed)"), "{run:#?}");
    assert_eq!(container_ids(&stack.name).await, before);

    // down keeps the data unless asked; down --volumes leaves nothing behind.
    let run = stack.run(&["down"]);
    run.assert_ok();
    assert_eq!(leftovers(&stack.name).await, (0, 0, 1));
    let run = stack.run(&["down", "--volumes"]);
    run.assert_ok();
    assert_eq!(leftovers(&stack.name).await, (0, 0, 0));
}

async fn container_ids(stack: &str) -> Vec<String> {
    let docker = helpers::docker().await;
    let filters =
        std::collections::HashMap::from([("label", vec![format!("dev.wander.stack={stack}")])]);
    let mut ids: Vec<String> = docker
        .list_containers(Some(
            bollard::query_parameters::ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    ids.sort();
    ids
}

#[test]
fn dev_says_how_to_start_docker_when_the_daemon_does_not_answer() {
    let mut stack = TestStack::new("nodaemon");
    stack.extra_env.push((
        "DOCKER_HOST".into(),
        "unix:///nonexistent/docker.sock".into(),
    ));
    let run = stack.run(&["dev", "--no-open"]);
    run.assert_fails_with("not answering");
    assert!(run.stderr.contains("systemctl start docker"), "{run:#?}");
    let run = stack.run(&["status"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_names_the_process_holding_a_host_port() {
    let stack = TestStack::new("porttaken");
    let holder = TcpListener::bind(("127.0.0.1", stack.api_port)).unwrap();
    let run = stack.run(&["dev", "--no-open"]);
    run.assert_fails_with(&format!("port {}", stack.api_port));
    assert!(
        run.stderr.contains(&format!("PID {}", std::process::id())),
        "{run:#?}"
    );
    drop(holder);
    assert_eq!(
        leftovers(&stack.name).await,
        (0, 0, 0),
        "nothing is created"
    );
}

#[test]
fn dev_reports_a_typo_in_the_manifests_with_file_and_path() {
    let manifests = copy_manifests();
    edit(
        manifests.path(),
        "api.yaml",
        "imagePullPolicy: IfNotPresent",
        "imagePullPolcy: IfNotPresent",
    );
    let mut stack = TestStack::new("typo");
    stack.manifests = Some(manifests.path().to_path_buf());
    let run = stack.run(&["dev", "--no-open"]);
    run.assert_fails_with("api.yaml");
    assert!(run.stderr.contains("imagePullPolcy"), "{run:#?}");
    assert!(run.stderr.contains("unknown field"), "{run:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_shows_the_last_lines_of_a_process_that_exits_at_once() {
    let image = helpers::busybox_image().await;
    let manifests = one_workload_manifests(
        &image,
        &[
            "/bin/sh",
            "-c",
            "echo starting up; echo 'fatal: no configuration found' >&2; exit 3",
        ],
        &["true"],
    );
    let mut stack = TestStack::new("crash");
    stack.manifests = Some(manifests.path().to_path_buf());
    let run = stack.run(&["dev", "--no-open"]);
    run.assert_fails_with("broken failed to start");
    assert!(run.stderr.contains("exited with 3"), "{run:#?}");
    assert!(
        run.stderr.contains("fatal: no configuration found"),
        "the last log lines are missing: {run:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_gives_up_on_a_service_that_never_gets_ready() {
    let image = helpers::busybox_image().await;
    let manifests = one_workload_manifests(
        &image,
        &["/bin/sh", "-c", "echo waiting forever; exec sleep 600"],
        &["false"],
    );
    let mut stack = TestStack::new("neverready");
    stack.manifests = Some(manifests.path().to_path_buf());
    let run = stack.run(&["dev", "--no-open", "--timeout", "3"]);
    run.assert_fails_with("broken was not ready after 3s");
    assert!(run.stderr.contains("`false` exited with 1"), "{run:#?}");
    assert!(run.stderr.contains("waiting forever"), "{run:#?}");
}

#[test]
fn commands_other_than_dev_ask_for_dev_first_on_a_fresh_checkout() {
    let stack = TestStack::new("fresh");
    for args in [
        &["status"][..],
        &["token"],
        &["db-shell", "-c", "SELECT 1"],
        &["seed"],
        &["logs"],
    ] {
        let run = stack.run(args);
        run.assert_fails_with("cargo xtask dev");
    }
}
