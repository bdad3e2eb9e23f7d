//! The hub: a shard's topic streams, indexed by `TopicId`, and its
//! partition cache. [`apply_batch`] is where a batch becomes part of the
//! shard's view: cached first, then delivered record by record to the topic
//! stream's live streams (see `topic` and `audiences`), which leaves the
//! groups that got frames for the write pass (see `write_pass`).

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use super::cache::{Cache, Limits};
use super::topic::TopicStream;
use crate::kafka::TopicTable;
use crate::model::{Batch, TopicId};
use crate::ops::metrics::ShardMetrics;

/// Frames pushed between checks for a yield: long fan-out loops must let
/// the accept loop and new connections run (a fan-out loop that never yields
/// starved new clients of their response headers for minutes).
const PUSHES_PER_YIELD_CHECK: usize = 4096;

/// The topic streams of one shard, and its partition cache.
#[derive(Debug)]
pub struct Hub {
    topics: Vec<TopicStream>,
    /// The config's topics come first: `topics[..fixed]`.
    fixed: usize,
    pub cache: Cache,
    /// Some group has frames waiting for the write pass.
    pub(super) writes_pending: bool,
    /// The write pass task, when it sleeps.
    pub(super) write_waker: Option<Waker>,
}

impl Hub {
    /// `shard` of `shards`: which partitions' cache bytes this shard
    /// reports (see `Cache`).
    pub fn new(topics: &[String], limits: Limits, shard: usize, shards: usize) -> Self {
        Self {
            topics: topics.iter().cloned().map(TopicStream::new).collect(),
            fixed: topics.len(),
            cache: Cache::new(limits, topics.len(), shard, shards),
            writes_pending: false,
            write_waker: None,
        }
    }

    /// Wakes the write pass if a delivery left streams to write.
    fn note_writes(&mut self, topic: TopicId) {
        if !self.writes_pending && self.topic(topic).has_writes() {
            self.writes_pending = true;
            if let Some(w) = self.write_waker.take() {
                w.wake();
            }
        }
    }

    pub fn topic(&self, id: TopicId) -> &TopicStream {
        &self.topics[id.index()]
    }

    pub fn topic_mut(&mut self, id: TopicId) -> &mut TopicStream {
        &mut self.topics[id.index()]
    }

    /// A topic's stream and the cache, borrowed together.
    pub fn topic_and_cache(&mut self, id: TopicId) -> (&mut TopicStream, &mut Cache) {
        (&mut self.topics[id.index()], &mut self.cache)
    }

    /// Topics this shard has a stream for.
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// Drops cached records older than the cache's age bound.
    pub fn evict_expired(&mut self, now: Instant, metrics: &ShardMetrics) {
        self.cache.evict(now);
        metrics.cache_bytes.set(self.cache.owned_bytes() as u64);
    }

    /// The ticker's work on every topic (see [`TopicStream::tick`]).
    pub fn tick(&mut self, now: Instant, every: Duration, metrics: &ShardMetrics) {
        for t in 0..self.topics.len() {
            let sent = self.topics[t].tick(now, every);
            metrics.progress_sent.add(sent);
            self.note_writes(TopicId(t as u32));
        }
    }

    pub fn topics_mut(&mut self) -> impl Iterator<Item = &mut TopicStream> {
        self.topics.iter_mut()
    }

    /// Whether every topic of the config is ready (topics that requests
    /// name come and go with them).
    pub fn all_ready(&self) -> bool {
        self.topics[..self.fixed].iter().all(TopicStream::ready)
    }

    /// Adds the topics of the process-wide table this shard has not seen
    /// yet (a request on some shard named them).
    pub fn ensure_topics(&mut self, table: &TopicTable) {
        let known = self.topics.len();
        let total = table.len();
        for t in known..total {
            let name = table.name(TopicId(t as u32)).to_string();
            self.topics.push(TopicStream::new(name));
        }
        if total > known {
            self.cache.ensure_topics(total);
        }
    }

