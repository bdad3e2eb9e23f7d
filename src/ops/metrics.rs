//! Per-shard counters, summed when scraped, rendered in the Prometheus text
//! exposition format (version 0.0.4).
//!
//! Each counter has exactly one writer (its shard, or the shard's sidecar for
//! the Kafka counters), so an increment is a relaxed load and store, not a
//! locked read-modify-write; the admin endpoint reads every shard's counters
//! and sums them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::codec::jwt::TokenError;

/// A counter with a single writer thread.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        // Single writer: a plain load + store cannot lose updates.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    pub fn sub(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_sub(n),
            Ordering::Relaxed,
        );
    }

    /// For gauges.
    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The counters of one shard. Written by that shard (and its sidecar for the
/// Kafka ones), read by the admin endpoint.
#[derive(Debug, Default)]
pub struct ShardMetrics {
    /// Gauge: SSE streams open on this shard.
    pub connections_open: Counter,
    /// Gauge: catch-up readers whose clients took nothing for a whole wait
    /// for room (parked; see `Outbox::wait_room`).
    pub stalled_readers: Counter,
    pub connections_total: Counter,
    /// Responses that were not a stream, by class.
    pub http_errors: Counter,
    pub events_sent: Counter,
    pub bytes_sent: Counter,
    pub keepalives_sent: Counter,
    /// Id-only events telling filtered live streams how far they got.
    pub progress_sent: Counter,
    /// Live connections turned into catch-up readers (slow or lagging shard).
    pub demotions: Counter,
    /// Batches a full cross-shard queue refused (readers behind catch up).
    pub mesh_full: Counter,
    // Written by the sidecar thread.
    pub records_fetched: Counter,
    pub catchup_fetches: Counter,
    pub kafka_errors: Counter,
    /// Connections answered 503 at accept: the process's connection cap
    /// (`connections.max`, or the descriptor budget) was reached.
    pub refused_full: Counter,
    /// Connections answered 429 at accept: their address held
    /// `connections.max_per_ip`.
    pub refused_per_ip: Counter,
    /// Record batches the live fetch loops could not decode and skipped.
    pub batches_skipped: Counter,
    /// Gauge: bytes the partition cache holds for the partitions this shard
    /// owns (the shards index the same shared records; each reports its
    /// own partitions, so the sum is what the process holds).
    pub cache_bytes: Counter,
    /// Records catch-up readers took from the partition cache.
    pub catchup_cached_records: Counter,
    /// Records catch-up readers took from Kafka fetches.
    pub catchup_fetched_records: Counter,
    /// Catch-up readers that waited for a fetch another reader had asked
    /// for instead of asking Kafka themselves.
    pub catchup_fetch_joins: Counter,
    /// Offset look-ups (a stream's start: earliest, or by `since`) asked of
    /// Kafka, and those that shared one already under way.
    pub offset_lookups: Counter,
    pub offset_lookup_joins: Counter,
    /// Streams ended because their client fell behind by more than
    /// `slow_client.max_lag`.
    pub slow_clients_ended: Counter,
    /// Streams ended because their client closed its end.
    pub hang_ups: Counter,
    /// Topic names a request named through a route's topic template that
    /// the shard asked its sidecar about.
    pub topic_lookups: Counter,
    /// Kafka metadata requests the sidecar sent for those look-ups (each
    /// answers many; see `kafka::lookups`).
    pub topic_metadata_requests: Counter,
    /// Streams ended because their topic was unavailable for longer than
    /// `kafka.unavailable_timeout`.
    pub topic_unavailable_ends: Counter,
    /// Set once this shard has metadata and positions for every topic.
    pub ready: AtomicBool,
    /// Set while a guard with keys from a URL has none yet (the same on
    /// every shard: written by the key fetcher).
    pub keys_missing: AtomicBool,
    /// Requests a guard refused, by [`Rejection::index`].
    pub guard_rejections: [Counter; Rejection::COUNT],
    /// Tokens verified against a guard's keys (a signature check each).
    pub guard_signature_checks: Counter,
    /// Tokens a guard had verified already and remembered.
    pub guard_cache_hits: Counter,
    /// `event:challenge`s sent to streams whose token expires soon.
    pub guard_challenges: Counter,
    /// Streams ended because their token expired.
    pub guard_expired_ends: Counter,
}

impl ShardMetrics {
    pub fn guard_rejected(&self, why: Rejection) {
        self.guard_rejections[why.index()].inc();
    }
}

/// Why a guard refused a request, as the `reason` label of
/// `sse_kafka_guard_rejections_total` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No token (401).
    Missing,
    /// A token that does not verify (401 `invalid_token`).
    Token(TokenError),
    /// A token without a role or claim the route needs (403
    /// `insufficient_scope`).
    Scope,
    /// The guard's keys (from a URL) are not loaded yet (503).
    Unavailable,
}

