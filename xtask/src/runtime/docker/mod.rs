//! The docker runtime: the stack's manifests run as containers on one Docker network, like
//! `podman kube play` (docs/design.md, "Two runtimes, one set of manifests"). Everything it
//! creates is labelled with the stack, so `status`, `logs` and `down` find exactly what this
//! tool owns.

pub(crate) mod database;
pub(crate) mod down;
pub(crate) mod exec;
#[cfg(test)]
mod fidelity_tests;
pub(crate) mod kubelet;
pub(crate) mod logs;
pub(crate) mod names;
pub(crate) mod plan;
pub(crate) mod port_forward;
pub(crate) mod probe;
pub(crate) mod readiness;
pub(crate) mod replace;
pub(crate) mod session;
pub(crate) mod shell;
pub(crate) mod status;
pub(crate) mod supported;
pub(crate) mod up;
pub(crate) mod volumes;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bollard::Docker;
use bollard::models::{ContainerInspectResponse, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptions,
};
use futures_util::StreamExt as _;

use crate::docker::is_not_found;
use names::{LABEL_PLAN, LABEL_STACK, LABEL_WORKLOAD, Names};
use plan::ContainerPlan;

/// What applying a plan did to its container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Running with this very plan already: left alone.
    Unchanged,
    /// Existed with this plan but was stopped: started again.
    Started,
    /// Did not exist: created and started.
    Created,
    /// Ran an older plan (new image, new settings): replaced.
    Replaced,
}

/// One container of the stack as the engine reports it.
#[derive(Debug, Clone)]
pub(crate) struct Container {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) workload: String,
    pub(crate) image: String,
    /// `running`, `exited`, `restarting`, ...
    pub(crate) state: String,
    pub(crate) started_at: Option<String>,
    pub(crate) restart_count: i64,
    /// `127.0.0.1:8080->8080`
    pub(crate) ports: Vec<String>,
    pub(crate) ip: Option<String>,
}

/// The docker runtime of one stack.
#[derive(Debug, Clone)]
pub(crate) struct DockerRuntime {
    docker: Docker,
    names: Names,
}

impl DockerRuntime {
    /// The runtime for the stack `names` was made for, over an engine already connected; `down`
    /// needs no more than this, so it works with broken manifests.
    pub(crate) fn new(docker: Docker, names: Names) -> Self {
        Self { docker, names }
    }

    /// The engine itself, for what the runtime does not wrap: execs, image builds, image
    /// inspection.
    pub(crate) fn docker(&self) -> &Docker {
        &self.docker
    }

    /// How the stack's objects are named, for code that addresses one of its containers or its
    /// network directly.
    pub(crate) fn names(&self) -> &Names {
        &self.names
    }

    fn labels(&self) -> HashMap<String, String> {
        HashMap::from([(LABEL_STACK.to_owned(), self.names.stack().to_owned())])
    }

