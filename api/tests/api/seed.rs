//! `db/seed.sql` and `db/reset.sql`: the data the dashboard starts with, idempotent, and
//! restorable after the stack has been used.

use sqlx::PgPool;
use testkit::{Seed, TestDatabase};

/// Everything the seed writes, as text, timestamps included.
async fn snapshot(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "SELECT concat_ws('|',
            (SELECT string_agg(concat_ws(',', id, name, description), ';' ORDER BY id) FROM services),
            (SELECT string_agg(concat_ws(',', id, name), ';' ORDER BY id) FROM environments),
            (SELECT string_agg(concat_ws(',', id, service_id, environment_id, version, status,
                    deployed_by, started_at, completed_at), ';' ORDER BY id) FROM deployments))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn seeded_pool() -> PgPool {
    let db = TestDatabase::create(&testkit::pg_admin_url(), Seed::Empty)
        .await
        .unwrap();
    let pool = PgPool::connect(&db.url).await.unwrap();
    sqlx::raw_sql(testkit::seed_sql())
        .execute(&pool)
        .await
        .unwrap();
    pool
}

#[tokio::test]
async fn the_seed_has_the_promised_shape() {
    let pool = seeded_pool().await;
    let services: Vec<String> = sqlx::query_scalar("SELECT name FROM services ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(services, ["frontend", "api", "worker", "analytics"]);
    let environments: Vec<String> = sqlx::query_scalar("SELECT name FROM environments ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(environments, ["dev", "staging", "production"]);
    let (total, statuses, services_used, environments_used, oldest_days): (
        i64,
        i64,
        i64,
        i64,
        f64,
    ) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT status), count(DISTINCT service_id),
                    count(DISTINCT environment_id),
                    (extract(epoch FROM now() - min(started_at)) / 86400)::float8
             FROM deployments",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(total >= 24, "{total} deployments");
    assert_eq!((statuses, services_used, environments_used), (5, 4, 3));
    assert!(
        oldest_days > 7.0 && oldest_days <= 30.0,
        "spread over {oldest_days} days"
    );
    let in_future: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deployments WHERE started_at > now()")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(in_future, 0);
}

#[tokio::test]
async fn seeding_twice_changes_nothing() {
    let pool = seeded_pool().await;
    let first = snapshot(&pool).await;
    sqlx::raw_sql(testkit::seed_sql())
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(snapshot(&pool).await, first);
}

#[tokio::test]
async fn reset_then_seed_restores_the_seeded_rows_and_ids() {
    let pool = seeded_pool().await;
    let seeded: i64 = sqlx::query_scalar("SELECT count(*) FROM deployments")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO deployments (service_id, environment_id, version, deployed_by)
         VALUES (1, 1, 'v-extra', 'someone');
         DELETE FROM deployments WHERE id = 3;",
    )
    .execute(&pool)
    .await
    .unwrap();
    // Seeding again fills in what is missing and leaves the extra row alone.
    sqlx::raw_sql(testkit::seed_sql())
        .execute(&pool)
        .await
        .unwrap();
    let refilled: i64 = sqlx::query_scalar("SELECT count(*) FROM deployments")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(refilled, seeded + 1);

    sqlx::raw_sql(testkit::reset_sql())
        .execute(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(testkit::seed_sql())
        .execute(&pool)
        .await
        .unwrap();
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM deployments ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(ids, (1..=seeded).collect::<Vec<_>>());
    let next: i64 = sqlx::query_scalar(
        "INSERT INTO deployments (service_id, environment_id, version, deployed_by)
         VALUES (2, 2, 'v-after', 'someone') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        next,
        seeded + 1,
        "the identity continues after the seeded ids"
    );
    let migrations: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(migrations >= 1, "reset keeps the migration history");
}
