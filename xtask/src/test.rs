//! `cargo xtask test`: the one test command. Starts throwaway PostgreSQL and Redis, runs the
//! workspace's tests against them, and stops them again whatever happens.

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitCode, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use testkit::{PG_URL_ENV, PostgresServer, REDIS_URL_ENV, RedisServer};

use crate::Context;
use crate::cmd::{Cmd, Finished};
use crate::interrupt::{EXIT_INTERRUPTED, Interrupt};

/// How long the test runner may take to wind down after Ctrl-C before it is killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(30);

/// The nextest profile (in `.config/nextest.toml`) used when the `CI` variable is set.
const CI_PROFILE: &str = "ci";

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

pub(crate) fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let _entered = runtime.enter();
    let mut interrupt = Interrupt::listen()?;
    let steps = plan(ctx, &args.runner_args)?;

    // Dropping a server stops it and deletes its files: every early return below tears down.
    let postgres = provision(
        "PostgreSQL",
        PostgresServer::start,
        PostgresServer::admin_url,
    );
    if interrupt.is_requested() {
        return Ok(interrupted());
    }
    let mut postgres = postgres?;
    let redis = provision("Redis", RedisServer::start, RedisServer::url);
    if interrupt.is_requested() {
        return Ok(interrupted());
    }
    let mut redis = redis?;

    let mut first_failure = None;
    // A full run (as in CI) also proves the committed query data is current.
    if args.runner_args.is_empty() {
        let started = Instant::now();
        match crate::sqlx_prepare::check(ctx, &runtime, &postgres.admin_url()) {
            Ok(()) => eprintln!(
                "[xtask] api/.sqlx is up to date ({:.1?})",
                started.elapsed()
            ),
            Err(err) => {
                eprintln!("[xtask] error: {err:#}");
                first_failure = Some(1);
            }
        }
    }
    for step in steps {
        let step = step
            .env(PG_URL_ENV, postgres.admin_url())
            .env(REDIS_URL_ENV, redis.url());
        eprintln!("[xtask] running `{step}`");
        let started = Instant::now();
        let finished =
            runtime.block_on(step.run_interruptible(ctx, &mut interrupt, INTERRUPT_GRACE))?;
        let Finished::Exited(status) = finished else {
            let code = interrupted();
            teardown(&mut postgres, &mut redis);
            return Ok(code);
        };
        let code = exit_code(status);
        eprintln!(
            "[xtask] `{step}` exited with {code} ({:.1?})",
            started.elapsed()
        );
        first_failure = first_failure.or((code != 0).then_some(code));
    }

    teardown(&mut postgres, &mut redis);
    Ok(ExitCode::from(first_failure.unwrap_or(0)))
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
            let packages = doc_test_packages(user, &libraries);
            if packages.is_empty() {
                eprintln!("[xtask] no library among the packages tested: no doc tests to run");
            } else {
                steps.push(in_root(Cmd::cargo().args(doc_test_args(&packages))));
            }
        }
        Runner::CargoTest => eprintln!(
            "[xtask] cargo-nextest is not installed (`cargo xtask setup` installs it): \
             using `cargo test`"
        ),
    }
    // The dashboard's browser test runs the real `api` binary next to `web`'s; a run limited
    // to `-p web` would not build it (nor rebuild a stale one), so build it first.
    steps.push(in_root(
        Cmd::cargo().args(["build", "--quiet", "-p", "api", "--bin", "api"]),
    ));
    let mut tests = in_root(Cmd::cargo().args(runner_args(runner, user)));
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
    what: &str,
    start: impl FnOnce() -> anyhow::Result<T>,
    address: impl FnOnce(&T) -> String,
) -> anyhow::Result<T> {
    let started = Instant::now();
    let server = start().with_context(|| format!("starting {what}"))?;
    eprintln!(
        "[xtask] {what} ready at {} ({:.1?})",
        address(&server),
        started.elapsed()
    );
    Ok(server)
}

/// Stops both servers, reporting (not failing on) a server that would not stop cleanly: the
/// drop that follows kills it anyway.
fn teardown(postgres: &mut PostgresServer, redis: &mut RedisServer) {
    let started = Instant::now();
    if let Err(err) = postgres.stop() {
        eprintln!("[xtask] warning: {err:#}");
    }
    if let Err(err) = redis.stop() {
        eprintln!("[xtask] warning: {err:#}");
    }
    eprintln!(
        "[xtask] PostgreSQL and Redis stopped ({:.1?})",
        started.elapsed()
    );
}

/// Reports Ctrl-C and returns the exit code for it. The caller stops the servers, or lets them
/// drop, which stops them too.
fn interrupted() -> ExitCode {
    eprintln!("[xtask] interrupted");
    ExitCode::from(EXIT_INTERRUPTED)
}

fn detect_runner(ctx: &Context) -> anyhow::Result<Runner> {
    let probe = Cmd::cargo().args(["nextest", "--version"]).output(ctx)?;
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
        .output(ctx)?;
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

/// `cargo test --doc` for `packages`.
fn doc_test_args(packages: &[String]) -> Vec<String> {
    let mut args: Vec<String> = vec!["test".into(), "--doc".into(), "--no-fail-fast".into()];
    for package in packages {
        args.extend(["-p".to_owned(), package.clone()]);
    }
    args
}

/// The packages whose doc tests run: the user's choice (`-p`), or every library of the
/// workspace less `--exclude`d ones; either way only packages that have a library. A selection
/// that is not a plain name (`api@0.1.0`, a glob) is kept for cargo to resolve.
fn doc_test_packages(user: &[String], libraries: &[String]) -> Vec<String> {
    let selected = selected_packages(user);
    if selected.is_empty() {
        let excluded = excluded_packages(user);
        return libraries
            .iter()
            .filter(|name| !excluded.contains(name))
            .cloned()
            .collect();
    }
    let is_plain_name = |spec: &str| {
        spec.chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    };
    selected
        .into_iter()
        .filter(|spec| !is_plain_name(spec) || libraries.contains(spec))
        .collect()
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

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(ToString::to_string).collect()
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
        assert_eq!(doc_test_packages(&[], &libraries), libraries);
        let user = strings(&["--workspace", "--exclude", "api"]);
        assert_eq!(doc_test_packages(&user, &libraries), strings(&["testkit"]));
        let user = strings(&["-p", "testkit", "-p", "xtask", "-E", "test(x)"]);
        assert_eq!(doc_test_packages(&user, &libraries), strings(&["testkit"]));
        let user = strings(&["-p", "xtask"]);
        assert!(doc_test_packages(&user, &libraries).is_empty());
        let user = strings(&["-p", "api@0.1.0"]);
        assert_eq!(
            doc_test_packages(&user, &libraries),
            strings(&["api@0.1.0"])
        );
        assert_eq!(
            doc_test_args(&libraries),
            strings(&[
                "test",
                "--doc",
                "--no-fail-fast",
                "-p",
                "api",
                "-p",
                "testkit"
            ])
        );
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
