//! What the runtimes hand back to the commands, the same on both: the commands render these and
//! never look inside a runtime.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::images::app::Profile;

/// One service's line.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct ServiceStatus {
    pub(crate) name: String,
    /// `running`, `exited`, `restarting`, ..., or `absent` when it has no container.
    pub(crate) state: String,
    /// `healthy` (running, and passing its probe if it has one), `unhealthy` (failing its probe,
    /// or not running), or `unknown` (no container or pod to ask).
    pub(crate) health: String,
    /// Why it is not healthy, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    pub(crate) image: String,
    pub(crate) ports: Vec<String>,
    pub(crate) uptime_secs: Option<u64>,
    pub(crate) restarts: i64,
}

/// The whole `status` report, as either runtime makes it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatusReport {
    pub(crate) runtime: &'static str,
    pub(crate) stack: String,
    /// Every service healthy.
    pub(crate) healthy: bool,
    pub(crate) services: Vec<ServiceStatus>,
    /// What else the reader should know (on docker: that no kubelet watches the probes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) notes: Vec<String>,
}

/// What `up` did: the URLs the stack answers on (`(service, url)`), and how many of its
/// services changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UpReport {
    pub(crate) urls: Vec<(String, String)>,
    pub(crate) changed: usize,
    pub(crate) total: usize,
    /// The local image each manifest image runs as (`wander/api:dev` → `wander/api:loop-3f9a…`).
    pub(crate) images: BTreeMap<String, String>,
}

impl UpReport {
    /// The dashboard's address, if the stack publishes it.
    pub(crate) fn dashboard(&self) -> Option<String> {
        self.urls
            .iter()
            .find(|(service, _)| service == "web")
            .map(|(_, url)| format!("{url}/"))
    }
}

/// What `up` is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UpOptions {
    /// How long each service may take to become ready.
    pub(crate) timeout: Duration,
    /// Which cargo profile builds our apps' images.
    pub(crate) profile: Profile,
}

/// What `down` is asked to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DownOptions {
    /// The stack's data too.
    pub(crate) volumes: bool,
    /// kind: only the stack's namespace, not the cluster.
    pub(crate) keep_cluster: bool,
}

/// What `replace` changes in one workload.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change<'a> {
    /// The same images in a new container or pod (`restart`).
    Restart,
    /// These images (manifest reference → local reference, for every image of the workload) in
    /// place of the running ones: what the watch loop hands over after a rebuild.
    Images(&'a BTreeMap<String, String>),
}

/// One workload replaced and answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replaced {
    /// Whether anything was replaced: new images that are already running change nothing.
    pub(crate) changed: bool,
    /// What proved the new copy works (`GET /health 200`, `PING ok`, ...).
    pub(crate) detail: String,
}
