//! Commands run inside containers (`shell`, `db-shell`, `seed`, probes): an interactive terminal
//! when we have one, plain pipes when we do not, or captured output.
//!
//! Runtime images carry no shell, so `shell` runs in a debug container: a helper from an image
//! that has one, joined to the target's network and process namespaces, removed afterwards.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, ExecConfig, HostConfig};
use bollard::query_parameters::{RemoveContainerOptionsBuilder, ResizeExecOptionsBuilder};
use futures_util::{Stream, StreamExt as _};
use tokio::io::AsyncWrite;

pub(crate) use crate::runtime::exec_io::{Captured, ExecIo, RawMode};
use crate::runtime::exec_io::{Input, Mode, choose_mode, pump, terminal_size};

/// Label that marks helper containers, so that leftovers can be found and removed.
pub(crate) const DEBUG_ROLE_LABEL: (&str, &str) = ("dev.wander.role", "debug");

/// Runs `cmd` in `container` connected to our terminal or pipes as `io` says, and returns its
/// exit code. Our terminal is put back as it was on every way out.
pub(crate) async fn run(
    docker: &Docker,
    container: &str,
    cmd: &[String],
    io: &ExecIo,
) -> anyhow::Result<i64> {
    let mode = choose_mode(
        io,
        std::io::stdin().is_terminal(),
        std::io::stdout().is_terminal(),
    );
    match mode {
        Mode::Tty => run_tty(docker, container, cmd, &io.env).await,
        Mode::Piped { stdin } => {
            let input = Input::ours_if(stdin)?;
            let mut stdout = std::io::stdout();
            let mut stderr = std::io::stderr();
            run_piped(
                docker,
                container,
                cmd,
                &io.env,
                input,
                &mut stdout,
                &mut stderr,
            )
            .await
        }
    }
}

/// Runs `cmd` in `container`, feeds it `stdin` (then closes it, so that e.g. `psql` reading a
/// script ends) and returns what it wrote. For probes and seeding.
pub(crate) async fn capture(
    docker: &Docker,
    container: &str,
    cmd: &[String],
    stdin: Option<Vec<u8>>,
    env: &[String],
) -> anyhow::Result<Captured> {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let input = stdin.map(|bytes| Input::Bytes(Some(bytes)));
    let exit_code = run_piped(docker, container, cmd, env, input, &mut stdout, &mut stderr).await?;
    Ok(Captured {
        exit_code,
        stdout,
        stderr,
    })
}

/// Runs `cmd` in a helper container from `image` that shares `target`'s network and process
/// namespaces (so `ps` shows the target's processes and `localhost` is the target's), connected
/// as `io` says; the helper is removed afterwards, also when anything fails.
pub(crate) async fn debug_shell(
    docker: &Docker,
    target: &str,
    image: &str,
    cmd: &[String],
    io: &ExecIo,
) -> anyhow::Result<i64> {
    let helper = Helper::start(docker, target, image).await?;
    let result = run(docker, helper.id(), cmd, io).await;
    helper.remove().await;
    result
}

#[cfg(test)]
/// Like [`debug_shell`], with the output captured instead (for checks and tests).
pub(crate) async fn debug_capture(
    docker: &Docker,
    target: &str,
    image: &str,
    cmd: &[String],
) -> anyhow::Result<Captured> {
    let helper = Helper::start(docker, target, image).await?;
    let result = capture(docker, helper.id(), cmd, None, &[]).await;
    helper.remove().await;
    result
}

/// A running debug container. Removed by [`Helper::remove`]; if the future using it is dropped
/// first (Ctrl-C), dropping it asks the engine to remove it in the background.
#[derive(Debug)]
struct Helper {
    docker: Docker,
    id: Option<String>,
}

