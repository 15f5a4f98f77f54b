//! `shell` on the docker runtime.

use anyhow::bail;

use super::exec;
use super::session::Session;
use crate::context::Context;
use crate::runtime::exec_io::shell_command;
use crate::runtime::secrets::SecretsMode;

/// A shell in `service`'s container, or, for an image without one, in a toolbox container that
/// shares its network and processes; ends with the shell's exit code.
pub(crate) async fn shell(ctx: &Context, service: &str, words: &[String]) -> anyhow::Result<i64> {
    let session = Session::open(ctx, SecretsMode::Existing).await?;
    session.workload(service)?;
    let container = session.names().container(service);
    if !session.runtime.is_running(&container).await? {
        bail!("{service} is not running: start the stack with `cargo xtask dev`");
    }
    let (command, io) = shell_command(words);
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
            "{service} has no shell; this one shares its network and processes (`ps` shows them, its files are under /proc/1/root)"
        ));
        exec::debug_shell(docker, &container, &toolbox.reference, &command, &io).await?
    };
    Ok(code)
}
