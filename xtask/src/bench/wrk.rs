//! Reads the text report of `wrk --latency` into numbers, and judges whether they can be trusted.
//!
//! wrk has no machine-readable output without a Lua `done()` hook, and the scenarios that use
//! scripts need theirs for requests; the text report is the same for every run, so we read that.
//! The samples under `xtask/bench/wrk-output/` are real reports the tests below read.

use anyhow::{Context as _, bail};

/// How many failed requests (non-2xx/3xx answers and socket errors together) a run may have per
/// million completed requests before its figures are rejected: a stray timeout in a long run is
/// noise, anything more means the figures describe a broken API.
const TOLERATED_ERRORS_PER_MILLION: u64 = 100;

/// What one wrk run measured.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WrkReport {
    /// Requests that got a complete answer, whatever its status.
    pub(crate) requests: u64,
    /// Completed requests per second over the whole run.
    pub(crate) requests_per_sec: f64,
    /// Latencies in milliseconds.
    pub(crate) latency: Latency,
    /// Answers whose status was not 2xx or 3xx.
    pub(crate) non_success: u64,
    /// Requests that failed at the socket level, so never got an answer.
    pub(crate) socket_errors: SocketErrors,
}

/// Latencies of one run, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Latency {
    pub(crate) mean: f64,
    pub(crate) max: f64,
    pub(crate) p50: f64,
    pub(crate) p75: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
}

/// wrk's "Socket errors" line; all zero when wrk prints none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SocketErrors {
    pub(crate) connect: u64,
    pub(crate) read: u64,
    pub(crate) write: u64,
    /// Requests that got no answer within wrk's timeout (2s unless `--timeout` says otherwise).
    pub(crate) timeout: u64,
}

impl SocketErrors {
    /// Every socket-level failure, whatever its kind: the part of [`WrkReport::errors`] that got no
    /// answer.
    pub(crate) fn total(self) -> u64 {
        self.connect + self.read + self.write + self.timeout
    }
}

impl WrkReport {
    /// Failed requests of every kind: non-2xx/3xx answers plus socket errors.
    pub(crate) fn errors(&self) -> u64 {
        self.non_success + self.socket_errors.total()
    }

    /// Why these figures cannot stand for the API's performance, if they cannot: no request
    /// completed, or more requests failed than [`TOLERATED_ERRORS_PER_MILLION`] allows. No
    /// scenario expects failures, so any beyond that noise level fail the benchmark.
    pub(crate) fn verdict(&self) -> Result<(), String> {
        if self.requests == 0 {
            return Err(match self.socket_errors.total() {
                0 => "no request completed".to_owned(),
                _ => format!(
                    "no request completed ({})",
                    describe_socket_errors(self.socket_errors)
                ),
            });
        }
        let tolerated = self.requests * TOLERATED_ERRORS_PER_MILLION / 1_000_000;
        if self.errors() <= tolerated {
            return Ok(());
        }
        let mut problems = Vec::new();
        if self.non_success > 0 {
            problems.push(format!(
                "{} of {} answers were not 2xx/3xx",
                self.non_success, self.requests
            ));
        }
        if self.socket_errors.total() > 0 {
            problems.push(describe_socket_errors(self.socket_errors));
        }
        Err(format!(
            "{} (at most {tolerated} tolerated)",
            problems.join(", ")
        ))
    }
}

fn describe_socket_errors(errors: SocketErrors) -> String {
    let SocketErrors {
        connect,
        read,
        write,
        timeout,
    } = errors;
    format!("socket errors: connect {connect}, read {read}, write {write}, timeout {timeout}")
}

