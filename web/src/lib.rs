//! The Wander dashboard: server-rendered HTML over the API, readable without JavaScript.
//!
//! The server calls the API server-side for every page (concurrently where a page needs several
//! answers) and renders askama templates; a part whose data is missing renders with an alert
//! instead of failing the page. A small optional script refreshes the health and statistics
//! panels.
//!
//! # Layout
//! - [`config`]: typed settings from the environment, with local defaults.
//! - [`app`]: the middleware stack (request ids, logs, security headers, CSRF protection) and the
//!   [`app::Server`] that binds and serves until a shutdown future resolves (tests bind port 0).
//! - [`client`]: the one typed client of the API, with its deadline and its error type;
//!   [`memo`] keeps the slowly changing answers (health for a second, the catalog for 30 s).
//! - [`routes`]: one module per route group, each with `router()`: the dashboard and its
//!   partials, deployments (detail page and form), the cache button, the probe.
//! - [`views`]: the template structs, one per page and per dashboard component, and the view
//!   models; the templates themselves are in `web/templates/`.
//! - [`query`] and [`form`]: the dashboard's query string and the new-deployment form, read
//!   leniently and validated with the contract's rules.
//! - [`assets`]: the stylesheet, script and icon, embedded and served under content-hashed names.
//! - [`error`]: the one page error type and its friendly pages.

pub mod app;
pub mod assets;
pub mod client;
pub mod config;
pub mod error;
pub mod form;
pub mod memo;
pub mod query;
pub mod routes;
pub mod views;
