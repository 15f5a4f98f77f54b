//! The stack's kind cluster (named as the stack, `wander` by default): created from `manifests/kind-config.yaml`, found by exact name,
//! reused, deleted; every `kind` invocation goes through [`KindCli::run`].
//!
//! kind is only used for what needs it (creating and deleting the node containers, listing them,
//! its kubeconfig); everything else talks to the cluster through kube-rs or to the node
//! containers through the Docker engine.

use std::fs;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::cmd::Cmd;
use crate::context::Context;
use crate::stack::KindCluster;

/// How long `kind create cluster` waits for the control plane to be ready.
const CREATE_WAIT: &str = "120s";
/// What `kind get clusters` says (on stderr, exit 0) when there are none.
const NO_CLUSTERS: &str = "No kind clusters found.";

/// Runs `kind` with the given arguments and returns what it printed; a non-zero exit is not an
/// error at this level, a failure to start is.
type Runner<'a> = dyn Fn(&[String]) -> anyhow::Result<Output> + 'a;

/// The `kind` program, for one cluster. Every invocation goes through one runner, which tests
/// replace with a recorder to check the exact argument lists without kind installed.
pub(crate) struct KindCli<'a> {
    runner: Box<Runner<'a>>,
    /// The cluster's name: `kind ... --name wander`, node containers `wander-control-plane`.
    name: String,
}

/// How [`KindCli::ensure`] found the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ensured {
    /// It did not exist and was created from our configuration.
    Created,
    /// It existed and was created from the configuration we would write now.
    Reused,
    /// It existed but was not created from our current configuration (by hand, by an older
    /// checkout, or `kind-config.yaml` changed since): used as it is, with a note saying so.
    ReusedForeign,
}

impl<'a> KindCli<'a> {
    /// The real `kind` from PATH, run through [`Cmd`] (echoed in verbose mode), for the
    /// configured stack's cluster.
    pub(crate) fn new(ctx: &'a Context) -> Self {
        Self::with_runner(ctx.config().cluster_name(), move |args| {
            if which::which("kind").is_err() {
                bail!("{}", kind_missing());
            }
            // kind runs the docker CLI: handed our engine, it cannot pick another.
            let engine = crate::docker::endpoint::resolve()?;
            Cmd::new("kind")
                .args(args)
                .env("DOCKER_HOST", &engine.host)
                .output(ctx.ui())
        })
    }

    /// A `kind` for the cluster `name` that is `runner` instead: for tests.
    pub(crate) fn with_runner(
        name: &str,
        runner: impl Fn(&[String]) -> anyhow::Result<Output> + 'a,
    ) -> Self {
        Self {
            runner: Box::new(runner),
            name: name.to_owned(),
        }
    }

    /// The cluster's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The kube context kind writes for the cluster, `kind-<name>`: the only one the xtask uses
    /// unless told otherwise (docs/design.md, "Only its own cluster, unless told otherwise").
    pub(crate) fn context(&self) -> String {
        format!("kind-{}", self.name)
    }

