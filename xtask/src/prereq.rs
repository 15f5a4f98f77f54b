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

use crate::Context;
use crate::cmd::Cmd;

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

/// Runs every check that applies to this machine and returns them in a stable order: Docker,
/// kind, ports, disk, the musl target, debootstrap.
pub(crate) async fn run_checks(ctx: &Context, opts: &Options) -> Vec<Check> {
    let mut checks = Vec::new();
    let (docker_check, docker) = check_docker().await;
    checks.push(docker_check);
    if opts.need_kind {
        checks.push(check_kind(ctx));
    }
    for &port in &opts.ports {
        checks.push(check_port(port, opts.owned_ports.contains(&port)));
    }
    let data_root = match &docker {
        Some(docker) => docker_data_root(docker).await,
        None => None,
    };
    checks.push(check_disk(data_root.as_deref(), ctx.root()));
    if cfg!(target_os = "linux") {
        checks.push(check_musl_target(ctx));
        checks.push(check_debootstrap().await);
    }
    checks
}

// --- Docker ---------------------------------------------------------------------------------

/// Whether the daemon answers (not merely whether the binary exists), with its versions; the
/// client is handed back for the checks that need it.
async fn check_docker() -> (Check, Option<Docker>) {
    let host = crate::docker::endpoint();
    let failure = |reason: String| {
        let detail = format!("the Docker daemon at {host} is not answering: {reason}");
        Check::fail("docker", detail, docker_fix_here())
    };
    let docker = match tokio::time::timeout(DOCKER_TIMEOUT, crate::docker::connect()).await {
        Ok(Ok(docker)) => docker,
        // `connect` puts its own advice around the cause; the fix line below replaces it.
        Ok(Err(err)) => return (failure(err.root_cause().to_string()), None),
        Err(_) => {
            let reason = format!("no answer within {} s", DOCKER_TIMEOUT.as_secs());
            return (failure(reason), None);
        }
    };
    let detail = match docker.version().await {
        Ok(version) => format!(
            "Docker {} (API {}) at {host}",
            version.version.as_deref().unwrap_or("of unknown version"),
            version.api_version.as_deref().unwrap_or("unknown"),
        ),
        Err(err) => format!("answering at {host} (version unknown: {err})"),
    };
    (Check::ok("docker", detail), Some(docker))
}

/// What is known about a Docker daemon that does not answer, to choose the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DockerSituation {
    /// `std::env::consts::OS`.
    os: &'static str,
    /// A `DOCKER_HOST` that is not a local socket: that engine is the one to get answering.
    remote_host: Option<String>,
    /// The engine is installed here (binary or socket found).
    installed: bool,
    /// The socket exists but this user may not write to it.
    socket_denied: bool,
    /// systemd runs this machine (not so in most containers and WSL), so `systemctl` works.
    systemd: bool,
}

fn docker_situation() -> DockerSituation {
    let host = crate::docker::endpoint();
    let socket = PathBuf::from(host.strip_prefix("unix://").unwrap_or(&host));
    let socket_denied = socket.exists()
        && nix::unistd::access(&socket, nix::unistd::AccessFlags::W_OK)
            == Err(nix::errno::Errno::EACCES);
    DockerSituation {
        os: std::env::consts::OS,
        remote_host: std::env::var("DOCKER_HOST")
            .ok()
            .filter(|host| !host.starts_with("unix://")),
        installed: socket.exists() || which::which("dockerd").is_ok(),
        socket_denied,
        systemd: Path::new("/run/systemd/system").is_dir(),
    }
}

/// The one line that gets this machine's unreachable daemon answering: the advice of `doctor`,
/// `dev` and every command that needs the engine.
pub(crate) fn docker_fix_here() -> String {
    docker_fix(&docker_situation())
}

/// The one line that gets an unreachable daemon answering, for `situation`.
fn docker_fix(situation: &DockerSituation) -> String {
    if let Some(host) = &situation.remote_host {
        return format!(
            "the engine DOCKER_HOST={host} names must be running and reachable from here; or unset DOCKER_HOST to use the local one"
        );
    }
    match situation.os {
        "linux" if situation.socket_denied => {
            "let your user talk to the daemon: `sudo usermod -aG docker $USER`, then log out and in again".into()
        }
        "linux" if situation.installed && situation.systemd => {
            "start the daemon: `sudo systemctl start docker`".into()
        }
        // Containers and WSL: no systemd, but Debian's package ships an init script.
        "linux" if situation.installed => {
            "start the daemon: `sudo service docker start` (or, without its init script, `sudo dockerd > /tmp/dockerd.log 2>&1 &`)".into()
        }
        "linux" => "install and start Docker: `sudo apt-get install docker.io && sudo systemctl start docker` (Debian/Ubuntu)".into(),
        "macos" | "windows" => {
            "start Docker Desktop (install it from https://docs.docker.com/desktop/ if it is missing)".into()
        }
        _ => "start the Docker daemon, or point DOCKER_HOST at its socket (unix://...)".into(),
    }
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
    let output = match Cmd::new(&path).arg("version").output(ctx) {
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
fn check_port(port: u16, owned: bool) -> Check {
    let name = format!("port {port}");
    if owned {
        return Check::ok(name, format!("127.0.0.1:{port} is held by this stack"));
    }
    // std sets SO_REUSEADDR on Unix, so leftover TIME_WAIT connections do not count as taken.
    match TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))) {
        Ok(_listener) => Check::ok(name, format!("127.0.0.1:{port} is free")),
        Err(err) if err.kind() == ErrorKind::AddrInUse => {
            let (detail, fix) = describe_taken_port(port, &port_holder(port));
            Check::fail(name, detail, fix)
        }
        Err(err) => Check::fail(
            name,
            format!("cannot listen on 127.0.0.1:{port}: {err}"),
            "run it as a user that may open this port, or free it",
        ),
    }
}

