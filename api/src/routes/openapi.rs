//! `GET /openapi.json`: the OpenAPI document, generated from the handlers' annotations so it
//! cannot drift from the code.

use axum::{Json, Router, routing::get};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{app::AppState, error::Problem, model};

use super::{cache, catalog, deployments, health, stats};

/// The API's OpenAPI description.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Wander API",
        description = "Deployments, services and environments of the Wander local stack. Errors are RFC 9457 problem documents.",
    ),
    paths(
        health::health, health::livez,
        catalog::list_services, catalog::list_environments,
        deployments::list, deployments::show, deployments::create,
        stats::stats, cache::clear, openapi,
    ),
    components(schemas(
        Problem, model::Deployment, model::NewDeployment, model::DeploymentPage,
        model::DeploymentStatus, model::NamedRef, model::Service, model::ServiceList,
        model::Environment, model::EnvironmentList, model::Stats, model::StatusCounts,
        model::CacheCleared, model::Health, model::Liveness,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Probes"),
        (name = "catalog", description = "Services and environments"),
        (name = "deployments", description = "Deployment history"),
        (name = "cache", description = "The Redis response cache"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer scheme that mutations reference.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Required when the API runs with API_TOKEN; `cargo xtask token` prints it",
                    ))
                    .build(),
            ),
        );
    }
}

/// `GET /openapi.json`, built from the handlers' annotations on every request and never cached.
pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi))
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json"))
)]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
