//! The connection to the Docker engine, shared by image builds and the docker runtime.

use anyhow::bail;
use bollard::Docker;

/// Connects to the Docker engine (`DOCKER_HOST`: `unix://` or plain `tcp://`; else the default
/// socket), agrees on an API version both sides speak, and checks that the daemon answers, not
/// just that a socket exists.
pub(crate) async fn connect() -> anyhow::Result<Docker> {
    let docker = match Docker::connect_with_defaults() {
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

/// The engine [`connect`] talks to: `DOCKER_HOST` when set, else the default local socket.
pub(crate) fn endpoint() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => host,
        _ if cfg!(windows) => "npipe:////./pipe/docker_engine".into(),
        _ => "unix:///var/run/docker.sock".into(),
    }
}

/// One line that says the daemon is not answering and how to start it.
fn unreachable_message(err: &bollard::errors::Error) -> String {
    let target = endpoint();
    if let bollard::errors::Error::UnsupportedURISchemeError { uri } = err {
        return format!(
            "DOCKER_HOST={uri} is not supported: use a unix:// socket or a plain tcp:// address (for a remote engine over SSH, forward its socket: `ssh -L /tmp/docker.sock:/var/run/docker.sock host`, then DOCKER_HOST=unix:///tmp/docker.sock)"
        );
    }
    format!(
        "the Docker daemon at {target} is not answering ({err}); {}",
        crate::prereq::docker_fix_here()
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

/// Whether an engine error is "the name is taken" (HTTP 409).
pub(crate) fn is_conflict(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsupported_docker_host_says_which_forms_work() {
        let err = bollard::errors::Error::UnsupportedURISchemeError {
            uri: "ssh://build-box".into(),
        };
        let message = unreachable_message(&err);
        assert!(message.contains("ssh://build-box"), "{message}");
        assert!(
            message.contains("unix://") && message.contains("tcp://"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_socket_nobody_listens_on_is_reported_with_how_to_start_docker() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        // A socket file whose listener is gone: what a stopped daemon leaves behind.
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        let err = Docker::connect_with_unix(
            &format!("unix://{}", socket.display()),
            2,
            bollard::API_DEFAULT_VERSION,
        )
        .unwrap()
        .ping()
        .await
        .unwrap_err();
        let message = unreachable_message(&err);
        assert!(message.contains("is not answering"), "{message}");
        assert!(
            message.ends_with(&crate::prereq::docker_fix_here()),
            "the fix for this machine: {message}"
        );
    }
}
