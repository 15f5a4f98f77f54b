//! The apps built for the other architecture than this machine's: arm64 on x86_64, as Docker
//! Desktop on Apple Silicon needs them. The images must say so, hold static binaries of that
//! processor, and those binaries must serve: run here under qemu-user against the run's
//! PostgreSQL and Redis, since this engine cannot start foreign containers.

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
};
use futures_util::TryStreamExt as _;

use super::*;
use crate::elf;

/// The platform that is not this machine's, and the qemu-user program that runs its binaries.
fn foreign() -> (Platform, &'static str) {
    match Platform::of_host_cpu().expect("an x86_64 or aarch64 host") {
        Platform::LinuxAmd64 => (Platform::LinuxArm64, "qemu-aarch64-static"),
        Platform::LinuxArm64 => (Platform::LinuxAmd64, "qemu-x86_64-static"),
    }
}

/// The file at `path` in `image`, read through a container that is created but never started
/// (the engine cannot run it).
async fn file_in_image(docker: &Docker, image: &str, path: &str) -> Vec<u8> {
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        labels: Some(HashMap::from([(
            "dev.wander.test".to_owned(),
            "images-app-cross".to_owned(),
        )])),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().build();
    let id = docker
        .create_container(Some(options), body)
        .await
        .unwrap()
        .id;
    let download = DownloadFromContainerOptionsBuilder::default()
        .path(path)
        .build();
    let chunks: Vec<bytes::Bytes> = docker
        .download_from_container(&id, Some(download))
        .try_collect()
        .await
        .unwrap();
    let remove = RemoveContainerOptionsBuilder::default().force(true).build();
    docker.remove_container(&id, Some(remove)).await.unwrap();
    let archive: Vec<u8> = chunks.concat();
    let mut archive = tar::Archive::new(archive.as_slice());
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes).unwrap();
    bytes
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `binary` under `qemu` with only `env`, its output in the test's.
fn run_emulated(qemu: &str, binary: &Path, env: &[(&str, String)]) -> Running {
    let mut command = Command::new(qemu);
    command
        .arg(binary)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null());
    Running(command.spawn().unwrap_or_else(|err| {
        panic!("{qemu} could not start ({err}); `cargo xtask setup` installs qemu-user-static")
    }))
}

/// GETs `url` until it answers (up to 90 s: an emulated start is slow), then returns the
/// status and body.
async fn get_when_up(url: &str, server: &mut Running) -> (u16, String) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(response) = client.get(url).send().await {
            let status = response.status().as_u16();
            return (status, response.text().await.unwrap());
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!("the server for {url} exited ({status})");
        }
        assert!(Instant::now() < deadline, "{url} did not answer in 90 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn images_for_the_other_architecture_hold_static_binaries_that_serve_under_emulation() {
    let (platform, qemu) = foreign();
    let docker = crate::docker::connect().await.unwrap();
    let ctx = crate::context::Context::for_tests();
    let dir = tempfile::tempdir().unwrap();
    let mut binaries = HashMap::new();
    let mut references = Vec::new();
    for app in App::ALL {
        let build = Build {
            repository: format!(
                "wander-xtask-test/{}-cross-{}",
                app.name(),
                std::process::id()
            ),
            platform,
            profile: Profile::Optimised,
            extra_labels: HashMap::from([(
                "dev.wander.test".to_owned(),
                "images-app-cross".to_owned(),
            )]),
        };
        let started = Instant::now();
        let image = ensure(&ctx, &docker, app, &build, &|line| {
            eprintln!("[{:>7.1?}] {line}", started.elapsed());
        })
        .await
        .unwrap();
        references.push(image.reference.clone());
        let inspect = docker.inspect_image(&image.reference).await.unwrap();
        assert_eq!(
            (inspect.os.as_deref(), inspect.architecture.as_deref()),
            (Some("linux"), Some(platform.arch())),
            "{}",
            image.reference
        );
        let bytes = file_in_image(
            &docker,
            &image.reference,
            &format!("/usr/local/bin/{}", app.name()),
        )
        .await;
        assert_eq!(elf::machine(&bytes), Some(platform.elf_machine()));
        assert_eq!(
            elf::is_static(&bytes),
            Ok(true),
            "{} needs no loader",
            app.name()
        );
        let path = dir.path().join(app.name());
        std::fs::write(&path, &bytes).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        binaries.insert(app.name(), path);
    }
    for reference in &references {
        let options = RemoveImageOptionsBuilder::default().force(true).build();
        docker
            .remove_image(reference, Some(options), None)
            .await
            .unwrap();
    }

    let database = testkit::TestDatabase::create(&testkit::pg_admin_url(), testkit::Seed::Seeded)
        .await
        .unwrap();
    let api_port = free_port();
    let mut api = run_emulated(
        qemu,
        &binaries["api"],
        &[
            ("API_ADDR", format!("127.0.0.1:{api_port}")),
            ("DATABASE_URL", database.url.clone()),
            ("REDIS_URL", testkit::redis_url()),
            // Emulation runs the client a few times slower than native: the cache's 150 ms
            // budget would count a healthy Redis as down.
            ("CACHE_TIMEOUT_MS", "5000".to_owned()),
        ],
    );
    // As `dev` does: a ready API connects to Redis in the background, so `degraded` (Redis not
    // connected yet) is waited out for a while; emulation makes that while longer.
    let health_url = format!("http://127.0.0.1:{api_port}/health");
    let settle = Instant::now() + Duration::from_secs(60);
    let (status, body) = loop {
        let (status, body) = get_when_up(&health_url, &mut api).await;
        let ok = serde_json::from_str::<serde_json::Value>(&body)
            .is_ok_and(|health| health["status"] == "ok");
        if ok || Instant::now() >= settle {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        health["status"], "ok",
        "the database and Redis answer: {body}"
    );
    assert_eq!(health["checks"]["redis"]["status"], "up", "{body}");

    let web_port = free_port();
    let mut web = run_emulated(
        qemu,
        &binaries["web"],
        &[
            ("WEB_ADDR", format!("127.0.0.1:{web_port}")),
            ("API_URL", format!("http://127.0.0.1:{api_port}")),
        ],
    );
    let (status, page) = get_when_up(&format!("http://127.0.0.1:{web_port}/"), &mut web).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<h1>Dashboard</h1>"), "{page}");
    assert!(
        page.contains("frontend"),
        "the seeded deployments are listed: {page}"
    );
}
