//! The docker runtime's kubelet: a background process, one per stack, that runs each container's
//! startup, liveness and readiness probes for as long as the stack is up, and acts on them as
//! the kubelet does.
//!
//! The engine restarts a process that exits (restart policy `unless-stopped`), but it knows
//! nothing of probes: a Redis that answers every command with an error, or an API whose event
//! loop hangs, would run on forever. So `dev` starts this process (`cargo xtask kubelet`,
//! detached, in its own process group) unless it runs already, and `down` stops it. It reads
//! what to do from the containers themselves (each carries its probes as a label) and:
//!
//! - runs the startup probe until it passes, then liveness and readiness, each on its own period
//!   with its thresholds ([`super::probe::Tracker`]);
//! - when a startup or liveness probe fails, stops the container with its grace period
//!   (`terminationGracePeriodSeconds`) and starts it again after the kubelet's back-off: at once
//!   the first time, then 10 s, 20 s, ... up to 5 minutes, reset after 10 minutes without one;
//!   a container that was stopped and that the engine will not restart (`docker stop`,
//!   `docker kill`) is started again the same way, as restartPolicy Always has it;
//! - writes what it sees (restarts, readiness and why not, back-off) to
//!   `kubelet-<stack>.json` in the state folder, which `status` reads, and its events to
//!   `kubelet-<stack>.log`;
//! - ends by itself once the stack has had no container for [`IDLE_EXIT`].

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::DockerRuntime;
use super::names::{LABEL_SUPERVISION, Names};
use super::plan::Supervision;
use super::probe::{self, Change, Probe, Target, Tracker};
use crate::context::Context;

/// How often the stack's containers are listed (new ones supervised, removed ones dropped).
const DISCOVER: Duration = Duration::from_secs(1);
/// How often a container that is not running is looked at again.
const RECHECK: Duration = Duration::from_secs(1);
/// The kubelet ends once its stack has had no container (or no engine) for this long.
pub(crate) const IDLE_EXIT: Duration = Duration::from_secs(30);
/// The first back-off and its ceiling, as the kubelet's (`CrashLoopBackOff`).
const BACKOFF_FIRST: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container without a restart for this long starts its back-off afresh.
const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// The event log is emptied when it grows past this.
const MAX_LOG_BYTES: u64 = 1024 * 1024;

/// The kubelet's files for one stack, in the state folder.
#[derive(Debug, Clone)]
pub(crate) struct Files {
    /// Held locked by the running kubelet; holds its process id.
    lock: PathBuf,
    report: PathBuf,
    log: PathBuf,
}

impl Files {
    /// The files of the kubelet of `stack`, whose state is in `state_dir`.
    pub(crate) fn new(state_dir: &Path, stack: &str) -> Self {
        Self {
            lock: state_dir.join(format!("kubelet-{stack}.pid")),
            report: state_dir.join(format!("kubelet-{stack}.json")),
            log: state_dir.join(format!("kubelet-{stack}.log")),
        }
    }
}

/// What the kubelet reports of the stack, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Report {
    /// Container name → what the kubelet knows of it.
    pub(crate) containers: BTreeMap<String, ContainerReport>,
}

/// One container as the kubelet sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ContainerReport {
    /// The container's id: a report about an earlier container of the same name is not this
    /// one's.
    pub(crate) id: String,
    /// Restarts after a failed liveness or startup probe (the engine counts crashes itself).
    pub(crate) restarts: u32,
    /// Whether the readiness probe passes, with its thresholds (`None`: not run yet).
    pub(crate) ready: Option<bool>,
    /// The last failure of a probe, with its output.
    pub(crate) last_failure: Option<String>,
    /// Set while the container waits out a back-off before it is started again.
    pub(crate) waiting: Option<String>,
}

/// The report of the running kubelet of `stack`, or `None` when none runs.
pub(crate) fn read_report(state_dir: &Path, stack: &str) -> Option<Report> {
    let files = Files::new(state_dir, stack);
    running_pid(&files)?;
    let text = std::fs::read_to_string(&files.report).ok()?;
    serde_json::from_str(&text).ok()
}

/// The process id of the running kubelet: the lock file is locked, and says which process.
fn running_pid(files: &Files) -> Option<i32> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&files.lock)
        .ok()?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        // Nobody holds it: no kubelet runs (ours is dropped, and so unlocked, at once).
        Ok(_free) => None,
        Err((_, _)) => std::fs::read_to_string(&files.lock)
            .ok()?
            .trim()
            .parse()
            .ok(),
    }
}

