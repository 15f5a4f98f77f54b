//! The detail page and the form that records a deployment, end to end through the API.

use reqwest::{StatusCode, header};

use crate::helpers::{Stack, TestWeb, attr_of, element, row_ids, text};

#[tokio::test]
async fn a_deployment_has_its_own_page() {
    let stack = Stack::spawn().await;
    let expected = stack.api.json("/api/deployments/15").await;
    let html = stack.web.page("/deployments/15").await;
    assert_eq!(
        attr_of(&html, "<article id=\"deployment\"", "data-deployment-id"),
        "15"
    );
    for (field, value) in [
        ("service", &expected["service"]["name"]),
        ("environment", &expected["environment"]["name"]),
        ("version", &expected["version"]),
        ("deployed_by", &expected["deployed_by"]),
    ] {
        assert_eq!(
            text(element(&html, "data-field", field)),
            value.as_str().unwrap(),
            "{field}"
        );
    }
    assert!(html.contains("data-status=\"rolled_back\""));
    assert!(html.contains("<main id=\"main\""));
    // The dashboard links every row to its page.
    let dashboard = stack.web.page("/").await;
    let first = &row_ids(&dashboard)[0];
    assert!(dashboard.contains(&format!("href=\"/deployments/{first}\"")));
}

#[tokio::test]
async fn a_missing_deployment_is_a_friendly_404_and_a_bad_id_a_400() {
    let stack = Stack::spawn().await;
    let response = stack.web.get("/deployments/424242").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let html = response.text().await.unwrap();
    assert!(html.contains("There is no deployment #424242"), "{html}");
    assert!(html.contains("<main id=\"main\""));

    for bad in [
        "abc",
        "-1",
        "0",
        "1.5",
        "%3Cscript%3E",
        "99999999999999999999999",
    ] {
        let response = stack.web.get(&format!("/deployments/{bad}")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        let html = response.text().await.unwrap();
        assert!(html.contains("This address is not valid"), "{bad}");
        assert!(!html.contains("<script>"), "{bad}");
    }
}

#[tokio::test]
async fn the_form_lists_services_and_environments_by_id() {
    let stack = Stack::spawn().await;
    let html = stack.web.page("/deployments/new").await;
    assert!(html.contains("<form id=\"new-deployment\" method=\"post\" action=\"/deployments\""));
    for (id, name) in [(1, "frontend"), (2, "api"), (3, "worker"), (4, "analytics")] {
        assert!(
            html.contains(&format!("<option value=\"{id}\">{name}</option>")),
            "{name}"
        );
    }
    for (id, name) in [(1, "dev"), (2, "staging"), (3, "production")] {
        assert!(
            html.contains(&format!("<option value=\"{id}\">{name}</option>")),
            "{name}"
        );
    }
    for field in [
        "service_id",
        "environment_id",
        "version",
        "deployed_by",
        "status",
    ] {
        assert!(
            html.contains(&format!("<label for=\"{field}\">")),
            "{field} has a label"
        );
        assert!(html.contains(&format!("name=\"{field}\"")), "{field}");
    }
    assert!(html.contains("<button type=\"submit\""));
    assert!(!html.contains("class=\"field-error\""));
}

#[tokio::test]
async fn creating_a_deployment_redirects_to_its_page_and_the_dashboard_lists_it() {
    let stack = Stack::spawn().await;
    let before = stack.api.total().await;
    let response = stack
        .web
        .post_form(
            "/deployments",
            &[
                ("service_id", "3"),
                ("environment_id", "2"),
                ("version", "v9.9.9-web"),
                ("deployed_by", "dashboard@wander.dev"),
                ("status", "in_progress"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let id = location
        .strip_prefix("/deployments/")
        .expect("a deployment page")
        .to_owned();
    assert_eq!(stack.api.total().await, before + 1);

    let html = stack.web.page(&location).await;
    assert_eq!(text(element(&html, "data-field", "version")), "v9.9.9-web");
    assert_eq!(text(element(&html, "data-field", "service")), "worker");
    assert_eq!(text(element(&html, "data-field", "environment")), "staging");
    assert!(html.contains("data-status=\"in_progress\""));

    // Newest first: it heads the dashboard's table.
    let dashboard = stack.web.page("/").await;
    assert_eq!(row_ids(&dashboard)[0], id);
}

#[tokio::test]
async fn invalid_fields_come_back_next_to_the_fields_with_the_values_kept() {
    let stack = Stack::spawn().await;
    let before = stack.api.total().await;
    let long = "x".repeat(65);
    let response = stack
        .web
        .post_form(
            "/deployments",
            &[
                ("service_id", ""),
                ("environment_id", "2"),
                ("version", &long),
                ("deployed_by", "  "),
                ("status", "bogus"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.unwrap();
    for (field, message) in [
        ("service_id", "Choose a service"),
        ("version", "Version must be at most 64 characters"),
        ("deployed_by", "Deployed by must not be empty"),
        ("status", "Choose a status from the list"),
    ] {
        let error = element(&html, "id", &format!("error-{field}"));
        assert!(error.contains("class=\"field-error\""), "{field}");
        assert_eq!(text(error), message, "{field}");
        let control = &html[html
            .find(&format!("id=\"{field}\" name=\"{field}\""))
            .unwrap()..];
        let control = &control[..control.find('>').unwrap()];
        assert!(
            control.contains(&format!("error-{field}")),
            "{field} is described by its error"
        );
    }
    assert!(!html.contains("id=\"error-environment_id\""));
    assert!(
        html.contains("<option value=\"2\" selected>staging</option>"),
        "kept"
    );
    assert!(html.contains(&format!("value=\"{long}\"")), "kept");
    assert_eq!(stack.api.total().await, before, "nothing was written");
}

#[tokio::test]
async fn a_refusal_by_the_api_lands_on_the_field_it_names() {
    let stack = Stack::spawn().await;
    let before = stack.api.total().await;
    let response = stack
        .web
        .post_form(
            "/deployments",
            &[
                ("service_id", "999"),
                ("environment_id", "1"),
                ("version", "v1"),
                ("deployed_by", "zoe"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.unwrap();
    assert_eq!(
        text(element(&html, "id", "error-service_id")),
        "Service 999 does not exist"
    );
    assert!(html.contains("value=\"zoe\""));
    assert_eq!(stack.api.total().await, before);
}

#[tokio::test]
async fn a_wrong_token_keeps_the_values_and_says_what_to_fix() {
    let stack = Stack::spawn().await;
    let web = TestWeb::spawn(&stack.api.url(""), &[("API_TOKEN", "not-the-token")]).await;
    let response = web
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
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let html = response.text().await.unwrap();
    assert!(html.contains("API_TOKEN does not match"), "{html}");
    assert!(html.contains("value=\"zoe\""));
    assert!(html.contains("<option value=\"1\" selected>frontend</option>"));
    let clear = web.post_form("/cache/clear", &[]).await;
    assert_eq!(clear.status(), StatusCode::BAD_GATEWAY);
    assert!(
        clear
            .text()
            .await
            .unwrap()
            .contains("API_TOKEN does not match")
    );
    web.stop().await;
}
