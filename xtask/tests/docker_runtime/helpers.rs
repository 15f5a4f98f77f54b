//! Running the real `cargo xtask` binary against the real Docker engine, one isolated stack per
//! test (its own name, state folder and host ports), removed again when the test ends.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
};
use futures_util::StreamExt as _;

/// The repository root (the xtask crate sits in it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A free TCP port on 127.0.0.1 (free when asked; tests bind it soon after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Docker context every xtask run of these tests goes through: `wander-e2e`, whose endpoint
/// is a second path (a symlink) to the local engine's socket, in a Docker configuration folder
/// of this test process. The runs reach the engine the way Docker Desktop, Colima or OrbStack
/// users' do, and a developer's own `~/.docker` cannot send them elsewhere.
pub const CONTEXT: &str = "wander-e2e";

/// The configuration folder holding [`CONTEXT`] (made once per process), and the socket path
/// its endpoint names.
pub fn docker_config() -> &'static (PathBuf, PathBuf) {
    static CONFIG: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    CONFIG.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("wander-e2e-docker-")
            .tempdir()
            .unwrap()
            .keep();
        let socket = dir.join("engine.sock");
        std::os::unix::fs::symlink("/var/run/docker.sock", &socket).unwrap();
        // As `docker context create` writes it: contexts/meta/<sha256 of the name>/meta.json
        // (checked against the real CLI by the xtask's endpoint tests).
        let hash = <sha2::Sha256 as sha2::Digest>::digest(CONTEXT.as_bytes()).iter().fold(
            String::new(),
            |mut hex, byte| {
                use std::fmt::Write as _;
                let _ = write!(hex, "{byte:02x}");
                hex
            },
        );
        let meta = dir.join("contexts/meta").join(hash);
        std::fs::create_dir_all(&meta).unwrap();
        let text = serde_json::json!({
            "Name": CONTEXT,
            "Metadata": {"Description": "the local engine through another path"},
            "Endpoints": {"docker": {"Host": format!("unix://{}", socket.display()), "SkipTLSVerify": false}},
        });
        std::fs::write(meta.join("meta.json"), text.to_string()).unwrap();
        (dir, socket)
    })
}

/// One stack of the docker runtime, private to a test.
pub struct TestStack {
    pub name: String,
    pub state: tempfile::TempDir,
    pub web_port: u16,
    pub api_port: u16,
    pub manifests: Option<PathBuf>,
    pub extra_env: Vec<(String, String)>,
}

/// What one run of the xtask did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Whether the xtask exited with 0; a run ended by a signal has no code and is not ok.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with the whole output unless the run succeeded.
    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert!(self.ok(), "expected success, got {self:#?}");
        self
    }

    /// Panics unless the run failed with exit code 1 and `needle` in its error output.
    #[track_caller]
    pub fn assert_fails_with(&self, needle: &str) -> &Self {
        assert_eq!(self.code, Some(1), "expected exit code 1: {self:#?}");
        assert!(
            self.stderr.contains(needle),
            "expected {needle:?} in stderr: {self:#?}"
        );
        self
    }
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl TestStack {
    /// A stack named after the test, on two free host ports.
    pub fn new(test: &str) -> Self {
        let name = format!("t{}-{test}", std::process::id())
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(40)
            .collect();
        Self {
            name,
            state: tempfile::tempdir().unwrap(),
            web_port: free_port(),
            api_port: free_port(),
            manifests: None,
            extra_env: Vec::new(),
        }
    }

    /// The xtask command for this stack: docker runtime, plain output, no browser.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args(args)
            .current_dir(repo_root())
            .env("WANDER_RUNTIME", "docker")
            .env("WANDER_STACK", &self.name)
            .env("WANDER_STATE_DIR", self.state.path())
            .env("CI", "true")
            .env("NO_COLOR", "1")
            .env_remove("DOCKER_HOST")
            .env("DOCKER_CONFIG", &docker_config().0)
            .env("DOCKER_CONTEXT", CONTEXT)
            .stdin(Stdio::null());
        // The host ports of the real manifests' Services; a variant of its own publishes none,
        // and a port set for a Service it lacks would be refused.
        match &self.manifests {
            Some(manifests) => cmd.env("WANDER_MANIFESTS", manifests),
            None => cmd
                .env("WANDER_WEB_PORT", self.web_port.to_string())
                .env("WANDER_API_PORT", self.api_port.to_string()),
        };
        for (key, value) in &self.extra_env {
            cmd.env(key, value);
        }
        cmd
    }

    /// Runs the xtask to its end.
    pub fn run(&self, args: &[&str]) -> Run {
        self.command(args).output().unwrap().into()
    }

    /// The URL of `path` on this stack's API, at the host port given to it as `WANDER_API_PORT`.
    pub fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api_port)
    }

    /// The URL of `path` on this stack's dashboard, at the host port given to it as
    /// `WANDER_WEB_PORT`.
    pub fn web(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.web_port)
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        let _ = self.run(&["down", "--volumes"]);
    }
}

