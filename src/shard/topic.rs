//! Topic streams: a shard's merged stream of one topic. Batches of every
//! partition reach the shard (from its own sidecar, or from the owning
//! shard over the mesh) and are applied in arrival order; the stream keeps
//! its *heads* — the next offset of every partition — whether Kafka serves
//! the topic, the catch-up readers waiting for the heads to move, and the
//! topic's live streams ([`Audiences`]).
//!
//! INVARIANT (exactness of the live stream): a stream is live only while
//! its position equals the heads. It joins only when its position equals
//! the heads (checked and done without an await in between), and from then
//! on it receives every record the heads advance over. When that can no
//! longer hold — its queue is over budget, or the shard missed batches (a
//! full mesh queue) — it is taken out and handed the heads it had reached
//! as its position, so it continues as a catch-up reader with nothing lost
//! or repeated.

use std::rc::Rc;
use std::task::Waker;
use std::time::{Duration, Instant};

use super::audiences::{At, Audiences, Selection};
use super::group::Group;
use super::outbox::Outbox;
use crate::codec::event_id;
use crate::codec::sse::{self, Render};
use crate::kafka::Availability;
use crate::model::{Offset, Partition, Position, RecordAndOffset, Skip};
use crate::ops::metrics::ShardMetrics;

/// Since when and why Kafka cannot serve a topic.
#[derive(Debug, Clone)]
pub struct Outage {
    pub since: Instant,
    pub why: String,
}

/// One topic's merged stream on one shard.
#[derive(Debug)]
pub struct TopicStream {
    pub name: String,
    pub hash: u32,
    /// Partition count from metadata; `None` until the sidecar reports it.
    partitions: Option<usize>,
    /// INVARIANT: `heads.len() == known.len()`.
    heads: Position,
    /// Whether each partition's head is known (its fetch loop announced
    /// where it starts).
    known: Vec<bool>,
    /// Every partition's position was known once (see `ready`).
    was_ready: bool,
    /// Set while Kafka cannot serve the topic.
    outage: Option<Outage>,
    audiences: Audiences,
    /// Counts movements of the heads: an audience that last got a frame at
    /// an older count was passed over (see `Audiences::progress`).
    moves: u64,
    /// Catch-up readers waiting for the heads to move.
    waiters: Vec<Waker>,
    /// Groups that got frames since the write pass last ran (see
    /// `write_pass`).
    to_write: Vec<Rc<Group>>,
}

impl TopicStream {
    pub fn new(name: String) -> Self {
        Self {
            hash: event_id::topic_hash(&name),
            name,
            partitions: None,
            heads: Position::new(),
            known: Vec::new(),
            was_ready: false,
            outage: None,
            audiences: Audiences::default(),
            moves: 0,
            waiters: Vec::new(),
            to_write: Vec::new(),
        }
    }

    /// True once the partition count and the position of every partition
    /// are known.
    ///
    /// Once true it stays true: partitions added later join the stream when
    /// their fetch loops announce them (a live stream's position on such a
    /// partition is its start, where those loops begin reading).
    pub fn ready(&self) -> bool {
        self.was_ready
    }

    fn update_ready(&mut self) {
        if !self.was_ready {
            self.was_ready = match self.partitions {
                Some(n) => self.known.len() >= n && self.known[..n].iter().all(|k| *k),
                None => false,
            };
        }
    }

    /// Since when and why Kafka cannot serve this topic, if it cannot.
    pub fn outage(&self) -> Option<&Outage> {
        self.outage.as_ref()
    }

    /// The reason to end this topic's streams, once Kafka has not served
    /// it for longer than `timeout` (`kafka.unavailable_timeout`).
    pub fn unavailable_past(&self, timeout: Duration, now: Instant) -> Option<String> {
        let outage = self.outage.as_ref()?;
        (now.saturating_duration_since(outage.since) > timeout).then(|| {
            format!(
                "topic {} unavailable for more than {}: {}; reconnect to resume",
                self.name,
                humantime::format_duration(timeout),
                outage.why
            )
        })
    }

