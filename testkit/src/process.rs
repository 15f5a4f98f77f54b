//! Process plumbing shared by the servers: free ports, finding programs, logs, stopping children
//! and whole process trees.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How often readiness and exit checks poll: short enough that a test barely notices, long
/// enough not to burn a core while a server starts.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// How many times a start is attempted on a fresh port when the one picked was taken meanwhile.
const START_ATTEMPTS: usize = 3;

/// What a server prints when the port it was given is already in use (PostgreSQL and Redis alike).
const ADDRESS_IN_USE: &str = "Address already in use";

/// Why a server failed to start: only a lost race for its port is worth a retry on another one.
#[derive(Debug)]
pub(crate) enum StartFailure {
    /// The port picked was bound by someone else before the server could bind it.
    PortTaken(anyhow::Error),
    /// Anything else, reported as is.
    Other(anyhow::Error),
}

impl StartFailure {
    /// Classifies a failed start by what the server wrote to its log meanwhile.
    pub(crate) fn from_log(failure: &str, log_path: &Path, log: &str) -> Self {
        let err = anyhow::anyhow!("{failure}; server log ({}):\n{log}", log_path.display());
        if log.contains(ADDRESS_IN_USE) {
            Self::PortTaken(err)
        } else {
            Self::Other(err)
        }
    }

    /// The error of a restart, which has to use the port it had and cannot retry elsewhere.
    pub(crate) fn into_restart_error(self, server: &str, port: u16) -> anyhow::Error {
        match self {
            Self::PortTaken(err) => {
                err.context(format!("port {port} was taken while {server} was stopped"))
            }
            Self::Other(err) => err,
        }
    }
}

impl From<anyhow::Error> for StartFailure {
    fn from(err: anyhow::Error) -> Self {
        Self::Other(err)
    }
}

/// Runs `start` on a free port, and again on another one (up to [`START_ATTEMPTS`] in all) when
/// the port was taken before the server could bind it. Returns the port that worked.
pub(crate) fn start_on_free_port(
    server: &str,
    mut start: impl FnMut(u16) -> Result<(), StartFailure>,
) -> anyhow::Result<u16> {
    let mut attempt = 1;
    loop {
        let port = free_port().with_context(|| format!("finding a free port for {server}"))?;
        match start(port) {
            Ok(()) => return Ok(port),
            Err(StartFailure::PortTaken(_)) if attempt < START_ATTEMPTS => attempt += 1,
            Err(StartFailure::PortTaken(err) | StartFailure::Other(err)) => return Err(err),
        }
    }
}

