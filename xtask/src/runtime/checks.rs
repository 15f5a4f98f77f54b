//! What `up` checks on either runtime: the machine's prerequisites before anything starts, and
//! that each published service answers once it is ready.

use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::context::Context;
use crate::prereq;

/// Runs the prerequisite checks under `step`: warnings are printed, failures are one error that
/// lists each with its fix.
pub(crate) async fn require_prerequisites(
    ctx: &Context,
    step: &crate::ui::Step,
    options: &prereq::Options,
) -> anyhow::Result<()> {
    let checks = prereq::run_checks(ctx, options).await.checks;
    let failures: Vec<_> = checks
        .iter()
        .filter(|c| c.status == prereq::Status::Fail)
        .collect();
    if !failures.is_empty() {
        let lines: Vec<String> = failures
            .iter()
            .map(|c| match &c.fix {
                Some(fix) => format!("  {}: {}\n    fix: {fix}", c.name, c.detail),
                None => format!("  {}: {}", c.name, c.detail),
            })
            .collect();
        bail!("this machine is not ready:\n{}", lines.join("\n"));
    }
    for warning in checks.iter().filter(|c| c.status == prereq::Status::Warn) {
        step.println(format!("  note: {}: {}", warning.name, warning.detail));
    }
    Ok(())
}

/// How long a ready API may report `degraded` (Redis not connected yet) before `dev` fails.
const API_SETTLE: Duration = Duration::from_secs(15);

/// `GET /health` until the API reports `ok`. A fresh API is ready once the database answers;
/// its Redis connection may take a moment more, so `degraded` is waited out (briefly).
pub(crate) async fn api_health(url: &str, timeout: Duration) -> anyhow::Result<String> {
    let started = std::time::Instant::now();
    loop {
        let body: serde_json::Value = get_when_answering(url, timeout)
            .await?
            .json()
            .await
            .with_context(|| format!("reading GET {url}"))?;
        let status = body["status"].as_str().unwrap_or("unknown");
        if status == "ok" {
            return Ok("/health ok".to_owned());
        }
        if started.elapsed() > API_SETTLE.min(timeout) {
            bail!("the API reports {status}: {body}\nnext: `cargo xtask logs api` says why");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A page of a published service (`name`) answers at `url` with a success: `GET / 200`.
pub(crate) async fn page_answers(
    url: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let response = get_when_answering(url, timeout)
        .await
        .with_context(|| format!("GET {url} (on its host port)"))?;
    if !response.status().is_success() {
        bail!(
            "GET {url} answered {}; `cargo xtask logs {name}` says why",
            response.status()
        );
    }
    Ok(format!("GET / {}", response.status().as_u16()))
}

/// `GET url`, retried while the connection fails (refused, reset, timed out) for up to
/// `timeout`: a service that is ready can still be out of reach for a moment, as on kind, where
/// a rollout completes before kube-proxy has written the NodePort's rules (it syncs at most once
/// a second there). Any HTTP answer ends the wait, whatever its status.
pub(crate) async fn get_when_answering(
    url: &str,
    timeout: Duration,
) -> anyhow::Result<reqwest::Response> {
    let started = std::time::Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    loop {
        match client.get(url).send().await {
            Ok(response) => return Ok(response),
            Err(err)
                if (err.is_connect() || err.is_timeout() || err.is_request())
                    && started.elapsed() < timeout =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => {
                return Err(err).with_context(|| {
                    format!("GET {url}: no answer within {}s", timeout.as_secs())
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_get_waits_for_a_server_that_is_not_listening_yet_and_no_longer() {
        // A port that refuses connections for 600 ms, then answers.
        let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = reserved.local_addr().unwrap();
        drop(reserved);
        let server = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0_u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut request).await;
            tokio::io::AsyncWriteExt::write_all(
                &mut socket,
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{\"status\":\"ok\"}",
            )
            .await
            .unwrap();
        });
        let url = format!("http://{addr}/health");
        assert_eq!(
            api_health(&url, Duration::from_secs(10)).await.unwrap(),
            "/health ok"
        );
        server.await.unwrap();
        // Nobody listening at all: refused until the time is up, then the error says so.
        let started = std::time::Instant::now();
        let err = get_when_answering(&url, Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(500));
        assert!(format!("{err:#}").contains("no answer within"), "{err:#}");
    }
}
