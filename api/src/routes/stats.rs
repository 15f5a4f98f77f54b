//! `GET /api/stats`: the numbers behind the dashboard's cards.

use axum::{Router, extract::State, routing::get};

use super::{CachedJson, cached};
use crate::{
    app::AppState,
    error::{ApiError, Problem},
    model::Stats,
    store,
};

/// `GET /api/stats`: open to all, and served from the cache until a write invalidates it.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/stats", get(stats))
}

/// Totals, success rate and counts by status.
#[utoipa::path(
    get, path = "/api/stats", tag = "deployments",
    responses(
        (status = 200, description = "Deployment statistics", body = Stats,
         headers(
             ("x-cache" = String, description = "HIT, MISS or BYPASS"),
             ("cache-status" = String, description = "RFC 9211: which tier answered; `api; hit` is this process's near cache, `redis; hit` is Redis"),
         )),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn stats(State(state): State<AppState>) -> Result<CachedJson, ApiError> {
    cached(&state, "stats", async {
        Ok(Stats::from_counts(
            store::count_by_status(&state.pool).await?,
        ))
    })
    .await
}
