//! The HTTP conventions both services share: the request-id header, which the
//! [access log](crate::access_log) puts on every line of a request, so a page view can be
//! followed through `web` into `api`; and compressed responses for the clients that ask for them.

use http::HeaderName;
use tower_http::{CompressionLevel, compression::CompressionLayer};

/// The header that carries a request's id (generated when the client sent none).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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
