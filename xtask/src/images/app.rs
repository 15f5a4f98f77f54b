//! The API and web images: tagged by the hash of their inputs, reused when that tag exists, else
//! made from a static binary compiled on the host and loaded as one layer (fast path), or built
//! from the crate's multi-stage Dockerfile (hosts without the musl target).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use bollard::Docker;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::cmd::{Cmd, Relay};
use crate::context::Context;
use crate::images::archive::OneLayer;
use crate::images::context::{self, DockerIgnore, Tar};
use crate::images::{Image, build, hash};
use crate::platform::Platform;

/// Bumped whenever the way an image is assembled changes in a way the recipe text does not
/// show, so that every tag changes with it.
const RECIPE_VERSION: u32 = 2;

/// How the binaries in an app's image are compiled. Both build with the cargo profile `image`
/// (root Cargo.toml), so the dependencies are compiled once for both; the watch loop's builds
/// only leave our own crates unoptimised. The choice is an input of the image, and its tag says
/// it (`loop-` before the hash), so `dev` after `dev --watch` puts the optimised images back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Profile {
    /// Release code throughout, built so that a one-line change relinks quickly: what `dev`
    /// runs.
    #[default]
    Optimised,
    /// Our crates at opt-level 0 in 256 codegen units, so that a one-line change recompiles
    /// little (about a second), the dependencies as optimised as ever: what `dev --watch` runs.
    Loop,
}

impl Profile {
    /// The cargo profile both build with.
    const CARGO_PROFILE: &str = "image";

    /// What the recipe says of it (an input of the image's tag).
    fn recipe(self) -> &'static str {
        match self {
            Self::Optimised => "image",
            Self::Loop => "image, workspace crates at opt-level 0 in 256 codegen units",
        }
    }

    /// Cargo's `--config` settings on top of the profile: its base settings, which only the
    /// workspace's own crates use (the dependencies have theirs, `package."*"`, in
    /// Cargo.toml), so their compiled form is the optimised build's. With 16 units, a changed
    /// function recompiles a sixteenth of its crate; with 256 (rustc's own choice for
    /// incremental builds) far less: 1.1–1.6 s against 2.0–2.5 s for a line in an API handler.
    fn cargo_config(self) -> &'static [&'static str] {
        match self {
            Self::Optimised => &[],
            Self::Loop => &[
                "profile.image.opt-level=0",
                "profile.image.codegen-units=256",
            ],
        }
    }

    /// What the image's tag starts with, before the input hash.
    fn tag_prefix(self) -> &'static str {
        match self {
            Self::Optimised => "",
            Self::Loop => "loop-",
        }
    }

    /// The label value that records it.
    fn label(self) -> &'static str {
        match self {
            Self::Optimised => "optimised",
            Self::Loop => "loop",
        }
    }
}

/// The numeric user the apps run as: distroless's `nonroot`, which Kubernetes' `runAsNonRoot`
/// accepts because it is numeric.
const USER: &str = "65532:65532";

/// `/etc/passwd` and `/etc/group` of the images, so that tools inside or beside a container show
/// names; the apps need neither.
const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
    nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
    nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n";

/// Where hosts keep their CA bundle: Debian, Ubuntu, Alpine and Arch; Fedora; macOS.
const HOST_CA_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// One of the workspace's servers that runs as an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum App {
    Api,
    Web,
}

impl App {
    /// Every app, in a fixed order: what `build_binaries` builds, and what a manifest's image can
    /// name.
    pub(crate) const ALL: [Self; 2] = [Self::Api, Self::Web];

    /// The app whose image a manifest names: `wander/api:<any tag>` is the API's.
    pub(crate) fn from_manifest_image(reference: &str) -> Option<Self> {
        let name = reference.strip_prefix(crate::stack::LOCAL_IMAGE_PREFIX)?;
        let name = name.split([':', '@']).next()?;
        Self::ALL.into_iter().find(|app| app.name() == name)
    }

