//! What can be tested without a websocket (kube's mocked service cannot answer the upgrade an exec
//! needs): exit statuses, the environment wrapping, the pipes' conversation over in-memory
//! streams, the exec request and its failure, and the pod choice against a mocked pod list.

// The fixtures take `json!` values as written at the call, which reads better than borrows.
#![allow(clippy::needless_pass_by_value)]

use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use super::*;

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|&w| w.to_owned()).collect()
}

fn status(value: Value) -> Status {
    serde_json::from_value(value).unwrap()
}

#[test]
fn the_exit_code_comes_from_the_status_the_command_ended_with() {
    let exited = |code: &str| {
        status(json!({
            "status": "Failure", "reason": "NonZeroExitCode",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "details": { "causes": [{ "reason": "ExitCode", "message": code }] }
        }))
    };
    let cases: Vec<(&str, Option<Status>, Result<i64, &str>)> = vec![
        (
            "success",
            Some(status(json!({ "status": "Success" }))),
            Ok(0),
        ),
        ("exit code 3", Some(exited("3")), Ok(3)),
        ("killed", Some(exited("137")), Ok(137)),
        (
            "a cause that is no number",
            Some(exited("three")),
            Err(
                "the command failed: command terminated with non-zero exit code: exit status three",
            ),
        ),
        (
            "a failure without an exit code",
            Some(status(json!({
                "status": "Failure", "reason": "InternalError",
                "message": "OCI runtime exec failed: exec: \"psql\": executable file not found in $PATH"
            }))),
            Err(
                "the command failed: OCI runtime exec failed: exec: \"psql\": executable file not found in $PATH",
            ),
        ),
        (
            "a failure with only a reason",
            Some(status(
                json!({ "status": "Failure", "reason": "InternalError" }),
            )),
            Err("the command failed: InternalError"),
        ),
        (
            "no status at all",
            None,
            Err("the API server ended the command without saying how it ended"),
        ),
    ];
    for (name, status, want) in cases {
        let got = exit_code(status.as_ref()).map_err(|e| format!("{e:#}"));
        assert_eq!(got, want.map_err(str::to_owned), "{name}");
    }
}

#[test]
fn extra_environment_is_given_through_env() {
    let psql = args(&["psql", "-U", "wander"]);
    assert_eq!(with_env(&[], &psql).unwrap(), psql);
    assert_eq!(
        with_env(
            &args(&["PSQL_HISTORY=/tmp/.psql_history", "_X1=two words", "EMPTY="]),
            &psql
        )
        .unwrap(),
        args(&[
            "env",
            "PSQL_HISTORY=/tmp/.psql_history",
            "_X1=two words",
            "EMPTY=",
            "psql",
            "-U",
            "wander"
        ])
    );
}

#[test]
fn environment_that_env_would_misread_is_refused_with_the_reason() {
    let cases: Vec<(Vec<String>, Vec<String>, &str)> = vec![
        (
            args(&["NOVALUE"]),
            args(&["psql"]),
            "\"NOVALUE\" is not an environment variable like NAME=value",
        ),
        (
            args(&["=x"]),
            args(&["psql"]),
            "\"=x\" is not an environment variable",
        ),
        (
            args(&["-i=x"]),
            args(&["psql"]),
            "\"-i=x\" is not an environment variable",
        ),
        (
            args(&["1A=x"]),
            args(&["psql"]),
            "\"1A=x\" is not an environment variable",
        ),
        (
            args(&["A=x"]),
            args(&["B=y"]),
            "cannot run \"B=y\" with extra environment",
        ),
        (args(&["A=x"]), Vec::new(), "no command to run"),
    ];
    for (env, command, want) in cases {
        let error = format!("{:#}", with_env(&env, &command).unwrap_err());
        assert!(error.starts_with(want), "{env:?} {command:?}: {error}");
    }
}

