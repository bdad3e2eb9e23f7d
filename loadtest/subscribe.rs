//! The subscribers: K SSE connections spread round-robin over pinned
//! threads, one per CPU, each running an epoll loop (mio) over its share.
//! Each connection sends a plain HTTP/1.1 GET, checks the response head,
//! then feeds the body to the main crate's SSE parser (borrowed events: no
//! allocation per event); every event's value is stamped by the producer
//! (see `value`), so the connection records end-to-end latency and checks
//! each partition's sequence (see `track`). A connection that drops (by
//! design, `--drop-fraction`, or because the stream broke) reconnects with
//! `Last-Event-ID` and keeps its tracker, so the resume is checked exactly.
//!
//! Why epoll and not glommio's io_uring streams: glommio arms one io_uring
//! poll per read, and its ring signals each completion to a running thread
//! with an inter-processor interrupt. On loopback the *sender* runs that
//! wake-up, so every packet the measured server sends paid for an IPI (a VM
//! exit here): measured against the raw ceiling at K=10,000, the server's
//! CPU went from 73% to 100% and delivery fell from 80k to 61k events/s
//! with the same server. epoll wakes a sleeping reader once per batch of
//! ready sockets and a running one not at all.

use std::collections::VecDeque;
use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};
use std::os::fd::AsRawFd as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use sse_kafka::sse::Parser;

use crate::report::{self, Summary};
use crate::response::{Head, HeadBuf};
use crate::track::{SeqTracker, MAX_PARTITIONS};
use crate::value;

/// One read buffer per thread, shared by its connections (the parser keeps
/// partial lines): large enough to drain a busy socket in a few reads.
const READ_BUF: usize = 64 << 10;
/// Longest wait from the connect to the end of the response head (or, for
/// an extra client, to its first byte).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before reconnecting after an error, so a refusing server is not
/// hammered by every connection in a tight loop.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);
/// How often threads publish their latency histogram for the progress line,
/// and look for connects past their deadline and reconnects that are due.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(100);
const PUBLISH_EVERY: Duration = Duration::from_millis(500);
/// Only the first few errors per thread are printed; all are counted.
const MAX_LOGGED_ERRORS: u64 = 5;
/// Events per `epoll_wait`.
const EVENTS_PER_POLL: usize = 1024;

/// `http://host:port/path?query`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// The `host` header value (`host:port` as written).
    pub authority: String,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Splits an `http://` URL into authority, host, port and path (no DNS).
pub fn split_url(url: &str) -> Result<(String, String, u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("url '{url}': only http:// is supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("url '{url}': no host"));
    }
    // `[v6]:port`, `[v6]`, `host:port`, `host`.
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("url '{url}': unclosed ["))?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("url '{url}': junk after ]")),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("url '{url}': bad port '{p}'"))?,
        None => 80,
    };
    Ok((
        authority.to_string(),
        host.to_string(),
        port,
        path.to_string(),
    ))
}

impl Target {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let (authority, host, port, path) = split_url(url).map_err(anyhow::Error::msg)?;
        let addr = (host.as_str(), port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} has no address"))?;
        Ok(Self {
            addr,
            authority,
            path,
        })
    }
}

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