    /// The one place `kind` is run.
    fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        let args: Vec<String> = args.iter().map(|&arg| arg.to_owned()).collect();
        (self.runner)(&args)
    }

    /// Runs `kind` and returns its stdout; a non-zero exit is an error carrying kind's stderr.
    fn run_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self.run(args)?;
        if !output.status.success() {
            bail!(
                "`kind {}` failed ({}): {}",
                args.join(" "),
                output.status,
                stderr_tail(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The names of the kind clusters on this machine.
    pub(crate) fn clusters(&self) -> anyhow::Result<Vec<String>> {
        let output = self.run(&["get", "clusters"])?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            // Older kind releases exit non-zero when there is nothing to list.
            if stderr.contains(NO_CLUSTERS) {
                return Ok(Vec::new());
            }
            bail!(
                "`kind get clusters` failed ({}): {}; is the Docker engine running?",
                output.status,
                stderr_tail(&output.stderr)
            );
        }
        Ok(lines(&String::from_utf8_lossy(&output.stdout)))
    }

    /// Whether the cluster exists: an exact name match, not a prefix.
    pub(crate) fn exists(&self) -> anyhow::Result<bool> {
        Ok(self.clusters()?.contains(&self.name))
    }

    /// `kind create cluster` from the configuration file `config`, waiting for the control plane.
    pub(crate) fn create(&self, config: &Path) -> anyhow::Result<()> {
        let config = config.to_string_lossy();
        let args = [
            "create",
            "cluster",
            "--name",
            &self.name,
            "--config",
            &config,
            "--wait",
            CREATE_WAIT,
        ];
        let output = self.run(&args)?;
        if !output.status.success() {
            bail!(
                "creating the kind cluster {} failed ({}): {}; fix that and run again, or use `--runtime docker`",
                self.name,
                output.status,
                stderr_tail(&output.stderr)
            );
        }
        Ok(())
    }

    /// `kind delete cluster`: the node containers and kind's kubeconfig entry go.
    pub(crate) fn delete(&self) -> anyhow::Result<()> {
        self.run_ok(&["delete", "cluster", "--name", &self.name])
            .with_context(|| format!("deleting the kind cluster {}", self.name))?;
        Ok(())
    }

    /// The node containers' names (`wander-control-plane`, ...); empty when the cluster does
    /// not exist.
    pub(crate) fn nodes(&self) -> anyhow::Result<Vec<String>> {
        let stdout = self
            .run_ok(&["get", "nodes", "--name", &self.name])
            .with_context(|| format!("listing the nodes of the kind cluster {}", self.name))?;
        Ok(lines(&stdout))
    }

    /// The cluster's kubeconfig (context [`Self::context`]), as kind writes it.
    pub(crate) fn kubeconfig(&self) -> anyhow::Result<String> {
        self.run_ok(&["get", "kubeconfig", "--name", &self.name])
            .with_context(|| {
                format!(
                    "reading the kubeconfig of the kind cluster {}; does it exist? `cargo xtask dev` creates it",
                    self.name
                )
            })
    }

    /// Makes sure the cluster exists: created from `config` (written to the state folder
    /// `state_dir` first) when there is none, reused when there is. A cluster not created from
    /// this configuration is reused as it is, and `on_note` says so and how to recreate it.
    pub(crate) fn ensure(
        &self,
        config: &KindCluster,
        state_dir: &Path,
        on_note: &dyn Fn(&str),
    ) -> anyhow::Result<Ensured> {
        let wanted = config_yaml(config, &self.name)?;
        let recorded = config_path(state_dir, &self.name);
        if self.exists()? {
            let same = fs::read_to_string(&recorded).is_ok_and(|text| text == wanted);
            if same {
                return Ok(Ensured::Reused);
            }
            on_note(&format!(
                "reusing the existing kind cluster {}, which was not created from the current manifests/{} (and host port settings), or whose creation was cut short; its host ports may differ: `cargo xtask down` then `cargo xtask dev` recreates it",
                self.name,
                crate::stack::KIND_CONFIG_FILE
            ));
            return Ok(Ensured::ReusedForeign);
        }
        // kind reads its configuration from a file, which becomes the record only once the
        // cluster is made: a create cut short (Ctrl-C, a failure that kept the nodes) leaves a
        // cluster that is never taken for one made from this configuration.
        let creating = recorded.with_extension("yaml.creating");
        write_config(&creating, &wanted)?;
        self.create(&creating)?;
        fs::rename(&creating, &recorded).with_context(|| {
            format!("recording the kind configuration in {}", recorded.display())
        })?;
        Ok(Ensured::Created)
    }

    /// Deletes the cluster when it exists, and the record of its configuration; `false` when
    /// there was none.
    pub(crate) fn delete_if_exists(&self, state_dir: &Path) -> anyhow::Result<bool> {
        let existed = self.exists()?;
        if existed {
            self.delete()?;
        }
        match fs::remove_file(config_path(state_dir, &self.name)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(err).context("removing the kind configuration from the state folder")
            }
            _ => Ok(existed),
        }
    }
}

/// Where the configuration passed to `kind create cluster` for the cluster `name` is recorded,
/// in the state folder: written before the cluster is created, compared on reuse, removed with
/// the cluster.
pub(crate) fn config_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(format!("kind-{name}.yaml"))
}

