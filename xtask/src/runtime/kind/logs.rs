//! `logs` on the kind runtime: the containers of every pod of the chosen services, merged line by
//! line; with `follow`, across container restarts and new pods, until the future is dropped.
//!
//! Each line's label is its service's name. A service that runs several pods when the command
//! starts has the pod's name added (`api/api-7c9d-x2k4f`), so that replicas can be told apart;
//! a pod with several containers has the container's name added (`postgres/exporter`). A service
//! keeps its colour whatever the label adds. Without `prefix` the lines are written bare, as
//! `kubectl logs` does; init containers are not shown.
//!
//! Following: every container instance (a pod's container under one container id) is streamed
//! once. The pods are watched by label; when a container restarts or a new pod starts (a rollout),
//! its new instance is streamed from its start, and an instance whose pod goes away ends quietly.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::pin::Pin;

use anyhow::{Context as _, Result, bail};
use futures_util::io::{AsyncBufRead, AsyncReadExt as _};
use futures_util::stream::{self, BoxStream, SelectAll, StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, LogParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt as _};

use super::NAME_LABEL;
use crate::runtime::logs_format::{LineBuffer, LineFormat, LogOptions, Since};

/// How long one watch request may stay open before the server ends it and we watch again.
const WATCH_SECONDS: u32 = 240;

/// How much of a log stream is read at once.
const CHUNK: usize = 8192;

/// The lines of `service`'s pods, or of every workload's, to `out`; a service the manifests do
/// not know fails before anything is printed.
pub(crate) async fn show(
    ctx: &crate::context::Context,
    service: Option<&str>,
    options: &LogOptions,
    out: &mut (dyn Write + Send),
) -> Result<()> {
    let session = super::session::KindSession::open(ctx).await?;
    let services: Vec<String> = match service {
        Some(name) => vec![session.stack.named_workload(name)?.name.clone()],
        None => session
            .stack
            .workloads
            .iter()
            .map(|w| w.name.clone())
            .collect(),
    };
    stream(
        &session.client,
        session.namespace(),
        &services,
        options,
        out,
    )
    .await
}

/// Streams the logs of `services` (one, or all of them in manifest order) in `namespace` to
/// `out`: until every container's log has been read (without `follow`), or for as long as the
/// future is polled (with `follow`; the caller drops it on Ctrl-C, which closes every request).
///
/// Lines keep their order within each container; lines of different containers interleave as
/// they arrive. `--since` and `--tail` apply to the containers running when the command starts;
/// an instance that starts later is shown from its start (or from a `--since` time, if later).
pub(crate) async fn stream(
    client: &Client,
    namespace: &str,
    services: &[String],
    options: &LogOptions,
    out: &mut (dyn Write + Send),
) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = selector(services);
    let (listed, version) = list(&api, &selector, namespace).await?;
    let missing: Vec<&str> = services
        .iter()
        .filter(|service| !listed.iter().any(|pod| service_of(pod) == Some(service)))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        bail!(
            "no pod of {} in namespace {namespace:?}: start the stack with `cargo xtask dev`",
            missing.join(", ")
        );
    }

    let mut logs = Logs::new(api.clone(), services, &listed, options);
    logs.start(&listed, Window::Asked);
    if !options.follow {
        while let Some((index, item)) = logs.streams.next().await {
            logs.show(index, item, out)?;
        }
        return Ok(());
    }

    // Each pass either shows lines or takes in news of the pods; neither waits on the other.
    let mut news = pod_news(Watching {
        api,
        params: WatchParams::default()
            .labels(&selector)
            .timeout(WATCH_SECONDS),
        selector,
        namespace: namespace.to_owned(),
        version,
        events: None,
    });
    loop {
        tokio::select! {
            Some((index, item)) = logs.streams.next() => logs.show(index, item, out)?,
            Some(found) = news.next() => match found.with_context(|| {
                format!("following the pods of {}", services.join(", "))
            })? {
                News::Seen(pods) => {
                    for pod in pods.iter().filter(|p| p.metadata.deletion_timestamp.is_some()) {
                        logs.gone(uid_of(pod));
                    }
                    logs.start(&pods, Window::Whole);
                }
                News::Gone(uid) => logs.gone(uid),
            },
            else => return Ok(()),
        }
    }
}

