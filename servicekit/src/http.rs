//! The HTTP conventions both services share: the request-id header, and one span and one log
//! line per request carrying it, so a page view can be followed through `web` into `api`.

use http::{HeaderName, Request};
use tower_http::{
    LatencyUnit,
    classify::{ServerErrorsAsFailures, SharedClassifier},
    trace::{DefaultOnResponse, MakeSpan, TraceLayer},
};
use tracing::{Level, Span};

/// The header that carries a request's id (generated when the client sent none).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Opens the `request` span: method, path and request id, on every log line of the request.
#[derive(Debug, Clone, Copy)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let request_id = request
            .headers()
            .get(&REQUEST_ID)
            .and_then(|id| id.to_str().ok())
            .unwrap_or("-");
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
            request_id,
        )
    }
}

/// The request-logging layer of both services.
pub type RequestTrace = TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RequestSpan>;

/// Logs each response at INFO (status and latency) inside its request span; server errors are
/// logged as failures.
pub fn request_trace() -> RequestTrace {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_response(
            DefaultOnResponse::new()
                .level(Level::INFO)
                .latency_unit(LatencyUnit::Micros),
        )
}
