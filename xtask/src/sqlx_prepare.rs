//! `cargo xtask sqlx-prepare`: regenerates `api/.sqlx`, the query descriptions that let sqlx's
//! `query!` macros type-check SQL without a database at build time, from a real PostgreSQL with
//! the migrations applied. `--check` (run by `cargo xtask test`) fails when the committed files
//! no longer match the queries and the schema.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context as _, bail};
use testkit::{PostgresServer, Seed, TestDatabase};

use crate::context::Context;

/// Options of `cargo xtask sqlx-prepare`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only compare: fail if `api/.sqlx` is out of date instead of rewriting it.
    #[arg(long)]
    pub(crate) check: bool,
}

/// The crate whose queries are prepared, and where its query data lives.
const CRATE: &str = "api";

/// Describes the queries against a PostgreSQL of its own (stopped on return), then rewrites
/// `api/.sqlx` or, with `--check`, only compares.
pub(crate) fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let postgres =
        PostgresServer::start().context("starting PostgreSQL to describe the queries")?;
    let fresh = generate(ctx, &runtime, &postgres.admin_url())?;
    let committed = committed_dir(ctx);
    if args.check {
        compare(&read_dir(&committed)?, &fresh)?;
        ctx.ui()
            .outcome(format!("{} is up to date", committed.display()));
    } else {
        write(&committed, &fresh)?;
        ctx.ui().outcome(format!(
            "wrote {} query descriptions to {}",
            fresh.len(),
            committed.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// Fails unless the committed query data matches what the queries produce against the server
/// behind `admin_url`; used by `cargo xtask test` with the run's own server.
pub(crate) fn check(
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
    admin_url: &str,
) -> anyhow::Result<()> {
    let fresh = generate(ctx, runtime, admin_url)?;
    compare(&read_dir(&committed_dir(ctx))?, &fresh)
}

fn committed_dir(ctx: &Context) -> PathBuf {
    ctx.root().join(CRATE).join(".sqlx")
}

/// Compiles the crate against a freshly migrated database with sqlx's macros online, collecting
/// the query files they write, by name.
fn generate(
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
    admin_url: &str,
) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let database = runtime
        .block_on(TestDatabase::create(admin_url, Seed::Empty))
        .context("creating a migrated database to describe the queries")?;
    let out = tempfile::tempdir().context("creating a directory for the query data")?;
    // The macros only run when the crate is recompiled: mark its sources as changed.
    touch_sources(&ctx.root().join(CRATE).join("src"))?;
    // The libraries' unit tests of the whole workspace, as `cargo xtask test` builds them: the
    // dependencies get the features the tests resolve, so a full test run compiles them once.
    ctx.cargo()
        .args(["test", "--no-run", "--quiet", "--workspace", "--lib"])
        .env("SQLX_OFFLINE", "false")
        .env("DATABASE_URL", &database.url)
        .env("SQLX_OFFLINE_DIR", out.path())
        .current_dir(ctx.root())
        .run(ctx.ui())
        .context("describing the queries against PostgreSQL")?;
    read_dir(out.path())
}

fn touch_sources(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            touch_sources(&path)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            std::fs::File::options()
                .append(true)
                .open(&path)
                .and_then(|file| file.set_modified(SystemTime::now()))
                .with_context(|| format!("touching {}", path.display()))?;
        }
    }
    Ok(())
}

fn read_dir(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    if !dir.exists() {
        return Ok(files);
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_owned();
        let is_json = path.extension().is_some_and(|ext| ext == "json");
        if name.starts_with("query-") && is_json {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            files.insert(name, bytes);
        }
    }
    Ok(files)
}

/// Names every difference so the failure says exactly what drifted.
fn compare(
    committed: &BTreeMap<String, Vec<u8>>,
    fresh: &BTreeMap<String, Vec<u8>>,
) -> anyhow::Result<()> {
    let mut drift = Vec::new();
    for (name, bytes) in fresh {
        match committed.get(name) {
            None => drift.push(format!("missing: {name}")),
            Some(old) if old != bytes => drift.push(format!("changed: {name}")),
            Some(_) => {}
        }
    }
    drift.extend(
        committed
            .keys()
            .filter(|name| !fresh.contains_key(*name))
            .map(|name| format!("unused: {name}")),
    );
    if drift.is_empty() {
        return Ok(());
    }
    bail!(
        "{CRATE}/.sqlx does not match the queries and migrations ({}); \
         run `cargo xtask sqlx-prepare` and commit the result",
        drift.join(", ")
    )
}

fn write(dir: &Path, fresh: &BTreeMap<String, Vec<u8>>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in read_dir(dir)?.keys() {
        if !fresh.contains_key(name) {
            std::fs::remove_file(dir.join(name))
                .with_context(|| format!("removing the unused {name}"))?;
        }
    }
    for (name, bytes) in fresh {
        std::fs::write(dir.join(name), bytes).with_context(|| format!("writing {name}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        entries
            .iter()
            .map(|(name, body)| ((*name).to_owned(), body.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn identical_query_data_passes() {
        let a = files(&[("query-1.json", "{}"), ("query-2.json", "[]")]);
        compare(&a, &a.clone()).unwrap();
    }

    #[test]
    fn every_kind_of_drift_is_named() {
        let committed = files(&[("query-1.json", "{}"), ("query-old.json", "{}")]);
        let fresh = files(&[("query-1.json", "{\"x\":1}"), ("query-new.json", "{}")]);
        let message = compare(&committed, &fresh).unwrap_err().to_string();
        for expected in [
            "changed: query-1.json",
            "missing: query-new.json",
            "unused: query-old.json",
            "cargo xtask sqlx-prepare",
        ] {
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn writing_replaces_the_directory_contents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("query-stale.json"), "{}").unwrap();
        std::fs::write(dir.path().join("README"), "kept").unwrap();
        let fresh = files(&[("query-a.json", "{}")]);
        write(dir.path(), &fresh).unwrap();
        assert_eq!(read_dir(dir.path()).unwrap(), fresh);
        assert!(dir.path().join("README").exists());
    }
}
