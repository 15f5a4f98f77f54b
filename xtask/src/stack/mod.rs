//! The stack as `manifests/` describes it: typed Kubernetes objects, the service graph in
//! dependency order, and the host ports (docs/design.md, "One description of the stack, read
//! strictly").
//!
//! [`Stack::load`] is the only way in: it reads the files `kustomization.yaml` lists, in that
//! order, rejects unknown fields anywhere (see [`strict`]), and cross-checks what the runtimes rely
//! on (references, security settings, ports), so that a bad edit fails here with the file and the
//! path rather than later in a cluster. Loading reads the directory and nothing else.

mod env;
mod graph;
mod kind_config;
mod policy;
#[cfg(test)]
mod policy_tests;
mod strict;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context as _, bail};
use k8s_openapi::Resource;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, PodSpec, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub(crate) use env::{check_secret_name, container_env, expand_env};
pub(crate) use graph::NAME_LABEL;
pub(crate) use kind_config::KindCluster;

/// The Secret the xtask generates, never stored in `manifests/` (docs/design.md, "Secrets
/// generated into .wander/").
pub(crate) const SECRET_NAME: &str = "wander-secrets";
/// The Secret key holding PostgreSQL's password.
pub(crate) const SECRET_POSTGRES_PASSWORD: &str = "postgres-password";
/// The Secret key holding the API's bearer token.
pub(crate) const SECRET_API_TOKEN: &str = "api-token";
/// Every key of [`SECRET_NAME`]; a reference to any other key is an error at load.
pub(crate) const SECRET_KEYS: [&str; 2] = [SECRET_POSTGRES_PASSWORD, SECRET_API_TOKEN];
/// The workload annotation listing, comma-separated, the workloads to start and wait for first.
pub(crate) const DEPENDS_ON_ANNOTATION: &str = "wander.dev/depends-on";
/// Images under this prefix are built by the xtask, which replaces their tag with a content hash.
pub(crate) const LOCAL_IMAGE_PREFIX: &str = "wander/";
/// The kustomization, which lists the manifests in apply order.
pub(crate) const KUSTOMIZATION_FILE: &str = "kustomization.yaml";
/// The kind cluster configuration (not a Kubernetes object).
pub(crate) const KIND_CONFIG_FILE: &str = kind_config::FILE;

/// A Kubernetes object of one of the kinds the stack may use.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Object {
    Namespace(Namespace),
    ConfigMap(ConfigMap),
    Service(Service),
    Deployment(Deployment),
    StatefulSet(StatefulSet),
    PersistentVolumeClaim(PersistentVolumeClaim),
    NetworkPolicy(NetworkPolicy),
}

impl Object {
    /// The object's kind, as written in `kind:`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Namespace(_) => Namespace::KIND,
            Self::ConfigMap(_) => ConfigMap::KIND,
            Self::Service(_) => Service::KIND,
            Self::Deployment(_) => Deployment::KIND,
            Self::StatefulSet(_) => StatefulSet::KIND,
            Self::PersistentVolumeClaim(_) => PersistentVolumeClaim::KIND,
            Self::NetworkPolicy(_) => NetworkPolicy::KIND,
        }
    }

    /// The object's metadata.
    pub(crate) fn metadata(&self) -> &ObjectMeta {
        match self {
            Self::Namespace(o) => &o.metadata,
            Self::ConfigMap(o) => &o.metadata,
            Self::Service(o) => &o.metadata,
            Self::Deployment(o) => &o.metadata,
            Self::StatefulSet(o) => &o.metadata,
            Self::PersistentVolumeClaim(o) => &o.metadata,
            Self::NetworkPolicy(o) => &o.metadata,
        }
    }
}

/// One object of `manifests/` with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ManifestObject {
    /// The file as shown in messages, e.g. `manifests/api.yaml`.
    pub(crate) file: String,
    /// `kind:` of the object.
    pub(crate) kind: &'static str,
    /// `metadata.name`.
    pub(crate) name: String,
    pub(crate) object: Object,
}

