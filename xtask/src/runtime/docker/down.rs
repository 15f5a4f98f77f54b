//! `down` on the docker runtime.

use anyhow::bail;

use super::DockerRuntime;
use super::names::Names;
use crate::context::Context;
use crate::runtime::report::DownOptions;

/// Removes the stack's containers and network, and with `volumes` its data; only objects
/// labelled as this stack's are touched. `keep_cluster` is refused rather than ignored.
pub(crate) async fn run(ctx: &Context, args: &DownOptions) -> anyhow::Result<()> {
    if args.keep_cluster {
        bail!(
            "--keep-cluster is for the kind runtime; the docker runtime has no cluster (`cargo xtask down` removes its containers)"
        );
    }
    // No manifests or secrets needed: `down` must work even when they are broken.
    let docker = crate::docker::connect().await?;
    let runtime = DockerRuntime::new(docker, Names::new(ctx.config().stack_name.as_str()));
    let step = ctx.ui().step("Removing the stack");
    // Its kubelet first, so that nothing restarts what is being removed.
    if let Err(err) = super::kubelet::stop(ctx.state().path(), &ctx.config().stack_name) {
        step.fail();
        return Err(err);
    }
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
            Ok(())
        }
        Err(err) => {
            step.fail();
            Err(err)
        }
    }
}
