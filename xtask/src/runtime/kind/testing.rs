//! A scripted Kubernetes API server for tests: kube's client over tower-test's mocked service,
//! answering each request with the next reply and recording what it was asked.

use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

/// One request as the mocked server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// `GET /api/v1/namespaces/wander/pods?...`
    pub(crate) line: String,
    pub(crate) content_type: Option<String>,
    pub(crate) body: String,
}

/// What the mocked server was asked, in order.
pub(crate) type Requests = Arc<Mutex<Vec<Seen>>>;

/// A client whose API server answers each request with the next of `replies` (status code and
/// JSON body); requests beyond them get a 500.
pub(crate) fn scripted(replies: Vec<(u16, Value)>) -> (kube::Client, Requests) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen: Requests = Arc::default();
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut handle = std::pin::pin!(handle);
        let mut replies = replies.into_iter();
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let body = body.collect_bytes().await.unwrap_or_default();
            record.lock().unwrap().push(Seen {
                line: format!("{} {}", parts.method, parts.uri),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let (code, reply) = replies.next().unwrap_or((500, json!({})));
            let mut response = Response::new(Body::from(serde_json::to_vec(&reply).unwrap()));
            *response.status_mut() = StatusCode::from_u16(code).unwrap();
            send.send_response(response);
        }
    });
    (kube::Client::new(service, "default"), seen)
}

/// Every reply a 200 with its JSON.
pub(crate) fn ok(replies: Vec<Value>) -> Vec<(u16, Value)> {
    replies.into_iter().map(|reply| (200, reply)).collect()
}

/// The request lines seen so far.
pub(crate) fn lines(requests: &Requests) -> Vec<String> {
    requests
        .lock()
        .unwrap()
        .iter()
        .map(|seen| seen.line.clone())
        .collect()
}

/// A Kubernetes `NotFound` Status, as a 404 carries it.
pub(crate) fn not_found(what: &str) -> (u16, Value) {
    (
        404,
        json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": format!("{what} not found"), "reason": "NotFound", "code": 404 }),
    )
}
