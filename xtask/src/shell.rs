//! `cargo xtask shell SVC`: a shell beside a service. Our own images carry no shell, so the
//! shell runs in a helper that shares the service's process namespace: a container on the
//! service's network (docker) or an ephemeral container in its pod (kind); docs/design.md, "A
//! shell beside services that have none".
//! Images that do have one (PostgreSQL, Redis) get a plain exec.

use std::process::ExitCode;

use crate::context::Context;
use crate::runtime::exec_io::exit_code;

/// Options of `cargo xtask shell`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The service (api, web, postgres, redis).
    pub(crate) service: String,

    /// A command to run instead of an interactive shell, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub(crate) command: Vec<String>,
}

/// Opens the shell on either runtime and ends with its exit code, so that `shell SVC -- COMMAND`
/// can be scripted.
pub(crate) async fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let code = ctx
        .runtime()
        .shell(ctx, &args.service, &args.command)
        .await?;
    Ok(exit_code(code))
}
