//! The service graph: workloads in dependency order, Services resolved to workloads and ports,
//! host ports, and the cross-checks the runtimes rely on.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, anyhow, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    DEPENDS_ON_ANNOTATION, HostPortMapping, KindCluster, LOCAL_IMAGE_PREFIX, ManifestObject,
    Object, SECRET_KEYS, SECRET_NAME, Stack, StackService, StackServicePort, Workload,
    WorkloadKind,
};

/// The label every selector uses, and every Service, workload and pod carries.
pub(crate) const NAME_LABEL: &str = "app.kubernetes.io/name";
/// Labels every object carries, with their required value (`None`: any non-empty value).
const COMMON_LABELS: [(&str, Option<&str>); 2] = [
    ("app.kubernetes.io/part-of", Some("wander")),
    ("app.kubernetes.io/managed-by", Some("wander-xtask")),
];
/// Labels Services, workloads and pod templates carry in addition.
const COMPONENT_LABELS: [(&str, Option<&str>); 2] =
    [(NAME_LABEL, None), ("app.kubernetes.io/component", None)];
/// The range Kubernetes allocates node ports from by default.
const NODE_PORTS: std::ops::RangeInclusive<i32> = 30000..=32767;

/// Whether `selector` (non-empty) selects pods labelled `labels`.
pub(crate) fn selects(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Builds the checked [`Stack`] from the parsed objects and the kind configuration.
pub(crate) fn build(
    namespace: String,
    objects: Vec<ManifestObject>,
    kind_config: KindCluster,
    kind_label: &str,
) -> anyhow::Result<Stack> {
    check_namespace(&namespace, &objects)?;
    check_unique(&objects)?;
    let config_maps: Vec<ConfigMap> = objects
        .iter()
        .filter_map(|o| match &o.object {
            Object::ConfigMap(c) => Some(c.clone()),
            _ => None,
        })
        .collect();

    let mut workloads = Vec::new();
    for object in &objects {
        check_labels(object)?;
        if let Some(workload) = workload_of(object)? {
            check_pod(object, &workload, &config_maps)?;
            workloads.push(workload);
        }
    }
    let workloads = order(workloads)?;

    let mut services = Vec::new();
    for object in &objects {
        if let Object::Service(service) = &object.object {
            services.push(resolve_service(object, service, &workloads)?);
        }
    }
    let host_ports = host_ports(&services, &kind_config, kind_label)?;
    super::policy::check(&objects, &namespace, &workloads, &services, &host_ports)?;

    Ok(Stack {
        namespace,
        objects,
        workloads,
        services,
        config_maps,
        host_ports,
        kind_config,
    })
}

fn check_namespace(namespace: &str, objects: &[ManifestObject]) -> anyhow::Result<()> {
    let namespaces: Vec<&ManifestObject> = objects
        .iter()
        .filter(|o| matches!(o.object, Object::Namespace(_)))
        .collect();
    match namespaces.as_slice() {
        [] => bail!(
            "the manifests define no Namespace; add namespace.yaml with the Namespace `{namespace}` to the kustomization"
        ),
        [only] if only.name == namespace => {}
        [only] => bail!(
            "{}: the kustomization's namespace is `{namespace}`; name the Namespace the same",
            only.describe()
        ),
        [_, second, ..] => bail!(
            "{}: a second Namespace; the stack lives in one, `{namespace}`",
            second.describe()
        ),
    }
    for object in objects {
        if let Some(other) = object.object.metadata().namespace.as_deref()
            && other != namespace
            && !matches!(object.object, Object::Namespace(_))
        {
            bail!(
                "{}: metadata.namespace: `{other}` differs from the kustomization's `{namespace}`; remove the field",
                object.describe()
            );
        }
    }
    Ok(())
}

fn check_unique(objects: &[ManifestObject]) -> anyhow::Result<()> {
    let mut seen = BTreeMap::new();
    for object in objects {
        if let Some(first) = seen.insert((object.kind, object.name.as_str()), &object.file) {
            bail!(
                "{}: defined twice (also in {first}); keep one",
                object.describe()
            );
        }
    }
    Ok(())
}

fn check_labels(object: &ManifestObject) -> anyhow::Result<()> {
    let mut required = COMMON_LABELS.to_vec();
    if matches!(
        object.object,
        Object::Service(_) | Object::Deployment(_) | Object::StatefulSet(_)
    ) {
        required.extend(COMPONENT_LABELS);
    }
    require_labels(
        &object.describe(),
        "metadata.labels",
        object.object.metadata(),
        &required,
    )
}

fn require_labels(
    what: &str,
    path: &str,
    metadata: &ObjectMeta,
    required: &[(&str, Option<&str>)],
) -> anyhow::Result<()> {
    let labels = metadata.labels.clone().unwrap_or_default();
    for (key, value) in required {
        match (labels.get(*key), value) {
            (None, Some(value)) => bail!("{what}: {path}: add `{key}: {value}`"),
            (None, None) => bail!("{what}: {path}: add the label `{key}`"),
            (Some(found), Some(value)) if found != value => {
                bail!("{what}: {path}[\"{key}\"]: must be `{value}`, not `{found}`");
            }
            (Some(found), None) if found.is_empty() => {
                bail!("{what}: {path}[\"{key}\"]: must not be empty")
            }
            _ => {}
        }
    }
    Ok(())
}

/// The workload an object defines, when it is a Deployment or StatefulSet.
fn workload_of(object: &ManifestObject) -> anyhow::Result<Option<Workload>> {
    let what = object.describe();
    let missing_spec = || anyhow!("{what}: spec: missing; a workload needs a pod template");
    let (kind, replicas, selector, template, claims) = match &object.object {
        Object::Deployment(d) => {
            let spec = d.spec.as_ref().ok_or_else(missing_spec)?;
            (
                WorkloadKind::Deployment,
                spec.replicas,
                &spec.selector,
                &spec.template,
                Vec::new(),
            )
        }
        Object::StatefulSet(s) => {
            let spec = s.spec.as_ref().ok_or_else(missing_spec)?;
            let claims = spec.volume_claim_templates.clone().unwrap_or_default();
            (
                WorkloadKind::StatefulSet,
                spec.replicas,
                &spec.selector,
                &spec.template,
                claims,
            )
        }
        _ => return Ok(None),
    };
    let template_metadata = template.metadata.clone().unwrap_or_default();
    let mut required = COMMON_LABELS.to_vec();
    required.extend(COMPONENT_LABELS);
    require_labels(
        &what,
        "spec.template.metadata.labels",
        &template_metadata,
        &required,
    )?;
    let labels = template_metadata.labels.unwrap_or_default();
    check_selector(&what, selector, &labels)?;
    let pod_spec = template
        .spec
        .clone()
        .ok_or_else(|| anyhow!("{what}: spec.template.spec: missing; add the pod's containers"))?;
    let depends_on = depends_on(object.object.metadata());
    let replicas = replicas.unwrap_or(1);
    if replicas < 0 {
        bail!("{what}: spec.replicas: must not be negative");
    }
    for (index, claim) in claims.iter().enumerate() {
        if claim.metadata.name.as_deref().is_none_or(str::is_empty) {
            bail!(
                "{what}: spec.volumeClaimTemplates[{index}].metadata.name: missing; the name is what volumeMounts refer to"
            );
        }
    }
    Ok(Some(Workload {
        name: object.name.clone(),
        kind,
        file: object.file.clone(),
        labels,
        replicas,
        pod_spec,
        depends_on,
        volume_claim_templates: claims,
    }))
}

fn check_selector(
    what: &str,
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    if selector
        .match_expressions
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        bail!(
            "{what}: spec.selector.matchExpressions: not supported by the stack's runtimes; select with matchLabels on `{NAME_LABEL}`"
        );
    }
    let match_labels = selector.match_labels.clone().unwrap_or_default();
    if !match_labels.contains_key(NAME_LABEL) {
        bail!("{what}: spec.selector.matchLabels: select on `{NAME_LABEL}`");
    }
    if !selects(&match_labels, labels) {
        bail!(
            "{what}: spec.selector.matchLabels: does not match spec.template.metadata.labels; the pods would not belong to their workload"
        );
    }
    Ok(())
}

