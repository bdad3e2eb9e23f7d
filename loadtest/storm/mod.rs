//! The reconnect storm: how the proxy serves N clients that all come back
//! at once with ids a few thousand records behind the head — what happens
//! after a load balancer drops every stream, or an instance is replaced.
//!
//! Three phases, each bounded by `--timeout`:
//!
//! 1. *connect*: N SSE connections open to `--url`; once all are answered,
//!    this process's producer writes (at `--rate`) until every partition
//!    has a record, then pauses while the connections read until every one
//!    has an event of every partition (see `Kickoff` for why it pauses).
//!    That gives the sequence tracker (see `track`) a baseline on each
//!    partition, so the resume is checked exactly on all of them, not only
//!    on the one partition of a connection's first event.
//! 2. *gap*: every connection hangs up at once; the producer resumes until
//!    `--behind` more records are acknowledged, then stops, so the head of
//!    every partition is fixed and known (`ProduceStats::heads`).
//! 3. *storm*: all N reconnect at once — to `--resume-url`, which may be
//!    another instance — each with `Last-Event-ID` set to the last event it
//!    parsed, and keep their tracker; a connection is complete when its
//!    tracker has reached the head on every partition. A failed attempt
//!    (refused, no head in time, non-200, stream ended) is counted and
//!    retried after a short backoff with the newest id, as an EventSource
//!    would.
//!
//! The proxy's catch-up counters are scraped from its admin listener just
//! before and after phase 3 and reported as deltas: they tell whether the
//! storm was served from the partition cache or by Kafka fetches, and how
//! many readers shared a fetch.
//!
//! Threads: connection `i` lives on thread `i % threads` (one pinned thread
//! per `--cpus` entry, as in `subscribe`), which runs a mio (epoll) loop
//! over its share. Phases 1 and 3 run on scoped threads that borrow the
//! workers; the calling thread runs phase 2 and the scrapes in between, so
//! no connection state crosses threads while a phase runs.
//!
//! The parts: `kickoff` (phase 1's pauses of the producer), `goal` (what a
//! phase waits for), `conn` (one connection and the events it parses),
//! `tally` (a thread's counters), `worker` (a thread's epoll loop),
//! `scrape` (the proxy's catch-up counters) and `report` (`StormReport`).

mod conn;
mod goal;
mod kickoff;
mod report;
mod scrape;
mod tally;
mod worker;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::produce::{ProduceStats, ProducedWait};
use crate::target::Target;
use crate::tokens::Tokens;

use conn::Conn;
use goal::{missing, Goal};
use kickoff::Kickoff;
pub use report::StormReport;
use scrape::scrape_or_warn;
use tally::Tally;
use worker::Worker;

/// Longest SSE line accepted beyond `--value-size`: room for the `data:`
/// prefix and for an `id:` line, which grows with the partition count (a
/// few bytes per partition). Bounds each connection's parser buffer —
/// the parser's own default (1 MiB) times 15,000 connections would be 15 GB.
const LINE_SLACK: usize = 64 << 10;
/// After the stop, how long the producer may take to drain its in-flight
/// requests (its own drain grace is 5 s).
const PRODUCER_STOP_GRACE: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct StormConfig {
    /// Where phase 1 connects.
    pub target: Target,
    /// Where phase 3 reconnects (the same, or another instance).
    pub resume_target: Target,
    pub connections: usize,
    pub cpus: Vec<usize>,
    /// Source addresses to bind, round-robin; empty lets the kernel choose.
    pub sources: Vec<IpAddr>,
    /// Records to produce between the hang-up and the reconnect.
    pub behind: u64,
    /// Bound of each phase.
    pub timeout: Duration,
    /// `host:port` of the admin listener of the instance phase 3 talks to.
    pub admin: Option<String>,
    /// Longest SSE line accepted (see `LINE_SLACK`).
    pub max_line: usize,
    /// Connection `i` sends token `i mod n` in every phase, to both
    /// targets (none: no `authorization`).
    pub tokens: Tokens,
}

