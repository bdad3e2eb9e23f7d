//! Feeds: the frames one group of live streams receives (one filter, one
//! rendering), kept once and read by every stream of the group at its own
//! [`Place`].
//!
//! A feed is a log of frames and nothing else: it knows no connection. The
//! hub appends each frame to it once, whatever the number of readers, so a
//! record costs the same for 100 connections as for 10,000; each reader's
//! outbox holds its place (the next frame to send, and how much of it went
//! out) and sends straight from the feed's frames. The group that owns the
//! feed and its members (see `group`) drops the frames every member has
//! sent.
//!
//! INVARIANT: a place's `next` is at or after the feed's first frame: frames
//! are dropped only below the lowest place of the group's members.

use std::cell::{Cell, Ref, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

/// One frame of a feed.
#[derive(Debug)]
pub struct Entry {
    frame: Rc<[u8]>,
    /// Events the frame carries (0 for an id-only progress event).
    events: u32,
    /// Bytes appended to the feed up to the end of this frame.
    end: u64,
}

/// The frames of a feed, as a reader borrows them to send.
pub type Entries = VecDeque<Entry>;

/// A group's frames.
#[derive(Debug, Default)]
pub struct Feed {
    entries: RefCell<Entries>,
    /// Sequence number of `entries[0]`; frames are numbered from 0 as they
    /// are appended.
    first: Cell<u64>,
    /// Bytes appended before `entries[0]`.
    first_start: Cell<u64>,
}

/// Where a reader is in its feed: the next frame to send, and how much of
/// it was sent.
#[derive(Debug)]
pub struct Place {
    feed: Rc<Feed>,
    next: u64,
    sent: usize,
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

    /// Appends a frame for every reader.
    pub fn push(&self, frame: &Rc<[u8]>, events: u32) {
        let end = self.bytes_total() + frame.len() as u64;
        self.entries.borrow_mut().push_back(Entry {
            frame: Rc::clone(frame),
            events,
            end,
        });
    }

    /// A new reader's place: at the end, so it gets every frame appended
    /// from now on.
    pub fn place_at_end(self: &Rc<Self>) -> Place {
        Place {
            feed: Rc::clone(self),
            next: self.end(),
            sent: 0,
        }
    }

    /// Drops the frames before `lowest` (the lowest place of the readers),
    /// or every frame when there is no reader.
    pub fn trim(&self, lowest: Option<u64>) {
        let lowest = lowest.unwrap_or_else(|| self.end());
        let mut entries = self.entries.borrow_mut();
        while self.first.get() < lowest {
            let e = entries
                .pop_front()
                .expect("lowest place is at most the end");
            self.first.set(self.first.get() + 1);
            self.first_start.set(e.end);
        }
    }

    /// The frames, borrowed while a reader sends from them.
    pub fn entries(&self) -> Ref<'_, Entries> {
        self.entries.borrow()
    }

    /// Frames held (tests, benchmarks).
    pub fn held(&self) -> usize {
        self.entries.borrow().len()
    }
}

impl Place {
    /// Whether this is a place in `feed`.
    pub fn is_in(&self, feed: &Feed) -> bool {
        std::ptr::eq(Rc::as_ptr(&self.feed), feed)
    }

    /// The feed this place is in.
    pub fn feed(&self) -> &Rc<Feed> {
        &self.feed
    }

    /// The next frame to send.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Bytes of the next frame already sent.
    pub fn sent(&self) -> usize {
        self.sent
    }

    /// Bytes of the feed this place has not sent.
    pub fn unsent(&self) -> usize {
        (self.feed.bytes_total() - self.feed.bytes_before(self.next)) as usize - self.sent
    }

    /// Calls `each` with the unsent part of every frame of `entries` (this
    /// place's feed's, borrowed by the caller) from this place on, until it
    /// returns false.
    pub fn for_each_unsent<'e>(
        &self,
        entries: &'e Entries,
        mut each: impl FnMut(&'e [u8]) -> bool,
    ) {
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

    /// Every unsent frame with its events (the first one whole: `sent()`
    /// says how much of it went out): what a reader leaving the feed takes
    /// along.
    pub fn unsent_frames(&self) -> Vec<(Rc<[u8]>, u32)> {
        let from = (self.next - self.feed.first.get()) as usize;
        self.feed
            .entries
            .borrow()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &str) -> Rc<[u8]> {
        Rc::from(s.as_bytes())
    }

    #[test]
    fn readers_send_at_their_own_place_and_trimming_keeps_what_they_lack() {
        let feed = Feed::new();
        feed.push(&frame("ab"), 1);
        let mut early = feed.place_at_end();
        feed.push(&frame("cde"), 1);
        feed.push(&frame("f"), 0);
        let late = feed.place_at_end();
        assert_eq!((early.unsent(), late.unsent()), (4, 0));
        // Part of a frame, then the rest and the next one.
        assert_eq!(early.advance(2), 0);
        assert_eq!((early.next(), early.sent()), (1, 2));
        assert_eq!(early.front().map(|(f, at)| (f.len(), at)), Some((3, 2)));
        let mut parts = Vec::new();
        early.for_each_unsent(&feed.entries(), |p| {
            parts.push(p.to_vec());
            true
        });
        assert_eq!(parts, [b"e".to_vec(), b"f".to_vec()]);
        assert_eq!(early.advance(2), 1, "cde is now whole; f carries no event");
        assert_eq!(early.unsent(), 0);
        // The lowest reader decides what is dropped.
        feed.trim(Some(early.next().min(late.next())));
        assert_eq!(feed.held(), 0);
        feed.push(&frame("g"), 1);
        assert_eq!(late.unsent(), 1);
        assert_eq!(
            late.unsent_frames()
                .into_iter()
                .map(|(f, e)| (f.to_vec(), e))
                .collect::<Vec<_>>(),
            [(b"g".to_vec(), 1)]
        );
        feed.trim(None);
        assert_eq!(feed.held(), 0, "no reader: every frame goes");
    }
}
