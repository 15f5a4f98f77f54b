//! The life of a service process, the same for `api` and `web`: its configuration read from the
//! environment, logging installed, then its server built and serving until SIGTERM or Ctrl-C.

use std::fmt::Display;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::ExitCode;

/// What a server is given to serve until: resolves when the process is told to stop.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The whole of a service's `main`: with `config` read (a bad value is printed after `name` and
/// ends the process with exit code 2), logging installed as `log_json` says, the server that
/// `build` makes (a failure is logged, exit code 1) is given to `serve` with the shutdown signal
/// ([`crate::shutdown_signal`]): exit code 0 once it has drained, 1 when it fails.
pub async fn run<C, S, E, Built, Served>(
    name: &str,
    config: Result<C, impl Display>,
    log_json: impl FnOnce(&C) -> bool,
    build: impl FnOnce(C) -> Built,
    serve: impl FnOnce(S, Shutdown) -> Served,
) -> ExitCode
where
    Built: Future<Output = Result<S, E>>,
    E: Display,
    Served: Future<Output = io::Result<()>>,
{
    let config = match config {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{name}: {err}");
            return ExitCode::from(2);
        }
    };
    let _logs = crate::telemetry::init(log_json(&config));
    let server = match build(config).await {
        Ok(server) => server,
        Err(err) => {
            tracing::error!("{err}");
            return ExitCode::FAILURE;
        }
    };
    match serve(server, Box::pin(crate::shutdown_signal())).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("server failed: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration as the services have one: whether logs are JSON, and what the server
    /// does.
    struct Config {
        json: bool,
        serves: io::Result<()>,
    }

    async fn build(config: Config) -> Result<io::Result<()>, String> {
        Ok(config.serves)
    }

    async fn serve(outcome: io::Result<()>, _shutdown: Shutdown) -> io::Result<()> {
        outcome
    }

    #[tokio::test]
    async fn the_exit_code_says_which_part_failed() {
        let config = |serves| {
            Ok::<_, String>(Config {
                json: false,
                serves,
            })
        };
        let json = |config: &Config| config.json;
        let bad: Result<Config, _> = Err("API_ADDR=\"x\" is invalid: not an address");
        assert_eq!(run("api", bad, json, build, serve).await, ExitCode::from(2));
        let unbuilt = |_: Config| async { Err::<io::Result<()>, _>("no database") };
        assert_eq!(
            run("api", config(Ok(())), json, unbuilt, serve).await,
            ExitCode::FAILURE
        );
        assert_eq!(
            run("api", config(Ok(())), json, build, serve).await,
            ExitCode::SUCCESS
        );
        let failed = config(Err(io::Error::other("accept failed")));
        assert_eq!(
            run("api", failed, json, build, serve).await,
            ExitCode::FAILURE
        );
    }
}
