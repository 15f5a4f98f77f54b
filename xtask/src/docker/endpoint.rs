//! Which Docker engine to talk to, chosen as the docker CLI chooses it, so that our images and
//! containers land on the engine `docker ps` shows and kind's nodes run on.
//!
//! The CLI's order (docker/cli `cli/command/cli.go`, `resolveContextName`): `DOCKER_HOST`, then
//! `DOCKER_CONTEXT`, then `currentContext` in its `config.json`; a context's endpoint is read from
//! its store (`cli/context/store`: `contexts/meta/<sha256 of the name>/meta.json`). Two rules are
//! ours: the rootless engine's socket under `$XDG_RUNTIME_DIR`, which the CLI does not look for,
//! is preferred to the system socket; and whatever was chosen is handed to kind as `DOCKER_HOST`,
//! so that the CLI it runs cannot choose differently.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The docker CLI's name for "no context": the endpoint of `DOCKER_HOST` or the default socket.
const DEFAULT_CONTEXT: &str = "default";

/// The system engine's socket.
pub(crate) const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// The largest `config.json` or `meta.json` read: real ones are a few kilobytes (credentials
/// included); anything bigger is not a Docker configuration.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// An engine address and the rule that picked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `unix:///path`, `tcp://host:port` or `npipe:////./pipe/name`.
    pub(crate) host: String,
    pub(crate) source: Source,
}

/// The rule that picked an endpoint, in the order they are tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `DOCKER_HOST`.
    DockerHost,
    /// `DOCKER_CONTEXT` named this context.
    ContextVariable { name: String },
    /// The Docker configuration's `currentContext` (`docker context use`).
    CurrentContext { name: String, config: PathBuf },
    /// The rootless engine's socket, `$XDG_RUNTIME_DIR/docker.sock`.
    Rootless,
    /// The system socket (or Windows' named pipe).
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DockerHost => write!(f, "DOCKER_HOST"),
            Self::ContextVariable { name } => {
                write!(f, "the Docker context {name} (DOCKER_CONTEXT)")
            }
            Self::CurrentContext { name, config } => write!(
                f,
                "the Docker context {name} (current in {})",
                config.display()
            ),
            Self::Rootless => write!(f, "the rootless engine's socket ($XDG_RUNTIME_DIR)"),
            Self::Default => write!(f, "the default socket"),
        }
    }
}

impl Endpoint {
    /// `unix:///tmp/x.sock, from DOCKER_HOST`: what `doctor` and errors print.
    pub(crate) fn describe(&self) -> String {
        format!("{}, from {}", self.host, self.source)
    }

    /// The engine's socket file, for an endpoint that is one.
    pub(crate) fn socket_path(&self) -> Option<&Path> {
        self.host.strip_prefix("unix://").map(Path::new)
    }

    /// A short name for the rule, for `doctor --json`.
    pub(crate) fn rule(&self) -> &'static str {
        match self.source {
            Source::DockerHost => "DOCKER_HOST",
            Source::ContextVariable { .. } => "DOCKER_CONTEXT",
            Source::CurrentContext { .. } => "current-context",
            Source::Rootless => "rootless-socket",
            Source::Default => "default-socket",
        }
    }
}

/// The variables the choice reads, gathered once so that tests can hand in their own.
#[derive(Debug, Clone, Default)]
pub(crate) struct Vars {
    pub(crate) docker_host: Option<OsString>,
    pub(crate) docker_context: Option<OsString>,
    pub(crate) docker_config: Option<OsString>,
    pub(crate) home: Option<OsString>,
    pub(crate) xdg_runtime_dir: Option<OsString>,
}

impl Vars {
    /// This process's environment. An empty value counts as unset, as the CLI has it.
    pub(crate) fn from_env() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        Self {
            docker_host: var("DOCKER_HOST"),
            docker_context: var("DOCKER_CONTEXT"),
            docker_config: var("DOCKER_CONFIG"),
            home: var("HOME"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
        }
    }
}

/// The engine of this process's environment; see the module's comment for the order.
pub(crate) fn resolve() -> anyhow::Result<Endpoint> {
    resolve_from(&Vars::from_env())
}

