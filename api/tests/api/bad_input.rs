//! Malformed, missing, oversized and hostile input: every case gets its documented 4xx problem
//! document (never a 5xx, never driver or SQL text) and the table changes only by valid writes.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, expect_problem};

const JSON: Option<&str> = Some("application/json");

fn valid() -> Value {
    json!({"service_id": 1, "environment_id": 2, "version": "v1.2.3", "deployed_by": "alice@wander.dev"})
}

fn with(field: &str, value: Value) -> String {
    let mut body = valid();
    body[field] = value;
    body.to_string()
}

fn without(field: &str) -> String {
    let mut body = valid();
    body.as_object_mut().unwrap().remove(field);
    body.to_string()
}

#[tokio::test]
async fn bad_deployment_bodies_are_rejected_without_writing() {
    let app = TestApp::spawn_with(Options {
        token: Some("t0ken"),
        ..Default::default()
    })
    .await;
    let before = app.deployment_count().await;
    let nested = format!("{}1{}", "[".repeat(300), "]".repeat(300));
    let cases: Vec<(&str, Option<&str>, String, StatusCode)> = vec![
        (
            "truncated JSON",
            JSON,
            "{\"service_id\": 1,".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "not JSON at all",
            JSON,
            "service_id=1".into(),
            StatusCode::BAD_REQUEST,
        ),
        ("empty body", JSON, String::new(), StatusCode::BAD_REQUEST),
        (
            "trailing garbage",
            JSON,
            format!("{} x", valid()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "deeply nested",
            JSON,
            nested,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "positional array",
            JSON,
            r#"[1, 2, "v1", "alice"]"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "text/plain",
            Some("text/plain"),
            valid().to_string(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "form",
            Some("application/x-www-form-urlencoded"),
            "a=1".into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "no content type",
            None,
            valid().to_string(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "oversized",
            JSON,
            with("version", json!("v".repeat(64 * 1024))),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "an array",
            JSON,
            "[]".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "null",
            JSON,
            "null".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown field",
            JSON,
            with("environment", json!("prod")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "id injected",
            JSON,
            with("id", json!(1)),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "duplicate field",
            JSON,
            r#"{"service_id":1,"service_id":2,"environment_id":1,"version":"v","deployed_by":"a"}"#
                .into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "missing service_id",
            JSON,
            without("service_id"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "missing version",
            JSON,
            without("version"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "missing deployed_by",
            JSON,
            without("deployed_by"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "service_id as string",
            JSON,
            with("service_id", json!("1")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "service_id as float",
            JSON,
            with("service_id", json!(1.5)),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "service_id null",
            JSON,
            with("service_id", Value::Null),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "version as number",
            JSON,
            with("version", json!(5)),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "version as object",
            JSON,
            with("version", json!({"a": 1})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "empty version",
            JSON,
            with("version", json!("")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "blank version",
            JSON,
            with("version", json!("  \t ")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "overlong version",
            JSON,
            with("version", json!("v".repeat(65))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "NUL in version",
            JSON,
            with("version", json!("v1\u{0}")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "newline in deployed_by",
            JSON,
            with("deployed_by", json!("a\nb")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "empty deployed_by",
            JSON,
            with("deployed_by", json!("")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "overlong deployed_by",
            JSON,
            with("deployed_by", json!("a".repeat(255))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown service",
            JSON,
            with("service_id", json!(999)),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown environment",
            JSON,
            with("environment_id", json!(999)),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "negative service",
            JSON,
            with("service_id", json!(-1)),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "zero environment",
            JSON,
            with("environment_id", json!(0)),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "huge service id",
            JSON,
            with("service_id", json!(99_999_999_999_i64)),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown status",
            JSON,
            with("status", json!("done")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "status wrong case",
            JSON,
            with("status", json!("Completed")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "SQL in status",
            JSON,
            with("status", json!("completed'; DROP TABLE deployments;--")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (name, content_type, body, status) in cases {
        let response = app.post_raw("/api/deployments", content_type, body).await;
        let problem = expect_problem(response, status).await;
        assert!(!problem.detail.is_empty(), "{name}");
    }
    let invalid_utf8 = app
        .client
        .post(app.url("/api/deployments"))
        .bearer_auth("t0ken")
        .header("content-type", "application/json")
        .body(
            b"{\"service_id\":1,\"environment_id\":1,\"version\":\"\xff\",\"deployed_by\":\"a\"}"
                .to_vec(),
        )
        .send()
        .await
        .unwrap();
    expect_problem(invalid_utf8, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        app.deployment_count().await,
        before,
        "a rejected body wrote a row"
    );
}

#[tokio::test]
async fn hostile_but_valid_strings_are_stored_verbatim() {
    let app = TestApp::spawn().await;
    let before = app.deployment_count().await;
    let hostile = [
        "v1'); DROP TABLE deployments;--",
        "<script>alert(1)</script>",
        "' OR '1'='1",
        "ünïcødé 🚀",
    ];
    for text in hostile {
        let response = app
            .post_raw("/api/deployments", JSON, with("version", json!(text)))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "{text}");
        let created: Value = response.json().await.unwrap();
        assert_eq!(created["version"], text);
    }
    assert_eq!(app.deployment_count().await, before + hostile.len() as i64);
}

#[tokio::test]
async fn bad_list_queries_are_rejected() {
    let app = TestApp::spawn().await;
    let long = "a".repeat(10_000);
    let cases = [
        ("limit=abc", StatusCode::BAD_REQUEST),
        ("limit=1.5", StatusCode::BAD_REQUEST),
        ("limit=99999999999999999999", StatusCode::BAD_REQUEST),
        ("limit=1&limit=2", StatusCode::BAD_REQUEST),
        ("offset=abc", StatusCode::BAD_REQUEST),
        ("colour=blue", StatusCode::BAD_REQUEST),
        ("limit=0", StatusCode::UNPROCESSABLE_ENTITY),
        ("limit=-1", StatusCode::UNPROCESSABLE_ENTITY),
        ("limit=201", StatusCode::UNPROCESSABLE_ENTITY),
        ("offset=-5", StatusCode::UNPROCESSABLE_ENTITY),
        ("offset=1000001", StatusCode::UNPROCESSABLE_ENTITY),
        ("status=bogus", StatusCode::UNPROCESSABLE_ENTITY),
        ("status=%00", StatusCode::UNPROCESSABLE_ENTITY),
        ("service=999", StatusCode::UNPROCESSABLE_ENTITY),
        ("service=0", StatusCode::UNPROCESSABLE_ENTITY),
        ("service=-3", StatusCode::UNPROCESSABLE_ENTITY),
        ("service=99999999999", StatusCode::UNPROCESSABLE_ENTITY),
        ("service=nope", StatusCode::UNPROCESSABLE_ENTITY),
        (
            "service=%27%20OR%201%3D1--",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("environment=prod%00", StatusCode::UNPROCESSABLE_ENTITY),
        ("environment=Production", StatusCode::UNPROCESSABLE_ENTITY),
        ("environment=%3Cscript%3E", StatusCode::UNPROCESSABLE_ENTITY),
    ];
    for (query, status) in cases {
        expect_problem(app.get(&format!("/api/deployments?{query}")).await, status).await;
    }
    expect_problem(
        app.get(&format!("/api/deployments?service={long}")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}

#[tokio::test]
async fn bad_deployment_ids_are_rejected() {
    let app = TestApp::spawn().await;
    for id in [
        "abc",
        "-1",
        "0",
        "1.5",
        "99999999999999999999",
        "1%20OR%201=1",
        "%00",
        "1e3",
    ] {
        expect_problem(
            app.get(&format!("/api/deployments/{id}")).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    expect_problem(
        app.get(&format!("/api/deployments/{}", i64::MAX)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let app = TestApp::spawn().await;
    expect_problem(app.get("/api/nothing-here").await, StatusCode::NOT_FOUND).await;
    expect_problem(
        app.get("/api/deployments/1/extra").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let response = app
        .client
        .put(app.url("/api/deployments/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET,HEAD");
    expect_problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
    let response = app
        .client
        .delete(app.url("/api/services"))
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[tokio::test]
async fn endpoints_without_parameters_ignore_stray_input_and_reject_other_methods() {
    let app = TestApp::spawn().await;
    let before = app.deployment_count().await;
    let hostile_query = "?id=1%27%3B%20DROP%20TABLE%20deployments%3B--&limit=-1&%00=%00";
    for path in [
        "/health",
        "/livez",
        "/api/services",
        "/api/environments",
        "/api/stats",
        "/openapi.json",
    ] {
        let response = app
            .client
            .get(app.url(&format!("{path}{hostile_query}")))
            .header("content-type", "application/json")
            .body("{\"not\": \"expected\"}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        for method in [reqwest::Method::POST, reqwest::Method::PATCH] {
            let response = app
                .client
                .request(method.clone(), app.url(path))
                .send()
                .await
                .unwrap();
            expect_problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
        }
    }
    let response = app
        .client
        .delete(app.url(&format!("/api/cache{hostile_query}")))
        .body("[1, 2, 3]")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    expect_problem(
        app.client.get(app.url("/api/cache")).send().await.unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
    assert_eq!(app.deployment_count().await, before);
}
