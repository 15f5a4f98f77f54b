//! `cargo xtask restart SVC`: one service in a new container (docker) or new pods (kind) from
//! the image it runs, without a rebuild; then ready and answering, as `dev` leaves it.

use std::process::ExitCode;
use std::time::Duration;

use crate::context::Context;
use crate::runtime::report::Change;

/// Options of `cargo xtask restart`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The service (api, web, postgres, redis).
    pub(crate) service: String,

    /// How long the new copy may take to become ready, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) timeout: u64,
}

/// Restarts the service and says what proved it is back.
pub(crate) async fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let step = ctx.ui().step(format!("Restarting {}", args.service));
    let replaced = ctx
        .runtime()
        .replace(
            ctx,
            &args.service,
            Change::Restart,
            Duration::from_secs(args.timeout),
            &step.reporter(),
        )
        .await;
    step.conclude(replaced, |replaced| {
        format!("restarted · {}", replaced.detail)
    })?;
    Ok(ExitCode::SUCCESS)
}
