//! The one way the dashboard talks to the API: typed calls over plain HTTP with a short deadline.
//!
//! Every call returns the `contract` crate's wire types or an [`ApiError`] that says, in words a
//! page can show, what went wrong; the technical details (connection errors, bodies that do not
//! parse) are logged here, with the request id that is also forwarded to the API.

use std::{error::Error as _, sync::Arc, time::Duration};

use contract::{
    CacheCleared, Deployment, DeploymentPage, Environment, EnvironmentList, Health, ListParams,
    NewDeployment, Problem, Service, ServiceList, Stats,
};
use reqwest::{
    Method, RequestBuilder, Response, StatusCode,
    header::{self, HeaderName, HeaderValue},
};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::{
    config::{Config, Secret},
    memo::Memo,
};

/// The header carrying a request's id, shared with the API so one id follows a page view
/// through both services' logs.
pub use servicekit::http::REQUEST_ID;

const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// A client for the API; cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    /// `API_URL` without a trailing slash.
    base: String,
    token: Option<Secret>,
    /// The id of the page request this client works for, forwarded as `X-Request-Id`.
    request_id: Option<HeaderValue>,
    /// Recent answers shared by every request's copy of the client.
    memos: Arc<Memos>,
}

/// How long a health report is reused: the panel refreshes every 10 s anyway, and a page whose
/// other calls fail asks again at once (see [`ApiClient::forget_health`]).
const HEALTH_TTL: Duration = Duration::from_secs(1);
/// How long the service and environment lists are reused: the API has no way to change them.
const CATALOG_TTL: Duration = Duration::from_secs(30);

/// The answers worth remembering between page views.
#[derive(Debug)]
struct Memos {
    health: Memo<HealthReport>,
    services: Memo<Vec<Service>>,
    environments: Memo<Vec<Environment>>,
}

/// Why an API call gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Nothing came back within `API_TIMEOUT_MS`.
    #[error("the API did not answer in time")]
    Timeout,
    /// No connection (refused, reset, unknown host).
    #[error("the API did not answer")]
    Unreachable(#[source] reqwest::Error),
    /// The API answered with an error status, usually with a problem document.
    #[error("the API answered {status}")]
    Status {
        status: StatusCode,
        problem: Option<Problem>,
    },
    /// The API answered 2xx with a body that is not what the contract says.
    #[error("the API's answer could not be read")]
    Malformed(#[source] reqwest::Error),
}

impl ApiError {
    /// The HTTP status the API answered with, when it answered at all.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The problem document's `detail`, when the API sent one.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::Status {
                problem: Some(problem),
                ..
            } => Some(&problem.detail),
            _ => None,
        }
    }

    /// A short phrase for a page, completing "… is unavailable: ". Never technical.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Timeout => "the API did not answer in time",
            Self::Unreachable(_) => "the API did not answer",
            Self::Status { status, .. } if *status == StatusCode::SERVICE_UNAVAILABLE => {
                "the API is running but its database is unavailable"
            }
            Self::Status { status, .. } if status.is_server_error() => {
                "the API answered with an error"
            }
            Self::Status { .. } => "the API refused the request",
            Self::Malformed(_) => "the API's answer could not be read",
        }
    }

    /// Whether the API could not be reached at all (as opposed to answering with an error).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Timeout | Self::Unreachable(_))
    }
}

/// The `X-Cache` state of an API answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheState {
    Hit,
    Miss,
    Bypass,
    /// No answer, or no (or an unexpected) header.
    Unknown,
}

impl CacheState {
    fn from_header(value: Option<&HeaderValue>) -> Self {
        match value.and_then(|v| v.to_str().ok()) {
            Some(v) if v.eq_ignore_ascii_case("HIT") => Self::Hit,
            Some(v) if v.eq_ignore_ascii_case("MISS") => Self::Miss,
            Some(v) if v.eq_ignore_ascii_case("BYPASS") => Self::Bypass,
            _ => Self::Unknown,
        }
    }

