//! The layer's lines held to tracing-subscriber's JSON formatter, configured as the services
//! configured it before: both layers see the same events, and every line must match but for the
//! moment it was taken.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing_subscriber::prelude::*;

use super::*;

/// An in-memory writer both layers can write to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Buffer {
    /// What was written, line by line.
    pub(crate) fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// A line with its timestamp replaced, and the timestamp.
fn split_timestamp(line: &str) -> (String, String) {
    let start = line.find("\"timestamp\":\"").unwrap() + "\"timestamp\":\"".len();
    let end = start + line[start..].find('"').unwrap();
    (
        format!("{}…{}", &line[..start], &line[end..]),
        line[start..end].to_owned(),
    )
}

/// Every kind of event and span the services write, and the corners of the format.
fn emit() {
    tracing::info!("outside any span");
    tracing::warn!(
        count = 3,
        ratio = 0.5,
        flag = true,
        below = -7,
        "fields of {} kinds",
        4
    );
    tracing::error!(
        huge = 1e21,
        tiny = 1e-7,
        nan = f64::NAN,
        "numbers as serde writes them"
    );
    tracing::debug!(
        text = "é \"quoted\" \\ \u{1}\t\n\r\u{8}\u{c}\u{7f}",
        "escapes ✓"
    );
    tracing::trace!(value = ?vec![Some("a\"b"), None], shown = %"display\n", "debug and display");
    let request = tracing::info_span!(
        "request",
        method = %"GET",
        path = %"/api/deployments",
        request_id = "2f1c…",
        later = tracing::field::Empty,
    );
    {
        let _entered = request.enter();
        tracing::info!(id = 5_u64, service = "analytics", "deployment recorded");
        request.record("later", 9);
        tracing::info!(
            latency = %format_args!("{} μs", 120),
            status = 200,
            "finished processing request"
        );
        let inner = tracing::info_span!("inner", r#type = "raw", zeta = 1, alpha = ?(1, 2));
        inner.in_scope(|| tracing::info!("the innermost span is the one shown"));
        let quiet = tracing::info_span!("quiet");
        quiet.in_scope(|| tracing::info!("a span without fields"));
    }
    tracing::info!(parent: &request, "an explicit parent, not entered");
    tracing::info!(message = "a message given as a field", extra = 1);
}

#[test]
fn every_line_is_the_json_formatters_line_but_for_its_timestamp() {
    let ours = Buffer::default();
    let theirs = Buffer::default();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(theirs.clone()),
        )
        .with(JsonLayer::new(ours.clone()));
    tracing::subscriber::with_default(subscriber, emit);

    let (ours, theirs) = (ours.lines(), theirs.lines());
    assert_eq!(ours.len(), 11, "{ours:#?}");
    assert_eq!(ours.len(), theirs.len());
    for (mine, expected) in ours.iter().zip(&theirs) {
        let (mine, my_time) = split_timestamp(mine);
        let (expected, their_time) = split_timestamp(expected);
        assert_eq!(mine, expected);
        // The same shape, a moment apart.
        assert_eq!(my_time.len(), their_time.len(), "{my_time} {their_time}");
        assert_eq!(my_time[..17], their_time[..17], "{my_time} {their_time}");
    }
    // The lines are JSON, and the raw identifier lost its `r#` in the span.
    let inner: serde_json::Value = serde_json::from_str(&theirs[7]).unwrap();
    assert_eq!(inner["span"]["type"], "raw");
}

fn formatted(at: SystemTime) -> String {
    let mut out = String::new();
    timestamp(&mut out, at);
    out
}

#[test]
fn timestamps_are_rfc3339_in_utc_with_microseconds() {
    let at = |seconds: u64, nanos: u32| UNIX_EPOCH + Duration::new(seconds, nanos);
    for (moment, expected) in [
        (at(0, 0), "1970-01-01T00:00:00.000000Z"),
        (at(951_782_400, 0), "2000-02-29T00:00:00.000000Z"),
        (
            at(1_700_000_000, 123_456_789),
            "2023-11-14T22:13:20.123456Z",
        ),
        (
            at(1_798_761_599, 999_999_999),
            "2026-12-31T23:59:59.999999Z",
        ),
        (at(253_402_300_799, 0), "9999-12-31T23:59:59.000000Z"),
        (at(253_402_300_800, 0), "+10000-01-01T00:00:00.000000Z"),
        (
            UNIX_EPOCH - Duration::new(1, 500_000_000),
            "1969-12-31T23:59:58.500000Z",
        ),
    ] {
        assert_eq!(formatted(moment), expected);
    }
    // Every day of four centuries lands on the next date after the day before.
    let mut previous = civil_from_days(-1);
    for days in 0..146_097 {
        let date = civil_from_days(days);
        let next_day = (previous.0, previous.1, previous.2 + 1);
        let next_month = (previous.0, previous.1 + 1, 1);
        let next_year = (previous.0 + 1, 1, 1);
        assert!(
            date == next_day || date == next_month || date == next_year,
            "{previous:?} then {date:?}"
        );
        previous = date;
    }
    assert_eq!(previous, (2369, 12, 31));
}

#[test]
fn strings_are_escaped_as_serde_json_escapes_them() {
    let mut all = String::new();
    for code in 0_u32..0x300 {
        all.push(char::from_u32(code).unwrap());
    }
    all.push_str("\u{2028}\u{fffd}😀");
    let mut ours = String::new();
    json_string(&mut ours, &all);
    assert_eq!(ours, serde_json::to_string(&all).unwrap());
}
