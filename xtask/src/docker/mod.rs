//! The connection to the Docker engine, shared by image builds and the docker runtime.

pub(crate) mod advice;
pub(crate) mod endpoint;

use anyhow::bail;
use bollard::Docker;

pub(crate) use endpoint::Endpoint;

/// How long one request to the engine may take: bollard's own default, which image builds and
/// pulls need.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// Connects to the engine the docker CLI would use ([`endpoint`]), agrees on an API version both
/// sides speak, and checks that the daemon answers, not just that a socket exists.
pub(crate) async fn connect() -> anyhow::Result<Docker> {
    connect_to(&endpoint::resolve()?).await
}

/// [`connect`] to a given endpoint.
pub(crate) async fn connect_to(endpoint: &Endpoint) -> anyhow::Result<Docker> {
    let docker = match client(&endpoint.host) {
        Ok(docker) => docker,
        Err(err) => bail!("{}", unreachable_message(endpoint, &err)),
    };
    let docker = match docker.negotiate_version().await {
        Ok(docker) => docker,
        Err(err) => bail!("{}", unreachable_message(endpoint, &err)),
    };
    if let Err(err) = docker.ping().await {
        bail!("{}", unreachable_message(endpoint, &err));
    }
    Ok(docker)
}

/// A client for `host` (`unix://`, plain `tcp://` or `http://`, `npipe://` on Windows).
fn client(host: &str) -> Result<Docker, bollard::errors::Error> {
    let version = bollard::API_DEFAULT_VERSION;
    if host.starts_with("unix://") {
        #[cfg(unix)]
        return Docker::connect_with_unix(host, REQUEST_TIMEOUT_SECS, version);
    }
    if host.starts_with("tcp://") || host.starts_with("http://") {
        return Docker::connect_with_http(host, REQUEST_TIMEOUT_SECS, version);
    }
    #[cfg(windows)]
    if host.starts_with("npipe://") {
        return Docker::connect_with_named_pipe(host, REQUEST_TIMEOUT_SECS, version);
    }
    Err(bollard::errors::Error::UnsupportedURISchemeError {
        uri: host.to_owned(),
    })
}

/// The engine [`connect`] talks to, for messages: its address and the rule that chose it, or
/// why none could be chosen.
pub(crate) fn describe_endpoint() -> String {
    match endpoint::resolve() {
        Ok(endpoint) => endpoint.describe(),
        Err(err) => format!("no engine ({err:#})"),
    }
}

/// One line that says the daemon is not answering and how to start it.
fn unreachable_message(endpoint: &Endpoint, err: &bollard::errors::Error) -> String {
    if let bollard::errors::Error::UnsupportedURISchemeError { uri } = err {
        return format!(
            "{uri} (from {}) is not supported: use a unix:// socket or a plain tcp:// address (for a remote engine over SSH, forward its socket: `ssh -L /tmp/docker.sock:/var/run/docker.sock host`, then DOCKER_HOST=unix:///tmp/docker.sock)",
            endpoint.source
        );
    }
    format!(
        "the Docker daemon at {} is not answering ({err}); {}",
        endpoint.describe(),
        advice::fix_for(endpoint)
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
        let endpoint = Endpoint {
            host: "ssh://build-box".into(),
            source: endpoint::Source::DockerHost,
        };
        let message = unreachable_message(&endpoint, &err);
        assert!(
            message.contains("ssh://build-box (from DOCKER_HOST)"),
            "{message}"
        );
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
        let endpoint = Endpoint {
            host: format!("unix://{}", socket.display()),
            source: endpoint::Source::DockerHost,
        };
        let message = unreachable_message(&endpoint, &err);
        assert!(message.contains("is not answering"), "{message}");
        assert!(
            message.ends_with(&advice::fix_for(&endpoint)),
            "the fix for this machine: {message}"
        );
    }
}