/// Writes the record at `path`, creating the state folder (private) when needed.
fn write_config(path: &Path, yaml: &str) -> anyhow::Result<()> {
    if let Some(state_dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .with_context(|| format!("creating the state folder {}", state_dir.display()))?;
    }
    fs::write(path, yaml).with_context(|| format!("writing {}", path.display()))
}

/// The message for a missing `kind`: how to install it here, or how to do without.
pub(crate) fn kind_missing() -> String {
    format!(
        "kind is not installed (not found on PATH); {}",
        crate::prereq::kind_fix(std::env::consts::OS, std::env::consts::ARCH)
    )
}

/// The kube context to use: ours (`kind-<name>`) when the current one is it, any context named
/// with `--context` (`requested`), and a refusal for everything else, so that a command meant
/// for the local stack never lands on a shared cluster that happens to be current (docs/design.md,
/// "Only its own cluster, unless told otherwise").
pub(crate) fn check_context(
    requested: Option<&str>,
    current: &str,
    ours: &str,
) -> anyhow::Result<String> {
    match requested {
        Some("") => bail!("`--context` needs a context name, e.g. `--context {ours}`"),
        Some(named) => Ok(named.to_owned()),
        None if current == ours => Ok(ours.to_owned()),
        None if current.is_empty() => bail!(
            "no current kube context; cargo xtask uses its own `{ours}`, which `cargo xtask dev` creates, or pass `--context <name>`"
        ),
        None => bail!(
            "refusing to use the kube context `{current}`: cargo xtask only talks to its own `{ours}` unless told otherwise; pass `--context {current}` to use it anyway"
        ),
    }
}

/// The configuration handed to kind: the one from the manifests with the cluster's name set.
pub(crate) fn config_yaml(config: &KindCluster, name: &str) -> anyhow::Result<String> {
    let out = KindOut {
        kind: &config.kind,
        api_version: &config.api_version,
        name,
        nodes: config
            .nodes
            .iter()
            .map(|node| NodeOut {
                role: &node.role,
                image: node.image.as_deref(),
                extra_port_mappings: node
                    .extra_port_mappings
                    .iter()
                    .map(|mapping| PortOut {
                        container_port: mapping.container_port,
                        host_port: mapping.host_port,
                        listen_address: mapping.listen_address.map(|ip| ip.to_string()),
                        protocol: mapping.protocol(),
                    })
                    .collect(),
            })
            .collect(),
    };
    let yaml = serde_saphyr::to_string(&out).context("writing the kind configuration as YAML")?;
    Ok(format!(
        "# Generated by cargo xtask from manifests/{}; edit that file, not this one.\n{yaml}",
        crate::stack::KIND_CONFIG_FILE
    ))
}

/// kind's `Cluster` as written, field names as kind spells them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KindOut<'a> {
    kind: &'a str,
    api_version: &'a str,
    name: &'a str,
    nodes: Vec<NodeOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeOut<'a> {
    role: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    extra_port_mappings: Vec<PortOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PortOut<'a> {
    container_port: u16,
    host_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    listen_address: Option<String>,
    protocol: &'a str,
}

