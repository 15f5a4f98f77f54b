//! Each component's template rendered on its own from fixture data, with hostile strings:
//! everything from the API comes out escaped, and long unbroken values sit in elements whose CSS
//! lets them wrap.

use std::time::Duration;

use askama::Template;
use contract::{
    Check, CheckStatus, Checks, Deployment, DeploymentPage, DeploymentStatus, Environment, Health,
    NamedRef, OverallStatus, Service, Stats, StatusCounts,
};
use reqwest::StatusCode;
use time::macros::datetime;
use web::{
    client::{ApiError, CacheState, HealthReport},
    form::{DeploymentForm, FieldErrors},
    query::DashboardQuery,
    views::{
        CacheIndicator, DeploymentDetail, DeploymentDetailPage, DeploymentsInput, DeploymentsList,
        ErrorPage, HealthPanel, NewDeploymentPage, PageMeta, StatsCards,
    },
};

use crate::helpers::{attr_of, attr_values, element, text};

const SCRIPT: &str = "<script>alert(1)</script>";
const QUOTES: &str = "\"'><img src=x onerror=alert(2)> & co";

fn long_version() -> String {
    format!("v{}", "9".repeat(199))
}

fn deployment(id: i64, version: &str, deployed_by: &str, status: DeploymentStatus) -> Deployment {
    let started_at = datetime!(2026-11-20 10:00 UTC);
    Deployment {
        id,
        service: NamedRef {
            id: 2,
            name: "api".into(),
        },
        environment: NamedRef {
            id: 3,
            name: "production".into(),
        },
        version: version.into(),
        status,
        deployed_by: deployed_by.into(),
        started_at,
        completed_at: status
            .is_finished()
            .then(|| started_at + time::Duration::seconds(221)),
    }
}

fn down() -> ApiError {
    ApiError::Status {
        status: StatusCode::BAD_GATEWAY,
        problem: None,
    }
}

/// Asserts hostile input came out as text, never as markup. askama writes the numeric
/// character references (`&#60;` for `<`, the same character as `&lt;`), which are valid in text
/// and in attribute values alike.
fn assert_escaped(html: &str) {
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{html}"
    );
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(!html.contains("\"'><"), "{html}");
}

#[test]
fn the_health_panel_shows_each_dependency_with_its_latency() {
    let report = HealthReport {
        health: Health {
            status: OverallStatus::Degraded,
            checks: Checks {
                database: Check {
                    status: CheckStatus::Up,
                    latency_ms: Some(0.414),
                },
                redis: Check {
                    status: CheckStatus::Down,
                    latency_ms: None,
                },
            },
            version: SCRIPT.into(),
        },
        latency: Duration::from_micros(2_500),
    };
    let html = HealthPanel::from_result(&Ok(report)).render().unwrap();
    assert_eq!(
        attr_of(&html, "data-service=\"database\"", "data-status"),
        "up"
    );
    assert_eq!(
        attr_of(&html, "data-service=\"redis\"", "data-status"),
        "down"
    );
    assert_eq!(attr_of(&html, "data-service=\"api\"", "data-status"), "up");
    assert!(text(element(&html, "data-service", "database")).contains("0.4 ms"));
    assert!(text(element(&html, "data-service", "api")).contains("2.5 ms"));
    assert!(!html.contains("unavailable"), "{html}");
    assert_escaped(&html);

    let html = HealthPanel::from_result(&Err(ApiError::Timeout))
        .render()
        .unwrap();
    assert_eq!(
        attr_of(&html, "data-service=\"api\"", "data-status"),
        "down"
    );
    let alert = element(&html, "class", "unavailable");
    assert!(alert.contains("role=\"alert\""), "{alert}");
    assert_eq!(
        text(alert),
        "Service health is unavailable: the API did not answer in time"
    );
}

#[test]
fn the_stats_cards_show_totals_rate_and_every_status() {
    let mut counts = StatusCounts::default();
    counts.add(DeploymentStatus::Completed, 17);
    counts.add(DeploymentStatus::Failed, 4);
    counts.add(DeploymentStatus::RolledBack, 3);
    counts.add(DeploymentStatus::Pending, 2);
    counts.add(DeploymentStatus::InProgress, 2);
    let html = StatsCards::from_result(&Ok(Stats::from_counts(counts)))
        .render()
        .unwrap();
    assert_eq!(
        attr_values(&html, "data-stat"),
        [
            "total",
            "success-rate",
            "pending",
            "in_progress",
            "completed",
            "failed",
            "rolled_back"
        ]
    );
    assert!(text(element(&html, "data-stat", "total")).ends_with("28"));
    assert!(text(element(&html, "data-stat", "success-rate")).ends_with("70.8%"));
    assert!(text(element(&html, "data-stat", "rolled_back")).ends_with('3'));

    let html = StatsCards::from_result(&Err(down())).render().unwrap();
    assert!(text(element(&html, "class", "unavailable")).starts_with("Statistics are unavailable"));
    assert!(text(element(&html, "data-stat", "total")).ends_with('—'));
}

