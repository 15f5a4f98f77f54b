//! What to do when the Docker engine does not answer: one line, chosen for the machine and for
//! the rule that chose the engine (a context's app to start, a rootless engine, a remote one).

use std::path::Path;

use super::Endpoint;
use super::endpoint::Source;

/// What is known about a Docker daemon that does not answer, to choose the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DockerSituation {
    /// `std::env::consts::OS`.
    os: &'static str,
    /// A setting that named the engine, whose fix is to start that one.
    named: Option<Named>,
    /// The engine is installed here (binary or socket found).
    installed: bool,
    /// The socket exists but this user may not write to it.
    socket_denied: bool,
    /// systemd runs this machine (not so in most containers and WSL), so `systemctl` works.
    systemd: bool,
}

/// An engine some setting named, rather than the system's own.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Named {
    /// A `DOCKER_HOST` that is not a local socket.
    Remote(String),
    /// A Docker context, and its address: the app behind it (Docker Desktop, Colima, OrbStack,
    /// a Podman machine) is the one to start.
    Context { name: String, host: String },
    /// The rootless engine's socket.
    Rootless,
}

fn docker_situation(endpoint: &Endpoint) -> DockerSituation {
    let socket = endpoint.socket_path().map(Path::to_path_buf);
    let socket_exists = socket.as_deref().is_some_and(Path::exists);
    let socket_denied = socket_exists
        && socket.as_deref().is_some_and(|socket| {
            nix::unistd::access(socket, nix::unistd::AccessFlags::W_OK)
                == Err(nix::errno::Errno::EACCES)
        });
    let named = match &endpoint.source {
        Source::ContextVariable { name } | Source::CurrentContext { name, .. } => {
            Some(Named::Context {
                name: name.clone(),
                host: endpoint.host.clone(),
            })
        }
        Source::DockerHost if socket.is_none() => Some(Named::Remote(endpoint.host.clone())),
        Source::Rootless => Some(Named::Rootless),
        _ => None,
    };
    DockerSituation {
        os: std::env::consts::OS,
        named,
        installed: socket_exists || which::which("dockerd").is_ok(),
        socket_denied,
        systemd: Path::new("/run/systemd/system").is_dir(),
    }
}

/// The one line that gets the unreachable daemon at `endpoint` answering: the advice of
/// `doctor`, `dev` and every command that needs the engine.
pub(crate) fn fix_for(endpoint: &Endpoint) -> String {
    docker_fix(&docker_situation(endpoint))
}

/// The one line that gets an unreachable daemon answering, for `situation`.
fn docker_fix(situation: &DockerSituation) -> String {
    match &situation.named {
        Some(Named::Remote(host)) => {
            return format!(
                "the engine DOCKER_HOST={host} names must be running and reachable from here; or unset DOCKER_HOST to use the local one"
            );
        }
        Some(Named::Context { name, host }) => {
            return format!(
                "start the engine of the Docker context {name} ({host}: Docker Desktop, Colima, OrbStack or a Podman machine), or switch to another with `docker context use default`"
            );
        }
        Some(Named::Rootless) => {
            return "start the rootless engine: `systemctl --user start docker`".into();
        }
        None => {}
    }
    match situation.os {
        "linux" if situation.socket_denied => {
            "let your user talk to the daemon: `sudo usermod -aG docker $USER`, then log out and in again".into()
        }
        "linux" if situation.installed && situation.systemd => {
            "start the daemon: `sudo systemctl start docker`".into()
        }
        // Containers and WSL: no systemd, but Debian's package ships an init script.
        "linux" if situation.installed => {
            "start the daemon: `sudo service docker start` (or, without its init script, `sudo dockerd > /tmp/dockerd.log 2>&1 &`)".into()
        }
        "linux" => "install and start Docker: `sudo apt-get install docker.io && sudo systemctl start docker` (Debian/Ubuntu)".into(),
        "macos" | "windows" => {
            "start Docker Desktop (install it from https://docs.docker.com/desktop/ if it is missing)".into()
        }
        _ => "start the Docker daemon, or point DOCKER_HOST at its socket (unix://...)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_daemon_gets_the_fix_for_its_situation() {
        let situation = |os, installed, socket_denied, remote_host: Option<&str>| DockerSituation {
            os,
            installed,
            socket_denied,
            named: remote_host.map(|host: &str| Named::Remote(host.into())),
            systemd: true,
        };
        let without_systemd = DockerSituation {
            systemd: false,
            ..situation("linux", true, false, None)
        };
        let cases = [
            (without_systemd, "sudo service docker start"),
            (
                situation("linux", true, false, None),
                "sudo systemctl start docker",
            ),
            (
                situation("linux", false, false, None),
                "sudo apt-get install docker.io",
            ),
            (
                situation("linux", true, true, None),
                "sudo usermod -aG docker $USER",
            ),
            (
                situation("macos", false, false, None),
                "start Docker Desktop",
            ),
            (
                situation("windows", true, false, None),
                "start Docker Desktop",
            ),
            (
                situation("linux", true, false, Some("tcp://10.0.0.5:2376")),
                "DOCKER_HOST=tcp://10.0.0.5:2376 names must be running",
            ),
            (
                DockerSituation {
                    named: Some(Named::Context {
                        name: "colima".into(),
                        host: "unix:///Users/a/.colima/docker.sock".into(),
                    }),
                    ..situation("macos", false, false, None)
                },
                "start the engine of the Docker context colima (unix:///Users/a/.colima/docker.sock",
            ),
            (
                DockerSituation {
                    named: Some(Named::Rootless),
                    ..situation("linux", true, false, None)
                },
                "systemctl --user start docker",
            ),
        ];
        for (situation, expected) in cases {
            let fix = docker_fix(&situation);
            assert!(fix.contains(expected), "{situation:?}: {fix}");
        }
    }
}
