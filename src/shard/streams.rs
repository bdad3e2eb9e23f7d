//! Every open stream of a shard, by its outbox: the ticker walks them for
//! keep-alives and hang-ups, shutdown tells each to finish.

use std::cell::{Cell, RefCell};
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
}

impl Streams {
    pub fn new(tick: Duration) -> Self {
        Self {
            open: RefCell::default(),
            shutting_down: Cell::new(false),
            tick,
        }
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
