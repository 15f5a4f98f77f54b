//! `logs` on the docker runtime: the output of one or more containers merged line by line, each
//! line prefixed with its service's name in a colour of its own.

use std::io::Write;

use anyhow::Context as _;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt as _;
use time::OffsetDateTime;

use anyhow::bail;

use super::session::Session;
use crate::context::Context;
use crate::runtime::logs_format::{LineBuffer, LineFormat, LogOptions, Since};
use crate::runtime::secrets::SecretsMode;

/// One container whose output to show, under the name of the service it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The service name that prefixes each line.
    pub(crate) service: String,
    /// The container's id or name.
    pub(crate) container: String,
}

/// The Unix time to hand to the engine for `since`, for a request made at `now`.
fn engine_since(since: Since, now: OffsetDateTime) -> i32 {
    let seconds = match since {
        Since::Ago(ago) => now.unix_timestamp() - i64::try_from(ago.as_secs()).unwrap_or(i64::MAX),
        Since::At(at) => at.unix_timestamp(),
    };
    // 0 means "from the start" to the engine, which is what anything earlier means too.
    i32::try_from(seconds.max(0)).unwrap_or(i32::MAX)
}

/// Streams the logs of `targets` to `out` (a plain writer, typically our locked stdout: a
/// terminal write is short) until all of them end (without `follow`) or for as
/// long as the future is polled (with `follow`; the caller races it with Ctrl-C).
///
/// Lines keep their order within each container; lines of different containers interleave as
/// they arrive. A line split across chunks is joined first, and one left unfinished when a
/// container's stream ends is still shown. When following, a container that is replaced (same
/// name, new container: `restart`, the watch loop, a changed `dev`) or restarted is followed
/// again from the moment its stream ended.
pub(crate) async fn stream(
    docker: &Docker,
    targets: &[Target],
    opts: &LogOptions,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    // More than one container: always prefixed, or the lines would be anonymous.
    let format = if opts.prefix || targets.len() > 1 {
        LineFormat::prefixed(targets.iter().map(|t| t.service.as_str()), opts.color)
    } else {
        LineFormat::plain()
    }
    .rendering(opts.rendering);
    let mut pending: Vec<Pending> = targets.iter().map(|_| Pending::default()).collect();
    let (send, mut received) = tokio::sync::mpsc::channel(64);
    // Dropped with this future (Ctrl-C, the caller moving on): every task is aborted with it.
    let mut tasks = tokio::task::JoinSet::new();
    for (index, target) in targets.iter().enumerate() {
        tasks.spawn(follow_container(
            docker.clone(),
            target.container.clone(),
            opts.clone(),
            index,
            send.clone(),
        ));
    }
    // Only the tasks hold senders now: the channel closes when the last one ends.
    drop(send);

    let mut text = Vec::new();
    while let Some((index, piece)) = received.recv().await {
        let target = &targets[index];
        let buffers = &mut pending[index];
        match piece {
            Piece::Output(LogOutput::StdErr { message }) => {
                for line in buffers.stderr.push(&message) {
                    format.write(&target.service, &line, &mut text);
                }
            }
            Piece::Output(
                LogOutput::StdOut { message }
                | LogOutput::Console { message }
                | LogOutput::StdIn { message },
            ) => {
                for line in buffers.stdout.push(&message) {
                    format.write(&target.service, &line, &mut text);
                }
            }
            Piece::Failed(err) => {
                // Show what arrived before the failure, then say which service failed.
                out.write_all(&text).and_then(|()| out.flush()).ok();
                return Err(err).with_context(|| {
                    format!(
                        "reading the logs of {} ({})",
                        target.service, target.container
                    )
                });
            }
            Piece::End => {
                for line in [buffers.stdout.finish(), buffers.stderr.finish()]
                    .into_iter()
                    .flatten()
                {
                    format.write(&target.service, &line, &mut text);
                }
            }
        }
        if !text.is_empty() {
            out.write_all(&text)
                .and_then(|()| out.flush())
                .context("writing logs to the output")?;
            text.clear();
        }
    }
    drop(tasks);
    Ok(())
}

/// What a container's log task hands to [`stream`].
enum Piece {
    Output(LogOutput),
    /// The stream ended: its unfinished lines are whole now.
    End,
    Failed(bollard::errors::Error),
}

/// How often a followed container whose stream ended is looked for again.
const REATTACH: std::time::Duration = std::time::Duration::from_millis(250);

