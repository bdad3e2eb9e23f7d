//! `StormReport`: everything a storm measured, as one JSON line and as a
//! table, and whether it passed.

use hdrhistogram::Histogram;
use serde_json::json;

use crate::report::{percentiles_ms, round3};

use super::scrape::CatchupMetrics;

/// Everything the storm reports.
#[derive(Debug, Clone)]
pub struct StormReport {
    pub connections: u64,
    /// Records acknowledged between the hang-up and the reconnect.
    pub behind: u64,
    /// Records each connection lacked at the reconnect (fewest, most).
    pub missing_min: u64,
    pub missing_max: u64,
    /// Records acknowledged over the run, and in failed requests.
    pub produced: u64,
    pub produce_failed: u64,
    /// Phase 1: until every connection had every partition.
    pub connect_seconds: f64,
    /// Phase 1: failed attempts and events without a stamp.
    pub connect_errors: u64,
    /// Phase 3: connections that got a response head.
    pub resumed: u64,
    /// Phase 3: connections that reached every head.
    pub completed: u64,
    /// Phase 3: failed attempts (each retried).
    pub errors: u64,
    /// Phase 3: events without a load stamp (reset, gap, error events).
    pub bad_events: u64,
    /// Over the whole run (the trackers span both phases).
    pub loss: u64,
    pub duplicates: u64,
    pub resumes: u64,
    pub resume_errors: u64,
    /// First reconnect to last completion (to the end of phase 3 when some
    /// never completed).
    pub storm_seconds: f64,
    /// Per completed connection: first attempt to completion (µs).
    pub catchup: Histogram<u64>,
    /// Per answered connection: first attempt to its response head (µs).
    pub head: Histogram<u64>,
    /// Stamped events received in phase 3.
    pub events_received: u64,
    /// The proxy's catch-up counter deltas over phase 3, when scraped.
    pub proxy: Option<CatchupMetrics>,
}

impl StormReport {
    /// Every connection caught up, and exactly.
    pub fn passed(&self) -> bool {
        self.completed == self.connections
            && self.loss == 0
            && self.duplicates == 0
            && self.resume_errors == 0
    }

    /// The machine-readable report: one object on one line.
    pub fn to_json(&self) -> serde_json::Value {
        let c = percentiles_ms(&self.catchup);
        let h = percentiles_ms(&self.head);
        json!({
            "connections": self.connections,
            "behind": self.behind,
            "missing_per_connection": { "min": self.missing_min, "max": self.missing_max },
            "produced": self.produced,
            "produce_failed": self.produce_failed,
            "connect_seconds": round3(self.connect_seconds),
            "connect_errors": self.connect_errors,
            "resumed": self.resumed,
            "completed": self.completed,
            "errors": self.errors,
            "bad_events": self.bad_events,
            "loss": self.loss,
            "duplicates": self.duplicates,
            "resumes": self.resumes,
            "resume_errors": self.resume_errors,
            "storm_seconds": round3(self.storm_seconds),
            "catchup_ms": {
                "p50": round3(c.p50),
                "p90": round3(c.p90),
                "p99": round3(c.p99),
                "max": round3(c.max),
            },
            "head_ms": { "p50": round3(h.p50), "p99": round3(h.p99), "max": round3(h.max) },
            "events_received": self.events_received,
            "proxy": self.proxy.map(|m| json!({
                "catchup_fetches": m.fetches,
                "fetch_joins": m.fetch_joins,
                "cached_records": m.cached_records,
                "fetched_records": m.fetched_records,
            })),
        })
    }

