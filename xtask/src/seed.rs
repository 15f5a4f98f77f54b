//! `cargo xtask seed`: loads `db/seed.sql` into the stack's database (idempotent), after
//! `db/reset.sql` with `--reset`. On docker both run through psql inside the database container,
//! so no port needs to be reachable from the host; on kind they go over a port-forward that
//! kube-rs opens to the database Service.

use std::process::ExitCode;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::Context;
use crate::runtime::RuntimeKind;
use crate::runtime::docker::exec;
use crate::runtime::docker::session::{SecretsMode, Session};
use crate::runtime::kind::database;
use crate::runtime::kind::session::KindSession;

/// Options of `cargo xtask seed`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Empty every table (and restart the ids) before seeding: the data is lost.
    #[arg(long)]
    pub(crate) reset: bool,
}

/// Seeds (after the reset with `--reset`) on the runtime chosen; the stack must be running, with
/// the secrets of an earlier `dev`.
pub(crate) async fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let title = if args.reset {
        "Resetting and seeding the database"
    } else {
        "Seeding the database"
    };
    let result = match ctx.runtime() {
        RuntimeKind::Docker => {
            let session = Session::open(ctx, SecretsMode::Existing).await?;
            let step = ctx.ui().step(title);
            (step, load(&session, args.reset).await)
        }
        RuntimeKind::Kind => {
            let session = KindSession::open(ctx).await?;
            let step = ctx.ui().step(title);
            let loaded = async {
                let mut db = database::connect(&session, database::PATIENCE).await?;
                load_over(db.connection(), &session.root, args.reset).await
            };
            (step, loaded.await)
        }
    };
    let (step, result) = result;
    match result {
        Ok(summary) => {
            step.done(summary);
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            step.fail();
            Err(err)
        }
    }
}

/// What a seed runs, in order: the reset when asked, then the seed.
fn scripts(root: &Path, reset: bool) -> Vec<PathBuf> {
    let mut scripts = Vec::new();
    if reset {
        scripts.push(root.join("db/reset.sql"));
    }
    scripts.push(root.join("db/seed.sql"));
    scripts
}

/// One line that says how many rows each seeded table holds.
const COUNTS: &str = "SELECT (SELECT count(*) FROM services) || ' services, ' || (SELECT count(*) FROM environments) || ' environments, ' || (SELECT count(*) FROM deployments) || ' deployments'";

/// Runs the seed (after the reset when asked) with psql in the database container, and says
/// how many rows each table holds.
pub(crate) async fn load(session: &Session, reset: bool) -> anyhow::Result<String> {
    let database = session.database().await?;
    for script in scripts(&session.root, reset) {
        let sql =
            std::fs::read(&script).with_context(|| format!("reading {}", script.display()))?;
        let out = exec::capture(
            session.runtime.docker(),
            &database.container,
            &database.psql(&["-q", "-f", "-"]),
            Some(sql),
            &[],
        )
        .await?;
        if out.exit_code != 0 {
            bail!(
                "{} failed in the database: {}",
                script.display(),
                out.stderr_text().trim()
            );
        }
    }
    let counts = exec::capture(
        session.runtime.docker(),
        &database.container,
        &database.psql(&["-tA", "-c", COUNTS]),
        None,
        &[],
    )
    .await?;
    if counts.exit_code != 0 {
        bail!(
            "counting the seeded rows failed: {}",
            counts.stderr_text().trim()
        );
    }
    Ok(counts.stdout_text().trim().to_owned())
}

/// [`load`] over a database connection: each script as one batch of statements (the simple
/// query protocol, as psql sends a file), then the row counts.
pub(crate) async fn load_over(
    connection: &mut sqlx::PgConnection,
    root: &Path,
    reset: bool,
) -> anyhow::Result<String> {
    for script in scripts(root, reset) {
        let sql = std::fs::read_to_string(&script)
            .with_context(|| format!("reading {}", script.display()))?;
        // The repository's own scripts, not user input.
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *connection)
            .await
            .with_context(|| format!("{} failed in the database", script.display()))?;
    }
    let counts: String = sqlx::query_scalar(COUNTS)
        .fetch_one(&mut *connection)
        .await
        .context("counting the seeded rows")?;
    Ok(counts)
}
