//! What the stack commands share on the kind runtime: the parsed manifests, the secrets and a
//! kube client for the cluster's own context, opened once per command.

use std::path::PathBuf;

use anyhow::{anyhow, bail};

use super::client;
use super::cluster::KindCli;
use crate::Context;
use crate::runtime::docker::session::{DATABASE_WORKLOAD, SecretsMode};
use crate::stack::{Stack, Workload, container_env};
use crate::state::Secrets;

/// One command's view of the stack on the kind runtime.
pub(crate) struct KindSession {
    pub(crate) stack: Stack,
    pub(crate) secrets: Secrets,
    pub(crate) client: kube::Client,
    /// The repository root (for `db/`).
    pub(crate) root: PathBuf,
}

impl std::fmt::Debug for KindSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindSession")
            .field("namespace", &self.stack.namespace)
            .finish_non_exhaustive()
    }
}

/// How to log in to the stack's database, from the postgres workload's environment.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct DatabaseLogin {
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) database: String,
    /// The Service that reaches it, and its port.
    pub(crate) service: String,
    pub(crate) port: u16,
}

impl std::fmt::Debug for DatabaseLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseLogin")
            .field("user", &self.user)
            .field("database", &self.database)
            .field("service", &self.service)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl KindSession {
    /// For the commands that use a running stack: the cluster must exist (unless `--context`
    /// names another), and so must the secrets of an earlier `dev`.
    pub(crate) async fn open(ctx: &Context) -> anyhow::Result<Self> {
        let stack = ctx.config().load_stack()?;
        let secrets = secrets(ctx, SecretsMode::Existing)?;
        let kind = KindCli::new(ctx);
        if ctx.kube_context().is_none() && !kind.exists()? {
            bail!(
                "there is no kind cluster `{}`: start the stack with `cargo xtask dev`",
                kind.name()
            );
        }
        let client = client::connect(&kind, ctx.kube_context()).await?;
        Ok(Self::new(ctx, stack, secrets, client))
    }

    /// A session over a client already connected (by `dev`, after creating the cluster).
    pub(crate) fn new(ctx: &Context, stack: Stack, secrets: Secrets, client: kube::Client) -> Self {
        Self {
            stack,
            secrets,
            client,
            root: ctx.root().to_path_buf(),
        }
    }

    /// The stack's namespace, from the kustomization in manifests/: every object the commands touch
    /// is in it, also under `--context`.
    pub(crate) fn namespace(&self) -> &str {
        &self.stack.namespace
    }

    /// The database's login, as the postgres container's environment defines it.
    pub(crate) fn database(&self) -> anyhow::Result<DatabaseLogin> {
        database_login(&self.stack, &self.secrets)
    }
}

/// The secrets: generated on the first `dev`, read by every other command.
pub(crate) fn secrets(ctx: &Context, mode: SecretsMode) -> anyhow::Result<Secrets> {
    let state = ctx.state();
    state.check_permissions()?;
    match mode {
        SecretsMode::Generate => state.secrets_or_generate(),
        SecretsMode::Existing => state.secrets()?.ok_or_else(|| {
            anyhow!("the stack has not been started here yet: run `cargo xtask dev` first")
        }),
    }
}

/// The login of the database workload: `POSTGRES_USER` (default `postgres`), `POSTGRES_DB`
/// (default: the user) and `POSTGRES_PASSWORD` of its first container, as the official image
/// reads them, and the first Service port that reaches it.
pub(crate) fn database_login(stack: &Stack, secrets: &Secrets) -> anyhow::Result<DatabaseLogin> {
    let workload = stack.named_workload(DATABASE_WORKLOAD)?;
    let container = workload
        .pod_spec
        .containers
        .first()
        .ok_or_else(|| anyhow!("the {DATABASE_WORKLOAD} workload has no container"))?;
    let env = container_env(stack, secrets, container)?;
    let var = |name: &str| {
        env.iter()
            .find_map(|e| e.strip_prefix(name)?.strip_prefix('=').map(str::to_owned))
            .filter(|value| !value.is_empty())
    };
    let user = var("POSTGRES_USER").unwrap_or_else(|| "postgres".to_owned());
    let database = var("POSTGRES_DB").unwrap_or_else(|| user.clone());
    let password = var("POSTGRES_PASSWORD").ok_or_else(|| {
        anyhow!("the {DATABASE_WORKLOAD} container sets no POSTGRES_PASSWORD in manifests/")
    })?;
    let (service, port) = service_port(stack, workload)?;
    Ok(DatabaseLogin {
        user,
        password,
        database,
        service,
        port,
    })
}

/// The first Service (and its first port) that reaches `workload`.
pub(crate) fn service_port(stack: &Stack, workload: &Workload) -> anyhow::Result<(String, u16)> {
    stack
        .services_of(workload)
        .into_iter()
        .find_map(|service| Some((service.name.clone(), service.ports.first()?.port)))
        .ok_or_else(|| {
            anyhow!(
                "no Service in manifests/ reaches the {} workload",
                workload.name
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack() -> Stack {
        Stack::load(&crate::Context::for_tests().root().join("manifests")).unwrap()
    }

    fn secrets() -> Secrets {
        serde_json::from_str(r#"{"postgres_password":"pw-1","api_token":"tok"}"#).unwrap()
    }

    #[test]
    fn the_database_login_comes_from_the_manifests_and_the_generated_secret() {
        let login = database_login(&stack(), &secrets()).unwrap();
        assert_eq!(login.user, "wander");
        assert_eq!(login.database, "wander");
        assert_eq!(login.password, "pw-1");
        assert_eq!((login.service.as_str(), login.port), ("postgres", 5432));
        assert!(!format!("{login:?}").contains("pw-1"));
    }

    #[test]
    fn every_workload_is_reached_by_a_service() {
        let stack = stack();
        for workload in &stack.workloads {
            let (service, port) = service_port(&stack, workload).unwrap();
            assert_eq!(service, workload.name);
            assert!(port > 0);
        }
    }
}
