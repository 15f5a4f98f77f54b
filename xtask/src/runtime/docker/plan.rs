//! How one workload of the manifests becomes one container: the translation of a pod template
//! into a [`ContainerPlan`], pure and testable, and from it the Engine API's create request.
//!
//! Each pod-spec field is either done as the kubelet does it or refused by name
//! ([`super::supported`]); docs/design.md, "The docker runtime, field by field", has the table
//! of what maps to what, with the test that shows each row. In short: a Deployment or StatefulSet becomes one container (one
//! replica: this is a laptop); the Services selecting it become network aliases, and a Service
//! with a host port mapping in `kind-config.yaml` is published on that host address; `envFrom`/
//! `env` become environment variables with Kubernetes' `$(VAR)` expansion; an `emptyDir` becomes
//! a volume that lives as long as the container (memory-backed with `medium: Memory`), a claim a
//! named volume, each made writable as the kubelet makes it (mode 0777, `fsGroup` ownership); the
//! security context becomes user, groups, read-only root, dropped capabilities and
//! `no-new-privileges`; limits become memory and CPU limits; the probes are run by `dev`,
//! `status` and the runtime's kubelet ([`super::kubelet`]); logs are rotated as the kubelet
//! rotates them.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context as _, anyhow, bail};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, HostConfigLogConfig, Mount, MountType,
    MountVolumeOptions, MountVolumeOptionsDriverConfig, NetworkingConfig, PortBinding,
    RestartPolicy, RestartPolicyNameEnum,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::{Deserialize, Serialize};

use super::names::{LABEL_PLAN, LABEL_STACK, LABEL_SUPERVISION, LABEL_WORKLOAD, Names};
use super::probe::{self, Probes, Published};
pub(crate) use crate::config::LogLimits;
use crate::stack::{self, Stack, Workload};
use crate::state::Secrets;

/// Kubernetes' default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE_SECS: i64 = 30;

/// Everything that decides a workload's container. Two equal plans give the same container, so
/// its hash (a label on the container) tells whether a running container is up to date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ContainerPlan {
    pub(crate) workload: String,
    pub(crate) container_name: String,
    pub(crate) image: String,
    /// `command`: replaces the image's entrypoint, and with it the image's arguments.
    pub(crate) entrypoint: Option<Vec<String>>,
    /// `args`.
    pub(crate) cmd: Option<Vec<String>>,
    pub(crate) working_dir: Option<String>,
    /// `NAME=value`, in Kubernetes' order (envFrom, then env).
    pub(crate) env: Vec<String>,
    /// `uid[:gid]` from `runAsUser`/`runAsGroup`.
    pub(crate) user: Option<String>,
    /// Supplementary groups: `fsGroup` and `supplementalGroups`, as the kubelet adds them.
    pub(crate) groups: Vec<i64>,
    pub(crate) read_only_root: bool,
    pub(crate) drop_all_capabilities: bool,
    pub(crate) no_new_privileges: bool,
    /// `emptyDir` and claim mounts.
    pub(crate) mounts: Vec<VolumeMount>,
    /// Files from ConfigMaps and the generated Secret, written on the host and bind-mounted
    /// read-only (the docker engine cannot mount an object's data directly).
    pub(crate) file_mounts: Vec<FileMount>,
    /// `fsGroup`: the group that owns the pod's volumes.
    pub(crate) fs_group: Option<FsGroup>,
    /// Names by which the other containers reach this one (its Services, and the workload).
    pub(crate) aliases: Vec<String>,
    pub(crate) published: Vec<Published>,
    pub(crate) memory_bytes: Option<i64>,
    pub(crate) nano_cpus: Option<i64>,
    pub(crate) probes: Probes,
    /// `terminationGracePeriodSeconds`: from SIGTERM to SIGKILL when the container is stopped.
    pub(crate) stop_timeout_secs: i64,
    pub(crate) log: LogLimits,
    pub(crate) labels: BTreeMap<String, String>,
}

/// One `emptyDir` or claim mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct VolumeMount {
    /// The pod's name for the volume.
    pub(crate) name: String,
    pub(crate) target: String,
    pub(crate) source: VolumeSource,
    pub(crate) read_only: bool,
    /// `subPath`: a folder of the volume mounted instead of its root.
    pub(crate) sub_path: Option<String>,
}