/// Who holds a port, as far as this user can see.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Holder {
    /// A process we could identify.
    Process { pid: u32, name: String },
    /// A listening socket owned by another user's process that we may not inspect.
    Hidden { user: String },
    /// Nothing to go on (not Linux, or another network namespace).
    Unknown,
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
        Holder::Hidden { user } => (
            format!("port {port} is held by a process of user {user} that you may not inspect"),
            format!("find it with `sudo ss -ltnp 'sport = :{port}'` and stop it"),
        ),
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

/// One TCP socket from `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcSocket {
    local_port: u16,
    /// The kernel's TCP state number; [`TCP_LISTEN`] for a listening socket.
    state: u8,
    uid: u32,
    /// The socket's inode: `/proc/<pid>/fd/*` links to `socket:[inode]` in its owners.
    inode: u64,
}

/// `TCP_LISTEN` in the kernel's `enum tcp_state`, as `/proc/net/tcp` prints it (`0A`).
const TCP_LISTEN: u8 = 0x0A;

/// Parses one line of `/proc/net/tcp{,6}` (`sl local rem st tx:rx tr:when retrnsmt uid timeout
/// inode ...`, addresses as `HEXADDR:HEXPORT`); `None` for the header or anything malformed.
fn parse_proc_net_line(line: &str) -> Option<ProcSocket> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 10 || !fields[0].ends_with(':') {
        return None;
    }
    let (_, port) = fields[1].rsplit_once(':')?;
    Some(ProcSocket {
        local_port: u16::from_str_radix(port, 16).ok()?,
        state: u8::from_str_radix(fields[3], 16).ok()?,
        uid: fields[7].parse().ok()?,
        inode: fields[9].parse().ok()?,
    })
}

/// The listening sockets on `port` in a `/proc/net/tcp{,6}` text, as (inode, uid).
fn listening_on(text: &str, port: u16) -> Vec<(u64, u32)> {
    text.lines()
        .filter_map(parse_proc_net_line)
        .filter(|socket| socket.local_port == port && socket.state == TCP_LISTEN)
        .map(|socket| (socket.inode, socket.uid))
        .collect()
}

/// Finds the process listening on `port` through `/proc` (Linux): socket inode from
/// `/proc/net/tcp{,6}`, then the process whose descriptors link to that socket.
fn port_holder(port: u16) -> Holder {
    let mut sockets = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            sockets.extend(listening_on(&text, port));
        }
    }
    // Inode 0 is a socket whose owner has gone; nothing links to it.
    sockets.retain(|&(inode, _)| inode != 0);
    let Some(&(_, uid)) = sockets.first() else {
        return Holder::Unknown;
    };
    let targets: Vec<String> = sockets
        .iter()
        .map(|(inode, _)| format!("socket:[{inode}]"))
        .collect();
    match process_with_socket(&targets) {
        Some(pid) => Holder::Process {
            pid,
            name: process_name(pid),
        },
        None => Holder::Hidden {
            user: user_name(uid),
        },
    }
}

/// The lowest PID with a descriptor linking to one of `targets` (forked servers share one
/// socket; the lowest is usually the parent worth stopping).
fn process_with_socket(targets: &[String]) -> Option<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().find(|pid| {
        // Other users' descriptors are unreadable without privileges: skip them quietly.
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        fds.filter_map(Result::ok).any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|link| targets.iter().any(|target| link.as_os_str() == &**target))
        })
    })
}

/// The short command name of a process (`/proc/<pid>/comm`).
fn process_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map_or_else(|_| "unknown".into(), |name| name.trim_end().to_owned())
}

/// A user's login name, else the number.
fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
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

/// Whether the musl target is installed, which the fast image path needs for static binaries.
fn check_musl_target(ctx: &Context) -> Check {
    let target = format!("{}-unknown-linux-musl", std::env::consts::ARCH);
    let fix = format!("rustup target add {target}");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    // From the repository, so that a toolchain pinned there is the one asked.
    let sysroot = Cmd::new(rustc)
        .args(["--print", "sysroot"])
        .current_dir(ctx.root())
        .output(ctx);
    let sysroot = match sysroot {
        Ok(output) if output.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        }
        Ok(output) => {
            let detail = format!(
                "could not ask rustc for its sysroot: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            return Check::warn("musl target", detail, fix);
        }
        Err(err) => return Check::warn("musl target", format!("{err:#}"), fix),
    };
    if sysroot
        .join("lib/rustlib")
        .join(&target)
        .join("lib")
        .is_dir()
    {
        Check::ok(
            "musl target",
            format!("{target} is installed: images use the fast static build"),
        )
    } else {
        Check::warn(
            "musl target",
            format!(
                "{target} is not installed: images fall back to the slower multi-stage Dockerfiles"
            ),
            fix,
        )
    }
}

