//! The harness: a real API (in-process, its own seeded database, a private cache prefix) and the
//! dashboard in front of it, both bound to port 0; plus small readers for the HTML they serve.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use reqwest::{Response, StatusCode, header, redirect};
use serde_json::Value;
use testkit::{Seed, TestDatabase};
use tokio::{sync::oneshot, task::JoinHandle};

/// The token the test API demands for mutations, and the test dashboard sends.
pub const TOKEN: &str = "web-test-token";

static PREFIX_COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A cache key prefix no other test (or test process) uses.
fn unique_prefix() -> String {
    let n = PREFIX_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("webtest-{}-{n}-{nanos}", std::process::id())
}

/// A server task and the sender that stops it.
#[derive(Debug)]
struct Running {
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Running {
    fn new(tx: oneshot::Sender<()>, task: JoinHandle<std::io::Result<()>>) -> Self {
        Self {
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// A running API over its own seeded database.
#[derive(Debug)]
pub struct TestApi {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    running: Running,
}

impl TestApi {
    /// An API over a fresh seeded database and the shared Redis under a private prefix, demanding
    /// [`TOKEN`]; returns once its Redis client is connected, or after a short wait.
    pub async fn spawn() -> Self {
        let db = TestDatabase::create(&testkit::pg_admin_url(), Seed::Seeded)
            .await
            .expect("create the test database");
        let vars: HashMap<&str, String> = [
            ("API_ADDR", "127.0.0.1:0".to_owned()),
            ("DATABASE_URL", db.url.clone()),
            ("REDIS_URL", testkit::redis_url()),
            ("CACHE_PREFIX", unique_prefix()),
            ("API_TOKEN", TOKEN.to_owned()),
        ]
        .into_iter()
        .collect();
        let config = api::config::Config::from_lookup(|name| vars.get(name).cloned())
            .expect("valid API configuration");
        let server = api::app::Server::build(config)
            .await
            .expect("the API starts");
        let addr = server.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let running = Running::new(
            tx,
            tokio::spawn(server.run(async {
                let _ = rx.await;
            })),
        );
        let api = Self {
            addr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .no_proxy()
                .build()
                .unwrap(),
            running,
        };
        api.wait_for_cache().await;
        api
    }

    /// Waits until the API's Redis client is connected, so the first `X-Cache` is a MISS and
    /// not a BYPASS.
    async fn wait_for_cache(&self) {
        for _ in 0..50 {
            let health = self.json("/health").await;
            if health["checks"]["redis"]["status"] == "up" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The API's URL for `path`; `url("")` is the base URL to give a dashboard.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A GET's JSON body.
    pub async fn json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("GET the API")
            .json()
            .await
            .expect("JSON from the API")
    }

    /// The ids of a deployments page as the API lists them.
    pub async fn deployment_ids(&self, query: &str) -> Vec<String> {
        let page = self.json(&format!("/api/deployments?{query}")).await;
        page["deployments"]
            .as_array()
            .expect("a deployments array")
            .iter()
            .map(|d| d["id"].to_string())
            .collect()
    }

    /// All deployments, as the API counts them.
    pub async fn total(&self) -> i64 {
        self.json("/api/stats").await["total"].as_i64().unwrap()
    }

    /// Stops the server gracefully and waits for it; panics if it ended with an error.
    pub async fn stop(mut self) {
        self.running.stop().await;
    }
}

/// A running dashboard.
#[derive(Debug)]
pub struct TestWeb {
    pub addr: SocketAddr,
    /// A client that does not follow redirects, so tests see the 303s.
    pub client: reqwest::Client,
    /// The dashboard's own origin, as a browser would send it.
    pub origin: String,
    running: Running,
}

impl TestWeb {
    /// A dashboard calling the API at `api_url` with the test token, plus `env` overrides.
    pub async fn spawn(api_url: &str, env: &[(&str, &str)]) -> Self {
        let mut vars: HashMap<&str, String> = [
            ("WEB_ADDR", "127.0.0.1:0".to_owned()),
            ("API_URL", api_url.to_owned()),
            ("API_TOKEN", TOKEN.to_owned()),
            ("API_TIMEOUT_MS", "2000".to_owned()),
        ]
        .into_iter()
        .collect();
        for (name, value) in env {
            vars.insert(name, (*value).to_owned());
        }
        let config = web::config::Config::from_lookup(|name| vars.get(name).cloned())
            .expect("valid dashboard configuration");
        let server = web::app::Server::build(config)
            .await
            .expect("the dashboard starts");
        let addr = server.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let running = Running::new(
            tx,
            tokio::spawn(server.run(async {
                let _ = rx.await;
            })),
        );
        Self {
            addr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .redirect(redirect::Policy::none())
                .no_proxy()
                .build()
                .unwrap(),
            origin: format!("http://{addr}"),
            running,
        }
    }

    /// The dashboard's URL for `path`, which must start with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A GET that does not follow redirects, so a 303 comes back as it is.
    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("GET the dashboard")
    }

    /// A page that must answer 200 with HTML; its body.
    pub async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8",
            "GET {path}"
        );
        response.text().await.unwrap()
    }

    /// Posts a form the way a browser on the dashboard's own page does (same `Origin`).
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url(path))
            .header(header::ORIGIN, &self.origin)
            .header("sec-fetch-site", "same-origin")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).unwrap())
            .send()
            .await
            .expect("POST to the dashboard")
    }

    /// Stops the dashboard gracefully and waits for it; panics if it ended with an error.
    pub async fn stop(mut self) {
        self.running.stop().await;
    }
}

