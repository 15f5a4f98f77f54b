//! One workload replaced on the docker runtime: new images after a rebuild (the watch loop), or
//! the same ones in a new container (`restart`).
//!
//! A container holds its workload's host port, so the old one stops before the new one starts.
//! When the new one does not get ready, the old image is started again from its plan, and the
//! error says whether that worked: a broken save costs the developer its own failure, not the
//! stack.

use std::time::Duration;

use anyhow::anyhow;

use super::Applied;
use super::plan::ContainerPlan;
use super::session::Session;
use crate::context::Context;
use crate::runtime::report::{Change, Replaced};
use crate::runtime::secrets::SecretsMode;

/// How many of the failed container's last log lines the error carries.
const FAILED_LOG_LINES: usize = 20;

/// Replaces `workload`'s container as `change` says, waits until the new one is ready and
/// answering, and reports what proved it.
pub(crate) async fn replace(
    ctx: &Context,
    workload: &str,
    change: Change<'_>,
    timeout: Duration,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Replaced> {
    let session = Session::open(ctx, SecretsMode::Existing).await?;
    let workload = session.workload(workload)?.name.clone();
    let previous = running_plan(&session, &workload).await?;
    let plan = match change {
        Change::Restart => previous.clone().ok_or_else(|| {
            anyhow!("{workload} is not running, so there is nothing to restart: `cargo xtask dev` starts the stack")
        })?,
        Change::Images(images) => session.plan(session.workload(&workload)?, images)?,
    };
    // The probes of the new container are watched like every other's.
    super::kubelet::ensure_running(ctx)?;
    on_progress("replacing the container");
    let applied = match change {
        Change::Restart => session.runtime.recreate(&plan).await?,
        Change::Images(_) => session.runtime.apply(&plan).await?,
    };
    if applied == Applied::Unchanged {
        return Ok(Replaced {
            changed: false,
            detail: "already running these images".to_owned(),
        });
    }
    match ready(&session, &plan, timeout, on_progress).await {
        Ok(detail) => Ok(Replaced {
            changed: true,
            detail,
        }),
        Err(err) => {
            let restored = match previous.filter(|p| p.hash() != plan.hash()) {
                Some(previous) => {
                    on_progress("starting the previous version again");
                    let back = async {
                        session.runtime.apply(&previous).await?;
                        ready(&session, &previous, timeout, on_progress).await
                    };
                    match back.await {
                        Ok(_) => "the previous version is serving again".to_owned(),
                        Err(back) => format!(
                            "the previous version could not be started again either ({back:#}): nothing serves {workload} now"
                        ),
                    }
                }
                None => format!("nothing serves {workload} now"),
            };
            Err(err.context(format!("the new {workload} did not get ready; {restored}")))
        }
    }
}

/// Ready (its readiness probe passes), then answering: the checks `up` makes.
async fn ready(
    session: &Session,
    plan: &ContainerPlan,
    timeout: Duration,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<String> {
    on_progress("waiting for readiness");
    let waited = session.runtime.wait_ready(plan, timeout, on_progress).await;
    if let Err(err) = waited {
        let logs = session
            .runtime
            .last_logs(&plan.container_name, FAILED_LOG_LINES)
            .await;
        // The readiness wait names the lines of a container that exited; one that runs but is
        // never ready gets them here.
        if logs.is_empty() || format!("{err:#}").contains(&logs) {
            return Err(err);
        }
        return Err(err.context(format!("its last log lines:\n{logs}")));
    }
    on_progress("checking it answers");
    super::up::verify(session, plan, timeout).await
}

/// The plan of the container `workload` runs now, if it runs.
async fn running_plan(session: &Session, workload: &str) -> anyhow::Result<Option<ContainerPlan>> {
    let plans = session.current_plans().await?;
    let Some(plan) = plans.into_iter().find(|p| p.workload == workload) else {
        return Ok(None);
    };
    Ok(session
        .runtime
        .is_running(&plan.container_name)
        .await?
        .then_some(plan))
}