impl Helper {
    async fn start(docker: &Docker, target: &str, image: &str) -> anyhow::Result<Self> {
        let joined = format!("container:{target}");
        let mut labels = HashMap::from([
            (DEBUG_ROLE_LABEL.0.to_owned(), DEBUG_ROLE_LABEL.1.to_owned()),
            ("dev.wander.debug-target".to_owned(), target.to_owned()),
        ]);
        // The target's stack label too, so that a helper left behind by a killed `shell` is
        // removed by that stack's `down`.
        if let Ok(details) = docker.inspect_container(target, None).await
            && let Some(stack) = details
                .config
                .and_then(|c| c.labels)
                .and_then(|mut l| l.remove(super::names::LABEL_STACK))
        {
            labels.insert(super::names::LABEL_STACK.to_owned(), stack);
        }
        let config = ContainerCreateBody {
            image: Some(image.to_owned()),
            // The helper only idles; commands run in it as execs, which gives them the same
            // terminal, resize and stdin handling as any other exec.
            entrypoint: Some(vec!["sleep".to_owned()]),
            cmd: Some(vec!["2147483647".to_owned()]),
            user: Some("0".to_owned()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some(joined.clone()),
                pid_mode: Some(joined),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        let created = docker
            .create_container(None, config)
            .await
            .with_context(|| {
                format!("creating a debug container from {image} joined to {target}")
            })?;
        let helper = Self {
            docker: docker.clone(),
            id: Some(created.id),
        };
        if let Err(err) = docker.start_container(helper.id(), None).await {
            helper.remove().await;
            return Err(err).with_context(|| {
                format!("starting the debug container for {target}; is {target} running?")
            });
        }
        Ok(helper)
    }

    fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }

    /// Removes the helper and waits for that. A failure is only reported on stderr: the command
    /// has run, and `down` sweeps helpers by their label.
    async fn remove(mut self) {
        if let Some(id) = self.id.take()
            && let Err(err) = remove_container(&self.docker, &id).await
        {
            eprintln!("warning: could not remove debug container {id}: {err:#}");
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if let Some(id) = self.id.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let docker = self.docker.clone();
            runtime.spawn(async move { remove_container(&docker, &id).await.ok() });
        }
    }
}

async fn remove_container(docker: &Docker, id: &str) -> anyhow::Result<()> {
    let options = RemoveContainerOptionsBuilder::new().force(true).build();
    match docker.remove_container(id, Some(options)).await {
        Err(err) if !crate::docker::is_not_found(&err) => {
            Err(err).with_context(|| format!("removing container {id}"))
        }
        _ => Ok(()),
    }
}

/// The output stream of a started exec.
type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;
/// The stdin of a started exec.
type Stdin = Pin<Box<dyn AsyncWrite + Send>>;

/// Creates and starts an exec, returning its id and its attached streams.
async fn start(
    docker: &Docker,
    container: &str,
    cmd: &[String],
    env: &[String],
    stdin: bool,
    terminal: Option<(u16, u16)>,
) -> anyhow::Result<(String, Output, Stdin)> {
    let config = ExecConfig {
        attach_stdin: Some(stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(terminal.is_some()),
        console_size: terminal.map(|(rows, cols)| vec![usize::from(rows), usize::from(cols)]),
        env: Some(env.to_vec()),
        cmd: Some(cmd.to_vec()),
        ..ExecConfig::default()
    };
    let program = cmd.first().map_or("", String::as_str);
    let id = docker
        .create_exec(container, config)
        .await
        .with_context(|| format!("starting `{program}` in {container}; is it running?"))?
        .id;
    let options = StartExecOptions {
        detach: false,
        tty: terminal.is_some(),
        output_capacity: None,
    };
    match docker
        .start_exec(&id, Some(options))
        .await
        .with_context(|| format!("starting `{program}` in {container}"))?
    {
        StartExecResults::Attached { output, input } => Ok((id, output, input)),
        StartExecResults::Detached => bail!("the engine ran `{program}` detached, not attached"),
    }
}

/// Piped mode: `input` (if any) forwarded then closed, stdout and stderr to their own sinks.
async fn run_piped(
    docker: &Docker,
    container: &str,
    cmd: &[String],
    env: &[String],
    input: Option<Input>,
    stdout: &mut (impl Write + Send),
    stderr: &mut (impl Write + Send),
) -> anyhow::Result<i64> {
    let (id, output, stdin) = start(docker, container, cmd, env, input.is_some(), None).await?;
    attach((output, stdin), stdout, stderr, input, None).await?;
    exit_code(docker, &id).await
}

/// Terminal mode: our terminal raw, its size followed, every key forwarded.
async fn run_tty(
    docker: &Docker,
    container: &str,
    cmd: &[String],
    env: &[String],
) -> anyhow::Result<i64> {
    let stdin = std::io::stdin();
    let terminal = Terminal {
        input: stdin.as_fd(),
        output: &mut std::io::stdout(),
        size: terminal_size,
    };
    run_on_terminal(docker, container, cmd, env, terminal).await
}

/// The terminal a TTY session runs on: ours, or a pseudo-terminal in tests.
struct Terminal<'a, W: Write + Send> {
    /// Where keys come from; also the terminal that is put in raw mode.
    input: BorrowedFd<'a>,
    /// Where the command's output goes.
    output: &'a mut W,
    /// The terminal's current size as (rows, columns).
    size: fn() -> (u16, u16),
}

async fn run_on_terminal(
    docker: &Docker,
    container: &str,
    cmd: &[String],
    env: &[String],
    terminal: Terminal<'_, impl Write + Send>,
) -> anyhow::Result<i64> {
    let size = (terminal.size)();
    let input = Input::reopen(terminal.input).context("opening our terminal to forward keys")?;
    let (id, output, stdin) = start(docker, container, cmd, env, true, Some(size)).await?;
    let winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        .context("listening for terminal size changes")?;
    // Engines older than API 1.42 ignore the size given at creation; set it again.
    resize(docker, &id, size).await;

    let _raw = RawMode::enable(terminal.input).context("switching the terminal to raw mode")?;
    // With a terminal inside, everything arrives as one stream; nothing goes to stderr.
    let mut no_stderr = std::io::sink();
    let follow = FollowSize {
        winch,
        docker,
        id: &id,
        size: terminal.size,
    };
    attach(
        (output, stdin),
        terminal.output,
        &mut no_stderr,
        Some(input),
        Some(follow),
    )
    .await?;
    exit_code(docker, &id).await
}

/// An exec's terminal following the size of ours: the signal that ours changed, and the exec
/// to tell.
struct FollowSize<'a> {
    winch: tokio::signal::unix::Signal,
    docker: &'a Docker,
    id: &'a str,
    /// Our terminal's current size as (rows, columns).
    size: fn() -> (u16, u16),
}