/// Starts the stack's kubelet unless it runs already (from this same program: one left from an
/// older build of the xtask is replaced).
pub(crate) fn ensure_running(ctx: &Context) -> anyhow::Result<()> {
    let state = ctx.state();
    let files = Files::new(state.path(), &ctx.config().stack_name);
    let exe = own_program()?;
    if let Some(pid) = running_pid(&files) {
        if runs_program(pid, &exe) {
            return Ok(());
        }
        stop(state.path(), &ctx.config().stack_name)?;
    }
    std::fs::create_dir_all(state.path())
        .with_context(|| format!("creating {}", state.path().display()))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.log)
        .with_context(|| format!("opening {}", files.log.display()))?;
    let mut command = std::process::Command::new(&exe);
    command
        .arg("kubelet")
        .current_dir(ctx.root())
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Its own process group: Ctrl-C in the terminal of `dev` is not for it.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .spawn()
        .context("starting the docker runtime's kubelet")?;
    // Up once it holds its lock; a start that fails says why in its log.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if running_pid(&files).is_some() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!(
                "the docker runtime's kubelet exited at once ({status}); see {}",
                files.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!(
        "the docker runtime's kubelet did not start within 5 s; see {}",
        files.log.display()
    )
}

/// This program's path. When its file was replaced while it ran (a rebuild of the xtask), the
/// kernel names the old one `<path> (deleted)`: the new build at the path is the one to start.
fn own_program() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the xtask's own program")?;
    if exe.exists() {
        return Ok(exe);
    }
    let text = exe.to_string_lossy();
    Ok(PathBuf::from(text.trim_end_matches(" (deleted)")))
}

/// Whether process `pid` runs `exe` as it is now (not an older, since replaced, build).
fn runs_program(pid: i32, exe: &Path) -> bool {
    match std::fs::read_link(format!("/proc/{pid}/exe")) {
        Ok(running) => running == exe,
        // Without /proc (macOS) the program cannot be told: take it as current.
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

/// Stops the stack's kubelet, if one runs, and waits until it has ended. Returns whether one ran.
pub(crate) fn stop(state_dir: &Path, stack: &str) -> anyhow::Result<bool> {
    let files = Files::new(state_dir, stack);
    let Some(pid) = running_pid(&files) else {
        return Ok(false);
    };
    let pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let asked = Instant::now();
    while running_pid(&files).is_some() {
        if asked.elapsed() > Duration::from_secs(10) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            anyhow::ensure!(
                asked.elapsed() < Duration::from_secs(15),
                "the docker runtime's kubelet (process {pid}) does not end"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(true)
}

/// `cargo xtask kubelet`: supervises the stack until it is stopped or the stack is gone.
pub(crate) async fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let state = ctx.state();
    let stack = ctx.config().stack_name.clone();
    let files = Files::new(state.path(), &stack);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&files.lock)
        .with_context(|| format!("opening {}", files.lock.display()))?;
    let Ok(mut lock) = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock)
    else {
        // Another one runs: it supervises the stack already.
        return Ok(ExitCode::SUCCESS);
    };
    lock.set_len(0)?;
    write!(lock, "{}", std::process::id())?;
    lock.flush()?;
    let events = Events::open(&files.log)?;
    events.say(&format!(
        "supervising stack {stack} (process {})",
        std::process::id()
    ));
    let docker = crate::docker::connect().await?;
    let runtime = DockerRuntime::new(docker, Names::new(stack));
    let shared = Shared::new(events);
    let _cleanup = RemoveOnDrop(files.report.clone());
    supervise_stack(&runtime, &shared, &files.report, IDLE_EXIT).await;
    shared.events.say("the stack is gone; stopping");
    drop(lock);
    Ok(ExitCode::SUCCESS)
}

/// Removes a file when dropped: the report of a kubelet that has ended is not left to be read.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The event log: one line per event, with the time, emptied when it grows too long.
#[derive(Debug, Clone)]
pub(crate) struct Events {
    file: Option<Arc<Mutex<File>>>,
}

impl Events {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self {
            file: Some(Arc::new(Mutex::new(file))),
        })
    }

    /// Events that go nowhere (tests).
    #[cfg(test)]
    pub(crate) fn none() -> Self {
        Self { file: None }
    }

    fn say(&self, line: &str) {
        let Some(file) = &self.file else { return };
        let Ok(mut file) = file.lock() else { return };
        if file.metadata().is_ok_and(|m| m.len() > MAX_LOG_BYTES) {
            let _ = file.set_len(0);
        }
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let _ = writeln!(file, "{now} {line}");
    }
}

