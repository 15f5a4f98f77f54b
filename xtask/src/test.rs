//! `cargo xtask test`: the one test command. Makes sure a Docker engine runs, starts throwaway
//! PostgreSQL and Redis, runs the workspace's tests against them, and stops them again whatever
//! happens.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use testkit::{PG_URL_ENV, PostgresServer, REDIS_URL_ENV, RedisServer};

use crate::cmd::{Cmd, Finished};
use crate::context::Context;
use crate::interrupt::{EXIT_INTERRUPTED, Interrupt};
use crate::ui::Ui;

/// How long the test runner may take to wind down after Ctrl-C before it is killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(30);

/// How long a dockerd started for the run may take to answer.
const ENGINE_START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a dockerd started for the run may take to stop after SIGTERM (it gives running
/// containers 15 s) before it is killed.
const ENGINE_STOP_GRACE: Duration = Duration::from_secs(25);

/// The log of a dockerd started for the run, relative to the repository root.
const ENGINE_LOG: &str = "target/dockerd.log";

/// The nextest profile (in `.config/nextest.toml`) used when the `CI` variable is set.
const CI_PROFILE: &str = "ci";

/// Cargo's settings for a CI run of `cargo xtask test` (its steps, the images it prepares, and
/// the builds its tests make, which inherit them), where every build is the first of a clean
/// clone on a small disk: no incremental compilation state (gigabytes that no later build
/// reads), and line tables only in the test binaries (backtraces keep their files and lines,
/// the binaries lose half their size).
const CI_BUILD_SETTINGS: [(&str, &str); 2] = [
    ("CARGO_INCREMENTAL", "0"),
    ("CARGO_PROFILE_DEV_DEBUG", "line-tables-only"),
];

/// The [`CI_BUILD_SETTINGS`] to give cargo, given the environment's variables.
fn ci_build_settings(
    var: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Vec<(&'static str, &'static str)> {
    if var("CI").is_none() {
        return Vec::new();
    }
    CI_BUILD_SETTINGS
        .into_iter()
        .filter(|(name, _)| var(name).is_none())
        .collect()
}

/// Options of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Arguments for the test runner, after `--`: package selection (`-p api`), filters
    /// (`-E 'test(health)'`), `--no-capture`, ...
    #[arg(last = true, value_name = "RUNNER_ARGS")]
    pub(crate) runner_args: Vec<String>,
}

/// Which program runs the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runner {
    /// cargo-nextest: a process per test, which the per-test databases and fault tests assume.
    Nextest,
    /// Plain `cargo test`, when cargo-nextest is not installed (it runs doc tests itself).
    CargoTest,
}

