//! `cargo xtask db-shell`: psql on the stack's database, interactive, or one statement with
//! `-c` (the exit code is psql's, so scripts can rely on it).

use std::process::ExitCode;

use anyhow::bail;

use crate::Context;
use crate::runtime::RuntimeKind;
use crate::runtime::docker::exec::{self, ExecIo};
use crate::runtime::docker::session::{DATABASE_WORKLOAD, SecretsMode, Session, psql};
use crate::runtime::kind::exec as kind_exec;
use crate::runtime::kind::session::KindSession;

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
    let code = match ctx.runtime() {
        RuntimeKind::Docker => {
            let session = Session::open(ctx, SecretsMode::Existing).await?;
            let database = session.database().await?;
            let command = database.psql(&extra);
            exec::run(session.runtime.docker(), &database.container, &command, &io).await?
        }
        RuntimeKind::Kind => {
            let session = KindSession::open(ctx).await?;
            let login = session.database()?;
            let namespace = session.namespace();
            let pod = kind_exec::ready_pod(&session.client, namespace, DATABASE_WORKLOAD).await?;
            let command = psql(&login.user, &login.database, &extra);
            kind_exec::run(&session.client, namespace, &pod, None, &command, &io).await?
        }
    };
    Ok(crate::shell::exit_code(code))
}
