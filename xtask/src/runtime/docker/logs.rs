//! `logs` on the docker runtime: the output of one or more containers merged line by line, each
//! line prefixed with its service's name in a colour of its own.

use std::io::Write;
use std::time::Duration;

use anyhow::Context as _;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use console::{Color, Style};
use futures_util::stream::{self, StreamExt as _};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One container whose output to show, under the name of the service it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The service name that prefixes each line.
    pub(crate) service: String,
    /// The container's id or name.
    pub(crate) container: String,
}

/// What to show and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogOptions {
    /// Keep streaming new lines until the future is dropped.
    pub(crate) follow: bool,
    /// Only lines written at or after this point.
    pub(crate) since: Option<Since>,
    /// Only the last this many lines of each container (before following).
    pub(crate) tail: Option<u64>,
    /// Prefix each line with its service name; always done with more than one target, since
    /// the lines would be anonymous otherwise.
    pub(crate) prefix: bool,
    /// Colour the prefixes (the caller decides from NO_COLOR and whether output is a terminal).
    pub(crate) color: bool,
}

/// The start of the window of lines to show (`--since`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Since {
    /// This long before the logs are asked for.
    Ago(Duration),
    /// This moment.
    At(OffsetDateTime),
}

/// The longest look-back the Engine API can express: its `since` is a 32-bit Unix time.
const MAX_SINCE_SECONDS: u64 = i32::MAX as u64;

/// What `--since` accepts, for error messages.
const SINCE_FORMS: &str =
    "a duration like 30s, 10m, 2h, 1d or an RFC 3339 time like 2024-05-01T12:00:00Z";

/// Parses `--since`: a whole number with a unit (`s`, `m`, `h`, `d`) meaning that long ago, or
/// an RFC 3339 timestamp. Meant as a clap `value_parser`, hence the `String` error.
pub(crate) fn parse_since(input: &str) -> Result<Since, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err(format!("--since is empty; give {SINCE_FORMS}"));
    }
    if s.starts_with('-') {
        return Err(format!(
            "`{s}` is negative; --since looks back, give {SINCE_FORMS}"
        ));
    }
    // Durations never hold a colon; every RFC 3339 time does.
    if s.contains(':') {
        return parse_timestamp(s);
    }
    let Some(unit) = s.chars().last().filter(char::is_ascii_alphabetic) else {
        return Err(if s.chars().all(|c| c.is_ascii_digit()) {
            format!("`{s}` has no unit; add one: {s}s, {s}m, {s}h or {s}d")
        } else {
            format!("`{s}` is not {SINCE_FORMS}")
        });
    };
    let number = &s[..s.len() - 1];
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("`{s}` is not {SINCE_FORMS}"));
    }
    let seconds_per_unit: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => {
            return Err(format!(
                "`{s}` has an unknown unit `{unit}`; use s, m, h or d"
            ));
        }
    };
    let too_long = || {
        format!("`{s}` reaches back too far; the longest is {MAX_SINCE_SECONDS}s (about 68 years)")
    };
    let seconds = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(seconds_per_unit))
        .filter(|&seconds| seconds <= MAX_SINCE_SECONDS)
        .ok_or_else(too_long)?;
    Ok(Since::Ago(Duration::from_secs(seconds)))
}

fn parse_timestamp(s: &str) -> Result<Since, String> {
    let at = OffsetDateTime::parse(s, &Rfc3339).map_err(|err| {
        format!("`{s}` is not an RFC 3339 time like 2024-05-01T12:00:00Z ({err})")
    })?;
    if !(0..=i64::from(i32::MAX)).contains(&at.unix_timestamp()) {
        return Err(format!(
            "`{s}` is out of range; times from 1970 to 2038 can be asked of the engine"
        ));
    }
    Ok(Since::At(at))
}

impl Since {
    /// The Unix time to hand to the engine, for a request made at `now`.
    fn unix_seconds(self, now: OffsetDateTime) -> i32 {
        let seconds = match self {
            Since::Ago(ago) => {
                now.unix_timestamp() - i64::try_from(ago.as_secs()).unwrap_or(i64::MAX)
            }
            Since::At(at) => at.unix_timestamp(),
        };
        // 0 means "from the start" to the engine, which is what anything earlier means too.
        i32::try_from(seconds.max(0)).unwrap_or(i32::MAX)
    }
}

