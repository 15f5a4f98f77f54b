//! `cargo xtask db-shell`: psql on the stack's database, interactive, or one statement with
//! `-c` (the exit code is psql's, so scripts can rely on it).

use std::process::ExitCode;

use anyhow::bail;

use crate::context::Context;
use crate::runtime::exec_io::{ExecIo, exit_code};

/// Options of `cargo xtask db-shell`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Run this SQL and exit instead of opening an interactive session.
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    pub(crate) command: Option<String>,
}

/// Runs psql in the database's container or pod and ends with psql's exit code; an empty `-c` is
/// refused before the stack is touched.
pub(crate) async fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    if args
        .command
        .as_deref()
        .is_some_and(|sql| sql.trim().is_empty())
    {
        bail!(
            "-c needs a statement, e.g. `cargo xtask db-shell -c 'SELECT count(*) FROM deployments'`"
        );
    }
    let (extra, io) = match &args.command {
        Some(sql) => (
            vec!["-c", sql.as_str()],
            ExecIo {
                tty: false,
                forward_stdin: false,
                env: Vec::new(),
            },
        ),
        None => (
            Vec::new(),
            ExecIo {
                tty: true,
                forward_stdin: true,
                // The root filesystem is read-only; /tmp is the container's scratch space.
                env: vec!["PSQL_HISTORY=/tmp/.psql_history".to_owned()],
            },
        ),
    };
    let code = ctx.runtime().db_shell(ctx, &extra, &io).await?;
    Ok(exit_code(code))
}
