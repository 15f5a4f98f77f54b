//! `web`: reads its configuration, serves the dashboard until SIGTERM or Ctrl-C, then drains.

use std::process::ExitCode;

use web::{app::Server, config::Config};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("web: {err}");
            return ExitCode::from(2);
        }
    };
    let _logs = servicekit::telemetry::init(config.log_json);
    let server = match Server::build(config).await {
        Ok(server) => server,
        Err(err) => {
            tracing::error!("{err}");
            return ExitCode::FAILURE;
        }
    };
    match server.run(servicekit::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("server failed: {err}");
            ExitCode::FAILURE
        }
    }
}
