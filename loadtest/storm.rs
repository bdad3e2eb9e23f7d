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

use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, TcpStream as StdTcpStream, ToSocketAddrs as _};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde_json::json;
use sse_kafka::sse::{ParseError, Parser};

use crate::produce::{ProduceStats, ProducedWait};
use crate::report::{self, percentiles_ms, round3};
use crate::response::{self, BodyError, HeadBuf};
use crate::subscribe::{build_request, connect_socket, write_request, Target};
use crate::track::{SeqTracker, MAX_PARTITIONS};
use crate::value;

/// One read buffer per thread, shared by its connections (the parser keeps
/// partial lines): a catching-up socket holds a lot, so read it in big bites.
const READ_BUF: usize = 64 << 10;
/// Longest SSE line accepted beyond `--value-size`: room for the `data:`
/// prefix and for an `id:` line, which grows with the partition count (a
/// few bytes per partition). Bounds each connection's parser buffer —
/// the parser's own default (1 MiB) times 15,000 connections would be 15 GB.
const LINE_SLACK: usize = 64 << 10;
/// From the connect to the end of the response head; a connection past it
/// is counted as an error and retried. An EventSource has no such timeout
/// of its own (only the kernel's, ~2 min of SYN retries), and a storm keeps
/// thousands of finished handshakes waiting in the proxy's accept queue for
/// seconds (measured: 2,000 at once drain at ~500/s while the proxy serves
/// catch-up) — giving up early would only add reconnects to the storm. 30 s
/// also covers four SYN retransmissions (1+2+4+8 s) when the queue overflows.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause before retrying a failed attempt, so a refusing server is not
/// hammered by every connection in a tight loop.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// Longest poll wait: how late a thread may notice that phase 1 is over
/// (decided by all threads together) and that retries or deadlines are due.
const CHECK_EVERY: Duration = Duration::from_millis(10);
/// Only the first few errors per thread and phase are printed; all count.
const MAX_LOGGED_ERRORS: u64 = 5;
/// Reads one connection gets per turn before the others get theirs. A
/// catching-up socket refills as fast as it is drained, so reading each to
/// `WouldBlock` would serve the connections one after the other, and every
/// later connection's head would wait for the earlier ones' whole catch-up
/// (the client's order, not the proxy's). 4 reads is up to 256 KiB.
const READS_PER_TURN: u32 = 4;
/// Turns of cut-short connections between two polls: few enough that a
/// poll — where response heads and new connections show up — comes every
/// few tens of ms even when thousands of sockets are full (64 turns of up
/// to 4 reads, about 0.3 ms of parsing each), so head times are the
/// proxy's, not the length of this thread's round.
const TURNS_PER_POLL: usize = 64;
/// Events per `epoll_wait`.
const EVENTS_PER_POLL: usize = 1024;
/// The whole scrape of `/metrics` (connect, request, response). Generous:
/// the admin listener shares shard 0 with the storm's catch-up work, and a
/// scrape right after a storm that timed out once took longer than 5 s.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);
/// A metrics response larger than this is an error (the proxy's is ~3 KB).
const MAX_METRICS_RESPONSE: usize = 1 << 20;
/// After the stop, how long the producer may take to drain its in-flight
/// requests (its own drain grace is 5 s).
const PRODUCER_STOP_GRACE: Duration = Duration::from_secs(15);
/// Bad events quoted in the log are cut to this many bytes.
const MAX_QUOTED: usize = 200;

/// The proxy's catch-up counters, by Prometheus family name.
const FETCHES: &str = "sse_kafka_catchup_fetches_total";
const FETCH_JOINS: &str = "sse_kafka_catchup_fetch_joins_total";
const CACHED_RECORDS: &str = "sse_kafka_catchup_cached_records_total";
const FETCHED_RECORDS: &str = "sse_kafka_catchup_fetched_records_total";

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
            Worker::new(cpu, conns, max_line)
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
                    sse_kafka::cpus::pin_current_thread(cpu)
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

