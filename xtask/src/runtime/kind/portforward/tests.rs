//! The pod choice as a table, the re-attachment through a fake `Pods` over real local sockets,
//! and the Service's pods read through kube's mocked API service.

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use super::*;

/// A pod of the api Service: `ready`, created at second `born`, maybe being deleted.
fn pod_json(name: &str, ready: bool, born: u32, deleting: bool) -> Value {
    let mut metadata = json!({
        "name": name, "namespace": "wander",
        "labels": { "app.kubernetes.io/name": "api" },
        "creationTimestamp": format!("2026-03-01T10:00:{born:02}Z"),
    });
    if deleting {
        metadata["deletionTimestamp"] = json!("2026-03-01T10:01:00Z");
    }
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
        "spec": { "containers": [{ "name": "api", "image": "wander/api:3f9a",
                                   "ports": [{ "name": "http", "containerPort": 3080 }] }] },
        "status": { "phase": "Running",
                    "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }] }
    })
}

fn pod(name: &str, ready: bool, born: u32, deleting: bool) -> Pod {
    serde_json::from_value(pod_json(name, ready, born, deleting)).unwrap()
}

#[test]
fn the_newest_ready_pod_that_is_not_leaving_is_picked() {
    let cases: Vec<(&str, Vec<Pod>, Option<&str>)> = vec![
        ("no pods", vec![], None),
        (
            "only a pod that is not ready",
            vec![pod("a", false, 1, false)],
            None,
        ),
        (
            "only a terminating pod, even if still ready",
            vec![pod("a", true, 1, true)],
            None,
        ),
        (
            "the one ready pod",
            vec![pod("a", false, 9, false), pod("b", true, 1, false)],
            Some("b"),
        ),
        (
            "newest of the ready pods",
            vec![pod("a", true, 1, false), pod("b", true, 5, false)],
            Some("b"),
        ),
        (
            "newest that is not terminating",
            vec![pod("a", true, 1, false), pod("b", true, 5, true)],
            Some("a"),
        ),
        (
            "equally new: first by name",
            vec![pod("b", true, 3, false), pod("a", true, 3, false)],
            Some("a"),
        ),
    ];
    for (name, pods, want) in cases {
        assert_eq!(pick_pod(&pods).as_deref(), want, "{name}");
    }
}

/// A `choose` case: name, the current pod, the pods listed, the pod wanted.
type Case<'a> = (&'a str, Option<&'a str>, Vec<Pod>, Option<&'a str>);

#[test]
fn the_current_pod_is_kept_while_it_is_eligible() {
    let both = vec![pod("old", true, 1, false), pod("new", true, 5, false)];
    let cases: Vec<Case> = vec![
        (
            "nothing chosen yet: newest",
            None,
            both.clone(),
            Some("new"),
        ),
        (
            "still ready: no hop to a newer pod",
            Some("old"),
            both,
            Some("old"),
        ),
        (
            "deleted (gone from the list)",
            Some("old"),
            vec![pod("new", true, 5, false)],
            Some("new"),
        ),
        (
            "terminating",
            Some("old"),
            vec![pod("old", true, 1, true), pod("new", true, 5, false)],
            Some("new"),
        ),
        (
            "not ready any more",
            Some("old"),
            vec![pod("old", false, 1, false), pod("new", true, 5, false)],
            Some("new"),
        ),
        (
            "gone, and nothing ready yet",
            Some("old"),
            vec![pod("new", false, 5, false)],
            None,
        ),
    ];
    for (name, current, pods, want) in cases {
        assert_eq!(choose(current, &pods).as_deref(), want, "{name}");
    }
}

#[test]
fn target_ports_resolve_like_the_api_server() {
    let ports: Vec<ServicePort> = serde_json::from_value(json!([
        { "port": 8080, "targetPort": "http" },
        { "port": 9000, "targetPort": 9090 },
        { "port": 7000 },
        { "port": 6000, "targetPort": "metrics" },
    ]))
    .unwrap();
    let api = pod("a", true, 1, false);
    // A named targetPort is the container's port of that name, not the Service's port.
    assert_eq!(target_port(&ports, 8080, &api).unwrap(), 3080);
    assert_eq!(target_port(&ports, 9000, &api).unwrap(), 9090);
    assert_eq!(target_port(&ports, 7000, &api).unwrap(), 7000);
    let unnamed = target_port(&ports, 6000, &api).unwrap_err().to_string();
    assert!(
        unnamed.contains("targets \"metrics\", which no container of pod a names"),
        "{unnamed}"
    );
    let missing = target_port(&ports, 5432, &api).unwrap_err().to_string();
    assert!(
        missing.contains("has no port 5432 (it has: 8080, 9000, 7000, 6000)"),
        "{missing}"
    );
}

#[test]
fn a_service_selector_becomes_a_label_selector() {
    let selector: BTreeMap<String, String> = [
        ("app.kubernetes.io/name".to_owned(), "api".to_owned()),
        ("tier".to_owned(), "backend".to_owned()),
    ]
    .into();
    assert_eq!(
        label_selector(Some(&selector)).as_deref(),
        Some("app.kubernetes.io/name=api,tier=backend")
    );
    assert_eq!(label_selector(Some(&BTreeMap::new())), None);
    assert_eq!(label_selector(None), None);
}

