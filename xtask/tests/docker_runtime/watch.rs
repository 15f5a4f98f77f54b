//! `cargo xtask dev --watch` end to end: the real binary watching a copy of the repository (so
//! its edits never reach the other tests' images), the real engine, real rebuilds.
//!
//! The copy builds into the real target directory, reusing the compiled dependencies; the
//! tests that compile the apps run one at a time (`.config/nextest.toml`, group `app-builds`),
//! since each build leaves its binary at the same path.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::{self, TestStack, repo_root};

/// How long the first `dev --watch` may take: it compiles our crates unoptimised for the copy.
const FIRST_UP: Duration = Duration::from_secs(600);
/// How long one cycle may take, from the write to the new version answering.
const CYCLE: Duration = Duration::from_secs(180);

/// A copy of the repository's tracked files, as `git ls-files` lists them.
fn copy_repository() -> tempfile::TempDir {
    let root = repo_root();
    let listed = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let dir = tempfile::Builder::new()
        .prefix("wander-watch-")
        .tempdir()
        .unwrap();
    for file in listed.stdout.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let relative = Path::new(std::str::from_utf8(file).unwrap());
        let from = root.join(relative);
        if !from.is_file() {
            continue;
        }
        let to = dir.path().join(relative);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
    }
    dir
}

