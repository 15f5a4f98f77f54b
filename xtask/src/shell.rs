//! `cargo xtask shell SVC`: a shell beside a service. Our own images carry no shell, so the
//! shell runs in a helper that shares the service's process namespace (DESIGN.md decision 3): a
//! container on the service's network (docker) or an ephemeral container in its pod (kind).
//! Images that do have one (PostgreSQL, Redis) get a plain exec.

use std::process::ExitCode;

use anyhow::bail;

use crate::Context;
use crate::runtime::RuntimeKind;
use crate::runtime::docker::exec::{self, ExecIo};
use crate::runtime::docker::session::{SecretsMode, Session};
use crate::runtime::kind::cluster::KindCli;
use crate::runtime::kind::exec as kind_exec;
use crate::runtime::kind::session::KindSession;
use crate::runtime::kind::{debug, load};

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
    let code = match ctx.runtime() {
        RuntimeKind::Docker => docker(ctx, &args).await?,
        RuntimeKind::Kind => kind(ctx, &args).await?,
    };
    Ok(exit_code(code))
}

/// The shell's command: an interactive `/bin/sh` (with a terminal), or `sh -c` of the words
/// after `--`.
fn shell_command(args: &Args) -> (Vec<String>, ExecIo) {
    let interactive = args.command.is_empty();
    let command = if interactive {
        vec!["/bin/sh".to_owned()]
    } else {
        vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            args.command.join(" "),
        ]
    };
    let io = ExecIo {
        tty: interactive,
        forward_stdin: true,
        env: Vec::new(),
    };
    (command, io)
}

/// On kind, through kube-rs: an exec into a ready pod of the service, or, for images without a
/// shell, into a debug container added to that pod (`kubectl debug --target`).
async fn kind(ctx: &Context, args: &Args) -> anyhow::Result<i64> {
    let session = KindSession::open(ctx).await?;
    let workload = session.stack.named_workload(&args.service)?;
    let target = workload
        .pod_spec
        .containers
        .first()
        .map(|c| c.name.clone())
        .ok_or_else(|| anyhow::anyhow!("{} has no container", args.service))?;
    let client = &session.client;
    let namespace = session.namespace();
    let pod = kind_exec::ready_pod(client, namespace, &args.service).await?;
    let (command, io) = shell_command(args);
    let probe = ["/bin/sh".to_owned(), "-c".to_owned(), "true".to_owned()];
    let has_shell = kind_exec::capture(client, namespace, &pod, Some(&target), &probe)
        .await
        .is_ok_and(|out| out.exit_code == 0);
    if has_shell {
        return kind_exec::run(client, namespace, &pod, Some(&target), &command, &io).await;
    }
    let step = ctx.ui().step("Preparing a debug container");
    let prepared = async {
        let docker = crate::docker::connect().await?;
        let toolbox = crate::images::toolbox::ensure_toolbox(&docker, &step.reporter()).await?;
        let nodes = KindCli::new(ctx).nodes()?;
        load::load_images(
            &docker,
            &nodes,
            std::slice::from_ref(&toolbox.reference),
            &step.reporter(),
        )
        .await?;
        // Unique per shell: ephemeral containers cannot be removed or reused under a name.
        let unique = [
            pod.as_bytes(),
            &std::process::id().to_le_bytes(),
            &now_nanos(),
        ];
        let name = format!("debug-{}", crate::digest::short_hash(&unique, 8));
        debug::attach(client, namespace, &pod, &target, &toolbox.reference, &name).await?;
        anyhow::Ok(name)
    }
    .await;
    let debugger = step.conclude(prepared, |name| format!("{name} in pod {pod}"))?;
    ctx.ui().note(format!(
        "{} has no shell; this one shares its processes (`ps` shows them, its files are under /proc/1/root)",
        args.service
    ));
    kind_exec::run(client, namespace, &pod, Some(&debugger), &command, &io).await
}

fn now_nanos() -> [u8; 16] {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_le_bytes()
}

async fn docker(ctx: &Context, args: &Args) -> anyhow::Result<i64> {
    let session = Session::open(ctx, SecretsMode::Existing).await?;
    session.workload(&args.service)?;
    let container = session.names().container(&args.service);
    let running = session
        .runtime
        .inspect(&container)
        .await?
        .and_then(|c| c.state)
        .and_then(|s| s.running)
        .unwrap_or(false);
    if !running {
        bail!(
            "{} is not running: start the stack with `cargo xtask dev`",
            args.service
        );
    }
    let (command, io) = shell_command(args);
    let docker = session.runtime.docker();
    let has_shell = exec::capture(
        docker,
        &container,
        &["/bin/sh".into(), "-c".into(), "true".into()],
        None,
        &[],
    )
    .await
    .is_ok_and(|out| out.exit_code == 0);
    let code = if has_shell {
        exec::run(docker, &container, &command, &io).await?
    } else {
        let step = ctx.ui().step("Preparing a debug container");
        let toolbox = crate::images::toolbox::ensure_toolbox(docker, &step.reporter()).await;
        let toolbox = match toolbox {
            Ok(image) => {
                step.done(image.reference.clone());
                image
            }
            Err(err) => {
                step.fail();
                return Err(err);
            }
        };
        ctx.ui().note(format!(
            "{} has no shell; this one shares its network and processes (`ps` shows them, its files are under /proc/1/root)",
            args.service
        ));
        exec::debug_shell(docker, &container, &toolbox.reference, &command, &io).await?
    };
    Ok(code)
}

/// A remote exit code as ours: 0-255 as they are, anything else as a failure.
pub(crate) fn exit_code(code: i64) -> ExitCode {
    u8::try_from(code).map_or(ExitCode::FAILURE, ExitCode::from)
}
