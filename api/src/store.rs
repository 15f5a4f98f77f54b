//! All SQL of the API, checked against the schema at compile time (`query!` with the committed
//! `.sqlx/` data), one section per table.
//!
//! Functions return domain types from [`crate::model`]; database errors become [`ApiError`] here
//! so handlers stay free of driver details.

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::{
    error::ApiError,
    model::{
        Deployment, DeploymentStatus, Environment, ListFilter, NamedRef, NewDeployment, Selector,
        Service, StatusCounts,
    },
};

// ---------------------------------------------------------------------------------------------
// services

/// Every service, by name.
pub async fn list_services(pool: &PgPool) -> Result<Vec<Service>, ApiError> {
    Ok(sqlx::query_as!(
        Service,
        "SELECT id, name, description FROM services ORDER BY name"
    )
    .fetch_all(pool)
    .await?)
}

/// The id of the service a filter names, if it exists.
async fn find_service(pool: &PgPool, selector: &Selector) -> Result<Option<i32>, ApiError> {
    let (id, name) = split(selector);
    Ok(sqlx::query_scalar!(
        "SELECT id FROM services WHERE id = $1 OR name = $2",
        id,
        name
    )
    .fetch_optional(pool)
    .await?)
}

// ---------------------------------------------------------------------------------------------
// environments

/// Every environment, in promotion order (dev, staging, production) as seeded.
pub async fn list_environments(pool: &PgPool) -> Result<Vec<Environment>, ApiError> {
    Ok(
        sqlx::query_as!(Environment, "SELECT id, name FROM environments ORDER BY id")
            .fetch_all(pool)
            .await?,
    )
}

/// The id of the environment a filter names, if it exists.
async fn find_environment(pool: &PgPool, selector: &Selector) -> Result<Option<i32>, ApiError> {
    let (id, name) = split(selector);
    Ok(sqlx::query_scalar!(
        "SELECT id FROM environments WHERE id = $1 OR name = $2",
        id,
        name
    )
    .fetch_optional(pool)
    .await?)
}

fn split(selector: &Selector) -> (Option<i32>, Option<&str>) {
    match selector {
        Selector::Id(id) => (Some(*id), None),
        Selector::Name(name) => (None, Some(name.as_str())),
    }
}

// ---------------------------------------------------------------------------------------------
// deployments

/// A deployment row joined with its service's and environment's names.
struct DeploymentRow {
    id: i64,
    service_id: i32,
    service_name: String,
    environment_id: i32,
    environment_name: String,
    version: String,
    status: String,
    deployed_by: String,
    started_at: OffsetDateTime,
    completed_at: Option<OffsetDateTime>,
}

impl TryFrom<DeploymentRow> for Deployment {
    type Error = ApiError;

    fn try_from(row: DeploymentRow) -> Result<Self, ApiError> {
        let status = DeploymentStatus::parse(&row.status).ok_or_else(|| {
            ApiError::internal(format!(
                "deployment {} has unknown status {:?}",
                row.id, row.status
            ))
        })?;
        Ok(Self {
            id: row.id,
            service: NamedRef {
                id: row.service_id,
                name: row.service_name,
            },
            environment: NamedRef {
                id: row.environment_id,
                name: row.environment_name,
            },
            version: row.version,
            status,
            deployed_by: row.deployed_by,
            started_at: row.started_at,
            completed_at: row.completed_at,
        })
    }
}

