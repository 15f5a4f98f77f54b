//! chromedriver as a child process, and the capabilities of a headless, hermetic Chromium session.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};
use tempfile::TempDir;

use crate::process::{
    POLL_INTERVAL, StartFailure, find_in_path, is_executable, kill_tree, log_since, loopback,
    open_log, start_on_free_port,
};

/// Names the variable that points at the browser when it is not Debian's `/usr/bin/chromium`
/// (nor a `chromium` on PATH).
pub const CHROME_BIN_ENV: &str = "CHROME_BIN";

/// Where Debian's `chromium` package puts the browser (a launcher script).
const DEFAULT_CHROME_BIN: &str = "/usr/bin/chromium";

/// How long a start may take before we give up and show the driver's log.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How many log lines an error shows.
const LOG_LINES: usize = 20;

/// What `cargo xtask setup` installs these from, for the messages that say what is missing.
const INSTALL_HINT: &str =
    "run `cargo xtask setup` (Debian's chromium and chromium-driver packages)";

/// A chromedriver of its own for a test, on a free port of 127.0.0.1.
///
/// It exists so that the dashboard is tested in a real browser: a test opens WebDriver sessions
/// on [`url`](Self::url) with the capabilities of
/// [`headless_chromium`](Self::headless_chromium). Dropping it kills chromedriver together with
/// every browser it started (a test that panics mid-session leaves nothing running), then
/// deletes the profiles.
#[derive(Debug)]
pub struct Chromedriver {
    /// The TCP port on 127.0.0.1 the WebDriver API listens on.
    port: u16,
    /// The running driver; `None` only while a start is being retried.
    child: Option<Child>,
    /// Holds `chromedriver.log`, the home directory the browsers see and their profiles;
    /// deleted on drop, after the processes are gone.
    dir: TempDir,
    /// Numbers the profiles, so that every session starts from an empty one.
    profiles: AtomicU32,
}

impl Chromedriver {
    /// Starts `chromedriver` (found on PATH) on a free port and blocks until `GET /status`
    /// reports it ready for new sessions.
    pub fn start() -> anyhow::Result<Self> {
        let binary = find_in_path("chromedriver")
            .with_context(|| format!("chromedriver not found on PATH: {INSTALL_HINT}"))?;
        let dir = tempfile::Builder::new()
            .prefix("wander-chromedriver-")
            .tempdir()
            .context("creating a temporary directory for chromedriver")?;
        std::fs::create_dir(dir.path().join("home"))
            .context("creating the browser's home directory")?;
        let mut driver = Self {
            port: 0,
            child: None,
            dir,
            profiles: AtomicU32::new(0),
        };
        start_on_free_port("chromedriver", |port| {
            driver.port = port;
            driver.spawn_and_wait(&binary)
        })?;
        Ok(driver)
    }

    /// The base URL of the WebDriver API, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Capabilities for a new session of headless Chromium with a profile of its own, created
    /// empty under this driver's directory (see [`headless_chromium_capabilities`]).
    pub fn headless_chromium(&self) -> anyhow::Result<Map<String, Value>> {
        let binary = chromium_binary()?;
        let number = self.profiles.fetch_add(1, Ordering::Relaxed);
        let profile = self.dir.path().join(format!("profile-{number}"));
        std::fs::create_dir(&profile)
            .with_context(|| format!("creating the browser profile {}", profile.display()))?;
        Ok(headless_chromium_capabilities(&binary, &profile))
    }

    /// Starts chromedriver on `self.port` and waits for it to be ready. On failure the child is
    /// gone again and the error carries the driver's own words.
    fn spawn_and_wait(&mut self, binary: &Path) -> Result<(), StartFailure> {
        let log_path = self.dir.path().join("chromedriver.log");
        let (stdout, offset) = open_log(&log_path).context("opening the chromedriver log")?;
        let stderr = stdout.try_clone().context("opening the chromedriver log")?;
        let home = self.dir.path().join("home");
        let child = Command::new(binary)
            .arg(format!("--port={}", self.port))
            .arg("--allowed-ips=127.0.0.1")
            // The browsers inherit this environment: whatever Chromium writes outside its
            // profile (crash reports, caches, the NSS database) lands in the temporary directory
            // instead of the developer's home.
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let child = self.child.insert(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        let failure = loop {
            if let Some(status) = child.try_wait().context("checking on chromedriver")? {
                break format!("chromedriver exited ({status}) before it was ready");
            }
            if is_ready(self.port) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                break format!(
                    "chromedriver was not ready on port {} within {}s",
                    self.port,
                    READY_TIMEOUT.as_secs()
                );
            }
            thread::sleep(POLL_INTERVAL);
        };

        if let Some(mut child) = self.child.take() {
            // The start failed already; a failure to stop adds nothing useful.
            let _ = kill_tree(&mut child);
        }
        let log = log_since(&log_path, offset, LOG_LINES);
        Err(StartFailure::from_log(&failure, &log_path, &log))
    }
}