/// Streams the logs of `targets` to `out` (a plain writer, typically our locked stdout: a
/// terminal write is short) until all of them end (without `follow`) or for as
/// long as the future is polled (with `follow`; the caller races it with Ctrl-C).
///
/// Lines keep their order within each container; lines of different containers interleave as
/// they arrive. A line split across chunks is joined first, and one left unfinished when a
/// container's stream ends is still shown.
pub(crate) async fn stream(
    docker: &Docker,
    targets: &[Target],
    opts: &LogOptions,
    out: &mut (impl Write + Send),
) -> anyhow::Result<()> {
    let mut builder = LogsOptionsBuilder::new()
        .follow(opts.follow)
        .stdout(true)
        .stderr(true);
    if let Some(since) = opts.since {
        builder = builder.since(since.unix_seconds(OffsetDateTime::now_utc()));
    }
    if let Some(tail) = opts.tail {
        builder = builder.tail(&tail.to_string());
    }
    let options = builder.build();

    let format = LineFormat::new(targets, opts);
    let mut pending: Vec<Pending> = targets.iter().map(|_| Pending::default()).collect();
    // Each stream ends with a `None`, so that a container's unfinished lines can be flushed.
    let mut merged = stream::select_all(targets.iter().enumerate().map(|(index, target)| {
        docker
            .logs(&target.container, Some(options.clone()))
            .map(Some)
            .chain(stream::once(async { None }))
            .map(move |item| (index, item))
            .boxed()
    }));

    let mut text = Vec::new();
    while let Some((index, item)) = merged.next().await {
        let target = &targets[index];
        let buffers = &mut pending[index];
        match item {
            Some(Ok(LogOutput::StdErr { message })) => {
                for line in buffers.stderr.push(&message) {
                    format.write(&target.service, &line, &mut text);
                }
            }
            Some(Ok(
                LogOutput::StdOut { message }
                | LogOutput::Console { message }
                | LogOutput::StdIn { message },
            )) => {
                for line in buffers.stdout.push(&message) {
                    format.write(&target.service, &line, &mut text);
                }
            }
            Some(Err(err)) => {
                // Show what arrived before the failure, then say which service failed.
                out.write_all(&text).and_then(|()| out.flush()).ok();
                return Err(err).with_context(|| {
                    format!(
                        "reading the logs of {} ({})",
                        target.service, target.container
                    )
                });
            }
            None => {
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
    Ok(())
}

/// The unfinished lines of one container, per stream: a line is only whole at its newline.
#[derive(Debug, Default)]
struct Pending {
    stdout: LineBuffer,
    stderr: LineBuffer,
}

/// Joins chunks into lines.
#[derive(Debug, Default)]
struct LineBuffer {
    partial: Vec<u8>,
}

impl LineBuffer {
    /// Adds a chunk; returns the lines it completed, without their line ending.
    fn push(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&rest[..end]);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            lines.push(line);
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
        lines
    }

    /// The unfinished line, if any, when no more chunks will come.
    fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.partial.is_empty()).then(|| std::mem::take(&mut self.partial))
    }
}

/// How each line is written: raw, or after a padded, possibly coloured service name.
#[derive(Debug)]
struct LineFormat {
    /// `None` writes lines as they are.
    prefix: Option<Prefix>,
}

#[derive(Debug)]
struct Prefix {
    width: usize,
    color: bool,
}

impl LineFormat {
    fn new(targets: &[Target], opts: &LogOptions) -> Self {
        let prefix = (opts.prefix || targets.len() > 1).then(|| Prefix {
            width: targets
                .iter()
                .map(|t| t.service.chars().count())
                .max()
                .unwrap_or(0),
            color: opts.color,
        });
        Self { prefix }
    }

