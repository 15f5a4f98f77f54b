//! `cargo xtask port-forward SVC [PORT]`: a local port on 127.0.0.1 forwarded to a Service that
//! is not published on the host (PostgreSQL, Redis). Each new connection looks the service's
//! container (docker) or ready pod (kind) up again, so the forward survives it being restarted
//! or replaced.

use std::process::ExitCode;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use tokio::net::{TcpListener, TcpStream};

use crate::Context;
use crate::runtime::RuntimeKind;
use crate::runtime::docker::session::{SecretsMode, Session};
use crate::runtime::kind::portforward::{self, Forwarder, ServicePods};
use crate::runtime::kind::session::KindSession;
use crate::stack::Stack;

/// Options of `cargo xtask port-forward`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The Service to reach, as named in manifests/ (e.g. postgres, redis).
    pub(crate) service: String,

    /// The local port on 127.0.0.1 (default: the Service's own port).
    #[arg(value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) port: Option<u16>,
}

/// Serves the forward until Ctrl-C, which `main` treats as its normal end; it returns early only on
/// an error, such as a local port already taken.
pub(crate) async fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    match ctx.runtime() {
        RuntimeKind::Docker => docker(ctx, &args).await,
        RuntimeKind::Kind => kind(ctx, &args).await,
    }
}

/// On kind, through kube-rs: each connection goes to a ready pod of the Service, the same one
/// while it stays ready, a new one when it goes (a rollout, a crash).
async fn kind(ctx: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let session = KindSession::open(ctx).await?;
    let service = session
        .stack
        .services
        .iter()
        .find(|s| s.name == args.service)
        .ok_or_else(|| unknown_service(&session.stack, &args.service))?;
    let port = service
        .ports
        .first()
        .ok_or_else(|| anyhow!("Service {} has no port", args.service))?
        .port;
    let local = args.port.unwrap_or(port);
    let listener = portforward::bind(local).await?;
    eprintln!(
        "forwarding 127.0.0.1:{local} -> service {}:{port} in namespace {}; Ctrl-C stops",
        args.service,
        session.namespace()
    );
    let ui = ctx.ui().clone();
    let forwarder = Forwarder::new(
        ServicePods::new(&session.client, session.namespace(), &args.service, port),
        PATIENCE,
        move |event: &str| ui.note(event),
    );
    portforward::serve(Arc::new(forwarder), listener).await?;
    Ok(ExitCode::SUCCESS)
}

/// How long a connection waits for a ready pod (during a rollout) before it is dropped.
const PATIENCE: Duration = Duration::from_secs(60);

fn unknown_service(stack: &Stack, name: &str) -> anyhow::Error {
    let known: Vec<&str> = stack.services.iter().map(|s| s.name.as_str()).collect();
    anyhow!(
        "no Service named {name:?}; the stack has: {}",
        known.join(", ")
    )
}

async fn docker(ctx: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let session = Session::open(ctx, SecretsMode::Existing).await?;
    let (workload, service_port, target_port) = target(&session, &args.service)?;
    let local = args.port.unwrap_or(service_port);
    let listener = TcpListener::bind(("127.0.0.1", local))
        .await
        .with_context(|| {
            format!("listening on 127.0.0.1:{local}; pick another local port: `cargo xtask port-forward {} <PORT>`", args.service)
        })?;
    let container = session.names().container(&workload);
    eprintln!(
        "forwarding 127.0.0.1:{local} -> {}:{target_port} ({container}); Ctrl-C stops",
        args.service
    );
    loop {
        let (inbound, peer) = listener.accept().await.context("accepting a connection")?;
        let runtime = session.runtime.clone();
        let container = container.clone();
        let ui = ctx.ui().clone();
        tokio::spawn(async move {
            let result = async {
                let ip = runtime
                    .address(&container)
                    .await?
                    .ok_or_else(|| anyhow!("{container} is not running; run `cargo xtask dev`"))?;
                let mut outbound = TcpStream::connect((ip.as_str(), target_port))
                    .await
                    .with_context(|| format!("connecting to {container} at {ip}:{target_port}"))?;
                let mut inbound = inbound;
                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await?;
                anyhow::Ok(())
            }
            .await;
            if let Err(err) = result {
                ui.warn(format!("connection from {peer}: {err:#}"));
            }
        });
    }
}

/// The workload behind a Service, the Service's port, and the container port it targets.
fn target(session: &Session, service_name: &str) -> anyhow::Result<(String, u16, u16)> {
    let service = session
        .stack
        .services
        .iter()
        .find(|s| s.name == service_name)
        .ok_or_else(|| unknown_service(&session.stack, service_name))?;
    let port = service
        .ports
        .first()
        .ok_or_else(|| anyhow!("Service {service_name} has no port"))?;
    Ok((service.workload.clone(), port.port, port.target_port))
}
