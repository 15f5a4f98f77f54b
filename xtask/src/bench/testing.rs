//! Fixtures the benchmarks' tests share: the figures of a made-up run, and the keys of a JSON
//! object.

use super::load::Settings;
use super::report::{Figures, Machine, ScenarioFigures, Startup};

/// The figures of a run at `connections` connections on a made-up machine: `scenario` alone,
/// after `startup`.
pub(super) fn sample_figures(
    connections: u32,
    startup: Startup,
    scenario: ScenarioFigures,
) -> Figures {
    Figures {
        generated_at: "2025-01-01T00:00:00Z".into(),
        machine: Machine {
            cpus: 2,
            kernel: "6.1.0".into(),
        },
        settings: Settings {
            duration_s: 10,
            connections,
            threads: 2,
        },
        startup,
        peak_rss_mb: scenario.peak_rss_mb,
        scenarios: vec![scenario],
    }
}

/// The keys of a JSON object, sorted.
pub(super) fn keys(value: &serde_json::Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}