    /// Creates the stack's network unless it exists.
    pub(crate) async fn ensure_network(&self) -> anyhow::Result<bool> {
        let name = self.names.network();
        match self.docker.inspect_network(&name, None).await {
            Ok(network) => {
                let ours = network
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_STACK))
                    .is_some_and(|s| s == self.names.stack());
                if !ours {
                    bail!(
                        "a Docker network named {name} exists but was not created by this tool; remove it (`docker network rm {name}`) or choose another stack name with WANDER_STACK"
                    );
                }
                Ok(false)
            }
            Err(err) if is_not_found(&err) => {
                self.docker
                    .create_network(NetworkCreateRequest {
                        name: name.clone(),
                        driver: Some("bridge".to_owned()),
                        labels: Some(self.labels()),
                        ..NetworkCreateRequest::default()
                    })
                    .await
                    .with_context(|| format!("creating network {name}"))?;
                Ok(true)
            }
            Err(err) => Err(err).with_context(|| format!("inspecting network {name}")),
        }
    }

    /// Creates the claims' volumes a plan mounts, unless they exist; returns those made now.
    pub(crate) async fn ensure_volumes(
        &self,
        plan: &ContainerPlan,
    ) -> anyhow::Result<BTreeSet<String>> {
        let mut made = BTreeSet::new();
        for mount in &plan.mounts {
            if let plan::VolumeSource::Claim { volume } = &mount.source
                && self.ensure_volume(volume).await?
            {
                made.insert(volume.clone());
            }
        }
        Ok(made)
    }

    /// Creates the volume `name` unless it exists; one of that name made by someone else is
    /// refused, as for the network: its data is not the stack's to write or to delete. Returns
    /// whether it was made now.
    async fn ensure_volume(&self, name: &str) -> anyhow::Result<bool> {
        match self.docker.inspect_volume(name).await {
            Ok(volume) => {
                if volume.labels.get(LABEL_STACK).map(String::as_str) != Some(self.names.stack()) {
                    bail!(
                        "a Docker volume named {name} exists but was not created by this tool; keep what you need from it and remove it (`docker volume rm {name}`), or choose another stack name with WANDER_STACK"
                    );
                }
                Ok(false)
            }
            Err(err) if is_not_found(&err) => {
                self.docker
                    .create_volume(VolumeCreateRequest {
                        name: Some(name.to_owned()),
                        labels: Some(self.labels()),
                        ..VolumeCreateRequest::default()
                    })
                    .await
                    .with_context(|| format!("creating volume {name}"))?;
                Ok(true)
            }
            Err(err) => Err(err).with_context(|| format!("inspecting volume {name}")),
        }
    }

    /// Makes the workload's container run this plan, touching it only when needed.
    pub(crate) async fn apply(&self, plan: &ContainerPlan) -> anyhow::Result<Applied> {
        let name = &plan.container_name;
        let existing = self.inspect(name).await?;
        let applied = match existing {
            Some(current) => {
                self.check_ours(name, &current)?;
                let labels = current.config.as_ref().and_then(|c| c.labels.as_ref());
                let same_plan = labels
                    .and_then(|l| l.get(LABEL_PLAN))
                    .is_some_and(|h| *h == plan.hash());
                let running = current
                    .state
                    .as_ref()
                    .and_then(|s| s.running)
                    .unwrap_or(false);
                if same_plan && running {
                    return Ok(Applied::Unchanged);
                }
                if same_plan {
                    self.start(name).await?;
                    return Ok(Applied::Started);
                }
                self.stop_and_remove(name, current_grace(&current)).await?;
                Applied::Replaced
            }
            None => Applied::Created,
        };
        self.create_and_start(plan, applied).await
    }

    /// Replaces the workload's container with a new one of this plan, even when it runs this
    /// very plan: `restart`. A workload without a container gets one.
    pub(crate) async fn recreate(&self, plan: &ContainerPlan) -> anyhow::Result<Applied> {
        let name = &plan.container_name;
        let applied = match self.inspect(name).await? {
            Some(current) => {
                self.check_ours(name, &current)?;
                self.stop_and_remove(name, current_grace(&current)).await?;
                Applied::Replaced
            }
            None => Applied::Created,
        };
        self.create_and_start(plan, applied).await
    }

    /// Refuses to touch a container of the stack's name that this tool did not create.
    fn check_ours(&self, name: &str, current: &ContainerInspectResponse) -> anyhow::Result<()> {
        let ours = current
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(LABEL_STACK))
            .is_some_and(|s| s == self.names.stack());
        if !ours {
            bail!(
                "a container named {name} exists but was not created by this tool; remove it (`docker rm -f {name}`) or choose another stack name with WANDER_STACK"
            );
        }
        Ok(())
    }

    /// Creates and starts the plan's container (its volumes and files first); `applied` is what
    /// that means to the caller. A create sent by an earlier run that was interrupted can land
    /// after our look: the container it made for this same plan is taken over (and started).
    async fn create_and_start(
        &self,
        plan: &ContainerPlan,
        applied: Applied,
    ) -> anyhow::Result<Applied> {
        let name = &plan.container_name;
        self.check_engine_supports(plan)?;
        let new_volumes = self.ensure_volumes(plan).await?;
        for files in &plan.file_mounts {
            files.write()?;
        }
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let created = self
            .docker
            .create_container(Some(options), plan.create_body(&self.names))
            .await;
        let applied = match created {
            Ok(created) => {
                if let Err(err) = volumes::prepare(self, plan, &created.id, &new_volumes).await {
                    // Not started with volumes it cannot write: the next run makes it afresh.
                    let _ = self.remove_container(name).await;
                    return Err(err);
                }
                applied
            }
            Err(err) if crate::docker::is_conflict(&err) && self.is_ours(name, plan).await? => {
                Applied::Started
            }
            Err(err) => {
                return Err(err).with_context(|| format!("creating container {name}"));
            }
        };
        self.start(name).await?;
        Ok(applied)
    }

    /// Whether the container `name` is this stack's, created from `plan` as it is now.
    async fn is_ours(&self, name: &str, plan: &ContainerPlan) -> anyhow::Result<bool> {
        let current = self.inspect(name).await?;
        let labels = current
            .as_ref()
            .and_then(|c| c.config.as_ref())
            .and_then(|c| c.labels.as_ref());
        Ok(labels.is_some_and(|l| {
            l.get(LABEL_STACK).is_some_and(|s| s == self.names.stack())
                && l.get(LABEL_PLAN).is_some_and(|h| *h == plan.hash())
        }))
    }

    async fn start(&self, name: &str) -> anyhow::Result<()> {
        match self.docker.start_container(name, None).await {
            // 304: it was running already.
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(err) => Err(explain_start_error(name, &err)),
        }
    }

    /// Refuses what this engine would silently get wrong: a volume `subPath` needs API 1.45
    /// (Docker Engine 26), and an older engine ignores the option, mounting the whole volume.
    fn check_engine_supports(&self, plan: &ContainerPlan) -> anyhow::Result<()> {
        let version = self.docker.client_version();
        let recent = (version.major_version, version.minor_version) >= (1, 45);
        if let Some(mount) = plan.mounts.iter().find(|m| m.sub_path.is_some())
            && !recent
        {
            bail!(
                "{}: volumeMounts {}: subPath on a volume needs Docker Engine 26 or newer (API 1.45); this engine speaks API {}.{}. Upgrade the engine, or mount the whole volume",
                plan.workload,
                mount.name,
                version.major_version,
                version.minor_version
            );
        }
        Ok(())
    }

    /// Stops a container as Kubernetes stops a pod's (SIGTERM, then SIGKILL after its grace
    /// period), then removes it with its `emptyDir` volumes.
    async fn stop_and_remove(&self, name: &str, grace_secs: i64) -> anyhow::Result<()> {
        let options = bollard::query_parameters::StopContainerOptionsBuilder::new()
            .t(grace_secs.try_into().unwrap_or(i32::MAX))
            .build();
        match self.docker.stop_container(name, Some(options)).await {
            Err(err) if is_not_found(&err) => return Ok(()),
            // Stopped; or 304, not running; or anything else: the removal below forces it.
            Ok(()) | Err(_) => {}
        }
        self.remove_container(name).await
    }

    /// Removes a container at once, with its anonymous volumes (its `emptyDir`s); the claims'
    /// named volumes stay.
    async fn remove_container(&self, name: &str) -> anyhow::Result<()> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            Err(err) => Err(err).with_context(|| format!("removing container {name}")),
        }
    }

    /// The engine's view of one container, if it exists.
    pub(crate) async fn inspect(
        &self,
        name: &str,
    ) -> anyhow::Result<Option<ContainerInspectResponse>> {
        match self.docker.inspect_container(name, None).await {
            Ok(found) => Ok(Some(found)),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(err).with_context(|| format!("inspecting container {name}")),
        }
    }

    /// Whether the container `name` exists and its process runs ([`is_running`]).
    pub(crate) async fn is_running(&self, name: &str) -> anyhow::Result<bool> {
        Ok(self.inspect(name).await?.as_ref().is_some_and(is_running))
    }

    /// A running container's address on the stack network (`None`: absent or stopped).
    pub(crate) async fn address(&self, name: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .inspect(name)
            .await?
            .and_then(|details| describe(&details, &self.names.network()).ip))
    }

    /// Every container of this stack, running or not, by workload name.
    pub(crate) async fn containers(&self) -> anyhow::Result<Vec<Container>> {
        let filters = HashMap::from([("label", vec![self.names.filter()])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .context("listing containers")?;
        let mut found = Vec::new();
        for summary in summaries {
            let Some(id) = summary.id else { continue };
            let Some(details) = self.inspect(&id).await? else {
                continue;
            };
            found.push(describe(&details, &self.names.network()));
        }
        found.sort_by(|a, b| a.workload.cmp(&b.workload));
        Ok(found)
    }

    /// The last `lines` lines of a container's output (stdout and stderr interleaved).
    pub(crate) async fn last_logs(&self, name: &str, lines: usize) -> String {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = self.docker.logs(name, Some(options));
        let mut text = Vec::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.extend_from_slice(&chunk.into_bytes());
        }
        String::from_utf8_lossy(&text).trim_end().to_owned()
    }

    /// Removes this stack's containers and network, and its volumes when asked. Returns what was
    /// removed: (containers, networks, volumes).
    pub(crate) async fn down(&self, volumes: bool) -> anyhow::Result<(usize, usize, usize)> {
        let containers = self.containers().await?;
        // In parallel: each may take its grace period to stop.
        let removals = containers.iter().map(|container| async {
            let grace = self
                .inspect(&container.id)
                .await?
                .as_ref()
                .map_or(0, current_grace);
            self.stop_and_remove(&container.name, grace).await
        });
        for removed in futures_util::future::join_all(removals).await {
            removed?;
        }
        let filters = HashMap::from([("label", vec![self.names.filter()])]);
        let networks = self
            .docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .context("listing networks")?;
        let mut removed_networks = 0;
        for network in networks {
            let Some(name) = network.name else { continue };
            match self.docker.remove_network(&name).await {
                Ok(()) => removed_networks += 1,
                Err(err) if is_not_found(&err) => {}
                Err(err) => return Err(err).with_context(|| format!("removing network {name}")),
            }
        }
        let mut removed_volumes = 0;
        if volumes {
            let list = self
                .docker
                .list_volumes(Some(
                    ListVolumesOptionsBuilder::default()
                        .filters(&filters)
                        .build(),
                ))
                .await
                .context("listing volumes")?;
            for volume in list.volumes.into_iter().flatten() {
                match self
                    .docker
                    .remove_volume(&volume.name, None::<RemoveVolumeOptions>)
                    .await
                {
                    Ok(()) => removed_volumes += 1,
                    Err(err) if is_not_found(&err) => {}
                    Err(err) => {
                        return Err(err)
                            .with_context(|| format!("removing volume {}", volume.name));
                    }
                }
            }
        }
        Ok((containers.len(), removed_networks, removed_volumes))
    }

    /// Waits until the plan's container passes its readiness probe, failing early when the
    /// container exits or restarts (with its last log lines) and at `timeout`.
    pub(crate) async fn wait_ready(
        &self,
        plan: &ContainerPlan,
        timeout: Duration,
        on_progress: &(dyn Fn(&str) + Sync),
    ) -> anyhow::Result<Duration> {
        readiness::wait(self, plan, timeout, on_progress).await
    }
}

