//! The stack into the cluster: every object of `manifests/` plus the generated Secret, by
//! server-side apply with the field manager `wander-xtask`, in dependency order.
//!
//! Server-side apply makes a run idempotent: applying what the cluster already has changes no
//! resourceVersion, so nothing restarts and [`Applied::changed`] tells the caller what moved.
//! Images built by the xtask are pointed at their content-hash tags, so only a service whose
//! image changed gets a new pod template (and rolls).

use std::collections::BTreeMap;
use std::fmt::Debug;

use anyhow::bail;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, PodSpec, PodTemplateSpec, Secret, Service,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{ByteString, NamespaceResourceScope, Resource as _};
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::images::Resolved;
use crate::stack::{LOCAL_IMAGE_PREFIX, ManifestObject, Object, SECRET_NAME, Stack, Workload};
use crate::state::Secrets;

/// The field manager of every apply: the fields it sets belong to the xtask, and `force` takes
/// them back from anyone who edited them by hand (a `kubectl edit` is undone by the next `dev`).
pub(crate) const FIELD_MANAGER: &str = "wander-xtask";
/// The pull policy of images loaded into the nodes: they are never in a registry.
const IF_NOT_PRESENT: &str = "IfNotPresent";
/// Labels the generated Secret carries, like every object of the manifests.
const SECRET_LABELS: [(&str, &str); 2] = [
    ("app.kubernetes.io/part-of", "wander"),
    ("app.kubernetes.io/managed-by", "wander-xtask"),
];

/// One object applied, for the progress display and the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    /// `kind:` of the object.
    pub(crate) kind: &'static str,
    /// `metadata.name`.
    pub(crate) name: String,
    /// Whether the cluster's copy changed (created, or its resourceVersion moved).
    pub(crate) changed: bool,
    /// What the API server warned about while taking it.
    pub(crate) warnings: Vec<String>,
}

/// An object as it is sent to the cluster.
#[derive(Debug, Clone)]
enum Desired {
    Namespace(Namespace),
    ConfigMap(ConfigMap),
    Secret(Secret),
    Service(Service),
    Deployment(Deployment),
    StatefulSet(StatefulSet),
    PersistentVolumeClaim(PersistentVolumeClaim),
    NetworkPolicy(NetworkPolicy),
}

/// One object to apply, with what messages call it.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    /// `manifests/api.yaml: Deployment/api`, or `generated Secret/wander-secrets`.
    pub(crate) what: String,
    pub(crate) kind: &'static str,
    pub(crate) name: String,
    desired: Desired,
}

/// Applies the stack in dependency order (the Namespace, the ConfigMaps, the generated Secret,
/// then the rest in the manifests' order: data stores, API, web), reporting each object to
/// `on_progress` once it is applied. Stops at the first object the cluster refuses, with the
/// object and the API server's words.
pub(crate) async fn apply_stack(
    client: &kube::Client,
    stack: &Stack,
    secrets: &Secrets,
    images: &BTreeMap<String, Resolved>,
    on_progress: &(dyn Fn(&Applied) + Sync),
) -> anyhow::Result<Vec<Applied>> {
    let planned = plan(stack, secrets, images)?;
    let mut applied = Vec::with_capacity(planned.len());
    let warnings = super::client::warnings();
    warnings.take();
    for object in planned {
        let changed = apply_object(client, &stack.namespace, &object).await?;
        let done = Applied {
            kind: object.kind,
            name: object.name,
            changed,
            warnings: warnings.take(),
        };
        on_progress(&done);
        applied.push(done);
    }
    Ok(applied)
}

/// What [`apply_stack`] sends, in order: the manifests' objects with the namespace set and
/// local images rewritten, and the generated Secret after the leading Namespace and ConfigMaps.
pub(crate) fn plan(
    stack: &Stack,
    secrets: &Secrets,
    images: &BTreeMap<String, Resolved>,
) -> anyhow::Result<Vec<Planned>> {
    let namespace = stack.namespace.as_str();
    let mut planned = Vec::with_capacity(stack.objects.len() + 1);
    for object in &stack.objects {
        planned.push(plan_object(object, namespace, images)?);
    }
    // The dependency graph's order, whatever order the kustomization lists the files in: the
    // namespace, configuration, claims, then each workload after those it depends on, its
    // Services just before it (a stable sort keeps the file order within each rank).
    planned.sort_by_key(|p| apply_rank(stack, p));
    let after_config = planned
        .iter()
        .position(|p| !matches!(p.desired, Desired::Namespace(_) | Desired::ConfigMap(_)))
        .unwrap_or(planned.len());
    planned.insert(
        after_config,
        Planned {
            what: format!("generated {}/{SECRET_NAME}", Secret::KIND),
            kind: Secret::KIND,
            name: SECRET_NAME.to_owned(),
            desired: Desired::Secret(secret(namespace, secrets)),
        },
    );
    Ok(planned)
}