/// Whether the stand-in PostgreSQL and Redis images can be built; that only matters when no
/// registry is reachable, so a missing debootstrap is at most a warning.
async fn check_debootstrap() -> Check {
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
    let registry = "registry-1.docker.io:443";
    let reachable = matches!(
        tokio::time::timeout(REGISTRY_TIMEOUT, tokio::net::TcpStream::connect(registry)).await,
        Ok(Ok(_))
    );
    if reachable {
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

    const TCP4: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 48213 1 0000000000000000 100 0 0 10 0
   1: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1146 1 000000005311e760 100 0 0 10 0
   2: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 48999 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 49001 1 0000000000000000 20 4 30 10 -1
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 77001 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:9C40 06 00000000:00000000 03:00000CF3 00000000     0        0 0 3 0000000000000000
";

    #[test]
    fn proc_net_lines_give_port_state_uid_and_inode() {
        let cases = [
            (
                TCP4.lines().nth(1).unwrap(),
                Some((8080, TCP_LISTEN, 1000, 48213)),
            ),
            (
                TCP4.lines().nth(2).unwrap(),
                Some((3000, TCP_LISTEN, 0, 1146)),
            ),
            (
                TCP4.lines().nth(4).unwrap(),
                Some((50000, 0x01, 1000, 49001)),
            ),
            (
                TCP6.lines().nth(1).unwrap(),
                Some((8080, TCP_LISTEN, 999, 77001)),
            ),
            (TCP6.lines().nth(2).unwrap(), Some((8080, 0x06, 0, 0))),
            (TCP4.lines().next().unwrap(), None),
            (TCP6.lines().next().unwrap(), None),
            ("", None),
            (
                "   0: 0100007F:ZZZZ 00000000:0000 0A 0:0 0:0 0 1000 0 1 1",
                None,
            ),
        ];
        for (line, expected) in cases {
            let parsed = parse_proc_net_line(line)
                .map(|socket| (socket.local_port, socket.state, socket.uid, socket.inode));
            assert_eq!(parsed, expected, "{line}");
        }
    }

    #[test]
    fn only_listening_sockets_on_the_port_count() {
        // Port 8080 has one listener and one established connection; 50000 is only a client's.
        assert_eq!(listening_on(TCP4, 8080), [(48213, 1000)]);
        assert_eq!(listening_on(TCP4, 3000), [(1146, 0)]);
        assert_eq!(listening_on(TCP4, 50000), []);
        assert_eq!(listening_on(TCP6, 8080), [(77001, 999)]);
        assert_eq!(listening_on(TCP6, 3000), []);
    }

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
        assert!(fix.contains("sudo ss -ltnp 'sport = :8080'"), "{fix}");

        let (detail, fix) = describe_taken_port(8080, &Holder::Unknown);
        assert_eq!(detail, "port 8080 on 127.0.0.1 is already in use");
        assert!(fix.contains("8080"), "{fix}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_port_held_by_this_process_is_reported_with_our_pid_and_name() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let check = check_port(port, false);
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
        let owned = check_port(port, true);
        assert_eq!(owned.status, Status::Ok, "{owned:?}");
        assert!(owned.fix.is_none());
        drop(listener);
        let free = check_port(port, false);
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

    #[test]
    fn an_unreachable_daemon_gets_the_fix_for_its_situation() {
        let situation = |os, installed, socket_denied, remote_host: Option<&str>| DockerSituation {
            os,
            installed,
            socket_denied,
            remote_host: remote_host.map(Into::into),
            systemd: true,
        };
        let without_systemd = DockerSituation {
            systemd: false,
            ..situation("linux", true, false, None)
        };
        let cases = [
            (without_systemd, "sudo service docker start"),
            (
                situation("linux", true, false, None),
                "sudo systemctl start docker",
            ),
            (
                situation("linux", false, false, None),
                "sudo apt-get install docker.io",
            ),
            (
                situation("linux", true, true, None),
                "sudo usermod -aG docker $USER",
            ),
            (
                situation("macos", false, false, None),
                "start Docker Desktop",
            ),
            (
                situation("windows", true, false, None),
                "start Docker Desktop",
            ),
            (
                situation("linux", true, false, Some("tcp://10.0.0.5:2376")),
                "DOCKER_HOST=tcp://10.0.0.5:2376 names must be running",
            ),
        ];
        for (situation, expected) in cases {
            let fix = docker_fix(&situation);
            assert!(fix.contains(expected), "{situation:?}: {fix}");
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
        let checks = run_checks(&ctx, &opts).await;
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
