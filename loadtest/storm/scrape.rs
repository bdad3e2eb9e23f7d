//! The proxy's catch-up counters, scraped from its admin listener's
//! `/metrics` (Prometheus text) before and after phase 3 and reported as
//! deltas: they tell whether the storm was served from the partition cache
//! or by Kafka fetches, and how many readers shared a fetch.

use std::io::{self, Read as _, Write as _};
use std::net::{TcpStream as StdTcpStream, ToSocketAddrs as _};
use std::time::{Duration, Instant};

use crate::response::{self, BodyError};

/// The whole scrape of `/metrics` (connect, request, response). Generous:
/// the admin listener shares shard 0 with the storm's catch-up work, and a
/// scrape right after a storm that timed out once took longer than 5 s.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);
/// A metrics response larger than this is an error (the proxy's is ~3 KB).
const MAX_METRICS_RESPONSE: usize = 1 << 20;

/// The proxy's catch-up counters, by Prometheus family name.
const FETCHES: &str = "sse_kafka_catchup_fetches_total";
const FETCH_JOINS: &str = "sse_kafka_catchup_fetch_joins_total";
const CACHED_RECORDS: &str = "sse_kafka_catchup_cached_records_total";
const FETCHED_RECORDS: &str = "sse_kafka_catchup_fetched_records_total";

/// The proxy's catch-up counters (or their change over the storm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CatchupMetrics {
    /// Kafka fetches made for catch-up readers.
    pub fetches: u64,
    /// Readers that waited for a fetch another reader had asked for.
    pub fetch_joins: u64,
    /// Records catch-up readers took from the partition cache.
    pub cached_records: u64,
    /// Records catch-up readers took from Kafka fetches.
    pub fetched_records: u64,
}

/// Why the catch-up counters could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("admin {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("admin {addr}: no address")]
    NoAddress { addr: String },
    #[error("admin {addr}: no complete response within {ADMIN_TIMEOUT:?}")]
    Timeout { addr: String },
    #[error("metrics response larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("metrics response: {0}")]
    BadResponse(#[from] BodyError),
    #[error("metrics response: body is not UTF-8")]
    NotUtf8,
    #[error("metric {name} is missing")]
    Missing { name: &'static str },
    #[error("metric {name}: bad value '{value}'")]
    BadValue { name: &'static str, value: String },
    #[error("metric {name} went back from {before} to {after} (did the proxy restart?)")]
    WentBack {
        name: &'static str,
        before: u64,
        after: u64,
    },
}

impl CatchupMetrics {
    /// Reads the four counters from a Prometheus text exposition.
    pub fn parse(text: &str) -> Result<Self, MetricsError> {
        Ok(Self {
            fetches: sample(text, FETCHES)?,
            fetch_joins: sample(text, FETCH_JOINS)?,
            cached_records: sample(text, CACHED_RECORDS)?,
            fetched_records: sample(text, FETCHED_RECORDS)?,
        })
    }

    /// The change from `before` to `self`; counters only grow, so a smaller
    /// value means another process answered (a restart).
    pub fn since(&self, before: &Self) -> Result<Self, MetricsError> {
        let delta = |name, after: u64, before: u64| {
            after.checked_sub(before).ok_or(MetricsError::WentBack {
                name,
                before,
                after,
            })
        };
        Ok(Self {
            fetches: delta(FETCHES, self.fetches, before.fetches)?,
            fetch_joins: delta(FETCH_JOINS, self.fetch_joins, before.fetch_joins)?,
            cached_records: delta(CACHED_RECORDS, self.cached_records, before.cached_records)?,
            fetched_records: delta(
                FETCHED_RECORDS,
                self.fetched_records,
                before.fetched_records,
            )?,
        })
    }
}

/// The value of family `name`, summed over its label sets: lines
/// `name value [timestamp]` or `name{labels} value [timestamp]`; comments
/// and other families are skipped.
fn sample(text: &str, name: &'static str) -> Result<u64, MetricsError> {
    let mut total: Option<u64> = None;
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix(name) else {
            continue; // another family, or a `#` line
        };
        let rest = if let Some(labelled) = rest.strip_prefix('{') {
            // Label values may hold `}`; the last one closes the set.
            match labelled.rfind('}') {
                Some(close) => &labelled[close + 1..],
                None => {
                    return Err(MetricsError::BadValue {
                        name,
                        value: line.to_owned(),
                    })
                }
            }
        } else if rest.starts_with([' ', '\t']) {
            rest
        } else {
            continue; // a longer name with this prefix
        };
        let text = rest.split_whitespace().next().unwrap_or("");
        let value = parse_count(text).ok_or_else(|| MetricsError::BadValue {
            name,
            value: text.to_owned(),
        })?;
        total = Some(total.unwrap_or(0).saturating_add(value));
    }
    total.ok_or(MetricsError::Missing { name })
}

/// A counter value: an integer, or a float such as `1.5e+06` with no
/// fraction left; negative, fractional, infinite and NaN values are refused.
fn parse_count(text: &str) -> Option<u64> {
    if let Ok(n) = text.parse::<u64>() {
        return Some(n);
    }
    let x = text.parse::<f64>().ok()?;
    // 2^64 as f64; below it every integral float converts exactly.
    (x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x < 18_446_744_073_709_551_616.0)
        .then_some(x as u64)
}

/// GETs `/metrics` from the admin listener at `addr` (`host:port`) and
/// reads the catch-up counters.
pub fn scrape(addr: &str) -> Result<CatchupMetrics, MetricsError> {
    let io_err = |source| MetricsError::Io {
        addr: addr.to_owned(),
        source,
    };
    let deadline = Instant::now() + ADMIN_TIMEOUT;
    let sock = addr
        .to_socket_addrs()
        .map_err(io_err)?
        .next()
        .ok_or_else(|| MetricsError::NoAddress {
            addr: addr.to_owned(),
        })?;
    let mut stream = StdTcpStream::connect_timeout(&sock, ADMIN_TIMEOUT).map_err(io_err)?;
    stream
        .set_write_timeout(Some(ADMIN_TIMEOUT))
        .map_err(io_err)?;
    let request = format!("GET /metrics HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(io_err)?;
    let mut response = Vec::with_capacity(8 << 10);
    let mut chunk = [0u8; 8 << 10];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(MetricsError::Timeout {
                addr: addr.to_owned(),
            });
        }
        stream.set_read_timeout(Some(left)).map_err(io_err)?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                if response.len() + n > MAX_METRICS_RESPONSE {
                    return Err(MetricsError::TooLarge {
                        limit: MAX_METRICS_RESPONSE,
                    });
                }
                response.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(MetricsError::Timeout {
                    addr: addr.to_owned(),
                })
            }
            Err(e) => return Err(io_err(e)),
        }
    }
    let body = response::complete_body(&response)?;
    let text = std::str::from_utf8(body).map_err(|_| MetricsError::NotUtf8)?;
    CatchupMetrics::parse(text)
}