/// The workloads named in the depends-on annotation, without blanks or repeats.
fn depends_on(metadata: &ObjectMeta) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let listed = metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEPENDS_ON_ANNOTATION))
        .map_or("", String::as_str);
    for name in listed.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    names
}

/// Orders workloads so that each comes after everything it depends on; among workloads that are
/// free to start, apply order decides.
fn order(workloads: Vec<Workload>) -> anyhow::Result<Vec<Workload>> {
    let names: Vec<&str> = workloads.iter().map(|w| w.name.as_str()).collect();
    let describe = |w: &Workload| format!("{}: {}/{}", w.file, w.kind.as_str(), w.name);
    for workload in &workloads {
        for dependency in &workload.depends_on {
            if !names.contains(&dependency.as_str()) {
                bail!(
                    "{}: metadata.annotations[\"{DEPENDS_ON_ANNOTATION}\"]: `{dependency}` is no Deployment or StatefulSet of the stack (there are: {}); fix the name or add the workload",
                    describe(workload),
                    names.join(", ")
                );
            }
        }
    }
    let mut done: Vec<bool> = vec![false; workloads.len()];
    let mut ordered: Vec<usize> = Vec::with_capacity(workloads.len());
    while ordered.len() < workloads.len() {
        let next = (0..workloads.len()).find(|&i| {
            !done[i]
                && workloads[i]
                    .depends_on
                    .iter()
                    .all(|d| names.iter().position(|n| n == d).is_some_and(|j| done[j]))
        });
        let Some(next) = next else {
            let stuck: Vec<usize> = (0..workloads.len()).filter(|&i| !done[i]).collect();
            let (first, cycle) = describe_cycle(&workloads, &names, &stuck);
            bail!(
                "{}: metadata.annotations[\"{DEPENDS_ON_ANNOTATION}\"]: dependency cycle {cycle}; remove one of these dependencies",
                describe(&workloads[first])
            );
        };
        done[next] = true;
        ordered.push(next);
    }
    let mut slots: Vec<Option<Workload>> = workloads.into_iter().map(Some).collect();
    Ok(ordered
        .into_iter()
        .filter_map(|i| slots[i].take())
        .collect())
}

