//! File events turned into bursts: an editor's save storm or a `git checkout` is one change.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A burst ends once no event came for this long...
pub(crate) const QUIET: Duration = Duration::from_millis(200);
/// ...or this long after its first event, so that a steady trickle still gets built.
pub(crate) const LONGEST: Duration = Duration::from_secs(3);

/// The changed paths of one burst, and when its first change was seen (the save).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Burst {
    pub(crate) paths: BTreeSet<PathBuf>,
    pub(crate) first_seen: Instant,
}

/// The operating system's file watcher over some paths, its events sent to a channel.
pub(crate) struct FileWatcher {
    // Held for its events: dropping it stops the watch (and its thread).
    _watcher: notify::RecommendedWatcher,
    events: mpsc::UnboundedReceiver<PathBuf>,
}

impl std::fmt::Debug for FileWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatcher").finish_non_exhaustive()
    }
}

impl FileWatcher {
    /// Watches each path, recursively where its flag says so.
    pub(crate) fn start(paths: &[(PathBuf, bool)]) -> anyhow::Result<Self> {
        let (send, events) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                // Reads (an editor opening a file, our own hashing) change nothing.
                if matches!(event.kind, EventKind::Access(_)) {
                    return;
                }
                for path in event.paths {
                    let _ = send.send(path);
                }
            })
            .context("starting the file watcher")?;
        for (path, recursive) in paths {
            let mode = if *recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            watcher
                .watch(path, mode)
                .with_context(|| watch_error(path))?;
        }
        Ok(Self {
            _watcher: watcher,
            events,
        })
    }

    /// The next burst of changes.
    pub(crate) async fn next_burst(&mut self) -> Option<Burst> {
        next_burst(&mut self.events, QUIET, LONGEST).await
    }
}

fn watch_error(path: &Path) -> String {
    format!(
        "watching {} (on Linux, too many watches: raise fs.inotify.max_user_watches, e.g. `sudo sysctl fs.inotify.max_user_watches=524288`)",
        path.display()
    )
}

/// Waits for a first change, then takes every change until `quiet` passes without one, or
/// `longest` after the first. `None` once the channel is closed.
pub(crate) async fn next_burst(
    events: &mut mpsc::UnboundedReceiver<PathBuf>,
    quiet: Duration,
    longest: Duration,
) -> Option<Burst> {
    let first = events.recv().await?;
    let first_seen = Instant::now();
    let mut paths = BTreeSet::from([first]);
    let deadline = first_seen + longest;
    loop {
        let until = (Instant::now() + quiet).min(deadline);
        match tokio::time::timeout_at(until, events.recv()).await {
            Ok(Some(path)) => {
                paths.insert(path);
            }
            Ok(None) | Err(_) => return Some(Burst { paths, first_seen }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn twenty_writes_within_a_second_are_one_burst() {
        let (send, mut events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            for i in 0..20 {
                send.send(PathBuf::from(format!("/w/api/src/f{}.rs", i % 3)))
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // Then quiet, then one more: the next burst.
            tokio::time::sleep(Duration::from_secs(1)).await;
            send.send(PathBuf::from("/w/web/src/main.rs")).unwrap();
        });
        let started = Instant::now();
        let burst = next_burst(&mut events, QUIET, LONGEST).await.unwrap();
        assert_eq!(burst.paths.len(), 3, "{burst:?}");
        // It ended one quiet period after the last write, not at the first.
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(950) + QUIET && took < Duration::from_millis(1300),
            "{took:?}"
        );
        let next = next_burst(&mut events, QUIET, LONGEST).await.unwrap();
        assert_eq!(
            next.paths,
            BTreeSet::from([PathBuf::from("/w/web/src/main.rs")])
        );
        // The sender is gone: no more bursts.
        assert_eq!(next_burst(&mut events, QUIET, LONGEST).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_trickle_is_cut_at_the_longest_burst() {
        let (send, mut events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            for i in 0.. {
                if send.send(PathBuf::from(format!("/w/f{i}"))).is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let started = Instant::now();
        let burst = next_burst(&mut events, QUIET, LONGEST).await.unwrap();
        assert_eq!(started.elapsed(), LONGEST);
        assert!((30..=31).contains(&burst.paths.len()), "{burst:?}");
    }

    #[tokio::test]
    async fn the_operating_systems_watcher_reports_a_written_file() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("src");
        std::fs::create_dir(&nested).unwrap();
        let mut watcher = FileWatcher::start(&[(dir.path().to_path_buf(), true)]).unwrap();
        let file = nested.join("lib.rs");
        std::fs::write(&file, "fn a() {}\n").unwrap();
        let burst = tokio::time::timeout(Duration::from_secs(10), watcher.next_burst())
            .await
            .expect("no event within 10 s")
            .unwrap();
        assert!(burst.paths.contains(&file), "{burst:?}");
    }
}
