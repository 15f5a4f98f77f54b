//! Prerequisite checks, shared by `cargo xtask doctor` and the first step of `dev`.
//!
//! Each check reports what it found and, when something is wrong, the one thing to do about it:
//! an install or start line for this OS, the process to stop, the space to free. Checks never
//! stop at the first problem, so one run shows everything that needs fixing.

use std::fmt::Write as _;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use serde::Serialize;

use crate::cmd::Cmd;
use crate::context::Context;
use crate::docker::Endpoint;
use crate::docker::endpoint::Source;
use crate::platform::Platform;
use crate::port_holder::{Holder, port_holder};

/// The host ports the stack publishes: web on 3000, the API on 8080.
pub(crate) const DEFAULT_PORTS: [u16; 2] = [3000, 8080];

/// The kind release that install lines point at; its default node image runs Kubernetes 1.33,
/// the API version our typed manifests are built against.
const KIND_VERSION: &str = "v0.29.0";
/// The oldest kind that runs the stack: its default node image must serve what the manifests
/// and the runtime use (restricted pod security by namespace label, ephemeral containers).
const KIND_MINIMUM: (u32, u32, u32) = (0, 20, 0);

/// Below this much free disk, image builds and volumes fail part-way: refuse to start.
const DISK_FAIL_BYTES: u64 = 2 << 30;
/// Below this much, a cold build (toolchain caches, base images, data) may run out: warn.
const DISK_WARN_BYTES: u64 = 10 << 30;

/// How long the Docker daemon gets to answer before it counts as unreachable; a `DOCKER_HOST`
/// pointing at a dead machine would otherwise hang the check for minutes.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(10);
/// Docker Hub's registry, whose reachability decides whether the local images matter.
const REGISTRY: &str = "registry-1.docker.io:443";
/// How long the registry probe waits; it only decides whether debootstrap matters.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(3);

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Ok,
    /// Works, but slower or with a risk worth knowing about.
    Warn,
    /// The stack cannot come up until this is fixed.
    Fail,
}

/// The outcome of one check, as `doctor` prints it and `doctor --json` serialises it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Check {
    /// Short and stable (`docker`, `port 8080`, `disk`): scripts match on it.
    pub(crate) name: String,
    pub(crate) status: Status,
    /// What was found, in one line.
    pub(crate) detail: String,
    /// What to do about a warning or failure, in one line; `None` when nothing needs doing.
    pub(crate) fix: Option<String>,
}

impl Check {
    fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warn(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// What to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    /// Whether the kind runtime was chosen, so that kind itself must be installed.
    pub(crate) need_kind: bool,
    /// Host ports that must be free on 127.0.0.1.
    pub(crate) ports: Vec<u16>,
    /// Ports our own running stack already holds: taken, but not a conflict (a second `dev`).
    pub(crate) owned_ports: Vec<u16>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            need_kind: false,
            ports: DEFAULT_PORTS.to_vec(),
            owned_ports: Vec::new(),
        }
    }
}

/// Whether the stack reads (the manifests with the `WANDER_*` overrides), and the host ports it
/// publishes: the defaults when it does not, so that the port checks still run.
pub(crate) fn check_manifests(ctx: &Context) -> (Check, Vec<u16>) {
    match ctx.config().load_stack() {
        Ok(stack) => {
            let ports: Vec<u16> = stack.host_ports.iter().map(|m| m.host_port).collect();
            let shown: Vec<String> = ports.iter().map(u16::to_string).collect();
            let detail = format!(
                "{} workloads in {}, host ports {}",
                stack.workloads.len(),
                ctx.config().manifests.display(),
                shown.join(", ")
            );
            (Check::ok("manifests", detail), ports)
        }
        Err(err) => (
            Check::fail(
                "manifests",
                format!("{err:#}"),
                "fix what the message names: a file and path in the manifests, or a WANDER_* variable",
            ),
            DEFAULT_PORTS.to_vec(),
        ),
    }
}

