//! `GET /`: the dashboard, its four components fetched from the API concurrently; and
//! `/partials/health`, `/partials/stats`: single components, for the optional refresh script.
//!
//! A component whose data is missing renders with an alert saying so; the page itself always
//! answers 200.

use axum::{Router, extract::RawQuery, http::StatusCode, response::Response, routing::get};
use contract::{Environment, Service};
use time::OffsetDateTime;

use super::Api;
use crate::{
    app::AppState,
    client::{ApiClient, ApiError, CacheState},
    error::html,
    query::{DashboardQuery, Ignored},
    views::{
        CacheIndicator, DashboardPage, DeploymentsInput, DeploymentsList, HealthPanel, PageMeta,
        StatsCards,
    },
};

/// `/` and its two partials: reads only, each answering 200 even when the API does not.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard))
        .route("/partials/health", get(health_partial))
        .route("/partials/stats", get(stats_partial))
}

async fn dashboard(Api(api): Api, RawQuery(raw): RawQuery) -> Response {
    let query = DashboardQuery::parse(raw.as_deref().unwrap_or(""));
    html(StatusCode::OK, &load(&api, query).await)
}

/// Fetches everything the dashboard shows at once and builds the page.
pub async fn load(api: &ApiClient, mut query: DashboardQuery) -> DashboardPage {
    let params = query.list_params();
    let (mut health, stats, services, environments, mut list) = tokio::join!(
        api.health(),
        api.stats(),
        api.services(),
        api.environments(),
        api.deployments(&params),
    );
    // A remembered health report must not say "up" next to parts that found the API gone.
    let api_gone = |result: Result<(), &ApiError>| result.is_err_and(ApiError::is_unreachable);
    if health.is_ok() && (api_gone(list.as_ref().map(drop)) || api_gone(stats.as_ref().map(drop))) {
        api.forget_health();
        health = api.health().await;
    }
    // A well-formed name that names nothing: drop it with a notice and ask again.
    if list
        .as_ref()
        .is_err_and(|err| err.status() == Some(StatusCode::UNPROCESSABLE_ENTITY))
        && drop_unknown(&mut query, &services, &environments)
    {
        list = api.deployments(&query.list_params()).await;
    }
    let cache = match &list {
        Ok(cached) => cached.cache,
        Err(_) => CacheState::Unknown,
    };
    let cache_failure = list.as_ref().err();
    let cache = CacheIndicator::new(cache, query.query_string(query.page), cache_failure);
    let page = list.map(|cached| cached.value);
    let deployments = DeploymentsList::build(&DeploymentsInput {
        query: &query,
        page: &page,
        services: &services,
        environments: &environments,
        now: OffsetDateTime::now_utc(),
    });
    DashboardPage {
        page: PageMeta::new("Dashboard", "dashboard"),
        health: HealthPanel::from_result(&health),
        stats: StatsCards::from_result(&stats),
        deployments,
        cache,
    }
}

/// Removes a service or environment filter that is not in the API's lists; `true` if one was.
fn drop_unknown(
    query: &mut DashboardQuery,
    services: &Result<Vec<Service>, ApiError>,
    environments: &Result<Vec<Environment>, ApiError>,
) -> bool {
    let mut dropped = false;
    let known = |value: &str, items: &[(i32, &str)]| {
        items
            .iter()
            .any(|(id, name)| *name == value || id.to_string() == value)
    };
    if let (Some(value), Ok(list)) = (&query.service, services) {
        let items: Vec<_> = list.iter().map(|s| (s.id, s.name.as_str())).collect();
        if !known(value, &items) {
            query.ignored.push(Ignored {
                name: "service",
                value: value.clone(),
                reason: "no such service",
            });
            query.service = None;
            dropped = true;
        }
    }
    if let (Some(value), Ok(list)) = (&query.environment, environments) {
        let items: Vec<_> = list.iter().map(|e| (e.id, e.name.as_str())).collect();
        if !known(value, &items) {
            query.ignored.push(Ignored {
                name: "environment",
                value: value.clone(),
                reason: "no such environment",
            });
            query.environment = None;
            dropped = true;
        }
    }
    if dropped {
        query.page = 1;
    }
    dropped
}

async fn health_partial(Api(api): Api) -> Response {
    html(
        StatusCode::OK,
        &HealthPanel::from_result(&api.health().await),
    )
}

async fn stats_partial(Api(api): Api) -> Response {
    html(StatusCode::OK, &StatsCards::from_result(&api.stats().await))
}
