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

/// The `X-Cache` response header.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

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
                (X_CACHE, HeaderValue::from_static(self.status.as_str())),
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
    let key = match state.cache.lookup(resource).await {
        Lookup::Hit(body) => {
            return Ok(CachedJson {
                body,
                status: CacheStatus::Hit,
            });
        }
        Lookup::Miss(key) => Some(key),
        Lookup::Bypass => None,
    };
    let body = Bytes::from(serde_json::to_vec(&load.await?).map_err(ApiError::internal)?);
    let status = match key {
        Some(key) => {
            state.cache.store(key, body.clone()).await;
            CacheStatus::Miss
        }
        None => CacheStatus::Bypass,
    };
    Ok(CachedJson { body, status })
}