/// What backs a volume mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) enum VolumeSource {
    /// An `emptyDir` on disk: an anonymous volume of the container, kept across its restarts and
    /// removed with it, as the kubelet keeps an `emptyDir` for the pod's life.
    EmptyDir,
    /// An `emptyDir` with `medium: Memory`: a tmpfs of at most this many bytes (0: no limit).
    MemoryEmptyDir { size_bytes: i64 },
    /// A claim: the named volume.
    Claim { volume: String },
}

/// `fsGroup` and `fsGroupChangePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct FsGroup {
    pub(crate) gid: i64,
    /// `OnRootMismatch`: walk a claim's files only when its root is not yet right.
    pub(crate) only_on_root_mismatch: bool,
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
    /// Relative path → content and permission bits (`items[].mode`, else `defaultMode`, else
    /// 0644).
    pub(crate) files: BTreeMap<String, FileEntry>,
    /// `fsGroup`: the files' group, which may read them whatever their mode says for others.
    pub(crate) group: Option<i64>,
}

/// One file of a ConfigMap or Secret volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct FileEntry {
    pub(crate) content: String,
    pub(crate) mode: u32,
}

impl FileMount {
    /// Writes the files afresh (a key removed from the ConfigMap disappears from the folder),
    /// owned by `fsGroup` and group-readable as the kubelet leaves them. Where this user may not
    /// give a file to that group (not root), the file is made readable by everyone instead, so
    /// the container can still read what Kubernetes would let it read.
    pub(crate) fn write(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = &self.host_dir;
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        for (name, entry) in &self.files {
            let path = dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
                std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))?;
            }
            std::fs::write(&path, &entry.content)
                .with_context(|| format!("writing {}", path.display()))?;
            let mut mode = entry.mode;
            if let Some(gid) = self.group {
                let gid = u32::try_from(gid).ok();
                mode |= if std::os::unix::fs::chown(&path, None, gid).is_ok() {
                    0o440
                } else {
                    0o444
                };
            }
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
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

/// What the runtime's kubelet needs to supervise a container, carried by the container itself
/// (label [`LABEL_SUPERVISION`]) as a pod carries its spec: the probes it was made with, not
/// whatever the manifests say by the time the kubelet looks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Supervision {
    pub(crate) workload: String,
    pub(crate) probes: Probes,
    pub(crate) published: Vec<Published>,
    pub(crate) stop_timeout_secs: i64,
}

impl ContainerPlan {
    /// A short hash of the whole plan, secrets included (the hash is not reversible).
    pub(crate) fn hash(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        crate::digest::short_hash(&[&json], 16)
    }

    /// What the kubelet needs of this plan.
    pub(crate) fn supervision(&self) -> Supervision {
        Supervision {
            workload: self.workload.clone(),
            probes: self.probes.clone(),
            published: self.published.clone(),
            stop_timeout_secs: self.stop_timeout_secs,
        }
    }

    /// Whether a volume needs its root made writable before the container starts (which only a
    /// process running as root can do).
    pub(crate) fn needs_volume_setup(&self) -> bool {
        self.mounts
            .iter()
            .any(|m| !matches!(m.source, VolumeSource::MemoryEmptyDir { .. }))
    }

