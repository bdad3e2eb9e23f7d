//! Every open stream of a shard, by its outbox: the ticker walks them for
//! keep-alives and hang-ups, shutdown tells each to finish. Streams opened
//! with a token also wait, in order of time, for their token's challenge
//! and end.

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::time::Duration;

use super::outbox::Outbox;

/// The shard's open streams, and whether the shard is shutting down.
#[derive(Debug)]
pub struct Streams {
    /// Pruned of closed streams by the ticker.
    open: RefCell<Vec<Rc<Outbox>>>,
    shutting_down: Cell<bool>,
    /// How often the ticker runs.
    tick: Duration,
    /// Streams whose token expires, the soonest step first.
    expiring: RefCell<BinaryHeap<Deadline>>,
    /// The heap's size at which it is next pruned of ended streams (which
    /// would otherwise stay until their token's time, an hour for many).
    prune_at: Cell<usize>,
}

/// The fewest deadlines the heap is pruned at.
const PRUNE_AT_LEAST: usize = 1024;

/// When a stream's token runs out, in seconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// The token's `exp`.
    pub expires_at: u64,
    /// When to send `event:challenge` (once), if the guard asks for one.
    pub challenge_at: Option<u64>,
    /// When the stream ends with `event:error` (`exp` plus the leeway).
    pub end_at: u64,
}

impl Expiry {
    /// When the next step is due.
    fn next(&self) -> u64 {
        self.challenge_at.unwrap_or(self.end_at).min(self.end_at)
    }
}

/// A stream waiting for its token's next step.
#[derive(Debug)]
struct Deadline {
    at: u64,
    expiry: Expiry,
    outbox: Rc<Outbox>,
}

/// Ordered by `at` alone: deadlines of one second come out in any order.
impl PartialEq for Deadline {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Deadline {}
impl PartialOrd for Deadline {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Deadline {
    /// Reversed: `BinaryHeap` is a max-heap, the soonest must come first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at)
    }
}

/// A token's step that is due.
#[derive(Debug)]
pub enum Due {
    /// Send the challenge; the stream's expiry is handed back to wait on.
    Challenge(Rc<Outbox>, Expiry),
    /// End the stream.
    End(Rc<Outbox>),
}

impl Streams {
    pub fn new(tick: Duration) -> Self {
        Self {
            open: RefCell::default(),
            shutting_down: Cell::new(false),
            tick,
            expiring: RefCell::default(),
            prune_at: Cell::new(PRUNE_AT_LEAST),
        }
    }

    /// Has the ticker send the stream its token's challenge and end it when
    /// the token runs out (see [`Expiry`]).
    pub fn watch_expiry(&self, outbox: Rc<Outbox>, expiry: Expiry) {
        let mut expiring = self.expiring.borrow_mut();
        if expiring.len() >= self.prune_at.get() {
            // Amortised: the next pruning waits until the heap doubles.
            expiring.retain(|d| !d.outbox.is_closed());
            self.prune_at.set((2 * expiring.len()).max(PRUNE_AT_LEAST));
        }
        expiring.push(Deadline {
            at: expiry.next(),
            expiry,
            outbox,
        });
    }

    /// The next token step due at `now` (seconds since the epoch), if any;
    /// streams that ended already are dropped on the way.
    pub(super) fn next_due(&self, now: u64) -> Option<Due> {
        let mut expiring = self.expiring.borrow_mut();
        while expiring.peek().is_some_and(|d| d.at <= now) {
            let Deadline { expiry, outbox, .. } = expiring.pop()?;
            if outbox.is_closed() || outbox.is_ending() {
                continue;
            }
            return Some(match expiry.challenge_at {
                Some(at) if at < expiry.end_at => Due::Challenge(outbox, expiry),
                _ => Due::End(outbox),
            });
        }
        None
    }

    /// The ticker's period.
    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// Keep-alive ticks that make up `keepalive` (at least one).
    pub fn keepalive_ticks(&self, keepalive: Duration) -> u32 {
        (keepalive.as_nanos().div_ceil(self.tick.as_nanos())).clamp(1, u128::from(u32::MAX)) as u32
    }

    pub fn add(&self, outbox: Rc<Outbox>) {
        self.open.borrow_mut().push(outbox);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.get()
    }

    /// Shutdown: every stream's task is woken to flush what it has queued
    /// and end.
    pub fn shut_down(&self) {
        self.shutting_down.set(true);
        for outbox in self.open.borrow().iter() {
            outbox.notify();
        }
    }

    /// The open streams, after forgetting the closed ones.
    pub(super) fn open(&self) -> std::cell::RefMut<'_, Vec<Rc<Outbox>>> {
        let mut open = self.open.borrow_mut();
        open.retain(|o| !o.is_closed());
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expiry(expires_at: u64, challenge_at: Option<u64>) -> Expiry {
        Expiry {
            expires_at,
            challenge_at,
            end_at: expires_at + 2,
        }
    }

    fn is_challenge(due: Option<Due>, of: &Rc<Outbox>) -> Option<Expiry> {
        match due {
            Some(Due::Challenge(o, e)) if Rc::ptr_eq(&o, of) => Some(e),
            other => panic!("not a challenge of this stream: {other:?}"),
        }
    }

    fn is_end(due: Option<Due>, of: &Rc<Outbox>) {
        assert!(matches!(due, Some(Due::End(o)) if Rc::ptr_eq(&o, of)));
    }

    #[test]
    fn token_steps_come_due_in_order_of_time() {
        let streams = Streams::new(Duration::from_secs(1));
        let (a, b, c) = (
            Rc::new(Outbox::in_memory(1)),
            Rc::new(Outbox::in_memory(1)),
            Rc::new(Outbox::in_memory(1)),
        );
        streams.watch_expiry(Rc::clone(&a), expiry(100, Some(90)));
        streams.watch_expiry(Rc::clone(&b), expiry(50, None));
        streams.watch_expiry(Rc::clone(&c), expiry(95, Some(80)));
        assert!(streams.next_due(51).is_none(), "b ends at 52, not before");
        is_end(streams.next_due(52), &b);
        let challenged = is_challenge(streams.next_due(90), &c).unwrap();
        is_challenge(streams.next_due(90), &a);
        assert!(streams.next_due(90).is_none());
        // Handed back without its challenge: next its end.
        streams.watch_expiry(
            Rc::clone(&c),
            Expiry {
                challenge_at: None,
                ..challenged
            },
        );
        assert!(streams.next_due(96).is_none());
        is_end(streams.next_due(97), &c);
        // A challenge not before the end is no challenge.
        streams.watch_expiry(Rc::clone(&a), expiry(10, Some(12)));
        is_end(streams.next_due(12), &a);
    }

    #[test]
    fn ended_streams_are_skipped_and_pruned() {
        let streams = Streams::new(Duration::from_secs(1));
        let gone = Rc::new(Outbox::in_memory(1));
        streams.watch_expiry(Rc::clone(&gone), expiry(10, None));
        drop(gone.close());
        assert!(gone.is_closed());
        assert!(
            streams.next_due(100).is_none(),
            "an ended stream has no steps"
        );
        // Many streams that end before their token: the heap does not keep
        // them all.
        for _ in 0..10 * PRUNE_AT_LEAST {
            let o = Rc::new(Outbox::in_memory(1));
            streams.watch_expiry(Rc::clone(&o), expiry(1_000_000, None));
            drop(o.close());
        }
        assert!(
            streams.expiring.borrow().len() <= PRUNE_AT_LEAST,
            "{}",
            streams.expiring.borrow().len()
        );
    }
}
