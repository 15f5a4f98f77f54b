//! A local port forwarded to a ready pod of a Service, chosen again when that pod goes away.
//!
//! `kubectl port-forward svc/x` resolves the Service to one pod once and dies with it, so every
//! rollout of the service breaks the developer's forward. Here each new connection asks which pods
//! are ready now: it stays on the current pod while that one is ready, and moves to the newest
//! ready pod when it is not (deleted, terminating, not ready, or refusing the forward). A
//! connection already open when its pod dies ends, as a TCP connection must; the next one goes to
//! the new pod.
//!
//! The choice is pure (`choose`, `pick_pod`), the API behind a trait (`Pods`), so the re-attachment
//! is tested without a cluster: kube's mocked service cannot answer the websocket upgrade that a
//! real forward needs.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::TcpListener;

/// How often a connection looks again for a ready pod while none is.
const POLL: Duration = Duration::from_millis(500);

/// The pods behind a forward, and a way to reach one of them.
pub(crate) trait Pods: Send + Sync + 'static {
    /// A byte stream to the forwarded port of one pod.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The pods that may serve the forward, as the API has them now (ready or not).
    fn pods(&self) -> impl Future<Output = Result<Vec<Pod>>> + Send;

    /// Opens a stream to `pod`'s forwarded port.
    fn connect(&self, pod: &Pod) -> impl Future<Output = Result<Self::Stream>> + Send;
}

/// Whether `pod` may take a connection: Ready, and not being deleted.
pub(crate) fn is_eligible(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
}

/// The pod a fresh forward should use: the newest eligible one (the newest is the one a rollout
/// keeps); by name among equally new ones, so the choice is stable.
pub(crate) fn pick_pod(pods: &[Pod]) -> Option<String> {
    pods.iter()
        .filter(|pod| is_eligible(pod))
        .max_by(|a, b| {
            let born = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            born(a)
                .cmp(&born(b))
                .then_with(|| b.name_any().cmp(&a.name_any()))
        })
        .map(ResourceExt::name_any)
}

/// The pod the next connection should use: `current` while it is still eligible (a forward does
/// not hop between healthy pods), otherwise `pick_pod`'s choice.
pub(crate) fn choose(current: Option<&str>, pods: &[Pod]) -> Option<String> {
    let still_there = current.filter(|name| {
        pods.iter()
            .any(|pod| pod.metadata.name.as_deref() == Some(*name) && is_eligible(pod))
    });
    still_there.map(str::to_owned).or_else(|| pick_pod(pods))
}

/// A forward's state: which pod it is on, and whom to tell when that changes.
pub(crate) struct Forwarder<P> {
    pods: P,
    current: Mutex<Option<String>>,
    /// How long a connection waits for a ready pod before it is refused.
    patience: Duration,
    on_event: Box<dyn Fn(&str) + Send + Sync>,
}

impl<P> std::fmt::Debug for Forwarder<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("current", &self.current)
            .field("patience", &self.patience)
            .finish_non_exhaustive()
    }
}

impl<P: Pods> Forwarder<P> {
    /// A forward through `pods`; `on_event` hears which pod it is on, in one line each.
    pub(crate) fn new(
        pods: P,
        patience: Duration,
        on_event: impl Fn(&str) + Send + Sync + 'static,
    ) -> Self {
        Self {
            pods,
            current: Mutex::new(None),
            patience,
            on_event: Box::new(on_event),
        }
    }

    /// The pod in use now, if any connection chose one yet.
    pub(crate) fn current(&self) -> Option<String> {
        self.current.lock().ok().and_then(|c| c.clone())
    }