/// What one thread hands back.
struct ExecResult {
    latency: Histogram<u64>,
    first_byte: Histogram<u64>,
    extra_errors: u64,
    connect: Histogram<u64>,
    per_connection: Vec<u64>,
    trackers: Vec<SeqTracker>,
    events: u64,
    errors: u64,
    warmup_errors: u64,
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
                sse_kafka::cpus::pin_current_thread(cpu)
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

/// Where a connection is in its life.
enum State {
    /// Waiting to (re)connect at the instant.
    Idle {
        at: Instant,
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
    /// The run is over for this connection.
    Done,
}

/// One subscriber: its socket state plus what outlives reconnections.
struct Sub {
    /// The connection's number over all threads (drop selection, source).
    index: usize,
    state: State,
    request: Vec<u8>,
    /// When the current connect started (connect time histogram).
    started: Instant,
    parser: Parser,
    /// The id to resume from, once the stream has given one.
    resume_id: Option<String>,
    /// Events inside the window.
    events: u64,
    tracker: SeqTracker,
    /// Extra clients only: the attempt is over (answered or failed).
    extra: bool,
}

/// Tokens at or above this are extra clients.
const EXTRA_TOKEN_BASE: usize = 1 << 40;

/// One thread's subscribers and their epoll loop.
struct Subscribers {
    cfg: Arc<SubscribeConfig>,
    poll: Poll,
    subs: Vec<Sub>,
    /// Extra clients, in the order of their start instants.
    extras: Vec<Sub>,
    pending_extras: VecDeque<(Instant, usize)>,
    buf: Vec<u8>,
    live: Arc<Live>,
    timeline: Timeline,
    latency: Histogram<u64>,
    /// Latency recorded since the last publish to `live`.
    unpublished: Histogram<u64>,
    connect: Histogram<u64>,
    first_byte: Histogram<u64>,
    extra_errors: u64,
    events: u64,
    errors: u64,
    warmup_errors: u64,
    dropped: bool,
}

/// How a read or write step ended for a connection.
enum Step {
    /// Still going: wait for the next readiness.
    Wait,
    /// The stream ended; reconnect (after a backoff if it was an error).
    Closed(Option<anyhow::Error>),
}

impl Subscribers {
    fn new(
        cfg: Arc<SubscribeConfig>,
        thread: usize,
        indices: &[usize],
        live: Arc<Live>,
        timeline: Timeline,
    ) -> anyhow::Result<Self> {
        let now = Instant::now();
        let threads = cfg.cpus.len();
        let new_sub = |index: usize, extra: bool| {
            let mut request = Vec::with_capacity(256);
            build_request(&mut request, &cfg.target, None);
            Sub {
                index,
                state: State::Idle { at: now },
                request,
                started: now,
                parser: Parser::new(),
                resume_id: None,
                events: 0,
                tracker: SeqTracker::new(),
                extra,
            }
        };
        let subs = indices.iter().map(|&i| new_sub(i, false)).collect();
        let extra_indices: Vec<usize> = (0..cfg.extra).filter(|j| j % threads == thread).collect();
        let extras = extra_indices.iter().map(|&j| new_sub(j, true)).collect();
        let pending_extras = extra_indices
            .iter()
            .enumerate()
            .map(|(slot, &j)| (extra_instant(timeline, j, cfg.extra), slot))
            .collect();
        Ok(Self {
            poll: Poll::new().context("creating the epoll instance")?,
            subs,
            extras,
            pending_extras,
            buf: vec![0; READ_BUF],
            live,
            timeline,
            latency: report::new_histogram(),
            unpublished: report::new_histogram(),
            connect: report::new_histogram(),
            first_byte: report::new_histogram(),
            extra_errors: 0,
            events: 0,
            errors: 0,
            warmup_errors: 0,
            dropped: false,
            cfg,
        })
    }