/// One object of the manifests as it is sent: in the stack's namespace, local images rewritten.
fn plan_object(
    object: &ManifestObject,
    namespace: &str,
    images: &BTreeMap<String, Resolved>,
) -> anyhow::Result<Planned> {
    let what = object.describe();
    let desired = match object.object.clone() {
        Object::Namespace(o) => Desired::Namespace(o),
        Object::ConfigMap(mut o) => {
            set_namespace(&mut o.metadata, namespace);
            Desired::ConfigMap(o)
        }
        Object::Service(mut o) => {
            set_namespace(&mut o.metadata, namespace);
            Desired::Service(o)
        }
        Object::PersistentVolumeClaim(mut o) => {
            set_namespace(&mut o.metadata, namespace);
            Desired::PersistentVolumeClaim(o)
        }
        Object::NetworkPolicy(mut o) => {
            set_namespace(&mut o.metadata, namespace);
            Desired::NetworkPolicy(o)
        }
        Object::Deployment(mut o) => {
            set_namespace(&mut o.metadata, namespace);
            let template = o.spec.as_mut().map(|spec| &mut spec.template);
            rewrite_template(template, images, &what)?;
            Desired::Deployment(o)
        }
        Object::StatefulSet(mut o) => {
            set_namespace(&mut o.metadata, namespace);
            let template = o.spec.as_mut().map(|spec| &mut spec.template);
            rewrite_template(template, images, &what)?;
            Desired::StatefulSet(o)
        }
    };
    Ok(Planned {
        what,
        kind: object.kind,
        name: object.name.clone(),
        desired,
    })
}

/// Applies the Deployment or StatefulSet of one workload alone, its images pointed at `images`
/// (which must hold every image of ours it runs): a rebuilt service replaced without touching
/// the rest of the stack.
pub(crate) async fn apply_workload(
    client: &kube::Client,
    stack: &Stack,
    workload: &Workload,
    images: &BTreeMap<String, Resolved>,
) -> anyhow::Result<Applied> {
    let object = stack
        .objects
        .iter()
        .find(|o| o.kind == workload.kind.as_str() && o.name == workload.name)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the manifests have no {} {}",
                workload.kind.as_str(),
                workload.name
            )
        })?;
    let planned = plan_object(object, &stack.namespace, images)?;
    let warnings = super::client::warnings();
    warnings.take();
    let changed = apply_object(client, &stack.namespace, &planned).await?;
    Ok(Applied {
        kind: planned.kind,
        name: planned.name,
        changed,
        warnings: warnings.take(),
    })
}

/// Where an object goes in the apply: namespace, ConfigMaps, claims and network policies, then per workload in
/// dependency order its Services and itself.
fn apply_rank(stack: &Stack, planned: &Planned) -> usize {
    let workload_rank = |name: &str| {
        stack
            .workloads
            .iter()
            .position(|w| w.name == name)
            .map_or(usize::MAX, |index| 3 + 2 * index)
    };
    match &planned.desired {
        Desired::Namespace(_) => 0,
        Desired::ConfigMap(_) | Desired::Secret(_) => 1,
        // Policies before any pod starts: a pod never runs with more reach than they give it.
        Desired::PersistentVolumeClaim(_) | Desired::NetworkPolicy(_) => 2,
        Desired::Service(_) => stack
            .services
            .iter()
            .find(|s| s.name == planned.name)
            .map_or(usize::MAX, |s| workload_rank(&s.workload)),
        Desired::Deployment(_) | Desired::StatefulSet(_) => {
            workload_rank(&planned.name).saturating_add(1)
        }
    }
}