    /// Whether this shard has a stream for `topic` yet.
    pub fn has_topic(&self, topic: TopicId) -> bool {
        topic.index() < self.topics.len()
    }

    /// Every open live stream, for shutdown.
    pub fn live_count(&self) -> usize {
        self.topics.iter().map(TopicStream::live_connections).sum()
    }
}

/// Every this many batches the delivering tasks step aside for the write
/// pass (see `write_pass`), which otherwise runs when they wait for the
/// next batch: enough to share one pass among batches that queued up, few
/// enough that a steady inflow cannot hold the writes back.
const BATCHES_PER_WRITE_PASS: u32 = 32;

/// The batches a delivering task applied in a row, to step aside for the
/// write pass every [`BATCHES_PER_WRITE_PASS`] of them.
#[derive(Debug, Default)]
pub struct StepAside {
    in_a_row: Cell<u32>,
}

impl StepAside {
    /// Counts a batch applied; every [`BATCHES_PER_WRITE_PASS`]-th yields.
    pub async fn after_batch(&self) {
        let applied = self.in_a_row.get() + 1;
        if applied >= BATCHES_PER_WRITE_PASS {
            self.in_a_row.set(0);
            futures_lite::future::yield_now().await;
        } else {
            self.in_a_row.set(applied);
        }
    }
}

/// Applies one batch to the shard's stream of its topic and fans its records
/// out to the live streams. Yields between records when the executor wants
/// the CPU back, so accepting and serving new connections progresses during
/// large fan-outs.
pub async fn apply_batch(hub: &RefCell<Hub>, batch: &Arc<Batch>, metrics: &ShardMetrics) {
    let p = batch.partition;
    {
        let mut hub = hub.borrow_mut();
        // Cached before the heads move: a cursor reads the log only below
        // the heads (see `cursor`), so it never sees a record the live
        // stream has not passed, and the batch is there for every cursor
        // the moment the heads pass it.
        if let Some(start) = batch.log_start {
            hub.cache.trim_below(batch.topic, p, start);
        }
        if !batch.is_announcement() {
            hub.cache.insert(batch, Instant::now());
            metrics.cache_bytes.set(hub.cache.owned_bytes() as u64);
        }
        let ts = hub.topic_mut(batch.topic);
        if batch.is_announcement() && ts.knows(p) && batch.from < ts.heads()[p] {
            // An announcement below the head: the partition's log was
            // replaced (the topic was deleted and created again). Its
            // cached records belong to the old log; the live streams go on
            // with the new one from its start.
            ts.restart_partition(p, batch.from);
            hub.cache.clear_partition(batch.topic, p);
            metrics.cache_bytes.set(hub.cache.owned_bytes() as u64);
        }
        hub.topic_mut(batch.topic)
            .begin_batch(p, batch.from, metrics);
    }
    let mut pushed_since_check = 0;
    let mut skips = batch.skipped.iter().peekable();
    for rec in &batch.records {
        while let Some(&skip) = skips.next_if(|s| s.from < rec.offset) {
            hub.borrow_mut().topic_mut(batch.topic).skip(p, skip);
        }
        pushed_since_check += hub.borrow_mut().topic_mut(batch.topic).deliver(p, rec);
        if pushed_since_check >= PUSHES_PER_YIELD_CHECK {
            // The write pass may run meanwhile: a long batch is written as
            // it goes, so feeds stay small.
            pushed_since_check = 0;
            hub.borrow_mut().note_writes(batch.topic);
            glommio::yield_if_needed().await;
        }
    }
    let mut hub = hub.borrow_mut();
    for &skip in skips {
        hub.topic_mut(batch.topic).skip(p, skip);
    }
    hub.topic_mut(batch.topic).end_batch(p, batch.to);
    hub.note_writes(batch.topic);
}