    /// The value of the indicator's `data-cache` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Bypass => "BYPASS",
            Self::Unknown => "unknown",
        }
    }
}

/// An answer together with how the API's cache served it.
#[derive(Debug)]
pub struct Cached<T> {
    pub value: T,
    pub cache: CacheState,
}

/// `/health` as the dashboard sees it: the API's report plus how long the API took to answer.
#[derive(Debug, Clone)]
pub struct HealthReport {
    pub health: Health,
    pub latency: Duration,
}

impl ApiClient {
    /// Builds the client from the configuration; fails only if the HTTP stack cannot start.
    pub fn new(config: &Config) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.api_timeout)
            .connect_timeout(config.api_timeout)
            // The API is a neighbour inside the cluster: never route to it through a proxy
            // picked up from the environment.
            .no_proxy()
            .user_agent(concat!("wander-web/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base: config.api_url.clone(),
            token: config.api_token.clone(),
            request_id: None,
            memos: Arc::new(Memos {
                health: Memo::new(HEALTH_TTL),
                services: Memo::new(CATALOG_TTL),
                environments: Memo::new(CATALOG_TTL),
            }),
        })
    }

    /// A copy that forwards `request_id` to the API, so both logs show the same id.
    #[must_use]
    pub fn with_request_id(&self, request_id: Option<HeaderValue>) -> Self {
        Self {
            request_id,
            ..self.clone()
        }
    }

    /// `GET /health`. A 503 still carries the report (the database is down), so it counts as an
    /// answer; the latency is the whole round trip seen from here.
    pub async fn health(&self) -> Result<HealthReport, ApiError> {
        remembered(&self.memos.health, async {
            let started = Instant::now();
            let response = self.send(self.request(Method::GET, "/health")).await?;
            let latency = started.elapsed();
            let response = if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                response
            } else {
                self.check(response).await?
            };
            let health = self.decode(response, "/health").await?;
            Ok(HealthReport { health, latency })
        })
        .await
    }

    /// Makes the next [`health`](Self::health) ask the API: for a page whose other calls found
    /// the API gone, so its health panel cannot still say "up".
    pub fn forget_health(&self) {
        self.memos.health.forget();
    }

    /// `GET /api/stats`.
    pub async fn stats(&self) -> Result<Stats, ApiError> {
        self.get_json("/api/stats").await.map(|cached| cached.value)
    }

    /// `GET /api/services`, by name.
    pub async fn services(&self) -> Result<Vec<Service>, ApiError> {
        remembered(&self.memos.services, async {
            self.get_json::<ServiceList>("/api/services")
                .await
                .map(|cached| cached.value.services)
        })
        .await
    }

    /// `GET /api/environments`, in promotion order.
    pub async fn environments(&self) -> Result<Vec<Environment>, ApiError> {
        remembered(&self.memos.environments, async {
            self.get_json::<EnvironmentList>("/api/environments")
                .await
                .map(|cached| cached.value.environments)
        })
        .await
    }

    /// `GET /api/deployments` with filters and paging; the answer's `X-Cache` comes along for
    /// the dashboard's cache indicator.
    pub async fn deployments(
        &self,
        params: &ListParams,
    ) -> Result<Cached<DeploymentPage>, ApiError> {
        // Serialising a flat struct of strings and numbers cannot fail; an empty query is
        // harmless if it ever did.
        let query = serde_urlencoded::to_string(params).unwrap_or_default();
        let path = if query.is_empty() {
            "/api/deployments".to_owned()
        } else {
            format!("/api/deployments?{query}")
        };
        self.get_json(&path).await
    }

    /// `GET /api/deployments/{id}`; a missing one is [`ApiError::Status`] with 404.
    pub async fn deployment(&self, id: i64) -> Result<Deployment, ApiError> {
        self.get_json(&format!("/api/deployments/{id}"))
            .await
            .map(|cached| cached.value)
    }

    /// `POST /api/deployments`, with the token.
    pub async fn create_deployment(&self, new: &NewDeployment) -> Result<Deployment, ApiError> {
        let path = "/api/deployments";
        let request = self.authorised(self.request(Method::POST, path)).json(new);
        let response = self.check(self.send(request).await?).await?;
        self.decode(response, path).await
    }

    /// `DELETE /api/cache`, with the token.
    pub async fn clear_cache(&self) -> Result<CacheCleared, ApiError> {
        let path = "/api/cache";
        let request = self.authorised(self.request(Method::DELETE, path));
        let response = self.check(self.send(request).await?).await?;
        self.decode(response, path).await
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<Cached<T>, ApiError> {
        let response = self
            .check(self.send(self.request(Method::GET, path)).await?)
            .await?;
        let cache = CacheState::from_header(response.headers().get(X_CACHE));
        let value = self.decode(response, path).await?;
        Ok(Cached { value, cache })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(header::ACCEPT, "application/json");
        if let Some(id) = &self.request_id {
            request = request.header(REQUEST_ID, id.clone());
        }
        request
    }

    fn authorised(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token.expose()),
            None => request,
        }
    }

    async fn send(&self, request: RequestBuilder) -> Result<Response, ApiError> {
        request.send().await.map_err(|err| {
            let url = err
                .url()
                .map(|url| url.path().to_owned())
                .unwrap_or_default();
            tracing::warn!(path = %url, error = %chain(&err), "the API did not answer");
            if err.is_timeout() {
                ApiError::Timeout
            } else {
                ApiError::Unreachable(err)
            }
        })
    }

    /// Turns an error status into [`ApiError::Status`], keeping the problem document.
    async fn check(&self, response: Response) -> Result<Response, ApiError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let path = response.url().path().to_owned();
        let problem = response.json::<Problem>().await.ok();
        let detail = problem.as_ref().map_or("", |p| p.detail.as_str());
        if status.is_server_error() {
            tracing::warn!(%path, %status, detail, "the API answered with an error");
        } else {
            tracing::info!(%path, %status, detail, "the API refused a request");
        }
        Err(ApiError::Status { status, problem })
    }

    async fn decode<T: DeserializeOwned>(
        &self,
        response: Response,
        path: &str,
    ) -> Result<T, ApiError> {
        response.json().await.map_err(|err| {
            tracing::warn!(path, error = %chain(&err), "the API's answer could not be read");
            if err.is_timeout() {
                ApiError::Timeout
            } else {
                ApiError::Malformed(err)
            }
        })
    }
}

