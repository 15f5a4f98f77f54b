//! The apply engine against kube-rs over a mocked service: a small fake API server that keeps
//! what was applied, bumps the resourceVersion only when an object's content changes (as the
//! real one does for a no-op server-side apply), and records every request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use k8s_openapi::api::core::v1::{Container, PodSpec, Secret};
use kube::client::Body;
use serde_json::{Value, json};

use super::*;
use crate::context::Context;

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    content_type: String,
    accept: String,
    body: Option<Value>,
}

impl Seen {
    /// `PATCH /apis/apps/v1/namespaces/wander/deployments/api`.
    fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A refusal the fake server gives for one path: (path, code, reason, message).
/// The path refused, the status code and the Status body sent.
type Refusal = (String, u16, Value);

#[derive(Default)]
struct FakeApiServer {
    /// Stored objects by path: (object without metadata.resourceVersion, resourceVersion).
    objects: BTreeMap<String, (Value, u64)>,
    last_version: u64,
    refuse: Option<Refusal>,
    /// A `Warning` header value sent with the answer to the PATCH of this path.
    warn: Option<(String, String)>,
    seen: Vec<Seen>,
}

impl FakeApiServer {
    fn answer(&mut self, seen: &Seen) -> (u16, Value) {
        self.seen.push(seen.clone());
        if let Some((path, code, body)) = &self.refuse
            && *path == seen.path
            && seen.method == "PATCH"
        {
            return (*code, body.clone());
        }
        match seen.method.as_str() {
            "GET" => match self.objects.get(&seen.path) {
                Some((object, version)) => (
                    200,
                    json!({
                        "apiVersion": "meta.k8s.io/v1",
                        "kind": "PartialObjectMetadata",
                        "metadata": {
                            "name": object["metadata"]["name"],
                            "resourceVersion": version.to_string(),
                        },
                    }),
                ),
                None => (
                    404,
                    status(404, "NotFound", &format!("{} not found", seen.path)),
                ),
            },
            "PATCH" => {
                let object = seen.body.clone().expect("an apply has a body");
                let version = match self.objects.get(&seen.path) {
                    Some((stored, version)) if *stored == object => *version,
                    _ => {
                        self.last_version += 1;
                        self.last_version
                    }
                };
                self.objects
                    .insert(seen.path.clone(), (object.clone(), version));
                let mut returned = object;
                returned["metadata"]["resourceVersion"] = json!(version.to_string());
                (200, returned)
            }
            other => panic!("unexpected {other} {}", seen.path),
        }
    }

