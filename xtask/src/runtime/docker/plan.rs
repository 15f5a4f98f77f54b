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
use k8s_openapi::api::core::v1::{Container, Probe};
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
    /// Files from ConfigMaps and the generated Secret, written on the host and bind-mounted
    /// read-only (the docker engine cannot mount an object's data directly).
    pub(crate) file_mounts: Vec<FileMount>,
    /// Names by which the other containers reach this one (its Services, and the workload).
    pub(crate) aliases: Vec<String>,
    pub(crate) published: Vec<Published>,
    pub(crate) memory_bytes: Option<i64>,
    pub(crate) nano_cpus: Option<i64>,
    pub(crate) readiness: Option<Readiness>,
    pub(crate) labels: BTreeMap<String, String>,
}

/// A ConfigMap or Secret volume as files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct FileMount {
    /// The folder the files are written to, under the state folder.
    pub(crate) host_dir: std::path::PathBuf,
    /// Where the container sees them.
    pub(crate) target: String,
    /// One file of the set mounted alone (`subPath`), rather than the folder.
    pub(crate) sub_path: Option<String>,
    /// Relative path → content.
    pub(crate) files: BTreeMap<String, String>,
    /// The files' permission bits (`defaultMode`, 0644 unless set).
    pub(crate) mode: u32,
}

