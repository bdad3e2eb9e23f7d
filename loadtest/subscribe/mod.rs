//! The subscribers: K SSE connections spread round-robin over pinned
//! threads, one per CPU, each running an epoll loop (mio) over its share.
//! Each connection sends a plain HTTP/1.1 GET (with its bearer token when
//! the run has tokens), checks the response head, then feeds the body to
//! the main crate's SSE parser (borrowed events: no allocation per event);
//! every event's value is stamped by the producer (see `value`), so the
//! connection records end-to-end latency and checks each partition's
//! sequence (see `track`). A connection that drops (by
//! design, `--drop-fraction`, or because the stream broke) reconnects with
//! `Last-Event-ID` and keeps its tracker, so the resume is checked exactly.
//!
//! The opening — from the first connect to the K-th connection's first
//! response head — is timed too: K over its length is the rate at which
//! the proxy admits connections (its accept, request parsing, a guard's
//! token check, the stream's start). `--connect-concurrency` keeps at
//! most N first attempts waiting at once, so that a burst of K connects
//! does not overflow the proxy's SYN and accept queues: overflowed SYNs
//! come back after the kernel's 1 s retransmission timeout, which would
//! then be what the opening measures.
//!
//! `worker` is one thread's share of the connections and their epoll loop
//! (and why epoll); this module runs the threads and sums their results.

mod worker;

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use hdrhistogram::Histogram;

use crate::report::{self, Summary};
use crate::target::Target;
use crate::tokens::Tokens;

use worker::{ExecResult, Subscribers};

/// Whether connection `index` is one of the `fraction` that drop and resume:
/// selects floor(K·fraction) connections spread evenly over the indices (so
/// over the executors too).
pub fn drops(index: usize, fraction: f64) -> bool {
    let f = fraction.clamp(0.0, 1.0);
    (((index + 1) as f64) * f).floor() > ((index as f64) * f).floor()
}

#[derive(Debug, Clone)]
pub struct SubscribeConfig {
    pub target: Target,
    pub connections: usize,
    pub cpus: Vec<usize>,
    /// Source addresses to bind, round-robin; empty lets the kernel choose.
    pub sources: Vec<IpAddr>,
    pub warmup: Duration,
    pub window: Duration,
    pub drop_fraction: f64,
    /// Extra clients that each connect once during the window, spread
    /// evenly over its middle half, and measure connect-to-first-byte.
    pub extra: usize,
    /// After events arrive, keep polling without sleeping for this long
    /// before blocking in `epoll_wait` again (0: always block).
    pub spin: Duration,
    /// At most this many connections wait for their first response head
    /// at once, over all threads (split evenly; 0: all open at once).
    pub connect_concurrency: usize,
    /// Connection `i` sends token `i mod n`, extra client `j` token
    /// `(connections + j) mod n` (none: no `authorization`).
    pub tokens: Tokens,
}

/// One thread's opening: when its first connect started, and when the
/// last of its connections got its first response head.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Opening {
    pub(super) first_connect: Option<Instant>,
    /// Connections that got a first head.
    pub(super) answered: usize,
    pub(super) last_answer: Option<Instant>,
}

/// Instants shared by every thread, from one origin.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    measure_from: Instant,
    drop_at: Instant,
    end: Instant,
}

/// Cross-thread counters for the progress line.
#[derive(Debug)]
pub struct Live {
    /// Events inside the measurement window so far.
    pub events: AtomicU64,
    /// Connections with a stream open now.
    pub open: AtomicU64,
    pub errors: AtomicU64,
    /// Latency so far, published by the threads every `PUBLISH_EVERY`.
    pub latency: Mutex<Histogram<u64>>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            events: AtomicU64::new(0),
            open: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: Mutex::new(report::new_histogram()),
        }
    }
}

