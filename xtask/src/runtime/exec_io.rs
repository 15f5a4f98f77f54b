//! How a command run inside a container connects to ours, whichever runtime runs it: a terminal
//! in raw mode when both our ends are terminals and one is asked for, plain pipes otherwise; our
//! stdin read so that it can be cancelled; what a captured command wrote.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd as _, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt as _;

use anyhow::Context as _;
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

/// How a command's input and output connect to ours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ExecIo {
    /// Give the command a terminal when our stdin and stdout both are one (an interactive
    /// `shell`, `psql` with line editing); otherwise it runs on pipes.
    pub(crate) tty: bool,
    /// Forward our stdin to the command on pipes (with a terminal it always is). Off for
    /// commands that must not wait for input, like `db-shell -c ...`.
    pub(crate) forward_stdin: bool,
    /// Extra environment for the command, `NAME=value`.
    pub(crate) env: Vec<String>,
}

/// A finished command's exit code and everything it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Captured {
    pub(crate) exit_code: i64,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

impl Captured {
    /// Stdout as text, invalid bytes replaced.
    pub(crate) fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text, invalid bytes replaced.
    pub(crate) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// How a command is connected, decided from what was asked and what our ends are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A terminal inside, ours in raw mode outside, all keys forwarded.
    Tty,
    /// Pipes: stdout and stderr kept apart, stdin forwarded or not.
    Piped { stdin: bool },
}

/// A terminal only when asked and both our stdin and stdout are one.
pub(crate) fn choose_mode(io: &ExecIo, stdin_is_terminal: bool, stdout_is_terminal: bool) -> Mode {
    if io.tty && stdin_is_terminal && stdout_is_terminal {
        Mode::Tty
    } else {
        Mode::Piped {
            stdin: io.forward_stdin,
        }
    }
}

/// Our terminal's size as (rows, columns), with the classic 24x80 when it cannot be read.
pub(crate) fn terminal_size() -> (u16, u16) {
    console::Term::stdout().size_checked().unwrap_or((24, 80))
}

/// Copies `input` to the command's stdin, then closes it so that the command sees the end.
pub(crate) async fn pump(
    mut input: Input,
    mut stdin: impl AsyncWrite + Unpin,
) -> std::io::Result<()> {
    let mut buffer = vec![0_u8; 8192];
    loop {
        let read = input.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        stdin.write_all(&buffer[..read]).await?;
        stdin.flush().await?;
    }
    stdin.shutdown().await
}

/// What is forwarded to a command's stdin.
pub(crate) enum Input {
    /// A terminal or pipe, reopened non-blocking so that reading can be cancelled (a blocking
    /// read would hold the runtime's shutdown until the next key press).
    Polled(AsyncFd<File>),
    /// Anything that cannot be reopened for polling, read blocking: a regular file or /dev/null
    /// (reads never wait long), or a socket `/proc` will not reopen (reads may wait, and then
    /// hold up the runtime's shutdown like a blocking terminal would).
    Blocking(Box<dyn Read + Send>),
    /// Bytes given by the caller, written once.
    Bytes(Option<Vec<u8>>),
}

impl Input {
    /// Our stdin as a command's input when `forward`, else none (the piped mode's choice).
    pub(crate) fn ours_if(forward: bool) -> anyhow::Result<Option<Self>> {
        use anyhow::Context as _;
        forward
            .then(|| Self::our_stdin().context("opening our stdin to forward it"))
            .transpose()
    }

    /// Our stdin as input, reopened as [`Input::reopen`] does so that reading it can be cancelled.
    pub(crate) fn our_stdin() -> std::io::Result<Self> {
        let stdin = std::io::stdin();
        Self::reopen(stdin.as_fd())
    }