    fn take_seen(&mut self) -> Vec<Seen> {
        std::mem::take(&mut self.seen)
    }
}

/// The body of the server-side apply (PATCH) sent to `path`.
fn patched(seen: &[Seen], path: &str) -> Value {
    seen.iter()
        .find(|s| s.method == "PATCH" && s.path == path)
        .and_then(|s| s.body.clone())
        .unwrap_or_else(|| panic!("no PATCH of {path}"))
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// A kube client whose requests the fake server answers, for as long as the client lives.
fn client(server: &Arc<Mutex<FakeApiServer>>) -> kube::Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = Arc::clone(server);
    tokio::spawn(async move {
        while let Some((request, respond)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let header = |name: http::header::HeaderName| {
                parts
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let content_type = header(http::header::CONTENT_TYPE);
            let accept = header(http::header::ACCEPT);
            let method = parts.method.to_string();
            let path = parts.uri.path().to_owned();
            let query = parts.uri.query().unwrap_or_default().to_owned();
            let bytes = body.collect_bytes().await.unwrap();
            let body = (!bytes.is_empty()).then(|| serde_json::from_slice(&bytes).unwrap());
            let seen = Seen {
                method,
                path,
                query,
                content_type,
                accept,
                body,
            };
            let (code, answer) = server.lock().unwrap().answer(&seen);
            let mut response = Response::builder()
                .status(StatusCode::from_u16(code).unwrap())
                .header(http::header::CONTENT_TYPE, "application/json");
            if let Some((path, warning)) = &server.lock().unwrap().warn
                && *path == seen.path
                && seen.method == "PATCH"
            {
                response = response.header(http::header::WARNING, warning);
            }
            let response = response
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap();
            respond.send_response(response);
        }
    });
    // With the layer `connect` adds, which collects the API server's warnings.
    let warnings = crate::runtime::kind::client::warnings().clone();
    kube::client::ClientBuilder::new(service, "default")
        .with_layer(&crate::runtime::kind::client::warnings_layer(warnings))
        .build()
}

fn manifests() -> Stack {
    Stack::load(&Context::for_tests().root().join("manifests")).unwrap()
}

fn secrets() -> Secrets {
    serde_json::from_value(json!({
        "postgres_password": "pg-5ecret-value",
        "api_token": "t0ken-5ecret-value",
    }))
    .unwrap()
}

fn resolved(reference: &str) -> Resolved {
    Resolved {
        reference: reference.to_owned(),
        built: false,
        notice: None,
    }
}

/// The images as `images::resolve_stack` returns them for the repository's manifests.
fn images() -> BTreeMap<String, Resolved> {
    [
        ("wander/api:dev", "wander/api:h-0a1b2c3d4e5f"),
        ("wander/web:dev", "wander/web:h-99887766aabb"),
        ("postgres:15-bookworm", "postgres:15-bookworm"),
        ("redis:7-bookworm", "wander-standin/redis:7-bookworm"),
    ]
    .into_iter()
    .map(|(image, reference)| (image.to_owned(), resolved(reference)))
    .collect()
}

const NS: &str = "/api/v1/namespaces/wander";
const APPS: &str = "/apis/apps/v1/namespaces/wander";
const NETWORKING: &str = "/apis/networking.k8s.io/v1/namespaces/wander";

/// The object paths in the order the stack must be applied.
fn expected_paths() -> Vec<String> {
    [
        NS.to_owned(),
        format!("{NS}/configmaps/wander-config"),
        format!("{NS}/configmaps/redis-config"),
        format!("{NS}/secrets/wander-secrets"),
        format!("{NETWORKING}/networkpolicies/default-deny"),
        format!("{NETWORKING}/networkpolicies/dns"),
        format!("{NETWORKING}/networkpolicies/web"),
        format!("{NETWORKING}/networkpolicies/api"),
        format!("{NETWORKING}/networkpolicies/postgres"),
        format!("{NETWORKING}/networkpolicies/redis"),
        format!("{NS}/services/postgres"),
        format!("{APPS}/statefulsets/postgres"),
        format!("{NS}/services/redis"),
        format!("{APPS}/deployments/redis"),
        format!("{NS}/services/api"),
        format!("{APPS}/deployments/api"),
        format!("{NS}/services/web"),
        format!("{APPS}/deployments/web"),
    ]
    .to_vec()
}

async fn apply(
    server: &Arc<Mutex<FakeApiServer>>,
    progress: &Mutex<Vec<String>>,
) -> anyhow::Result<Vec<Applied>> {
    apply_stack(
        &client(server),
        &manifests(),
        &secrets(),
        &images(),
        &|applied| progress.lock().unwrap().push(format!("{applied:?}")),
    )
    .await
}

/// Applies the stack to a server that refuses the object at `path` with `code` and `reason`;
/// returns the whole error and the server, to look at what it was sent.
async fn apply_refused(
    path: String,
    code: u16,
    reason: &'static str,
    message: &str,
) -> (String, Arc<Mutex<FakeApiServer>>) {
    apply_refused_with(path, code, status(code, reason, message)).await
}

/// Like [`apply_refused`], with the whole Status body given.
async fn apply_refused_with(
    path: String,
    code: u16,
    body: Value,
) -> (String, Arc<Mutex<FakeApiServer>>) {
    let server = Arc::new(Mutex::new(FakeApiServer {
        refuse: Some((path, code, body)),
        ..FakeApiServer::default()
    }));
    let err = apply(&server, &Mutex::default()).await.unwrap_err();
    (format!("{err:#}"), server)
}

fn container_images(body: &Value) -> Vec<(String, String)> {
    body["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["image"].as_str().unwrap().to_owned(),
                c["imagePullPolicy"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_object_is_applied_server_side_in_dependency_order() {
    let server = Arc::new(Mutex::new(FakeApiServer::default()));
    let progress = Mutex::new(Vec::new());
    let applied = apply(&server, &progress).await.unwrap();
    let seen = server.lock().unwrap().take_seen();

    // Each object: its metadata read first, then applied.
    let expected: Vec<String> = expected_paths()
        .iter()
        .flat_map(|path| [format!("GET {path}"), format!("PATCH {path}")])
        .collect();
    let lines: Vec<String> = seen.iter().map(Seen::line).collect();
    assert_eq!(lines, expected);

    for request in &seen {
        if request.method == "PATCH" {
            let mut query: Vec<&str> = request.query.split('&').filter(|p| !p.is_empty()).collect();
            query.sort_unstable();
            assert_eq!(
                query,
                ["fieldManager=wander-xtask", "force=true"],
                "{}",
                request.path
            );
            assert_eq!(request.content_type, "application/apply-patch+yaml");
            let body = request.body.as_ref().unwrap();
            assert!(
                body["apiVersion"].is_string() && body["kind"].is_string(),
                "{body}"
            );
            let namespace = body["metadata"]["namespace"].as_str();
            if request.path == NS {
                assert_eq!(body["kind"], "Namespace");
                assert_eq!(namespace, None);
            } else {
                assert_eq!(namespace, Some("wander"), "{}", request.path);
            }
        } else {
            // Only metadata is read: not even the Secret's data comes back.
            assert!(
                request.accept.contains("as=PartialObjectMetadata"),
                "{}",
                request.accept
            );
            assert_eq!(request.body, None);
        }
    }

    let kinds: Vec<(&str, &str, bool)> = applied
        .iter()
        .map(|a| (a.kind, a.name.as_str(), a.changed))
        .collect();
    assert_eq!(
        kinds,
        [
            ("Namespace", "wander", true),
            ("ConfigMap", "wander-config", true),
            ("ConfigMap", "redis-config", true),
            ("Secret", "wander-secrets", true),
            ("NetworkPolicy", "default-deny", true),
            ("NetworkPolicy", "dns", true),
            ("NetworkPolicy", "web", true),
            ("NetworkPolicy", "api", true),
            ("NetworkPolicy", "postgres", true),
            ("NetworkPolicy", "redis", true),
            ("Service", "postgres", true),
            ("StatefulSet", "postgres", true),
            ("Service", "redis", true),
            ("Deployment", "redis", true),
            ("Service", "api", true),
            ("Deployment", "api", true),
            ("Service", "web", true),
            ("Deployment", "web", true),
        ]
    );
    assert_eq!(progress.lock().unwrap().len(), applied.len());
}

#[tokio::test]
async fn workloads_run_the_resolved_images_without_pulling() {
    let server = Arc::new(Mutex::new(FakeApiServer::default()));
    apply(&server, &Mutex::default()).await.unwrap();
    let seen = server.lock().unwrap().take_seen();
    for (path, image) in [
        (
            format!("{APPS}/deployments/api"),
            "wander/api:h-0a1b2c3d4e5f",
        ),
        (
            format!("{APPS}/deployments/web"),
            "wander/web:h-99887766aabb",
        ),
        (
            format!("{APPS}/statefulsets/postgres"),
            "postgres:15-bookworm",
        ),
        (
            format!("{APPS}/deployments/redis"),
            "wander-standin/redis:7-bookworm",
        ),
    ] {
        let body = patched(&seen, &path);
        assert_eq!(
            container_images(&body),
            [(image.to_owned(), "IfNotPresent".to_owned())],
            "{path}"
        );
    }
}

#[tokio::test]
async fn an_image_override_from_the_environment_reaches_the_cluster() {
    let config = crate::config::Config::from_vars(
        Context::for_tests().root(),
        [("WANDER_POSTGRES_IMAGE".into(), "postgres:16".into())],
    )
    .unwrap();
    let mut stack = manifests();
    config.apply(&mut stack).unwrap();
    let mut images = images();
    images.insert(
        "postgres:16".into(),
        resolved("wander/standin-postgres:h-16"),
    );
    let server = Arc::new(Mutex::new(FakeApiServer::default()));
    apply_stack(&client(&server), &stack, &secrets(), &images, &|_| {})
        .await
        .unwrap();
    let seen = server.lock().unwrap().take_seen();
    let body = patched(&seen, &format!("{APPS}/statefulsets/postgres"));
    assert_eq!(
        container_images(&body),
        [(
            "wander/standin-postgres:h-16".to_owned(),
            "IfNotPresent".to_owned()
        )]
    );
}

#[tokio::test]
async fn the_secret_carries_every_key_and_its_values_show_nowhere() {
    let server = Arc::new(Mutex::new(FakeApiServer::default()));
    let progress = Mutex::new(Vec::new());
    let applied = apply(&server, &progress).await.unwrap();
    let seen = server.lock().unwrap().take_seen();
    let body = patched(&seen, &format!("{NS}/secrets/wander-secrets"));
    let sent: Secret = serde_json::from_value(body.clone()).unwrap();
    let data: BTreeMap<String, String> = sent
        .data
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect();
    assert_eq!(
        data,
        BTreeMap::from([
            ("api-token".to_owned(), "t0ken-5ecret-value".to_owned()),
            ("postgres-password".to_owned(), "pg-5ecret-value".to_owned()),
        ])
    );
    assert_eq!(sent.string_data, None);
    assert_eq!(sent.type_.as_deref(), Some("Opaque"));
    // On the wire the values are base64, never plain.
    let wire = body.to_string();
    assert!(!wire.contains("5ecret-value"), "{wire}");
    // What the caller gets to show holds no value.
    let shown = format!("{applied:?} {:?}", progress.lock().unwrap());
    assert!(!shown.contains("5ecret"), "{shown}");
}

#[tokio::test]
async fn a_second_apply_of_the_same_stack_changes_nothing() {
    let server = Arc::new(Mutex::new(FakeApiServer::default()));
    apply(&server, &Mutex::default()).await.unwrap();
    let versions_before: Vec<u64> = server
        .lock()
        .unwrap()
        .objects
        .values()
        .map(|o| o.1)
        .collect();

    let again = apply(&server, &Mutex::default()).await.unwrap();
    assert_eq!(again.len(), expected_paths().len());
    let changed: Vec<&str> = again
        .iter()
        .filter(|a| a.changed)
        .map(|a| a.name.as_str())
        .collect();
    assert!(changed.is_empty(), "changed on a second apply: {changed:?}");
    let versions_after: Vec<u64> = server
        .lock()
        .unwrap()
        .objects
        .values()
        .map(|o| o.1)
        .collect();
    assert_eq!(versions_before, versions_after);
}

#[tokio::test]
async fn a_new_image_changes_only_the_workload_that_runs_it() {
    let server = Arc::new(Mutex::new(FakeApiServer::default()));
    apply(&server, &Mutex::default()).await.unwrap();

    let mut images = images();
    images.insert(
        "wander/api:dev".to_owned(),
        resolved("wander/api:h-feedfeedfeed"),
    );
    let again = apply_stack(&client(&server), &manifests(), &secrets(), &images, &|_| {})
        .await
        .unwrap();
    let changed: Vec<(&str, &str)> = again
        .iter()
        .filter(|a| a.changed)
        .map(|a| (a.kind, a.name.as_str()))
        .collect();
    assert_eq!(changed, [("Deployment", "api")]);
}

#[tokio::test]
async fn one_workload_is_applied_alone_with_only_its_own_images_given() {
    let server = Arc::new(Mutex::new(FakeApiServer::default()));
    apply(&server, &Mutex::default()).await.unwrap();
    server.lock().unwrap().take_seen();

    let stack = manifests();
    let api = stack.named_workload("api").unwrap();
    // Only the API's image: the watch loop knows no more after rebuilding it.
    let images = BTreeMap::from([(
        "wander/api:dev".to_owned(),
        resolved("wander/api:h-feedfeedfeed"),
    )]);
    let applied = apply_workload(&client(&server), &stack, api, &images)
        .await
        .unwrap();
    assert_eq!((applied.kind, applied.name.as_str()), ("Deployment", "api"));
    assert!(applied.changed);
    let seen = server.lock().unwrap().take_seen();
    let lines: Vec<String> = seen.iter().map(Seen::line).collect();
    let path = format!("{APPS}/deployments/api");
    assert_eq!(lines, [format!("GET {path}"), format!("PATCH {path}")]);
    assert!(
        seen[1].query.contains("fieldManager=wander-xtask"),
        "{}",
        seen[1].query
    );
    assert!(seen[1].query.contains("force=true"), "{}", seen[1].query);
    assert_eq!(
        container_images(&patched(&seen, &path)),
        [(
            "wander/api:h-feedfeedfeed".to_owned(),
            "IfNotPresent".to_owned()
        )]
    );

    // The same image again: the server's copy does not move, nothing rolls.
    let again = apply_workload(&client(&server), &stack, api, &images)
        .await
        .unwrap();
    assert!(!again.changed);

    // An image of ours the caller did not build is refused before anything is sent.
    let err = apply_workload(&client(&server), &stack, api, &BTreeMap::new())
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("wander/api:dev was not built"),
        "{err:#}"
    );
    assert_eq!(server.lock().unwrap().take_seen().len(), 2);
}

#[tokio::test]
async fn a_refused_object_is_named_with_the_servers_words_and_stops_the_apply() {
    let (err, server) = apply_refused(
        format!("{APPS}/deployments/api"),
        422,
        "Invalid",
        "Deployment.apps \"api\" is invalid: spec.template.spec.containers[0].securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
    )
    .await;
    assert!(
        err.starts_with(
            "manifests/api.yaml: Deployment/api: the API server refused it (422 Invalid)"
        ),
        "{err}"
    );
    assert!(err.contains("runAsUser: Invalid value: -1"), "{err}");
    // Nothing after the refused object was sent.
    let last = server.lock().unwrap().take_seen().pop().unwrap();
    assert_eq!(last.line(), format!("PATCH {APPS}/deployments/api"));
}

#[tokio::test]
async fn a_refused_secret_does_not_show_its_values() {
    let (err, _) = apply_refused(
        format!("{NS}/secrets/wander-secrets"),
        403,
        "Forbidden",
        "secrets \"wander-secrets\" is forbidden: User \"dev\" cannot patch resource \"secrets\"",
    )
    .await;
    assert!(
        err.starts_with(
            "generated Secret/wander-secrets: the API server refused it (403 Forbidden)"
        ),
        "{err}"
    );
    assert!(!err.contains("5ecret"), "{err}");
}

#[tokio::test]
async fn a_namespace_being_deleted_is_explained() {
    // What the API server's NamespaceLifecycle admission plugin answers to a create in a
    // namespace being deleted (kubernetes/kubernetes,
    // plugin/pkg/admission/namespace/lifecycle/admission.go: errors.NewForbidden with the cause
    // NamespaceTerminating added).
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "configmaps \"wander-config\" is forbidden: unable to create new content in namespace wander because it is being terminated",
        "reason": "Forbidden",
        "details": {
            "name": "wander-config",
            "kind": "configmaps",
            "causes": [{
                "reason": "NamespaceTerminating",
                "message": "namespace wander is being terminated",
                "field": "metadata.namespace"
            }]
        },
        "code": 403
    });
    let (err, _) = apply_refused_with(format!("{NS}/configmaps/wander-config"), 403, body).await;
    assert!(
        err.starts_with("manifests/config.yaml: ConfigMap/wander-config: the API server refused it (403 Forbidden): configmaps \"wander-config\" is forbidden: unable to create new content in namespace wander because it is being terminated; the namespace `wander` is being deleted (by an earlier `down --keep-cluster`?): run `cargo xtask dev` again once it is gone"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_namespace_is_explained() {
    // The API server's answer to a namespaced object whose namespace does not exist
    // (NamespaceLifecycle: errors.NewNotFound for the namespace).
    let (err, _) = apply_refused(
        format!("{NS}/configmaps/wander-config"),
        404,
        "NotFound",
        "namespaces \"wander\" not found",
    )
    .await;
    assert!(
        err.starts_with("manifests/config.yaml: ConfigMap/wander-config: the API server refused it (404 NotFound): namespaces \"wander\" not found; the namespace `wander` is missing"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_named_with_what_to_do() {
    let client = crate::runtime::kind::testing::unreachable();
    let err = apply_stack(&client, &manifests(), &secrets(), &images(), &|_| {})
        .await
        .unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.starts_with("manifests/namespace.yaml: Namespace/wander: could not apply it"),
        "{err}"
    );
    assert!(err.contains("connection refused"), "{err}");
}

#[test]
fn images_are_rewritten_only_where_resolved_and_ours_must_be() {
    let container = |name: &str, image: &str| Container {
        name: name.to_owned(),
        image: Some(image.to_owned()),
        image_pull_policy: Some("Always".to_owned()),
        ..Container::default()
    };
    let mut spec = PodSpec {
        containers: vec![
            container("api", "wander/api:dev"),
            container("sidecar", "busybox:1.36"),
        ],
        init_containers: Some(vec![container("migrate", "wander/api:dev")]),
        ..PodSpec::default()
    };
    rewrite_images(&mut spec, &images(), "x").unwrap();
    let seen: Vec<(&str, Option<&str>, Option<&str>)> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .map(|c| {
            (
                c.name.as_str(),
                c.image.as_deref(),
                c.image_pull_policy.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "api",
                Some("wander/api:h-0a1b2c3d4e5f"),
                Some("IfNotPresent")
            ),
            ("sidecar", Some("busybox:1.36"), Some("Always")),
            (
                "migrate",
                Some("wander/api:h-0a1b2c3d4e5f"),
                Some("IfNotPresent")
            ),
        ]
    );

    let mut unbuilt = PodSpec {
        containers: vec![container("worker", "wander/worker:dev")],
        ..PodSpec::default()
    };
    let err = rewrite_images(
        &mut unbuilt,
        &images(),
        "manifests/worker.yaml: Deployment/worker",
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("manifests/worker.yaml: Deployment/worker: container `worker`: the image wander/worker:dev was not built"), "{err}");
}

#[test]
fn the_secret_is_placed_after_the_config_and_before_the_workloads() {
    let planned = plan(&manifests(), &secrets(), &images()).unwrap();
    let order: Vec<String> = planned
        .iter()
        .map(|p| format!("{}/{}", p.kind, p.name))
        .collect();
    assert_eq!(
        order[..6],
        [
            "Namespace/wander",
            "ConfigMap/wander-config",
            "ConfigMap/redis-config",
            "Secret/wander-secrets",
            "NetworkPolicy/default-deny",
            "NetworkPolicy/dns",
        ]
    );
    let secret = secret("wander", &secrets());
    assert_eq!(secret.metadata.name.as_deref(), Some("wander-secrets"));
    assert_eq!(secret.metadata.namespace.as_deref(), Some("wander"));
    let keys: Vec<&String> = secret.data.as_ref().unwrap().keys().collect();
    assert_eq!(keys, ["api-token", "postgres-password"]);
    let labels = secret.metadata.labels.unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "wander-xtask");
}

#[test]
fn the_apply_follows_the_dependency_graph_not_the_kustomizations_file_order() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(Context::for_tests().root().join("manifests")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    // The files listed backwards: the dashboard first, the namespace last.
    let kustomization = dir.path().join("kustomization.yaml");
    let text = std::fs::read_to_string(&kustomization).unwrap();
    let listed: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("- "))
        .collect();
    let mut reversed = text
        .lines()
        .filter(|l| !listed.contains(l))
        .collect::<Vec<_>>()
        .join("\n");
    reversed.push('\n');
    for line in listed.iter().rev() {
        reversed.push_str(line);
        reversed.push('\n');
    }
    std::fs::write(&kustomization, reversed).unwrap();
    let stack = Stack::load(dir.path()).unwrap();
    assert_eq!(
        stack.objects[0].kind, "Service",
        "the files are read backwards"
    );
    let planned = plan(&stack, &secrets(), &images()).unwrap();
    let order: Vec<String> = planned
        .iter()
        .map(|p| format!("{}/{}", p.kind, p.name))
        .collect();
    // PostgreSQL and Redis depend on nothing: between the two, the (reversed) file order holds.
    // The policies come before any pod, in their own file's order.
    assert_eq!(
        order,
        [
            "Namespace/wander",
            "ConfigMap/wander-config",
            "ConfigMap/redis-config",
            "Secret/wander-secrets",
            "NetworkPolicy/default-deny",
            "NetworkPolicy/dns",
            "NetworkPolicy/web",
            "NetworkPolicy/api",
            "NetworkPolicy/postgres",
            "NetworkPolicy/redis",
            "Service/redis",
            "Deployment/redis",
            "Service/postgres",
            "StatefulSet/postgres",
            "Service/api",
            "Deployment/api",
            "Service/web",
            "Deployment/web",
        ]
    );
}

#[tokio::test]
async fn the_api_servers_warnings_come_back_with_the_object_they_are_about() {
    // Pod Security's `warn` level on a Deployment whose template breaks `restricted`, as the
    // API server answers the apply (k8s.io/pod-security-admission, admission.go: "would violate
    // PodSecurity %q: %s", sent as a 299 Warning header).
    let server = Arc::new(Mutex::new(FakeApiServer {
        warn: Some((
            format!("{APPS}/deployments/api"),
            r#"299 - "would violate PodSecurity \"restricted:latest\": runAsNonRoot != true (pod or container \"api\" must set securityContext.runAsNonRoot=true)""#.to_owned(),
        )),
        ..FakeApiServer::default()
    }));
    let applied = apply(&server, &Mutex::default()).await.unwrap();
    let warned: Vec<(String, Vec<String>)> = applied
        .iter()
        .filter(|a| !a.warnings.is_empty())
        .map(|a| (format!("{}/{}", a.kind, a.name), a.warnings.clone()))
        .collect();
    assert_eq!(
        warned,
        [(
            "Deployment/api".to_owned(),
            vec![r#"would violate PodSecurity "restricted:latest": runAsNonRoot != true (pod or container "api" must set securityContext.runAsNonRoot=true)"#.to_owned()]
        )]
    );
}