/// One loop among the workloads that could not be ordered: where it starts, and
/// `api -> web -> api`.
fn describe_cycle(workloads: &[Workload], names: &[&str], stuck: &[usize]) -> (usize, String) {
    let mut path: Vec<usize> = Vec::new();
    let mut current = stuck[0];
    loop {
        if let Some(start) = path.iter().position(|&i| i == current) {
            let mut cycle: Vec<&str> = path[start..].iter().map(|&i| names[i]).collect();
            cycle.push(names[current]);
            return (current, cycle.join(" -> "));
        }
        path.push(current);
        // Every stuck workload depends on at least one other stuck workload.
        current = workloads[current]
            .depends_on
            .iter()
            .filter_map(|d| names.iter().position(|n| n == d))
            .find(|j| stuck.contains(j))
            .unwrap_or(current);
    }
}

/// Where in a pod spec a container sits, for messages.
fn container_path(init: bool, index: usize) -> String {
    let list = if init { "initContainers" } else { "containers" };
    format!("spec.template.spec.{list}[{index}]")
}

/// Restricted pod security, resources and references of one workload's pod.
fn check_pod(
    object: &ManifestObject,
    workload: &Workload,
    config_maps: &[ConfigMap],
) -> anyhow::Result<()> {
    let what = object.describe();
    let spec = &workload.pod_spec;
    let pod = "spec.template.spec";
    if spec.automount_service_account_token != Some(false) {
        bail!(
            "{what}: {pod}.automountServiceAccountToken: must be false; the stack's pods never call the Kubernetes API"
        );
    }
    for (field, value) in [
        ("hostNetwork", spec.host_network),
        ("hostPID", spec.host_pid),
        ("hostIPC", spec.host_ipc),
    ] {
        if value == Some(true) {
            bail!("{what}: {pod}.{field}: must not be true under restricted pod security");
        }
    }
    check_pod_security(&what, spec)?;

    let volumes = spec.volumes.clone().unwrap_or_default();
    let mut volume_names = BTreeSet::new();
    for (index, volume) in volumes.iter().enumerate() {
        let at = format!("{pod}.volumes[{index}]");
        if !volume_names.insert(volume.name.as_str()) {
            bail!("{what}: {at}.name: `{}` is used twice", volume.name);
        }
        if volume.host_path.is_some() {
            bail!(
                "{what}: {at}.hostPath: not allowed under restricted pod security; use an emptyDir or a volume claim"
            );
        }
        if let Some(source) = &volume.config_map {
            let keys: Vec<&str> = source
                .items
                .iter()
                .flatten()
                .map(|i| i.key.as_str())
                .collect();
            check_config_map_ref(
                &what,
                &format!("{at}.configMap"),
                config_maps,
                &source.name,
                &keys,
            )?;
        }
        if let Some(source) = &volume.secret {
            let keys: Vec<&str> = source
                .items
                .iter()
                .flatten()
                .map(|i| i.key.as_str())
                .collect();
            check_secret_ref(
                &what,
                &format!("{at}.secret.secretName"),
                source.secret_name.as_deref().unwrap_or(""),
                &keys,
            )?;
        }
    }
    let claims: Vec<&str> = workload
        .volume_claim_templates
        .iter()
        .filter_map(|c| c.metadata.name.as_deref())
        .collect();
    let empty_dirs: Vec<&str> = volumes
        .iter()
        .filter(|v| v.empty_dir.is_some())
        .map(|v| v.name.as_str())
        .collect();

    if spec.containers.is_empty() {
        bail!("{what}: {pod}.containers: empty; add the workload's container");
    }
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (container_path(true, i), c));
    let main = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (container_path(false, i), c));
    for (at, container) in init.chain(main) {
        let is_init = at.contains("initContainers");
        let at = format!("{what}: {at}");
        check_container(&at, container, is_init)?;
        for (index, mount) in container.volume_mounts.iter().flatten().enumerate() {
            let name = mount.name.as_str();
            if !volume_names.contains(name) && !claims.contains(&name) {
                bail!(
                    "{at}.volumeMounts[{index}].name: `{name}` is neither a volume of the pod nor a volumeClaimTemplate; add it or fix the name"
                );
            }
        }
        let tmp = container
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path.trim_end_matches('/') == "/tmp");
        if !tmp.is_some_and(|m| empty_dirs.contains(&m.name.as_str())) {
            bail!("{at}.volumeMounts: mount an emptyDir at /tmp; the root filesystem is read-only");
        }
        for (index, env) in container.env.iter().flatten().enumerate() {
            let Some(source) = &env.value_from else {
                continue;
            };
            let env_at = format!("env[{index}].valueFrom");
            if let Some(selector) = &source.secret_key_ref {
                check_secret_ref(
                    &at,
                    &format!("{env_at}.secretKeyRef"),
                    &selector.name,
                    &[&selector.key],
                )?;
            }
            if let Some(selector) = &source.config_map_key_ref {
                check_config_map_ref(
                    &at,
                    &format!("{env_at}.configMapKeyRef"),
                    config_maps,
                    &selector.name,
                    &[&selector.key],
                )?;
            }
        }
        for (index, source) in container.env_from.iter().flatten().enumerate() {
            if let Some(reference) = &source.config_map_ref {
                check_config_map_ref(
                    &at,
                    &format!("envFrom[{index}].configMapRef"),
                    config_maps,
                    &reference.name,
                    &[],
                )?;
            }
            if let Some(reference) = &source.secret_ref {
                check_secret_ref(
                    &at,
                    &format!("envFrom[{index}].secretRef"),
                    &reference.name,
                    &[],
                )?;
            }
        }
    }
    Ok(())
}

