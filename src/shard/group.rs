//! Groups: the live streams of one audience that render events alike, and
//! the feed they share. Membership lives here, not in the feed: the feed is
//! a log of frames, each member's outbox holds its place in it, and the
//! group drops the frames every member has sent.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::feed::Feed;
use super::outbox::Outbox;
use crate::codec::sse::Render;

/// One rendering's live streams of an audience, and their feed.
#[derive(Debug)]
pub struct Group {
    render: Render,
    feed: Rc<Feed>,
    /// INVARIANT: a member is live in `feed` until it leaves this list
    /// (it may have left the feed already: closed, demoted or ending).
    members: RefCell<Vec<Rc<Outbox>>>,
    /// Frames were appended since the write pass last wrote this group.
    dirty: Cell<bool>,
}

impl Group {
    pub fn new(render: Render) -> Rc<Self> {
        Rc::new(Self {
            render,
            feed: Feed::new(),
            members: RefCell::default(),
            dirty: Cell::new(false),
        })
    }

    pub fn render(&self) -> Render {
        self.render
    }

    pub fn feed(&self) -> &Rc<Feed> {
        &self.feed
    }

    /// A stream joins at the feed's end: it gets every frame appended from
    /// now on.
    pub fn add(&self, outbox: Rc<Outbox>) {
        outbox.attach(self.feed.place_at_end());
        self.members.borrow_mut().push(outbox);
    }

    /// Appends a frame for every member. Returns true if the group had
    /// nothing new for the write pass before (the caller lists it for the
    /// next pass).
    pub fn push(&self, frame: &Rc<[u8]>, events: u32) -> bool {
        self.feed.push(frame, events);
        !self.dirty.replace(true)
    }

    /// Members (some may have left the feed since the last prune).
    pub fn len(&self) -> usize {
        self.members.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.borrow().is_empty()
    }

    /// The members, for one pass over them that may await (so the list is
    /// copied, into `into`, rather than borrowed).
    pub fn members_into(&self, into: &mut Vec<Rc<Outbox>>) {
        into.clear();
        into.extend(self.members.borrow().iter().cloned());
    }

    /// Removes the members that no longer read the feed (closed, or taken
    /// out by a demotion or an end); a closed one leaves the feed here.
    pub fn retain_readers(&self) {
        self.members.borrow_mut().retain(|o| {
            if o.is_closed() {
                o.leave_feed();
            }
            o.is_reading(&self.feed)
        });
    }

    /// Takes every member out of the group; returns the open ones, which
    /// the caller demotes or ends (each takes along what it had not sent).
    pub fn drain(&self) -> Vec<Rc<Outbox>> {
        let mut members = std::mem::take(&mut *self.members.borrow_mut());
        members.retain(|o| {
            if o.is_closed() {
                o.leave_feed();
            }
            !o.is_closed()
        });
        members
    }

    /// Clears the write pass's mark; true if it was set.
    pub fn take_dirty(&self) -> bool {
        self.dirty.replace(false)
    }

    /// Drops the frames every member has sent.
    pub fn trim(&self) {
        let lowest = self
            .members
            .borrow()
            .iter()
            .filter_map(|o| o.place_in(&self.feed))
            .min();
        self.feed.trim(lowest);
    }

    /// Drops what was appended without writing it: every member skips to
    /// the feed's end (benchmarks, whose members are in-memory sinks).
    pub fn discard(&self) {
        self.take_dirty();
        for o in self.members.borrow().iter() {
            o.discard_queued();
        }
        self.trim();
    }
}
