//! `cargo xtask logs [SVC]`: one service's output, or every service's with a coloured prefix;
//! `-f` follows until Ctrl-C.

use std::process::ExitCode;

use anyhow::bail;

use crate::Context;
use crate::runtime::RuntimeKind;
use crate::runtime::docker::logs::{self, LogOptions, Since, Target};
use crate::runtime::docker::session::{SecretsMode, Session};
use crate::runtime::kind::session::KindSession;

/// Options of `cargo xtask logs`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The service (api, web, postgres, redis); all of them when left out.
    pub(crate) service: Option<String>,

    /// Keep printing new lines until Ctrl-C.
    #[arg(short, long)]
    pub(crate) follow: bool,

    /// Only lines newer than this: a duration (`30s`, `10m`, `2h`, `1d`) or an RFC 3339 time.
    #[arg(long, value_parser = logs::parse_since)]
    pub(crate) since: Option<Since>,

    /// Only the last N lines of each service.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub(crate) tail: Option<u64>,
}

/// Writes the lines to stdout on either runtime; a service name the manifests do not know fails
/// before anything is printed.
pub(crate) async fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let options = LogOptions {
        follow: args.follow,
        since: args.since,
        tail: args.tail,
        prefix: args.service.is_none(),
        color: console::colors_enabled(),
    };
    let mut out = std::io::stdout();
    match ctx.runtime() {
        RuntimeKind::Docker => docker(ctx, args.service.as_deref(), &options, &mut out).await?,
        RuntimeKind::Kind => {
            let session = KindSession::open(ctx).await?;
            let services: Vec<String> = match &args.service {
                Some(name) => vec![session.stack.named_workload(name)?.name.clone()],
                None => session
                    .stack
                    .workloads
                    .iter()
                    .map(|w| w.name.clone())
                    .collect(),
            };
            let namespace = session.namespace();
            crate::runtime::kind::logs::stream(
                &session.client,
                namespace,
                &services,
                &options,
                &mut out,
            )
            .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn docker(
    ctx: &Context,
    service: Option<&str>,
    options: &LogOptions,
    out: &mut std::io::Stdout,
) -> anyhow::Result<()> {
    let session = Session::open(ctx, SecretsMode::Existing).await?;
    if let Some(name) = service {
        session.workload(name)?;
    }
    let containers = session.runtime.containers().await?;
    let targets: Vec<Target> = session
        .stack
        .workloads
        .iter()
        .filter(|w| service.is_none_or(|name| name == w.name))
        .filter_map(|w| {
            containers
                .iter()
                .find(|c| c.workload == w.name)
                .map(|c| Target {
                    service: w.name.clone(),
                    container: c.name.clone(),
                })
        })
        .collect();
    if targets.is_empty() {
        bail!("no containers to show logs of: start the stack with `cargo xtask dev`");
    }
    logs::stream(session.runtime.docker(), &targets, options, out).await
}
