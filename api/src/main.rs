//! `api`: reads its configuration, migrates, serves until SIGTERM or Ctrl-C, then drains.

use std::process::ExitCode;

use api::{app::Server, config::Config};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::from_env();
    servicekit::run("api", config, |c| c.log_json, Server::build, Server::run).await
}