/// Parses the standard output of `wrk --latency` (with or without a Lua script).
pub(crate) fn parse(output: &str) -> anyhow::Result<WrkReport> {
    let mut requests = None;
    let mut requests_per_sec = None;
    let mut mean_and_max = None;
    let mut percentiles: [Option<f64>; 4] = [None; 4];
    let mut non_success = 0;
    let mut socket_errors = SocketErrors::default();

    for line in output.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            // "Latency   334.98ms   17.30ms 344.14ms   80.00%": mean, stdev, max, +/- stdev.
            ["Latency", mean, _stdev, max, _within] => {
                mean_and_max = Some((
                    parse_duration_ms(mean).context("reading the mean latency")?,
                    parse_duration_ms(max).context("reading the maximum latency")?,
                ));
            }
            // "50%    4.80ms" (only under "Latency Distribution", printed by --latency).
            [percent, value] if percent.ends_with('%') => {
                let slot = match *percent {
                    "50%" => 0,
                    "75%" => 1,
                    "90%" => 2,
                    "99%" => 3,
                    _ => continue,
                };
                percentiles[slot] = Some(
                    parse_duration_ms(value)
                        .with_context(|| format!("reading the {percent} latency"))?,
                );
            }
            // "2368 requests in 2.00s, 432.62KB read"
            [count, "requests", "in", ..] => {
                requests = Some(parse_count(count).context("reading the request count")?);
            }
            ["Requests/sec:", rate] => {
                requests_per_sec = Some(
                    rate.parse::<f64>()
                        .with_context(|| format!("reading the request rate {rate:?}"))?,
                );
            }
            ["Non-2xx", "or", "3xx", "responses:", count] => {
                non_success = parse_count(count).context("reading the non-2xx/3xx count")?;
            }
            ["Socket", "errors:", ..] => {
                socket_errors = parse_socket_errors(line)?;
            }
            _ => {}
        }
    }

    let requests = requests.context("wrk's report has no `N requests in` line")?;
    let requests_per_sec = requests_per_sec.context("wrk's report has no `Requests/sec` line")?;
    let (mean, max) = mean_and_max.context("wrk's report has no `Latency` line")?;
    let [Some(p50), Some(p75), Some(p90), Some(p99)] = percentiles else {
        bail!("wrk's report has no complete `Latency Distribution` (was --latency given?)");
    };
    Ok(WrkReport {
        requests,
        requests_per_sec,
        latency: Latency {
            mean,
            max,
            p50,
            p75,
            p90,
            p99,
        },
        non_success,
        socket_errors,
    })
}

/// A duration as wrk prints it (`512.00us`, `4.80ms`, `1.02s`, `2.00m`, `1.00h`) in milliseconds.
fn parse_duration_ms(text: &str) -> anyhow::Result<f64> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("{text:?} has no time unit"))?;
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => bail!("{text:?} has an unknown time unit {unit:?}"),
    };
    let value: f64 = number
        .parse()
        .with_context(|| format!("{text:?} is not a number of {unit}"))?;
    Ok(value * scale)
}

fn parse_count(text: &str) -> anyhow::Result<u64> {
    text.parse()
        .with_context(|| format!("{text:?} is not a count"))
}