/// Phase 1's progress over all threads, and the producer's pauses it
/// decides. Why pause: read live, a stream is only as current as the proxy
/// and this reader manage, and N streams of `--rate` records each are far
/// beyond both at large N (15,000 × 2,000 events/s), so the ids at the
/// hang-up would lag the head by however long phase 1 took (measured: ~32k
/// records at N=15,000), not by `--behind`. So the producer waits until
/// every connection is answered, writes until each partition has a record,
/// and waits again while the connections read those few: at the hang-up
/// every connection is at the head, and phase 2 puts exactly `--behind`
/// records between its ids and the new head.
struct Kickoff<'a> {
    producer: &'a ProduceStats,
    total: usize,
    /// Connections that got a response head.
    answered: AtomicUsize,
    /// Connections with a baseline on every partition.
    ready: AtomicUsize,
    /// Where the producer is (see `KickoffStep`).
    step: AtomicU8,
}

/// The producer's steps in phase 1, in order.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KickoffStep {
    /// Paused until every connection is answered.
    Waiting = 0,
    /// Writing until every partition has a record.
    Writing = 1,
    /// Paused while the connections read them (phase 2 resumes it).
    Paused = 2,
}

impl<'a> Kickoff<'a> {
    fn new(producer: &'a ProduceStats, total: usize) -> Self {
        Self {
            producer,
            total,
            answered: AtomicUsize::new(0),
            ready: AtomicUsize::new(0),
            step: AtomicU8::new(KickoffStep::Waiting as u8),
        }
    }

    /// Moves the producer on when its condition holds; every thread calls
    /// it on every loop turn, and only the first to see a step change acts.
    fn steer(&self) {
        let step = self.step.load(Ordering::Relaxed);
        let next = if step == KickoffStep::Waiting as u8 {
            if self.answered.load(Ordering::Relaxed) < self.total {
                return;
            }
            KickoffStep::Writing
        } else if step == KickoffStep::Writing as u8 {
            let Some(partitions) = self.producer.partitions.get() else {
                return;
            };
            let heads = self.producer.heads();
            if !partitions.iter().all(|p| heads.contains_key(p)) {
                return;
            }
            KickoffStep::Paused
        } else {
            return;
        };
        if self
            .step
            .compare_exchange(step, next as u8, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            let paused = next == KickoffStep::Paused;
            self.producer.paused.store(paused, Ordering::Relaxed);
        }
    }

    fn done(&self) -> bool {
        self.ready.load(Ordering::Relaxed) >= self.total || self.producer.finished()
    }
}

/// What a phase waits for.
#[derive(Clone, Copy)]
enum Goal<'a> {
    /// Phase 1: every connection over all threads has a baseline on every
    /// partition the producer writes.
    Baselines(&'a Kickoff<'a>),
    /// Phase 3: this thread's connections have reached these heads
    /// (partition, one past the last sequence number).
    Heads(&'a [(u32, u64)]),
}

/// Whether the tracker has a baseline on each of `partitions`.
fn has_baselines(tracker: &SeqTracker, partitions: &[u32]) -> bool {
    partitions.iter().all(|&p| tracker.last(p).is_some())
}

/// Whether the tracker has reached every head (partition, one past the
/// last sequence number produced). A partition with head 0 has nothing to
/// reach.
fn caught_up(tracker: &SeqTracker, heads: &[(u32, u64)]) -> bool {
    heads
        .iter()
        .all(|&(p, head)| head == 0 || tracker.last(p).is_some_and(|last| last + 1 >= head))
}

/// Records the tracker still lacks to reach the heads (a partition without
/// a baseline lacks all of its records).
fn missing(tracker: &SeqTracker, heads: &[(u32, u64)]) -> u64 {
    heads
        .iter()
        .map(|&(p, head)| match tracker.last(p) {
            Some(last) => head.saturating_sub(last + 1),
            None => head,
        })
        .sum()
}