#[tokio::test]
async fn piped_output_keeps_stdout_and_stderr_apart_and_input_is_forwarded_then_closed() {
    let (mut remote_out, out_reader) = tokio::io::duplex(64);
    let (mut remote_err, err_reader) = tokio::io::duplex(64);
    let (stdin_writer, mut remote_in) = tokio::io::duplex(64);
    let input = Input::Bytes(Some(b"SELECT 1;\n".repeat(50)));
    // The "command": echoes what it reads until its stdin ends, then writes to stderr and ends.
    let command = tokio::spawn(async move {
        let mut received = Vec::new();
        remote_in.read_to_end(&mut received).await.unwrap();
        remote_out.write_all(b"1 row\n").await.unwrap();
        remote_err.write_all(b"NOTICE: done\n").await.unwrap();
        received
    });
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    converse(
        Some(out_reader),
        Some(err_reader),
        Some((input, stdin_writer)),
        &mut stdout,
        &mut stderr,
    )
    .await
    .unwrap();
    assert_eq!(command.await.unwrap(), b"SELECT 1;\n".repeat(50));
    assert_eq!(stdout, b"1 row\n");
    assert_eq!(stderr, b"NOTICE: done\n");
}

#[tokio::test]
async fn output_ending_ends_the_conversation_even_while_input_is_still_awaited() {
    let (mut remote_out, out_reader) = tokio::io::duplex(64);
    // Our stdin: a pipe nobody writes to or closes, like a terminal left alone.
    let (reader, _writer) = nix::unistd::pipe().unwrap();
    let input = Input::reopen(reader.as_fd()).unwrap();
    let (stdin_writer, _remote_in) = tokio::io::duplex(64);
    remote_out.write_all(b"bye\n").await.unwrap();
    drop(remote_out);
    let mut stdout = Vec::new();
    let no_errors: Option<tokio::io::DuplexStream> = None;
    let mut stderr = std::io::sink();
    let talk = converse(
        Some(out_reader),
        no_errors,
        Some((input, stdin_writer)),
        &mut stdout,
        &mut stderr,
    );
    tokio::time::timeout(std::time::Duration::from_secs(5), talk)
        .await
        .expect("the conversation waited for input after the output ended")
        .unwrap();
    assert_eq!(stdout, b"bye\n");
}

/// A client whose API server answers every request with `status` and `body`; returns the
/// decoded URIs it was asked for.
fn answering(code: StatusCode, body: Value) -> (Client, Arc<Mutex<Vec<String>>>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut handle = std::pin::pin!(handle);
        while let Some((request, send)) = handle.next_request().await {
            let uri = request.uri().to_string();
            record.lock().unwrap().push(
                uri.replace("%2F", "/")
                    .replace("%3D", "=")
                    .replace("%2C", ","),
            );
            let mut response = Response::new(Body::from(serde_json::to_vec(&body).unwrap()));
            *response.status_mut() = code;
            send.send_response(response);
        }
    });
    (Client::new(service, "wander"), seen)
}

fn not_found(pod: &str) -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": format!("pods \"{pod}\" not found"), "reason": "NotFound", "code": 404 })
}

#[tokio::test]
async fn the_exec_request_carries_the_wrapped_command_and_a_failure_names_pod_and_program() {
    let (client, seen) = answering(StatusCode::NOT_FOUND, not_found("postgres-0"));
    let io = ExecIo {
        tty: false,
        forward_stdin: false,
        env: args(&["PSQL_HISTORY=/tmp/.psql_history"]),
    };
    let command = args(&["psql", "-c", "SELECT 1"]);
    let error = run(
        &client,
        "wander",
        "postgres-0",
        Some("postgres"),
        &command,
        &io,
    )
    .await
    .unwrap_err();
    let error = format!("{error:#}");
    assert!(
        error.starts_with("starting `psql` in pod postgres-0, container postgres; is it running? see `cargo xtask status`: "),
        "{error}"
    );
    assert!(error.contains("pods \"postgres-0\" not found"), "{error}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            "/api/v1/namespaces/wander/pods/postgres-0/exec?&stdout=true&stderr=true&container=postgres&command=env&command=PSQL_HISTORY=/tmp/.psql_history&command=psql&command=-c&command=SELECT+1"
        ]
    );

    let (client, seen) = answering(StatusCode::NOT_FOUND, not_found("redis-0"));
    let error = capture(
        &client,
        "wander",
        "redis-0",
        None,
        &args(&["redis-cli", "ping"]),
    )
    .await
    .unwrap_err();
    assert!(
        format!("{error:#}").starts_with("starting `redis-cli` in pod redis-0; is it running?"),
        "{error:#}"
    );
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen[0].ends_with(
            "/pods/redis-0/exec?&stdout=true&stderr=true&command=redis-cli&command=ping"
        ),
        "{seen:?}"
    );
}