    /// The Engine API's create request for this plan.
    pub(crate) fn create_body(&self, names: &Names) -> ContainerCreateBody {
        let mut labels: HashMap<String, String> = self.labels.clone().into_iter().collect();
        labels.insert(LABEL_PLAN.to_owned(), self.hash());
        labels.insert(
            LABEL_SUPERVISION.to_owned(),
            serde_json::to_string(&self.supervision()).unwrap_or_default(),
        );
        let volume_labels = HashMap::from([(LABEL_STACK.to_owned(), names.stack().to_owned())]);
        let mounts: Vec<Mount> = self
            .mounts
            .iter()
            .map(|mount| {
                let (source, driver_config) = match &mount.source {
                    VolumeSource::EmptyDir => (None, None),
                    VolumeSource::MemoryEmptyDir { size_bytes } => {
                        (None, Some(tmpfs_driver(*size_bytes, self.fs_group)))
                    }
                    VolumeSource::Claim { volume } => (Some(volume.clone()), None),
                };
                Mount {
                    target: Some(mount.target.clone()),
                    source,
                    typ: Some(MountType::VOLUME),
                    read_only: Some(mount.read_only),
                    volume_options: Some(MountVolumeOptions {
                        // A Kubernetes volume starts empty: nothing of the image is copied in.
                        no_copy: Some(true),
                        labels: source_is_anonymous(&mount.source).then(|| volume_labels.clone()),
                        driver_config,
                        subpath: mount.sub_path.clone(),
                    }),
                    ..Mount::default()
                }
            })
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
            group_add: (!self.groups.is_empty())
                .then(|| self.groups.iter().map(ToString::to_string).collect()),
            memory: self.memory_bytes,
            nano_cpus: self.nano_cpus,
            network_mode: Some(names.network()),
            // The engine restarts a process that exits, as the kubelet does with restartPolicy
            // Always; liveness failures are the runtime's kubelet's to act on.
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".to_owned()),
                config: Some(HashMap::from([
                    ("max-size".to_owned(), self.log.max_size_bytes.to_string()),
                    ("max-file".to_owned(), self.log.max_files.to_string()),
                ])),
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
            working_dir: self.working_dir.clone(),
            env: Some(self.env.clone()),
            user: self.user.clone(),
            labels: Some(labels),
            exposed_ports: Some(exposed),
            hostname: Some(self.workload.clone()),
            stop_timeout: Some(self.stop_timeout_secs),
            host_config: Some(host_config),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(names.network(), endpoint)])),
            }),
            ..ContainerCreateBody::default()
        }
    }
}

fn source_is_anonymous(source: &VolumeSource) -> bool {
    !matches!(source, VolumeSource::Claim { .. })
}

