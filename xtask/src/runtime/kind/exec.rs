//! Commands run in a pod's container through the API server's exec (`shell`, `db-shell` on
//! kind): an interactive terminal when we have one, plain pipes when we do not, or captured
//! output; and the pod to run them in.
//!
//! Kubernetes' exec carries no environment, so extra variables are given by running the command
//! under `env NAME=value ...`. The exit code comes from the status the API server sends when the
//! command ends.

use std::io::{IsTerminal as _, Write};
use std::os::fd::AsFd as _;

use anyhow::{Context as _, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams, AttachedProcess, ListParams, TerminalSize};
use kube::{Client, ResourceExt as _};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio::signal::unix::{SignalKind, signal};

use super::NAME_LABEL;
use super::portforward::{is_eligible, pick_pod};
use crate::runtime::exec_io::{
    Captured, ExecIo, Input, Mode, RawMode, choose_mode, pump, terminal_size,
};

/// How much of the command's output is buffered between the connection and us.
const BUFFER: usize = 64 * 1024;

/// Runs `command` in `container` of `pod` (the pod's only container when `None`), connected to
/// our terminal or pipes as `io` says, and returns its exit code. Our terminal is put back as it
/// was on every way out, dropping the future (Ctrl-C) included.
pub(crate) async fn run(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    command: &[String],
    io: &ExecIo,
) -> Result<i64> {
    let target = Target {
        api: Api::namespaced(client.clone(), namespace),
        pod,
        container,
        program: program(command)?,
    };
    let command = with_env(&io.env, command)?;
    let mode = choose_mode(
        io,
        std::io::stdin().is_terminal(),
        std::io::stdout().is_terminal(),
    );
    match mode {
        Mode::Tty => run_tty(&target, &command).await,
        Mode::Piped { stdin } => {
            let input = Input::ours_if(stdin)?;
            let mut stdout = std::io::stdout();
            let mut stderr = std::io::stderr();
            run_piped(&target, &command, input, &mut stdout, &mut stderr).await
        }
    }
}

/// Runs `command` in `container` of `pod` with no input, and returns what it wrote and its exit
/// code. For probes and checks.
pub(crate) async fn capture(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    command: &[String],
) -> Result<Captured> {
    let target = Target {
        api: Api::namespaced(client.clone(), namespace),
        pod,
        container,
        program: program(command)?,
    };
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let exit_code = run_piped(&target, command, None, &mut stdout, &mut stderr).await?;
    Ok(Captured {
        exit_code,
        stdout,
        stderr,
    })
}

/// The pod of `service` to run a command in: the newest Ready one that is not terminating.
pub(crate) async fn ready_pod(client: &Client, namespace: &str, service: &str) -> Result<String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = api
        .list(&ListParams::default().labels(&format!("{NAME_LABEL}={service}")))
        .await
        .map_err(|err| match err {
            // It answered, and said no: a question of rights, not of reach.
            kube::Error::Api(status) => anyhow::anyhow!(
                "the cluster refused to list the pods of {service} in namespace {namespace:?} ({} {}): {}; the user of your kube context may lack the rights (`--context` chooses another)",
                status.code,
                status.reason,
                status.message
            ),
            other => anyhow::Error::new(other).context(format!(
                "listing the pods of {service} in namespace {namespace:?}: the cluster did not answer; is it running? `cargo xtask dev` starts it"
            )),
        })?
        .items;
    if let Some(name) = pick_pod(&pods) {
        return Ok(name);
    }
    if pods.is_empty() {
        bail!(
            "{service} has no pod in namespace {namespace:?}: start the stack with `cargo xtask dev`"
        );
    }
    let states: Vec<String> = pods
        .iter()
        .map(|pod| {
            let state = if pod.metadata.deletion_timestamp.is_some() {
                "terminating"
            } else if is_eligible(pod) {
                "ready"
            } else {
                "not ready"
            };
            format!("{} {state}", pod.name_any())
        })
        .collect();
    bail!(
        "no pod of {service} is ready ({}): see why with `cargo xtask status`",
        states.join(", ")
    )
}

/// `command` run with `env` (`NAME=value` each) added to its environment: through `env`, since
/// Kubernetes' exec has no environment of its own.
fn with_env(env: &[String], command: &[String]) -> Result<Vec<String>> {
    if env.is_empty() {
        return Ok(command.to_vec());
    }
    for entry in env {
        let name = entry.split_once('=').map_or("", |(name, _)| name);
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            bail!("{entry:?} is not an environment variable like NAME=value");
        }
    }
    let program = program(command)?;
    if program.contains('=') {
        // `env` would take it for one more variable.
        bail!("cannot run {program:?} with extra environment: `env` would read it as a variable");
    }
    Ok(["env".to_owned()]
        .into_iter()
        .chain(env.iter().cloned())
        .chain(command.iter().cloned())
        .collect())
}

/// The program `command` runs, for messages; an empty command is an error.
fn program(command: &[String]) -> Result<&str> {
    command
        .first()
        .map(String::as_str)
        .ok_or_else(|| anyhow!("no command to run"))
}

/// Where a command runs, and what to call it in messages.
struct Target<'a> {
    api: Api<Pod>,
    pod: &'a str,
    container: Option<&'a str>,
    /// The program the user asked for (not `env`, when the command is wrapped).
    program: &'a str,
}

