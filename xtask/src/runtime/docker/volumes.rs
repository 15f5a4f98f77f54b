//! Making a container's volumes writable as the kubelet makes them, before the container starts.
//!
//! On Kubernetes an `emptyDir` is a fresh directory of mode 0777, a claim from kind's
//! provisioner (local-path) one of mode 0777 too, and with `fsGroup` the kubelet gives each
//! volume to that group: group-writable, with the set-group-id bit on directories, so that files
//! made there belong to the group. A fresh Docker volume is owned by root with mode 0755 instead,
//! which a container running as another user cannot write to (Redis's snapshots failed so).
//!
//! Changing a folder's owner takes root, so a short-lived helper does it: the toolbox image,
//! running as root with no network, with the container's volumes mounted, removed once done.
//! It runs when a container is created (a pod's volumes are set up when the pod starts), not on
//! its restarts.

use std::collections::{BTreeSet, HashMap};

use anyhow::{Context as _, bail};
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder};
use futures_util::StreamExt as _;

use super::DockerRuntime;
use super::names::{LABEL_STACK, LABEL_VOLUME_SETUP};
use super::plan::{ContainerPlan, FsGroup, VolumeSource};

/// One volume the helper works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Job {
    /// The engine's name of the volume (anonymous volumes have generated ones).
    pub(crate) volume: String,
    pub(crate) kind: JobKind,
    /// A `subPath` to create in it when missing, as the kubelet does.
    pub(crate) sub_path: Option<String>,
}

/// What a volume needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobKind {
    /// A new `emptyDir`: mode 0777, then the `fsGroup`.
    EmptyDir,
    /// A claim whose volume was made just now: mode 0777 (as kind's provisioner makes its
    /// folders), then the `fsGroup`.
    NewClaim,
    /// A claim with data from earlier: the `fsGroup` over its files (all of them, or with
    /// `OnRootMismatch` only when the root is not right yet).
    Claim,
}

/// The jobs for a created container: `mounted` maps its mount targets to the engine's volume
/// names, `new_volumes` are the claims' volumes created for it.
pub(crate) fn jobs(
    plan: &ContainerPlan,
    mounted: &HashMap<String, String>,
    new_volumes: &BTreeSet<String>,
) -> anyhow::Result<Vec<Job>> {
    let mut jobs: Vec<Job> = Vec::new();
    for mount in &plan.mounts {
        let kind = match &mount.source {
            VolumeSource::MemoryEmptyDir { .. } => continue,
            VolumeSource::EmptyDir => JobKind::EmptyDir,
            VolumeSource::Claim { volume } if new_volumes.contains(volume) => JobKind::NewClaim,
            VolumeSource::Claim { .. } => JobKind::Claim,
        };
        let Some(volume) = mounted.get(&mount.target) else {
            bail!(
                "{}: the engine did not mount a volume at {}",
                plan.workload,
                mount.target
            );
        };
        if let Some(job) = jobs.iter_mut().find(|j| j.volume == *volume) {
            // The same volume mounted twice (two subPaths): one job, each folder made.
            if job.sub_path.is_none() {
                job.sub_path.clone_from(&mount.sub_path);
            }
            continue;
        }
        jobs.push(Job {
            volume: volume.clone(),
            kind,
            sub_path: mount.sub_path.clone(),
        });
    }
    Ok(jobs)
}

/// The helper's shell script for `jobs`, each volume mounted at `/v/<index>`.
pub(crate) fn script(jobs: &[Job], fs_group: Option<FsGroup>) -> String {
    let mut lines = vec!["set -eu".to_owned()];
    for (index, job) in jobs.iter().enumerate() {
        let root = format!("/v/{index}");
        let give_to_group = |gid: i64| {
            // The kubelet's walk: group ownership, group read and write, set-group-id folders.
            format!(
                "chgrp -hR {gid} {root} && chmod -R g+rwX {root} && find {root} -type d -exec chmod g+s {{}} +"
            )
        };
        match (job.kind, fs_group) {
            (JobKind::EmptyDir | JobKind::NewClaim, None) => {
                lines.push(format!("chmod 0777 {root}"));
            }
            (JobKind::EmptyDir | JobKind::NewClaim, Some(group)) => {
                lines.push(format!("chgrp {} {root} && chmod 2777 {root}", group.gid));
            }
            (JobKind::Claim, None) => {}
            (JobKind::Claim, Some(group)) if group.only_on_root_mismatch => {
                // As the kubelet's check: the root has the group, u+rwx, g+rwx and set-group-id.
                lines.push(format!(
                    "if [ \"$(stat -c %g {root})\" != {gid} ] || [ $(( 0$(stat -c %a {root}) & 02770 )) -ne $(( 02770 )) ]; then {walk}; fi",
                    gid = group.gid,
                    walk = give_to_group(group.gid)
                ));
            }
            (JobKind::Claim, Some(group)) => lines.push(give_to_group(group.gid)),
        }
        if let Some(sub) = &job.sub_path {
            // Made with the root's mode and owner, as the kubelet makes a missing subPath.
            let path = format!("{root}/{}", sh_quote(sub));
            lines.push(format!(
                "if [ ! -e {path} ]; then mkdir -p {path} && chmod \"$(stat -c %a {root})\" {path} && chown \"$(stat -c %u:%g {root})\" {path}; fi"
            ));
        }
    }
    lines.join("\n")
}

