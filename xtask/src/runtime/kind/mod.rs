//! The kind runtime: the stack on a local kind cluster, driven through kube-rs (docs/design.md,
//! "Server-side apply through kube-rs, no kubectl"), with no kubectl or helm.
//!
//! - `cluster`: the cluster's lifecycle through the one `kind` runner; `client`: the kube
//!   client, for kind's own context only unless `--context` names another.
//! - `load`: images streamed from the engine into the nodes' containerd, skipped when present.
//! - `apply`: server-side apply of the manifests and the generated Secret.
//! - `rollout` and `wait`: `kubectl rollout status`'s rules over a watch; `explain`: why pods
//!   are not ready, in plain words.
//! - `up` (`dev`), `down`, `status`, `logs`, `exec` (`shell`, `db-shell`), `debug` (a shell for
//!   images without one), `portforward` (`port-forward`, and the `database` connection of the
//!   checks and the seed); `session`: what the commands share.

pub(crate) mod apply;
pub(crate) mod client;
pub(crate) mod cluster;
pub(crate) mod database;
pub(crate) mod debug;
pub(crate) mod down;
pub(crate) mod exec;
pub(crate) mod explain;
pub(crate) mod load;
pub(crate) mod logs;
pub(crate) mod portforward;
pub(crate) mod replace;
pub(crate) mod rollout;
pub(crate) mod session;
pub(crate) mod shell;
pub(crate) mod status;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod up;
pub(crate) mod wait;

/// The label our manifests put on every pod, naming its service (and workload).
pub(crate) use crate::stack::NAME_LABEL;
