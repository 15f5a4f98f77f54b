//! What the stack commands share on the docker runtime: the engine, the parsed manifests, the
//! secrets and the stack's names, opened once per command.

use std::collections::BTreeMap;

use anyhow::{Context as _, anyhow, bail};

use super::DockerRuntime;
use super::names::{Names, valid_stack_name};
use super::plan::{self, ContainerPlan, Inputs};
use crate::Context;
use crate::stack::{Stack, Workload};
use crate::state::Secrets;

/// The workload that holds the database: `db-shell` and `seed` talk to it.
pub(crate) const DATABASE_WORKLOAD: &str = "postgres";

/// One command's view of the stack on the docker runtime.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) runtime: DockerRuntime,
    pub(crate) stack: Stack,
    pub(crate) secrets: Secrets,
    /// Host port overrides (`WANDER_<SERVICE>_PORT`), by Service name.
    pub(crate) host_ports: BTreeMap<String, u16>,
    /// The repository root (for `db/`).
    pub(crate) root: std::path::PathBuf,
    /// Where ConfigMap and Secret volumes are written as files (in the state folder).
    pub(crate) files_root: std::path::PathBuf,
}

/// Whether secrets may be created: only `dev` does; the others need an existing stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretsMode {
    Generate,
    Existing,
}

impl Session {
    pub(crate) async fn open(ctx: &Context, secrets: SecretsMode) -> anyhow::Result<Self> {
        let stack_name = stack_name()?;
        let stack = Stack::load(&manifests_dir(ctx))?;
        let state = ctx.state();
        state.check_permissions()?;
        let secrets = match secrets {
            SecretsMode::Generate => state.secrets_or_generate()?,
            SecretsMode::Existing => state.secrets()?.ok_or_else(|| {
                anyhow!("the stack has not been started here yet: run `cargo xtask dev` first")
            })?,
        };
        let host_ports = host_port_overrides(&stack, |name| std::env::var(name).ok())?;
        let docker = crate::docker::connect().await?;
        Ok(Self {
            runtime: DockerRuntime::new(docker, Names::new(stack_name)),
            stack,
            secrets,
            host_ports,
            root: ctx.root().to_path_buf(),
            files_root: state.path().join("files"),
        })
    }

    pub(crate) fn names(&self) -> &Names {
        self.runtime.names()
    }

    /// The plans of every workload in dependency order, running the given images.
    pub(crate) fn plans(
        &self,
        images: &BTreeMap<String, String>,
    ) -> anyhow::Result<Vec<ContainerPlan>> {
        let inputs = Inputs {
            stack: &self.stack,
            names: self.runtime.names(),
            secrets: &self.secrets,
            images,
            host_ports: &self.host_ports,
            files_root: &self.files_root,
        };
        self.stack
            .workloads
            .iter()
            .map(|workload| plan::plan(workload, &inputs))
            .collect()
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
            for image in workload_images(workload) {
                images.insert(image, running.clone());
            }
        }
        self.plans(&images)
    }

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
        let env = |name: &str| {
            plan.env
                .iter()
                .find_map(|e| e.strip_prefix(name)?.strip_prefix('=').map(str::to_owned))
        };
        let user = env("POSTGRES_USER").unwrap_or_else(|| "postgres".to_owned());
        let database = env("POSTGRES_DB").unwrap_or_else(|| user.clone());
        let running = self
            .runtime
            .inspect(&plan.container_name)
            .await?
            .and_then(|c| c.state)
            .and_then(|s| s.running)
            .unwrap_or(false);
        if !running {
            bail!("the database is not running: start the stack with `cargo xtask dev`");
        }
        Ok(Database {
            container: plan.container_name.clone(),
            user,
            name: database,
        })
    }
}

