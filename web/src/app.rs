//! The application: shared state, the router with its middleware stack (request ids, logs,
//! security headers, CSRF protection), and the server that binds and serves until told to stop.

use std::{future::Future, io, net::SocketAddr, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, StatusCode, header},
    middleware,
    response::{IntoResponse, Response},
};
use tokio::net::TcpListener;
use tower_http::{
    csrf::{CsrfLayer, ProtectionError},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
};

use crate::{
    client::{ApiClient, REQUEST_ID},
    config::Config,
    error::PageError,
    routes,
};

/// Largest form body accepted: a deployment's fields fit many times over.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// Deadline of a whole page: a few API calls in sequence, each bounded by `API_TIMEOUT_MS`.
const PAGE_DEADLINE_CALLS: u32 = 4;

/// The `Content-Security-Policy` of every response: only this origin's scripts, styles and
/// images, no inline code of either kind, no framing, forms posted only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The API client; handlers get a per-request copy through [`routes::Api`].
    pub api: ApiClient,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot build the HTTP client for the API: {0}")]
    Client(#[source] reqwest::Error),
    #[error("WEB_ORIGIN cannot be used: {0}")]
    Origin(String),
    #[error("cannot listen on {addr}: {source}; is another process using it?")]
    Bind { addr: SocketAddr, source: io::Error },
}

/// A bound server, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    router: Router,
}

impl Server {
    /// Binds the listener and builds the router. Nothing is asked of the API: the dashboard
    /// starts (and answers its probe) whether the API is up or not.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let api = ApiClient::new(&config).map_err(StartError::Client)?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.addr,
                source,
            })?;
        let bound = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.addr,
            source,
        })?;
        let origins = config.origins_for(bound);
        let deadline = config.api_timeout * PAGE_DEADLINE_CALLS + Duration::from_secs(1);
        let router = router(AppState { api }, &origins, deadline)?;
        tracing::info!(api = %config.api_url, origins = ?origins, "dashboard configured");
        Ok(Self { listener, router })
    }

    /// The bound address (the real port when configured with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests
    /// finish.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        let addr = self.local_addr()?;
        tracing::info!(%addr, "listening");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await?;
        tracing::info!("in-flight requests drained; stopped");
        Ok(())
    }
}

/// The routes with the middleware stack. From the outside in: a request id, the request log,
/// the id echoed on the response, compression for the browsers that ask, security headers on
/// every response (rejections included), CSRF protection for forms, friendly pages for bare errors, a page deadline, the body limit.
pub fn router(
    state: AppState,
    origins: &[String],
    deadline: Duration,
) -> Result<Router, StartError> {
    let mut csrf = CsrfLayer::new();
    for origin in origins {
        csrf = csrf
            .add_trusted_origin(origin)
            .map_err(|err| StartError::Origin(err.to_string()))?;
    }
    let csrf = csrf.with_rejection_response(|err: ProtectionError| -> Response<Body> {
        tracing::warn!(reason = %err, "cross-site form submission refused");
        PageError::CrossSite.into_response()
    });
    Ok(routes::router()
        .fallback(|| async { PageError::NotFound })
        .method_not_allowed_fallback(|| async { PageError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            deadline,
        ))
        .layer(middleware::map_response(page_for_bare_errors))
        .layer(csrf)
        .layer(middleware::map_response(security_headers))
        .layer(servicekit::http::compression())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(servicekit::access_log::AccessLogLayer)
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state))
}

/// Gives errors produced outside the handlers (the deadline, extractor rejections) the same
/// friendly page as handler errors.
async fn page_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let page = match status {
        StatusCode::NOT_FOUND => PageError::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => PageError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => PageError::PayloadTooLarge,
        StatusCode::SERVICE_UNAVAILABLE => PageError::Timeout,
        _ => PageError::Internal(format!("bare {status} response")),
    };
    let mut friendly = page.into_response();
    *friendly.status_mut() = status;
    for (name, value) in response.headers() {
        if name != header::CONTENT_LENGTH {
            friendly.headers_mut().insert(name.clone(), value.clone());
        }
    }
    friendly
}

/// Adds the security headers to every response, and `Cache-Control: no-cache` to any that does
/// not say otherwise (pages must be revalidated; hashed assets set their own).
async fn security_headers(mut response: Response) -> Response {
    const HEADERS: [(HeaderName, &str); 6] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // Not `no-referrer`: under it browsers send `Origin: null` with same-origin form posts,
        // leaving the CSRF check to `Sec-Fetch-Site` alone (absent in older browsers).
        (header::REFERRER_POLICY, "strict-origin-when-cross-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=()",
        ),
    ];
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache"));
    response
}
