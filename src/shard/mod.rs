//! The shard runtime: what one glommio executor, pinned to one CPU, runs
//! for the streams it serves. Everything here is `!Send` (`Rc`, `RefCell`,
//! `Cell`): no locks on the hot path.
//!
//! Data flows through it in this order:
//! - `intake`: batches from the shard's Kafka sidecar, forwarded to the
//!   other shards over the `mesh` and applied locally, and the batches
//!   other shards forward;
//! - [`hub`]: each batch is cached ([`cache`], the partition logs) and
//!   applied to its topic's stream ([`topic`]), whose live streams are
//!   grouped by what they receive ([`audiences`]) and how they render it
//!   (`group`); each frame is appended once to a group's `feed`;
//! - `write_pass`: every group that got frames is written, each member's
//!   [`outbox`] sending what it has not sent, straight from the feed;
//! - `ticker`: keep-alives, progress ids, hang-ups, cache age and
//!   topics unavailable for too long; `streams` is the registry it walks.
//!
//! A stream's own life (its request, catch-up reading, joining and leaving
//! the live stream) is the layer above, `crate::stream`.

pub mod audiences;
pub mod cache;
pub(crate) mod feed;
pub(crate) mod group;
pub mod hub;
pub(crate) mod intake;
pub(crate) mod mesh;
pub mod outbox;
pub(crate) mod streams;
pub(crate) mod ticker;
pub mod topic;
pub(crate) mod write_pass;

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tracing::info;

use crate::kafka::TopicTable;
use crate::model::ShardId;
use crate::ops::metrics::ShardMetrics;
use hub::Hub;
use streams::Streams;

/// A shard's runtime state, shared by its tasks.
#[derive(Debug)]
pub struct Shard {
    pub id: ShardId,
    pub hub: RefCell<Hub>,
    pub metrics: Arc<ShardMetrics>,
    pub streams: Streams,
    /// The process-wide topic table (topics requests name join it).
    pub topics: Arc<TopicTable>,
}

impl Shard {
    /// Marks the shard ready once every topic of the config is.
    pub fn update_ready(&self) {
        if !self.metrics.ready.load(Ordering::Relaxed) && self.hub.borrow().all_ready() {
            self.metrics.ready.store(true, Ordering::Relaxed);
            info!(shard = self.id.0, "all topics ready");
        }
    }
}