/// The engine the checks found, for `doctor --json`: which one, chosen how, running what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Engine {
    /// Its address: `unix:///var/run/docker.sock`.
    pub(crate) endpoint: String,
    /// The rule that chose it: `DOCKER_HOST`, `DOCKER_CONTEXT`, `current-context`,
    /// `rootless-socket` or `default-socket`.
    pub(crate) rule: &'static str,
    /// The Docker context, when one chose it.
    pub(crate) context: Option<String>,
    /// `linux/amd64` or `linux/arm64`, when it answered.
    pub(crate) platform: Option<String>,
    /// What the apps are built for: `WANDER_PLATFORM`, else the engine's platform.
    pub(crate) apps_platform: Option<String>,
}

/// Every check, and the engine they found.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) checks: Vec<Check>,
    pub(crate) engine: Option<Engine>,
}

/// Runs every check that applies to this machine and returns them in a stable order: Docker,
/// kind, ports, disk, the musl target, debootstrap.
pub(crate) async fn run_checks(ctx: &Context, opts: &Options) -> Report {
    let mut checks = Vec::new();
    let (docker_check, docker, endpoint) = check_docker().await;
    checks.push(docker_check);
    if opts.need_kind {
        checks.push(check_kind(ctx));
    }
    for &port in &opts.ports {
        checks.push(check_port(ctx, port, opts.owned_ports.contains(&port)));
    }
    let data_root = match &docker {
        Some(docker) => docker_data_root(docker).await,
        None => None,
    };
    checks.push(check_disk(data_root.as_deref(), ctx.root()));
    let engine_platform = match &docker {
        Some(docker) => Platform::of(docker).await.ok(),
        None => None,
    };
    let apps_platform = ctx.config().platform.or(engine_platform);
    let target_platform = apps_platform.or_else(Platform::of_host_cpu);
    if let Some(platform) = target_platform {
        checks.push(check_musl_target(ctx, platform));
    }
    checks.push(check_debootstrap(engine_platform).await);
    let engine = endpoint.map(|endpoint| Engine {
        rule: endpoint.rule(),
        context: match endpoint.source {
            Source::ContextVariable { name } | Source::CurrentContext { name, .. } => Some(name),
            _ => None,
        },
        endpoint: endpoint.host,
        platform: engine_platform.map(|p| p.to_string()),
        apps_platform: apps_platform.map(|p| p.to_string()),
    });
    Report { checks, engine }
}

// --- Docker ---------------------------------------------------------------------------------

/// Whether the daemon answers (not merely whether the binary exists), with its version and
/// platform, and which rule chose it; the client is handed back for the checks that need it.
async fn check_docker() -> (Check, Option<Docker>, Option<Endpoint>) {
    let endpoint = match crate::docker::endpoint::resolve() {
        Ok(endpoint) => endpoint,
        Err(err) => {
            let fix = "fix the Docker configuration the message names, or set DOCKER_HOST to the engine's socket";
            return (Check::fail("docker", format!("{err:#}"), fix), None, None);
        }
    };
    let failure = |reason: String| {
        let detail = format!(
            "the Docker daemon at {} is not answering: {reason}",
            endpoint.describe()
        );
        Check::fail("docker", detail, crate::docker::advice::fix_for(&endpoint))
    };
    let connecting = crate::docker::connect_to(&endpoint);
    let docker = match tokio::time::timeout(DOCKER_TIMEOUT, connecting).await {
        Ok(Ok(docker)) => docker,
        // `connect` puts its own advice around the cause; the fix line below replaces it.
        Ok(Err(err)) => return (failure(err.root_cause().to_string()), None, Some(endpoint)),
        Err(_) => {
            let reason = format!("no answer within {} s", DOCKER_TIMEOUT.as_secs());
            return (failure(reason), None, Some(endpoint));
        }
    };
    let detail = match docker.version().await {
        Ok(version) => format!(
            "Docker {} (API {}, {}/{}) at {}",
            version.version.as_deref().unwrap_or("of unknown version"),
            version.api_version.as_deref().unwrap_or("unknown"),
            version.os.as_deref().unwrap_or("unknown"),
            version.arch.as_deref().unwrap_or("unknown"),
            endpoint.describe(),
        ),
        Err(err) => format!(
            "answering at {} (version unknown: {err})",
            endpoint.describe()
        ),
    };
    (Check::ok("docker", detail), Some(docker), Some(endpoint))
}

