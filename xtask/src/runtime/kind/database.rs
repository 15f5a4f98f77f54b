//! The stack's database from the host, through a port-forward to its Service (no psql and no
//! kubectl on the host): `dev`'s check that it answers, and the seed.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};

use super::exec;
use super::portforward::Tunnel;
use super::session::KindSession;
use crate::context::Context;
use crate::runtime::database::{DATABASE_WORKLOAD, load_over, psql};
use crate::runtime::exec_io::ExecIo;

/// psql in a ready database pod with `extra` arguments; ends with psql's exit code.
pub(crate) async fn db_shell(ctx: &Context, extra: &[&str], io: &ExecIo) -> anyhow::Result<i64> {
    let session = KindSession::open(ctx).await?;
    let login = session.database()?;
    let namespace = session.namespace();
    let pod = exec::ready_pod(&session.client, namespace, DATABASE_WORKLOAD).await?;
    let command = psql(&login.user, &login.database, extra);
    exec::run(&session.client, namespace, &pod, None, &command, io).await
}

/// `seed` under a step titled `title`, over a port-forward to the database's Service.
pub(crate) async fn seed(ctx: &Context, reset: bool, title: &str) -> anyhow::Result<()> {
    let session = KindSession::open(ctx).await?;
    let step = ctx.ui().step(title);
    let loaded = async {
        let mut db = connect(&session, PATIENCE).await?;
        load(&session, &mut db, reset).await
    };
    step.conclude(loaded.await, Clone::clone)?;
    Ok(())
}

/// Runs the seed (after the reset when asked) over `db`, clears the API's cache, and says how
/// many rows each table holds.
pub(crate) async fn load(
    session: &KindSession,
    db: &mut Database,
    reset: bool,
) -> anyhow::Result<String> {
    let counts = load_over(db.connection(), &session.root, reset).await?;
    let cache = crate::runtime::database::clear_api_cache(&session.stack, &session.secrets).await;
    Ok(format!("{counts} · {cache}"))
}

/// How long a connection waits for a ready database pod.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// An open connection, and the forward it runs over (closed with it).
#[derive(Debug)]
pub(crate) struct Database {
    connection: PgConnection,
    _tunnel: Tunnel,
}

impl Database {
    /// The connection for queries; it works only as long as `self`, which holds the forward, lives.
    pub(crate) fn connection(&mut self) -> &mut PgConnection {
        &mut self.connection
    }
}

/// Connects to the stack's database as its owner, through a fresh port-forward.
pub(crate) async fn connect(session: &KindSession, patience: Duration) -> anyhow::Result<Database> {
    let login = session.database()?;
    let tunnel = Tunnel::open(
        &session.client,
        session.namespace(),
        &login.service,
        login.port,
        patience,
    )
    .await?;
    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(tunnel.address().port())
        .username(&login.user)
        .password(&login.password)
        .database(&login.database)
        // The forward is the encryption; the stack's PostgreSQL has no certificate.
        .ssl_mode(PgSslMode::Disable);
    let connection = PgConnection::connect_with(&options).await.map_err(|err| {
        let forward = tunnel
            .last_event()
            .map_or_else(String::new, |event| format!(" (the port-forward: {event})"));
        anyhow!(err).context(format!(
            "connecting to PostgreSQL as {} through a port-forward to service {}:{}{forward}; `cargo xtask logs {}` says more",
            login.user, login.service, login.port, login.service
        ))
    })?;
    Ok(Database {
        connection,
        _tunnel: tunnel,
    })
}

/// `SELECT 1` over the connection: the database does its job, not merely runs.
pub(crate) async fn check(database: &mut Database) -> anyhow::Result<()> {
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(database.connection())
        .await
        .context("PostgreSQL is up but `SELECT 1` failed")?;
    anyhow::ensure!(one == 1, "PostgreSQL answered `SELECT 1` with {one}");
    Ok(())
}