impl ManifestObject {
    /// `manifests/api.yaml: Deployment/api`, the prefix of every message about this object.
    pub(crate) fn describe(&self) -> String {
        format!("{}: {}/{}", self.file, self.kind, self.name)
    }
}

/// The kinds of object that run pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkloadKind {
    Deployment,
    StatefulSet,
}

impl WorkloadKind {
    /// The kind as written in `kind:`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => Deployment::KIND,
            Self::StatefulSet => StatefulSet::KIND,
        }
    }
}

/// A Deployment or StatefulSet: one service of the stack, as the runtimes start it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Workload {
    /// `metadata.name`; also the name the runtimes give the service.
    pub(crate) name: String,
    pub(crate) kind: WorkloadKind,
    /// The file as shown in messages.
    pub(crate) file: String,
    /// The pod template's labels, which Services select on.
    pub(crate) labels: BTreeMap<String, String>,
    /// `spec.replicas` (Kubernetes' default, 1, when absent).
    pub(crate) replicas: i32,
    /// The pod template's spec: containers, volumes, security settings.
    pub(crate) pod_spec: PodSpec,
    /// The workloads to start and wait for first, from [`DEPENDS_ON_ANNOTATION`].
    pub(crate) depends_on: Vec<String>,
    /// A StatefulSet's claim templates (empty for a Deployment): one volume per template name.
    pub(crate) volume_claim_templates: Vec<PersistentVolumeClaim>,
}

impl Workload {
    /// Every image its containers name in the manifests.
    pub(crate) fn images(&self) -> Vec<String> {
        self.pod_spec
            .containers
            .iter()
            .filter_map(|c| c.image.clone())
            .collect()
    }
}

/// A Service: a name other workloads reach one workload by.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StackService {
    /// `metadata.name`: the DNS name (kind) or network alias (docker).
    pub(crate) name: String,
    /// The file as shown in messages.
    pub(crate) file: String,
    /// `ClusterIP` or `NodePort`.
    pub(crate) service_type: String,
    pub(crate) selector: BTreeMap<String, String>,
    /// The one workload the selector matches (checked at load).
    pub(crate) workload: String,
    pub(crate) ports: Vec<StackServicePort>,
    /// The typed object, for the kind runtime.
    pub(crate) object: Service,
}

/// One port of a Service, with its target resolved to a container port number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StackServicePort {
    pub(crate) name: Option<String>,
    /// The port clients connect to on the Service name.
    pub(crate) port: u16,
    /// The container port it reaches (a named `targetPort` resolved in the workload).
    pub(crate) target_port: u16,
    /// The fixed node port of a `NodePort` Service.
    pub(crate) node_port: Option<u16>,
    /// `TCP`, `UDP` or `SCTP`.
    pub(crate) protocol: String,
}

/// A host port that reaches a Service, from kind-config.yaml's `extraPortMappings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPortMapping {
    /// The Service reached.
    pub(crate) service: String,
    /// The Service's port (what the docker runtime publishes the host port to).
    pub(crate) service_port: u16,
    /// The Service's nodePort (what kind maps the host port to).
    pub(crate) node_port: u16,
    pub(crate) host_port: u16,
    /// Always a loopback address (docs/design.md, "Reachable on 127.0.0.1 only"; checked at load).
    pub(crate) listen_address: IpAddr,
    pub(crate) protocol: String,
}

/// The whole stack, as read from `manifests/` and checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stack {
    /// The namespace every object lives in.
    pub(crate) namespace: String,
    /// Every object, in apply order (the kustomization's file order, then document order).
    pub(crate) objects: Vec<ManifestObject>,
    /// Deployments and StatefulSets, each after everything it depends on.
    pub(crate) workloads: Vec<Workload>,
    /// Services, in apply order.
    pub(crate) services: Vec<StackService>,
    /// ConfigMaps, in apply order.
    pub(crate) config_maps: Vec<ConfigMap>,
    /// Host ports, in kind-config.yaml's order.
    pub(crate) host_ports: Vec<HostPortMapping>,
    /// The kind cluster configuration, for creating the cluster.
    pub(crate) kind_config: KindCluster,
}