impl FileMount {
    /// Writes the files afresh: a key removed from the ConfigMap disappears from the folder.
    pub(crate) fn write(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = &self.host_dir;
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        for (name, content) in &self.files {
            let path = dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
                std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))?;
            }
            std::fs::write(&path, content)
                .with_context(|| format!("writing {}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(self.mode))?;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        Ok(())
    }

    fn source(&self) -> String {
        let dir = match &self.sub_path {
            Some(sub) => self.host_dir.join(sub),
            None => self.host_dir.clone(),
        };
        dir.to_string_lossy().into_owned()
    }
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
            .chain(self.file_mounts.iter().map(|files| Mount {
                target: Some(files.target.clone()),
                source: Some(files.source()),
                typ: Some(MountType::BIND),
                read_only: Some(true),
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
    /// Where ConfigMap and Secret volumes are written as files.
    pub(crate) files_root: &'a std::path::Path,
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

    let env = stack::container_env(inputs.stack, inputs.secrets, container)
        .with_context(|| what("environment"))?;
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
    let mut file_mounts = Vec::new();
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
            } else if volume.config_map.is_some() || volume.secret.is_some() {
                let (files, mode) =
                    volume_files(volume, inputs).with_context(|| what(&volume.name))?;
                file_mounts.push(FileMount {
                    host_dir: inputs
                        .files_root
                        .join(inputs.names.container(&workload.name))
                        .join(&volume.name),
                    target: mount.mount_path.clone(),
                    sub_path: mount.sub_path.clone().filter(|p| !p.is_empty()),
                    files,
                    mode,
                });
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
            host_port: mapping.host_port,
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
        file_mounts,
        aliases,
        published,
        memory_bytes,
        nano_cpus,
        readiness,
        labels,
    })
}

/// The files of a ConfigMap or Secret volume (all keys, or the `items` chosen, under their
/// paths) and their mode.
fn volume_files(
    volume: &k8s_openapi::api::core::v1::Volume,
    inputs: &Inputs<'_>,
) -> anyhow::Result<(BTreeMap<String, String>, u32)> {
    let (data, items, default_mode): (BTreeMap<String, String>, _, _) =
        if let Some(source) = &volume.config_map {
            let map = inputs
                .stack
                .config_map(&source.name)
                .ok_or_else(|| anyhow!("ConfigMap {} does not exist", source.name))?;
            (
                map.data.clone().unwrap_or_default(),
                source.items.as_ref(),
                source.default_mode,
            )
        } else if let Some(source) = &volume.secret {
            let name = source.secret_name.as_deref().unwrap_or_default();
            stack::check_secret_name(name)?;
            (
                inputs
                    .secrets
                    .entries()
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                source.items.as_ref(),
                source.default_mode,
            )
        } else {
            bail!("not a ConfigMap or Secret volume");
        };
    let files = match items {
        None => data,
        Some(items) => items
            .iter()
            .map(|item| {
                let content = data
                    .get(&item.key)
                    .ok_or_else(|| anyhow!("no key {} to project", item.key))?;
                if item
                    .path
                    .split('/')
                    .any(|part| part == ".." || part.is_empty())
                {
                    bail!("the item path {:?} must stay inside the volume", item.path);
                }
                Ok((item.path.clone(), content.clone()))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let mode = u32::try_from(default_mode.unwrap_or(0o644))
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| anyhow!("defaultMode must be between 0 and 0777"))?;
    Ok((files, mode))
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    struct Fixture {
        stack: Stack,
        names: Names,
        secrets: Secrets,
        images: BTreeMap<String, String>,
    }

    impl Fixture {
        fn new() -> Self {
            let stack = Stack::load(&crate::Context::for_tests().root().join("manifests")).unwrap();
            let images = stack
                .workloads
                .iter()
                .flat_map(|w| w.pod_spec.containers.iter())
                .filter_map(|c| c.image.clone())
                .map(|image| (image.clone(), format!("local/{image}")))
                .collect();
            Self {
                stack,
                names: Names::new("wander"),
                secrets: Secrets {
                    postgres_password: "pw0".into(),
                    api_token: "tok0".into(),
                },
                images,
            }
        }

        fn plan(&self, workload: &str) -> anyhow::Result<ContainerPlan> {
            self.plan_of(self.stack.workload(workload).unwrap())
        }

        fn plan_of(&self, workload: &Workload) -> anyhow::Result<ContainerPlan> {
            plan(
                workload,
                &Inputs {
                    stack: &self.stack,
                    names: &self.names,
                    secrets: &self.secrets,
                    images: &self.images,
                    files_root: Path::new("/state/files"),
                },
            )
        }
    }

    fn env<'a>(plan: &'a ContainerPlan, name: &str) -> Option<&'a str> {
        plan.env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix(name)?.strip_prefix('='))
    }

    #[test]
    fn the_api_runs_as_its_manifest_says() {
        let fixture = Fixture::new();
        let api = fixture.plan("api").unwrap();
        assert_eq!(api.container_name, "wander-api");
        assert_eq!(api.image, "local/wander/api:dev");
        assert_eq!(
            env(&api, "DATABASE_URL"),
            Some("postgres://wander:pw0@postgres:5432/wander")
        );
        assert_eq!(env(&api, "API_TOKEN"), Some("tok0"));
        assert_eq!(env(&api, "REDIS_URL"), Some("redis://redis:6379"));
        assert_eq!(env(&api, "LOG_FORMAT"), Some("json"));
        assert_eq!(api.user.as_deref(), Some("65532:65532"));
        assert!(api.read_only_root && api.drop_all_capabilities && api.no_new_privileges);
        assert_eq!(api.tmpfs.keys().collect::<Vec<_>>(), ["/tmp"]);
        assert_eq!(api.aliases, ["api"]);
        assert_eq!(
            api.published,
            [Published {
                service: "api".into(),
                container_port: 8080,
                host_ip: "127.0.0.1".into(),
                host_port: 8080,
            }]
        );
        assert_eq!(api.memory_bytes, Some(256 * 1024 * 1024));
        assert_eq!(api.nano_cpus, Some(1_000_000_000));
        assert_eq!(
            api.readiness.as_ref().map(|r| &r.check),
            Some(&Check::Http {
                port: 8080,
                path: "/health".into()
            })
        );
        assert_eq!(
            api.labels.get(LABEL_STACK).map(String::as_str),
            Some("wander")
        );
        assert_eq!(
            api.labels.get(LABEL_WORKLOAD).map(String::as_str),
            Some("api")
        );
    }

    #[test]
    fn the_database_keeps_its_data_in_a_named_volume_and_is_probed_inside() {
        let fixture = Fixture::new();
        let postgres = fixture.plan("postgres").unwrap();
        assert_eq!(
            postgres
                .volumes
                .get("/var/lib/postgresql/data")
                .map(String::as_str),
            Some("wander-data-postgres")
        );
        assert!(postgres.tmpfs.contains_key("/var/run/postgresql"));
        assert!(
            postgres.published.is_empty(),
            "the database is not published"
        );
        assert_eq!(env(&postgres, "POSTGRES_PASSWORD"), Some("pw0"));
        assert_eq!(postgres.user.as_deref(), Some("999:999"));
        let Some(Readiness {
            check: Check::Exec(command),
            ..
        }) = &postgres.readiness
        else {
            panic!("{:?}", postgres.readiness)
        };
        assert_eq!(command[0], "pg_isready");
    }

    #[test]
    fn config_map_volumes_become_read_only_files() {
        let fixture = Fixture::new();
        let redis = fixture.plan("redis").unwrap();
        let [files] = redis.file_mounts.as_slice() else {
            panic!("{:?}", redis.file_mounts)
        };
        assert_eq!(files.target, "/etc/redis");
        assert_eq!(
            files.host_dir,
            Path::new("/state/files/wander-redis/config")
        );
        assert!(files.files["redis.conf"].contains("maxmemory-policy allkeys-lru"));
        assert_eq!(files.mode, 0o644);
        let body = redis.create_body(&fixture.names);
        let mounts = body.host_config.unwrap().mounts.unwrap();
        let bind = mounts
            .iter()
            .find(|m| m.typ == Some(MountType::BIND))
            .unwrap();
        assert_eq!(bind.read_only, Some(true));
        assert_eq!(
            bind.source.as_deref(),
            Some("/state/files/wander-redis/config")
        );
        assert_eq!(
            redis.cmd.as_deref(),
            Some(
                &[
                    "redis-server".to_owned(),
                    "/etc/redis/redis.conf".to_owned()
                ][..]
            )
        );
    }

    #[test]
    fn files_are_written_afresh_with_their_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let mount = FileMount {
            host_dir: dir.path().join("wander-redis/config"),
            target: "/etc/redis".into(),
            sub_path: None,
            files: BTreeMap::from([("redis.conf".to_owned(), "port 1\n".to_owned())]),
            mode: 0o640,
        };
        std::fs::create_dir_all(&mount.host_dir).unwrap();
        std::fs::write(mount.host_dir.join("stale.conf"), "old").unwrap();
        mount.write().unwrap();
        assert!(!mount.host_dir.join("stale.conf").exists());
        let file = mount.host_dir.join("redis.conf");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "port 1\n");
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }

    #[test]
    fn host_ports_can_be_moved_and_the_plan_hash_follows_every_input() {
        let mut fixture = Fixture::new();
        let before = fixture.plan("web").unwrap();
        assert_eq!(before.published[0].host_port, 3000);
        assert_eq!(fixture.plan("web").unwrap().hash(), before.hash(), "stable");
        fixture.stack.move_host_port("web", 13000).unwrap();
        let moved = fixture.plan("web").unwrap();
        assert_eq!(moved.published[0].host_port, 13000);
        assert_ne!(moved.hash(), before.hash());
        fixture
            .images
            .insert("wander/web:dev".into(), "local/web:other".into());
        assert_ne!(fixture.plan("web").unwrap().hash(), moved.hash());
        fixture.secrets.api_token = "tok1".into();
        let api_before = Fixture::new().plan("api").unwrap();
        assert_ne!(
            fixture.plan("api").unwrap().hash(),
            api_before.hash(),
            "a new token recreates the API"
        );
    }

    #[test]
    fn references_outside_the_stack_are_refused() {
        let fixture = Fixture::new();
        let mut api = fixture.stack.workload("api").unwrap().clone();
        let env = api.pod_spec.containers[0].env.as_mut().unwrap();
        let token = env.iter_mut().find(|v| v.name == "API_TOKEN").unwrap();
        let reference = token
            .value_from
            .as_mut()
            .unwrap()
            .secret_key_ref
            .as_mut()
            .unwrap();
        reference.name = "someone-elses-secret".into();
        let err = format!("{:#}", fixture.plan_of(&api).unwrap_err());
        assert!(err.contains("someone-elses-secret"), "{err}");

        let mut web = fixture.stack.workload("web").unwrap().clone();
        web.pod_spec.containers[0].image = Some("unknown/image:1".into());
        let err = format!("{:#}", fixture.plan_of(&web).unwrap_err());
        assert!(err.contains("no local image for unknown/image:1"), "{err}");

        let mut two = fixture.stack.workload("web").unwrap().clone();
        two.pod_spec
            .containers
            .push(two.pod_spec.containers[0].clone());
        let err = format!("{:#}", fixture.plan_of(&two).unwrap_err());
        assert!(err.contains("exactly one container"), "{err}");
    }

    #[test]
    fn quantities_convert_as_kubernetes_reads_them() {
        let q = |s: &str| Quantity(s.to_owned());
        for (text, bytes) in [
            ("256Mi", 268_435_456),
            ("1Gi", 1_073_741_824),
            ("64Ki", 65_536),
            ("500M", 500_000_000),
            ("1e6", 1_000_000),
            ("1048576", 1_048_576),
            ("1.5Gi", 1_610_612_736),
        ] {
            assert_eq!(memory_bytes(&q(text)).unwrap(), bytes, "{text}");
        }
        for bad in ["", "Mi", "12Xi", "-1Gi", "0", "1e30", "ten"] {
            assert!(memory_bytes(&q(bad)).is_err(), "{bad}");
        }
        for (text, nanos) in [
            ("500m", 500_000_000),
            ("1", 1_000_000_000),
            ("0.25", 250_000_000),
            ("2", 2_000_000_000),
        ] {
            assert_eq!(nano_cpus(&q(text)).unwrap(), nanos, "{text}");
        }
        for bad in ["", "m", "-1", "0", "0m", "lots", "1e20"] {
            assert!(nano_cpus(&q(bad)).is_err(), "{bad}");
        }
    }
}
