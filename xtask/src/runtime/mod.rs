//! Where the stack runs. Two runtimes work from the same parsed manifests (DESIGN.md decision
//! 2): `kind`, a real Kubernetes cluster, and `docker`, containers straight on the engine.

pub(crate) mod docker;

/// The runtime chosen with `--runtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RuntimeKind {
    /// A local kind cluster driven through kube-rs.
    Kind,
    /// Containers on the Docker engine, from the same manifests.
    Docker,
}

impl RuntimeKind {
    /// kind when the `kind` program is on PATH, else docker.
    pub(crate) fn detect() -> Self {
        if which::which("kind").is_ok() {
            Self::Kind
        } else {
            Self::Docker
        }
    }
}

/// What the kind runtime says until it exists (issue 5).
pub(crate) const KIND_NOT_AVAILABLE: &str = "the kind runtime is not part of this build yet; run with `--runtime docker` (or set WANDER_RUNTIME=docker)";
