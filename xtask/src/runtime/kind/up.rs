//! `cargo xtask dev` on the kind runtime: the cluster (created or reused), the images in its
//! nodes, the manifests applied, each workload rolled out and answering, then the seed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bollard::Docker;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::apply::{self, Applied};
use super::cluster::{Ensured, KindCli};
use super::database::{self, Database};
use super::portforward::Tunnel;
use super::session::KindSession;
use super::{client, load, wait};
use crate::context::Context;
use crate::images::{self, Resolved};
use crate::prereq;
use crate::runtime::checks;
use crate::runtime::database::{DATABASE_WORKLOAD, service_port};
use crate::runtime::report::{UpOptions, UpReport};
use crate::runtime::secrets::{SecretsMode, secrets};
use crate::stack::{Stack, Workload};

/// How often the nodes are looked at while they are not Ready.
const NODE_POLL: Duration = Duration::from_secs(1);

/// `dev` on kind; refuses a `--context` other than its own cluster's, since the images are loaded
/// into that cluster's nodes.
pub(crate) async fn up(ctx: &Context, options: &UpOptions) -> anyhow::Result<UpReport> {
    let kind = KindCli::new(ctx);
    if let Some(other) = ctx.kube_context().filter(|&named| named != kind.context()) {
        bail!(
            "`dev` deploys to its own kind cluster only (its images are loaded into that cluster's nodes), not to `--context {other}`; `status`, `logs`, `shell`, `db-shell`, `seed` and `port-forward` accept --context"
        );
    }
    let ui = ctx.ui();
    let timeout = options.timeout;

    let step = ui.step("Checking prerequisites");
    let checked = async {
        let stack = ctx.config().load_stack()?;
        let ports: Vec<u16> = stack.host_ports.iter().map(|m| m.host_port).collect();
        let options = prereq::Options {
            need_kind: true,
            ports: ports.clone(),
            owned_ports: node_host_ports(ctx).await,
        };
        checks::require_prerequisites(ctx, &step, &options).await?;
        let secrets = secrets(ctx, SecretsMode::Generate)?;
        let docker = crate::docker::connect().await?;
        if let Some(apps) = ctx.config().platform {
            let engine = crate::platform::Platform::of(&docker).await?;
            if apps != engine {
                anyhow::bail!(
                    "WANDER_PLATFORM={apps}, but kind's nodes run the engine's platform, {engine}, and cannot run images of another: unset WANDER_PLATFORM for kind"
                );
            }
        }
        anyhow::Ok((stack, secrets, docker, ports))
    }
    .await;
    let (stack, secrets, docker, _) = step.conclude(checked, |(stack, _, _, ports)| {
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        format!(
            "{} workload(s) in the manifests, host ports: {}",
            stack.workloads.len(),
            ports.join(", ")
        )
    })?;

    let step = ui.step(format!("Kind cluster {}", kind.name()));
    let cluster = async {
        step.sub("looking for it");
        let ensured = kind.ensure(&stack.kind_config, ctx.state().path(), &|note| {
            step.println(format!("  note: {note}"));
        })?;
        if ensured != Ensured::Created {
            let started = start_stopped_nodes(&docker, &kind.nodes()?).await?;
            if !started.is_empty() {
                step.println(format!(
                    "  note: the cluster's node containers were stopped (a restart of Docker, or `docker stop`), and kind does not start them again: started {}",
                    started.join(", ")
                ));
            }
        }
        step.sub("connecting");
        let client = client::connect(&kind, None).await?;
        step.sub("waiting for the nodes to be Ready");
        let ready = wait_nodes_ready(&client, timeout).await?;
        let containers = kind.nodes()?;
        anyhow::Ok((ensured, client, ready, containers))
    }
    .await;
    let (_, client, _, node_containers) = step.conclude(cluster, |(ensured, _, ready, _)| {
        let how = match ensured {
            Ensured::Created => "created",
            Ensured::Reused => "reused",
            Ensured::ReusedForeign => "reused as it is",
        };
        format!(
            "{how}, {} node(s) Ready, context {}",
            ready.len(),
            kind.context()
        )
    })?;
    let session = KindSession::new(ctx, stack, secrets, client);

    let step = ui.step("Images");
    let prepared = async {
        let resolved = images::resolve_stack(
            ctx,
            &docker,
            &session.stack,
            options.profile,
            &step.reporter(),
            &|notice| {
                step.println(format!("  {notice}"));
            },
        )
        .await?;
        step.sub("loading into the nodes");
        let references: Vec<String> = resolved.values().map(|i| i.reference.clone()).collect();
        let loaded =
            load::load_images(&docker, &node_containers, &references, &step.reporter()).await?;
        for line in loaded.iter().filter_map(transfer_line) {
            step.println(line);
        }
        anyhow::Ok((resolved, loaded))
    }
    .await;
    let (resolved, _) = step.conclude(prepared, |(resolved, loaded)| {
        images_summary(resolved, loaded)
    })?;

    let step = ui.step("Applying manifests/");
    let applied = apply::apply_stack(
        &session.client,
        &session.stack,
        &session.secrets,
        &resolved,
        &|object| {
            step.sub(&format!("{}/{}", object.kind, object.name));
            for warning in &object.warnings {
                step.println(format!(
                    "  warning: the API server, on {}/{}: {warning}",
                    object.kind, object.name
                ));
            }
        },
    )
    .await;
    let applied = step.conclude(applied, |applied| {
        let changed = applied.iter().filter(|a| a.changed).count();
        format!(
            "{changed} of {} objects changed (server-side apply as {})",
            applied.len(),
            apply::FIELD_MANAGER
        )
    })?;

    let mut database = None;
    for workload in &session.stack.workloads {
        let step = ui.step(format!("Rolling out {}", workload.name));
        let rolled = async {
            wait::wait_rollout(
                &session.client,
                session.namespace(),
                workload.kind,
                &workload.name,
                timeout,
                &mut |message| step.sub(message),
            )
            .await?;
            step.sub("checking it answers");
            verify(&session, workload, timeout, &mut database).await
        }
        .await;
        step.conclude(rolled, |detail| {
            let changed = workload_changed(&applied, workload);
            format!(
                "{} · {detail}",
                if changed { "updated" } else { "unchanged" }
            )
        })?;
    }

    let step = ui.step("Seeding the database");
    let seeded = async {
        let mut database = match database {
            Some(database) => database,
            None => database::connect(&session, database::PATIENCE).await?,
        };
        database::load(&session, &mut database, false).await
    }
    .await;
    step.conclude(seeded, Clone::clone)?;

    let urls: Vec<(String, String)> = session
        .stack
        .host_ports
        .iter()
        .map(|m| {
            (
                m.service.clone(),
                format!("http://{}:{}", m.listen_address, m.host_port),
            )
        })
        .collect();
    let changed = session
        .stack
        .workloads
        .iter()
        .filter(|w| workload_changed(&applied, w))
        .count();
    Ok(UpReport {
        urls,
        changed,
        total: session.stack.workloads.len(),
        images: resolved
            .into_iter()
            .map(|(manifest, image)| (manifest, image.reference))
            .collect(),
    })
}

