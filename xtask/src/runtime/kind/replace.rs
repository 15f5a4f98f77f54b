//! One workload replaced on kind: new images after a rebuild (loaded into the nodes, the
//! workload's object applied alone), or the same ones in new pods (`restart`, as `kubectl rollout
//! restart` does it); then the rollout waited for and the service checked.
//!
//! A Deployment's rolling update keeps the old pod serving until the new one is ready, so a
//! broken version costs nothing but its own failure; the error says which pods still serve.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{Timestamp, Unit};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use super::cluster::KindCli;
use super::session::KindSession;
use super::{apply, load, status, wait};
use crate::context::Context;
use crate::images::Resolved;
use crate::runtime::report::{Change, Replaced};
use crate::stack::{Stack, Workload, WorkloadKind};

/// The annotation `kubectl rollout restart` sets on the pod template: a new value is a new
/// template, so the controller rolls the pods (kubectl's `polymorphichelpers/objectrestarter.go`).
pub(crate) const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// The field manager of the restart patch: not `dev`'s own, so the next `dev`'s apply, which
/// does not set the annotation, leaves it alone rather than removing it (and rolling again).
/// kubectl's restart uses `kubectl-rollout` the same way.
pub(crate) const RESTART_FIELD_MANAGER: &str = "wander-xtask-restart";

/// Replaces `workload` as `change` says, waits for its rollout and checks it answers.
pub(crate) async fn replace(
    ctx: &Context,
    workload: &str,
    change: Change<'_>,
    timeout: Duration,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Replaced> {
    let session = KindSession::open(ctx).await?;
    let workload = session.stack.named_workload(workload)?.clone();
    if let Change::Images(images) = change {
        let kind = KindCli::new(ctx);
        if let Some(other) = ctx.kube_context().filter(|&named| named != kind.context()) {
            bail!(
                "a rebuilt image is loaded into the nodes of this tool's own kind cluster, not into `--context {other}`'s"
            );
        }
        on_progress("loading the image into the nodes");
        let wanted: Vec<String> = workload
            .images()
            .iter()
            .filter_map(|image| images.get(image).cloned())
            .collect();
        let docker = crate::docker::connect().await?;
        load::load_images(&docker, &kind.nodes()?, &wanted, on_progress).await?;
    }
    let rolled = roll(
        &session.client,
        &session.stack,
        &workload,
        change,
        timeout,
        on_progress,
    );
    let changed = match rolled.await {
        Ok(changed) => changed,
        Err(err) => {
            // The rollout did not finish: a rolling update keeps the pods it had.
            let pods = ready_pods(&session.client, session.namespace(), &workload).await;
            let serving = serving_now(&workload.name, pods);
            return Err(err.context(format!(
                "the new {} did not get ready; {serving}",
                workload.name
            )));
        }
    };
    if !changed {
        return Ok(Replaced {
            changed: false,
            detail: "already running these images".to_owned(),
        });
    }
    on_progress("checking it answers");
    let detail = super::up::verify(&session, &workload, timeout, &mut None)
        .await
        .map_err(|err| {
            err.context(format!(
                "the new {} rolled out but does not answer; the previous version is gone",
                workload.name
            ))
        })?;
    Ok(Replaced {
        changed: true,
        detail,
    })
}

/// The cluster's side of a replacement: the workload's object applied with the new images, or
/// its restart annotation set, then the rollout waited for. Whether anything changed: an apply
/// that changes nothing rolls nothing.
pub(crate) async fn roll(
    client: &kube::Client,
    stack: &Stack,
    workload: &Workload,
    change: Change<'_>,
    timeout: Duration,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<bool> {
    match change {
        Change::Images(images) => {
            on_progress("applying its object");
            let resolved: BTreeMap<String, Resolved> = images
                .iter()
                .map(|(manifest, reference)| {
                    let resolved = Resolved {
                        reference: reference.clone(),
                        built: false,
                        notice: None,
                    };
                    (manifest.clone(), resolved)
                })
                .collect();
            let applied = apply::apply_workload(client, stack, workload, &resolved).await?;
            if !applied.changed {
                return Ok(false);
            }
        }
        Change::Restart => {
            on_progress("restarting its pods");
            restart(client, &stack.namespace, workload).await?;
        }
    }
    wait::wait_rollout(
        client,
        &stack.namespace,
        workload.kind,
        &workload.name,
        timeout,
        &mut |message| on_progress(message),
    )
    .await?;
    Ok(true)
}

/// Sets the pod template's restart annotation to now, by the strategic merge patch `kubectl
/// rollout restart` sends.
async fn restart(
    client: &kube::Client,
    namespace: &str,
    workload: &Workload,
) -> anyhow::Result<()> {
    let now = Timestamp::now()
        .round(Unit::Second)
        .unwrap_or_else(|_| Timestamp::now());
    let patch = json!({
        "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: now.to_string() } } } }
    });
    let params = PatchParams {
        field_manager: Some(RESTART_FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let name = workload.name.as_str();
    let patched = match workload.kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), namespace)
            .patch(name, &params, &Patch::Strategic(&patch))
            .await
            .map(drop),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), namespace)
            .patch(name, &params, &Patch::Strategic(&patch))
            .await
            .map(drop),
    };
    patched.map_err(|err| {
        anyhow::Error::new(err).context(format!(
            "restarting {} {name}: is the stack up? `cargo xtask dev` starts it",
            workload.kind.as_str()
        ))
    })
}

/// What serves `workload` after its rollout failed, from its ready pods (`None`: unknown). A
/// rolling update keeps the old pods until new ones are ready, so those are the version before.
fn serving_now(workload: &str, ready: Option<Vec<String>>) -> String {
    match ready {
        Some(pods) if pods.is_empty() => {
            format!("no pod of {workload} is ready: nothing serves it now")
        }
        Some(pods) => format!("the previous version still serves ({})", pods.join(", ")),
        None => "whether the previous version still serves is unknown: the cluster did not answer"
            .to_owned(),
    }
}

/// The names of the workload's ready pods; `None` when the cluster does not answer.
async fn ready_pods(
    client: &kube::Client,
    namespace: &str,
    workload: &Workload,
) -> Option<Vec<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods.list(&ListParams::default()).await.ok()?;
    Some(
        list.items
            .iter()
            .filter(|pod| status::belongs_to(pod, workload) && status::is_ready(pod))
            .filter_map(|pod| pod.metadata.name.clone())
            .collect(),
    )
}

#[cfg(test)]
mod tests;
