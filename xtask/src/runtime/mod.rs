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
    fn without_a_flag_kind_runs_where_installed_and_docker_elsewhere_and_it_says_so() {
        let (chosen, why) = RuntimeKind::default_for(true);
        assert_eq!(chosen, RuntimeKind::Kind);
        assert!(why.contains("kind runtime"), "{why}");
        let (chosen, why) = RuntimeKind::default_for(false);
        assert_eq!(chosen, RuntimeKind::Docker);
        assert!(why.contains("docker runtime"), "{why}");
    }
}
