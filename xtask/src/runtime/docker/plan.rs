//! How one workload of the manifests becomes one container: the translation of a pod template
//! into a [`ContainerPlan`], pure and testable, and from it the Engine API's create request.
//!
//! What maps to what (DESIGN.md decision 2): a Deployment or StatefulSet becomes one container
//! (one replica: this is a laptop); the Services selecting it become network aliases, and a
//! Service with a host port mapping in `kind-config.yaml` is published on that host address;
//! `envFrom`/`env` with ConfigMap and Secret references become environment variables with
//! Kubernetes' `$(VAR)` expansion; `emptyDir` becomes a tmpfs, a claim a named volume; the
//! security context becomes user, read-only root, dropped capabilities and `no-new-privileges`;
//! limits become memory and CPU limits; the readiness probe becomes our health wait.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context as _, anyhow, bail};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, Mount, MountTmpfsOptions, MountType,
    NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use k8s_openapi::api::core::v1::{Container, EnvVar, Probe};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use super::names::{LABEL_PLAN, LABEL_STACK, LABEL_WORKLOAD, Names};
use crate::stack::{self, Stack, Workload};
use crate::state::Secrets;

/// Everything that decides a workload's container. Two equal plans give the same container, so
/// its hash (a label on the container) tells whether a running container is up to date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ContainerPlan {
    pub(crate) workload: String,
    pub(crate) container_name: String,
    pub(crate) image: String,
    pub(crate) entrypoint: Option<Vec<String>>,
    pub(crate) cmd: Option<Vec<String>>,
    /// `NAME=value`, in Kubernetes' order (envFrom, then env).
    pub(crate) env: Vec<String>,
    pub(crate) user: Option<String>,
    pub(crate) read_only_root: bool,
    pub(crate) drop_all_capabilities: bool,
    pub(crate) no_new_privileges: bool,
    /// Mount path → size limit in bytes (0: the engine's default).
    pub(crate) tmpfs: BTreeMap<String, i64>,
    /// Mount path → named volume.
    pub(crate) volumes: BTreeMap<String, String>,
    /// Names by which the other containers reach this one (its Services, and the workload).
    pub(crate) aliases: Vec<String>,
    pub(crate) published: Vec<Published>,
    pub(crate) memory_bytes: Option<i64>,
    pub(crate) nano_cpus: Option<i64>,
    pub(crate) readiness: Option<Readiness>,
    pub(crate) labels: BTreeMap<String, String>,
}

/// A container port published on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Published {
    pub(crate) service: String,
    pub(crate) container_port: u16,
    pub(crate) host_ip: String,
    pub(crate) host_port: u16,
}

/// The readiness probe, as the docker runtime runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Readiness {
    pub(crate) check: Check,
    pub(crate) initial_delay_secs: u32,
    pub(crate) period_secs: u32,
    pub(crate) timeout_secs: u32,
}

/// One probe action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) enum Check {
    /// A command run inside the container; exit code 0 means ready.
    Exec(Vec<String>),
    /// An HTTP GET on a container port; 200..400 means ready.
    Http { port: u16, path: String },
    /// A TCP connection to a container port.
    Tcp { port: u16 },
}

impl ContainerPlan {
    /// A short hash of the whole plan, secrets included (the hash is not reversible).
    pub(crate) fn hash(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        crate::digest::short_hash(&[&json], 16)
    }

