//! `logs` against kube's mocked API service: requests routed by what they ask for (log streams
//! run concurrently, so their order is not fixed), answers scripted per route.

// The fixtures take `json!` values as written at the call, which reads better than borrows.
#![allow(clippy::needless_pass_by_value)]

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{Value, json};
use time::macros::datetime;

use super::*;
use crate::runtime::kind::testing::{Asked, Reply, serving};
use crate::runtime::logs_format::{Shared, test_options as options};

/// The requests' URIs, decoded.
type Seen = Asked;

/// A client whose API server answers each request from the first route whose pattern its decoded
/// URI contains and that has replies left; requests no route answers are recorded as
/// `UNEXPECTED <uri>` and answered 500.
fn mocked(routes: Vec<(&'static str, Vec<Reply>)>) -> (Client, Seen) {
    let mut routes: Vec<(&str, VecDeque<Reply>)> = routes
        .into_iter()
        .map(|(pattern, replies)| (pattern, replies.into()))
        .collect();
    serving(move |uri| {
        routes
            .iter_mut()
            .find(|(pattern, replies)| uri.contains(pattern) && !replies.is_empty())
            .and_then(|(_, replies)| replies.pop_front())
    })
}

/// A pod of `service` created at second `born`, with `containers` as (name, the id of its running
/// instance, or `None` while it waits to start for the first time).
fn pod(name: &str, service: &str, born: u32, containers: &[(&str, Option<&str>)]) -> Value {
    let specs: Vec<Value> = containers
        .iter()
        .map(|(c, _)| json!({ "name": c, "image": format!("wander/{c}:1") }))
        .collect();
    let statuses: Vec<Value> = containers
        .iter()
        .map(|(c, id)| match id {
            Some(id) => json!({ "name": c, "image": "", "imageID": "", "ready": true,
                                "restartCount": 0, "containerID": id,
                                "state": { "running": { "startedAt": "2026-03-01T10:00:00Z" } } }),
            None => json!({ "name": c, "image": "", "imageID": "", "ready": false,
                            "restartCount": 0,
                            "state": { "waiting": { "reason": "ContainerCreating" } } }),
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "namespace": "wander", "uid": format!("uid-{name}"),
                      "resourceVersion": "1",
                      "creationTimestamp": format!("2026-03-01T10:00:{born:02}Z"),
                      "labels": { "app.kubernetes.io/name": service } },
        "spec": { "containers": specs },
        "status": { "phase": "Running", "containerStatuses": statuses }
    })
}

fn pod_list(items: Vec<Value>) -> Value {
    json!({ "apiVersion": "v1", "kind": "PodList", "metadata": { "resourceVersion": "100" },
            "items": items })
}

fn event(kind: &str, object: Value) -> Value {
    json!({ "type": kind, "object": object })
}

fn services(names: &[&str]) -> Vec<String> {
    names.iter().map(|&n| n.to_owned()).collect()
}

async fn logs_of(client: &Client, names: &[&str], options: &LogOptions) -> Result<String> {
    let mut out = Vec::new();
    stream(client, "wander", &services(names), options, &mut out).await?;
    Ok(String::from_utf8(out).unwrap())
}

/// Lines of `output` that start with `prefix`, with it removed.
fn lines_of<'a>(output: &'a str, prefix: &str) -> Vec<&'a str> {
    output
        .lines()
        .filter_map(|line| line.strip_prefix(prefix))
        .collect()
}

fn requests(seen: &Seen) -> Vec<String> {
    seen.lock().unwrap().clone()
}

