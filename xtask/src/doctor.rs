//! `cargo xtask doctor`: runs the prerequisite checks and prints each with its fix.

use std::io::Write;

use anyhow::Context as _;
use console::style;
use serde::Serialize;

use crate::context::Context;
use crate::prereq::{self, Check, Options, Status};

/// Options of `cargo xtask doctor`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print the checks as JSON (for scripts) instead of lines.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `cargo xtask doctor`: exit 0 when nothing failed (warnings allowed), else 1. Ports held by
/// this stack's own containers (or kind nodes) are not conflicts.
pub(crate) async fn command(ctx: &Context, args: Args) -> anyhow::Result<std::process::ExitCode> {
    let kind = ctx.runtime() == crate::runtime::RuntimeKind::Kind;
    let owned_ports = if kind {
        crate::runtime::kind::up::node_host_ports(ctx).await
    } else {
        crate::runtime::docker::session::owned_host_ports(ctx).await
    };
    let (manifests, ports) = prereq::check_manifests(ctx);
    let opts = Options {
        need_kind: kind,
        ports,
        owned_ports,
    };
    let ok = run(
        ctx,
        &opts,
        manifests,
        args.json,
        &mut std::io::stdout().lock(),
    )
    .await?;
    Ok(if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// Runs the checks and prints them (text, or `{"ok":..,"checks":[..]}` with `json`); returns
/// whether none failed. Warnings do not fail: the stack still comes up, only slower or riskier.
/// The exit code is the caller's decision.
pub(crate) async fn run(
    ctx: &Context,
    opts: &Options,
    manifests: Check,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let report = prereq::run_checks(ctx, opts).await;
    let mut checks = vec![manifests];
    checks.extend(report.checks);
    if json {
        render_json(&checks, report.engine.as_ref(), out)?;
    } else {
        render_text(&checks, console::colors_enabled(), out)?;
    }
    Ok(all_ok(&checks))
}

/// Whether no check failed.
fn all_ok(checks: &[Check]) -> bool {
    checks.iter().all(|check| check.status != Status::Fail)
}

/// The machine-readable report: stable field names, `status` as `ok`/`warn`/`fail`, `fix` null
/// when there is nothing to do; `engine` null when no engine could be chosen.
fn render_json(
    checks: &[Check],
    engine: Option<&prereq::Engine>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct Report<'a> {
        ok: bool,
        engine: Option<&'a prereq::Engine>,
        checks: &'a [Check],
    }
    let report = Report {
        ok: all_ok(checks),
        engine,
        checks,
    };
    serde_json::to_writer_pretty(&mut *out, &report).context("writing the doctor report")?;
    writeln!(out).context("writing the doctor report")
}

/// One line per check, the fix indented under a warning or failure, then a summary. With
/// `colors` off (NO_COLOR, not a terminal) the marks are plain words a log can be grepped for.
fn render_text(checks: &[Check], colors: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let width = checks
        .iter()
        .map(|check| check.name.chars().count())
        .max()
        .unwrap_or(0);
    for check in checks {
        let (symbol, word) = match check.status {
            Status::Ok => (style("✓").green(), "ok"),
            Status::Warn => (style("!").yellow().bold(), "warn"),
            Status::Fail => (style("✗").red().bold(), "FAIL"),
        };
        let mark = if colors {
            symbol.force_styling(true).to_string()
        } else {
            format!("{word:<4}")
        };
        let name = style(format!("{:<width$}", check.name))
            .bold()
            .force_styling(colors);
        writeln!(out, "{mark} {name}  {}", check.detail).context("writing the doctor report")?;
        if let Some(fix) = &check.fix {
            let indent = if colors { 2 } else { 5 };
            let fix = style(format!("fix: {fix}")).dim().force_styling(colors);
            writeln!(out, "{:indent$}{fix}", "").context("writing the doctor report")?;
        }
    }
    writeln!(out, "{}", summary(checks)).context("writing the doctor report")
}

/// `all 6 checks passed`, or what failed and what to do next.
fn summary(checks: &[Check]) -> String {
    let count = |status| checks.iter().filter(|check| check.status == status).count();
    let (failed, warned) = (count(Status::Fail), count(Status::Warn));
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match (failed, warned) {
        (0, 0) => format!("all {} passed", plural(checks.len(), "check")),
        (0, warned) => format!(
            "{} passed with {}; the stack can run",
            plural(checks.len(), "check"),
            plural(warned, "warning")
        ),
        (failed, _) => format!(
            "{} failed, {}; apply the fixes above and run `cargo xtask doctor` again",
            plural(failed, "check"),
            plural(warned, "warning")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, status: Status, detail: &str, fix: Option<&str>) -> Check {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
            fix: fix.map(Into::into),
        }
    }

    fn sample() -> Vec<Check> {
        vec![
            check("docker", Status::Ok, "Docker 27.3.1 (API 1.47)", None),
            check(
                "port 8080",
                Status::Fail,
                "port 8080 is held by PID 1234 (node)",
                Some("stop it, or free the port: `kill 1234`"),
            ),
            check(
                "musl target",
                Status::Warn,
                "x86_64-unknown-linux-musl is not installed",
                Some("rustup target add x86_64-unknown-linux-musl"),
            ),
        ]
    }

    fn text(checks: &[Check], colors: bool) -> String {
        let mut out = Vec::new();
        render_text(checks, colors, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_text_has_word_marks_aligned_names_and_indented_fixes() {
        let expected = "\
ok   docker       Docker 27.3.1 (API 1.47)
FAIL port 8080    port 8080 is held by PID 1234 (node)
     fix: stop it, or free the port: `kill 1234`
warn musl target  x86_64-unknown-linux-musl is not installed
     fix: rustup target add x86_64-unknown-linux-musl
1 check failed, 1 warning; apply the fixes above and run `cargo xtask doctor` again
";
        assert_eq!(text(&sample(), false), expected);
    }

    #[test]
    fn coloured_text_uses_symbols_and_escape_codes() {
        let coloured = text(&sample(), true);
        assert!(coloured.contains('✓') && coloured.contains('✗') && coloured.contains('!'));
        assert!(coloured.contains("\u{1b}["), "{coloured:?}");
        assert!(!coloured.contains("FAIL"), "{coloured:?}");
        assert_eq!(
            console::strip_ansi_codes(&coloured).lines().nth(1),
            Some("✗ port 8080    port 8080 is held by PID 1234 (node)")
        );
        assert!(!text(&sample(), false).contains('\u{1b}'));
    }

    #[test]
    fn the_summary_counts_failures_and_warnings() {
        let ok = check("disk", Status::Ok, "plenty", None);
        let warn = check("disk", Status::Warn, "low", Some("free some"));
        let fail = check("disk", Status::Fail, "full", Some("free some"));
        let cases = [
            (vec![ok.clone(), ok.clone()], "all 2 checks passed"),
            (vec![ok.clone()], "all 1 check passed"),
            (
                vec![ok.clone(), warn.clone()],
                "2 checks passed with 1 warning; the stack can run",
            ),
            (
                vec![fail.clone(), fail.clone(), ok],
                "2 checks failed, 0 warnings; apply the fixes above and run `cargo xtask doctor` again",
            ),
        ];
        for (checks, expected) in cases {
            assert_eq!(summary(&checks), expected);
        }
        assert!(all_ok(std::slice::from_ref(&warn)));
        assert!(!all_ok(&[warn, fail]));
    }

    #[test]
    fn json_has_ok_and_every_check_with_lowercase_status() {
        let engine = prereq::Engine {
            endpoint: "unix:///tmp/alt/docker.sock".into(),
            rule: "DOCKER_CONTEXT",
            context: Some("alt".into()),
            platform: Some("linux/arm64".into()),
            apps_platform: Some("linux/arm64".into()),
        };
        let mut out = Vec::new();
        render_json(&sample(), Some(&engine), &mut out).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "ok": false,
                "engine": {"endpoint": "unix:///tmp/alt/docker.sock", "rule": "DOCKER_CONTEXT",
                           "context": "alt", "platform": "linux/arm64", "apps_platform": "linux/arm64"},
                "checks": [
                    {"name": "docker", "status": "ok", "detail": "Docker 27.3.1 (API 1.47)", "fix": null},
                    {"name": "port 8080", "status": "fail", "detail": "port 8080 is held by PID 1234 (node)",
                     "fix": "stop it, or free the port: `kill 1234`"},
                    {"name": "musl target", "status": "warn", "detail": "x86_64-unknown-linux-musl is not installed",
                     "fix": "rustup target add x86_64-unknown-linux-musl"},
                ]
            })
        );
        let mut out = Vec::new();
        render_json(&sample()[..1], None, &mut out).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["ok"], true);
        assert_eq!(value["engine"], serde_json::Value::Null);
    }
}
