//! Outboxes: a stream's sending end, shared by the stream's own task and
//! the shard's hub. It owns the stream's socket, the frames of this stream
//! alone (the stream head, a cursor's chunks, keep-alives, the last error)
//! and, while the stream is live, its place in its group's feed.
//!
//! Frames go out as many as fit per `sendmsg` (`MSG_DONTWAIT`), straight
//! from the frames' shared bytes. A live stream's frames are written by the
//! shard's write pass (see `write_pass`), one tight loop over every stream
//! that has something new; only when a socket is full is the stream's own
//! task woken, to wait for room with glommio's io_uring write. A live
//! stream that lags its feed by more than its budget is taken out of the
//! feed by the write pass (a *demotion*) with a copy of what it had not
//! sent, and continues as a catch-up reader, so a slow client costs
//! bounded memory and never delays the others.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_lite::AsyncWriteExt;
use smallvec::SmallVec;

use super::feed::{Feed, Place};
use crate::model::Position;
use crate::ops::metrics::ShardMetrics;
use crate::sys::socket::{ClientSocket, HangUps};

/// Slices per `sendmsg`: enough to drain a typical backlog in one call,
/// small enough to live on the stack.
const MAX_IOVECS: usize = 64;

/// A frame of the stream's own and the number of events it carries (0 for
/// the stream head and keep-alives), counted when the frame is fully
/// written.
type Queued = (Rc<[u8]>, u32);

/// The stream's own frames.
#[derive(Debug, Default)]
struct Frames {
    queue: VecDeque<Queued>,
    /// Bytes of the front frame already written.
    front_sent: usize,
    /// Bytes queued and not yet written.
    bytes: usize,
}

impl Frames {
    fn push(&mut self, frame: Rc<[u8]>, events: u32) {
        self.bytes += frame.len();
        self.queue.push_back((frame, events));
    }

    /// Drops `n` written bytes from the front. Returns the number of events
    /// whose frames are now fully written.
    fn advance(&mut self, mut n: usize) -> u64 {
        self.bytes -= n;
        let mut events = 0;
        while n > 0 {
            let (front, ev) = self.queue.front().expect("advance past the outbox");
            let left = front.len() - self.front_sent;
            if n >= left {
                n -= left;
                events += u64::from(*ev);
                self.queue.pop_front();
                self.front_sent = 0;
            } else {
                self.front_sent += n;
                n = 0;
            }
        }
        events
    }
}

/// Where the stream is, as its outbox sees it.
#[derive(Debug)]
enum Mode {
    /// Not in a feed: it sends its own frames only (a catch-up reader, or a
    /// stream not started yet).
    Own,
    /// Live: its place in its group's feed.
    ///
    /// INVARIANT: the own frames then hold only frames that come before
    /// every unsent frame of the feed (a cursor's last chunk, or a
    /// keep-alive queued when nothing was waiting), so sending them first
    /// keeps the stream in order.
    Live(Place),
    /// Taken out of the live stream by the hub at this position: the
    /// stream's task takes it and continues as a catch-up reader.
    Demoted(Position),
    /// The stream ends once its own frames are written (an error event is
    /// the last one, or the client hung up).
    Ending,
}

/// The stream's socket, as the hub's writes see it.
#[derive(Debug)]
enum Socket {
    /// Open and free: anyone on the shard may send on it now.
    Ready(ClientSocket),
    /// The stream's task holds it, waiting for room with part of a frame in
    /// flight: nobody else may write until it is back.
    InFlight,
    /// The stream is over; the socket is closed (or being closed).
    Closed,
    /// No socket: an in-memory sink (benchmarks), whose frames are only
    /// ever discarded.
    Memory,
}

/// The wake-up of the stream's task: a flag, so a wake that comes before
/// the task waits is not lost, and the waker to call.
#[derive(Default)]
struct Wake {
    notified: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wake")
            .field("notified", &self.notified.get())
            .finish_non_exhaustive()
    }
}

