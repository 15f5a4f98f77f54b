//! The Wander deployments API: an axum JSON service over PostgreSQL with a Redis response cache.
//!
//! # Layout
//! - [`config`]: typed settings from the environment, with local defaults.
//! - [`app`]: shared state, the middleware stack, and the [`app::Server`] that migrates, binds and
//!   serves until a shutdown future resolves (tests bind port 0 and stop it cleanly).
//! - [`routes`]: one module per resource, each with `router()`; [`routes::openapi`] serves the
//!   generated OpenAPI document.
//! - [`model`]: request parameters (the wire types come from the `contract` crate);
//!   [`store`]: every SQL statement;
//!   [`cache`]: cache-aside in Redis that steps aside when Redis is unavailable.
//! - [`error`]: the one error type and its mapping to RFC 9457 problem documents;
//!   [`extract`] and [`auth`]: extractors whose rejections are those errors.

pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod error;
pub mod extract;
pub mod model;
pub mod routes;
pub mod store;
