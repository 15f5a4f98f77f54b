//! Scripted Kubernetes API servers for tests: kube's client over tower-test's mocked service,
//! answering each request from a script and recording what it was asked. [`scripted`] answers
//! JSON in order and records whole requests; [`serving`] lets the test pick each answer
//! (including watches, log text and requests that never end) from the URI.

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

/// A client whose API server cannot be reached: its first request fails to connect, as when the
/// cluster's node is stopped.
pub(crate) fn unreachable() -> kube::Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        if let Some((_, respond)) = handle.next_request().await {
            respond.send_error(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            ));
        }
    });
    kube::Client::new(service, "default")
}

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

/// A canned answer of a [`serving`] server.
pub(crate) enum Reply {
    /// A JSON object, as a GET or LIST answers.
    Json(Value),
    /// A watch: these events, one JSON line each, then the server ends the stream.
    Watch(Vec<Value>),
    /// Plain text, as the logs endpoint answers; the stream ends after it.
    Text(&'static str),
    /// 404 Not Found, with a Kubernetes Status.
    NotFound,
    /// No answer ever: the request hangs (a quiet follow, an idle watch).
    Hang,
}

/// The URIs a [`serving`] server was asked for, decoded, in order.
pub(crate) type Asked = Arc<Mutex<Vec<String>>>;

/// A client whose API server answers each request with what `choose` picks for its decoded URI
/// (`labelSelector=app.kubernetes.io/name in (api,web)`). A request `choose` has no answer for is
/// recorded as `UNEXPECTED <uri>` and answered 500.
pub(crate) fn serving(
    mut choose: impl FnMut(&str) -> Option<Reply> + Send + 'static,
) -> (kube::Client, Asked) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let asked: Asked = Arc::default();
    let record = Arc::clone(&asked);
    tokio::spawn(async move {
        let mut handle = std::pin::pin!(handle);
        // Held, never answered, until the server ends with the test.
        let mut hanging = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let uri = decode(&request.uri().to_string());
            let Some(reply) = choose(&uri) else {
                record.lock().unwrap().push(format!("UNEXPECTED {uri}"));
                let mut response = Response::new(Body::from(b"{}".to_vec()));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                send.send_response(response);
                continue;
            };
            record.lock().unwrap().push(uri);
            let (code, body) = match reply {
                Reply::Json(value) => (200, serde_json::to_vec(&value).unwrap()),
                Reply::Watch(events) => (
                    200,
                    events
                        .iter()
                        .map(|e| e.to_string() + "\n")
                        .collect::<String>()
                        .into_bytes(),
                ),
                Reply::Text(text) => (200, text.as_bytes().to_vec()),
                Reply::NotFound => {
                    let (code, status) = not_found("the object");
                    (code, serde_json::to_vec(&status).unwrap())
                }
                Reply::Hang => {
                    hanging.push(send);
                    continue;
                }
            };
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = StatusCode::from_u16(code).unwrap();
            send.send_response(response);
        }
    });
    (kube::Client::new(service, "wander"), asked)
}

/// Percent-decoding of a URI, `+` as a space: enough for the URIs kube builds.
pub(crate) fn decode(uri: &str) -> String {
    let bytes = uri.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

// The fixtures take `json!` values as written at the call, which reads better than borrows.
#[allow(clippy::needless_pass_by_value)]
/// The API's Deployment as the API server answers it: at `version`, of `generation`, with the
/// controller's `status` (`observedGeneration`, replica counts).
pub(crate) fn api_deployment(version: &str, generation: i64, status: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "api", "namespace": "wander", "generation": generation,
                      "resourceVersion": version },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app.kubernetes.io/name": "api" } },
            "template": { "spec": { "containers": [{ "name": "api", "image": "wander/api:3f9a" }] } }
        },
        "status": status,
    })
}