    /// The crate, its binary and the image's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            App::Api => "api",
            App::Web => "web",
        }
    }

    /// The port it listens on inside its container.
    pub(crate) fn port(self) -> u16 {
        match self {
            App::Api => 8080,
            App::Web => 3000,
        }
    }

    /// The variable that sets its listen address (its default is loopback, useless in a
    /// container).
    fn addr_var(self) -> &'static str {
        match self {
            App::Api => "API_ADDR",
            App::Web => "WEB_ADDR",
        }
    }

    /// Inputs outside the crates: `sqlx::migrate!` embeds the migrations in the API.
    fn extra_inputs(self) -> &'static [&'static str] {
        match self {
            App::Api => &["db/migrations"],
            App::Web => &[],
        }
    }

    fn description(self) -> &'static str {
        match self {
            App::Api => "The Wander deployments API",
            App::Web => "The Wander dashboard",
        }
    }
}

/// Makes sure the engine has the image of `app` for the current sources and the apps'
/// platform ([`Platform::for_apps`]): returns at once when the tag derived from its inputs
/// exists, builds it otherwise. Build output goes to `on_progress`, one line at a time.
pub(crate) async fn ensure_app(
    ctx: &Context,
    docker: &Docker,
    app: App,
    profile: Profile,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Image> {
    let build = Build {
        repository: format!("wander/{}", app.name()),
        platform: Platform::for_apps(ctx.config().platform, docker).await?,
        profile,
        extra_labels: HashMap::new(),
    };
    ensure(ctx, docker, app, &build, on_progress).await
}

/// Where an app's image goes and what it is built for: [`ensure_app`]'s choice, or a test's
/// (tests build under their own names, so they never touch a developer's images).
struct Build {
    repository: String,
    platform: Platform,
    profile: Profile,
    extra_labels: HashMap<String, String>,
}

async fn ensure(
    ctx: &Context,
    docker: &Docker,
    app: App,
    build: &Build,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Image> {
    let root = ctx.root();
    let platform = build.platform;
    let repository = &build.repository;
    let target = platform.musl_target();
    let rustc = rustc_version(ctx)?;
    let run = run_settings(app);
    let profile = build.profile.recipe();
    let recipe_text = format!(
        "version {RECIPE_VERSION}\nprofile {profile}\n{}\n{PASSWD}{GROUP}",
        serde_json::Value::Object(run.clone())
    );
    let dirs = input_paths(ctx, app)?;
    let ignore = DockerIgnore::load(root)?;
    let inputs = hash::input_hash(
        root,
        &dirs,
        &ignore,
        &hash::Recipe {
            text: &recipe_text,
            rustc: &rustc,
            target,
        },
    )?;
    let reference = format!(
        "{repository}:{}{}",
        build.profile.tag_prefix(),
        &inputs[..12]
    );
    if build::image_exists(docker, &reference).await? {
        return Ok(Image {
            reference,
            built: false,
        });
    }

    let mut labels = labels(app, &inputs, build.profile);
    labels.extend(
        build
            .extra_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    if musl_installed(ctx, target)? {
        let binary = cargo_build(ctx, app, platform, build.profile, on_progress).await?;
        let image = OneLayer {
            reference: &reference,
            platform,
            run,
            labels: &labels,
            layer: root_filesystem(app, &binary)?,
            created_by: "cargo xtask: a static binary compiled on the host",
        };
        image.load(docker, on_progress).await?;
    } else {
        dockerfile_build(
            docker,
            root,
            app,
            &reference,
            &labels,
            platform,
            on_progress,
        )
        .await?;
    }
    let pruned = build::prune_other_tags(docker, repository, &reference).await?;
    if pruned > 0 {
        on_progress(&format!(
            "removed {pruned} older {repository} image(s) no container uses"
        ));
    }
    Ok(Image {
        reference,
        built: true,
    })
}

/// The directories and files that are inputs of `app`'s image (besides [`hash::ROOT_FILES`]):
/// its crate, its path dependencies, the other apps' manifests ([`hash::app_inputs`]) and its
/// extra inputs, relative to the root. What the tag is hashed from, and what `dev --watch`
/// watches: one list for both.
pub(crate) fn input_paths(ctx: &Context, app: App) -> anyhow::Result<Vec<String>> {
    let metadata = hash::cargo_metadata(ctx, ctx.root())?;
    let apps = App::ALL.map(App::name);
    let mut dirs = hash::app_inputs(&metadata, app.name(), &apps)?;
    dirs.extend(app.extra_inputs().iter().map(|dir| (*dir).to_owned()));
    Ok(dirs)
}

/// Builds every app's static binary now, for every platform whose musl target is installed,
/// even when the images exist. `cargo xtask test` does this once, in view, so that the tests
/// which build images under their own names (the other architecture's among them) find cargo's
/// work done: a clean checkout next to images already in the engine would otherwise compile in
/// the middle of the tests, where two such builds queue on cargo's lock. Nothing to do without
/// a musl target (images then come from the Dockerfiles).
pub(crate) async fn build_binaries(
    ctx: &Context,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<()> {
    for platform in Platform::ALL {
        if !musl_installed(ctx, platform.musl_target())? {
            continue;
        }
        // `ensure`'s own command, which builds every app at once.
        cargo_build(ctx, App::Api, platform, Profile::Optimised, on_progress).await?;
    }
    Ok(())
}

/// The portable way: the crate's multi-stage Dockerfile with the workspace as context, which
/// needs the builder's base images from a registry.
async fn dockerfile_build(
    docker: &Docker,
    root: &Path,
    app: App,
    reference: &str,
    labels: &HashMap<String, String>,
    platform: Platform,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<()> {
    let name = app.name();
    let target = platform.musl_target();
    on_progress(&format!(
        "the {target} target is not installed: building {name} from {name}/Dockerfile (slower)"
    ));
    let path = root.join(name).join("Dockerfile");
    let dockerfile =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let context = context::workspace_context(root, &dockerfile)?;
    build::build(docker, context, reference, labels, Some(platform), on_progress)
        .await
        .with_context(|| {
            format!(
                "building {reference} from {name}/Dockerfile failed; install the musl target with `rustup target add {target}` to build on the host instead, or make the registry reachable"
            )
        })
}

fn rustc() -> Cmd {
    Cmd::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
}

/// `rustc -vV`: the compiler's exact version, an input of every binary.
fn rustc_version(ctx: &Context) -> anyhow::Result<String> {
    let cmd = rustc().arg("-vV");
    let output = cmd.output(ctx.ui())?;
    if !output.status.success() {
        bail!(
            "`{cmd}` failed ({}); check the Rust installation with `rustup show`",
            output.status
        );
    }
    String::from_utf8(output.stdout).with_context(|| format!("reading the output of `{cmd}`"))
}

/// Whether the standard library for `target` is installed in the active toolchain.
pub(crate) fn musl_installed(ctx: &Context, target: &str) -> anyhow::Result<bool> {
    let cmd = rustc().args(["--print", "sysroot"]);
    let output = cmd.output(ctx.ui())?;
    if !output.status.success() {
        bail!(
            "`{cmd}` failed ({}); check the Rust installation with `rustup show`",
            output.status
        );
    }
    let sysroot = String::from_utf8_lossy(&output.stdout);
    Ok(Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(target)
        .join("lib")
        .is_dir())
}

/// The labels of an app image: OCI annotations, and the input hash the tag is cut from.
fn labels(app: App, inputs: &str, profile: Profile) -> HashMap<String, String> {
    [
        (
            "org.opencontainers.image.title",
            format!("wander-{}", app.name()),
        ),
        (
            "org.opencontainers.image.description",
            app.description().to_owned(),
        ),
        ("org.opencontainers.image.licenses", "MIT".to_owned()),
        ("org.opencontainers.image.version", inputs[..12].to_owned()),
        ("dev.wander.app", app.name().to_owned()),
        ("dev.wander.inputs", inputs.to_owned()),
        ("dev.wander.profile", profile.label().to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect()
}

/// How the image runs its binary, in docker's image config: as the numeric non-root user, on
/// every interface of the container at the app's port. Part of the image's recipe (its tag).
fn run_settings(app: App) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::json;
    let name = app.name();
    let port = app.port();
    let addr = app.addr_var();
    serde_json::Map::from_iter([
        ("User".to_owned(), json!(USER)),
        (
            "Env".to_owned(),
            // PATH as a builder sets it in an image `FROM scratch`, for a shell beside the app.
            json!([
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                format!("{addr}=0.0.0.0:{port}"),
            ]),
        ),
        (
            "ExposedPorts".to_owned(),
            json!({ format!("{port}/tcp"): {} }),
        ),
        (
            "Entrypoint".to_owned(),
            json!([format!("/usr/local/bin/{name}")]),
        ),
    ])
}

/// The image's whole file system: the binary, the host's CA bundle, the user database and an
/// empty `/tmp`, nothing else.
fn root_filesystem(app: App, binary: &Path) -> anyhow::Result<Vec<u8>> {
    let certs = host_ca_bundle()?;
    let binary_data =
        std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    let mut tar = Tar::default();
    for dir in [
        "etc",
        "etc/ssl",
        "etc/ssl/certs",
        "usr",
        "usr/local",
        "usr/local/bin",
    ] {
        tar.dir(dir, 0o755);
    }
    tar.dir("tmp", 0o1777);
    tar.file("etc/passwd", false, PASSWD.as_bytes().to_vec());
    tar.file("etc/group", false, GROUP.as_bytes().to_vec());
    tar.file("etc/ssl/certs/ca-certificates.crt", false, certs);
    tar.file(&format!("usr/local/bin/{}", app.name()), true, binary_data);
    tar.into_bytes()
}

/// The host's CA certificates, from the first of [`HOST_CA_BUNDLES`] that exists.
fn host_ca_bundle() -> anyhow::Result<Vec<u8>> {
    for path in HOST_CA_BUNDLES {
        match std::fs::read(path) {
            Ok(certs) => return Ok(certs),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("reading {path}")),
        }
    }
    bail!(
        "no CA certificates found (looked for {}), and the images need them; install them with `sudo apt-get install ca-certificates` (or your system's ca-certificates package)",
        HOST_CA_BUNDLES.join(", ")
    )
}

/// The variable that sets cargo's linker for `target`, as cargo spells it.
fn linker_var(target: &str) -> String {
    format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_ascii_uppercase().replace('-', "_")
    )
}

/// Builds every app's static binary on the host for `platform`, streaming cargo's messages to
/// `on_progress`, and returns where cargo put `app`'s. One build for all apps compiles their
/// shared dependencies once, with one set of features: an app at a time, cargo compiled 70 of
/// web's 270 crates a second time after the API's (measured on this workspace).
///
/// rust-lld (shipped with the toolchain) links, unless the developer chose a linker with
/// cargo's variable: off the platform's own host the system's C linker would produce a binary
/// for the host, and on it rust-lld links the watch loop's one-line change in 1.6 s where `cc`
/// takes 2.2 s (measured on the API). The same linker for every build keeps the dependencies'
/// compiled form shared: cargo rebuilds every crate when the linker changes.
async fn cargo_build(
    ctx: &Context,
    app: App,
    platform: Platform,
    profile: Profile,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<PathBuf> {
    let name = app.name();
    let target = platform.musl_target();
    let mut cmd = ctx.cargo().current_dir(ctx.root()).args([
        "build",
        "--profile",
        Profile::CARGO_PROFILE,
        "--locked",
        "--target",
        target,
    ]);
    for app in App::ALL {
        cmd = cmd.args(["--package", app.name(), "--bin", app.name()]);
    }
    cmd = cmd.args([
        // Artifacts and diagnostics as JSON on stdout (where the binary is, which errors);
        // cargo's own progress as text on stderr.
        "--message-format=json",
        "--color=never",
    ]);
    for setting in profile.cargo_config() {
        cmd = cmd.args(["--config", setting]);
    }
    let linker = linker_var(target);
    if std::env::var_os(&linker).is_none() {
        cmd = cmd.env(&linker, "rust-lld");
    }
    on_progress(&format!("$ {cmd}"));
    let mut child = cmd.spawn_piped(ctx.ui())?;
    let stdout = child
        .stdout
        .take()
        .context("cargo's output was not captured")?;
    let stderr = child
        .stderr
        .take()
        .context("cargo's messages were not captured")?;
    let mut stdout = BufReader::new(stdout).lines();
    let mut stderr = BufReader::new(stderr).lines();
    let mut executable = None;
    let mut errors = Vec::new();
    let mut messages = Relay::new(on_progress, 20);
    let (mut stdout_open, mut stderr_open) = (true, true);
    while stdout_open || stderr_open {
        tokio::select! {
            line = stdout.next_line(), if stdout_open => {
                match line.context("reading cargo's output")? {
                    Some(line) => match compiler_error(&line) {
                        Some(error) => errors.push(error),
                        None => executable = executable.or_else(|| built_executable(&line, name)),
                    },
                    None => stdout_open = false,
                }
            }
            line = stderr.next_line(), if stderr_open => {
                match line.context("reading cargo's messages")? {
                    Some(line) => messages.line(line),
                    None => stderr_open = false,
                }
            }
        }
    }
    let status = child
        .wait()
        .await
        .with_context(|| format!("waiting for `{cmd}`"))?;
    if !status.success() {
        if let Some(((package, first), rest)) = errors.split_first() {
            return Err(CompileError {
                app,
                package: package.clone(),
                first: first.clone(),
                more: rest.len(),
            }
            .into());
        }
        bail!("`{cmd}` failed ({status}):\n{}", messages.last_lines());
    }
    executable.with_context(|| format!("`{cmd}` reported no {name} executable"))
}

/// The code of an app does not compile: rustc's first error as it renders it, and how many
/// more there are (the rest usually follow from the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompileError {
    /// The app being built.
    pub(crate) app: App,
    /// The package that failed: the app's own, or one it is built with.
    pub(crate) package: String,
    /// The first error, in full, as rustc renders it.
    pub(crate) first: String,
    /// How many errors follow it.
    pub(crate) more: usize,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} does not compile:\n{}",
            self.package,
            self.first.trim_end()
        )?;
        match self.more {
            0 => Ok(()),
            1 => write!(f, "\n(and 1 more error)"),
            more => write!(f, "\n(and {more} more errors)"),
        }
    }
}

impl std::error::Error for CompileError {}

/// The crate and the rendered text of an error in a `compiler-message` of cargo; not rustc's
/// closing "aborting due to N previous errors", which is a count, not an error.
fn compiler_error(line: &str) -> Option<(String, String)> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    let diagnostic = &message["message"];
    if message["reason"] != "compiler-message"
        || diagnostic["level"] != "error"
        || diagnostic["message"]
            .as_str()
            .is_some_and(|text| text.starts_with("aborting due to"))
    {
        return None;
    }
    let crate_name = message["target"]["name"].as_str().unwrap_or("the code");
    let rendered = diagnostic["rendered"].as_str()?;
    Some((crate_name.to_owned(), rendered.to_owned()))
}