impl Rejection {
    pub const COUNT: usize = TokenError::ALL.len() + 3;

    fn index(self) -> usize {
        match self {
            Rejection::Missing => 0,
            Rejection::Token(e) => 1 + TokenError::ALL.iter().position(|&a| a == e).unwrap_or(0),
            Rejection::Scope => Self::COUNT - 2,
            Rejection::Unavailable => Self::COUNT - 1,
        }
    }

    /// The label of counter number `index`.
    fn label_of(index: usize) -> &'static str {
        match index {
            0 => "missing",
            i if i == Self::COUNT - 2 => "insufficient_scope",
            i if i == Self::COUNT - 1 => "keys_unavailable",
            i => TokenError::ALL[i - 1].label(),
        }
    }
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    get: fn(&ShardMetrics) -> u64,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "sse_kafka_connections_open",
        help: "SSE streams currently open.",
        kind: "gauge",
        get: |m| m.connections_open.get(),
    },
    Family {
        name: "sse_kafka_stalled_readers",
        help: "Catch-up readers whose clients took nothing for a whole second: each holds at most one 32 KiB chunk until its client reads or max_lag ends it.",
        kind: "gauge",
        get: |m| m.stalled_readers.get(),
    },
    Family {
        name: "sse_kafka_connections_total",
        help: "SSE streams opened since start.",
        kind: "counter",
        get: |m| m.connections_total.get(),
    },
    Family {
        name: "sse_kafka_http_errors_total",
        help: "Requests answered with an HTTP error instead of a stream.",
        kind: "counter",
        get: |m| m.http_errors.get(),
    },
    Family {
        name: "sse_kafka_events_sent_total",
        help: "SSE events written to client sockets.",
        kind: "counter",
        get: |m| m.events_sent.get(),
    },
    Family {
        name: "sse_kafka_bytes_sent_total",
        help: "Bytes written to client sockets.",
        kind: "counter",
        get: |m| m.bytes_sent.get(),
    },
    Family {
        name: "sse_kafka_keepalives_sent_total",
        help: "Keep-alive comments queued.",
        kind: "counter",
        get: |m| m.keepalives_sent.get(),
    },
    Family {
        name: "sse_kafka_progress_events_total",
        help: "Id-only events queued to live streams whose filter passed over records, so a reconnect resumes after them.",
        kind: "counter",
        get: |m| m.progress_sent.get(),
    },
    Family {
        name: "sse_kafka_demotions_total",
        help: "Live streams turned into catch-up readers.",
        kind: "counter",
        get: |m| m.demotions.get(),
    },
    Family {
        name: "sse_kafka_mesh_full_total",
        help: "Batches refused by a full cross-shard queue.",
        kind: "counter",
        get: |m| m.mesh_full.get(),
    },
    Family {
        name: "sse_kafka_records_fetched_total",
        help: "Records fetched from Kafka.",
        kind: "counter",
        get: |m| m.records_fetched.get(),
    },
    Family {
        name: "sse_kafka_catchup_fetches_total",
        help: "Kafka fetches made for catch-up readers (shared by every reader that needs the same range).",
        kind: "counter",
        get: |m| m.catchup_fetches.get(),
    },
    Family {
        name: "sse_kafka_catchup_fetch_joins_total",
        help: "Catch-up reads that shared a Kafka fetch already under way.",
        kind: "counter",
        get: |m| m.catchup_fetch_joins.get(),
    },
    Family {
        name: "sse_kafka_offset_lookups_total",
        help: "Offset look-ups (a stream's start: earliest, or by since) asked of Kafka.",
        kind: "counter",
        get: |m| m.offset_lookups.get(),
    },
    Family {
        name: "sse_kafka_offset_lookup_joins_total",
        help: "Offset look-ups that shared one already under way for the same partition and query.",
        kind: "counter",
        get: |m| m.offset_lookup_joins.get(),
    },
    Family {
        name: "sse_kafka_catchup_cached_records_total",
        help: "Records catch-up readers read from the partition cache.",
        kind: "counter",
        get: |m| m.catchup_cached_records.get(),
    },
    Family {
        name: "sse_kafka_catchup_fetched_records_total",
        help: "Records catch-up readers read from Kafka fetches.",
        kind: "counter",
        get: |m| m.catchup_fetched_records.get(),
    },
    Family {
        name: "sse_kafka_cache_bytes",
        help: "Bytes of records held by the partition cache.",
        kind: "gauge",
        get: |m| m.cache_bytes.get(),
    },
    Family {
        name: "sse_kafka_slow_clients_ended_total",
        help: "Streams ended with an error event because the client fell behind by more than slow_client.max_lag.",
        kind: "counter",
        get: |m| m.slow_clients_ended.get(),
    },
    Family {
        name: "sse_kafka_topic_lookups_total",
        help: "Topic names a request named through a route's topic template that were looked up in Kafka (names Kafka said were missing are remembered until the next metadata refresh).",
        kind: "counter",
        get: |m| m.topic_lookups.get(),
    },
    Family {
        name: "sse_kafka_topic_metadata_requests_total",
        help: "Kafka metadata requests sent for those look-ups: one at a time, each asking about every name waiting (up to 256).",
        kind: "counter",
        get: |m| m.topic_metadata_requests.get(),
    },
    Family {
        name: "sse_kafka_hang_ups_total",
        help: "Streams ended because the client closed its end of the connection.",
        kind: "counter",
        get: |m| m.hang_ups.get(),
    },
    Family {
        name: "sse_kafka_topic_unavailable_ends_total",
        help: "Streams ended with an error event because their topic was unavailable for longer than kafka.unavailable_timeout.",
        kind: "counter",
        get: |m| m.topic_unavailable_ends.get(),
    },
    Family {
        name: "sse_kafka_connections_refused_full_total",
        help: "Connections answered 503 at accept because the connection cap (connections.max or the descriptor budget) was reached.",
        kind: "counter",
        get: |m| m.refused_full.get(),
    },
    Family {
        name: "sse_kafka_connections_refused_per_ip_total",
        help: "Connections answered 429 at accept because their address held connections.max_per_ip.",
        kind: "counter",
        get: |m| m.refused_per_ip.get(),
    },
    Family {
        name: "sse_kafka_batches_skipped_total",
        help: "Record batches that could not be decoded, skipped (their streams got event:gap).",
        kind: "counter",
        get: |m| m.batches_skipped.get(),
    },
    Family {
        name: "sse_kafka_kafka_errors_total",
        help: "Failed Kafka requests (retried).",
        kind: "counter",
        get: |m| m.kafka_errors.get(),
    },
    Family {
        name: "sse_kafka_guard_signature_checks_total",
        help: "Tokens verified against a guard's keys (one signature check each).",
        kind: "counter",
        get: |m| m.guard_signature_checks.get(),
    },
    Family {
        name: "sse_kafka_guard_token_cache_hits_total",
        help: "Tokens a guard had verified already and remembered (no signature check).",
        kind: "counter",
        get: |m| m.guard_cache_hits.get(),
    },
    Family {
        name: "sse_kafka_guard_challenges_total",
        help: "event:challenge sent to streams whose token expires soon.",
        kind: "counter",
        get: |m| m.guard_challenges.get(),
    },
    Family {
        name: "sse_kafka_guard_expired_streams_total",
        help: "Streams ended because their token expired.",
        kind: "counter",
        get: |m| m.guard_expired_ends.get(),
    },
];