fn check_pod_security(what: &str, spec: &PodSpec) -> anyhow::Result<()> {
    let at = "spec.template.spec.securityContext";
    let context = spec.security_context.clone().unwrap_or_default();
    if context.run_as_non_root != Some(true) {
        bail!("{what}: {at}.runAsNonRoot: must be true under restricted pod security");
    }
    if context.run_as_user.is_none_or(|uid| uid <= 0) {
        bail!(
            "{what}: {at}.runAsUser: set a numeric non-root user id, so the kubelet can verify it without reading the image"
        );
    }
    if context.run_as_group.is_none_or(|gid| gid < 0) {
        bail!("{what}: {at}.runAsGroup: set a numeric group id");
    }
    let seccomp = context.seccomp_profile.as_ref().map(|p| p.type_.as_str());
    if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
        bail!(
            "{what}: {at}.seccompProfile.type: must be RuntimeDefault under restricted pod security"
        );
    }
    Ok(())
}

/// `at` is the container's full prefix, e.g. `manifests/api.yaml: Deployment/api: spec...[0]`.
fn check_container(at: &str, container: &Container, is_init: bool) -> anyhow::Result<()> {
    let image = container.image.as_deref().unwrap_or("");
    if image.is_empty() {
        bail!("{at}.image: missing");
    }
    if image.starts_with(LOCAL_IMAGE_PREFIX)
        && !matches!(
            container.image_pull_policy.as_deref(),
            Some("IfNotPresent" | "Never")
        )
    {
        bail!(
            "{at}.imagePullPolicy: must be IfNotPresent for `{image}`, which is built locally and never pulled"
        );
    }
    let security = container.security_context.clone().unwrap_or_default();
    let restricted = "under restricted pod security";
    if security.allow_privilege_escalation != Some(false) {
        bail!("{at}.securityContext.allowPrivilegeEscalation: must be false {restricted}");
    }
    if security.privileged == Some(true) {
        bail!("{at}.securityContext.privileged: must not be true {restricted}");
    }
    let capabilities = security.capabilities.clone().unwrap_or_default();
    if !capabilities.drop.iter().flatten().any(|c| c == "ALL") {
        bail!("{at}.securityContext.capabilities.drop: must include ALL {restricted}");
    }
    if capabilities.add.as_ref().is_some_and(|add| !add.is_empty()) {
        bail!(
            "{at}.securityContext.capabilities.add: the stack's containers need no capabilities; remove it"
        );
    }
    if security.read_only_root_filesystem != Some(true) {
        bail!(
            "{at}.securityContext.readOnlyRootFilesystem: must be true; mount an emptyDir where the process writes"
        );
    }
    if security.run_as_non_root == Some(false) || security.run_as_user == Some(0) {
        bail!("{at}.securityContext: must not run as root {restricted}");
    }
    let resources = container.resources.clone().unwrap_or_default();
    for (field, values) in [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ] {
        for resource in ["cpu", "memory"] {
            if !values.as_ref().is_some_and(|v| v.contains_key(resource)) {
                bail!(
                    "{at}.resources.{field}.{resource}: missing; every container states its requests and limits"
                );
            }
        }
    }
    if !is_init && container.readiness_probe.is_none() {
        bail!(
            "{at}.readinessProbe: missing; the runtimes wait for it before starting what depends on this workload"
        );
    }
    let port_names: Vec<&str> = container
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.name.as_deref())
        .collect();
    for (field, probe) in [
        ("readinessProbe", &container.readiness_probe),
        ("livenessProbe", &container.liveness_probe),
        ("startupProbe", &container.startup_probe),
    ] {
        let Some(probe) = probe else { continue };
        let ports = [
            ("httpGet", probe.http_get.as_ref().map(|a| &a.port)),
            ("tcpSocket", probe.tcp_socket.as_ref().map(|a| &a.port)),
        ];
        for (action, port) in ports {
            if let Some(IntOrString::String(name)) = port
                && !port_names.contains(&name.as_str())
            {
                bail!("{at}.{field}.{action}.port: `{name}` names no port of the container");
            }
        }
        if probe.exec.is_none()
            && probe.http_get.is_none()
            && probe.tcp_socket.is_none()
            && probe.grpc.is_none()
        {
            bail!("{at}.{field}: set one of exec, httpGet, tcpSocket or grpc");
        }
    }
    Ok(())
}

