//! `cargo xtask down`: removes the stack's containers and network, and with `--volumes` its
//! data. Only objects labelled as this stack's are touched.

use std::process::ExitCode;

use anyhow::bail;

use crate::Context;
use crate::runtime::RuntimeKind;
use crate::runtime::docker::DockerRuntime;
use crate::runtime::docker::names::Names;

/// Options of `cargo xtask down`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Also delete the database and Redis data (the next `dev` starts from an empty database).
    #[arg(long)]
    pub(crate) volumes: bool,
}

pub(crate) async fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    if ctx.runtime() == RuntimeKind::Kind {
        bail!(crate::runtime::KIND_NOT_AVAILABLE);
    }
    // No manifests or secrets needed: `down` must work even when they are broken.
    let docker = crate::docker::connect().await?;
    let runtime = DockerRuntime::new(
        docker,
        Names::new(crate::runtime::docker::session::stack_name()?),
    );
    let step = ctx.ui().step("Removing the stack");
    match runtime.down(args.volumes).await {
        Ok((containers, networks, volumes)) => {
            let summary = if args.volumes {
                format!("{containers} containers, {networks} networks, {volumes} volumes")
            } else {
                format!(
                    "{containers} containers, {networks} networks (data kept; --volumes deletes it)"
                )
            };
            step.done(summary);
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            step.fail();
            Err(err)
        }
    }
}