/// The API and the dashboard in front of it.
#[derive(Debug)]
pub struct Stack {
    pub api: TestApi,
    pub web: TestWeb,
}

impl Stack {
    /// A fresh API and a dashboard pointed at it, with no configuration overrides.
    pub async fn spawn() -> Self {
        let api = TestApi::spawn().await;
        let web = TestWeb::spawn(&api.url(""), &[]).await;
        Self { api, web }
    }
}

/// The address of a port nothing listens on (bound, then released).
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// The `<section id="{id}">…</section>` of a page (sections do not nest here).
pub fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let open = format!("<section id=\"{id}\"");
    let start = html
        .find(&open)
        .unwrap_or_else(|| panic!("no section #{id} in:\n{html}"));
    let end = html[start..]
        .find("</section>")
        .expect("the section is closed");
    &html[start..start + end + "</section>".len()]
}

/// Every value of `attr="…"` in `html`, in document order.
pub fn attr_values(html: &str, attr: &str) -> Vec<String> {
    let needle = format!(" {attr}=\"");
    html.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            rest[..rest.find('"').expect("a closed attribute")].to_owned()
        })
        .collect()
}

/// The ids of the rows of the deployments table.
pub fn row_ids(html: &str) -> Vec<String> {
    attr_values(section(html, "deployments"), "data-deployment-id")
}

/// The element with `attr="value"` up to its closing tag name, for text checks.
pub fn element<'a>(html: &'a str, attr: &str, value: &str) -> &'a str {
    let needle = format!("{attr}=\"{value}\"");
    let at = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no {needle} in:\n{html}"));
    let start = html[..at].rfind('<').unwrap();
    let tag: String = html[start + 1..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    let close = format!("</{tag}>");
    let end = html[at..].find(&close).expect("a closed element");
    &html[start..at + end + close.len()]
}

/// The attribute `attr` of the first element carrying `marker` (e.g. `data-service="api"`).
pub fn attr_of(html: &str, marker: &str, attr: &str) -> String {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in:\n{html}"));
    let start = html[..at].rfind('<').unwrap();
    let end = at + html[at..].find('>').unwrap();
    attr_values(&html[start..end], attr)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {attr} next to {marker}"))
}

/// Strips tags, for reading an element's text.
pub fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}
