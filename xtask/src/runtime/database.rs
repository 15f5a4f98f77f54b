//! The stack's database as both runtimes reach it: its workload, its login (read from the
//! manifests and the generated secret), psql's command line, and the seed scripts.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};

use crate::stack::{Stack, Workload, container_env};
use crate::state::Secrets;

/// The workload that holds the database: `db-shell` and `seed` talk to it.
pub(crate) const DATABASE_WORKLOAD: &str = "postgres";
/// The Service of the API, whose cache a seed clears.
const API_SERVICE: &str = "api";

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

/// What a seed runs, in order: the reset when asked, then the seed.
pub(crate) fn scripts(root: &Path, reset: bool) -> Vec<PathBuf> {
    let mut scripts = Vec::new();
    if reset {
        scripts.push(root.join("db/reset.sql"));
    }
    scripts.push(root.join("db/seed.sql"));
    scripts
}

/// One line that says how many rows each seeded table holds.
pub(crate) const COUNTS: &str = "SELECT (SELECT count(*) FROM services) || ' services, ' || (SELECT count(*) FROM environments) || ' environments, ' || (SELECT count(*) FROM deployments) || ' deployments'";

/// The seed over a database connection (kind's, through a port-forward): each script as one batch of statements (the simple
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

/// How long the API may take to clear its cache after a seed.
const CACHE_CLEAR_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Rows written with psql bypass the API, whose Redis cache would go on serving what it read
/// before (a dashboard rendered before the seed, the rows before a `seed --reset`) until its TTL.
/// So a seed ends as a write through the API does: the cache dropped, by `DELETE /api/cache`
/// on the API's host port with the stack's token. Says what happened, for the seed's summary.
pub(crate) async fn clear_api_cache(stack: &Stack, secrets: &Secrets) -> String {
    let Some(mapping) = stack.host_port_of(API_SERVICE) else {
        return "the API is not published on the host, so its cache was not cleared".to_owned();
    };
    let url = format!(
        "http://{}:{}/api/cache",
        mapping.listen_address, mapping.host_port
    );
    let sent = async {
        reqwest::Client::builder()
            .timeout(CACHE_CLEAR_PATIENCE)
            .build()?
            .delete(&url)
            .bearer_auth(&secrets.api_token)
            .send()
            .await
    };
    match sent.await {
        Ok(response) if response.status().is_success() => "API cache cleared".to_owned(),
        Ok(response) => format!(
            "the API's cache was not cleared (DELETE {url} answered {}): it may serve older rows for up to CACHE_TTL_SECS",
            response.status()
        ),
        Err(err) => format!(
            "the API's cache was not cleared (DELETE {url}: {err}): once the API runs, `cargo xtask seed` clears it"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack() -> Stack {
        Stack::of_repository()
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
