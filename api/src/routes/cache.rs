//! `DELETE /api/cache`: empties this API's Redis cache (the dashboard's "clear cache" button).

use axum::{Json, Router, extract::State, routing::delete};

use crate::{
    app::AppState,
    auth::Authorized,
    error::{ApiError, Problem},
    model::CacheCleared,
};

/// `DELETE /api/cache`, which needs the token like every mutation.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/cache", delete(clear))
}

/// Deletes every cached response.
#[utoipa::path(
    delete, path = "/api/cache", tag = "cache",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Entries deleted", body = CacheCleared),
        (status = 401, description = "Missing or wrong token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn clear(
    _: Authorized,
    State(state): State<AppState>,
) -> Result<Json<CacheCleared>, ApiError> {
    let deleted = state
        .cache
        .clear()
        .await
        .map_err(ApiError::CacheUnavailable)?;
    tracing::info!(deleted, "cache cleared");
    Ok(Json(CacheCleared { deleted }))
}