impl FollowSize<'_> {
    /// Gives the exec's terminal the size ours has now.
    async fn resize(&self) {
        resize(self.docker, self.id, (self.size)()).await;
    }
}

/// The next change of our terminal's size when `follow` is there; never otherwise (nor once
/// the signal can no longer come).
async fn size_changed(follow: Option<&mut FollowSize<'_>>) {
    if let Some(follow) = follow
        && follow.winch.recv().await.is_some()
    {
        return;
    }
    std::future::pending::<()>().await;
}

/// Connects a started exec until its output ends: the output written to the sinks, `input`
/// (if any) forwarded to its stdin, which is then closed (at once without input), and with
/// `follow` the size of our terminal passed on to its terminal.
async fn attach(
    (output, stdin): (Output, Stdin),
    stdout: &mut (impl Write + Send),
    stderr: &mut (impl Write + Send),
    input: Option<Input>,
    mut follow: Option<FollowSize<'_>>,
) -> anyhow::Result<()> {
    let drain = drain(output, stdout, stderr);
    let pump = async {
        match input {
            // A failure to forward input (the command stopped reading, or exited) is not the
            // command's failure; its exit code tells.
            Some(input) => {
                let _ = pump(input, stdin).await;
            }
            None => drop(stdin),
        }
    };
    tokio::pin!(drain, pump);
    let mut pumping = true;
    loop {
        tokio::select! {
            result = &mut drain => return result,
            () = &mut pump, if pumping => pumping = false,
            () = size_changed(follow.as_mut()) => {
                if let Some(follow) = &follow {
                    follow.resize().await;
                }
            }
        }
    }
}

/// Tells the exec's terminal its new size; a failure only leaves the old size.
async fn resize(docker: &Docker, id: &str, (rows, cols): (u16, u16)) {
    let options = ResizeExecOptionsBuilder::default()
        .h(i32::from(rows))
        .w(i32::from(cols))
        .build();
    docker.resize_exec(id, options).await.ok();
}

