//! `cargo xtask seed`: loads `db/seed.sql` into the stack's database (idempotent), after
//! `db/reset.sql` with `--reset`. Both run through psql inside the database container, so no
//! port needs to be reachable from the host.

use std::process::ExitCode;

use anyhow::{Context as _, bail};

use crate::Context;
use crate::runtime::RuntimeKind;
use crate::runtime::docker::exec;
use crate::runtime::docker::session::{SecretsMode, Session};

/// Options of `cargo xtask seed`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Empty every table (and restart the ids) before seeding: the data is lost.
    #[arg(long)]
    pub(crate) reset: bool,
}

pub(crate) async fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    if ctx.runtime() == RuntimeKind::Kind {
        bail!(crate::runtime::KIND_NOT_AVAILABLE);
    }
    let session = Session::open(ctx, SecretsMode::Existing).await?;
    let step = ctx.ui().step(if args.reset {
        "Resetting and seeding the database"
    } else {
        "Seeding the database"
    });
    match load(&session, args.reset).await {
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

/// Runs the seed (after the reset when asked) and says how many rows each table holds.
pub(crate) async fn load(session: &Session, reset: bool) -> anyhow::Result<String> {
    let database = session.database().await?;
    let root = &session.root;
    let mut scripts = Vec::new();
    if reset {
        scripts.push(root.join("db/reset.sql"));
    }
    scripts.push(root.join("db/seed.sql"));
    for script in scripts {
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
        &database.psql(&[
            "-tA",
            "-c",
            "SELECT (SELECT count(*) FROM services) || ' services, ' || (SELECT count(*) FROM environments) || ' environments, ' || (SELECT count(*) FROM deployments) || ' deployments'",
        ]),
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
