//! Integration tests of the API against a real PostgreSQL and a real Redis, provisioned by
//! `cargo xtask test`. Each test gets its own database (cloned from a migrated, seeded template)
//! and its own cache key prefix; fault tests start private servers they can stop.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod bad_input;
mod cache;
mod compression;
mod endpoints;
mod faults;
mod helpers;
mod replicas;
mod schemathesis;
mod security;
mod seed;
mod shutdown;