/// What the supervising tasks share: the report and the event log.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    report: Arc<Mutex<Report>>,
    events: Events,
}

impl Shared {
    /// An empty report over `events`.
    pub(crate) fn new(events: Events) -> Self {
        Self {
            report: Arc::new(Mutex::new(Report::default())),
            events,
        }
    }

    /// A copy of the report as it is now.
    pub(crate) fn report(&self) -> Report {
        self.report.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn update(&self, name: &str, id: &str, change: impl FnOnce(&mut ContainerReport)) {
        if let Ok(mut report) = self.report.lock() {
            let entry =
                report
                    .containers
                    .entry(name.to_owned())
                    .or_insert_with(|| ContainerReport {
                        id: id.to_owned(),
                        ..ContainerReport::default()
                    });
            if entry.id != id {
                *entry = ContainerReport {
                    id: id.to_owned(),
                    ..ContainerReport::default()
                };
            }
            change(entry);
        }
    }
}

/// Supervises every container of the runtime's stack until the stack has had no container for
/// `idle_exit`, writing the report to `report_file` after each look.
pub(crate) async fn supervise_stack(
    runtime: &DockerRuntime,
    shared: &Shared,
    report_file: &Path,
    idle_exit: Duration,
) {
    let mut tasks: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut idle_since: Option<Instant> = None;
    loop {
        let found = runtime.supervised().await;
        let empty = found.as_ref().map_or(true, Vec::is_empty);
        if empty {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= idle_exit {
                break;
            }
        } else {
            idle_since = None;
        }
        if let Ok(found) = found {
            tasks.retain(|id, task| {
                let keep = found.iter().any(|c| c.id == *id) && !task.is_finished();
                if !keep {
                    task.abort();
                }
                keep
            });
            for container in found {
                if tasks.contains_key(&container.id) {
                    continue;
                }
                let id = container.id.clone();
                let runtime = runtime.clone();
                let shared = shared.clone();
                tasks.insert(
                    id,
                    tokio::spawn(async move { supervise(&runtime, &shared, container).await }),
                );
            }
            if let Ok(mut report) = shared.report.lock() {
                report.containers.retain(|_, c| tasks.contains_key(&c.id));
            }
        }
        write_report(report_file, &shared.report());
        tokio::time::sleep(DISCOVER).await;
    }
    for task in tasks.values() {
        task.abort();
    }
}

/// Writes the report whole or not at all, so a reader never sees half of one.
fn write_report(path: &Path, report: &Report) {
    let Ok(json) = serde_json::to_vec(report) else {
        return;
    };
    let partial = path.with_extension("json.partial");
    if std::fs::write(&partial, json).is_ok() {
        let _ = std::fs::rename(&partial, path);
    }
}

/// A container the kubelet supervises.
#[derive(Debug, Clone)]
pub(crate) struct Supervised {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) spec: Supervision,
}

impl DockerRuntime {
    /// The stack's containers that carry what the kubelet needs (all but helpers).
    pub(crate) async fn supervised(&self) -> anyhow::Result<Vec<Supervised>> {
        let filters = HashMap::from([("label", vec![self.names().filter()])]);
        let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self.docker().list_containers(Some(options)).await?;
        Ok(list
            .into_iter()
            .filter_map(|summary| {
                let spec = summary.labels.as_ref()?.get(LABEL_SUPERVISION)?;
                Some(Supervised {
                    id: summary.id?,
                    name: summary.names?.first()?.trim_start_matches('/').to_owned(),
                    spec: serde_json::from_str(spec).ok()?,
                })
            })
            .collect())
    }
}

/// The back-off before a container restarted by the kubelet is started again.
#[derive(Debug, Clone, Default)]
pub(crate) struct Backoff {
    next: Duration,
    last: Option<Instant>,
}

impl Backoff {
    /// The wait before the restart asked for at `now`: none the first time, then doubling from
    /// 10 s to at most 5 minutes; after 10 minutes without a restart, none again.
    pub(crate) fn next(&mut self, now: Instant) -> Duration {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) > BACKOFF_RESET)
        {
            self.next = Duration::ZERO;
        }
        let delay = self.next;
        self.next = if delay.is_zero() {
            BACKOFF_FIRST
        } else {
            (delay * 2).min(BACKOFF_MAX)
        };
        self.last = Some(now);
        delay
    }
}

