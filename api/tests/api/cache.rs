//! Cache-aside behaviour against the real Redis: MISS then HIT, normalised keys, invalidation on
//! writes, and clearing.

use std::time::Duration;

use api::cache::{Cache, Lookup};
use axum::body::Bytes;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, cache_status, test_config, unique_prefix, x_cache};

#[tokio::test]
async fn a_miss_is_followed_by_a_hit_with_the_same_body() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/deployments?status=failed",
        "/api/deployments/3",
        "/api/services",
        "/api/environments",
        "/api/stats",
    ] {
        let first = app.get(path).await;
        assert_eq!(x_cache(&first), "MISS", "{path}");
        let first: Value = first.json().await.unwrap();
        let second = app.get(path).await;
        assert_eq!(x_cache(&second), "HIT", "{path}");
        assert_eq!(second.headers()["content-type"], "application/json");
        assert_eq!(second.json::<Value>().await.unwrap(), first, "{path}");
    }
}

#[tokio::test]
async fn equivalent_queries_share_an_entry_and_different_ones_do_not() {
    let app = TestApp::spawn().await;
    assert_eq!(
        x_cache(&app.get("/api/deployments?status=failed&limit=20").await),
        "MISS"
    );
    assert_eq!(
        x_cache(&app.get("/api/deployments?offset=0&status=failed").await),
        "HIT"
    );
    assert_eq!(
        x_cache(&app.get("/api/deployments?status=completed").await),
        "MISS"
    );
    assert_eq!(
        x_cache(&app.get("/api/deployments?status=failed&limit=5").await),
        "MISS"
    );
}

#[tokio::test]
async fn errors_are_never_cached() {
    let app = TestApp::spawn().await;
    for _ in 0..2 {
        let response = app.get("/api/deployments/424242").await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(x_cache(&response), "");
    }
}

#[tokio::test]
async fn a_write_invalidates_the_cached_lists_and_stats() {
    let app = TestApp::spawn().await;
    let before: Value = app
        .get("/api/deployments?limit=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(x_cache(&app.get("/api/deployments?limit=1").await), "HIT");
    app.get("/api/stats").await;

    let created: Value = app
        .post_json(
            "/api/deployments",
            &json!({"service_id": 4, "environment_id": 1, "version": "v0.0.1", "deployed_by": "zoe"}),
        )
        .await
        .json()
        .await
        .unwrap();

    let after = app.get("/api/deployments?limit=1").await;
    assert_eq!(x_cache(&after), "MISS");
    let after: Value = after.json().await.unwrap();
    assert_eq!(
        after["total"].as_i64().unwrap(),
        before["total"].as_i64().unwrap() + 1
    );
    assert_eq!(
        after["deployments"][0]["id"], created["id"],
        "the new one is the newest"
    );
    let stats = app.get("/api/stats").await;
    assert_eq!(x_cache(&stats), "MISS");
    let stats: Value = stats.json().await.unwrap();
    assert_eq!(stats["total"], after["total"]);
}

#[tokio::test]
async fn clearing_the_cache_reports_what_it_deleted() {
    let app = TestApp::spawn().await;
    for path in ["/api/services", "/api/environments", "/api/deployments"] {
        app.get(path).await;
    }
    let response = app.clear_cache().await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"deleted": 3})
    );
    assert_eq!(x_cache(&app.get("/api/services").await), "MISS");
    let again: Value = app.clear_cache().await.json().await.unwrap();
    assert_eq!(again, json!({"deleted": 1}));
}

#[tokio::test]
async fn two_apps_with_different_prefixes_do_not_share_entries() {
    let a = TestApp::spawn().await;
    let b = TestApp::spawn().await;
    assert_eq!(x_cache(&a.get("/api/services").await), "MISS");
    assert_eq!(x_cache(&b.get("/api/services").await), "MISS");
    let cleared: Value = a.clear_cache().await.json().await.unwrap();
    assert_eq!(cleared, json!({"deleted": 1}));
    assert_eq!(x_cache(&b.get("/api/services").await), "HIT");
}

/// A cache of its own on the shared Redis, connected.
async fn connected_cache() -> Cache {
    let config = test_config(vec![
        (
            "DATABASE_URL",
            "postgres://unused@127.0.0.1:1/unused".to_owned(),
        ),
        ("REDIS_URL", testkit::redis_url()),
        ("CACHE_PREFIX", unique_prefix()),
    ]);
    let cache = Cache::connect(&config).unwrap();
    for _ in 0..100 {
        if cache.ping().await.is_ok() {
            return cache;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the test Redis did not answer");
}

/// The cache-aside race the generation counter closes, step by step: a reader misses and loads
/// rows, a write lands and invalidates, then the reader stores what it loaded before the write.
/// The next lookup must still miss: serving that store would show the list as it was before an
/// acknowledged write, until the TTL.
#[tokio::test]
async fn a_store_that_lost_the_race_with_a_write_is_never_served() {
    let cache = connected_cache().await;
    let resource = "deployments?status=failed";
    let Lookup::Miss(stale_fill) = cache.lookup(resource).await else {
        panic!("a fresh cache misses");
    };
    cache.invalidate().await.unwrap();
    cache
        .store(
            resource,
            stale_fill,
            Bytes::from_static(b"[\"before the write\"]"),
        )
        .await;
    let Lookup::Miss(fresh_fill) = cache.lookup(resource).await else {
        panic!("the body stored before the write was served after it");
    };
    // Whoever loads after the write fills the entry that is read from then on.
    cache
        .store(
            resource,
            fresh_fill,
            Bytes::from_static(b"[\"after the write\"]"),
        )
        .await;
    match cache.lookup(resource).await {
        Lookup::Hit(body, _) => assert_eq!(&body[..], b"[\"after the write\"]"),
        other => panic!("expected the fresh entry, got {other:?}"),
    }
    cache.close().await;
}

/// Hundreds of distinct filter combinations, each read twice: the near cache never holds more
/// than its bounds, keeps serving hits, and what it serves is what the database says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_near_cache_stays_within_its_bounds_under_many_filters() {
    const ENTRIES: usize = 24;
    const BYTES: usize = 48 * 1024;
    let app = TestApp::spawn_with(Options {
        env: vec![
            ("CACHE_NEAR_ENTRIES", ENTRIES.to_string()),
            ("CACHE_NEAR_BYTES", BYTES.to_string()),
        ],
        ..Default::default()
    })
    .await;
    let mut combinations = 0;
    let mut near_hits = 0;
    for status in [
        "",
        "completed",
        "failed",
        "pending",
        "in_progress",
        "rolled_back",
    ] {
        for service in ["", "1", "2", "3", "4"] {
            for limit in [1, 7, 50, 200] {
                let path =
                    format!("/api/deployments?status={status}&service={service}&limit={limit}");
                let first: Value = app.get(&path).await.json().await.unwrap();
                let second = app.get(&path).await;
                if cache_status(&second) == "api; hit" {
                    near_hits += 1;
                }
                assert_eq!(second.json::<Value>().await.unwrap(), first, "{path}");
                let usage = app.cache.near_usage();
                assert!(
                    usage.entries <= ENTRIES && usage.bytes <= BYTES,
                    "{path}: {usage:?}"
                );
                combinations += 1;
            }
        }
    }
    assert_eq!(combinations, 120);
    // Every second read is a near hit unless its body alone is over the byte bound.
    assert!(
        near_hits > 100,
        "only {near_hits} of 120 second reads were near hits"
    );
    assert!(
        app.cache.near_usage().entries > ENTRIES / 2,
        "it fills up to its bounds"
    );
}
