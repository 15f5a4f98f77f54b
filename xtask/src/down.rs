//! `cargo xtask down`: on docker, removes the stack's containers and network, and with
//! `--volumes` its data; only objects labelled as this stack's are touched. On kind, deletes the
//! cluster, or with `--keep-cluster` only the stack's namespace (the data goes with either).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

use crate::Context;
use crate::runtime::RuntimeKind;
use crate::runtime::docker::DockerRuntime;
use crate::runtime::docker::names::Names;
use crate::runtime::kind::cluster::KindCli;
use crate::runtime::kind::session::KindSession;

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

/// Takes the stack down on the runtime chosen; `--keep-cluster` on docker is refused rather than
/// ignored.
pub(crate) async fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    match ctx.runtime() {
        RuntimeKind::Docker if args.keep_cluster => bail!(
            "--keep-cluster is for the kind runtime; the docker runtime has no cluster (`cargo xtask down` removes its containers)"
        ),
        RuntimeKind::Docker => docker(ctx, &args).await,
        RuntimeKind::Kind => kind(ctx, &args).await,
    }
}

async fn kind(ctx: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    // No manifests needed when the whole cluster goes: `down` must work when they are broken.
    if !args.keep_cluster {
        let kind = KindCli::new(ctx);
        if let Some(other) = ctx.kube_context().filter(|&named| named != kind.context()) {
            bail!(
                "`down` deletes its own kind cluster {}, never `--context {other}`; `--keep-cluster --context {other}` deletes only the stack's namespace there",
                kind.name()
            );
        }
        let step = ctx
            .ui()
            .step(format!("Deleting the kind cluster {}", kind.name()));
        let deleted = kind.delete_if_exists(ctx.state().path());
        step.conclude(deleted, |existed| {
            if *existed {
                "deleted, with the stack's data".to_owned()
            } else {
                "there was none".to_owned()
            }
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let session = KindSession::open(ctx).await?;
    let namespace = session.namespace().to_owned();
    let step = ctx.ui().step(format!("Deleting the namespace {namespace}"));
    let deleted =
        crate::runtime::kind::down::delete_namespace(&session.client, &namespace, NAMESPACE_GONE)
            .await;
    step.conclude(deleted, |existed| {
        if *existed {
            "deleted, with the stack's data; the cluster is kept".to_owned()
        } else {
            "there was none".to_owned()
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// How long `down --keep-cluster` waits for the namespace's pods and volumes to go.
const NAMESPACE_GONE: Duration = Duration::from_secs(180);

async fn docker(ctx: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    // No manifests or secrets needed: `down` must work even when they are broken.
    let docker = crate::docker::connect().await?;
    let runtime = DockerRuntime::new(docker, Names::new(ctx.config().stack_name.as_str()));
    let step = ctx.ui().step("Removing the stack");
    // Its kubelet first, so that nothing restarts what is being removed.
    if let Err(err) =
        crate::runtime::docker::kubelet::stop(ctx.state().path(), &ctx.config().stack_name)
    {
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
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            step.fail();
            Err(err)
        }
    }
}