    fn run(mut self) -> anyhow::Result<ExecResult> {
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        for k in 0..self.subs.len() {
            self.start(k);
        }
        let mut next_housekeeping = Instant::now();
        let mut next_publish = Instant::now() + PUBLISH_EVERY;
        // See `SubscribeConfig::spin`: a reader that sleeps between packets
        // makes the sender pay a wake-up (an inter-processor interrupt) per
        // packet, which a client on another host would never cost it.
        let mut spin_until = Instant::now();
        loop {
            let now = Instant::now();
            if now >= self.timeline.end {
                break;
            }
            if now >= next_housekeeping {
                self.housekeeping(now);
                next_housekeeping = now + HOUSEKEEPING_EVERY;
            }
            if now >= next_publish {
                self.publish();
                next_publish = now + PUBLISH_EVERY;
            }
            if !self.dropped && self.cfg.drop_fraction > 0.0 && now >= self.timeline.drop_at {
                self.dropped = true;
                self.drop_some();
            }
            while let Some(&(at, slot)) = self.pending_extras.front() {
                if at > now {
                    break;
                }
                self.pending_extras.pop_front();
                self.start(EXTRA_TOKEN_BASE + slot);
            }
            let mut wake = next_housekeeping.min(next_publish).min(self.timeline.end);
            if !self.dropped && self.cfg.drop_fraction > 0.0 {
                wake = wake.min(self.timeline.drop_at);
            }
            if let Some(&(at, _)) = self.pending_extras.front() {
                wake = wake.min(at);
            }
            let now = Instant::now();
            let timeout = if now < spin_until {
                Duration::ZERO
            } else {
                wake.saturating_duration_since(now)
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("epoll_wait"),
            }
            if !events.is_empty() && !self.cfg.spin.is_zero() {
                spin_until = Instant::now() + self.cfg.spin;
            }
            for event in &events {
                self.ready(event.token().0);
            }
        }
        // The window is over: close everything (the server sees the hangups).
        for sub in self.subs.iter_mut().chain(self.extras.iter_mut()) {
            if matches!(sub.state, State::Streaming { .. }) {
                self.live.open.fetch_sub(1, Ordering::Relaxed);
            }
            sub.state = State::Done;
        }
        self.publish();
        Ok(ExecResult {
            latency: self.latency,
            first_byte: self.first_byte,
            extra_errors: self.extra_errors,
            connect: self.connect,
            per_connection: self.subs.iter().map(|s| s.events).collect(),
            trackers: self
                .subs
                .iter_mut()
                .map(|s| std::mem::take(&mut s.tracker))
                .collect(),
            events: self.events,
            errors: self.errors,
            warmup_errors: self.warmup_errors,
        })
    }

    fn sub_mut(&mut self, token: usize) -> &mut Sub {
        if token >= EXTRA_TOKEN_BASE {
            &mut self.extras[token - EXTRA_TOKEN_BASE]
        } else {
            &mut self.subs[token]
        }
    }