/// Whether the container's process runs: the engine reports `running` also while it restarts
/// one.
pub(crate) fn is_running(details: &ContainerInspectResponse) -> bool {
    details
        .state
        .as_ref()
        .is_some_and(|s| s.running == Some(true) && s.restarting != Some(true))
}

/// The grace period a container was made with (`terminationGracePeriodSeconds`).
fn current_grace(details: &ContainerInspectResponse) -> i64 {
    details
        .config
        .as_ref()
        .and_then(|c| c.stop_timeout)
        .unwrap_or(10)
}

/// The parts of an inspection that `status` and the waits need.
fn describe(details: &ContainerInspectResponse, network: &str) -> Container {
    let labels = details.config.as_ref().and_then(|c| c.labels.as_ref());
    let state = details.state.as_ref();
    let ports = details
        .network_settings
        .as_ref()
        .and_then(|n| n.ports.as_ref())
        .map(|ports| {
            let mut out: Vec<String> = ports
                .iter()
                .flat_map(|(container_port, bindings)| {
                    bindings.iter().flatten().map(move |b| {
                        format!(
                            "{}:{}->{}",
                            b.host_ip.as_deref().unwrap_or(""),
                            b.host_port.as_deref().unwrap_or(""),
                            container_port.trim_end_matches("/tcp")
                        )
                    })
                })
                .collect();
            out.sort();
            out
        })
        .unwrap_or_default();
    let ip = details
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .and_then(|n| n.get(network))
        .and_then(|e| e.ip_address.clone())
        .filter(|ip| !ip.is_empty());
    Container {
        id: details.id.clone().unwrap_or_default(),
        name: details
            .name
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        workload: labels
            .and_then(|l| l.get(LABEL_WORKLOAD))
            .cloned()
            .unwrap_or_default(),
        image: details
            .config
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_default(),
        state: state
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        started_at: state.and_then(|s| s.started_at.clone()),
        restart_count: details.restart_count.unwrap_or(0),
        ports,
        ip,
    }
}