    /// The human-readable report.
    pub fn table(&self) -> String {
        let c = percentiles_ms(&self.catchup);
        let h = percentiles_ms(&self.head);
        let rows = [
            ("connections", self.connections.to_string()),
            (
                "phase 1",
                format!(
                    "{:.1} s to every partition, {} errors",
                    self.connect_seconds, self.connect_errors
                ),
            ),
            (
                "behind",
                format!(
                    "{} produced after the hang-up; {}..{} missing per connection",
                    self.behind, self.missing_min, self.missing_max
                ),
            ),
            (
                "resumed",
                format!("{} of {} answered", self.resumed, self.connections),
            ),
            (
                "completed",
                format!("{} in {:.3} s", self.completed, self.storm_seconds),
            ),
            (
                "catch-up ms",
                format!(
                    "p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
                    c.p50, c.p90, c.p99, c.max
                ),
            ),
            (
                "head ms",
                format!("p50 {:.1}  p99 {:.1}  max {:.1}", h.p50, h.p99, h.max),
            ),
            ("events", self.events_received.to_string()),
            (
                "errors",
                format!("{} ({} bad events)", self.errors, self.bad_events),
            ),
            ("loss", self.loss.to_string()),
            ("duplicates", self.duplicates.to_string()),
            (
                "resumes",
                format!("{} ({} errors)", self.resumes, self.resume_errors),
            ),
            (
                "proxy",
                match self.proxy {
                    Some(m) => format!(
                        "catch-up fetches {}, joins {}, records cached {} / fetched {}",
                        m.fetches, m.fetch_joins, m.cached_records, m.fetched_records
                    ),
                    None => "not scraped".into(),
                },
            ),
        ];
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<width$}  {v}\n"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report;

    fn report(proxy: Option<CatchupMetrics>) -> StormReport {
        let mut catchup = report::new_histogram();
        catchup.record_n(100_000, 9).unwrap();
        catchup.record(900_000).unwrap();
        StormReport {
            connections: 10,
            behind: 4000,
            missing_min: 4000,
            missing_max: 4100,
            produced: 20_000,
            produce_failed: 0,
            connect_seconds: 1.5,
            connect_errors: 0,
            resumed: 10,
            completed: 10,
            errors: 0,
            bad_events: 0,
            loss: 0,
            duplicates: 0,
            resumes: 10,
            resume_errors: 0,
            storm_seconds: 0.95,
            catchup,
            head: report::new_histogram(),
            events_received: 40_500,
            proxy,
        }
    }

    #[test]
    fn json_has_every_field() {
        let v = report(None).to_json();
        for path in [
            "/connections",
            "/behind",
            "/resumed",
            "/completed",
            "/errors",
            "/loss",
            "/duplicates",
            "/resume_errors",
            "/storm_seconds",
            "/catchup_ms/p50",
            "/catchup_ms/p90",
            "/catchup_ms/p99",
            "/catchup_ms/max",
            "/events_received",
            "/proxy",
        ] {
            assert!(v.pointer(path).is_some(), "missing {path} in {v}");
        }
        assert!(v["proxy"].is_null());
        assert!((v["catchup_ms"]["p50"].as_f64().unwrap() - 100.0).abs() < 0.2);
        assert!((v["catchup_ms"]["max"].as_f64().unwrap() - 900.0).abs() < 1.0);
        assert!(!v.to_string().contains('\n'));
        let m = CatchupMetrics {
            fetches: 1,
            fetch_joins: 2,
            cached_records: 3,
            fetched_records: 4,
        };
        let v = report(Some(m)).to_json();
        assert_eq!(v["proxy"]["catchup_fetches"].as_u64(), Some(1));
        assert_eq!(v["proxy"]["fetch_joins"].as_u64(), Some(2));
        assert_eq!(v["proxy"]["cached_records"].as_u64(), Some(3));
        assert_eq!(v["proxy"]["fetched_records"].as_u64(), Some(4));
        assert!(report(Some(m)).table().contains("catch-up fetches 1"));
    }

    #[test]
    fn passes_only_when_every_connection_caught_up_exactly() {
        assert!(report(None).passed());
        let mut r = report(None);
        r.completed = 9;
        assert!(!r.passed());
        let mut r = report(None);
        r.loss = 1;
        assert!(!r.passed());
        let mut r = report(None);
        r.duplicates = 1;
        assert!(!r.passed());
        let mut r = report(None);
        r.errors = 3; // retried attempts that then caught up
        assert!(r.passed());
    }
}
