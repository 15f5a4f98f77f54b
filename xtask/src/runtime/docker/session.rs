//! What the stack commands share on the docker runtime: the engine, the parsed manifests, the
//! secrets and the stack's names, opened once per command.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};

use super::DockerRuntime;
use super::names::Names;
use super::plan::{self, ContainerPlan, Inputs};
use crate::context::Context;
use crate::runtime::database::{DATABASE_WORKLOAD, database_login, psql};
use crate::runtime::secrets::SecretsMode;
use crate::stack::{Stack, Workload};
use crate::state::Secrets;

/// One command's view of the stack on the docker runtime.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) runtime: DockerRuntime,
    pub(crate) stack: Stack,
    pub(crate) secrets: Secrets,
    /// The repository root (for `db/`).
    pub(crate) root: std::path::PathBuf,
    /// Where ConfigMap and Secret volumes are written as files (in the state folder).
    pub(crate) files_root: std::path::PathBuf,
    /// Log rotation of the containers.
    pub(crate) log: super::plan::LogLimits,
}

impl Session {
    /// Loads the manifests (with the `WANDER_*` overrides) and the secrets, then connects to the
    /// engine; only `dev` passes `Generate`, every other command needs the secrets of an earlier
    /// `dev`.
    pub(crate) async fn open(ctx: &Context, secrets: SecretsMode) -> anyhow::Result<Self> {
        let stack = ctx.config().load_stack()?;
        let secrets = crate::runtime::secrets::secrets(ctx, secrets)?;
        let state = ctx.state();
        let docker = crate::docker::connect().await?;
        Ok(Self {
            runtime: DockerRuntime::new(docker, Names::new(ctx.config().stack_name.as_str())),
            stack,
            secrets,
            root: ctx.root().to_path_buf(),
            files_root: state.path().join("files"),
            log: ctx.config().log,
        })
    }

    /// The stack's names, to address one of its containers directly.
    pub(crate) fn names(&self) -> &Names {
        self.runtime.names()
    }

    /// The plans of every workload in dependency order, running the given images.
    pub(crate) fn plans(
        &self,
        images: &BTreeMap<String, String>,
    ) -> anyhow::Result<Vec<ContainerPlan>> {
        self.stack
            .workloads
            .iter()
            .map(|workload| self.plan(workload, images))
            .collect()
    }

    /// The plan of one workload running the given images (which must name its images).
    pub(crate) fn plan(
        &self,
        workload: &Workload,
        images: &BTreeMap<String, String>,
    ) -> anyhow::Result<ContainerPlan> {
        let inputs = Inputs {
            stack: &self.stack,
            names: self.runtime.names(),
            secrets: &self.secrets,
            images,
            files_root: &self.files_root,
            log: self.log,
        };
        plan::plan(workload, &inputs)
    }

    /// The plans as the containers run now: each manifest image mapped to the image its
    /// container runs (for commands that look at, rather than change, the stack).
    pub(crate) async fn current_plans(&self) -> anyhow::Result<Vec<ContainerPlan>> {
        let containers = self.runtime.containers().await?;
        let mut images = BTreeMap::new();
        for workload in &self.stack.workloads {
            let running = containers
                .iter()
                .find(|c| c.workload == workload.name)
                .map(|c| c.image.clone())
                .unwrap_or_default();
            for image in workload.images() {
                images.insert(image, running.clone());
            }
        }
        self.plans(&images)
    }

    /// The workload `name` of the manifests; the error lists the ones there are, which is how
    /// commands check a service name the user typed.
    pub(crate) fn workload(&self, name: &str) -> anyhow::Result<&Workload> {
        self.stack.named_workload(name)
    }

    /// The database container with the user and database psql should use.
    pub(crate) async fn database(&self) -> anyhow::Result<Database> {
        let plans = self.current_plans().await?;
        let plan = plans
            .iter()
            .find(|p| p.workload == DATABASE_WORKLOAD)
            .ok_or_else(|| anyhow!("the manifests have no {DATABASE_WORKLOAD} workload"))?;
        // The same login the kind runtime uses, read from the manifests the same way.
        let login = database_login(&self.stack, &self.secrets)?;
        if !self.runtime.is_running(&plan.container_name).await? {
            bail!("the database is not running: start the stack with `cargo xtask dev`");
        }
        Ok(Database {
            container: plan.container_name.clone(),
            user: login.user,
            name: login.database,
        })
    }
}

/// The host ports this stack's containers hold now (none when the engine cannot be reached).
pub(crate) async fn owned_host_ports(ctx: &Context) -> Vec<u16> {
    let Ok(docker) = crate::docker::connect().await else {
        return Vec::new();
    };
    DockerRuntime::new(docker, Names::new(ctx.config().stack_name.as_str()))
        .containers()
        .await
        .unwrap_or_default()
        .iter()
        .flat_map(|c| c.ports.iter().filter_map(|p| host_port_of(p)))
        .collect()
}

/// `127.0.0.1:8080->8080` → 8080.
pub(crate) fn host_port_of(binding: &str) -> Option<u16> {
    binding.split("->").next()?.rsplit(':').next()?.parse().ok()
}

/// Where psql should connect.
#[derive(Debug, Clone)]
pub(crate) struct Database {
    pub(crate) container: String,
    pub(crate) user: String,
    pub(crate) name: String,
}

impl Database {
    /// `psql` with the stack's user and database, quiet and stopping at the first error.
    pub(crate) fn psql(&self, extra: &[&str]) -> Vec<String> {
        psql(&self.user, &self.name, extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psql_gets_the_stack_user_and_database_as_separate_arguments() {
        let database = Database {
            container: "wander-postgres".into(),
            user: "wander".into(),
            name: "wander db".into(),
        };
        let cmd = database.psql(&["-c", "SELECT 1; DROP TABLE x"]);
        assert_eq!(cmd[0], "psql");
        assert!(cmd.windows(2).any(|w| w == ["-d", "wander db"]));
        assert_eq!(
            cmd.last().map(String::as_str),
            Some("SELECT 1; DROP TABLE x")
        );
    }

    #[test]
    fn bindings_give_their_host_port() {
        assert_eq!(host_port_of("127.0.0.1:8080->8080"), Some(8080));
        assert_eq!(host_port_of("127.0.0.1:13000->3000"), Some(13000));
        assert_eq!(host_port_of(":->5432"), None);
        assert_eq!(host_port_of("garbage"), None);
    }
}
