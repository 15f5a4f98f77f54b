//! An ephemeral Redis server: `redis-server` as a child process, without persistence.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::process::{
    POLL_INTERVAL, StartFailure, find_in_path, log_since, loopback, open_log, pid_of,
    start_on_free_port, stop_child, wait_port_closed,
};

/// How long a start may take before we give up and show the server log.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long we wait for the port to close after the kill.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How many log lines an error shows.
const LOG_LINES: usize = 20;

/// A Redis server of its own for a test run or a single test, on a free port of 127.0.0.1.
///
/// It exists so that the cache is tested against the real server, and so that fault tests can
/// take it away and bring it back. Nothing is persisted unless [`snapshot`](Self::snapshot) asks: a
/// restart starts empty.
#[derive(Debug)]
pub struct RedisServer {
    /// The `redis-server` executable found on PATH.
    binary: PathBuf,
    /// The TCP port on 127.0.0.1, kept across restarts.
    port: u16,
    /// The running server; `None` while stopped.
    child: Option<Child>,
    /// Its working directory and `redis.log`; deleted when the server is dropped.
    dir: TempDir,
}

impl RedisServer {
    /// Starts `redis-server` on a free port and blocks until it answers `PING`.
    pub fn start() -> anyhow::Result<Self> {
        let binary = find_in_path("redis-server")
            .context("redis-server not found on PATH: run `cargo xtask setup`")?;
        let dir = tempfile::Builder::new()
            .prefix("wander-redis-")
            .tempdir()
            .context("creating a temporary directory for Redis")?;
        let mut server = Self {
            binary,
            port: 0,
            child: None,
            dir,
        };
        start_on_free_port("Redis", |port| {
            server.port = port;
            server.spawn_and_wait()
        })?;
        Ok(server)
    }

    /// The URL clients connect with.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The TCP port on 127.0.0.1; the same before and after a restart.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server and waits until its port is closed, so a fault test sees Redis gone.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, Signal::SIGKILL, Duration::ZERO).context("stopping Redis")?;
        }
        if !wait_port_closed(self.port, STOP_TIMEOUT) {
            bail!("Redis was killed but port {} is still open", self.port);
        }
        Ok(())
    }

    /// Writes the data set to disk (`SAVE`), so that the next [`start_again`](Self::start_again)
    /// comes back with it: an outage that loses the connection but not the data, which is how a
    /// restarted production Redis with persistence behaves.
    pub fn snapshot(&self) -> anyhow::Result<()> {
        let reply = command(self.port, b"SAVE\r\n", 5).context("asking Redis to SAVE")?;
        if reply != b"+OK\r\n" {
            bail!(
                "Redis answered SAVE with {:?}",
                String::from_utf8_lossy(&reply)
            );
        }
        Ok(())
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is answered, like a Redis
    /// stuck in a long command or behind a saturated network.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal(Signal::SIGSTOP)
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal(Signal::SIGCONT)
    }

    fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let child = self.child.as_ref().context("Redis is not running")?;
        nix::sys::signal::kill(pid_of(child), signal)
            .with_context(|| format!("sending {signal} to Redis"))
    }

    /// Starts the server again on the same port (empty unless [`snapshot`](Self::snapshot) saved
    /// its data), and blocks until it answers `PING`.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("Redis is already running on port {}", self.port);
        }
        self.spawn_and_wait()
            .map_err(|failure| failure.into_restart_error("Redis", self.port))
    }

    /// Starts `redis-server` on `self.port` and waits for `PING`. On failure the child is gone
    /// again and the error carries the server's own words.
    fn spawn_and_wait(&mut self) -> Result<(), StartFailure> {
        let log_path = self.dir.path().join("redis.log");
        let (stdout, offset) = open_log(&log_path).context("opening the Redis log")?;
        let stderr = stdout.try_clone().context("opening the Redis log")?;
        let port = self.port.to_string();
        let child = Command::new(&self.binary)
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--logfile", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        let child = self.child.insert(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        let failure = loop {
            if let Some(status) = child.try_wait().context("checking on Redis")? {
                break format!("Redis exited ({status}) before answering PING");
            }
            if answers_ping(self.port) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                break format!(
                    "Redis did not answer PING on port {} within {}s",
                    self.port,
                    READY_TIMEOUT.as_secs()
                );
            }
            thread::sleep(POLL_INTERVAL);
        };

        if let Some(mut child) = self.child.take() {
            // The start failed already; a failure to stop adds nothing useful.
            let _ = stop_child(&mut child, Signal::SIGKILL, Duration::ZERO);
        }
        let log = log_since(&log_path, offset, LOG_LINES);
        Err(StartFailure::from_log(&failure, &log_path, &log))
    }
}

impl Drop for RedisServer {
    /// Kills the server; the temporary directory goes afterwards with the `dir` field.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = stop_child(&mut child, Signal::SIGKILL, Duration::ZERO);
        }
    }
}

/// Whether the server on `port` answers an inline `PING` with `+PONG`.
fn answers_ping(port: u16) -> bool {
    command(port, b"PING\r\n", 2).is_ok_and(|reply| reply == b"+PONG\r\n")
}

/// Sends one inline command and returns the first reply line, `\r\n` included.
fn command(port: u16, line: &[u8], timeout_secs: u64) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&loopback(port), Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_secs(timeout_secs)))?;
    stream.write_all(line)?;
    let mut reply = Vec::new();
    let mut byte = [0_u8; 1];
    while !reply.ends_with(b"\r\n") {
        stream.read_exact(&mut byte)?;
        reply.push(byte[0]);
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_port_does_not_answer_ping() {
        assert!(!answers_ping(crate::process::free_port().unwrap()));
    }
}
