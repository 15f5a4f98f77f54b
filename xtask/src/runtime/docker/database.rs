//! The database on the docker runtime: psql inside its container, so that no port needs to be
//! reachable from the host (`db-shell`, `seed`, `dev`'s seeding).

use anyhow::{Context as _, bail};

use super::exec;
use super::session::Session;
use crate::context::Context;
use crate::runtime::database;
use crate::runtime::exec_io::ExecIo;
use crate::runtime::secrets::SecretsMode;

/// psql in the database's container with `extra` arguments; ends with psql's exit code.
pub(crate) async fn db_shell(ctx: &Context, extra: &[&str], io: &ExecIo) -> anyhow::Result<i64> {
    let session = Session::open(ctx, SecretsMode::Existing).await?;
    let database = session.database().await?;
    let command = database.psql(extra);
    exec::run(session.runtime.docker(), &database.container, &command, io).await
}

/// `seed` under a step titled `title`.
pub(crate) async fn seed(ctx: &Context, reset: bool, title: &str) -> anyhow::Result<()> {
    let session = Session::open(ctx, SecretsMode::Existing).await?;
    let step = ctx.ui().step(title);
    step.conclude(load(&session, reset).await, Clone::clone)?;
    Ok(())
}

/// Runs the seed (after the reset when asked) with psql in the database container, clears the
/// API's cache, and says how many rows each table holds.
pub(crate) async fn load(session: &Session, reset: bool) -> anyhow::Result<String> {
    let db = session.database().await?;
    for script in database::scripts(&session.root, reset) {
        let sql =
            std::fs::read(&script).with_context(|| format!("reading {}", script.display()))?;
        let out = exec::capture(
            session.runtime.docker(),
            &db.container,
            &db.psql(&["-q", "-f", "-"]),
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
        &db.container,
        &db.psql(&["-tA", "-c", database::COUNTS]),
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
    let cache = database::clear_api_cache(&session.stack, &session.secrets).await;
    Ok(format!("{} · {cache}", counts.stdout_text().trim()))
}