/// Pods that a test changes as it goes; each stream greets with its pod's name, then echoes.
#[derive(Default)]
struct FakePods {
    pods: Mutex<Vec<Pod>>,
    /// Pods whose forward fails (listed as ready, but the kubelet no longer has them).
    refusing: Mutex<Vec<String>>,
    connects: Mutex<Vec<String>>,
    /// For each connect, whether its pod was ready at that moment.
    connected_while_ready: Mutex<Vec<bool>>,
}

impl Pods for Arc<FakePods> {
    type Stream = DuplexStream;

    async fn pods(&self) -> Result<Vec<Pod>> {
        Ok(self.pods.lock().unwrap().clone())
    }

    async fn connect(&self, pod: &Pod) -> Result<DuplexStream> {
        let name = pod.name_any();
        self.connects.lock().unwrap().push(name.clone());
        // What the pod is now, whatever the forwarder was shown: the kubelet forwards to a pod
        // that is not ready just as well, so only the forwarder can hold back.
        let ready_now = self
            .pods
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.name_any() == name && is_eligible(p));
        self.connected_while_ready.lock().unwrap().push(ready_now);
        if self.refusing.lock().unwrap().contains(&name) {
            bail!("pod {name} not found");
        }
        let (near, far) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let (read, mut write) = tokio::io::split(far);
            write
                .write_all(format!("hello from {name}\n").as_bytes())
                .await
                .unwrap();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                write
                    .write_all(format!("{name}: {line}\n").as_bytes())
                    .await
                    .unwrap();
            }
        });
        Ok(near)
    }
}

/// A forward on a free local port over `pods`; returns its address and the events it reported.
async fn forward(pods: Arc<FakePods>) -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let heard = Arc::clone(&events);
    let forwarder = Forwarder::new(pods, Duration::from_secs(3), move |event: &str| {
        heard.lock().unwrap().push(event.to_owned());
    });
    let listener = bind(0).await.unwrap();
    let address = listener.local_addr().unwrap();
    assert!(address.ip().is_loopback());
    tokio::spawn(serve(Arc::new(forwarder), listener));
    (address, events)
}

/// Connects, reads the greeting, sends a line and reads its echo: the pod that answered.
async fn ask(address: std::net::SocketAddr) -> String {
    let socket = TcpStream::connect(address).await.unwrap();
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    let greeting = lines.next_line().await.unwrap().unwrap();
    write.write_all(b"ping\n").await.unwrap();
    let echo = lines.next_line().await.unwrap().unwrap();
    let pod = greeting.trim_start_matches("hello from ").to_owned();
    assert_eq!(echo, format!("{pod}: ping"));
    pod
}

#[tokio::test]
async fn the_next_connection_goes_to_the_new_pod_when_the_old_one_is_deleted() {
    let pods = Arc::new(FakePods::default());
    *pods.pods.lock().unwrap() = vec![pod("api-1", true, 1, false)];
    let (address, events) = forward(Arc::clone(&pods)).await;
    assert_eq!(ask(address).await, "api-1");
    assert_eq!(ask(address).await, "api-1");
    // A rollout: the new pod is ready, the old one terminating.
    *pods.pods.lock().unwrap() = vec![pod("api-1", true, 1, true), pod("api-2", true, 7, false)];
    assert_eq!(ask(address).await, "api-2");
    assert_eq!(
        *events.lock().unwrap(),
        [
            "forwarding to pod api-1",
            "pod api-1 is gone or not ready; now forwarding to pod api-2"
        ]
    );
}

#[tokio::test]
async fn a_pod_that_refuses_the_forward_is_passed_over() {
    let pods = Arc::new(FakePods::default());
    *pods.pods.lock().unwrap() = vec![pod("api-1", true, 1, false), pod("api-2", true, 7, false)];
    *pods.refusing.lock().unwrap() = vec!["api-2".to_owned()];
    let (address, events) = forward(Arc::clone(&pods)).await;
    assert_eq!(ask(address).await, "api-1");
    assert_eq!(*pods.connects.lock().unwrap(), ["api-2", "api-1"]);
    let events = events.lock().unwrap().clone();
    assert!(
        events[0].starts_with("pod api-2 refused the forward: pod api-2 not found"),
        "{events:?}"
    );
    assert_eq!(events[1], "forwarding to pod api-1");
}

#[tokio::test]
async fn a_connection_waits_for_a_pod_to_become_ready() {
    let pods = Arc::new(FakePods::default());
    *pods.pods.lock().unwrap() = vec![pod("api-1", false, 1, false)];
    let (address, _) = forward(Arc::clone(&pods)).await;
    let later = Arc::clone(&pods);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        *later.pods.lock().unwrap() = vec![pod("api-1", true, 1, false)];
    });
    assert_eq!(ask(address).await, "api-1");
    // No connect was tried while the pod was not ready.
    assert_eq!(*pods.connected_while_ready.lock().unwrap(), [true]);
}