/// Sends the output of the container `name` as [`Piece`]s. When following, it goes on after
/// the stream ends: once a container of that name runs again (a new one, or this one
/// restarted), its lines are followed from the moment the last stream ended.
async fn follow_container(
    docker: Docker,
    name: String,
    opts: LogOptions,
    index: usize,
    send: tokio::sync::mpsc::Sender<(usize, Piece)>,
) {
    let mut since = opts
        .since
        .map(|s| engine_since(s, OffsetDateTime::now_utc()));
    let mut tail = opts.tail;
    loop {
        let mut builder = LogsOptionsBuilder::new()
            .follow(opts.follow)
            .stdout(true)
            .stderr(true);
        if let Some(since) = since {
            builder = builder.since(since);
        }
        if let Some(tail) = tail {
            builder = builder.tail(&tail.to_string());
        }
        let mut logs = docker.logs(&name, Some(builder.build()));
        while let Some(item) = logs.next().await {
            let piece = match item {
                Ok(output) => Piece::Output(output),
                Err(err) => Piece::Failed(err),
            };
            let failed = matches!(piece, Piece::Failed(_));
            if send.send((index, piece)).await.is_err() || failed {
                return;
            }
        }
        if send.send((index, Piece::End)).await.is_err() || !opts.follow {
            return;
        }
        // Everything up to now was shown: from here on, whichever container runs next.
        let ended = OffsetDateTime::now_utc();
        since = Some(engine_since(Since::At(ended), ended));
        tail = None;
        loop {
            tokio::time::sleep(REATTACH).await;
            if let Ok(details) = docker.inspect_container(&name, None).await
                && super::is_running(&details)
            {
                break;
            }
        }
    }
}

/// The unfinished lines of one container, per stream: a line is only whole at its newline.
#[derive(Debug, Default)]
struct Pending {
    stdout: LineBuffer,
    stderr: LineBuffer,
}