impl Drop for Chromedriver {
    /// Kills chromedriver and the browsers it started; the directory goes afterwards with the
    /// `dir` field.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill_tree(&mut child);
        }
    }
}

/// The browser to drive: `CHROME_BIN` when set, otherwise Debian's `/usr/bin/chromium`, otherwise
/// a `chromium` on PATH.
pub fn chromium_binary() -> anyhow::Result<PathBuf> {
    if let Some(value) = std::env::var_os(CHROME_BIN_ENV).filter(|value| !value.is_empty()) {
        let binary = PathBuf::from(value);
        if !is_executable(&binary) {
            bail!(
                "{CHROME_BIN_ENV}={} is not an executable file: point it at a Chromium of \
                 chromedriver's version",
                binary.display()
            );
        }
        return Ok(binary);
    }
    let default = PathBuf::from(DEFAULT_CHROME_BIN);
    if is_executable(&default) {
        return Ok(default);
    }
    find_in_path("chromium").with_context(|| {
        format!(
            "no browser at {DEFAULT_CHROME_BIN} nor on PATH: {INSTALL_HINT}, or set \
             {CHROME_BIN_ENV} to a Chromium of chromedriver's version"
        )
    })
}

/// WebDriver capabilities for headless Chromium that is quiet and self-contained: it runs the
/// given `binary` with its profile in `user_data_dir` (which should start empty), and makes no
/// connection of its own (the network here refuses them, and a test must not depend on it).
/// Console messages of every level are kept for the test to read (`goog:loggingPrefs`).
pub fn headless_chromium_capabilities(binary: &Path, user_data_dir: &Path) -> Map<String, Value> {
    let args = [
        "--headless=new",
        // Tests often run as root in a container, where Chromium's sandbox cannot start.
        "--no-sandbox",
        "--disable-gpu",
        // A container's /dev/shm is often a few megabytes, too little for Chromium.
        "--disable-dev-shm-usage",
        // No background traffic: QUIC probes, field trials, component and extension updates,
        // sync, first-run pages and default-browser checks.
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        // Do not look for a desktop keyring to store passwords in.
        "--password-store=basic",
        // Screenshots show the page, not scroll bars.
        "--hide-scrollbars",
        "--window-size=1280,900",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([format!("--user-data-dir={}", user_data_dir.display())]);
    let mut capabilities = Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": binary.to_string_lossy(),
            "args": args.collect::<Vec<_>>(),
        }),
    );
    capabilities.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    capabilities
}

/// Whether chromedriver on `port` answers `GET /status` with `"ready": true`.
fn is_ready(port: u16) -> bool {
    get_json(port, "/status").is_ok_and(|status| status["value"]["ready"] == Value::Bool(true))
}

/// A plain HTTP/1.1 GET on 127.0.0.1:`port`, its body parsed as JSON.
fn get_json(port: u16, path: &str) -> anyhow::Result<Value> {
    let mut stream = TcpStream::connect_timeout(&loopback(port), Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    // chromedriver promises to close the connection but does not: read exactly the head, then
    // as many bytes as Content-Length says (it never answers /status chunked).
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("unexpected response: {status}");
    }
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .context("a response without Content-Length")?;
    let mut body = vec![0_u8; length];
    stream.read_exact(&mut body)?;
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capabilities_name_the_browser_and_a_fresh_profile() {
        let capabilities = headless_chromium_capabilities(
            Path::new("/opt/chromium/chrome"),
            Path::new("/tmp/profile-0"),
        );
        let options = &capabilities["goog:chromeOptions"];
        assert_eq!(options["binary"], "/opt/chromium/chrome");
        let args: Vec<&str> = options["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|arg| arg.as_str().unwrap())
            .collect();
        for expected in [
            "--headless=new",
            "--no-sandbox",
            "--disable-background-networking",
            "--user-data-dir=/tmp/profile-0",
            "--window-size=1280,900",
        ] {
            assert!(args.contains(&expected), "{expected} missing from {args:?}");
        }
        assert_eq!(capabilities["goog:loggingPrefs"]["browser"], "ALL");
    }

    #[test]
    fn a_closed_port_is_not_ready() {
        assert!(!is_ready(crate::process::free_port().unwrap()));
    }
}
