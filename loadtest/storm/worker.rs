//! A storm thread: its share of the connections and the mio (epoll) loop
//! that runs them through one phase — connect, request, head, stream —
//! reading each a few times per turn so that one catching-up socket does
//! not hold up the others' heads.

use std::io::{self, Read as _};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use sse_kafka::codec::sse::Parser;

use crate::client::{build_request, connect_socket, write_request};
use crate::response::HeadBuf;
use crate::target::Target;
use crate::tokens::Tokens;

use super::conn::{feed, Conn, State};
use super::goal::Goal;
use super::tally::{record_us, Tally};

/// One read buffer per thread, shared by its connections (the parser keeps
/// partial lines): a catching-up socket holds a lot, so read it in big bites.
const READ_BUF: usize = 64 << 10;
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

/// One thread's connections and their epoll loop.
pub(super) struct Worker {
    pub(super) cpu: usize,
    poll: Poll,
    pub(super) conns: Vec<Conn>,
    buf: Vec<u8>,
    max_line: usize,
    /// What each connection sends in `authorization` (by its index).
    tokens: Tokens,
    /// Connections whose turn ended with bytes perhaps still unread (edge
    /// triggered: no new event will come for them), served in order after
    /// each poll.
    unfinished: std::collections::VecDeque<usize>,
    /// The counters of the phase that ran last.
    pub(super) tally: Tally,
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
    pub(super) fn new(
        cpu: usize,
        conns: Vec<Conn>,
        max_line: usize,
        tokens: Tokens,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            cpu,
            poll: Poll::new().context("creating the epoll instance")?,
            conns,
            buf: vec![0; READ_BUF],
            max_line,
            tokens,
            unfinished: std::collections::VecDeque::new(),
            tally: Tally::new(),
        })
    }

    /// Starts every connection and runs the loop until the goal or the
    /// deadline; then hangs every connection up.
    pub(super) fn run_phase(
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
                build_request(
                    &mut conn.request,
                    target,
                    conn.resume_id.as_deref(),
                    self.tokens.for_client(conn.index),
                );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_resume_requests() {
        let target = Target {
            addr: "127.0.0.1:8080".parse().unwrap(),
            authority: "127.0.0.1:8080".into(),
            path: "/items".into(),
        };
        let mut out = Vec::new();
        build_request(&mut out, &target, Some("AbC"), None);
        assert_eq!(
            out,
            &b"GET /items HTTP/1.1\r\nhost: 127.0.0.1:8080\r\naccept: text/event-stream\r\nlast-event-id: AbC\r\n\r\n"[..]
        );
        build_request(&mut out, &target, None, None);
        assert_eq!(
            out,
            &b"GET /items HTTP/1.1\r\nhost: 127.0.0.1:8080\r\naccept: text/event-stream\r\n\r\n"[..]
        );
    }
}
