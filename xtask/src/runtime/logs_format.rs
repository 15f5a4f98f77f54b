//! What both runtimes' `logs` share: the options, `--since`, and how lines are joined from chunks
//! and prefixed with their service's name in a colour of its own.

use std::fmt::Write as _;
use std::time::Duration;

use console::{Color, Style};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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
    /// Our services' JSON lines made readable, or every line as written.
    pub(crate) rendering: Rendering,
}

/// How log lines are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Rendering {
    /// Our services' JSON lines as people read them ([`readable`]); other lines as written.
    #[default]
    Readable,
    /// Every line exactly as written (`logs --raw`).
    Raw,
}

/// The start of the window of lines to show (`--since`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Since {
    /// This long before the logs are asked for.
    Ago(Duration),
    /// This moment.
    At(OffsetDateTime),
}

/// The longest look-back `--since` takes: what the Engine API can express (its `since` is a
/// 32-bit Unix time), and longer than any cluster has lived.
pub(crate) const MAX_SINCE_SECONDS: u64 = i32::MAX as u64;

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
            "`{s}` is out of range; give a time from 1970 to 2038"
        ));
    }
    Ok(Since::At(at))
}

/// Joins chunks into lines.
#[derive(Debug, Default)]
pub(crate) struct LineBuffer {
    partial: Vec<u8>,
}

impl LineBuffer {
    /// Adds a chunk; returns the lines it completed, without their line ending.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
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
    pub(crate) fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.partial.is_empty()).then(|| std::mem::take(&mut self.partial))
    }
}

/// How each line is written: raw, or after a padded label, coloured by its service.
///
/// A label is a service's name, optionally followed by `/` and what tells its sources apart
/// (`api/api-7c9d-x2k4f`); the colour comes from the part before the first `/`, so all of a
/// service's lines share one.
#[derive(Debug)]
pub(crate) struct LineFormat {
    /// `None` writes lines as they are.
    prefix: Option<Prefix>,
    /// Our services' JSON lines rendered for people ([`readable`]); others stay as they are.
    readable: bool,
}

#[derive(Debug)]
struct Prefix {
    width: usize,
    color: bool,
}

impl LineFormat {
    /// Lines as they are, without a label.
    pub(crate) fn plain() -> Self {
        Self {
            prefix: None,
            readable: false,
        }
    }

    /// The same, with the lines shown as `rendering` says.
    pub(crate) fn rendering(self, rendering: Rendering) -> Self {
        Self {
            readable: rendering == Rendering::Readable,
            ..self
        }
    }

    /// Lines after their label, padded to the longest of `labels` (a longer one, known only
    /// later, is written whole), coloured when `color`.
    pub(crate) fn prefixed<'a>(labels: impl IntoIterator<Item = &'a str>, color: bool) -> Self {
        let width = labels
            .into_iter()
            .map(|label| label.chars().count())
            .max()
            .unwrap_or(0);
        Self {
            prefix: Some(Prefix { width, color }),
            readable: false,
        }
    }

    /// Appends one line (without its line ending) to `out`, after `label`.
    pub(crate) fn write(&self, label: &str, line: &[u8], out: &mut Vec<u8>) {
        let rendered = self.readable.then(|| readable(line)).flatten();
        let line = rendered.as_deref().map_or(line, str::as_bytes);
        match &self.prefix {
            None => out.extend_from_slice(line),
            Some(prefix) => {
                // Pad before styling: escape codes would count towards the width otherwise.
                let text = format!("{label:<width$} |", width = prefix.width);
                let service = label.split('/').next().unwrap_or(label);
                let style = Style::new()
                    .fg(service_color(service))
                    .force_styling(prefix.color);
                out.extend_from_slice(style.apply_to(text).to_string().as_bytes());
                out.push(b' ');
                out.extend_from_slice(String::from_utf8_lossy(line).as_bytes());
            }
        }
        out.push(b'\n');
    }
}