    /// `fd` as input: polled through a file description of its own when it can be (so O_NONBLOCK
    /// never reaches whoever shares it), else read blocking.
    pub(crate) fn reopen(fd: BorrowedFd<'_>) -> std::io::Result<Self> {
        // Reopening gives a file description of our own: O_NONBLOCK on it does not leak to the
        // shell that shares our stdin.
        let reopened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        let Ok(file) = reopened else {
            let fd = fd.try_clone_to_owned()?;
            return Ok(Self::Blocking(Box::new(File::from(fd))));
        };
        // Deprecated for want of I/O safety with borrowed descriptors; this one owns its file,
        // which stays open for as long as it is registered (`register` is the unsafe spelling).
        #[allow(deprecated)]
        match AsyncFd::try_new(file) {
            Ok(polled) => Ok(Self::Polled(polled)),
            Err(err) => {
                // Not pollable (epoll refuses regular files): read it plainly, and blocking.
                let file = err.into_parts().0;
                set_blocking(&file)?;
                Ok(Self::Blocking(Box::new(file)))
            }
        }
    }

    /// Like [`Read::read`], `Ok(0)` at the end; only a `Polled` input waits without holding the
    /// thread.
    pub(crate) async fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Polled(fd) => loop {
                let mut ready = fd.readable().await?;
                if let Ok(result) = ready.try_io(|file| file.get_ref().read(buffer)) {
                    return result;
                }
            },
            Self::Blocking(reader) => reader.read(buffer),
            Self::Bytes(bytes) => {
                let Some(data) = bytes.as_mut() else {
                    return Ok(0);
                };
                let n = data.len().min(buffer.len());
                buffer[..n].copy_from_slice(&data[..n]);
                data.drain(..n);
                if data.is_empty() {
                    *bytes = None;
                }
                Ok(n)
            }
        }
    }
}

/// Clears O_NONBLOCK on a file we opened with it.
fn set_blocking(file: &File) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(file, FcntlArg::F_GETFL)?);
    fcntl(file, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(())
}

/// A terminal in raw mode (no echo, no line editing, no signals from keys: everything goes to
/// the command inside) until dropped, which puts the saved settings back, on success, error
/// and panic alike.
#[derive(Debug)]
pub(crate) struct RawMode<F: AsFd> {
    fd: F,
    saved: Termios,
}

impl<F: AsFd> RawMode<F> {
    /// Puts `fd` in raw mode until the guard is dropped; fails when `fd` is not a terminal.
    pub(crate) fn enable(fd: F) -> anyhow::Result<Self> {
        let saved = tcgetattr(&fd).context("reading the terminal's settings")?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&fd, SetArg::TCSANOW, &raw).context("changing the terminal's settings")?;
        Ok(Self { fd, saved })
    }
}

impl<F: AsFd> Drop for RawMode<F> {
    fn drop(&mut self) {
        // Nothing better to do on failure: the terminal may be gone already.
        tcsetattr(&self.fd, SetArg::TCSANOW, &self.saved).ok();
    }
}

/// The command of `shell`: an interactive `/bin/sh` (with a terminal), or `sh -c` of `words`
/// (what came after `--`).
pub(crate) fn shell_command(words: &[String]) -> (Vec<String>, ExecIo) {
    let interactive = words.is_empty();
    let command = if interactive {
        vec!["/bin/sh".to_owned()]
    } else {
        vec!["/bin/sh".to_owned(), "-c".to_owned(), words.join(" ")]
    };
    let io = ExecIo {
        tty: interactive,
        forward_stdin: true,
        env: Vec::new(),
    };
    (command, io)
}

