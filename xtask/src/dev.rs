//! `cargo xtask dev`: from nothing (or from any earlier state) to a healthy, seeded stack on
//! 127.0.0.1, redoing only what changed.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::Context;
use crate::images;
use crate::prereq;
use crate::runtime::RuntimeKind;
use crate::runtime::docker::Applied;
use crate::runtime::docker::plan::ContainerPlan;
use crate::runtime::docker::session::{SecretsMode, Session, host_port_of};
use crate::seed;
use crate::ui::human_duration;

/// Options of `cargo xtask dev`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Do not open the dashboard in a browser at the end (never opened without a terminal).
    #[arg(long)]
    pub(crate) no_open: bool,

    /// How long each service may take to become ready, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) timeout: u64,
}

/// Brings the stack up on the runtime chosen: the docker path is in this file, the kind path in
/// [`crate::runtime::kind::up`], both with the same `Args`.
pub(crate) async fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    match ctx.runtime() {
        RuntimeKind::Docker => docker(ctx, &args).await,
        RuntimeKind::Kind => crate::runtime::kind::up::run(ctx, &args).await,
    }
}

async fn docker(ctx: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let ui = ctx.ui();
    let started = Instant::now();

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
    let options = prereq::Options {
        need_kind: false,
        ports: wanted.clone(),
        owned_ports: owned,
    };
    if let Err(err) = require_prerequisites(ctx, &step, &options).await {
        step.fail();
        return Err(err);
    }
    let ports: Vec<String> = wanted.iter().map(u16::to_string).collect();
    step.done(format!(
        "{} workload(s) in the manifests, host ports: {}",
        session.stack.workloads.len(),
        if ports.is_empty() {
            "none".to_owned()
        } else {
            ports.join(", ")
        }
    ));

    let step = ui.step("Images");
    let images = images::resolve_stack(
        ctx,
        session.runtime.docker(),
        &session.stack,
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
    crate::runtime::docker::kubelet::ensure_running(ctx)?;
    let timeout = Duration::from_secs(args.timeout);
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
    match seed::load(&session, false).await {
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
    summary(ctx, &urls, changed, plans.len(), started.elapsed());
    open_dashboard(ctx, args, web_url(&plans).as_deref());
    Ok(ExitCode::SUCCESS)
}

/// Runs the prerequisite checks under `step`: warnings are printed, failures are one error that
/// lists each with its fix.
pub(crate) async fn require_prerequisites(
    ctx: &Context,
    step: &crate::ui::Step,
    options: &prereq::Options,
) -> anyhow::Result<()> {
    let checks = prereq::run_checks(ctx, options).await.checks;
    let failures: Vec<_> = checks
        .iter()
        .filter(|c| c.status == prereq::Status::Fail)
        .collect();
    if !failures.is_empty() {
        let lines: Vec<String> = failures
            .iter()
            .map(|c| match &c.fix {
                Some(fix) => format!("  {}: {}\n    fix: {fix}", c.name, c.detail),
                None => format!("  {}: {}", c.name, c.detail),
            })
            .collect();
        bail!("this machine is not ready:\n{}", lines.join("\n"));
    }
    for warning in checks.iter().filter(|c| c.status == prereq::Status::Warn) {
        step.println(format!("  note: {}: {}", warning.name, warning.detail));
    }
    Ok(())
}

/// After readiness: the checks that prove each service does its job, not merely runs.
/// How long a ready API may report `degraded` (Redis not connected yet) before `dev` fails.
const API_SETTLE: Duration = Duration::from_secs(15);

async fn verify(
    session: &Session,
    plan: &ContainerPlan,
    timeout: Duration,
) -> anyhow::Result<String> {
    let docker = session.runtime.docker();
    let exec = |cmd: Vec<String>| async move {
        crate::runtime::docker::exec::capture(docker, &plan.container_name, &cmd, None, &[]).await
    };
    match plan.workload.as_str() {
        crate::runtime::docker::session::DATABASE_WORKLOAD => {
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
            Some(url) => api_health(&url, timeout).await,
            None => Ok("ready".to_owned()),
        },
        _ => Ok("ready".to_owned()),
    }
}

/// `GET /health` until the API reports `ok`. A fresh API is ready once the database answers;
/// its Redis connection may take a moment more, so `degraded` is waited out (briefly).
pub(crate) async fn api_health(url: &str, timeout: Duration) -> anyhow::Result<String> {
    let started = std::time::Instant::now();
    loop {
        let body: serde_json::Value = get_when_answering(url, timeout)
            .await?
            .json()
            .await
            .with_context(|| format!("reading GET {url}"))?;
        let status = body["status"].as_str().unwrap_or("unknown");
        if status == "ok" {
            return Ok("/health ok".to_owned());
        }
        if started.elapsed() > API_SETTLE.min(timeout) {
            bail!("the API reports {status}: {body}\nnext: `cargo xtask logs api` says why");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET url`, retried while the connection fails (refused, reset, timed out) for up to
/// `timeout`: a service that is ready can still be out of reach for a moment, as on kind, where
/// a rollout completes before kube-proxy has written the NodePort's rules (it syncs at most once
/// a second there). Any HTTP answer ends the wait, whatever its status.
pub(crate) async fn get_when_answering(
    url: &str,
    timeout: Duration,
) -> anyhow::Result<reqwest::Response> {
    let started = std::time::Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    loop {
        match client.get(url).send().await {
            Ok(response) => return Ok(response),
            Err(err)
                if (err.is_connect() || err.is_timeout() || err.is_request())
                    && started.elapsed() < timeout =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => {
                return Err(err).with_context(|| {
                    format!("GET {url}: no answer within {}s", timeout.as_secs())
                });
            }
        }
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

fn web_url(plans: &[ContainerPlan]) -> Option<String> {
    plans
        .iter()
        .find(|p| p.workload == "web")
        .and_then(|p| published_url(p, "/"))
}

/// The closing lines of `dev`: what changed, the URLs (`(service, url)`), how to go on, and
/// each step's time.
pub(crate) fn summary(
    ctx: &Context,
    urls: &[(String, String)],
    changed: usize,
    total: usize,
    elapsed: Duration,
) {
    let ui = ctx.ui();
    let mut lines = vec![String::new()];
    lines.push(format!(
        "{} the stack is up ({changed} of {total} services changed) in {}",
        ui.paint_green("✓"),
        human_duration(elapsed)
    ));
    for (service, url) in urls {
        lines.push(format!("  {service:<10} {url}"));
    }
    lines.push(format!(
        "  {:<10} `cargo xtask token` (for POST and DELETE)",
        "API token"
    ));
    lines.push(format!(
        "  {:<10} `cargo xtask db-shell`, logs: `cargo xtask logs -f`, stop: `cargo xtask down`",
        "database"
    ));
    let timings: Vec<String> = ui
        .timings()
        .iter()
        .map(|(name, took)| format!("{name} {}", human_duration(*took)))
        .collect();
    lines.push(format!("  {:<10} {}", "timings", timings.join(" · ")));
    eprintln!("{}", lines.join("\n"));
}

/// Opens the dashboard at `url` unless told not to, or with no one at a terminal to see it.
pub(crate) fn open_dashboard(ctx: &Context, args: &Args, url: Option<&str>) {
    if !args.no_open
        && crate::ui::Ui::interactive()
        && std::env::var_os("CI").is_none()
        && let Some(url) = url
    {
        open_browser(ctx, url);
    }
}

fn open_browser(ctx: &Context, url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    if which::which(opener).is_err() {
        ctx.ui().note(format!("open {url} in your browser"));
        return;
    }
    let spawned = crate::cmd::Cmd::new(opener).arg(url).spawn(
        ctx,
        std::process::Stdio::null(),
        std::process::Stdio::null(),
    );
    if spawned.is_err() {
        ctx.ui().note(format!("open {url} in your browser"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_get_waits_for_a_server_that_is_not_listening_yet_and_no_longer() {
        // A port that refuses connections for 600 ms, then answers.
        let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = reserved.local_addr().unwrap();
        drop(reserved);
        let server = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0_u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut request).await;
            tokio::io::AsyncWriteExt::write_all(
                &mut socket,
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{\"status\":\"ok\"}",
            )
            .await
            .unwrap();
        });
        let url = format!("http://{addr}/health");
        assert_eq!(
            api_health(&url, Duration::from_secs(10)).await.unwrap(),
            "/health ok"
        );
        server.await.unwrap();
        // Nobody listening at all: refused until the time is up, then the error says so.
        let started = std::time::Instant::now();
        let err = get_when_answering(&url, Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(500));
        assert!(format!("{err:#}").contains("no answer within"), "{err:#}");
    }
}