/// How one run of a container (from its start to its end or a failed probe) ended.
enum Ended {
    /// It stopped or was restarted by the engine: supervise its next run.
    Stopped,
    /// It was removed: stop supervising it.
    Gone,
    /// A startup or liveness probe failed: restart it.
    Failed(String),
}

/// Supervises one container for its whole life.
async fn supervise(runtime: &DockerRuntime, shared: &Shared, container: Supervised) {
    let Supervised { id, name, spec } = container;
    shared.update(&name, &id, |_| {});
    let mut backoff = Backoff::default();
    loop {
        let started_at = match wait_running(runtime, &id).await {
            Seen::Gone => return,
            Seen::Running(started_at) => started_at,
            Seen::Exited(code) => {
                // Stopped, and not to be restarted by the engine (`docker stop`, `docker kill`):
                // with restartPolicy Always the kubelet restarts a container however it ended.
                let why = format!("it exited with {code} and nothing restarts it");
                if !restart(runtime, shared, (&id, &name), &mut backoff, &why, None).await {
                    return;
                }
                continue;
            }
        };
        match one_run(runtime, shared, &id, &name, &spec, &started_at).await {
            Ended::Gone => return,
            Ended::Stopped => {}
            Ended::Failed(why) => {
                let grace = Some(spec.stop_timeout_secs);
                if !restart(runtime, shared, (&id, &name), &mut backoff, &why, grace).await {
                    return;
                }
            }
        }
    }
}

/// Restarts a container after its back-off, stopping it first (with `grace`) when it runs;
/// false once the container is gone.
async fn restart(
    runtime: &DockerRuntime,
    shared: &Shared,
    (id, name): (&str, &str),
    backoff: &mut Backoff,
    why: &str,
    grace: Option<i64>,
) -> bool {
    let delay = backoff.next(Instant::now());
    shared.events.say(&format!(
        "{name}: {why}; restarting it (back-off {}s)",
        delay.as_secs()
    ));
    if let Some(grace) = grace {
        let options = bollard::query_parameters::StopContainerOptionsBuilder::new()
            .t(grace.try_into().unwrap_or(i32::MAX))
            .build();
        if let Err(err) = runtime.docker().stop_container(id, Some(options)).await
            && crate::docker::is_not_found(&err)
        {
            return false;
        }
    }
    shared.update(name, id, |c| {
        c.restarts += 1;
        c.ready = Some(false);
        c.waiting = (!delay.is_zero()).then(|| {
            format!(
                "back-off {}s restarting the failed container ({why})",
                delay.as_secs()
            )
        });
    });
    tokio::time::sleep(delay).await;
    match runtime.docker().start_container(id, None).await {
        Err(err) if crate::docker::is_not_found(&err) => return false,
        Err(err) => shared
            .events
            .say(&format!("{name}: starting it again failed: {err}")),
        Ok(()) => {}
    }
    shared.update(name, id, |c| c.waiting = None);
    true
}

/// What [`wait_running`] found.
enum Seen {
    Running(String),
    /// Exited with this code, and the engine will not start it again.
    Exited(i64),
    Gone,
}

/// Waits until the container runs (its start time) or has exited for good; a container being
/// created or restarted by the engine is waited for.
async fn wait_running(runtime: &DockerRuntime, id: &str) -> Seen {
    loop {
        match runtime.inspect(id).await {
            Ok(None) => return Seen::Gone,
            Ok(Some(details)) => {
                if super::is_running(&details) {
                    let started_at = details.state.and_then(|s| s.started_at);
                    return Seen::Running(started_at.unwrap_or_default());
                }
                let state = details.state.unwrap_or_default();
                let status = state.status.map(|s| s.to_string()).unwrap_or_default();
                if matches!(status.as_str(), "exited" | "dead") && state.restarting != Some(true) {
                    return Seen::Exited(state.exit_code.unwrap_or_default());
                }
            }
            Err(_) => {}
        }
        tokio::time::sleep(RECHECK).await;
    }
}

/// One probe with its schedule and its thresholds.
struct Scheduled {
    which: &'static str,
    probe: Probe,
    tracker: Tracker,
    due: Instant,
}

