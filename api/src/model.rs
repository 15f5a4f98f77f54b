//! The API's resources as they appear on the wire, and the validation of what clients send.
//!
//! The database enforces the same rules with CHECK constraints; validating here first lets the
//! client hear exactly which field is wrong instead of a generic constraint error.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// Longest accepted `version`, in characters (the column's CHECK says the same).
pub const MAX_VERSION_CHARS: usize = 64;
/// Longest accepted `deployed_by`, in characters (an e-mail address fits).
pub const MAX_DEPLOYED_BY_CHARS: usize = 254;
/// Largest page of deployments one request may ask for.
pub const MAX_LIMIT: i64 = 200;
/// Page size when the client does not ask for one.
pub const DEFAULT_LIMIT: i64 = 20;
/// Deepest offset accepted; deeper paging is a sign of a broken client, not a real need.
pub const MAX_OFFSET: i64 = 1_000_000;

/// Where a deployment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    Pending,
    InProgress,
    Completed,
    Failed,
    RolledBack,
}

impl DeploymentStatus {
    /// Every status, in the order of a deployment's life.
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::InProgress,
        Self::Completed,
        Self::Failed,
        Self::RolledBack,
    ];

    /// The name used in JSON, query strings and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
        }
    }

    /// Parses the wire name; `None` for anything else.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == raw)
    }

    /// Whether the deployment has ended (and so has a `completed_at`).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::RolledBack)
    }
}

/// A reference to a service or environment inside a deployment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NamedRef {
    pub id: i32,
    #[schema(example = "api")]
    pub name: String,
}

/// One rollout of one version of a service to one environment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Deployment {
    #[schema(example = 1)]
    pub id: i64,
    pub service: NamedRef,
    pub environment: NamedRef,
    #[schema(example = "v2.1.0")]
    pub version: String,
    pub status: DeploymentStatus,
    #[schema(example = "alice@wander.dev")]
    pub deployed_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
}

/// A deployable service.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Service {
    pub id: i32,
    #[schema(example = "frontend")]
    pub name: String,
    #[schema(example = "Customer-facing web application")]
    pub description: String,
}

/// A target environment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Environment {
    pub id: i32,
    #[schema(example = "production")]
    pub name: String,
}

/// `GET /api/services`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServiceList {
    pub services: Vec<Service>,
}

/// `GET /api/environments`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentList {
    pub environments: Vec<Environment>,
}

/// One page of `GET /api/deployments`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeploymentPage {
    pub deployments: Vec<Deployment>,
    /// Deployments matching the filters, over all pages.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// Counts by status, for the dashboard's cards.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct StatusCounts {
    pub pending: i64,
    pub in_progress: i64,
    pub completed: i64,
    pub failed: i64,
    pub rolled_back: i64,
}

impl StatusCounts {
    /// Adds `count` deployments of `status`.
    pub fn add(&mut self, status: DeploymentStatus, count: i64) {
        let slot = match status {
            DeploymentStatus::Pending => &mut self.pending,
            DeploymentStatus::InProgress => &mut self.in_progress,
            DeploymentStatus::Completed => &mut self.completed,
            DeploymentStatus::Failed => &mut self.failed,
            DeploymentStatus::RolledBack => &mut self.rolled_back,
        };
        *slot += count;
    }
}

/// `GET /api/stats`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    /// All deployments.
    pub total: i64,
    /// Completed deployments as a share of finished ones (completed, failed, rolled back), from
    /// 0 to 1; `null` while none has finished.
    #[schema(example = 0.82)]
    pub success_rate: Option<f64>,
    pub by_status: StatusCounts,
}

impl Stats {
    /// Derives the totals and the success rate from the counts.
    pub fn from_counts(by_status: StatusCounts) -> Self {
        let finished = by_status.completed + by_status.failed + by_status.rolled_back;
        let total = finished + by_status.pending + by_status.in_progress;
        let success_rate = (finished > 0).then(|| by_status.completed as f64 / finished as f64);
        Self {
            total,
            success_rate,
            by_status,
        }
    }
}

/// `DELETE /api/cache`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CacheCleared {
    /// Cache entries removed.
    pub deleted: u64,
}

