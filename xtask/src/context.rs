//! What every command is handed: where the repository is, how much to print, which runtime and
//! kube context the command line chose, and the checked configuration.

use std::path::{Path, PathBuf};

use crate::cmd::Cmd;
use crate::config::Config;
use crate::state::StateDir;
use crate::ui::{Ui, Verbosity};

/// What every command needs to know about where and how it runs.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// The repository root: the workspace directory, whatever the current directory is.
    root: PathBuf,
    /// The progress output.
    ui: Ui,
    /// The runtime asked for on the command line, if any.
    runtime: Option<RuntimeKind>,
    /// The runtime chosen without one, once (its notice is said once).
    chosen: std::sync::OnceLock<RuntimeKind>,
    /// The kube context named with `--context`, if any.
    kube: Option<String>,
    /// What the environment configures.
    config: Config,
    /// Variables every cargo build of this run gets ([`Context::cargo`]).
    cargo_env: Vec<(&'static str, &'static str)>,
}

impl Context {
    /// The context of one run: `runtime` and `kube` as the command line gave them.
    pub(crate) fn new(
        verbosity: Verbosity,
        runtime: Option<RuntimeKind>,
        kube: Option<String>,
        config: Config,
    ) -> Self {
        Self {
            kube,
            root: Self::repository_root(),
            ui: Ui::new(verbosity),
            runtime,
            chosen: std::sync::OnceLock::new(),
            config,
            cargo_env: Vec::new(),
        }
    }

    /// The same context, whose cargo builds also get `env`.
    pub(crate) fn with_cargo_env(self, env: Vec<(&'static str, &'static str)>) -> Self {
        Self {
            cargo_env: env,
            ..self
        }
    }

    /// `cargo` for a build of this run: [`Cmd::cargo`] with the run's variables.
    pub(crate) fn cargo(&self) -> Cmd {
        self.cargo_env
            .iter()
            .fold(Cmd::cargo(), |cmd, (name, value)| cmd.env(name, value))
    }

    /// The same context with only failures and warnings shown: for work a command does on
    /// the side (the watch loop re-applying the manifests) whose own steps would be noise.
    pub(crate) fn quiet(&self) -> Self {
        Self {
            ui: Ui::new(Verbosity::Quiet),
            runtime: Some(self.runtime()),
            ..self.clone()
        }
    }

    /// A context as tests need it: normal output, runtime chosen by detection, and the default
    /// configuration whatever the environment says.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        let config = Config::defaults(&Self::repository_root());
        Self::new(Verbosity::Normal, None, None, config)
    }

    /// The repository root: the checkout the command runs in (the nearest directory above the
    /// current one that holds `Cargo.toml`, `xtask/` and `manifests/`), else the one this
    /// binary was built from. So one binary serves every checkout it is run in: git worktrees
    /// sharing a `CARGO_TARGET_DIR`, or a test's copy of the repository.
    pub(crate) fn repository_root() -> PathBuf {
        let is_root = |dir: &Path| {
            dir.join("Cargo.toml").is_file()
                && dir.join("xtask/Cargo.toml").is_file()
                && dir.join("manifests").is_dir()
        };
        let here = std::env::current_dir().ok();
        if let Some(root) = here
            .iter()
            .flat_map(|dir| dir.ancestors())
            .find(|dir| is_root(dir))
        {
            return root.to_path_buf();
        }
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
    }

    /// The repository root.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Where progress, notes and results are printed.
    pub(crate) fn ui(&self) -> &Ui {
        &self.ui
    }

    /// What the environment configures (names, folders, overrides).
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The git-ignored state folder: `WANDER_STATE_DIR`, else `.wander/` in the repository.
    pub(crate) fn state(&self) -> StateDir {
        StateDir::new(self.config.state_dir.clone())
    }

    /// The kube context named with `--context`: the kind runtime uses no other than its own
    /// cluster's unless told so.
    pub(crate) fn kube_context(&self) -> Option<&str> {
        self.kube.as_deref()
    }

    /// The runtime to use: the one asked for, else the default (saying which, in one line).
    pub(crate) fn runtime(&self) -> RuntimeKind {
        self.runtime.unwrap_or_else(|| {
            *self.chosen.get_or_init(|| {
                let (chosen, why) = RuntimeKind::default_for(which::which("kind").is_ok());
                self.ui.note(why);
                chosen
            })
        })
    }
}

/// The runtime chosen with `--runtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RuntimeKind {
    /// A local kind cluster driven through kube-rs.
    Kind,
    /// Containers on the Docker engine, from the same manifests.
    Docker,
}

impl RuntimeKind {
    /// The runtime used without `--runtime`, and the notice that says so: kind where it is
    /// installed, else docker, so that `cargo xtask dev` works wherever Docker does.
    pub(crate) fn default_for(kind_installed: bool) -> (Self, &'static str) {
        if kind_installed {
            (
                Self::Kind,
                "using the kind runtime (`--runtime docker` runs the stack straight on Docker)",
            )
        } else {
            (
                Self::Docker,
                "kind is not installed: using the docker runtime (--runtime docker)",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_root_holds_the_workspace_manifest() {
        let ctx = Context::for_tests();
        assert!(ctx.root().join("Cargo.toml").is_file());
        assert!(ctx.root().join("xtask").is_dir());
    }

    #[test]
    fn without_a_flag_kind_runs_where_installed_and_docker_elsewhere_and_it_says_so() {
        let (chosen, why) = RuntimeKind::default_for(true);
        assert_eq!(chosen, RuntimeKind::Kind);
        assert!(why.contains("kind runtime"), "{why}");
        let (chosen, why) = RuntimeKind::default_for(false);
        assert_eq!(chosen, RuntimeKind::Docker);
        assert!(why.contains("docker runtime"), "{why}");
    }
}