/// Where a connection is in its life.
enum State {
    /// Not connected; `retry_at` is when to try again (`None`: parked until
    /// the next phase starts it).
    Idle {
        retry_at: Option<Instant>,
    },
    /// Connecting, then sending the request (`sent` bytes of it so far).
    Requesting {
        stream: TcpStream,
        sent: usize,
        deadline: Instant,
    },
    /// Reading the response head.
    Head {
        stream: TcpStream,
        head: HeadBuf,
        deadline: Instant,
    },
    Streaming {
        stream: TcpStream,
    },
}

/// Phase 3 progress of one connection.
#[derive(Debug, Default, Clone, Copy)]
struct StormProgress {
    /// The first reconnect attempt began.
    started: Option<Instant>,
    /// The tracker reached every head.
    completed: Option<Instant>,
}

/// One connection: its socket state plus what outlives its reconnections.
struct Conn {
    /// The connection's number over all threads (source address choice).
    index: usize,
    state: State,
    request: Vec<u8>,
    parser: Parser,
    /// The id to resume from, once a stream has given one.
    resume_id: Option<String>,
    tracker: SeqTracker,
    /// Got a response head in the current phase (counted once per phase).
    answered: bool,
    /// Phase 1: has a baseline on every partition (counted once).
    ready: bool,
    storm: StormProgress,
    /// In the worker's `unfinished` queue.
    queued: bool,
}

impl Conn {
    fn new(index: usize, max_line: usize) -> Self {
        Self {
            index,
            state: State::Idle { retry_at: None },
            request: Vec::with_capacity(256),
            parser: Parser::new().with_max_line(max_line),
            resume_id: None,
            tracker: SeqTracker::new(),
            answered: false,
            ready: false,
            storm: StormProgress::default(),
            queued: false,
        }
    }

    /// Ends the current attempt (closing its socket), keeping the newest id;
    /// retries at `retry_at`.
    fn close(&mut self, retry_at: Option<Instant>) {
        // The parser is replaced only when the next head arrives, so an
        // attempt that ends before its first event keeps the older id.
        if let Some(id) = self.parser.last_event_id() {
            if self.resume_id.as_deref() != Some(id) {
                self.resume_id = Some(id.to_owned());
            }
        }
        self.state = State::Idle { retry_at };
    }
}

/// Counters of one thread for one phase.
struct Tally {
    /// Failed attempts: connect errors, bad or late heads, broken streams.
    errors: u64,
    /// Events without a load stamp: `event:` control events (reset, gap,
    /// error) or foreign data. A clean run has none.
    bad_events: u64,
    /// Stamped events received.
    events: u64,
    /// Connections that got a response head (phase 3).
    resumed: u64,
    /// Connections that reached every head (phase 3).
    completed: u64,
    /// Phase 3, per connection: first attempt to its first head (µs).
    head: Histogram<u64>,
    /// Phase 3, per connection: first attempt to completion (µs).
    catchup: Histogram<u64>,
    logged: u64,
}

impl Tally {
    fn new() -> Self {
        Self {
            errors: 0,
            bad_events: 0,
            events: 0,
            resumed: 0,
            completed: 0,
            head: report::new_histogram(),
            catchup: report::new_histogram(),
            logged: 0,
        }
    }

    fn sum<'a>(tallies: impl Iterator<Item = &'a Tally> + Clone) -> Tally {
        let mut total = Tally::new();
        for t in tallies.clone() {
            total.errors += t.errors;
            total.bad_events += t.bad_events;
            total.events += t.events;
            total.resumed += t.resumed;
            total.completed += t.completed;
        }
        total.head = report::merge(tallies.clone().map(|t| &t.head));
        total.catchup = report::merge(tallies.map(|t| &t.catchup));
        total
    }

    fn log(&mut self, what: std::fmt::Arguments<'_>) {
        self.logged += 1;
        if self.logged <= MAX_LOGGED_ERRORS {
            eprintln!("storm: {what}");
        }
    }
}

fn record_us(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(report::LOWEST_US, report::HIGHEST_US);
    // Clamped to the histogram's bounds: cannot fail.
    let _ = h.record(us);
}