/// The engine, for looking at what a stack left behind.
pub async fn docker() -> Docker {
    Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
}

/// How many containers, networks and volumes carry this stack's label.
pub async fn leftovers(stack: &str) -> (usize, usize, usize) {
    let docker = docker().await;
    let filters = HashMap::from([("label", vec![format!("dev.wander.stack={stack}")])]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap();
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap();
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap();
    (
        containers.len(),
        networks.len(),
        volumes.volumes.unwrap_or_default().len(),
    )
}

/// A copy of `manifests/` in a temporary folder, for tests that break it.
pub fn copy_manifests() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo_root().join("manifests")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

/// Replaces the one occurrence of `from` in a manifest file.
pub fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches(from).count(), 1, "{from:?} in {file}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// A stack of one workload `broken` running `image` with `command`, its readiness probe
/// `probe` (a command), and nothing else: for the failure paths of `dev`.
pub fn one_workload_manifests(image: &str, command: &[&str], probe: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let quoted = |items: &[&str]| {
        items
            .iter()
            .map(|i| format!("{i:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: wander\nresources:\n  - namespace.yaml\n  - broken.yaml\n".into(),
    );
    write(
        "namespace.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: wander\n  labels:\n    app.kubernetes.io/part-of: wander\n    app.kubernetes.io/managed-by: wander-xtask\n".into(),
    );
    write(
        "kind-config.yaml",
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: control-plane\n"
            .into(),
    );
    let labels = "app.kubernetes.io/name: broken\n        app.kubernetes.io/component: broken\n        app.kubernetes.io/part-of: wander\n        app.kubernetes.io/managed-by: wander-xtask";
    write(
        "broken.yaml",
        format!(
            r"apiVersion: apps/v1
kind: Deployment
metadata:
  name: broken
  labels:
    {top}
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: broken
  template:
    metadata:
      labels:
        {labels}
    spec:
      automountServiceAccountToken: false
      # The commands' first process ignores SIGTERM: `down` need not wait for it.
      terminationGracePeriodSeconds: 1
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: broken
          image: {image}
          imagePullPolicy: IfNotPresent
          command: [{command}]
          readinessProbe:
            exec:
              command: [{probe}]
            periodSeconds: 1
          resources:
            requests:
              cpu: 10m
              memory: 16Mi
            limits:
              cpu: 100m
              memory: 64Mi
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir: {{}}
",
            top = labels.replace("\n        ", "\n    "),
            command = quoted(command),
            probe = quoted(probe),
        ),
    );
    dir
}

/// A tiny image with a shell: the host's static busybox in an otherwise empty image, built
/// through the engine. Tests need some image, and none can be pulled here.
pub async fn busybox_image() -> String {
    let busybox = std::fs::read("/bin/busybox").expect("the static busybox (busybox-static)");
    let reference = "wander-test/busybox:latest".to_owned();
    let mut archive = tar::Builder::new(Vec::new());
    let dockerfile = b"FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";
    for (name, data, mode) in [
        ("Dockerfile", dockerfile.as_slice(), 0o644),
        ("busybox", busybox.as_slice(), 0o755),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        archive.append_data(&mut header, name, data).unwrap();
    }
    let context = archive.into_inner().unwrap();
    let docker = docker().await;
    let options = bollard::query_parameters::BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(&reference)
        .rm(true)
        .build();
    let mut stream = docker.build_image(
        options,
        None,
        Some(bollard::body_full(bytes::Bytes::from(context))),
    );
    while let Some(item) = stream.next().await {
        let info = item.unwrap();
        assert!(info.error_detail.is_none(), "{info:?}");
    }
    reference
}

/// The processes that carry this stack's name in their environment (all a test's runs of the
/// xtask, and what they start, do): process id and command line.
pub fn processes_of(stack: &str) -> Vec<(u32, String)> {
    let marker = format!("WANDER_STACK={stack}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if !String::from_utf8_lossy(&environ)
            .split('\0')
            .any(|var| var == marker)
        {
            continue;
        }
        // A zombie has ended: only its exit status is left for its parent to collect.
        let state = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        if state
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        found.push((pid, cmdline.trim().to_owned()));
    }
    found
}