/// The body of `POST /api/deployments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeployment {
    #[schema(example = 2)]
    pub service_id: i32,
    #[schema(example = 1)]
    pub environment_id: i32,
    #[schema(example = "v2.2.0", min_length = 1, max_length = 64)]
    pub version: String,
    #[schema(example = "alice@wander.dev", min_length = 1, max_length = 254)]
    pub deployed_by: String,
    /// Defaults to `pending`. A finished status records `completed_at` as now.
    #[serde(default)]
    pub status: Option<DeploymentStatus>,
}

impl NewDeployment {
    /// Checks every field, reporting the first problem in terms the client can act on.
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.service_id <= 0 {
            return Err(ApiError::Invalid(
                "service_id must be a positive integer".into(),
            ));
        }
        if self.environment_id <= 0 {
            return Err(ApiError::Invalid(
                "environment_id must be a positive integer".into(),
            ));
        }
        check_text("version", &self.version, MAX_VERSION_CHARS)?;
        check_text("deployed_by", &self.deployed_by, MAX_DEPLOYED_BY_CHARS)
    }
}

/// Rejects blank, overlong or control-character text (NUL included: PostgreSQL cannot store it).
fn check_text(field: &str, value: &str, max_chars: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::Invalid(format!("{field} must not be empty")));
    }
    if value.chars().count() > max_chars {
        return Err(ApiError::Invalid(format!(
            "{field} must be at most {max_chars} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::Invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

/// The query string of `GET /api/deployments`, as sent.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this service: its id or its name.
    #[param(example = "api")]
    pub service: Option<String>,
    /// Only this environment: its id or its name.
    #[param(example = "production")]
    pub environment: Option<String>,
    /// Only this status.
    #[param(example = "failed")]
    pub status: Option<String>,
    /// Page size, 1 to 200 (default 20).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// Deployments to skip, 0 to 1000000 (default 0).
    #[param(minimum = 0, maximum = 1_000_000)]
    pub offset: Option<i64>,
}

/// A service or environment named in a filter: by id or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Id(i32),
    Name(String),
}

impl Selector {
    fn parse(field: &str, raw: &str) -> Result<Option<Self>, ApiError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.bytes().all(|b| b.is_ascii_digit()) {
            return match raw.parse::<i32>() {
                Ok(id) if id > 0 => Ok(Some(Self::Id(id))),
                _ => Err(ApiError::Invalid(format!("{field} {raw} does not exist"))),
            };
        }
        let is_slug = raw.len() <= 63
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if is_slug {
            Ok(Some(Self::Name(raw.to_owned())))
        } else {
            Err(ApiError::Invalid(format!(
                "{field} must be an id or a lowercase name such as `api`"
            )))
        }
    }

    /// The selector as it appears in a normalised cache key.
    fn key(&self) -> String {
        match self {
            Self::Id(id) => id.to_string(),
            Self::Name(name) => name.clone(),
        }
    }
}

/// Validated, normalised list filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    pub service: Option<Selector>,
    pub environment: Option<Selector>,
    pub status: Option<DeploymentStatus>,
    pub limit: i64,
    pub offset: i64,
}

impl ListFilter {
    /// Validates raw parameters; empty values mean "no filter".
    pub fn from_params(params: &ListParams) -> Result<Self, ApiError> {
        let status = match params.status.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(DeploymentStatus::parse(raw).ok_or_else(|| {
                let allowed: Vec<_> = DeploymentStatus::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::Invalid(format!("status must be one of {}", allowed.join(", ")))
            })?),
        };
        let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::Invalid(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            )));
        }
        let offset = params.offset.unwrap_or(0);
        if !(0..=MAX_OFFSET).contains(&offset) {
            return Err(ApiError::Invalid(format!(
                "offset must be between 0 and {MAX_OFFSET}"
            )));
        }
        Ok(Self {
            service: params
                .service
                .as_deref()
                .map(|raw| Selector::parse("service", raw))
                .transpose()?
                .flatten(),
            environment: params
                .environment
                .as_deref()
                .map(|raw| Selector::parse("environment", raw))
                .transpose()?
                .flatten(),
            status,
            limit,
            offset,
        })
    }

    /// A canonical rendering: equal filters give equal keys whatever the query's order or
    /// spelling of defaults.
    pub fn cache_key(&self) -> String {
        format!(
            "service={}&environment={}&status={}&limit={}&offset={}",
            self.service.as_ref().map(Selector::key).unwrap_or_default(),
            self.environment
                .as_ref()
                .map(Selector::key)
                .unwrap_or_default(),
            self.status
                .map(DeploymentStatus::as_str)
                .unwrap_or_default(),
            self.limit,
            self.offset,
        )
    }
}