impl Stack {
    /// Reads and checks the stack in `manifests_dir`; errors name the file, the object and the
    /// path of the problem.
    pub(crate) fn load(manifests_dir: &Path) -> anyhow::Result<Self> {
        let shown = manifests_dir.file_name().map_or_else(
            || "manifests".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let label = |file: &str| format!("{shown}/{file}");

        let kustomization_label = label(KUSTOMIZATION_FILE);
        let text = read(manifests_dir, KUSTOMIZATION_FILE, &kustomization_label)?;
        let kustomization: Kustomization =
            strict::read_struct(&text, &kustomization_label, "Kustomization")?;
        kustomization.check(&kustomization_label)?;
        check_listing(manifests_dir, &kustomization, &shown)?;

        let mut objects = Vec::new();
        for file in &kustomization.resources {
            let file_label = label(file);
            let text = read(manifests_dir, file, &file_label)?;
            objects.extend(parse_file(&text, &file_label)?);
        }

        let kind_label = label(KIND_CONFIG_FILE);
        let text = read(manifests_dir, KIND_CONFIG_FILE, &kind_label)?;
        let kind_config = kind_config::parse(&text, &kind_label)?;

        graph::build(kustomization.namespace, objects, kind_config, &kind_label)
    }

    /// The workload called `name`.
    pub(crate) fn workload(&self, name: &str) -> Option<&Workload> {
        self.workloads.iter().find(|w| w.name == name)
    }

    /// The workload a user named on the command line; the error lists the names there are.
    pub(crate) fn named_workload(&self, name: &str) -> anyhow::Result<&Workload> {
        self.workload(name).ok_or_else(|| {
            let known: Vec<&str> = self.workloads.iter().map(|w| w.name.as_str()).collect();
            anyhow::anyhow!(
                "no service named {name:?}; the stack has: {}",
                known.join(", ")
            )
        })
    }

    /// The repository's own manifests, as tests read them.
    #[cfg(test)]
    pub(crate) fn of_repository() -> Self {
        Self::load(
            &crate::context::Context::for_tests()
                .root()
                .join("manifests"),
        )
        .expect("the repository's manifests load")
    }

    /// The Service `name`, or an error listing the ones the stack has.
    pub(crate) fn named_service(&self, name: &str) -> anyhow::Result<&StackService> {
        self.services
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
                anyhow::anyhow!(
                    "no Service named {name:?}; the stack has: {}",
                    known.join(", ")
                )
            })
    }

    /// The Services that select `workload`'s pods.
    pub(crate) fn services_of(&self, workload: &Workload) -> Vec<&StackService> {
        self.services
            .iter()
            .filter(|s| graph::selects(&s.selector, &workload.labels))
            .collect()
    }

    /// The ConfigMap called `name`.
    pub(crate) fn config_map(&self, name: &str) -> Option<&ConfigMap> {
        self.config_maps
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
    }

    /// The host port published for `service`, if any.
    pub(crate) fn host_port_of(&self, service: &str) -> Option<&HostPortMapping> {
        self.host_ports.iter().find(|p| p.service == service)
    }

    /// Publishes `service` on host port `port` instead, in both places a runtime reads it: the
    /// host port mapping (docker) and the kind configuration (kind, at cluster creation).
    pub(crate) fn move_host_port(&mut self, service: &str, port: u16) -> anyhow::Result<()> {
        let mappings: Vec<usize> = (0..self.host_ports.len())
            .filter(|&i| self.host_ports[i].service == service)
            .collect();
        let &[index] = mappings.as_slice() else {
            bail!(
                "the Service {service} has {} host ports in {KIND_CONFIG_FILE}; move them there",
                mappings.len()
            );
        };
        if let Some(other) = self
            .host_ports
            .iter()
            .find(|m| m.service != service && m.host_port == port)
        {
            bail!(
                "host port {port} asked for {service} is already the host port of {}; move that one too or pick another",
                other.service
            );
        }
        let mapping = &mut self.host_ports[index];
        for kind_mapping in self
            .kind_config
            .nodes
            .iter_mut()
            .flat_map(|node| node.extra_port_mappings.iter_mut())
            .filter(|m| m.container_port == mapping.node_port)
        {
            kind_mapping.host_port = port;
        }
        mapping.host_port = port;
        Ok(())
    }

    /// Runs `image` in `workload` instead of the manifests' image, in both places a runtime
    /// reads it: the workload (docker) and the object applied to the cluster (kind). Only a
    /// workload of one container can be given an image this way.
    pub(crate) fn replace_image(&mut self, workload: &str, image: &str) -> anyhow::Result<()> {
        let Some(target) = self.workloads.iter_mut().find(|w| w.name == workload) else {
            bail!("the stack has no workload {workload}");
        };
        let [container] = target.pod_spec.containers.as_mut_slice() else {
            bail!(
                "{}: {workload} has {} containers; set their images in the manifest",
                target.file,
                target.pod_spec.containers.len()
            );
        };
        container.image = Some(image.to_owned());
        let kind = target.kind.as_str();
        for object in self
            .objects
            .iter_mut()
            .filter(|o| o.kind == kind && o.name == workload)
        {
            let template = match &mut object.object {
                Object::Deployment(d) => d.spec.as_mut().map(|s| &mut s.template),
                Object::StatefulSet(s) => s.spec.as_mut().map(|s| &mut s.template),
                _ => None,
            };
            for container in template
                .and_then(|t| t.spec.as_mut())
                .into_iter()
                .flat_map(|spec| spec.containers.iter_mut())
            {
                container.image = Some(image.to_owned());
            }
        }
        Ok(())
    }
}

