//! `cargo xtask logs [SVC]`: one service's output, or every service's with a coloured prefix;
//! `-f` follows until Ctrl-C.

use std::process::ExitCode;

use crate::context::Context;
use crate::runtime::logs_format::{self, LogOptions, Rendering, Since};

/// Options of `cargo xtask logs`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The service (api, web, postgres, redis); all of them when left out.
    pub(crate) service: Option<String>,

    /// Keep printing new lines until Ctrl-C.
    #[arg(short, long)]
    pub(crate) follow: bool,

    /// Only lines newer than this: a duration (`30s`, `10m`, `2h`, `1d`) or an RFC 3339 time.
    #[arg(long, value_parser = logs_format::parse_since)]
    pub(crate) since: Option<Since>,

    /// The lines exactly as the services wrote them; without it, the JSON lines of the API and
    /// the dashboard read as time, level, message and the request's method, path, status and
    /// latency.
    #[arg(long)]
    pub(crate) raw: bool,

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
        rendering: if args.raw {
            Rendering::Raw
        } else {
            Rendering::Readable
        },
    };
    ctx.runtime()
        .logs(
            ctx,
            args.service.as_deref(),
            &options,
            &mut std::io::stdout(),
        )
        .await?;
    Ok(ExitCode::SUCCESS)
}
