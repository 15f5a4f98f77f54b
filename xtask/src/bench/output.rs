//! Where a benchmark's figures go: rounded for reading, stamped with when they were taken, and
//! written as JSON. Below everything else of `bench`, which all writes figures.

use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

/// RFC 3339 in UTC to the second, like the API's own timestamps: `2025-01-31T09:30:00Z`.
const GENERATED_AT: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// Now, as the JSON's `generated_at`.
pub(super) fn generated_at() -> anyhow::Result<String> {
    OffsetDateTime::now_utc()
        .format(GENERATED_AT)
        .context("formatting the time")
}

/// `value` rounded to `decimals` places, so the JSON holds figures, not float noise.
pub(super) fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10_f64.powi(decimals);
    (value * scale).round() / scale
}

/// Writes `value` as pretty JSON to `path`, creating its directory.
pub(super) fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut json = serde_json::to_string_pretty(value).context("serialising the figures")?;
    json.push('\n');
    std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generation_time_is_rfc_3339_utc_to_the_second() {
        let at = time::macros::datetime!(2025-01-31 09:30:05.123456 UTC);
        assert_eq!(at.format(GENERATED_AT).unwrap(), "2025-01-31T09:30:05Z");
        assert_eq!(generated_at().unwrap().len(), "2025-01-31T09:30:05Z".len());
    }
}
