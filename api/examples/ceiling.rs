//! The ceiling of `cargo xtask bench api`: the API's own serving stack (tokio's multi-threaded
//! runtime, hyper through `axum::serve`) answering every request with fixed bytes, and doing
//! nothing else. The benchmark gives it the cached list's exact body and loads it in the same
//! run as the API, so each of the API's figures reads as a fraction of what this machine can do
//! at all, whatever the machine.
//!
//! Configured like the services, from the environment: `CEILING_ADDR` (where to listen) and
//! `CEILING_BODY` (the file whose bytes every answer carries, as `application/json`).

use std::net::SocketAddr;

use axum::{Router, body::Bytes, http::header};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::var("CEILING_ADDR")?.parse()?;
    let body = Bytes::from(std::fs::read(std::env::var("CEILING_BODY")?)?);
    let app = Router::new().fallback(move || {
        let body = body.clone();
        async move { ([(header::CONTENT_TYPE, "application/json")], body) }
    });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