impl Target<'_> {
    /// Starts `command` with `stdin` attached or not, on a terminal or on pipes.
    async fn start(&self, command: &[String], stdin: bool, tty: bool) -> Result<AttachedProcess> {
        let params = AttachParams {
            container: self.container.map(str::to_owned),
            stdin,
            stdout: true,
            // With a terminal inside, everything arrives as one stream.
            stderr: !tty,
            tty,
            max_stdout_buf_size: Some(BUFFER),
            max_stderr_buf_size: Some(BUFFER),
            ..AttachParams::default()
        };
        self.api
            .exec(self.pod, command.to_vec(), &params)
            .await
            .with_context(|| {
                format!(
                    "starting `{}` in pod {}{}; is it running? see `cargo xtask status`",
                    self.program,
                    self.pod,
                    self.container
                        .map_or_else(String::new, |c| format!(", container {c}"))
                )
            })
    }
}

/// Piped mode: `input` (if any) forwarded then closed, stdout and stderr to their own sinks.
async fn run_piped(
    target: &Target<'_>,
    command: &[String],
    input: Option<Input>,
    stdout: &mut (impl Write + Send),
    stderr: &mut (impl Write + Send),
) -> Result<i64> {
    let mut process = target.start(command, input.is_some(), false).await?;
    let status = process.take_status();
    let forward = input.zip(process.stdin());
    converse(process.stdout(), process.stderr(), forward, stdout, stderr).await?;
    let status = match status {
        Some(status) => status.await,
        None => None,
    };
    ended(process, status, target.program).await
}

/// Terminal mode: our terminal raw, its size followed, every key forwarded.
async fn run_tty(target: &Target<'_>, command: &[String]) -> Result<i64> {
    let stdin = std::io::stdin();
    let input = Input::reopen(stdin.as_fd()).context("opening our terminal to forward keys")?;
    let mut process = target.start(command, true, true).await?;
    let status = process.take_status();
    let mut sizes = process.terminal_size();
    let mut tell_size = move || {
        let (height, width) = terminal_size();
        if let Some(sizes) = sizes.as_mut() {
            // A full queue only means a size is already on its way; the next change corrects it.
            sizes.try_send(TerminalSize { width, height }).ok();
        }
    };
    tell_size();
    let mut winch =
        signal(SignalKind::window_change()).context("listening for terminal size changes")?;

    let raw = RawMode::enable(stdin.as_fd()).context("switching the terminal to raw mode")?;
    let mut local = std::io::stdout();
    let output = copy_out(process.stdout(), &mut local);
    let keys = process.stdin();
    let pumping = async {
        if let Some(keys) = keys {
            pump(input, keys).await.ok();
        }
    };
    tokio::pin!(output, pumping);
    let mut forwarding = true;
    loop {
        tokio::select! {
            result = &mut output => { result?; break; }
            () = &mut pumping, if forwarding => forwarding = false,
            Some(()) = winch.recv() => tell_size(),
        }
    }
    drop(raw);
    let status = match status {
        Some(status) => status.await,
        None => None,
    };
    ended(process, status, target.program).await
}

/// Copies the command's output to our sinks until both streams end, while `forward`'s input (if
/// any) is copied to the command's stdin and then closed. A failure to forward input (the command
/// stopped reading, or ended) is not the command's failure: its exit code tells.
async fn converse(
    output: Option<impl AsyncRead + Unpin>,
    errors: Option<impl AsyncRead + Unpin>,
    forward: Option<(Input, impl AsyncWrite + Unpin)>,
    stdout: &mut (impl Write + Send),
    stderr: &mut (impl Write + Send),
) -> Result<()> {
    let drain = async {
        let (out, err) = tokio::join!(copy_out(output, stdout), copy_out(errors, stderr));
        out.and(err)
    };
    let pumping = async {
        if let Some((input, stdin)) = forward {
            pump(input, stdin).await.ok();
        }
    };
    tokio::pin!(drain, pumping);
    let mut forwarding = true;
    loop {
        tokio::select! {
            result = &mut drain => return result,
            () = &mut pumping, if forwarding => forwarding = false,
        }
    }
}

/// Copies one of the command's output streams to `sink` until it ends. The sinks are plain
/// writers: our own stdout and stderr take a short blocking write, captures are vectors.
async fn copy_out(stream: Option<impl AsyncRead + Unpin>, sink: &mut impl Write) -> Result<()> {
    let Some(mut stream) = stream else {
        return Ok(());
    };
    let mut buffer = vec![0_u8; 8192];
    loop {
        let read = stream
            .read(&mut buffer)
            .await
            .context("reading the command's output")?;
        if read == 0 {
            return Ok(());
        }
        sink.write_all(&buffer[..read])
            .and_then(|()| sink.flush())
            .context("writing the command's output")?;
    }
}

/// The exit code from the status the command ended with; without one, why the connection ended.
async fn ended(process: AttachedProcess, status: Option<Status>, program: &str) -> Result<i64> {
    if status.is_none()
        && let Err(error) = process.join().await
    {
        return Err(anyhow!(error)).with_context(|| format!("the connection to `{program}` broke"));
    }
    exit_code(status.as_ref()).with_context(|| format!("running `{program}`"))
}

/// A command's exit code from the status the API server sends when it ends: `Success` is 0, a
/// `NonZeroExitCode` failure carries its code as the `ExitCode` cause; any other failure (the
/// program could not be started, the container went away) is an error quoting the status.
fn exit_code(status: Option<&Status>) -> Result<i64> {
    let Some(status) = status else {
        bail!("the API server ended the command without saying how it ended");
    };
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    let causes = status
        .details
        .as_ref()
        .and_then(|details| details.causes.as_ref());
    let code = causes
        .into_iter()
        .flatten()
        .find(|cause| cause.reason.as_deref() == Some("ExitCode"))
        .and_then(|cause| cause.message.as_deref()?.trim().parse::<i64>().ok());
    if let Some(code) = code {
        return Ok(code);
    }
    let message = status
        .message
        .as_deref()
        .filter(|m| !m.is_empty())
        .or(status.reason.as_deref())
        .unwrap_or("no reason given");
    bail!("the command failed: {message}")
}

#[cfg(test)]
mod tests;
