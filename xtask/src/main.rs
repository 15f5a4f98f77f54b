//! `cargo xtask`: one Rust program that sets up, tests and runs the Wander stack.
//!
//! `main` parses the command line ([`cli`]), builds one [`Context`] and dispatches with one flat
//! `match`; each subcommand lives in its own file (flags, one call, rendering) and exposes `run`.
//! The layers, from the top: the command files; `runtime/` (the one interface every stack
//! command calls, and a folder per runtime); `images/`, `prereq.rs`, `docker/` (the engine
//! connection) and `stack/` (the manifests as a typed graph); then the ground: `context.rs`,
//! `config.rs`, `state.rs`, `ui.rs`, `cmd.rs`. docs/design.md, "Layers", tells the rest.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error; `test` passes on its test runner's code, and
//! 130 when interrupted.

mod bench;
mod cli;
mod cmd;
mod completions;
mod config;
mod context;
mod db_shell;
mod dev;
mod digest;
mod docker;
#[cfg(test)]
mod docs_tests;
mod doctor;
mod down;
mod elf;
mod images;
mod interrupt;
mod logs;
mod platform;
mod port_forward;
mod port_holder;
mod prereq;
mod restart;
mod runtime;
mod seed;
mod setup;
mod shell;
mod sqlx_prepare;
mod stack;
mod state;
#[cfg(test)]
mod static_checks_tests;
mod status;
mod test;
mod token;
mod ui;
mod watch;

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser as _};

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::context::Context;
use crate::ui::{Ui, Verbosity};

/// What Ctrl-C means to a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// It changes the stack and was cut short: say that running it again continues.
    Resumable,
    /// Ctrl-C is how it normally ends (`logs -f`, `port-forward`, a shell) or it only looks.
    Quiet,
    /// `dev --watch`: Ctrl-C ends the watching, and the stack stays up.
    Watching,
}

/// Runs an async command on a fresh runtime. Ctrl-C (or SIGTERM) abandons it at once: dropping
/// its futures cancels the engine requests in flight and kills the child processes started with
/// `kill_on_drop`; what it created stays consistent, so running the command again continues.
fn run_async<F>(ctx: &Context, stop: Stop, command: F) -> anyhow::Result<ExitCode>
where
    F: Future<Output = anyhow::Result<ExitCode>>,
{
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let outcome = runtime.block_on(async {
        let mut interrupt = interrupt::Interrupt::listen()?;
        anyhow::Ok(tokio::select! {
            result = command => Some(result),
            () = interrupt.requested() => None,
        })
    });
    runtime.shutdown_timeout(Duration::from_millis(500));
    if let Some(result) = outcome? {
        return result;
    }
    match stop {
        Stop::Resumable => ctx
            .ui()
            .warn("interrupted; run the same command again to continue where it stopped"),
        Stop::Watching => ctx.ui().outcome(
            "stopped watching; the stack is still up (`cargo xtask down` stops it, `cargo xtask dev --watch` watches again)",
        ),
        Stop::Quiet => {}
    }
    Ok(ExitCode::from(interrupt::EXIT_INTERRUPTED))
}

fn main() -> ExitCode {
    // Usage errors print clap's message and exit with 2; `--help` and `--version` with 0.
    let cli = Cli::parse();
    let verbosity = if cli.verbose {
        Verbosity::Verbose
    } else if cli.quiet {
        Verbosity::Quiet
    } else {
        Verbosity::Normal
    };
    let config = match Config::from_env(&Context::repository_root()) {
        Ok(config) => config,
        Err(err) => {
            // A bad setting is a usage error, as a bad flag is (clap exits with 2 too).
            eprintln!("{} {err:#}", Ui::new(verbosity).paint_red("error:"));
            return ExitCode::from(2);
        }
    };
    let ctx = Context::new(verbosity, cli.runtime, cli.context, config);
    let result = match cli.command {
        Command::Dev(args) => {
            let stop = if args.watch {
                Stop::Watching
            } else {
                Stop::Resumable
            };
            run_async(&ctx, stop, dev::run(&ctx, args))
        }
        Command::Down(args) => run_async(&ctx, Stop::Resumable, down::run(&ctx, args)),
        Command::Status(args) => run_async(&ctx, Stop::Quiet, status::run(&ctx, args)),
        Command::Logs(args) => run_async(&ctx, Stop::Quiet, logs::run(&ctx, args)),
        Command::Restart(args) => run_async(&ctx, Stop::Resumable, restart::run(&ctx, args)),
        Command::Shell(args) => run_async(&ctx, Stop::Quiet, shell::run(&ctx, args)),
        Command::DbShell(args) => run_async(&ctx, Stop::Quiet, db_shell::run(&ctx, args)),
        Command::Seed(args) => run_async(&ctx, Stop::Resumable, seed::run(&ctx, args)),
        Command::PortForward(args) => run_async(&ctx, Stop::Quiet, port_forward::run(&ctx, args)),
        Command::Doctor(args) => run_async(&ctx, Stop::Quiet, doctor::command(&ctx, args)),
        Command::Token => token::run(&ctx),
        Command::Completions(args) => completions::run(&ctx, Cli::command(), &args),
        Command::Test(args) => test::run(&ctx, &args),
        Command::Setup => setup::run(&ctx),
        Command::Bench(args) => bench::run(&ctx, &args),
        Command::SqlxPrepare(args) => sqlx_prepare::run(&ctx, &args),
        Command::Kubelet => run_async(
            &ctx,
            Stop::Quiet,
            crate::runtime::docker::kubelet::run(&ctx),
        ),
    };
    result.unwrap_or_else(|err| {
        // Output piped into `head` or a closed pager: the reader has what it wanted.
        let broken_pipe = err.chain().any(|cause| {
            let kind = cause
                .downcast_ref::<std::io::Error>()
                .map(std::io::Error::kind)
                .or_else(|| cause.downcast_ref::<serde_json::Error>()?.io_error_kind());
            kind == Some(std::io::ErrorKind::BrokenPipe)
        });
        if broken_pipe {
            return ExitCode::SUCCESS;
        }
        eprintln!("{} {err:#}", ctx.ui().paint_red("error:"));
        ExitCode::FAILURE
    })
}
