//! Ctrl-C handling for commands that must clean up (stop servers, remove files) before exiting.

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// The exit code of a command stopped by Ctrl-C, as shells report it (128 + SIGINT).
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

/// Remembers whether Ctrl-C was pressed.
///
/// While one exists, Ctrl-C no longer ends the xtask at once: the command notices it, lets its
/// child programs (which got the same Ctrl-C from the terminal) finish, cleans up and exits 130.
#[derive(Debug)]
pub(crate) struct Interrupt {
    requested: watch::Receiver<bool>,
}

impl Interrupt {
    /// Starts listening for SIGINT (Ctrl-C) and SIGTERM (`kill`, a CI runner giving up), which
    /// both mean "stop, but clean up first". Needs a multi-threaded tokio runtime entered (or
    /// running), so the listener runs while the calling thread does blocking work.
    pub(crate) fn listen() -> anyhow::Result<Self> {
        let mut sigint = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
        let mut sigterm = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        let (tell, requested) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    got = sigint.recv() => if got.is_none() { break },
                    got = sigterm.recv() => if got.is_none() { break },
                }
                tell.send_replace(true);
            }
        });
        Ok(Self { requested })
    }

    /// Whether Ctrl-C has been pressed since [`Interrupt::listen`].
    pub(crate) fn is_requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// Completes once Ctrl-C has been pressed (at once if it already was).
    pub(crate) async fn requested(&mut self) {
        if self.requested.wait_for(|&pressed| pressed).await.is_err() {
            // The listener is gone, so no Ctrl-C can be reported any more.
            std::future::pending::<()>().await;
        }
    }
}
