//! Security headers on every kind of response, cacheable hashed assets, CSRF protection of the
//! forms, friendly error pages, and a page that stays light and loads nothing from elsewhere.

use reqwest::{Response, StatusCode, header};

use crate::helpers::{Stack, TestWeb, attr_values, closed_port_url};

fn assert_security_headers(response: &Response, what: &str) {
    let headers = response.headers();
    let csp = headers
        .get(header::CONTENT_SECURITY_POLICY)
        .unwrap_or_else(|| panic!("{what}: no CSP"))
        .to_str()
        .unwrap();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(
            csp.contains(directive),
            "{what}: {directive} missing from {csp}"
        );
    }
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-eval"), "{what}: {csp}");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{what}");
    assert_eq!(
        headers[header::REFERRER_POLICY],
        "strict-origin-when-cross-origin",
        "{what}"
    );
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{what}");
    assert!(headers.contains_key("x-request-id"), "{what}");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let stack = Stack::spawn().await;
    let html = stack.web.page("/").await;
    let css = attr_values(&html, "href")
        .into_iter()
        .find(|href| href.starts_with("/static/app.") && href.contains(".css"))
        .unwrap();
    for path in [
        "/",
        "/deployments/new",
        "/deployments/1",
        "/deployments/424242",
        "/deployments/abc",
        "/partials/health",
        "/healthz",
        css.as_str(),
        "/static/app.css",
        "/no/such/page",
    ] {
        let response = stack.web.get(path).await;
        assert_security_headers(&response, path);
    }
    let rejected = stack
        .web
        .client
        .post(stack.web.url("/cache/clear"))
        .header(header::ORIGIN, "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), StatusCode::FORBIDDEN);
    assert_security_headers(&rejected, "CSRF rejection");
    let wrong_method = stack
        .web
        .client
        .delete(stack.web.url("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_security_headers(&wrong_method, "405");
}

#[tokio::test]
async fn pages_are_revalidated_and_assets_cached_forever_under_hashed_names() {
    let web = TestWeb::spawn(&closed_port_url(), &[]).await;
    let response = web.get("/").await;
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
    let html = response.text().await.unwrap();

    let mut assets = attr_values(&html, "href");
    assets.extend(attr_values(&html, "src"));
    assets.retain(|url| url.starts_with("/static/"));
    assets.sort();
    assets.dedup();
    let expected_types = [
        (".css", "text/css; charset=utf-8"),
        (".js", "text/javascript; charset=utf-8"),
        (".svg", "image/svg+xml"),
    ];
    assert_eq!(assets.len(), expected_types.len(), "{assets:?}");
    for url in &assets {
        let (stem, ext) = url.rsplit_once('.').unwrap();
        let hash = stem.rsplit_once('.').unwrap().1;
        assert!(
            hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{url} carries a content hash"
        );
        let content_type = expected_types
            .iter()
            .find(|(suffix, _)| *suffix == format!(".{ext}"))
            .unwrap()
            .1;
        let response = web.get(url).await;
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            content_type,
            "{url}"
        );
        assert_eq!(
            response.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable",
            "{url}"
        );
        assert!(!response.bytes().await.unwrap().is_empty(), "{url}");
    }
    // An unhashed or stale name is not served (it would be cached forever).
    for stale in [
        "/static/app.css",
        "/static/app.000000000000.css",
        "/static/../Cargo.toml",
    ] {
        let response = web.get(stale).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{stale}");
        assert_ne!(
            response.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
    }
    web.stop().await;
}

#[tokio::test]
async fn cross_site_posts_are_refused_and_same_origin_ones_pass() {
    let stack = Stack::spawn().await;
    let before = stack.api.total().await;
    let form = "service_id=1&environment_id=1&version=v6.6.6&deployed_by=mallory";
    for (path, name, value) in [
        ("/deployments", "origin", "http://evil.example"),
        ("/deployments", "sec-fetch-site", "cross-site"),
        ("/deployments", "sec-fetch-site", "same-site"),
        ("/cache/clear", "origin", "http://evil.example"),
        ("/cache/clear", "sec-fetch-site", "cross-site"),
        ("/cache/clear", "origin", "null"),
    ] {
        let response = stack
            .web
            .client
            .post(stack.web.url(path))
            .header(name, value)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{path} {name}: {value}"
        );
        let html = response.text().await.unwrap();
        assert!(
            html.contains("This form was sent from another site"),
            "{html}"
        );
    }
    assert_eq!(stack.api.total().await, before, "nothing was written");

    // The dashboard's own origin (either loopback name) is accepted.
    let port = stack.web.addr.port();
    for origin in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ] {
        let response = stack
            .web
            .client
            .post(stack.web.url("/cache/clear"))
            .header(header::ORIGIN, &origin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{origin}");
    }
    let response = stack
        .web
        .post_form(
            "/deployments",
            &[
                ("service_id", "1"),
                ("environment_id", "1"),
                ("version", "v1"),
                ("deployed_by", "zoe"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(stack.api.total().await, before + 1);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_friendly_pages() {
    let web = TestWeb::spawn(&closed_port_url(), &[]).await;
    for (method, path, status, heading) in [
        (
            "GET",
            "/no/such/page",
            StatusCode::NOT_FOUND,
            "Page not found",
        ),
        (
            "GET",
            "/api/deployments",
            StatusCode::NOT_FOUND,
            "Page not found",
        ),
        (
            "GET",
            "/%3Cscript%3E",
            StatusCode::NOT_FOUND,
            "Page not found",
        ),
        (
            "PUT",
            "/deployments",
            StatusCode::METHOD_NOT_ALLOWED,
            "Not possible here",
        ),
        (
            "GET",
            "/cache/clear",
            StatusCode::METHOD_NOT_ALLOWED,
            "Not possible here",
        ),
    ] {
        let response = web
            .client
            .request(method.parse().unwrap(), web.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let html = response.text().await.unwrap();
        assert!(
            html.contains(&format!("<h1 id=\"error-title\">{heading}</h1>")),
            "{html}"
        );
        assert!(html.contains("href=\"/\""), "a way back");
        assert!(!html.contains("<script>"));
    }
    let huge = "version=".to_owned() + &"x".repeat(100_000);
    let response = web
        .client
        .post(web.url("/deployments"))
        .header(header::ORIGIN, &web.origin)
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(response.text().await.unwrap().contains("Form too large"));
    web.stop().await;
}

#[tokio::test]
async fn the_seeded_dashboard_is_light_and_self_contained() {
    let stack = Stack::spawn().await;
    let html = stack.web.page("/").await;
    let mut weight = html.len();
    for url in attr_values(&html, "href")
        .into_iter()
        .chain(attr_values(&html, "src"))
        .filter(|url| url.starts_with("/static/app."))
        .collect::<std::collections::BTreeSet<_>>()
    {
        weight += stack.web.get(&url).await.bytes().await.unwrap().len();
    }
    assert!(weight < 100 * 1024, "HTML + CSS + JS weigh {weight} bytes");
    println!("dashboard weight (HTML + CSS + JS): {weight} bytes");

    // Nothing is loaded from another origin, and no inline code or style needs a CSP exception.
    for url in attr_values(&html, "src")
        .into_iter()
        .chain(attr_values(&html, "href"))
    {
        assert!(
            url.starts_with('/') || url.starts_with('#'),
            "{url} points elsewhere"
        );
    }
    assert!(!html.contains("style="), "no inline styles");
    assert!(!html.contains("<style"), "no style elements");
    assert_eq!(html.matches("<script").count(), 1);
    assert!(html.contains("<script src=\"/static/app."));
    let handlers: Vec<_> = html
        .match_indices(" on")
        .map(|(at, _)| &html[at + 1..])
        .filter(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            name.len() > 2 && rest[name.len()..].starts_with('=')
        })
        .collect();
    assert!(handlers.is_empty(), "no inline event handlers");
}