/// Runs every step even after one fails, then stops the servers; exits with the first failing
/// step's code (1 for a stale `api/.sqlx` or images that would not build), or 130 on Ctrl-C.
pub(crate) fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let ctx = &ctx
        .clone()
        .with_cargo_env(ci_build_settings(|name| std::env::var_os(name)));
    let ui = ctx.ui();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let _entered = runtime.enter();
    let mut interrupt = Interrupt::listen()?;
    let steps = plan(ctx, &args.runner_args)?;

    // Dropping a server stops it and deletes its files: every early return below tears down.
    // The engine goes first and is dropped last: a dockerd started here is stopped at the end.
    let engine = provision(
        ui,
        "the Docker engine",
        || DockerEngine::ensure(ctx, &runtime),
        DockerEngine::describe,
    );
    if interrupt.is_requested() {
        return Ok(interrupted(ui));
    }
    let mut engine = engine?;
    let postgres = provision(
        ui,
        "PostgreSQL",
        PostgresServer::start,
        PostgresServer::admin_url,
    );
    if interrupt.is_requested() {
        return Ok(interrupted(ui));
    }
    let mut postgres = postgres?;
    let redis = provision(ui, "Redis", RedisServer::start, RedisServer::url);
    if interrupt.is_requested() {
        return Ok(interrupted(ui));
    }
    let mut redis = redis?;

    let mut first_failure = None;
    // A full run (as in CI) also proves the committed query data is current.
    if args.runner_args.is_empty() {
        let started = Instant::now();
        match crate::sqlx_prepare::check(ctx, &runtime, &postgres.admin_url()) {
            Ok(()) => ui.progress(format!(
                "api/.sqlx is up to date ({:.1?})",
                started.elapsed()
            )),
            Err(err) => {
                ui.progress_error(format!("{err:#}"));
                first_failure = Some(1);
            }
        }
    }
    // The Docker tests run the stack's real images: building them here, once and in view,
    // keeps a cold build (minutes) out of every single test's time limit.
    let started = Instant::now();
    let prepared = runtime.block_on(async {
        tokio::select! {
            result = prepare_images(ctx) => Some(result),
            () = interrupt.requested() => None,
        }
    });
    match prepared {
        None => {
            let code = interrupted(ui);
            teardown(ui, &mut postgres, &mut redis);
            return Ok(code);
        }
        Some(Ok(summary)) => ui.progress(format!(
            "the stack's images are ready: {summary} ({:.1?})",
            started.elapsed()
        )),
        Some(Err(err)) => {
            ui.progress_error(format!("preparing the stack's images: {err:#}"));
            first_failure = first_failure.or(Some(1));
        }
    }
    for step in steps {
        let step = step
            .env(PG_URL_ENV, postgres.admin_url())
            .env(REDIS_URL_ENV, redis.url());
        ui.progress(format!("running `{step}`"));
        let started = Instant::now();
        let finished =
            runtime.block_on(step.run_interruptible(ctx.ui(), &mut interrupt, INTERRUPT_GRACE))?;
        let Finished::Exited(status) = finished else {
            let code = interrupted(ui);
            teardown(ui, &mut postgres, &mut redis);
            return Ok(code);
        };
        let code = exit_code(status);
        let exited = format!("`{step}` exited with {code} ({:.1?})", started.elapsed());
        // A failing step is a failure quiet mode shows; a passing one is progress.
        if code == 0 {
            ui.progress(exited);
        } else {
            ui.outcome(exited);
        }
        first_failure = first_failure.or((code != 0).then_some(code));
    }

    teardown(ui, &mut postgres, &mut redis);
    engine.stop();
    Ok(ExitCode::from(first_failure.unwrap_or(0)))
}

/// Builds (or finds) every image of the stack and the toolbox image, and says which.
async fn prepare_images(ctx: &Context) -> anyhow::Result<String> {
    let docker = crate::docker::connect().await?;
    let stack = crate::stack::Stack::load(&ctx.root().join("manifests"))?;
    let ui = ctx.ui();
    let progress = |line: &str| {
        if ui.verbose() {
            ui.progress(format!("  {line}"));
        }
    };
    ui.progress("preparing the stack's images (the first time: minutes of compiling)");
    let notice = |line: &str| ui.progress(format!("  {line}"));
    crate::images::app::build_binaries(ctx, &progress).await?;
    let images = crate::images::resolve_stack(
        ctx,
        &docker,
        &stack,
        crate::images::app::Profile::Optimised,
        &progress,
        &notice,
    )
    .await?;
    let toolbox = crate::images::toolbox::ensure_toolbox(&docker, &progress).await?;
    let mut names: Vec<String> = images.into_values().map(|image| image.reference).collect();
    names.push(toolbox.reference);
    Ok(names.join(", "))
}

/// Decides what to run before any server is started, so a missing tool fails fast.
fn plan(ctx: &Context, user: &[String]) -> anyhow::Result<Vec<Cmd>> {
    let in_root = |cmd: Cmd| cmd.current_dir(ctx.root());
    let runner = detect_runner(ctx)?;
    let mut steps = Vec::new();
    match runner {
        Runner::Nextest => {
            // nextest does not run doc tests. They go first so that the run ends on nextest's
            // summary, and only over packages with a library, which `cargo test --doc` demands.
            let libraries = library_packages(ctx)?;
            match doc_test_args(user, &libraries) {
                Some(args) => steps.push(in_root(ctx.cargo().args(args))),
                None => ctx
                    .ui()
                    .progress("no library among the packages tested: no doc tests to run"),
            }
        }
        Runner::CargoTest => ctx.ui().progress(
            "cargo-nextest is not installed (`cargo xtask setup` installs it): using `cargo test`",
        ),
    }
    // The dashboard's browser test runs the real `api` binary next to `web`'s. The whole
    // workspace's run builds it; one narrowed to `-p web` would not (nor rebuild a stale one).
    if narrowed(user) {
        steps.push(in_root(
            ctx.cargo()
                .args(["build", "--quiet", "-p", "api", "--bin", "api"]),
        ));
    }
    let mut tests = in_root(ctx.cargo().args(runner_args(runner, user)));
    if runner == Runner::Nextest
        && let Some(profile) = nextest_profile(
            std::env::var_os("CI").as_deref(),
            std::env::var_os("NEXTEST_PROFILE").as_deref(),
        )
    {
        tests = tests.env("NEXTEST_PROFILE", profile);
    }
    steps.push(tests);
    Ok(steps)
}