/// Renders all families, one sample per family summed over shards.
pub fn render(shards: &[std::sync::Arc<ShardMetrics>]) -> String {
    let mut out = String::with_capacity(2048);
    for f in FAMILIES {
        let total: u64 = shards.iter().map(|m| (f.get)(m)).sum();
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        let _ = writeln!(out, "{} {}", f.name, total);
    }
    let _ = writeln!(
        out,
        "# HELP sse_kafka_guard_rejections_total Requests a guard refused, by reason.\n# TYPE sse_kafka_guard_rejections_total counter"
    );
    for i in 0..Rejection::COUNT {
        let total: u64 = shards.iter().map(|m| m.guard_rejections[i].get()).sum();
        let _ = writeln!(
            out,
            "sse_kafka_guard_rejections_total{{reason=\"{}\"}} {total}",
            Rejection::label_of(i)
        );
    }
    let ready = all_ready(shards);
    let _ = writeln!(
        out,
        "# HELP sse_kafka_ready 1 once Kafka metadata for every routed topic and every guard's keys are loaded."
    );
    let _ = writeln!(out, "# TYPE sse_kafka_ready gauge");
    let _ = writeln!(out, "sse_kafka_ready {}", u8::from(ready));
    let _ = writeln!(
        out,
        "# HELP sse_kafka_build_info The version and commit of the running binary (always 1).\n# TYPE sse_kafka_build_info gauge\nsse_kafka_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        crate::ops::build::VERSION,
        crate::ops::build::COMMIT
    );
    render_process(&mut out);
    out
}

