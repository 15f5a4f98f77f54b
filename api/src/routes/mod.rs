//! The HTTP routes, one module per resource, each exporting `router()`.

use std::future::Future;

use axum::{
    Router,
    body::Bytes,
    http::{HeaderName, HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{
    app::AppState,
    cache::{CacheStatus, Lookup},
    error::ApiError,
};

pub mod cache;
pub mod catalog;
pub mod deployments;
pub mod health;
pub mod openapi;
pub mod stats;

/// The `X-Cache` response header: HIT, MISS or BYPASS.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// The `Cache-Status` response header (RFC 9211), which also tells which tier answered.
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Every route of the API, without middleware (see [`crate::app::router`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(catalog::router())
        .merge(deployments::router())
        .merge(stats::router())
        .merge(cache::router())
        .merge(openapi::router())
}

/// A JSON body that went through the cache, answered with its `X-Cache` status.
#[derive(Debug)]
pub struct CachedJson {
    body: Bytes,
    status: CacheStatus,
}

impl IntoResponse for CachedJson {
    fn into_response(self) -> Response {
        (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (X_CACHE, HeaderValue::from_static(self.status.x_cache())),
                (
                    CACHE_STATUS,
                    HeaderValue::from_static(self.status.cache_status()),
                ),
            ],
            self.body,
        )
            .into_response()
    }
}

/// Cache-aside: answers from the cache when it holds `resource`, else runs `load`, stores its
/// JSON and answers with it. Errors from `load` are never cached.
pub async fn cached<T, F>(state: &AppState, resource: &str, load: F) -> Result<CachedJson, ApiError>
where
    T: Serialize,
    F: Future<Output = Result<T, ApiError>>,
{
    let fill = match state.cache.lookup(resource).await {
        Lookup::Hit(body, status) => return Ok(CachedJson { body, status }),
        Lookup::Miss(fill) => Some(fill),
        Lookup::Bypass => None,
    };
    let body = Bytes::from(serde_json::to_vec(&load.await?).map_err(ApiError::internal)?);
    let status = match fill {
        Some(fill) => {
            state.cache.store(resource, fill, body.clone()).await;
            CacheStatus::Miss
        }
        None => CacheStatus::Bypass,
    };
    Ok(CachedJson { body, status })
}