#[tokio::test]
async fn with_no_ready_pod_the_connection_is_refused_with_a_reason() {
    let pods = Arc::new(FakePods::default());
    let events = Arc::new(Mutex::new(Vec::new()));
    let heard = Arc::clone(&events);
    let forwarder = Forwarder::new(
        Arc::clone(&pods),
        Duration::from_millis(100),
        move |e: &str| {
            heard.lock().unwrap().push(e.to_owned());
        },
    );
    let error = forwarder.open().await.unwrap_err().to_string();
    assert!(
        error.starts_with("no ready pod to forward to after 100ms"),
        "{error}"
    );
    assert!(events.lock().unwrap().is_empty());
}

/// kube's mocked API: the Service is read, then its pods listed by its selector, per connection.
/// The forward itself (a websocket upgrade) cannot be answered by the mock, so the streams come
/// from the fake.
struct MockedService {
    api: ServicePods,
    fake: Arc<FakePods>,
}

impl Pods for MockedService {
    type Stream = DuplexStream;

    async fn pods(&self) -> Result<Vec<Pod>> {
        self.api.pods().await
    }

    async fn connect(&self, pod: &Pod) -> Result<DuplexStream> {
        self.fake.connect(pod).await
    }
}

#[tokio::test]
async fn through_the_api_a_deleted_pod_is_replaced_on_the_next_connection() {
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": "api", "namespace": "wander" },
        "spec": { "selector": { "app.kubernetes.io/name": "api" },
                  "ports": [{ "port": 8080, "targetPort": "http" }] }
    });
    let lists = vec![
        vec![pod_json("api-1", true, 1, false)],
        vec![pod_json("api-2", true, 7, false)],
    ];
    let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut handle = std::pin::pin!(handle);
        for items in lists {
            let (request, send) = handle.next_request().await.unwrap();
            record.lock().unwrap().push(request.uri().to_string());
            send.send_response(Response::new(Body::from(
                serde_json::to_vec(&service).unwrap(),
            )));
            let (request, send) = handle.next_request().await.unwrap();
            record.lock().unwrap().push(request.uri().to_string());
            let list =
                json!({ "apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items });
            send.send_response(Response::new(Body::from(
                serde_json::to_vec(&list).unwrap(),
            )));
        }
    });
    let client = Client::new(mock, "wander");
    let pods = MockedService {
        api: ServicePods::new(&client, "wander", "api", 8080),
        fake: Arc::new(FakePods::default()),
    };
    let forwarder = Forwarder::new(pods, Duration::from_secs(1), |_: &str| {});
    let (first, _) = forwarder.open().await.unwrap();
    let (second, _) = forwarder.open().await.unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("api-1", "api-2"));
    assert_eq!(forwarder.current().as_deref(), Some("api-2"));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0], "/api/v1/namespaces/wander/services/api");
    assert!(
        seen[1].starts_with("/api/v1/namespaces/wander/pods?"),
        "{}",
        seen[1]
    );
    assert!(
        seen[1].contains("labelSelector=app.kubernetes.io%2Fname%3Dapi"),
        "{}",
        seen[1]
    );
    // The named targetPort resolves against the chosen pod.
    let ports = forwarder.pods.api.ports.lock().unwrap().clone();
    assert_eq!(
        target_port(&ports, 8080, &pod("api-2", true, 7, false)).unwrap(),
        3080
    );
}

#[tokio::test]
async fn the_forward_asks_the_kubelet_for_the_containers_port_not_the_services() {
    // The real connect path: the Service's port 8080 targets the port named `http`, which the
    // pod's container has as 3080; the port-forward request (a websocket upgrade of
    // `pods/<name>/portforward?ports=...`, as kubectl sends it) must name 3080. The mock cannot
    // upgrade, so it refuses; the request it saw is what counts.
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": "api", "namespace": "wander" },
        "spec": { "selector": { "app.kubernetes.io/name": "api" },
                  "ports": [{ "port": 8080, "targetPort": "http" }] }
    });
    let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut handle = std::pin::pin!(handle);
        let list = json!({ "apiVersion": "v1", "kind": "PodList", "metadata": {},
                           "items": [pod_json("api-1", true, 1, false)] });
        for answer in [service, list] {
            let (request, send) = handle.next_request().await.unwrap();
            record.lock().unwrap().push(request.uri().to_string());
            send.send_response(Response::new(Body::from(
                serde_json::to_vec(&answer).unwrap(),
            )));
        }
        let (request, send) = handle.next_request().await.unwrap();
        record.lock().unwrap().push(request.uri().to_string());
        send.send_response(
            Response::builder()
                .status(400)
                .body(Body::from(b"upgrade refused by the test".to_vec()))
                .unwrap(),
        );
    });
    let client = Client::new(mock, "wander");
    let pods = ServicePods::new(&client, "wander", "api", 8080);
    let found = pods.pods().await.unwrap();
    assert!(pods.connect(&found[0]).await.is_err());
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen[2].starts_with("/api/v1/namespaces/wander/pods/api-1/portforward?"),
        "{seen:?}"
    );
    assert!(seen[2].contains("ports=3080"), "{seen:?}");
}