/// Parses a deployment id from the path: a positive 64-bit integer.
pub fn parse_deployment_id(raw: &str) -> Result<i64, ApiError> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::BadRequest(
            "the deployment id must be a positive integer".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> ListParams {
        serde_urlencoded::from_str(query).unwrap()
    }

    #[test]
    fn equal_filters_share_one_cache_key() {
        let a = ListFilter::from_params(&params("status=failed&limit=20")).unwrap();
        let b = ListFilter::from_params(&params("offset=0&status=failed&service=")).unwrap();
        assert_eq!(a.cache_key(), b.cache_key());
        let c = ListFilter::from_params(&params("status=completed")).unwrap();
        assert_ne!(a.cache_key(), c.cache_key());
    }

    #[test]
    fn selectors_accept_ids_and_names_only() {
        let filter = ListFilter::from_params(&params("service=3&environment=staging")).unwrap();
        assert_eq!(filter.service, Some(Selector::Id(3)));
        assert_eq!(filter.environment, Some(Selector::Name("staging".into())));
        for bad in [
            "service=0",
            "service=99999999999",
            "service=Api",
            "service=%27%20OR%201%3D1",
        ] {
            assert!(ListFilter::from_params(&params(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_and_offsets_are_bounded() {
        for bad in [
            "limit=0",
            "limit=201",
            "offset=-1",
            "offset=1000001",
            "status=done",
        ] {
            assert!(ListFilter::from_params(&params(bad)).is_err(), "{bad}");
        }
        let page = ListFilter::from_params(&params("limit=200&offset=1000000")).unwrap();
        assert_eq!((page.limit, page.offset), (200, 1_000_000));
    }

    #[test]
    fn text_fields_reject_blank_long_and_control_characters() {
        let deployment = |version: &str, deployed_by: &str| NewDeployment {
            service_id: 1,
            environment_id: 1,
            version: version.into(),
            deployed_by: deployed_by.into(),
            status: None,
        };
        assert!(deployment("v1.0.0", "alice@wander.dev").validate().is_ok());
        assert!(
            deployment(&"x".repeat(64), &"y".repeat(254))
                .validate()
                .is_ok()
        );
        let long_version = "x".repeat(65);
        let long_person = "y".repeat(255);
        for (version, deployed_by) in [
            ("", "a"),
            ("   ", "a"),
            ("v1\0", "a"),
            ("v1\n", "a"),
            (long_version.as_str(), "a"),
            ("v1", ""),
            ("v1", "\u{7}bell"),
            ("v1", long_person.as_str()),
        ] {
            let result = deployment(version, deployed_by).validate();
            assert!(
                matches!(result, Err(ApiError::Invalid(_))),
                "{version:?} {deployed_by:?}"
            );
        }
    }

    #[test]
    fn success_rate_counts_finished_deployments_only() {
        let mut counts = StatusCounts::default();
        counts.add(DeploymentStatus::Completed, 3);
        counts.add(DeploymentStatus::Failed, 1);
        counts.add(DeploymentStatus::Pending, 6);
        let stats = Stats::from_counts(counts);
        assert_eq!(stats.total, 10);
        assert_eq!(stats.success_rate, Some(0.75));
        assert_eq!(
            Stats::from_counts(StatusCounts::default()).success_rate,
            None
        );
    }

    #[test]
    fn deployment_ids_must_be_positive_integers() {
        assert_eq!(parse_deployment_id("42").unwrap(), 42);
        for bad in ["0", "-1", "abc", "1.5", "99999999999999999999", ""] {
            assert!(parse_deployment_id(bad).is_err(), "{bad}");
        }
    }
}
