//! Where the stack runs. Two runtimes work from the same parsed manifests (docs/design.md, "Two
//! runtimes, one set of manifests"): `kind`, a real Kubernetes cluster, and `docker`, containers
//! straight on the engine.
//!
//! [`RuntimeKind`]'s methods are the one interface the commands call: each command file holds
//! its flags, one call here and the rendering of what comes back ([`report`]); each runtime's
//! folder holds its own `up`, `down`, `status`, `logs`, `shell`, `database` and port-forward.
//! What both runtimes share sits beside them: the database's login and seed scripts
//! ([`database`]), the secrets ([`secrets`]), `up`'s checks ([`checks`]), exec's terminal
//! handling ([`exec_io`]) and the log lines' format ([`logs_format`]).

pub(crate) mod checks;
pub(crate) mod database;
pub(crate) mod docker;
pub(crate) mod exec_io;
pub(crate) mod kind;
pub(crate) mod logs_format;
pub(crate) mod report;
pub(crate) mod secrets;

use std::io::Write;

use crate::context::Context;
use exec_io::ExecIo;
use logs_format::LogOptions;
use report::{Change, DownOptions, Replaced, StatusReport, UpOptions, UpReport};

pub(crate) use crate::context::RuntimeKind;

impl RuntimeKind {
    /// `dev`: brings the stack up, or up to date, and says where it answers.
    pub(crate) async fn up(self, ctx: &Context, options: &UpOptions) -> anyhow::Result<UpReport> {
        match self {
            Self::Docker => docker::up::up(ctx, options).await,
            Self::Kind => kind::up::up(ctx, options).await,
        }
    }

    /// `restart` and the watch loop: one workload replaced as `change` says (new images, or a
    /// new container or pod of the same), then ready and answering. A failure says whether the
    /// version before still serves.
    pub(crate) async fn replace(
        self,
        ctx: &Context,
        workload: &str,
        change: Change<'_>,
        timeout: std::time::Duration,
        on_progress: &(dyn Fn(&str) + Sync),
    ) -> anyhow::Result<Replaced> {
        match self {
            Self::Docker => {
                Box::pin(docker::replace::replace(
                    ctx,
                    workload,
                    change,
                    timeout,
                    on_progress,
                ))
                .await
            }
            Self::Kind => {
                Box::pin(kind::replace::replace(
                    ctx,
                    workload,
                    change,
                    timeout,
                    on_progress,
                ))
                .await
            }
        }
    }

    /// `down`: takes the stack down, its data too when asked.
    pub(crate) async fn down(self, ctx: &Context, options: &DownOptions) -> anyhow::Result<()> {
        match self {
            Self::Docker => docker::down::run(ctx, options).await,
            Self::Kind => kind::down::run(ctx, options).await,
        }
    }

    /// `status`: every service's state and health.
    pub(crate) async fn status(self, ctx: &Context) -> anyhow::Result<StatusReport> {
        match self {
            Self::Docker => docker::status::report(ctx).await,
            Self::Kind => kind::status::report(ctx).await,
        }
    }

    /// `logs`: one service's lines, or every service's, to `out`.
    pub(crate) async fn logs(
        self,
        ctx: &Context,
        service: Option<&str>,
        options: &LogOptions,
        out: &mut (dyn Write + Send),
    ) -> anyhow::Result<()> {
        match self {
            Self::Docker => docker::logs::show(ctx, service, options, out).await,
            Self::Kind => kind::logs::show(ctx, service, options, out).await,
        }
    }

    /// `shell`: a shell beside `service` (running `words` when given); its exit code.
    pub(crate) async fn shell(
        self,
        ctx: &Context,
        service: &str,
        words: &[String],
    ) -> anyhow::Result<i64> {
        match self {
            Self::Docker => docker::shell::shell(ctx, service, words).await,
            Self::Kind => kind::shell::shell(ctx, service, words).await,
        }
    }

    /// `db-shell`: psql on the stack's database with `extra` arguments; its exit code.
    pub(crate) async fn db_shell(
        self,
        ctx: &Context,
        extra: &[&str],
        io: &ExecIo,
    ) -> anyhow::Result<i64> {
        match self {
            Self::Docker => docker::database::db_shell(ctx, extra, io).await,
            Self::Kind => kind::database::db_shell(ctx, extra, io).await,
        }
    }

    /// `seed`: the seed data loaded (after emptying the tables with `reset`).
    pub(crate) async fn seed(self, ctx: &Context, reset: bool) -> anyhow::Result<()> {
        let title = if reset {
            "Resetting and seeding the database"
        } else {
            "Seeding the database"
        };
        match self {
            Self::Docker => docker::database::seed(ctx, reset, title).await,
            Self::Kind => kind::database::seed(ctx, reset, title).await,
        }
    }

    /// `port-forward`: 127.0.0.1:`local` (default: the Service's port) forwarded to `service`
    /// until Ctrl-C.
    pub(crate) async fn port_forward(
        self,
        ctx: &Context,
        service: &str,
        local: Option<u16>,
    ) -> anyhow::Result<()> {
        match self {
            Self::Docker => docker::port_forward::forward(ctx, service, local).await,
            Self::Kind => kind::portforward::forward(ctx, service, local).await,
        }
    }
}
