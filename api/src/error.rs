//! The one error type of the API and its single mapping to HTTP problem documents (RFC 9457).
//!
//! Handlers return `Result<_, ApiError>`; this module alone decides status codes and wording.
//! Internal details (driver messages, SQL) are logged with the request's span and never sent.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
pub use contract::Problem;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: unparsable JSON, query string or path.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed input whose values break the contract (unknown ids, empty strings, ranges).
    #[error("{0}")]
    Invalid(String),
    /// The body is not JSON.
    #[error("expected a body with Content-Type: application/json")]
    UnsupportedMediaType,
    /// The body exceeds the configured limit.
    #[error("the request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    /// Missing or wrong bearer token on a mutation.
    #[error("this request needs `Authorization: Bearer <token>`; `cargo xtask token` prints it")]
    Unauthorized,
    /// The addressed resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// PostgreSQL cannot be reached or is too slow; the API recovers by itself when it returns.
    #[error("the database is unavailable; retry shortly")]
    DatabaseUnavailable(#[source] sqlx::Error),
    /// Redis cannot be reached, for the one request that needs it (clearing the cache).
    #[error("the cache (Redis) is unavailable; reads keep working from the database")]
    CacheUnavailable(#[source] crate::cache::CacheError),
    /// A bug or an unexpected database answer; the details go to the log only.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// The status code, problem type slug and title of this error.
    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            Self::Invalid(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-input",
                "Invalid input",
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Self::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::DatabaseUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "database-unavailable",
                "Database unavailable",
            ),
            Self::CacheUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "cache-unavailable",
                "Cache unavailable",
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }

    /// Wraps any unexpected error.
    pub fn internal(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(err.into())
    }
}

/// Builds the problem response for a status and detail; also used for errors raised by
/// middleware (timeouts, unknown routes) so every error body has the same shape.
pub(crate) fn problem_response(
    status: StatusCode,
    slug: &str,
    title: &str,
    detail: String,
) -> Response {
    let problem = Problem {
        kind: format!("https://wander.dev/problems/{slug}"),
        title: title.to_owned(),
        status: status.as_u16(),
        detail,
    };
    let mut response = (status, Json(problem)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.classify();
        match &self {
            Self::Internal(source) => tracing::error!(error = %source, "request failed"),
            Self::DatabaseUnavailable(source) => {
                tracing::warn!(error = %source, "database unavailable");
            }
            Self::CacheUnavailable(source) => tracing::warn!(error = %source, "cache unavailable"),
            _ => tracing::debug!(error = %self, "request rejected"),
        }
        let mut response = problem_response(status, slug, title, self.to_string());
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<contract::FieldError> for ApiError {
    fn from(err: contract::FieldError) -> Self {
        Self::Invalid(err.to_string())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &err {
            E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::Protocol(_) => {
                Self::DatabaseUnavailable(err)
            }
            E::Database(db) => match db.code().as_deref() {
                // Connection exceptions, shutdown in progress, cannot connect now, statement timeout.
                Some(code)
                    if code.starts_with("08") || matches!(code, "57P01" | "57P03" | "57014") =>
                {
                    Self::DatabaseUnavailable(err)
                }
                _ => Self::internal(err),
            },
            _ => Self::internal(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn render(err: ApiError) -> (StatusCode, String, serde_json::Value) {
        let response = err.into_response();
        let status = response.status();
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, content_type, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let (status, content_type, body) = render(ApiError::internal(
            "relation \"secret_table\" does not exist",
        ))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(content_type, "application/problem+json");
        assert!(!body.to_string().contains("secret_table"), "{body}");
        assert_eq!(body["status"], 500);
    }

    #[tokio::test]
    async fn pool_timeouts_are_service_unavailable() {
        let (status, _, body) = render(sqlx::Error::PoolTimedOut.into()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body["type"],
            "https://wander.dev/problems/database-unavailable"
        );
    }
}