fn check_secret_ref(at: &str, path: &str, name: &str, keys: &[&str]) -> anyhow::Result<()> {
    if name != SECRET_NAME {
        bail!(
            "{at}.{path}: the Secret `{name}` does not exist; the stack's one Secret is `{SECRET_NAME}`"
        );
    }
    for key in keys {
        if !SECRET_KEYS.contains(key) {
            bail!(
                "{at}.{path}: `{SECRET_NAME}` has no key `{key}` (it has: {})",
                SECRET_KEYS.join(", ")
            );
        }
    }
    Ok(())
}

fn check_config_map_ref(
    at: &str,
    path: &str,
    config_maps: &[ConfigMap],
    name: &str,
    keys: &[&str],
) -> anyhow::Result<()> {
    let Some(config_map) = config_maps
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))
    else {
        bail!("{at}.{path}: the ConfigMap `{name}` is not defined in the manifests");
    };
    for key in keys {
        let present = config_map
            .data
            .as_ref()
            .is_some_and(|d| d.contains_key(*key))
            || config_map
                .binary_data
                .as_ref()
                .is_some_and(|d| d.contains_key(*key));
        if !present {
            bail!(
                "{at}.{path}: the ConfigMap `{name}` has no key `{key}`; add it to its data or fix the name"
            );
        }
    }
    Ok(())
}