/// A scrape whose failure is reported and leaves the proxy numbers out of
/// the report rather than failing a storm that already ran.
pub(super) fn scrape_or_warn(addr: &str) -> Option<CatchupMetrics> {
    match scrape(addr) {
        Ok(m) => Some(m),
        Err(e) => {
            eprintln!("storm: scraping the catch-up counters: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn reads_the_proxys_own_metrics_text() {
        use sse_kafka::ops::metrics::{render, ShardMetrics};
        let (a, b) = (ShardMetrics::default(), ShardMetrics::default());
        a.catchup_fetches.add(2);
        b.catchup_fetches.add(3);
        a.catchup_fetch_joins.add(7);
        b.catchup_cached_records.add(4000);
        a.catchup_fetched_records.add(11);
        let text = render(&[Arc::new(a), Arc::new(b)]);
        let m = CatchupMetrics::parse(&text).unwrap();
        assert_eq!(
            m,
            CatchupMetrics {
                fetches: 5,
                fetch_joins: 7,
                cached_records: 4000,
                fetched_records: 11,
            }
        );
    }

    #[test]
    fn parses_samples() {
        let cases: &[(&str, Option<u64>)] = &[
            ("sse_kafka_catchup_fetches_total 12\n", Some(12)),
            ("# HELP sse_kafka_catchup_fetches_total x\nsse_kafka_catchup_fetches_total 0\n", Some(0)),
            ("sse_kafka_catchup_fetches_total 1.5e+06 1700000000000\n", Some(1_500_000)),
            ("sse_kafka_catchup_fetches_total{shard=\"0\"} 2\nsse_kafka_catchup_fetches_total{shard=\"}\"} 3\n", Some(5)),
            // A longer name with the same prefix is another family.
            ("sse_kafka_catchup_fetches_total_bytes 9\nsse_kafka_catchup_fetches_total 4\n", Some(4)),
            ("sse_kafka_catchup_fetches_total_bytes 9\n", None),
            ("", None),
            ("sse_kafka_catchup_fetches_total -1\n", None),
            ("sse_kafka_catchup_fetches_total 2.5\n", None),
            ("sse_kafka_catchup_fetches_total NaN\n", None),
            ("sse_kafka_catchup_fetches_total +Inf\n", None),
            ("sse_kafka_catchup_fetches_total\n", None),
            ("sse_kafka_catchup_fetches_total{shard=\"0\" 2\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(sample(text, FETCHES).ok(), *want, "{text:?}");
        }
        assert!(matches!(
            sample("", FETCHES),
            Err(MetricsError::Missing { name: FETCHES })
        ));
    }

    #[test]
    fn deltas_refuse_counters_that_go_back() {
        let before = CatchupMetrics {
            fetches: 1,
            fetch_joins: 2,
            cached_records: 3,
            fetched_records: 4,
        };
        let after = CatchupMetrics {
            fetches: 1,
            fetch_joins: 12,
            cached_records: 4003,
            fetched_records: 4,
        };
        assert_eq!(
            after.since(&before).unwrap(),
            CatchupMetrics {
                fetches: 0,
                fetch_joins: 10,
                cached_records: 4000,
                fetched_records: 0,
            }
        );
        assert!(matches!(
            before.since(&after),
            Err(MetricsError::WentBack {
                name: FETCH_JOINS,
                before: 12,
                after: 2
            })
        ));
    }
}