    /// The Engine API's create request for this plan.
    pub(crate) fn create_body(&self, names: &Names) -> ContainerCreateBody {
        let mut labels: HashMap<String, String> = self.labels.clone().into_iter().collect();
        labels.insert(LABEL_PLAN.to_owned(), self.hash());
        let mounts: Vec<Mount> = self
            .tmpfs
            .iter()
            .map(|(path, size)| Mount {
                target: Some(path.clone()),
                typ: Some(MountType::TMPFS),
                tmpfs_options: Some(MountTmpfsOptions {
                    size_bytes: (*size > 0).then_some(*size),
                    mode: Some(0o1777),
                    ..MountTmpfsOptions::default()
                }),
                ..Mount::default()
            })
            .chain(self.volumes.iter().map(|(path, volume)| Mount {
                target: Some(path.clone()),
                source: Some(volume.clone()),
                typ: Some(MountType::VOLUME),
                ..Mount::default()
            }))
            .collect();
        let port_bindings = self
            .published
            .iter()
            .map(|p| {
                (
                    format!("{}/tcp", p.container_port),
                    Some(vec![PortBinding {
                        host_ip: Some(p.host_ip.clone()),
                        host_port: Some(p.host_port.to_string()),
                    }]),
                )
            })
            .collect::<HashMap<_, _>>();
        let exposed = self
            .published
            .iter()
            .map(|p| format!("{}/tcp", p.container_port))
            .collect::<Vec<_>>();
        let mut security_opt = Vec::new();
        if self.no_new_privileges {
            security_opt.push("no-new-privileges:true".to_owned());
        }
        let host_config = HostConfig {
            mounts: Some(mounts),
            port_bindings: Some(port_bindings),
            readonly_rootfs: Some(self.read_only_root),
            cap_drop: self.drop_all_capabilities.then(|| vec!["ALL".to_owned()]),
            security_opt: Some(security_opt),
            memory: self.memory_bytes,
            nano_cpus: self.nano_cpus,
            network_mode: Some(names.network()),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            init: Some(false),
            ..HostConfig::default()
        };
        let endpoint = EndpointSettings {
            aliases: Some(self.aliases.clone()),
            ..EndpointSettings::default()
        };
        ContainerCreateBody {
            image: Some(self.image.clone()),
            entrypoint: self.entrypoint.clone(),
            cmd: self.cmd.clone(),
            env: Some(self.env.clone()),
            user: self.user.clone(),
            labels: Some(labels),
            exposed_ports: Some(exposed),
            hostname: Some(self.workload.clone()),
            host_config: Some(host_config),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(names.network(), endpoint)])),
            }),
            ..ContainerCreateBody::default()
        }
    }
}

/// What a plan needs besides the workload: where its images are and the generated secrets.
pub(crate) struct Inputs<'a> {
    pub(crate) stack: &'a Stack,
    pub(crate) names: &'a Names,
    pub(crate) secrets: &'a Secrets,
    /// Image reference in the manifests → the local image to run.
    pub(crate) images: &'a BTreeMap<String, String>,
    /// Host port overrides by Service name (tests and side-by-side stacks).
    pub(crate) host_ports: &'a BTreeMap<String, u16>,
}