/// `kustomization.yaml`, as far as the stack uses it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Kustomization {
    api_version: String,
    kind: String,
    namespace: String,
    resources: Vec<String>,
}

impl Kustomization {
    fn check(&self, label: &str) -> anyhow::Result<()> {
        if self.kind != "Kustomization" || !self.api_version.starts_with("kustomize.config.k8s.io/")
        {
            bail!(
                "{label}: expected kind `Kustomization` of apiVersion `kustomize.config.k8s.io/v1beta1`, found `{}` of `{}`",
                self.kind,
                self.api_version
            );
        }
        for file in &self.resources {
            let plain = Path::new(file)
                .file_name()
                .is_some_and(|name| name == file.as_str());
            if !plain || !is_yaml(file) {
                bail!(
                    "{label}: resources: `{file}` is not a .yaml file of this directory; list only files next to the kustomization"
                );
            }
            if file == KUSTOMIZATION_FILE || file == KIND_CONFIG_FILE {
                bail!(
                    "{label}: resources: `{file}` is not a Kubernetes object; remove it from the list"
                );
            }
            if self.resources.iter().filter(|other| *other == file).count() > 1 {
                bail!("{label}: resources: `{file}` is listed twice");
            }
        }
        Ok(())
    }
}

/// Rejects a YAML file that nothing reads: it would look like part of the stack but is not.
fn check_listing(dir: &Path, kustomization: &Kustomization, shown: &str) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "could not list {}; run from a checkout of the repository",
            dir.display()
        )
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("could not list {}", dir.display()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    for name in names {
        let yaml = is_yaml(&name);
        let known = name == KUSTOMIZATION_FILE
            || name == KIND_CONFIG_FILE
            || kustomization.resources.contains(&name);
        if yaml && !known {
            bail!(
                "{shown}/{name}: not listed in {shown}/{KUSTOMIZATION_FILE}, so nothing would apply it; add it to `resources` or remove it"
            );
        }
    }
    Ok(())
}