/// Whether the apply changed `workload`'s object (so its pods rolled).
fn workload_changed(applied: &[Applied], workload: &Workload) -> bool {
    applied
        .iter()
        .any(|a| a.changed && a.kind == workload.kind.as_str() && a.name == workload.name)
}

/// The line kept for one image sent into a node: what, where, how big, how long.
fn transfer_line(loaded: &load::Loaded) -> Option<String> {
    match loaded.outcome {
        load::Outcome::Loaded { bytes, elapsed } => Some(format!(
            "  {} → {}: {:.1} MB in {}",
            loaded.image,
            loaded.node,
            bytes as f64 / 1_000_000.0,
            crate::ui::human_duration(elapsed)
        )),
        load::Outcome::Present => None,
    }
}

/// "2 built, 2 up to date; 1 loaded into the nodes (3.1s), 3 already there".
fn images_summary(resolved: &BTreeMap<String, Resolved>, loaded: &[load::Loaded]) -> String {
    let built = resolved.values().filter(|i| i.built).count();
    let sent: Vec<&load::Loaded> = loaded
        .iter()
        .filter(|l| matches!(l.outcome, load::Outcome::Loaded { .. }))
        .collect();
    let took: Duration = sent
        .iter()
        .map(|l| match l.outcome {
            load::Outcome::Loaded { elapsed, .. } => elapsed,
            load::Outcome::Present => Duration::ZERO,
        })
        .sum();
    let built = if built == 0 {
        format!("{} up to date", resolved.len())
    } else {
        format!("{built} built, {} up to date", resolved.len() - built)
    };
    if sent.is_empty() {
        format!("{built}; all already in the nodes")
    } else {
        format!(
            "{built}; {} loaded into the nodes ({}), {} already there",
            sent.len(),
            crate::ui::human_duration(took),
            loaded.len() - sent.len()
        )
    }
}

/// Starts the node containers of an existing cluster that are not running, and returns their
/// names. kind's nodes restart only after a failure (`--restart=on-failure:1`), so after a
/// `docker stop` or a restart of Docker Desktop the cluster stays down, and every command that
/// asks it anything (`kind get kubeconfig` runs in the control-plane node) fails.
async fn start_stopped_nodes(docker: &Docker, nodes: &[String]) -> anyhow::Result<Vec<String>> {
    let mut started = Vec::new();
    for node in nodes {
        let details = docker
            .inspect_container(node, None)
            .await
            .with_context(|| format!("looking at the kind node container {node}"))?;
        if crate::runtime::docker::is_running(&details) {
            continue;
        }
        match docker.start_container(node, None).await {
            // 304: started meanwhile.
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => started.push(node.clone()),
            Err(err) => {
                return Err(err).with_context(|| {
                    format!(
                        "starting the stopped kind node {node}; `cargo xtask down` then `cargo xtask dev` makes the cluster anew"
                    )
                });
            }
        }
    }
    Ok(started)
}

