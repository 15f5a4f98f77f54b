//! `cargo xtask down`: on docker, removes the stack's containers and network, and with
//! `--volumes` its data; only objects labelled as this stack's are touched. On kind, deletes the
//! cluster, or with `--keep-cluster` only the stack's namespace (the data goes with either).

use std::process::ExitCode;

use crate::context::Context;
use crate::runtime::report::DownOptions;

/// Options of `cargo xtask down`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Also delete the database and Redis data (the next `dev` starts from an empty database).
    #[arg(long)]
    pub(crate) volumes: bool,

    /// kind runtime: keep the cluster, delete only the stack's namespace (faster next `dev`).
    #[arg(long)]
    pub(crate) keep_cluster: bool,
}

/// Takes the stack down on the runtime chosen.
pub(crate) async fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let options = DownOptions {
        volumes: args.volumes,
        keep_cluster: args.keep_cluster,
    };
    ctx.runtime().down(ctx, &options).await?;
    Ok(ExitCode::SUCCESS)
}