    /// Records what the sidecar's metadata watch reported, and wakes the
    /// waiting cursors so they look.
    pub fn set_availability(&mut self, availability: &Availability, now: Instant) {
        match availability {
            Availability::Available => self.outage = None,
            Availability::Unavailable(why) => {
                if self.outage.is_none() {
                    self.outage = Some(Outage {
                        since: now,
                        why: why.clone(),
                    });
                }
            }
        }
        self.wake_waiters();
    }

    /// Ends every live stream with `frame` (an error event): the topic has
    /// been unavailable for too long. Returns how many were ended.
    pub fn end_live(&mut self, frame: &Rc<[u8]>) -> u64 {
        let mut ended = 0;
        for outbox in self.audiences.drain_where(|_| true) {
            outbox.end(Rc::clone(frame));
            ended += 1;
        }
        self.wake_waiters();
        ended
    }

    /// The heads of all partitions; meaningful once `ready()`.
    pub fn heads(&self) -> &Position {
        &self.heads
    }

    pub fn partitions(&self) -> usize {
        self.heads.len()
    }

    fn ensure_partition(&mut self, p: Partition) {
        if self.heads.len() <= p.index() {
            self.heads.extend_to(p.index() + 1, Offset::ZERO);
            self.known.resize(p.index() + 1, false);
        }
    }

    /// Takes the partition count metadata reported, and wakes the waiting
    /// cursors. If the count grew, the live streams pruned by key end with
    /// an `event:error` (keys now hash to other partitions; their clients
    /// resume on the partitions their keys hash to now).
    pub fn set_partition_count(&mut self, count: u32) {
        let before = self.partitions;
        self.partitions = Some(before.unwrap_or(0).max(count as usize));
        if count > 0 {
            self.ensure_partition(Partition(count - 1));
        }
        self.update_ready();
        if before.is_some_and(|n| n < count as usize) {
            let mut frame = Vec::new();
            sse::error_event(
                &mut frame,
                &format!(
                    "topic {} now has {count} partitions, so keys hash to other partitions; reconnect to resume",
                    self.name
                ),
            );
            let frame: Rc<[u8]> = Rc::from(frame);
            for outbox in self.audiences.drain_where(|s| s.partitions.is_some()) {
                outbox.end(Rc::clone(&frame));
            }
        }
        self.wake_waiters();
    }

    /// Adds a stream to the live stream.
    ///
    /// INVARIANT: the caller checked its position equals `self.heads()`
    /// with no await since; this is what makes the switch from catch-up to
    /// live exact.
    pub fn join(&mut self, outbox: Rc<Outbox>, render: Render, selection: &Selection) {
        self.audiences.join(outbox, render, selection, self.moves);
    }

    /// The selection as the audiences share it (see `Audiences::intern`).
    pub fn intern(&self, selection: Selection) -> Selection {
        self.audiences.intern(selection)
    }

    /// The ticker's work on this stream: prunes closed streams, and sends
    /// the audiences passed over a progress event (see
    /// `Audiences::progress`). Returns how many were sent.
    pub fn tick(&mut self, now: Instant, every: Duration) -> u64 {
        self.audiences.prune();
        let at = At {
            heads: &self.heads,
            hash: self.hash,
            moves: self.moves,
        };
        self.audiences.progress(at, now, every, &mut self.to_write)
    }

    /// Registers a waker to be woken when the heads move.
    pub fn wait_for_heads(&mut self, waker: &Waker) {
        if !self.waiters.iter().any(|w| w.will_wake(waker)) {
            self.waiters.push(waker.clone());
        }
    }

    pub fn wake_waiters(&mut self) {
        for w in self.waiters.drain(..) {
            w.wake();
        }
    }

    /// Turns every live stream into a catch-up reader at the current heads
    /// (the shard is about to skip records it never received).
    fn demote_all(&mut self, metrics: &ShardMetrics) {
        for outbox in self.audiences.drain_where(|_| true) {
            metrics.demotions.inc();
            outbox.demote(self.heads.clone());
        }
    }