/// The lines of `service`'s container, or of every container of the stack, to `out`; a service
/// the manifests do not know fails before anything is printed.
pub(crate) async fn show(
    ctx: &Context,
    service: Option<&str>,
    options: &LogOptions,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let session = Session::open(ctx, SecretsMode::Existing).await?;
    if let Some(name) = service {
        session.workload(name)?;
    }
    let containers = session.runtime.containers().await?;
    let targets: Vec<Target> = session
        .stack
        .workloads
        .iter()
        .filter(|w| service.is_none_or(|name| name == w.name))
        .filter_map(|w| {
            containers
                .iter()
                .find(|c| c.workload == w.name)
                .map(|c| Target {
                    service: w.name.clone(),
                    container: c.name.clone(),
                })
        })
        .collect();
    if targets.is_empty() {
        bail!("no containers to show logs of: start the stack with `cargo xtask dev`");
    }
    stream(session.runtime.docker(), &targets, options, out).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::macros::datetime;

    use super::*;
    use crate::runtime::logs_format::MAX_SINCE_SECONDS;
    use crate::runtime::logs_format::{Shared, test_options as options};

    #[test]
    fn since_becomes_the_engines_unix_time() {
        let now = datetime!(2024-05-01 12:00:00 UTC);
        assert_eq!(
            engine_since(Since::Ago(Duration::from_secs(600)), now),
            1_714_564_800 - 600
        );
        assert_eq!(
            engine_since(Since::At(datetime!(2024-05-01 11:00:00 UTC)), now),
            1_714_564_800 - 3600
        );
        // Further back than 1970 means "everything", which the engine spells 0.
        assert_eq!(
            engine_since(Since::Ago(Duration::from_secs(MAX_SINCE_SECONDS)), now),
            0
        );
    }

    // Against the real engine, with toolbox containers.

    use crate::images::toolbox::testing::{self, with_engine};

    /// Lines of `output` that start with `prefix`, with it removed.
    fn lines_of<'a>(output: &'a str, prefix: &str) -> Vec<&'a str> {
        output
            .lines()
            .filter_map(|line| line.strip_prefix(prefix))
            .collect()
    }

    async fn logs_of(docker: &Docker, targets: &[Target], opts: &LogOptions) -> String {
        let mut out = Vec::new();
        stream(docker, targets, opts, &mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn logs_of_one_container_hold_both_streams_in_order_and_the_unfinished_last_line() {
        with_engine("logs-one", |docker, toolbox| async move {
            let script = "for i in 1 2 3; do echo out$i; echo err$i >&2; done; printf 'no newline'";
            let id = testing::start(&docker, &toolbox, "logs-one", &["sh", "-c", script]).await;
            testing::wait_exited(&docker, &id).await;
            let target = [Target {
                service: "api".into(),
                container: id,
            }];

            let raw = logs_of(&docker, &target, &options(false, false)).await;
            let mut lines: Vec<&str> = raw.lines().collect();
            assert_eq!(
                lines
                    .iter()
                    .filter(|l| l.starts_with("out"))
                    .copied()
                    .collect::<Vec<_>>(),
                ["out1", "out2", "out3"],
                "{raw}"
            );
            assert_eq!(
                lines
                    .iter()
                    .filter(|l| l.starts_with("err"))
                    .copied()
                    .collect::<Vec<_>>(),
                ["err1", "err2", "err3"],
                "{raw}"
            );
            lines.sort_unstable();
            assert_eq!(
                lines,
                ["err1", "err2", "err3", "no newline", "out1", "out2", "out3"]
            );

            let prefixed = logs_of(&docker, &target, &options(true, false)).await;
            assert_eq!(lines_of(&prefixed, "api | ").len(), 7, "{prefixed}");

            let tail = LogOptions {
                tail: Some(2),
                ..options(false, false)
            };
            let last = logs_of(&docker, &target, &tail).await;
            assert_eq!(last.lines().count(), 2, "{last}");
            assert!(last.contains("no newline"), "{last}");

            let future = LogOptions {
                since: Some(Since::At(
                    OffsetDateTime::now_utc() + Duration::from_secs(3600),
                )),
                ..options(false, false)
            };
            assert_eq!(logs_of(&docker, &target, &future).await, "");
        })
        .await;
    }

    #[tokio::test]
    async fn logs_of_two_containers_are_prefixed_and_keep_each_ones_order() {
        with_engine("logs-two", |docker, toolbox| async move {
            let a = testing::start(&docker, &toolbox, "logs-two", &["sh", "-c", "for i in 1 2 3 4 5; do echo a$i; done; sleep 0.2; echo a-err >&2; sleep 0.2; printf 'bad \\377\\n'"]).await;
            let b = testing::start(&docker, &toolbox, "logs-two", &["sh", "-c", "for i in 1 2 3; do echo b$i; done"]).await;
            testing::wait_exited(&docker, &a).await;
            testing::wait_exited(&docker, &b).await;
            let targets = [
                Target { service: "postgres".into(), container: a },
                Target { service: "web".into(), container: b },
            ];
            let out = logs_of(&docker, &targets, &options(false, false)).await;
            // Stdout and stderr are separate pipes, ordered only by the pauses between them.
            assert_eq!(lines_of(&out, "postgres | "), ["a1", "a2", "a3", "a4", "a5", "a-err", "bad \u{fffd}"], "{out}");
            assert_eq!(lines_of(&out, "web      | "), ["b1", "b2", "b3"], "{out}");
            assert_eq!(out.lines().count(), 10, "{out}");

            let coloured = logs_of(&docker, &targets, &options(true, true)).await;
            assert!(coloured.contains('\u{1b}'), "{coloured}");
            // Lines of different containers interleave as they arrive; each keeps its order.
            let plain = console::strip_ansi_codes(&coloured);
            for prefix in ["postgres | ", "web      | "] {
                assert_eq!(lines_of(&plain, prefix), lines_of(&out, prefix), "{plain}");
            }

            let tail = LogOptions { tail: Some(1), ..options(false, false) };
            let last = logs_of(&docker, &targets, &tail).await;
            assert_eq!(lines_of(&last, "postgres | "), ["bad \u{fffd}"], "{last}");
            assert_eq!(lines_of(&last, "web      | "), ["b3"], "{last}");
        })
        .await;
    }

    #[tokio::test]
    async fn following_shows_new_lines_and_stops_when_the_future_is_dropped() {
        with_engine("logs-follow", |docker, toolbox| async move {
            let script = "echo first; sleep 1; echo second; exec sleep 1000";
            let id = testing::start(&docker, &toolbox, "logs-follow", &["sh", "-c", script]).await;
            let targets = [Target {
                service: "redis".into(),
                container: id,
            }];
            let opts = LogOptions {
                follow: true,
                ..options(false, false)
            };
            let out = Shared::default();
            let mut writer = out.clone();
            let follow = stream(&docker, &targets, &opts, &mut writer);
            // Still following after the last line: nothing ends it but dropping it.
            out.follow_until(
                follow,
                "second",
                Duration::from_millis(500),
                Duration::from_secs(20),
            )
            .await;
            assert_eq!(out.text(), "first\nsecond\n");
        })
        .await;
    }

    #[tokio::test]
    async fn a_missing_container_is_an_error_naming_the_service() {
        with_engine("logs-missing", |docker, _toolbox| async move {
            let targets = [Target {
                service: "api".into(),
                container: "wander-no-such-container".into(),
            }];
            let mut out = Vec::new();
            let err = stream(&docker, &targets, &options(false, false), &mut out)
                .await
                .unwrap_err();
            assert!(format!("{err:#}").contains("logs of api"), "{err:#}");
        })
        .await;
    }
}
