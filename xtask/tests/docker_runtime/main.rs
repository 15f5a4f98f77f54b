//! `cargo xtask` on the docker runtime, end to end: the real binary, the real Docker engine,
//! the real images (built by the xtask itself), the real stack.
//!
//! Each test runs its own stack (name, state folder, host ports), so they run side by side and
//! beside a developer's own stack, and removes it at the end.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod helpers;
mod watch;

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
    // The policies are not silently dropped: the runtime says what it does with them.
    assert!(
        run.stderr
            .contains("its 6 NetworkPolicies are checked, not enforced"),
        "{run:#?}"
    );
    assert!(
        run.stderr
            .contains(&format!("http://127.0.0.1:{}", stack.web_port)),
        "{run:#?}"
    );

    // The API answers on its host port with the seed.
    assert_eq!(deployments_total(&stack).await, 28);
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
    let health: Vec<&str> = run
        .stdout
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(2))
        .collect();
    assert_eq!(health, ["healthy"; 4], "{run:#?}");

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
    let run = stack.run(&["db-shell", "-c", "SELECT 'n=' || count(*) FROM deployments"]);
    run.assert_ok();
    assert!(
        run.stdout.split_whitespace().any(|word| word == "n=28"),
        "{run:#?}"
    );
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
    // The API's answer is cached now; a seed writes past the API, and clears that cache.
    assert_eq!(deployments_total(&stack).await, 29);
    let run = stack.run(&["seed", "--reset"]);
    run.assert_ok();
    assert!(run.stderr.contains("28 deployments"), "{run:#?}");
    assert!(run.stderr.contains("API cache cleared"), "{run:#?}");
    assert_eq!(count(&stack), "28");
    assert_eq!(
        deployments_total(&stack).await,
        28,
        "the API serves rows from before the seed"
    );

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

    // A forward to the API, opened before the API is replaced below, reaches the new one after.
    let api_local = helpers::free_port();
    let mut api_forward = stack
        .command(&["port-forward", "api", &api_local.to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let through_forward = |port: u16| async move {
        let started = std::time::Instant::now();
        loop {
            match reqwest::get(format!("http://127.0.0.1:{port}/health")).await {
                Ok(response) if response.status() == 200 => return,
                _ if started.elapsed().as_secs() < 20 => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                other => panic!("no answer through the forward: {other:?}"),
            }
        }
    };
    through_forward(api_local).await;
    let api_before = api_container_id(&stack).await;

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
    // The old API container is gone, so an answer through the same forward is the new one's.
    assert_ne!(api_container_id(&stack).await, api_before);
    assert!(!after.contains(&api_before));
    through_forward(api_local).await;
    api_forward.kill().unwrap();
    api_forward.wait().unwrap();

    // WANDER_REDIS_IMAGE runs another image for one service (here the same image under a name
    // of its own, so that it must be found by that name) and replaces that service only.
    let status_of = |stack: &TestStack| -> Value {
        let run = stack.run(&["status", "--json"]);
        run.assert_ok();
        serde_json::from_str(&run.stdout).unwrap()
    };
    let redis_image = status_of(&stack)["services"][1]["image"]
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
    let status = status_of(&stack);
    assert_eq!(
        status["services"][1]["image"],
        override_image.as_str(),
        "{status}"
    );
    assert_eq!(status["healthy"], true, "{status}");

    // restart: the dashboard in a new container of the same image, the rest untouched.
    let before = container_ids(&stack.name).await;
    let web_image = status["services"][3]["image"].clone();
    let run = stack.run(&["restart", "web"]);
    run.assert_ok();
    assert!(run.stderr.contains("restarted · GET / 200"), "{run:#?}");
    let after = container_ids(&stack.name).await;
    assert_eq!(
        before.iter().filter(|id| after.contains(id)).count(),
        3,
        "only the dashboard's container may change"
    );
    let html = reqwest::get(stack.web("/")).await.unwrap();
    assert_eq!(html.status(), 200);
    let status = status_of(&stack);
    assert_eq!(status["services"][3]["image"], web_image, "{status}");
    assert_eq!(status["healthy"], true, "{status}");

    // down keeps the data unless asked; down --volumes leaves nothing behind.
    let run = stack.run(&["down"]);
    run.assert_ok();
    assert_eq!(leftovers(&stack.name).await, (0, 0, 1));
    let run = stack.run(&["down", "--volumes"]);
    run.assert_ok();
    assert_eq!(leftovers(&stack.name).await, (0, 0, 0));
}

/// The API's count of deployments, as its list endpoint answers it.
async fn deployments_total(stack: &TestStack) -> Value {
    let page: Value = reqwest::get(stack.api("/api/deployments?limit=1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["total"].clone()
}

/// The id of the stack's API container.
async fn api_container_id(stack: &TestStack) -> String {
    helpers::docker()
        .await
        .inspect_container(&format!("{}-api", stack.name), None)
        .await
        .unwrap()
        .id
        .unwrap()
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

#[test]
fn the_engine_is_found_through_the_docker_context_and_a_broken_one_is_named() {
    let mut stack = TestStack::new("context");
    let run = stack.run(&["doctor", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let socket = &helpers::docker_config().1;
    // The engine is local: it runs this machine's processor.
    let platform = match std::env::consts::ARCH {
        "aarch64" => "linux/arm64",
        _ => "linux/amd64",
    };
    assert_eq!(
        report["engine"],
        serde_json::json!({
            "endpoint": format!("unix://{}", socket.display()),
            "rule": "DOCKER_CONTEXT",
            "context": helpers::CONTEXT,
            "platform": platform,
            "apps_platform": platform,
        }),
        "{run:#?}"
    );
    let docker = &report["checks"][1];
    assert_eq!(docker["name"], "docker", "{run:#?}");
    assert_eq!(docker["status"], "ok", "{run:#?}");
    assert!(
        docker["detail"].as_str().unwrap().ends_with(&format!(
            "from the Docker context {} (DOCKER_CONTEXT)",
            helpers::CONTEXT
        )),
        "{run:#?}"
    );

    // A context that does not exist stops every command that needs the engine, by name.
    stack
        .extra_env
        .push(("DOCKER_CONTEXT".into(), "no-such-context".into()));
    let run = stack.run(&["dev", "--no-open"]);
    run.assert_fails_with("DOCKER_CONTEXT=no-such-context");
    assert!(run.stderr.contains("docker context ls"), "{run:#?}");
    let run = stack.run(&["doctor", "--json"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["engine"], serde_json::Value::Null, "{run:#?}");
    assert_eq!(report["checks"][1]["status"], "fail", "{run:#?}");
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
fn a_database_kept_from_another_password_is_named_at_once_with_the_way_out() {
    let stack = TestStack::new("stalepw");
    stack.run(&["dev", "--no-open"]).assert_ok();
    // As after another checkout's `dev` on the same stack name, or a deleted .wander/: the
    // data volume stays, the generated password is another.
    let path = stack.state.path().join("secrets.json");
    let mut secrets: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    secrets["postgres_password"] = Value::from("another-password-entirely");
    std::fs::write(&path, secrets.to_string()).unwrap();
    // Not the 120 s of the readiness wait: a refused password does not heal by waiting.
    let run = stack.run(&["dev", "--no-open", "--timeout", "100"]);
    run.assert_fails_with("postgres runs but refuses the stack's password");
    assert!(
        run.stderr.contains("`cargo xtask down --volumes`"),
        "{run:#?}"
    );
    assert!(!run.stderr.contains("was not ready after"), "{run:#?}");
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
async fn ctrl_c_while_waiting_stops_dev_at_once_and_the_next_run_keeps_its_container() {
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
    // Interrupted once its container exists (dev then waits for it to be ready, forever).
    let container = format!("{}-broken", stack.name);
    let docker = helpers::docker().await;
    let started = std::time::Instant::now();
    let id = loop {
        if let Ok(details) = docker.inspect_container(&container, None).await {
            break details.id.unwrap();
        }
        assert!(started.elapsed().as_secs() < 60, "no container: {seen}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let status = interrupt(&mut child);
    assert_eq!(status.code(), Some(130));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(rest.contains("interrupted"), "{seen}{rest}");
    // What dev leaves running is the stack's kubelet, which watches the container it made.
    let left = helpers::processes_of(&stack.name);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].1.contains(" kubelet"), "{left:?}");
    // Running dev again continues from there: the container it made is the one it waits for.
    let run = stack.run(&["dev", "--no-open", "--timeout", "1"]);
    run.assert_fails_with("broken was not ready after 1s");
    let again = docker.inspect_container(&container, None).await.unwrap();
    assert_eq!(again.id.as_deref(), Some(id.as_str()), "{run:#?}");
    // down stops the kubelet too.
    stack.run(&["down"]).assert_ok();
    assert_eq!(helpers::processes_of(&stack.name), []);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_an_image_build_ends_the_build_and_everything_it_started() {
    use std::io::{BufRead as _, BufReader};
    // A Debian mirror that takes connections and never answers: the stand-in image's
    // debootstrap (a new mirror is a new image) and the download it runs wait there.
    let mirror = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = mirror.local_addr().unwrap().port();
    let (connected, downloading) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for connection in mirror.incoming().flatten().take(64) {
            held.push(connection);
            let _ = connected.send(());
        }
    });
    let mut stack = TestStack::new("ctrlc-build");
    stack.extra_env.push((
        "WANDER_DEBIAN_MIRROR".into(),
        format!("http://127.0.0.1:{port}/debian"),
    ));
    let mut child = stack
        .command(&["-v", "dev", "--no-open"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let dev_pid = child.id();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("debootstrap") {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "dev ended before building a stand-in: {seen}"
        );
        seen.push_str(&line);
    }
    // debootstrap runs, and under it the download, which has reached the mirror and waits.
    downloading
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("no download reached the mirror: {seen}"));
    let running: Vec<_> = helpers::processes_of(&stack.name)
        .into_iter()
        .filter(|(pid, _)| *pid != dev_pid)
        .collect();
    assert!(running.len() >= 2, "{running:?}");
    let status = interrupt(&mut child);
    assert_eq!(status.code(), Some(130), "{seen}");
    // Nothing it started is left: not debootstrap, not its download.
    let started = std::time::Instant::now();
    loop {
        let left = helpers::processes_of(&stack.name);
        if left.is_empty() {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 15,
            "processes outlived the interrupted dev: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Sends SIGINT to `child` (a dev) and waits until it has exited: within 30 s, or the test fails.
fn interrupt(child: &mut std::process::Child) -> std::process::ExitStatus {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let sent = std::time::Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            eprintln!("dev stopped {:?} after SIGINT", sent.elapsed());
            return status;
        }
        assert!(
            sent.elapsed().as_secs() < 30,
            "dev still runs 30 s after Ctrl-C"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
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
        &["restart", "nope"],
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

#[tokio::test(flavor = "multi_thread")]
async fn the_stack_stays_healthy_under_traffic_past_its_first_snapshot_and_checkpoint() {
    // The test's own manifests: Redis snapshots 5 s after a write (60 s by default), PostgreSQL
    // checkpoints every 30 s (5 minutes by default) and says so in its log.
    let manifests = copy_manifests();
    edit(manifests.path(), "config.yaml", "save 60 1", "save 5 1");
    edit(
        manifests.path(),
        "postgres.yaml",
        "          imagePullPolicy: IfNotPresent\n",
        "          imagePullPolicy: IfNotPresent\n          args: [postgres, -c, checkpoint_timeout=30s, -c, log_checkpoints=on]\n",
    );
    let mut stack = TestStack::new("soak");
    stack.extra_env.push((
        "WANDER_MANIFESTS".into(),
        manifests.path().to_string_lossy().into_owned(),
    ));
    stack.run(&["dev", "--no-open"]).assert_ok();
    let token = stack.run(&["token"]).stdout.trim().to_owned();

    // Light traffic for longer than both intervals: a write and a read every 100 ms.
    let client = reqwest::Client::new();
    let mut acknowledged = Vec::new();
    let mut failures = Vec::new();
    let started = std::time::Instant::now();
    let mut written = 0;
    while started.elapsed() < std::time::Duration::from_secs(40) {
        written += 1;
        let response = client
            .post(stack.api("/api/deployments"))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "service_id": 1 + written % 4, "environment_id": 1 + written % 3,
                "version": format!("v0.0.{written}"), "deployed_by": "soak@test"
            }))
            .send()
            .await;
        match response {
            Ok(response) if response.status() == 201 => {
                let body: Value = response.json().await.unwrap();
                acknowledged.push((body["id"].as_i64().unwrap(), format!("v0.0.{written}")));
            }
            Ok(response) => failures.push(format!("POST: {}", response.status())),
            Err(err) => failures.push(format!("POST: {err}")),
        }
        match client
            .get(stack.api("/api/deployments?limit=5"))
            .send()
            .await
        {
            Ok(response) if response.status() == 200 => {}
            Ok(response) => failures.push(format!("GET: {}", response.status())),
            Err(err) => failures.push(format!("GET: {err}")),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(failures.is_empty(), "{failures:?}");
    assert!(acknowledged.len() > 100, "{} writes", acknowledged.len());

    // Both timers went off, and succeeded.
    let logs = stack.run(&["logs", "redis"]);
    logs.assert_ok();
    assert!(
        logs.stdout
            .contains("Background saving terminated with success"),
        "no Redis snapshot: {logs:#?}"
    );
    assert!(!logs.stdout.contains("MISCONF"), "{logs:#?}");
    let logs = stack.run(&["logs", "postgres"]);
    assert!(
        logs.stdout.contains("checkpoint complete"),
        "no PostgreSQL checkpoint: {logs:#?}"
    );

    // /health and status agree that everything is well.
    let health: Value = reqwest::get(stack.api("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    let run = stack.run(&["status", "--json"]);
    run.assert_ok();
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["healthy"], true, "{status}");
    assert!(status.get("notes").is_none(), "the kubelet runs: {status}");
    for service in status["services"].as_array().unwrap() {
        assert_eq!(service["health"], "healthy", "{service}");
        assert_eq!(service["restarts"], 0, "{service}");
    }

    // A second dev changes nothing.
    let run = stack.run(&["dev", "--no-open"]);
    run.assert_ok();
    assert!(run.stderr.contains("(0 of 4 services changed)"), "{run:#?}");

    // Every acknowledged write is there, as written.
    for (id, version) in &acknowledged {
        let body: Value = client
            .get(stack.api(&format!("/api/deployments/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["version"], version.as_str(), "{body}");
    }
}
