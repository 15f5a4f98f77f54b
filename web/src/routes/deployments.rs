//! `/deployments/...`: one deployment's page, and the form that records a new one.
//!
//! The form is validated here first with the contract's own rules, so most mistakes never reach
//! the API; what the API still refuses is mapped back onto the field it names. Success is a
//! 303 to the new deployment's page, so reloading it never posts twice.

use axum::{
    Router,
    body::Bytes,
    extract::{Path, rejection::BytesRejection},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use contract::{Environment, Service};
use time::OffsetDateTime;

use super::Api;
use crate::{
    app::AppState,
    client::{ApiClient, ApiError},
    error::{PageError, html},
    form::{DeploymentForm, FieldErrors},
    views::{DeploymentDetail, DeploymentDetailPage, NewDeploymentPage, PageMeta},
};

/// The detail page and the form; the form's `POST` depends on the CSRF layer that
/// [`crate::app::router`] adds.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/deployments", axum::routing::post(create))
        .route("/deployments/new", get(new_form))
        .route("/deployments/{id}", get(show))
}

async fn show(Api(api): Api, Path(raw_id): Path<String>) -> Result<Response, PageError> {
    let id = parse_id(&raw_id)?;
    let deployment = api.deployment(id).await.map_err(|err| {
        if err.status() == Some(StatusCode::NOT_FOUND) {
            PageError::DeploymentNotFound(id)
        } else {
            PageError::Api {
                what: "This deployment",
                source: err,
            }
        }
    })?;
    let page = DeploymentDetailPage {
        page: PageMeta::new(
            format!(
                "Deployment #{id} ({} {})",
                deployment.service.name, deployment.version
            ),
            "",
        ),
        deployment: DeploymentDetail::new(&deployment, OffsetDateTime::now_utc()),
    };
    Ok(html(StatusCode::OK, &page))
}

/// Deployment ids are positive integers; anything else is a malformed address.
fn parse_id(raw: &str) -> Result<i64, PageError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0 && raw.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            PageError::BadRequest(
                "Deployment addresses end with a positive number, like /deployments/12.".to_owned(),
            )
        })
}

async fn new_form(Api(api): Api) -> Response {
    let (services, environments) = lists(&api).await;
    let page = NewDeploymentPage::new(
        &DeploymentForm::default(),
        FieldErrors::default(),
        &services,
        &environments,
    );
    html(StatusCode::OK, &page)
}

async fn create(Api(api): Api, body: Result<Bytes, BytesRejection>) -> Response {
    let Ok(body) = body else {
        return PageError::PayloadTooLarge.into_response();
    };
    let form = DeploymentForm::parse(&String::from_utf8_lossy(&body));
    let new = match form.validate() {
        Ok(new) => new,
        Err(errors) => {
            let (services, environments) = lists(&api).await;
            let page = NewDeploymentPage::new(&form, errors, &services, &environments);
            return html(StatusCode::UNPROCESSABLE_ENTITY, &page);
        }
    };
    match api.create_deployment(&new).await {
        Ok(deployment) => {
            tracing::info!(id = deployment.id, "deployment created from the dashboard");
            Redirect::to(&format!("/deployments/{}", deployment.id)).into_response()
        }
        Err(err) if err.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
            let (services, environments) = lists(&api).await;
            let (errors, form_error) = match err.detail().and_then(FieldErrors::from_problem_detail)
            {
                Some(errors) => (errors, None),
                None => (
                    FieldErrors::default(),
                    Some(format!(
                        "The API did not accept this deployment: {}",
                        err.detail().unwrap_or("no reason given")
                    )),
                ),
            };
            let mut page = NewDeploymentPage::new(&form, errors, &services, &environments);
            page.form_error = form_error;
            html(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(err) => refused(&api, &form, &err).await,
    }
}

/// The form again, values kept, saying why the API could not record it.
async fn refused(api: &ApiClient, form: &DeploymentForm, err: &ApiError) -> Response {
    let mut page = if err.is_unreachable() {
        // Asking again for the lists would only wait for the same silence.
        NewDeploymentPage::new(
            form,
            FieldErrors::default(),
            &Err(ApiError::Timeout),
            &Err(ApiError::Timeout),
        )
    } else {
        let (services, environments) = lists(api).await;
        NewDeploymentPage::new(form, FieldErrors::default(), &services, &environments)
    };
    let status = if err.is_unreachable() || err.status() == Some(StatusCode::SERVICE_UNAVAILABLE) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::BAD_GATEWAY
    };
    let message = if err.status() == Some(StatusCode::UNAUTHORIZED) {
        "The API refused the dashboard's credentials: its API_TOKEN does not match the API's. \
         Your values are kept."
            .to_owned()
    } else {
        format!(
            "Deployments cannot be created right now: {}. Your values are kept; try again in a \
             moment.",
            err.reason()
        )
    };
    page.unavailable = Some(message);
    html(status, &page)
}

async fn lists(
    api: &ApiClient,
) -> (
    Result<Vec<Service>, ApiError>,
    Result<Vec<Environment>, ApiError>,
) {
    tokio::join!(api.services(), api.environments())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_numbers() {
        assert_eq!(parse_id("12").unwrap(), 12);
        for raw in [
            "0",
            "-1",
            "+1",
            "abc",
            "1e3",
            "",
            "99999999999999999999",
            " 1",
        ] {
            assert!(parse_id(raw).is_err(), "{raw}");
        }
    }
}
