//! The "new deployment" form: what was typed, the contract's rules applied to it, and the API's
//! answer mapped back onto the field it is about.

use contract::{DeploymentStatus, NewDeployment};

use crate::query::form_pairs;

/// The fields of the form, as typed, so a re-rendered form keeps every value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentForm {
    pub service_id: String,
    pub environment_id: String,
    pub version: String,
    pub deployed_by: String,
    pub status: String,
}

/// One message per field, shown next to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors {
    pub service_id: Option<String>,
    pub environment_id: Option<String>,
    pub version: Option<String>,
    pub deployed_by: Option<String>,
    pub status: Option<String>,
}

/// The form's fields in display order: wire name and label.
pub const FIELDS: [(&str, &str); 5] = [
    ("service_id", "Service"),
    ("environment_id", "Environment"),
    ("version", "Version"),
    ("deployed_by", "Deployed by"),
    ("status", "Status"),
];

impl DeploymentForm {
    /// Reads an `application/x-www-form-urlencoded` body; never fails (missing fields are empty,
    /// unknown ones ignored, the first of repeated ones wins).
    pub fn parse(body: &str) -> Self {
        let pairs = form_pairs(body);
        let field = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
                .unwrap_or_default()
        };
        Self {
            service_id: field("service_id"),
            environment_id: field("environment_id"),
            version: field("version"),
            deployed_by: field("deployed_by"),
            status: field("status"),
        }
    }

    /// Applies the contract's rules: the request to send, or every field's problem.
    pub fn validate(&self) -> Result<NewDeployment, FieldErrors> {
        let mut errors = FieldErrors::default();
        let service_id = parse_id(&self.service_id);
        if service_id.is_none() {
            errors.set("service_id", "Choose a service".to_owned());
        }
        let environment_id = parse_id(&self.environment_id);
        if environment_id.is_none() {
            errors.set("environment_id", "Choose an environment".to_owned());
        }
        let status = match self.status.trim() {
            "" => None,
            raw => {
                let parsed = DeploymentStatus::parse(raw);
                if parsed.is_none() {
                    errors.set("status", "Choose a status from the list".to_owned());
                }
                parsed
            }
        };
        let new = NewDeployment {
            service_id: service_id.unwrap_or(0),
            environment_id: environment_id.unwrap_or(0),
            version: self.version.clone(),
            deployed_by: self.deployed_by.clone(),
            status,
        };
        for problem in new.problems() {
            // The id fields already have a friendlier message than the contract's.
            if errors.get(problem.field).is_none() {
                errors.set(problem.field, sentence(problem.field, &problem.message));
            }
        }
        if errors.is_empty() {
            Ok(new)
        } else {
            Err(errors)
        }
    }
}

impl FieldErrors {
    /// The message for the field with this wire name.
    pub fn get(&self, field: &str) -> Option<&str> {
        match field {
            "service_id" => self.service_id.as_deref(),
            "environment_id" => self.environment_id.as_deref(),
            "version" => self.version.as_deref(),
            "deployed_by" => self.deployed_by.as_deref(),
            "status" => self.status.as_deref(),
            _ => None,
        }
    }

    /// Sets the message of a known field; returns `false` for any other name.
    pub fn set(&mut self, field: &str, message: String) -> bool {
        let slot = match field {
            "service_id" => &mut self.service_id,
            "environment_id" => &mut self.environment_id,
            "version" => &mut self.version,
            "deployed_by" => &mut self.deployed_by,
            "status" => &mut self.status,
            _ => return false,
        };
        *slot = Some(message);
        true
    }

    /// Whether no field has a problem.
    pub fn is_empty(&self) -> bool {
        FIELDS.iter().all(|(field, _)| self.get(field).is_none())
    }

    /// The first field with a problem, in display order: where the cursor should go.
    pub fn first(&self) -> Option<&'static str> {
        FIELDS
            .iter()
            .map(|(field, _)| *field)
            .find(|field| self.get(field).is_some())
    }

    /// Maps an API problem's `detail` ("service_id 99 does not exist", "version must be at most
    /// 64 characters") onto its field; `None` when it names none.
    pub fn from_problem_detail(detail: &str) -> Option<Self> {
        let (field, rest) = detail.split_once(' ')?;
        let mut errors = Self::default();
        errors.set(field, sentence(field, rest)).then_some(errors)
    }
}

/// "version", "must not be empty" → "Version must not be empty".
fn sentence(field: &str, message: &str) -> String {
    let label = FIELDS
        .iter()
        .find(|(name, _)| *name == field)
        .map_or(field, |(_, label)| label);
    format!("{label} {}", message.trim())
}

fn parse_id(raw: &str) -> Option<i32> {
    raw.trim().parse::<i32>().ok().filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(service: &str, version: &str, deployed_by: &str, status: &str) -> DeploymentForm {
        DeploymentForm {
            service_id: service.into(),
            environment_id: "1".into(),
            version: version.into(),
            deployed_by: deployed_by.into(),
            status: status.into(),
        }
    }

    #[test]
    fn a_complete_form_becomes_a_request() {
        let new = form("2", "v1.0.0", "zoe", "completed").validate().unwrap();
        assert_eq!((new.service_id, new.environment_id), (2, 1));
        assert_eq!(new.status, Some(DeploymentStatus::Completed));
        assert_eq!(form("2", "v1", "zoe", "").validate().unwrap().status, None);
    }

    #[test]
    fn every_field_reports_its_own_problem() {
        let errors = form("", " ", &"x".repeat(255), "bogus")
            .validate()
            .unwrap_err();
        assert_eq!(errors.service_id.as_deref(), Some("Choose a service"));
        assert_eq!(errors.environment_id, None);
        assert_eq!(errors.version.as_deref(), Some("Version must not be empty"));
        assert_eq!(
            errors.deployed_by.as_deref(),
            Some("Deployed by must be at most 254 characters")
        );
        assert_eq!(
            errors.status.as_deref(),
            Some("Choose a status from the list")
        );
        assert_eq!(errors.first(), Some("service_id"));
    }

    #[test]
    fn the_body_is_read_leniently() {
        let parsed = DeploymentForm::parse(
            "service_id=2&environment_id=3&version=v1+%26+%3Cb%3E&deployed_by=a&deployed_by=b&x=1",
        );
        assert_eq!(parsed.version, "v1 & <b>");
        assert_eq!(parsed.deployed_by, "a");
        assert_eq!(parsed.status, "");
        assert_eq!(DeploymentForm::parse("%FF%FE=%"), DeploymentForm::default());
    }

    #[test]
    fn api_details_land_on_their_field() {
        let errors = FieldErrors::from_problem_detail("service_id 99 does not exist").unwrap();
        assert_eq!(
            errors.service_id.as_deref(),
            Some("Service 99 does not exist")
        );
        let errors = FieldErrors::from_problem_detail("environment_id 7 does not exist").unwrap();
        assert_eq!(errors.first(), Some("environment_id"));
        assert!(FieldErrors::from_problem_detail("the body must be a JSON object").is_none());
        assert!(FieldErrors::from_problem_detail("").is_none());
    }
}
