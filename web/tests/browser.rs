//! The dashboard in a real browser: headless Chromium, driven through chromedriver, against the
//! real `web` and `api` binaries, a seeded database and Redis.
//!
//! Each test starts a stack of its own (a fresh seeded database, a Redis key prefix, the two
//! binaries on free ports, a chromedriver) and fails at any healthy step on an `.unavailable`
//! notice, an error page, panic text, or an error in the browser console. Screenshots land in
//! `target/screenshots/`. axe-core checks the pages' accessibility as a browser renders them.
//!
//! Run these tests alone with `cargo xtask test -- -p web -E 'binary(browser)'`. To also refresh
//! the screenshot in the docs (`docs/dashboard.png`, a copy of `dashboard-desktop.png`):
//! `WANDER_UPDATE_DOCS_SCREENSHOT=1 cargo xtask test -- -p web -E 'binary(browser)'`.
//!
//! The `api` binary is not a target of this package: the tests take it from the directory of the
//! `web` binary, where building the workspace (`cargo xtask test` does) puts it.

#![allow(clippy::unwrap_used, unreachable_pub)]

use std::hash::{BuildHasher, Hasher, RandomState};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use testkit::{Chromedriver, Seed, TestDatabase};

/// How long a page may take to show what a step waits for.
const ELEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a binary may take to answer its readiness probe (it migrates a database first).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the API may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// How often the waits poll.
const POLL: Duration = Duration::from_millis(50);

/// Rows on one page of the dashboard's table.
const PAGE_SIZE: usize = 10;

/// Deployments in `db/seed.sql`.
const SEEDED_DEPLOYMENTS: u64 = 28;

/// Text that means the server failed rather than rendered a page.
const ERROR_TEXT: &[&str] = &[
    "Internal Server Error",
    "panicked",
    "stack backtrace",
    "RUST_BACKTRACE",
];

