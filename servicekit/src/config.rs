//! Typed reading of a service's environment: accessors with defaults and bounds, an error that
//! names the variable, and a type for values that must never be printed.

use std::{fmt, str::FromStr, time::Duration};

/// A configuration problem, named after the variable so the fix is obvious.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    name: &'static str,
    value: String,
    reason: String,
}

impl ConfigError {
    /// A problem with variable `name` holding `value`.
    pub fn new(name: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            name,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Typed accessors over a variable lookup (the process environment, or a map in tests).
#[derive(Debug)]
pub struct Env<'a, F>(pub &'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    /// The variable, or `default` when it is unset.
    pub fn string(&self, name: &str, default: &str) -> String {
        (self.0)(name).unwrap_or_else(|| default.to_owned())
    }

    /// The variable (or `default`) parsed as `T`.
    pub fn parse<T: FromStr>(&self, name: &'static str, default: &str) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        let raw = self.string(name, default);
        raw.trim()
            .parse()
            .map_err(|err: T::Err| ConfigError::new(name, &raw, err.to_string()))
    }

    /// The variable (or `default`) parsed and checked against `range`.
    pub fn bounded<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
        T::Err: fmt::Display,
    {
        let value = self.parse(name, &default.to_string())?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::new(
                name,
                &value.to_string(),
                format!("must be between {} and {}", range.start(), range.end()),
            ))
        }
    }

    /// A duration in milliseconds, from 1 ms to 10 minutes.
    pub fn millis(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.bounded(name, default, 1..=600_000)
            .map(Duration::from_millis)
    }
}

/// A string that never appears in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a sensitive value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}
