//! The xtask's settings from the environment, read and checked once, before any command runs.
//!
//! The two flags that also read the environment (`--runtime`/`WANDER_RUNTIME`,
//! `--context`/`WANDER_KUBE_CONTEXT`) are clap's; everything else is here, so that a bad value
//! fails every command the same way (exit 2, naming the variable) instead of whichever command
//! happens to read it first.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::stack::Stack;

/// `WANDER_STACK`: the stack's name.
const STACK_VAR: &str = "WANDER_STACK";
/// `WANDER_STATE_DIR`: the folder of generated secrets and records.
const STATE_DIR_VAR: &str = "WANDER_STATE_DIR";
/// `WANDER_MANIFESTS`: another manifests folder.
const MANIFESTS_VAR: &str = "WANDER_MANIFESTS";
/// `WANDER_DEBIAN_MIRROR`: where the stand-in images' packages come from.
const MIRROR_VAR: &str = "WANDER_DEBIAN_MIRROR";
/// `WANDER_LOG_MAX_SIZE`: the docker runtime's log rotation size (the kubelet's
/// `containerLogMaxSize`).
const LOG_MAX_SIZE_VAR: &str = "WANDER_LOG_MAX_SIZE";
/// `WANDER_LOG_MAX_FILES`: how many log files the docker runtime keeps per container (the
/// kubelet's `containerLogMaxFiles`).
const LOG_MAX_FILES_VAR: &str = "WANDER_LOG_MAX_FILES";
/// `WANDER_PLATFORM`: the platform the apps are built for, whatever the engine runs.
const PLATFORM_VAR: &str = "WANDER_PLATFORM";
/// Prefix of every variable of ours; `WANDER_<NAME>_PORT` and `WANDER_<NAME>_IMAGE` are per
/// service.
const PREFIX: &str = "WANDER_";
const PORT_SUFFIX: &str = "_PORT";
const IMAGE_SUFFIX: &str = "_IMAGE";
/// Every variable read here, as the README's configuration table names them.
pub(crate) const VARIABLES: [&str; 9] = [
    STACK_VAR,
    STATE_DIR_VAR,
    MANIFESTS_VAR,
    MIRROR_VAR,
    LOG_MAX_SIZE_VAR,
    LOG_MAX_FILES_VAR,
    PLATFORM_VAR,
    "WANDER_<SERVICE>_PORT",
    "WANDER_<SERVICE>_IMAGE",
];

/// The stack's name when `WANDER_STACK` is not set: the product's (docs/design.md, "Named after
/// the product, renamable per stack").
pub(crate) const DEFAULT_STACK: &str = "wander";
/// The Debian mirror when `WANDER_DEBIAN_MIRROR` is not set.
pub(crate) const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// The longest image reference accepted: Docker's own limit on a name is 255 characters, plus
/// a tag or digest.
const MAX_IMAGE_LEN: usize = 512;

/// Log rotation, as the kubelet's `containerLogMaxSize` and `containerLogMaxFiles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct LogLimits {
    pub(crate) max_size_bytes: u64,
    pub(crate) max_files: u32,
}

impl Default for LogLimits {
    /// The kubelet's defaults: 10 MiB, 5 files.
    fn default() -> Self {
        Self {
            max_size_bytes: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}

/// Everything the environment configures, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// `WANDER_STACK`: names the docker runtime's containers, network and volumes, and the kind
    /// cluster (whose context is then `kind-<name>`), so that a second stack can run beside the
    /// first.
    pub(crate) stack_name: String,
    /// `WANDER_STATE_DIR`, else `.wander/` in the repository.
    pub(crate) state_dir: PathBuf,
    /// `WANDER_MANIFESTS`, else `manifests/` in the repository.
    pub(crate) manifests: PathBuf,
    /// `WANDER_<SERVICE>_PORT`: host ports moved, keyed by the name's variable form (`API`).
    pub(crate) host_ports: BTreeMap<String, u16>,
    /// `WANDER_<WORKLOAD>_IMAGE`: images replaced, keyed by the name's variable form.
    pub(crate) images: BTreeMap<String, String>,
    /// `WANDER_DEBIAN_MIRROR`, without a trailing slash.
    pub(crate) debian_mirror: String,
    /// `WANDER_LOG_MAX_SIZE` and `WANDER_LOG_MAX_FILES`, else the kubelet's defaults.
    pub(crate) log: LogLimits,
    /// `WANDER_PLATFORM`, else `None`: the engine's platform.
    pub(crate) platform: Option<crate::platform::Platform>,
}

impl Config {
    /// Reads the process environment.
    pub(crate) fn from_env(root: &Path) -> anyhow::Result<Self> {
        Self::from_vars(root, std::env::vars_os())
    }

