//! The pod-spec fields the docker runtime carries out, and the refusal of every other one.
//!
//! The manifests are read strictly against the Kubernetes schema, so any field of a PodSpec can
//! reach the docker runtime. A field it does not act on must not pass silently (the pod would
//! behave differently from the cluster's), so each field set in a pod template is held against
//! the list below, which docs/design.md, "The docker runtime, field by field", explains row by
//! row: a field not listed, or a value the runtime cannot honour, is refused with its path and
//! what to do instead.

use anyhow::bail;
use k8s_openapi::api::core::v1::PodSpec;
use serde_json::Value;

/// Every field the docker runtime acts on, as a path from the pod spec with `[]` for a list's
/// items. Any field under one of these is accepted with it.
const SUPPORTED: &[&str] = &[
    "automountServiceAccountToken",
    "terminationGracePeriodSeconds",
    "restartPolicy",
    "securityContext.runAsNonRoot",
    "securityContext.runAsUser",
    "securityContext.runAsGroup",
    "securityContext.fsGroup",
    "securityContext.fsGroupChangePolicy",
    "securityContext.supplementalGroups",
    "securityContext.seccompProfile.type",
    "volumes[].name",
    "volumes[].emptyDir.medium",
    "volumes[].emptyDir.sizeLimit",
    "volumes[].persistentVolumeClaim.claimName",
    "volumes[].persistentVolumeClaim.readOnly",
    "volumes[].configMap.name",
    "volumes[].configMap.items",
    "volumes[].configMap.defaultMode",
    "volumes[].secret.secretName",
    "volumes[].secret.items",
    "volumes[].secret.defaultMode",
    "containers[].name",
    "containers[].image",
    "containers[].imagePullPolicy",
    "containers[].command",
    "containers[].args",
    "containers[].workingDir",
    "containers[].ports[].name",
    "containers[].ports[].containerPort",
    "containers[].ports[].protocol",
    "containers[].env[].name",
    "containers[].env[].value",
    "containers[].env[].valueFrom.configMapKeyRef",
    "containers[].env[].valueFrom.secretKeyRef",
    "containers[].envFrom[].prefix",
    "containers[].envFrom[].configMapRef",
    "containers[].envFrom[].secretRef",
    "containers[].resources.requests",
    "containers[].resources.limits.cpu",
    "containers[].resources.limits.memory",
    "containers[].securityContext.allowPrivilegeEscalation",
    "containers[].securityContext.privileged",
    "containers[].securityContext.readOnlyRootFilesystem",
    "containers[].securityContext.runAsNonRoot",
    "containers[].securityContext.runAsUser",
    "containers[].securityContext.runAsGroup",
    "containers[].securityContext.capabilities.drop",
    "containers[].securityContext.seccompProfile.type",
    "containers[].volumeMounts[].name",
    "containers[].volumeMounts[].mountPath",
    "containers[].volumeMounts[].readOnly",
    "containers[].volumeMounts[].subPath",
];

/// The fields of a probe the runtime acts on (under each of the three probes).
const PROBE_FIELDS: &[&str] = &[
    "exec.command",
    "httpGet.path",
    "httpGet.port",
    "httpGet.scheme",
    "tcpSocket.port",
    "initialDelaySeconds",
    "periodSeconds",
    "timeoutSeconds",
    "successThreshold",
    "failureThreshold",
];

/// Refuses the first field of `spec` the docker runtime does not carry out, or a value of a
/// supported field that it cannot honour.
pub(crate) fn check(spec: &PodSpec) -> anyhow::Result<()> {
    let value = serde_json::to_value(spec)?;
    walk(&value, &[], "spec.template.spec")?;
    check_values(spec)
}