fn resolve_service(
    object: &ManifestObject,
    service: &Service,
    workloads: &[Workload],
) -> anyhow::Result<StackService> {
    let what = object.describe();
    let spec = service.spec.clone().unwrap_or_default();
    let selector = spec.selector.clone().unwrap_or_default();
    if !selector.contains_key(NAME_LABEL) {
        bail!("{what}: spec.selector: select on `{NAME_LABEL}`");
    }
    let selected: Vec<&Workload> = workloads
        .iter()
        .filter(|w| selects(&selector, &w.labels))
        .collect();
    let workload = match selected.as_slice() {
        [one] => *one,
        [] => bail!("{what}: spec.selector: selects no workload's pods; fix the labels"),
        many => bail!(
            "{what}: spec.selector: selects the pods of {}; a Service reaches exactly one workload",
            many.iter()
                .map(|w| w.name.as_str())
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    };
    let service_type = spec.type_.clone().unwrap_or_else(|| "ClusterIP".to_owned());
    if !matches!(service_type.as_str(), "ClusterIP" | "NodePort") {
        bail!(
            "{what}: spec.type: `{service_type}` is not supported; use ClusterIP, or NodePort with a kind port mapping"
        );
    }
    let container_ports: Vec<(&str, i32)> = workload
        .pod_spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| Some((p.name.as_deref()?, p.container_port)))
        .collect();
    let ports = spec.ports.clone().unwrap_or_default();
    if ports.is_empty() {
        bail!("{what}: spec.ports: empty; list the port clients connect to");
    }
    let mut resolved = Vec::new();
    for (index, port) in ports.iter().enumerate() {
        let at = format!("{what}: spec.ports[{index}]");
        let number = |value: i32, field: &str| {
            u16::try_from(value)
                .ok()
                .filter(|p| *p > 0)
                .with_context(|| format!("{at}.{field}: {value} is not a port number"))
        };
        let target_port = match &port.target_port {
            None => number(port.port, "port")?,
            Some(IntOrString::Int(value)) => number(*value, "targetPort")?,
            Some(IntOrString::String(name)) => {
                let found = container_ports
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, p)| *p);
                let Some(found) = found else {
                    bail!(
                        "{at}.targetPort: `{name}` names no container port of {}",
                        workload.name
                    );
                };
                number(found, "targetPort")?
            }
        };
        let node_port = match (service_type.as_str(), port.node_port) {
            ("NodePort", Some(value)) if NODE_PORTS.contains(&value) => {
                Some(number(value, "nodePort")?)
            }
            ("NodePort", Some(value)) => bail!("{at}.nodePort: {value} is outside 30000-32767"),
            ("NodePort", None) => bail!(
                "{at}.nodePort: set a fixed node port, which kind-config.yaml maps to the host"
            ),
            (_, Some(_)) => bail!("{at}.nodePort: only a NodePort Service has one"),
            (_, None) => None,
        };
        resolved.push(StackServicePort {
            name: port.name.clone(),
            port: number(port.port, "port")?,
            target_port,
            node_port,
            protocol: port.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
        });
    }
    Ok(StackService {
        name: object.name.clone(),
        file: object.file.clone(),
        service_type,
        selector,
        workload: workload.name.clone(),
        ports: resolved,
        object: service.clone(),
    })
}