/// Plans the container of one workload.
pub(crate) fn plan(workload: &Workload, inputs: &Inputs<'_>) -> anyhow::Result<ContainerPlan> {
    let pod = &workload.pod_spec;
    let [container] = pod.containers.as_slice() else {
        bail!(
            "{}: the docker runtime runs pods of exactly one container; this one has {}",
            workload.name,
            pod.containers.len()
        );
    };
    if pod.init_containers.as_ref().is_some_and(|c| !c.is_empty()) {
        bail!(
            "{}: init containers are not supported by the docker runtime",
            workload.name
        );
    }
    let what = |detail: &str| format!("{}: {detail}", workload.name);

    let manifest_image = container
        .image
        .as_deref()
        .ok_or_else(|| anyhow!(what("the container has no image")))?;
    let image = inputs
        .images
        .get(manifest_image)
        .cloned()
        .ok_or_else(|| anyhow!(what(&format!("no local image for {manifest_image}"))))?;

    let env = environment(container, inputs).with_context(|| what("environment"))?;
    let lookup = |name: &str| {
        env.iter().rev().find_map(|entry| {
            entry
                .strip_prefix(name)?
                .strip_prefix('=')
                .map(str::to_owned)
        })
    };
    let expand_all = |items: &Option<Vec<String>>| {
        items
            .as_ref()
            .map(|items| items.iter().map(|i| stack::expand_env(i, lookup)).collect())
    };
    let entrypoint = expand_all(&container.command);
    let cmd = expand_all(&container.args);

    // The container's security context overrides the pod's, field by field.
    let pod_sc = pod.security_context.as_ref();
    let sc = container.security_context.as_ref();
    let run_as_user = sc
        .and_then(|s| s.run_as_user)
        .or_else(|| pod_sc.and_then(|s| s.run_as_user));
    let run_as_group = sc
        .and_then(|s| s.run_as_group)
        .or_else(|| pod_sc.and_then(|s| s.run_as_group));
    let user = match (run_as_user, run_as_group) {
        (Some(uid), Some(gid)) => Some(format!("{uid}:{gid}")),
        (Some(uid), None) => Some(uid.to_string()),
        (None, _) => None,
    };
    let read_only_root = sc.and_then(|s| s.read_only_root_filesystem) == Some(true);
    let drop_all_capabilities = sc
        .and_then(|s| s.capabilities.as_ref())
        .and_then(|c| c.drop.as_ref())
        .is_some_and(|d| d.iter().any(|cap| cap == "ALL"));
    let no_new_privileges = sc.and_then(|s| s.allow_privilege_escalation) == Some(false);

    let mut tmpfs = BTreeMap::new();
    let mut volumes = BTreeMap::new();
    for mount in container.volume_mounts.iter().flatten() {
        let pod_volume = pod.volumes.iter().flatten().find(|v| v.name == mount.name);
        if let Some(volume) = pod_volume {
            if let Some(empty_dir) = &volume.empty_dir {
                let size = match &empty_dir.size_limit {
                    Some(q) => memory_bytes(q).with_context(|| what(&mount.name))?,
                    None => 0,
                };
                tmpfs.insert(mount.mount_path.clone(), size);
            } else if let Some(claim) = &volume.persistent_volume_claim {
                volumes.insert(
                    mount.mount_path.clone(),
                    inputs.names.volume(&claim.claim_name, None),
                );
            } else {
                bail!(what(&format!(
                    "volume {} is neither an emptyDir nor a claim, which the docker runtime does not support",
                    volume.name
                )));
            }
        } else if workload
            .volume_claim_templates
            .iter()
            .any(|t| t.metadata.name.as_deref() == Some(mount.name.as_str()))
        {
            volumes.insert(
                mount.mount_path.clone(),
                inputs.names.volume(&mount.name, Some(&workload.name)),
            );
        } else {
            bail!(what(&format!("mount {} names no volume", mount.name)));
        }
    }

    let services = inputs.stack.services_of(workload);
    let mut aliases: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
    if !aliases.contains(&workload.name) {
        aliases.push(workload.name.clone());
    }
    let mut published = Vec::new();
    for service in &services {
        let Some(mapping) = inputs.stack.host_port_of(&service.name) else {
            continue;
        };
        let port = service
            .ports
            .iter()
            .find(|p| p.port == mapping.service_port)
            .ok_or_else(|| {
                anyhow!(what(&format!(
                    "service {} has no port {}",
                    mapping.service, mapping.service_port
                )))
            })?;
        published.push(Published {
            service: mapping.service.clone(),
            container_port: port.target_port,
            host_ip: mapping.listen_address.to_string(),
            host_port: inputs
                .host_ports
                .get(&mapping.service)
                .copied()
                .unwrap_or(mapping.host_port),
        });
    }

    let limits = container.resources.as_ref().and_then(|r| r.limits.as_ref());
    let memory_bytes = limits
        .and_then(|l| l.get("memory"))
        .map(memory_bytes)
        .transpose()
        .with_context(|| what("memory limit"))?;
    let nano_cpus = limits
        .and_then(|l| l.get("cpu"))
        .map(nano_cpus)
        .transpose()
        .with_context(|| what("cpu limit"))?;

    let readiness = container
        .readiness_probe
        .as_ref()
        .map(|probe| readiness(container, probe))
        .transpose()
        .with_context(|| what("readiness probe"))?;

    let mut labels: BTreeMap<String, String> = workload.labels.clone();
    labels.insert(LABEL_STACK.to_owned(), inputs.names.stack().to_owned());
    labels.insert(LABEL_WORKLOAD.to_owned(), workload.name.clone());

    Ok(ContainerPlan {
        workload: workload.name.clone(),
        container_name: inputs.names.container(&workload.name),
        image,
        entrypoint,
        cmd,
        env,
        user,
        read_only_root,
        drop_all_capabilities,
        no_new_privileges,
        tmpfs,
        volumes,
        aliases,
        published,
        memory_bytes,
        nano_cpus,
        readiness,
        labels,
    })
}

/// The container's environment in Kubernetes' order: every `envFrom` source, then `env`, each
/// value expanded against the variables defined before it.
fn environment(container: &Container, inputs: &Inputs<'_>) -> anyhow::Result<Vec<String>> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, name: String, value: String| {
        if let Some(existing) = vars.iter_mut().find(|(n, _)| *n == name) {
            existing.1 = value;
        } else {
            vars.push((name, value));
        }
    };
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        if let Some(reference) = &source.config_map_ref {
            let map = inputs
                .stack
                .config_map(&reference.name)
                .ok_or_else(|| anyhow!("ConfigMap {} does not exist", reference.name))?;
            for (key, value) in map.data.iter().flatten() {
                set(&mut vars, format!("{prefix}{key}"), value.clone());
            }
        }
        if let Some(reference) = &source.secret_ref {
            check_secret_name(&reference.name)?;
            for (key, value) in inputs.secrets.entries() {
                set(
                    &mut vars,
                    format!("{prefix}{}", env_name(key)),
                    value.to_owned(),
                );
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = env_value(var, inputs, &vars)?;
        set(&mut vars, var.name.clone(), value);
    }
    Ok(vars.into_iter().map(|(n, v)| format!("{n}={v}")).collect())
}