/// The table rows of the dashboard, one per deployment.
const ROWS: &str = "#deployments-table tbody tr[data-deployment-id]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeded_deployments_are_listed_filtered_and_paged() {
    let stack = Stack::start().await;
    let browser = &stack.browser;

    browser.open(&stack.web_url("/")).await;
    browser.wait_for(ROWS).await;
    browser.assert_healthy("the dashboard").await;
    for service in ["database", "redis", "api"] {
        assert_eq!(
            browser
                .attr(&format!("#health [data-service={service}]"), "data-status")
                .await,
            "up",
            "the health of {service}"
        );
    }
    let first_page = stack.api_ids("").await;
    assert_eq!(browser.row_ids().await, first_page, "page 1, newest first");
    assert_eq!(first_page.len(), PAGE_SIZE);
    assert_total(browser, "#deployments-total", SEEDED_DEPLOYMENTS).await;
    assert_total(browser, "#stats [data-stat=total]", SEEDED_DEPLOYMENTS).await;
    let success_rate = browser.text("#stats [data-stat=success-rate]").await;
    assert!(
        success_rate.chars().any(|c| c.is_ascii_digit()),
        "the success rate shows a figure: {success_rate:?}"
    );
    assert_eq!(browser.count("a[rel=prev]").await, 0, "no page before 1");
    let new_link = browser.attr("#new-deployment-link", "href").await;
    assert!(new_link.ends_with("/deployments/new"), "{new_link}");

    browser.screenshot("dashboard-desktop.png").await;
    if std::env::var_os("WANDER_UPDATE_DOCS_SCREENSHOT").is_some_and(|value| value == "1") {
        let docs = workspace_root().join("docs/dashboard.png");
        std::fs::copy(screenshots_dir().join("dashboard-desktop.png"), &docs)
            .unwrap_or_else(|err| panic!("copying the screenshot to {}: {err}", docs.display()));
    }
    browser.resize(390, 844).await;
    browser.assert_healthy("the dashboard on a phone").await;
    browser.screenshot("dashboard-phone.png").await;
    browser.resize(1280, 900).await;

    // Filtering by status through the form shows exactly the failed deployments.
    browser
        .choose("#filters select[name=status]", "failed")
        .await;
    browser.submit("#filters button[type=submit]").await;
    browser.wait_for(ROWS).await;
    browser
        .assert_healthy("the dashboard filtered by status")
        .await;
    assert_query(browser, "status", "failed").await;
    let failed = stack.api_page("status=failed").await;
    assert_eq!(browser.row_ids().await, ids_of(&failed));
    assert_badges(browser, "failed").await;
    assert_total(
        browser,
        "#deployments-total",
        failed["total"].as_u64().unwrap(),
    )
    .await;

    // The service filter, with the status filter reset to "all".
    browser.choose("#filters select[name=status]", "").await;
    browser.choose("#filters select[name=service]", "api").await;
    browser.submit("#filters button[type=submit]").await;
    browser.wait_for(ROWS).await;
    browser
        .assert_healthy("the dashboard filtered by service")
        .await;
    assert_query(browser, "service", "api").await;
    let of_api = stack.api_page("service=api").await;
    assert_eq!(browser.row_ids().await, ids_of(&of_api));
    assert_total(
        browser,
        "#deployments-total",
        of_api["total"].as_u64().unwrap(),
    )
    .await;

    // Paging through a filtered list keeps the filter: the completed ones span two pages.
    browser.open(&stack.web_url("/?status=completed")).await;
    browser.wait_for(ROWS).await;
    browser
        .assert_healthy("completed deployments, page 1")
        .await;
    let page_one = stack.api_ids("status=completed").await;
    assert_eq!(browser.row_ids().await, page_one);
    browser.follow("a[rel=next]").await;
    browser.wait_for(ROWS).await;
    browser
        .assert_healthy("completed deployments, page 2")
        .await;
    assert_query(browser, "status", "completed").await;
    let page_two = stack.api_ids("status=completed&offset=10").await;
    assert!(!page_two.is_empty());
    assert_eq!(
        browser.row_ids().await,
        page_two,
        "page 2 holds the next rows"
    );
    assert_badges(browser, "completed").await;
    browser.follow("a[rel=prev]").await;
    browser.wait_for(ROWS).await;
    browser
        .assert_healthy("completed deployments, back on page 1")
        .await;
    assert_query(browser, "status", "completed").await;
    assert_eq!(browser.row_ids().await, page_one, "prev returns to page 1");

    stack.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_refuses_a_blank_version_then_creates_a_deployment_that_leads_the_list() {
    let stack = Stack::start().await;
    let browser = &stack.browser;

    browser.open(&stack.web_url("/")).await;
    browser.wait_for("#new-deployment-link").await;
    browser.follow("#new-deployment-link").await;
    browser.wait_for("#new-deployment").await;
    browser.assert_healthy("the new deployment form").await;
    browser.screenshot("new-deployment.png").await;

    let service = stack.api_get("/api/services").await["services"][0].clone();
    let environment = stack.api_get("/api/environments").await["environments"][0].clone();
    let service_id = service["id"].as_i64().unwrap().to_string();
    let environment_id = environment["id"].as_i64().unwrap().to_string();
    let field = |name: &str| format!("#new-deployment [name={name}]");
    browser.choose(&field("service_id"), &service_id).await;
    browser
        .choose(&field("environment_id"), &environment_id)
        .await;
    browser
        .type_into(&field("deployed_by"), "browser@wander.dev")
        .await;
    browser.choose(&field("status"), "completed").await;

    // A blank version: the server's own check, so the browser's (a `required` attribute, if
    // any) is switched off first.
    browser.type_into(&field("version"), "").await;
    browser
        .client
        .execute(
            "document.getElementById('new-deployment').noValidate = true",
            vec![],
        )
        .await
        .expect("switching off the browser's form validation");
    browser.submit("#new-deployment [type=submit]").await;
    browser.wait_for("#error-version").await;
    // The refused form may come back with a 4xx status, which the console reports.
    browser
        .assert_healthy_allowing_a_refusal("the form with a blank version")
        .await;
    assert_eq!(
        browser.value(&field("deployed_by")).await,
        "browser@wander.dev",
        "what was typed is kept"
    );

    let version = "v9.9.9-browser";
    browser.type_into(&field("version"), version).await;
    browser.submit("#new-deployment [type=submit]").await;
    let article = browser.wait_for("article#deployment").await;
    browser.assert_healthy("the new deployment's page").await;
    let id: i64 = article
        .attr("data-deployment-id")
        .await
        .unwrap()
        .expect("the article names its deployment")
        .parse()
        .expect("a numeric deployment id");
    assert_eq!(browser.path().await, format!("/deployments/{id}"));
    let body = browser.text("body").await;
    assert!(body.contains(version), "the page shows the version: {body}");
    let stored = stack.api_get(&format!("/api/deployments/{id}")).await;
    assert_eq!(stored["version"], version);
    assert_eq!(stored["deployed_by"], "browser@wander.dev");
    assert_eq!(stored["status"], "completed");
    assert_eq!(stored["service"]["id"], service["id"]);
    assert_eq!(stored["environment"]["id"], environment["id"]);

    browser.open(&stack.web_url("/")).await;
    browser.wait_for(ROWS).await;
    browser
        .assert_healthy("the dashboard after the creation")
        .await;
    assert_eq!(
        browser.row_ids().await.first(),
        Some(&id),
        "the newest comes first"
    );
    assert_total(browser, "#deployments-total", SEEDED_DEPLOYMENTS + 1).await;

    stack.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_indicator_shows_miss_then_hit_and_miss_again_after_clearing() {
    let stack = Stack::start().await;
    let browser = &stack.browser;
    let indicator = "#cache #cache-status";

    browser.open(&stack.web_url("/")).await;
    browser.wait_for(indicator).await;
    browser.assert_healthy("the first load").await;
    assert_eq!(browser.attr(indicator, "data-cache").await, "MISS");

    browser.reload().await;
    browser.wait_for(indicator).await;
    browser.assert_healthy("the reload").await;
    assert_eq!(browser.attr(indicator, "data-cache").await, "HIT");

    browser.submit("#clear-cache [type=submit]").await;
    browser.wait_for(indicator).await;
    browser
        .assert_healthy("the dashboard after clearing the cache")
        .await;
    assert_eq!(
        browser.path().await,
        "/",
        "clearing leads back to the dashboard"
    );
    assert_eq!(browser.attr(indicator, "data-cache").await, "MISS");

    stack.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axe_finds_no_accessibility_violations_on_the_dashboard_a_deployment_and_the_form() {
    let stack = Stack::start().await;
    let browser = &stack.browser;
    let axe = testkit::axe_core_source().unwrap();
    let first = stack.api_ids("").await[0];
    for (path, ready) in [
        ("/".to_owned(), ROWS),
        (format!("/deployments/{first}"), "#deployment"),
        ("/deployments/new".to_owned(), "#new-deployment"),
    ] {
        browser.open(&stack.web_url(&path)).await;
        browser.wait_for(ready).await;
        browser.assert_healthy(&path).await;
        let violations = browser.axe_violations(&axe).await;
        assert!(violations.is_empty(), "axe on {path}: {violations:#?}");
    }
    // The check sees what it is for: an unlabelled field added to the form is reported.
    browser
        .execute_script(
            "document.querySelector('#new-deployment').insertAdjacentHTML('beforeend', '<input type=text id=unlabelled>')",
        )
        .await;
    let violations = browser.axe_violations(&axe).await;
    assert!(
        violations
            .iter()
            .any(|v| v.contains("label") && v.contains("#unlabelled")),
        "{violations:#?}"
    );
    stack.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_still_renders_when_the_api_is_down() {
    let mut stack = Stack::start().await;

    stack.browser.open(&stack.web_url("/")).await;
    stack.browser.wait_for(ROWS).await;
    stack.browser.assert_healthy("the dashboard").await;

    let status = stack.api.terminate().await;
    assert!(
        status.success(),
        "the API exits cleanly on SIGTERM: {status}"
    );

    let browser = &stack.browser;
    browser.reload().await;
    browser.wait_for(".unavailable").await;
    browser
        .assert_no_error_page("the dashboard without its API")
        .await;
    assert!(
        browser.is_visible("[role=alert].unavailable").await,
        "the notice is visible"
    );
    assert_eq!(
        browser
            .attr("#health [data-service=api]", "data-status")
            .await,
        "down"
    );
    browser.wait_for("#new-deployment-link").await;
    browser.screenshot("api-down.png").await;
    // The console may report the page's own status (a 5xx), which is the point here.
    let _ = browser.console_errors().await;

    stack.finish().await;
}

// ----------------------------------------------------------------------------------------------
// The stack: database, the two binaries, a browser.

/// Everything one test runs against. Fields drop in order: the browser first, then the web, then
/// the API; each kills what it started, so a failing test leaves nothing running.
struct Stack {
    browser: Browser,
    /// Held for its drop, which stops the web.
    _web: Service,
    api: Service,
    /// `http://127.0.0.1:<port>` of the web.
    web_base: String,
    /// `http://127.0.0.1:<port>` of the API, which the test asks for the expected rows.
    api_base: String,
    http: reqwest::Client,
}

impl Stack {
    async fn start() -> Self {
        let database = TestDatabase::create(&testkit::pg_admin_url(), Seed::Seeded)
            .await
            .expect("creating a seeded test database");
        let api_binary = api_binary();
        let web_binary = PathBuf::from(env!("CARGO_BIN_EXE_web"));
        let token = random_hex();
        let cache_prefix = format!("browser-{}", random_hex());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        // chromedriver starts while the binaries do.
        let driver = tokio::task::spawn_blocking(Chromedriver::start);

        // Ports are picked free and then bound by the binaries, so another process can take one
        // in between: a start that fails is retried on new ports.
        let mut attempt = 1;
        let (api, web, api_base, web_base) = loop {
            let (api_port, web_port) = two_free_ports();
            let api_base = format!("http://127.0.0.1:{api_port}");
            let web_base = format!("http://127.0.0.1:{web_port}");
            let mut api = Service::spawn(
                "api",
                Command::new(&api_binary)
                    .env("API_ADDR", format!("127.0.0.1:{api_port}"))
                    .env("DATABASE_URL", &database.url)
                    .env("REDIS_URL", testkit::redis_url())
                    .env("CACHE_PREFIX", &cache_prefix)
                    .env("API_TOKEN", &token)
                    .env("CORS_ORIGIN", &web_base),
            );
            if let Err(err) = api.wait_ready(&http, &format!("{api_base}/livez")).await {
                assert!(attempt < 3, "{err}");
                attempt += 1;
                continue;
            }
            let mut web = Service::spawn(
                "web",
                Command::new(&web_binary)
                    .env("WEB_ADDR", format!("127.0.0.1:{web_port}"))
                    .env("WEB_ORIGIN", &web_base)
                    .env("API_URL", &api_base)
                    .env("API_TOKEN", &token),
            );
            if let Err(err) = web.wait_ready(&http, &format!("{web_base}/healthz")).await {
                assert!(attempt < 3, "{err}");
                attempt += 1;
                continue;
            }
            break (api, web, api_base, web_base);
        };

        let driver = driver
            .await
            .unwrap()
            .expect("starting chromedriver (`cargo xtask setup` installs it)");
        let browser = Browser::open_session(driver).await;
        Self {
            browser,
            _web: web,
            api,
            web_base,
            api_base,
            http,
        }
    }

    fn web_url(&self, path: &str) -> String {
        format!("{}{path}", self.web_base)
    }

    /// A GET of the API, straight from the test: the oracle for what the pages should show.
    async fn api_get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.api_base))
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {path} of the API: {err}"));
        assert!(response.status().is_success(), "GET {path}: {response:?}");
        response.json().await.unwrap()
    }

    /// One page of deployments as the dashboard asks for it: `query` plus its page size.
    async fn api_page(&self, query: &str) -> Value {
        let separator = if query.is_empty() { "" } else { "&" };
        self.api_get(&format!(
            "/api/deployments?limit={PAGE_SIZE}{separator}{query}"
        ))
        .await
    }

    async fn api_ids(&self, query: &str) -> Vec<i64> {
        ids_of(&self.api_page(query).await)
    }

    /// Ends the browser session properly; what is left is killed on drop.
    async fn finish(self) {
        self.browser
            .client
            .clone()
            .close()
            .await
            .expect("closing the browser session");
    }
}