/// Whether the field at `pattern` (its `[]` form) is supported: a listed field, a field under
/// one, or a step on the way to one.
fn allowed(pattern: &str) -> Allowed {
    let probes = ["startupProbe", "livenessProbe", "readinessProbe"];
    let listed = SUPPORTED
        .iter()
        .map(|f| (*f).to_owned())
        .chain(probes.iter().flat_map(|probe| {
            PROBE_FIELDS
                .iter()
                .map(move |field| format!("containers[].{probe}.{field}"))
        }));
    let mut on_the_way = false;
    for field in listed {
        if pattern == field
            || pattern.starts_with(&format!("{field}."))
            || pattern.starts_with(&format!("{field}[]"))
        {
            return Allowed::Yes;
        }
        if field.starts_with(&format!("{pattern}.")) || field.starts_with(&format!("{pattern}[]")) {
            on_the_way = true;
        }
    }
    if on_the_way {
        Allowed::OnTheWay
    } else {
        Allowed::No
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Allowed {
    Yes,
    OnTheWay,
    No,
}

fn walk(value: &Value, pattern: &[String], shown: &str) -> anyhow::Result<()> {
    match value {
        Value::Object(fields) => {
            for (key, inner) in fields {
                let mut step = pattern.to_vec();
                step.push(key.clone());
                let joined = join(&step);
                let at = format!("{shown}.{key}");
                match allowed(&joined) {
                    Allowed::Yes => {}
                    Allowed::OnTheWay => walk(inner, &step, &at)?,
                    Allowed::No => bail!(
                        "{at}: the docker runtime does not carry out this field; remove it, or run this stack on a cluster (`--runtime kind`). docs/design.md (\"The docker runtime, field by field\") lists what the docker runtime supports"
                    ),
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let mut step = pattern.to_vec();
                if let Some(last) = step.last_mut() {
                    last.push_str("[]");
                }
                walk(item, &step, &format!("{shown}[{index}]"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn join(pattern: &[String]) -> String {
    pattern.join(".")
}

/// Values of supported fields that the docker runtime cannot honour.
fn check_values(spec: &PodSpec) -> anyhow::Result<()> {
    let at = "spec.template.spec";
    if let Some(policy) = spec.restart_policy.as_deref()
        && policy != "Always"
    {
        bail!(
            "{at}.restartPolicy: {policy} is not allowed for a Deployment or StatefulSet; use Always"
        );
    }
    let seccomp = |sc: Option<&str>, path: &str| -> anyhow::Result<()> {
        match sc {
            None | Some("RuntimeDefault") => Ok(()),
            Some(other) => bail!(
                "{path}.seccompProfile.type: {other} is not carried out by the docker runtime, which applies the engine's default profile (RuntimeDefault); use RuntimeDefault"
            ),
        }
    };
    let pod_sc = spec.security_context.as_ref();
    seccomp(
        pod_sc
            .and_then(|s| s.seccomp_profile.as_ref())
            .map(|p| p.type_.as_str()),
        &format!("{at}.securityContext"),
    )?;
    if let Some(policy) = pod_sc.and_then(|s| s.fs_group_change_policy.as_deref())
        && !matches!(policy, "Always" | "OnRootMismatch")
    {
        bail!("{at}.securityContext.fsGroupChangePolicy: {policy} is not Always or OnRootMismatch");
    }
    for (index, volume) in spec.volumes.iter().flatten().enumerate() {
        if let Some(empty_dir) = &volume.empty_dir
            && empty_dir.size_limit.is_some()
            && empty_dir.medium.as_deref() != Some("Memory")
        {
            bail!(
                "{at}.volumes[{index}].emptyDir.sizeLimit: the docker runtime cannot limit an emptyDir on disk (the kubelet evicts the pod past it); remove the limit, or add `medium: Memory` for a tmpfs of that size"
            );
        }
    }
    let empty_dirs: Vec<&str> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.empty_dir.is_some())
        .map(|v| v.name.as_str())
        .collect();
    for (index, container) in spec.containers.iter().enumerate() {
        let at = format!("{at}.containers[{index}]");
        for (mount_index, mount) in container.volume_mounts.iter().flatten().enumerate() {
            if mount.read_only == Some(true) && empty_dirs.contains(&mount.name.as_str()) {
                bail!(
                    "{at}.volumeMounts[{mount_index}].readOnly: a read-only emptyDir in a pod of one container stays empty, and the engine cannot mount a container's own volume read-only; remove readOnly"
                );
            }
        }
        if container.image_pull_policy.as_deref() == Some("Always") {
            bail!(
                "{at}.imagePullPolicy: Always is not carried out by the docker runtime, which uses an image already on the engine; use IfNotPresent"
            );
        }
        let sc = container.security_context.as_ref();
        seccomp(
            sc.and_then(|s| s.seccomp_profile.as_ref())
                .map(|p| p.type_.as_str()),
            &format!("{at}.securityContext"),
        )?;
        for (field, probe) in [
            ("startupProbe", &container.startup_probe),
            ("livenessProbe", &container.liveness_probe),
            ("readinessProbe", &container.readiness_probe),
        ] {
            let scheme = probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .and_then(|h| h.scheme.as_deref());
            if let Some(scheme) = scheme
                && scheme != "HTTP"
            {
                bail!(
                    "{at}.{field}.httpGet.scheme: {scheme} probes are not carried out by the docker runtime; use HTTP"
                );
            }
        }
        for (mount_index, mount) in container.volume_mounts.iter().flatten().enumerate() {
            if mount.sub_path_expr.is_some() || mount.mount_propagation.is_some() {
                bail!(
                    "{at}.volumeMounts[{mount_index}]: subPathExpr and mountPropagation are not carried out by the docker runtime; remove them"
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> PodSpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    const BASE: &str = "
containers:
  - name: app
    image: app:1
    command: [/app]
    args: [--port, '80']
    workingDir: /srv
    env:
      - {name: A, value: b}
    ports:
      - {name: http, containerPort: 80, protocol: TCP}
    readinessProbe:
      httpGet: {path: /, port: http, scheme: HTTP}
      periodSeconds: 2
    livenessProbe:
      exec: {command: ['true']}
      failureThreshold: 3
    startupProbe:
      tcpSocket: {port: 80}
    resources:
      requests: {cpu: 10m, memory: 16Mi}
      limits: {cpu: 100m, memory: 64Mi}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: [ALL]}
    volumeMounts:
      - {name: tmp, mountPath: /tmp}
      - {name: config, mountPath: /etc/app, readOnly: true, subPath: app.conf}
securityContext:
  runAsNonRoot: true
  runAsUser: 1000
  runAsGroup: 1000
  fsGroup: 1000
  fsGroupChangePolicy: OnRootMismatch
  supplementalGroups: [5]
  seccompProfile: {type: RuntimeDefault}
terminationGracePeriodSeconds: 10
volumes:
  - {name: tmp, emptyDir: {}}
  - {name: shm, emptyDir: {medium: Memory, sizeLimit: 64Mi}}
  - name: config
    configMap:
      name: app
      defaultMode: 288
      items: [{key: a, path: app.conf, mode: 256}]
";

    #[test]
    fn every_supported_field_passes() {
        check(&spec(BASE)).unwrap();
    }

    #[test]
    fn fields_the_docker_runtime_does_not_carry_out_are_refused_by_path() {
        let cases = [
            (
                "containers:\n  - {name: a, image: b, lifecycle: {preStop: {exec: {command: [x]}}}}",
                "spec.template.spec.containers[0].lifecycle:",
            ),
            (
                "containers:\n  - {name: a, image: b, env: [{name: X, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]}",
                "spec.template.spec.containers[0].env[0].valueFrom.fieldRef:",
            ),
            (
                "containers:\n  - {name: a, image: b, readinessProbe: {grpc: {port: 1}}}",
                "containers[0].readinessProbe.grpc:",
            ),
            (
                "containers:\n  - {name: a, image: b, readinessProbe: {httpGet: {port: 1, httpHeaders: [{name: a, value: b}]}}}",
                "readinessProbe.httpGet.httpHeaders:",
            ),
            (
                "containers:\n  - {name: a, image: b, readinessProbe: {exec: {command: [x]}, terminationGracePeriodSeconds: 3}}",
                "readinessProbe.terminationGracePeriodSeconds:",
            ),
            (
                "containers:\n  - {name: a, image: b, tty: true}",
                "containers[0].tty:",
            ),
            (
                "containers:\n  - {name: a, image: b}\nnodeSelector: {disk: ssd}",
                "spec.template.spec.nodeSelector:",
            ),
            (
                "containers:\n  - {name: a, image: b}\nvolumes: [{name: h, hostPath: {path: /}}]",
                "spec.template.spec.volumes[0].hostPath:",
            ),
            (
                "containers:\n  - {name: a, image: b}\nsecurityContext: {sysctls: [{name: a, value: b}]}",
                "securityContext.sysctls:",
            ),
            (
                "containers:\n  - {name: a, image: b, resources: {limits: {nvidia.com/gpu: 1}}}",
                "resources.limits.nvidia.com/gpu:",
            ),
            (
                "containers:\n  - {name: a, image: b}\ninitContainers: [{name: i, image: b}]",
                "spec.template.spec.initContainers:",
            ),
            (
                "containers:\n  - {name: a, image: b, volumeMounts: [{name: v, mountPath: /v, mountPropagation: Bidirectional}]}",
                "volumeMounts[0].mountPropagation:",
            ),
        ];
        for (yaml, expected) in cases {
            let err = check(&spec(yaml)).unwrap_err().to_string();
            assert!(err.contains(expected), "{yaml}\n→ {err}");
        }
    }

    #[test]
    fn values_the_docker_runtime_cannot_honour_are_refused() {
        let cases = [
            (
                "containers: [{name: a, image: b}]\nvolumes: [{name: t, emptyDir: {sizeLimit: 1Gi}}]",
                "emptyDir.sizeLimit",
            ),
            (
                "containers: [{name: a, image: b, imagePullPolicy: Always}]",
                "imagePullPolicy: Always",
            ),
            (
                "containers: [{name: a, image: b}]\nsecurityContext: {seccompProfile: {type: Localhost, localhostProfile: p.json}}",
                "seccompProfile",
            ),
            (
                "containers: [{name: a, image: b, readinessProbe: {httpGet: {port: 1, scheme: HTTPS}}}]",
                "HTTPS probes",
            ),
            (
                "containers: [{name: a, image: b}]\nrestartPolicy: OnFailure",
                "restartPolicy: OnFailure",
            ),
            (
                "containers: [{name: a, image: b, volumeMounts: [{name: t, mountPath: /t, readOnly: true}]}]\nvolumes: [{name: t, emptyDir: {}}]",
                "volumeMounts[0].readOnly: a read-only emptyDir",
            ),
        ];
        for (yaml, expected) in cases {
            let err = check(&spec(yaml)).unwrap_err().to_string();
            assert!(err.contains(expected), "{yaml}\n→ {err}");
        }
    }

    #[test]
    fn the_stacks_own_manifests_pass() {
        let root = crate::context::Context::for_tests()
            .root()
            .join("manifests");
        let stack = crate::stack::Stack::load(&root).unwrap();
        for workload in &stack.workloads {
            check(&workload.pod_spec).unwrap_or_else(|err| panic!("{}: {err}", workload.name));
        }
    }
}
