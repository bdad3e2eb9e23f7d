//! One client connection: request head, then an event stream that is either
//! live (fed shared frames by the topic hub) or a catch-up cursor (reading
//! the cache or Kafka at its own position until it reaches the hub's heads;
//! see `cursor`).
//!
//! Frames wait in the connection's outbox as reference-counted slices and
//! go out as many as fit per `sendmsg` (`MSG_DONTWAIT`). A live connection's
//! frames are written by the shard's write pass (`hub::write_pass`), one
//! tight loop over every connection that has something new; only when a
//! socket is full is the connection's own task woken, to wait for room with
//! glommio's io_uring write. The outbox has a byte budget: a live connection
//! over it is taken out of the broadcast by the hub and continues as a
//! cursor, so a slow client costs bounded memory and never delays the
//! others.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use smallvec::SmallVec;
use tracing::debug;

use crate::config::Start;
use crate::cursor;
use crate::event_id;
use crate::feed::{Feed, Place};
use crate::filter;
use crate::http::{self, Method};
use crate::hub::Selection;
use crate::kafka::{KafkaError, OffsetQuery, Request, TopicId};
use crate::metrics::ShardMetrics;
use crate::shard::{RouteInfo, ShardCtx};
use crate::sse;

/// iovecs per `sendmsg`: enough to drain a typical backlog in one call,
/// small enough to live on the stack.
const MAX_IOVECS: usize = 64;

/// A frame in the outbox and the number of events it carries (0 for the
/// stream head and keep-alives), counted when the frame is fully written.
type Queued = (Rc<[u8]>, u32);

#[derive(Default)]
struct Outbox {
    frames: VecDeque<Queued>,
    /// Bytes of the front frame already written.
    front_sent: usize,
    /// Bytes queued and not yet written.
    bytes: usize,
}

impl Outbox {
    /// Drops `n` written bytes from the front. Returns the number of events
    /// whose frames are now fully written.
    fn advance(&mut self, mut n: usize) -> u64 {
        self.bytes -= n;
        let mut events = 0;
        while n > 0 {
            let (front, ev) = self.frames.front().expect("advance past the outbox");
            let left = front.len() - self.front_sent;
            if n >= left {
                n -= left;
                events += u64::from(*ev);
                self.frames.pop_front();
                self.front_sent = 0;
            } else {
                self.front_sent += n;
                n = 0;
            }
        }
        events
    }
}

/// The shard-local state of one stream, shared with the hub.
pub struct Conn {
    fd: RawFd,
    /// Frames of this connection alone: the stream head, a cursor's
    /// chunks, keep-alives, the last error. Sent before `live`'s frames.
    outbox: RefCell<Outbox>,
    /// While the connection is live: its place in its group's feed.
    ///
    /// INVARIANT: while set, `outbox` holds only frames that come before
    /// every unsent frame of the feed (a cursor's last chunk, or a
    /// keep-alive queued when nothing was waiting), so sending `outbox`
    /// first keeps the stream in order.
    live: RefCell<Option<Place>>,
    notified: Cell<bool>,
    waker: Cell<Option<Waker>>,
    /// Set by the hub when it takes the connection out of the live stream:
    /// the position the connection had reached.
    demoted: RefCell<Option<Vec<i64>>>,
    closed: Cell<bool>,
    /// The stream ends once its outbox is written (an error event is the
    /// last frame).
    ending: Cell<bool>,
    /// The writer task is waiting for socket room with part of the front
    /// frame in flight: nobody else may write until it is done.
    writing: Cell<bool>,
    /// Keep-alive ticks since the last frame was queued.
    idle_ticks: Cell<u32>,
    keepalive_ticks: u32,
}

