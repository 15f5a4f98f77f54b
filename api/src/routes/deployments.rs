//! `/api/deployments`: the list with filters and paging, one deployment, and recording a new one.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

use super::{CachedJson, cached};
use crate::{
    app::AppState,
    auth::Authorized,
    error::{ApiError, Problem},
    extract::{JsonBody, QueryParams},
    model::{
        Deployment, DeploymentPage, ListFilter, ListParams, NewDeployment, parse_deployment_id,
    },
    store,
};

/// The list and one deployment (open to all, cached), and recording one (token required; it
/// invalidates the cache).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/deployments", get(list).post(create))
        .route("/api/deployments/{id}", get(show))
}

/// Deployments, newest first, optionally filtered.
#[utoipa::path(
    get, path = "/api/deployments", tag = "deployments",
    params(ListParams),
    responses(
        (status = 200, description = "One page of deployments", body = DeploymentPage,
         headers(
             ("x-cache" = String, description = "HIT, MISS or BYPASS"),
             ("cache-status" = String, description = "RFC 9211: which tier answered; `api; hit` is this process's near cache, `redis; hit` is Redis"),
         )),
        (status = 400, description = "Undecodable query string (unknown or repeated parameter, not a number)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Out-of-range limit or offset, unknown status, service or environment", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<CachedJson, ApiError> {
    let filter = ListFilter::from_params(&params)?;
    let resource = format!("deployments?{}", filter.cache_key());
    cached(&state, &resource, async {
        let (deployments, total) = store::list_deployments(&state.pool, &filter).await?;
        Ok(DeploymentPage {
            deployments,
            total,
            limit: filter.limit,
            offset: filter.offset,
        })
    })
    .await
}

/// One deployment.
#[utoipa::path(
    get, path = "/api/deployments/{id}", tag = "deployments",
    params(("id" = i64, Path, description = "Deployment id, a positive integer", minimum = 1)),
    responses(
        (status = 200, description = "The deployment", body = Deployment,
         headers(
             ("x-cache" = String, description = "HIT, MISS or BYPASS"),
             ("cache-status" = String, description = "RFC 9211: which tier answered; `api; hit` is this process's near cache, `redis; hit` is Redis"),
         )),
        (status = 400, description = "The id is not a positive integer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No deployment with this id", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<CachedJson, ApiError> {
    let id = parse_deployment_id(&raw_id)?;
    cached(&state, &format!("deployment/{id}"), async {
        store::get_deployment(&state.pool, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("deployment {id} does not exist")))
    })
    .await
}

/// Records a deployment and invalidates the cached lists.
#[utoipa::path(
    post, path = "/api/deployments", tag = "deployments",
    request_body(content = NewDeployment, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Deployment,
         headers(("location" = String, description = "URL of the new deployment"))),
        (status = 400, description = "The body is not valid JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid values: unknown fields, wrong types, unknown service or environment, empty or overlong strings", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    _: Authorized,
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewDeployment>,
) -> Result<Response, ApiError> {
    new.validate()?;
    let deployment = store::create_deployment(&state.pool, &new).await?;
    // The row is committed: a cache that cannot be told only means BYPASS until it can.
    let _ = state.cache.invalidate().await;
    tracing::info!(id = deployment.id, service = %deployment.service.name, "deployment recorded");
    let location = HeaderValue::from_str(&format!("/api/deployments/{}", deployment.id))
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(deployment),
    )
        .into_response())
}
