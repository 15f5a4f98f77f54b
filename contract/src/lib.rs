//! The API's contract: its resources as they appear on the wire, shared by the server (`api`)
//! and its clients (`web`), and the validation of what clients send.
//!
//! One definition serves both sides, so the dashboard can never disagree with the API about a
//! field's name or a rule. The database enforces the same rules with CHECK constraints;
//! validating first lets a client hear exactly which field is wrong.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

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

/// What `service` and `environment` accept in a list's query string, as the OpenAPI document
/// states it: nothing (no filter), an id of up to nine digits, or a lowercase name of up to 63
/// characters. [`parse_selector`] applies the same rule; a test holds the two together, and the
/// `pattern` attributes below repeat it because utoipa takes only literals there.
pub const SELECTOR_PATTERN: &str = "^(|[1-9][0-9]{0,8}|[a-z][a-z0-9-]{0,62})$";

/// What `status` accepts in a list's query string: nothing (no filter) or a status's name.
pub const STATUS_FILTER_PATTERN: &str = "^(|pending|in_progress|completed|failed|rolled_back)$";

/// A text field of a new deployment: no control character, and at least one character that is
/// neither that nor white space (Unicode's White_Space, which `str::trim` removes). The
/// classes are spelled out because ECMAScript's `\s` (what OpenAPI patterns use) and Rust's
/// disagree on a few characters.
pub const TEXT_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// A service or environment named in a list's filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Id(i32),
    Name(String),
}

/// Reads `service` or `environment` from a list's query: `Ok(None)` when empty (no filter);
/// an error, in words for the user, for anything [`SELECTOR_PATTERN`] does not match.
pub fn parse_selector(field: &str, raw: &str) -> Result<Option<Selector>, String> {
    if raw.is_empty() {
        return Ok(None);
    }
    let first = raw.as_bytes()[0];
    if first.is_ascii_digit() {
        // Nine digits without a leading zero always parse into an `i32`.
        if raw.len() <= 9
            && first != b'0'
            && let Ok(id) = raw.parse()
        {
            return Ok(Some(Selector::Id(id)));
        }
    } else if raw.len() <= 63
        && first.is_ascii_lowercase()
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Ok(Some(Selector::Name(raw.to_owned())));
    }
    Err(format!(
        "{field} must be an id (1 to 999999999, no leading zero) or a lowercase name such as `api` (letters, digits and `-`, at most 63)"
    ))
}

/// Reads `status` from a list's query: `Ok(None)` when empty (no filter).
pub fn parse_status_filter(raw: &str) -> Result<Option<DeploymentStatus>, String> {
    if raw.is_empty() {
        return Ok(None);
    }
    DeploymentStatus::parse(raw).map(Some).ok_or_else(|| {
        let allowed: Vec<_> = DeploymentStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("status must be one of {}", allowed.join(", "))
    })
}

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
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeployment {
    /// An existing service's id.
    #[schema(example = 2, minimum = 1)]
    pub service_id: i32,
    /// An existing environment's id.
    #[schema(example = 1, minimum = 1)]
    pub environment_id: i32,
    #[schema(
        example = "v2.2.0",
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub version: String,
    #[schema(
        example = "alice@wander.dev",
        min_length = 1,
        max_length = 254,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub deployed_by: String,
    /// Defaults to `pending`. A finished status records `completed_at` as now.
    #[serde(default)]
    pub status: Option<DeploymentStatus>,
}

/// A field that breaks the contract, and why, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct FieldError {
    /// The field's wire name, so a form can show the message next to it.
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl NewDeployment {
    /// Checks every field, reporting the first problem.
    pub fn validate(&self) -> Result<(), FieldError> {
        self.problems().into_iter().next().map_or(Ok(()), Err)
    }

    /// Every field's problem, for forms that show them all at once.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if self.service_id <= 0 {
            problems.push(FieldError::new("service_id", "must be a positive integer"));
        }
        if self.environment_id <= 0 {
            problems.push(FieldError::new(
                "environment_id",
                "must be a positive integer",
            ));
        }
        problems.extend(check_text("version", &self.version, MAX_VERSION_CHARS));
        problems.extend(check_text(
            "deployed_by",
            &self.deployed_by,
            MAX_DEPLOYED_BY_CHARS,
        ));
        problems
    }
}