/// One thread's connections and their epoll loop.
struct Worker {
    cpu: usize,
    poll: Poll,
    conns: Vec<Conn>,
    buf: Vec<u8>,
    max_line: usize,
    /// Connections whose turn ended with bytes perhaps still unread (edge
    /// triggered: no new event will come for them), served in order after
    /// each poll.
    unfinished: std::collections::VecDeque<usize>,
    /// The counters of the phase that ran last.
    tally: Tally,
}

/// What a connection does after a step.
enum Next {
    /// Try the next step at once.
    Again,
    /// Bytes were read: go on while the turn's read budget lasts.
    Read,
    /// Wait for the next readiness.
    Wait,
    /// The attempt failed.
    Fail(anyhow::Error),
}

impl Worker {
    fn new(cpu: usize, conns: Vec<Conn>, max_line: usize) -> anyhow::Result<Self> {
        Ok(Self {
            cpu,
            poll: Poll::new().context("creating the epoll instance")?,
            conns,
            buf: vec![0; READ_BUF],
            max_line,
            unfinished: std::collections::VecDeque::new(),
            tally: Tally::new(),
        })
    }

    /// Starts every connection and runs the loop until the goal or the
    /// deadline; then hangs every connection up.
    fn run_phase(
        &mut self,
        target: &Target,
        sources: &[IpAddr],
        goal: Goal<'_>,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        self.tally = Tally::new();
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        // As fast as non-blocking connects go: every connect is issued
        // before the first event is handled.
        let now = Instant::now();
        for k in 0..self.conns.len() {
            self.conns[k].answered = false;
            self.start(k, target, sources, goal, now);
        }
        let mut next_check = Instant::now();
        loop {
            let now = Instant::now();
            if now >= deadline || self.reached(goal) {
                break;
            }
            if now >= next_check {
                self.housekeeping(target, sources, goal, now);
                next_check = now + CHECK_EVERY;
            }
            let timeout = if self.unfinished.is_empty() {
                CHECK_EVERY.min(deadline.saturating_duration_since(now))
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("epoll_wait"),
            }
            for event in &events {
                self.ready(event.token().0, goal);
            }
            // Turns for some connections cut short earlier (in order; those
            // cut short now go to the back), then poll again.
            for _ in 0..self.unfinished.len().min(TURNS_PER_POLL) {
                let Some(k) = self.unfinished.pop_front() else {
                    break;
                };
                self.conns[k].queued = false;
                self.ready(k, goal);
            }
        }
        self.unfinished.clear();
        for conn in &mut self.conns {
            conn.queued = false;
            conn.close(None);
        }
        Ok(())
    }

    fn reached(&self, goal: Goal<'_>) -> bool {
        match goal {
            Goal::Baselines(kickoff) => {
                kickoff.steer();
                kickoff.done()
            }
            Goal::Heads(_) => self.tally.completed as usize == self.conns.len(),
        }
    }

