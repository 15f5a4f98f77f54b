//! `POST /cache/clear`: the cache indicator's button. Asks the API to empty its cache, then sends
//! the browser back to the dashboard it came from (303), filters kept.

use axum::{
    Router,
    body::Bytes,
    extract::rejection::BytesRejection,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::post,
};

use super::Api;
use crate::{
    app::AppState,
    error::PageError,
    query::{DashboardQuery, form_pairs},
};

/// `POST /cache/clear`; it changes the API's state, so it depends on the CSRF layer that
/// [`crate::app::router`] adds.
pub fn router() -> Router<AppState> {
    Router::new().route("/cache/clear", post(clear))
}

async fn clear(Api(api): Api, body: Result<Bytes, BytesRejection>) -> Response {
    let Ok(body) = body else {
        return PageError::PayloadTooLarge.into_response();
    };
    // The dashboard's query travels in a hidden field; re-reading it keeps only valid filters,
    // so the redirect can only ever point at the dashboard itself.
    let back = form_pairs(&String::from_utf8_lossy(&body))
        .into_iter()
        .find(|(name, _)| name == "return")
        .map_or_else(
            || DashboardQuery::parse(""),
            |(_, value)| DashboardQuery::parse(&value),
        );
    match api.clear_cache().await {
        Ok(cleared) => {
            tracing::info!(
                deleted = cleared.deleted,
                "cache cleared from the dashboard"
            );
            Redirect::to(&back.href(back.page)).into_response()
        }
        Err(err) if err.status() == Some(StatusCode::SERVICE_UNAVAILABLE) => {
            PageError::CacheDown.into_response()
        }
        Err(source) => PageError::Api {
            what: "The cache",
            source,
        }
        .into_response(),
    }
}
