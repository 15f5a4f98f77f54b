//! `status` on the docker runtime: each workload's container, its readiness probe run now, and
//! what the runtime's kubelet reports of its restarts.

use super::kubelet;
use super::readiness;
use super::session::Session;
use crate::context::Context;
use crate::runtime::report::{ServiceStatus, StatusReport};
use crate::runtime::secrets::SecretsMode;

/// The report of the stack this context names.
pub(crate) async fn report(ctx: &Context) -> anyhow::Result<StatusReport> {
    let session = Session::open(ctx, SecretsMode::Existing).await?;
    let kubelet = kubelet::read_report(ctx.state().path(), session.names().stack());
    collect(&session, kubelet.as_ref()).await
}

/// Looks at every workload of the manifests and its container, with what the runtime's kubelet
/// reports of them (`None`: it is not running).
async fn collect(
    session: &Session,
    kubelet: Option<&kubelet::Report>,
) -> anyhow::Result<StatusReport> {
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
    Ok(StatusReport {
        runtime: "docker",
        stack: session.names().stack().to_owned(),
        healthy: !services.is_empty() && services.iter().all(|s| s.health == "healthy"),
        services,
        notes,
    })
}
