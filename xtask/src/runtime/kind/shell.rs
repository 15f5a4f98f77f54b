//! `shell` on kind, through kube-rs: an exec into a ready pod of the service, or, for images
//! without a shell, into a debug container added to that pod (`kubectl debug --target`).

use super::cluster::KindCli;
use super::session::KindSession;
use super::{debug, exec, load};
use crate::context::Context;
use crate::runtime::exec_io::shell_command;

/// A shell beside `service`, ending with its exit code.
pub(crate) async fn shell(ctx: &Context, service: &str, words: &[String]) -> anyhow::Result<i64> {
    let session = KindSession::open(ctx).await?;
    let workload = session.stack.named_workload(service)?;
    let target = workload
        .pod_spec
        .containers
        .first()
        .map(|c| c.name.clone())
        .ok_or_else(|| anyhow::anyhow!("{service} has no container"))?;
    let client = &session.client;
    let namespace = session.namespace();
    let pod = exec::ready_pod(client, namespace, service).await?;
    let (command, io) = shell_command(words);
    let probe = ["/bin/sh".to_owned(), "-c".to_owned(), "true".to_owned()];
    let has_shell = exec::capture(client, namespace, &pod, Some(&target), &probe)
        .await
        .is_ok_and(|out| out.exit_code == 0);
    if has_shell {
        return exec::run(client, namespace, &pod, Some(&target), &command, &io).await;
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
        "{service} has no shell; this one shares its processes (`ps` shows them, its files are under /proc/1/root)"
    ));
    exec::run(client, namespace, &pod, Some(&debugger), &command, &io).await
}

fn now_nanos() -> [u8; 16] {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_le_bytes()
}
