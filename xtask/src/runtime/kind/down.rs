//! `cargo xtask down` on kind: the cluster deleted, or with `--keep-cluster` only the stack's
//! namespace (every object of the manifests, the generated Secret and the database's volume).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams};

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
    use std::sync::{Arc, Mutex};

    use http::{Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::{Value, json};

    use super::*;

    /// A client whose API server answers with `replies` (status code, body) in order; the
    /// requests it saw, as `METHOD uri`.
    fn mocked(replies: Vec<(u16, Value)>) -> (kube::Client, Arc<Mutex<Vec<String>>>) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        tokio::spawn(async move {
            let mut handle = std::pin::pin!(handle);
            let mut replies = replies.into_iter();
            while let Some((request, send)) = handle.next_request().await {
                record
                    .lock()
                    .unwrap()
                    .push(format!("{} {}", request.method(), request.uri()));
                let (code, body) = replies.next().unwrap_or((500, json!({})));
                let mut response = Response::new(Body::from(serde_json::to_vec(&body).unwrap()));
                *response.status_mut() = StatusCode::from_u16(code).unwrap();
                send.send_response(response);
            }
        });
        (kube::Client::new(service, "default"), seen)
    }

    fn namespace(phase: &str) -> Value {
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "wander" },
                "status": { "phase": phase } })
    }

    fn not_found() -> Value {
        json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "namespaces \"wander\" not found",
                "reason": "NotFound", "code": 404 })
    }

    #[tokio::test]
    async fn the_namespace_is_deleted_and_awaited_until_gone() {
        let (client, seen) = mocked(vec![
            (200, namespace("Terminating")),
            (200, namespace("Terminating")),
            (404, not_found()),
        ]);
        assert!(
            delete_namespace(&client, "wander", Duration::from_secs(30))
                .await
                .unwrap()
        );
        let seen = seen.lock().unwrap();
        assert_eq!(
            *seen,
            [
                "DELETE /api/v1/namespaces/wander?",
                "GET /api/v1/namespaces/wander",
                "GET /api/v1/namespaces/wander",
            ]
        );
    }

    #[tokio::test]
    async fn no_namespace_is_nothing_to_do() {
        let (client, _) = mocked(vec![(404, not_found())]);
        assert!(
            !delete_namespace(&client, "wander", Duration::from_secs(30))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_namespace_that_never_goes_says_what_to_do() {
        let (client, _) = mocked(vec![(200, namespace("Terminating")); 10]);
        let err = delete_namespace(&client, "wander", Duration::from_millis(1))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("still being deleted"), "{err}");
        assert!(err.contains("without --keep-cluster"), "{err}");
    }
}