/// A JSON line of our services (tracing's JSON format: `timestamp`, `level`, `message`, the
/// fields, the request's span) as people read it: the time of day, the level, the message, then
/// the request's method, path, status and latency, then any other field as `key=value`.
/// `None` for anything else (PostgreSQL's and Redis's lines, a line that is not JSON), which is
/// shown as written.
pub(crate) fn readable(line: &[u8]) -> Option<String> {
    if line.first() != Some(&b'{') {
        return None;
    }
    let serde_json::Value::Object(mut fields) = serde_json::from_slice(line).ok()? else {
        return None;
    };
    let time = fields.remove("timestamp")?;
    let level = fields.remove("level")?;
    let message = fields.remove("message").unwrap_or_default();
    let (time, level) = (time.as_str()?, level.as_str()?);
    // `2026-12-06T03:42:40.081128Z` → `03:42:40.081`.
    let clock = time
        .split_once('T')
        .map_or(time, |(_, clock)| clock.trim_end_matches('Z'));
    let clock: String = clock.chars().take(12).collect();
    let mut text = format!("{clock} {level:<5} {}", plain(&message));
    let span = match fields.remove("span") {
        Some(serde_json::Value::Object(span)) => span,
        _ => serde_json::Map::new(),
    };
    fields.remove("target");
    fields.remove("spans");
    let request: Vec<String> = [
        span.get("method"),
        span.get("path"),
        fields.remove("status").as_ref(),
        fields.remove("latency").as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(plain)
    .collect();
    if !request.is_empty() {
        text.push_str(" · ");
        text.push_str(&request.join(" "));
    }
    for (key, value) in &fields {
        let _ = write!(text, " {key}={}", plain(value));
    }
    Some(text)
}

/// A JSON value as text: a string without its quotes.
fn plain(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
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

/// Options of a plain, non-following read, for tests.
#[cfg(test)]
pub(crate) fn test_options(prefix: bool, color: bool) -> LogOptions {
    LogOptions {
        follow: false,
        since: None,
        tail: None,
        prefix,
        color,
        rendering: Rendering::Readable,
    }
}

/// A writer a test can read while a stream still holds it.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
impl Shared {
    /// What was written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Drives `follow` (a `logs -f` writing here) until `needle` was written, and `settle` more
    /// to see it still follows; panics when it ends by itself or `needle` is not there within
    /// `limit`. Dropping `follow` afterwards is how a follow ends.
    pub(crate) async fn follow_until<T: std::fmt::Debug>(
        &self,
        follow: impl Future<Output = T>,
        needle: &str,
        settle: Duration,
        limit: Duration,
    ) {
        let seen = async {
            while !self.text().contains(needle) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(settle).await;
        };
        tokio::select! {
            result = follow => panic!("following ended by itself: {result:?}, after {:?}", self.text()),
            () = seen => {}
            () = tokio::time::sleep(limit) => panic!("no {needle:?} in {limit:?}: {:?}", self.text()),
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn our_json_lines_read_as_time_level_message_and_the_request() {
        // As the API writes them (tracing-subscriber's JSON format, servicekit's request span).
        let request = br#"{"timestamp":"2026-12-06T03:42:40.081289Z","level":"INFO","message":"finished processing request","latency":"5713 \u03bcs","status":200,"target":"tower_http::trace::on_response","span":{"method":"DELETE","path":"/api/cache","request_id":"382db66e","name":"request"}}"#;
        assert_eq!(
            readable(request).unwrap(),
            "03:42:40.081 INFO  finished processing request · DELETE /api/cache 200 5713 \u{3bc}s"
        );
        let fields = br#"{"timestamp":"2026-12-06T03:42:40.081128Z","level":"WARN","message":"redis health check failed","error":"connection refused","target":"api::routes::health"}"#;
        assert_eq!(
            readable(fields).unwrap(),
            "03:42:40.081 WARN  redis health check failed error=connection refused"
        );
        // PostgreSQL's lines, half a JSON object, a JSON line of someone else's: as written.
        assert_eq!(
            readable(b"2026-12-06 03:42:40 UTC LOG:  checkpoint starting"),
            None
        );
        assert_eq!(readable(br#"{"timestamp":"2026"#), None);
        assert_eq!(readable(br#"{"msg":"hello"}"#), None);
        assert_eq!(readable(b"[1,2]"), None);
    }

    #[test]
    fn the_rendering_is_the_default_and_raw_keeps_the_line() {
        let line = br#"{"timestamp":"2026-12-06T03:42:40.081Z","level":"INFO","message":"listening","addr":"0.0.0.0:8080"}"#;
        let mut out = Vec::new();
        LineFormat::plain()
            .rendering(Rendering::Readable)
            .write("api", line, &mut out);
        assert_eq!(out, b"03:42:40.081 INFO  listening addr=0.0.0.0:8080\n");
        let mut out = Vec::new();
        LineFormat::plain()
            .rendering(Rendering::Raw)
            .write("api", line, &mut out);
        assert_eq!(out, [line.as_slice(), b"\n"].concat());
    }

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

    fn render(format: &LineFormat, label: &str, line: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        format.write(label, line, &mut out);
        out
    }

    #[test]
    fn without_prefix_a_line_gets_its_bytes_back_unchanged() {
        let format = LineFormat::plain();
        assert_eq!(render(&format, "api", b"a\xffb"), b"a\xffb\n");
    }

    #[test]
    fn prefixes_are_padded_to_the_longest_name_and_bytes_made_valid() {
        let format = LineFormat::prefixed(["api", "postgres"], false);
        assert_eq!(render(&format, "api", b"ready"), b"api      | ready\n");
        assert_eq!(render(&format, "postgres", b"ok"), b"postgres | ok\n");
        assert_eq!(
            String::from_utf8(render(&format, "api", b"bad \xff byte")).unwrap(),
            "api      | bad \u{fffd} byte\n"
        );
    }

    #[test]
    fn prefixes_are_coloured_only_when_asked() {
        let plain = LineFormat::prefixed(["api"], false);
        assert_eq!(render(&plain, "api", b"x"), b"api | x\n");
        let coloured = LineFormat::prefixed(["api"], true);
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

    #[test]
    fn a_label_with_a_pod_takes_its_services_colour_and_a_longer_one_is_not_cut() {
        let format = LineFormat::prefixed(["api", "postgres"], true);
        let service = String::from_utf8(render(&format, "api", b"x")).unwrap();
        let pod = String::from_utf8(render(&format, "api/api-7c9d-x2k4f", b"x")).unwrap();
        let colour_of = |line: &str| line[..line.find('a').unwrap()].to_owned();
        assert_eq!(colour_of(&service), colour_of(&pod));
        assert_eq!(console::strip_ansi_codes(&pod), "api/api-7c9d-x2k4f | x\n");
    }
}
