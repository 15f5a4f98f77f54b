//! `GET /health` (readiness: are PostgreSQL and Redis reachable?) and `GET /livez` (liveness:
//! is this process serving?, without touching any dependency).

use std::time::{Duration, Instant};

use crate::{
    app::AppState,
    model::{Check, CheckStatus, Checks, Health, Liveness, OverallStatus},
    store,
};
use axum::{Json, Router, extract::State, http::StatusCode, routing::get};

/// The probes the manifests point Kubernetes at: open to all and never cached, so they always
/// report the present state.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/livez", get(livez))
}

/// How long a health probe may take before its dependency counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Checks PostgreSQL and Redis concurrently.
#[utoipa::path(
    get, path = "/health", tag = "health",
    responses(
        (status = 200, description = "The database is up (Redis down is `degraded`)", body = Health),
        (status = 503, description = "The database is down", body = Health),
    )
)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let database = async {
        let started = Instant::now();
        match tokio::time::timeout(PROBE_TIMEOUT, store::ping(&state.pool)).await {
            Ok(Ok(())) => up(started.elapsed()),
            Ok(Err(err)) => down("database", &err),
            Err(_) => down("database", &"timed out"),
        }
    };
    let redis = async {
        match tokio::time::timeout(PROBE_TIMEOUT, state.cache.ping()).await {
            Ok(Ok(latency)) => up(latency),
            Ok(Err(err)) => down("redis", &err),
            Err(_) => down("redis", &"timed out"),
        }
    };
    let (database, redis) = tokio::join!(database, redis);
    let status = match (database.status, redis.status) {
        (CheckStatus::Down, _) => OverallStatus::Down,
        (CheckStatus::Up, CheckStatus::Down) => OverallStatus::Degraded,
        (CheckStatus::Up, CheckStatus::Up) => OverallStatus::Ok,
    };
    let code = if status == OverallStatus::Down {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let health = Health {
        status,
        checks: Checks { database, redis },
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    (code, Json(health))
}

fn up(latency: Duration) -> Check {
    Check {
        status: CheckStatus::Up,
        latency_ms: Some((latency.as_secs_f64() * 1e6).round() / 1e3),
    }
}

fn down(what: &str, err: &dyn std::fmt::Display) -> Check {
    tracing::warn!(error = %err, "{what} health check failed");
    Check {
        status: CheckStatus::Down,
        latency_ms: None,
    }
}

/// Answers while the process serves; the liveness probe.
#[utoipa::path(
    get, path = "/livez", tag = "health",
    responses((status = 200, description = "The process is serving", body = Liveness))
)]
pub async fn livez() -> Json<Liveness> {
    Json(Liveness {
        status: "ok".to_owned(),
    })
}
