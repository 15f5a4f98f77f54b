//! Where the stack runs. Two runtimes work from the same parsed manifests (DESIGN.md decision
//! 2): `kind`, a real Kubernetes cluster, and `docker`, containers straight on the engine.

pub(crate) mod docker;
pub(crate) mod exec_io;
pub(crate) mod kind;
pub(crate) mod logs_format;

/// The runtime chosen with `--runtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RuntimeKind {
    /// A local kind cluster driven through kube-rs.
    Kind,
    /// Containers on the Docker engine, from the same manifests.
    Docker,
}

impl RuntimeKind {
    /// The runtime used without `--runtime`, and the notice that says so. kind will be the
    /// default where it is installed once the kind runtime is built; until then docker is, so
    /// that `cargo xtask dev` works wherever Docker does.
    pub(crate) fn default_for(kind_installed: bool) -> (Self, &'static str) {
        if kind_installed {
            (
                Self::Docker,
                "using the docker runtime: the kind runtime is not part of this build yet",
            )
        } else {
            (
                Self::Docker,
                "kind is not installed: using the docker runtime (--runtime docker)",
            )
        }
    }
}

/// What the kind runtime says until it exists (issue 5).
pub(crate) const KIND_NOT_AVAILABLE: &str = "the kind runtime is not part of this build yet; run with `--runtime docker` (or set WANDER_RUNTIME=docker)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_flag_the_docker_runtime_runs_and_says_so() {
        for installed in [true, false] {
            let (chosen, why) = RuntimeKind::default_for(installed);
            assert_eq!(chosen, RuntimeKind::Docker);
            assert!(why.contains("docker runtime"), "{why}");
        }
    }
}
