//! `cargo xtask dev`: from nothing (or from any earlier state) to a healthy, seeded stack on
//! 127.0.0.1, redoing only what changed.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::images::app::Profile;
use crate::runtime::report::{UpOptions, UpReport};
use crate::ui::human_duration;

/// Options of `cargo xtask dev`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Do not open the dashboard in a browser at the end (never opened without a terminal).
    #[arg(long)]
    pub(crate) no_open: bool,

    /// Stay attached: rebuild and replace what a saved file changes, with every service's logs
    /// in view, until Ctrl-C (which leaves the stack up). Builds the apps in the quick
    /// `dev-loop` profile; a plain `dev` puts the optimised images back.
    #[arg(long)]
    pub(crate) watch: bool,

    /// How long each service may take to become ready, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) timeout: u64,
}

/// Brings the stack up on the runtime chosen, then prints where it answers and opens the
/// dashboard.
pub(crate) async fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let options = UpOptions {
        timeout: Duration::from_secs(args.timeout),
        profile: if args.watch {
            Profile::Loop
        } else {
            Profile::Optimised
        },
    };
    let up = ctx.runtime().up(ctx, &options).await?;
    summary(ctx, &up, started.elapsed());
    open_dashboard(ctx, &args, up.dashboard().as_deref());
    if args.watch {
        return crate::watch::watch(ctx, &options, up.images).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// The closing lines of `dev`: what changed, the URLs, how to go on, and each step's time.
fn summary(ctx: &Context, up: &UpReport, elapsed: Duration) {
    let UpReport {
        urls,
        changed,
        total,
        ..
    } = up;
    let ui = ctx.ui();
    let mut lines = vec![String::new()];
    lines.push(format!(
        "{} the stack is up ({changed} of {total} services changed) in {}",
        ui.paint_green("✓"),
        human_duration(elapsed)
    ));
    for (service, url) in urls {
        lines.push(format!("  {service:<10} {url}"));
    }
    lines.push(format!(
        "  {:<10} `cargo xtask token` (for POST and DELETE)",
        "API token"
    ));
    lines.push(format!(
        "  {:<10} `cargo xtask db-shell`, logs: `cargo xtask logs -f`, stop: `cargo xtask down`",
        "database"
    ));
    let timings: Vec<String> = ui
        .timings()
        .iter()
        .map(|(name, took)| format!("{name} {}", human_duration(*took)))
        .collect();
    lines.push(format!("  {:<10} {}", "timings", timings.join(" · ")));
    eprintln!("{}", lines.join("\n"));
}

/// Opens the dashboard at `url` unless told not to, or with no one at a terminal to see it.
fn open_dashboard(ctx: &Context, args: &Args, url: Option<&str>) {
    if !args.no_open
        && crate::ui::Ui::interactive()
        && std::env::var_os("CI").is_none()
        && let Some(url) = url
    {
        open_browser(ctx, url);
    }
}

fn open_browser(ctx: &Context, url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    if which::which(opener).is_err() {
        ctx.ui().note(format!("open {url} in your browser"));
        return;
    }
    let spawned = crate::cmd::Cmd::new(opener).arg(url).spawn(
        ctx.ui(),
        std::process::Stdio::null(),
        std::process::Stdio::null(),
    );
    if spawned.is_err() {
        ctx.ui().note(format!("open {url} in your browser"));
    }
}