    /// Appends one line (without its line ending) to `out`.
    fn write(&self, service: &str, line: &[u8], out: &mut Vec<u8>) {
        match &self.prefix {
            None => out.extend_from_slice(line),
            Some(prefix) => {
                // Pad before styling: escape codes would count towards the width otherwise.
                let label = format!("{service:<width$} |", width = prefix.width);
                let style = Style::new()
                    .fg(service_color(service))
                    .force_styling(prefix.color);
                out.extend_from_slice(style.apply_to(label).to_string().as_bytes());
                out.push(b' ');
                out.extend_from_slice(String::from_utf8_lossy(line).as_bytes());
            }
        }
        out.push(b'\n');
    }
}

/// The colour of a service's prefix: derived from its name only, so a service keeps its colour
/// whichever services are shown with it.
fn service_color(service: &str) -> Color {
    const PALETTE: [Color; 6] = [
        Color::Cyan,
        Color::Yellow,
        Color::Green,
        Color::Magenta,
        Color::Blue,
        Color::Red,
    ];
    // FNV-1a: tiny, and stable across releases (unlike the standard library's hasher).
    let hash = service
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    PALETTE[(hash % PALETTE.len() as u64) as usize]
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn since_accepts_durations_with_a_unit_and_rfc3339_times() {
        let cases: &[(&str, Since)] = &[
            ("30s", Since::Ago(Duration::from_secs(30))),
            ("0s", Since::Ago(Duration::ZERO)),
            ("10m", Since::Ago(Duration::from_secs(600))),
            ("2h", Since::Ago(Duration::from_secs(7200))),
            ("1d", Since::Ago(Duration::from_secs(86_400))),
            (" 5m ", Since::Ago(Duration::from_secs(300))),
            (
                "2147483647s",
                Since::Ago(Duration::from_secs(2_147_483_647)),
            ),
            (
                "2024-05-01T12:00:00Z",
                Since::At(datetime!(2024-05-01 12:00:00 UTC)),
            ),
            (
                "2024-05-01T14:30:00+02:00",
                Since::At(datetime!(2024-05-01 14:30:00 +02:00)),
            ),
            (
                "2024-05-01t12:00:00.5z",
                Since::At(datetime!(2024-05-01 12:00:00.5 UTC)),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_since(input).as_ref(), Ok(expected), "{input:?}");
        }
    }

    #[test]
    fn since_rejects_what_it_cannot_mean_with_a_message_that_says_why() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("   ", "empty"),
            ("-5m", "negative"),
            ("-2024-05-01T12:00:00Z", "negative"),
            ("10", "no unit"),
            ("10w", "unknown unit `w`"),
            ("m", "not a duration"),
            ("1.5h", "not a duration"),
            ("1h30m", "not a duration"),
            ("+5m", "not a duration"),
            ("ten minutes", "not a duration"),
            ("yesterday", "not a duration"),
            ("2147483648s", "too far"),
            ("99999999999999999999d", "too far"),
            ("999999999999999999d", "too far"),
            ("2024-05-01T12:00:00", "not an RFC 3339 time"),
            ("2024-13-01T12:00:00Z", "not an RFC 3339 time"),
            ("1969-12-31T23:59:59Z", "out of range"),
            ("2100-01-01T00:00:00Z", "out of range"),
        ];
        for (input, expected) in cases {
            let err = parse_since(input).expect_err(input);
            assert!(
                err.contains(expected),
                "{input:?}: {err:?} should say {expected:?}"
            );
            assert!(!err.ends_with('.'), "{err:?}");
        }
    }

    #[test]
    fn since_becomes_the_engines_unix_time() {
        let now = datetime!(2024-05-01 12:00:00 UTC);
        assert_eq!(
            Since::Ago(Duration::from_secs(600)).unix_seconds(now),
            1_714_564_800 - 600
        );
        assert_eq!(
            Since::At(datetime!(2024-05-01 11:00:00 UTC)).unix_seconds(now),
            1_714_564_800 - 3600
        );
        // Further back than 1970 means "everything", which the engine spells 0.
        assert_eq!(
            Since::Ago(Duration::from_secs(MAX_SINCE_SECONDS)).unix_seconds(now),
            0
        );
    }

    #[test]
    fn lines_are_joined_across_chunks_and_split_within_them() {
        let mut buffer = LineBuffer::default();
        assert!(buffer.push(b"hel").is_empty());
        assert_eq!(buffer.push(b"lo\r\nwor"), vec![b"hello".to_vec()]);
        assert_eq!(
            buffer.push(b"ld\n\nlast"),
            vec![b"world".to_vec(), Vec::new()]
        );
        assert_eq!(buffer.finish(), Some(b"last".to_vec()));
        assert_eq!(buffer.finish(), None);
    }

    fn targets(names: &[&str]) -> Vec<Target> {
        names
            .iter()
            .map(|name| Target {
                service: (*name).to_owned(),
                container: format!("wander-{name}"),
            })
            .collect()
    }

    fn options(prefix: bool, color: bool) -> LogOptions {
        LogOptions {
            follow: false,
            since: None,
            tail: None,
            prefix,
            color,
        }
    }

    fn render(format: &LineFormat, service: &str, line: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        format.write(service, line, &mut out);
        out
    }

    #[test]
    fn one_target_without_prefix_gets_its_bytes_back_unchanged() {
        let format = LineFormat::new(&targets(&["api"]), &options(false, true));
        assert_eq!(render(&format, "api", b"a\xffb"), b"a\xffb\n");
    }

    #[test]
    fn prefixes_are_padded_to_the_longest_name_and_bytes_made_valid() {
        let format = LineFormat::new(&targets(&["api", "postgres"]), &options(false, false));
        assert_eq!(render(&format, "api", b"ready"), b"api      | ready\n");
        assert_eq!(render(&format, "postgres", b"ok"), b"postgres | ok\n");
        assert_eq!(
            String::from_utf8(render(&format, "api", b"bad \xff byte")).unwrap(),
            "api      | bad \u{fffd} byte\n"
        );
    }

    #[test]
    fn prefixes_are_coloured_only_when_asked() {
        let plain = LineFormat::new(&targets(&["api"]), &options(true, false));
        assert_eq!(render(&plain, "api", b"x"), b"api | x\n");
        let coloured = LineFormat::new(&targets(&["api"]), &options(true, true));
        let line = String::from_utf8(render(&coloured, "api", b"x")).unwrap();
        assert!(line.starts_with('\u{1b}'), "{line:?}");
        assert_eq!(console::strip_ansi_codes(&line), "api | x\n");
    }

    #[test]
    fn each_service_of_the_stack_has_its_own_stable_colour() {
        let stack = ["postgres", "redis", "api", "web"];
        let colours: Vec<Color> = stack.iter().map(|s| service_color(s)).collect();
        for (i, a) in colours.iter().enumerate() {
            for b in &colours[i + 1..] {
                assert_ne!(a, b, "{stack:?} -> {colours:?}");
            }
        }
        assert_eq!(service_color("api"), service_color("api"));
    }

    // Against the real engine, with toolbox containers.

    use std::sync::{Arc, Mutex};

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

    /// A writer the test can read while the stream still holds it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    #[tokio::test]
    async fn following_shows_new_lines_and_stops_when_the_future_is_dropped() {
        with_engine("logs-follow", |docker, toolbox| async move {
            let script = "echo first; sleep 1; echo second; exec sleep 1000";
            let id = testing::start(&docker, &toolbox, "logs-follow", &["sh", "-c", script]).await;
            let targets = [Target { service: "redis".into(), container: id }];
            let opts = LogOptions { follow: true, ..options(false, false) };
            let out = Shared::default();
            let mut writer = out.clone();
            let follow = stream(&docker, &targets, &opts, &mut writer);
            let seen_second = async {
                while !out.text().contains("second") {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // Still following after the last line: nothing ends it but dropping it.
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            tokio::select! {
                result = follow => panic!("following ended by itself: {result:?}, after {:?}", out.text()),
                () = seen_second => {}
                () = tokio::time::sleep(Duration::from_secs(20)) => panic!("no second line in 20 s: {:?}", out.text()),
            }
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