    /// The configuration with nothing set: for tests, which must not depend on the environment
    /// they happen to run in.
    #[cfg(test)]
    pub(crate) fn defaults(root: &Path) -> Self {
        Self::from_vars(root, std::iter::empty()).expect("the defaults are valid")
    }

    /// Reads `vars`; variables not of ours are ignored, and so are ours not named here (the
    /// test harness's own, for instance).
    pub(crate) fn from_vars(
        root: &Path,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> anyhow::Result<Self> {
        let mut config = Self {
            stack_name: DEFAULT_STACK.to_owned(),
            state_dir: root.join(".wander"),
            manifests: root.join("manifests"),
            host_ports: BTreeMap::new(),
            images: BTreeMap::new(),
            debian_mirror: DEFAULT_MIRROR.to_owned(),
            log: LogLimits::default(),
            platform: None,
        };
        for (name, value) in vars {
            let Some(name) = name.to_str().filter(|n| n.starts_with(PREFIX)) else {
                continue;
            };
            let ours = VARIABLES.contains(&name)
                || per_service(name, PORT_SUFFIX).is_some()
                || per_service(name, IMAGE_SUFFIX).is_some();
            if ours && value.is_empty() {
                // An empty value would otherwise mean the current directory, or nothing valid.
                bail!("{name} is set but empty; unset it to use the default");
            }
            match name {
                STACK_VAR => config.stack_name = stack_name(&text(name, &value)?)?,
                STATE_DIR_VAR => config.state_dir = folder(&value),
                MANIFESTS_VAR => config.manifests = folder(&value),
                MIRROR_VAR => config.debian_mirror = mirror(&text(name, &value)?)?,
                LOG_MAX_SIZE_VAR => {
                    config.log.max_size_bytes = log_size(&text(name, &value)?)?;
                }
                LOG_MAX_FILES_VAR => config.log.max_files = log_files(&text(name, &value)?)?,
                PLATFORM_VAR => config.platform = Some(platform(&text(name, &value)?)?),
                _ => {
                    if let Some(key) = per_service(name, PORT_SUFFIX) {
                        config
                            .host_ports
                            .insert(key.to_owned(), port(name, &text(name, &value)?)?);
                    } else if let Some(key) = per_service(name, IMAGE_SUFFIX) {
                        config
                            .images
                            .insert(key.to_owned(), image(name, &text(name, &value)?)?);
                    }
                }
            }
        }
        Ok(config)
    }

    /// The stack as `manifests/` describes it, with this configuration's host ports and images.
    pub(crate) fn load_stack(&self) -> anyhow::Result<Stack> {
        let mut stack = Stack::load(&self.manifests)?;
        self.apply(&mut stack)?;
        Ok(stack)
    }

    /// Applies the host port and image overrides to `stack`; one naming no service or workload
    /// of the stack is an error listing the variables that would work.
    pub(crate) fn apply(&self, stack: &mut Stack) -> anyhow::Result<()> {
        for (key, &port) in &self.host_ports {
            let published: Vec<&str> = stack
                .host_ports
                .iter()
                .map(|m| m.service.as_str())
                .collect();
            let service = named(
                &published,
                key,
                PORT_SUFFIX,
                "publishes no service of that name on the host",
            )?;
            stack.move_host_port(&service, port)?;
        }
        for (key, image) in &self.images {
            let workloads: Vec<&str> = stack.workloads.iter().map(|w| w.name.as_str()).collect();
            let workload = named(&workloads, key, IMAGE_SUFFIX, "has no service of that name")?;
            stack
                .replace_image(&workload, image)
                .with_context(|| format!("{PREFIX}{key}{IMAGE_SUFFIX}"))?;
        }
        Ok(())
    }

    /// The kind cluster's name: the stack's.
    pub(crate) fn cluster_name(&self) -> &str {
        &self.stack_name
    }
}

/// A service's name as it appears in a variable: `api` → `API`, `my-db` → `MY_DB`.
pub(crate) fn env_key(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// The one of `names` that the variable `WANDER_<key><suffix>` is about; when none is, an
/// error saying the stack `lacks` it and listing the variables that would work.
fn named(names: &[&str], key: &str, suffix: &str, lacks: &str) -> anyhow::Result<String> {
    if let Some(name) = names.iter().find(|name| env_key(name) == key) {
        return Ok((*name).to_owned());
    }
    if names.is_empty() {
        bail!("{PREFIX}{key}{suffix}: the stack {lacks}, nor any other; unset it");
    }
    let known: Vec<String> = names
        .iter()
        .map(|name| format!("{PREFIX}{}{suffix}", env_key(name)))
        .collect();
    bail!(
        "{PREFIX}{key}{suffix}: the stack {lacks}; the variables are {}",
        known.join(", ")
    )
}

/// `WANDER_API_PORT` with suffix `_PORT` → `API`; `None` for anything else.
fn per_service<'a>(name: &'a str, suffix: &str) -> Option<&'a str> {
    name.strip_prefix(PREFIX)?
        .strip_suffix(suffix)
        .filter(|key| !key.is_empty())
}

/// A variable's value as text; ours are all text except the folders.
fn text(name: &str, value: &OsStr) -> anyhow::Result<String> {
    value
        .to_str()
        .map(str::to_owned)
        .with_context(|| format!("{name} is not valid UTF-8; set it to plain text"))
}

/// A folder variable: any path (not necessarily UTF-8).
fn folder(value: &OsStr) -> PathBuf {
    PathBuf::from(value)
}

/// The stack's name becomes part of container, network, volume and cluster names.
fn stack_name(value: &str) -> anyhow::Result<String> {
    if !valid_stack_name(value) {
        bail!(
            "{STACK_VAR}={} is not a usable name: use 1 to 40 lowercase letters, digits and dashes, starting with a letter",
            shown(value)
        );
    }
    Ok(value.to_owned())
}

/// Whether a stack name is usable in container, network, volume and kind cluster names.
pub(crate) fn valid_stack_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A host port: 1 to 65535, surrounding spaces forgiven.
fn port(name: &str, value: &str) -> anyhow::Result<u16> {
    value
        .trim()
        .parse()
        .ok()
        .filter(|&port: &u16| port > 0)
        .with_context(|| format!("{name}={} is not a port number (1-65535)", shown(value)))
}

/// An image reference as Docker and Kubernetes accept one: `postgres:16`,
/// `registry.example.com:5000/team/api:1.2`, `redis@sha256:...`. Only the character set and
/// length are checked here; the engine or the registry says whether it exists.
fn image(name: &str, value: &str) -> anyhow::Result<String> {
    let value = value.trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-/:@".contains(c);
    let well_formed = !value.is_empty()
        && value.len() <= MAX_IMAGE_LEN
        && value.chars().all(allowed)
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !value.ends_with([':', '/', '@']);
    if !well_formed {
        bail!(
            "{name}={} is not an image reference; write one such as `postgres:16` or `registry.example.com/team/api:1.2`",
            shown(value)
        );
    }
    Ok(value.to_owned())
}

/// A log file size as Kubernetes writes one (`10Mi`, `512Ki`, `1048576`): at least 1 KiB, at
/// most 1 GiB.
fn log_size(value: &str) -> anyhow::Result<u64> {
    let bytes = crate::runtime::docker::plan::memory_bytes(
        &k8s_openapi::apimachinery::pkg::api::resource::Quantity(value.trim().to_owned()),
    )
    .ok()
    .and_then(|b| u64::try_from(b).ok())
    .filter(|b| (1024..=1024 * 1024 * 1024).contains(b));
    bytes.with_context(|| {
        format!(
            "{LOG_MAX_SIZE_VAR}={} is not a log size; write one from 1Ki to 1Gi, such as `10Mi`",
            shown(value)
        )
    })
}

/// How many log files to keep: 2 to 100, as the kubelet accepts (it needs one to write and one
/// rotated).
fn log_files(value: &str) -> anyhow::Result<u32> {
    value
        .trim()
        .parse()
        .ok()
        .filter(|n| (2..=100).contains(n))
        .with_context(|| {
            format!(
                "{LOG_MAX_FILES_VAR}={} is not a number of files from 2 to 100",
                shown(value)
            )
        })
}

/// A platform to build the apps for.
fn platform(value: &str) -> anyhow::Result<crate::platform::Platform> {
    crate::platform::Platform::parse(value).map_err(|expected| {
        anyhow::anyhow!(
            "{PLATFORM_VAR}={} is not a platform the apps are built for; {expected}",
            shown(value)
        )
    })
}

/// A mirror URL for debootstrap.
fn mirror(value: &str) -> anyhow::Result<String> {
    let value = value.trim().trim_end_matches('/');
    let scheme_ok = ["http://", "https://", "file:///"]
        .iter()
        .any(|scheme| value.len() > scheme.len() && value.starts_with(scheme));
    if !scheme_ok || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!(
            "{MIRROR_VAR}={} is not a mirror URL; write one such as `http://deb.debian.org/debian`",
            shown(value)
        );
    }
    Ok(value.to_owned())
}

