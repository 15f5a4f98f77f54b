//! `GET /healthz`: the dashboard's own liveness and readiness probe. It never calls the API, so a
//! down API cannot get the dashboard restarted (the dashboard shows that state instead).

use axum::{Json, Router, routing::get};
use serde::Serialize;

use crate::app::AppState;

/// `GET /healthz`, which calls nothing, so it answers while the API is down.
pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

/// The probe's answer.
#[derive(Debug, Serialize)]
pub struct Probe {
    pub status: &'static str,
}

async fn healthz() -> Json<Probe> {
    Json(Probe { status: "ok" })
}