    /// Opens connection `k` (a fresh one, or a resume with its newest id).
    fn start(
        &mut self,
        k: usize,
        target: &Target,
        sources: &[IpAddr],
        goal: Goal<'_>,
        now: Instant,
    ) {
        let conn = &mut self.conns[k];
        if matches!(goal, Goal::Heads(_)) {
            conn.storm.started.get_or_insert(now);
        }
        let source = (!sources.is_empty()).then(|| sources[conn.index % sources.len()]);
        let opened = connect_socket(target.addr, source)
            .map(|socket| TcpStream::from_std(std::net::TcpStream::from(socket)))
            .and_then(|mut stream| {
                self.poll.registry().register(
                    &mut stream,
                    Token(k),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                Ok(stream)
            });
        match opened {
            Ok(stream) => {
                if conn.resume_id.is_some() {
                    conn.tracker.begin_resume();
                }
                build_request(&mut conn.request, target, conn.resume_id.as_deref());
                conn.state = State::Requesting {
                    stream,
                    sent: 0,
                    deadline: now + HEAD_TIMEOUT,
                };
            }
            Err(e) => {
                let e = anyhow::Error::new(e)
                    .context(format!("connecting to {} from {source:?}", target.addr));
                self.fail(k, e, now);
            }
        }
    }

    /// Retries that are due, and attempts past their deadline.
    fn housekeeping(&mut self, target: &Target, sources: &[IpAddr], goal: Goal<'_>, now: Instant) {
        for k in 0..self.conns.len() {
            match &self.conns[k].state {
                State::Idle { retry_at: Some(at) } if *at <= now => {
                    self.start(k, target, sources, goal, now)
                }
                State::Requesting { deadline, .. } | State::Head { deadline, .. }
                    if *deadline <= now =>
                {
                    let e = anyhow::anyhow!("no response head within {HEAD_TIMEOUT:?}");
                    self.fail(k, e, now);
                }
                _ => {}
            }
        }
    }

    /// An attempt failed: count it and schedule the retry (none once the
    /// connection is complete: it has nothing left to read).
    fn fail(&mut self, k: usize, e: anyhow::Error, now: Instant) {
        let conn = &mut self.conns[k];
        let retry_at = conn.storm.completed.is_none().then(|| now + RETRY_BACKOFF);
        conn.close(retry_at);
        self.tally.errors += 1;
        let index = conn.index;
        self.tally.log(format_args!("connection {index}: {e:#}"));
    }

    /// Readiness for connection `k`: push it as far as it goes.
    fn ready(&mut self, k: usize, goal: Goal<'_>) {
        let mut reads = 0;
        loop {
            let now = Instant::now();
            let Self {
                conns,
                buf,
                tally,
                max_line,
                ..
            } = self;
            let conn = &mut conns[k];
            let next = match &mut conn.state {
                State::Requesting {
                    stream,
                    sent,
                    deadline,
                } => match write_request(stream, &conn.request, sent) {
                    Ok(true) => {
                        let deadline = *deadline;
                        let idle = State::Idle { retry_at: None };
                        let State::Requesting { stream, .. } =
                            std::mem::replace(&mut conn.state, idle)
                        else {
                            unreachable!("matched above")
                        };
                        conn.state = State::Head {
                            stream,
                            head: HeadBuf::new(),
                            deadline,
                        };
                        Next::Again
                    }
                    Ok(false) => Next::Wait,
                    Err(e) => Next::Fail(e),
                },
                State::Head { stream, head, .. } => match head.read_from(stream, buf) {
                    Ok(0) => Next::Fail(anyhow::anyhow!("server closed before the response head")),
                    Ok(_) => match head.parse() {
                        Ok(None) => Next::Read,
                        Ok(Some(parsed)) => {
                            let idle = State::Idle { retry_at: None };
                            let State::Head { stream, head, .. } =
                                std::mem::replace(&mut conn.state, idle)
                            else {
                                unreachable!("matched above")
                            };
                            conn.state = State::Streaming { stream };
                            conn.parser = Parser::new().with_max_line(*max_line);
                            if !conn.answered {
                                conn.answered = true;
                                match (goal, conn.storm.started) {
                                    (Goal::Baselines(kickoff), _) => {
                                        kickoff.answered.fetch_add(1, Ordering::Relaxed);
                                    }
                                    (Goal::Heads(_), started) => {
                                        tally.resumed += 1;
                                        if let Some(started) = started {
                                            record_us(&mut tally.head, now - started);
                                        }
                                    }
                                }
                            }
                            match feed(conn, head.body(&parsed), goal, tally, now) {
                                Ok(()) => Next::Read,
                                Err(e) => Next::Fail(e.into()),
                            }
                        }
                        Err(e) => Next::Fail(e.into()),
                    },
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Next::Wait,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => Next::Again,
                    Err(e) => Next::Fail(anyhow::Error::new(e).context("reading the head")),
                },
                State::Streaming { stream } => match stream.read(buf) {
                    Ok(0) => Next::Fail(anyhow::anyhow!("server closed the stream")),
                    Ok(n) => match feed(conn, &buf[..n], goal, tally, now) {
                        Ok(()) => Next::Read,
                        Err(e) => Next::Fail(e.into()),
                    },
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Next::Wait,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => Next::Again,
                    Err(e) => Next::Fail(anyhow::Error::new(e).context("reading the stream")),
                },
                State::Idle { .. } => Next::Wait,
            };
            match next {
                Next::Again => continue,
                Next::Read => {
                    reads += 1;
                    if reads >= READS_PER_TURN {
                        // More may be waiting, and no new edge will say so.
                        if !self.conns[k].queued {
                            self.conns[k].queued = true;
                            self.unfinished.push_back(k);
                        }
                        return;
                    }
                }
                Next::Wait => return,
                Next::Fail(e) => {
                    self.fail(k, e, now);
                    return;
                }
            }
        }
    }
}

/// Parses body bytes of connection `conn`, tracks each stamped event and
/// checks the phase's goal for the connection.
fn feed(
    conn: &mut Conn,
    bytes: &[u8],
    goal: Goal<'_>,
    tally: &mut Tally,
    now: Instant,
) -> Result<(), ParseError> {
    let (mut events, mut bad) = (0u64, 0u64);
    let mut quoted: Option<String> = None;
    let tracker = &mut conn.tracker;
    let parsed = conn.parser.feed_ref(bytes, |event| {
        let stamp = match event.event {
            Some(_) => None,
            None => value::parse(event.data.as_bytes()),
        };
        match stamp {
            Some(s) if s.partition < MAX_PARTITIONS => {
                tracker.observe(s.partition, s.seq);
                events += 1;
            }
            _ => {
                bad += 1;
                if quoted.is_none() {
                    let mut text = format!(
                        "event:{} data:{}",
                        event.event.unwrap_or("message"),
                        event.data
                    );
                    let mut cut = text.len().min(MAX_QUOTED);
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                    quoted = Some(text);
                }
            }
        }
    });
    tally.events += events;
    if bad > 0 {
        tally.bad_events += bad;
        if let Some(text) = quoted {
            tally.log(format_args!(
                "connection {}: {bad} events without a load stamp, first: {text}",
                conn.index
            ));
        }
    }
    match goal {
        Goal::Baselines(kickoff) => {
            if !conn.ready {
                if let Some(partitions) = kickoff.producer.partitions.get() {
                    if has_baselines(&conn.tracker, partitions) {
                        conn.ready = true;
                        kickoff.ready.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        Goal::Heads(heads) => {
            if conn.storm.completed.is_none() && caught_up(&conn.tracker, heads) {
                conn.storm.completed = Some(now);
                tally.completed += 1;
                if let Some(started) = conn.storm.started {
                    record_us(&mut tally.catchup, now - started);
                }
            }
        }
    }
    parsed
}

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
fn scrape_or_warn(addr: &str) -> Option<CatchupMetrics> {
    match scrape(addr) {
        Ok(m) => Some(m),
        Err(e) => {
            eprintln!("storm: scraping the catch-up counters: {e}");
            None
        }
    }
}

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

    /// A tracker that has seen `events` (partition, seq) in order.
    fn tracker(events: &[(u32, u64)]) -> SeqTracker {
        let mut t = SeqTracker::new();
        for &(p, seq) in events {
            t.observe(p, seq);
        }
        t
    }

    #[test]
    fn goals_per_connection() {
        struct Case {
            name: &'static str,
            seen: Vec<(u32, u64)>,
            heads: Vec<(u32, u64)>,
            baselines: bool,
            caught_up: bool,
            missing: u64,
        }
        let cases = [
            Case {
                name: "nothing seen",
                seen: vec![],
                heads: vec![(0, 10), (1, 10)],
                baselines: false,
                caught_up: false,
                missing: 20,
            },
            Case {
                name: "one partition of two",
                seen: vec![(0, 9)],
                heads: vec![(0, 10), (1, 10)],
                baselines: false,
                caught_up: false,
                missing: 10,
            },
            Case {
                name: "baselines, behind on both",
                seen: vec![(0, 3), (1, 5)],
                heads: vec![(0, 10), (1, 10)],
                baselines: true,
                caught_up: false,
                missing: 6 + 4,
            },
            Case {
                name: "at the head on one, one short on the other",
                seen: vec![(0, 9), (1, 8)],
                heads: vec![(0, 10), (1, 10)],
                baselines: true,
                caught_up: false,
                missing: 1,
            },
            Case {
                name: "at every head",
                seen: vec![(0, 9), (1, 9), (0, 8)],
                heads: vec![(0, 10), (1, 10)],
                baselines: true,
                caught_up: true,
                missing: 0,
            },
            Case {
                name: "past a head (records counted as failed that landed)",
                seen: vec![(0, 12), (1, 9)],
                heads: vec![(0, 10), (1, 10)],
                baselines: true,
                caught_up: true,
                missing: 0,
            },
            Case {
                name: "a partition with nothing produced has nothing to reach",
                seen: vec![(0, 9)],
                heads: vec![(0, 10), (1, 0)],
                baselines: false,
                caught_up: true,
                missing: 0,
            },
        ];
        for c in cases {
            let t = tracker(&c.seen);
            let partitions: Vec<u32> = c.heads.iter().map(|&(p, _)| p).collect();
            assert_eq!(has_baselines(&t, &partitions), c.baselines, "{}", c.name);
            assert_eq!(caught_up(&t, &c.heads), c.caught_up, "{}", c.name);
            assert_eq!(missing(&t, &c.heads), c.missing, "{}", c.name);
        }
    }

    fn event(p: u32, seq: u64) -> String {
        let v = value::encode(
            value::Stamp {
                partition: p,
                seq,
                ts_ns: 1,
            },
            value::MAX_UNPADDED_LEN,
        );
        format!("id:i{p}-{seq}\ndata:{}\n\n", String::from_utf8(v).unwrap())
    }

    #[test]
    fn feed_completes_at_the_heads_in_any_chunking() {
        let heads = [(0u32, 3u64), (1, 2)];
        let mut stream = String::new();
        for (p, seq) in [(0, 1), (1, 0), (0, 2), (1, 1)] {
            stream.push_str(&event(p, seq));
        }
        for chunk in [1, 7, 64, stream.len()] {
            let mut conn = Conn::new(0, 4096);
            conn.tracker.observe(0, 0);
            conn.tracker.begin_resume();
            let start = Instant::now();
            conn.storm.started = Some(start);
            let mut tally = Tally::new();
            let bytes = stream.as_bytes();
            for (i, piece) in bytes.chunks(chunk).enumerate() {
                assert!(
                    conn.storm.completed.is_none(),
                    "chunk {chunk}: early at {i}"
                );
                feed(&mut conn, piece, Goal::Heads(&heads), &mut tally, start).unwrap();
            }
            assert!(conn.storm.completed.is_some(), "chunk {chunk}");
            assert_eq!(tally.completed, 1, "chunk {chunk}");
            assert_eq!(tally.events, 4, "chunk {chunk}");
            assert_eq!(tally.catchup.len(), 1, "chunk {chunk}");
            assert_eq!(conn.tracker.resume_errors, 0, "chunk {chunk}");
            assert_eq!(conn.parser.last_event_id(), Some("i1-1"), "chunk {chunk}");
            // More events do not complete it twice.
            feed(
                &mut conn,
                event(0, 3).as_bytes(),
                Goal::Heads(&heads),
                &mut tally,
                start,
            )
            .unwrap();
            assert_eq!(tally.completed, 1);
        }
    }

    #[test]
    fn feed_counts_control_events_and_bounds_lines() {
        let heads = [(0u32, 5u64)];
        let mut conn = Conn::new(3, 64);
        let mut tally = Tally::new();
        let now = Instant::now();
        let text = "event:reset\ndata:{\"reason\":\"bad id\"}\n\ndata:hello\n\n";
        feed(
            &mut conn,
            text.as_bytes(),
            Goal::Heads(&heads),
            &mut tally,
            now,
        )
        .unwrap();
        assert_eq!((tally.bad_events, tally.events, tally.completed), (2, 0, 0));
        let long = format!("data:{}\n", "x".repeat(100));
        assert!(feed(
            &mut conn,
            long.as_bytes(),
            Goal::Heads(&heads),
            &mut tally,
            now
        )
        .is_err());
    }

    #[test]
    fn feed_marks_ready_once_every_partition_has_a_baseline() {
        let producer = ProduceStats::default();
        let kickoff = Kickoff::new(&producer, 1);
        let goal = Goal::Baselines(&kickoff);
        let mut conn = Conn::new(0, 4096);
        let mut tally = Tally::new();
        let now = Instant::now();
        // The partition list is not known yet: not ready.
        feed(&mut conn, event(0, 5).as_bytes(), goal, &mut tally, now).unwrap();
        assert!(!conn.ready);
        producer.partitions.set(vec![0, 1]).unwrap();
        feed(&mut conn, event(0, 6).as_bytes(), goal, &mut tally, now).unwrap();
        assert!(!conn.ready);
        feed(&mut conn, event(1, 0).as_bytes(), goal, &mut tally, now).unwrap();
        assert!(conn.ready);
        feed(&mut conn, event(1, 1).as_bytes(), goal, &mut tally, now).unwrap();
        assert_eq!(kickoff.ready.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn kickoff_writes_one_record_per_partition_once_all_are_answered() {
        let producer = paused_producer_stats();
        let kickoff = Kickoff::new(&producer, 2);
        let step = || kickoff.step.load(Ordering::Relaxed);
        let paused = || producer.paused.load(Ordering::Relaxed);
        kickoff.answered.fetch_add(1, Ordering::Relaxed);
        kickoff.steer();
        assert_eq!((step(), paused()), (KickoffStep::Waiting as u8, true));
        kickoff.answered.fetch_add(1, Ordering::Relaxed);
        kickoff.steer();
        assert_eq!((step(), paused()), (KickoffStep::Writing as u8, false));
        // Records on one partition of two: keep writing.
        producer.partitions.set(vec![0, 1]).unwrap();
        producer.acknowledged(0, Some(0), 1);
        producer.acknowledged(0, Some(1), 1);
        kickoff.steer();
        assert_eq!((step(), paused()), (KickoffStep::Writing as u8, false));
        producer.acknowledged(1, Some(0), 1);
        kickoff.steer();
        assert_eq!((step(), paused()), (KickoffStep::Paused as u8, true));
        // Nothing moves it on from there (phase 2 resumes the producer).
        kickoff.steer();
        assert_eq!((step(), paused()), (KickoffStep::Paused as u8, true));
        assert!(!kickoff.done());
        kickoff.ready.fetch_add(2, Ordering::Relaxed);
        assert!(kickoff.done());
    }

    #[test]
    fn close_keeps_the_newest_id() {
        let mut conn = Conn::new(0, 4096);
        let mut tally = Tally::new();
        let heads = [(0u32, 100u64)];
        let now = Instant::now();
        feed(
            &mut conn,
            event(0, 1).as_bytes(),
            Goal::Heads(&heads),
            &mut tally,
            now,
        )
        .unwrap();
        conn.close(None);
        assert_eq!(conn.resume_id.as_deref(), Some("i0-1"));
        // A new attempt's parser without events keeps the older id.
        conn.parser = Parser::new();
        conn.close(None);
        assert_eq!(conn.resume_id.as_deref(), Some("i0-1"));
    }

    #[test]
    fn builds_resume_requests() {
        let target = Target {
            addr: "127.0.0.1:8080".parse().unwrap(),
            authority: "127.0.0.1:8080".into(),
            path: "/items".into(),
        };
        let mut out = Vec::new();
        build_request(&mut out, &target, Some("AbC"));
        assert_eq!(
            out,
            &b"GET /items HTTP/1.1\r\nhost: 127.0.0.1:8080\r\naccept: text/event-stream\r\nlast-event-id: AbC\r\n\r\n"[..]
        );
        build_request(&mut out, &target, None);
        assert_eq!(
            out,
            &b"GET /items HTTP/1.1\r\nhost: 127.0.0.1:8080\r\naccept: text/event-stream\r\n\r\n"[..]
        );
    }

    #[test]
    fn reads_the_proxys_own_metrics_text() {
        use sse_kafka::metrics::{render, ShardMetrics};
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
