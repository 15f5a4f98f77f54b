//! The application: shared state, the router with its middleware stack, and the server that binds,
//! migrates and serves until told to stop.

use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use std::convert::Infallible;

use axum::{
    ServiceExt as _,
    body::Body,
    extract::DefaultBodyLimit,
    http::{HeaderValue, Method, Request, StatusCode, header},
    middleware,
    response::Response,
};
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
};

use crate::{
    cache::Cache,
    config::Config,
    error::problem_response,
    routes::{self, CACHE_STATUS, X_CACHE},
};

/// Migrations embedded at compile time from `db/migrations`; applied at start under sqlx's
/// advisory lock, so several replicas starting together apply them once.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../db/migrations");

use servicekit::http::REQUEST_ID;

/// What every handler can reach, behind one `Arc`: axum clones the state for every request, and
/// one reference count is cheaper to move than three.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// The contents of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    pub pool: PgPool,
    pub cache: Arc<Cache>,
    pub config: Arc<Config>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    DatabaseUrl(#[source] sqlx::Error),
    #[error("REDIS_URL is not a valid Redis URL: {0}")]
    RedisUrl(#[source] crate::cache::CacheError),
    #[error("applying the database migrations failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("cannot listen on {addr}: {source}; is another process using it?")]
    Bind { addr: SocketAddr, source: io::Error },
}

/// A bound, migrated server, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
}

impl Server {
    /// Connects, applies migrations (waiting for PostgreSQL if it is still starting) and binds.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let pool = connect_pool(&config)?;
        migrate(&pool).await?;
        let cache = Cache::connect(&config).map_err(StartError::RedisUrl)?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.addr,
                source,
            })?;
        Ok(Self {
            listener,
            state: AppState(Arc::new(Shared {
                pool,
                cache: Arc::new(cache),
                config: Arc::new(config),
            })),
        })
    }

    /// The bound address (the real port when configured with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The response cache, shared with the handlers.
    pub fn cache(&self) -> Arc<Cache> {
        Arc::clone(&self.state.cache)
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish
    /// and closes the pools.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        let addr = self.local_addr()?;
        tracing::info!(%addr, "listening");
        let app = service(self.state.clone());
        axum::serve(self.listener, app.into_make_service())
            .with_graceful_shutdown(shutdown)
            .await?;
        tracing::info!("in-flight requests drained; closing connections");
        self.state.cache.close().await;
        self.state.pool.close().await;
        Ok(())
    }
}

fn connect_pool(config: &Config) -> Result<PgPool, StartError> {
    let options: PgConnectOptions = config
        .database_url
        .expose()
        .parse()
        .map_err(StartError::DatabaseUrl)?;
    let options = options.application_name("wander-api").options([
        (
            "statement_timeout",
            config.db_statement_timeout.as_millis().to_string(),
        ),
        // The list query's optional filters need per-execution plans to use their indexes.
        ("plan_cache_mode", "force_custom_plan".to_owned()),
    ]);
    Ok(PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(config.db_acquire_timeout)
        .connect_lazy_with(options))
}

/// Applies pending migrations, retrying while PostgreSQL is unreachable (it may still be starting
/// next to us); a migration that fails on a reachable database is fatal.
async fn migrate(pool: &PgPool) -> Result<(), StartError> {
    let mut delay = Duration::from_millis(200);
    loop {
        match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(sqlx::migrate::MigrateError::Execute(err)) if is_unreachable(&err) => {
                tracing::warn!(error = %err, retry_in = ?delay, "waiting for PostgreSQL");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(err) => return Err(StartError::Migrate(err)),
        }
    }
}

/// Errors that mean "PostgreSQL is not there yet", as opposed to a broken migration.
fn is_unreachable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        // 57P03: the database system is starting up.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| code == "57P03"),
        _ => false,
    }
}

/// The routes inside the middleware stack: request ids, request logging, compression for the
/// clients that ask, CORS, the problem document for bare errors, a deadline and the body limit.
///
/// The stack wraps the router from outside rather than through `Router::layer`, which would put
/// it around every route: axum clones a route's service for each request, and the stack would be
/// cloned with it (the CORS origin list, the trace and compression settings). Outside, it is
/// cloned once per connection.
pub fn service(
    state: AppState,
) -> impl Service<Request<Body>, Response = Response, Error = Infallible, Future = impl Send + 'static>
+ Clone
+ Send
+ Sync
+ 'static {
    let config = Arc::clone(&state.config);
    let router = routes::router()
        .fallback(|| async { StatusCode::NOT_FOUND })
        .method_not_allowed_fallback(|| async { StatusCode::METHOD_NOT_ALLOWED })
        .with_state(state);
    ServiceBuilder::new()
        // axum serves responses with its own body type.
        .map_response(|response: Response<_>| response.map(Body::new))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(servicekit::access_log::AccessLogLayer)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(servicekit::http::compression())
        .layer(cors(&config))
        .layer(middleware::map_response(problem_for_bare_errors))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config.request_timeout,
        ))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .service(router)
}

fn cors(config: &Config) -> CorsLayer {
    let origins: Vec<HeaderValue> = config
        .cors_origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .expose_headers([X_CACHE, CACHE_STATUS, header::LOCATION, REQUEST_ID])
        .max_age(Duration::from_secs(600))
}

/// Gives errors produced outside the handlers (unknown route, wrong method, deadline) the same
/// problem-document body as handler errors.
async fn problem_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let (slug, detail) = match status {
        StatusCode::NOT_FOUND => (
            "not-found",
            "no such endpoint; GET /openapi.json lists them",
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            "this endpoint does not support this method; see the Allow header",
        ),
        StatusCode::SERVICE_UNAVAILABLE => ("timeout", "the request took too long; retry shortly"),
        _ => ("http-error", "the request could not be handled"),
    };
    let title = status.canonical_reason().unwrap_or("Error");
    let mut problem = problem_response(status, slug, title, detail.to_owned());
    for (name, value) in response.headers() {
        if name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}
