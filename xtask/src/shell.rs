//! `cargo xtask shell SVC`: a shell beside a service. Our own images carry no shell, so the
//! shell runs in a helper container that shares the service's network and process namespaces
//! (DESIGN.md decision 3); images that do have one (PostgreSQL, Redis) get a plain exec.

use std::process::ExitCode;

use anyhow::bail;

use crate::Context;
use crate::runtime::RuntimeKind;
use crate::runtime::docker::exec::{self, ExecIo};
use crate::runtime::docker::session::{SecretsMode, Session};

/// Options of `cargo xtask shell`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The service (api, web, postgres, redis).
    pub(crate) service: String,

    /// A command to run instead of an interactive shell, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub(crate) command: Vec<String>,
}

pub(crate) async fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    if ctx.runtime() == RuntimeKind::Kind {
        bail!(crate::runtime::KIND_NOT_AVAILABLE);
    }
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
    Ok(exit_code(code))
}

/// A remote exit code as ours: 0-255 as they are, anything else as a failure.
pub(crate) fn exit_code(code: i64) -> ExitCode {
    u8::try_from(code).map_or(ExitCode::FAILURE, ExitCode::from)
}
