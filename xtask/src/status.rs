//! `cargo xtask status`: each service's state, health, image, ports and uptime, as a table or
//! as JSON. On docker the health is the readiness probe, run now; on kind it is the pods'
//! readiness as the cluster reports it.

use std::io::Write as _;
use std::process::ExitCode;

use serde::Serialize;

use crate::Context;
use crate::runtime::RuntimeKind;
use crate::runtime::docker::session::{SecretsMode, Session};
use crate::runtime::docker::{kubelet, readiness};
use crate::runtime::kind::cluster::KindCli;
use crate::runtime::kind::session::KindSession;

/// Options of `cargo xtask status`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print JSON (for scripts) instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// One service's line.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct ServiceStatus {
    pub(crate) name: String,
    /// `running`, `exited`, `restarting`, ..., or `absent` when it has no container.
    pub(crate) state: String,
    /// `healthy` (running, and passing its probe if it has one), `unhealthy` (failing its probe,
    /// or not running), or `unknown` (no container or pod to ask).
    pub(crate) health: String,
    /// Why it is not healthy, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    pub(crate) image: String,
    pub(crate) ports: Vec<String>,
    pub(crate) uptime_secs: Option<u64>,
    pub(crate) restarts: i64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) runtime: &'static str,
    pub(crate) stack: String,
    /// Every service healthy.
    pub(crate) healthy: bool,
    pub(crate) services: Vec<ServiceStatus>,
    /// What else the reader should know (on docker: that no kubelet watches the probes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) notes: Vec<String>,
}

/// Prints the report as a table or JSON and exits 1 unless every service is healthy, so scripts can
/// test the stack with it.
pub(crate) async fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let report = match ctx.runtime() {
        RuntimeKind::Docker => {
            let session = Session::open(ctx, SecretsMode::Existing).await?;
            let kubelet = kubelet::read_report(ctx.state().path(), session.names().stack());
            collect(&session, kubelet.as_ref()).await?
        }
        RuntimeKind::Kind => {
            let session = KindSession::open(ctx).await?;
            let context = ctx
                .kube_context()
                .map_or_else(|| KindCli::new(ctx).context(), str::to_owned);
            crate::runtime::kind::status::collect(&session, &context).await?
        }
    };
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

/// Looks at every workload of the manifests and its container, with what the runtime's kubelet
/// reports of them (`None`: it is not running).
pub(crate) async fn collect(
    session: &Session,
    kubelet: Option<&kubelet::Report>,
) -> anyhow::Result<Report> {
    let containers = session.runtime.containers().await?;
    let plans = session.current_plans().await?;
    let now = time::OffsetDateTime::now_utc();
    let mut services = Vec::new();
    for plan in &plans {
        let Some(container) = containers.iter().find(|c| c.workload == plan.workload) else {
            services.push(ServiceStatus {
                name: plan.workload.clone(),
                state: "absent".to_owned(),
                health: "unknown".to_owned(),
                reason: Some("no container: run `cargo xtask dev`".to_owned()),
                image: String::new(),
                ports: Vec::new(),
                uptime_secs: None,
                restarts: 0,
            });
            continue;
        };
        let running = container.state == "running";
        let probe = if running {
            readiness::check_once(&session.runtime, plan, container.ip.as_deref()).await
        } else {
            None
        };
        let supervised = kubelet
            .and_then(|k| k.containers.get(&container.name))
            .filter(|c| c.id == container.id);
        let (health, reason) = match (probe, supervised.and_then(|c| c.waiting.clone())) {
            (_, Some(waiting)) => ("unhealthy", Some(waiting)),
            (Some(Ok(())), _) => ("healthy", None),
            (Some(Err(why)), _) => ("unhealthy", Some(format!("readiness probe: {why}"))),
            (None, _) if running => ("healthy", None),
            (None, _) => (
                "unhealthy",
                Some(format!("container is {}", container.state)),
            ),
        };
        let uptime_secs = running
            .then_some(container.started_at.as_deref())
            .flatten()
            .and_then(|at| {
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
            })
            .and_then(|at| u64::try_from((now - at).whole_seconds()).ok());
        services.push(ServiceStatus {
            name: plan.workload.clone(),
            state: container.state.clone(),
            health: health.to_owned(),
            reason,
            image: container.image.clone(),
            ports: container.ports.clone(),
            uptime_secs,
            // The engine counts the crashes it restarted, the kubelet its probe restarts.
            restarts: container.restart_count + supervised.map_or(0, |c| i64::from(c.restarts)),
        });
    }
    let mut notes = Vec::new();
    if kubelet.is_none() && !containers.is_empty() {
        notes.push(
            "no kubelet watches this stack's probes, so a service that stops answering is not restarted: `cargo xtask dev` starts it".to_owned(),
        );
    }
    Ok(Report {
        runtime: "docker",
        stack: session.names().stack().to_owned(),
        healthy: !services.is_empty() && services.iter().all(|s| s.health == "healthy"),
        services,
        notes,
    })
}

/// The table: aligned columns, health coloured when colour is on.
pub(crate) fn render(report: &Report, ui: &crate::ui::Ui) -> String {
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
        let report = Report {
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
