//! A shell beside a container that has none, as `kubectl debug --target` gives one: an ephemeral
//! container of the toolbox image added to the pod, sharing the target's process namespace.
//!
//! Kubernetes never removes an ephemeral container from a running pod, so ours runs `sleep` for
//! a bounded time and each shell is an exec into it; the pod's next restart or rollout clears it.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::apply::FIELD_MANAGER;

/// How long a debug container lives after it is added (it cannot be removed).
const LIFETIME_SECONDS: u32 = 3600;
/// How long it may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often its state is looked at while it starts.
const POLL: Duration = Duration::from_millis(500);
/// The non-root user it runs as: our images' user, so their files under `/proc/1/root` can be
/// read.
const USER: i64 = 65532;

/// The ephemeral container to add: the toolbox `image`, sharing `target`'s processes, within
/// the namespace's `restricted` pod security.
pub(crate) fn ephemeral_container(name: &str, image: &str, target: &str) -> Value {
    json!({
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sleep", LIFETIME_SECONDS.to_string()],
        "targetContainerName": target,
        "stdin": false,
        "tty": false,
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": USER,
            "allowPrivilegeEscalation": false,
            "capabilities": { "drop": ["ALL"] },
            "seccompProfile": { "type": "RuntimeDefault" }
        }
    })
}

/// Adds a debug container named `name` to `pod`, next to its container `target`, and waits
/// until it runs.
pub(crate) async fn attach(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    target: &str,
    image: &str,
    name: &str,
) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let patch =
        json!({ "spec": { "ephemeralContainers": [ephemeral_container(name, image, target)] } });
    pods.patch_ephemeral_containers(
        pod,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Strategic(patch),
    )
    .await
    .with_context(|| {
        format!(
            "adding a debug container to pod {pod} (the cluster must allow ephemeral containers)"
        )
    })?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let current = pods
            .get(pod)
            .await
            .with_context(|| format!("reading pod {pod}"))?;
        match debug_state(&current, name) {
            DebugState::Running => return Ok(()),
            DebugState::Failed(why) => {
                bail!("the debug container in pod {pod} did not start: {why}")
            }
            DebugState::Starting(why) if Instant::now() >= deadline => bail!(
                "the debug container in pod {pod} did not start within {START_TIMEOUT:?} ({why}); was the toolbox image loaded? `cargo xtask dev` loads the images"
            ),
            DebugState::Starting(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Where the debug container `name` of `pod` is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DebugState {
    Running,
    Starting(String),
    Failed(String),
}

/// Reads the debug container's state from `pod`'s ephemeral statuses; an image that cannot be
/// pulled or a container that cannot be created counts as failed at once, not after the start
/// timeout.
pub(crate) fn debug_state(pod: &Pod, name: &str) -> DebugState {
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.ephemeral_container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == name));
    let Some(state) = status.and_then(|s| s.state.as_ref()) else {
        return DebugState::Starting("not scheduled yet".to_owned());
    };
    if state.running.is_some() {
        return DebugState::Running;
    }
    if let Some(terminated) = &state.terminated {
        return DebugState::Failed(format!(
            "it exited with {}{}",
            terminated.exit_code,
            terminated
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ));
    }
    let waiting = state.waiting.as_ref();
    let reason = waiting
        .and_then(|w| w.reason.clone())
        .unwrap_or_else(|| "waiting".to_owned());
    if matches!(
        reason.as_str(),
        "ErrImageNeverPull" | "ImagePullBackOff" | "ErrImagePull" | "CreateContainerError"
    ) {
        let message = waiting.and_then(|w| w.message.clone()).unwrap_or_default();
        return DebugState::Failed(format!("{reason} {message}").trim().to_owned());
    }
    DebugState::Starting(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::kind::testing::{ok, scripted};

    fn pod_with(state: Option<Value>) -> Pod {
        let statuses: Vec<Value> = state
            .map(|state| vec![json!({ "name": "debug-1", "image": "wander/toolbox:1", "imageID": "", "ready": false, "restartCount": 0, "state": state })])
            .unwrap_or_default();
        serde_json::from_value(json!({
            "metadata": { "name": "api-1" },
            "status": { "ephemeralContainerStatuses": statuses }
        }))
        .unwrap()
    }

    #[test]
    fn the_debug_container_is_restricted_and_targets_the_service_container() {
        let container = ephemeral_container("debug-1", "wander/toolbox:1", "api");
        assert_eq!(container["targetContainerName"], "api");
        assert_eq!(container["imagePullPolicy"], "IfNotPresent");
        let security = &container["securityContext"];
        assert_eq!(security["runAsNonRoot"], true);
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
        assert_eq!(container["command"], json!(["sleep", "3600"]));
        // What the API server reads it as.
        let typed: k8s_openapi::api::core::v1::EphemeralContainer =
            serde_json::from_value(container).unwrap();
        assert_eq!(typed.target_container_name.as_deref(), Some("api"));
    }

    #[test]
    fn its_state_is_read_from_the_pods_ephemeral_statuses() {
        for (state, expected) in [
            (None, DebugState::Starting("not scheduled yet".to_owned())),
            (Some(json!({ "running": {} })), DebugState::Running),
            (
                Some(json!({ "waiting": { "reason": "ContainerCreating" } })),
                DebugState::Starting("ContainerCreating".to_owned()),
            ),
            (
                Some(
                    json!({ "waiting": { "reason": "ErrImageNeverPull", "message": "image not present" } }),
                ),
                DebugState::Failed("ErrImageNeverPull image not present".to_owned()),
            ),
            (
                Some(json!({ "terminated": { "exitCode": 127, "message": "sleep: not found" } })),
                DebugState::Failed("it exited with 127: sleep: not found".to_owned()),
            ),
        ] {
            assert_eq!(
                debug_state(&pod_with(state.clone()), "debug-1"),
                expected,
                "{state:?}"
            );
        }
    }

    #[tokio::test]
    async fn attaching_patches_the_subresource_then_waits_for_it_to_run() {
        let (client, seen) = scripted(ok(vec![
            serde_json::to_value(pod_with(None)).unwrap(),
            serde_json::to_value(pod_with(Some(
                json!({ "waiting": { "reason": "ContainerCreating" } }),
            )))
            .unwrap(),
            serde_json::to_value(pod_with(Some(json!({ "running": {} })))).unwrap(),
        ]));
        attach(
            &client,
            "wander",
            "api-1",
            "api",
            "wander/toolbox:1",
            "debug-1",
        )
        .await
        .unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert!(
            seen[0]
                .line
                .starts_with("PATCH /api/v1/namespaces/wander/pods/api-1/ephemeralcontainers?"),
            "{:?}",
            seen[0]
        );
        assert_eq!(
            seen[0].content_type.as_deref(),
            Some("application/strategic-merge-patch+json")
        );
        let sent: Value = serde_json::from_str(&seen[0].body).unwrap();
        assert_eq!(sent["spec"]["ephemeralContainers"][0]["name"], "debug-1");
        assert!(
            seen[1]
                .line
                .starts_with("GET /api/v1/namespaces/wander/pods/api-1")
        );
    }
}
