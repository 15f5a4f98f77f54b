//! `up` (`cargo xtask dev`) on the docker runtime.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;

use super::Applied;
use super::plan::ContainerPlan;
use super::session::{Session, host_port_of};
use crate::context::Context;
use crate::images;
use crate::prereq;
use crate::runtime::checks;
use crate::runtime::database::DATABASE_WORKLOAD;
use crate::runtime::report::{UpOptions, UpReport};
use crate::runtime::secrets::SecretsMode;

/// What the runtime does with the manifests' NetworkPolicies: checked at load, not enforced
/// (docs/design.md, "Network policies"); empty when there are none.
fn policies_note(stack: &crate::stack::Stack) -> String {
    let count = stack
        .objects
        .iter()
        .filter(|o| matches!(o.object, crate::stack::Object::NetworkPolicy(_)))
        .count();
    match count {
        0 => String::new(),
        1 => "; its NetworkPolicy is checked, not enforced: one network for the stack".to_owned(),
        n => format!(
            "; its {n} NetworkPolicies are checked, not enforced: one network for the stack"
        ),
    }
}

/// Brings the stack up on the engine: prerequisites, images, each workload's container in
/// dependency order (started, ready, answering), the runtime's kubelet, the seed.
pub(crate) async fn up(ctx: &Context, options: &UpOptions) -> anyhow::Result<UpReport> {
    let ui = ctx.ui();

    let step = ui.step("Checking prerequisites");
    let session = match Session::open(ctx, SecretsMode::Generate).await {
        Ok(session) => session,
        Err(err) => {
            step.fail();
            return Err(err);
        }
    };
    let wanted: Vec<u16> = session
        .stack
        .host_ports
        .iter()
        .map(|m| m.host_port)
        .collect();
    let owned: Vec<u16> = session
        .runtime
        .containers()
        .await?
        .iter()
        .flat_map(|c| c.ports.iter().filter_map(|p| host_port_of(p)))
        .collect();
    let needs = prereq::Options {
        need_kind: false,
        ports: wanted.clone(),
        owned_ports: owned,
    };
    if let Err(err) = checks::require_prerequisites(ctx, &step, &needs).await {
        step.fail();
        return Err(err);
    }
    let ports: Vec<String> = wanted.iter().map(u16::to_string).collect();
    step.done(format!(
        "{} workload(s) in the manifests, host ports: {}{}",
        session.stack.workloads.len(),
        if ports.is_empty() {
            "none".to_owned()
        } else {
            ports.join(", ")
        },
        policies_note(&session.stack)
    ));

    let step = ui.step("Images");
    let images = images::resolve_stack(
        ctx,
        session.runtime.docker(),
        &session.stack,
        options.profile,
        &step.reporter(),
        &|notice| step.println(format!("  {notice}")),
    )
    .await;
    let images = match images {
        Ok(images) => images,
        Err(err) => {
            step.fail();
            return Err(err);
        }
    };
    let built = images.values().filter(|i| i.built).count();
    step.done(if built == 0 {
        format!("{} up to date", images.len())
    } else {
        format!("{built} built, {} up to date", images.len() - built)
    });
    let references: BTreeMap<String, String> = images
        .into_iter()
        .map(|(manifest, image)| (manifest, image.reference))
        .collect();

    let plans = session.plans(&references)?;
    session.runtime.ensure_network().await?;
    // The probes are watched from here on, also when a later step fails or is interrupted.
    super::kubelet::ensure_running(ctx)?;
    let timeout = options.timeout;
    let mut changed = 0;
    for plan in &plans {
        let step = ui.step(format!("Starting {}", plan.workload));
        let result = async {
            step.sub("applying");
            let applied = session.runtime.apply(plan).await?;
            step.sub("waiting for readiness");
            session
                .runtime
                .wait_ready(plan, timeout, &step.reporter())
                .await?;
            step.sub("checking it answers");
            let detail = verify(&session, plan, timeout).await?;
            anyhow::Ok((applied, detail))
        }
        .await;
        match result {
            Ok((applied, detail)) => {
                if applied != Applied::Unchanged {
                    changed += 1;
                }
                step.done(format!("{} · {detail}", describe(applied)));
            }
            Err(err) => {
                step.fail();
                return Err(err);
            }
        }
    }

    let step = ui.step("Seeding the database");
    match super::database::load(&session, false).await {
        Ok(summary) => {
            step.done(summary);
        }
        Err(err) => {
            step.fail();
            return Err(err);
        }
    }

    let urls: Vec<(String, String)> = plans
        .iter()
        .flat_map(|plan| &plan.published)
        .map(|p| {
            (
                p.service.clone(),
                format!("http://{}:{}", p.host_ip, p.host_port),
            )
        })
        .collect();
    Ok(UpReport {
        urls,
        changed,
        total: plans.len(),
        images: references,
    })
}

/// After readiness: the check that proves each service does its job, not merely runs.
pub(super) async fn verify(
    session: &Session,
    plan: &ContainerPlan,
    timeout: Duration,
) -> anyhow::Result<String> {
    let docker = session.runtime.docker();
    let exec = |cmd: Vec<String>| async move {
        super::exec::capture(docker, &plan.container_name, &cmd, None, &[]).await
    };
    match plan.workload.as_str() {
        DATABASE_WORKLOAD => {
            let database = session.database().await?;
            let out = exec(database.psql(&["-tAc", "SELECT 1"])).await?;
            if out.exit_code != 0 || out.stdout_text().trim() != "1" {
                bail!(
                    "PostgreSQL is up but `SELECT 1` failed: {}",
                    out.stderr_text().trim()
                );
            }
            Ok("SELECT 1 ok".to_owned())
        }
        "redis" => {
            let out = exec(vec!["redis-cli".into(), "ping".into()]).await?;
            let reply = out.stdout_text().trim().to_owned();
            if reply != "PONG" {
                bail!("Redis is up but PING answered {reply:?}");
            }
            Ok("PING ok".to_owned())
        }
        "api" => match published_url(plan, "/health") {
            Some(url) => checks::api_health(&url, timeout).await,
            None => Ok("ready".to_owned()),
        },
        name => match published_url(plan, "") {
            Some(url) => checks::page_answers(&url, name, timeout).await,
            None => Ok("ready".to_owned()),
        },
    }
}

fn describe(applied: Applied) -> &'static str {
    match applied {
        Applied::Unchanged => "unchanged",
        Applied::Started => "started",
        Applied::Created => "created",
        Applied::Replaced => "replaced",
    }
}

fn published_url(plan: &ContainerPlan, path: &str) -> Option<String> {
    plan.published
        .first()
        .map(|p| format!("http://{}:{}{path}", p.host_ip, p.host_port))
}
