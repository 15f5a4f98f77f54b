//! Request parameters as the API understands them: validated, normalised list filters and
//! path ids. The wire types themselves live in the `contract` crate, shared with the dashboard.

pub use contract::*;

use crate::error::ApiError;

/// A selector as it appears in a normalised cache key.
fn selector_key(selector: &Selector) -> String {
    match selector {
        Selector::Id(id) => id.to_string(),
        Selector::Name(name) => name.clone(),
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
        let status = match params.status.as_deref() {
            None => None,
            Some(raw) => parse_status_filter(raw).map_err(ApiError::Invalid)?,
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
            service: selector(params.service.as_deref(), "service")?,
            environment: selector(params.environment.as_deref(), "environment")?,
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
            self.service.as_ref().map(selector_key).unwrap_or_default(),
            self.environment
                .as_ref()
                .map(selector_key)
                .unwrap_or_default(),
            self.status
                .map(DeploymentStatus::as_str)
                .unwrap_or_default(),
            self.limit,
            self.offset,
        )
    }
}

/// A selector parameter, when present, read by the contract's rule.
fn selector(raw: Option<&str>, field: &str) -> Result<Option<Selector>, ApiError> {
    raw.map_or(Ok(None), |raw| {
        parse_selector(field, raw).map_err(ApiError::Invalid)
    })
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
    fn deployment_ids_must_be_positive_integers() {
        assert_eq!(parse_deployment_id("42").unwrap(), 42);
        for bad in ["0", "-1", "abc", "1.5", "99999999999999999999", ""] {
            assert!(parse_deployment_id(bad).is_err(), "{bad}");
        }
    }
}