/// `text` as one word for `sh`.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Prepares the volumes of the created (not yet started) container `id`.
pub(crate) async fn prepare(
    runtime: &DockerRuntime,
    plan: &ContainerPlan,
    id: &str,
    new_volumes: &BTreeSet<String>,
) -> anyhow::Result<()> {
    if !plan.needs_volume_setup() {
        return Ok(());
    }
    let docker = runtime.docker();
    let details = docker
        .inspect_container(id, None)
        .await
        .with_context(|| format!("inspecting container {}", plan.container_name))?;
    let mounted: HashMap<String, String> = details
        .mounts
        .iter()
        .flatten()
        .filter_map(|m| Some((m.destination.clone()?, m.name.clone()?)))
        .collect();
    let jobs = jobs(plan, &mounted, new_volumes)?;
    if jobs.is_empty() {
        return Ok(());
    }
    let toolbox = crate::images::toolbox::ensure_toolbox(docker, &|_| {})
        .await
        .context("the toolbox image, which sets up the volumes' owners")?;
    let mounts = jobs
        .iter()
        .enumerate()
        .map(|(index, job)| Mount {
            target: Some(format!("/v/{index}")),
            source: Some(job.volume.clone()),
            typ: Some(MountType::VOLUME),
            ..Mount::default()
        })
        .collect();
    let body = ContainerCreateBody {
        image: Some(toolbox.reference),
        user: Some("0:0".to_owned()),
        cmd: Some(vec![
            "sh".to_owned(),
            "-c".to_owned(),
            script(&jobs, plan.fs_group),
        ]),
        labels: Some(HashMap::from([
            (LABEL_STACK.to_owned(), runtime.names().stack().to_owned()),
            (LABEL_VOLUME_SETUP.to_owned(), plan.container_name.clone()),
        ])),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            mounts: Some(mounts),
            network_mode: Some("none".to_owned()),
            security_opt: Some(vec!["no-new-privileges:true".to_owned()]),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let helper = docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body,
        )
        .await
        .context("creating the volume setup helper")?
        .id;
    let outcome = async {
        docker
            .start_container(&helper, None)
            .await
            .context("starting the volume setup helper")?;
        let options = WaitContainerOptionsBuilder::new()
            .condition("not-running")
            .build();
        let code = match docker.wait_container(&helper, Some(options)).next().await {
            Some(Ok(exit)) => exit.status_code,
            // A non-zero exit arrives as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(err)) => return Err(err).context("waiting for the volume setup helper"),
            None => -1,
        };
        if code != 0 {
            let logs = runtime.last_logs(&helper, 10).await;
            bail!(
                "{}: setting up its volumes failed (exit {code}): {logs}",
                plan.workload
            );
        }
        Ok(())
    }
    .await;
    let options = RemoveContainerOptionsBuilder::new().force(true).build();
    let _ = docker.remove_container(&helper, Some(options)).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(kind: JobKind, sub_path: Option<&str>) -> Job {
        Job {
            volume: "v".into(),
            kind,
            sub_path: sub_path.map(str::to_owned),
        }
    }

    #[test]
    fn the_script_does_what_the_kubelet_does_to_each_kind_of_volume() {
        let group = |only_on_root_mismatch| {
            Some(FsGroup {
                gid: 999,
                only_on_root_mismatch,
            })
        };
        // (job, fsGroup, the script's lines after `set -eu`)
        let cases: Vec<(Job, Option<FsGroup>, &str)> = vec![
            (job(JobKind::EmptyDir, None), None, "chmod 0777 /v/0"),
            (
                job(JobKind::EmptyDir, None),
                group(false),
                "chgrp 999 /v/0 && chmod 2777 /v/0",
            ),
            (job(JobKind::NewClaim, None), None, "chmod 0777 /v/0"),
            (job(JobKind::Claim, None), None, ""),
            (
                job(JobKind::Claim, None),
                group(false),
                "chgrp -hR 999 /v/0 && chmod -R g+rwX /v/0 && find /v/0 -type d -exec chmod g+s {} +",
            ),
            (
                job(JobKind::Claim, None),
                group(true),
                "if [ \"$(stat -c %g /v/0)\" != 999 ] || [ $(( 0$(stat -c %a /v/0) & 02770 )) -ne $(( 02770 )) ]; then chgrp -hR 999 /v/0 && chmod -R g+rwX /v/0 && find /v/0 -type d -exec chmod g+s {} +; fi",
            ),
            (
                job(JobKind::EmptyDir, Some("it's/here")),
                None,
                "chmod 0777 /v/0\nif [ ! -e /v/0/'it'\\''s/here' ]; then mkdir -p /v/0/'it'\\''s/here' && chmod \"$(stat -c %a /v/0)\" /v/0/'it'\\''s/here' && chown \"$(stat -c %u:%g /v/0)\" /v/0/'it'\\''s/here'; fi",
            ),
        ];
        for (job, fs_group, expected) in cases {
            let script = script(std::slice::from_ref(&job), fs_group);
            let body = script
                .strip_prefix("set -eu")
                .unwrap()
                .trim_start_matches('\n');
            assert_eq!(body, expected, "{job:?} {fs_group:?}");
        }
    }
}