/// Pairs kind's port mappings with NodePorts: each mapping must reach a NodePort, on loopback, and
/// each NodePort must be mapped.
fn host_ports(
    services: &[StackService],
    kind_config: &KindCluster,
    kind_label: &str,
) -> anyhow::Result<Vec<HostPortMapping>> {
    let node_ports: Vec<(&StackService, &StackServicePort, u16)> = services
        .iter()
        .flat_map(|s| {
            s.ports
                .iter()
                .filter_map(move |p| Some((s, p, p.node_port?)))
        })
        .collect();
    let known = node_ports
        .iter()
        .map(|(s, _, n)| format!("{} {n}", s.name))
        .collect::<Vec<_>>()
        .join(", ");
    let mut host_ports: Vec<HostPortMapping> = Vec::new();
    for (node_index, node) in kind_config.nodes.iter().enumerate() {
        for (index, mapping) in node.extra_port_mappings.iter().enumerate() {
            let at =
                format!("{kind_label}: Cluster: nodes[{node_index}].extraPortMappings[{index}]");
            let Some((service, port, node_port)) = node_ports
                .iter()
                .find(|(_, _, n)| *n == mapping.container_port)
            else {
                bail!(
                    "{at}.containerPort: {} is no Service's nodePort (there are: {known}); map a nodePort",
                    mapping.container_port
                );
            };
            if mapping.protocol() != port.protocol {
                bail!(
                    "{at}.protocol: {} differs from the Service port's {}",
                    mapping.protocol(),
                    port.protocol
                );
            }
            let Some(listen_address) = mapping.listen_address.filter(std::net::IpAddr::is_loopback)
            else {
                bail!(
                    "{at}.listenAddress: set 127.0.0.1; the stack is reachable from this machine only"
                );
            };
            if let Some(other) = host_ports.iter().find(|p| p.host_port == mapping.host_port) {
                bail!(
                    "{at}.hostPort: {} is already mapped to {}",
                    mapping.host_port,
                    other.service
                );
            }
            host_ports.push(HostPortMapping {
                service: service.name.clone(),
                service_port: port.port,
                node_port: *node_port,
                host_port: mapping.host_port,
                listen_address,
                protocol: port.protocol.clone(),
            });
        }
    }
    for (service, port, node_port) in &node_ports {
        if !host_ports.iter().any(|p| p.node_port == *node_port) {
            let index = service.ports.iter().position(|p| p == *port).unwrap_or(0);
            bail!(
                "{}: Service/{}: spec.ports[{index}].nodePort: {node_port} has no extraPortMappings entry in {kind_label}; add one with containerPort: {node_port}",
                service.file,
                service.name
            );
        }
    }
    Ok(host_ports)
}