/// "Socket errors: connect 0, read 6153, write 0, timeout 0"
fn parse_socket_errors(line: &str) -> anyhow::Result<SocketErrors> {
    let counts = line
        .split_once(':')
        .map_or("", |(_, counts)| counts)
        .split(',');
    let mut errors = SocketErrors::default();
    for entry in counts {
        let Some((kind, count)) = entry.trim().split_once(' ') else {
            bail!("unexpected socket error entry {entry:?} in {line:?}");
        };
        let count = parse_count(count.trim())?;
        match kind {
            "connect" => errors.connect = count,
            "read" => errors.read = count,
            "write" => errors.write = count,
            "timeout" => errors.timeout = count,
            _ => bail!("unknown socket error kind {kind:?} in {line:?}"),
        }
    }
    Ok(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real reports of wrk 4.1.0 (Debian), captured for these tests; see the directory's README.
    fn sample(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("bench/wrk-output")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    }

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() < 1e-9
    }

    fn latency(report: &WrkReport) -> [f64; 6] {
        let Latency {
            mean,
            max,
            p50,
            p75,
            p90,
            p99,
        } = report.latency;
        [mean, max, p50, p75, p90, p99]
    }

    fn assert_latency(report: &WrkReport, expected: [f64; 6]) {
        let actual = latency(report);
        assert!(
            actual.iter().zip(expected).all(|(a, e)| close(*a, e)),
            "{actual:?} != {expected:?}"
        );
    }

    #[test]
    fn a_clean_run_is_read_with_its_percentiles() {
        let report = parse(&sample("cached_list.txt")).unwrap();
        assert_eq!(report.requests, 12_266);
        assert!(close(report.requests_per_sec, 12_241.36));
        assert_latency(&report, [4.06, 12.13, 3.88, 4.66, 5.6, 7.91]);
        assert_eq!(report.non_success, 0);
        assert_eq!(report.socket_errors, SocketErrors::default());
        assert_eq!(report.errors(), 0);
        assert_eq!(report.verdict(), Ok(()));
    }

    #[test]
    fn microseconds_and_milliseconds_mix_in_one_report() {
        let report = parse(&sample("warm_up_one_connection.txt")).unwrap();
        assert_eq!(report.requests, 2_109);
        assert!(close(report.requests_per_sec, 1_917.57));
        assert_latency(&report, [0.573_43, 9.65, 0.467, 0.546, 0.784, 2.35]);
        assert_eq!(report.verdict(), Ok(()));
    }

    #[test]
    fn a_scripted_run_reads_like_any_other() {
        let report = parse(&sample("write_mix_script.txt")).unwrap();
        assert_eq!(report.requests, 1_772);
        assert_latency(&report, [27.96, 58.89, 29.13, 33.68, 37.31, 45.26]);
        assert_eq!(report.verdict(), Ok(()));
    }

    #[test]
    fn error_answers_fail_the_run() {
        let report = parse(&sample("not_found.txt")).unwrap();
        assert_eq!(report.requests, 2_025);
        assert_eq!(report.non_success, 2_025);
        assert_eq!(report.errors(), 2_025);
        assert_eq!(
            report.verdict(),
            Err("2025 of 2025 answers were not 2xx/3xx (at most 0 tolerated)".to_owned())
        );
    }

    #[test]
    fn socket_errors_fail_the_run() {
        let report = parse(&sample("timeouts.txt")).unwrap();
        assert_eq!(report.requests, 4);
        assert_eq!(
            report.socket_errors,
            SocketErrors {
                timeout: 4,
                ..SocketErrors::default()
            }
        );
        assert_eq!(
            report.verdict(),
            Err(
                "socket errors: connect 0, read 0, write 0, timeout 4 (at most 0 tolerated)"
                    .to_owned()
            )
        );

        let report = parse(&sample("read_errors.txt")).unwrap();
        assert_eq!(report.requests, 0);
        assert_eq!(report.socket_errors.read, 6_153);
        assert_eq!(
            report.verdict(),
            Err(
                "no request completed (socket errors: connect 0, read 6153, write 0, timeout 0)"
                    .to_owned()
            )
        );
    }

    #[test]
    fn a_run_where_nothing_completed_fails_even_without_errors() {
        // A server that hangs up without answering: wrk counts neither requests nor errors.
        let report = parse(&sample("nothing_completed.txt")).unwrap();
        assert_eq!((report.requests, report.errors()), (0, 0));
        assert_eq!(report.verdict(), Err("no request completed".to_owned()));
    }

    #[test]
    fn a_stray_error_in_a_long_run_is_tolerated_and_more_are_not() {
        let mut report = parse(&sample("cached_list.txt")).unwrap();
        report.requests = 1_000_000;
        report.socket_errors.timeout = 60;
        report.non_success = 40;
        assert_eq!(report.verdict(), Ok(()));
        report.non_success = 41;
        assert_eq!(
            report.verdict(),
            Err(
                "41 of 1000000 answers were not 2xx/3xx, socket errors: connect 0, read 0, \
                 write 0, timeout 60 (at most 100 tolerated)"
                    .to_owned()
            )
        );
    }

    #[test]
    fn an_incomplete_or_foreign_report_is_an_error() {
        let full = sample("cached_list.txt");
        let without = |needle: &str| {
            full.lines()
                .filter(|line| !line.contains(needle))
                .collect::<Vec<_>>()
                .join("\n")
        };
        for (needle, message) in [
            ("Requests/sec", "no `Requests/sec` line"),
            ("requests in", "no `N requests in` line"),
            ("99%", "no complete `Latency Distribution`"),
            ("    Latency  ", "no `Latency` line"),
        ] {
            let err = parse(&without(needle)).unwrap_err().to_string();
            assert!(err.contains(message), "{needle}: {err}");
        }
        assert!(parse("").is_err());
        assert!(parse("unable to connect to 127.0.0.1:1 Connection refused").is_err());
        let garbled = full.replace("12266 requests", "12k requests");
        assert!(parse(&garbled).is_err());
        let garbled = full.replace("connections\n", "connections\n  Socket errors: connect x\n");
        assert!(parse(&garbled).is_err());
    }

    #[test]
    fn durations_in_every_unit_are_converted_to_milliseconds() {
        for (text, ms) in [
            ("512.00us", 0.512),
            ("4.80ms", 4.8),
            ("1.02s", 1020.0),
            ("2.00m", 120_000.0),
            ("1.50h", 5_400_000.0),
            ("0.00us", 0.0),
        ] {
            assert!(close(parse_duration_ms(text).unwrap(), ms), "{text}");
        }
        for bad in ["", "12", "ms", "1.0d", "x.yms", "-nan%"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }
}