/// Whether `name` is a YAML file by its extension.
fn is_yaml(name: &str) -> bool {
    Path::new(name)
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml"))
}

fn read(dir: &Path, file: &str, label: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(dir.join(file)).with_context(|| format!("could not read {label}"))
}

/// Reads every document of one manifest file into typed objects.
fn parse_file(text: &str, label: &str) -> anyhow::Result<Vec<ManifestObject>> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(text)
        .map_err(|err| anyhow::anyhow!("{label}: {}", strict::yaml_error(&err)))?;
    documents
        .iter()
        .enumerate()
        .map(|(index, document)| parse_object(text, index, document, label))
        .collect()
}

fn parse_object(
    text: &str,
    index: usize,
    document: &Value,
    label: &str,
) -> anyhow::Result<ManifestObject> {
    let field = |name: &str| document.get(name).and_then(Value::as_str);
    let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
        bail!(
            "{label}: document {}: every object needs string fields `apiVersion` and `kind`",
            index + 1
        );
    };
    let name = document
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty());
    let Some(name) = name else {
        bail!(
            "{label}: {kind} (document {}): metadata.name: missing; every object needs a name",
            index + 1
        );
    };
    let what = format!("{label}: {kind}/{name}");
    let object = match (api_version, kind) {
        (Namespace::API_VERSION, Namespace::KIND) => {
            Object::Namespace(typed(text, index, document, &what)?)
        }
        (ConfigMap::API_VERSION, ConfigMap::KIND) => {
            Object::ConfigMap(typed(text, index, document, &what)?)
        }
        (Service::API_VERSION, Service::KIND) => {
            Object::Service(typed(text, index, document, &what)?)
        }
        (Deployment::API_VERSION, Deployment::KIND) => {
            Object::Deployment(typed(text, index, document, &what)?)
        }
        (StatefulSet::API_VERSION, StatefulSet::KIND) => {
            Object::StatefulSet(typed(text, index, document, &what)?)
        }
        (PersistentVolumeClaim::API_VERSION, PersistentVolumeClaim::KIND) => {
            Object::PersistentVolumeClaim(typed(text, index, document, &what)?)
        }
        (NetworkPolicy::API_VERSION, NetworkPolicy::KIND) => {
            Object::NetworkPolicy(typed(text, index, document, &what)?)
        }
        _ => bail!(
            "{what}: kind `{kind}` of apiVersion `{api_version}` is not one the stack supports; use a Namespace, ConfigMap, Service, PersistentVolumeClaim (v1), a Deployment or StatefulSet (apps/v1), or a NetworkPolicy (networking.k8s.io/v1)"
        ),
    };
    Ok(ManifestObject {
        file: label.to_owned(),
        kind: object.kind(),
        name: name.to_owned(),
        object,
    })
}

/// Reads `document` as `T` and rejects anything the typed object does not keep.
fn typed<T: DeserializeOwned + Serialize>(
    text: &str,
    index: usize,
    document: &Value,
    what: &str,
) -> anyhow::Result<T> {
    let object: T = serde_json::from_value(document.clone()).map_err(|err| {
        // serde_json knows no positions; the YAML reader does, when given the document alone.
        let located = strict::locate_type_error::<T>(text, index);
        anyhow::anyhow!("{what}: {}", located.unwrap_or_else(|| err.to_string()))
    })?;
    let read = serde_json::to_value(&object)
        .with_context(|| format!("{what}: could not write the object back out"))?;
    let mismatches = strict::compare(document, &read);
    if !mismatches.is_empty() {
        let listed: Vec<String> = mismatches.iter().map(ToString::to_string).collect();
        bail!("{what}: {}", listed.join("; "));
    }
    Ok(object)
}