/// Runs the subscribers for warm-up + window and returns the report
/// (`produced` left empty). Blocks the calling thread.
pub fn run(cfg: SubscribeConfig, live: Arc<Live>) -> anyhow::Result<Summary> {
    if cfg.cpus.is_empty() {
        bail!("no CPUs to run subscribers on");
    }
    let start = Instant::now();
    let timeline = Timeline {
        measure_from: start + cfg.warmup,
        drop_at: start + cfg.warmup + cfg.window / 2,
        end: start + cfg.warmup + cfg.window,
    };
    let cfg = Arc::new(cfg);
    let mut handles = Vec::with_capacity(cfg.cpus.len());
    for (e, &cpu) in cfg.cpus.iter().enumerate() {
        // Connection i runs on thread i % N and binds source i % S.
        let indices: Vec<usize> = (e..cfg.connections).step_by(cfg.cpus.len()).collect();
        let cfg = Arc::clone(&cfg);
        let live = Arc::clone(&live);
        let handle = std::thread::Builder::new()
            .name(format!("sub-{cpu}"))
            .spawn(move || -> anyhow::Result<ExecResult> {
                sse_kafka::sys::cpus::pin_current_thread(cpu)
                    .with_context(|| format!("pinning a subscriber thread to CPU {cpu}"))?;
                Subscribers::new(cfg, e, &indices, live, timeline)?.run()
            })
            .context("starting a subscriber thread")?;
        handles.push(handle);
    }
    let mut results = Vec::with_capacity(handles.len());
    for h in handles {
        let result = h
            .join()
            .map_err(|_| anyhow::anyhow!("a subscriber thread panicked"))?;
        results.push(result?);
    }

    let mut summary = Summary {
        connections: cfg.connections as u64,
        events: 0,
        seconds: cfg.window.as_secs_f64(),
        latency: report::merge(results.iter().map(|r| &r.latency)),
        connect: report::merge(results.iter().map(|r| &r.connect)),
        per_connection_min: u64::MAX,
        per_connection_max: 0,
        loss: 0,
        duplicates: 0,
        resumes: 0,
        resume_errors: 0,
        errors: 0,
        warmup_errors: 0,
        produced: None,
        produce_failed: 0,
        lowest_last: Default::default(),
        opening: opening(cfg.connections, cfg.connect_concurrency, &results),
        extra: (cfg.extra > 0).then(|| report::Extra {
            connections: cfg.extra as u64,
            first_byte: report::merge(results.iter().map(|r| &r.first_byte)),
            errors: results.iter().map(|r| r.extra_errors).sum(),
        }),
    };
    for r in &results {
        summary.events += r.events;
        summary.errors += r.errors;
        summary.warmup_errors += r.warmup_errors;
        for &n in &r.per_connection {
            summary.per_connection_min = summary.per_connection_min.min(n);
            summary.per_connection_max = summary.per_connection_max.max(n);
        }
        for t in &r.trackers {
            for (p, last) in t.lasts() {
                let lowest = summary.lowest_last.entry(p).or_insert(last);
                *lowest = (*lowest).min(last);
            }
            summary.loss += t.loss;
            summary.duplicates += t.duplicates;
            summary.resumes += t.resumes;
            summary.resume_errors += t.resume_errors;
        }
    }
    if summary.per_connection_min == u64::MAX {
        summary.per_connection_min = 0;
    }
    Ok(summary)
}

/// The threads' openings as one: from the earliest first connect to the
/// latest first head, when every connection got one.
fn opening(connections: usize, concurrency: usize, results: &[ExecResult]) -> report::Opening {
    let answered: usize = results.iter().map(|r| r.opening.answered).sum();
    let first = results.iter().filter_map(|r| r.opening.first_connect).min();
    let last = results.iter().filter_map(|r| r.opening.last_answer).max();
    let seconds = match (first, last) {
        (Some(first), Some(last)) if answered == connections => {
            Some(last.saturating_duration_since(first).as_secs_f64())
        }
        _ => None,
    };
    report::Opening {
        answered: answered as u64,
        seconds,
        concurrency: (concurrency > 0).then_some(concurrency as u64),
    }
}

/// When extra client `j` of `n` connects: evenly over the middle half of
/// the window, so they meet the fan-out in full swing.
fn extra_instant(timeline: Timeline, j: usize, n: usize) -> Instant {
    let window = timeline.end - timeline.measure_from;
    let offset = window / 4 + window.mul_f64(j as f64 / n.max(1) as f64) / 2;
    timeline.measure_from + offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_selection_is_even_and_exact() {
        let cases = [
            (100, 0.1, 10),
            (100, 0.0, 0),
            (100, 1.0, 100),
            (7, 0.5, 3),
            (1000, 0.25, 250),
        ];
        for (k, f, want) in cases {
            let picked: Vec<usize> = (0..k).filter(|&i| drops(i, f)).collect();
            assert_eq!(picked.len(), want, "k={k} f={f}");
        }
        // 10 % of 100 is every tenth connection, not the first ten.
        let picked: Vec<usize> = (0..100).filter(|&i| drops(i, 0.1)).collect();
        assert_eq!(picked, vec![9, 19, 29, 39, 49, 59, 69, 79, 89, 99]);
    }

    #[test]
    fn extra_clients_spread_over_the_middle_half() {
        let t0 = Instant::now();
        let timeline = Timeline {
            measure_from: t0,
            drop_at: t0 + Duration::from_secs(10),
            end: t0 + Duration::from_secs(20),
        };
        let at: Vec<Duration> = (0..4).map(|j| extra_instant(timeline, j, 4) - t0).collect();
        let secs: Vec<f64> = at.iter().map(Duration::as_secs_f64).collect();
        assert_eq!(secs, vec![5.0, 7.5, 10.0, 12.5]);
    }
}