/// The label selector for `services`' pods.
fn selector(services: &[String]) -> String {
    match services {
        [one] => format!("{NAME_LABEL}={one}"),
        many => format!("{NAME_LABEL} in ({})", many.join(",")),
    }
}

/// What tells a pod from one of the same name before or after it.
fn uid_of(pod: &Pod) -> String {
    pod.uid().unwrap_or_else(|| pod.name_any())
}

/// The service a pod belongs to, by its label.
fn service_of(pod: &Pod) -> Option<&String> {
    pod.metadata.labels.as_ref()?.get(NAME_LABEL)
}

/// The pods matching `selector`, oldest first, and the list's resource version to watch from.
async fn list(api: &Api<Pod>, selector: &str, namespace: &str) -> Result<(Vec<Pod>, String)> {
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .with_context(|| {
            format!(
                "listing the pods in namespace {namespace:?} (is the cluster reachable? see `cargo xtask status`)"
            )
        })?;
    let mut pods = list.items;
    pods.sort_by(|a, b| {
        let born = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        born(a)
            .cmp(&born(b))
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    Ok((pods, list.metadata.resource_version.unwrap_or_default()))
}

/// Which part of an instance's log to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    /// As asked: `--since` and `--tail` (the instances running when the command starts).
    Asked,
    /// From its start, or from a `--since` time if that is later (instances started since).
    Whole,
}

/// The log request for one container.
fn log_params(container: &str, options: &LogOptions, window: Window) -> LogParams {
    let mut params = LogParams {
        container: Some(container.to_owned()),
        follow: options.follow,
        ..LogParams::default()
    };
    match (options.since, window) {
        // Kubernetes refuses 0 seconds; one second ago is "from now" as nearly as it can say.
        (Some(Since::Ago(ago)), Window::Asked) => {
            params.since_seconds = Some(i64::try_from(ago.as_secs()).unwrap_or(i64::MAX).max(1));
        }
        (Some(Since::At(at)), _) => {
            params.since_time = Timestamp::from_second(at.unix_timestamp()).ok();
        }
        (Some(Since::Ago(_)) | None, _) => {}
    }
    if window == Window::Asked {
        params.tail_lines = options
            .tail
            .map(|tail| i64::try_from(tail).unwrap_or(i64::MAX));
    }
    params
}

/// The containers of `pod` that have run, as (container, its current instance's id): only those
/// have a log to read.
fn started(pod: &Pod) -> Vec<(String, String)> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref());
    spec.containers
        .iter()
        .filter_map(|container| {
            let status = statuses?.iter().find(|s| s.name == container.name)?;
            let state = status.state.as_ref()?;
            if state.running.is_none() && state.terminated.is_none() {
                return None;
            }
            Some((container.name.clone(), status.container_id.clone()?))
        })
        .collect()
}

/// One container instance being shown.
#[derive(Debug)]
struct Source {
    label: String,
    pod: String,
    pod_uid: String,
    container: String,
    lines: LineBuffer,
}

/// What a container's log stream yields; every stream ends with `End` or `Failed`.
enum Item {
    Chunk(Vec<u8>),
    End,
    Failed(anyhow::Error),
}

/// The instances shown so far and their merged streams.
struct Logs {
    api: Api<Pod>,
    options: LogOptions,
    format: LineFormat,
    /// Services whose labels name the pod (they ran several pods at the start).
    by_pod: HashSet<String>,
    /// The services asked for, to ignore pods of any other.
    services: Vec<String>,
    sources: Vec<Source>,
    /// (pod uid, container, container id) of every instance streamed, so none is twice.
    streamed: HashSet<(String, String, String)>,
    /// Pods deleted or being deleted: their streams may end in errors, quietly.
    gone: HashSet<String>,
    streams: SelectAll<BoxStream<'static, (usize, Item)>>,
}