/// A value as an error message shows it: quoted, and cut short when long.
fn shown(value: &str) -> String {
    const MAX: usize = 60;
    if value.chars().count() <= MAX {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("{head:?}… ({} characters)", value.chars().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        crate::context::Context::for_tests().root().to_path_buf()
    }

    fn read(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        Config::from_vars(
            &root(),
            vars.iter()
                .map(|(name, value)| (OsString::from(name), OsString::from(value))),
        )
    }

    fn error(vars: &[(&str, &str)]) -> String {
        format!("{:#}", read(vars).unwrap_err())
    }

    #[test]
    fn nothing_set_gives_the_products_names_and_the_repositorys_folders() {
        let config = read(&[("PATH", "/bin"), ("WANDER_TEST_PG_URL", "x")]).unwrap();
        assert_eq!(config.stack_name, "wander");
        assert_eq!(config.cluster_name(), "wander");
        assert_eq!(config.state_dir, root().join(".wander"));
        assert_eq!(config.manifests, root().join("manifests"));
        assert!(config.host_ports.is_empty() && config.images.is_empty());
        assert_eq!(config.debian_mirror, "http://deb.debian.org/debian");
        assert_eq!(config.log.max_size_bytes, 10 * 1024 * 1024);
        assert_eq!(config.log.max_files, 5);
        assert_eq!(config, Config::defaults(&root()));
    }

    #[test]
    fn every_variable_is_read() {
        let config = read(&[
            ("WANDER_STACK", "side-2"),
            ("WANDER_STATE_DIR", "/tmp/state"),
            ("WANDER_MANIFESTS", "variant"),
            ("WANDER_DEBIAN_MIRROR", "http://cache:3142/debian/"),
            ("WANDER_WEB_PORT", " 13000 "),
            ("WANDER_LOG_MAX_SIZE", "64Ki"),
            ("WANDER_LOG_MAX_FILES", "3"),
            ("WANDER_PLATFORM", "linux/arm64"),
            ("WANDER_POSTGRES_IMAGE", "postgres:16-bookworm"),
            (
                "WANDER_MY_DB_IMAGE",
                "registry.example.com:5000/team/db@sha256:abc",
            ),
        ])
        .unwrap();
        assert_eq!(config.stack_name, "side-2");
        assert_eq!(config.cluster_name(), "side-2");
        assert_eq!(config.state_dir, Path::new("/tmp/state"));
        assert_eq!(config.manifests, Path::new("variant"));
        assert_eq!(config.debian_mirror, "http://cache:3142/debian");
        assert_eq!(config.platform, Some(crate::platform::Platform::LinuxArm64));
        assert_eq!(
            config.log,
            LogLimits {
                max_size_bytes: 65_536,
                max_files: 3
            }
        );
        assert_eq!(
            config.host_ports,
            BTreeMap::from([("WEB".to_owned(), 13000)])
        );
        assert_eq!(
            config.images,
            BTreeMap::from([
                (
                    "MY_DB".to_owned(),
                    "registry.example.com:5000/team/db@sha256:abc".to_owned()
                ),
                ("POSTGRES".to_owned(), "postgres:16-bookworm".to_owned()),
            ])
        );
    }

    #[test]
    fn bad_values_are_refused_naming_the_variable() {
        let long = "a".repeat(600);
        for (name, value, expected) in [
            ("WANDER_STACK", "", "set but empty"),
            ("WANDER_STACK", "Wander", "not a usable name"),
            ("WANDER_STACK", "9lives", "not a usable name"),
            ("WANDER_STACK", "a_b", "not a usable name"),
            ("WANDER_STACK", "x; rm -rf /", "not a usable name"),
            ("WANDER_STACK", &"a".repeat(41), "not a usable name"),
            ("WANDER_STATE_DIR", "", "set but empty"),
            ("WANDER_MANIFESTS", "", "set but empty"),
            ("WANDER_API_PORT", "0", "not a port number"),
            ("WANDER_API_PORT", "65536", "not a port number"),
            ("WANDER_API_PORT", "-1", "not a port number"),
            ("WANDER_API_PORT", "", "set but empty"),
            ("WANDER_API_PORT", " ", "not a port number"),
            ("WANDER_API_PORT", "80 80", "not a port number"),
            ("WANDER_API_PORT", "8080; rm -rf /", "not a port number"),
            ("WANDER_LOG_MAX_SIZE", "10", "not a log size"),
            ("WANDER_LOG_MAX_SIZE", "2Gi", "not a log size"),
            ("WANDER_LOG_MAX_SIZE", "-1Mi", "not a log size"),
            ("WANDER_LOG_MAX_SIZE", "10MB", "not a log size"),
            ("WANDER_LOG_MAX_SIZE", "$(reboot)", "not a log size"),
            ("WANDER_LOG_MAX_FILES", "1", "not a number of files"),
            ("WANDER_LOG_MAX_FILES", "101", "not a number of files"),
            ("WANDER_LOG_MAX_FILES", "five", "not a number of files"),
            ("WANDER_LOG_MAX_FILES", "", "set but empty"),
            ("WANDER_API_IMAGE", "", "set but empty"),
            ("WANDER_API_IMAGE", "  ", "not an image reference"),
            ("WANDER_API_IMAGE", "api image", "not an image reference"),
            ("WANDER_API_IMAGE", "-rm", "not an image reference"),
            ("WANDER_API_IMAGE", "api:", "not an image reference"),
            ("WANDER_API_IMAGE", "api:1$(id)", "not an image reference"),
            ("WANDER_API_IMAGE", "api\n:1", "not an image reference"),
            ("WANDER_API_IMAGE", &long, "not an image reference"),
            ("WANDER_PLATFORM", "", "set but empty"),
            ("WANDER_PLATFORM", "arm64", "not a platform"),
            (
                "WANDER_PLATFORM",
                "linux/riscv64",
                "linux/amd64, linux/arm64",
            ),
            ("WANDER_PLATFORM", "linux/arm64; id", "not a platform"),
            ("WANDER_PLATFORM", &long, "not a platform"),
            ("WANDER_DEBIAN_MIRROR", "", "set but empty"),
            ("WANDER_DEBIAN_MIRROR", "deb.debian.org", "not a mirror URL"),
            ("WANDER_DEBIAN_MIRROR", "http://", "not a mirror URL"),
            ("WANDER_DEBIAN_MIRROR", "ftp://x/debian", "not a mirror URL"),
            ("WANDER_DEBIAN_MIRROR", "http://a b/", "not a mirror URL"),
        ] {
            let err = error(&[(name, value)]);
            assert!(err.starts_with(name), "{name}={value:?}: {err}");
            assert!(err.contains(expected), "{name}={value:?}: {err}");
            assert!(err.len() < 300, "a long value is cut short: {err}");
        }
    }

    #[test]
    fn a_value_that_is_not_utf8_is_refused_but_a_folder_may_be_any_path() {
        use std::os::unix::ffi::OsStringExt as _;
        let bytes = OsString::from_vec(vec![b'/', b't', 0xff]);
        let read = |name: &str| Config::from_vars(&root(), [(OsString::from(name), bytes.clone())]);
        let err = read("WANDER_STACK").unwrap_err().to_string();
        assert!(err.contains("not valid UTF-8"), "{err}");
        assert!(read("WANDER_API_IMAGE").is_err());
        assert_eq!(
            read("WANDER_STATE_DIR").unwrap().state_dir,
            PathBuf::from(bytes)
        );
    }

    #[test]
    fn variables_that_only_look_like_ours_are_ignored() {
        let config = read(&[
            ("WANDER__PORT", "x"),
            ("WANDER_IMAGE", "x"),
            ("XWANDER_API_PORT", "x"),
            ("wander_api_port", "x"),
            ("WANDER_BENCH_TOKEN", "secret"),
        ])
        .unwrap();
        assert_eq!(config, Config::defaults(&root()));
    }

    fn stack() -> Stack {
        Stack::load(&root().join("manifests")).unwrap()
    }

    #[test]
    fn host_ports_move_in_the_stack_and_in_the_kind_configuration() {
        let config = read(&[("WANDER_API_PORT", "18080")]).unwrap();
        let mut stack = stack();
        config.apply(&mut stack).unwrap();
        assert_eq!(stack.host_port_of("api").unwrap().host_port, 18080);
        assert_eq!(stack.host_port_of("web").unwrap().host_port, 3000);
        let kind_ports: Vec<(u16, u16)> = stack.kind_config.nodes[0]
            .extra_port_mappings
            .iter()
            .map(|m| (m.container_port, m.host_port))
            .collect();
        assert_eq!(kind_ports, [(30300, 3000), (30080, 18080)]);
    }

    #[test]
    fn images_are_replaced_in_the_workload_and_in_the_object_the_cluster_gets() {
        let config = read(&[("WANDER_POSTGRES_IMAGE", "postgres:16")]).unwrap();
        let mut stack = stack();
        config.apply(&mut stack).unwrap();
        let workload = stack.workload("postgres").unwrap();
        assert_eq!(
            workload.pod_spec.containers[0].image.as_deref(),
            Some("postgres:16")
        );
        let object = stack
            .objects
            .iter()
            .find(|o| o.name == "postgres" && o.kind == "StatefulSet")
            .unwrap();
        let crate::stack::Object::StatefulSet(set) = &object.object else {
            panic!("{object:?}")
        };
        let template = set.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(template.containers[0].image.as_deref(), Some("postgres:16"));
        // Every other workload keeps its image.
        assert_eq!(
            stack.workload("redis").unwrap().pod_spec.containers[0].image,
            self::stack().workload("redis").unwrap().pod_spec.containers[0].image
        );
    }

    #[test]
    fn an_override_naming_nothing_in_the_stack_lists_the_variables_that_would_work() {
        for (vars, expected) in [
            (
                [("WANDER_WEBB_PORT", "3001")],
                "WANDER_WEBB_PORT: the stack publishes no service of that name on the host; the variables are WANDER_WEB_PORT, WANDER_API_PORT",
            ),
            (
                [("WANDER_POSTGRES_PORT", "5432")],
                "WANDER_POSTGRES_PORT: the stack publishes no service",
            ),
            (
                [("WANDER_PG_IMAGE", "postgres:16")],
                "WANDER_PG_IMAGE: the stack has no service of that name; the variables are WANDER_POSTGRES_IMAGE",
            ),
        ] {
            let config = read(&vars).unwrap();
            let err = format!("{:#}", config.apply(&mut stack()).unwrap_err());
            assert!(err.starts_with(expected), "{vars:?}: {err}");
        }
    }

    #[test]
    fn a_port_for_a_stack_that_publishes_nothing_says_so() {
        let config = read(&[("WANDER_API_PORT", "18080")]).unwrap();
        let mut stack = stack();
        stack.host_ports.clear();
        let err = format!("{:#}", config.apply(&mut stack).unwrap_err());
        assert_eq!(
            err,
            "WANDER_API_PORT: the stack publishes no service of that name on the host, nor any other; unset it"
        );
    }

    #[test]
    fn two_services_moved_onto_one_host_port_are_refused() {
        let config = read(&[("WANDER_API_PORT", "3000")]).unwrap();
        let err = format!("{:#}", config.apply(&mut stack()).unwrap_err());
        assert!(err.contains("3000"), "{err}");
        assert!(err.contains("api") && err.contains("web"), "{err}");
    }
}