/// Starts one server, printing one line with how long it took (`bench` starts its servers so too).
pub(crate) fn provision<T>(
    ui: &Ui,
    what: &str,
    start: impl FnOnce() -> anyhow::Result<T>,
    address: impl FnOnce(&T) -> String,
) -> anyhow::Result<T> {
    let started = Instant::now();
    let server = start().with_context(|| format!("starting {what}"))?;
    ui.progress(format!(
        "{what} ready at {} ({:.1?})",
        address(&server),
        started.elapsed()
    ));
    Ok(server)
}

/// Stops both servers, reporting (not failing on) a server that would not stop cleanly: the
/// drop that follows kills it anyway.
fn teardown(ui: &Ui, postgres: &mut PostgresServer, redis: &mut RedisServer) {
    let started = Instant::now();
    if let Err(err) = postgres.stop() {
        ui.progress_warn(format!("{err:#}"));
    }
    if let Err(err) = redis.stop() {
        ui.progress_warn(format!("{err:#}"));
    }
    ui.progress(format!(
        "PostgreSQL and Redis stopped ({:.1?})",
        started.elapsed()
    ));
}

/// What to do about the Docker engine, decided from what was found.
#[derive(Debug, PartialEq, Eq)]
enum EngineAction {
    /// It answers: use it, and leave it running afterwards.
    UseRunning,
    /// Start this dockerd for the run.
    Start(PathBuf),
    /// Nothing can be done here; the message says what the user can do.
    Fail(String),
}

/// Decides what to do about the engine: start `dockerd` only when it is not answering, we are
/// root, it is installed, and no setting (`DOCKER_HOST`, a Docker context, a rootless socket)
/// chose another engine than the system's, which is then named in `chosen`.
fn engine_action(
    answers: Result<(), String>,
    is_root: bool,
    chosen: Option<&str>,
    dockerd: Option<PathBuf>,
) -> EngineAction {
    let Err(why) = answers else {
        return EngineAction::UseRunning;
    };
    if let Some(chosen) = chosen {
        return EngineAction::Fail(format!(
            "{why} ({chosen} is the engine to use, so none is started here; unset DOCKER_HOST and DOCKER_CONTEXT, or `docker context use default`, to use the local one)"
        ));
    }
    if !is_root {
        return EngineAction::Fail(format!(
            "{why} (`cargo xtask test` starts dockerd itself only when run as root)"
        ));
    }
    match dockerd {
        Some(path) => EngineAction::Start(path),
        None => EngineAction::Fail(format!(
            "{why} (dockerd is not installed: `cargo xtask setup` installs docker.io)"
        )),
    }
}

/// The Docker engine of the run: the one that was running already, or a dockerd started for the
/// run, which [`DockerEngine::stop`] (or dropping it) stops again.
#[derive(Debug)]
struct DockerEngine {
    started: Option<Child>,
    log: PathBuf,
    /// Where stopping a dockerd started for the run is reported.
    ui: Ui,
}

