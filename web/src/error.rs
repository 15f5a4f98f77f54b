//! The one error type of the dashboard's pages and its single mapping to friendly HTML pages.
//!
//! A page says what happened and where to go next; the technical cause (a connection error, a
//! template bug) is logged with the request's span and never shown.

use askama::Template;
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{
    client::ApiError,
    views::{ErrorPage, PageMeta},
};

/// Everything a page request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No such page (unknown route or asset).
    #[error("page not found")]
    NotFound,
    /// The API has no deployment with this id.
    #[error("deployment {0} does not exist")]
    DeploymentNotFound(i64),
    /// The URL itself is malformed (a deployment id that is not a positive number).
    #[error("{0}")]
    BadRequest(String),
    /// The route exists, not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A form was posted from another site (CSRF protection).
    #[error("cross-site form submission refused")]
    CrossSite,
    /// A form body larger than the server accepts.
    #[error("the form is too large")]
    PayloadTooLarge,
    /// Clearing the cache failed because the API's Redis is down.
    #[error("the cache cannot be cleared while Redis is down")]
    CacheDown,
    /// The page took longer than the server's deadline.
    #[error("the page took too long")]
    Timeout,
    /// The API did not give what the page needs; `what` completes "… is unavailable".
    #[error("{what} is unavailable: {}", source.reason())]
    Api {
        what: &'static str,
        #[source]
        source: ApiError,
    },
    /// A bug; details go to the log only.
    #[error("internal error")]
    Internal(String),
}

impl PageError {
    /// The status, heading and message of the error page, and whether it is an "unavailable"
    /// alert.
    fn describe(&self) -> (StatusCode, &'static str, String, bool) {
        match self {
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is nothing at this address. The dashboard lists every deployment."
                    .to_owned(),
                false,
            ),
            Self::DeploymentNotFound(id) => (
                StatusCode::NOT_FOUND,
                "Deployment not found",
                format!("There is no deployment #{id}. It may never have existed."),
                false,
            ),
            Self::BadRequest(message) => (
                StatusCode::BAD_REQUEST,
                "This address is not valid",
                message.clone(),
                false,
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "Not possible here",
                "This address does not accept that kind of request.".to_owned(),
                false,
            ),
            Self::CrossSite => (
                StatusCode::FORBIDDEN,
                "Form refused",
                "This form was sent from another site, so it was refused. Use the dashboard's own \
                 forms instead."
                    .to_owned(),
                false,
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Form too large",
                "The form sent more data than a deployment can hold. Shorten the values and try \
                 again."
                    .to_owned(),
                false,
            ),
            Self::CacheDown => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The cache cannot be cleared",
                "The cache cannot be cleared right now: the API's Redis is unavailable. The API \
                 keeps answering from PostgreSQL meanwhile."
                    .to_owned(),
                true,
            ),
            Self::Timeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                "This took too long",
                "The page could not be prepared in time. Try again in a moment.".to_owned(),
                true,
            ),
            Self::Api { what, source } => {
                let status = if source.status() == Some(StatusCode::UNAUTHORIZED) {
                    StatusCode::BAD_GATEWAY
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                let mut message = format!("{what} is unavailable: {}.", source.reason());
                if source.status() == Some(StatusCode::UNAUTHORIZED) {
                    message.push_str(" The dashboard's API_TOKEN does not match the API's.");
                } else {
                    message.push_str(" Try again in a moment.");
                }
                (status, "Something is unavailable", message, true)
            }
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The page could not be shown. Try again; if it keeps happening, the dashboard's \
                 log says why."
                    .to_owned(),
                false,
            ),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(detail) => tracing::error!(error = %detail, "page failed"),
            Self::Api { source, .. } => tracing::info!(error = %source, "page needs the API"),
            _ => tracing::debug!(error = %self, "page refused"),
        }
        let (status, heading, message, unavailable) = self.describe();
        let page = ErrorPage {
            page: PageMeta::new(heading, ""),
            status: status.as_u16(),
            heading: heading.to_owned(),
            message,
            unavailable,
        };
        html(status, &page)
    }
}

/// Renders a template as an HTML response. A template that fails to render is a bug: logged,
/// and answered with a plain page that cannot fail.
pub fn html(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                )],
                FALLBACK_PAGE,
            )
                .into_response()
        }
    }
}

/// The page of last resort: no template, no data.
const FALLBACK_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Something went wrong · Wander</title></head><body><main id=\"main\"><h1>Something went \
wrong</h1><p>The page could not be shown. <a href=\"/\">Go to the dashboard</a></p></main>\
</body></html>";