impl Logs {
    fn new(api: Api<Pod>, services: &[String], pods: &[Pod], options: &LogOptions) -> Self {
        let mut per_service: BTreeMap<&str, usize> = BTreeMap::new();
        for pod in pods {
            if let Some(service) = service_of(pod) {
                *per_service.entry(service).or_default() += 1;
            }
        }
        let by_pod: HashSet<String> = per_service
            .into_iter()
            .filter(|&(_, count)| count > 1)
            .map(|(service, _)| service.to_owned())
            .collect();
        let mut logs = Self {
            api,
            options: options.clone(),
            format: LineFormat::plain().rendering(options.rendering),
            by_pod,
            services: services.to_vec(),
            sources: Vec::new(),
            streamed: HashSet::new(),
            gone: HashSet::new(),
            streams: SelectAll::new(),
        };
        if options.prefix {
            let labels: Vec<String> = pods
                .iter()
                .flat_map(|pod| {
                    let containers = pod.spec.iter().flat_map(|s| &s.containers);
                    containers
                        .filter_map(|c| logs.label(pod, &c.name))
                        .collect::<Vec<_>>()
                })
                .collect();
            logs.format = LineFormat::prefixed(labels.iter().map(String::as_str), options.color)
                .rendering(options.rendering);
        }
        logs
    }

    /// The label of `container` in `pod`; `None` for a pod of no service asked for.
    fn label(&self, pod: &Pod, container: &str) -> Option<String> {
        let service = service_of(pod).filter(|s| self.services.contains(s))?;
        let mut label = service.clone();
        if self.by_pod.contains(service) {
            label.push('/');
            label.push_str(&pod.name_any());
        }
        if pod.spec.as_ref().is_some_and(|s| s.containers.len() > 1) {
            label.push('/');
            label.push_str(container);
        }
        Some(label)
    }

    /// Starts streaming every instance of `pods` not streamed yet, in the pods' order.
    fn start(&mut self, pods: &[Pod], window: Window) {
        for pod in pods {
            if pod.metadata.deletion_timestamp.is_some() && window == Window::Whole {
                // A pod on its way out that we did not show yet: nothing new will come of it.
                continue;
            }
            let uid = uid_of(pod);
            for (container, id) in started(pod) {
                let Some(label) = self.label(pod, &container) else {
                    continue;
                };
                if !self.streamed.insert((uid.clone(), container.clone(), id)) {
                    continue;
                }
                let index = self.sources.len();
                let params = log_params(&container, &self.options, window);
                self.streams
                    .push(read(self.api.clone(), pod.name_any(), params, index));
                self.sources.push(Source {
                    label,
                    pod: pod.name_any(),
                    pod_uid: uid.clone(),
                    container,
                    lines: LineBuffer::default(),
                });
            }
        }
    }

    /// Notes that the pod `uid` is going away: a failure of its streams is then no error.
    fn gone(&mut self, uid: String) {
        self.gone.insert(uid);
    }

    /// Writes what `item` completes of source `index`'s lines to `out`.
    fn show(&mut self, index: usize, item: Item, out: &mut (dyn Write + Send)) -> Result<()> {
        let source = &mut self.sources[index];
        let mut text = Vec::new();
        let (ended, failure) = match item {
            Item::Chunk(bytes) => {
                for line in source.lines.push(&bytes) {
                    self.format.write(&source.label, &line, &mut text);
                }
                (false, None)
            }
            Item::End => (true, None),
            Item::Failed(error) => (true, Some(error)),
        };
        if ended && let Some(line) = source.lines.finish() {
            // The stream ended: its unfinished last line is still a line.
            self.format.write(&source.label, &line, &mut text);
        }
        if !text.is_empty() {
            out.write_all(&text)
                .and_then(|()| out.flush())
                .context("writing logs to the output")?;
        }
        match failure {
            None => Ok(()),
            Some(error) if self.options.follow && self.quietly_ended(index, &error) => Ok(()),
            Some(error) => {
                let source = &self.sources[index];
                Err(error.context(format!(
                    "reading the logs of {} (pod {}, container {})",
                    source.label, source.pod, source.container
                )))
            }
        }
    }

    /// Whether a failed stream just means its pod went away while followed.
    fn quietly_ended(&self, index: usize, error: &anyhow::Error) -> bool {
        let gone = self.gone.contains(&self.sources[index].pod_uid);
        let not_found = error
            .downcast_ref::<kube::Error>()
            .is_some_and(|e| matches!(e, kube::Error::Api(status) if status.code == 404));
        gone || not_found
    }
}