/// The engine `vars` choose.
pub(crate) fn resolve_from(vars: &Vars) -> anyhow::Result<Endpoint> {
    if let Some(host) = &vars.docker_host {
        let host = utf8("DOCKER_HOST", host)?;
        return Ok(Endpoint {
            host: host.to_owned(),
            source: Source::DockerHost,
        });
    }
    let config_dir = config_dir(vars);
    if let Some(name) = &vars.docker_context {
        let name = utf8("DOCKER_CONTEXT", name)?;
        if name != DEFAULT_CONTEXT {
            let dir = config_dir.as_deref().context(
                "DOCKER_CONTEXT is set, but neither DOCKER_CONFIG nor HOME says where the Docker configuration is; set DOCKER_HOST instead",
            )?;
            let host = context_host(dir, name).with_context(|| format!("DOCKER_CONTEXT={name}"))?;
            return Ok(Endpoint {
                host,
                source: Source::ContextVariable {
                    name: name.to_owned(),
                },
            });
        }
    } else if let Some(dir) = &config_dir {
        let config = dir.join("config.json");
        if let Some(name) = current_context(&config)?
            && name != DEFAULT_CONTEXT
        {
            let host = context_host(dir, &name).with_context(|| {
                format!(
                    "the current Docker context {name} (from {}); `docker context use default` goes back to the local engine",
                    config.display()
                )
            })?;
            return Ok(Endpoint {
                host,
                source: Source::CurrentContext { name, config },
            });
        }
    }
    if let Some(runtime_dir) = &vars.xdg_runtime_dir {
        let socket = Path::new(runtime_dir).join("docker.sock");
        if is_socket(&socket) {
            return Ok(Endpoint {
                host: format!("unix://{}", socket.display()),
                source: Source::Rootless,
            });
        }
    }
    Ok(Endpoint {
        host: if cfg!(windows) {
            "npipe:////./pipe/docker_engine".into()
        } else {
            DEFAULT_SOCKET.into()
        },
        source: Source::Default,
    })
}

/// `DOCKER_CONFIG`, else `~/.docker`.
fn config_dir(vars: &Vars) -> Option<PathBuf> {
    match (&vars.docker_config, &vars.home) {
        (Some(dir), _) => Some(PathBuf::from(dir)),
        (None, Some(home)) => Some(Path::new(home).join(".docker")),
        (None, None) => None,
    }
}

fn utf8<'a>(name: &str, value: &'a OsString) -> anyhow::Result<&'a str> {
    value
        .to_str()
        .with_context(|| format!("{name} is not valid UTF-8: {}", value.to_string_lossy()))
}

fn is_socket(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        std::fs::metadata(path).is_ok_and(|meta| meta.file_type().is_socket())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// A small file's text, or `None` when it does not exist.
fn read_small(path: &Path) -> anyhow::Result<Option<String>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(file, MAX_FILE_BYTES + 1),
        &mut text,
    )
    .with_context(|| format!("reading {} (is it UTF-8 text?)", path.display()))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        bail!(
            "{} is larger than {} MiB, which no Docker configuration is; move it away",
            path.display(),
            MAX_FILE_BYTES >> 20
        );
    }
    Ok(Some(text))
}

/// The `currentContext` of a Docker `config.json`; `None` when the file or the key is missing.
fn current_context(config: &Path) -> anyhow::Result<Option<String>> {
    #[derive(serde::Deserialize)]
    struct ConfigFile {
        #[serde(rename = "currentContext", default)]
        current_context: Option<String>,
    }
    let Some(text) = read_small(config)? else {
        return Ok(None);
    };
    let parsed: ConfigFile = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a valid Docker configuration; fix it (the docker CLI cannot read it either), or set DOCKER_HOST",
            config.display()
        )
    })?;
    Ok(parsed.current_context.filter(|name| !name.is_empty()))
}