/// Turns the engine's start errors into what the user should do, port clashes above all.
fn explain_start_error(name: &str, err: &bollard::errors::Error) -> anyhow::Error {
    let text = err.to_string();
    if text.contains("address already in use") || text.contains("port is already allocated") {
        let port = text
            .split(|c: char| !c.is_ascii_digit() && c != '.' && c != ':')
            .filter_map(|part| part.rsplit(':').next())
            .filter_map(|p| p.parse::<u16>().ok())
            .find(|p| *p > 0);
        let which = port.map_or_else(String::new, |p| format!(" {p}"));
        return anyhow::anyhow!(
            "starting {name}: host port{which} is already in use; run `cargo xtask doctor` to see which process holds it, free it, and run `cargo xtask dev` again"
        );
    }
    anyhow::anyhow!("starting container {name}: {text}")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::images::toolbox::testing::with_engine;
    use crate::stack::Stack;

    #[tokio::test]
    async fn a_network_or_volume_of_the_stacks_name_made_by_someone_else_is_refused() {
        let docker = crate::docker::connect().await.unwrap();
        let names = Names::new(format!("t{}-foreign", std::process::id()));
        let runtime = DockerRuntime::new(docker.clone(), names.clone());
        let volume = names.volume("data", Some("postgres"));
        let network = names.network();
        docker
            .create_network(NetworkCreateRequest {
                name: network.clone(),
                ..NetworkCreateRequest::default()
            })
            .await
            .unwrap();
        docker
            .create_volume(VolumeCreateRequest {
                name: Some(volume.clone()),
                ..VolumeCreateRequest::default()
            })
            .await
            .unwrap();
        let network_err = runtime.ensure_network().await.map_err(|e| e.to_string());
        let volume_err = runtime
            .ensure_volume(&volume)
            .await
            .map_err(|e| e.to_string());
        // Ours is used as it is.
        let ours = names.volume("cache", None);
        let made = runtime.ensure_volume(&ours).await;
        let again = runtime.ensure_volume(&ours).await;
        let _ = docker.remove_network(&network).await;
        for name in [&volume, &ours] {
            let _ = docker
                .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
                .await;
        }
        let network_err = network_err.unwrap_err();
        assert!(
            network_err.contains("not created by this tool"),
            "{network_err}"
        );
        let volume_err = volume_err.unwrap_err();
        assert!(
            volume_err.contains("not created by this tool"),
            "{volume_err}"
        );
        assert!(
            volume_err.contains(&format!("docker volume rm {volume}")),
            "{volume_err}"
        );
        made.unwrap();
        again.unwrap();
    }

    /// The redis workload of the manifests as a plan running `sleep` in the toolbox image.
    fn sleeping_plan(names: &Names, toolbox: &str, files: &std::path::Path) -> ContainerPlan {
        let root = crate::context::Context::for_tests().root().to_owned();
        let stack = Stack::load(&root.join("manifests")).unwrap();
        let redis = stack.workload("redis").unwrap();
        let image = redis.pod_spec.containers[0].image.clone().unwrap();
        let secrets = serde_json::from_str(r#"{"postgres_password":"p","api_token":"t"}"#).unwrap();
        let inputs = plan::Inputs {
            stack: &stack,
            names,
            secrets: &secrets,
            images: &BTreeMap::from([(image, toolbox.to_owned())]),
            files_root: files,
            log: plan::LogLimits::default(),
        };
        let mut plan = plan::plan(redis, &inputs).unwrap();
        plan.entrypoint = None;
        plan.cmd = Some(vec!["sleep".into(), "600".into()]);
        plan.published.clear();
        plan.probes = probe::Probes::default();
        // `sleep` as the container's first process ignores SIGTERM: no grace to wait out.
        plan.stop_timeout_secs = 1;
        plan
    }

    #[tokio::test]
    async fn apply_leaves_starts_or_replaces_a_container_and_refuses_someone_elses() {
        with_engine("docker-apply", |docker, toolbox| async move {
            let names = Names::new(format!("t{}-apply", std::process::id()));
            let runtime = DockerRuntime::new(docker.clone(), names.clone());
            let files = tempfile::tempdir().unwrap();
            let plan = sleeping_plan(&names, &toolbox, files.path());
            let id = |runtime: DockerRuntime, name: String| async move {
                runtime.inspect(&name).await.unwrap().and_then(|c| c.id)
            };
            let name = plan.container_name.clone();
            let outcome = async {
                runtime.ensure_network().await?;
                let created = runtime.apply(&plan).await?;
                let first = id(runtime.clone(), name.clone()).await;
                let unchanged = runtime.apply(&plan).await?;
                // Stopped (a reboot, `docker stop`): the same container is started again.
                docker.stop_container(&name, None).await?;
                let started = runtime.apply(&plan).await?;
                let after_start = id(runtime.clone(), name.clone()).await;
                let running = runtime
                    .inspect(&name)
                    .await?
                    .as_ref()
                    .is_some_and(is_running);
                // Another plan: a new container.
                let mut other = plan.clone();
                other.cmd = Some(vec!["sleep".into(), "601".into()]);
                let replaced = runtime.apply(&other).await?;
                let after_replace = id(runtime.clone(), name.clone()).await;
                anyhow::Ok((
                    [created, unchanged, started, replaced],
                    first,
                    after_start,
                    running,
                    after_replace,
                ))
            }
            .await;
            runtime.down(true).await.unwrap();
            let (applied, first, after_start, running, after_replace) = outcome.unwrap();
            assert_eq!(
                applied,
                [
                    Applied::Created,
                    Applied::Unchanged,
                    Applied::Started,
                    Applied::Replaced
                ]
            );
            assert_eq!(after_start, first, "started, not recreated");
            assert!(running);
            assert_ne!(after_replace, first);

            // A container of our name that this tool did not make is refused, and left alone.
            let foreign = bollard::models::ContainerCreateBody {
                image: Some(toolbox.clone()),
                cmd: Some(vec!["sleep".into(), "600".into()]),
                ..bollard::models::ContainerCreateBody::default()
            };
            let options = CreateContainerOptionsBuilder::default().name(&name).build();
            let foreign_id = docker
                .create_container(Some(options), foreign)
                .await
                .unwrap()
                .id;
            let refused = runtime.apply(&plan).await.map_err(|e| format!("{e:#}"));
            let still_there = runtime.inspect(&name).await.unwrap().and_then(|c| c.id);
            let _ = docker
                .remove_container(
                    &foreign_id,
                    Some(RemoveContainerOptionsBuilder::default().force(true).build()),
                )
                .await;
            runtime.down(true).await.unwrap();
            let err = refused.unwrap_err();
            assert!(err.contains("was not created by this tool"), "{err}");
            assert!(err.contains(&format!("docker rm -f {name}")), "{err}");
            assert_eq!(still_there, Some(foreign_id));
        })
        .await;
    }

    #[tokio::test]
    async fn a_container_made_for_the_same_plan_behind_our_back_is_taken_over_and_no_other() {
        with_engine("docker-takeover", |docker, toolbox| async move {
            let names = Names::new(format!("t{}-takeover", std::process::id()));
            let runtime = DockerRuntime::new(docker, names.clone());
            let files = tempfile::tempdir().unwrap();
            let plan = sleeping_plan(&names, &toolbox, files.path());
            let outcome = async {
                runtime.ensure_network().await?;
                let first = runtime.create_and_start(&plan, Applied::Created).await?;
                // As if an interrupted run's create had landed after our look: same plan.
                let again = runtime.create_and_start(&plan, Applied::Created).await?;
                let mut other = plan.clone();
                other.cmd = Some(vec!["sleep".into(), "601".into()]);
                let refused = runtime.create_and_start(&other, Applied::Created).await;
                anyhow::Ok((first, again, refused.map_err(|err| format!("{err:#}"))))
            }
            .await;
            runtime.down(true).await.unwrap();
            let (first, again, refused) = outcome.unwrap();
            assert_eq!(first, Applied::Created);
            assert_eq!(again, Applied::Started);
            let err = refused.unwrap_err();
            assert!(err.contains("creating container"), "{err}");
            assert!(err.contains("409"), "{err}");
        })
        .await;
    }
}
