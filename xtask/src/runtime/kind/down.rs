//! `cargo xtask down` on kind: the cluster deleted, or with `--keep-cluster` only the stack's
//! namespace (every object of the manifests, the generated Secret and the database's volume).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams};

use super::cluster::KindCli;
use super::session::KindSession;
use crate::context::Context;
use crate::runtime::report::DownOptions;

/// Deletes the cluster, or with `keep_cluster` only the stack's namespace (the data goes with
/// either).
pub(crate) async fn run(ctx: &Context, args: &DownOptions) -> anyhow::Result<()> {
    // No manifests needed when the whole cluster goes: `down` must work when they are broken.
    if !args.keep_cluster {
        let kind = KindCli::new(ctx);
        if let Some(other) = ctx.kube_context().filter(|&named| named != kind.context()) {
            bail!(
                "`down` deletes its own kind cluster {}, never `--context {other}`; `--keep-cluster --context {other}` deletes only the stack's namespace there",
                kind.name()
            );
        }
        let step = ctx
            .ui()
            .step(format!("Deleting the kind cluster {}", kind.name()));
        let deleted = kind.delete_if_exists(ctx.state().path());
        step.conclude(deleted, |existed| {
            if *existed {
                "deleted, with the stack's data".to_owned()
            } else {
                "there was none".to_owned()
            }
        })?;
        return Ok(());
    }
    let session = KindSession::open(ctx).await?;
    let namespace = session.namespace().to_owned();
    let step = ctx.ui().step(format!("Deleting the namespace {namespace}"));
    let deleted = delete_namespace(&session.client, &namespace, NAMESPACE_GONE).await;
    step.conclude(deleted, |existed| {
        if *existed {
            "deleted, with the stack's data; the cluster is kept".to_owned()
        } else {
            "there was none".to_owned()
        }
    })?;
    Ok(())
}

/// How long `down --keep-cluster` waits for the namespace's pods and volumes to go.
const NAMESPACE_GONE: Duration = Duration::from_secs(180);

/// How often the namespace is looked at while it is being deleted.
const POLL: Duration = Duration::from_millis(500);

/// Deletes `namespace` and waits until it is gone (its pods stopped, its volumes released);
/// `false` when there was none.
pub(crate) async fn delete_namespace(
    client: &kube::Client,
    namespace: &str,
    timeout: Duration,
) -> anyhow::Result<bool> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let deleted = namespaces
        .delete(namespace, &DeleteParams::foreground())
        .await;
    match deleted {
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
        Err(err) => {
            return Err(err).with_context(|| format!("deleting the namespace {namespace}"));
        }
        Ok(_) => {}
    }
    let deadline = Instant::now() + timeout;
    loop {
        let found = namespaces
            .get_opt(namespace)
            .await
            .with_context(|| format!("waiting for the namespace {namespace} to go"))?;
        if found.is_none() {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            bail!(
                "the namespace {namespace} is still being deleted after {timeout:?}; something holds a finalizer: run `cargo xtask status`, or `cargo xtask down` without --keep-cluster to delete the whole cluster"
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::runtime::kind::testing::{lines, not_found, scripted};

    fn namespace(phase: &str) -> Value {
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "wander" },
                "status": { "phase": phase } })
    }

    #[tokio::test]
    async fn the_namespace_is_deleted_and_awaited_until_gone() {
        let (client, seen) = scripted(vec![
            (200, namespace("Terminating")),
            (200, namespace("Terminating")),
            not_found("namespaces \"wander\""),
        ]);
        assert!(
            delete_namespace(&client, "wander", Duration::from_secs(30))
                .await
                .unwrap()
        );
        assert_eq!(
            lines(&seen),
            [
                "DELETE /api/v1/namespaces/wander?",
                "GET /api/v1/namespaces/wander",
                "GET /api/v1/namespaces/wander",
            ]
        );
    }

    #[tokio::test]
    async fn no_namespace_is_nothing_to_do() {
        let (client, _) = scripted(vec![not_found("namespaces \"wander\"")]);
        assert!(
            !delete_namespace(&client, "wander", Duration::from_secs(30))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_namespace_that_never_goes_says_what_to_do() {
        let (client, _) = scripted(vec![(200, namespace("Terminating")); 10]);
        let err = delete_namespace(&client, "wander", Duration::from_millis(1))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("still being deleted"), "{err}");
        assert!(err.contains("without --keep-cluster"), "{err}");
    }
}
