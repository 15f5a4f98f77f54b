//! The dashboard's routes, one module per group, each exporting `router()`.

use axum::{
    Router,
    extract::{FromRequestParts, Path},
    http::{HeaderValue, header, request::Parts},
    response::{IntoResponse, Response},
    routing::get,
};

use crate::{
    app::AppState,
    assets::{ASSETS, IMMUTABLE},
    client::{ApiClient, REQUEST_ID},
    error::PageError,
};

pub mod cache;
pub mod dashboard;
pub mod deployments;
pub mod probes;

/// Every route, without middleware (see [`crate::app::router`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(dashboard::router())
        .merge(deployments::router())
        .merge(cache::router())
        .merge(probes::router())
        .route("/static/{file}", get(static_file))
}

/// The API client for this request: it forwards the request's id, so the API's log lines of a
/// page view carry the same id as the dashboard's.
#[derive(Debug)]
pub struct Api(pub ApiClient);

impl FromRequestParts<AppState> for Api {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let id = parts.headers.get(REQUEST_ID).cloned();
        Ok(Self(state.api.with_request_id(id)))
    }
}

/// `GET /static/{file}`: an asset by its hashed name; anything else is a 404 page.
async fn static_file(Path(file): Path<String>) -> Response {
    match ASSETS.named(&file) {
        Some(asset) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(asset.content_type),
                ),
                (header::CACHE_CONTROL, IMMUTABLE),
            ],
            asset.body,
        )
            .into_response(),
        None => PageError::NotFound.into_response(),
    }
}
