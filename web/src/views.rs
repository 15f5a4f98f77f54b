//! The templates (one struct per page and per dashboard component) and the view models that turn
//! the API's wire types into what a person reads: labels, percentages, durations, relative times.
//!
//! Templates live in `web/templates/`; askama escapes every value, so API data (which may hold
//! anything a client sent) can never become markup.

use std::time::Duration;

use askama::Template;
use contract::{
    CheckStatus, Deployment, DeploymentPage, DeploymentStatus, Environment, Service, Stats,
};
use time::{OffsetDateTime, format_description::BorrowedFormatItem, macros::format_description};

use crate::{
    assets::ASSETS,
    client::{ApiError, CacheState, HealthReport},
    form::{DeploymentForm, FieldErrors},
    query::{DashboardQuery, Ignored, PAGE_SIZE},
};

/// What the base layout needs from every page.
#[derive(Debug, Clone)]
pub struct PageMeta {
    /// The page's own part of `<title>`.
    pub title: String,
    /// Which navigation entry is the current page (`dashboard`, `new`, or empty).
    pub nav: &'static str,
    pub css: &'static str,
    pub js: &'static str,
    pub icon: &'static str,
}

impl PageMeta {
    /// Metadata for a page titled `title`, linking the hashed assets.
    pub fn new(title: impl Into<String>, nav: &'static str) -> Self {
        Self {
            title: title.into(),
            nav,
            css: &ASSETS.css.href,
            js: &ASSETS.js.href,
            icon: &ASSETS.icon.href,
        }
    }
}

/// An `<option>` of a `<select>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// A readable label for a status.
pub fn status_label(status: DeploymentStatus) -> &'static str {
    match status {
        DeploymentStatus::Pending => "Pending",
        DeploymentStatus::InProgress => "In progress",
        DeploymentStatus::Completed => "Completed",
        DeploymentStatus::Failed => "Failed",
        DeploymentStatus::RolledBack => "Rolled back",
    }
}