    /// A stream to the pod the next connection should use, and that pod's name.
    ///
    /// A pod that refuses the forward is passed over for this connection; when no pod is ready
    /// the connection waits for one, up to the forward's patience.
    pub(crate) async fn open(&self) -> Result<(String, P::Stream)> {
        let deadline = tokio::time::Instant::now() + self.patience;
        let mut refused: HashSet<String> = HashSet::new();
        let mut last_error: Option<anyhow::Error> = None;
        loop {
            let pods = self.pods.pods().await?;
            let open: Vec<Pod> = pods
                .into_iter()
                .filter(|p| !refused.contains(&p.name_any()))
                .collect();
            let current = self.current();
            if let Some(name) = choose(current.as_deref(), &open) {
                let pod = open.iter().find(|p| p.name_any() == name);
                let connected = match pod {
                    Some(pod) => self.pods.connect(pod).await,
                    None => Err(anyhow!("pod {name} vanished")),
                };
                match connected {
                    Ok(stream) => {
                        self.switch_to(current.as_deref(), &name);
                        return Ok((name, stream));
                    }
                    Err(error) => {
                        (self.on_event)(&format!("pod {name} refused the forward: {error:#}"));
                        refused.insert(name);
                        last_error = Some(error);
                        continue;
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                let why = last_error.map_or_else(String::new, |e| format!(" (last error: {e:#})"));
                bail!(
                    "no ready pod to forward to after {:?}{why}; see `cargo xtask status`",
                    self.patience
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Records the pod in use and says so when it changed.
    fn switch_to(&self, previous: Option<&str>, name: &str) {
        if previous == Some(name) {
            return;
        }
        if let Ok(mut current) = self.current.lock() {
            *current = Some(name.to_owned());
        }
        let message = match previous {
            Some(old) => format!("pod {old} is gone or not ready; now forwarding to pod {name}"),
            None => format!("forwarding to pod {name}"),
        };
        (self.on_event)(&message);
    }
}

/// Binds the local end of a forward on 127.0.0.1 only (never on all interfaces).
pub(crate) async fn bind(port: u16) -> Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).await.with_context(|| {
        format!("listening on 127.0.0.1:{port} (is another forward or program using it? choose another local port)")
    })
}

/// Accepts connections on `listener` until it fails, forwarding each to the pod `open` chooses.
pub(crate) async fn serve<P: Pods>(
    forwarder: Arc<Forwarder<P>>,
    listener: TcpListener,
) -> Result<()> {
    loop {
        let (mut socket, _) = listener
            .accept()
            .await
            .context("accepting a connection to forward")?;
        let forwarder = Arc::clone(&forwarder);
        tokio::spawn(async move {
            match forwarder.open().await {
                Ok((pod, mut stream)) => {
                    if let Err(error) =
                        tokio::io::copy_bidirectional(&mut socket, &mut stream).await
                    {
                        // The pod may have died under the connection; the next one looks again.
                        (forwarder.on_event)(&format!("connection to pod {pod} broke: {error}"));
                    }
                }
                Err(error) => (forwarder.on_event)(&format!("{error:#}")),
            }
        });
    }
}

/// A forward from an ephemeral port on 127.0.0.1 to a Service, for the xtask's own connections
/// (the application checks and the seed of `dev`, `seed`); it stops when dropped.
pub(crate) struct Tunnel {
    address: std::net::SocketAddr,
    task: tokio::task::JoinHandle<Result<()>>,
    /// What the forward last said (the pod it is on, or why a connection failed).
    last_event: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Tunnel {
    /// Forwards a fresh local port to `service`'s port `port`; a connection waits up to
    /// `patience` for a ready pod.
    pub(crate) async fn open(
        client: &Client,
        namespace: &str,
        service: &str,
        port: u16,
        patience: Duration,
    ) -> Result<Self> {
        let listener = bind(0).await?;
        let address = listener
            .local_addr()
            .context("reading the forward's local address")?;
        let last_event = Arc::new(Mutex::new(None));
        let heard = Arc::clone(&last_event);
        let forwarder = Forwarder::new(
            ServicePods::new(client, namespace, service, port),
            patience,
            move |event: &str| {
                if let Ok(mut last) = heard.lock() {
                    *last = Some(event.to_owned());
                }
            },
        );
        let task = tokio::spawn(serve(Arc::new(forwarder), listener));
        Ok(Self {
            address,
            task,
            last_event,
        })
    }

    /// The local end: connect here to reach the Service.
    pub(crate) fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    /// What the forward said last, to explain a connection that failed through it.
    pub(crate) fn last_event(&self) -> Option<String> {
        self.last_event.lock().ok().and_then(|last| last.clone())
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The pods of a Service, reached through kube-rs's port-forward (a websocket to the API server).
pub(crate) struct ServicePods {
    services: Api<Service>,
    pods: Api<Pod>,
    service: String,
    /// The Service port the user forwards; the pod port is its `targetPort`.
    port: u16,
    /// The Service's ports as last read, to resolve `targetPort` per pod.
    ports: Mutex<Vec<ServicePort>>,
}

impl std::fmt::Debug for ServicePods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServicePods")
            .field("service", &self.service)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl ServicePods {
    /// Reads nothing yet: the Service and its pods are looked up on each connection. `port` is the
    /// Service's port; each pod's `targetPort` for it is resolved then.
    pub(crate) fn new(client: &Client, namespace: &str, service: &str, port: u16) -> Self {
        Self {
            services: Api::namespaced(client.clone(), namespace),
            pods: Api::namespaced(client.clone(), namespace),
            service: service.to_owned(),
            port,
            ports: Mutex::new(Vec::new()),
        }
    }
}

impl Pods for ServicePods {
    type Stream = DuplexStream;

    async fn pods(&self) -> Result<Vec<Pod>> {
        let service = self
            .services
            .get(&self.service)
            .await
            .with_context(|| format!("reading service {:?}", self.service))?;
        let spec = service.spec.unwrap_or_default();
        let selector = label_selector(spec.selector.as_ref())
            .with_context(|| format!("service {:?} selects no pods by label", self.service))?;
        if let Ok(mut ports) = self.ports.lock() {
            *ports = spec.ports.unwrap_or_default();
        }
        let list = self
            .pods
            .list(&ListParams::default().labels(&selector))
            .await
            .with_context(|| format!("listing the pods of service {:?}", self.service))?;
        Ok(list.items)
    }

    async fn connect(&self, pod: &Pod) -> Result<DuplexStream> {
        let ports = self.ports.lock().map(|p| p.clone()).unwrap_or_default();
        let target = target_port(&ports, self.port, pod)
            .with_context(|| format!("service {:?}", self.service))?;
        let name = pod.name_any();
        let mut forwarder = self
            .pods
            .portforward(&name, &[target])
            .await
            .with_context(|| format!("opening a port-forward to pod {name} port {target}"))?;
        // The forwarder's task lives on as long as the stream does.
        forwarder.take_stream(target).ok_or_else(|| {
            anyhow!("the port-forward to pod {name} gave no stream for port {target}")
        })
    }
}

/// The label selector `k=v,k=v` for a Service's `spec.selector`; `None` when it selects nothing.
pub(crate) fn label_selector(selector: Option<&BTreeMap<String, String>>) -> Option<String> {
    let selector = selector.filter(|s| !s.is_empty())?;
    Some(
        selector
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// The pod port behind Service port `port`: its `targetPort`, a number or a container port's name
/// looked up in `pod`, or `port` itself when unset (the API's default).
pub(crate) fn target_port(ports: &[ServicePort], port: u16, pod: &Pod) -> Result<u16> {
    let Some(found) = ports.iter().find(|p| p.port == i32::from(port)) else {
        let have: Vec<String> = ports.iter().map(|p| p.port.to_string()).collect();
        bail!(
            "it has no port {port} (it has: {}); forward one of those",
            if have.is_empty() {
                "none".to_owned()
            } else {
                have.join(", ")
            }
        );
    };
    let number = match &found.target_port {
        None => i32::from(port),
        Some(IntOrString::Int(number)) => *number,
        Some(IntOrString::String(name)) => pod
            .spec
            .iter()
            .flat_map(|spec| spec.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port)
            .ok_or_else(|| {
                anyhow!(
                    "its port {port} targets {name:?}, which no container of pod {} names",
                    pod.name_any()
                )
            })?,
    };
    u16::try_from(number)
        .map_err(|_| anyhow!("its port {port} targets {number}, not a port number"))
}

/// On kind, through kube-rs: each connection goes to a ready pod of the Service, the same one
/// while it stays ready, a new one when it goes (a rollout, a crash).
pub(crate) async fn forward(
    ctx: &crate::context::Context,
    service: &str,
    local: Option<u16>,
) -> anyhow::Result<()> {
    let session = super::session::KindSession::open(ctx).await?;
    let name = service;
    let service = session.stack.named_service(name)?;
    let port = service
        .ports
        .first()
        .ok_or_else(|| anyhow::anyhow!("Service {name} has no port"))?
        .port;
    let local = local.unwrap_or(port);
    let listener = bind(local).await?;
    eprintln!(
        "forwarding 127.0.0.1:{local} -> service {}:{port} in namespace {}; Ctrl-C stops",
        name,
        session.namespace()
    );
    let ui = ctx.ui().clone();
    let forwarder = Forwarder::new(
        ServicePods::new(&session.client, session.namespace(), name, port),
        PATIENCE,
        move |event: &str| ui.note(event),
    );
    serve(std::sync::Arc::new(forwarder), listener).await
}

/// How long a connection waits for a ready pod (during a rollout) before it is dropped.
const PATIENCE: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests;
