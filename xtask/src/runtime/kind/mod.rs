//! The kind runtime: the stack on a local kind cluster, driven through kube-rs (DESIGN.md
//! decision 2).
//!
//! Built so far, and tested without a cluster: the cluster's lifecycle through the one `kind`
//! runner (`cluster`), images streamed into the nodes (`load`), the rollout rules of `kubectl
//! rollout status` (`rollout`), plain-language failure causes (`explain`), the kube-rs client for
//! kind's context only (`client`), the server-side apply of the stack (`apply`), rollout waits
//! (`wait`), a re-attaching port-forward (`portforward`), `logs` that follow restarts and
//! rollouts (`logs`) and commands in pods (`exec`). The wiring into the commands comes next;
//! until then the commands refuse `--runtime kind` with a message, so these parts are only
//! reached by their tests.
#![allow(dead_code)]

pub(crate) mod apply;
pub(crate) mod client;
pub(crate) mod cluster;
pub(crate) mod database;
pub(crate) mod down;
pub(crate) mod exec;
pub(crate) mod explain;
pub(crate) mod load;
pub(crate) mod logs;
pub(crate) mod portforward;
pub(crate) mod rollout;
pub(crate) mod session;
pub(crate) mod status;
pub(crate) mod up;
pub(crate) mod wait;

/// The label our manifests put on every pod, naming its service (and workload).
pub(crate) const NAME_LABEL: &str = "app.kubernetes.io/name";
