//! An ephemeral PostgreSQL server: initdb in a temporary directory, `postgres` as a child process.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid, User, chown, geteuid};
use tempfile::TempDir;

use crate::process::{
    POLL_INTERVAL, StartFailure, find_in_path, is_executable, log_since, loopback, open_log,
    start_on_free_port, stop_child, wait_port_closed,
};

/// The superuser that initdb creates; the admin URL logs in as it.
const SUPERUSER: &str = "postgres";

/// How long a start may take before we give up and show the server log. initdb is done by then;
/// this covers crash recovery after a kill and a machine busy compiling.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a fast shutdown may take before the server is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long an immediate shutdown (on drop) may take before the server is killed.
const DROP_GRACE: Duration = Duration::from_secs(5);

/// How many log lines an error shows.
const LOG_LINES: usize = 20;

/// Settings that trade durability, which a throwaway server does not need, for speed.
const SERVER_SETTINGS: &[&str] = &[
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    // Every test process opens its own pool; leave room for many at once.
    "max_connections=200",
    // Several servers may run at once (the shared one plus fault tests' own); keep each small.
    "shared_buffers=32MB",
];

/// A PostgreSQL server of its own for a test run or a single test, on a free port of 127.0.0.1.
///
/// It exists so that tests run against the real database engine without depending on (or
/// disturbing) any server installed on the machine. The data lives in a temporary directory
/// removed on drop; the server runs as a direct child so that it can always be stopped.
#[derive(Debug)]
pub struct PostgresServer {
    /// Where `initdb` and `postgres` were found.
    bin_dir: PathBuf,
    /// The account the server runs as when we are root, since PostgreSQL refuses to run as root.
    run_as: Option<(Uid, Gid)>,
    /// The TCP port on 127.0.0.1, kept across restarts so URLs handed out stay valid.
    port: u16,
    /// The running postmaster; `None` while stopped.
    child: Option<Child>,
    /// Holds `data/`, `sock/` and `postgres.log`; deleted when the server is dropped.
    dir: TempDir,
}

impl PostgresServer {
    /// Initialises a new cluster in a temporary directory and starts it, blocking until it
    /// accepts connections.
    pub fn start() -> anyhow::Result<Self> {
        let bin_dir = find_bin_dir()?;
        let run_as = unprivileged_account()?;
        let dir = tempfile::Builder::new()
            .prefix("wander-pg-")
            .tempdir()
            .context("creating a temporary directory for PostgreSQL")?;
        let mut server = Self {
            bin_dir,
            run_as,
            port: 0,
            child: None,
            dir,
        };
        fs::create_dir(server.socket_dir()).context("creating the PostgreSQL socket directory")?;
        if let Some((uid, gid)) = run_as {
            for path in [server.dir.path(), &server.socket_dir()] {
                chown(path, Some(uid), Some(gid)).with_context(|| {
                    format!("handing {} to the PostgreSQL account", path.display())
                })?;
            }
        }
        server.initdb()?;
        start_on_free_port("PostgreSQL", |port| {
            server.port = port;
            server.spawn_and_wait()
        })?;
        Ok(server)
    }

    /// The URL of the `postgres` database as the superuser, for creating and dropping databases.
    pub fn admin_url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of `database` on this server, as the superuser.
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// The TCP port on 127.0.0.1; the same before and after a restart.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server with a fast shutdown (open sessions are ended, data is kept) and waits
    /// until the port is closed, so a fault test sees a database that is really gone.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, Signal::SIGINT, STOP_GRACE).context("stopping PostgreSQL")?;
        }
        if !wait_port_closed(self.port, STOP_GRACE) {
            bail!("PostgreSQL stopped but port {} is still open", self.port);
        }
        Ok(())
    }

    /// Starts the server again on the same data directory and port, blocking until it accepts
    /// connections, so clients configured with the old URL reconnect.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("PostgreSQL is already running on port {}", self.port);
        }
        self.spawn_and_wait()
            .map_err(|failure| failure.into_restart_error("PostgreSQL", self.port))
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// A command for one of the server programs, run as the unprivileged account when needed.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(program));
        command
            .current_dir(self.dir.path())
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
        command
    }

    fn initdb(&self) -> anyhow::Result<()> {
        let output = self
            .command("initdb")
            .arg("--pgdata")
            .arg(self.data_dir())
            .args([
                "--username",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .with_context(|| format!("running {}", self.bin_dir.join("initdb").display()))?;
        if !output.status.success() {
            bail!(
                "initdb failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Starts the postmaster on `self.port` and waits until it accepts connections. On failure
    /// the child is gone again and the error carries the server's own words.
    fn spawn_and_wait(&mut self) -> Result<(), StartFailure> {
        let log_path = self.log_path();
        let (log, offset) = open_log(&log_path).context("opening the PostgreSQL log")?;
        let stderr = log.try_clone().context("opening the PostgreSQL log")?;
        let mut command = self.command("postgres");
        command
            .arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.socket_dir().display()
            ));
        for setting in SERVER_SETTINGS {
            command.arg("-c").arg(setting);
        }
        let child = command
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", self.bin_dir.join("postgres").display()))?;
        let child = self.child.insert(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        let failure = loop {
            if let Some(status) = child.try_wait().context("checking on PostgreSQL")? {
                break format!("PostgreSQL exited ({status}) before accepting connections");
            }
            if accepts_sessions(self.port) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                break format!(
                    "PostgreSQL did not accept connections on port {} within {}s",
                    self.port,
                    READY_TIMEOUT.as_secs()
                );
            }
            thread::sleep(POLL_INTERVAL);
        };

        if let Some(mut child) = self.child.take() {
            // The start failed already; a failure to stop adds nothing useful.
            let _ = stop_child(&mut child, Signal::SIGQUIT, DROP_GRACE);
        }
        let log = log_since(&log_path, offset, LOG_LINES);
        Err(StartFailure::from_log(&failure, &log_path, &log))
    }
}

impl Drop for PostgresServer {
    /// Stops the server at once (immediate shutdown, then a kill if it lingers); the temporary
    /// directory goes afterwards with the `dir` field. Errors are ignored: a drop cannot report.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = stop_child(&mut child, Signal::SIGQUIT, DROP_GRACE);
        }
    }
}

