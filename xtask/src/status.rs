//! `cargo xtask status`: each service's state, health, image, ports and uptime, as a table or
//! as JSON. On docker the health is the readiness probe, run now; on kind it is the pods'
//! readiness as the cluster reports it.

use std::io::Write as _;
use std::process::ExitCode;

use crate::context::Context;
use crate::runtime::report::StatusReport;

/// Options of `cargo xtask status`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print JSON (for scripts) instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Prints the report as a table or JSON and exits 1 unless every service is healthy, so scripts can
/// test the stack with it.
pub(crate) async fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let report = ctx.runtime().status(ctx).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", render(&report, &ctx.ui().for_stdout()))?;
    }
    Ok(if report.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The table: aligned columns, health coloured when colour is on.
pub(crate) fn render(report: &StatusReport, ui: &crate::ui::Ui) -> String {
    let headers = [
        "SERVICE", "STATE", "HEALTH", "RESTARTS", "IMAGE", "PORTS", "UPTIME",
    ];
    let rows: Vec<[String; 7]> = report
        .services
        .iter()
        .map(|s| {
            [
                s.name.clone(),
                s.state.clone(),
                s.health.clone(),
                s.restarts.to_string(),
                s.image.clone(),
                if s.ports.is_empty() {
                    "-".to_owned()
                } else {
                    s.ports.join(",")
                },
                s.uptime_secs.map_or_else(|| "-".to_owned(), uptime),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    out.push_str(&ui.paint_bold(&line(&headers.map(str::to_owned))));
    out.push('\n');
    for (row, service) in rows.iter().zip(&report.services) {
        let mut text = line(row);
        if service.health == "healthy" {
            text = text.replacen(" healthy ", &format!(" {} ", ui.paint_green("healthy")), 1);
        } else if service.health == "unhealthy" {
            text = text.replacen(
                " unhealthy ",
                &format!(" {} ", ui.paint_red("unhealthy")),
                1,
            );
        }
        out.push_str(&text);
        out.push('\n');
        if let Some(reason) = &service.reason {
            out.push_str("  └ ");
            out.push_str(reason);
            out.push('\n');
        }
    }
    for note in &report.notes {
        out.push_str("note: ");
        out.push_str(note);
        out.push('\n');
    }
    out
}

/// `42s`, `5m`, `3h12m`, `2d4h`.
fn uptime(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h{}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::report::ServiceStatus;

    fn service(name: &str, health: &str) -> ServiceStatus {
        ServiceStatus {
            name: name.to_owned(),
            state: "running".to_owned(),
            health: health.to_owned(),
            reason: (health != "healthy").then(|| "GET /health answered 503".to_owned()),
            image: "wander/api:0123456789ab".to_owned(),
            ports: vec!["127.0.0.1:8080->8080".to_owned()],
            uptime_secs: Some(3725),
            restarts: 0,
        }
    }

    #[test]
    fn uptimes_are_short() {
        assert_eq!(uptime(0), "0s");
        assert_eq!(uptime(59), "59s");
        assert_eq!(uptime(61), "1m");
        assert_eq!(uptime(3725), "1h2m");
        assert_eq!(uptime(2 * 86_400 + 4 * 3600), "2d4h");
    }

    #[test]
    fn the_table_aligns_columns_and_explains_unhealthy_services() {
        let report = StatusReport {
            runtime: "docker",
            stack: "wander".to_owned(),
            healthy: false,
            services: vec![service("api", "unhealthy"), service("postgres", "healthy")],
            notes: vec!["no kubelet watches".to_owned()],
        };
        let ui = crate::ui::Ui::new(crate::ui::Verbosity::Quiet);
        let text = console::strip_ansi_codes(&render(&report, &ui)).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("SERVICE   STATE    HEALTH     RESTARTS"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("api       running  unhealthy  0 "),
            "{text}"
        );
        assert_eq!(lines[2], "  └ GET /health answered 503");
        assert!(lines[3].contains("1h2m"), "{text}");
        assert_eq!(lines[4], "note: no kubelet watches");
    }

    #[test]
    fn json_names_every_field() {
        let json = serde_json::to_value(service("api", "healthy")).unwrap();
        for key in [
            "name",
            "state",
            "health",
            "image",
            "ports",
            "uptime_secs",
            "restarts",
        ] {
            assert!(json.get(key).is_some(), "{key} missing in {json}");
        }
        assert!(json.get("reason").is_none());
    }
}