#[tokio::test]
async fn an_empty_command_is_refused_before_asking_the_cluster() {
    let (client, seen) = answering(StatusCode::NOT_FOUND, not_found("api-1"));
    let error = capture(&client, "wander", "api-1", None, &[])
        .await
        .unwrap_err();
    assert_eq!(format!("{error:#}"), "no command to run");
    assert!(seen.lock().unwrap().is_empty());
}

/// A pod of `postgres`: `ready`, created at second `born`, maybe being deleted.
fn pod(name: &str, ready: bool, born: u32, deleting: bool) -> Value {
    let mut metadata = json!({
        "name": name, "namespace": "wander",
        "labels": { "app.kubernetes.io/name": "postgres" },
        "creationTimestamp": format!("2026-03-01T10:00:{born:02}Z"),
    });
    if deleting {
        metadata["deletionTimestamp"] = json!("2026-03-01T10:01:00Z");
    }
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
        "spec": { "containers": [{ "name": "postgres", "image": "postgres:18" }] },
        "status": { "phase": "Running",
                    "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }] }
    })
}

fn pods(items: Vec<Value>) -> Value {
    json!({ "apiVersion": "v1", "kind": "PodList", "metadata": { "resourceVersion": "7" }, "items": items })
}

#[tokio::test]
async fn the_newest_ready_pod_that_is_not_terminating_is_chosen() {
    let cases: Vec<(&str, Vec<Value>, Result<&str, &str>)> = vec![
        (
            "the one ready pod",
            vec![pod("postgres-0", true, 1, false)],
            Ok("postgres-0"),
        ),
        (
            "the newest of the ready ones",
            vec![
                pod("pg-a", true, 1, false),
                pod("pg-b", true, 5, false),
                pod("pg-c", false, 9, false),
            ],
            Ok("pg-b"),
        ),
        (
            "not the terminating one, even if newer and still ready",
            vec![pod("pg-a", true, 1, false), pod("pg-b", true, 5, true)],
            Ok("pg-a"),
        ),
        (
            "none",
            vec![],
            Err(
                "postgres has no pod in namespace \"wander\": start the stack with `cargo xtask dev`",
            ),
        ),
        (
            "none ready",
            vec![pod("pg-a", false, 1, false), pod("pg-b", true, 5, true)],
            Err(
                "no pod of postgres is ready (pg-a not ready, pg-b terminating): see why with `cargo xtask status`",
            ),
        ),
    ];
    for (name, items, want) in cases {
        let (client, seen) = answering(StatusCode::OK, pods(items));
        let got = ready_pod(&client, "wander", "postgres")
            .await
            .map_err(|e| format!("{e:#}"));
        assert_eq!(
            got,
            want.map(str::to_owned).map_err(str::to_owned),
            "{name}"
        );
        assert_eq!(
            seen.lock().unwrap().clone(),
            ["/api/v1/namespaces/wander/pods?&labelSelector=app.kubernetes.io/name=postgres"],
            "{name}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_cluster_is_said_with_the_next_step() {
    // No answer at all: the connection to the API server fails.
    let client = crate::runtime::kind::testing::unreachable();
    let error = ready_pod(&client, "wander", "api").await.unwrap_err();
    let error = format!("{error:#}");
    assert!(
        error.starts_with("listing the pods of api in namespace \"wander\": the cluster did not answer; is it running? `cargo xtask dev` starts it: "),
        "{error}"
    );
    assert!(error.contains("connection refused"), "{error}");
}

#[tokio::test]
async fn a_cluster_that_refuses_says_so_rather_than_unreachable() {
    // The API server's RBAC refusal (k8s.io/apiserver, endpoints/handlers/responsewriters:
    // forbiddenMessage), as a context whose user may not list pods gets it.
    let (client, _) = answering(
        StatusCode::FORBIDDEN,
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"wander\"",
                "reason": "Forbidden", "details": { "kind": "pods" }, "code": 403 }),
    );
    let error = ready_pod(&client, "wander", "api").await.unwrap_err();
    let error = format!("{error:#}");
    assert!(
        error.starts_with("the cluster refused to list the pods of api in namespace \"wander\" (403 Forbidden): pods is forbidden: User \"jane\" cannot list resource"),
        "{error}"
    );
    assert!(!error.contains("did not answer"), "{error}");
}