/// Replaces the one occurrence of `from` in the copy's `file`.
fn edit(copy: &Path, file: &str, from: &str, to: &str) {
    let path = copy.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches(from).count(), 1, "{from:?} in {file}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// The running `dev --watch`, its output gathered as it comes.
struct Watching {
    child: Child,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

impl Watching {
    fn start(stack: &TestStack, copy: &Path) -> Self {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
        let mut child = stack
            .command(&["dev", "--watch", "--no-open"])
            .current_dir(copy)
            .env("CARGO_TARGET_DIR", target)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let gather = |from: Box<dyn std::io::Read + Send>| {
            let text = Arc::new(Mutex::new(String::new()));
            let into = Arc::clone(&text);
            std::thread::spawn(move || {
                for line in BufReader::new(from).lines().map_while(Result::ok) {
                    let mut text = into.lock().unwrap();
                    text.push_str(&line);
                    text.push('\n');
                }
            });
            text
        };
        let stderr = gather(Box::new(child.stderr.take().unwrap()));
        let stdout = gather(Box::new(child.stdout.take().unwrap()));
        Self {
            child,
            stderr,
            stdout,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr holds `needle` `times` times; panics with the output at `limit`.
    fn wait_for(&mut self, needle: &str, times: usize, limit: Duration) {
        let started = Instant::now();
        while self.stderr().matches(needle).count() < times {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("dev --watch ended ({status}):\n{}", self.stderr());
            }
            assert!(
                started.elapsed() < limit,
                "no {needle:?} (x{times}) after {limit:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `url` until its body holds `needle`; the body.
async fn answers(url: &str, needle: &str, limit: Duration) -> String {
    let started = Instant::now();
    loop {
        if let Ok(response) = reqwest::get(url).await
            && let Ok(body) = response.text().await
            && body.contains(needle)
        {
            return body;
        }
        assert!(started.elapsed() < limit, "{url} never held {needle:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The id of the stack's container of `service`.
async fn container_id(stack: &TestStack, service: &str) -> String {
    helpers::docker()
        .await
        .inspect_container(&format!("{}-{service}", stack.name), None)
        .await
        .unwrap()
        .id
        .unwrap()
}

async fn ids(stack: &TestStack) -> [String; 4] {
    [
        container_id(stack, "postgres").await,
        container_id(stack, "redis").await,
        container_id(stack, "api").await,
        container_id(stack, "web").await,
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_replaces_what_a_save_changes_and_survives_what_breaks() {
    let stack = TestStack::new("watch");
    let copy = copy_repository();
    let copy = copy.path().to_path_buf();
    let mut watching = Watching::start(&stack, &copy);
    watching.wait_for("watching the sources of", 1, FIRST_UP);
    assert!(
        watching.stderr().contains("the stack is up"),
        "{}",
        watching.stderr()
    );
    let before = ids(&stack).await;

    // An API handler changes what it answers: the API alone is replaced, and answers anew.
    edit(
        &copy,
        "api/src/routes/health.rs",
        "status: \"ok\".to_owned(),",
        "status: \"ok-watched\".to_owned(),",
    );
    watching.wait_for("api rebuilt and replaced", 1, CYCLE);
    answers(&stack.api("/livez"), "ok-watched", CYCLE).await;
    let after = ids(&stack).await;
    assert_ne!(after[2], before[2], "the API was not replaced");
    assert_eq!(
        [&after[0], &after[1], &after[3]],
        [&before[0], &before[1], &before[3]],
        "only the API may be replaced"
    );
    // Its log lines are in view, prefixed with its name.
    let started = Instant::now();
    while !watching.stdout.lock().unwrap().contains("api ") {
        assert!(started.elapsed() < CYCLE, "no API log line in view");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A dashboard template: the dashboard alone; and twenty writes within a second, one rebuild.
    let template = copy.join("web/templates/dashboard.html");
    let original = std::fs::read_to_string(&template).unwrap();
    for i in 0..20 {
        let heading = if i == 19 {
            "<h1>Dashboard (watched)</h1>".to_owned()
        } else {
            format!("<h1>Dashboard {i}</h1>")
        };
        std::fs::write(
            &template,
            original.replacen("<h1>Dashboard</h1>", &heading, 1),
        )
        .unwrap();
    }
    watching.wait_for("web rebuilt and replaced", 1, CYCLE);
    answers(&stack.web("/"), "Dashboard (watched)", CYCLE).await;
    let web_done = ids(&stack).await;
    assert_ne!(web_done[3], after[3], "the dashboard was not replaced");
    assert_eq!(web_done[2], after[2], "only the dashboard may be replaced");
    // Give a second burst time to show up if the writes had been split.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        watching
            .stderr()
            .matches("web rebuilt and replaced")
            .count(),
        1,
        "twenty writes gave more than one rebuild:\n{}",
        watching.stderr()
    );

    // A compile error: rustc's first error shown, the running API still answering, the loop
    // alive; the fix recovers.
    edit(
        &copy,
        "api/src/routes/health.rs",
        "status: \"ok-watched\".to_owned(),",
        "status: no_such_value.to_owned(),",
    );
    watching.wait_for("does not compile", 1, CYCLE);
    let stderr = watching.stderr();
    assert!(stderr.contains("E0425"), "{stderr}");
    assert!(stderr.contains("the running api keeps serving"), "{stderr}");
    answers(&stack.api("/livez"), "ok-watched", Duration::from_secs(5)).await;
    edit(
        &copy,
        "api/src/routes/health.rs",
        "status: no_such_value.to_owned(),",
        "status: \"ok-fixed\".to_owned(),",
    );
    watching.wait_for("api rebuilt and replaced", 2, CYCLE);
    answers(&stack.api("/livez"), "ok-fixed", CYCLE).await;

    // A version that crashes as it starts: its last lines shown, the previous version serving
    // again, the loop alive; undoing the edit leaves the running API as it is.
    edit(
        &copy,
        "api/src/main.rs",
        "    let config = Config::from_env();\n",
        "    eprintln!(\"crashing on purpose\");\n    std::process::exit(3);\n    #[allow(unreachable_code)]\n    let config = Config::from_env();\n",
    );
    watching.wait_for("the previous version is serving again", 1, CYCLE);
    let stderr = watching.stderr();
    assert!(stderr.contains("the new api did not get ready"), "{stderr}");
    assert!(stderr.contains("crashing on purpose"), "{stderr}");
    answers(&stack.api("/livez"), "ok-fixed", Duration::from_secs(5)).await;
    edit(
        &copy,
        "api/src/main.rs",
        "    eprintln!(\"crashing on purpose\");\n    std::process::exit(3);\n    #[allow(unreachable_code)]\n    let config = Config::from_env();\n",
        "    let config = Config::from_env();\n",
    );
    watching.wait_for("api already runs this build", 1, CYCLE);
    answers(&stack.api("/livez"), "ok-fixed", Duration::from_secs(5)).await;

    // An environment change in one manifest replaces that workload only.
    let before_manifest = ids(&stack).await;
    edit(
        &copy,
        "manifests/web.yaml",
        "            - name: WEB_ADDR\n",
        "            - name: RUST_LOG\n              value: info\n            - name: WEB_ADDR\n",
    );
    watching.wait_for("manifests applied (1 of 4 services changed)", 1, CYCLE);
    let after_manifest = ids(&stack).await;
    assert_ne!(after_manifest[3], before_manifest[3]);
    assert_eq!(after_manifest[..3], before_manifest[..3]);

    // Ctrl-C while a rebuild compiles: 130 within 2 s, nothing it started left, the stack up.
    let title = "api/src/routes/health.rs changed";
    let cycles = watching.stderr().matches(title).count();
    edit(
        &copy,
        "api/src/routes/health.rs",
        "status: \"ok-fixed\".to_owned(),",
        "status: \"ok-interrupted\".to_owned(),",
    );
    watching.wait_for(title, cycles + 1, CYCLE);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(watching.child.id()).unwrap());
    let sent = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = loop {
        if let Some(status) = watching.child.try_wait().unwrap() {
            break status;
        }
        assert!(sent.elapsed() < Duration::from_secs(10), "still watching");
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(130), "{}", watching.stderr());
    assert!(took < Duration::from_secs(2), "Ctrl-C took {took:?}");
    // The reader threads have the last lines once the pipes close.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        watching.stderr().contains("the stack is still up"),
        "{}",
        watching.stderr()
    );
    let started = Instant::now();
    loop {
        // The kubelet is the stack's own, started by the first `dev`: it stays with the stack.
        let left: Vec<(u32, String)> = helpers::processes_of(&stack.name)
            .into_iter()
            .filter(|(_, cmdline)| !cmdline.ends_with(" kubelet"))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "left running after Ctrl-C: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let run = stack.run(&["status", "--json"]);
    run.assert_ok();
    let status: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["healthy"], true, "{status}");
    answers(&stack.api("/livez"), "ok-fixed", Duration::from_secs(5)).await;
}