/// The deployment ids of a page the API answered.
fn ids_of(page: &Value) -> Vec<i64> {
    page["deployments"]
        .as_array()
        .expect("a page of deployments")
        .iter()
        .map(|deployment| deployment["id"].as_i64().expect("a deployment id"))
        .collect()
}

/// Where the `api` binary is: next to the `web` binary, built with the workspace.
fn api_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_web")).with_file_name("api");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p api` first, or run the tests with `cargo xtask test`, \
         which builds every binary of the workspace",
        path.display()
    );
    path
}

/// Two different free ports of 127.0.0.1 (both listeners are held until both are known).
fn two_free_ports() -> (u16, u16) {
    let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let second = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (
        first.local_addr().unwrap().port(),
        second.local_addr().unwrap().port(),
    )
}

/// 128 random bits in hex, from the standard library's randomly keyed hasher.
fn random_hex() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let half = || {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(nanos);
        hasher.write_u32(std::process::id());
        hasher.finish()
    };
    format!("{:016x}{:016x}", half(), half())
}

/// One of the binaries, killed on drop unless it already exited.
struct Service {
    name: &'static str,
    child: Option<Child>,
}

impl Service {
    /// Starts the binary; its output goes to the test's, which nextest shows on failure.
    fn spawn(name: &'static str, command: &mut Command) -> Self {
        let child = command
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("starting the {name} binary: {err}"));
        Self {
            name,
            child: Some(child),
        }
    }

    /// Polls `url` until it answers 200; an error when the process exits first (a port taken
    /// meanwhile, worth a retry elsewhere); a panic when the deadline passes.
    async fn wait_ready(&mut self, http: &reqwest::Client, url: &str) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("a started service");
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Err(format!(
                    "the {} binary exited ({status}) before {url} answered",
                    self.name
                ));
            }
            if let Ok(response) = http.get(url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "the {} binary did not answer {url} within {}s",
                self.name,
                START_TIMEOUT.as_secs()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends SIGTERM and waits for the exit.
    async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("a running service");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the {} binary did not exit within {}s of SIGTERM",
                    self.name,
                    STOP_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

// ----------------------------------------------------------------------------------------------
// The browser.

/// A WebDriver session of headless Chromium. The driver field drops after the client and kills
/// the browser with it.
struct Browser {
    client: Client,
    /// For chromedriver's console log endpoint, which fantoccini does not wrap.
    http: reqwest::Client,
    driver: Chromedriver,
}

impl Browser {
    async fn open_session(driver: Chromedriver) -> Self {
        let capabilities = driver
            .headless_chromium()
            .expect("capabilities for headless Chromium");
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url())
            .await
            .expect("opening a session of headless Chromium");
        let browser = Self {
            client,
            http: reqwest::Client::new(),
            driver,
        };
        browser.resize(1280, 900).await;
        browser
    }

    /// Navigates to `url` and waits for the page to load.
    async fn open(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|err| panic!("opening {url}: {err}"));
    }

    async fn reload(&self) {
        self.mark_document().await;
        self.client.refresh().await.expect("reloading the page");
        self.wait_new_document().await;
    }

    /// Sizes the window so that the page gets `width` x `height` CSS pixels (the window's own
    /// frame takes some of its size, even headless), which is what a screenshot captures.
    async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resizing the window");
        let inner = self
            .client
            .execute("return [window.innerWidth, window.innerHeight]", vec![])
            .await
            .expect("measuring the viewport");
        let inner = |index: usize| {
            inner[index]
                .as_u64()
                .and_then(|pixels| u32::try_from(pixels).ok())
                .unwrap_or_else(|| panic!("a viewport size: {inner}"))
        };
        let (frame_width, frame_height) = (
            width.saturating_sub(inner(0)),
            height.saturating_sub(inner(1)),
        );
        if frame_width > 0 || frame_height > 0 {
            self.client
                .set_window_size(width + frame_width, height + frame_height)
                .await
                .expect("resizing the window");
        }
    }

    /// Waits for an element matching `css` to appear.
    async fn wait_for(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(ELEMENT_TIMEOUT)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(err) => {
                let url = self.client.current_url().await.map(String::from);
                let text = self.body_text().await;
                panic!(
                    "no `{css}` within {}s on {url:?} ({err}); the page says:\n{text}",
                    ELEMENT_TIMEOUT.as_secs()
                )
            }
        }
    }

    async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("finding `{css}`: {err}"))
    }

    /// Runs `script` on every element matching `css` (as `element`) and returns what it gives
    /// for each. Reads go through one script, not element references, so that a section the
    /// page's live refresh swaps in meanwhile cannot turn a reference stale mid-read.
    async fn each(&self, css: &str, script: &str) -> Vec<Value> {
        let script = format!(
            "return Array.from(document.querySelectorAll(arguments[0]), element => {script})"
        );
        let values = self
            .client
            .execute(&script, vec![json!(css)])
            .await
            .unwrap_or_else(|err| panic!("reading `{css}`: {err}"));
        match values {
            Value::Array(values) => values,
            other => panic!("reading `{css}` gave {other}"),
        }
    }

    /// What `script` gives for the first element matching `css`, as a string.
    async fn first(&self, css: &str, script: &str) -> String {
        let values = self.each(css, script).await;
        let Some(value) = values.first() else {
            let text = self.body_text().await;
            panic!("no `{css}` on the page, which says:\n{text}");
        };
        value
            .as_str()
            .unwrap_or_else(|| panic!("`{css}`: {script} gave {value}"))
            .to_owned()
    }

    async fn count(&self, css: &str) -> usize {
        self.each(css, "null").await.len()
    }

    /// The text of the first element matching `css`, as rendered.
    async fn text(&self, css: &str) -> String {
        self.first(css, "element.innerText").await
    }

    async fn attr(&self, css: &str, name: &str) -> String {
        self.first(css, &format!("element.getAttribute('{name}')"))
            .await
    }

    /// The `name` attribute of every element matching `css`.
    async fn attrs(&self, css: &str, name: &str) -> Vec<String> {
        self.each(css, &format!("element.getAttribute('{name}')"))
            .await
            .into_iter()
            .map(|value| match value {
                Value::String(value) => value,
                other => panic!("`{css}` without {name}: {other}"),
            })
            .collect()
    }

    /// Whether the first element matching `css` is rendered visibly.
    async fn is_visible(&self, css: &str) -> bool {
        let visible = self.each(css, "element.checkVisibility()").await;
        visible.first() == Some(&Value::Bool(true))
    }

    /// The current value of a form field.
    async fn value(&self, css: &str) -> String {
        self.first(css, "element.value").await
    }

    /// The deployment ids of the table's rows, top to bottom.
    async fn row_ids(&self) -> Vec<i64> {
        self.attrs(ROWS, "data-deployment-id")
            .await
            .iter()
            .map(|id| id.parse().unwrap_or_else(|_| panic!("a row id: {id:?}")))
            .collect()
    }

    /// Picks the option with `value` in the `<select>` matching `css`.
    async fn choose(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|err| panic!("choosing {value:?} in `{css}`: {err}"));
    }

    /// Replaces the text of the field matching `css` by typing `text`.
    async fn type_into(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        if !text.is_empty() {
            field.send_keys(text).await.unwrap();
        }
    }

    /// Clicks the button matching `css` and waits for the page it leads to.
    async fn submit(&self, css: &str) {
        let button = self.find(css).await;
        self.mark_document().await;
        button
            .click()
            .await
            .unwrap_or_else(|err| panic!("clicking `{css}`: {err}"));
        self.wait_new_document().await;
    }

    /// Clicks the link matching `css` and waits for the page it leads to.
    async fn follow(&self, css: &str) {
        self.submit(css).await;
    }

    /// Marks the current document, so that [`wait_new_document`](Self::wait_new_document) can
    /// tell when another has replaced it.
    async fn mark_document(&self) {
        self.client
            .execute("window.wanderOldDocument = true", vec![])
            .await
            .expect("marking the current document");
    }

    /// Waits until a document without the mark has loaded.
    async fn wait_new_document(&self) {
        let deadline = Instant::now() + ELEMENT_TIMEOUT;
        loop {
            // Mid-navigation the script may fail (no document yet): that is "not yet".
            let loaded = self
                .client
                .execute(
                    "return !window.wanderOldDocument && document.readyState === 'complete'",
                    vec![],
                )
                .await;
            if matches!(loaded, Ok(Value::Bool(true))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no new page within {}s (still {:?})",
                ELEMENT_TIMEOUT.as_secs(),
                self.client.current_url().await.map(String::from)
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The path of the current URL.
    async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("the current URL");
        url.path().to_owned()
    }

    async fn body_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(err) => format!("(no body: {err})"),
        }
    }

    /// Fails when the page is an error page or shows failure text.
    async fn assert_no_error_page(&self, step: &str) {
        let title = self.client.title().await.unwrap();
        let text = self.body_text().await;
        for needle in ERROR_TEXT {
            assert!(
                !title.contains(needle) && !text.contains(needle),
                "{step}: the page says {needle:?}; title {title:?}, text:\n{text}"
            );
        }
    }

    /// Runs a script in the page, for what it does rather than what it returns.
    async fn execute_script(&self, script: &str) {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|err| panic!("running `{script}`: {err}"));
    }

    /// axe-core's violations on the page as it is, one line each (rule, impact, the elements),
    /// under the rules of WCAG 2.1 A and AA and axe's best practices. `axe` is its source,
    /// loaded into the page first (WebDriver's scripts are not subject to the page's CSP).
    async fn axe_violations(&self, axe: &str) -> Vec<String> {
        self.client
            .execute(axe, vec![])
            .await
            .expect("loading axe-core into the page");
        let script = r"
            const done = arguments[arguments.length - 1];
            const options = {
                runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
                resultTypes: ['violations'],
            };
            axe.run(document, options).then(
                (results) => done(results.violations.map((v) =>
                    `${v.id} (${v.impact}): ${v.help}; at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)),
                (error) => done([`axe failed: ${error}`]),
            );
        ";
        let result = self
            .client
            .execute_async(script, vec![])
            .await
            .expect("running axe-core");
        match result {
            Value::Array(lines) => lines
                .into_iter()
                .map(|line| {
                    line.as_str()
                        .map_or_else(|| line.to_string(), str::to_owned)
                })
                .collect(),
            other => panic!("axe-core gave {other}"),
        }
    }

    /// Fails on any sign of trouble at a step where everything works: an error page, an
    /// `.unavailable` notice, an error in the console.
    async fn assert_healthy(&self, step: &str) {
        self.assert_healthy_except(step, |_| false).await;
    }

    /// [`assert_healthy`](Self::assert_healthy) for a page that answers a refused form, whose
    /// 4xx status Chromium reports in the console as a failed resource.
    async fn assert_healthy_allowing_a_refusal(&self, step: &str) {
        self.assert_healthy_except(step, |message| {
            message.contains("Failed to load resource: the server responded with a status of 4")
        })
        .await;
    }

    async fn assert_healthy_except(&self, step: &str, allowed: impl Fn(&str) -> bool) {
        self.assert_no_error_page(step).await;
        let unavailable = self.count(".unavailable").await;
        if unavailable > 0 {
            let text = self.body_text().await;
            panic!("{step}: {unavailable} part(s) marked unavailable; the page says:\n{text}");
        }
        let errors: Vec<String> = self
            .console_errors()
            .await
            .into_iter()
            .filter(|message| !allowed(message))
            .collect();
        assert!(errors.is_empty(), "{step}: console errors: {errors:#?}");
    }

    /// The console's errors since the last call (chromedriver hands each entry out once).
    async fn console_errors(&self) -> Vec<String> {
        let session = self
            .client
            .session_id()
            .await
            .unwrap()
            .expect("an open session");
        let response = self
            .http
            .post(format!("{}/session/{session}/se/log", self.driver.url()))
            .json(&json!({ "type": "browser" }))
            .send()
            .await
            .expect("reading the browser's console log");
        let log: Value = response.json().await.expect("the console log as JSON");
        let entries = log["value"]
            .as_array()
            .unwrap_or_else(|| panic!("no console log: {log}"));
        entries
            .iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Saves a PNG of the viewport as `target/screenshots/<name>`.
    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("taking a screenshot");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("creating {}: {err}", dir.display()));
        let path = dir.join(name);
        std::fs::write(&path, png)
            .unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
    }
}

/// Fails unless the current URL's query has `name=value`.
async fn assert_query(browser: &Browser, name: &str, value: &str) {
    let url = browser.client.current_url().await.unwrap();
    assert!(
        url.query_pairs()
            .any(|(key, found)| key == name && found == value),
        "{url} should have {name}={value}"
    );
}

/// Fails unless every row of the table carries a status badge saying `status`.
async fn assert_badges(browser: &Browser, status: &str) {
    let badges = browser
        .attrs(&format!("{ROWS} [data-status]"), "data-status")
        .await;
    assert_eq!(badges.len(), browser.count(ROWS).await, "a badge per row");
    assert!(
        badges.iter().all(|badge| badge == status),
        "only {status} rows: {badges:?}"
    );
}

/// Fails unless the text of `css` shows the number `expected`.
async fn assert_total(browser: &Browser, css: &str, expected: u64) {
    let text = browser.text(css).await;
    let shown = text
        .split(|c: char| !c.is_ascii_digit())
        .any(|digits| digits.parse() == Ok(expected));
    assert!(shown, "`{css}` should show {expected}: {text:?}");
}

/// The workspace root, one level above this crate.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the web crate sits in the workspace")
        .to_owned()
}

/// `target/screenshots`, in `CARGO_TARGET_DIR` when set (relative to the workspace root if
/// relative), otherwise in the nearest `target` directory above this crate.
fn screenshots_dir() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|dir| dir.join("target"))
            .find(|target| target.is_dir())
            .unwrap_or_else(|| workspace_root().join("target")),
    };
    target.join("screenshots")
}
