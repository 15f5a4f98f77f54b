//! Happy paths of every endpoint over the seeded data, and the JSON shapes of the contract.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_problem};

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

fn assert_deployment_shape(deployment: &Value) {
    assert_eq!(
        keys(deployment),
        BTreeSet::from([
            "id",
            "service",
            "environment",
            "version",
            "status",
            "deployed_by",
            "started_at",
            "completed_at"
        ])
    );
    assert_eq!(keys(&deployment["service"]), BTreeSet::from(["id", "name"]));
    assert_eq!(
        keys(&deployment["environment"]),
        BTreeSet::from(["id", "name"])
    );
    let started = deployment["started_at"].as_str().unwrap();
    assert!(started.ends_with('Z'), "RFC 3339 UTC: {started}");
    time::OffsetDateTime::parse(started, &time::format_description::well_known::Rfc3339).unwrap();
}

#[tokio::test]
async fn health_reports_both_dependencies_up() {
    let app = TestApp::spawn().await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["checks"]["database"]["status"], "up");
    assert_eq!(body["checks"]["redis"]["status"], "up");
    assert!(body["checks"]["database"]["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let live: Value = app.get("/livez").await.json().await.unwrap();
    assert_eq!(live, json!({"status": "ok"}));
    app.stop().await;
}

#[tokio::test]
async fn services_and_environments_list_the_seed() {
    let app = TestApp::spawn().await;
    let services: Value = app.get("/api/services").await.json().await.unwrap();
    let names: Vec<&str> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(keys(s), BTreeSet::from(["id", "name", "description"]));
            s["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(names, ["analytics", "api", "frontend", "worker"]);

    let environments: Value = app.get("/api/environments").await.json().await.unwrap();
    let names: Vec<&str> = environments["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dev", "staging", "production"]);
}

#[tokio::test]
async fn deployments_come_newest_first_with_the_total() {
    let app = TestApp::spawn().await;
    let page: Value = app.get("/api/deployments").await.json().await.unwrap();
    assert_eq!(
        keys(&page),
        BTreeSet::from(["deployments", "total", "limit", "offset"])
    );
    assert_eq!(page["total"], app.deployment_count().await);
    assert!(page["total"].as_i64().unwrap() >= 24);
    assert_eq!(
        (page["limit"].as_i64(), page["offset"].as_i64()),
        (Some(20), Some(0))
    );
    let rows = page["deployments"].as_array().unwrap();
    assert_eq!(rows.len(), 20);
    rows.iter().for_each(assert_deployment_shape);
    let started: Vec<&str> = rows
        .iter()
        .map(|d| d["started_at"].as_str().unwrap())
        .collect();
    let mut sorted = started.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(started, sorted, "newest first");
}

#[tokio::test]
async fn the_seed_covers_every_status_and_environment() {
    let app = TestApp::spawn().await;
    for status in [
        "pending",
        "in_progress",
        "completed",
        "failed",
        "rolled_back",
    ] {
        let page: Value = app
            .get(&format!("/api/deployments?status={status}"))
            .await
            .json()
            .await
            .unwrap();
        assert!(
            page["total"].as_i64().unwrap() >= 1,
            "no {status} deployment seeded"
        );
        for d in page["deployments"].as_array().unwrap() {
            assert_eq!(d["status"], status);
            let finished = matches!(status, "completed" | "failed" | "rolled_back");
            assert_eq!(d["completed_at"].is_string(), finished, "{d}");
        }
    }
}

#[tokio::test]
async fn filters_by_id_or_name_match_the_database() {
    let app = TestApp::spawn().await;
    let expected: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deployments d JOIN services s ON s.id = d.service_id
         JOIN environments e ON e.id = d.environment_id
         WHERE s.name = 'api' AND e.name = 'production'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(expected > 0, "the seed deploys api to production");
    for query in [
        "service=api&environment=production",
        "service=2&environment=3",
    ] {
        let page: Value = app
            .get(&format!("/api/deployments?{query}&limit=200"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(page["total"], expected, "{query}");
        let rows = page["deployments"].as_array().unwrap();
        assert_eq!(rows.len() as i64, expected);
        for d in rows {
            assert_eq!(d["service"]["name"], "api");
            assert_eq!(d["environment"]["name"], "production");
        }
    }
}

#[tokio::test]
async fn pages_cover_every_deployment_exactly_once() {
    let app = TestApp::spawn().await;
    let total = app.deployment_count().await;
    let mut seen = BTreeSet::new();
    let mut offset = 0;
    while offset < total + 7 {
        let page: Value = app
            .get(&format!("/api/deployments?limit=7&offset={offset}"))
            .await
            .json()
            .await
            .unwrap();
        for d in page["deployments"].as_array().unwrap() {
            assert!(seen.insert(d["id"].as_i64().unwrap()), "duplicate {d}");
        }
        offset += 7;
    }
    assert_eq!(seen.len() as i64, total);
}

#[tokio::test]
async fn one_deployment_by_id() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/deployments/1").await;
    assert_eq!(response.status(), StatusCode::OK);
    let deployment: Value = response.json().await.unwrap();
    assert_deployment_shape(&deployment);
    assert_eq!(deployment["id"], 1);
    expect_problem(
        app.get("/api/deployments/999999").await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn posting_records_a_deployment_with_its_location() {
    let app = TestApp::spawn().await;
    let before = app.deployment_count().await;
    let response = app
        .post_json(
            "/api/deployments",
            &json!({"service_id": 2, "environment_id": 3, "version": "v9.9.9", "deployed_by": "erin@wander.dev"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_deployment_shape(&created);
    assert_eq!(location, format!("/api/deployments/{}", created["id"]));
    assert_eq!(created["status"], "pending");
    assert_eq!(created["completed_at"], Value::Null);
    assert_eq!(created["service"], json!({"id": 2, "name": "api"}));
    assert_eq!(
        created["environment"],
        json!({"id": 3, "name": "production"})
    );
    assert_eq!(app.deployment_count().await, before + 1);

    let fetched: Value = app.get(&location).await.json().await.unwrap();
    assert_eq!(fetched, created);

    let finished: Value = app
        .post_json(
            "/api/deployments",
            &json!({"service_id": 1, "environment_id": 1, "version": "v1", "deployed_by": "ci", "status": "failed"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(finished["status"], "failed");
    assert_eq!(finished["completed_at"], finished["started_at"]);
}

#[tokio::test]
async fn stats_agree_with_the_database() {
    let app = TestApp::spawn().await;
    let stats: Value = app.get("/api/stats").await.json().await.unwrap();
    assert_eq!(stats["total"], app.deployment_count().await);
    let by_status = &stats["by_status"];
    let sum: i64 = [
        "pending",
        "in_progress",
        "completed",
        "failed",
        "rolled_back",
    ]
    .iter()
    .map(|s| by_status[s].as_i64().unwrap())
    .sum();
    assert_eq!(sum, stats["total"].as_i64().unwrap());
    let finished = by_status["completed"].as_f64().unwrap()
        + by_status["failed"].as_f64().unwrap()
        + by_status["rolled_back"].as_f64().unwrap();
    let rate = stats["success_rate"].as_f64().unwrap();
    assert!((rate - by_status["completed"].as_f64().unwrap() / finished).abs() < 1e-9);
}

#[tokio::test]
async fn an_empty_database_gives_empty_lists_and_no_success_rate() {
    let app = TestApp::spawn_with(crate::helpers::Options {
        seed: Some(testkit::Seed::Empty),
        ..Default::default()
    })
    .await;
    let page: Value = app.get("/api/deployments").await.json().await.unwrap();
    assert_eq!(page["total"], 0);
    assert_eq!(page["deployments"], json!([]));
    let stats: Value = app.get("/api/stats").await.json().await.unwrap();
    assert_eq!(stats["success_rate"], Value::Null);
}

#[tokio::test]
async fn the_openapi_document_is_valid_and_covers_every_route() {
    let app = TestApp::spawn().await;
    let document: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = keys(&document["paths"]);
    for path in [
        "/health",
        "/livez",
        "/api/services",
        "/api/environments",
        "/api/deployments",
        "/api/deployments/{id}",
        "/api/stats",
        "/api/cache",
        "/openapi.json",
    ] {
        assert!(paths.contains(path), "{path} missing from the document");
    }
    // Every documented error response is a problem document.
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (code, response) in operation["responses"].as_object().unwrap() {
                if code.starts_with('4') || (code.starts_with('5') && path != "/health") {
                    assert!(
                        response["content"]["application/problem+json"].is_object(),
                        "{method} {path} {code} is not a problem document"
                    );
                }
            }
        }
    }
    // The reference validator, installed by `cargo xtask setup`.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), document.to_string()).unwrap();
    let output = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(file.path())
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the OpenAPI document does not validate:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