    /// Drops what deliveries queued without writing it: every live stream
    /// skips to the end of its feed and the feeds are emptied. Returns how
    /// many groups had frames. For benchmarks, whose streams are in-memory
    /// sinks.
    pub fn clear_pending_writes(&mut self) -> usize {
        let n = self.to_write.len();
        for group in self.to_write.drain(..) {
            group.discard();
        }
        n
    }

    /// Groups that got frames since the last write pass.
    pub fn take_to_write(&mut self) -> Vec<Rc<Group>> {
        std::mem::take(&mut self.to_write)
    }

    pub fn has_writes(&self) -> bool {
        !self.to_write.is_empty()
    }

    /// Live streams on this shard (all groups).
    pub fn live_connections(&self) -> usize {
        self.audiences.live()
    }

    /// Distinct selections among the live streams (tests, benchmarks).
    pub fn audiences(&self) -> usize {
        self.audiences.count()
    }

    #[cfg(test)]
    pub(crate) fn groups(&self) -> impl Iterator<Item = &Rc<Group>> {
        self.audiences.groups()
    }

    /// Whether partition `p`'s head is known.
    pub fn knows(&self, p: Partition) -> bool {
        self.known.get(p.index()).copied().unwrap_or(false)
    }

    /// The partition's log was replaced (the topic was deleted and created
    /// again): the live streams go on with the new log from `from`.
    pub fn restart_partition(&mut self, p: Partition, from: Offset) {
        self.heads[p] = from;
        self.moves += 1;
    }

    /// Starts applying a batch of partition `p` that begins at `from`: the
    /// first batch of a partition sets its head; a batch that starts past
    /// the head means the shard missed records, and the live streams become
    /// catch-up readers.
    pub fn begin_batch(&mut self, p: Partition, from: Offset, metrics: &ShardMetrics) {
        self.ensure_partition(p);
        if !self.known[p.index()] {
            self.known[p.index()] = true;
            self.heads[p] = from;
            self.update_ready();
        } else if from > self.heads[p] {
            // Records [head, from) never reached this shard (a full mesh
            // queue, or the fetch loop jumped after an out-of-range reset).
            // Live streams become readers that fetch the missing range.
            self.demote_all(metrics);
            self.heads[p] = from;
            self.moves += 1;
        }
    }

    /// Ends applying a batch of partition `p` that ends at `to`: offsets
    /// without a visible record (transaction markers, compaction) up to
    /// there are passed too.
    pub fn end_batch(&mut self, p: Partition, to: Offset) {
        if to > self.heads[p] {
            self.heads[p] = to;
            self.moves += 1;
        }
        self.wake_waiters();
    }

    /// Passes offsets of partition `p` that could not be decoded: the live
    /// streams reading it get `event:gap` for the part past the head.
    pub fn skip(&mut self, p: Partition, skip: Skip) {
        if skip.to <= self.heads[p] {
            return;
        }
        let from = skip.from.max(self.heads[p]);
        self.heads[p] = skip.to;
        self.moves += 1;
        let mut frame = Vec::new();
        sse::skipped_event(&mut frame, p, from, skip.to);
        let frame = Rc::<[u8]>::from(frame);
        self.audiences.tell(p, &frame, &mut self.to_write);
    }

    /// Delivers one record of partition `p` to the live streams and
    /// advances the heads — the per-record hot path. Returns how many
    /// streams it went to. A record below the head was delivered already
    /// (an overlapping batch) and is skipped: never twice.
    pub fn deliver(&mut self, p: Partition, rec: &RecordAndOffset) -> usize {
        if rec.offset < self.heads[p] {
            return 0;
        }
        self.heads[p] = rec.offset.next();
        self.moves += 1;
        let at = At {
            heads: &self.heads,
            hash: self.hash,
            moves: self.moves,
        };
        self.audiences.deliver(p, rec, at, &mut self.to_write)
    }
}
