//! The dashboard's query string: filters and page, read leniently (a bad value is dropped with a
//! notice, never a failed page) and written back into links that keep them.

use contract::{DeploymentStatus, ListParams, MAX_OFFSET};

/// Rows per page of the dashboard's deployments table.
pub const PAGE_SIZE: i64 = 10;

/// The dashboard's filters after validation: every value here is one the API can accept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DashboardQuery {
    /// A service name (or id), as in the API's `service` parameter.
    pub service: Option<String>,
    /// An environment name (or id).
    pub environment: Option<String>,
    pub status: Option<DeploymentStatus>,
    /// The 1-based page number.
    pub page: u32,
    /// Values that were dropped, to tell the user why the page shows something else.
    pub ignored: Vec<Ignored>,
}

/// A query parameter the dashboard could not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// The parameter's name.
    pub name: &'static str,
    /// The value as sent (escaped when rendered, like everything else).
    pub value: String,
    /// Why it was dropped, as the end of a sentence.
    pub reason: &'static str,
}

impl DashboardQuery {
    /// Reads a raw query string; never fails. Unknown parameters are ignored silently, the first
    /// of repeated ones wins, empty values mean "all".
    pub fn parse(raw: &str) -> Self {
        let pairs = form_pairs(raw);
        let first = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.trim())
                .filter(|value| !value.is_empty())
        };
        let mut query = Self {
            page: 1,
            ..Self::default()
        };
        for (name, slot) in [
            ("service", &mut query.service),
            ("environment", &mut query.environment),
        ] {
            if let Some(value) = first(name) {
                if is_selector(value) {
                    *slot = Some(value.to_owned());
                } else {
                    query.ignored.push(Ignored {
                        name,
                        value: value.to_owned(),
                        reason: "not a name from the list",
                    });
                }
            }
        }
        if let Some(value) = first("status") {
            match DeploymentStatus::parse(value) {
                Some(status) => query.status = Some(status),
                None => query.ignored.push(Ignored {
                    name: "status",
                    value: value.to_owned(),
                    reason: "not a known status",
                }),
            }
        }
        if let Some(value) = first("page") {
            match value.parse::<u32>() {
                Ok(page) if page >= 1 && offset_of(page) <= MAX_OFFSET => query.page = page,
                _ => query.ignored.push(Ignored {
                    name: "page",
                    value: value.to_owned(),
                    reason: "not a page number; showing the first page",
                }),
            }
        }
        query
    }

    /// The API parameters for this page of the table.
    pub fn list_params(&self) -> ListParams {
        ListParams {
            service: self.service.clone(),
            environment: self.environment.clone(),
            status: self.status.map(|status| status.as_str().to_owned()),
            limit: Some(PAGE_SIZE),
            offset: Some(self.offset()),
        }
    }

    /// Rows skipped before this page.
    pub fn offset(&self) -> i64 {
        offset_of(self.page)
    }

    /// Whether any filter is set (the page number is not a filter).
    pub fn is_filtered(&self) -> bool {
        self.service.is_some() || self.environment.is_some() || self.status.is_some()
    }

    /// The dashboard URL for `page` with the same filters; page 1 is left out.
    pub fn href(&self, page: u32) -> String {
        let query = self.query_string(page);
        if query.is_empty() {
            "/".to_owned()
        } else {
            format!("/?{query}")
        }
    }

    /// The query string of [`Self::href`] without the `?` (empty without filters on page 1).
    pub fn query_string(&self, page: u32) -> String {
        let page = page.to_string();
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if let Some(service) = &self.service {
            pairs.push(("service", service));
        }
        if let Some(environment) = &self.environment {
            pairs.push(("environment", environment));
        }
        if let Some(status) = self.status {
            pairs.push(("status", status.as_str()));
        }
        if page != "1" {
            pairs.push(("page", &page));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// Decodes `application/x-www-form-urlencoded` text (a query string or a form body) into pairs;
/// undecodable bytes become U+FFFD rather than an error.
pub fn form_pairs(raw: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(raw).unwrap_or_default()
}

fn offset_of(page: u32) -> i64 {
    (i64::from(page) - 1) * PAGE_SIZE
}

/// What the API accepts as a service or environment: a positive id or a lowercase name.
fn is_selector(value: &str) -> bool {
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<i32>().is_ok_and(|id| id > 0);
    }
    value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_filters_pass_through_to_the_api() {
        let query =
            DashboardQuery::parse("service=api&environment=production&status=failed&page=3");
        assert!(query.ignored.is_empty());
        let params = query.list_params();
        assert_eq!(params.service.as_deref(), Some("api"));
        assert_eq!(params.environment.as_deref(), Some("production"));
        assert_eq!(params.status.as_deref(), Some("failed"));
        assert_eq!((params.limit, params.offset), (Some(10), Some(20)));
    }

    #[test]
    fn empty_and_unknown_parameters_mean_no_filter() {
        let query = DashboardQuery::parse("service=&environment=&status=&utm_source=x");
        assert_eq!(
            query,
            DashboardQuery {
                page: 1,
                ..DashboardQuery::default()
            }
        );
        assert_eq!(query.href(1), "/");
    }

    #[test]
    fn bad_values_are_dropped_with_a_reason() {
        for raw in [
            "page=-1",
            "page=0",
            "page=abc",
            "page=99999999999",
            "status=bogus",
            "service=%3Cscript%3E",
            "environment=Production",
            "service=0",
            "%ZZ=%ZZ&page=x",
        ] {
            let query = DashboardQuery::parse(raw);
            assert_eq!(query.ignored.len(), 1, "{raw}: {query:?}");
            assert_eq!(query.list_params().offset, Some(0), "{raw}");
            assert!(!query.is_filtered(), "{raw}");
        }
    }

    #[test]
    fn links_keep_the_filters_and_encode_them() {
        let query = DashboardQuery::parse("status=rolled_back&service=api&page=2");
        assert_eq!(query.href(3), "/?service=api&status=rolled_back&page=3");
        assert_eq!(query.href(1), "/?service=api&status=rolled_back");
        assert_eq!(DashboardQuery::parse("").href(2), "/?page=2");
    }

    #[test]
    fn the_first_of_repeated_parameters_wins() {
        let query = DashboardQuery::parse("status=failed&status=completed");
        assert_eq!(query.status, Some(DeploymentStatus::Failed));
    }
}
