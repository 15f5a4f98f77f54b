//! The dashboard against the seeded API: every section, the rows the API lists for the same
//! filters and page, and lenient handling of bad query strings.

use reqwest::StatusCode;

use crate::helpers::{Stack, attr_of, attr_values, element, row_ids, section, text};

#[tokio::test]
async fn the_dashboard_shows_every_section_with_the_seeded_data() {
    let stack = Stack::spawn().await;
    let html = stack.web.page("/").await;

    let health = section(&html, "health");
    for service in ["database", "redis", "api"] {
        let marker = format!("data-service=\"{service}\"");
        assert_eq!(attr_of(health, &marker, "data-status"), "up", "{service}");
        assert!(
            text(element(health, "data-service", service)).contains(" ms"),
            "{service} shows its latency"
        );
    }

    let stats = section(&html, "stats");
    let api_stats = stack.api.json("/api/stats").await;
    assert!(text(element(stats, "data-stat", "total")).ends_with(&api_stats["total"].to_string()));
    assert!(text(element(stats, "data-stat", "success-rate")).ends_with('%'));
    for status in [
        "pending",
        "in_progress",
        "completed",
        "failed",
        "rolled_back",
    ] {
        let count = api_stats["by_status"][status].to_string();
        assert!(
            text(element(stats, "data-stat", status)).ends_with(&count),
            "{status}"
        );
    }

    // Newest first, ten to a page: exactly what the API lists.
    assert_eq!(
        row_ids(&html),
        stack.api.deployment_ids("limit=10").await,
        "first page"
    );
    let deployments = section(&html, "deployments");
    assert!(
        deployments.contains("<form id=\"filters\" class=\"filters\" method=\"get\" action=\"/\">")
    );
    for select in ["service", "environment", "status"] {
        assert!(deployments.contains(&format!(
            "<select id=\"filter-{select}\" name=\"{select}\">"
        )));
    }
    assert!(deployments.contains("<option value=\"frontend\">frontend</option>"));
    assert!(deployments.contains("<option value=\"production\">production</option>"));
    assert!(deployments.contains("<table id=\"deployments-table\">"));
    assert_eq!(
        attr_values(deployments, "data-status").len(),
        10,
        "a badge per row"
    );
    assert!(text(element(deployments, "id", "deployments-total")).contains("of 28 deployments"));
    assert!(deployments.contains("rel=\"next\" href=\"/?page=2\""));
    assert!(!deployments.contains("rel=\"prev\""));

    let cache = section(&html, "cache");
    assert!(cache.contains("id=\"cache-status\""));
    assert!(cache.contains("<form id=\"clear-cache\" method=\"post\" action=\"/cache/clear\">"));

    assert!(html.contains("<a id=\"new-deployment-link\""));
    assert!(
        !html.contains("class=\"unavailable\""),
        "no notice while everything works"
    );
}

#[tokio::test]
async fn filters_and_pages_show_the_rows_the_api_lists() {
    let stack = Stack::spawn().await;
    for (dashboard, api) in [
        ("service=api", "service=api&limit=10"),
        ("environment=production", "environment=production&limit=10"),
        ("status=failed", "status=failed&limit=10"),
        (
            "service=api&environment=production&status=completed",
            "service=api&environment=production&status=completed&limit=10",
        ),
        ("page=2", "limit=10&offset=10"),
        ("page=3", "limit=10&offset=20"),
        (
            "service=frontend&page=2",
            "service=frontend&limit=10&offset=10",
        ),
        ("service=2", "service=2&limit=10"),
    ] {
        let html = stack.web.page(&format!("/?{dashboard}")).await;
        let expected = stack.api.deployment_ids(api).await;
        assert_eq!(row_ids(&html), expected, "{dashboard}");
        assert!(!html.contains("class=\"notice"), "{dashboard}");
    }
}

