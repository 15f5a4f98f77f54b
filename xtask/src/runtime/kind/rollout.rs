//! When a Deployment or StatefulSet has finished rolling out, by the rules of `kubectl rollout status`.
//!
//! The rules are kubectl's own, in kubectl's order, because users know what `kubectl rollout
//! status` means and because the order matters: the generation check comes first, so a status
//! written before our apply was observed (all replicas ready, or a `ProgressDeadlineExceeded`
//! left from an earlier rollout) never counts as the outcome of this one.
//!
//! Absent fields mean what they mean to kubectl (a Go zero value, or "not set" for pointers), with
//! one exception: a StatefulSet without `updateStrategy.type` is taken as `RollingUpdate`, the value
//! the API server always fills in, so that a hand-written object is judged like a served one.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rollout {
    /// Every replica runs the new template and is available (ready, for a StatefulSet).
    Done,
    /// Still going; the message is the one kubectl prints at this point.
    Progressing(String),
    /// It will not finish by waiting longer; the message says why.
    Failed(String),
}

/// The reason the Deployment controller gives when `progressDeadlineSeconds` ran out.
const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

/// The only StatefulSet update strategy whose rollout can be followed.
const ROLLING_UPDATE: &str = "RollingUpdate";

/// Where a Deployment's rollout stands.
pub(crate) fn deployment_status(d: &Deployment) -> Rollout {
    let name = d.metadata.name.as_deref().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    let status = d.status.clone().unwrap_or_default();
    if generation > status.observed_generation.unwrap_or(0) {
        // Also the case right after an apply: the old status may look complete.
        return Rollout::Progressing("Waiting for deployment spec update to be observed...".into());
    }
    let timed_out = status.conditions.iter().flatten().any(|condition| {
        condition.type_ == "Progressing"
            && condition.reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED)
    });
    if timed_out {
        return Rollout::Failed(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let current = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if let Some(wanted) = d.spec.as_ref().and_then(|spec| spec.replicas)
        && updated < wanted
    {
        return Rollout::Progressing(format!(
            "Waiting for deployment {name:?} rollout to finish: {updated} out of {wanted} new replicas have been updated..."
        ));
    }
    if current > updated {
        let old = current - updated;
        return Rollout::Progressing(format!(
            "Waiting for deployment {name:?} rollout to finish: {old} old replicas are pending termination..."
        ));
    }
    if available < updated {
        return Rollout::Progressing(format!(
            "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
        ));
    }
    Rollout::Done
}

/// Where a StatefulSet's rollout stands.
pub(crate) fn statefulset_status(s: &StatefulSet) -> Rollout {
    let spec = s.spec.clone().unwrap_or_default();
    let strategy = spec.update_strategy.unwrap_or_default();
    if strategy.type_.as_deref().unwrap_or(ROLLING_UPDATE) != ROLLING_UPDATE {
        return Rollout::Failed(format!(
            "rollout status is only available for {ROLLING_UPDATE} strategy type"
        ));
    }
    let generation = s.metadata.generation.unwrap_or(0);
    let status = s.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0);
    if observed == 0 || generation > observed {
        return Rollout::Progressing(
            "Waiting for statefulset spec update to be observed...".into(),
        );
    }
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    if let Some(wanted) = spec.replicas
        && ready < wanted
    {
        let missing = wanted - ready;
        return Rollout::Progressing(format!("Waiting for {missing} pods to be ready..."));
    }
    if let Some(rolling) = strategy.rolling_update {
        // kubectl trusts the partition here and never compares revisions: with `rollingUpdate`
        // set (the API server sets it, partition 0), the rollout is done once enough pods are
        // updated and all are ready.
        if let (Some(wanted), Some(partition)) = (spec.replicas, rolling.partition)
            && updated < wanted - partition
        {
            let target = wanted - partition;
            return Rollout::Progressing(format!(
                "Waiting for partitioned roll out to finish: {updated} out of {target} new pods have been updated..."
            ));
        }
        return Rollout::Done;
    }
    if status.update_revision != status.current_revision {
        let revision = status.update_revision.unwrap_or_default();
        return Rollout::Progressing(format!(
            "waiting for statefulset rolling update to complete {updated} pods at revision {revision}..."
        ));
    }
    Rollout::Done
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn deployment(generation: i64, replicas: i32, status: Value) -> Deployment {
        let mut object = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": "api", "namespace": "wander", "generation": generation },
            "spec": {
                "replicas": replicas,
                "selector": { "matchLabels": { "app.kubernetes.io/name": "api" } },
                "template": { "spec": { "containers": [{ "name": "api", "image": "wander/api:3f9a" }] } }
            },
        });
        object["status"] = status;
        serde_json::from_value(object).expect("a valid Deployment")
    }

    fn progressing(reason: &str) -> Value {
        json!([
            { "type": "Available", "status": "True", "reason": "MinimumReplicasAvailable" },
            { "type": "Progressing", "status": if reason == PROGRESS_DEADLINE_EXCEEDED { "False" } else { "True" },
              "reason": reason, "message": "ReplicaSet \"api-6d5f8c7b9\" is progressing." }
        ])
    }

    fn waiting(message: &str) -> Rollout {
        Rollout::Progressing(message.to_owned())
    }

    #[test]
    fn deployment_rollouts_follow_kubectl() {
        let cases = vec![
            (
                "fresh object the controller has not seen",
                deployment(1, 1, json!({})),
                waiting("Waiting for deployment spec update to be observed..."),
            ),
            (
                "stale status right after an apply: all ready, but for the previous generation",
                deployment(
                    3,
                    1,
                    json!({ "observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                            "readyReplicas": 1, "availableReplicas": 1,
                            "conditions": progressing("NewReplicaSetAvailable") }),
                ),
                waiting("Waiting for deployment spec update to be observed..."),
            ),
            (
                "stale deadline from the previous rollout is not this rollout's failure",
                deployment(
                    4,
                    1,
                    json!({ "observedGeneration": 3, "replicas": 1, "updatedReplicas": 1,
                            "conditions": progressing(PROGRESS_DEADLINE_EXCEEDED) }),
                ),
                waiting("Waiting for deployment spec update to be observed..."),
            ),
            (
                "progress deadline exceeded fails at once",
                deployment(
                    2,
                    1,
                    json!({ "observedGeneration": 2, "replicas": 2, "updatedReplicas": 1,
                            "unavailableReplicas": 1,
                            "conditions": progressing(PROGRESS_DEADLINE_EXCEEDED) }),
                ),
                Rollout::Failed("deployment \"api\" exceeded its progress deadline".into()),
            ),
            (
                "new replica set not created yet",
                deployment(
                    2,
                    1,
                    json!({ "observedGeneration": 2, "replicas": 1, "updatedReplicas": 0,
                            "availableReplicas": 1, "conditions": progressing("ReplicaSetUpdated") }),
                ),
                waiting(
                    "Waiting for deployment \"api\" rollout to finish: 0 out of 1 new replicas have been updated...",
                ),
            ),
            (
                "old pod still terminating",
                deployment(
                    2,
                    1,
                    json!({ "observedGeneration": 2, "replicas": 2, "updatedReplicas": 1,
                            "availableReplicas": 1, "conditions": progressing("ReplicaSetUpdated") }),
                ),
                waiting(
                    "Waiting for deployment \"api\" rollout to finish: 1 old replicas are pending termination...",
                ),
            ),
            (
                "new pod not available yet",
                deployment(
                    2,
                    1,
                    json!({ "observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                            "unavailableReplicas": 1, "conditions": progressing("ReplicaSetUpdated") }),
                ),
                waiting(
                    "Waiting for deployment \"api\" rollout to finish: 0 of 1 updated replicas are available...",
                ),
            ),
            (
                "two of three available",
                deployment(
                    5,
                    3,
                    json!({ "observedGeneration": 5, "replicas": 3, "updatedReplicas": 3,
                            "availableReplicas": 2 }),
                ),
                waiting(
                    "Waiting for deployment \"api\" rollout to finish: 2 of 3 updated replicas are available...",
                ),
            ),
            (
                "complete",
                deployment(
                    2,
                    1,
                    json!({ "observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                            "readyReplicas": 1, "availableReplicas": 1,
                            "conditions": progressing("NewReplicaSetAvailable") }),
                ),
                Rollout::Done,
            ),
            (
                "complete when observed ahead of the object we hold",
                deployment(
                    2,
                    1,
                    json!({ "observedGeneration": 3, "replicas": 1, "updatedReplicas": 1,
                            "availableReplicas": 1 }),
                ),
                Rollout::Done,
            ),
            (
                "scaled to zero",
                deployment(2, 0, json!({ "observedGeneration": 2 })),
                Rollout::Done,
            ),
        ];
        for (case, object, expected) in cases {
            assert_eq!(deployment_status(&object), expected, "{case}");
        }
    }

    #[test]
    fn deployment_without_replicas_skips_the_updated_count_like_kubectl() {
        let mut object = deployment(
            1,
            1,
            json!({ "observedGeneration": 1, "replicas": 0, "updatedReplicas": 0 }),
        );
        object.spec.as_mut().expect("spec").replicas = None;
        assert_eq!(deployment_status(&object), Rollout::Done);
    }

    fn statefulset(generation: i64, replicas: i32, strategy: Value, status: Value) -> StatefulSet {
        let mut object = json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": { "name": "postgres", "namespace": "wander", "generation": generation },
            "spec": {
                "replicas": replicas,
                "serviceName": "postgres",
                "selector": { "matchLabels": { "app.kubernetes.io/name": "postgres" } },
                "template": { "spec": { "containers": [{ "name": "postgres", "image": "postgres:17" }] } }
            },
        });
        object["spec"]["updateStrategy"] = strategy;
        object["status"] = status;
        serde_json::from_value(object).expect("a valid StatefulSet")
    }

    /// What the API server stores for `updateStrategy` when the manifest leaves it out.
    fn served_default() -> Value {
        json!({ "type": "RollingUpdate", "rollingUpdate": { "partition": 0 } })
    }

    fn revisions(observed: i64, ready: i32, updated: i32, current: &str, update: &str) -> Value {
        json!({ "observedGeneration": observed, "replicas": 1, "readyReplicas": ready,
                "currentReplicas": 1, "updatedReplicas": updated,
                "currentRevision": current, "updateRevision": update })
    }

    #[test]
    fn statefulset_rollouts_follow_kubectl() {
        let bare = json!({ "type": "RollingUpdate" });
        let cases = vec![
            (
                "OnDelete cannot be followed",
                statefulset(
                    1,
                    1,
                    json!({ "type": "OnDelete" }),
                    revisions(1, 1, 1, "a", "a"),
                ),
                Rollout::Failed(
                    "rollout status is only available for RollingUpdate strategy type".into(),
                ),
            ),
            (
                "never observed",
                statefulset(1, 1, served_default(), json!({ "replicas": 0 })),
                waiting("Waiting for statefulset spec update to be observed..."),
            ),
            (
                "stale status right after an apply: ready at the previous generation",
                statefulset(
                    3,
                    1,
                    served_default(),
                    revisions(2, 1, 1, "postgres-7c9d", "postgres-7c9d"),
                ),
                waiting("Waiting for statefulset spec update to be observed..."),
            ),
            (
                "pod not ready",
                statefulset(
                    2,
                    1,
                    served_default(),
                    revisions(2, 0, 1, "postgres-7c9d", "postgres-5b4f"),
                ),
                waiting("Waiting for 1 pods to be ready..."),
            ),
            (
                "old pod still ready, not replaced yet",
                statefulset(
                    2,
                    1,
                    served_default(),
                    revisions(2, 1, 0, "postgres-7c9d", "postgres-5b4f"),
                ),
                waiting(
                    "Waiting for partitioned roll out to finish: 0 out of 1 new pods have been updated...",
                ),
            ),
            (
                "partition holds back all but the top pod",
                statefulset(
                    2,
                    3,
                    json!({ "type": "RollingUpdate", "rollingUpdate": { "partition": 2 } }),
                    json!({ "observedGeneration": 2, "replicas": 3, "readyReplicas": 3,
                            "updatedReplicas": 1, "currentRevision": "pg-1", "updateRevision": "pg-2" }),
                ),
                Rollout::Done,
            ),
            (
                "partitioned, none updated yet",
                statefulset(
                    2,
                    3,
                    json!({ "type": "RollingUpdate", "rollingUpdate": { "partition": 1 } }),
                    json!({ "observedGeneration": 2, "replicas": 3, "readyReplicas": 3,
                            "updatedReplicas": 0, "currentRevision": "pg-1", "updateRevision": "pg-2" }),
                ),
                waiting(
                    "Waiting for partitioned roll out to finish: 0 out of 2 new pods have been updated...",
                ),
            ),
            (
                "served default, updated and ready",
                statefulset(
                    2,
                    1,
                    served_default(),
                    revisions(2, 1, 1, "postgres-7c9d", "postgres-5b4f"),
                ),
                Rollout::Done,
            ),
            (
                "no rollingUpdate block: revisions still differ",
                statefulset(
                    2,
                    1,
                    bare.clone(),
                    revisions(2, 1, 1, "postgres-7c9d", "postgres-5b4f"),
                ),
                waiting(
                    "waiting for statefulset rolling update to complete 1 pods at revision postgres-5b4f...",
                ),
            ),
            (
                "no rollingUpdate block: revisions equal",
                statefulset(
                    2,
                    1,
                    bare,
                    revisions(2, 1, 1, "postgres-5b4f", "postgres-5b4f"),
                ),
                Rollout::Done,
            ),
            (
                "no strategy at all is the server's default",
                statefulset(
                    2,
                    1,
                    Value::Null,
                    revisions(2, 1, 1, "postgres-5b4f", "postgres-5b4f"),
                ),
                Rollout::Done,
            ),
        ];
        for (case, object, expected) in cases {
            assert_eq!(statefulset_status(&object), expected, "{case}");
        }
    }
}
