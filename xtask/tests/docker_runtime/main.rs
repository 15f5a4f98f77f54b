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

    // port-forward reaches a service that is not published: PostgreSQL answers its SSL probe.
    let local = helpers::free_port();
    let mut forward = stack
        .command(&["port-forward", "postgres", &local.to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let answer = {
        use std::io::{Read as _, Write as _};
        let started = std::time::Instant::now();
        let mut stream = loop {
            match std::net::TcpStream::connect(("127.0.0.1", local)) {
                Ok(stream) => break stream,
                Err(_) if started.elapsed().as_secs() < 20 => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(err) => panic!("port-forward never listened: {err}"),
            }
        };
        // PostgreSQL's SSLRequest: length 8, code 80877103; a server without TLS says 'N'.
        stream.write_all(&[0, 0, 0, 8, 4, 210, 22, 47]).unwrap();
        let mut reply = [0_u8; 1];
        stream.read_exact(&mut reply).unwrap();
        reply[0]
    };
    forward.kill().unwrap();
    forward.wait().unwrap();
    assert_eq!(answer, b'N', "not PostgreSQL behind the forward");

    // A second dev with nothing changed rebuilds nothing and recreates nothing.
    let before = container_ids(&stack.name).await;
    let run = stack.run(&["dev", "--no-open"]);
    run.assert_ok();
    assert!(run.stderr.contains("4 up to date"), "{run:#?}");
    assert!(run.stderr.contains("(0 of 4 services changed)"), "{run:#?}");
    assert_eq!(container_ids(&stack.name).await, before);

    // A change to one service replaces that service only.
    let manifests = copy_manifests();
    edit(
        manifests.path(),
        "api.yaml",
        "            - name: API_ADDR\n",
        "            - name: RUST_LOG\n              value: info\n            - name: API_ADDR\n",
    );
    let mut changed = stack.command(&["dev", "--no-open"]);
    changed.env("WANDER_MANIFESTS", manifests.path());
    let run: helpers::Run = changed.output().unwrap().into();
    run.assert_ok();
    assert!(run.stderr.contains("(1 of 4 services changed)"), "{run:#?}");
    assert!(run.stderr.contains("Starting api replaced"), "{run:#?}");
    let after = container_ids(&stack.name).await;
    assert_eq!(
        before.iter().filter(|id| after.contains(id)).count(),
        3,
        "only the API's container may change"
    );

    // WANDER_REDIS_IMAGE runs another image for one service (here the same image under a name
    // of its own, so that it must be found by that name) and replaces that service only.
    let status = |stack: &TestStack| -> Value {
        let run = stack.run(&["status", "--json"]);
        run.assert_ok();
        serde_json::from_str(&run.stdout).unwrap()
    };
    let redis_image = status(&stack)["services"][1]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    let override_image = format!("localhost/{}-redis:override", stack.name);
    let (repo, tag) = override_image.rsplit_once(':').unwrap();
    let docker = helpers::docker().await;
    docker
        .tag_image(
            &redis_image,
            Some(
                bollard::query_parameters::TagImageOptionsBuilder::default()
                    .repo(repo)
                    .tag(tag)
                    .build(),
            ),
        )
        .await
        .unwrap();
    let mut overridden = stack.command(&["dev", "--no-open"]);
    overridden.env("WANDER_MANIFESTS", manifests.path());
    overridden.env("WANDER_REDIS_IMAGE", &override_image);
    let run: helpers::Run = overridden.output().unwrap().into();
    docker
        .remove_image(
            &override_image,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await
        .unwrap();
    run.assert_ok();
    assert!(run.stderr.contains("(1 of 4 services changed)"), "{run:#?}");
    assert!(run.stderr.contains("Starting redis replaced"), "{run:#?}");
    let status = status(&stack);
    assert_eq!(
        status["services"][1]["image"],
        override_image.as_str(),
        "{status}"
    );
    assert_eq!(status["healthy"], true, "{status}");

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
    assert!(run.stderr.contains("start the daemon: `sudo "), "{run:#?}");
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

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_dev_at_once_and_leaves_no_process_behind() {
    use std::io::{BufRead as _, BufReader};
    let image = helpers::busybox_image().await;
    let manifests =
        one_workload_manifests(&image, &["/bin/sh", "-c", "exec sleep 600"], &["false"]);
    let mut stack = TestStack::new("ctrlc");
    stack.manifests = Some(manifests.path().to_path_buf());
    let mut child = stack
        .command(&["dev", "--no-open", "--timeout", "600"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("Starting broken") {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "dev ended early: {seen}"
        );
        seen.push_str(&line);
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let sent = std::time::Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed().as_secs() < 30,
            "dev still runs 30 s after Ctrl-C"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    eprintln!("dev stopped {:?} after SIGINT", sent.elapsed());
    assert_eq!(status.code(), Some(130));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(rest.contains("interrupted"), "{seen}{rest}");
    // Nothing started by that run is still running: no process carries its stack's name.
    let marker = format!("WANDER_STACK={}", stack.name);
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let environ = String::from_utf8_lossy(&environ);
        assert!(
            !environ.split('\0').any(|var| var == marker),
            "process {:?} outlived the interrupted dev",
            entry.file_name()
        );
    }
    // Running dev again continues from there: the container it made is reused, not recreated.
    let run = stack.run(&["dev", "--no-open", "--timeout", "1"]);
    run.assert_fails_with("broken was not ready after 1s");
    assert!(!run.stderr.contains("created"), "{run:#?}");
}

#[test]
fn commands_name_the_services_there_are_when_given_an_unknown_one() {
    let stack = TestStack::new("unknownsvc");
    // As after a first `dev`: the state folder holds the generated secrets.
    let secrets = stack.state.path().join("secrets.json");
    std::fs::write(&secrets, r#"{"postgres_password":"p","api_token":"t"}"#).unwrap();
    std::fs::set_permissions(
        &secrets,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    for args in [
        &["logs", "apii"][..],
        &["shell", "nope"],
        &["port-forward", "nope"],
    ] {
        let run = stack.run(args);
        run.assert_fails_with("postgres, redis, api, web");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kind_runtime_without_kind_says_how_to_install_it_and_touches_nothing() {
    let mut stack = TestStack::new("nokind");
    // Whatever this machine has installed, kind is not found here.
    stack.extra_env.push(("PATH".into(), "/nonexistent".into()));
    let run = stack.run(&["--runtime", "kind", "dev", "--no-open"]);
    run.assert_fails_with("kind is not installed");
    assert!(run.stderr.contains("fix: "), "{run:#?}");
    let run = stack.run(&["--runtime", "kind", "down"]);
    run.assert_fails_with("kind is not installed");
    for args in [
        &["status"][..],
        &["logs", "api"],
        &["db-shell", "-c", "SELECT 1"],
    ] {
        let mut with_kind = vec!["--runtime", "kind"];
        with_kind.extend_from_slice(args);
        stack.run(&with_kind).assert_fails_with("cargo xtask dev");
    }
    assert_eq!(leftovers(&stack.name).await, (0, 0, 0));
    assert!(
        std::fs::read_dir(stack.state.path())
            .unwrap()
            .next()
            .is_none(),
        "nothing is written to the state folder"
    );
}

#[test]
fn kind_only_options_are_refused_where_they_mean_nothing() {
    let stack = TestStack::new("kindopts");
    stack
        .run(&["down", "--keep-cluster"])
        .assert_fails_with("--keep-cluster is for the kind runtime");
    stack
        .run(&[
            "--runtime",
            "kind",
            "--context",
            "prod-eu",
            "dev",
            "--no-open",
        ])
        .assert_fails_with("not to `--context prod-eu`");
    stack
        .run(&["--runtime", "kind", "--context", "prod-eu", "down"])
        .assert_fails_with("never `--context prod-eu`");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_settings_are_refused_naming_the_variable_and_touch_nothing() {
    // A malformed value is a usage error (2) of every command, as a bad flag is.
    for (name, value, expected) in [
        (
            "WANDER_STACK",
            "Prod Stack",
            "WANDER_STACK=\"Prod Stack\" is not a usable name",
        ),
        (
            "WANDER_API_PORT",
            "80; rm -rf /",
            "WANDER_API_PORT=\"80; rm -rf /\" is not a port number",
        ),
        ("WANDER_API_IMAGE", "api image", "is not an image reference"),
        ("WANDER_STATE_DIR", "", "WANDER_STATE_DIR is set but empty"),
    ] {
        let mut stack = TestStack::new("badenv");
        stack.extra_env.push((name.into(), value.into()));
        for args in [&["dev", "--no-open"][..], &["status"], &["doctor"]] {
            let run = stack.run(args);
            assert_eq!(run.code, Some(2), "{name}={value:?} {args:?}: {run:#?}");
            assert!(run.stderr.contains(expected), "{run:#?}");
        }
    }
    // A well-formed override naming nothing in the stack: the variables that would work.
    let mut stack = TestStack::new("badenv");
    stack
        .extra_env
        .push(("WANDER_WEBB_PORT".into(), "3001".into()));
    let run = stack.run(&["dev", "--no-open"]);
    run.assert_fails_with("WANDER_WEBB_PORT: the stack publishes no service of that name");
    assert!(
        run.stderr.contains("WANDER_WEB_PORT, WANDER_API_PORT"),
        "{run:#?}"
    );
    // doctor reports it among its checks, and still runs the others.
    let run = stack.run(&["doctor"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stdout.contains("FAIL manifests"), "{run:#?}");
    assert!(run.stdout.contains("WANDER_WEBB_PORT"), "{run:#?}");
    assert!(run.stdout.contains("ok   docker"), "{run:#?}");
    assert_eq!(
        leftovers(&stack.name).await,
        (0, 0, 0),
        "nothing is created"
    );
}
