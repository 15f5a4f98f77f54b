//! A fresh database per test, cloned from a migrated (and optionally seeded) template.

use std::process;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use sqlx::migrate::Migrator;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// The migrations of the product, embedded at build time like the API embeds them.
static MIGRATOR: Migrator = sqlx::migrate!("../db/migrations");

/// Key of the session-level advisory lock that serialises template creation across the many
/// test processes that start at once (an arbitrary constant: "wandrtpl" in ASCII).
const TEMPLATE_LOCK_KEY: i64 = 0x7761_6e64_7274_706c;

/// How often a clone is attempted while the template is briefly busy.
const CLONE_ATTEMPTS: u32 = 5;

/// PostgreSQL's SQLSTATE for "object in use", e.g. a template with a session still open.
const OBJECT_IN_USE: &str = "55006";

/// What a test database starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seed {
    /// The schema only: for tests that insert exactly the rows they look at.
    Empty,
    /// The schema and `db/seed.sql` (4 services, 3 environments, 28 deployments): for tests that
    /// read realistic data.
    Seeded,
}

impl Seed {
    fn suffix(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Seeded => "seeded",
        }
    }
}

/// A database that belongs to one test, so tests can run in parallel without seeing each other.
///
/// It is never dropped: the server it lives on is thrown away at the end of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestDatabase {
    /// The database name, `t_` followed by a unique suffix.
    pub name: String,
    /// The admin URL with the database name swapped in: what the code under test connects to.
    pub url: String,
}

impl TestDatabase {
    /// A fresh database cloned from a migrated template (and seeded when asked), safe to call
    /// from many test processes at once (nextest runs each test in its own process).
    ///
    /// The first caller on a server builds the template, under an advisory lock so concurrent
    /// callers wait for it instead of racing; later callers only clone, which takes milliseconds.
    pub async fn create(admin_url: &str, seed: Seed) -> anyhow::Result<Self> {
        let mut admin = PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("connecting to {admin_url} to create a test database"))?;
        let template = template_name(seed);
        ensure_template(&mut admin, admin_url, &template, seed).await?;

        let name = unique_database_name();
        clone_template(&mut admin, &template, &name).await?;
        // The database exists; a failed goodbye changes nothing.
        let _ = admin.close().await;
        let url = with_database(admin_url, &name)?;
        Ok(Self { name, url })
    }
}

/// The SQL of `db/seed.sql`, for tests and tools that seed a database themselves.
pub fn seed_sql() -> &'static str {
    include_str!("../../db/seed.sql")
}

/// The SQL of `db/reset.sql`, which empties the data tables before a re-seed.
pub fn reset_sql() -> &'static str {
    include_str!("../../db/reset.sql")
}

/// The product's migrations (`db/migrations`), the same set the API applies at start.
pub fn migrator() -> &'static Migrator {
    &MIGRATOR
}

/// Creates the template unless it already exists, holding the advisory lock meanwhile.
async fn ensure_template(
    admin: &mut PgConnection,
    admin_url: &str,
    template: &str,
    seed: Seed,
) -> anyhow::Result<()> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(TEMPLATE_LOCK_KEY)
        .execute(&mut *admin)
        .await
        .context("waiting for the template lock")?;
    let built = build_template_if_missing(admin, admin_url, template, seed).await;
    // On an error the connection is dropped, which releases the lock as well.
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(TEMPLATE_LOCK_KEY)
        .execute(&mut *admin)
        .await
        .context("releasing the template lock")?;
    built.with_context(|| format!("building the template database {template}"))
}

async fn build_template_if_missing(
    admin: &mut PgConnection,
    admin_url: &str,
    template: &str,
    seed: Seed,
) -> anyhow::Result<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(template)
            .fetch_one(&mut *admin)
            .await?;
    if exists {
        return Ok(());
    }

    // Built under another name and renamed when complete, so a run that died halfway never
    // leaves a template that looks finished.
    let building = format!("{template}_building");
    execute(
        admin,
        format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(&building)),
    )
    .await?;
    execute(
        admin,
        format!("CREATE DATABASE {} TEMPLATE template0", quote(&building)),
    )
    .await?;
    {
        let url = with_database(admin_url, &building)?;
        let mut conn = PgConnection::connect(&url)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        migrator()
            .run(&mut conn)
            .await
            .context("applying db/migrations")?;
        if seed == Seed::Seeded {
            sqlx::raw_sql(seed_sql())
                .execute(&mut conn)
                .await
                .context("applying db/seed.sql")?;
        }
        // The rename below needs the database without sessions.
        conn.close().await?;
    }
    execute(
        admin,
        format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote(&building),
            quote(template)
        ),
    )
    .await?;
    // No connections allowed: a clone fails while anyone is connected to its template.
    execute(
        admin,
        format!(
            "ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
            quote(template)
        ),
    )
    .await
}

