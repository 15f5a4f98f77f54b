//! The JSON log lines (`LOG_FORMAT=json`), written by a layer made for them: the same lines, field
//! for field, as tracing-subscriber's JSON formatter with the settings the services used
//! (`flatten_event`, the current span, no span list), for less work per line.
//!
//! That formatter stores a span's fields as a JSON document and parses it back into a map for
//! every line written inside the span (the access line of every request), and builds each line
//! through serde's generic machinery. Here a span keeps its fields already rendered, sorted by
//! name as that formatter sorts them, and each line is written straight into a reused buffer,
//! then handed to the writer in one piece. The test module holds the output to
//! tracing-subscriber's own, line by line.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Writes one JSON object per event to `W`.
#[derive(Debug)]
pub struct JsonLayer<W> {
    writer: W,
}

impl<W> JsonLayer<W> {
    /// A layer writing its lines to `writer`.
    pub fn new(writer: W) -> Self {
        Self { writer }
    }
}

/// A span's fields, rendered as JSON values, sorted by name, each name once (the last value
/// recorded wins), as tracing-subscriber keeps them.
#[derive(Debug, Default)]
struct SpanFields(Vec<(&'static str, String)>);

impl SpanFields {
    fn insert(&mut self, name: &'static str, value: String) {
        match self.0.binary_search_by(|(key, _)| key.cmp(&name)) {
            Ok(index) => self.0[index].1 = value,
            Err(index) => self.0.insert(index, (name, value)),
        }
    }
}

/// Records a span's fields as tracing-subscriber's span visitor does: `r#` stripped from raw
/// identifiers, fields of the `log` crate's records left out, anything else by its type.
impl Visit for SpanFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        let mut rendered = String::new();
        json_debug(&mut rendered, value);
        self.insert(name, rendered);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let mut rendered = String::new();
        json_string(&mut rendered, value);
        self.insert(field.name(), rendered);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field.name(), value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field.name(), value.to_string());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field.name(), value.to_string());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field.name(), json_number(value));
    }
}

/// Appends an event's fields to a line as tracing-serde's map visitor does: in the order they
/// were recorded, names as they are, anything without a JSON type by its `Debug` form.
struct EventFields<'a>(&'a mut String);

impl EventFields<'_> {
    fn key(&mut self, name: &str) {
        self.0.push(',');
        json_string(self.0, name);
        self.0.push(':');
    }
}

impl Visit for EventFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field.name());
        json_debug(self.0, value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field.name());
        json_string(self.0, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field.name());
        let _ = write!(self.0, "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field.name());
        let _ = write!(self.0, "{value}");
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field.name());
        let _ = write!(self.0, "{value}");
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field.name());
        self.0.push_str(&json_number(value));
    }
}

thread_local! {
    /// The line being written, reused so that a line costs no allocation once it has grown.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => self.write_line(&mut line, event, &ctx),
            // A line written while this thread writes one (a writer that logs) starts its own.
            Err(_) => self.write_line(&mut String::new(), event, &ctx),
        });
    }
}

impl<W> JsonLayer<W>
where
    W: for<'a> MakeWriter<'a> + 'static,
{
    /// Formats `event` into `line` (emptied first) and hands it to the writer.
    fn write_line<S>(&self, line: &mut String, event: &Event<'_>, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        line.clear();
        let metadata = event.metadata();
        line.push_str("{\"timestamp\":\"");
        timestamp(line, SystemTime::now());
        line.push_str("\",\"level\":\"");
        line.push_str(metadata.level().as_str());
        line.push('"');
        event.record(&mut EventFields(line));
        line.push_str(",\"target\":");
        json_string(line, metadata.target());
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            line.push_str(",\"span\":{");
            if let Some(fields) = span.extensions().get::<SpanFields>() {
                for (name, value) in &fields.0 {
                    json_string(line, name);
                    line.push(':');
                    line.push_str(value);
                    line.push(',');
                }
            }
            line.push_str("\"name\":");
            json_string(line, span.metadata().name());
            line.push('}');
        }
        line.push_str("}\n");
        let _ = self
            .writer
            .make_writer_for(metadata)
            .write_all(line.as_bytes());
    }
}

/// Appends `value` as a JSON string, escaped as serde_json escapes it.
fn json_string(out: &mut String, value: &str) {
    out.push('"');
    escape(out, value);
    out.push('"');
}

/// Appends `value` escaped for the inside of a JSON string: quotes, backslashes and control
/// characters, by their short form where JSON has one (serde_json's choice); nothing else.
fn escape(out: &mut String, value: &str) {
    let mut start = 0;
    for (index, byte) in value.bytes().enumerate() {
        let short = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&value[start..index]);
        if short.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(short);
        }
        start = index + 1;
    }
    out.push_str(&value[start..]);
}

/// Appends a value's `Debug` form as a JSON string, escaped as it is written.
fn json_debug(out: &mut String, value: &dyn fmt::Debug) {
    /// Escapes what `Debug` writes, piece by piece.
    struct Escaping<'a>(&'a mut String);
    impl fmt::Write for Escaping<'_> {
        fn write_str(&mut self, piece: &str) -> fmt::Result {
            escape(self.0, piece);
            Ok(())
        }
    }
    out.push('"');
    let _ = write!(Escaping(out), "{value:?}");
    out.push('"');
}

/// A number as serde_json writes it: the shortest form that reads back the same, `null` for
/// what JSON cannot hold.
fn json_number(value: f64) -> String {
    serde_json::to_string(&value).unwrap_or_else(|_| "null".to_owned())
}

/// Appends `at` as tracing-subscriber's system-time timer writes it: RFC 3339 in UTC with
/// microseconds, `2026-12-06T13:09:42.820946Z`.
fn timestamp(out: &mut String, at: SystemTime) {
    let (seconds, nanos) = match at.duration_since(UNIX_EPOCH) {
        Ok(since) => (
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            since.subsec_nanos(),
        ),
        Err(before) => {
            let before = before.duration();
            let whole = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            match before.subsec_nanos() {
                0 => (-whole, 0),
                nanos => (-whole - 1, 1_000_000_000 - nanos),
            }
        }
    };
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if year > 9999 {
        let _ = write!(out, "+{year}");
    } else if year < 0 {
        let _ = write!(out, "{year:05}");
    } else {
        let _ = write!(out, "{year:04}");
    }
    let _ = write!(
        out,
        "-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        of_day / 3_600,
        of_day % 3_600 / 60,
        of_day % 60,
        nanos / 1_000
    );
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are in range by construction: a month 1 to 12, a day 1 to 31.
    (year, month as u32, day as u32)
}

#[cfg(test)]
pub(crate) mod tests;