/// The Secret `wander-secrets` with every key of `secrets` (docs/design.md, "Secrets generated
/// into .wander/"), as `data` (base64 on the wire): what the server stores, so a second apply
/// compares equal.
pub(crate) fn secret(namespace: &str, secrets: &Secrets) -> Secret {
    let data = secrets
        .entries()
        .into_iter()
        .map(|(key, value)| (key.to_owned(), ByteString(value.as_bytes().to_vec())))
        .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(SECRET_NAME.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(
                SECRET_LABELS
                    .iter()
                    .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

/// Points every container of `pod_spec` whose image was resolved at the resolved reference (the
/// content-hash tag, or a local stand-in), pulled only if not present: the image was loaded into
/// the nodes and is in no registry. An image of ours (`wander/...`) that was not resolved is an
/// error, as the cluster could never pull it.
pub(crate) fn rewrite_images(
    pod_spec: &mut PodSpec,
    images: &BTreeMap<String, Resolved>,
    what: &str,
) -> anyhow::Result<()> {
    let init = pod_spec.init_containers.iter_mut().flatten();
    for container in pod_spec.containers.iter_mut().chain(init) {
        let Some(image) = container.image.as_deref() else {
            continue;
        };
        if let Some(resolved) = images.get(image) {
            container.image = Some(resolved.reference.clone());
            container.image_pull_policy = Some(IF_NOT_PRESENT.to_owned());
        } else if image.starts_with(LOCAL_IMAGE_PREFIX) {
            bail!(
                "{what}: container `{}`: the image {image} was not built, so the cluster could not run it; this is a bug in cargo xtask (the images are built before the apply)",
                container.name
            );
        }
    }
    Ok(())
}

fn rewrite_template(
    template: Option<&mut PodTemplateSpec>,
    images: &BTreeMap<String, Resolved>,
    what: &str,
) -> anyhow::Result<()> {
    if let Some(pod_spec) = template.and_then(|t| t.spec.as_mut()) {
        rewrite_images(pod_spec, images, what)?;
    }
    Ok(())
}

fn set_namespace(metadata: &mut ObjectMeta, namespace: &str) {
    metadata.namespace = Some(namespace.to_owned());
}

/// Applies one object; whether the cluster's copy changed.
async fn apply_object(
    client: &kube::Client,
    namespace: &str,
    object: &Planned,
) -> anyhow::Result<bool> {
    let name = object.name.as_str();
    let result = match &object.desired {
        Desired::Namespace(o) => apply_to(&Api::all(client.clone()), name, o).await,
        Desired::ConfigMap(o) => apply_in(client, namespace, name, o).await,
        Desired::Secret(o) => apply_in(client, namespace, name, o).await,
        Desired::Service(o) => apply_in(client, namespace, name, o).await,
        Desired::Deployment(o) => apply_in(client, namespace, name, o).await,
        Desired::StatefulSet(o) => apply_in(client, namespace, name, o).await,
        Desired::PersistentVolumeClaim(o) => apply_in(client, namespace, name, o).await,
        Desired::NetworkPolicy(o) => apply_in(client, namespace, name, o).await,
    };
    result.map_err(|err| refused(&object.what, namespace, err))
}

async fn apply_in<K>(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    object: &K,
) -> Result<bool, kube::Error>
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    apply_to(&Api::namespaced(client.clone(), namespace), name, object).await
}

/// Server-side apply of `object`, forced, after reading only its metadata (never a Secret's
/// data) to learn the resourceVersion before.
async fn apply_to<K>(api: &Api<K>, name: &str, object: &K) -> Result<bool, kube::Error>
where
    K: kube::Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let before = api
        .get_metadata_opt(name)
        .await?
        .and_then(|meta| meta.metadata.resource_version);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let after = api.patch(name, &params, &Patch::Apply(object)).await?;
    let after = after.meta().resource_version.as_deref();
    Ok(before.is_none() || before.as_deref() != after)
}

/// The error for an object the cluster did not take: which object, and what the API server
/// said (its message names the field at fault), or why it could not be asked.
fn refused(what: &str, namespace: &str, err: kube::Error) -> anyhow::Error {
    match err {
        kube::Error::Api(status) => {
            // The NamespaceLifecycle admission plugin's two answers: 403 for a namespace being
            // deleted, 404 for one that does not exist.
            let hint = if status.reason == "Forbidden"
                && status.message.contains("because it is being terminated")
            {
                format!(
                    "; the namespace `{namespace}` is being deleted (by an earlier `down --keep-cluster`?): run `cargo xtask dev` again once it is gone"
                )
            } else if status.reason == "NotFound" && status.message.contains("namespaces") {
                format!(
                    "; the namespace `{namespace}` is missing, run `cargo xtask dev` again to create it"
                )
            } else {
                String::new()
            };
            anyhow::anyhow!(
                "{what}: the API server refused it ({} {}): {}{hint}",
                status.code,
                status.reason,
                status.message
            )
        }
        other => anyhow::Error::new(other).context(format!(
            "{what}: could not apply it to the cluster; is the kind cluster running? `cargo xtask dev` starts it"
        )),
    }
}

#[cfg(test)]
mod tests;
