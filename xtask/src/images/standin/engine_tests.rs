//! The stand-in images against the real Docker engine: built (or found) by `ensure_*`, then run
//! the way the manifests run them (uid 999, read-only root, tmpfs, named volumes) and used over
//! the network from other containers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, Mount, MountType, NetworkCreateRequest,
    NetworkingConfig, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures_util::{FutureExt as _, StreamExt as _};

use super::ensure_for;
use crate::context::Context;

/// On everything these tests create, so that clean-up finds exactly that.
const TEST_LABEL: (&str, &str) = ("dev.wander.test", "standin");

const PG_USER: &str = "wander";
const PG_PASSWORD: &str = "s3cret-for-tests";
const PG_DB: &str = "wander_db";

fn labels() -> HashMap<String, String> {
    HashMap::from([(TEST_LABEL.0.to_owned(), TEST_LABEL.1.to_owned())])
}

fn label_filter() -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_owned(),
        vec![format!("{}={}", TEST_LABEL.0, TEST_LABEL.1)],
    )])
}

/// A name no earlier run used, for the network and volumes of this run.
fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).unwrap();
    let suffix = u32::from_le_bytes(bytes);
    format!("wander-standin-test-{prefix}-{suffix:08x}")
}

/// Removes every container, network and volume carrying [`TEST_LABEL`].
async fn clean_up(docker: &Docker) {
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&label_filter())
                .build(),
        ))
        .await
        .unwrap_or_default();
    for container in containers {
        if let Some(id) = container.id {
            let options = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            let _ = docker.remove_container(&id, Some(options)).await;
        }
    }
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&label_filter())
                .build(),
        ))
        .await
        .unwrap_or_default();
    for network in networks {
        if let Some(id) = network.id {
            let _ = docker.remove_network(&id).await;
        }
    }
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::default()
                .filters(&label_filter())
                .build(),
        ))
        .await
        .ok()
        .and_then(|list| list.volumes)
        .unwrap_or_default();
    for volume in volumes {
        let _ = docker
            .remove_volume(
                &volume.name,
                None::<bollard::query_parameters::RemoveVolumeOptions>,
            )
            .await;
    }
}

/// A long-running server container as the manifests run it: uid 999, read-only root, tmpfs
/// where it writes scratch files, a named volume for its data, an alias on the network.
struct Server<'a> {
    image: &'a str,
    alias: &'a str,
    network: &'a str,
    volume: &'a str,
    data_dir: &'a str,
    tmpfs: &'a [&'a str],
    env: Vec<String>,
    cmd: Option<Vec<String>>,
}

