//! One subscriber thread: its share of the K connections, and the epoll
//! loop (mio) that connects them (at most its share of
//! `--connect-concurrency` waiting for a first head at once), reads their
//! heads and streams, records latency and sequences, drops and resumes
//! them, and times the opening and the extra clients.
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
use std::io::{self, Read as _};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use sse_kafka::codec::sse::Parser;

use crate::client::{build_request, connect_socket, write_request};
use crate::report;
use crate::response::{Head, HeadBuf};
use crate::track::{SeqTracker, MAX_PARTITIONS};
use crate::value;

use super::{drops, extra_instant, Live, Opening, SubscribeConfig, Timeline};

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

/// What one thread hands back.
pub(super) struct ExecResult {
    pub(super) latency: Histogram<u64>,
    pub(super) first_byte: Histogram<u64>,
    pub(super) extra_errors: u64,
    pub(super) connect: Histogram<u64>,
    pub(super) per_connection: Vec<u64>,
    pub(super) trackers: Vec<SeqTracker>,
    pub(super) events: u64,
    pub(super) errors: u64,
    pub(super) warmup_errors: u64,
    pub(super) opening: Opening,
}

/// Where a connection is in its life.
enum State {
    /// Not opened yet: waits until fewer than the thread's share of
    /// `--connect-concurrency` wait for their first head.
    Queued,
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
    /// Has had a response head (the opening counts the first).
    answered: bool,
}

/// Tokens at or above this are extra clients.
const EXTRA_TOKEN_BASE: usize = 1 << 40;

/// One thread's subscribers and their epoll loop.
pub(super) struct Subscribers {
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
    /// `subs[..opened]` have started their first attempt.
    opened: usize,
    /// At most this many of `subs[..opened]` wait for their first head.
    open_limit: usize,
    opening: Opening,
}

/// How a read or write step ended for a connection.
enum Step {
    /// Still going: wait for the next readiness.
    Wait,
    /// The stream ended; reconnect (after a backoff if it was an error).
    Closed(Option<anyhow::Error>),
}

impl Subscribers {
    pub(super) fn new(
        cfg: Arc<SubscribeConfig>,
        thread: usize,
        indices: &[usize],
        live: Arc<Live>,
        timeline: Timeline,
    ) -> anyhow::Result<Self> {
        let now = Instant::now();
        let threads = cfg.cpus.len();
        // The request is built when the connection starts (with its id and
        // its token).
        let new_sub = |index: usize, extra: bool| Sub {
            index,
            state: if extra {
                State::Idle { at: now }
            } else {
                State::Queued
            },
            request: Vec::with_capacity(256),
            started: now,
            parser: Parser::new(),
            resume_id: None,
            events: 0,
            tracker: SeqTracker::new(),
            extra,
            answered: false,
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
            opened: 0,
            open_limit: match cfg.connect_concurrency {
                0 => usize::MAX,
                n => n.div_ceil(threads),
            },
            opening: Opening::default(),
            cfg,
        })
    }

    pub(super) fn run(mut self) -> anyhow::Result<ExecResult> {
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        self.open_more();
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
            self.open_more();
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
            opening: self.opening,
        })
    }

    fn sub_mut(&mut self, token: usize) -> &mut Sub {
        if token >= EXTRA_TOKEN_BASE {
            &mut self.extras[token - EXTRA_TOKEN_BASE]
        } else {
            &mut self.subs[token]
        }
    }

    /// Starts queued connections while fewer than `open_limit` of those
    /// started wait for their first head.
    fn open_more(&mut self) {
        while self.opened < self.subs.len() && self.opened - self.opening.answered < self.open_limit
        {
            self.opened += 1;
            self.start(self.opened - 1);
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
        // Extra client j sends the token after the K connections' ones.
        let client = if token >= EXTRA_TOKEN_BASE {
            cfg.connections + sub_index
        } else {
            self.opening.first_connect.get_or_insert(now);
            sub_index
        };
        let sub = self.sub_mut(token);
        match opened {
            Ok(stream) => {
                build_request(
                    &mut sub.request,
                    target,
                    sub.resume_id.as_deref(),
                    cfg.tokens.for_client(client),
                );
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
                            if !sub.answered {
                                sub.answered = true;
                                self.opening.answered += 1;
                                self.opening.last_answer = Some(Instant::now());
                            }
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
                    State::Queued | State::Idle { .. } | State::Done => Step::Wait,
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
