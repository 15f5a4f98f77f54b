//! Integration tests of the dashboard: its templates rendered from fixtures, and the server
//! in front of a real API (in-process, its own seeded database, a private cache prefix) on the
//! PostgreSQL and Redis that `cargo xtask test` provides.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod cache;
mod compression;
mod dashboard;
mod deployments;
mod helpers;
mod outage;
mod render;
mod security;