/// Asks the kernel for a free port on 127.0.0.1.
///
/// The listener is closed before the server binds the port, so another process can take it in
/// between; the servers retry on a new port when that happens (see [`START_ATTEMPTS`]).
pub(crate) fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// The loopback address of `port`.
pub(crate) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` right now.
pub(crate) fn port_is_open(port: u16) -> bool {
    TcpStream::connect_timeout(&loopback(port), Duration::from_millis(200)).is_ok()
}

/// Waits until nothing listens on `port` any more; false when it is still open at the deadline.
pub(crate) fn wait_port_closed(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !port_is_open(port) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Finds an executable named `name` in the directories of `PATH`.
pub(crate) fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a regular file (after following links) that someone may execute.
pub(crate) fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Opens (creating if needed) the log a server's stdout and stderr are appended to, and returns
/// it with its current length, so that a failed start can show only what that start wrote.
pub(crate) fn open_log(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let len = file.metadata()?.len();
    Ok((file, len))
}

/// What the log at `path` says from byte `offset` on, lossily decoded, trimmed to its last
/// `max_lines` lines (enough to explain a failure without flooding a test report).
pub(crate) fn log_since(path: &Path, offset: u64, max_lines: usize) -> String {
    let mut bytes = Vec::new();
    let read = File::open(path).and_then(|mut file| {
        file.seek(SeekFrom::Start(offset))?;
        file.read_to_end(&mut bytes)
    });
    if let Err(err) = read {
        return format!("(could not read {}: {err})", path.display());
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(max_lines)..];
    if tail.is_empty() {
        "(the log is empty)".to_owned()
    } else {
        tail.join("\n")
    }
}

/// The pid of `child` in the form `nix` expects.
pub(crate) fn pid_of(child: &Child) -> Pid {
    Pid::from_raw(child.id() as i32)
}

/// Stops `child`: sends `signal`, waits up to `grace` for it to exit, then kills it for good and
/// reaps it. A child that already exited is just reaped.
pub(crate) fn stop_child(
    child: &mut Child,
    signal: Signal,
    grace: Duration,
) -> io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    match kill(pid_of(child), signal) {
        // ESRCH: it exited between the check above and the signal.
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(errno) => return Err(errno.into()),
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        thread::sleep(POLL_INTERVAL);
    }
    child.kill()?;
    child.wait()
}

/// Kills `child` and every process descended from it, and reaps `child`.
///
/// For programs that start helpers of their own (chromedriver starts Chromium, which starts a
/// dozen processes): killing only the child would leave the rest running, adopted by init. The
/// tree is frozen first (SIGSTOP), so nothing can fork behind our back, then killed (SIGKILL).
/// Descendants of a child that already exited were adopted by init and are out of reach.
pub(crate) fn kill_tree(child: &mut Child) -> io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    let root = pid_of(child);
    // ESRCH everywhere below: the process exited meanwhile, which is what we want anyway.
    let _ = kill(root, Signal::SIGSTOP);
    let mut frozen = HashSet::new();
    // Each round stops what the previous rounds missed; a few suffice, the cap guards a loop.
    for _ in 0..100 {
        let fresh: Vec<Pid> = descendants(root)
            .into_iter()
            .filter(|pid| !frozen.contains(pid))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for pid in fresh {
            let _ = kill(pid, Signal::SIGSTOP);
            frozen.insert(pid);
        }
    }
    for pid in frozen {
        let _ = kill(pid, Signal::SIGKILL);
    }
    child.kill()?;
    child.wait()
}

/// The processes descended from `root` (children, grandchildren, ...), read from `/proc`.
pub(crate) fn descendants(root: Pid) -> Vec<Pid> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        else {
            continue;
        };
        // A process may exit between the listing and the read: then it has no children either.
        if let Some(ppid) = fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| parent_in_stat(&stat))
        {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut queue = vec![root.as_raw()];
    while let Some(parent) = queue.pop() {
        for &pid in children.get(&parent).map_or(&[][..], Vec::as_slice) {
            found.push(Pid::from_raw(pid));
            queue.push(pid);
        }
    }
    found
}

/// The parent pid in the text of `/proc/<pid>/stat`: `pid (comm) state ppid ...`, where `comm`
/// may itself hold spaces and parentheses, so the fields are counted from the last `)`.
fn parent_in_stat(stat: &str) -> Option<i32> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::TcpListener;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use nix::sys::signal::Signal;

    use super::*;

    #[test]
    fn a_free_port_can_be_bound() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        TcpListener::bind(loopback(port)).unwrap();
    }

    #[test]
    fn an_open_port_is_seen_open_and_then_closed() {
        let listener = TcpListener::bind(loopback(0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(port_is_open(port));
        assert!(!wait_port_closed(port, Duration::from_millis(50)));
        drop(listener);
        assert!(wait_port_closed(port, Duration::from_secs(2)));
    }

    #[test]
    fn the_log_tail_holds_only_what_was_written_after_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.log");
        let (mut file, start) = open_log(&path).unwrap();
        assert_eq!(start, 0);
        writeln!(file, "first start\nfailed").unwrap();
        let (mut file, offset) = open_log(&path).unwrap();
        writeln!(file, "one\ntwo\nthree").unwrap();
        assert_eq!(log_since(&path, offset, 2), "two\nthree");
        assert_eq!(log_since(&path, offset, 10), "one\ntwo\nthree");
        assert_eq!(log_since(&path, offset + 14, 10), "(the log is empty)");
        assert!(log_since(&dir.path().join("missing.log"), 0, 10).starts_with("(could not read"));
    }

    fn is_port_taken(log: &str) -> bool {
        matches!(
            StartFailure::from_log("failed", Path::new("x.log"), log),
            StartFailure::PortTaken(_)
        )
    }

    #[test]
    fn a_bind_failure_is_recognised_in_both_servers_words() {
        let postgres = "LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use";
        let redis = "Warning: Could not create server TCP listening socket 127.0.0.1:6379: \
                     bind: Address already in use";
        assert!(is_port_taken(postgres));
        assert!(is_port_taken(redis));
        assert!(!is_port_taken("FATAL:  data directory has wrong ownership"));
    }

    #[test]
    fn a_start_is_retried_on_another_port_only_when_the_port_was_taken() {
        let mut ports = Vec::new();
        let result = start_on_free_port("test server", |port| {
            ports.push(port);
            if ports.len() < START_ATTEMPTS {
                Err(StartFailure::from_log(
                    "taken",
                    Path::new("x.log"),
                    ADDRESS_IN_USE,
                ))
            } else {
                Ok(())
            }
        });
        assert_eq!(result.unwrap(), ports[START_ATTEMPTS - 1]);

        let mut calls = 0;
        let result = start_on_free_port("test server", |_| {
            calls += 1;
            Err(StartFailure::from_log(
                "taken",
                Path::new("x.log"),
                ADDRESS_IN_USE,
            ))
        });
        assert_eq!(calls, START_ATTEMPTS);
        assert!(format!("{:#}", result.unwrap_err()).contains(ADDRESS_IN_USE));

        let mut calls = 0;
        let result = start_on_free_port("test server", |_| {
            calls += 1;
            Err(StartFailure::Other(anyhow::anyhow!("initdb is broken")))
        });
        assert_eq!(calls, 1);
        assert_eq!(result.unwrap_err().to_string(), "initdb is broken");
    }

    #[test]
    fn executables_are_found_on_path_and_plain_files_are_not() {
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("surely-no-such-program-here").is_none());
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        assert!(!is_executable(&plain));
        assert!(!is_executable(dir.path()));
    }

    /// Whether `pid` is gone: no longer in `/proc`, or a zombie waiting for a parent to reap it.
    fn is_gone(pid: Pid) -> bool {
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rfind(')')
                .and_then(|at| stat[at + 1..].split_whitespace().next())
                .is_some_and(|state| state == "Z" || state == "X"),
            Err(_) => true,
        }
    }

    #[test]
    fn the_parent_pid_is_read_past_a_command_name_with_spaces_and_parentheses() {
        assert_eq!(parent_in_stat("42 (sh) S 7 42 42 0 -1"), Some(7));
        assert_eq!(parent_in_stat("42 (a b) c) R 1 42"), Some(1));
        assert_eq!(parent_in_stat("42 (sh"), None);
        assert_eq!(parent_in_stat(""), None);
    }

    #[test]
    fn killing_a_tree_takes_the_grandchildren_too() {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        // Two grandchildren the shell waits for; they would outlive a plain kill of the shell.
        let mut child = Command::new("sh")
            .args(["-c", "sleep 60 & sleep 60 & : > \"$1\"; wait", "sh"])
            .arg(&ready)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready.exists() && Instant::now() < deadline {
            thread::sleep(POLL_INTERVAL);
        }
        let grandchildren = descendants(pid_of(&child));
        assert_eq!(grandchildren.len(), 2, "{grandchildren:?}");

        let status = kill_tree(&mut child).unwrap();
        assert!(!status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !grandchildren.iter().all(|&pid| is_gone(pid)) && Instant::now() < deadline {
            thread::sleep(POLL_INTERVAL);
        }
        for pid in grandchildren {
            assert!(is_gone(pid), "{pid} survived");
        }
        // Killing an already reaped tree again is harmless.
        kill_tree(&mut child).unwrap();
    }

    #[test]
    fn a_child_that_ignores_its_signal_is_killed_after_the_grace_period() {
        // `exec` keeps one process, so nothing outlives the test once the shell is killed.
        let mut child = Command::new("sh")
            .args(["-c", "trap '' INT; exec sleep 30"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Give the shell a moment to install its trap.
        std::thread::sleep(Duration::from_millis(200));
        let status = stop_child(&mut child, Signal::SIGINT, Duration::from_millis(200)).unwrap();
        assert!(!status.success());
        // A second stop of the same, already reaped child is harmless.
        stop_child(&mut child, Signal::SIGINT, Duration::from_millis(10)).unwrap();
    }
}