/// The status choices of a `<select>`, with `selected` (a wire name) marked.
fn status_choices(selected: &str) -> Vec<Choice> {
    DeploymentStatus::ALL
        .iter()
        .map(|status| Choice {
            value: status.as_str().to_owned(),
            label: status_label(*status).to_owned(),
            selected: status.as_str() == selected,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// ServiceHealthPanel

/// `<section id="health">`: the database, Redis and the API, each up or down with its latency.
#[derive(Debug, Template)]
#[template(path = "partials/health.html")]
pub struct HealthPanel {
    pub services: Vec<HealthItem>,
    /// Set when the API did not answer: an alert saying so.
    pub unavailable: Option<String>,
    /// The API's version, when it answered.
    pub api_version: Option<String>,
}

/// One service in the health panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthItem {
    /// `database`, `redis` or `api`: the `data-service` attribute.
    pub key: &'static str,
    pub label: &'static str,
    /// `up` or `down`: the `data-status` attribute.
    pub status: &'static str,
    /// What the badge says: "Up", "Down", or "Unknown" when the API could not tell.
    pub state: &'static str,
    /// The colour: `up`, `down`, or `unknown` (grey) when the API could not tell.
    pub tone: &'static str,
    /// "0.4 ms", or "—" when there is no measurement.
    pub latency: String,
}

impl HealthPanel {
    /// The panel for the API's `/health` answer, or for its absence.
    pub fn from_result(result: &Result<HealthReport, ApiError>) -> Self {
        match result {
            Ok(report) => {
                let check = |key, label, check: &contract::Check| {
                    let up = check.status == CheckStatus::Up;
                    HealthItem {
                        key,
                        label,
                        status: if up { "up" } else { "down" },
                        state: if up { "Up" } else { "Down" },
                        tone: if up { "up" } else { "down" },
                        latency: check.latency_ms.map_or_else(|| "—".to_owned(), format_ms),
                    }
                };
                Self {
                    services: vec![
                        check("database", "PostgreSQL", &report.health.checks.database),
                        check("redis", "Redis", &report.health.checks.redis),
                        HealthItem {
                            key: "api",
                            label: "API",
                            status: "up",
                            state: "Up",
                            tone: "up",
                            latency: format_ms(report.latency.as_secs_f64() * 1000.0),
                        },
                    ],
                    unavailable: None,
                    api_version: Some(report.health.version.clone()),
                }
            }
            Err(err) => {
                // Without the API nobody can tell; the dependencies count as unreachable.
                let unknown = |key, label| HealthItem {
                    key,
                    label,
                    status: "down",
                    state: "Unknown",
                    tone: "unknown",
                    latency: "—".to_owned(),
                };
                Self {
                    services: vec![
                        unknown("database", "PostgreSQL"),
                        unknown("redis", "Redis"),
                        HealthItem {
                            key: "api",
                            label: "API",
                            status: "down",
                            state: "Down",
                            tone: "down",
                            latency: "—".to_owned(),
                        },
                    ],
                    unavailable: Some(format!("Service health is unavailable: {}", err.reason())),
                    api_version: None,
                }
            }
        }
    }
}

/// Milliseconds with one decimal below 10 ms, whole above.
fn format_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

// ---------------------------------------------------------------------------------------------
// StatsCards

/// `<section id="stats">`: total, success rate and one card per status.
#[derive(Debug, Template)]
#[template(path = "partials/stats.html")]
pub struct StatsCards {
    pub total: String,
    pub success_rate: String,
    pub by_status: Vec<StatusCount>,
    pub unavailable: Option<String>,
}

/// One status card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    /// The wire name: `data-stat` and the badge's colour.
    pub status: &'static str,
    pub label: &'static str,
    pub count: String,
}

impl StatsCards {
    /// The cards for the API's `/api/stats` answer; dashes when there is none.
    pub fn from_result(result: &Result<Stats, ApiError>) -> Self {
        match result {
            Ok(stats) => {
                let counts = &stats.by_status;
                let count = |status| match status {
                    DeploymentStatus::Pending => counts.pending,
                    DeploymentStatus::InProgress => counts.in_progress,
                    DeploymentStatus::Completed => counts.completed,
                    DeploymentStatus::Failed => counts.failed,
                    DeploymentStatus::RolledBack => counts.rolled_back,
                };
                Self {
                    total: stats.total.to_string(),
                    success_rate: stats
                        .success_rate
                        .map_or_else(|| "—".to_owned(), |rate| format!("{:.1}%", rate * 100.0)),
                    by_status: DeploymentStatus::ALL
                        .iter()
                        .map(|status| StatusCount {
                            status: status.as_str(),
                            label: status_label(*status),
                            count: count(*status).to_string(),
                        })
                        .collect(),
                    unavailable: None,
                }
            }
            Err(err) => Self {
                total: "—".to_owned(),
                success_rate: "—".to_owned(),
                by_status: DeploymentStatus::ALL
                    .iter()
                    .map(|status| StatusCount {
                        status: status.as_str(),
                        label: status_label(*status),
                        count: "—".to_owned(),
                    })
                    .collect(),
                unavailable: Some(format!("Statistics are unavailable: {}", err.reason())),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// DeploymentsList

/// `<section id="deployments">`: the filter form, one page of the table and the pagination.
#[derive(Debug, Template)]
#[template(path = "partials/deployments.html")]
pub struct DeploymentsList {
    pub services: Vec<Choice>,
    pub environments: Vec<Choice>,
    pub statuses: Vec<Choice>,
    pub rows: Vec<DeploymentRow>,
    /// "Showing 1–10 of 28 deployments", or why there is no number.
    pub total_text: String,
    /// Shown in the table when it has no rows.
    pub empty_text: String,
    pub page: u32,
    /// Number of pages, when known.
    pub pages: Option<i64>,
    pub prev_href: Option<String>,
    pub next_href: Option<String>,
    /// Whether a filter is set (offers a "Clear filters" link).
    pub filtered: bool,
    /// Filters that were ignored, and why.
    pub notices: Vec<String>,
    pub unavailable: Option<String>,
}

/// One row of the deployments table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRow {
    pub id: i64,
    pub href: String,
    pub service: String,
    pub environment: String,
    pub version: String,
    pub status: &'static str,
    pub status_label: &'static str,
    pub deployed_by: String,
    /// RFC 3339, for `<time datetime>`.
    pub started_iso: String,
    /// "2026-11-10 10:30 UTC".
    pub started_full: String,
    /// "3 days ago".
    pub started_relative: String,
    pub duration: String,
}

impl DeploymentRow {
    /// The row for `deployment`, with times relative to `now`.
    pub fn new(deployment: &Deployment, now: OffsetDateTime) -> Self {
        Self {
            id: deployment.id,
            href: format!("/deployments/{}", deployment.id),
            service: deployment.service.name.clone(),
            environment: deployment.environment.name.clone(),
            version: deployment.version.clone(),
            status: deployment.status.as_str(),
            status_label: status_label(deployment.status),
            deployed_by: deployment.deployed_by.clone(),
            started_iso: rfc3339(deployment.started_at),
            started_full: format_time(deployment.started_at),
            started_relative: relative(deployment.started_at, now),
            duration: duration_text(deployment),
        }
    }
}

/// Everything the deployments component is built from.
#[derive(Debug)]
pub struct DeploymentsInput<'a> {
    pub query: &'a DashboardQuery,
    pub page: &'a Result<DeploymentPage, ApiError>,
    pub services: &'a Result<Vec<Service>, ApiError>,
    pub environments: &'a Result<Vec<Environment>, ApiError>,
    pub now: OffsetDateTime,
}

impl DeploymentsList {
    /// The component for one page of the API's list (or its absence) under `query`.
    pub fn build(input: &DeploymentsInput<'_>) -> Self {
        let query = input.query;
        let services = named_choices(
            input.services.as_ref().ok().map(|list| {
                list.iter()
                    .map(|s| (s.id, s.name.as_str()))
                    .collect::<Vec<_>>()
            }),
            query.service.as_deref(),
        );
        let environments = named_choices(
            input.environments.as_ref().ok().map(|list| {
                list.iter()
                    .map(|e| (e.id, e.name.as_str()))
                    .collect::<Vec<_>>()
            }),
            query.environment.as_deref(),
        );
        let statuses = status_choices(query.status.map_or("", |s| s.as_str()));
        let notices = query.ignored.iter().map(ignored_notice).collect();
        let prev_href = (query.page > 1).then(|| query.href(query.page - 1));
        let base = Self {
            services,
            environments,
            statuses,
            rows: Vec::new(),
            total_text: "The number of deployments is unknown.".to_owned(),
            empty_text: "No deployments to show.".to_owned(),
            page: query.page,
            pages: None,
            prev_href,
            next_href: None,
            filtered: query.is_filtered(),
            notices,
            unavailable: None,
        };
        let page = match input.page {
            Ok(page) => page,
            Err(err) => {
                return Self {
                    unavailable: Some(format!("Deployments are unavailable: {}", err.reason())),
                    ..base
                };
            }
        };
        let rows: Vec<DeploymentRow> = page
            .deployments
            .iter()
            .map(|d| DeploymentRow::new(d, input.now))
            .collect();
        let shown_from = page.offset + 1;
        let shown_to = page.offset + rows.len() as i64;
        let noun = if page.total == 1 {
            "deployment"
        } else {
            "deployments"
        };
        let total_text = if rows.is_empty() {
            format!("{} {noun} in total", page.total)
        } else {
            format!("Showing {shown_from}–{shown_to} of {} {noun}", page.total)
        };
        let empty_text = if page.total == 0 && query.is_filtered() {
            "No deployment matches these filters."
        } else if page.total == 0 {
            "No deployments yet."
        } else {
            "This page is past the last deployment."
        };
        let next_href =
            (!rows.is_empty() && shown_to < page.total).then(|| query.href(query.page + 1));
        Self {
            rows,
            total_text,
            empty_text: empty_text.to_owned(),
            pages: Some(((page.total + PAGE_SIZE - 1) / PAGE_SIZE).max(1)),
            next_href,
            ..base
        }
    }
}

/// Options named by `name`, selected when `selected` is the name or the id. A selected value
/// missing from the list (the list is unavailable) is kept as an option of its own, so
/// submitting the form again does not lose it.
fn named_choices(items: Option<Vec<(i32, &str)>>, selected: Option<&str>) -> Vec<Choice> {
    let mut choices: Vec<Choice> = items
        .unwrap_or_default()
        .into_iter()
        .map(|(id, name)| Choice {
            value: name.to_owned(),
            label: name.to_owned(),
            selected: selected.is_some_and(|s| s == name || s == id.to_string()),
        })
        .collect();
    if let Some(selected) = selected
        && !choices.iter().any(|choice| choice.selected)
    {
        choices.push(Choice {
            value: selected.to_owned(),
            label: selected.to_owned(),
            selected: true,
        });
    }
    choices
}

fn ignored_notice(ignored: &Ignored) -> String {
    format!(
        "Ignored the {} filter “{}”: {}.",
        ignored.name, ignored.value, ignored.reason
    )
}

// ---------------------------------------------------------------------------------------------
// CacheIndicator

/// `<section id="cache">`: whether the API's cache served the deployments list, and a button
/// that clears it.
#[derive(Debug, Template)]
#[template(path = "partials/cache.html")]
pub struct CacheIndicator {
    /// `HIT`, `MISS`, `BYPASS` or `unknown`: the `data-cache` attribute.
    pub state: &'static str,
    /// The indicator's text.
    pub label: &'static str,
    /// One sentence on what the state means.
    pub explanation: &'static str,
    /// The dashboard query to come back to after clearing.
    pub return_query: String,
    pub unavailable: Option<String>,
}

impl CacheIndicator {
    /// The indicator for the deployments list's `X-Cache` (or for no answer at all).
    pub fn new(state: CacheState, return_query: String, failure: Option<&ApiError>) -> Self {
        let (label, explanation) = match state {
            CacheState::Hit => ("Cache hit", "The API answered from its Redis cache."),
            CacheState::Miss => (
                "Cache miss",
                "The API read PostgreSQL and stored the answer in Redis.",
            ),
            CacheState::Bypass => (
                "Cache bypassed",
                "Redis is unavailable; the API answered from PostgreSQL.",
            ),
            CacheState::Unknown => ("Unknown", "No answer from the API to tell."),
        };
        Self {
            state: state.as_str(),
            label,
            explanation,
            return_query,
            unavailable: failure
                .map(|err| format!("The cache state is unavailable: {}", err.reason())),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pages

/// `GET /`: the four components.
#[derive(Debug, Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    pub page: PageMeta,
    pub health: HealthPanel,
    pub stats: StatsCards,
    pub deployments: DeploymentsList,
    pub cache: CacheIndicator,
}

/// `GET /deployments/{id}`.
#[derive(Debug, Template)]
#[template(path = "deployment.html")]
pub struct DeploymentDetailPage {
    pub page: PageMeta,
    pub deployment: DeploymentDetail,
}

/// A deployment's fields for the detail page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentDetail {
    pub id: i64,
    pub row: DeploymentRow,
    /// Dashboard link filtered to this service.
    pub service_href: String,
    pub completed_full: String,
    pub completed_iso: Option<String>,
}

impl DeploymentDetail {
    /// The detail view of `deployment`, with times relative to `now`.
    pub fn new(deployment: &Deployment, now: OffsetDateTime) -> Self {
        let row = DeploymentRow::new(deployment, now);
        let query = DashboardQuery {
            service: Some(deployment.service.name.clone()),
            page: 1,
            ..DashboardQuery::default()
        };
        Self {
            id: deployment.id,
            service_href: query.href(1),
            completed_full: deployment
                .completed_at
                .map_or_else(|| "Not finished yet".to_owned(), format_time),
            completed_iso: deployment.completed_at.map(rfc3339),
            row,
        }
    }
}

/// `GET /deployments/new`, and the form re-rendered with its problems.
#[derive(Debug, Template)]
#[template(path = "new_deployment.html")]
pub struct NewDeploymentPage {
    pub page: PageMeta,
    pub services: Vec<Choice>,
    pub environments: Vec<Choice>,
    pub statuses: Vec<Choice>,
    pub version: String,
    pub deployed_by: String,
    pub errors: FieldErrors,
    /// The field that gets `autofocus`: the first with a problem.
    pub focus: Option<&'static str>,
    /// A problem with the whole form (the API refused it for a reason no field explains).
    pub form_error: Option<String>,
    /// Set when the API could not be reached: the lists (or the submission) are unavailable.
    pub unavailable: Option<String>,
}

impl NewDeploymentPage {
    /// The form with `form`'s values and `errors`, choices from the API's lists.
    pub fn new(
        form: &DeploymentForm,
        errors: FieldErrors,
        services: &Result<Vec<Service>, ApiError>,
        environments: &Result<Vec<Environment>, ApiError>,
    ) -> Self {
        let id_choices = |items: Vec<(i32, &str)>, selected: &str| -> Vec<Choice> {
            let selected = selected.trim();
            let mut choices: Vec<Choice> = items
                .into_iter()
                .map(|(id, name)| Choice {
                    value: id.to_string(),
                    label: name.to_owned(),
                    selected: id.to_string() == selected,
                })
                .collect();
            // Keep a chosen id the list cannot name (the list is unavailable).
            if let Ok(id) = selected.parse::<i32>()
                && !choices.iter().any(|choice| choice.selected)
            {
                choices.push(Choice {
                    value: id.to_string(),
                    label: format!("#{id}"),
                    selected: true,
                });
            }
            choices
        };
        let unavailable = match (services, environments) {
            (Err(err), _) | (_, Err(err)) => Some(format!(
                "The lists of services and environments are unavailable: {}",
                err.reason()
            )),
            _ => None,
        };
        Self {
            page: PageMeta::new("New deployment", "new"),
            services: id_choices(
                services
                    .as_ref()
                    .map(|l| l.iter().map(|s| (s.id, s.name.as_str())).collect())
                    .unwrap_or_default(),
                &form.service_id,
            ),
            environments: id_choices(
                environments
                    .as_ref()
                    .map(|l| l.iter().map(|e| (e.id, e.name.as_str())).collect())
                    .unwrap_or_default(),
                &form.environment_id,
            ),
            statuses: status_choices(form.status.trim()),
            version: form.version.clone(),
            deployed_by: form.deployed_by.clone(),
            focus: errors.first(),
            errors,
            form_error: None,
            unavailable,
        }
    }
}

/// A friendly error page: what happened and where to go next; never a technical detail.
#[derive(Debug, Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub page: PageMeta,
    pub status: u16,
    pub heading: String,
    pub message: String,
    /// Rendered as an `unavailable` alert (the API could not be reached).
    pub unavailable: bool,
}

// ---------------------------------------------------------------------------------------------
// Formatting

const DATE_TIME: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day] [hour]:[minute] UTC");

fn format_time(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(DATE_TIME)
        .unwrap_or_default()
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// "just now", "5 minutes ago", "3 hours ago", "2 days ago"; "in the future" for clock skew.
pub fn relative(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let seconds = (now - at).whole_seconds();
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit} ago")
        } else {
            format!("{n} {unit}s ago")
        }
    };
    match seconds {
        s if s < -60 => "in the future".to_owned(),
        s if s < 60 => "just now".to_owned(),
        s if s < 3_600 => plural(s / 60, "minute"),
        s if s < 86_400 => plural(s / 3_600, "hour"),
        s => plural(s / 86_400, "day"),
    }
}

