//! `web`: reads its configuration, serves the dashboard until SIGTERM or Ctrl-C, then drains.

use std::process::ExitCode;

use web::{app::Server, config::Config};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::from_env();
    servicekit::run("web", config, |c| c.log_json, Server::build, Server::run).await
}
