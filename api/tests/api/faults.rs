//! Dependencies failing under a running API: Redis stopped and restarted (the API bypasses the
//! cache, reports `degraded`, and recovers without serving stale data), PostgreSQL stopped and
//! restarted (503 problem documents quickly, then recovery).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{PostgresServer, RedisServer};

use crate::helpers::{Options, TestApp, expect_problem, x_cache};

/// Polls `check` every 100 ms for up to 30 s; the bound only stops a broken build from hanging.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_api_bypasses_the_cache_and_recovers_without_stale_data() {
    let mut redis = RedisServer::start().unwrap();
    let app = TestApp::spawn_with(Options {
        redis_url: Some(redis.url()),
        ..Default::default()
    })
    .await;
    app.get("/api/deployments?limit=1").await;
    assert_eq!(x_cache(&app.get("/api/deployments?limit=1").await), "HIT");

    // Redis goes away with the cached page saved, and comes back with it.
    redis.snapshot().unwrap();
    redis.stop().unwrap();
    let response = app.get("/api/deployments?limit=1").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(x_cache(&response), "BYPASS");
    let health = app.get("/health").await;
    assert_eq!(health.status(), StatusCode::OK);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["checks"]["redis"]["status"], "down");
    assert_eq!(health["checks"]["database"]["status"], "up");

    // A write while Redis cannot be told about it: the saved page is stale from now on.
    let created = app
        .post_json(
            "/api/deployments",
            &json!({"service_id": 1, "environment_id": 1, "version": "v-outage", "deployed_by": "ops"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    expect_problem(app.clear_cache().await, StatusCode::SERVICE_UNAVAILABLE).await;

    redis.start_again().unwrap();
    eventually("the cache coming back", || async {
        x_cache(&app.get("/api/deployments?limit=1").await) != "BYPASS"
    })
    .await;
    let page = app.get("/api/deployments?limit=1").await;
    assert_eq!(x_cache(&page), "HIT");
    let page: Value = page.json().await.unwrap();
    assert_eq!(
        page["deployments"][0]["id"], created["id"],
        "the page cached before the outage was served after it"
    );
    let health: Value = app.get("/health").await.json().await.unwrap();
    assert_eq!(health["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_costs_a_short_timeout_not_an_outage() {
    let redis = RedisServer::start().unwrap();
    let app = TestApp::spawn_with(Options {
        redis_url: Some(redis.url()),
        env: vec![("CACHE_TIMEOUT_MS", "100".to_owned())],
        ..Default::default()
    })
    .await;
    app.get("/api/services").await;
    redis.pause().unwrap();
    // The near cache may answer until its lease, confirmed before the freeze, runs out; then
    // nothing may be served from either tier.
    tokio::time::sleep(api::cache::LEASE).await;
    // The budget is 100 ms; the bound below is thirty times that, so a loaded machine does not
    // trip it, while a budget that is ignored (the client's own timeout is 30 s) does.
    let bound = Duration::from_secs(3);
    let response = tokio::time::timeout(bound, app.get("/api/services"))
        .await
        .expect("a frozen Redis held a read past its budget");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(x_cache(&response), "BYPASS");
    let health = tokio::time::timeout(bound, app.get("/health"))
        .await
        .expect("a frozen Redis held the health check past its budget");
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "degraded");
    redis.resume().unwrap();
    eventually("the cache answering again", || async {
        x_cache(&app.get("/api/services").await) == "HIT"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_postgres_requests_fail_fast_with_503_and_recover() {
    let mut postgres = PostgresServer::start().unwrap();
    let app = TestApp::spawn_with(Options {
        pg_admin_url: Some(postgres.admin_url()),
        env: vec![("DATABASE_ACQUIRE_TIMEOUT_MS", "1000".to_owned())],
        ..Default::default()
    })
    .await;
    assert_eq!(app.get("/api/deployments/1").await.status(), StatusCode::OK);
    app.pool.close().await;

    postgres.stop().unwrap();
    // Uncached reads and writes fail with a problem document, well before the client's 30 s
    // timeout (the pool's acquire timeout is 1 s here).
    expect_problem(
        app.get("/api/deployments?status=failed").await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    expect_problem(
        app.post_json(
            "/api/deployments",
            &json!({"service_id": 1, "environment_id": 1, "version": "v", "deployed_by": "a"}),
        )
        .await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    let health = app.get("/health").await;
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "down");
    assert_eq!(health["checks"]["database"]["status"], "down");
    // Cached answers keep flowing while the database is away.
    assert_eq!(x_cache(&app.get("/api/deployments/1").await), "HIT");

    postgres.start_again().unwrap();
    eventually("the database coming back", || async {
        app.get("/api/deployments?status=failed").await.status() == StatusCode::OK
    })
    .await;
    let health: Value = app.get("/health").await.json().await.unwrap();
    assert_eq!(health["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_starts_while_redis_is_down_and_picks_it_up_later() {
    let mut redis = RedisServer::start().unwrap();
    redis.stop().unwrap();
    let app = TestApp::spawn_with(Options {
        redis_url: Some(redis.url()),
        ..Default::default()
    })
    .await;
    assert_eq!(x_cache(&app.get("/api/services").await), "BYPASS");
    redis.start_again().unwrap();
    eventually("the first cache hit", || async {
        x_cache(&app.get("/api/services").await) == "HIT"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_gets_a_503_problem() {
    let app = TestApp::spawn_with(Options {
        env: vec![("REQUEST_TIMEOUT_MS", "300".to_owned())],
        ..Default::default()
    })
    .await;
    let mut blocker = app.pool.begin().await.unwrap();
    sqlx::raw_sql("LOCK TABLE deployments IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let problem = expect_problem(
        app.get("/api/deployments?status=failed").await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(problem.kind, "https://wander.dev/problems/timeout");
    blocker.rollback().await.unwrap();
    assert_eq!(
        app.get("/api/deployments?status=failed").await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_is_bypassed_at_once_not_after_the_cache_timeout() {
    let mut redis = RedisServer::start().unwrap();
    let app = TestApp::spawn_with(Options {
        redis_url: Some(redis.url()),
        // A deadline far beyond the client's: only failing fast can answer in time.
        env: vec![("CACHE_TIMEOUT_MS", "120000".to_owned())],
        ..Default::default()
    })
    .await;
    redis.stop().unwrap();
    // A command already on the wire when Redis died may wait out its deadline; what matters is
    // that once the client has noticed, nothing waits for Redis any more.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    eventually("the API noticing Redis is gone", || async {
        let response = quick.get(app.url("/api/environments")).send().await;
        response.is_ok_and(|r| x_cache(&r) == "BYPASS")
    })
    .await;
    for path in [
        "/api/deployments",
        "/api/services",
        "/api/deployments/1",
        "/health",
    ] {
        let response = client
            .get(app.url(path))
            .send()
            .await
            .unwrap_or_else(|err| panic!("{path} waited on the dead Redis: {err}"));
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let response = app
        .post_json(
            "/api/deployments",
            &json!({"service_id": 1, "environment_id": 1, "version": "v", "deployed_by": "a"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}