/// One page of deployments, newest first, and the number matching the filters.
pub async fn list_deployments(
    pool: &PgPool,
    filter: &ListFilter,
) -> Result<(Vec<Deployment>, i64), ApiError> {
    let service_id = match &filter.service {
        Some(selector) => Some(find_service(pool, selector).await?.ok_or_else(|| {
            ApiError::Invalid(format!("service {} does not exist", describe(selector)))
        })?),
        None => None,
    };
    let environment_id = match &filter.environment {
        Some(selector) => Some(find_environment(pool, selector).await?.ok_or_else(|| {
            ApiError::Invalid(format!("environment {} does not exist", describe(selector)))
        })?),
        None => None,
    };
    let status = filter.status.map(DeploymentStatus::as_str);

    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "total!" FROM deployments
           WHERE ($1::int IS NULL OR service_id = $1)
             AND ($2::int IS NULL OR environment_id = $2)
             AND ($3::text IS NULL OR status = $3)"#,
        service_id,
        environment_id,
        status,
    )
    .fetch_one(pool)
    .await?;

    let rows = sqlx::query_as!(
        DeploymentRow,
        r#"SELECT d.id, d.service_id, s.name AS service_name, d.environment_id,
                  e.name AS environment_name, d.version, d.status, d.deployed_by,
                  d.started_at, d.completed_at
           FROM deployments d
           JOIN services s ON s.id = d.service_id
           JOIN environments e ON e.id = d.environment_id
           WHERE ($1::int IS NULL OR d.service_id = $1)
             AND ($2::int IS NULL OR d.environment_id = $2)
             AND ($3::text IS NULL OR d.status = $3)
           ORDER BY d.started_at DESC, d.id DESC
           LIMIT $4 OFFSET $5"#,
        service_id,
        environment_id,
        status,
        filter.limit,
        filter.offset,
    )
    .fetch_all(pool)
    .await?;

    let deployments = rows
        .into_iter()
        .map(Deployment::try_from)
        .collect::<Result<_, _>>()?;
    Ok((deployments, total))
}

fn describe(selector: &Selector) -> String {
    match selector {
        Selector::Id(id) => id.to_string(),
        Selector::Name(name) => format!("`{name}`"),
    }
}

/// One deployment by id.
pub async fn get_deployment(pool: &PgPool, id: i64) -> Result<Option<Deployment>, ApiError> {
    sqlx::query_as!(
        DeploymentRow,
        r#"SELECT d.id, d.service_id, s.name AS service_name, d.environment_id,
                  e.name AS environment_name, d.version, d.status, d.deployed_by,
                  d.started_at, d.completed_at
           FROM deployments d
           JOIN services s ON s.id = d.service_id
           JOIN environments e ON e.id = d.environment_id
           WHERE d.id = $1"#,
        id
    )
    .fetch_optional(pool)
    .await?
    .map(Deployment::try_from)
    .transpose()
}

/// Records a deployment; unknown service or environment ids are the client's error.
pub async fn create_deployment(pool: &PgPool, new: &NewDeployment) -> Result<Deployment, ApiError> {
    let status = new.status.unwrap_or(DeploymentStatus::Pending);
    let row = sqlx::query_as!(
        DeploymentRow,
        r#"WITH d AS (
               INSERT INTO deployments (service_id, environment_id, version, deployed_by, status, completed_at)
               VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN now() END)
               RETURNING *
           )
           SELECT d.id, d.service_id, s.name AS service_name, d.environment_id,
                  e.name AS environment_name, d.version, d.status, d.deployed_by,
                  d.started_at, d.completed_at
           FROM d
           JOIN services s ON s.id = d.service_id
           JOIN environments e ON e.id = d.environment_id"#,
        new.service_id,
        new.environment_id,
        new.version,
        new.deployed_by,
        status.as_str(),
        status.is_finished(),
    )
    .fetch_one(pool)
    .await
    .map_err(|err| match foreign_key(&err) {
        Some("deployments_service_id_fkey") => {
            ApiError::Invalid(format!("service_id {} does not exist", new.service_id))
        }
        Some("deployments_environment_id_fkey") => ApiError::Invalid(format!(
            "environment_id {} does not exist",
            new.environment_id
        )),
        _ => ApiError::from(err),
    })?;
    Deployment::try_from(row)
}

/// The violated foreign key's constraint name, when that is what `err` is.
fn foreign_key(err: &sqlx::Error) -> Option<&str> {
    match err {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => db.constraint(),
        _ => None,
    }
}

/// Deployments counted by status.
pub async fn count_by_status(pool: &PgPool) -> Result<StatusCounts, ApiError> {
    let rows =
        sqlx::query!(r#"SELECT status, count(*) AS "count!" FROM deployments GROUP BY status"#)
            .fetch_all(pool)
            .await?;
    let mut counts = StatusCounts::default();
    for row in rows {
        let status = DeploymentStatus::parse(&row.status)
            .ok_or_else(|| ApiError::internal(format!("unknown status {:?}", row.status)))?;
        counts.add(status, row.count);
    }
    Ok(counts)
}

/// Round-trips to PostgreSQL, for the health check.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT 1 AS "one!""#)
        .fetch_one(pool)
        .await
        .map(drop)
}