async fn create_server(docker: &Docker, server: &Server<'_>) -> String {
    let host_config = HostConfig {
        readonly_rootfs: Some(true),
        tmpfs: Some(
            server
                .tmpfs
                .iter()
                .map(|path| ((*path).to_owned(), String::new()))
                .collect(),
        ),
        mounts: Some(vec![Mount {
            target: Some(server.data_dir.to_owned()),
            source: Some(server.volume.to_owned()),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        }]),
        network_mode: Some(server.network.to_owned()),
        ..Default::default()
    };
    let body = ContainerCreateBody {
        image: Some(server.image.to_owned()),
        user: Some("999:999".to_owned()),
        env: Some(server.env.clone()),
        cmd: server.cmd.clone(),
        labels: Some(labels()),
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                server.network.to_owned(),
                EndpointSettings {
                    aliases: Some(vec![server.alias.to_owned()]),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    };
    let name = unique(server.alias);
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    let id = docker
        .create_container(Some(options), body)
        .await
        .unwrap()
        .id;
    docker.start_container(&id, None).await.unwrap();
    id
}

/// How a short-lived container ended.
struct Ran {
    exit_code: i64,
    output: String,
}

/// Runs `cmd` to its end in a fresh container of `image` on `network` (entrypoint replaced) and
/// returns its exit code and output.
async fn run_to_end(
    docker: &Docker,
    image: &str,
    network: Option<&str>,
    cmd: &[&str],
    env: &[String],
) -> Ran {
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        entrypoint: Some(cmd.iter().map(ToString::to_string).collect()),
        cmd: Some(Vec::new()),
        env: Some(env.to_vec()),
        user: Some("999:999".to_owned()),
        labels: Some(labels()),
        host_config: Some(HostConfig {
            network_mode: network.map(str::to_owned),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body,
        )
        .await
        .unwrap()
        .id;
    docker.start_container(&id, None).await.unwrap();
    let exit_code = wait_exited(docker, &id, Duration::from_secs(120)).await;
    let output = logs(docker, &id).await;
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    docker.remove_container(&id, Some(options)).await.unwrap();
    Ran { exit_code, output }
}

/// Waits for a container to stop running and returns its exit code.
async fn wait_exited(docker: &Docker, id: &str, timeout: Duration) -> i64 {
    let deadline = Instant::now() + timeout;
    loop {
        let state = docker
            .inspect_container(id, None)
            .await
            .unwrap()
            .state
            .unwrap();
        if state.running != Some(true) {
            return state.exit_code.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "container {id} still runs after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn logs(docker: &Docker, id: &str) -> String {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .build();
    let mut stream = docker.logs(id, Some(options));
    let mut text = String::new();
    while let Some(item) = stream.next().await {
        text.push_str(&item.unwrap().to_string());
    }
    text
}

/// Stops a container with the engine's default signal (SIGTERM) and returns how long it took
/// and its exit code.
async fn stop(docker: &Docker, id: &str) -> (Duration, i64) {
    let started = Instant::now();
    let options = StopContainerOptionsBuilder::default().t(30).build();
    docker.stop_container(id, Some(options)).await.unwrap();
    let code = wait_exited(docker, id, Duration::from_secs(5)).await;
    (started.elapsed(), code)
}

fn pg_env(password: &str) -> Vec<String> {
    vec![format!("PGPASSWORD={password}")]
}

/// `psql` from another container on the network, over TCP to the alias `postgres`.
async fn psql(docker: &Docker, image: &str, network: &str, password: &str, sql: &str) -> Ran {
    run_to_end(
        docker,
        image,
        Some(network),
        &[
            "psql",
            "-h",
            "postgres",
            "-p",
            "5432",
            "-U",
            PG_USER,
            "-d",
            PG_DB,
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ],
        &pg_env(password),
    )
    .await
}

async fn wait_postgres_ready(docker: &Docker, image: &str, network: &str, server: &str) {
    let ran = run_to_end(
        docker,
        image,
        Some(network),
        &[
            "sh",
            "-c",
            "for i in $(seq 240); do pg_isready -q -h postgres -p 5432 && exit 0; sleep 0.25; done; exit 1",
        ],
        &[],
    )
    .await;
    assert_eq!(
        ran.exit_code,
        0,
        "PostgreSQL never became ready; its log:\n{}",
        logs(docker, server).await
    );
}

async fn redis_cli(docker: &Docker, image: &str, network: &str, args: &[&str]) -> Ran {
    let mut cmd = vec!["redis-cli", "-h", "redis"];
    cmd.extend_from_slice(args);
    run_to_end(docker, image, Some(network), &cmd, &[]).await
}

async fn wait_redis_ready(docker: &Docker, image: &str, network: &str, server: &str) {
    let ran = run_to_end(
        docker,
        image,
        Some(network),
        &[
            "sh",
            "-c",
            "for i in $(seq 240); do [ \"$(redis-cli -h redis ping 2>/dev/null)\" = PONG ] && exit 0; sleep 0.25; done; exit 1",
        ],
        &[],
    )
    .await;
    assert_eq!(
        ran.exit_code,
        0,
        "Redis never became ready; its log:\n{}",
        logs(docker, server).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standin_images_honour_the_official_contract_on_the_real_engine() {
    let docker = crate::docker::connect().await.unwrap();
    clean_up(&docker).await;
    let outcome = std::panic::AssertUnwindSafe(exercise(&docker))
        .catch_unwind()
        .await;
    clean_up(&docker).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn exercise(docker: &Docker) {
    let ctx = Context::for_tests();
    let progress = |line: &str| eprintln!("[standin] {line}");
    let postgres = ensure_for(&ctx, docker, "postgres", &progress)
        .await
        .unwrap()
        .unwrap();
    let redis = ensure_for(&ctx, docker, "redis", &progress)
        .await
        .unwrap()
        .unwrap();
    eprintln!("postgres: {postgres:?}, redis: {redis:?}");

    // A second call finds the tags and builds nothing.
    let started = Instant::now();
    let again = ensure_for(&ctx, docker, "postgres", &progress)
        .await
        .unwrap()
        .unwrap();
    let again_redis = ensure_for(&ctx, docker, "redis", &progress)
        .await
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(!again.built && !again_redis.built);
    assert_eq!(again.reference, postgres.reference);
    assert_eq!(again_redis.reference, redis.reference);

    let network = unique("net");
    docker
        .create_network(NetworkCreateRequest {
            name: network.clone(),
            labels: Some(labels()),
            ..Default::default()
        })
        .await
        .unwrap();

    postgres_contract(docker, &postgres.reference, &network).await;
    redis_contract(docker, &redis.reference, &network).await;
}

async fn create_volume(docker: &Docker, name: &str) {
    docker
        .create_volume(VolumeCreateRequest {
            name: Some(name.to_owned()),
            labels: Some(labels()),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn postgres_contract(docker: &Docker, image: &str, network: &str) {
    // Without a password the image refuses to initialise, like the official one.
    let refused = run_to_end(
        docker,
        image,
        None,
        &["docker-entrypoint.sh", "postgres"],
        &[],
    )
    .await;
    assert_eq!(refused.exit_code, 1, "{}", refused.output);
    assert!(
        refused.output.contains("POSTGRES_PASSWORD"),
        "{}",
        refused.output
    );

    let volume = unique("pgdata");
    create_volume(docker, &volume).await;
    let server = Server {
        image,
        alias: "postgres",
        network,
        volume: &volume,
        data_dir: "/var/lib/postgresql/data",
        tmpfs: &["/tmp", "/var/run/postgresql"],
        env: vec![
            format!("POSTGRES_USER={PG_USER}"),
            format!("POSTGRES_PASSWORD={PG_PASSWORD}"),
            format!("POSTGRES_DB={PG_DB}"),
        ],
        cmd: None,
    };
    let id = create_server(docker, &server).await;
    wait_postgres_ready(docker, image, network, &id).await;

    let ran = psql(docker, image, network, PG_PASSWORD, "SELECT 1").await;
    assert_eq!(
        (ran.exit_code, ran.output.trim()),
        (0, "1"),
        "{}",
        ran.output
    );
    let ran = psql(docker, image, network, "not-the-password", "SELECT 1").await;
    assert_ne!(ran.exit_code, 0, "{}", ran.output);
    assert!(
        ran.output.contains("password authentication failed"),
        "{}",
        ran.output
    );
    let ran = psql(
        docker,
        image,
        network,
        PG_PASSWORD,
        "CREATE TABLE kept (value text); INSERT INTO kept VALUES ('survives restarts')",
    )
    .await;
    assert_eq!(ran.exit_code, 0, "{}", ran.output);

    // SIGTERM (what `docker stop` and the kubelet send) ends it at once and cleanly.
    let (took, code) = stop(docker, &id).await;
    let log = logs(docker, &id).await;
    assert_eq!(code, 0, "{log}");
    assert!(
        took < Duration::from_secs(10),
        "stopping took {took:?}:\n{log}"
    );
    assert!(log.contains("fast shutdown request"), "{log}");

    docker.start_container(&id, None).await.unwrap();
    wait_postgres_ready(docker, image, network, &id).await;
    let ran = psql(
        docker,
        image,
        network,
        PG_PASSWORD,
        "SELECT value FROM kept",
    )
    .await;
    assert_eq!(
        (ran.exit_code, ran.output.trim()),
        (0, "survives restarts"),
        "{}",
        ran.output
    );
    let log = logs(docker, &id).await;
    assert_eq!(
        log.matches("initializing the database cluster").count(),
        1,
        "initdb ran again on restart:\n{log}"
    );
    // PGDATA defaults to the official image's path, where the volume is.
    let ran = psql(
        docker,
        image,
        network,
        PG_PASSWORD,
        "SELECT current_setting('data_directory')",
    )
    .await;
    assert_eq!(
        ran.output.trim(),
        "/var/lib/postgresql/data",
        "{}",
        ran.output
    );
}

async fn redis_contract(docker: &Docker, image: &str, network: &str) {
    let volume = unique("redisdata");
    create_volume(docker, &volume).await;
    let server = Server {
        image,
        alias: "redis",
        network,
        volume: &volume,
        data_dir: "/data",
        tmpfs: &["/tmp"],
        env: Vec::new(),
        // Options alone go to redis-server, as with the official image.
        cmd: Some(vec!["--appendonly".to_owned(), "yes".to_owned()]),
    };
    let id = create_server(docker, &server).await;
    wait_redis_ready(docker, image, network, &id).await;

    let ran = redis_cli(docker, image, network, &["ping"]).await;
    assert_eq!(ran.output.trim(), "PONG", "{}", ran.output);
    let ran = redis_cli(docker, image, network, &["config", "get", "appendonly"]).await;
    assert_eq!(
        ran.output.split_whitespace().collect::<Vec<_>>(),
        ["appendonly", "yes"]
    );
    let ran = redis_cli(docker, image, network, &["config", "get", "protected-mode"]).await;
    assert_eq!(
        ran.output.split_whitespace().collect::<Vec<_>>(),
        ["protected-mode", "no"]
    );
    let ran = redis_cli(docker, image, network, &["set", "kept", "across restarts"]).await;
    assert_eq!(ran.output.trim(), "OK", "{}", ran.output);

    let (took, code) = stop(docker, &id).await;
    let log = logs(docker, &id).await;
    assert_eq!(code, 0, "{log}");
    assert!(
        took < Duration::from_secs(10),
        "stopping took {took:?}:\n{log}"
    );

    docker.start_container(&id, None).await.unwrap();
    wait_redis_ready(docker, image, network, &id).await;
    let ran = redis_cli(docker, image, network, &["get", "kept"]).await;
    assert_eq!(ran.output.trim(), "across restarts", "{}", ran.output);
}
