//! Results of a run: latency and connect-time histograms (recorded in
//! microseconds, reported in milliseconds), their merge across executors,
//! and the two renderings — a human table for stderr and one JSON object for
//! stdout, so that scripts can read stdout whole.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde_json::json;

/// Histograms count microseconds: 1 µs resolution is far below anything a
/// network proxy can show, and it keeps the bucket count small.
pub const LOWEST_US: u64 = 1;
/// Values above one hour are clamped (a clock jump, not a latency).
pub const HIGHEST_US: u64 = 3_600_000_000;
/// Three significant digits: each reported value is within 0.1 %.
pub const SIGNIFICANT_DIGITS: u8 = 3;

const US_PER_MS: f64 = 1000.0;

/// An empty histogram with the bounds every part of the tool uses, so that
/// they can be merged.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// Sums histograms (e.g. one per executor) into one.
pub fn merge<'a>(parts: impl IntoIterator<Item = &'a Histogram<u64>>) -> Histogram<u64> {
    let mut total = new_histogram();
    for part in parts {
        // Same bounds everywhere and values already clamped, so adding cannot fail.
        total.add(part).expect("histograms share bounds");
    }
    total
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Percentiles of a microsecond histogram, in ms (all zero when empty).
pub fn percentiles_ms(h: &Histogram<u64>) -> Percentiles {
    let at = |q: f64| h.value_at_quantile(q) as f64 / US_PER_MS;
    Percentiles {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
        max: h.max() as f64 / US_PER_MS,
    }
}

/// Everything the final report shows.
#[derive(Debug, Clone)]
pub struct Summary {
    pub connections: u64,
    /// Events received inside the measurement window.
    pub events: u64,
    /// Length of the measurement window.
    pub seconds: f64,
    pub latency: Histogram<u64>,
    pub connect: Histogram<u64>,
    pub per_connection_min: u64,
    pub per_connection_max: u64,
    pub loss: u64,
    pub duplicates: u64,
    /// Reconnections with `Last-Event-ID`: the deliberate drops plus any
    /// reconnection after a failed stream.
    pub resumes: u64,
    /// Partitions whose first event after a resume was not the exact
    /// continuation.
    pub resume_errors: u64,
    /// Errors from the start of the window on.
    pub errors: u64,
    /// Errors during warm-up (startup noise such as 503 before the proxy
    /// knows the topic).
    pub warmup_errors: u64,
    /// Records produced, when this process ran the producer.
    pub produced: Option<u64>,
    /// Records in failed produce requests (they show up as loss).
    pub produce_failed: u64,
    /// The first connect of every connection, timed together.
    pub opening: Opening,
    /// The extra clients that connect during the window, if any were asked.
    pub extra: Option<Extra>,
    /// Per partition, the lowest last sequence number over the connections
    /// that saw the partition: compared with the producer's heads once it
    /// has stopped, it shows whether every connection got the tail too
    /// (a gap inside the stream is counted as loss, a missing tail is not).
    pub lowest_last: BTreeMap<u32, u64>,
}

/// The opening: every connection's first attempt, from the first connect
/// to the last first response head (see `subscribe`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Opening {
    /// Connections that got a first response head.
    pub answered: u64,
    /// From the first connect to the last first head; `None` unless every
    /// connection got one.
    pub seconds: Option<f64>,
    /// `--connect-concurrency`, when the connects were paced.
    pub concurrency: Option<u64>,
}

impl Opening {
    /// The table's row: how many were answered, and how fast.
    fn describe(&self, connections: u64) -> String {
        let paced = match self.concurrency {
            Some(n) => format!(", at most {n} at once"),
            None => String::new(),
        };
        match (self.seconds, self.connects_per_s()) {
            (Some(s), Some(rate)) => format!(
                "{} answered in {s:.3} s: {rate:.0} connects/s{paced}",
                self.answered
            ),
            _ => format!("{} of {connections} answered{paced}", self.answered),
        }
    }

    /// Connections answered per second of the opening.
    pub fn connects_per_s(&self) -> Option<f64> {
        self.seconds
            .filter(|&s| s > 0.0)
            .map(|s| self.answered as f64 / s)
    }
}

/// Clients that connect once during the window and measure how long the
/// server takes to answer while it is busy fanning out.
#[derive(Debug, Clone)]
pub struct Extra {
    pub connections: u64,
    /// From the start of the TCP connect to the first response byte.
    pub first_byte: Histogram<u64>,
    pub errors: u64,
}