/// After the rollout: the checks that prove each service does its job, not merely runs. The
/// database connection is kept for the seed.
pub(super) async fn verify(
    session: &KindSession,
    workload: &Workload,
    timeout: Duration,
    database: &mut Option<Database>,
) -> anyhow::Result<String> {
    match workload.name.as_str() {
        DATABASE_WORKLOAD => {
            let mut connected = database::connect(session, database::PATIENCE).await?;
            database::check(&mut connected).await?;
            *database = Some(connected);
            Ok("SELECT 1 ok".to_owned())
        }
        "redis" => {
            let (service, port) = service_port(&session.stack, workload)?;
            redis_ping(session, &service, port).await?;
            Ok("PING ok".to_owned())
        }
        name => {
            let Some(url) = host_url(&session.stack, workload) else {
                return Ok("ready".to_owned());
            };
            if name == "api" {
                checks::api_health(&format!("{url}/health"), timeout).await
            } else {
                checks::page_answers(&url, name, timeout).await
            }
        }
    }
}

/// `http://127.0.0.1:<port>` where kind publishes one of `workload`'s Services on the host.
fn host_url(stack: &Stack, workload: &Workload) -> Option<String> {
    stack.services_of(workload).into_iter().find_map(|service| {
        let mapping = stack.host_port_of(&service.name)?;
        Some(format!(
            "http://{}:{}",
            mapping.listen_address, mapping.host_port
        ))
    })
}

/// Redis answers `PING` through a port-forward to its Service.
async fn redis_ping(session: &KindSession, service: &str, port: u16) -> anyhow::Result<()> {
    let tunnel = Tunnel::open(
        &session.client,
        session.namespace(),
        service,
        port,
        database::PATIENCE,
    )
    .await?;
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(tunnel.address()).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut reply = [0_u8; 64];
        let read = stream.read(&mut reply).await?;
        anyhow::Ok(String::from_utf8_lossy(&reply[..read]).trim().to_owned())
    };
    let reply = tokio::time::timeout(database::PATIENCE, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("Redis did not answer PING within {:?}", database::PATIENCE))?
        .with_context(|| {
            let forward = tunnel
                .last_event()
                .map_or_else(String::new, |event| format!(" (the port-forward: {event})"));
            format!("sending PING to Redis through a port-forward to service {service}{forward}")
        })?;
    if reply != "+PONG" {
        bail!("Redis is up but PING answered {reply:?}; `cargo xtask logs redis` says why");
    }
    Ok(())
}

/// The host ports the cluster's node containers publish (kind's `extraPortMappings`): ours, so
/// not a conflict for a second `dev`. None when the engine or the cluster is not there.
pub(crate) async fn node_host_ports(ctx: &Context) -> Vec<u16> {
    let Ok(nodes) = KindCli::new(ctx).nodes() else {
        return Vec::new();
    };
    let Ok(docker) = crate::docker::connect().await else {
        return Vec::new();
    };
    let mut ports = Vec::new();
    for node in nodes {
        ports.extend(published_ports(&docker, &node).await);
    }
    ports
}

async fn published_ports(docker: &Docker, container: &str) -> Vec<u16> {
    let Ok(inspect) = docker.inspect_container(container, None).await else {
        return Vec::new();
    };
    inspect
        .host_config
        .and_then(|h| h.port_bindings)
        .into_iter()
        .flat_map(std::collections::HashMap::into_values)
        .flatten()
        .flatten()
        .filter_map(|binding| binding.host_port?.parse().ok())
        .collect()
}

/// Waits until every node of the cluster is Ready; their names.
async fn wait_nodes_ready(client: &kube::Client, timeout: Duration) -> anyhow::Result<Vec<String>> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + timeout;
    loop {
        let list = nodes
            .list(&ListParams::default())
            .await
            .context("listing the cluster's nodes (is the kind cluster running?)")?;
        let not_ready = not_ready_nodes(&list.items);
        if !list.items.is_empty() && not_ready.is_empty() {
            return Ok(list
                .items
                .iter()
                .filter_map(|n| n.metadata.name.clone())
                .collect());
        }
        if Instant::now() >= deadline {
            let detail = if list.items.is_empty() {
                "the cluster has no nodes".to_owned()
            } else {
                not_ready.join("; ")
            };
            bail!(
                "the kind cluster's nodes are not Ready after {timeout:?}: {detail}; `cargo xtask down` then `cargo xtask dev` recreates the cluster"
            );
        }
        tokio::time::sleep(NODE_POLL).await;
    }
}

/// Each node that is not Ready, with the reason its Ready condition gives.
fn not_ready_nodes(nodes: &[Node]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|node| {
            let name = node.metadata.name.clone().unwrap_or_default();
            let ready = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
            match ready {
                Some(c) if c.status == "True" => None,
                Some(c) => Some(format!(
                    "{name}: {}",
                    c.message
                        .clone()
                        .or_else(|| c.reason.clone())
                        .unwrap_or_else(|| format!("Ready is {}", c.status))
                )),
                None => Some(format!("{name}: no Ready condition yet")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
