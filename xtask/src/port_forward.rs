//! `cargo xtask port-forward SVC [PORT]`: a local port on 127.0.0.1 forwarded to a Service that
//! is not published on the host (PostgreSQL, Redis). Each new connection looks the service's
//! container (docker) or ready pod (kind) up again, so the forward survives it being restarted
//! or replaced.

use std::process::ExitCode;

use crate::context::Context;

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
    ctx.runtime()
        .port_forward(ctx, &args.service, args.port)
        .await?;
    Ok(ExitCode::SUCCESS)
}
