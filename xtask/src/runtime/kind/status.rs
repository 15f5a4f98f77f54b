//! `cargo xtask status` on kind: each workload's pods as the cluster has them (state, readiness,
//! restarts, image) and its Services' ready endpoints, in the same report as the docker runtime.

use std::collections::BTreeMap;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};

use super::explain;
use super::session::KindSession;
use crate::runtime::report::{ServiceStatus, StatusReport};
use crate::stack::{Stack, Workload};

/// The label the control plane puts on a Service's EndpointSlices.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The report of the stack this context names, on its cluster (or `--context`'s).
pub(crate) async fn report(ctx: &crate::context::Context) -> anyhow::Result<StatusReport> {
    let session = KindSession::open(ctx).await?;
    let context = ctx.kube_context().map_or_else(
        || super::cluster::KindCli::new(ctx).context(),
        str::to_owned,
    );
    collect(&session, &context).await
}

/// Reads the namespace's pods, events and endpoints once, and reports every workload of the
/// manifests; `context` names the cluster in the report.
pub(crate) async fn collect(session: &KindSession, context: &str) -> anyhow::Result<StatusReport> {
    let namespace = session.namespace();
    let client = &session.client;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = pods
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing the pods of namespace {namespace}"))?
        .items;
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    // Events only sharpen the reasons; a cluster that will not list them still gets a report.
    let events = events
        .list(&ListParams::default())
        .await
        .map(|list| list.items)
        .unwrap_or_default();
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let slices = slices
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing the endpoints of namespace {namespace}"))?
        .items;
    let endpoints = ready_endpoints(&slices);
    let now = Timestamp::now();
    let services: Vec<ServiceStatus> = session
        .stack
        .workloads
        .iter()
        .map(|workload| {
            let mine: Vec<Pod> = pods
                .iter()
                .filter(|pod| belongs_to(pod, workload))
                .cloned()
                .collect();
            let ports = ports(&session.stack, workload, &endpoints);
            service_status(workload, &mine, &events, ports, now)
        })
        .collect();
    Ok(StatusReport {
        runtime: "kind",
        stack: format!("{context}/{namespace}"),
        healthy: !services.is_empty() && services.iter().all(|s| s.health == "healthy"),
        services,
        notes: Vec::new(),
    })
}

/// Whether `pod` is one of `workload`'s: it carries every label of the pod template.
pub(super) fn belongs_to(pod: &Pod, workload: &Workload) -> bool {
    let labels = pod.metadata.labels.as_ref();
    !workload.labels.is_empty()
        && workload
            .labels
            .iter()
            .all(|(key, value)| labels.and_then(|l| l.get(key)) == Some(value))
}

/// Ready endpoint addresses by Service name.
fn ready_endpoints(slices: &[EndpointSlice]) -> BTreeMap<String, usize> {
    let mut ready = BTreeMap::new();
    for slice in slices {
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        let count = slice
            .endpoints
            .iter()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .count();
        *ready.entry(service.clone()).or_insert(0) += count;
    }
    ready
}

/// Each Service of `workload`: where it is reached (the host address kind publishes, or the
/// in-cluster name) and how many ready endpoints it has.
fn ports(stack: &Stack, workload: &Workload, endpoints: &BTreeMap<String, usize>) -> Vec<String> {
    let mut out = Vec::new();
    for service in stack.services_of(workload) {
        let ready = endpoints.get(&service.name).copied().unwrap_or(0);
        for port in &service.ports {
            let reached = match stack.host_port_of(&service.name) {
                Some(m) if m.service_port == port.port => format!(
                    "{}:{}->{}:{}",
                    m.listen_address, m.host_port, service.name, port.port
                ),
                _ => format!("{}:{}", service.name, port.port),
            };
            out.push(format!("{reached} ({ready} ready)"));
        }
    }
    out
}

/// One workload's line, from its pods (terminating ones left out).
fn service_status(
    workload: &Workload,
    pods: &[Pod],
    events: &[Event],
    ports: Vec<String>,
    now: Timestamp,
) -> ServiceStatus {
    let live: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let restarts = live
        .iter()
        .flat_map(|p| container_statuses(p))
        .map(|c| i64::from(c.restart_count))
        .sum();
    let newest = live
        .iter()
        .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let image = newest
        .and_then(|p| p.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    if live.is_empty() {
        return ServiceStatus {
            name: workload.name.clone(),
            state: "absent".to_owned(),
            health: "unknown".to_owned(),
            reason: Some("no pod: run `cargo xtask dev`".to_owned()),
            image,
            ports,
            uptime_secs: None,
            restarts,
        };
    }
    let ready = live.iter().filter(|p| is_ready(p)).count();
    let state = live
        .iter()
        .find_map(|p| waiting_reason(p))
        .unwrap_or_else(|| {
            newest
                .and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Pending".to_owned())
        })
        .to_lowercase();
    let state = format!("{state} {ready}/{}", live.len());
    let (health, reason) = if ready == live.len() {
        ("healthy", None)
    } else {
        let owned: Vec<Pod> = live.iter().map(|p| (*p).clone()).collect();
        let reason = explain::explain(&owned, events)
            .into_iter()
            .next()
            .map_or_else(
                || format!("{ready} of {} pods ready", live.len()),
                |f| format!("{}: {} (fix: {})", f.pod, f.cause, f.fix),
            );
        ("unhealthy", Some(reason))
    };
    let uptime_secs = newest
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.start_time.as_ref())
        .and_then(|started| u64::try_from(now.as_second() - started.0.as_second()).ok());
    ServiceStatus {
        name: workload.name.clone(),
        state,
        health: health.to_owned(),
        reason,
        image,
        ports,
        uptime_secs,
        restarts,
    }
}

fn container_statuses(
    pod: &Pod,
) -> impl Iterator<Item = &k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
}

/// Whether the pod's Ready condition is True: it passes its readiness probes and serves.
pub(super) fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A container's waiting reason (`CrashLoopBackOff`, `ImagePullBackOff`, ...): what the pod's
/// state really is while it is not running.
fn waiting_reason(pod: &Pod) -> Option<String> {
    container_statuses(pod).find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
}

#[cfg(test)]
mod tests;