/// The `process_*` families of the Prometheus client libraries (left out
/// when `/proc` cannot be read).
fn render_process(out: &mut String) {
    let Ok(p) = crate::sys::process::stats() else {
        return;
    };
    let mut family = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    family(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        p.cpu_seconds,
    );
    family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        p.resident_bytes as f64,
    );
    family(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        p.virtual_bytes as f64,
    );
    family(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        p.open_fds as f64,
    );
    if let Some(max) = p.max_fds {
        family(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max as f64,
        );
    }
    family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        p.start_time_seconds,
    );
}

pub fn all_ready(shards: &[std::sync::Arc<ShardMetrics>]) -> bool {
    shards.iter().all(|m| m.ready.load(Ordering::Relaxed)) && !keys_missing(shards)
}

/// Whether a guard with keys from a URL has none yet.
pub fn keys_missing(shards: &[std::sync::Arc<ShardMetrics>]) -> bool {
    shards
        .iter()
        .any(|m| m.keys_missing.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sums_over_shards_in_text_format() {
        let a = Arc::new(ShardMetrics::default());
        let b = Arc::new(ShardMetrics::default());
        a.events_sent.add(3);
        b.events_sent.add(4);
        a.connections_open.add(2);
        a.connections_open.sub(1);
        let text = render(&[a, b]);
        assert!(text.contains(
            "# TYPE sse_kafka_events_sent_total counter\nsse_kafka_events_sent_total 7\n"
        ));
        assert!(text.contains("sse_kafka_connections_open 1\n"));
        assert!(text.contains("sse_kafka_ready 0\n"));
        assert!(text.contains(&format!(
            "sse_kafka_build_info{{version=\"{}\",commit=\"{}\"}} 1\n",
            crate::ops::build::VERSION,
            crate::ops::build::COMMIT
        )));
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
        // Every sample line is `name value` or `name{label="..."} value`,
        // every family has HELP and TYPE; the counters are integers.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').expect("sample line");
            if name.starts_with("process_") {
                value.parse::<f64>().expect("number");
            } else {
                assert!(name.starts_with("sse_kafka_"), "{name}");
                value.parse::<u64>().expect("integer value");
            }
            let family = name.split('{').next().unwrap();
            assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
        }
    }

    #[test]
    fn guard_rejections_are_labelled_by_reason() {
        let a = Arc::new(ShardMetrics::default());
        let b = Arc::new(ShardMetrics::default());
        a.guard_rejected(Rejection::Token(TokenError::Expired));
        b.guard_rejected(Rejection::Token(TokenError::Expired));
        a.guard_rejected(Rejection::Missing);
        b.guard_rejected(Rejection::Scope);
        let text = render(&[a, b]);
        for want in [
            "sse_kafka_guard_rejections_total{reason=\"expired\"} 2\n",
            "sse_kafka_guard_rejections_total{reason=\"missing\"} 1\n",
            "sse_kafka_guard_rejections_total{reason=\"insufficient_scope\"} 1\n",
            "sse_kafka_guard_rejections_total{reason=\"signature\"} 0\n",
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
        // One sample per reason, each label once.
        let labels: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("sse_kafka_guard_rejections_total{reason=\""))
            .map(|l| l.split('"').next().unwrap())
            .collect();
        assert_eq!(labels.len(), Rejection::COUNT);
        let mut unique = labels.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), labels.len(), "{labels:?}");
    }
}