/// The executable path in a `compiler-artifact` message of cargo for the binary `name`.
fn built_executable(line: &str, name: &str) -> Option<PathBuf> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-artifact" || message["target"]["name"] != name {
        return None;
    }
    message["executable"].as_str().map(PathBuf::from)
}

#[cfg(test)]
mod cross_tests;

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use bollard::models::ContainerCreateBody;
    use bollard::query_parameters::{
        CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
        LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
    };
    use futures_util::StreamExt as _;

    use super::*;

    #[test]
    fn cargo_artifact_messages_give_the_binary_of_the_app_only() {
        let bin = r#"{"reason":"compiler-artifact","target":{"name":"api","kind":["bin"]},"executable":"/t/release/api"}"#;
        let lib = r#"{"reason":"compiler-artifact","target":{"name":"api","kind":["lib"]},"executable":null}"#;
        let other = r#"{"reason":"compiler-artifact","target":{"name":"web","kind":["bin"]},"executable":"/t/web"}"#;
        assert_eq!(
            built_executable(bin, "api"),
            Some(PathBuf::from("/t/release/api"))
        );
        assert_eq!(built_executable(lib, "api"), None);
        assert_eq!(built_executable(other, "api"), None);
        assert_eq!(
            built_executable(r#"{"reason":"build-finished","success":true}"#, "api"),
            None
        );
        assert_eq!(built_executable("Compiling api", "api"), None);
    }

    #[test]
    fn compile_errors_are_read_from_cargos_messages_and_the_count_is_not_one() {
        // As cargo 1.95 prints them with `--message-format=json` (abridged: cargo's
        // `compiler-message` wraps rustc's JSON diagnostic, whose `rendered` is the text).
        let error = r#"{"reason":"compiler-message","package_id":"path+file:///w/contract#0.1.0","manifest_path":"/w/contract/Cargo.toml","target":{"kind":["lib"],"crate_types":["lib"],"name":"contract","src_path":"/w/contract/src/lib.rs","edition":"2024","doc":true,"doctest":true,"test":true},"message":{"rendered":"error[E0425]: cannot find value `x` in this scope\n --> contract/src/lib.rs:3:5\n  |\n3 |     x\n  |     ^ not found in this scope\n\n","$message_type":"diagnostic","children":[],"level":"error","message":"cannot find value `x` in this scope","spans":[],"code":{"code":"E0425","explanation":null}}}"#;
        let warning = r#"{"reason":"compiler-message","message":{"rendered":"warning: unused variable\n","level":"warning","message":"unused variable","spans":[],"children":[],"code":null}}"#;
        let aborting = r#"{"reason":"compiler-message","message":{"rendered":"error: aborting due to 2 previous errors\n\n","level":"error","message":"aborting due to 2 previous errors","spans":[],"children":[],"code":null}}"#;
        let (package, first) = compiler_error(error).unwrap();
        assert_eq!(
            package, "contract",
            "the crate that failed, not the app asked for"
        );
        assert!(
            first.starts_with("error[E0425]: cannot find value `x`"),
            "{first}"
        );
        assert!(first.contains("--> contract/src/lib.rs:3:5"), "{first}");
        assert_eq!(compiler_error(warning), None);
        assert_eq!(compiler_error(aborting), None);
        assert_eq!(compiler_error("   Compiling api v0.1.0"), None);

        let shown = CompileError {
            app: App::Api,
            package,
            first,
            more: 2,
        }
        .to_string();
        assert!(
            shown.starts_with("contract does not compile:\nerror[E0425]"),
            "{shown}"
        );
        assert!(shown.ends_with("\n(and 2 more errors)"), "{shown}");
    }

    #[test]
    fn the_image_runs_the_binary_as_the_numeric_non_root_user_on_all_interfaces() {
        let api = serde_json::Value::Object(run_settings(App::Api));
        assert_eq!(api["User"], "65532:65532");
        assert_eq!(api["Entrypoint"], serde_json::json!(["/usr/local/bin/api"]));
        assert_eq!(api["Env"][1], "API_ADDR=0.0.0.0:8080");
        assert_eq!(api["ExposedPorts"], serde_json::json!({ "8080/tcp": {} }));
        let web = serde_json::Value::Object(run_settings(App::Web));
        assert_eq!(web["Env"][1], "WEB_ADDR=0.0.0.0:3000");
        assert!(PASSWD.contains(":65532:65532:") && GROUP.contains(":65532:"));
    }

    /// The label that marks what these tests create, so that clean-up finds all of it.
    const TEST_LABEL: &str = "dev.wander.test";

    fn test_labels(test: &str) -> HashMap<String, String> {
        HashMap::from([(TEST_LABEL.to_owned(), test.to_owned())])
    }

    /// Removes every container and image a test labelled, whatever state it left them in.
    async fn remove_labelled(docker: &Docker, test: &str) {
        let filter = HashMap::from([("label", vec![format!("{TEST_LABEL}={test}")])]);
        let containers = docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filter)
                    .build(),
            ))
            .await
            .unwrap();
        for container in containers {
            let id = container.id.unwrap();
            let options = RemoveContainerOptionsBuilder::default().force(true).build();
            docker.remove_container(&id, Some(options)).await.unwrap();
        }
        let images = docker
            .list_images(Some(
                ListImagesOptionsBuilder::default().filters(&filter).build(),
            ))
            .await
            .unwrap();
        for image in images {
            let options = RemoveImageOptionsBuilder::default().force(true).build();
            docker
                .remove_image(&image.id, Some(options), None)
                .await
                .unwrap();
        }
    }

    /// Collects progress lines, for tests to look at what a call did.
    #[derive(Default)]
    struct Transcript(Mutex<Vec<String>>);

    impl Transcript {
        fn record(&self, line: &str) {
            self.0.lock().unwrap().push(line.to_owned());
        }

        fn lines(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    /// Creates (without starting) a labelled container of `image`.
    async fn create(
        docker: &Docker,
        test: &str,
        image: &str,
        entrypoint: Option<Vec<String>>,
        env: Vec<String>,
    ) -> String {
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            entrypoint,
            env: Some(env),
            labels: Some(test_labels(test)),
            host_config: Some(bollard::models::HostConfig {
                network_mode: Some("none".to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().build();
        docker
            .create_container(Some(options), body)
            .await
            .unwrap()
            .id
    }

    /// The container's output so far.
    async fn logs(docker: &Docker, id: &str) -> String {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .build();
        let chunks: Vec<_> = docker.logs(id, Some(options)).collect().await;
        chunks
            .into_iter()
            .filter_map(Result::ok)
            .map(|chunk| chunk.to_string())
            .collect()
    }

    /// Waits up to 60 s for the container's output to contain `needle`; returns the output.
    async fn wait_for_log(docker: &Docker, id: &str, needle: &str) -> String {
        let mut output = String::new();
        for _ in 0..120 {
            output = logs(docker, id).await;
            if output.contains(needle) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        output
    }

    /// Builds `app` under a test name, checks the image's shape, that a second call reuses it
    /// without cargo, and that its binary runs; returns the logs of the running container.
    async fn build_check_and_run(
        docker: &Docker,
        app: App,
        test: &str,
        env: Vec<String>,
        expected_log: &str,
    ) -> String {
        let ctx = crate::context::Context::for_tests();
        let build = Build {
            repository: format!("wander-xtask-test/{}-{}", app.name(), std::process::id()),
            platform: Platform::of(docker).await.unwrap(),
            profile: Profile::Optimised,
            extra_labels: test_labels(test),
        };
        let repository = &build.repository;

        // Progress goes to stderr as well, timed: when this is slow, the test's output says why.
        let started = std::time::Instant::now();
        let first = Transcript::default();
        let image = ensure(&ctx, docker, app, &build, &|line| {
            eprintln!("[{:>7.1?}] {line}", started.elapsed());
            first.record(line);
        })
        .await
        .unwrap();
        assert!(image.built);
        assert!(image.reference.starts_with(&format!("{repository}:")));
        let lines = first.lines();
        assert!(
            lines.iter().any(|line| line.starts_with("$ cargo build")),
            "{lines:#?}"
        );

        let second = Transcript::default();
        let looked = std::time::Instant::now();
        let again = ensure(&ctx, docker, app, &build, &|line| {
            second.record(line);
        })
        .await
        .unwrap();
        eprintln!("{} found again in {:?}", image.reference, looked.elapsed());
        assert_eq!(again.reference, image.reference);
        assert!(!again.built);
        assert!(second.lines().is_empty(), "{:#?}", second.lines());

        let inspect = docker.inspect_image(&image.reference).await.unwrap();
        let config = inspect.config.unwrap();
        assert_eq!(config.user.as_deref(), Some(USER));
        let size = inspect.size.unwrap();
        eprintln!("{} is {size} bytes", image.reference);
        assert!(size < 25_000_000, "{} is {size} bytes", image.reference);
        let labels = config.labels.unwrap();
        assert_eq!(labels["dev.wander.app"], app.name());
        assert!(
            image
                .reference
                .ends_with(&labels["dev.wander.inputs"][..12])
        );

        // No shell: a container told to run one cannot start.
        let shell = create(
            docker,
            test,
            &image.reference,
            Some(vec!["/bin/sh".into()]),
            vec![],
        )
        .await;
        let err = docker.start_container(&shell, None).await.unwrap_err();
        assert!(err.to_string().contains("/bin/sh"), "{err}");

        // The binary runs (a static executable, not an exec or format error).
        let id = create(docker, test, &image.reference, None, env).await;
        docker.start_container(&id, None).await.unwrap();
        let output = wait_for_log(docker, &id, expected_log).await;
        assert!(output.contains(expected_log), "{output}");
        output
    }

    #[tokio::test]
    async fn without_the_musl_target_the_dockerfile_is_built_or_the_error_says_what_to_do() {
        let docker = crate::docker::connect().await.unwrap();
        let root = crate::context::Context::for_tests().root().to_owned();
        let test = "images-app-fallback";
        let reference = format!("wander-xtask-test/fallback-{}:x", std::process::id());
        let transcript = Transcript::default();
        let result = dockerfile_build(
            &docker,
            &root,
            App::Api,
            &reference,
            &test_labels(test),
            Platform::LinuxAmd64,
            &|line| transcript.record(line),
        )
        .await;
        remove_labelled(&docker, test).await;
        let lines = transcript.lines();
        assert!(lines[0].contains("api/Dockerfile"), "{lines:#?}");
        assert!(
            lines
                .iter()
                .any(|line| line.contains("FROM rust:1.95-bookworm")),
            "{lines:#?}"
        );
        // No registry is reachable here; where one is, the build must succeed.
        if let Err(err) = result {
            let message = format!("{err:#}");
            assert!(
                message.contains("rustup target add x86_64-unknown-linux-musl")
                    && message.contains("make the registry reachable"),
                "{message}"
            );
        }
    }

    #[tokio::test]
    async fn the_api_image_is_small_static_non_root_and_reused_when_nothing_changed() {
        let docker = crate::docker::connect().await.unwrap();
        let test = "images-app-api";
        let run = tokio::spawn({
            let docker = docker.clone();
            async move {
                // No database is reachable (no network): the API must say so and keep trying.
                build_check_and_run(
                    &docker,
                    App::Api,
                    test,
                    vec!["API_ADDR=0.0.0.0:8080".into()],
                    "waiting for PostgreSQL",
                )
                .await
            }
        })
        .await;
        remove_labelled(&docker, test).await;
        run.unwrap();
    }

    #[tokio::test]
    async fn the_web_image_listens_on_all_interfaces_by_default() {
        let docker = crate::docker::connect().await.unwrap();
        let test = "images-app-web";
        let run = tokio::spawn({
            let docker = docker.clone();
            async move { build_check_and_run(&docker, App::Web, test, vec![], "listening").await }
        })
        .await;
        remove_labelled(&docker, test).await;
        let output = run.unwrap();
        assert!(output.contains("0.0.0.0:3000"), "{output}");
    }
}
