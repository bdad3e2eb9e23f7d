//! Feeds: the frames one group of live connections receives (one filter,
//! one rendering), kept once and read by every connection of the group at
//! its own place.
//!
//! The hub appends each frame to the feed once, whatever the number of
//! connections reading it, so a record costs the same for 100 connections
//! as for 10,000. The shard's write pass then sends each connection of a
//! feed that has something new what that connection has not sent yet,
//! straight from the feed's frames (see `Conn::try_send`). A frame is
//! dropped once every connection has sent it; a connection that lags more
//! than its budget behind the feed's end leaves the feed with a copy of
//! what it had not sent (see `Conn::detach`).
//!
//! INVARIANT: a connection reads a feed only while it is in the feed's
//! `conns`; its place is then at or after the feed's first frame (frames are
//! dropped only below the lowest place of the connections in `conns`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use crate::stream::connection::Conn;

struct Entry {
    frame: Rc<[u8]>,
    /// Events the frame carries (0 for an id-only progress event).
    events: u32,
    /// Bytes appended to the feed up to the end of this frame.
    end: u64,
}

/// A group's frames and the live connections reading them.
#[derive(Default)]
pub struct Feed {
    entries: RefCell<VecDeque<Entry>>,
    /// Sequence number of `entries[0]`; frames are numbered from 0 as they
    /// are appended.
    first: Cell<u64>,
    /// Bytes appended before `entries[0]`.
    first_start: Cell<u64>,
    /// The live connections reading this feed.
    conns: RefCell<Vec<Rc<Conn>>>,
    /// Frames were appended since the write pass last wrote this feed.
    dirty: Cell<bool>,
}

/// Where a live connection is in its feed: the next frame to send, and how
/// much of it was sent.
pub struct Place {
    pub(crate) feed: Rc<Feed>,
    pub(crate) next: u64,
    pub(crate) sent: usize,
}

impl Feed {
    pub fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    /// The sequence number the next appended frame gets.
    fn end(&self) -> u64 {
        self.first.get() + self.entries.borrow().len() as u64
    }

    /// Bytes appended before frame `seq` (`first <= seq <= end`).
    fn bytes_before(&self, seq: u64) -> u64 {
        let entries = self.entries.borrow();
        match (seq - self.first.get()) as usize {
            0 => self.first_start.get(),
            i => entries[i - 1].end,
        }
    }

    fn bytes_total(&self) -> u64 {
        self.entries
            .borrow()
            .back()
            .map_or(self.first_start.get(), |e| e.end)
    }

    /// Appends a frame for every connection of the feed. Returns true if
    /// the feed had nothing new for the write pass before (the caller lists
    /// it for the next pass).
    pub fn push(&self, frame: &Rc<[u8]>, events: u32) -> bool {
        let end = self.bytes_total() + frame.len() as u64;
        self.entries.borrow_mut().push_back(Entry {
            frame: Rc::clone(frame),
            events,
            end,
        });
        !self.dirty.replace(true)
    }

    /// Live connections reading the feed.
    pub fn len(&self) -> usize {
        self.conns.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.borrow().is_empty()
    }

    /// A connection joins at the feed's end: it gets every frame appended
    /// from now on.
    pub fn add(self: &Rc<Self>, conn: Rc<Conn>) {
        conn.attach(Place {
            feed: Rc::clone(self),
            next: self.end(),
            sent: 0,
        });
        self.conns.borrow_mut().push(conn);
    }

    /// The connections, for one pass over them that may await (so the
    /// list is copied, into `into`, rather than borrowed).
    pub fn conns_into(&self, into: &mut Vec<Rc<Conn>>) {
        into.clear();
        into.extend(self.conns.borrow().iter().cloned());
    }

    /// Removes the connections that no longer read the feed (closed, or
    /// detached by a demotion or an end); a closed one is detached here.
    pub fn retain_readers(&self) {
        self.conns.borrow_mut().retain(|c| {
            if c.is_closed() {
                c.leave_feed();
            }
            c.is_reading(self)
        });
    }

    /// Takes every connection out of the feed, each with a copy of what it
    /// had not sent.
    pub fn drain(&self) -> Vec<Rc<Conn>> {
        let conns = std::mem::take(&mut *self.conns.borrow_mut());
        for c in &conns {
            c.detach();
        }
        conns
    }

    /// Clears the write pass's mark; true if it was set.
    pub fn take_dirty(&self) -> bool {
        self.dirty.replace(false)
    }

    /// Drops the frames every connection has sent.
    pub fn trim(&self) {
        let lowest = self
            .conns
            .borrow()
            .iter()
            .filter_map(|c| c.place_in(self))
            .min()
            .unwrap_or_else(|| self.end());
        let mut entries = self.entries.borrow_mut();
        while self.first.get() < lowest {
            let e = entries
                .pop_front()
                .expect("lowest place is at most the end");
            self.first.set(self.first.get() + 1);
            self.first_start.set(e.end);
        }
    }

    /// Frames held (tests, benchmarks).
    pub fn held(&self) -> usize {
        self.entries.borrow().len()
    }
}

impl Place {
    /// Bytes of the feed this place has not sent.
    pub fn unsent(&self) -> usize {
        (self.feed.bytes_total() - self.feed.bytes_before(self.next)) as usize - self.sent
    }

    /// Calls `each` with the unsent part of every frame from this place on,
    /// until it returns false.
    pub fn for_each_unsent(&self, mut each: impl FnMut(&[u8]) -> bool) {
        let entries = self.feed.entries.borrow();
        let from = (self.next - self.feed.first.get()) as usize;
        for (i, e) in entries.range(from..).enumerate() {
            let part = if i == 0 {
                &e.frame[self.sent..]
            } else {
                &e.frame[..]
            };
            if !each(part) {
                break;
            }
        }
    }

    /// The next frame to send and how much of it was sent, if any.
    pub fn front(&self) -> Option<(Rc<[u8]>, usize)> {
        let entries = self.feed.entries.borrow();
        let e = entries.get((self.next - self.feed.first.get()) as usize)?;
        Some((Rc::clone(&e.frame), self.sent))
    }

    /// Moves past `n` sent bytes. Returns the events whose frames are now
    /// fully sent.
    pub fn advance(&mut self, mut n: usize) -> u64 {
        let entries = self.feed.entries.borrow();
        let mut events = 0;
        while n > 0 {
            let e = &entries[(self.next - self.feed.first.get()) as usize];
            let left = e.frame.len() - self.sent;
            if n >= left {
                n -= left;
                events += u64::from(e.events);
                self.next += 1;
                self.sent = 0;
            } else {
                self.sent += n;
                n = 0;
            }
        }
        events
    }

    /// Every unsent frame with its events, the first one with the bytes of
    /// it already sent: what a connection leaving the feed takes along.
    pub fn unsent_frames(&self) -> Vec<(Rc<[u8]>, u32)> {
        let entries = self.feed.entries.borrow();
        let from = (self.next - self.feed.first.get()) as usize;
        entries
            .range(from..)
            .map(|e| (Rc::clone(&e.frame), e.events))
            .collect()
    }

    /// Skips everything appended so far (benchmarks' in-memory sinks).
    pub fn skip_to_end(&mut self) {
        self.next = self.feed.end();
        self.sent = 0;
    }
}