#[tokio::test]
async fn every_started_container_is_asked_for_its_window_and_labelled_by_service() {
    let (client, seen) = mocked(vec![
        (
            "/pods?&labelSelector=app.kubernetes.io/name in (postgres,api)",
            vec![Reply::Json(pod_list(vec![
                pod(
                    "api-7c9d-x2k4f",
                    "api",
                    5,
                    &[
                        ("api", Some("containerd://a1")),
                        ("metrics", Some("containerd://m1")),
                        ("debug", None),
                    ],
                ),
                pod(
                    "postgres-0",
                    "postgres",
                    1,
                    &[("postgres", Some("containerd://p1"))],
                ),
            ]))],
        ),
        (
            "/pods/postgres-0/log?&container=postgres",
            vec![Reply::Text("ready to accept\nconnections\n")],
        ),
        (
            "/pods/api-7c9d-x2k4f/log?&container=api&",
            vec![Reply::Text("listening on :8080\nbad \u{fffd}\nunfinished")],
        ),
        (
            "/pods/api-7c9d-x2k4f/log?&container=metrics",
            vec![Reply::Text("scraped\n")],
        ),
    ]);
    let asked = LogOptions {
        since: Some(Since::Ago(Duration::from_secs(600))),
        tail: Some(5),
        ..options(true, false)
    };
    let out = logs_of(&client, &["postgres", "api"], &asked)
        .await
        .unwrap();

    assert_eq!(
        lines_of(&out, "postgres    | "),
        ["ready to accept", "connections"],
        "{out}"
    );
    assert_eq!(
        lines_of(&out, "api/api     | "),
        ["listening on :8080", "bad \u{fffd}", "unfinished"],
        "{out}"
    );
    assert_eq!(lines_of(&out, "api/metrics | "), ["scraped"], "{out}");
    assert_eq!(out.lines().count(), 6, "{out}");

    let seen = requests(&seen);
    assert_eq!(
        seen.len(),
        4,
        "a container that never started is not asked for: {seen:?}"
    );
    for uri in &seen[1..] {
        assert!(uri.contains("&sinceSeconds=600&tailLines=5"), "{uri}");
        assert!(!uri.contains("follow"), "{uri}");
    }
}

#[tokio::test]
async fn without_prefix_lines_are_bare_and_colour_comes_only_when_asked() {
    let routes = || {
        vec![
            (
                "/pods?&labelSelector=app.kubernetes.io/name=redis",
                vec![Reply::Json(pod_list(vec![pod(
                    "redis-0",
                    "redis",
                    1,
                    &[("redis", Some("containerd://r1"))],
                )]))],
            ),
            (
                "/pods/redis-0/log?&container=redis",
                vec![Reply::Text("Ready to accept connections tcp\n")],
            ),
        ]
    };
    let (client, _) = mocked(routes());
    let bare = logs_of(&client, &["redis"], &options(false, true))
        .await
        .unwrap();
    assert_eq!(bare, "Ready to accept connections tcp\n");

    let (client, _) = mocked(routes());
    let plain = logs_of(&client, &["redis"], &options(true, false))
        .await
        .unwrap();
    assert_eq!(plain, "redis | Ready to accept connections tcp\n");

    let (client, _) = mocked(routes());
    let coloured = logs_of(&client, &["redis"], &options(true, true))
        .await
        .unwrap();
    assert!(coloured.starts_with('\u{1b}'), "{coloured:?}");
    assert_eq!(console::strip_ansi_codes(&coloured), plain);
}

#[tokio::test]
async fn a_service_running_several_pods_names_each_pod() {
    let (client, _) = mocked(vec![
        (
            "labelSelector=app.kubernetes.io/name=web",
            vec![Reply::Json(pod_list(vec![
                pod("web-b", "web", 2, &[("web", Some("containerd://b"))]),
                pod("web-a", "web", 1, &[("web", Some("containerd://a"))]),
            ]))],
        ),
        ("/pods/web-a/log", vec![Reply::Text("from a\n")]),
        ("/pods/web-b/log", vec![Reply::Text("from b\n")]),
    ]);
    let out = logs_of(&client, &["web"], &options(true, false))
        .await
        .unwrap();
    assert_eq!(lines_of(&out, "web/web-a | "), ["from a"], "{out}");
    assert_eq!(lines_of(&out, "web/web-b | "), ["from b"], "{out}");
}

#[tokio::test]
async fn a_service_without_pods_is_an_error_that_says_to_start_the_stack() {
    let (client, seen) = mocked(vec![(
        "/pods?&labelSelector",
        vec![Reply::Json(pod_list(vec![pod(
            "postgres-0",
            "postgres",
            1,
            &[("postgres", Some("containerd://p1"))],
        )]))],
    )]);
    let error = logs_of(
        &client,
        &["postgres", "redis", "api"],
        &options(true, false),
    )
    .await
    .unwrap_err();
    assert_eq!(
        format!("{error:#}"),
        "no pod of redis, api in namespace \"wander\": start the stack with `cargo xtask dev`"
    );
    assert_eq!(
        requests(&seen).len(),
        1,
        "no logs are read: {:?}",
        requests(&seen)
    );
}