#[test]
fn the_deployments_list_escapes_hostile_values_and_lets_long_ones_wrap() {
    let long = long_version();
    let page = DeploymentPage {
        deployments: vec![
            deployment(3, SCRIPT, QUOTES, DeploymentStatus::Failed),
            deployment(2, &long, "bob", DeploymentStatus::InProgress),
            deployment(1, "v1", "alice", DeploymentStatus::Completed),
        ],
        total: 23,
        limit: 10,
        offset: 10,
    };
    let query = DashboardQuery::parse("service=api&status=failed&page=2&environment=%3Cscript%3E");
    let services = Ok(vec![Service {
        id: 2,
        name: "api".into(),
        description: SCRIPT.into(),
    }]);
    let environments = Ok(vec![Environment {
        id: 3,
        name: "production".into(),
    }]);
    let html = DeploymentsList::build(&DeploymentsInput {
        query: &query,
        page: &Ok(page),
        services: &services,
        environments: &environments,
        now: datetime!(2026-11-20 13:00 UTC),
    })
    .render()
    .unwrap();

    assert_escaped(&html);
    assert!(html.contains("&#34;&#39;&#62;&#60;img src=x"), "{html}");
    assert!(html.contains("&#38; co"), "{html}");
    // The long version is in a cell that wraps anywhere.
    let cell_start = html.find(&long).unwrap();
    let cell_open = &html[html[..cell_start].rfind("<td").unwrap()..cell_start];
    assert!(cell_open.contains("class=\"break"), "{cell_open}");

    assert_eq!(attr_values(&html, "data-deployment-id"), ["3", "2", "1"]);
    assert!(html.contains("data-status=\"failed\""));
    assert!(text(element(&html, "data-deployment-id", "2")).contains("running"));
    assert!(text(element(&html, "data-deployment-id", "1")).contains("3m 41s"));
    assert!(text(element(&html, "data-deployment-id", "1")).contains("3 hours ago"));
    // The filter form keeps the choices, the ignored one is explained (escaped).
    assert!(
        html.contains("<option value=\"api\" selected>api</option>"),
        "{html}"
    );
    assert!(html.contains("<option value=\"failed\" selected>Failed</option>"));
    assert!(
        html.contains("Ignored the environment filter “&#60;script&#62;”"),
        "{html}"
    );
    // Page 2 of 3: both neighbours, filters kept.
    assert_eq!(
        attr_of(&html, "rel=\"prev\"", "href"),
        "/?service=api&#38;status=failed"
    );
    assert_eq!(
        attr_of(&html, "rel=\"next\"", "href"),
        "/?service=api&#38;status=failed&#38;page=3"
    );
    assert_eq!(
        text(element(&html, "id", "deployments-total")),
        "Showing 11–13 of 23 deployments"
    );
    assert!(!html.contains("class=\"unavailable\""));
}

#[test]
fn the_deployments_list_says_when_the_api_is_unavailable() {
    let query = DashboardQuery::parse("");
    let html = DeploymentsList::build(&DeploymentsInput {
        query: &query,
        page: &Err(ApiError::Timeout),
        services: &Err(ApiError::Timeout),
        environments: &Err(ApiError::Timeout),
        now: datetime!(2026-11-20 13:00 UTC),
    })
    .render()
    .unwrap();
    assert_eq!(
        text(element(&html, "class", "unavailable")),
        "Deployments are unavailable: the API did not answer in time"
    );
    assert!(attr_values(&html, "data-deployment-id").is_empty());
    assert!(!html.contains("rel=\"next\"") && !html.contains("rel=\"prev\""));
}

