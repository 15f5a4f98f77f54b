//! Process-level behaviour of the real `api` binary: SIGTERM drains a request in flight, and
//! concurrent starts on an unmigrated database apply the migrations once.

use std::{process::Child, time::Duration};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use reqwest::StatusCode;
use sqlx::{Connection, PgConnection};
use testkit::{Seed, TestDatabase};

use crate::helpers::{spawn_api_binary, unique_prefix, wait_live};

/// Starts the binary on a free port and waits for `/livez`; callers wait for its exit.
#[allow(clippy::zombie_processes)]
async fn start_binary(database_url: &str) -> (Child, String) {
    let (mut child, base) = spawn_binary(database_url);
    wait_live(&mut child, &base).await;
    (child, base)
}

/// Starts the binary without waiting for it, on the shared Redis with a prefix of its own.
fn spawn_binary(database_url: &str) -> (Child, String) {
    spawn_api_binary(&[
        ("DATABASE_URL", database_url.to_owned()),
        ("REDIS_URL", testkit::redis_url()),
        ("CACHE_PREFIX", unique_prefix()),
    ])
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    panic!("the api did not exit within 30 s of SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_request_in_flight_complete() {
    let db = TestDatabase::create(&testkit::pg_admin_url(), Seed::Seeded)
        .await
        .unwrap();
    let (mut child, base) = start_binary(&db.url).await;

    // Hold a lock that the list query must wait for, so the request is surely in flight.
    let mut blocker = PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE deployments IN ACCESS EXCLUSIVE MODE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let in_flight = tokio::spawn({
        let url = format!("{base}/api/deployments?limit=3");
        async move { reqwest::get(url).await }
    });
    let mut observer = PgConnection::connect(&db.url).await.unwrap();
    let mut waiting = false;
    for _ in 0..300 {
        waiting = sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
             WHERE application_name = 'wander-api' AND wait_event_type = 'Lock')",
        )
        .fetch_one(&mut observer)
        .await
        .unwrap();
        if waiting {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(waiting, "the request never reached the database");

    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );
    sqlx::raw_sql("COMMIT").execute(&mut blocker).await.unwrap();

    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(response.status(), StatusCode::OK);
    let page: serde_json::Value = response.json().await.unwrap();
    assert_eq!(page["deployments"].as_array().unwrap().len(), 3);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child))
        .await
        .unwrap();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_on_an_empty_database_migrate_once() {
    let admin_url = testkit::pg_admin_url();
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    let name = format!("unmigrated_{}", unique_prefix().replace('-', "_"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = match admin_url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => unreachable!("admin URL has a database"),
    };
    // Both binaries are held at the same point of their start, so that they race for certain:
    // the migrations table exists already (created as sqlx creates it, in sqlx-postgres's
    // migrate.rs) and this test holds it locked, so each blocks on its first read of it, whether
    // or not it took the migration lock before. Released together, only that lock keeps the
    // second from applying the same migrations again, and failing.
    let mut holder = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
         installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, \
         checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)",
    )
    .execute(&mut holder)
    .await
    .unwrap();
    let mut held = holder.begin().await.unwrap();
    sqlx::raw_sql("LOCK TABLE _sqlx_migrations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *held)
        .await
        .unwrap();
    let (mut a, base_a) = spawn_binary(&url);
    let (mut b, base_b) = spawn_binary(&url);
    let mut watcher = PgConnection::connect(&url).await.unwrap();
    let mut waiting = 0;
    for _ in 0..300 {
        waiting = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if waiting == 2 {
            break;
        }
        for child in [&mut a, &mut b] {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("an api binary exited while the other was starting: {status}");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(waiting, 2, "both binaries wait on a lock before migrating");
    held.rollback().await.unwrap();
    wait_live(&mut a, &base_a).await;
    wait_live(&mut b, &base_b).await;
    let services = reqwest::get(format!("{base_b}/api/services"))
        .await
        .unwrap();
    assert_eq!(services.status(), StatusCode::OK);
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(applied, testkit::migrator().iter().count() as i64);
    for child in [&mut a, &mut b] {
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    }
    for mut child in [a, b] {
        let status = tokio::task::spawn_blocking(move || wait_exit(&mut child))
            .await
            .unwrap();
        assert!(status.success());
    }
}