/// Writes the exec's output to the sinks until it ends. With a terminal everything arrives as
/// console output and goes to `stdout`. The sinks are plain writers: our own stdout and stderr
/// take a short blocking write, and captures are vectors.
async fn drain(
    mut output: Output,
    stdout: &mut (impl Write + Send),
    stderr: &mut (impl Write + Send),
) -> anyhow::Result<()> {
    while let Some(item) = output.next().await {
        let (sink, message): (&mut dyn Write, _) =
            match item.context("reading the command's output")? {
                LogOutput::StdErr { message } => (stderr, message),
                LogOutput::StdOut { message }
                | LogOutput::Console { message }
                | LogOutput::StdIn { message } => (stdout, message),
            };
        sink.write_all(&message)
            .and_then(|()| sink.flush())
            .context("writing the command's output")?;
    }
    Ok(())
}

/// The exit code, once the engine has seen the command end (its output can end a moment
/// earlier).
async fn exit_code(docker: &Docker, id: &str) -> anyhow::Result<i64> {
    for _ in 0..100 {
        let info = docker
            .inspect_exec(id)
            .await
            .context("asking the engine how the command ended")?;
        if info.running != Some(true) {
            return info
                .exit_code
                .context("the engine reported no exit code for the command");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("the command's output ended but the engine still reports it running after 2 s")
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::{Read as _, Write as _};

    use nix::pty::openpty;
    use nix::sys::termios::tcgetattr;

    use super::*;

    // Against the real engine, with toolbox containers.

    use crate::images::toolbox::testing::{self, with_engine};

    fn args(cmd: &[&str]) -> Vec<String> {
        cmd.iter().map(|&arg| arg.to_owned()).collect()
    }

    #[tokio::test]
    async fn capture_feeds_stdin_closes_it_and_keeps_the_streams_apart() {
        with_engine("exec-capture", |docker, toolbox| async move {
            let id = testing::start(&docker, &toolbox, "exec-capture", &["sleep", "1000"]).await;

            // `cat` only ends when its stdin is closed after the input.
            let input = b"SELECT 1;\nline two without newline".to_vec();
            let echoed = capture(&docker, &id, &args(&["cat"]), Some(input.clone()), &[])
                .await
                .unwrap();
            assert_eq!(echoed.exit_code, 0);
            assert_eq!(echoed.stdout, input);

            // A large input, so that stdin and stdout are both in flight.
            let big: Vec<u8> = (0..200_000_u32)
                .flat_map(|i| format!("{i}\n").into_bytes())
                .collect();
            let counted = capture(&docker, &id, &args(&["wc", "-l"]), Some(big), &[])
                .await
                .unwrap();
            assert_eq!(counted.stdout_text().trim(), "200000");

            let empty = capture(&docker, &id, &args(&["cat"]), Some(Vec::new()), &[])
                .await
                .unwrap();
            assert_eq!((empty.exit_code, empty.stdout.len()), (0, 0));

            let split = capture(
                &docker,
                &id,
                &args(&["sh", "-c", "echo out; echo err >&2; exit 3"]),
                None,
                &[],
            )
            .await
            .unwrap();
            assert_eq!(
                split,
                Captured {
                    exit_code: 3,
                    stdout: b"out\n".to_vec(),
                    stderr: b"err\n".to_vec()
                }
            );

            let env = capture(
                &docker,
                &id,
                &args(&["sh", "-c", "echo \"$GREETING\""]),
                None,
                &["GREETING=hello there".into()],
            )
            .await
            .unwrap();
            assert_eq!(env.stdout_text(), "hello there\n");

            let missing = capture(&docker, &id, &args(&["no-such-program"]), None, &[])
                .await
                .unwrap();
            assert_ne!(missing.exit_code, 0);
        })
        .await;
    }

    #[tokio::test]
    async fn exec_in_a_container_that_is_not_running_says_so() {
        with_engine("exec-stopped", |docker, toolbox| async move {
            let id = testing::start(&docker, &toolbox, "exec-stopped", &["true"]).await;
            testing::wait_exited(&docker, &id).await;
            let err = capture(&docker, &id, &args(&["true"]), None, &[])
                .await
                .unwrap_err();
            assert!(format!("{err:#}").contains("is it running"), "{err:#}");
        })
        .await;
    }

    async fn debug_helpers_of(docker: &Docker, target: &str) -> Vec<String> {
        testing::labelled(docker, &format!("dev.wander.debug-target={target}")).await
    }

    #[tokio::test]
    async fn a_debug_container_sees_the_targets_processes_and_ports_and_is_removed() {
        with_engine("exec-debug", |docker, toolbox| async move {
            let target = testing::start(&docker, &toolbox, "exec-debug", &["sh", "-c", "nc -ll -p 7777 -e true & exec sleep 4242"]).await;

            let ps = debug_capture(&docker, &target, &toolbox, &args(&["ps", "-o", "pid,args"])).await.unwrap();
            assert_eq!(ps.exit_code, 0, "{}", ps.stderr_text());
            assert!(ps.stdout_text().contains("sleep 4242"), "{}", ps.stdout_text());
            assert!(debug_helpers_of(&docker, &target).await.is_empty());

            let netstat = debug_capture(&docker, &target, &toolbox, &args(&["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do netstat -ltn | grep -q :7777 && break; sleep 0.3; done; netstat -ltn"])).await.unwrap();
            assert!(netstat.stdout_text().contains(":7777"), "{}", netstat.stdout_text());

            // Our own pipes (the test's), no terminal, nothing forwarded.
            let io = ExecIo { tty: false, forward_stdin: false, env: Vec::new() };
            let code = debug_shell(&docker, &target, &toolbox, &args(&["sh", "-c", "exit 4"]), &io).await.unwrap();
            assert_eq!(code, 4);
            assert!(debug_helpers_of(&docker, &target).await.is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn a_debug_container_for_a_stopped_target_fails_and_leaves_nothing() {
        with_engine("exec-debug-stopped", |docker, toolbox| async move {
            let target = testing::start(&docker, &toolbox, "exec-debug-stopped", &["true"]).await;
            testing::wait_exited(&docker, &target).await;
            let err = debug_capture(&docker, &target, &toolbox, &args(&["ps"]))
                .await
                .unwrap_err();
            assert!(format!("{err:#}").contains("debug container"), "{err:#}");
            assert!(debug_helpers_of(&docker, &target).await.is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn a_terminal_session_gets_the_size_keys_and_exit_code_and_restores_the_terminal() {
        with_engine("exec-tty", |docker, toolbox| async move {
            let id = testing::start(&docker, &toolbox, "exec-tty", &["sleep", "1000"]).await;
            let pty = openpty(None, None).unwrap();
            let before = tcgetattr(&pty.slave).unwrap();

            // The "user": types at the terminal's other end, and reads what it shows.
            let mut keyboard = File::from(pty.master.try_clone().unwrap());
            keyboard
                .write_all(b"stty size; echo \"sum=$((6*7))\"\nexit 5\n")
                .unwrap();
            let mut screen = File::from(pty.master);
            let shown = std::thread::spawn(move || {
                let mut shown = Vec::new();
                // Ends with EIO once no one holds the terminal's end any more.
                let _ = screen.read_to_end(&mut shown);
                String::from_utf8_lossy(&shown).into_owned()
            });

            let mut output = File::from(pty.slave.try_clone().unwrap());
            let terminal = Terminal {
                input: pty.slave.as_fd(),
                output: &mut output,
                size: || (33, 101),
            };
            let code = run_on_terminal(&docker, &id, &args(&["sh"]), &[], terminal)
                .await
                .unwrap();
            assert_eq!(code, 5);
            let after = tcgetattr(&pty.slave).unwrap();
            assert_eq!(after.local_flags, before.local_flags);
            assert_eq!(after.output_flags, before.output_flags);

            drop((output, pty.slave));
            let shown = shown.join().unwrap();
            assert!(shown.contains("33 101"), "{shown:?}");
            assert!(shown.contains("sum=42"), "{shown:?}");
        })
        .await;
    }
}
