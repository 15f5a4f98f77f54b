//! Mutations need the bearer token when one is configured; CORS admits only the dashboard.

use reqwest::{StatusCode, header};
use serde_json::json;

use crate::helpers::{Options, TestApp, expect_problem};

#[tokio::test]
async fn mutations_without_the_right_token_are_401_and_write_nothing() {
    let app = TestApp::spawn_with(Options {
        token: Some("s3cret-token"),
        ..Default::default()
    })
    .await;
    let before = app.deployment_count().await;
    let body = json!({"service_id": 1, "environment_id": 1, "version": "v1", "deployed_by": "a"});
    for authorization in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret-toke"),
        Some("Bearer s3cret-token2"),
        Some("Basic czNjcmV0LXRva2Vu"),
        Some("s3cret-token"),
        Some("Bearer"),
    ] {
        let mut post = app.client.post(app.url("/api/deployments")).json(&body);
        let mut delete = app.client.delete(app.url("/api/cache"));
        if let Some(value) = authorization {
            post = post.header(header::AUTHORIZATION, value);
            delete = delete.header(header::AUTHORIZATION, value);
        }
        for response in [post.send().await.unwrap(), delete.send().await.unwrap()] {
            assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
            expect_problem(response, StatusCode::UNAUTHORIZED).await;
        }
    }
    assert_eq!(app.deployment_count().await, before);

    // The right token works, whatever the scheme's case; reads never need it.
    let response = app
        .client
        .post(app.url("/api/deployments"))
        .header(header::AUTHORIZATION, "bearer s3cret-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(app.clear_cache().await.status(), StatusCode::OK);
    let read = app
        .client
        .get(app.url("/api/deployments"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
}

#[tokio::test]
async fn cors_admits_the_dashboard_origin_only() {
    let app = TestApp::spawn_with(Options {
        env: vec![("CORS_ORIGIN", "http://127.0.0.1:3000".to_owned())],
        ..Default::default()
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/deployments"))
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "content-type,authorization",
            )
            .send()
    };
    let allowed = preflight("http://127.0.0.1:3000").await.unwrap();
    assert_eq!(
        allowed.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "http://127.0.0.1:3000"
    );
    let methods = allowed.headers()[header::ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");

    for origin in ["http://evil.example", "http://127.0.0.1:3001", "null"] {
        let denied = preflight(origin).await.unwrap();
        assert!(
            denied
                .headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none(),
            "{origin} was allowed"
        );
        let simple = app
            .client
            .get(app.url("/api/services"))
            .header(header::ORIGIN, origin)
            .send()
            .await
            .unwrap();
        assert!(
            simple
                .headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none()
        );
    }
    let simple = app
        .client
        .get(app.url("/api/services"))
        .header(header::ORIGIN, "http://127.0.0.1:3000")
        .send()
        .await
        .unwrap();
    let exposed = simple.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(exposed.contains("x-cache"), "{exposed}");
    assert!(exposed.contains("cache-status"), "{exposed}");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn().await;
    let generated = app.get("/livez").await;
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let echoed = app
        .client
        .get(app.url("/api/nothing"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-42");
}
