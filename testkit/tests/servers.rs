//! The servers and databases of testkit, started for real: what the API's fault tests and the
//! dashboard's browser test rely on.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sqlx::{Connection, PgConnection};
use testkit::{PostgresServer, RedisServer, Seed, TestDatabase};

/// Sends an inline `PING` to Redis on `port` and returns what came back.
fn ping(port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"PING\r\n")?;
    let mut reply = [0_u8; 7];
    stream.read_exact(&mut reply)?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

fn is_closed(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_err()
}

async fn count(url: &str, sql: &'static str) -> i64 {
    let mut conn = PgConnection::connect(url)
        .await
        .expect("connecting to count rows");
    let count = sqlx::query_scalar(sql)
        .fetch_one(&mut conn)
        .await
        .expect("counting rows");
    conn.close().await.expect("disconnecting after counting");
    count
}

#[tokio::test]
async fn postgres_keeps_its_data_and_port_across_a_stop_and_a_start() {
    let mut server = PostgresServer::start().unwrap();
    let port = server.port();
    assert_eq!(
        server.admin_url(),
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    );

    let mut conn = PgConnection::connect(&server.admin_url()).await.unwrap();
    sqlx::raw_sql("CREATE TABLE kept (n int); INSERT INTO kept VALUES (1), (2)")
        .execute(&mut conn)
        .await
        .unwrap();

    server.stop().unwrap();
    assert!(is_closed(port), "the port is closed once stop returns");
    assert!(
        conn.ping().await.is_err(),
        "open sessions end with the server"
    );
    assert!(PgConnection::connect(&server.admin_url()).await.is_err());

    server.start_again().unwrap();
    assert_eq!(server.port(), port);
    assert_eq!(
        count(&server.admin_url(), "SELECT count(*) FROM kept").await,
        2
    );
    assert!(
        server.start_again().is_err(),
        "a running server cannot be started twice"
    );

    drop(server);
    assert!(is_closed(port), "dropping the server stops it");
}

#[test]
fn postgres_stopped_twice_is_fine() {
    let mut server = PostgresServer::start().unwrap();
    server.stop().unwrap();
    server.stop().unwrap();
}

#[test]
fn redis_answers_ping_and_comes_back_on_the_same_port() {
    let mut server = RedisServer::start().unwrap();
    let port = server.port();
    assert_eq!(server.url(), format!("redis://127.0.0.1:{port}"));
    assert_eq!(ping(port).unwrap(), "+PONG\r\n");

    server.stop().unwrap();
    assert!(is_closed(port), "the port is closed once stop returns");
    assert!(ping(port).is_err());

    server.start_again().unwrap();
    assert_eq!(server.port(), port);
    assert_eq!(ping(port).unwrap(), "+PONG\r\n");

    drop(server);
    assert!(is_closed(port), "dropping the server stops it");
}

/// Sends one inline command and returns the first reply line.
fn redis_command(port: u16, line: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("talking to Redis");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("talking to Redis");
    stream
        .write_all(format!("{line}\r\n").as_bytes())
        .expect("talking to Redis");
    let mut reply = Vec::new();
    let mut byte = [0_u8; 1];
    while !reply.ends_with(b"\r\n") {
        stream.read_exact(&mut byte).expect("talking to Redis");
        reply.push(byte[0]);
    }
    String::from_utf8(reply).expect("talking to Redis")
}

#[test]
fn redis_keeps_its_data_across_a_restart_only_after_a_snapshot() {
    let mut server = RedisServer::start().unwrap();
    let port = server.port();
    assert_eq!(redis_command(port, "SET kept 1"), "+OK\r\n");
    server.snapshot().unwrap();
    assert_eq!(redis_command(port, "SET lost 1"), "+OK\r\n");
    server.stop().unwrap();
    server.start_again().unwrap();
    assert_eq!(redis_command(port, "EXISTS kept"), ":1\r\n");
    assert_eq!(redis_command(port, "EXISTS lost"), ":0\r\n");
}

#[test]
fn a_paused_redis_keeps_connections_but_answers_nothing_until_resumed() {
    let server = RedisServer::start().unwrap();
    let mut stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    server.pause().unwrap();
    stream.write_all(b"PING\r\n").unwrap();
    let mut reply = [0_u8; 7];
    let err = stream.read_exact(&mut reply).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    server.resume().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+PONG\r\n");
}