impl DockerEngine {
    fn ensure(ctx: &Context, runtime: &tokio::runtime::Runtime) -> anyhow::Result<Self> {
        let log = ctx.root().join(ENGINE_LOG);
        let ui = ctx.ui().clone();
        let answers = runtime
            .block_on(crate::docker::connect())
            .map(drop)
            .map_err(|err| format!("{err:#}"));
        let chosen = match crate::docker::endpoint::resolve() {
            Ok(endpoint) if endpoint.source == crate::docker::endpoint::Source::Default => None,
            Ok(endpoint) => Some(endpoint.describe()),
            Err(err) => Some(format!("{err:#}")),
        };
        let action = engine_action(
            answers,
            nix::unistd::geteuid().is_root(),
            chosen.as_deref(),
            which::which("dockerd").ok(),
        );
        let dockerd = match action {
            EngineAction::UseRunning => {
                return Ok(Self {
                    started: None,
                    log,
                    ui,
                });
            }
            EngineAction::Fail(message) => bail!("{message}"),
            EngineAction::Start(dockerd) => dockerd,
        };
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let stderr = file
            .try_clone()
            .with_context(|| format!("opening {}", log.display()))?;
        ui.progress(format!(
            "the Docker engine is not running: starting dockerd (log: {ENGINE_LOG})"
        ));
        let child = Cmd::new(dockerd).spawn(ctx.ui(), file, stderr)?;
        let mut engine = Self {
            started: Some(child),
            log,
            ui,
        };
        engine.wait_until_answering(runtime)?;
        Ok(engine)
    }