#[tokio::test]
async fn a_log_that_cannot_be_read_is_an_error_naming_the_pod_and_container() {
    let (client, _) = mocked(vec![
        (
            "/pods?&labelSelector",
            vec![Reply::Json(pod_list(vec![pod(
                "api-1",
                "api",
                1,
                &[("api", Some("containerd://a1"))],
            )]))],
        ),
        ("/pods/api-1/log", vec![Reply::NotFound]),
    ]);
    let error = logs_of(&client, &["api"], &options(true, false))
        .await
        .unwrap_err();
    let error = format!("{error:#}");
    assert!(
        error.starts_with("reading the logs of api (pod api-1, container api): "),
        "{error}"
    );
}

/// A `log_params` case: name, `--since`, `--tail`, the window, then the `sinceSeconds`,
/// `sinceTime` and `tailLines` wanted.
type ParamsCase = (
    &'static str,
    Option<Since>,
    Option<u64>,
    Window,
    Option<i64>,
    Option<&'static str>,
    Option<i64>,
);

#[test]
fn since_and_tail_become_the_log_requests_parameters() {
    let at = datetime!(2024-05-01 12:00:00.7 UTC);
    let cases: Vec<ParamsCase> = vec![
        ("nothing asked", None, None, Window::Asked, None, None, None),
        (
            "a duration",
            Some(Since::Ago(Duration::from_secs(7200))),
            Some(20),
            Window::Asked,
            Some(7200),
            None,
            Some(20),
        ),
        (
            "zero seconds, which the API refuses",
            Some(Since::Ago(Duration::ZERO)),
            None,
            Window::Asked,
            Some(1),
            None,
            None,
        ),
        (
            "a time, to the second",
            Some(Since::At(at)),
            Some(3),
            Window::Asked,
            None,
            Some("2024-05-01T12:00:00Z"),
            Some(3),
        ),
        (
            "a later instance: from its start",
            Some(Since::Ago(Duration::from_secs(60))),
            Some(3),
            Window::Whole,
            None,
            None,
            None,
        ),
        (
            "a later instance: a time still holds",
            Some(Since::At(at)),
            Some(3),
            Window::Whole,
            None,
            Some("2024-05-01T12:00:00Z"),
            None,
        ),
    ];
    for (name, since, tail, window, seconds, time, lines) in cases {
        let asked = LogOptions {
            since,
            tail,
            follow: true,
            ..options(true, false)
        };
        let params = log_params("api", &asked, window);
        assert_eq!(params.container.as_deref(), Some("api"), "{name}");
        assert!(params.follow, "{name}");
        assert_eq!(params.since_seconds, seconds, "{name}");
        assert_eq!(
            params.since_time.map(|t| t.to_string()).as_deref(),
            time,
            "{name}"
        );
        assert_eq!(params.tail_lines, lines, "{name}");
    }
}

/// Runs a follow until `out` holds `last`, then a little longer (it must not end by itself),
/// then drops it, as Ctrl-C does.
async fn follow_until(client: &Client, names: &[&str], asked: &LogOptions, last: &str) -> String {
    let out = Shared::default();
    let mut writer = out.clone();
    let names = services(names);
    let follow = stream(client, "wander", &names, asked, &mut writer);
    out.follow_until(
        follow,
        last,
        Duration::from_millis(300),
        Duration::from_secs(10),
    )
    .await;
    out.text()
}

