//! What the stack commands share on the kind runtime: the parsed manifests, the secrets and a
//! kube client for the cluster's own context, opened once per command.

use std::path::PathBuf;

use anyhow::bail;

use super::client;
use super::cluster::KindCli;
use crate::context::Context;
use crate::runtime::database::{DatabaseLogin, database_login};
use crate::runtime::secrets::{SecretsMode, secrets};
use crate::stack::Stack;
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