impl Conn {
    /// A stream's state. `fd` is only touched by the writer (`flush`), so
    /// benchmarks use connections with no socket as in-memory sinks.
    pub fn new(fd: RawFd, keepalive_ticks: u32) -> Self {
        Self {
            fd,
            outbox: RefCell::default(),
            live: RefCell::new(None),
            notified: Cell::new(false),
            waker: Cell::new(None),
            demoted: RefCell::new(None),
            closed: Cell::new(false),
            ending: Cell::new(false),
            writing: Cell::new(false),
            idle_ticks: Cell::new(0),
            keepalive_ticks,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    #[cfg(test)]
    pub(crate) fn is_notified(&self) -> bool {
        self.notified.get()
    }

    #[cfg(test)]
    pub(crate) fn mark_closed(&self) {
        self.closed.set(true);
    }

    /// Bytes waiting to be sent: its own and its feed's.
    pub fn queued_bytes(&self) -> usize {
        self.outbox.borrow().bytes + self.live.borrow().as_ref().map_or(0, Place::unsent)
    }

    /// Starts reading a feed (see `Feed::add`).
    pub(crate) fn attach(&self, place: Place) {
        *self.live.borrow_mut() = Some(place);
    }

    /// Leaves its feed, taking a copy of the feed's frames it has not sent
    /// into its own outbox, so it sends them all the same.
    pub(crate) fn detach(&self) {
        let Some(place) = self.live.borrow_mut().take() else {
            return;
        };
        let mut ob = self.outbox.borrow_mut();
        if place.sent > 0 {
            // Part of the feed's next frame went out: nothing of the
            // outbox can be waiting before it (see `live`).
            debug_assert!(ob.frames.is_empty());
            ob.front_sent = place.sent;
        }
        ob.bytes += place.unsent();
        ob.frames.extend(place.unsent_frames());
    }

    /// Leaves its feed without a copy (the connection is closed).
    pub(crate) fn leave_feed(&self) {
        self.live.borrow_mut().take();
    }

    /// Whether it reads `feed`.
    pub(crate) fn is_reading(&self, feed: &Feed) -> bool {
        self.place_in(feed).is_some()
    }

    /// The next frame it will send from `feed`, if it reads `feed`.
    pub(crate) fn place_in(&self, feed: &Feed) -> Option<u64> {
        let live = self.live.borrow();
        let place = live.as_ref()?;
        std::ptr::eq(Rc::as_ptr(&place.feed), feed).then_some(place.next)
    }

    /// Queues a frame and wakes the writer.
    pub fn push(&self, frame: Rc<[u8]>, events: u32) {
        let mut ob = self.outbox.borrow_mut();
        ob.bytes += frame.len();
        ob.frames.push_back((frame, events));
        drop(ob);
        self.idle_ticks.set(0);
        self.notify();
    }

    /// Sends connection-specific bytes (the stream head) straight from the
    /// caller's buffer when nothing is queued, queueing only what the socket
    /// does not take: no shared copy for the common case.
    pub fn send_or_queue(&self, bytes: &[u8], metrics: &ShardMetrics) {
        let mut sent = 0;
        if !self.closed.get() && !self.writing.get() && self.outbox.borrow().frames.is_empty() {
            // SAFETY: `bytes` is valid for reads of its length; `fd` is this
            // connection's open socket (not closed: checked above).
            let n = unsafe {
                libc::send(
                    self.fd,
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if n > 0 {
                sent = n as usize;
                metrics.bytes_sent.add(sent as u64);
            }
        }
        if sent < bytes.len() {
            // Full, or failed: the writer meets the error again and ends.
            self.push(Rc::from(&bytes[sent..]), 0);
        }
    }

    /// The hub's write after a batch: sends the queued frames right away,
    /// back to back with the other connections' writes and without waking
    /// this connection's task. Only what the socket does not take (or an
    /// error, which the writer meets again and ends the stream with) is
    /// left to the writer task.
    pub fn write_through(&self, metrics: &ShardMetrics) {
        if self.closed.get() || self.writing.get() {
            // Closed: the fd may be reused, never touch it. Writing: the
            // writer drains everything once its write completes.
            return;
        }
        match self.try_send(metrics) {
            Ok(true) => {}
            Ok(false) | Err(_) => self.notify(),
        }
    }

    pub fn notify(&self) {
        self.notified.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// The position handed over by the hub's last demotion, if any.
    pub(crate) fn take_demotion(&self) -> Option<Vec<i64>> {
        self.demoted.borrow_mut().take()
    }

    /// Frames waiting to be written.
    pub fn queued_frames(&self) -> usize {
        self.outbox.borrow().frames.len()
    }

    /// Drops every queued frame unwritten, its own and its feed's
    /// (benchmarks drain their in-memory sinks with it).
    pub fn discard_queued(&self) {
        let mut ob = self.outbox.borrow_mut();
        ob.frames.clear();
        ob.front_sent = 0;
        ob.bytes = 0;
        if let Some(place) = self.live.borrow_mut().as_mut() {
            place.skip_to_end();
        }
    }

    /// The client hung up (seen by the shard's ticker): the stream ends
    /// without waiting for a write to fail.
    pub fn hang_up(&self) {
        self.ending.set(true);
        self.notify();
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Queues the stream's last frame: the connection's task writes it and
    /// ends the stream.
    pub fn end(&self, last: Rc<[u8]>) {
        self.detach();
        self.ending.set(true);
        self.push(last, 0);
    }

    /// Called by the hub when it removes the connection from the broadcast
    /// at `position`: the frames of its feed it has not sent go with it.
    pub fn demote(&self, position: Vec<i64>) {
        self.detach();
        *self.demoted.borrow_mut() = Some(position);
        self.notify();
    }

    /// Keep-alive tick from the shard's ticker: after `keepalive` of silence
    /// queue a comment. Returns true if one was queued. A stream with bytes
    /// waiting gets none: its socket is full, a comment would not go out
    /// sooner, and a live stream's outbox must not get ahead of its feed.
    pub fn tick(&self, keepalive_frame: &Rc<[u8]>) -> bool {
        let idle = self.idle_ticks.get() + 1;
        self.idle_ticks.set(idle);
        if idle >= self.keepalive_ticks && self.queued_bytes() == 0 {
            self.push(Rc::clone(keepalive_frame), 0);
            true
        } else {
            false
        }
    }

    /// Waits until something was pushed or the connection was poked.
    async fn notified(&self) {
        poll_fn(|cx| {
            if self.notified.replace(false) {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }

    /// Resolves on the next movement of the topic's heads or the next push
    /// to the connection (keep-alive, shutdown).
    pub(crate) async fn wait_for_heads(&self, ctx: &ShardCtx, topic: TopicId) {
        let mut registered = false;
        poll_fn(|cx| {
            if registered || self.notified.replace(false) {
                return Poll::Ready(());
            }
            registered = true;
            ctx.hub
                .borrow_mut()
                .topic_mut(topic)
                .wait_for_heads(cx.waker());
            self.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await;
        // A push that woke us (a keep-alive) is written by the cursor's
        // next flush; leaving `notified` set would make the next wait
        // return at once and spin the shard.
    }

    /// Writes as much of the outbox as the socket takes without blocking.
    /// Returns true when the outbox is empty.
    pub(crate) fn try_send(&self, metrics: &ShardMetrics) -> io::Result<bool> {
        loop {
            let mut ob = self.outbox.borrow_mut();
            let mut live = self.live.borrow_mut();
            let mut iov: SmallVec<[libc::iovec; MAX_IOVECS]> = SmallVec::new();
            let mut total = 0;
            let mut add = |part: &[u8]| {
                total += part.len();
                iov.push(libc::iovec {
                    iov_base: part.as_ptr() as *mut libc::c_void,
                    iov_len: part.len(),
                });
                iov.len() < MAX_IOVECS
            };
            let mut room = true;
            for (i, (frame, _)) in ob.frames.iter().enumerate() {
                let part = if i == 0 {
                    &frame[ob.front_sent..]
                } else {
                    &frame[..]
                };
                room = add(part);
                if !room {
                    break;
                }
            }
            if room {
                if let Some(place) = live.as_ref() {
                    place.for_each_unsent(&mut add);
                }
            }
            if iov.is_empty() {
                return Ok(true);
            }
            // SAFETY: msghdr is plain data; all-zero is a valid empty header.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = iov.as_mut_ptr();
            msg.msg_iovlen = iov.len() as _;
            // SAFETY: every iovec points into a frame owned by the outbox or
            // the feed, both borrowed (so unchanged) for the duration of the
            // call; `fd` is this connection's open socket.
            let n =
                unsafe { libc::sendmsg(self.fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
            if n < 0 {
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::WouldBlock => return Ok(false),
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(err),
                }
            }
            let n = n as usize;
            metrics.bytes_sent.add(n as u64);
            self.idle_ticks.set(0);
            let events = advance(&mut ob, live.as_mut(), n);
            metrics.events_sent.add(events);
            if n < total {
                // The socket buffer is full.
                return Ok(false);
            }
        }
    }

    /// Like `flush`, but gives up when the socket takes nothing for
    /// `wait`: returns false then (glommio's write sends only inside its
    /// poll, so giving up loses nothing). Lets a stream whose client
    /// stopped reading look at its state (demoted? too far behind?).
    pub(crate) async fn flush_within(
        &self,
        stream: &mut TcpStream,
        metrics: &ShardMetrics,
        wait: Duration,
    ) -> io::Result<bool> {
        stream.set_write_timeout(Some(wait))?;
        let flushed = self.flush(stream, metrics).await;
        stream.set_write_timeout(None)?;
        match flushed {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the hub has taken the connection out of the live stream.
    pub(crate) fn is_ending(&self) -> bool {
        self.ending.get()
    }

    fn is_demoted(&self) -> bool {
        self.demoted.borrow().is_some()
    }

    /// Writes the whole outbox, waiting for socket room as needed.
    pub(crate) async fn flush(
        &self,
        stream: &mut TcpStream,
        metrics: &ShardMetrics,
    ) -> io::Result<()> {
        while !self.try_send(metrics)? {
            // Socket full: let glommio wait for room and write part of the
            // front frame (its writer sends straight from our slice).
            let (front, offset) = {
                let ob = self.outbox.borrow();
                match ob.frames.front() {
                    Some((f, _)) => (Rc::clone(f), ob.front_sent),
                    None => self
                        .live
                        .borrow()
                        .as_ref()
                        .and_then(Place::front)
                        .expect("something left to send"),
                }
            };
            self.writing.set(true);
            let written = stream.write(&front[offset..]).await;
            self.writing.set(false);
            let n = written?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            metrics.bytes_sent.add(n as u64);
            self.idle_ticks.set(0);
            let events = advance(
                &mut self.outbox.borrow_mut(),
                self.live.borrow_mut().as_mut(),
                n,
            );
            metrics.events_sent.add(events);
        }
        Ok(())
    }
}

/// Moves a connection past `n` sent bytes: its own outbox's first, then
/// its feed's. Returns the events whose frames are now fully sent.
fn advance(ob: &mut Outbox, live: Option<&mut Place>, n: usize) -> u64 {
    let own = n.min(ob.bytes);
    let mut events = ob.advance(own);
    if n > own {
        events += live.expect("sent more than was queued").advance(n - own);
    }
    events
}

/// Where a new stream starts.
enum StartAt {
    Live,
    Position(Vec<i64>),
}

/// What the request head asked for, owned so the read buffer can go.
enum Plan {
    Respond(Vec<u8>),
    Stream {
        route: usize,
        last_event_id: Option<Vec<u8>>,
        /// `?since=`, in milliseconds since the epoch.
        since: Option<i64>,
        allow_origin: Option<Vec<u8>>,
        /// The topic: known to this shard, or named by the request through
        /// the route's topic template and not served here yet.
        topic: TopicRef,
        /// The route's filters resolved for this request.
        filter: Option<filter::Filter>,
    },
}

/// Serves one accepted connection to the end.
pub async fn serve(ctx: Rc<ShardCtx>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(ctx.config.connections.nodelay);
    let read = match plan_now(&ctx, &stream) {
        Ok(Head::Complete(plan)) => Ok(plan),
        // Boxed: the read buffer lives on the heap only while the head is
        // read, not in the connection's future for the life of the stream.
        Ok(Head::Partial(buf)) => Box::pin(read_plan(&ctx, &mut stream, buf)).await,
        Err(e) => Err(e),
    };
    let plan = match read {
        Ok(plan) => plan,
        Err(e) => {
            debug!(error = %e, "connection closed before a request");
            return;
        }
    };
    let (route_idx, last_event_id, since, allow_origin, topic, filter) = match plan {
        Plan::Respond(bytes) => {
            ctx.metrics.http_errors.inc();
            let _ = stream.write_all(&bytes).await;
            let _ = stream.close().await;
            return;
        }
        Plan::Stream {
            route,
            last_event_id,
            since,
            allow_origin,
            topic,
            filter,
        } => (route, last_event_id, since, allow_origin, topic, filter),
    };
    let topic = match topic {
        TopicRef::Known(topic) => topic,
        TopicRef::Named(name) => match open_topic(&ctx, &name).await {
            Ok(topic) => topic,
            Err(response) => {
                ctx.metrics.http_errors.inc();
                let _ = stream.write_all(&response).await;
                let _ = stream.close().await;
                return;
            }
        },
    };
    let route = &RouteInfo {
        topic,
        ..ctx.routes[route_idx]
    };
    let selection = {
        let hub = ctx.hub.borrow();
        let ts = hub.topic(topic);
        let pruned = ctx.config.routes[route_idx].partitioner.is_some();
        ts.intern(select(filter, pruned, ts.partitions()))
    };
    let conn = Rc::new(Conn::new(
        stream.as_raw_fd(),
        ctx.keepalive_ticks(route.keepalive),
    ));
    ctx.metrics.connections_open.inc();
    ctx.metrics.connections_total.inc();
    ctx.conns.borrow_mut().push(Rc::clone(&conn));
    // The hub may still hold the connection (in a batch's write list) after
    // this task ends: it must be marked closed before the descriptor is, or
    // a write could reach whatever reuses the number. The guard also covers
    // the task being dropped mid-stream.
    let closing = MarkClosed(&conn);
    let requested = Requested {
        last_event_id,
        since,
    };
    let result = stream_events(
        &ctx,
        &conn,
        &mut stream,
        route,
        &selection,
        requested,
        allow_origin,
    )
    .await;
    if let Err(e) = result {
        debug!(error = %e, route = %ctx.config.routes[route_idx].path, "stream ended");
    }
    drop(closing);
    ctx.metrics.connections_open.sub(1);
    let _ = stream.close().await;
}

/// Marks a connection closed when dropped (see `serve`).
struct MarkClosed<'a>(&'a Conn);

impl Drop for MarkClosed<'_> {
    fn drop(&mut self) {
        self.0.closed.set(true);
    }
}

/// What the socket held when the connection was accepted.
enum Head {
    /// A whole request head: its plan.
    Complete(Plan),
    /// The start of one (possibly nothing yet), to be read on.
    Partial(Vec<u8>),
}

/// Usually the whole request head is in the socket by the time the
/// connection is served: read and parse it in the shard's scratch buffer,
/// without awaiting (so the borrow is never held across a suspension) and
/// without allocating. Thousands of connections arriving at once would
/// otherwise each allocate transient buffers that leave the allocator's
/// heap fragmented for as long as the streams live.
fn plan_now(ctx: &ShardCtx, stream: &TcpStream) -> io::Result<Head> {
    let mut scratch = ctx.head_scratch.borrow_mut();
    match recv_now(stream.as_raw_fd(), &mut scratch)? {
        Some(0) => Err(io::ErrorKind::UnexpectedEof.into()),
        Some(n) => match http::parse_request(&scratch[..n]) {
            Ok(None) => Ok(Head::Partial(scratch[..n].to_vec())),
            Ok(Some(head)) => Ok(Head::Complete(plan_for(ctx, &head))),
            Err(e) => Ok(Head::Complete(bad_request(&e))),
        },
        None => Ok(Head::Partial(Vec::new())),
    }
}

/// Reads the rest of a request head (`buf` holds what arrived so far)
/// within the request timeout and decides what to do with it.
async fn read_plan(ctx: &ShardCtx, stream: &mut TcpStream, mut buf: Vec<u8>) -> io::Result<Plan> {
    let deadline = Instant::now() + ctx.config.connections.request_timeout;
    // Most request heads fit in 1 KiB; the buffer doubles as needed and the
    // parser bounds it (431 past MAX_HEAD_BYTES). No separate read chunk: a
    // connection holds as little as possible while it is being set up.
    buf.reserve(1024);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        if buf.len() == buf.capacity() {
            buf.reserve(buf.len());
        }
        let filled = buf.len();
        buf.resize(buf.capacity(), 0);
        let n = stream.read(&mut buf[filled..]).await?;
        buf.truncate(filled + n);
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        match http::parse_request(&buf) {
            Ok(None) => continue,
            Ok(Some(head)) => return Ok(plan_for(ctx, &head)),
            Err(e) => return Ok(bad_request(&e)),
        }
    }
}

fn bad_request(e: &http::RequestError) -> Plan {
    let mut out = Vec::new();
    http::write_error(&mut out, e.status(), &e.to_string(), None);
    Plan::Respond(out)
}

/// One non-blocking `recv`: `None` when nothing has arrived yet.
fn recv_now(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        // SAFETY: `buf` is valid for writes of its length; `fd` is the
        // connection's open socket.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::WouldBlock => return Ok(None),
            io::ErrorKind::Interrupted => continue,
            _ => return Err(err),
        }
    }
}

fn plan_for(ctx: &ShardCtx, head: &http::RequestHead<'_>) -> Plan {
    let mut out = Vec::new();
    let Some((route, params)) = ctx.router.route(head.path) else {
        http::write_error(&mut out, 404, "no route for this path", None);
        return Plan::Respond(out);
    };
    let allow_origin = http::cors_allow_origin(&ctx.config.cors.allow_origins, head.origin);
    match head.method {
        Method::Get => {}
        Method::Options => {
            match allow_origin {
                Some(origin) => {
                    http::write_preflight(&mut out, origin, head.access_control_request_headers)
                }
                None => http::write_error(&mut out, 403, "origin not allowed", None),
            }
            return Plan::Respond(out);
        }
        _ => {
            http::write_error(&mut out, 405, "only GET streams events", None);
            return Plan::Respond(out);
        }
    }
    let vars = filter::Vars {
        params: &params,
        query: head.query,
    };
    let filter = match filter::resolve(&ctx.config.routes[route].filters, &vars) {
        Ok(filter) => filter,
        Err(missing) => {
            http::write_error(&mut out, 400, &missing.to_string(), None);
            return Plan::Respond(out);
        }
    };
    let topic = match request_topic(ctx, route, &vars) {
        Ok(topic) => topic,
        Err((status, why)) => {
            http::write_error(&mut out, status, &why, None);
            return Plan::Respond(out);
        }
    };
    if let TopicRef::Known(topic) = topic {
        let hub = ctx.hub.borrow();
        let ts = hub.topic(topic);
        if !ts.ready() {
            http::write_error(
                &mut out,
                503,
                "kafka metadata for this topic is not loaded yet",
                Some(1),
            );
            return Plan::Respond(out);
        }
        if let Some((_, why)) = ts.unavailable() {
            let reason = format!("kafka cannot serve this topic now: {why}");
            http::write_error(&mut out, 503, &reason, Some(UNAVAILABLE_RETRY_AFTER));
            return Plan::Respond(out);
        }
    }
    let since = match http::query_param(head.query, "since") {
        None => None,
        Some(text) => match parse_since(&text) {
            Some(ms) => Some(ms),
            None => {
                http::write_error(
                    &mut out,
                    400,
                    "since: expected an RFC 3339 time (2026-11-28T09:00:00Z) or milliseconds since the epoch",
                    None,
                );
                return Plan::Respond(out);
            }
        },
    };
    if ctx.metrics.connections_open.get() as usize >= ctx.max_connections {
        http::write_error(&mut out, 503, "connection limit reached", Some(1));
        return Plan::Respond(out);
    }
    let last_event_id = head
        .last_event_id
        .map(<[u8]>::to_vec)
        .or_else(|| http::query_param(head.query, "lastEventId").map(|v| v.as_bytes().to_vec()));
    Plan::Stream {
        route,
        last_event_id,
        since,
        allow_origin: allow_origin.map(<[u8]>::to_vec),
        topic,
        filter,
    }
}

/// A request's topic, as the request head tells it.
enum TopicRef {
    /// A topic this shard serves.
    Known(TopicId),
    /// A topic the request named through the route's topic template that
    /// this shard does not serve yet (see [`open_topic`]).
    Named(String),
}

/// The topic of a request to route number `route`: the route's own, or the
/// one its topic template names — a valid topic name matching one of the
/// route's `topics` patterns, else 404 (400 for a missing parameter).
fn request_topic(
    ctx: &ShardCtx,
    route: usize,
    vars: &filter::Vars<'_>,
) -> Result<TopicRef, (u16, String)> {
    let config = &ctx.config.routes[route];
    let Some(template) = &config.topic_template else {
        return Ok(TopicRef::Known(ctx.routes[route].topic));
    };
    let name = template.resolve(vars).map_err(|m| (400, m.to_string()))?;
    let name = String::from_utf8(name).map_err(|_| (404, "no such topic here".to_owned()))?;
    crate::codec::topic::check_topic_name(&name).map_err(|why| (404, why.to_string()))?;
    if !config
        .topics
        .iter()
        .any(|p| crate::codec::topic::glob_matches(p, &name))
    {
        return Err((404, format!("topic '{name}' is not served on this path")));
    }
    let known = ctx.topics.find(&name).filter(|&t| {
        let hub = ctx.hub.borrow();
        hub.has_topic(t) && hub.topic(t).ready()
    });
    Ok(match known {
        Some(topic) => TopicRef::Known(topic),
        None => TopicRef::Named(name),
    })
}

/// Missing topic names a shard remembers (see `open_topic`); a flood of
/// distinct names past this is asked about, not remembered.
const MISSING_TOPICS_REMEMBERED: usize = 4096;

/// How long the first request for a topic waits for the shard to load it
/// (metadata and every partition's position) before it gets a 503.
const TOPIC_LOAD_WAIT: Duration = Duration::from_secs(10);

/// Serves a topic a request named: checks with Kafka that it exists (a
/// metadata request, which never creates one) unless the process serves it
/// already, adds it to the topic table (every shard's sidecar starts
/// watching and fetching it), and waits until this shard has loaded it.
/// On failure, the HTTP response to send.
async fn open_topic(ctx: &ShardCtx, name: &str) -> Result<TopicId, Vec<u8>> {
    let respond = |status, why: &str, retry: Option<u64>| {
        let mut out = Vec::new();
        http::write_error(&mut out, status, why, retry);
        out
    };
    let topic = match ctx.topics.find(name) {
        Some(topic) => topic,
        None => {
            let not_found = || respond(404, &format!("topic '{name}' does not exist"), None);
            // A name Kafka just said is missing is not asked about again
            // until the next metadata refresh: requests for missing names
            // must not become a stream of metadata requests.
            let refresh = ctx.config.kafka.metadata_refresh;
            let now = Instant::now();
            if let Some(at) = ctx.missing_topics.borrow().get(name) {
                if now.saturating_duration_since(*at) < refresh {
                    return Err(not_found());
                }
            }
            ctx.metrics.topic_lookups.inc();
            let exists = cursor::ask(ctx, |reply| Request::Exists {
                name: name.to_owned(),
                reply,
            })
            .await;
            match exists {
                Ok(true) => {
                    ctx.missing_topics.borrow_mut().remove(name);
                }
                Ok(false) => {
                    let mut missing = ctx.missing_topics.borrow_mut();
                    if missing.len() >= MISSING_TOPICS_REMEMBERED {
                        missing.retain(|_, at| now.saturating_duration_since(*at) < refresh);
                    }
                    if missing.len() < MISSING_TOPICS_REMEMBERED {
                        missing.insert(name.to_owned(), now);
                    }
                    return Err(not_found());
                }
                Err(e) => {
                    let why = format!("kafka cannot tell whether topic '{name}' exists: {e}");
                    return Err(respond(503, &why, Some(UNAVAILABLE_RETRY_AFTER)));
                }
            }
            ctx.topics
                .register(name)
                .map_err(|e| respond(503, &e.to_string(), Some(UNAVAILABLE_RETRY_AFTER)))?
        }
    };
    let loaded = poll_fn(|cx| {
        let mut hub = ctx.hub.borrow_mut();
        hub.ensure_topics(&ctx.topics);
        let ts = hub.topic_mut(topic);
        if let Some((_, why)) = ts.unavailable() {
            return Poll::Ready(Err(why.clone()));
        }
        if ts.ready() {
            return Poll::Ready(Ok(()));
        }
        ts.wait_for_heads(cx.waker());
        Poll::Pending
    });
    let waited = async {
        glommio::timer::sleep(TOPIC_LOAD_WAIT).await;
        Err("kafka metadata for this topic is not loaded yet".to_owned())
    };
    match futures_lite::future::or(loaded, waited).await {
        Ok(()) => Ok(topic),
        Err(why) => Err(respond(503, &why, Some(1))),
    }
}

/// A request's selection: its filter and, on a route whose producers hash
/// keys with Kafka's default partitioner (`partitioner: murmur2`), the
/// partitions its filter's keys hash to among `partitions` — only when
/// every filter names a key; else every partition.
fn select(filter: Option<filter::Filter>, pruned: bool, count: usize) -> Selection {
    let partitions: Option<Rc<[u32]>> = match filter.as_ref().and_then(filter::Filter::keys) {
        Some(keys) if pruned && count > 0 => {
            let mut ps: Vec<u32> = keys
                .iter()
                .map(|k| crate::partitioner::partition_for_key(k, count as u32))
                .collect();
            ps.sort_unstable();
            ps.dedup();
            Some(Rc::from(ps))
        }
        _ => None,
    };
    Selection {
        hashed_over: if partitions.is_some() { count } else { 0 },
        filter: filter.map(Rc::new),
        partitions,
    }
}

/// Seconds a client is asked to wait when Kafka cannot serve its topic.
const UNAVAILABLE_RETRY_AFTER: u64 = 5;

/// `?since=`: an RFC 3339 time or milliseconds since the epoch.
fn parse_since(text: &str) -> Option<i64> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    rskafka::chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Where the client asked to start: its last event id wins over `since`,
/// which wins over the route's `start`.
struct Requested {
    last_event_id: Option<Vec<u8>>,
    since: Option<i64>,
}

async fn stream_events(
    ctx: &Rc<ShardCtx>,
    conn: &Rc<Conn>,
    stream: &mut TcpStream,
    route: &RouteInfo,
    selection: &Selection,
    requested: Requested,
    allow_origin: Option<Vec<u8>>,
) -> io::Result<()> {
    let Requested {
        last_event_id,
        since,
    } = requested;
    let mut head = Vec::with_capacity(256);
    http::write_stream_head(&mut head, allow_origin.as_deref());
    sse::encode_retry(&mut head, ctx.retry_millis());
    let hash = ctx.hub.borrow().topic(route.topic).hash;
    let plain_live =
        last_event_id.is_none() && since.is_none() && matches!(route.start, Start::Live);
    let start = if plain_live {
        // The common case needs no look-up (and no boxed future).
        Ok(StartAt::Live)
    } else {
        Box::pin(async {
            match last_event_id {
                Some(id) => match event_id::decode(hash, &id) {
                    Ok(progress) => {
                        let partitions = ctx.hub.borrow().topic(route.topic).partitions();
                        match position_of(progress, partitions) {
                            Some(position) => Ok(StartAt::Position(position)),
                            None => {
                                reset_event(
                                    &mut head,
                                    "id names more partitions than the topic has",
                                );
                                start_without_id(ctx, route, selection, since).await
                            }
                        }
                    }
                    Err(e) => {
                        reset_event(&mut head, &e.to_string());
                        start_without_id(ctx, route, selection, since).await
                    }
                },
                None => start_without_id(ctx, route, selection, since).await,
            }
        })
        .await
    };
    let start = match start {
        Ok(start) => start,
        Err(e) => {
            // Kafka did not answer an offset look-up: say so on the stream.
            error_event(&mut head, &e.to_string());
            conn.push(Rc::from(head), 0);
            return conn.flush(stream, &ctx.metrics).await;
        }
    };
    conn.send_or_queue(&head, &ctx.metrics);
    drop(head);
    // Where the stream must read at its own position before it is live:
    // the position it asked for, later the one a demotion hands over.
    let mut behind = match start {
        StartAt::Live => {
            ctx.hub.borrow_mut().topic_mut(route.topic).join(
                Rc::clone(conn),
                route.render,
                selection,
            );
            None
        }
        StartAt::Position(position) => Some((position, cursor::Origin::Request)),
    };
    loop {
        if let Some((position, origin)) = behind.take() {
            // Boxed: a live stream's resident future stays small.
            let reader = cursor::catch_up(ctx, conn, stream, route, selection, position, origin);
            Box::pin(reader).await?;
        }
        conn.notified().await;
        // A full socket: keep waiting while the connection is live; once
        // the hub has demoted it, the cursor takes over the waiting (and
        // checks `slow_client.max_lag` while it does).
        while !conn
            .flush_within(stream, &ctx.metrics, cursor::STUCK_CHECK)
            .await?
        {
            if conn.is_demoted() || conn.ending.get() {
                break;
            }
        }
        if ctx.shutting_down.get() || conn.ending.get() {
            return Ok(());
        }
        behind = conn
            .take_demotion()
            .map(|position| (position, cursor::Origin::Demoted));
    }
}

/// The start of a stream without a usable id: `since` (a Kafka look-up by
/// timestamp per partition), else the route's `start`.
async fn start_without_id(
    ctx: &ShardCtx,
    route: &RouteInfo,
    selection: &Selection,
    since: Option<i64>,
) -> Result<StartAt, KafkaError> {
    let query = match (since, route.start) {
        (Some(ms), _) => OffsetQuery::Timestamp(ms),
        (None, Start::Live) => return Ok(StartAt::Live),
        (None, Start::Earliest) => OffsetQuery::Earliest,
    };
    let partitions = ctx.hub.borrow().topic(route.topic).partitions();
    // A pruned stream looks up only the partitions it reads; the cursor
    // keeps the others at the heads.
    let lookups = (0..partitions).map(|p| async move {
        if selection.reads(p) {
            cursor::offset(ctx, route.topic, p as u32, query).await
        } else {
            Ok(cursor::UNKNOWN)
        }
    });
    let position = futures::future::try_join_all(lookups).await?;
    Ok(StartAt::Position(position))
}

/// The position an id names, over the topic's `partitions`: partitions the
/// id does not name (added since, or outside a pruned stream's) are
/// `cursor::UNKNOWN`, which a cursor reads from their earliest offset (or
/// keeps at the heads, if its stream does not read them). `None` if the id
/// names a partition the topic does not have.
fn position_of(progress: event_id::Progress, partitions: usize) -> Option<Vec<i64>> {
    let mut position = vec![cursor::UNKNOWN; partitions];
    match progress {
        event_id::Progress::All(next) => {
            if next.len() > partitions {
                return None;
            }
            position[..next.len()].copy_from_slice(&next);
        }
        event_id::Progress::Some(pairs) => {
            for (p, next) in pairs {
                *position.get_mut(p as usize)? = next;
            }
        }
    }
    Some(position)
}

fn reset_event(out: &mut Vec<u8>, reason: &str) {
    sse::encode_event(out, None, "reset", json_reason(reason).as_bytes());
}

pub(crate) fn error_event(out: &mut Vec<u8>, reason: &str) {
    sse::encode_event(out, None, "error", json_reason(reason).as_bytes());
}

/// `{"reason":"..."}` with the reason escaped as a JSON string.
fn json_reason(reason: &str) -> String {
    let mut s = String::with_capacity(reason.len() + 16);
    s.push_str("{\"reason\":\"");
    for c in reason.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push_str("\"}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_advance_counts_whole_frames() {
        let mut ob = Outbox::default();
        for (f, ev) in [(&b"abc"[..], 1), (b"de", 0), (b"fgh", 2)] {
            ob.bytes += f.len();
            ob.frames.push_back((Rc::from(f), ev));
        }
        assert_eq!(ob.advance(2), 0);
        assert_eq!((ob.front_sent, ob.bytes), (2, 6));
        assert_eq!(ob.advance(3), 1);
        assert_eq!((ob.frames.len(), ob.front_sent), (1, 0));
        assert_eq!(ob.advance(3), 2);
        assert!(ob.frames.is_empty());
        assert_eq!(ob.bytes, 0);
    }

    #[test]
    fn since_is_rfc_3339_or_epoch_millis() {
        assert_eq!(parse_since("1700000000123"), Some(1_700_000_000_123));
        assert_eq!(parse_since("0"), Some(0));
        assert_eq!(
            parse_since("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            parse_since("2023-11-15T00:13:20+02:00"),
            Some(1_700_000_000_000)
        );
        for bad in [
            "",
            "yesterday",
            "-5",
            "1.5",
            "2023-11-14",
            "99999999999999999999",
        ] {
            assert_eq!(parse_since(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn json_reason_escapes() {
        assert_eq!(
            json_reason("a\"b\\c\n"),
            "{\"reason\":\"a\\\"b\\\\c\\u000a\"}"
        );
    }
}