/// When running as root, the account to run PostgreSQL as: `postgres` (which the Debian packages
/// create) or else `nobody`. `None` when we are not root and the server can run as us.
fn unprivileged_account() -> anyhow::Result<Option<(Uid, Gid)>> {
    if !geteuid().is_root() {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        if let Some(user) =
            User::from_name(name).with_context(|| format!("looking up user {name}"))?
        {
            return Ok(Some((user.uid, user.gid)));
        }
    }
    bail!("PostgreSQL cannot run as root and neither a `postgres` nor a `nobody` account exists")
}

/// Finds the directory holding `initdb` and `postgres`: `PG_BIN_DIR`, then `pg_config --bindir`,
/// then the newest `/usr/lib/postgresql/<version>/bin` (Debian keeps them off PATH), then PATH.
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR").filter(|dir| !dir.is_empty()) {
        let dir = PathBuf::from(dir);
        if has_server_programs(&dir) {
            return Ok(dir);
        }
        bail!(
            "PG_BIN_DIR is {} but initdb and postgres are not there",
            dir.display()
        );
    }
    let candidates = [
        pg_config_bindir(),
        newest_versioned_dir(Path::new("/usr/lib/postgresql")).map(|dir| dir.join("bin")),
        find_in_path("postgres").and_then(|path| path.parent().map(Path::to_path_buf)),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|dir| has_server_programs(dir))
        .context(
            "PostgreSQL server programs (initdb, postgres) not found: run `cargo xtask setup`, \
             or set PG_BIN_DIR to their directory",
        )
}

fn has_server_programs(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"))
}

fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config")
        .arg("--bindir")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = String::from_utf8(output.stdout).ok()?;
    Some(PathBuf::from(dir.trim()))
}

/// The subdirectory of `parent` with the highest version number for a name (`9.6` < `15` < `16`).
fn newest_versioned_dir(parent: &Path) -> Option<PathBuf> {
    let names = fs::read_dir(parent)
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok());
    newest_version(names).map(|name| parent.join(name))
}

fn newest_version(names: impl Iterator<Item = String>) -> Option<String> {
    names
        .filter_map(|name| {
            let version: Option<Vec<u32>> = name.split('.').map(|part| part.parse().ok()).collect();
            Some((version?, name))
        })
        .max()
        .map(|(_, name)| name)
}

/// Whether the server on `port` accepts a session now, not merely a TCP connection: while it
/// starts up or recovers it answers the startup message with an error instead of authentication.
fn accepts_sessions(port: u16) -> bool {
    let probe = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&loopback(port), Duration::from_millis(200))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.set_write_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(&startup_message(SUPERUSER, "postgres"))?;
        let mut kind = [0_u8; 1];
        stream.read_exact(&mut kind)?;
        if kind[0] == b'R' {
            // An authentication request (with trust: AuthenticationOk). Say goodbye politely.
            let _ = stream.write_all(&[b'X', 0, 0, 0, 4]);
            return Ok(true);
        }
        Ok(false)
    };
    probe().unwrap_or(false)
}

/// A protocol 3.0 StartupMessage: length, version, then `user` and `database` pairs.
fn startup_message(user: &str, database: &str) -> Vec<u8> {
    const PROTOCOL_3_0: u32 = 3 << 16;
    let mut body = PROTOCOL_3_0.to_be_bytes().to_vec();
    for (key, value) in [("user", user), ("database", database)] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let len = u32::try_from(body.len() + 4).unwrap_or(u32::MAX);
    let mut message = len.to_be_bytes().to_vec();
    message.extend_from_slice(&body);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_version_wins_numerically_and_odd_names_are_ignored() {
        let names = ["9.6", "15", "13", "16", "README", "16beta"].map(String::from);
        assert_eq!(newest_version(names.into_iter()).as_deref(), Some("16"));
        assert_eq!(newest_version(std::iter::empty()), None);
    }

    #[test]
    fn the_startup_message_is_length_prefixed_and_terminated() {
        let message = startup_message("postgres", "db");
        let expected_body: &[u8] = b"\0\x03\0\0user\0postgres\0database\0db\0\0";
        assert_eq!(
            &message[..4],
            &u32::try_from(message.len()).unwrap().to_be_bytes()
        );
        assert_eq!(&message[4..], expected_body);
    }

    #[test]
    fn urls_name_the_superuser_the_loopback_address_and_the_port() {
        let server = PostgresServer {
            bin_dir: PathBuf::new(),
            run_as: None,
            port: 54_321,
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        assert_eq!(
            server.admin_url(),
            "postgres://postgres@127.0.0.1:54321/postgres"
        );
        assert_eq!(
            server.url_for("t_1"),
            "postgres://postgres@127.0.0.1:54321/t_1"
        );
        assert_eq!(server.port(), 54_321);
    }

    #[test]
    fn a_closed_port_does_not_accept_sessions() {
        let port = crate::process::free_port().unwrap();
        assert!(!accepts_sessions(port));
    }
}