impl Wake {
    fn notify(&self) {
        self.notified.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    fn poll(&self, cx: &Context<'_>) -> Poll<()> {
        if self.notified.replace(false) {
            Poll::Ready(())
        } else {
            self.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        }
    }
}

/// The keep-alive of a stream whose head is not out yet: none, so that no
/// comment can go before the status line.
pub const NO_KEEPALIVE: u32 = u32::MAX;

/// A stream's sending end (see the module doc).
#[derive(Debug)]
pub struct Outbox {
    own: RefCell<Frames>,
    mode: RefCell<Mode>,
    socket: RefCell<Socket>,
    wake: Wake,
    /// Keep-alive ticks since the last frame was queued or written.
    idle_ticks: Cell<u32>,
    /// Set once the stream's route is known (see [`Outbox::set_keepalive`]).
    keepalive_ticks: Cell<u32>,
    /// The stream's task waits for room as the ticker sees it (see
    /// [`Outbox::wait_room`]).
    parked: Cell<bool>,
    /// Set while the stream has no task (see [`Outbox::park`]).
    revive: Revive,
}

/// What brings back the task of a stream that has none: a live stream with
/// nothing to do holds no task (no future, no task header: most of an idle
/// stream's memory), and the first wake-up spawns one again.
#[derive(Default)]
struct Revive(Cell<Option<Box<dyn FnOnce()>>>);

impl std::fmt::Debug for Revive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parked = self.0.take();
        let is = parked.is_some();
        self.0.set(parked);
        f.debug_tuple("Revive").field(&is).finish()
    }
}

impl Outbox {
    /// The outbox of a stream on `socket`, which it owns from now on.
    pub fn new(socket: ClientSocket, keepalive_ticks: u32) -> Self {
        Self::with_socket(Socket::Ready(socket), keepalive_ticks)
    }

    /// Keep-alive ticks that make up the stream's route's `keepalive`; an
    /// outbox made with [`NO_KEEPALIVE`] gets none until this is set. The
    /// silence counts from here (the stream head just went out).
    pub fn set_keepalive(&self, ticks: u32) {
        self.keepalive_ticks.set(ticks);
        self.idle_ticks.set(0);
    }