/// Rejects blank, overlong or control-character text (NUL included: PostgreSQL cannot store it).
fn check_text(field: &'static str, value: &str, max_chars: usize) -> Option<FieldError> {
    if value.trim().is_empty() {
        Some(FieldError::new(field, "must not be empty"))
    } else if value.chars().count() > max_chars {
        Some(FieldError::new(
            field,
            format!("must be at most {max_chars} characters"),
        ))
    } else if value.chars().any(char::is_control) {
        Some(FieldError::new(
            field,
            "must not contain control characters",
        ))
    } else {
        None
    }
}

/// An `application/problem+json` document (RFC 9457).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem.
    #[serde(rename = "type")]
    #[schema(example = "https://wander.dev/problems/invalid-input")]
    pub kind: String,
    /// Short, human-readable summary of the kind of problem.
    #[schema(example = "Invalid input")]
    pub title: String,
    /// The HTTP status code.
    #[schema(example = 422)]
    pub status: u16,
    /// What went wrong in this occurrence, and what to do about it.
    #[schema(example = "version must not be empty")]
    pub detail: String,
}

/// Overall state: `ok`, `degraded` (Redis down: the API still serves) or `down` (no database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverallStatus {
    Ok,
    Degraded,
    Down,
}

/// One dependency's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Up,
    Down,
}

/// The result of checking one dependency.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Check {
    pub status: CheckStatus,
    /// Round-trip time of the probe; `null` when it failed.
    pub latency_ms: Option<f64>,
}

/// The dependencies checked by `/health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Checks {
    pub database: Check,
    pub redis: Check,
}

/// `GET /health`: readiness of the API and its dependencies.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: OverallStatus,
    pub checks: Checks,
    /// The API's version.
    #[schema(example = "0.1.0")]
    pub version: String,
}

/// `GET /livez`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Liveness {
    #[schema(example = "ok")]
    pub status: String,
}

