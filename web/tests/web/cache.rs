//! The cache indicator follows the deployments list's `X-Cache`, and its button clears the
//! API's cache and comes back to the same dashboard.

use reqwest::{StatusCode, header};

use crate::helpers::{Stack, attr_of, row_ids, section};

async fn cache_state(stack: &Stack, path: &str) -> String {
    let html = stack.web.page(path).await;
    attr_of(section(&html, "cache"), "id=\"cache-status\"", "data-cache")
}

#[tokio::test]
async fn the_indicator_shows_miss_then_hit_and_miss_again_after_clearing() {
    let stack = Stack::spawn().await;
    assert_eq!(cache_state(&stack, "/").await, "MISS");
    assert_eq!(cache_state(&stack, "/").await, "HIT");
    assert_eq!(cache_state(&stack, "/?status=failed").await, "MISS");

    let response = stack.web.post_form("/cache/clear", &[("return", "")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/");
    assert_eq!(cache_state(&stack, "/").await, "MISS");
    assert_eq!(cache_state(&stack, "/").await, "HIT");
}

#[tokio::test]
async fn clearing_comes_back_to_the_same_filters_and_never_elsewhere() {
    let stack = Stack::spawn().await;
    let html = stack.web.page("/?service=api&page=2").await;
    let back = attr_of(section(&html, "cache"), "name=\"return\"", "value");
    assert_eq!(back, "service=api&#38;page=2");

    for (sent, location) in [
        ("service=api&page=2", "/?service=api&page=2"),
        ("status=bogus&environment=dev", "/?environment=dev"),
        ("//evil.example/", "/"),
        ("https://evil.example", "/"),
    ] {
        let response = stack
            .web
            .post_form("/cache/clear", &[("return", sent)])
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{sent}");
        assert_eq!(response.headers()[header::LOCATION], location, "{sent}");
    }
    let html = stack.web.page("/?service=api&page=2").await;
    assert_eq!(
        row_ids(&html),
        stack
            .api
            .deployment_ids("service=api&limit=10&offset=10")
            .await
    );
}