/// What the watch of the pods tells.
enum News {
    /// These pods exist as shown: their instances not streamed yet are to be.
    Seen(Vec<Pod>),
    /// The pod with this uid was deleted.
    Gone(String),
}

/// The watch of the pods between two pieces of news.
struct Watching {
    api: Api<Pod>,
    params: WatchParams,
    selector: String,
    namespace: String,
    /// Where the next watch starts: the last version seen.
    version: String,
    /// The open watch, if any.
    events: Option<BoxStream<'static, kube::Result<WatchEvent<Pod>>>>,
}

/// News of the pods, for as long as it is polled: a watch, opened again when the server ends it
/// (its timeout), and replaced by a fresh list when it expires or breaks (the list's pods are
/// news too: what happened while no watch was open). A failure to watch or list ends it with
/// that error.
fn pod_news(watching: Watching) -> BoxStream<'static, Result<News>> {
    stream::unfold(Some(watching), |state| async move {
        let mut w = state?;
        loop {
            let Some(events) = w.events.as_mut() else {
                match w.api.watch(&w.params, &w.version).await {
                    Ok(events) => w.events = Some(events.boxed()),
                    Err(error) => return Some((Err(error.into()), None)),
                }
                continue;
            };
            match events.try_next().await {
                Ok(Some(WatchEvent::Added(pod) | WatchEvent::Modified(pod))) => {
                    w.version = pod.resource_version().unwrap_or(w.version);
                    return Some((Ok(News::Seen(vec![pod])), Some(w)));
                }
                Ok(Some(WatchEvent::Deleted(pod))) => {
                    w.version = pod.resource_version().unwrap_or(w.version);
                    return Some((Ok(News::Gone(uid_of(&pod))), Some(w)));
                }
                Ok(Some(WatchEvent::Bookmark(bookmark))) => {
                    w.version = bookmark.metadata.resource_version;
                }
                // The server ended the watch (its timeout): watch on from where it was.
                Ok(None) => w.events = None,
                // Usually 410 Gone (our version expired); a broken watch is read afresh too.
                Ok(Some(WatchEvent::Error(_))) | Err(_) => {
                    w.events = None;
                    return match list(&w.api, &w.selector, &w.namespace).await {
                        Ok((pods, version)) => {
                            w.version = version;
                            Some((Ok(News::Seen(pods)), Some(w)))
                        }
                        Err(error) => Some((Err(error), None)),
                    };
                }
            }
        }
    })
    .boxed()
}

/// A log stream being opened or read.
type Reader = Pin<Box<dyn AsyncBufRead + Send>>;

enum Stage {
    /// The request to make: the pods' API, the pod, the parameters.
    Opening(Box<(Api<Pod>, String, LogParams)>),
    Reading(Reader),
    Done,
}

/// The log of `pod` as `params` ask, in chunks, tagged with the source's `index`.
fn read(
    api: Api<Pod>,
    pod: String,
    params: LogParams,
    index: usize,
) -> BoxStream<'static, (usize, Item)> {
    let request = Stage::Opening(Box::new((api, pod, params)));
    stream::unfold(request, |stage| async move {
        let mut reader = match stage {
            Stage::Opening(request) => match request.0.log_stream(&request.1, &request.2).await {
                Ok(reader) => Box::pin(reader) as Reader,
                Err(error) => return Some((Item::Failed(error.into()), Stage::Done)),
            },
            Stage::Reading(reader) => reader,
            Stage::Done => return None,
        };
        let mut buffer = vec![0; CHUNK];
        match reader.read(&mut buffer).await {
            Ok(0) => Some((Item::End, Stage::Done)),
            Ok(read) => {
                buffer.truncate(read);
                Some((Item::Chunk(buffer), Stage::Reading(reader)))
            }
            Err(error) => Some((Item::Failed(error.into()), Stage::Done)),
        }
    })
    .map(move |item| (index, item))
    .boxed()
}

#[cfg(test)]
mod tests;