/// The query string of `GET /api/deployments`, as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this service: its id or its name (empty: all).
    #[param(example = "api", pattern = "^(|[1-9][0-9]{0,8}|[a-z][a-z0-9-]{0,62})$")]
    pub service: Option<String>,
    /// Only this environment: its id or its name (empty: all).
    #[param(
        example = "production",
        pattern = "^(|[1-9][0-9]{0,8}|[a-z][a-z0-9-]{0,62})$"
    )]
    pub environment: Option<String>,
    /// Only this status (empty: all).
    #[param(
        example = "failed",
        pattern = "^(|pending|in_progress|completed|failed|rolled_back)$"
    )]
    pub status: Option<String>,
    /// Page size, 1 to 200 (default 20).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// Deployments to skip, 0 to 1000000 (default 0).
    #[param(minimum = 0, maximum = 1_000_000)]
    pub offset: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert!(result.is_err(), "{version:?} {deployed_by:?}");
        }
    }

    /// Strings near every edge of the three rules: ids and their bounds, names and theirs,
    /// statuses, white space and control characters of every kind, and long ones.
    fn corpus() -> Vec<String> {
        let mut corpus: Vec<String> = [
            "",
            "0",
            "1",
            "007",
            "999999999",
            "1000000000",
            "2147483647",
            "-1",
            "+1",
            "1.0",
            "1e3",
            "api",
            "web-2",
            "a",
            "-api",
            "2fa",
            "Api",
            "api_",
            "api ",
            " api",
            "a b",
            "api\n",
            "pending",
            "in_progress",
            "completed",
            "failed",
            "rolled_back",
            "Failed",
            "done",
            "v1.2.3",
            "alice@wander.dev",
            "é",
            "ünïcode",
            "日本",
            "🚀",
            "x\u{200b}",
            "\u{feff}",
            "a\u{feff}",
            "\u{180e}",
            "' OR 1=1 --",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        for c in (0u32..=0x3000)
            .filter_map(char::from_u32)
            .filter(|c| c.is_whitespace() || c.is_control() || !c.is_ascii() && (*c as u32) < 0xa1)
        {
            corpus.extend([
                c.to_string(),
                format!("{c}x"),
                format!("x{c}"),
                format!("{c}{c}"),
            ]);
        }
        corpus.extend([
            "a".repeat(63),
            "a".repeat(64),
            "x".repeat(254),
            "x".repeat(255),
        ]);
        corpus
    }

    fn matches(pattern: &str, value: &str) -> bool {
        regex::Regex::new(pattern).unwrap().is_match(value)
    }

    #[test]
    fn the_openapi_patterns_say_what_the_rules_accept() {
        for value in corpus() {
            assert_eq!(
                matches(SELECTOR_PATTERN, &value),
                parse_selector("service", &value).is_ok(),
                "selector {value:?}"
            );
            assert_eq!(
                matches(STATUS_FILTER_PATTERN, &value),
                parse_status_filter(&value).is_ok(),
                "status {value:?}"
            );
            // The text rule's length is the schema's maxLength, checked apart.
            let text_ok = check_text("version", &value, usize::MAX).is_none();
            assert_eq!(matches(TEXT_PATTERN, &value), text_ok, "text {value:?}");
        }
        assert_eq!(parse_selector("service", "42"), Ok(Some(Selector::Id(42))));
        assert_eq!(
            parse_selector("service", "web-2"),
            Ok(Some(Selector::Name("web-2".into())))
        );
        assert_eq!(parse_selector("service", ""), Ok(None));
        assert_eq!(
            parse_status_filter("failed"),
            Ok(Some(DeploymentStatus::Failed))
        );
        let message = parse_selector("service", "Api").unwrap_err();
        assert!(
            message.contains("lowercase name such as `api`"),
            "{message}"
        );
    }

    #[test]
    fn the_schema_states_each_pattern_as_the_constants_do() {
        use utoipa::{IntoParams as _, PartialSchema as _};
        let params = serde_json::to_value(ListParams::into_params(|| None)).unwrap();
        let pattern_of = |name: &str| {
            params
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .map(|p| p["schema"]["pattern"].clone())
                .unwrap()
        };
        assert_eq!(pattern_of("service"), SELECTOR_PATTERN);
        assert_eq!(pattern_of("environment"), SELECTOR_PATTERN);
        assert_eq!(pattern_of("status"), STATUS_FILTER_PATTERN);
        let body = serde_json::to_value(NewDeployment::schema()).unwrap();
        for field in ["version", "deployed_by"] {
            assert_eq!(
                body["properties"][field]["pattern"], TEXT_PATTERN,
                "{field}"
            );
        }
        assert_eq!(
            body["properties"]["version"]["maxLength"],
            MAX_VERSION_CHARS
        );
        assert_eq!(
            body["properties"]["deployed_by"]["maxLength"],
            MAX_DEPLOYED_BY_CHARS
        );
        for field in ["service_id", "environment_id"] {
            assert_eq!(body["properties"][field]["minimum"], 1, "{field}");
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
    fn every_problem_is_reported_with_its_field() {
        let all_wrong = NewDeployment {
            service_id: 0,
            environment_id: -1,
            version: " ".into(),
            deployed_by: "a\u{0}".into(),
            status: None,
        };
        let fields: Vec<_> = all_wrong.problems().iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            ["service_id", "environment_id", "version", "deployed_by"]
        );
        assert_eq!(
            all_wrong.validate().unwrap_err().to_string(),
            "service_id must be a positive integer"
        );
    }
}
