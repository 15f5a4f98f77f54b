//! The HTTP conventions both services share: the request-id header, and one span and one log
//! line per request carrying it, so a page view can be followed through `web` into `api`; and
//! compressed responses for the clients that ask for them.

use http::{HeaderName, Request};
use tower_http::{
    CompressionLevel, LatencyUnit,
    classify::{ServerErrorsAsFailures, SharedClassifier},
    compression::CompressionLayer,
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

/// Brotli's and gzip's level for responses made on the fly: brotli's own default (11) is meant
/// for files compressed once and costs far more CPU than it saves on a page; at 4 both are
/// quick, and brotli still beats gzip's default size.
const COMPRESSION_LEVEL: i32 = 4;

/// Compresses a response's body with brotli or gzip when the request's `Accept-Encoding` allows
/// it (brotli preferred at equal weight), adding `Vary: Accept-Encoding`; a client that does
/// not ask gets the body as it is. Tiny bodies, images and event streams are left alone.
pub fn compression() -> CompressionLayer {
    CompressionLayer::new().quality(CompressionLevel::Precise(COMPRESSION_LEVEL))
}