/// Non-empty trimmed lines.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The last lines of kind's stderr, on one line: where it says what went wrong.
fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines = lines(&text);
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    if tail.is_empty() {
        "kind printed nothing on stderr".to_owned()
    } else {
        tail
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::os::unix::process::ExitStatusExt as _;
    use std::process::ExitStatus;

    use super::*;

    /// A `kind` that records its arguments and answers from a script of (exit code, stdout,
    /// stderr), in order.
    struct FakeKind {
        calls: RefCell<Vec<String>>,
        answers: RefCell<VecDeque<(i32, &'static str, &'static str)>>,
    }

    impl FakeKind {
        fn new(answers: &[(i32, &'static str, &'static str)]) -> Self {
            Self {
                calls: RefCell::default(),
                answers: RefCell::new(answers.iter().copied().collect()),
            }
        }

        fn cli(&self) -> KindCli<'_> {
            KindCli::with_runner("wander", |args| {
                self.calls.borrow_mut().push(args.join(" "));
                let (code, stdout, stderr) = self
                    .answers
                    .borrow_mut()
                    .pop_front()
                    .expect("an unexpected kind call");
                Ok(Output {
                    status: ExitStatus::from_raw(code << 8),
                    stdout: stdout.as_bytes().to_vec(),
                    stderr: stderr.as_bytes().to_vec(),
                })
            })
        }

        fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
    }

    /// The configuration in the repository's manifests, read as `dev` reads it.
    fn manifests_config() -> KindCluster {
        let manifests = Context::for_tests().root().join("manifests");
        crate::stack::Stack::load(&manifests).unwrap().kind_config
    }

    #[test]
    fn clusters_are_found_by_exact_name() {
        for (stdout, stderr, code, expected) in [
            ("wander\n", "", 0, true),
            ("other\nwander\n", "", 0, true),
            ("wander-old\nwanderer\n", "", 0, false),
            ("", "No kind clusters found.\n", 0, false),
            ("", "No kind clusters found.\n", 1, false),
        ] {
            let kind = FakeKind::new(&[(code, stdout, stderr)]);
            assert_eq!(kind.cli().exists().unwrap(), expected, "{stdout:?}");
            assert_eq!(kind.calls(), ["get clusters"]);
        }
    }

    #[test]
    fn a_failing_listing_is_an_error_with_kinds_words() {
        let kind = FakeKind::new(&[(1, "", "ERROR: failed to list clusters: docker ps failed")]);
        let err = kind.cli().clusters().unwrap_err().to_string();
        assert!(err.contains("docker ps failed"), "{err}");
    }

    #[test]
    fn each_operation_runs_kind_with_exactly_these_arguments() {
        let kind = FakeKind::new(&[
            (0, "", ""),
            (0, "wander-control-plane\nwander-worker\n", ""),
            (0, "apiVersion: v1\nkind: Config\n", ""),
            (0, "", "Deleting cluster \"wander\" ...\n"),
        ]);
        let cli = kind.cli();
        cli.create(Path::new("/state/kind-config.yaml")).unwrap();
        assert_eq!(
            cli.nodes().unwrap(),
            ["wander-control-plane", "wander-worker"]
        );
        assert!(cli.kubeconfig().unwrap().starts_with("apiVersion: v1"));
        cli.delete().unwrap();
        assert_eq!(
            kind.calls(),
            [
                "create cluster --name wander --config /state/kind-config.yaml --wait 120s",
                "get nodes --name wander",
                "get kubeconfig --name wander",
                "delete cluster --name wander",
            ]
        );
    }

    #[test]
    fn another_stack_name_is_another_cluster_with_its_own_context_and_record() {
        let state = tempfile::tempdir().unwrap();
        let calls = RefCell::new(Vec::<String>::new());
        let answers = RefCell::new(VecDeque::from([
            (0, "wander\nside-2-old\n"),
            (0, ""),
            (0, "wander\nside-2\n"),
            (0, ""),
        ]));
        let cli = KindCli::with_runner("side-2", |args| {
            calls.borrow_mut().push(args.join(" "));
            let (code, stdout) = answers.borrow_mut().pop_front().unwrap();
            Ok(Output {
                status: ExitStatus::from_raw(code << 8),
                stdout: stdout.as_bytes().to_vec(),
                stderr: Vec::new(),
            })
        });
        assert_eq!(cli.context(), "kind-side-2");
        let ensured = cli
            .ensure(&manifests_config(), state.path(), &|_| {})
            .unwrap();
        assert_eq!(
            ensured,
            Ensured::Created,
            "`wander` and `side-2-old` are others"
        );
        let recorded = state.path().join("kind-side-2.yaml");
        assert!(
            fs::read_to_string(&recorded)
                .unwrap()
                .contains("name: side-2"),
            "the configuration kind gets names the cluster"
        );
        assert!(cli.delete_if_exists(state.path()).unwrap());
        assert!(!recorded.exists());
        assert_eq!(
            *calls.borrow(),
            [
                "get clusters".to_owned(),
                format!(
                    "create cluster --name side-2 --config {}.creating --wait 120s",
                    recorded.display()
                ),
                "get clusters".to_owned(),
                "delete cluster --name side-2".to_owned(),
            ]
        );
    }

    #[test]
    fn a_failed_create_shows_the_end_of_kinds_output_and_a_way_around() {
        let kind = FakeKind::new(&[(
            1,
            "",
            "Creating cluster \"wander\" ...\n ✗ Preparing nodes\nERROR: failed to create cluster: port 8080 is already allocated\n",
        )]);
        let err = kind
            .cli()
            .create(Path::new("c.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("port 8080 is already allocated"), "{err}");
        assert!(err.contains("--runtime docker"), "{err}");
    }

    #[test]
    fn a_missing_cluster_is_created_from_the_generated_config() {
        let state = tempfile::tempdir().unwrap();
        let kind = FakeKind::new(&[(0, "", "No kind clusters found.\n"), (0, "", "")]);
        let notes = RefCell::new(Vec::<String>::new());
        let ensured = kind
            .cli()
            .ensure(&manifests_config(), state.path(), &|note| {
                notes.borrow_mut().push(note.to_owned());
            })
            .unwrap();
        assert_eq!(ensured, Ensured::Created);
        let written = config_path(state.path(), "wander");
        assert_eq!(
            kind.calls()[1],
            format!(
                "create cluster --name wander --config {}.creating --wait 120s",
                written.display()
            )
        );
        assert_eq!(
            fs::read_to_string(&written).unwrap(),
            config_yaml(&manifests_config(), "wander").unwrap()
        );
        assert!(notes.borrow().is_empty());
    }

    #[test]
    fn a_create_cut_short_leaves_no_record_so_the_cluster_is_not_taken_for_ours() {
        let state = tempfile::tempdir().unwrap();
        let kind = FakeKind::new(&[
            (0, "", "No kind clusters found.\n"),
            (1, "", "ERROR: failed to create cluster: interrupted\n"),
            // The next run finds the cluster kind left behind.
            (0, "wander\n", ""),
        ]);
        let cli = kind.cli();
        let notes = RefCell::new(Vec::<String>::new());
        let note = |line: &str| notes.borrow_mut().push(line.to_owned());
        let err = cli
            .ensure(&manifests_config(), state.path(), &note)
            .unwrap_err();
        assert!(err.to_string().contains("interrupted"), "{err}");
        assert!(!config_path(state.path(), "wander").exists());
        let ensured = cli
            .ensure(&manifests_config(), state.path(), &note)
            .unwrap();
        assert_eq!(ensured, Ensured::ReusedForeign);
        assert!(notes.borrow()[0].contains("cut short"), "{notes:?}");
    }

    #[test]
    fn an_existing_cluster_is_reused_and_a_foreign_one_is_named_as_such() {
        let state = tempfile::tempdir().unwrap();
        let config = manifests_config();
        let notes = RefCell::new(Vec::<String>::new());
        let note = |line: &str| notes.borrow_mut().push(line.to_owned());

        // Nothing recorded: not made by us.
        let kind = FakeKind::new(&[(0, "wander\n", "")]);
        let ensured = kind.cli().ensure(&config, state.path(), &note).unwrap();
        assert_eq!(ensured, Ensured::ReusedForeign);
        assert_eq!(kind.calls(), ["get clusters"]);
        assert!(notes.borrow()[0].contains("cargo xtask down"), "{notes:?}");

        // Recorded as what we would write now: reused quietly.
        write_config(
            &config_path(state.path(), "wander"),
            &config_yaml(&config, "wander").unwrap(),
        )
        .unwrap();
        let kind = FakeKind::new(&[(0, "wander\n", "")]);
        let ensured = kind.cli().ensure(&config, state.path(), &note).unwrap();
        assert_eq!(ensured, Ensured::Reused);
        assert_eq!(notes.borrow().len(), 1);

        // The configuration changed since: reused, with the note.
        let mut changed = config.clone();
        changed.nodes[0].extra_port_mappings[0].host_port = 3001;
        let kind = FakeKind::new(&[(0, "wander\n", "")]);
        let ensured = kind.cli().ensure(&changed, state.path(), &note).unwrap();
        assert_eq!(ensured, Ensured::ReusedForeign);
        assert_eq!(notes.borrow().len(), 2);
    }

    #[test]
    fn deleting_removes_the_cluster_and_its_recorded_config() {
        let state = tempfile::tempdir().unwrap();
        write_config(&config_path(state.path(), "wander"), "x").unwrap();
        let kind = FakeKind::new(&[(0, "wander\n", ""), (0, "", "")]);
        assert!(kind.cli().delete_if_exists(state.path()).unwrap());
        assert_eq!(
            kind.calls(),
            ["get clusters", "delete cluster --name wander"]
        );
        assert!(!config_path(state.path(), "wander").exists());

        let kind = FakeKind::new(&[(0, "wanderer\n", "")]);
        assert!(!kind.cli().delete_if_exists(state.path()).unwrap());
        assert_eq!(kind.calls(), ["get clusters"]);
    }

    #[test]
    fn a_runner_that_cannot_start_kind_passes_its_error_through() {
        let cli = KindCli::with_runner("wander", |_| bail!("{}", kind_missing()));
        let err = cli.clusters().unwrap_err().to_string();
        assert!(err.starts_with("kind is not installed"), "{err}");
        assert!(err.contains("install kind:"), "{err}");
        assert!(err.contains("--runtime docker"), "{err}");
    }

    #[test]
    fn the_real_kind_is_looked_for_on_path_before_it_is_run() {
        let ctx = Context::for_tests();
        let cli = KindCli::new(&ctx);
        if which::which("kind").is_ok() {
            // Where kind is installed, listing clusters works (it needs only the engine).
            cli.clusters().unwrap();
        } else {
            let err = cli.clusters().unwrap_err().to_string();
            assert!(err.starts_with("kind is not installed"), "{err}");
        }
    }

    #[test]
    fn the_generated_config_names_the_cluster_and_maps_the_ports_on_loopback() {
        let yaml = config_yaml(&manifests_config(), "wander").unwrap();
        // Read back as data, strictly (unknown fields refused).
        let read: KindCluster = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(read.name.as_deref(), Some("wander"));
        assert_eq!(read.kind, "Cluster");
        assert_eq!(read.api_version, "kind.x-k8s.io/v1alpha4");
        assert_eq!(read.nodes.len(), 1);
        assert_eq!(read.nodes[0].role, "control-plane");
        let ports: Vec<_> = read.nodes[0]
            .extra_port_mappings
            .iter()
            .map(|m| {
                (
                    m.host_port,
                    m.container_port,
                    m.listen_address.map(|ip| ip.to_string()),
                    m.protocol(),
                )
            })
            .collect();
        assert_eq!(
            ports,
            [
                (3000, 30300, Some("127.0.0.1".to_owned()), "TCP"),
                (8080, 30080, Some("127.0.0.1".to_owned()), "TCP"),
            ]
        );
        // And as text, as kind will read it.
        for line in [
            "name: wander",
            "apiVersion: kind.x-k8s.io/v1alpha4",
            "hostPort: 3000",
            "containerPort: 30080",
            "listenAddress: \"127.0.0.1\"",
        ] {
            assert!(yaml.contains(line), "{line} in:\n{yaml}");
        }
        assert!(!yaml.contains("image:"), "{yaml}");
    }

    #[test]
    fn only_our_context_is_used_unless_another_is_named() {
        for (requested, current, expected) in [
            (None, "kind-wander", Ok("kind-wander")),
            (None, "prod-eu", Err("pass `--context prod-eu`")),
            (
                None,
                "kind-wander-old",
                Err("pass `--context kind-wander-old`"),
            ),
            (None, "", Err("no current kube context")),
            (Some("prod-eu"), "kind-wander", Ok("prod-eu")),
            (Some("kind-wander"), "prod-eu", Ok("kind-wander")),
            (Some(""), "kind-wander", Err("needs a context name")),
        ] {
            match (check_context(requested, current, "kind-wander"), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want),
                (Err(err), Err(want)) => {
                    assert!(err.to_string().contains(want), "{err}");
                }
                (got, want) => panic!("{requested:?}/{current}: {got:?}, expected {want:?}"),
            }
        }
    }
}