/// An error with its causes, for the log: reqwest's own message rarely says what failed.
fn chain(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The remembered answer while it is fresh, else `fetch`'s, remembered when it succeeds.
async fn remembered<T: Clone>(
    memo: &Memo<T>,
    fetch: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    if let Some(value) = memo.fresh() {
        return Ok(value);
    }
    let result = fetch.await;
    match &result {
        Ok(value) => memo.remember(value),
        Err(_) => memo.forget(),
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_states_come_from_the_header() {
        let state =
            |raw: &'static str| CacheState::from_header(Some(&HeaderValue::from_static(raw)));
        assert_eq!(state("HIT"), CacheState::Hit);
        assert_eq!(state("miss"), CacheState::Miss);
        assert_eq!(state("BYPASS"), CacheState::Bypass);
        assert_eq!(state("STALE"), CacheState::Unknown);
        assert_eq!(CacheState::from_header(None).as_str(), "unknown");
    }

    #[test]
    fn reasons_never_show_technical_details() {
        let unavailable = ApiError::Status {
            status: StatusCode::SERVICE_UNAVAILABLE,
            problem: None,
        };
        assert_eq!(
            unavailable.reason(),
            "the API is running but its database is unavailable"
        );
        assert_eq!(ApiError::Timeout.reason(), "the API did not answer in time");
        assert!(ApiError::Timeout.is_unreachable());
        assert_eq!(unavailable.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    }
}