/// `CREATE DATABASE name TEMPLATE template`, retried for a moment while the template is in use
/// (a session of the build that is still closing).
async fn clone_template(
    admin: &mut PgConnection,
    template: &str,
    name: &str,
) -> anyhow::Result<()> {
    let sql = format!(
        "CREATE DATABASE {} TEMPLATE {}",
        quote(name),
        quote(template)
    );
    let mut attempt = 1;
    loop {
        match sqlx::query(AssertSqlSafe(sql.as_str()))
            .execute(&mut *admin)
            .await
        {
            Ok(_) => return Ok(()),
            Err(err) if is_object_in_use(&err) && attempt < CLONE_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(100) * attempt).await;
                attempt += 1;
            }
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("creating database {name} from {template}"));
            }
        }
    }
}

fn is_object_in_use(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(sqlx::error::DatabaseError::code)
        .is_some_and(|code| code == OBJECT_IN_USE)
}

async fn execute(admin: &mut PgConnection, sql: String) -> anyhow::Result<()> {
    sqlx::query(AssertSqlSafe(sql.as_str()))
        .execute(&mut *admin)
        .await
        .with_context(|| format!("running `{sql}`"))?;
    Ok(())
}

/// `wander_tpl_<hash>_<seed>`: the hash covers the migrations and the seed, so a server that
/// outlives a change to either builds a new template instead of serving a stale one.
fn template_name(seed: Seed) -> String {
    let mut hash = Fnv1a::new();
    for migration in migrator().iter() {
        hash.write(&migration.version.to_le_bytes());
        hash.write(&migration.checksum);
    }
    hash.write(seed_sql().as_bytes());
    format!("wander_tpl_{:012x}_{}", hash.finish() >> 16, seed.suffix())
}

/// A name no other test process picks: process id, clock and a per-process counter.
fn unique_database_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!("t_{}_{:x}_{count}", process::id(), nanos)
}

/// `url` with its database (the path) replaced by `database`; the query string is kept.
fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let Some(scheme_end) = url.find("://").map(|at| at + 3) else {
        bail!("not a database URL (no scheme): {url}");
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?'])
        .map_or(url.len(), |at| scheme_end + at);
    let query = url[authority_end..]
        .find('?')
        .map_or("", |at| &url[authority_end + at..]);
    Ok(format!("{}/{database}{query}", &url[..authority_end]))
}

/// Quotes an identifier for SQL (our names are plain, but quoting costs nothing).
fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// FNV-1a, 64 bits: a hash that is the same in every process and Rust release, unlike std's
/// `DefaultHasher`, which matters for names shared by processes built at different times.
struct Fnv1a(u64);

impl Fnv1a {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;

    fn new() -> Self {
        Self(Self::OFFSET_BASIS)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(Self::PRIME);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_in_a_url_is_replaced_and_everything_else_kept() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/t_1",
            ),
            (
                "postgres://u:p@localhost:5432",
                "postgres://u:p@localhost:5432/t_1",
            ),
            (
                "postgres://h/db?sslmode=disable",
                "postgres://h/t_1?sslmode=disable",
            ),
            (
                "postgres://h?sslmode=disable",
                "postgres://h/t_1?sslmode=disable",
            ),
            ("postgresql://[::1]:5432/x/", "postgresql://[::1]:5432/t_1"),
        ];
        for (url, expected) in cases {
            assert_eq!(with_database(url, "t_1").unwrap(), expected, "{url}");
        }
        assert!(with_database("127.0.0.1:5432", "t_1").is_err());
    }

    #[test]
    fn templates_are_named_by_content_and_seed() {
        let empty = template_name(Seed::Empty);
        let seeded = template_name(Seed::Seeded);
        assert!(
            empty.starts_with("wander_tpl_") && empty.ends_with("_empty"),
            "{empty}"
        );
        assert_eq!(
            empty.trim_end_matches("_empty"),
            seeded.trim_end_matches("_seeded")
        );
        assert_eq!(empty, template_name(Seed::Empty), "the name is stable");
        // PostgreSQL truncates identifiers at 63 bytes; the build name must fit too.
        assert!(format!("{seeded}_building").len() <= 63);
    }

    #[test]
    fn database_names_are_unique_and_fit_postgres_identifiers() {
        let first = unique_database_name();
        let second = unique_database_name();
        assert_ne!(first, second);
        for name in [first, second] {
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            );
        }
    }

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        let hash = |bytes: &[u8]| {
            let mut fnv = Fnv1a::new();
            fnv.write(bytes);
            fnv.finish()
        };
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote("t_1"), "\"t_1\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn the_embedded_sql_is_the_repository_s() {
        assert!(
            migrator().iter().next().is_some(),
            "db/migrations has at least one migration"
        );
        assert!(seed_sql().contains("INSERT INTO services"));
        assert!(reset_sql().contains("TRUNCATE"));
    }
}