#[tokio::test]
async fn pagination_links_exist_only_where_a_page_does_and_keep_the_filters() {
    let stack = Stack::spawn().await;
    let total = stack
        .api
        .json("/api/deployments?status=completed&limit=1")
        .await["total"]
        .as_i64()
        .unwrap();
    assert!(
        total > 10,
        "the seed has more than one page of completed deployments"
    );

    let first = stack.web.page("/?status=completed").await;
    assert_eq!(
        attr_of(&first, "rel=\"next\"", "href"),
        "/?status=completed&#38;page=2"
    );
    assert!(!first.contains("rel=\"prev\""));
    assert!(first.contains("<option value=\"completed\" selected>"));

    let last_page = (total + 9) / 10;
    let last = stack
        .web
        .page(&format!("/?status=completed&page={last_page}"))
        .await;
    assert!(!last.contains("rel=\"next\""));
    let prev = format!("/?status=completed&#38;page={}", last_page - 1);
    let prev = if last_page == 2 {
        "/?status=completed".to_owned()
    } else {
        prev
    };
    assert_eq!(attr_of(&last, "rel=\"prev\"", "href"), prev);
    assert_eq!(row_ids(&last).len() as i64, total - (last_page - 1) * 10);

    // Past the end: an empty table that says so, a way back, no way further.
    let past = stack.web.page("/?page=50").await;
    assert!(row_ids(&past).is_empty());
    assert!(past.contains("This page is past the last deployment."));
    assert!(past.contains("rel=\"prev\"") && !past.contains("rel=\"next\""));
}

#[tokio::test]
async fn bad_query_parameters_are_ignored_with_a_notice_never_an_error() {
    let stack = Stack::spawn().await;
    let unfiltered = stack.api.deployment_ids("limit=10").await;
    for (query, notice) in [
        ("page=-1", "Ignored the page filter “-1”"),
        ("page=abc", "Ignored the page filter “abc”"),
        ("page=0", "Ignored the page filter “0”"),
        (
            "page=999999999999",
            "Ignored the page filter “999999999999”",
        ),
        ("status=bogus", "Ignored the status filter “bogus”"),
        (
            "service=%3Cscript%3E",
            "Ignored the service filter “&#60;script&#62;”",
        ),
        (
            "service=nope",
            "Ignored the service filter “nope”: no such service",
        ),
        (
            "environment=moon",
            "Ignored the environment filter “moon”: no such environment",
        ),
        (
            "service=999",
            "Ignored the service filter “999”: no such service",
        ),
        (
            "environment=Production",
            "Ignored the environment filter “Production”",
        ),
    ] {
        let html = stack.web.page(&format!("/?{query}")).await;
        let deployments = section(&html, "deployments");
        assert!(deployments.contains(notice), "{query}:\n{deployments}");
        assert!(deployments.contains("role=\"status\""), "{query}");
        assert_eq!(
            row_ids(&html),
            unfiltered,
            "{query} shows the unfiltered first page"
        );
        assert!(!html.contains("<script>"), "{query}");
        assert!(!html.contains("class=\"unavailable\""), "{query}");
    }
    // Repeated, unknown and undecodable parameters do not fail the page either.
    for query in [
        "status=failed&status=x",
        "utm=1&page=1",
        "%ZZ=1&page=%FF",
        "service",
    ] {
        let response = stack.web.get(&format!("/?{query}")).await;
        assert_eq!(response.status(), StatusCode::OK, "{query}");
    }
}

#[tokio::test]
async fn the_partials_serve_the_health_and_stats_sections_alone() {
    let stack = Stack::spawn().await;
    let health = stack.web.page("/partials/health").await;
    assert!(health.starts_with("<section id=\"health\""), "{health}");
    assert_eq!(
        attr_of(&health, "data-service=\"api\"", "data-status"),
        "up"
    );
    assert!(!health.contains("<html"));
    let stats = stack.web.page("/partials/stats").await;
    assert!(stats.starts_with("<section id=\"stats\""), "{stats}");
    assert!(stats.contains("data-stat=\"total\""));
    // The dashboard points its refresh script at them.
    let html = stack.web.page("/").await;
    assert!(html.contains("data-refresh=\"/partials/health\""));
    assert!(html.contains("data-refresh=\"/partials/stats\""));
}