impl StormConfig {
    /// The line bound for values of `value_size` bytes.
    pub fn max_line_for(value_size: usize) -> usize {
        value_size.saturating_add(LINE_SLACK)
    }
}

/// The producer thread this run controls: phase 2 waits for its progress
/// and stops it.
pub struct Producer {
    pub stats: Arc<ProduceStats>,
    pub stop: Arc<AtomicBool>,
    pub handle: thread::JoinHandle<anyhow::Result<()>>,
}

/// Stops the producer when the run ends early (an error return).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs the three phases and returns the report. Blocks the calling thread.
pub fn run(cfg: StormConfig, producer: Producer) -> anyhow::Result<StormReport> {
    if cfg.cpus.is_empty() {
        bail!("no CPUs to run connections on");
    }
    let Producer {
        stats,
        stop,
        handle,
    } = producer;
    let _stop = StopOnDrop(Arc::clone(&stop));
    let threads = cfg.cpus.len();
    let max_line = cfg.max_line;
    let mut workers = cfg
        .cpus
        .iter()
        .enumerate()
        .map(|(t, &cpu)| {
            let conns = (t..cfg.connections)
                .step_by(threads)
                .map(|i| Conn::new(i, max_line))
                .collect();
            Worker::new(cpu, conns, max_line, cfg.tokens.clone())
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    // Phase 1: connect, then let the producer write one record per
    // partition, and read until every connection has them all.
    let started = Instant::now();
    let kickoff = Kickoff::new(&stats, cfg.connections);
    let goal = Goal::Baselines(&kickoff);
    run_workers(&mut workers, &cfg, &cfg.target, goal, started + cfg.timeout)?;
    let connect_seconds = started.elapsed().as_secs_f64();
    let connect = Tally::sum(workers.iter().map(|w| &w.tally));
    let ready = kickoff.ready.load(Ordering::Relaxed);
    if ready < cfg.connections {
        if stats.finished() {
            let result = handle.join().expect("producer thread panicked");
            result.context("the producer ended during phase 1")?;
            bail!("the producer ended during phase 1 (is --timeout longer than the run?)");
        }
        bail!(
            "phase 1: {} of {} connections answered, {ready} had an event of every partition, within {:?}",
            kickoff.answered.load(Ordering::Relaxed),
            cfg.connections,
            cfg.timeout
        );
    }
    eprintln!(
        "storm: phase 1: {} connections have every partition after {connect_seconds:.1} s ({} errors); all hung up",
        cfg.connections, connect.errors
    );

    // Phase 2: the gap. Every id is now fixed; produce `behind` more.
    let disconnected_at = stats.produced.load(Ordering::Relaxed);
    stats.paused.store(false, Ordering::Relaxed);
    let gap_deadline = Instant::now() + cfg.timeout;
    match stats.wait_produced(disconnected_at.saturating_add(cfg.behind), gap_deadline) {
        ProducedWait::Reached => {}
        ProducedWait::ProducerEnded => {
            handle.join().expect("producer thread panicked")?;
            bail!(
                "phase 2: the producer ended before {} more records",
                cfg.behind
            );
        }
        ProducedWait::Deadline => bail!(
            "phase 2: fewer than {} records produced within {:?}",
            cfg.behind,
            cfg.timeout
        ),
    }
    stop.store(true, Ordering::Relaxed);
    if !stats.wait_finished(Instant::now() + PRODUCER_STOP_GRACE) {
        bail!("phase 2: the producer did not stop within {PRODUCER_STOP_GRACE:?}");
    }
    handle
        .join()
        .expect("producer thread panicked")
        .context("producer")?;
    let produced = stats.produced.load(Ordering::Relaxed);
    let produce_failed = stats.failed.load(Ordering::Relaxed);
    let heads: Vec<(u32, u64)> = stats.heads().into_iter().collect();
    if let Some(partitions) = stats.partitions.get() {
        for p in partitions {
            if !heads.iter().any(|&(hp, _)| hp == *p) {
                bail!("phase 2: nothing acknowledged on partition {p}");
            }
        }
    }
    let behind = produced - disconnected_at;
    let (missing_min, missing_max) = workers
        .iter()
        .flat_map(|w| &w.conns)
        .map(|c| missing(&c.tracker, &heads))
        .fold((u64::MAX, 0), |(lo, hi), m| (lo.min(m), hi.max(m)));
    eprintln!(
        "storm: phase 2: {behind} records produced since the hang-up; connections miss {missing_min}..{missing_max} records each"
    );

    // Phase 3: the storm, between two scrapes of the catch-up counters.
    let before = cfg.admin.as_deref().and_then(scrape_or_warn);
    let storm_start = Instant::now();
    let storm_end = storm_start + cfg.timeout;
    run_workers(
        &mut workers,
        &cfg,
        &cfg.resume_target,
        Goal::Heads(&heads),
        storm_end,
    )?;
    let storm_over = Instant::now();
    let after = cfg.admin.as_deref().and_then(scrape_or_warn);
    let proxy = match (before, after) {
        (Some(before), Some(after)) => match after.since(&before) {
            Ok(delta) => Some(delta),
            Err(e) => {
                eprintln!("storm: {e}");
                None
            }
        },
        _ => None,
    };

    let storm = Tally::sum(workers.iter().map(|w| &w.tally));
    let conns = || workers.iter().flat_map(|w| &w.conns);
    let first_start = conns().filter_map(|c| c.storm.started).min();
    let last_done = conns().filter_map(|c| c.storm.completed).max();
    let end = if storm.completed as usize == cfg.connections {
        last_done.unwrap_or(storm_over)
    } else {
        storm_over
    };
    let mut report = StormReport {
        connections: cfg.connections as u64,
        behind,
        missing_min: if missing_min == u64::MAX {
            0
        } else {
            missing_min
        },
        missing_max,
        produced,
        produce_failed,
        connect_seconds,
        connect_errors: connect.errors + connect.bad_events,
        resumed: storm.resumed,
        completed: storm.completed,
        errors: storm.errors,
        bad_events: storm.bad_events,
        loss: 0,
        duplicates: 0,
        resumes: 0,
        resume_errors: 0,
        storm_seconds: first_start.map_or(0.0, |s| end.saturating_duration_since(s).as_secs_f64()),
        catchup: storm.catchup,
        head: storm.head,
        events_received: storm.events,
        proxy,
    };
    for c in conns() {
        report.loss += c.tracker.loss;
        report.duplicates += c.tracker.duplicates;
        report.resumes += c.tracker.resumes;
        report.resume_errors += c.tracker.resume_errors;
    }
    Ok(report)
}

/// Runs one phase on every worker, each on its own pinned thread.
fn run_workers(
    workers: &mut [Worker],
    cfg: &StormConfig,
    target: &Target,
    goal: Goal<'_>,
    deadline: Instant,
) -> anyhow::Result<()> {
    thread::scope(|scope| {
        let mut handles = Vec::with_capacity(workers.len());
        for worker in workers.iter_mut() {
            let cpu = worker.cpu;
            let handle = thread::Builder::new()
                .name(format!("storm-{cpu}"))
                .spawn_scoped(scope, move || -> anyhow::Result<()> {
                    sse_kafka::sys::cpus::pin_current_thread(cpu)
                        .with_context(|| format!("pinning a storm thread to CPU {cpu}"))?;
                    worker.run_phase(target, &cfg.sources, goal, deadline)
                })
                .context("starting a storm thread")?;
            handles.push(handle);
        }
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a storm thread panicked"))??;
        }
        Ok(())
    })
}

/// Producer statistics for a storm: the producer starts paused, and phase
/// 1 decides when it writes (see `Kickoff`).
pub fn paused_producer_stats() -> Arc<ProduceStats> {
    let stats = ProduceStats::default();
    stats.paused.store(true, Ordering::Relaxed);
    Arc::new(stats)
}
