//! The connection to the Docker engine, shared by image builds and the docker runtime.

use anyhow::bail;
use bollard::Docker;

/// Connects to the local Docker engine (`DOCKER_HOST`, else the default socket), agrees on an API
/// version both sides speak, and checks that the daemon answers, not just that a socket exists.
pub(crate) async fn connect() -> anyhow::Result<Docker> {
    let docker = match Docker::connect_with_local_defaults() {
        Ok(docker) => docker,
        Err(err) => bail!("{}", unreachable_message(&err)),
    };
    let docker = match docker.negotiate_version().await {
        Ok(docker) => docker,
        Err(err) => bail!("{}", unreachable_message(&err)),
    };
    if let Err(err) = docker.ping().await {
        bail!("{}", unreachable_message(&err));
    }
    Ok(docker)
}

/// One line that says the daemon is not answering and how to start it.
fn unreachable_message(err: &bollard::errors::Error) -> String {
    let target =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    format!(
        "the Docker daemon at {target} is not answering ({err}); start it: `sudo systemctl start docker` on Linux, or start Docker Desktop"
    )
}

/// Whether an engine error is "no such object" (HTTP 404), which callers often expect.
pub(crate) fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}