/// The host ports the stack publishes (after `WANDER_<SERVICE>_PORT` overrides), read from the
/// manifests; the defaults when they cannot be read (doctor must work with broken manifests).
pub(crate) fn wanted_host_ports(ctx: &Context) -> Vec<u16> {
    let Ok(stack) = Stack::load(&manifests_dir(ctx)) else {
        return crate::prereq::DEFAULT_PORTS.to_vec();
    };
    let overrides =
        host_port_overrides(&stack, |name| std::env::var(name).ok()).unwrap_or_default();
    stack
        .host_ports
        .iter()
        .map(|m| overrides.get(&m.service).copied().unwrap_or(m.host_port))
        .collect()
}

/// The host ports this stack's containers hold now (none when the engine cannot be reached).
pub(crate) async fn owned_host_ports() -> Vec<u16> {
    let Ok(name) = stack_name() else {
        return Vec::new();
    };
    let Ok(docker) = crate::docker::connect().await else {
        return Vec::new();
    };
    DockerRuntime::new(docker, Names::new(name))
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

/// The manifests: `WANDER_MANIFESTS` (a variant of the stack, or a test's), else `manifests/`.
pub(crate) fn manifests_dir(ctx: &Context) -> std::path::PathBuf {
    std::env::var_os("WANDER_MANIFESTS")
        .map_or_else(|| ctx.root().join("manifests"), std::path::PathBuf::from)
}

/// The stack's name: `WANDER_STACK`, else `wander`.
pub(crate) fn stack_name() -> anyhow::Result<String> {
    let name = std::env::var("WANDER_STACK").unwrap_or_else(|_| "wander".to_owned());
    if !valid_stack_name(&name) {
        bail!(
            "WANDER_STACK={name:?} is not a usable name: use 1 to 40 lowercase letters, digits and dashes, starting with a letter"
        );
    }
    Ok(name)
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

/// `psql` as `user` on `database`, quiet and stopping at the first error, then `extra`.
pub(crate) fn psql(user: &str, database: &str, extra: &[&str]) -> Vec<String> {
    let mut cmd: Vec<String> = [
        "psql",
        "--no-psqlrc",
        "-v",
        "ON_ERROR_STOP=1",
        "-U",
        user,
        "-d",
        database,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    cmd.extend(extra.iter().map(|s| (*s).to_owned()));
    cmd
}

/// Every image a workload's containers name in the manifests.
pub(crate) fn workload_images(workload: &Workload) -> Vec<String> {
    workload
        .pod_spec
        .containers
        .iter()
        .filter_map(|c| c.image.clone())
        .collect()
}

/// `WANDER_WEB_PORT=13000` moves the `web` Service's host port, for side-by-side stacks and
/// tests. Anything but a port number from 1 to 65535 is refused.
pub(crate) fn host_port_overrides(
    stack: &Stack,
    lookup: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<BTreeMap<String, u16>> {
    let mut overrides = BTreeMap::new();
    for mapping in &stack.host_ports {
        let variable = format!(
            "WANDER_{}_PORT",
            mapping.service.to_uppercase().replace('-', "_")
        );
        if let Some(value) = lookup(&variable) {
            let port: u16 = value
                .trim()
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .with_context(|| format!("{variable}={value:?} is not a port number (1-65535)"))?;
            overrides.insert(mapping.service.clone(), port);
        }
    }
    Ok(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack() -> Stack {
        Stack::load(&crate::Context::for_tests().root().join("manifests")).unwrap()
    }

    #[test]
    fn host_ports_move_per_service_and_bad_values_are_refused() {
        let stack = stack();
        let none = host_port_overrides(&stack, |_| None).unwrap();
        assert!(none.is_empty());
        let moved = host_port_overrides(&stack, |name| {
            (name == "WANDER_API_PORT").then(|| " 18080 ".to_owned())
        })
        .unwrap();
        assert_eq!(moved, BTreeMap::from([("api".to_owned(), 18080)]));
        for bad in ["0", "65536", "-1", "abc", "", "80 80", "8080; rm -rf /"] {
            let err = host_port_overrides(&stack, |name| {
                (name == "WANDER_WEB_PORT").then(|| bad.to_owned())
            })
            .unwrap_err();
            assert!(err.to_string().contains("WANDER_WEB_PORT"), "{bad}: {err}");
        }
    }

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
