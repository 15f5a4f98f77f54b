//! Two real `api` processes over one database and one Redis, as two replicas run: each keeps a
//! near cache, and a write through either must never leave the other serving what it changed,
//! also while Redis is frozen, stopped or restarted.

use std::{
    process::Child,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    time::Instant,
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{RedisServer, Seed, TestDatabase};

use crate::helpers::{
    cache_status, spawn_api_binary, unique_prefix, wait_cache_in_use, wait_live, x_cache,
};

const TOKEN: &str = "replica-test-token";
const LIST: &str = "/api/deployments?limit=5";

/// One replica: the binary and its base URL; stopped when dropped.
struct Replica {
    child: Child,
    base: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Two replicas sharing a seeded database, `redis_url` and one cache prefix.
async fn replicas(redis_url: &str) -> (TestDatabase, [Replica; 2]) {
    replicas_through([redis_url.to_owned(), redis_url.to_owned()]).await
}

/// Two replicas sharing a seeded database and one cache prefix, each reaching Redis at its URL.
async fn replicas_through(redis_urls: [String; 2]) -> (TestDatabase, [Replica; 2]) {
    let db = TestDatabase::create(&testkit::pg_admin_url(), Seed::Seeded)
        .await
        .unwrap();
    let prefix = unique_prefix();
    let mut started = Vec::new();
    for redis_url in redis_urls {
        let (mut child, base) = spawn_api_binary(&[
            ("DATABASE_URL", db.url.clone()),
            ("REDIS_URL", redis_url),
            ("CACHE_PREFIX", prefix.clone()),
            ("API_TOKEN", TOKEN.to_owned()),
        ]);
        wait_live(&mut child, &base).await;
        started.push(Replica { child, base });
    }
    let replicas: [Replica; 2] = started.try_into().ok().unwrap();
    let client = reqwest::Client::new();
    for replica in &replicas {
        assert!(
            wait_cache_in_use(&client, &replica.base, 300).await,
            "{}: the cache did not come into use within 15 s",
            replica.base
        );
    }
    (db, replicas)
}

/// Records a deployment through `replica` and returns its id once acknowledged.
async fn record(client: &reqwest::Client, replica: &Replica, version: &str) -> i64 {
    let response = client
        .post(format!("{}/api/deployments", replica.base))
        .bearer_auth(TOKEN)
        .json(
            &json!({"service_id": 2, "environment_id": 1, "version": version, "deployed_by": "ci"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{version}");
    response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap()
}

/// The newest deployment's id in `replica`'s list, with the response's `Cache-Status`.
async fn newest(client: &reqwest::Client, replica: &Replica) -> (i64, String) {
    let response = client
        .get(format!("{}{LIST}", replica.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let status = cache_status(&response);
    let page: Value = response.json().await.unwrap();
    (page["deployments"][0]["id"].as_i64().unwrap(), status)
}

/// A TCP proxy to `upstream` that delivers what the server sends `lag` late, in order: a
/// replica whose link to Redis lags, so its invalidation pushes arrive after the writer has
/// heard back. What the client sends goes straight through.
async fn lagging_proxy(upstream: String, lag: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream.as_str()).await else {
                continue;
            };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
            });
            let (chunks, mut delayed) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(async move {
                let mut buffer = vec![0_u8; 64 * 1024];
                while let Ok(n @ 1..) = server_read.read(&mut buffer).await {
                    if chunks
                        .send((Instant::now() + lag, buffer[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            });
            tokio::spawn(async move {
                while let Some((due, chunk)) = delayed.recv().await {
                    tokio::time::sleep_until(due).await;
                    if client_write.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("redis://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_replica_is_seen_by_the_others_next_read() {
    // The second replica hears from Redis 20 ms late: without the write fence, its next read
    // after the first replica's 201 would come before the invalidation does.
    let redis = testkit::redis_url();
    let lagging = lagging_proxy(
        redis.trim_start_matches("redis://").to_owned(),
        Duration::from_millis(20),
    )
    .await;
    let (_db, replicas) = replicas_through([redis, lagging]).await;
    let client = reqwest::Client::new();
    for round in 0..20 {
        let (writer, reader) = (&replicas[round % 2], &replicas[1 - round % 2]);
        // The reader holds the list near, where a read does not even ask Redis (once the
        // pushes of earlier writes, 20 ms late here, have stopped emptying it).
        let mut before = None;
        for _ in 0..100 {
            let (newest, status) = newest(&client, reader).await;
            if status == "api; hit" {
                before = Some(newest);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let before =
            before.unwrap_or_else(|| panic!("round {round}: the near cache never answered"));
        let id = record(&client, writer, &format!("v{round}")).await;
        assert!(id > before);
        let (after, status) = newest(&client, reader).await;
        assert_eq!(
            after, id,
            "round {round}: the reader served its list from before an acknowledged write \
             ({status})"
        );
    }
}

/// Reads both replicas' lists over and over while `outage` runs, and fails if any read that
/// began after a write was acknowledged shows a list without it; returns the newest write.
async fn no_read_misses_an_acknowledged_write<F, Fut>(replicas: &[Replica; 2], outage: F) -> i64
where
    F: FnOnce(Arc<AtomicI64>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let acknowledged = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for replica in replicas {
        let (base, acknowledged, done) = (
            replica.base.clone(),
            Arc::clone(&acknowledged),
            Arc::clone(&done),
        );
        readers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut reads = 0;
            while !done.load(Ordering::Acquire) {
                let floor = acknowledged.load(Ordering::Acquire);
                let response = client.get(format!("{base}{LIST}")).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                let status = cache_status(&response);
                let page: Value = response.json().await.unwrap();
                let newest = page["deployments"][0]["id"].as_i64().unwrap();
                assert!(
                    newest >= floor,
                    "{base} served a list without deployment {floor}, acknowledged before the \
                     read began ({status})"
                );
                reads += 1;
            }
            reads
        }));
    }
    outage(Arc::clone(&acknowledged)).await;
    done.store(true, Ordering::Release);
    for reader in readers {
        let reads = reader.await.unwrap();
        assert!(reads > 10, "only {reads} reads ran beside the outage");
    }
    acknowledged.load(Ordering::Acquire)
}

/// Writes through the replicas in turn while Redis is out, publishing each acknowledged id.
async fn write_during(replicas: &[Replica; 2], acknowledged: &AtomicI64, what: &str) {
    let client = reqwest::Client::new();
    for (n, replica) in replicas.iter().enumerate() {
        let id = record(&client, replica, &format!("{what}-{n}")).await;
        acknowledged.fetch_max(id, Ordering::AcqRel);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until both replicas answer the list from a cache again, and checks it is current.
async fn back_in_use(replicas: &[Replica; 2], acknowledged: i64) {
    let client = reqwest::Client::new();
    for replica in replicas {
        let mut hit = false;
        for _ in 0..300 {
            let response = client
                .get(format!("{}{LIST}", replica.base))
                .send()
                .await
                .unwrap();
            hit = x_cache(&response) == "HIT";
            let page: Value = response.json().await.unwrap();
            assert!(page["deployments"][0]["id"].as_i64().unwrap() >= acknowledged);
            if hit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            hit,
            "{}: the cache did not come back within 30 s",
            replica.base
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_with_writes_never_serves_an_older_list() {
    let redis = RedisServer::start().unwrap();
    let (_db, replicas) = replicas(&redis.url()).await;
    let (replicas, redis) = (&replicas, &redis);
    let last = no_read_misses_an_acknowledged_write(replicas, |acknowledged| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        redis.pause().unwrap();
        write_during(replicas, &acknowledged, "frozen").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        redis.resume().unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    })
    .await;
    back_in_use(replicas, last).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_or_restarted_with_its_data_never_serves_an_older_list() {
    let mut redis = RedisServer::start().unwrap();
    let (_db, replicas) = replicas(&redis.url()).await;
    let (replicas, redis) = (&replicas, &mut redis);
    let last = no_read_misses_an_acknowledged_write(replicas, |acknowledged| async move {
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            // Comes back with the entries and the generation it had: only a bump after the
            // outage keeps those entries from being served.
            redis.snapshot().unwrap();
            redis.stop().unwrap();
            write_during(replicas, &acknowledged, "stopped").await;
            redis.start_again().unwrap();
            tokio::time::sleep(Duration::from_millis(800)).await;
        }
    })
    .await;
    back_in_use(replicas, last).await;
}