    /// Polls the new dockerd until it answers a ping; an error with its last log lines when it
    /// exits or stays silent for [`ENGINE_START_TIMEOUT`] (it is stopped then).
    fn wait_until_answering(&mut self, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
        let deadline = Instant::now() + ENGINE_START_TIMEOUT;
        loop {
            if runtime.block_on(crate::docker::connect()).is_ok() {
                return Ok(());
            }
            let exited = match self.started.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Err(err)) => Some(err.to_string()),
                _ => None,
            };
            if let Some(how) = exited {
                self.started = None;
                bail!(
                    "dockerd exited at once ({how}); the end of {}:\n{}",
                    self.log.display(),
                    log_tail(&self.log)
                );
            }
            if Instant::now() >= deadline {
                self.stop();
                bail!(
                    "dockerd did not answer within {}s, so it was stopped; the end of {}:\n{}",
                    ENGINE_START_TIMEOUT.as_secs(),
                    self.log.display(),
                    log_tail(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Where the engine is and whether it was started for the run.
    fn describe(&self) -> String {
        let target = crate::docker::describe_endpoint();
        if self.started.is_some() {
            format!("{target} (dockerd started for this run)")
        } else {
            target
        }
    }

    /// Stops a dockerd started for the run (SIGTERM, which also stops its containers, then
    /// SIGKILL after [`ENGINE_STOP_GRACE`]); an engine that was running already is left alone.
    fn stop(&mut self) {
        let Some(mut child) = self.started.take() else {
            return;
        };
        let started = Instant::now();
        match stop_child(&mut child, ENGINE_STOP_GRACE) {
            Ok(_) => self.ui.progress(format!(
                "the Docker engine started for this run stopped ({:.1?})",
                started.elapsed()
            )),
            Err(err) => self.ui.progress_warn(format!("stopping dockerd: {err}")),
        }
    }
}

impl Drop for DockerEngine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends SIGTERM and waits up to `grace` for the child to exit, then kills it.
fn stop_child(child: &mut Child, grace: Duration) -> std::io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    // ESRCH: it ended meanwhile, which is fine.
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill()?;
    child.wait()
}

/// The last lines of a log file, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Reports Ctrl-C (also in quiet mode) and returns the exit code for it. The caller stops the
/// servers, or lets them drop, which stops them too.
fn interrupted(ui: &Ui) -> ExitCode {
    ui.outcome("interrupted");
    ExitCode::from(EXIT_INTERRUPTED)
}

fn detect_runner(ctx: &Context) -> anyhow::Result<Runner> {
    let probe = Cmd::cargo()
        .args(["nextest", "--version"])
        .output(ctx.ui())?;
    Ok(if probe.status.success() {
        Runner::Nextest
    } else {
        Runner::CargoTest
    })
}

/// The workspace packages that have a library target (only those can have doc tests).
fn library_packages(ctx: &Context) -> anyhow::Result<Vec<String>> {
    let output = Cmd::cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(ctx.root())
        .output(ctx.ui())?;
    if !output.status.success() {
        bail!(
            "`cargo metadata` failed, so the workspace cannot be tested:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse_library_packages(&output.stdout).context("reading the output of `cargo metadata`")
}

fn parse_library_packages(metadata: &[u8]) -> anyhow::Result<Vec<String>> {
    let metadata: serde_json::Value = serde_json::from_slice(metadata)?;
    let packages = metadata["packages"]
        .as_array()
        .context("no `packages` list")?;
    let has_library = |package: &serde_json::Value| {
        package["targets"].as_array().is_some_and(|targets| {
            targets.iter().any(|target| {
                target["kind"].as_array().is_some_and(|kinds| {
                    kinds
                        .iter()
                        .any(|kind| matches!(kind.as_str(), Some("lib" | "proc-macro")))
                })
            })
        })
    };
    packages
        .iter()
        .filter(|package| has_library(package))
        .map(|package| {
            package["name"]
                .as_str()
                .map(str::to_owned)
                .context("a package without a name")
        })
        .collect()
}

/// The runner's command line: the whole workspace unless the user picked packages, never
/// stopping at the first failure, then the user's own arguments.
fn runner_args(runner: Runner, user: &[String]) -> Vec<String> {
    let mut args: Vec<String> = match runner {
        Runner::Nextest => vec!["nextest".into(), "run".into()],
        Runner::CargoTest => vec!["test".into()],
    };
    if selected_packages(user).is_empty() && !user_args(user).any(is_workspace_flag) {
        args.push("--workspace".into());
    }
    args.push("--no-fail-fast".into());
    args.extend(user.iter().cloned());
    args
}

/// `cargo test --doc` over the tested packages that have a library, or `None` when none has.
/// Without `-p` it selects as the test run does (`--workspace`, less the user's `--exclude`s), so
/// that cargo resolves the dependencies' features as for the tests and compiles them once for
/// both: over the libraries alone, it would build the whole dependency tree a second time.
fn doc_test_args(user: &[String], libraries: &[String]) -> Option<Vec<String>> {
    let mut args: Vec<String> = vec!["test".into(), "--doc".into(), "--no-fail-fast".into()];
    let selected = selected_packages(user);
    if selected.is_empty() {
        let excluded = excluded_packages(user);
        if libraries.iter().all(|name| excluded.contains(name)) {
            return None;
        }
        args.push("--workspace".into());
        for package in excluded {
            args.extend(["--exclude".to_owned(), package]);
        }
        return Some(args);
    }
    // A selection that is not a plain name (`api@0.1.0`, a glob) is kept for cargo to resolve.
    let is_plain_name = |spec: &str| {
        spec.chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    };
    let packages: Vec<String> = selected
        .into_iter()
        .filter(|spec| !is_plain_name(spec) || libraries.contains(spec))
        .collect();
    if packages.is_empty() {
        return None;
    }
    for package in packages {
        args.extend(["-p".to_owned(), package]);
    }
    Some(args)
}

/// Whether the user narrowed the packages tested (`-p`, `--exclude`).
fn narrowed(user: &[String]) -> bool {
    !selected_packages(user).is_empty() || !excluded_packages(user).is_empty()
}

/// The user's arguments that belong to cargo (before a `--`, after which they are the tests').
fn user_args(user: &[String]) -> impl Iterator<Item = &str> {
    user.iter()
        .map(String::as_str)
        .take_while(|arg| *arg != "--")
}

fn is_workspace_flag(arg: &str) -> bool {
    matches!(arg, "--workspace" | "--all")
}

/// The values of `-p`/`--package` in the user's arguments, in every spelling cargo accepts.
fn selected_packages(user: &[String]) -> Vec<String> {
    option_values(user, &["-p", "--package"])
}

/// The values of `--exclude` in the user's arguments.
fn excluded_packages(user: &[String]) -> Vec<String> {
    option_values(user, &["--exclude"])
}

/// The values given to any of `names` (`-p x`, `-px`, `--package x`, `--package=x`).
fn option_values(user: &[String], names: &[&str]) -> Vec<String> {
    let mut values = Vec::new();
    let mut args = user_args(user);
    while let Some(arg) = args.next() {
        for name in names {
            if arg == *name {
                values.extend(args.next().map(str::to_owned));
            } else if let Some(value) = arg.strip_prefix(name) {
                let long = name.starts_with("--");
                match value.strip_prefix('=') {
                    Some(value) if long => values.push(value.to_owned()),
                    _ if !long => values.push(value.trim_start_matches('=').to_owned()),
                    _ => {}
                }
            }
        }
    }
    values
}

/// The nextest profile to select: `ci` on CI (the `CI` variable set, as CI services do), unless
/// a profile was chosen explicitly through `NEXTEST_PROFILE`.
fn nextest_profile(ci: Option<&OsStr>, chosen: Option<&OsStr>) -> Option<&'static str> {
    if chosen.is_some_and(|profile| !profile.is_empty()) {
        return None;
    }
    let ci = ci?;
    (!ci.is_empty() && ci != "false" && ci != "0").then_some(CI_PROFILE)
}

/// The exit code to pass on: the runner's own, or 128 + the signal that ended it.
fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        (None, None) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_builds_skip_incremental_state_unless_the_developer_chose() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(var, _)| *var == name)
                    .map(|(_, value)| std::ffi::OsString::from(value))
            }
        };
        assert!(ci_build_settings(env(&[])).is_empty());
        assert_eq!(
            ci_build_settings(env(&[("CI", "true")])),
            CI_BUILD_SETTINGS.to_vec()
        );
        assert_eq!(
            ci_build_settings(env(&[("CI", "1"), ("CARGO_INCREMENTAL", "1")])),
            vec![("CARGO_PROFILE_DEV_DEBUG", "line-tables-only")]
        );
    }

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn dockerd_is_started_only_by_root_when_none_answers_and_none_is_named() {
        let dockerd = || Some(PathBuf::from("/usr/sbin/dockerd"));
        let down = || Err("the Docker daemon is not answering".to_owned());
        assert_eq!(
            engine_action(Ok(()), false, None, None),
            EngineAction::UseRunning
        );
        assert_eq!(
            engine_action(Ok(()), true, Some("tcp://elsewhere:2375"), dockerd()),
            EngineAction::UseRunning
        );
        assert_eq!(
            engine_action(down(), true, None, dockerd()),
            EngineAction::Start(PathBuf::from("/usr/sbin/dockerd"))
        );
        let cases = [
            (false, None, dockerd(), "only when run as root"),
            (true, None, None, "`cargo xtask setup` installs docker.io"),
            (
                true,
                Some("tcp://elsewhere:2375"),
                dockerd(),
                "unset DOCKER_HOST",
            ),
        ];
        for (root, host, dockerd, expected) in cases {
            let EngineAction::Fail(message) = engine_action(down(), root, host, dockerd) else {
                panic!("no failure for root={root} host={host:?}");
            };
            assert!(
                message.starts_with("the Docker daemon is not answering ("),
                "{message}"
            );
            assert!(message.contains(expected), "{message}");
            assert!(
                !message.contains('\n') && !message.ends_with('.'),
                "{message}"
            );
        }
    }

    #[test]
    fn the_whole_workspace_is_tested_by_default_without_stopping_at_a_failure() {
        assert_eq!(
            runner_args(Runner::Nextest, &[]),
            strings(&["nextest", "run", "--workspace", "--no-fail-fast"])
        );
        assert_eq!(
            runner_args(Runner::CargoTest, &[]),
            strings(&["test", "--workspace", "--no-fail-fast"])
        );
    }

    #[test]
    fn user_arguments_follow_and_a_package_choice_replaces_the_workspace() {
        let user = strings(&["-p", "testkit", "-pxtask", "--", "--ignored"]);
        assert_eq!(
            runner_args(Runner::Nextest, &user),
            strings(&[
                "nextest",
                "run",
                "--no-fail-fast",
                "-p",
                "testkit",
                "-pxtask",
                "--",
                "--ignored"
            ])
        );
        let user = strings(&["--exclude", "web", "-E", "test(health)"]);
        assert_eq!(
            runner_args(Runner::Nextest, &user),
            strings(&[
                "nextest",
                "run",
                "--workspace",
                "--no-fail-fast",
                "--exclude",
                "web",
                "-E",
                "test(health)"
            ])
        );
        let user = strings(&["--workspace"]);
        assert_eq!(
            runner_args(Runner::Nextest, &user),
            strings(&["nextest", "run", "--no-fail-fast", "--workspace"])
        );
    }

    #[test]
    fn package_options_are_read_in_every_spelling_and_not_after_the_double_dash() {
        let user = strings(&[
            "-p",
            "a",
            "-pb",
            "-p=c",
            "--package",
            "d",
            "--package=e",
            "--packages-x",
            "--",
            "-p",
            "f",
        ]);
        assert_eq!(
            selected_packages(&user),
            strings(&["a", "b", "c", "d", "e"])
        );
        let user = strings(&["--exclude", "web", "--exclude=api", "--excluded"]);
        assert_eq!(excluded_packages(&user), strings(&["web", "api"]));
    }

    #[test]
    fn doc_tests_cover_the_chosen_packages_that_have_a_library() {
        let libraries = strings(&["api", "testkit"]);
        let args = |user: &[&str]| doc_test_args(&strings(user), &libraries);
        let doc = |rest: &[&str]| {
            Some(strings(
                &[&["test", "--doc", "--no-fail-fast"], rest].concat(),
            ))
        };
        assert_eq!(args(&[]), doc(&["--workspace"]));
        assert_eq!(
            args(&["--workspace", "--exclude", "api"]),
            doc(&["--workspace", "--exclude", "api"])
        );
        assert_eq!(args(&["--exclude", "api", "--exclude=testkit"]), None);
        assert_eq!(
            args(&["-p", "testkit", "-p", "xtask", "-E", "test(x)"]),
            doc(&["-p", "testkit"])
        );
        assert_eq!(args(&["-p", "xtask"]), None);
        assert_eq!(args(&["-p", "api@0.1.0"]), doc(&["-p", "api@0.1.0"]));
    }

    #[test]
    fn only_a_narrowed_run_builds_the_api_binary_apart() {
        assert!(!narrowed(&[]));
        assert!(!narrowed(&strings(&["--workspace", "-E", "test(x)"])));
        assert!(narrowed(&strings(&["-p", "web"])));
        assert!(narrowed(&strings(&["--exclude", "xtask"])));
    }

    #[test]
    fn libraries_are_read_from_cargo_metadata() {
        let metadata = br#"{"packages": [
            {"name": "api", "targets": [{"kind": ["lib"]}, {"kind": ["bin"]}]},
            {"name": "xtask", "targets": [{"kind": ["bin"]}]},
            {"name": "derive", "targets": [{"kind": ["proc-macro"]}]},
            {"name": "testkit", "targets": [{"kind": ["lib"]}, {"kind": ["custom-build"]}]}
        ]}"#;
        assert_eq!(
            parse_library_packages(metadata).unwrap(),
            strings(&["api", "derive", "testkit"])
        );
        assert!(parse_library_packages(b"{}").is_err());
        assert!(parse_library_packages(b"not json").is_err());
    }

    #[test]
    fn the_ci_profile_is_chosen_on_ci_unless_a_profile_was_chosen() {
        let os = |value: &'static str| Some(OsStr::new(value));
        assert_eq!(nextest_profile(None, None), None);
        assert_eq!(nextest_profile(os("true"), None), Some("ci"));
        assert_eq!(nextest_profile(os("1"), None), Some("ci"));
        assert_eq!(nextest_profile(os("false"), None), None);
        assert_eq!(nextest_profile(os(""), None), None);
        assert_eq!(nextest_profile(os("true"), os("default")), None);
        assert_eq!(nextest_profile(os("true"), os("")), Some("ci"));
    }

    #[test]
    fn exit_codes_are_passed_on_and_signals_reported_as_shells_do() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(100 << 8)), 100);
        assert_eq!(exit_code(ExitStatus::from_raw(2)), 130, "killed by SIGINT");
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137, "killed by SIGKILL");
    }
}