/// Docker's data root (`/var/lib/docker`): where images and volumes take their space. The engine
/// is always reached through a local socket, but with Docker Desktop the path lies inside its VM;
/// the disk check then finds nothing there and measures the repository instead.
async fn docker_data_root(docker: &Docker) -> Option<PathBuf> {
    let info = docker.info().await.ok()?;
    info.docker_root_dir.map(PathBuf::from)
}

// --- kind -----------------------------------------------------------------------------------

/// Whether kind is installed, and which version.
fn check_kind(ctx: &Context) -> Check {
    let fix = kind_fix(std::env::consts::OS, std::env::consts::ARCH);
    let Ok(path) = which::which("kind") else {
        return Check::fail("kind", "kind is not installed (not found on PATH)", fix);
    };
    let output = match Cmd::new(&path).arg("version").output(ctx.ui()) {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            let detail = format!(
                "`{} version` failed: {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
            return Check::fail("kind", detail, fix);
        }
        Err(err) => return Check::fail("kind", format!("{err:#}"), fix),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    match parse_kind_version(&stdout) {
        Some(version) if version_number(version).is_some_and(|v| v < KIND_MINIMUM) => {
            let oldest = format!("v{}.{}.{}", KIND_MINIMUM.0, KIND_MINIMUM.1, KIND_MINIMUM.2);
            Check::fail(
                "kind",
                format!(
                    "kind {version} at {} is older than {oldest}, the oldest that runs the stack",
                    path.display()
                ),
                fix,
            )
        }
        Some(version) => match other_provider(std::env::var("KIND_EXPERIMENTAL_PROVIDER").ok().as_deref()) {
            Some(problem) => Check::fail(
                "kind",
                problem,
                "unset KIND_EXPERIMENTAL_PROVIDER (`unset KIND_EXPERIMENTAL_PROVIDER`), or use the docker runtime: `--runtime docker`".to_owned(),
            ),
            None => Check::ok("kind", format!("kind {version} at {}", path.display())),
        },
        None => Check::warn(
            "kind",
            format!(
                "kind at {} printed an unexpected version: {}",
                path.display(),
                stdout.trim()
            ),
            fix,
        ),
    }
}

/// The version in `kind version` output (`kind v0.29.0 go1.24.2 linux/amd64`).
fn parse_kind_version(output: &str) -> Option<&str> {
    output.split_whitespace().find(|word| {
        word.strip_prefix('v')
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// `v0.29.0` (or `v0.20.0-alpha+abc`) as numbers, to compare releases.
fn version_number(version: &str) -> Option<(u32, u32, u32)> {
    let core = version.strip_prefix('v')?;
    let core = core.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(str::parse::<u32>);
    let major = parts.next()?.ok()?;
    let minor = parts.next()?.ok()?;
    let patch = parts.next().unwrap_or(Ok(0)).ok()?;
    Some((major, minor, patch))
}

/// Why a `KIND_EXPERIMENTAL_PROVIDER` value breaks the kind runtime, if it does. kind puts its
/// nodes on the provider named there (`podman`, `nerdctl`, `finch`, `nerdctl.lima`; it ignores
/// other values and finds docker first: kubernetes-sigs/kind, `pkg/cluster/provider.go`), and
/// nodes that are not the Docker engine's cannot be given the images this tool builds there.
pub(crate) fn other_provider(value: Option<&str>) -> Option<String> {
    match value? {
        provider @ ("podman" | "nerdctl" | "finch" | "nerdctl.lima") => Some(format!(
            "KIND_EXPERIMENTAL_PROVIDER={provider} makes kind run its nodes on {provider}, where the Docker engine that builds and loads the stack's images cannot reach them"
        )),
        _ => None,
    }
}

/// How to install kind on this OS, with the docker runtime as the way around it.
pub(crate) fn kind_fix(os: &str, arch: &str) -> String {
    let arch = match arch {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    let install = match os {
        "macos" => format!("`brew install kind`, or `go install sigs.k8s.io/kind@{KIND_VERSION}`"),
        "windows" => format!(
            "`winget install Kubernetes.kind`, or `go install sigs.k8s.io/kind@{KIND_VERSION}`"
        ),
        _ => format!(
            "`go install sigs.k8s.io/kind@{KIND_VERSION}`, or the release binary: `curl -fLo kind https://kind.sigs.k8s.io/dl/{KIND_VERSION}/kind-{os}-{arch} && chmod +x kind && sudo mv kind /usr/local/bin/`"
        ),
    };
    format!("install kind: {install}; or run without it: `--runtime docker`")
}

// --- Ports ----------------------------------------------------------------------------------

/// Whether `port` can be bound on 127.0.0.1, and if not, who holds it.
fn check_port(ctx: &Context, port: u16, owned: bool) -> Check {
    let name = format!("port {port}");
    if owned {
        return Check::ok(name, format!("127.0.0.1:{port} is held by this stack"));
    }
    // std sets SO_REUSEADDR on Unix, so leftover TIME_WAIT connections do not count as taken.
    match TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))) {
        Ok(_listener) => Check::ok(name, format!("127.0.0.1:{port} is free")),
        Err(err) if err.kind() == ErrorKind::AddrInUse => {
            let (detail, fix) = describe_taken_port(port, &port_holder(ctx, port));
            Check::fail(name, detail, fix)
        }
        Err(err) => Check::fail(
            name,
            format!("cannot listen on 127.0.0.1:{port}: {err}"),
            "run it as a user that may open this port, or free it",
        ),
    }
}

/// The failure line and its fix for a port someone else holds.
fn describe_taken_port(port: u16, holder: &Holder) -> (String, String) {
    match holder {
        Holder::Process { pid, name } if name == "docker-proxy" => (
            format!("port {port} is held by PID {pid} (docker-proxy): a container publishes it"),
            format!(
                "find the container with `docker ps --filter publish={port}` and stop it (`docker stop <name>`)"
            ),
        ),
        Holder::Process { pid, name } => (
            format!("port {port} is held by PID {pid} ({name})"),
            format!("stop it, or free the port: `kill {pid}`"),
        ),
        Holder::Hidden { user } => {
            // `ss` is Linux's; elsewhere the holder was looked up with lsof.
            let find = if cfg!(target_os = "linux") {
                format!("`sudo ss -ltnp 'sport = :{port}'`")
            } else {
                format!("`sudo lsof -nP -iTCP:{port} -sTCP:LISTEN`")
            };
            (
                format!("port {port} is held by a process of user {user} that you may not inspect"),
                format!("find it with {find} and stop it"),
            )
        }
        Holder::Unknown => {
            let find = if cfg!(target_os = "linux") {
                format!("`ss -ltnp 'sport = :{port}'`")
            } else if cfg!(windows) {
                format!("`netstat -ano | findstr :{port}`")
            } else {
                format!("`lsof -nP -iTCP:{port} -sTCP:LISTEN`")
            };
            (
                format!("port {port} on 127.0.0.1 is already in use"),
                format!("find what holds it with {find} and stop it"),
            )
        }
    }
}

// --- Disk -----------------------------------------------------------------------------------

/// Free space where images and volumes go (Docker's data root when it is local and readable),
/// else where the repository and its build output live.
fn check_disk(docker_root: Option<&Path>, repo_root: &Path) -> Check {
    let candidates = docker_root
        .map(|root| (root, "Docker's data root"))
        .into_iter()
        .chain([(repo_root, "the repository")]);
    for (path, what) in candidates {
        if let Ok(stat) = nix::sys::statvfs::statvfs(path) {
            // Both counts are u64 on 64-bit Linux, narrower on some other targets.
            #[allow(clippy::useless_conversion)]
            let available =
                u64::from(stat.blocks_available()).saturating_mul(u64::from(stat.fragment_size()));
            return disk_verdict(available, &format!("{} ({what})", path.display()));
        }
    }
    Check::warn(
        "disk",
        format!(
            "could not measure the free space at {}",
            repo_root.display()
        ),
        "make sure at least 10 GiB are free for images, volumes and build output",
    )
}

/// Judges `available` bytes at `place` against the thresholds.
fn disk_verdict(available: u64, place: &str) -> Check {
    let detail = format!("{} free on {place}", format_gib(available));
    let fix = "free some space: `docker system prune` removes stopped containers and unused images, `cargo clean` the build output";
    if available < DISK_FAIL_BYTES {
        Check::fail(
            "disk",
            format!("only {detail}; at least 2 GiB are needed"),
            fix,
        )
    } else if available < DISK_WARN_BYTES {
        Check::warn(
            "disk",
            format!("only {detail}; a cold build may need up to 10 GiB"),
            fix,
        )
    } else {
        Check::ok("disk", detail)
    }
}

/// `3.5 GiB`, with one decimal.
fn format_gib(bytes: u64) -> String {
    let tenths = bytes.saturating_mul(10) / (1 << 30);
    let mut text = String::new();
    let _ = write!(text, "{}.{} GiB", tenths / 10, tenths % 10);
    text
}

// --- Toolchain and stand-in images ----------------------------------------------------------

/// Whether the musl target of the apps' platform is installed, which the fast image path needs
/// for static binaries.
fn check_musl_target(ctx: &Context, platform: Platform) -> Check {
    let target = platform.musl_target();
    let fix = format!("rustup target add {target}");
    match crate::images::app::musl_installed(ctx, target) {
        Ok(true) => Check::ok(
            "musl target",
            format!(
                "{target} is installed: {platform} images use the fast static build, linked with rust-lld"
            ),
        ),
        Ok(false) => Check::warn(
            "musl target",
            format!(
                "{target} is not installed: {platform} images fall back to the slower multi-stage Dockerfiles"
            ),
            fix,
        ),
        Err(err) => Check::warn("musl target", format!("{err:#}"), fix),
    }
}

/// Whether the stand-in PostgreSQL and Redis images can be built; that only matters when no
/// registry is reachable, so a missing debootstrap is at most a warning. For an engine of
/// another processor than the host's they cannot be (nor the toolbox from the host's busybox):
/// then the registry is what matters, and this says so.
async fn check_debootstrap(engine: Option<Platform>) -> Check {
    let registry_reachable = || async {
        matches!(
            tokio::time::timeout(REGISTRY_TIMEOUT, tokio::net::TcpStream::connect(REGISTRY)).await,
            Ok(Ok(_))
        )
    };
    if let Some(why) = engine.and_then(crate::images::standin::foreign_engine) {
        return if registry_reachable().await {
            Check::ok(
                "debootstrap",
                "not needed: Docker Hub is reachable for the official images of the engine's platform",
            )
        } else {
            Check::warn(
                "debootstrap",
                format!(
                    "Docker Hub is unreachable and {why}; the toolbox ({}) comes from the registry too",
                    crate::images::toolbox::REGISTRY_TOOLBOX
                ),
                "make Docker Hub reachable (or set a registry mirror in the engine's settings)",
            )
        };
    }
    // /usr/sbin is often not on a regular user's PATH.
    let found = which::which("debootstrap").ok().or_else(|| {
        ["/usr/sbin/debootstrap", "/sbin/debootstrap"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.is_file())
    });
    if let Some(path) = found {
        return Check::ok(
            "debootstrap",
            format!(
                "{}: stand-in PostgreSQL and Redis images can be built without a registry",
                path.display()
            ),
        );
    }
    if registry_reachable().await {
        Check::ok(
            "debootstrap",
            "not installed, and not needed: Docker Hub is reachable for the official images",
        )
    } else {
        Check::warn(
            "debootstrap",
            "not installed and Docker Hub is unreachable: the stand-in PostgreSQL and Redis images cannot be built",
            "sudo apt-get install debootstrap",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_names_its_holder_and_how_to_free_it() {
        let (detail, fix) = describe_taken_port(
            8080,
            &Holder::Process {
                pid: 1234,
                name: "node".into(),
            },
        );
        assert_eq!(detail, "port 8080 is held by PID 1234 (node)");
        assert_eq!(fix, "stop it, or free the port: `kill 1234`");

        let (detail, fix) = describe_taken_port(
            3000,
            &Holder::Process {
                pid: 77,
                name: "docker-proxy".into(),
            },
        );
        assert!(detail.contains("a container publishes it"), "{detail}");
        assert!(fix.contains("docker ps --filter publish=3000"), "{fix}");
        assert!(!fix.contains("kill"), "{fix}");

        let (detail, fix) = describe_taken_port(
            8080,
            &Holder::Hidden {
                user: "postgres".into(),
            },
        );
        assert!(detail.contains("user postgres"), "{detail}");
        let find = if cfg!(target_os = "linux") {
            "sudo ss -ltnp 'sport = :8080'"
        } else {
            "sudo lsof -nP -iTCP:8080 -sTCP:LISTEN"
        };
        assert!(fix.contains(find), "{fix}");

        let (detail, fix) = describe_taken_port(8080, &Holder::Unknown);
        assert_eq!(detail, "port 8080 on 127.0.0.1 is already in use");
        assert!(fix.contains("8080"), "{fix}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_port_held_by_this_process_is_reported_with_our_pid_and_name() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let check = check_port(&Context::for_tests(), port, false);
        assert_eq!(check.status, Status::Fail, "{check:?}");
        assert_eq!(check.name, format!("port {port}"));
        let pid = std::process::id();
        let name = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(
            check.detail,
            format!("port {port} is held by PID {pid} ({})", name.trim_end())
        );
        assert_eq!(
            check.fix.as_deref(),
            Some(format!("stop it, or free the port: `kill {pid}`").as_str())
        );
    }

    #[test]
    fn a_free_port_and_a_port_of_our_own_stack_are_ok() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let ctx = Context::for_tests();
        let owned = check_port(&ctx, port, true);
        assert_eq!(owned.status, Status::Ok, "{owned:?}");
        assert!(owned.fix.is_none());
        drop(listener);
        let free = check_port(&ctx, port, false);
        assert_eq!(free.status, Status::Ok, "{free:?}");
        assert_eq!(free.detail, format!("127.0.0.1:{port} is free"));
    }

    #[test]
    fn disk_space_fails_below_2_gib_and_warns_below_10_gib() {
        let gib = 1u64 << 30;
        let cases = [
            (0, Status::Fail),
            (2 * gib - 1, Status::Fail),
            (2 * gib, Status::Warn),
            (10 * gib - 1, Status::Warn),
            (10 * gib, Status::Ok),
            (500 * gib, Status::Ok),
        ];
        for (bytes, status) in cases {
            let check = disk_verdict(bytes, "/x");
            assert_eq!(check.status, status, "{bytes}");
            assert_eq!(check.fix.is_some(), status != Status::Ok, "{bytes}");
        }
        assert!(
            disk_verdict(gib + gib / 2, "/x")
                .detail
                .contains("1.5 GiB free on /x")
        );
        assert_eq!(format_gib(10 * gib), "10.0 GiB");
        assert_eq!(format_gib(gib / 10 - 1), "0.0 GiB");
    }

    #[test]
    fn disk_falls_back_to_the_repository_when_the_data_root_is_unreadable() {
        let repo = tempfile::tempdir().unwrap();
        let check = check_disk(Some(Path::new("/no/such/docker/root")), repo.path());
        assert!(
            check
                .detail
                .contains(&format!("{} (the repository)", repo.path().display())),
            "{check:?}"
        );
        let check = check_disk(Some(repo.path()), Path::new("/"));
        assert!(check.detail.contains("Docker's data root"), "{check:?}");
    }

    #[test]
    fn kind_version_is_read_from_its_output() {
        let cases = [
            ("kind v0.29.0 go1.24.2 linux/amd64\n", Some("v0.29.0")),
            (
                "kind v0.20.0-alpha+abc go1.20 darwin/arm64",
                Some("v0.20.0-alpha+abc"),
            ),
            ("kind version unknown", None),
            ("", None),
        ];
        for (output, expected) in cases {
            assert_eq!(parse_kind_version(output), expected, "{output}");
        }
    }

    #[test]
    fn a_kind_provider_other_than_docker_is_refused_and_unknown_values_ignored_as_kind_does() {
        for (value, refused) in [
            (None, false),
            (Some("docker"), false),
            (Some(""), false),
            (Some("Podman"), false),
            (Some("podman"), true),
            (Some("nerdctl"), true),
            (Some("finch"), true),
            (Some("nerdctl.lima"), true),
        ] {
            let problem = other_provider(value);
            assert_eq!(problem.is_some(), refused, "{value:?}: {problem:?}");
            if let Some(problem) = problem {
                assert!(problem.contains("cannot reach them"), "{problem}");
            }
        }
    }

    #[test]
    fn kind_versions_compare_as_numbers() {
        for (text, expected) in [
            ("v0.29.0", Some((0, 29, 0))),
            ("v0.20.0-alpha+abc", Some((0, 20, 0))),
            ("v0.9.0", Some((0, 9, 0))),
            ("v1.2", Some((1, 2, 0))),
            ("0.29.0", None),
            ("vX.1.0", None),
        ] {
            assert_eq!(version_number(text), expected, "{text}");
        }
        assert!(version_number("v0.9.0").unwrap() < KIND_MINIMUM);
        assert!(version_number("v0.19.0").unwrap() < KIND_MINIMUM);
        assert!(version_number("v0.20.0").unwrap() >= KIND_MINIMUM);
        assert!(version_number(KIND_VERSION).unwrap() >= KIND_MINIMUM);
    }

    #[test]
    fn kind_install_lines_fit_the_os_and_always_offer_the_docker_runtime() {
        let linux = kind_fix("linux", "x86_64");
        assert!(linux.contains(&format!("go install sigs.k8s.io/kind@{KIND_VERSION}")));
        assert!(linux.contains(&format!("/dl/{KIND_VERSION}/kind-linux-amd64")));
        assert!(kind_fix("linux", "aarch64").contains("kind-linux-arm64"));
        assert!(kind_fix("macos", "aarch64").contains("brew install kind"));
        assert!(kind_fix("windows", "x86_64").contains("winget install Kubernetes.kind"));
        for os in ["linux", "macos", "windows"] {
            assert!(kind_fix(os, "x86_64").contains("--runtime docker"), "{os}");
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_checks_against_this_machine_report_the_running_docker_engine() {
        let ctx = Context::for_tests();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let opts = Options {
            need_kind: false,
            ports: vec![port],
            owned_ports: vec![port],
        };
        let checks = run_checks(&ctx, &opts).await.checks;
        let names: Vec<&str> = checks.iter().map(|check| check.name.as_str()).collect();
        let port_name = format!("port {port}");
        assert_eq!(
            names,
            ["docker", &port_name, "disk", "musl target", "debootstrap"]
        );
        assert_eq!(checks[0].status, Status::Ok, "{:?}", checks[0]);
        assert!(checks[0].detail.starts_with("Docker "), "{:?}", checks[0]);
        assert!(checks[0].detail.contains("(API 1."), "{:?}", checks[0]);
        assert_eq!(checks[1].status, Status::Ok, "{:?}", checks[1]);
        assert!(checks[2].detail.contains("GiB free on "), "{:?}", checks[2]);
    }
}
