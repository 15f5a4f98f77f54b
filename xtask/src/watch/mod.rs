//! `cargo xtask dev --watch`: after `dev`, stays attached. Each burst of saved files becomes one
//! cycle: the apps whose image inputs changed are rebuilt (in the quick `dev-loop` profile) and
//! replaced alone through the runtime interface; a manifest change re-applies the stack, which
//! replaces only the workloads whose spec changed; a changed seed is loaded again. Every
//! service's logs stream meanwhile, and each cycle ends with one line: what changed, what was
//! done, and the time from the save to the new version answering.
//!
//! A failure ends the cycle, not the loop: a compile error shows rustc's first error and leaves
//! the running version serving; a new version that does not get ready shows its last lines and
//! whether the old one serves again. The next save tries again.

pub(crate) mod burst;
pub(crate) mod inputs;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use crate::context::Context;
use crate::images::app::{self, App, CompileError};
use crate::runtime::logs_format::{LogOptions, Rendering, Since};
use crate::runtime::report::{Change, UpOptions};
use crate::ui::human_duration;
use burst::{Burst, FileWatcher};
use inputs::{Inputs, Touched};

/// How long the logs wait before following again once their stream ended.
const LOGS_AGAIN: Duration = Duration::from_secs(1);

/// Watches until Ctrl-C (which the caller turns into exit code 130). `images` are the local
/// images the stack runs, as `up` reported them.
pub(crate) async fn watch(
    ctx: &Context,
    options: &UpOptions,
    images: BTreeMap<String, String>,
) -> anyhow::Result<ExitCode> {
    let inputs = Inputs::read(ctx)?;
    let mut watcher = FileWatcher::start(&inputs.watched())?;
    ctx.ui().outcome(format!(
        "watching the sources of {}, manifests/ and db/ (Ctrl-C stops watching; the stack stays up)",
        App::ALL.map(App::name).join(", ")
    ));
    let mut images = images;
    let cycles = async {
        while let Some(burst) = watcher.next_burst().await {
            let touched = inputs.touched(burst.paths.iter().map(std::path::PathBuf::as_path));
            if !touched.is_empty() {
                cycle(ctx, options, &burst, &touched, &mut images).await;
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    };
    tokio::select! {
        done = cycles => done,
        () = logs_in_view(ctx) => unreachable!("the logs follow until the watch ends"),
    }
}

/// Every service's logs with their coloured prefixes, on stdout, from now on, followed again
/// whenever their stream ends (a runtime restarted, the engine hiccuped).
async fn logs_in_view(ctx: &Context) {
    let mut since = time::OffsetDateTime::now_utc();
    loop {
        let options = LogOptions {
            follow: true,
            since: Some(Since::At(since)),
            tail: None,
            prefix: true,
            color: console::colors_enabled(),
            rendering: Rendering::Readable,
        };
        let mut out = std::io::stdout();
        if let Err(err) = ctx.runtime().logs(ctx, None, &options, &mut out).await {
            ctx.ui().progress(format!("logs: {err:#}; following again"));
        }
        since = time::OffsetDateTime::now_utc();
        tokio::time::sleep(LOGS_AGAIN).await;
    }
}

/// One cycle, reported on one line (or an error and the line that says what still serves).
async fn cycle(
    ctx: &Context,
    options: &UpOptions,
    burst: &Burst,
    touched: &Touched,
    images: &mut BTreeMap<String, String>,
) {
    let step = ctx.ui().step(changed_files(touched));
    let done = async {
        let mut done = Vec::new();
        for &app in &touched.apps {
            done.extend(rebuild(ctx, options, app, images, &step.reporter()).await?);
        }
        if touched.manifests {
            step.sub("applying manifests/");
            let quiet = ctx.quiet();
            let up = Box::pin(quiet.runtime().up(&quiet, options)).await?;
            *images = up.images;
            done.push(format!(
                "manifests applied ({} of {} services changed)",
                up.changed, up.total
            ));
        }
        if touched.seed {
            step.sub("loading the seed");
            let quiet = ctx.quiet();
            quiet.runtime().seed(&quiet, false).await?;
            done.push("seed loaded".to_owned());
        }
        anyhow::Ok(done)
    };
    match done.await {
        Ok(done) => {
            let what = if done.is_empty() {
                "nothing to rebuild".to_owned()
            } else {
                done.join(" · ")
            };
            step.done(format!(
                "{what} · {} from the save",
                human_duration(burst.first_seen.elapsed())
            ));
        }
        Err(err) => {
            step.fail();
            report_failure(ctx, &err);
        }
    }
}

/// Rebuilds `app`'s image; when it changed, replaces every workload that runs it. What was done,
/// one entry per workload (none when the image did not change).
async fn rebuild(
    ctx: &Context,
    options: &UpOptions,
    app: App,
    images: &mut BTreeMap<String, String>,
    on_progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Vec<String>> {
    on_progress(&format!("building {}", app.name()));
    let docker = crate::docker::connect().await?;
    let building = std::time::Instant::now();
    let image = app::ensure_app(ctx, &docker, app, options.profile, on_progress).await?;
    let built = building.elapsed();
    let ours: Vec<String> = images
        .iter()
        .filter(|(manifest, local)| {
            App::from_manifest_image(manifest) == Some(app) && **local != image.reference
        })
        .map(|(manifest, _)| manifest.clone())
        .collect();
    if ours.is_empty() {
        return Ok(vec![format!("{} unchanged", app.name())]);
    }
    for manifest in &ours {
        images.insert(manifest.clone(), image.reference.clone());
    }
    let stack = ctx.config().load_stack()?;
    let mut done = Vec::new();
    for workload in stack
        .workloads
        .iter()
        .filter(|w| w.images().iter().any(|i| ours.contains(i)))
    {
        let wanted: BTreeMap<String, String> = workload
            .images()
            .into_iter()
            .filter_map(|i| images.get(&i).map(|local| (i, local.clone())))
            .collect();
        let replacing = std::time::Instant::now();
        let replaced = ctx
            .runtime()
            .replace(
                ctx,
                &workload.name,
                Change::Images(&wanted),
                options.timeout,
                on_progress,
            )
            .await?;
        done.push(if replaced.changed {
            format!(
                "{} rebuilt and replaced · {} (build {}, replace {})",
                workload.name,
                replaced.detail,
                human_duration(built),
                human_duration(replacing.elapsed())
            )
        } else {
            // Back to what runs already (a failed version undone): nothing to replace.
            format!("{} already runs this build", workload.name)
        });
    }
    Ok(done)
}

/// The step's title: the changed file, or the first and how many more.
fn changed_files(touched: &Touched) -> String {
    // An editor's temporary files are gone by the end of a save: only the saved files count,
    // unless files were only removed.
    let (files, what) = if touched.files.is_empty() {
        (&touched.gone, "removed")
    } else {
        (&touched.files, "changed")
    };
    let mut files = files.iter();
    let first = files.next().map_or("", String::as_str);
    match files.len() {
        0 => format!("{first} {what}"),
        more => format!("{first} and {more} more {what}"),
    }
}

/// A failed cycle: a compile error as rustc wrote it, with the promise the loop keeps; any
/// other failure with its chain (which says what still serves).
fn report_failure(ctx: &Context, err: &anyhow::Error) {
    let ui = ctx.ui();
    if let Some(compile) = err.downcast_ref::<CompileError>() {
        ui.warn(format!(
            "{compile}\nthe running {} keeps serving; save a fix to try again",
            compile.app.name()
        ));
    } else {
        ui.warn(format!("{err:#}\nsave again to retry"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touched(files: &[&str], gone: &[&str]) -> Touched {
        Touched {
            files: files.iter().map(|f| (*f).to_owned()).collect(),
            gone: gone.iter().map(|f| (*f).to_owned()).collect(),
            ..Touched::default()
        }
    }

    #[test]
    fn a_cycle_names_the_saved_files_not_the_editors_temporary_ones() {
        let save = touched(&["api/src/lib.rs"], &["api/src/.lib.rs.tmp4913"]);
        assert_eq!(changed_files(&save), "api/src/lib.rs changed");
        let two = touched(&["api/src/a.rs", "api/src/b.rs"], &[]);
        assert_eq!(changed_files(&two), "api/src/a.rs and 1 more changed");
        let removed = touched(&[], &["api/src/old.rs"]);
        assert_eq!(changed_files(&removed), "api/src/old.rs removed");
    }
}