/// Probes one run of a container, from its start (`started_at`, as the engine says) until it
/// ends or a startup or liveness probe fails.
async fn one_run(
    runtime: &DockerRuntime,
    shared: &Shared,
    id: &str,
    name: &str,
    spec: &Supervision,
    started_at: &str,
) -> Ended {
    let start = Instant::now();
    let schedule = |which, probe: &Probe, passing| Scheduled {
        which,
        probe: probe.clone(),
        tracker: Tracker::new(probe, passing),
        due: start + probe.initial_delay(),
    };
    let mut startup = spec
        .probes
        .startup
        .as_ref()
        .map(|p| schedule("startup", p, false));
    let mut liveness = spec
        .probes
        .liveness
        .as_ref()
        .map(|p| schedule("liveness", p, true));
    let mut readiness = spec
        .probes
        .readiness
        .as_ref()
        .map(|p| schedule("readiness", p, false));
    shared.update(name, id, |c| {
        c.ready = if readiness.is_some() {
            Some(false)
        } else {
            Some(true)
        };
    });
    loop {
        // Which probes may run: only the startup probe until it has passed.
        let started = startup.as_ref().is_none_or(|s| s.tracker.passing());
        let mut due: Vec<&mut Scheduled> = if started {
            liveness.iter_mut().chain(readiness.iter_mut()).collect()
        } else {
            startup.iter_mut().collect()
        };
        let next = due.iter().map(|s| s.due).min();
        let wait = next.map_or(RECHECK, |at| at.saturating_duration_since(Instant::now()));
        tokio::time::sleep(wait.min(RECHECK)).await;
        // Still the same run of the same container?
        let details = match runtime.inspect(id).await {
            Ok(None) => return Ended::Gone,
            Ok(Some(details)) => details,
            Err(_) => continue,
        };
        let state = details.state.as_ref();
        let same_run = super::is_running(&details)
            && state.and_then(|s| s.started_at.as_deref()) == Some(started_at);
        if !same_run {
            return Ended::Stopped;
        }
        let ip = super::describe(&details, &runtime.names().network()).ip;
        let now = Instant::now();
        due.retain(|s| s.due <= now);
        let target = Target {
            container: id,
            ip: ip.as_deref(),
            published: &spec.published,
        };
        let results = futures_util::future::join_all(
            due.iter()
                .map(|s| probe::run(runtime.docker(), &s.probe.check, target, s.probe.timeout())),
        )
        .await;
        for (scheduled, result) in due.into_iter().zip(results) {
            scheduled.due = Instant::now() + scheduled.probe.period();
            let change = scheduled.tracker.record(&result);
            if let Err(why) = &result {
                shared.update(name, id, |c| {
                    c.last_failure = Some(format!("{} probe failed: {why}", scheduled.which));
                });
            }
            match (scheduled.which, change) {
                ("startup" | "liveness", Change::Failed) => {
                    let why = scheduled.tracker.last_failure.clone().unwrap_or_default();
                    return Ended::Failed(format!("{} probe failed: {why}", scheduled.which));
                }
                ("readiness", Change::Passed) => shared.update(name, id, |c| c.ready = Some(true)),
                ("readiness", Change::Failed) => {
                    shared.events.say(&format!(
                        "{name}: not ready: {}",
                        scheduled.tracker.last_failure.clone().unwrap_or_default()
                    ));
                    shared.update(name, id, |c| c.ready = Some(false));
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_from_ten_seconds_to_five_minutes_and_resets_after_ten_quiet_minutes() {
        let mut backoff = Backoff::default();
        let start = Instant::now();
        let delays: Vec<u64> = (0..9)
            .map(|i| backoff.next(start + Duration::from_secs(i)).as_secs())
            .collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300, 300]);
        // Ten minutes and a second later: as the first time.
        let later = start + Duration::from_secs(8 + 601);
        assert_eq!(backoff.next(later), Duration::ZERO);
        assert_eq!(backoff.next(later), BACKOFF_FIRST);
    }

    #[test]
    fn a_report_is_written_whole_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubelet-s.json");
        let mut report = Report::default();
        report.containers.insert(
            "s-redis".into(),
            ContainerReport {
                id: "abc".into(),
                restarts: 2,
                ready: Some(false),
                last_failure: Some("liveness probe failed: no".into()),
                waiting: None,
            },
        );
        write_report(&path, &report);
        let back: Report = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, report);
        assert!(!path.with_extension("json.partial").exists());
        // No kubelet holds the lock: there is nothing to read.
        assert_eq!(read_report(dir.path(), "s"), None);
    }
}