fn env_value(
    var: &EnvVar,
    inputs: &Inputs<'_>,
    defined: &[(String, String)],
) -> anyhow::Result<String> {
    if let Some(value) = &var.value {
        let lookup = |name: &str| {
            defined
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        return Ok(stack::expand_env(value, lookup));
    }
    let Some(from) = &var.value_from else {
        return Ok(String::new());
    };
    if let Some(key_ref) = &from.config_map_key_ref {
        let map = inputs
            .stack
            .config_map(&key_ref.name)
            .ok_or_else(|| anyhow!("{}: ConfigMap {} does not exist", var.name, key_ref.name))?;
        return map
            .data
            .as_ref()
            .and_then(|d| d.get(&key_ref.key))
            .cloned()
            .ok_or_else(|| {
                anyhow!(
                    "{}: ConfigMap {} has no key {}",
                    var.name,
                    key_ref.name,
                    key_ref.key
                )
            });
    }
    if let Some(key_ref) = &from.secret_key_ref {
        check_secret_name(&key_ref.name)?;
        return inputs
            .secrets
            .get(&key_ref.key)
            .map(str::to_owned)
            .ok_or_else(|| {
                anyhow!(
                    "{}: the generated Secret has no key {}",
                    var.name,
                    key_ref.key
                )
            });
    }
    bail!(
        "{}: only values, ConfigMap and Secret references are supported",
        var.name
    )
}

fn check_secret_name(name: &str) -> anyhow::Result<()> {
    if name == stack::SECRET_NAME {
        Ok(())
    } else {
        bail!(
            "Secret {name} is not generated by the xtask (only {})",
            stack::SECRET_NAME
        )
    }
}

/// `postgres-password` → `POSTGRES_PASSWORD`, for `envFrom` of the generated Secret.
fn env_name(key: &str) -> String {
    key.replace('-', "_").to_uppercase()
}

fn readiness(container: &Container, probe: &Probe) -> anyhow::Result<Readiness> {
    let check = if let Some(exec) = &probe.exec {
        Check::Exec(exec.command.clone().unwrap_or_default())
    } else if let Some(http) = &probe.http_get {
        Check::Http {
            port: to_port(container_port(container, &http.port)?)?,
            path: http.path.clone().unwrap_or_else(|| "/".to_owned()),
        }
    } else if let Some(tcp) = &probe.tcp_socket {
        Check::Tcp {
            port: to_port(container_port(container, &tcp.port)?)?,
        }
    } else {
        bail!("only exec, httpGet and tcpSocket probes are supported");
    };
    let secs = |value: Option<i32>, default: u32| {
        value.and_then(|v| u32::try_from(v).ok()).unwrap_or(default)
    };
    Ok(Readiness {
        check,
        initial_delay_secs: secs(probe.initial_delay_seconds, 0),
        period_secs: secs(probe.period_seconds, 10).max(1),
        timeout_secs: secs(probe.timeout_seconds, 1).max(1),
    })
}

/// A port given by number or by the name of one of the container's ports.
fn container_port(container: &Container, port: &IntOrString) -> anyhow::Result<i32> {
    match port {
        IntOrString::Int(number) => Ok(*number),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port)
            .ok_or_else(|| anyhow!("the container has no port named {name}")),
    }
}

fn to_port(port: i32) -> anyhow::Result<u16> {
    u16::try_from(port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| anyhow!("{port} is not a TCP port"))
}

/// A Kubernetes memory quantity in bytes: `512Mi`, `1Gi`, `500M`, `1e6`, `1048576`.
pub(crate) fn memory_bytes(quantity: &Quantity) -> anyhow::Result<i64> {
    let text = quantity.0.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024.0_f64.powi(2),
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        other => bail!("{text:?}: unknown unit {other:?} (use Ki, Mi, Gi, k, M or G)"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| anyhow!("{text:?} is not a memory quantity"))?;
    let bytes = (value * multiplier).ceil();
    if !(1.0..9.0e18).contains(&bytes) {
        bail!("{text:?} is out of range");
    }
    #[allow(clippy::cast_possible_truncation)] // range checked above
    Ok(bytes as i64)
}

/// A Kubernetes CPU quantity in billionths of a CPU (Docker's `NanoCpus`): `500m`, `1`, `0.25`.
pub(crate) fn nano_cpus(quantity: &Quantity) -> anyhow::Result<i64> {
    let text = quantity.0.trim();
    let (number, scale) = match text.strip_suffix('m') {
        Some(millis) => (millis, 1e6),
        None => (text, 1e9),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| anyhow!("{text:?} is not a CPU quantity"))?;
    let nanos = (value * scale).round();
    if !(1.0..1.0e15).contains(&nanos) {
        bail!("{text:?} is out of range");
    }
    #[allow(clippy::cast_possible_truncation)] // range checked above
    Ok(nanos as i64)
}