/// The docker endpoint's address in the context store under `config_dir`.
fn context_host(config_dir: &Path, name: &str) -> anyhow::Result<String> {
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(rename = "Endpoints", default)]
        endpoints: std::collections::BTreeMap<String, EndpointMeta>,
    }
    #[derive(serde::Deserialize)]
    struct EndpointMeta {
        #[serde(rename = "Host", default)]
        host: String,
        #[serde(rename = "SkipTLSVerify", default)]
        skip_tls_verify: bool,
    }
    let dir = crate::digest::hex(&<sha2::Sha256 as sha2::Digest>::digest(name.as_bytes()));
    let meta = config_dir
        .join("contexts/meta")
        .join(&dir)
        .join("meta.json");
    let Some(text) = read_small(&meta)? else {
        bail!(
            "no Docker context is named {name} (looked for {}); `docker context ls` lists them",
            meta.display()
        );
    };
    let parsed: Meta = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid Docker context", meta.display()))?;
    let Some(docker) = parsed
        .endpoints
        .get("docker")
        .filter(|e| !e.host.is_empty())
    else {
        bail!(
            "the Docker context {name} has no docker endpoint ({}); recreate it with `docker context create {name} --docker host=unix:///path/to/docker.sock`",
            meta.display()
        );
    };
    let tls = config_dir.join("contexts/tls").join(&dir).join("docker");
    if docker.skip_tls_verify || tls.is_dir() {
        bail!(
            "the Docker context {name} reaches {} over TLS, which the xtask does not speak: the stack publishes its ports on this machine, so use a local engine's socket (or forward the remote one: `ssh -L /tmp/docker.sock:/var/run/docker.sock host`, then DOCKER_HOST=unix:///tmp/docker.sock)",
            docker.host
        );
    }
    Ok(docker.host.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Docker configuration folder with the contexts `(name, host)`, laid out as the docker CLI
    /// writes it (checked against the real CLI in `the_real_docker_cli_store_is_read`).
    fn store(contexts: &[(&str, &str)], current: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, host) in contexts {
            let hash = crate::digest::hex(&<sha2::Sha256 as sha2::Digest>::digest(name.as_bytes()));
            let meta = dir.path().join("contexts/meta").join(hash);
            std::fs::create_dir_all(&meta).unwrap();
            let text = serde_json::json!({
                "Name": name,
                "Metadata": {"Description": ""},
                "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}},
            });
            std::fs::write(meta.join("meta.json"), text.to_string()).unwrap();
        }
        if let Some(current) = current {
            let config = serde_json::json!({"auths": {}, "currentContext": current});
            std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        }
        dir
    }

    fn vars(config: &Path) -> Vars {
        Vars {
            docker_config: Some(config.into()),
            ..Vars::default()
        }
    }

    #[test]
    fn the_rules_apply_in_the_docker_cli_order_then_rootless_then_default() {
        let config = store(
            &[("alt", "unix:///alt.sock"), ("cur", "unix:///cur.sock")],
            Some("cur"),
        );
        let runtime = tempfile::tempdir().unwrap();
        let _listener =
            std::os::unix::net::UnixListener::bind(runtime.path().join("docker.sock")).unwrap();
        let all = Vars {
            docker_host: Some("tcp://127.0.0.1:2375".into()),
            docker_context: Some("alt".into()),
            docker_config: Some(config.path().into()),
            home: None,
            xdg_runtime_dir: Some(runtime.path().into()),
        };
        let host = resolve_from(&all).unwrap();
        assert_eq!(host.host, "tcp://127.0.0.1:2375");
        assert_eq!(host.source, Source::DockerHost);

        let without_host = Vars {
            docker_host: None,
            ..all.clone()
        };
        let context = resolve_from(&without_host).unwrap();
        assert_eq!(context.host, "unix:///alt.sock");
        assert_eq!(context.rule(), "DOCKER_CONTEXT");

        let without_context = Vars {
            docker_context: None,
            ..without_host.clone()
        };
        let current = resolve_from(&without_context).unwrap();
        assert_eq!(current.host, "unix:///cur.sock");
        assert_eq!(
            current.source,
            Source::CurrentContext {
                name: "cur".into(),
                config: config.path().join("config.json")
            }
        );
        assert!(current.describe().contains("current in"), "{current:?}");

        let without_config = Vars {
            docker_config: Some(runtime.path().join("no-config").into()),
            ..without_context.clone()
        };
        let rootless = resolve_from(&without_config).unwrap();
        assert_eq!(rootless.source, Source::Rootless);
        assert_eq!(
            rootless.socket_path().unwrap(),
            runtime.path().join("docker.sock")
        );

        let nothing = Vars {
            xdg_runtime_dir: Some(config.path().into()),
            ..without_config
        };
        let default = resolve_from(&nothing).unwrap();
        assert_eq!(default.host, DEFAULT_SOCKET);
        assert_eq!(default.source, Source::Default);
        assert_eq!(default.rule(), "default-socket");
    }

    #[test]
    fn the_default_context_means_no_context_and_home_gives_the_config_folder() {
        let home = tempfile::tempdir().unwrap();
        let config = home.path().join(".docker");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(
            config.join("config.json"),
            r#"{"currentContext":"default","auths":{"x":{"auth":"c2VjcmV0"}}}"#,
        )
        .unwrap();
        let vars = Vars {
            home: Some(home.path().into()),
            ..Vars::default()
        };
        assert_eq!(resolve_from(&vars).unwrap().source, Source::Default);
        let explicit = Vars {
            docker_context: Some("default".into()),
            ..vars
        };
        assert_eq!(resolve_from(&explicit).unwrap().source, Source::Default);
    }

    #[test]
    fn a_broken_context_is_an_error_that_says_what_to_do() {
        let config = store(&[("ok", "unix:///ok.sock")], None);
        let err = |vars: &Vars| format!("{:#}", resolve_from(vars).unwrap_err());

        let missing = Vars {
            docker_context: Some("nope".into()),
            ..vars(config.path())
        };
        let message = err(&missing);
        assert!(message.contains("DOCKER_CONTEXT=nope"), "{message}");
        assert!(message.contains("docker context ls"), "{message}");

        std::fs::write(config.path().join("config.json"), "{ not json").unwrap();
        let message = err(&vars(config.path()));
        assert!(
            message.contains("config.json is not a valid Docker configuration"),
            "{message}"
        );

        std::fs::write(
            config.path().join("config.json"),
            r#"{"currentContext":"ok"}"#,
        )
        .unwrap();
        let hash = crate::digest::hex(&<sha2::Sha256 as sha2::Digest>::digest(b"ok"));
        let meta = config
            .path()
            .join("contexts/meta")
            .join(&hash)
            .join("meta.json");
        for (text, expected) in [
            ("[1, 2", "is not a valid Docker context"),
            (r#"{"Name":"ok","Endpoints":{}}"#, "has no docker endpoint"),
            (
                r#"{"Name":"ok","Endpoints":{"docker":{"Host":""}}}"#,
                "has no docker endpoint",
            ),
            (
                r#"{"Name":"ok","Endpoints":{"docker":{"Host":"tcp://10.0.0.1:2376","SkipTLSVerify":true}}}"#,
                "over TLS",
            ),
        ] {
            std::fs::write(&meta, text).unwrap();
            let message = err(&vars(config.path()));
            assert!(message.contains(expected), "{text}: {message}");
            assert!(message.contains("docker context use default"), "{message}");
        }

        // Hostile sizes and bytes: an oversized file, a name that is not UTF-8.
        std::fs::write(&meta, vec![b' '; (MAX_FILE_BYTES + 10) as usize]).unwrap();
        assert!(err(&vars(config.path())).contains("larger than 1 MiB"));
        let not_utf8 = Vars {
            docker_context: Some(std::os::unix::ffi::OsStringExt::from_vec(vec![0xff, b'x'])),
            ..vars(config.path())
        };
        assert!(err(&not_utf8).contains("DOCKER_CONTEXT is not valid UTF-8"));
        // A name that looks like a path only ever names a hashed folder.
        let traversal = Vars {
            docker_context: Some("../../etc".into()),
            ..vars(config.path())
        };
        assert!(err(&traversal).contains("no Docker context is named ../../etc"));
    }

    #[test]
    fn tls_material_in_the_store_is_refused_with_the_way_to_a_socket() {
        let config = store(&[("remote", "tcp://10.0.0.1:2376")], None);
        let hash = crate::digest::hex(&<sha2::Sha256 as sha2::Digest>::digest(b"remote"));
        std::fs::create_dir_all(config.path().join("contexts/tls").join(hash).join("docker"))
            .unwrap();
        let vars = Vars {
            docker_context: Some("remote".into()),
            ..vars(config.path())
        };
        let message = format!("{:#}", resolve_from(&vars).unwrap_err());
        assert!(
            message.contains("over TLS") && message.contains("ssh -L"),
            "{message}"
        );
    }

    /// The store as the real docker CLI writes it: `docker context create` and `docker context
    /// use` in a configuration folder of the test's own.
    #[test]
    fn the_real_docker_cli_store_is_read() {
        let config = tempfile::tempdir().unwrap();
        let docker = |args: &[&str]| {
            let output = std::process::Command::new("docker")
                .args(args)
                .env("DOCKER_CONFIG", config.path())
                .env_remove("DOCKER_HOST")
                .env_remove("DOCKER_CONTEXT")
                .output()
                .expect("the docker CLI (`cargo xtask setup` installs docker.io)");
            assert!(output.status.success(), "docker {args:?}: {output:?}");
        };
        docker(&[
            "context",
            "create",
            "elsewhere",
            "--description",
            "a test",
            "--docker",
            "host=unix:///run/elsewhere/docker.sock",
        ]);
        docker(&["context", "use", "elsewhere"]);
        let found = resolve_from(&vars(config.path())).unwrap();
        assert_eq!(found.host, "unix:///run/elsewhere/docker.sock");
        assert_eq!(found.rule(), "current-context");

        docker(&[
            "context",
            "create",
            "tls",
            "--docker",
            "host=tcp://10.0.0.1:2376,skip-tls-verify=true",
        ]);
        let tls = Vars {
            docker_context: Some("tls".into()),
            ..vars(config.path())
        };
        assert!(format!("{:#}", resolve_from(&tls).unwrap_err()).contains("over TLS"));
    }
}