    /// Opens the connection behind `token` (a fresh one, or a resume with
    /// the last id seen).
    fn start(&mut self, token: usize) {
        let cfg = Arc::clone(&self.cfg);
        let target = &cfg.target;
        let sub_index = self.sub_mut(token).index;
        let sources = &cfg.sources;
        let source = (!sources.is_empty()).then(|| sources[sub_index % sources.len()]);
        let opened = connect_socket(target.addr, source)
            .map(|socket| TcpStream::from_std(std::net::TcpStream::from(socket)))
            .and_then(|mut stream| {
                self.poll.registry().register(
                    &mut stream,
                    Token(token),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                Ok(stream)
            });
        let now = Instant::now();
        let sub = self.sub_mut(token);
        match opened {
            Ok(stream) => {
                build_request(&mut sub.request, target, sub.resume_id.as_deref());
                sub.started = now;
                sub.state = State::Requesting {
                    stream,
                    sent: 0,
                    deadline: now + CONNECT_TIMEOUT,
                };
            }
            Err(e) => {
                let e = anyhow::Error::new(e)
                    .context(format!("connecting to {} from {source:?}", target.addr));
                self.closed(token, Some(e));
            }
        }
    }

    /// Readiness for `token`: push the connection as far as it goes.
    fn ready(&mut self, token: usize) {
        loop {
            let step = {
                let Self {
                    subs, extras, buf, ..
                } = self;
                let sub = if token >= EXTRA_TOKEN_BASE {
                    &mut extras[token - EXTRA_TOKEN_BASE]
                } else {
                    &mut subs[token]
                };
                match &mut sub.state {
                    State::Requesting { stream, sent, .. } => {
                        match write_request(stream, &sub.request, sent) {
                            Ok(true) => {
                                let state = std::mem::replace(&mut sub.state, State::Done);
                                let State::Requesting {
                                    stream, deadline, ..
                                } = state
                                else {
                                    unreachable!("matched above")
                                };
                                sub.state = State::Head {
                                    stream,
                                    head: HeadBuf::new(),
                                    deadline,
                                };
                                continue;
                            }
                            Ok(false) => Step::Wait,
                            Err(e) => Step::Closed(Some(e)),
                        }
                    }
                    State::Head { stream, .. } if sub.extra => {
                        // An extra client only times its first byte.
                        match stream.read(&mut buf[..1]) {
                            Ok(0) => Step::Closed(Some(anyhow::anyhow!("closed before answering"))),
                            Ok(_) => Step::Closed(None),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Step::Wait,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(e) => Step::Closed(Some(e.into())),
                        }
                    }
                    State::Head { stream, head, .. } => match read_head(stream, head, buf) {
                        Ok(Some(parsed)) => {
                            let state = std::mem::replace(&mut sub.state, State::Done);
                            let State::Head { stream, head, .. } = state else {
                                unreachable!("matched above")
                            };
                            sub.state = State::Streaming { stream };
                            sub.parser = Parser::new();
                            let _ = self
                                .connect
                                .record(sub.started.elapsed().as_micros() as u64);
                            self.live.open.fetch_add(1, Ordering::Relaxed);
                            let body = head.body(&parsed);
                            if body.is_empty() {
                                continue;
                            }
                            self.body(token, body);
                            continue;
                        }
                        Ok(None) => Step::Wait,
                        Err(e) => Step::Closed(Some(e)),
                    },
                    State::Streaming { stream } => match stream.read(buf) {
                        Ok(0) => Step::Closed(Some(anyhow::anyhow!("server closed the stream"))),
                        Ok(n) => {
                            // Move the buffer out so `body` can borrow self.
                            let chunk = std::mem::take(buf);
                            let failed = self.body_checked(token, &chunk[..n]);
                            self.buf = chunk;
                            match failed {
                                Some(e) => Step::Closed(Some(e)),
                                None => continue,
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Step::Wait,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => Step::Closed(Some(e.into())),
                    },
                    State::Idle { .. } | State::Done => Step::Wait,
                }
            };
            match step {
                Step::Wait => return,
                Step::Closed(error) => {
                    self.closed(token, error);
                    return;
                }
            }
        }
    }

    /// Body bytes read together with the head.
    fn body(&mut self, token: usize, bytes: &[u8]) {
        if let Some(e) = self.body_checked(token, bytes) {
            self.closed(token, Some(e));
        }
    }

    /// Parses body bytes; an error means the stream is unusable.
    fn body_checked(&mut self, token: usize, bytes: &[u8]) -> Option<anyhow::Error> {
        let now = Instant::now();
        let now_ns = crate::unix_ns();
        let in_window = now >= self.timeline.measure_from && now < self.timeline.end;
        let Self {
            subs,
            latency,
            unpublished,
            ..
        } = self;
        let sub = &mut subs[token];
        let mut counted = 0u64;
        let mut bad = 0u64;
        let tracker = &mut sub.tracker;
        let parsed = sub.parser.feed_ref(bytes, |event| {
            // Control events (reset, gap, delete) carry no stamp: count them
            // as errors, since a clean run produces none.
            if event.event.is_some() {
                bad += 1;
                return;
            }
            let Some(stamp) = value::parse(event.data.as_bytes()) else {
                bad += 1;
                return;
            };
            if stamp.partition >= MAX_PARTITIONS {
                bad += 1;
                return;
            }
            tracker.observe(stamp.partition, stamp.seq);
            if in_window {
                counted += 1;
                let us = (now_ns.saturating_sub(stamp.ts_ns) / 1_000)
                    .clamp(report::LOWEST_US, report::HIGHEST_US);
                let _ = latency.record(us);
                let _ = unpublished.record(us);
            }
        });
        sub.events += counted;
        self.events += counted;
        self.live.events.fetch_add(counted, Ordering::Relaxed);
        if bad > 0 {
            self.error("events without a load stamp", &bad);
        }
        parsed.err().map(anyhow::Error::new)
    }

    /// A connection ended: count it, and schedule the reconnect.
    fn closed(&mut self, token: usize, error: Option<anyhow::Error>) {
        let now = Instant::now();
        let running = now < self.timeline.end;
        let sub = self.sub_mut(token);
        let was_streaming = matches!(sub.state, State::Streaming { .. });
        let answered_at = sub.started.elapsed();
        // The parser is replaced only when the next head arrives, so a
        // stream that ends before its first event keeps the older id.
        if let Some(id) = sub.parser.last_event_id() {
            sub.resume_id = Some(id.to_owned());
        }
        sub.state = State::Done;
        if sub.extra {
            match error {
                None => {
                    let us = (answered_at.as_micros() as u64)
                        .clamp(report::LOWEST_US, report::HIGHEST_US);
                    let _ = self.first_byte.record(us);
                }
                Some(e) => {
                    self.extra_errors += 1;
                    if self.extra_errors <= MAX_LOGGED_ERRORS {
                        eprintln!("extra client: {e:#}");
                    }
                }
            }
            return;
        }
        if was_streaming {
            self.live.open.fetch_sub(1, Ordering::Relaxed);
        }
        let delay = match &error {
            Some(e) => {
                self.error("stream", &format_args!("{e:#}"));
                RECONNECT_BACKOFF
            }
            None => Duration::ZERO,
        };
        let sub = self.sub_mut(token);
        if sub.resume_id.is_some() {
            sub.tracker.begin_resume();
        }
        if running {
            sub.state = State::Idle { at: now + delay };
            if delay.is_zero() {
                self.start(token);
            }
        }
    }

    /// The mid-window drop: the selected connections hang up and resume.
    fn drop_some(&mut self) {
        for k in 0..self.subs.len() {
            if drops(self.subs[k].index, self.cfg.drop_fraction)
                && matches!(self.subs[k].state, State::Streaming { .. })
            {
                self.closed(k, None);
            }
        }
    }

    /// Due reconnects, and connects or heads past their deadline.
    fn housekeeping(&mut self, now: Instant) {
        for k in 0..self.subs.len() {
            match &self.subs[k].state {
                State::Idle { at } if *at <= now => self.start(k),
                State::Requesting { deadline, .. } | State::Head { deadline, .. }
                    if *deadline <= now =>
                {
                    self.closed(
                        k,
                        Some(anyhow::anyhow!(
                            "no response head within {CONNECT_TIMEOUT:?}"
                        )),
                    );
                }
                _ => {}
            }
        }
        for k in 0..self.extras.len() {
            if let State::Requesting { deadline, .. } | State::Head { deadline, .. } =
                &self.extras[k].state
            {
                if *deadline <= now {
                    self.closed(
                        EXTRA_TOKEN_BASE + k,
                        Some(anyhow::anyhow!(
                            "no response byte within {CONNECT_TIMEOUT:?}"
                        )),
                    );
                }
            }
        }
    }

    fn publish(&mut self) {
        if self.unpublished.is_empty() {
            return;
        }
        if let Ok(mut live) = self.live.latency.lock() {
            // Same bounds on both sides: cannot fail.
            let _ = live.add(&self.unpublished);
        }
        self.unpublished.reset();
    }

    fn error(&mut self, what: &str, e: &dyn std::fmt::Display) {
        if Instant::now() < self.timeline.measure_from {
            self.warmup_errors += 1;
        } else {
            self.errors += 1;
        }
        self.live.errors.fetch_add(1, Ordering::Relaxed);
        if self.errors + self.warmup_errors <= MAX_LOGGED_ERRORS {
            eprintln!("subscriber: {what}: {e}");
        }
    }
}

/// Writes the rest of the request; true when it is all sent. A connect
/// still in progress reports `WouldBlock` (wait for writability, which is
/// the end of the handshake); a refused one reports its error here.
#[allow(
    clippy::disallowed_methods,
    reason = "a non-blocking write: the amount is used to resume it"
)]
pub(crate) fn write_request(
    stream: &mut TcpStream,
    request: &[u8],
    sent: &mut usize,
) -> anyhow::Result<bool> {
    while *sent < request.len() {
        match stream.write(&request[*sent..]) {
            Ok(0) => bail!("connection closed while sending the request"),
            Ok(n) => *sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("sending the request"),
        }
    }
    Ok(true)
}

/// Reads into `head` until it is complete (and acceptable: see
/// `response::parse`) or the socket has nothing more for now.
fn read_head(
    stream: &mut TcpStream,
    head: &mut HeadBuf,
    buf: &mut [u8],
) -> anyhow::Result<Option<Head>> {
    loop {
        match head.read_from(stream, buf) {
            Ok(0) => bail!("server closed before the response head"),
            Ok(_) => {
                if let Some(parsed) = head.parse()? {
                    return Ok(Some(parsed));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("reading the response head"),
        }
    }
}

pub(crate) fn build_request(out: &mut Vec<u8>, target: &Target, last_event_id: Option<&str>) {
    out.clear();
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(target.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(target.authority.as_bytes());
    out.extend_from_slice(b"\r\naccept: text/event-stream\r\n");
    if let Some(id) = last_event_id {
        out.extend_from_slice(b"last-event-id: ");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

pub(crate) fn connect_socket(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(ip) = source {
        // Pick the port at connect time (IP_BIND_ADDRESS_NO_PORT) so that a
        // source port is exclusive per destination, not per source address.
        if ip.is_ipv4() {
            let on: libc::c_int = 1;
            // SAFETY: valid fd, option value is a c_int of the size passed.
            let _ = unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        socket.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
    }
    socket.set_nonblocking(true)?;
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => Ok(socket),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(socket),
        Err(e) => Err(e),
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
    fn splits_urls() {
        let ok = |a: &str, h: &str, p: u16, path: &str| {
            Ok((a.to_string(), h.to_string(), p, path.to_string()))
        };
        let cases = [
            (
                "http://127.0.0.1:8080/items",
                ok("127.0.0.1:8080", "127.0.0.1", 8080, "/items"),
            ),
            (
                "http://example.com",
                ok("example.com", "example.com", 80, "/"),
            ),
            (
                "http://h:1/a/b?lastEventId=x",
                ok("h:1", "h", 1, "/a/b?lastEventId=x"),
            ),
            ("http://[::1]:9000/s", ok("[::1]:9000", "::1", 9000, "/s")),
            ("http://[::1]/s", ok("[::1]", "::1", 80, "/s")),
        ];
        for (url, want) in cases {
            assert_eq!(split_url(url), want, "{url}");
        }
        for bad in ["https://h/", "http:///x", "http://h:port/", "http://[::1/"] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }

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

    #[test]
    fn builds_requests() {
        let target = Target {
            addr: "127.0.0.1:8080".parse().unwrap(),
            authority: "127.0.0.1:8080".into(),
            path: "/items".into(),
        };
        let mut out = Vec::new();
        build_request(&mut out, &target, None);
        assert_eq!(
            out,
            b"GET /items HTTP/1.1\r\nhost: 127.0.0.1:8080\r\naccept: text/event-stream\r\n\r\n"
        );
        build_request(&mut out, &target, Some("AbC"));
        assert!(out.ends_with(b"accept: text/event-stream\r\nlast-event-id: AbC\r\n\r\n"));
    }
}