/// A remote exit code as ours: 0-255 as they are, anything else as a failure.
pub(crate) fn exit_code(code: i64) -> std::process::ExitCode {
    u8::try_from(code).map_or(
        std::process::ExitCode::FAILURE,
        std::process::ExitCode::from,
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::time::Duration;

    use anyhow::bail;
    use nix::pty::openpty;
    use nix::sys::termios::{LocalFlags, OutputFlags};

    use super::*;

    #[test]
    fn a_terminal_is_used_only_when_asked_and_both_ends_are_terminals() {
        let interactive = ExecIo {
            tty: true,
            forward_stdin: false,
            env: Vec::new(),
        };
        let piped = ExecIo {
            tty: false,
            forward_stdin: true,
            env: Vec::new(),
        };
        let cases = [
            (&interactive, true, true, Mode::Tty),
            (&interactive, true, false, Mode::Piped { stdin: false }),
            (&interactive, false, true, Mode::Piped { stdin: false }),
            (&piped, true, true, Mode::Piped { stdin: true }),
            (&piped, false, false, Mode::Piped { stdin: true }),
        ];
        for (io, stdin, stdout, expected) in cases {
            assert_eq!(
                choose_mode(io, stdin, stdout),
                expected,
                "{io:?} {stdin} {stdout}"
            );
        }
    }

    #[test]
    fn raw_mode_is_set_while_held_and_the_old_settings_come_back_on_drop() {
        let pty = openpty(None, None).unwrap();
        let before = tcgetattr(&pty.slave).unwrap();
        assert!(
            before
                .local_flags
                .contains(LocalFlags::ICANON | LocalFlags::ECHO)
        );
        {
            let _raw = RawMode::enable(pty.slave.as_fd()).unwrap();
            let during = tcgetattr(&pty.slave).unwrap();
            assert!(
                !during
                    .local_flags
                    .intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG)
            );
            assert!(!during.output_flags.contains(OutputFlags::OPOST));
        }
        let after = tcgetattr(&pty.slave).unwrap();
        assert_eq!(after.local_flags, before.local_flags);
        assert_eq!(after.input_flags, before.input_flags);
        assert_eq!(after.output_flags, before.output_flags);
        assert_eq!(after.control_flags, before.control_flags);
    }

    #[test]
    fn raw_mode_is_undone_when_the_work_fails_or_panics() {
        fn failing_session(fd: std::os::fd::BorrowedFd<'_>) -> anyhow::Result<()> {
            let _raw = RawMode::enable(fd)?;
            bail!("the engine went away")
        }
        let pty = openpty(None, None).unwrap();
        let before = tcgetattr(&pty.slave).unwrap();
        assert!(failing_session(pty.slave.as_fd()).is_err());
        assert_eq!(
            tcgetattr(&pty.slave).unwrap().local_flags,
            before.local_flags
        );

        let slave = pty.slave.as_fd();
        let panicked = std::panic::catch_unwind(|| {
            let _raw = RawMode::enable(slave).unwrap();
            panic!("bug while in raw mode");
        });
        assert!(panicked.is_err());
        assert_eq!(
            tcgetattr(&pty.slave).unwrap().local_flags,
            before.local_flags
        );
    }

    #[test]
    fn raw_mode_on_something_that_is_not_a_terminal_fails_cleanly() {
        let file = tempfile::tempfile().unwrap();
        let err = RawMode::enable(&file).unwrap_err();
        assert!(format!("{err:#}").contains("terminal"), "{err:#}");
    }

    #[tokio::test]
    async fn given_bytes_are_read_once_then_end() {
        let mut input = Input::Bytes(Some(b"hello world".to_vec()));
        let mut buffer = [0_u8; 6];
        assert_eq!(input.read(&mut buffer).await.unwrap(), 6);
        assert_eq!(&buffer, b"hello ");
        assert_eq!(input.read(&mut buffer).await.unwrap(), 5);
        assert_eq!(&buffer[..5], b"world");
        assert_eq!(input.read(&mut buffer).await.unwrap(), 0);
    }

    async fn read_all(mut input: Input) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buffer = [0_u8; 4];
        loop {
            let n = input.read(&mut buffer).await.unwrap();
            if n == 0 {
                return all;
            }
            all.extend_from_slice(&buffer[..n]);
        }
    }

    #[tokio::test]
    async fn a_pipe_is_read_by_polling_until_its_writer_closes() {
        let (reader, writer) = nix::unistd::pipe().unwrap();
        let input = Input::reopen(reader.as_fd()).unwrap();
        assert!(matches!(input, Input::Polled(_)));
        let writing = tokio::task::spawn_blocking(move || {
            let mut writer = File::from(writer);
            writer.write_all(b"first ").unwrap();
            std::thread::sleep(Duration::from_millis(100));
            writer.write_all(b"second").unwrap();
        });
        assert_eq!(read_all(input).await, b"first second");
        writing.await.unwrap();
    }

    #[tokio::test]
    async fn a_regular_file_is_read_plainly() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"from a file").unwrap();
        let path = format!("/proc/self/fd/{}", file.as_raw_fd());
        let file = File::open(path).unwrap();
        let input = Input::reopen(file.as_fd()).unwrap();
        assert!(matches!(input, Input::Blocking(_)));
        assert_eq!(read_all(input).await, b"from a file");
    }
}
