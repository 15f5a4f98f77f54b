//! `cargo xtask seed`: loads `db/seed.sql` into the stack's database (idempotent), after
//! `db/reset.sql` with `--reset`. On docker both run through psql inside the database container,
//! so no port needs to be reachable from the host; on kind they go over a port-forward that
//! kube-rs opens to the database Service.

use std::process::ExitCode;

use crate::context::Context;

/// Options of `cargo xtask seed`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Empty every table (and restart the ids) before seeding: the data is lost.
    #[arg(long)]
    pub(crate) reset: bool,
}

/// Seeds (after the reset with `--reset`) on the runtime chosen; the stack must be running, with
/// the secrets of an earlier `dev`.
pub(crate) async fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    ctx.runtime().seed(ctx, args.reset).await?;
    Ok(ExitCode::SUCCESS)
}
