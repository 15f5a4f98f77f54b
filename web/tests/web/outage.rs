//! The dashboard without its API: down (nothing listens) or hung (accepts, never answers). Every
//! page still renders, says which part is missing, and never shows a technical error.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{TestWeb, attr_of, closed_port_url, element, section, text};

/// Asserts a page says nothing technical about the failure.
fn assert_no_internals(html: &str) {
    for leak in [
        "reqwest",
        "error sending request",
        "Connection refused",
        "tcp connect",
        "panicked",
        "hyper",
        "127.0.0.1:",
    ] {
        assert!(!html.contains(leak), "the page leaks {leak:?}:\n{html}");
    }
}

fn assert_dashboard_degraded(html: &str) {
    for (id, message) in [
        (
            "health",
            "Service health is unavailable: the API did not answer",
        ),
        (
            "stats",
            "Statistics are unavailable: the API did not answer",
        ),
        (
            "deployments",
            "Deployments are unavailable: the API did not answer",
        ),
        (
            "cache",
            "The cache state is unavailable: the API did not answer",
        ),
    ] {
        let part = section(html, id);
        let alert = element(part, "class", "unavailable");
        assert!(alert.contains("role=\"alert\""), "{id}: {alert}");
        assert!(text(alert).starts_with(message), "{id}: {}", text(alert));
    }
    let health = section(html, "health");
    assert_eq!(
        attr_of(health, "data-service=\"api\"", "data-status"),
        "down"
    );
    assert_eq!(
        attr_of(section(html, "cache"), "id=\"cache-status\"", "data-cache"),
        "unknown"
    );
    assert!(
        html.contains("<form id=\"filters\""),
        "the filters still render"
    );
    assert_no_internals(html);
}

#[tokio::test]
async fn with_the_api_down_every_page_still_renders_and_says_so() {
    let web = TestWeb::spawn(&closed_port_url(), &[]).await;

    let html = web.page("/?service=api&status=failed&page=2").await;
    assert_dashboard_degraded(&html);
    assert!(
        html.contains("<option value=\"api\" selected>api</option>"),
        "filters kept"
    );

    let health = web.page("/partials/health").await;
    assert_eq!(
        attr_of(&health, "data-service=\"api\"", "data-status"),
        "down"
    );
    assert!(
        web.page("/partials/stats")
            .await
            .contains("class=\"unavailable\"")
    );

    let probe = web.get("/healthz").await;
    assert_eq!(probe.status(), StatusCode::OK);
    assert_eq!(probe.text().await.unwrap(), r#"{"status":"ok"}"#);

    let detail = web.get("/deployments/1").await;
    assert_eq!(detail.status(), StatusCode::SERVICE_UNAVAILABLE);
    let html = detail.text().await.unwrap();
    assert!(html.contains("This deployment is unavailable: the API did not answer"));
    assert!(html.contains("class=\"unavailable\" role=\"alert\""));
    assert_no_internals(&html);

    let form = web.page("/deployments/new").await;
    assert!(form.contains("class=\"unavailable\" role=\"alert\""));
    assert_no_internals(&form);

    let created = web
        .post_form(
            "/deployments",
            &[
                ("service_id", "2"),
                ("environment_id", "3"),
                ("version", "v1"),
                ("deployed_by", "zoe"),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SERVICE_UNAVAILABLE);
    let html = created.text().await.unwrap();
    assert!(html.contains("Deployments cannot be created right now: the API did not answer"));
    assert!(html.contains("value=\"zoe\""), "values kept");
    assert!(
        html.contains("<option value=\"2\" selected>"),
        "choice kept"
    );
    assert_no_internals(&html);

    let cleared = web.post_form("/cache/clear", &[]).await;
    assert_eq!(cleared.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_no_internals(&cleared.text().await.unwrap());
    web.stop().await;
}

#[tokio::test]
async fn a_hung_api_costs_the_page_one_timeout_not_a_failure() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let web = TestWeb::spawn(&url, &[("API_TIMEOUT_MS", "300")]).await;

    let started = Instant::now();
    let html = web.page("/").await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "the dashboard took {took:?}");
    assert!(
        text(element(
            section(&html, "deployments"),
            "class",
            "unavailable"
        ))
        .starts_with("Deployments are unavailable: the API did not answer in time")
    );
    assert_eq!(
        attr_of(
            section(&html, "health"),
            "data-service=\"api\"",
            "data-status"
        ),
        "down"
    );
    assert_no_internals(&html);
    web.stop().await;
    hold.abort();
}

#[tokio::test]
async fn an_api_that_goes_away_shows_as_down_on_the_next_page() {
    let stack = crate::helpers::Stack::spawn().await;
    let html = stack.web.page("/").await;
    assert_eq!(
        attr_of(
            section(&html, "health"),
            "data-service=\"api\"",
            "data-status"
        ),
        "up"
    );
    let crate::helpers::Stack { api, web } = stack;
    api.stop().await;
    let html = web.page("/").await;
    assert_dashboard_degraded(&html);
    web.stop().await;
}
