//! One client's stream: its request ([`plan`], and [`open_topic`] for a
//! topic the request names), where it starts ([`start`]), and its life
//! ([`life`]): live in the shard's fan-out, or behind as a catch-up
//! [`cursor`] reading the cache and Kafka at its own pace ([`encoder`],
//! [`catchup`], [`lag`]), switching between the two exactly.
//!
//! A shard's streams share a [`Front`]: each part holds what one step
//! needs, and each function takes only the parts it uses.

pub mod catchup;
pub mod cursor;
pub mod encoder;
pub mod lag;
pub mod life;
pub mod open_topic;
pub mod plan;
pub mod routes;
pub mod start;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use catchup::Catchup;
use open_topic::TopicOpener;
use plan::Requests;

/// What a shard's streams share, beside the shard runtime.
#[derive(Debug)]
pub struct Front {
    /// Requests → plans.
    pub requests: Requests,
    /// Topics requests name.
    pub opener: TopicOpener,
    /// Catch-up readers.
    pub catchup: Rc<Catchup>,
    /// The `retry:` a new stream is sent.
    pub retry: Retry,
    /// `connections.nodelay`.
    pub nodelay: bool,
}

impl Front {
    /// The `retry:` value for a new stream.
    pub fn retry_millis(&self) -> u64 {
        self.retry.millis()
    }
}

/// The `retry:` field: the configured base plus a random jitter per
/// stream, so a reconnect storm spreads out.
#[derive(Debug)]
pub struct Retry {
    base: Duration,
    jitter: Duration,
    rng: RefCell<fastrand::Rng>,
}

impl Retry {
    pub fn new(base: Duration, jitter: Duration) -> Self {
        Self {
            base,
            jitter,
            rng: RefCell::new(fastrand::Rng::new()),
        }
    }

    fn millis(&self) -> u64 {
        let base = self.base.as_millis() as u64;
        let jitter = self.jitter.as_millis() as u64;
        base + self.rng.borrow_mut().u64(0..=jitter)
    }
}
