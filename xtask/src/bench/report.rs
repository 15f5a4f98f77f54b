//! The figures of a benchmark and how they are reported: the service's start, each scenario's
//! row, the machine they were taken on, the table people read and the JSON file.

use std::fmt::Write as _;

use serde::Serialize;

use super::load::Settings;
use super::memory::kib_to_mib;
use super::output::{generated_at, round};
use super::wrk::WrkReport;

/// The measured service's start (for the API, with migrations already applied: the database is
/// cloned from a migrated template), i.e. what a restarted pod costs.
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct Startup {
    /// From spawning the process to its first `200` on its probe.
    pub(super) ready_ms: f64,
    /// Resident memory once started and idle, in MiB.
    pub(super) idle_rss_mb: f64,
}

/// The figures every wrk benchmark writes (`bench web` adds the page's weight).
#[derive(Debug, Serialize)]
pub(super) struct Figures {
    /// RFC 3339, UTC.
    pub(super) generated_at: String,
    pub(super) machine: Machine,
    pub(super) settings: Settings,
    pub(super) startup: Startup,
    pub(super) scenarios: Vec<ScenarioFigures>,
    /// The highest of the scenarios' peaks, in MiB.
    pub(super) peak_rss_mb: f64,
}

impl Figures {
    /// The figures of a run on this machine, now.
    pub(super) fn new(
        settings: Settings,
        startup: Startup,
        scenarios: Vec<ScenarioFigures>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            generated_at: generated_at()?,
            machine: Machine::detect(),
            settings,
            startup,
            peak_rss_mb: scenarios
                .iter()
                .map(|row| row.peak_rss_mb)
                .fold(0.0, f64::max),
            scenarios,
        })
    }

    /// Prints the figures for people: the table, the start-up line, `more` (when there is),
    /// then `targets`.
    pub(super) fn print(&self, more: Option<&str>, targets: &[String]) {
        print!("\n{}", render_table(&self.scenarios));
        println!(
            "\nstart-up: ready in {:.1} ms, idle RSS {:.1} MB; peak RSS under load {:.1} MB",
            self.startup.ready_ms, self.startup.idle_rss_mb, self.peak_rss_mb
        );
        if let Some(more) = more {
            print!("\n{more}");
        }
        println!("\ntargets (reported, not enforced):");
        for line in targets {
            println!("  {line}");
        }
    }
}

/// Where the figures were taken, for comparing runs across machines.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Machine {
    /// CPUs this process may use (cgroup and affinity limits included).
    pub(super) cpus: usize,
    /// `uname -r`.
    pub(super) kernel: String,
}

impl Machine {
    /// The machine this process runs on.
    pub(super) fn detect() -> Self {
        Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(
                |_| "unknown".to_owned(),
                |release| release.trim().to_owned(),
            ),
        }
    }
}

/// The figures of one scenario, as they appear in the JSON and the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct ScenarioFigures {
    pub(super) name: String,
    pub(super) requests_per_sec: f64,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) max_ms: f64,
    pub(super) requests: u64,
    /// Non-2xx/3xx answers plus socket errors.
    pub(super) errors: u64,
    /// The measured process's peak RSS during this scenario, in MiB.
    pub(super) peak_rss_mb: f64,
}

impl ScenarioFigures {
    /// The row of the scenario called `name`, from wrk's `report` and the peak RSS it saw.
    pub(super) fn new(name: &str, report: &WrkReport, peak_rss_kib: u64) -> Self {
        Self {
            name: name.to_owned(),
            requests_per_sec: round(report.requests_per_sec, 1),
            p50_ms: round(report.latency.p50, 3),
            p99_ms: round(report.latency.p99, 3),
            max_ms: round(report.latency.max, 3),
            requests: report.requests,
            errors: report.errors(),
            peak_rss_mb: kib_to_mib(peak_rss_kib),
        }
    }
}

/// The scenarios as an aligned plain-text table, one line per scenario.
fn render_table(rows: &[ScenarioFigures]) -> String {
    let header = [
        "scenario",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "requests",
        "errors",
        "peak RSS MB",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|row| {
            [
                row.name.clone(),
                format!("{:.1}", row.requests_per_sec),
                format!("{:.3}", row.p50_ms),
                format!("{:.3}", row.p99_ms),
                format!("{:.3}", row.max_ms),
                row.requests.to_string(),
                row.errors.to_string(),
                format!("{:.1}", row.peak_rss_mb),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut table = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (column, (cell, width)) in cells.iter().zip(widths).enumerate() {
            // The name is text and reads left-aligned; the figures line up on the right.
            let _ = match column {
                0 => write!(text, "{cell:<width$}"),
                _ => write!(text, "  {cell:>width$}"),
            };
        }
        table.push_str(text.trim_end());
        table.push('\n');
    };
    line(&header);
    for row in &cells {
        line(&row.each_ref().map(String::as_str));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::output::write_json;

    #[test]
    fn the_table_aligns_names_left_and_figures_right() {
        let row = |name: &str, rps: f64, requests: u64| ScenarioFigures {
            name: name.into(),
            requests_per_sec: rps,
            p50_ms: 0.5,
            p99_ms: 4.25,
            max_ms: 31.0,
            requests,
            errors: 0,
            peak_rss_mb: 21.3,
        };
        let table = render_table(&[
            row("cached_list", 12_345.6, 123_456),
            row("health", 980.0, 9_800),
        ]);
        assert_eq!(
            table,
            "\
scenario       req/s  p50 ms  p99 ms  max ms  requests  errors  peak RSS MB
cached_list  12345.6   0.500   4.250  31.000    123456       0         21.3
health         980.0   0.500   4.250  31.000      9800       0         21.3
"
        );
    }

    #[test]
    fn the_json_goes_where_asked_with_its_directory_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deeper/api.json");
        write_json(&path, &Machine::detect()).unwrap();
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(written["cpus"].as_u64().unwrap() >= 1);
        assert!(!written["kernel"].as_str().unwrap().is_empty());
    }
}
