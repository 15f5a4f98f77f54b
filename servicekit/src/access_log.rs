//! The access log: one `request` span around each request (method, path and request id, so
//! every line logged while handling it carries them), and one line when its response is ready,
//! with status and latency.
//!
//! Made for this one job instead of tower-http's general `TraceLayer`, which it replaced with the
//! same lines: that layer wraps every response body to watch for its end and failures, formats
//! the span's fields through `Display`, and runs a classifier on every response. Here the span's
//! fields are recorded as plain strings, the response passes through untouched, and a server
//! error is recognised by its status alone (the only failure these services report).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::Span;

use crate::http::REQUEST_ID;

/// Adds the access log to a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLogLayer;

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog { inner }
    }
}

/// A service whose requests are logged; see the module documentation.
#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for AccessLog<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: fmt::Display,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Logged<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Logged<S::Future> {
        let request_id = request
            .headers()
            .get(&REQUEST_ID)
            .and_then(|id| id.to_str().ok())
            .unwrap_or("-");
        let span = tracing::info_span!(
            "request",
            method = request.method().as_str(),
            path = request.uri().path(),
            request_id,
        );
        let started = Instant::now();
        let inner = span.in_scope(|| {
            tracing::debug!("started processing request");
            self.inner.call(request)
        });
        Logged {
            inner,
            span,
            started,
        }
    }
}

pin_project! {
    /// The response future of [`AccessLog`]: polls the inner one inside the request span and
    /// logs the response when it is ready.
    pub struct Logged<F> {
        #[pin]
        inner: F,
        span: Span,
        started: Instant,
    }
}

impl<F, R, E> Future for Logged<F>
where
    F: Future<Output = Result<Response<R>, E>>,
    E: fmt::Display,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let result = std::task::ready!(this.inner.poll(cx));
        let latency = Micros(this.started.elapsed());
        match &result {
            Ok(response) => {
                let status = response.status();
                tracing::info!(%latency, status = status.as_u16(), "finished processing request");
                if status.is_server_error() {
                    tracing::error!(
                        classification = %format_args!("Status code: {status}"),
                        %latency,
                        "response failed"
                    );
                }
            }
            Err(error) => {
                tracing::error!(classification = %error, %latency, "response failed");
            }
        }
        Poll::Ready(result)
    }
}

/// A latency as the access log writes it: whole microseconds, `42 μs`.
#[derive(Debug, Clone, Copy)]
struct Micros(Duration);

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} μs", self.0.as_micros())
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::{HeaderValue, StatusCode};
    use serde_json::Value;
    use tower::{ServiceExt as _, service_fn};
    use tracing_subscriber::{filter::Targets, prelude::*};

    use super::*;
    use crate::json_log::{JsonLayer, tests::Buffer};

    /// Sends `request` through the access log around a handler that logs a line of its own and
    /// answers the status its path names (`/status/503`); returns the lines written.
    async fn log_of(request: Request<()>) -> Vec<Value> {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry()
            .with(Targets::new().with_default(tracing::Level::INFO))
            .with(JsonLayer::new(buffer.clone()));
        let _default = tracing::subscriber::set_default(subscriber);
        let handler = service_fn(|request: Request<()>| async move {
            tracing::info!("inside the handler");
            let status = request
                .uri()
                .path()
                .rsplit('/')
                .next()
                .and_then(|code| code.parse().ok())
                .unwrap_or(200);
            Ok::<_, Infallible>(
                Response::builder()
                    .status(StatusCode::from_u16(status).unwrap())
                    .body(())
                    .unwrap(),
            )
        });
        AccessLogLayer
            .layer(handler)
            .oneshot(request)
            .await
            .unwrap();
        buffer
            .lines()
            .iter()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn request(path: &str, id: Option<&str>) -> Request<()> {
        let mut request = Request::builder().method("POST").uri(path);
        if let Some(id) = id {
            request = request.header(&REQUEST_ID, HeaderValue::from_str(id).unwrap());
        }
        request.body(()).unwrap()
    }

    #[tokio::test]
    async fn one_line_per_request_with_its_span_on_every_line() {
        let lines = log_of(request("/status/201?secret=no", Some("abc-123"))).await;
        assert_eq!(lines.len(), 2, "{lines:?}");
        let span = serde_json::json!({
            "method": "POST", "path": "/status/201", "request_id": "abc-123", "name": "request"
        });
        assert_eq!(lines[0]["message"], "inside the handler");
        assert_eq!(
            lines[0]["span"], span,
            "the handler's line carries the request"
        );
        let access = &lines[1];
        assert_eq!(access["message"], "finished processing request");
        assert_eq!(access["level"], "INFO");
        assert_eq!(access["status"], 201);
        assert_eq!(access["span"], span);
        let latency = access["latency"].as_str().unwrap();
        let micros = latency.strip_suffix(" μs").expect(latency);
        assert!(micros.parse::<u64>().is_ok(), "{latency}");
    }

    #[tokio::test]
    async fn a_request_without_an_id_is_logged_with_a_dash() {
        let lines = log_of(request("/status/200", None)).await;
        assert_eq!(lines[1]["span"]["request_id"], "-");
    }

    #[tokio::test]
    async fn a_server_error_adds_a_failure_line() {
        let lines = log_of(request("/status/503", Some("x"))).await;
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[1]["status"], 503);
        assert_eq!(lines[2]["level"], "ERROR");
        assert_eq!(lines[2]["message"], "response failed");
        assert_eq!(
            lines[2]["classification"],
            "Status code: 503 Service Unavailable"
        );
        let client_error = log_of(request("/status/404", Some("x"))).await;
        assert_eq!(
            client_error.len(),
            2,
            "a 4xx is the client's failure, not ours"
        );
    }
}
