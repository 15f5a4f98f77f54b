//! The harness: an API server per test, bound to port 0 in-process, with helpers to call it and
//! to look at the database behind it.

use std::{
    collections::HashMap,
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use api::{app::Server, cache::Cache, config::Config, error::Problem};
use reqwest::{Response, StatusCode, header};
use sqlx::PgPool;
use testkit::{Seed, TestDatabase};
use tokio::{sync::oneshot, task::JoinHandle};

/// How to start a test server; `Default` is a seeded database, the shared Redis, no token.
#[derive(Debug, Default)]
pub struct Options {
    pub seed: Option<Seed>,
    pub token: Option<&'static str>,
    /// Use this PostgreSQL server's admin URL instead of the shared one.
    pub pg_admin_url: Option<String>,
    /// Use this Redis instead of the shared one.
    pub redis_url: Option<String>,
    /// Extra configuration variables.
    pub env: Vec<(&'static str, String)>,
}

/// A running API with its own database.
#[derive(Debug)]
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub pool: PgPool,
    pub token: Option<&'static str>,
    /// The server's cache, to look at its near tier.
    pub cache: Arc<Cache>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

static PREFIX_COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A cache key prefix no other test (or test process) uses.
pub fn unique_prefix() -> String {
    let n = PREFIX_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("test-{}-{n}-{nanos}", std::process::id())
}

/// Builds the API's configuration for a test from variable pairs.
pub fn test_config(vars: Vec<(&'static str, String)>) -> Config {
    let vars: HashMap<&str, String> = vars.into_iter().collect();
    Config::from_lookup(|name| vars.get(name).cloned()).expect("test configuration is valid")
}

impl TestApp {
    /// A server over a seeded database and the shared Redis.
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    /// A server as `options` describe it, over a fresh database of its own; returns once its Redis
    /// client is connected, or after a short wait when it never is.
    pub async fn spawn_with(options: Options) -> Self {
        let admin_url = options.pg_admin_url.unwrap_or_else(testkit::pg_admin_url);
        let db = TestDatabase::create(&admin_url, options.seed.unwrap_or(Seed::Seeded))
            .await
            .expect("create the test database");
        let mut vars = vec![
            ("API_ADDR", "127.0.0.1:0".to_owned()),
            ("DATABASE_URL", db.url.clone()),
            (
                "REDIS_URL",
                options.redis_url.unwrap_or_else(testkit::redis_url),
            ),
            ("CACHE_PREFIX", unique_prefix()),
            ("API_TOKEN", options.token.unwrap_or_default().to_owned()),
        ];
        vars.extend(options.env);
        let server = Server::build(test_config(vars))
            .await
            .expect("the API starts");
        let addr = server.local_addr().unwrap();
        let cache = server.cache();
        let (tx, rx) = oneshot::channel();
        let handle = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        let pool = PgPool::connect(&db.url)
            .await
            .expect("connect to the test database");
        let app = Self {
            addr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            pool,
            token: options.token,
            cache,
            shutdown: Some(tx),
            server: Some(handle),
        };
        app.wait_for_cache().await;
        app
    }

    /// Waits until the cache is in use, so the first request's `X-Cache` is deterministic;
    /// gives up quietly (tests about a missing Redis expect BYPASS anyway).
    async fn wait_for_cache(&self) {
        wait_cache_in_use(&self.client, &self.url(""), 50).await;
    }

    /// The server's URL for `path`, which must start with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A GET without the token, which reads do not need; panics only when the request cannot be
    /// sent.
    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// Posts a raw body with a content type, with the token when the app has one.
    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: String) -> Response {
        let mut request = self.client.post(self.url(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        if let Some(token) = self.token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("POST")
    }

    /// Posts JSON with the token when the app has one.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> Response {
        self.post_raw(path, Some("application/json"), body.to_string())
            .await
    }

    /// `DELETE /api/cache` with the token when the app has one.
    pub async fn clear_cache(&self) -> Response {
        let mut request = self.client.delete(self.url("/api/cache"));
        if let Some(token) = self.token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("DELETE")
    }

    /// Rows in `deployments`, read directly from the database.
    pub async fn deployment_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM deployments")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

/// Polls the health check of the API at `base` every 50 ms, up to `tries` times, until it says
/// Redis is `up` (its cache in use: the lease confirmed); returns whether it did.
pub async fn wait_cache_in_use(client: &reqwest::Client, base: &str, tries: u32) -> bool {
    for _ in 0..tries {
        let health: serde_json::Value = client
            .get(format!("{base}/health"))
            .send()
            .await
            .expect("GET /health")
            .json()
            .await
            .unwrap();
        if health["checks"]["redis"]["status"] == "up" {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The `X-Cache` header of a response.
pub fn x_cache(response: &Response) -> String {
    response
        .headers()
        .get("x-cache")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The `Cache-Status` header of a response (RFC 9211), which names the tier that answered.
pub fn cache_status(response: &Response) -> String {
    response
        .headers()
        .get("cache-status")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Asserts a problem document with `status` and returns it; also checks that nothing from the
/// database driver or SQL leaked into it.
pub async fn expect_problem(response: Response, status: StatusCode) -> Problem {
    assert_eq!(response.status(), status, "status of {}", response.url());
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let text = response.text().await.unwrap();
    let problem: Problem = serde_json::from_str(&text).expect("a problem document");
    assert_eq!(problem.status, status.as_u16());
    assert!(
        problem.kind.starts_with("https://wander.dev/problems/"),
        "{text}"
    );
    assert!(
        !problem.title.is_empty() && !problem.detail.is_empty(),
        "{text}"
    );
    let lower = text.to_lowercase();
    for leak in [
        "sqlx",
        "postgres",
        "sqlstate",
        "relation",
        "syntax error at",
        "select ",
        "insert ",
    ] {
        assert!(!lower.contains(leak), "problem leaks {leak:?}: {text}");
    }
    problem
}

/// Starts the real `api` binary on a free port with `vars` (and `RUST_LOG=warn`), without
/// waiting for it; returns the child and its base URL.
pub fn spawn_api_binary(vars: &[(&str, String)]) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_api"))
        .env("API_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .envs(vars.iter().map(|(name, value)| (name, value)))
        .stdout(Stdio::null())
        .spawn()
        .expect("start the api binary");
    (child, format!("http://127.0.0.1:{port}"))
}

/// Waits until the binary answers `/livez` (it binds only once migrated); fails at once if it
/// exits instead.
pub async fn wait_live(child: &mut Child, base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the api binary exited before it served: {status}");
        }
        if let Ok(response) = client.get(format!("{base}/livez")).send().await
            && response.status() == StatusCode::OK
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the api binary did not start within 30 s");
}