/// A memory-backed `emptyDir`: a tmpfs the engine mounts before the container sees it, with the
/// mode and group the kubelet gives one (world-writable with the sticky bit; with `fsGroup`,
/// that group and the set-group-id bit). A tmpfs mounted by the container runtime itself would
/// take the mode of the image's directory at that path instead.
fn tmpfs_driver(size_bytes: i64, fs_group: Option<FsGroup>) -> MountVolumeOptionsDriverConfig {
    let mut options = match fs_group {
        Some(group) => format!("mode=3777,gid={}", group.gid),
        None => "mode=1777".to_owned(),
    };
    if size_bytes > 0 {
        options = format!("{options},size={size_bytes}");
    }
    MountVolumeOptionsDriverConfig {
        name: Some("local".to_owned()),
        options: Some(HashMap::from([
            ("type".to_owned(), "tmpfs".to_owned()),
            ("device".to_owned(), "tmpfs".to_owned()),
            ("o".to_owned(), options),
        ])),
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
    /// Log rotation (`WANDER_LOG_MAX_SIZE`, `WANDER_LOG_MAX_FILES`).
    pub(crate) log: LogLimits,
}

/// Plans the container of one workload.
pub(crate) fn plan(workload: &Workload, inputs: &Inputs<'_>) -> anyhow::Result<ContainerPlan> {
    let what = |detail: &str| format!("{}: {detail}", workload.name);
    super::supported::check(&workload.pod_spec)
        .map_err(|err| anyhow!("{} ({}): {err}", workload.name, workload.file))?;
    let pod = &workload.pod_spec;
    let [container] = pod.containers.as_slice() else {
        bail!(
            "{}: the docker runtime runs pods of exactly one container; this one has {}",
            workload.name,
            pod.containers.len()
        );
    };

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
    let fs_group = pod_sc.and_then(|s| s.fs_group).map(|gid| FsGroup {
        gid,
        only_on_root_mismatch: pod_sc.and_then(|s| s.fs_group_change_policy.as_deref())
            == Some("OnRootMismatch"),
    });
    let mut groups: Vec<i64> = fs_group.iter().map(|g| g.gid).collect();
    for gid in pod_sc
        .and_then(|s| s.supplemental_groups.as_ref())
        .into_iter()
        .flatten()
    {
        if !groups.contains(gid) {
            groups.push(*gid);
        }
    }
    let read_only_root = sc.and_then(|s| s.read_only_root_filesystem) == Some(true);
    let drop_all_capabilities = sc
        .and_then(|s| s.capabilities.as_ref())
        .and_then(|c| c.drop.as_ref())
        .is_some_and(|d| d.iter().any(|cap| cap == "ALL"));
    let no_new_privileges = sc.and_then(|s| s.allow_privilege_escalation) == Some(false);

    let mut mounts = Vec::new();
    let mut file_mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let mut read_only = mount.read_only == Some(true);
        let sub_path = mount.sub_path.clone().filter(|p| !p.is_empty());
        if let Some(sub) = &sub_path
            && (sub.starts_with('/') || sub.split('/').any(|part| part == ".."))
        {
            bail!(what(&format!(
                "volumeMounts {}: subPath {sub:?} must be a relative path inside the volume",
                mount.name
            )));
        }
        let pod_volume = pod.volumes.iter().flatten().find(|v| v.name == mount.name);
        let source = if let Some(volume) = pod_volume {
            if let Some(empty_dir) = &volume.empty_dir {
                match empty_dir.medium.as_deref().unwrap_or_default() {
                    "" => VolumeSource::EmptyDir,
                    "Memory" => VolumeSource::MemoryEmptyDir {
                        size_bytes: match &empty_dir.size_limit {
                            Some(q) => memory_bytes(q).with_context(|| what(&volume.name))?,
                            None => 0,
                        },
                    },
                    other => bail!(what(&format!(
                        "volume {}: emptyDir.medium {other:?} is not one Kubernetes knows; use \"\" or \"Memory\"",
                        volume.name
                    ))),
                }
            } else if let Some(claim) = &volume.persistent_volume_claim {
                // A claim used read-only makes every mount of it read-only.
                if claim.read_only == Some(true) {
                    read_only = true;
                }
                VolumeSource::Claim {
                    volume: inputs.names.volume(&claim.claim_name, None),
                }
            } else if volume.config_map.is_some() || volume.secret.is_some() {
                let files = volume_files(volume, inputs).with_context(|| what(&volume.name))?;
                file_mounts.push(FileMount {
                    host_dir: inputs
                        .files_root
                        .join(inputs.names.container(&workload.name))
                        .join(&volume.name),
                    target: mount.mount_path.clone(),
                    sub_path,
                    files,
                    group: fs_group.map(|g| g.gid),
                });
                continue;
            } else {
                bail!(what(&format!(
                    "volume {} is neither an emptyDir, a claim, a ConfigMap nor a Secret, which the docker runtime does not support",
                    volume.name
                )));
            }
        } else if workload
            .volume_claim_templates
            .iter()
            .any(|t| t.metadata.name.as_deref() == Some(mount.name.as_str()))
        {
            VolumeSource::Claim {
                volume: inputs.names.volume(&mount.name, Some(&workload.name)),
            }
        } else {
            bail!(what(&format!("mount {} names no volume", mount.name)));
        };
        mounts.push(VolumeMount {
            name: mount.name.clone(),
            target: mount.mount_path.clone(),
            source,
            read_only,
            sub_path,
        });
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

    let probes = probe::probes_of(container).with_context(|| what("probes"))?;
    let stop_timeout_secs = match pod.termination_grace_period_seconds {
        None => DEFAULT_GRACE_SECS,
        Some(secs) if secs >= 0 => secs,
        Some(secs) => bail!(what(&format!(
            "terminationGracePeriodSeconds must not be negative, not {secs}"
        ))),
    };

    let mut labels: BTreeMap<String, String> = workload.labels.clone();
    labels.insert(LABEL_STACK.to_owned(), inputs.names.stack().to_owned());
    labels.insert(LABEL_WORKLOAD.to_owned(), workload.name.clone());

    Ok(ContainerPlan {
        workload: workload.name.clone(),
        container_name: inputs.names.container(&workload.name),
        image,
        entrypoint,
        cmd,
        working_dir: container.working_dir.clone().filter(|d| !d.is_empty()),
        env,
        user,
        groups,
        read_only_root,
        drop_all_capabilities,
        no_new_privileges,
        mounts,
        file_mounts,
        fs_group,
        aliases,
        published,
        memory_bytes,
        nano_cpus,
        probes,
        stop_timeout_secs,
        log: inputs.log,
        labels,
    })
}

/// The files of a ConfigMap or Secret volume (all keys, or the `items` chosen, under their
/// paths), each with its mode: the item's `mode`, else the volume's `defaultMode`, else 0644.
fn volume_files(
    volume: &k8s_openapi::api::core::v1::Volume,
    inputs: &Inputs<'_>,
) -> anyhow::Result<BTreeMap<String, FileEntry>> {
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
    let mode_of = |value: Option<i32>, field: &str| {
        u32::try_from(value.unwrap_or(0o644))
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| anyhow!("{field} must be between 0 and 0777 (511)"))
    };
    let default_mode = mode_of(default_mode, "defaultMode")?;
    match items {
        None => Ok(data
            .into_iter()
            .map(|(key, content)| {
                (
                    key,
                    FileEntry {
                        content,
                        mode: default_mode,
                    },
                )
            })
            .collect()),
        Some(items) => items
            .iter()
            .map(|item| {
                let content = data
                    .get(&item.key)
                    .ok_or_else(|| anyhow!("no key {} to project", item.key))?;
                if item.path.starts_with('/')
                    || item
                        .path
                        .split('/')
                        .any(|part| part == ".." || part.is_empty())
                {
                    bail!("the item path {:?} must stay inside the volume", item.path);
                }
                let mode = match item.mode {
                    Some(_) => mode_of(item.mode, &format!("items {}: mode", item.key))?,
                    None => default_mode,
                };
                Ok((
                    item.path.clone(),
                    FileEntry {
                        content: content.clone(),
                        mode,
                    },
                ))
            })
            .collect(),
    }
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
    use crate::runtime::docker::probe::{Check, Probe};

    struct Fixture {
        stack: Stack,
        names: Names,
        secrets: Secrets,
        images: BTreeMap<String, String>,
    }

    impl Fixture {
        fn new() -> Self {
            let stack = Stack::of_repository();
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
                    log: LogLimits::default(),
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
        assert_eq!(
            api.mounts,
            [VolumeMount {
                name: "tmp".into(),
                target: "/tmp".into(),
                source: VolumeSource::EmptyDir,
                read_only: false,
                sub_path: None,
            }]
        );
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
            api.probes.readiness.as_ref().map(|r| &r.check),
            Some(&Check::Http {
                port: 8080,
                path: "/health".into()
            })
        );
        assert_eq!(
            api.probes.startup.as_ref().map(|r| &r.check),
            Some(&Check::Http {
                port: 8080,
                path: "/livez".into()
            })
        );
        assert!(api.probes.liveness.is_some());
        assert_eq!(
            api.stop_timeout_secs, 30,
            "Kubernetes' default grace period"
        );
        assert_eq!(api.log, LogLimits::default());
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
        let source = |target: &str| {
            postgres
                .mounts
                .iter()
                .find(|m| m.target == target)
                .map(|m| m.source.clone())
        };
        assert_eq!(
            source("/var/lib/postgresql/data"),
            Some(VolumeSource::Claim {
                volume: "wander-data-postgres".into()
            })
        );
        assert_eq!(source("/var/run/postgresql"), Some(VolumeSource::EmptyDir));
        assert_eq!(postgres.groups, [999], "fsGroup is a supplementary group");
        assert!(postgres.fs_group.is_some_and(|g| g.gid == 999));
        assert!(
            postgres.published.is_empty(),
            "the database is not published"
        );
        assert_eq!(env(&postgres, "POSTGRES_PASSWORD"), Some("pw0"));
        assert_eq!(postgres.user.as_deref(), Some("999:999"));
        let Some(Probe {
            check: Check::Exec(command),
            ..
        }) = &postgres.probes.liveness
        else {
            panic!("{:?}", postgres.probes)
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
        assert!(
            files.files["redis.conf"]
                .content
                .contains("maxmemory-policy allkeys-lru")
        );
        assert_eq!(files.files["redis.conf"].mode, 0o644);
        assert_eq!(files.group, Some(999), "fsGroup owns the files");
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
            files: BTreeMap::from([(
                "redis.conf".to_owned(),
                FileEntry {
                    content: "port 1\n".to_owned(),
                    mode: 0o640,
                },
            )]),
            group: None,
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
    fn pod_fields_map_as_the_kubelet_reads_them() {
        use k8s_openapi::api::core::v1::{
            EmptyDirVolumeSource, PersistentVolumeClaimVolumeSource, Volume,
            VolumeMount as K8sMount,
        };
        let fixture = Fixture::new();
        let mut web = fixture.stack.workload("web").unwrap().clone();
        let pod = &mut web.pod_spec;
        pod.termination_grace_period_seconds = Some(5);
        let security = pod.security_context.as_mut().unwrap();
        security.fs_group = Some(2000);
        security.fs_group_change_policy = Some("OnRootMismatch".into());
        security.supplemental_groups = Some(vec![3000, 2000]);
        pod.volumes.as_mut().unwrap().extend([
            Volume {
                name: "shared".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: "shared".into(),
                    read_only: Some(true),
                }),
                ..Volume::default()
            },
            Volume {
                name: "shm".into(),
                empty_dir: Some(EmptyDirVolumeSource {
                    medium: Some("Memory".into()),
                    size_limit: Some(Quantity("64Mi".into())),
                }),
                ..Volume::default()
            },
        ]);
        let container = &mut pod.containers[0];
        container.working_dir = Some("/srv".into());
        container.volume_mounts.as_mut().unwrap().extend([
            K8sMount {
                name: "shared".into(),
                mount_path: "/shared".into(),
                ..K8sMount::default()
            },
            K8sMount {
                name: "shm".into(),
                mount_path: "/dev/shm".into(),
                ..K8sMount::default()
            },
        ]);
        let plan = fixture.plan_of(&web).unwrap();
        assert_eq!(plan.stop_timeout_secs, 5);
        assert_eq!(plan.working_dir.as_deref(), Some("/srv"));
        assert_eq!(plan.groups, [2000, 3000], "fsGroup first, no duplicates");
        assert_eq!(
            plan.fs_group,
            Some(FsGroup {
                gid: 2000,
                only_on_root_mismatch: true
            })
        );
        let shared = plan.mounts.iter().find(|m| m.target == "/shared").unwrap();
        assert!(
            shared.read_only,
            "a claim used read-only is mounted read-only"
        );
        assert_eq!(
            shared.source,
            VolumeSource::Claim {
                volume: "wander-shared".into()
            }
        );
        let shm = plan.mounts.iter().find(|m| m.target == "/dev/shm").unwrap();
        assert_eq!(
            shm.source,
            VolumeSource::MemoryEmptyDir {
                size_bytes: 64 * 1024 * 1024
            }
        );
        let body = plan.create_body(&fixture.names);
        assert_eq!(body.stop_timeout, Some(5));
        assert_eq!(body.working_dir.as_deref(), Some("/srv"));
        let host = body.host_config.unwrap();
        assert_eq!(host.group_add, Some(vec!["2000".into(), "3000".into()]));
        let mounts = host.mounts.unwrap();
        let shm = mounts
            .iter()
            .find(|m| m.target.as_deref() == Some("/dev/shm"))
            .unwrap();
        let driver = shm
            .volume_options
            .as_ref()
            .unwrap()
            .driver_config
            .as_ref()
            .unwrap();
        assert_eq!(
            driver.options.as_ref().unwrap()["o"],
            "mode=3777,gid=2000,size=67108864"
        );
        let log = host.log_config.unwrap();
        assert_eq!(log.typ.as_deref(), Some("json-file"));
        assert_eq!(log.config.unwrap()["max-size"], "10485760");

        // What the kubelet refuses, refused here too.
        for (edit, expected) in [
            (
                (|w: &mut Workload| w.pod_spec.termination_grace_period_seconds = Some(-1))
                    as fn(&mut Workload),
                "must not be negative",
            ),
            (
                |w: &mut Workload| {
                    w.pod_spec.containers[0].volume_mounts.as_mut().unwrap()[0].sub_path =
                        Some("../etc".into());
                },
                "must be a relative path inside the volume",
            ),
            (
                |w: &mut Workload| w.pod_spec.containers[0].tty = Some(true),
                "containers[0].tty: the docker runtime does not carry out this field",
            ),
        ] {
            let mut broken = fixture.stack.workload("web").unwrap().clone();
            edit(&mut broken);
            let err = format!("{:#}", fixture.plan_of(&broken).unwrap_err());
            assert!(err.contains(expected), "{err}");
        }
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