#[tokio::test]
async fn two_databases_created_at_once_are_separate_and_seeded_as_asked() {
    let admin_url = testkit::pg_admin_url();
    let (empty, seeded) = tokio::join!(
        TestDatabase::create(&admin_url, Seed::Empty),
        TestDatabase::create(&admin_url, Seed::Seeded),
    );
    let (empty, seeded) = (empty.unwrap(), seeded.unwrap());
    assert_ne!(empty.name, seeded.name);
    assert!(
        empty.url.ends_with(&format!("/{}", empty.name)),
        "{}",
        empty.url
    );

    assert_eq!(count(&empty.url, "SELECT count(*) FROM services").await, 0);
    assert_eq!(count(&seeded.url, "SELECT count(*) FROM services").await, 4);
    assert_eq!(
        count(&seeded.url, "SELECT count(*) FROM environments").await,
        3
    );

    // A write to one database does not show in a sibling cloned from the same template.
    let again = TestDatabase::create(&admin_url, Seed::Seeded)
        .await
        .unwrap();
    let mut conn = PgConnection::connect(&seeded.url).await.unwrap();
    sqlx::raw_sql(testkit::reset_sql())
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(count(&seeded.url, "SELECT count(*) FROM services").await, 0);
    assert_eq!(count(&again.url, "SELECT count(*) FROM services").await, 4);

    // The seed is idempotent and the migrations are already applied in a clone.
    sqlx::raw_sql(testkit::seed_sql())
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(count(&seeded.url, "SELECT count(*) FROM services").await, 4);
    testkit::migrator().run(&mut conn).await.unwrap();
}

#[tokio::test]
async fn a_private_server_builds_its_own_templates() {
    let server = PostgresServer::start().unwrap();
    let database = TestDatabase::create(&server.admin_url(), Seed::Seeded)
        .await
        .unwrap();
    assert_eq!(database.url, server.url_for(&database.name));
    assert_eq!(
        count(&database.url, "SELECT count(*) FROM services").await,
        4
    );
}

/// Serves `page` as HTML to every request on a free port of 127.0.0.1, from a thread that lives
/// as long as the test process; returns the page's URL.
fn serve_page(page: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port for the page");
    let port = listener.local_addr().expect("the page's port").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            // Read the request head; its content does not matter, every path gets the page.
            let mut head = Vec::new();
            let mut byte = [0_u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read_exact(&mut byte).is_ok() {
                head.push(byte[0]);
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    format!("http://127.0.0.1:{port}/")
}

/// Whether the process `pid` has exited (gone from /proc, or a zombie).
fn has_exited(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
    })
}

/// Waits up to 10 s for `pid` to exit.
async fn wait_exited(pid: u64) -> bool {
    for _ in 0..400 {
        if has_exited(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// Opens a WebDriver session with the capabilities testkit gives; returns its id and the pid of
/// the browser it started.
async fn new_session(http: &reqwest::Client, driver: &testkit::Chromedriver) -> (String, u64) {
    let capabilities = driver
        .headless_chromium()
        .expect("capabilities for headless Chromium");
    let response: serde_json::Value = http
        .post(format!("{}/session", driver.url()))
        .json(&serde_json::json!({ "capabilities": { "alwaysMatch": capabilities } }))
        .send()
        .await
        .expect("asking chromedriver for a session")
        .json()
        .await
        .expect("chromedriver's answer as JSON");
    let value = &response["value"];
    let id = value["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {response}"))
        .to_owned();
    let pid = value["capabilities"]["goog:processID"]
        .as_u64()
        .unwrap_or_else(|| panic!("no browser pid: {response}"));
    (id, pid)
}

#[tokio::test]
async fn chromedriver_drives_headless_chromium_and_takes_it_down_on_drop() {
    let page = serve_page(
        "<!doctype html><title>testkit page</title><p id=x>hello</p>\
         <script>console.error('a console error for the log')</script>",
    );
    let driver = testkit::Chromedriver::start().unwrap();
    assert_eq!(driver.url(), format!("http://127.0.0.1:{}", driver.port()));
    let http = reqwest::Client::new();

    let (session, browser) = new_session(&http, &driver).await;
    let base = format!("{}/session/{session}", driver.url());
    let navigated = http
        .post(format!("{base}/url"))
        .json(&serde_json::json!({ "url": page }))
        .send()
        .await
        .unwrap();
    assert!(navigated.status().is_success(), "{navigated:?}");
    let title: serde_json::Value = http
        .get(format!("{base}/title"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(title["value"], "testkit page");

    // The console is readable through chromedriver's log endpoint, thanks to goog:loggingPrefs.
    let log: serde_json::Value = http
        .post(format!("{base}/se/log"))
        .json(&serde_json::json!({ "type": "browser" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = log["value"].as_array().unwrap();
    assert!(
        entries.iter().any(|entry| entry["level"] == "SEVERE"
            && entry["message"]
                .as_str()
                .is_some_and(|message| message.contains("a console error for the log"))),
        "{log}"
    );

    let closed = http.delete(&base).send().await.unwrap();
    assert!(closed.status().is_success(), "{closed:?}");
    assert!(
        wait_exited(browser).await,
        "closing the session ends the browser"
    );

    // A session left open (a test that panicked) goes with the driver.
    let (_, browser) = new_session(&http, &driver).await;
    assert!(!has_exited(browser));
    let port = driver.port();
    drop(driver);
    assert!(
        wait_exited(browser).await,
        "dropping the driver ends the browser"
    );
    assert!(is_closed(port), "dropping the driver stops it");
}