/// How long a finished deployment took ("3m 41s"); "running" or "—" otherwise.
pub fn duration_text(deployment: &Deployment) -> String {
    match deployment.completed_at {
        Some(done) => {
            let seconds = (done - deployment.started_at).whole_seconds().max(0);
            format_duration(Duration::from_secs(seconds as u64))
        }
        None if deployment.status == DeploymentStatus::InProgress => "running".to_owned(),
        None => "—".to_owned(),
    }
}

fn format_duration(duration: Duration) -> String {
    let total = duration.as_secs();
    let (hours, minutes, seconds) = (total / 3_600, total / 60 % 60, total % 60);
    if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn durations_and_relative_times_read_naturally() {
        assert_eq!(format_duration(Duration::from_secs(221)), "3m 41s");
        assert_eq!(format_duration(Duration::from_secs(42)), "42s");
        assert_eq!(format_duration(Duration::from_secs(3_700)), "1h 1m");
        let now = datetime!(2026-11-20 12:00 UTC);
        assert_eq!(relative(now, now), "just now");
        assert_eq!(
            relative(datetime!(2026-11-20 11:59 UTC), now),
            "1 minute ago"
        );
        assert_eq!(
            relative(datetime!(2026-11-20 09:00 UTC), now),
            "3 hours ago"
        );
        assert_eq!(
            relative(datetime!(2026-11-10 12:00 UTC), now),
            "10 days ago"
        );
        assert_eq!(
            relative(datetime!(2026-11-21 12:00 UTC), now),
            "in the future"
        );
        assert_eq!(format_time(now), "2026-11-20 12:00 UTC");
        assert_eq!(format_ms(0.414), "0.4 ms");
        assert_eq!(format_ms(123.4), "123 ms");
    }

    #[test]
    fn a_selected_name_missing_from_the_list_is_kept() {
        let choices = named_choices(None, Some("api"));
        assert_eq!(choices.len(), 1);
        assert!(choices[0].selected);
        let choices = named_choices(Some(vec![(1, "frontend"), (2, "api")]), Some("2"));
        assert_eq!(
            choices
                .iter()
                .filter(|c| c.selected)
                .map(|c| &c.value)
                .collect::<Vec<_>>(),
            ["api"]
        );
    }
}