impl Summary {
    pub fn events_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.events as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The machine-readable report (one object; `produced` only with a
    /// producer in this process).
    pub fn to_json(&self) -> serde_json::Value {
        let l = percentiles_ms(&self.latency);
        let c = percentiles_ms(&self.connect);
        let mut v = json!({
            "connections": self.connections,
            "events": self.events,
            "events_per_s": round3(self.events_per_s()),
            "latency_ms": {
                "p50": round3(l.p50),
                "p90": round3(l.p90),
                "p99": round3(l.p99),
                "p999": round3(l.p999),
                "max": round3(l.max),
            },
            "connect_ms": { "p50": round3(c.p50), "p99": round3(c.p99) },
            "opening": {
                "answered": self.opening.answered,
                "seconds": self.opening.seconds.map(round3),
                "connects_per_s": self.opening.connects_per_s().map(f64::round),
                "concurrency": self.opening.concurrency,
            },
            "per_connection_events": {
                "min": self.per_connection_min,
                "max": self.per_connection_max,
            },
            "loss": self.loss,
            "duplicates": self.duplicates,
            "resumes": self.resumes,
            "resume_errors": self.resume_errors,
            "errors": self.errors,
            "warmup_errors": self.warmup_errors,
            "lowest_last_seq": self.lowest_last,
        });
        if let Some(produced) = self.produced {
            v["produced"] = json!(produced);
            v["produce_failed"] = json!(self.produce_failed);
        }
        if let Some(extra) = &self.extra {
            let f = percentiles_ms(&extra.first_byte);
            v["extra"] = json!({
                "connections": extra.connections,
                "first_byte_ms": { "p50": round3(f.p50), "p99": round3(f.p99), "max": round3(f.max) },
                "answered": extra.first_byte.len(),
                "errors": extra.errors,
            });
        }
        v
    }

    /// The human-readable report.
    pub fn table(&self) -> String {
        let l = percentiles_ms(&self.latency);
        let c = percentiles_ms(&self.connect);
        let mut rows = vec![
            ("connections", self.connections.to_string()),
            ("window", format!("{:.1} s", self.seconds)),
            ("events", self.events.to_string()),
            ("events/s", format!("{:.0}", self.events_per_s())),
            (
                "latency ms",
                format!(
                    "p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
                    l.p50, l.p90, l.p99, l.p999, l.max
                ),
            ),
            ("connect ms", format!("p50 {:.3}  p99 {:.3}", c.p50, c.p99)),
            ("opening", self.opening.describe(self.connections)),
            (
                "events/conn",
                format!(
                    "min {}  max {}",
                    self.per_connection_min, self.per_connection_max
                ),
            ),
            ("loss", self.loss.to_string()),
            ("duplicates", self.duplicates.to_string()),
            (
                "resumes",
                format!("{} ({} errors)", self.resumes, self.resume_errors),
            ),
            (
                "errors",
                format!("{} (+{} in warm-up)", self.errors, self.warmup_errors),
            ),
        ];
        if let Some(produced) = self.produced {
            rows.insert(
                2,
                (
                    "produced",
                    format!("{produced} ({} failed)", self.produce_failed),
                ),
            );
        }
        if let Some(extra) = &self.extra {
            let f = percentiles_ms(&extra.first_byte);
            rows.push((
                "extra clients",
                format!(
                    "{} answered of {}, first byte p50 {:.3}  p99 {:.3}  max {:.3} ms, {} errors",
                    extra.first_byte.len(),
                    extra.connections,
                    f.p50,
                    f.p99,
                    f.max,
                    extra.errors
                ),
            ));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<width$}  {v}\n"))
            .collect()
    }
}

/// Three decimals (µs precision for ms values) keeps the JSON readable.
pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// hdrhistogram with 3 significant digits: within 0.1 % (plus rounding).
    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= want * 0.001 + 1e-9
    }

    fn summary(latency: Histogram<u64>) -> Summary {
        Summary {
            connections: 10,
            events: 5000,
            seconds: 10.0,
            latency,
            connect: new_histogram(),
            per_connection_min: 400,
            per_connection_max: 600,
            loss: 1,
            duplicates: 2,
            resumes: 3,
            resume_errors: 0,
            errors: 4,
            warmup_errors: 5,
            produced: Some(5100),
            produce_failed: 0,
            opening: Opening {
                answered: 10,
                seconds: Some(0.5),
                concurrency: Some(4),
            },
            extra: None,
            lowest_last: BTreeMap::from([(0, 41), (3, 7)]),
        }
    }

    #[test]
    fn percentiles_of_known_values() {
        // 1..=1000 ms, one each: pN is N/100 * 1000 ms.
        let mut h = new_histogram();
        for ms in 1..=1000u64 {
            h.record(ms * 1000).unwrap();
        }
        let cases = [
            (percentiles_ms(&h).p50, 500.0),
            (percentiles_ms(&h).p90, 900.0),
            (percentiles_ms(&h).p99, 990.0),
            (percentiles_ms(&h).p999, 999.0),
            (percentiles_ms(&h).max, 1000.0),
        ];
        for (i, (got, want)) in cases.into_iter().enumerate() {
            assert!(close(got, want), "case {i}: {got} vs {want}");
        }
    }

    #[test]
    fn empty_histogram_is_zero() {
        let p = percentiles_ms(&new_histogram());
        assert_eq!((p.p50, p.p99, p.max), (0.0, 0.0, 0.0));
    }

    #[test]
    fn merge_sums_executors() {
        // Executor A saw 99 events at 1 ms, B one at 250 ms.
        let mut a = new_histogram();
        a.record_n(1000, 99).unwrap();
        let mut b = new_histogram();
        b.record(250_000).unwrap();
        let m = merge([&a, &b]);
        assert_eq!(m.len(), 100);
        let p = percentiles_ms(&m);
        assert!(close(p.p50, 1.0), "{p:?}");
        assert!(close(p.p99, 1.0), "{p:?}");
        assert!(close(p.max, 250.0), "{p:?}");
        assert!(close(p.p999, 250.0), "{p:?}");
    }

    #[test]
    fn json_has_every_field() {
        let mut h = new_histogram();
        h.record(2500).unwrap();
        let v = summary(h).to_json();
        for path in [
            "/connections",
            "/events",
            "/events_per_s",
            "/latency_ms/p50",
            "/latency_ms/p90",
            "/latency_ms/p99",
            "/latency_ms/p999",
            "/latency_ms/max",
            "/connect_ms/p50",
            "/connect_ms/p99",
            "/per_connection_events/min",
            "/per_connection_events/max",
            "/loss",
            "/duplicates",
            "/resumes",
            "/resume_errors",
            "/errors",
            "/warmup_errors",
            "/produced",
            "/produce_failed",
            "/opening/answered",
            "/opening/seconds",
            "/opening/connects_per_s",
            "/opening/concurrency",
        ] {
            assert!(v.pointer(path).is_some(), "missing {path} in {v}");
        }
        assert_eq!(v["events_per_s"].as_f64(), Some(500.0));
        assert!(close(v["latency_ms"]["p50"].as_f64().unwrap(), 2.5));
        assert_eq!(v["duplicates"].as_u64(), Some(2));
        assert_eq!(v["lowest_last_seq"], json!({"0": 41, "3": 7}));
        assert_eq!(v["opening"]["connects_per_s"].as_f64(), Some(20.0));
        // One line: safe to print as the only stdout line.
        assert!(!v.to_string().contains('\n'));
        assert!(v.get("extra").is_none());
    }

    #[test]
    fn extra_clients_are_reported() {
        let mut first_byte = new_histogram();
        first_byte.record_n(3_000, 9).unwrap();
        first_byte.record(150_000).unwrap();
        let mut s = summary(new_histogram());
        s.extra = Some(Extra {
            connections: 11,
            first_byte,
            errors: 1,
        });
        let v = s.to_json();
        assert_eq!(v["extra"]["connections"].as_u64(), Some(11));
        assert_eq!(v["extra"]["answered"].as_u64(), Some(10));
        assert_eq!(v["extra"]["errors"].as_u64(), Some(1));
        assert!(close(
            v["extra"]["first_byte_ms"]["p50"].as_f64().unwrap(),
            3.0
        ));
        assert!(close(
            v["extra"]["first_byte_ms"]["p99"].as_f64().unwrap(),
            150.0
        ));
        assert!(s.table().contains("10 answered of 11"));
    }

    #[test]
    fn an_unfinished_opening_has_no_rate() {
        let mut s = summary(new_histogram());
        s.opening = Opening {
            answered: 7,
            seconds: None,
            concurrency: None,
        };
        let v = s.to_json();
        assert!(v["opening"]["seconds"].is_null());
        assert!(v["opening"]["connects_per_s"].is_null());
        assert!(s.table().contains("7 of 10 answered"), "{}", s.table());
        assert!(summary(new_histogram())
            .table()
            .contains("10 answered in 0.500 s: 20 connects/s, at most 4 at once"));
    }

    #[test]
    fn table_names_every_row() {
        let t = summary(new_histogram()).table();
        for label in [
            "connections",
            "produced",
            "events/s",
            "latency ms",
            "loss",
            "resumes",
        ] {
            assert!(t.contains(label), "{label} missing in\n{t}");
        }
    }
}