    /// Sets `TCP_NODELAY` on the socket.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        match &*self.socket.borrow() {
            Socket::Ready(socket) => socket.set_nodelay(nodelay),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// What arrived on the socket so far (a request head), without waiting:
    /// `None` when nothing has.
    pub fn recv_now(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match &*self.socket.borrow() {
            Socket::Ready(socket) => socket.recv_now(buf),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Reads from the socket, waiting at most `wait` (the rest of a request
    /// head). The socket is the reader's while it waits, as the writer's
    /// while it waits for room (see [`Outbox::flush`]).
    ///
    /// Not glommio's read: after a read that does not fill the buffer (a
    /// request head always) it arms a poll for the next read, which nobody
    /// makes: the poll stays armed for the stream's life. Data is taken
    /// without waiting, and awaited with a one-byte `MSG_PEEK` receive,
    /// which is done once data is there. (Waiting makes the socket a
    /// glommio stream, whose creation arms a read poll too: see
    /// [`ClientSocket`]; this one is done when the data comes.)
    pub async fn read(&self, buf: &mut [u8], wait: Duration) -> io::Result<usize> {
        let Socket::Ready(mut socket) = self.socket.replace(Socket::InFlight) else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let read = async {
            let deadline = std::time::Instant::now() + wait;
            let mut probe = [0u8; 1];
            loop {
                if let Some(n) = socket.recv_now(buf)? {
                    return Ok(n);
                }
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let stream = socket.waiting();
                let peeked = futures_lite::future::or(
                    async { Some(stream.peek(&mut probe).await) },
                    async {
                        glommio::timer::sleep(left).await;
                        None
                    },
                )
                .await;
                match peeked {
                    Some(peeked) => drop(peeked?),
                    None => return Err(io::ErrorKind::TimedOut.into()),
                }
            }
        }
        .await;
        if matches!(*self.socket.borrow(), Socket::InFlight) {
            *self.socket.borrow_mut() = Socket::Ready(socket);
        }
        read
    }

    /// An outbox with no socket, whose frames are only counted and
    /// discarded ([`Outbox::discard_queued`]): benchmarks' sinks.
    pub fn in_memory(keepalive_ticks: u32) -> Self {
        Self::with_socket(Socket::Memory, keepalive_ticks)
    }

    fn with_socket(socket: Socket, keepalive_ticks: u32) -> Self {
        Self {
            own: RefCell::default(),
            mode: RefCell::new(Mode::Own),
            socket: RefCell::new(socket),
            wake: Wake::default(),
            idle_ticks: Cell::new(0),
            keepalive_ticks: Cell::new(keepalive_ticks),
            parked: Cell::new(false),
            revive: Revive::default(),
        }
    }

    /// Whether the stream is over (its socket closed).
    pub fn is_closed(&self) -> bool {
        matches!(*self.socket.borrow(), Socket::Closed)
    }

    /// Marks the stream over and hands its socket to the caller to close
    /// (`None` if it had none). From now on nothing is sent on it.
    pub fn close(&self) -> Option<ClientSocket> {
        match self.socket.replace(Socket::Closed) {
            Socket::Ready(stream) => Some(stream),
            _ => None,
        }
    }

    /// Whether the socket became glommio's (see [`ClientSocket::waiting`]).
    #[cfg(test)]
    pub(crate) fn waits_in_glommio(&self) -> bool {
        match &*self.socket.borrow() {
            Socket::Ready(socket) => socket.is_glommio(),
            _ => false,
        }
    }

    #[cfg(test)]
    pub(crate) fn is_notified(&self) -> bool {
        self.wake.notified.get()
    }

    /// Bytes waiting to be sent: its own and its feed's.
    pub fn queued_bytes(&self) -> usize {
        let in_feed = match &*self.mode.borrow() {
            Mode::Live(place) => place.unsent(),
            _ => 0,
        };
        self.own.borrow().bytes + in_feed
    }

    /// Frames of its own waiting to be written.
    pub fn queued_frames(&self) -> usize {
        self.own.borrow().queue.len()
    }

    /// Starts reading a feed at `place` (see `Group::add`).
    pub(crate) fn attach(&self, place: Place) {
        *self.mode.borrow_mut() = Mode::Live(place);
    }

    /// Leaves its feed, taking a copy of the feed's frames it has not sent
    /// into its own frames, so it sends them all the same; then `next` is
    /// its mode.
    fn detach_into(&self, next: Mode) {
        let Mode::Live(place) = self.mode.replace(next) else {
            return;
        };
        let mut own = self.own.borrow_mut();
        if place.sent() > 0 {
            // Part of the feed's next frame went out: nothing of its own
            // can be waiting before it (see `Mode::Live`).
            debug_assert!(own.queue.is_empty());
            own.front_sent = place.sent();
        }
        own.bytes += place.unsent();
        own.queue.extend(place.unsent_frames());
    }

    /// The next frame it will send from `feed`, if it is live in `feed`.
    pub(crate) fn place_in(&self, feed: &Feed) -> Option<u64> {
        match &*self.mode.borrow() {
            Mode::Live(place) if place.is_in(feed) => Some(place.next()),
            _ => None,
        }
    }

    /// Whether it is live in `feed`.
    pub(crate) fn is_reading(&self, feed: &Feed) -> bool {
        self.place_in(feed).is_some()
    }

    /// Leaves its feed without a copy (the stream is over).
    pub(crate) fn leave_feed(&self) {
        let mut mode = self.mode.borrow_mut();
        if matches!(*mode, Mode::Live(_)) {
            *mode = Mode::Own;
        }
    }

    /// Queues a frame of its own and wakes the stream's task.
    pub fn push(&self, frame: Rc<[u8]>, events: u32) {
        self.own.borrow_mut().push(frame, events);
        self.idle_ticks.set(0);
        self.notify();
    }

    /// Sends bytes of this stream alone (the stream head) straight from the
    /// caller's buffer when nothing is queued, queueing only what the
    /// socket does not take: no shared copy for the common case.
    pub fn send_or_queue(&self, bytes: &[u8], metrics: &ShardMetrics) {
        let mut sent = 0;
        if let Socket::Ready(socket) = &*self.socket.borrow() {
            if self.own.borrow().queue.is_empty() {
                // A failure is met again by the task's next write, which
                // then ends the stream.
                if let Ok(n) = socket.send_now(bytes) {
                    sent = n;
                    metrics.bytes_sent.add(n as u64);
                }
            }
        }
        if sent < bytes.len() {
            self.push(Rc::from(&bytes[sent..]), 0);
        }
    }

    /// The hub's write after a batch: sends the queued frames right away,
    /// back to back with the other streams' writes and without waking this
    /// stream's task. Only what the socket does not take (or an error,
    /// which the task meets again and ends the stream with) is left to the
    /// task.
    pub fn write_through(&self, metrics: &ShardMetrics) {
        if !matches!(*self.socket.borrow(), Socket::Ready(_)) {
            // Closed: nothing more goes out. In flight: the task drains
            // everything once its write completes.
            return;
        }
        match self.try_send(metrics) {
            Ok(true) => {}
            Ok(false) | Err(_) => self.notify(),
        }
    }

    /// Wakes the stream's task, or brings it back if the stream has none
    /// (see [`Outbox::park`]).
    pub fn notify(&self) {
        self.wake.notify();
        if let Some(revive) = self.revive.0.take() {
            revive();
        }
    }

    /// Whether something was pushed or the stream was poked since the task
    /// last looked; it has looked now.
    pub fn take_notified(&self) -> bool {
        self.wake.notified.replace(false)
    }

    /// The stream's task ends, leaving the stream to the hub's writes:
    /// `revive` runs at the next wake-up (a frame of its own, a full
    /// socket, a demotion, its end, a hang-up, shutdown), and spawns the
    /// task again. Handed back when a wake-up came since the task last
    /// looked: the task goes on instead.
    pub fn park(&self, revive: Box<dyn FnOnce()>) -> Result<(), Box<dyn FnOnce()>> {
        if self.wake.notified.get() || self.is_closed() {
            return Err(revive);
        }
        self.revive.0.set(Some(revive));
        Ok(())
    }

    /// Whether the stream has no task now.
    #[cfg(test)]
    pub(crate) fn is_parked(&self) -> bool {
        let revive = self.revive.0.take();
        let parked = revive.is_some();
        self.revive.0.set(revive);
        parked
    }

    /// Ready once something was pushed or the stream was poked since the
    /// last time; else registers the task's waker.
    pub(crate) fn poll_notified(&self, cx: &Context<'_>) -> Poll<()> {
        self.wake.poll(cx)
    }

    /// Waits until something was pushed or the stream was poked.
    pub async fn notified(&self) {
        poll_fn(|cx| self.poll_notified(cx)).await
    }

    /// The position handed over by the hub's last demotion, if any: the
    /// stream then reads its own frames only.
    pub(crate) fn take_demotion(&self) -> Option<Position> {
        let mut mode = self.mode.borrow_mut();
        match std::mem::replace(&mut *mode, Mode::Own) {
            Mode::Demoted(position) => Some(position),
            other => {
                *mode = other;
                None
            }
        }
    }

    pub(crate) fn is_demoted(&self) -> bool {
        matches!(*self.mode.borrow(), Mode::Demoted(_))
    }

    /// Whether the stream ends once its own frames are written.
    pub fn is_ending(&self) -> bool {
        matches!(*self.mode.borrow(), Mode::Ending)
    }

    /// Called by the hub when it takes the stream out of the live stream at
    /// `position`: the frames of its feed it has not sent go with it.
    pub fn demote(&self, position: Position) {
        self.detach_into(Mode::Demoted(position));
        self.notify();
    }

    /// Queues the stream's last frame: the stream's task writes it and ends
    /// the stream.
    pub fn end(&self, last: Rc<[u8]>) {
        self.detach_into(Mode::Ending);
        self.push(last, 0);
    }

    /// The client hung up (seen by the shard's ticker): the stream ends
    /// without waiting for a write to fail.
    pub fn hang_up(&self) {
        self.detach_into(Mode::Ending);
        self.notify();
    }

    /// Drops every queued frame unwritten, its own and its feed's
    /// (benchmarks drain their in-memory sinks with it).
    pub fn discard_queued(&self) {
        let mut own = self.own.borrow_mut();
        *own = Frames::default();
        if let Mode::Live(place) = &mut *self.mode.borrow_mut() {
            place.skip_to_end();
        }
    }

    /// Keep-alive tick from the shard's ticker: after `keepalive` of silence
    /// queue a comment. Returns true if one was queued. A stream with bytes
    /// waiting gets none: its socket is full, a comment would not go out
    /// sooner, and a live stream's own frames must not get ahead of its
    /// feed.
    pub fn tick(&self, keepalive_frame: &Rc<[u8]>) -> bool {
        let idle = self.idle_ticks.get().saturating_add(1);
        self.idle_ticks.set(idle);
        if idle >= self.keepalive_ticks.get() && self.queued_bytes() == 0 {
            self.push(Rc::clone(keepalive_frame), 0);
            true
        } else {
            false
        }
    }

    /// Adds its socket to a hang-up poll, unless the socket is busy or
    /// gone; a parked stream is polled for room too. Returns whether it was
    /// added.
    pub fn poll_hang_up(&self, polls: &mut HangUps) -> bool {
        match &*self.socket.borrow() {
            Socket::Ready(socket) => {
                polls.add(socket, self.parked.get());
                true
            }
            _ => false,
        }
    }

    /// Waits, at most `wait`, until the shard's ticker finds room on the
    /// socket (or something is pushed, or the stream is poked), for a
    /// stream whose client stopped taking anything. Unlike
    /// [`Outbox::flush_within`], it keeps no io_uring request armed: with
    /// thousands of such streams each giving up its request every `wait`,
    /// the kernel's cancel of each scans them all (measured: a quarter of
    /// a core with 10,000 stalled readers, and live writes a second late).
    /// Room is found at the ticker's pace, so it is for streams that
    /// already waited a `flush_within` in vain.
    pub async fn wait_room(&self, wait: Duration) {
        self.parked.set(true);
        futures_lite::future::or(self.notified(), glommio::timer::sleep(wait)).await;
        self.parked.set(false);
    }

    /// From the ticker's poll: a parked stream's socket has room.
    pub(super) fn room(&self) {
        if self.parked.get() {
            self.notify();
        }
    }

    /// Writes as much as the socket takes without blocking: its own frames
    /// first, then its feed's. Returns true when nothing is left.
    pub fn try_send(&self, metrics: &ShardMetrics) -> io::Result<bool> {
        loop {
            let socket = self.socket.borrow();
            let ready = match &*socket {
                Socket::Ready(ready) => ready,
                Socket::InFlight | Socket::Memory => return Ok(false),
                Socket::Closed => return Err(io::ErrorKind::NotConnected.into()),
            };
            let mut own = self.own.borrow_mut();
            let mut mode = self.mode.borrow_mut();
            let (n, total) = {
                let live = match &*mode {
                    Mode::Live(place) => Some((place, place.feed().entries())),
                    _ => None,
                };
                let mut parts: SmallVec<[IoSlice<'_>; MAX_IOVECS]> = SmallVec::new();
                let mut total = 0;
                for (i, (frame, _)) in own.queue.iter().enumerate() {
                    if parts.len() == MAX_IOVECS {
                        break;
                    }
                    let part = if i == 0 {
                        &frame[own.front_sent..]
                    } else {
                        &frame[..]
                    };
                    total += part.len();
                    parts.push(IoSlice::new(part));
                }
                if let Some((place, entries)) = &live {
                    if parts.len() < MAX_IOVECS {
                        place.for_each_unsent(entries, |part| {
                            total += part.len();
                            parts.push(IoSlice::new(part));
                            parts.len() < MAX_IOVECS
                        });
                    }
                }
                if parts.is_empty() {
                    return Ok(true);
                }
                // One part (a live event, most of the time): `send`, which
                // costs the kernel less than `sendmsg` (no iovec array to
                // copy in and check).
                let sent = match &parts[..] {
                    [one] => ready.send_now(one),
                    _ => ready.send_vectored_now(&parts),
                };
                match sent {
                    Ok(n) => (n, total),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            metrics.bytes_sent.add(n as u64);
            self.idle_ticks.set(0);
            let live = match &mut *mode {
                Mode::Live(place) => Some(place),
                _ => None,
            };
            metrics.events_sent.add(advance(&mut own, live, n));
            if n < total {
                // The socket buffer is full.
                return Ok(false);
            }
        }
    }

    /// Like [`Outbox::flush`], but gives up when the socket takes nothing
    /// for `wait`: returns false then (glommio's write sends only inside
    /// its poll, so giving up loses nothing). Lets a stream whose client
    /// stopped reading look at its state (demoted? too far behind?).
    pub async fn flush_within(&self, metrics: &ShardMetrics, wait: Duration) -> io::Result<bool> {
        match self.flush_waiting(metrics, Some(wait)).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes everything queued, waiting for socket room as needed.
    pub async fn flush(&self, metrics: &ShardMetrics) -> io::Result<()> {
        self.flush_waiting(metrics, None).await
    }

    /// Writes everything queued; a wait for room gives up after `wait`
    /// (`TimedOut`).
    async fn flush_waiting(
        &self,
        metrics: &ShardMetrics,
        wait: Option<Duration>,
    ) -> io::Result<()> {
        while !self.try_send(metrics)? {
            // Socket full: let glommio wait for room and write part of the
            // front frame (its writer sends straight from our slice).
            let (front, offset) = {
                let own = self.own.borrow();
                match own.queue.front() {
                    Some((f, _)) => (Rc::clone(f), own.front_sent),
                    None => match &*self.mode.borrow() {
                        Mode::Live(place) => place.front().expect("something left to send"),
                        _ => unreachable!("try_send left nothing to send"),
                    },
                }
            };
            let Socket::Ready(mut socket) = self.socket.replace(Socket::InFlight) else {
                unreachable!("try_send found the socket ready");
            };
            let stream = socket.waiting();
            let written = match stream.set_write_timeout(wait) {
                Ok(()) => stream.write(&front[offset..]).await,
                Err(e) => Err(e.into()),
            };
            // Back before anything else runs: only a closed outbox stays
            // closed (the stream ended meanwhile).
            if matches!(*self.socket.borrow(), Socket::InFlight) {
                *self.socket.borrow_mut() = Socket::Ready(socket);
            }
            let n = written?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            metrics.bytes_sent.add(n as u64);
            self.idle_ticks.set(0);
            let mut mode = self.mode.borrow_mut();
            let live = match &mut *mode {
                Mode::Live(place) => Some(place),
                _ => None,
            };
            metrics
                .events_sent
                .add(advance(&mut self.own.borrow_mut(), live, n));
        }
        Ok(())
    }
}

/// Moves a stream past `n` sent bytes: its own frames first, then its
/// feed's. Returns the events whose frames are now fully sent.
fn advance(own: &mut Frames, live: Option<&mut Place>, n: usize) -> u64 {
    let first = n.min(own.bytes);
    let mut events = own.advance(first);
    if n > first {
        events += live.expect("sent more than was queued").advance(n - first);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_frames_advance_counts_whole_frames() {
        let mut own = Frames::default();
        for (f, ev) in [(&b"abc"[..], 1), (b"de", 0), (b"fgh", 2)] {
            own.push(Rc::from(f), ev);
        }
        assert_eq!(own.advance(2), 0);
        assert_eq!((own.front_sent, own.bytes), (2, 6));
        assert_eq!(own.advance(3), 1);
        assert_eq!((own.queue.len(), own.front_sent), (1, 0));
        assert_eq!(own.advance(3), 2);
        assert!(own.queue.is_empty());
        assert_eq!(own.bytes, 0);
    }

    #[test]
    fn a_parked_stream_is_brought_back_by_its_next_wake_up_once() {
        let outbox = Outbox::in_memory(1);
        let revived = Rc::new(Cell::new(0));
        let count = |r: &Rc<Cell<u32>>| {
            let r = Rc::clone(r);
            Box::new(move || r.set(r.get() + 1)) as Box<dyn FnOnce()>
        };
        assert!(outbox.park(count(&revived)).is_ok());
        assert!(outbox.is_parked());
        assert_eq!(revived.get(), 0);
        outbox.push(Rc::from(&b"x"[..]), 1);
        assert_eq!(revived.get(), 1, "the push brought the task back");
        assert!(!outbox.is_parked());
        outbox.notify();
        assert_eq!(revived.get(), 1, "only once");
        // A wake-up the task has not looked at yet: it may not go.
        assert!(outbox.park(count(&revived)).is_err());
        assert!(outbox.take_notified());
        assert!(outbox.park(count(&revived)).is_ok());
        // A closed stream is never parked.
        let closed = Outbox::in_memory(1);
        drop(closed.close());
        assert!(closed.park(count(&revived)).is_err());
    }

    #[test]
    fn no_keep_alive_before_the_stream_head() {
        let frame: Rc<[u8]> = Rc::from(&b":\n\n"[..]);
        // A stream still waiting on its start (Kafka look-ups): the ticker
        // must put nothing before its status line.
        let outbox = Outbox::in_memory(NO_KEEPALIVE);
        for _ in 0..10_000 {
            assert!(!outbox.tick(&frame));
        }
        assert_eq!(outbox.queued_bytes(), 0);
        // Its head is out: keep-alives from now on.
        outbox.set_keepalive(2);
        assert!(!outbox.tick(&frame));
        assert!(outbox.tick(&frame));
        assert_eq!(outbox.queued_frames(), 1);
    }
}