#[test]
fn the_cache_indicator_names_the_state_and_offers_the_button() {
    for (state, value) in [
        (CacheState::Hit, "HIT"),
        (CacheState::Miss, "MISS"),
        (CacheState::Bypass, "BYPASS"),
        (CacheState::Unknown, "unknown"),
    ] {
        let html = CacheIndicator::new(state, "service=api&page=2".into(), None)
            .render()
            .unwrap();
        assert_eq!(attr_of(&html, "id=\"cache-status\"", "data-cache"), value);
        assert!(html.contains("<form id=\"clear-cache\" method=\"post\" action=\"/cache/clear\">"));
        assert!(html.contains("value=\"service=api&#38;page=2\""), "{html}");
        assert!(!html.contains("class=\"unavailable\""));
    }
    let html = CacheIndicator::new(CacheState::Unknown, String::new(), Some(&down()))
        .render()
        .unwrap();
    assert!(element(&html, "class", "unavailable").contains("role=\"alert\""));
}

#[test]
fn the_detail_page_escapes_every_field() {
    let long = long_version();
    let mut hostile = deployment(7, &long, SCRIPT, DeploymentStatus::RolledBack);
    hostile.service.name = QUOTES.into();
    let html = DeploymentDetailPage {
        page: PageMeta::new(format!("Deployment #7 ({SCRIPT})"), ""),
        deployment: DeploymentDetail::new(&hostile, datetime!(2026-11-21 10:00 UTC)),
    }
    .render()
    .unwrap();
    assert_escaped(&html);
    assert!(html.contains("<article id=\"deployment\""));
    assert_eq!(
        attr_of(&html, "id=\"deployment\"", "data-deployment-id"),
        "7"
    );
    let version = element(&html, "data-field", "version");
    assert!(version.contains("class=\"break"), "{version}");
    assert!(version.contains(&long));
    assert!(text(element(&html, "data-field", "duration")).contains("3m 41s"));
    assert!(html.contains("<title>Deployment #7 (&#60;script&#62;"));
}

#[test]
fn the_form_keeps_hostile_values_as_text_and_points_at_the_errors() {
    let form = DeploymentForm {
        service_id: "2".into(),
        environment_id: String::new(),
        version: SCRIPT.into(),
        deployed_by: QUOTES.into(),
        status: "failed".into(),
    };
    let mut errors = FieldErrors::default();
    errors.set("environment_id", "Choose an environment".into());
    errors.set("version", format!("Version {SCRIPT} is odd"));
    let services = Ok(vec![Service {
        id: 2,
        name: "api".into(),
        description: String::new(),
    }]);
    let environments = Ok(vec![Environment {
        id: 1,
        name: "dev".into(),
    }]);
    let html = NewDeploymentPage::new(&form, errors, &services, &environments)
        .render()
        .unwrap();
    assert_escaped(&html);
    assert!(
        html.contains("value=\"&#60;script&#62;alert(1)&#60;/script&#62;\""),
        "{html}"
    );
    assert!(html.contains("<option value=\"2\" selected>api</option>"));
    assert!(html.contains("<option value=\"failed\" selected>Failed</option>"));
    let error = element(&html, "id", "error-environment_id");
    assert!(error.contains("class=\"field-error\""), "{error}");
    let select = &html[html.find("<select id=\"environment_id\"").unwrap()..];
    let select = &select[..select.find('>').unwrap()];
    assert!(select.contains("aria-describedby=\"error-environment_id\""));
    assert!(select.contains("aria-invalid=\"true\""));
    assert!(
        select.contains("autofocus"),
        "the first invalid field gets the focus"
    );
    assert!(html.contains("aria-describedby=\"hint-version error-version\""));
    assert!(!html.contains("id=\"error-service_id\""));
}

#[test]
fn every_page_has_the_layout_landmarks() {
    let page = ErrorPage {
        page: PageMeta::new("Page not found", ""),
        status: 404,
        heading: "Page not found".into(),
        message: SCRIPT.into(),
        unavailable: false,
    };
    let html = page.render().unwrap();
    assert_escaped(&html);
    for landmark in [
        "<html lang=\"en\">",
        "<title>Page not found · Wander</title>",
        "<a class=\"skip-link\" href=\"#main\">",
        "<header",
        "<nav aria-label=\"Main\">",
        "<main id=\"main\"",
        "<footer",
        "<a class=\"brand\" href=\"/\">",
    ] {
        assert!(html.contains(landmark), "{landmark} missing:\n{html}");
    }
    assert!(!html.contains("style="), "no inline styles (CSP)");
    // The only script is the external one.
    assert_eq!(html.matches("<script").count(), 1);
    assert!(html.contains("<script src=\"/static/app."));
    assert!(html.contains("<p class=\"error-code\">404</p>"));
}
