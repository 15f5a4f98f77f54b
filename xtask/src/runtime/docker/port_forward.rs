//! `port-forward` on the docker runtime: a local listener whose connections are copied to the
//! service's container, looked up again for each one so that the forward survives a restart.

use anyhow::{Context as _, anyhow};
use tokio::net::{TcpListener, TcpStream};

use super::session::Session;
use crate::context::Context;
use crate::runtime::secrets::SecretsMode;

/// Serves 127.0.0.1:`local` (default: the Service's port) until Ctrl-C, each connection to the
/// service's container as it is then.
pub(crate) async fn forward(
    ctx: &Context,
    service: &str,
    local: Option<u16>,
) -> anyhow::Result<()> {
    let session = Session::open(ctx, SecretsMode::Existing).await?;
    let (workload, service_port, target_port) = target(&session, service)?;
    let local = local.unwrap_or(service_port);
    let listener = TcpListener::bind(("127.0.0.1", local))
        .await
        .with_context(|| {
            format!("listening on 127.0.0.1:{local}; pick another local port: `cargo xtask port-forward {service} <PORT>`")
        })?;
    let container = session.names().container(&workload);
    eprintln!(
        "forwarding 127.0.0.1:{local} -> {service}:{target_port} ({container}); Ctrl-C stops"
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
    let service = session.stack.named_service(service_name)?;
    let port = service
        .ports
        .first()
        .ok_or_else(|| anyhow!("Service {service_name} has no port"))?;
    Ok((service.workload.clone(), port.port, port.target_port))
}
