//! `GET /api/services` and `GET /api/environments`: the reference data deployments point at.

use axum::{Router, extract::State, routing::get};

use super::{CachedJson, cached};
use crate::{
    app::AppState,
    error::{ApiError, Problem},
    model::{EnvironmentList, ServiceList},
    store,
};

/// The two reference lists: open to all, and served from the cache until a write invalidates it.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/services", get(list_services))
        .route("/api/environments", get(list_environments))
}

/// Every service.
#[utoipa::path(
    get, path = "/api/services", tag = "catalog",
    responses(
        (status = 200, description = "All services, by name", body = ServiceList,
         headers(
             ("x-cache" = String, description = "HIT, MISS or BYPASS"),
             ("cache-status" = String, description = "RFC 9211: which tier answered; `api; hit` is this process's near cache, `redis; hit` is Redis"),
         )),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_services(State(state): State<AppState>) -> Result<CachedJson, ApiError> {
    cached(&state, "services", async {
        Ok(ServiceList {
            services: store::list_services(&state.pool).await?,
        })
    })
    .await
}

/// Every environment.
#[utoipa::path(
    get, path = "/api/environments", tag = "catalog",
    responses(
        (status = 200, description = "All environments, in promotion order", body = EnvironmentList,
         headers(
             ("x-cache" = String, description = "HIT, MISS or BYPASS"),
             ("cache-status" = String, description = "RFC 9211: which tier answered; `api; hit` is this process's near cache, `redis; hit` is Redis"),
         )),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_environments(State(state): State<AppState>) -> Result<CachedJson, ApiError> {
    cached(&state, "environments", async {
        Ok(EnvironmentList {
            environments: store::list_environments(&state.pool).await?,
        })
    })
    .await
}