#[tokio::test]
async fn following_picks_up_a_new_pod_and_a_restart_once_each_and_lets_the_old_pod_go() {
    let old = pod("api-old", "api", 1, &[("api", Some("containerd://o1"))]);
    let mut leaving = old.clone();
    leaving["metadata"]["deletionTimestamp"] = json!("2026-03-01T10:05:00Z");
    leaving["metadata"]["resourceVersion"] = json!("101");
    let pending = pod("api-new", "api", 9, &[("api", None)]);
    let running = pod("api-new", "api", 9, &[("api", Some("containerd://n1"))]);
    let mut restarted = running.clone();
    restarted["status"]["containerStatuses"][0]["containerID"] = json!("containerd://n2");
    restarted["status"]["containerStatuses"][0]["restartCount"] = json!(1);
    restarted["metadata"]["resourceVersion"] = json!("105");

    let (client, seen) = mocked(vec![
        (
            "watch=true",
            vec![
                Reply::Watch(vec![
                    event("ADDED", pending),
                    event("MODIFIED", running.clone()),
                    // The same instance again: not streamed twice.
                    event("MODIFIED", running),
                    event("MODIFIED", leaving.clone()),
                    event("DELETED", leaving),
                    event("MODIFIED", restarted.clone()),
                    event("MODIFIED", restarted),
                ]),
                Reply::Hang,
            ],
        ),
        (
            "/pods?&labelSelector=app.kubernetes.io/name=api",
            vec![Reply::Json(pod_list(vec![old]))],
        ),
        // The old pod's stream ends as its container is stopped.
        ("/pods/api-old/log", vec![Reply::Text("old 1\nold 2\n")]),
        (
            "/pods/api-new/log",
            vec![Reply::Text("new 1\n"), Reply::Text("after restart\n")],
        ),
    ]);
    let asked = LogOptions {
        follow: true,
        tail: Some(10),
        ..options(true, false)
    };
    let out = follow_until(&client, &["api"], &asked, "after restart").await;

    let mut shown = lines_of(&out, "api | ");
    shown.sort_unstable();
    assert_eq!(shown, ["after restart", "new 1", "old 1", "old 2"], "{out}");

    let seen = requests(&seen);
    assert!(
        !seen.iter().any(|uri| uri.starts_with("UNEXPECTED")),
        "{seen:?}"
    );
    let logs: Vec<&String> = seen.iter().filter(|uri| uri.contains("/log?")).collect();
    assert_eq!(logs.len(), 3, "{seen:?}");
    let old_log = logs.iter().find(|uri| uri.contains("api-old")).unwrap();
    assert!(
        old_log.ends_with("?&container=api&follow=true&tailLines=10"),
        "{old_log}"
    );
    for uri in logs.iter().filter(|uri| uri.contains("api-new")) {
        assert!(
            uri.ends_with("?&container=api&follow=true"),
            "from its start: {uri}"
        );
    }
    let watches: Vec<&String> = seen
        .iter()
        .filter(|uri| uri.contains("watch=true"))
        .collect();
    assert_eq!(watches.len(), 2, "{seen:?}");
    assert!(
        watches[0].contains("labelSelector=app.kubernetes.io/name=api"),
        "{}",
        watches[0]
    );
    assert!(
        watches[0].ends_with("resourceVersion=100"),
        "{}",
        watches[0]
    );
    assert!(
        watches[1].ends_with("resourceVersion=105"),
        "{}",
        watches[1]
    );
}

#[tokio::test]
async fn an_expired_watch_is_followed_by_a_fresh_list_that_starts_only_new_instances() {
    let first = pod("redis-0", "redis", 1, &[("redis", Some("containerd://r1"))]);
    // Recreated under the same name while the watch was away: a new uid and container.
    let mut again = pod(
        "redis-0",
        "redis",
        30,
        &[("redis", Some("containerd://r2"))],
    );
    again["metadata"]["uid"] = json!("uid-redis-0-again");
    let expired = json!({ "type": "ERROR", "object": { "kind": "Status", "apiVersion": "v1",
        "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410 } });
    let (client, seen) = mocked(vec![
        ("watch=true", vec![Reply::Watch(vec![expired]), Reply::Hang]),
        (
            "/pods?&labelSelector",
            vec![
                Reply::Json(pod_list(vec![first.clone()])),
                Reply::Json(pod_list(vec![first, again])),
            ],
        ),
        (
            "/pods/redis-0/log",
            vec![Reply::Text("first life\n"), Reply::Text("second life\n")],
        ),
    ]);
    let asked = LogOptions {
        follow: true,
        ..options(false, false)
    };
    let out = follow_until(&client, &["redis"], &asked, "second life").await;
    let mut shown: Vec<&str> = out.lines().collect();
    shown.sort_unstable();
    assert_eq!(shown, ["first life", "second life"], "{out}");
    let seen = requests(&seen);
    assert_eq!(
        seen.iter().filter(|uri| uri.contains("/log?")).count(),
        2,
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|uri| uri.starts_with("UNEXPECTED")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn following_a_pod_deleted_before_its_log_is_read_is_quiet() {
    let (client, _) = mocked(vec![
        ("watch=true", vec![Reply::Hang]),
        (
            "/pods?&labelSelector",
            vec![Reply::Json(pod_list(vec![
                pod("web-1", "web", 1, &[("web", Some("containerd://w1"))]),
                pod("web-2", "web", 2, &[("web", Some("containerd://w2"))]),
            ]))],
        ),
        ("/pods/web-1/log", vec![Reply::NotFound]),
        ("/pods/web-2/log", vec![Reply::Text("still here\n")]),
    ]);
    let asked = LogOptions {
        follow: true,
        ..options(true, false)
    };
    let out = follow_until(&client, &["web"], &asked, "still here").await;
    assert_eq!(out, "web/web-2 | still here\n");
}
