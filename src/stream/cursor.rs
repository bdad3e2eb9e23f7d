//! Catch-up cursors: a stream whose position is not the hub's heads reads
//! at its own position — from the partition cache, else from Kafka (see
//! `catchup`) — until it reaches the heads, then joins the live stream.
//!
//! A cursor encodes its own frames, a chunk at a time and only once the
//! socket has taken the previous chunk, so a slow client holds at most one
//! chunk ([`CHUNK_BYTES`](super::encoder::CHUNK_BYTES) and the frame of the
//! record that filled it): while its socket is full it keeps no buffer and
//! no batch of its own, and its pace costs nobody else anything.
//!
//! INVARIANT (exact switch to live): a cursor reads a partition only below
//! the hub's head of that partition, and it joins the live stream only when
//! its position equals the heads, in the same borrow of the hub as the
//! check (no await in between). The hub caches each batch before its heads
//! pass it, and from the join on the stream receives every record the heads
//! advance over (see `shard::topic`). So every offset below the join point
//! was read by the cursor and every offset at or above it comes live: no
//! gap, no duplicate, however fast records arrive.

use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use smallvec::SmallVec;
use tracing::{debug, warn};

use super::catchup::{Backfilled, Catchup};
use super::encoder::Encoder;
use super::lag::{LagBound, Origin};
use super::routes::RouteInfo;
use crate::codec::sse;
use crate::kafka::{KafkaError, OffsetQuery};
use crate::model::{Batch, Offset, Partition, Position, TopicId};
use crate::ops::metrics::ShardMetrics;
use crate::shard::audiences::Selection;
use crate::shard::outbox::Outbox;
use crate::shard::Shard;

/// How often a cursor whose client takes nothing checks its lag.
pub const STUCK_CHECK: Duration = Duration::from_secs(1);

/// Partitions a cursor asks Kafka for at once.
const PARTITIONS_PER_ROUND: usize = 8;

/// Empty answers (each with `kafka::CATCHUP_MAX_WAIT_MS`) for a range the
/// hub has seen records in, before the range is taken to hold no visible
/// records: 2.5 s of a broker that answers but returns nothing.
const EMPTY_FETCHES_BEFORE_SKIP: u8 = 5;

/// Backoff after a failed catch-up fetch; the stream stays open meanwhile
/// (keep-alives continue).
const CATCHUP_RETRY: Duration = Duration::from_millis(200);

/// Where a cursor starts: per partition the next offset, or `None` for a
/// partition the stream's id does not name (added since the id was made,
/// or outside a pruned stream's), which a cursor reads from its earliest
/// offset — or keeps at the heads, if its stream does not read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume(pub Vec<Option<Offset>>);

impl From<Position> for Resume {
    fn from(position: Position) -> Self {
        Resume(position.offsets().iter().copied().map(Some).collect())
    }
}

/// Where a batch a cursor holds came from (counted apart in the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Cache,
    Kafka,
}

/// The last batch a cursor read of a partition, kept while it may serve
/// the next read (the cache may evict it meanwhile).
#[derive(Debug)]
struct Held {
    batch: Arc<Batch>,
    source: Source,
}

/// How a catch-up ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaughtUp {
    /// The position reached the heads: the stream is live now.
    Joined,
    /// The stream is ending (shutdown, or the client hung up).
    Stopped,
}

/// Reads from `start` until the position equals the hub's heads, then joins
/// the live stream (see the module's invariant). Exact: every record at or
/// after the start is delivered once, in partition order.
pub async fn catch_up(
    shard: &Rc<Shard>,
    catchup: &Rc<Catchup>,
    outbox: &Rc<Outbox>,
    route: &RouteInfo,
    selection: &Selection,
    start: Resume,
    origin: Origin,
) -> io::Result<CaughtUp> {
    let topic = route.topic;
    let mut enc = Encoder::new(
        route.render,
        selection,
        shard.hub.borrow().topic(topic).hash,
    );
    let mut lag = LagBound::new(catchup.bounds.max_lag, origin);
    // The position, and the partitions whose start is not known yet: their
    // offset in `position` is meaningless until resolved.
    let mut unresolved: SmallVec<[Partition; 4]> = SmallVec::new();
    let mut position = Position::from_offsets(
        start
            .0
            .iter()
            .enumerate()
            .map(|(i, at)| {
                at.unwrap_or_else(|| {
                    unresolved.push(Partition::at(i));
                    Offset::ZERO
                })
            })
            .collect(),
    );
    // Per partition: the last batch read, and consecutive fetches that
    // returned nothing new.
    let mut held: Vec<Option<Held>> = Vec::new();
    let mut empty_streak: Vec<u8> = Vec::new();
    let mut turn = 0usize;
    // The age of the oldest record in the chunk last handed to the socket.
    let mut pending_since: Option<i64> = None;
    // This cursor's turn to encode (see CATCHUP_SLOTS): kept while its
    // client takes what it is given, handed back whenever it waits.
    let mut slot = None;
    // Whether the client took nothing during the last wait for room.
    let mut stalled = Stalled::new(&shard.metrics);
    loop {
        if !outbox.try_send(&shard.metrics)? {
            // The socket is full: wait for room without a turn, and without
            // buffers: a client that stopped reading costs its queued chunk
            // and no more (batches read from Kafka are fetched again, those
            // of the cache looked up again). It must still meet `max_lag`:
            // the wait gives up every STUCK_CHECK to look at the lag. A
            // client that took nothing for a whole wait is then waited for
            // parked (see `Outbox::wait_room`) until it takes something.
            slot = None;
            enc.release();
            held.iter_mut().for_each(|h| *h = None);
            let room = if stalled.get() {
                let queued = outbox.queued_bytes();
                outbox.wait_room(STUCK_CHECK).await;
                let room = outbox.try_send(&shard.metrics)?;
                stalled.set(!room && outbox.queued_bytes() == queued);
                room
            } else {
                let room = outbox.flush_within(&shard.metrics, STUCK_CHECK).await?;
                stalled.set(!room);
                room
            };
            if !room {
                if shard.streams.is_shutting_down() || outbox.is_ending() {
                    return Ok(CaughtUp::Stopped);
                }
                let behind_by = position.behind(shard.hub.borrow().topic(topic).heads());
                let age_ms = pending_since.map(|ts| (now_millis() - ts).max(0) as u64);
                if let Some(reason) = lag.exceeded(behind_by, age_ms) {
                    // Its socket is full: the error event cannot reach it.
                    // It sees the stream end and resumes from its last id.
                    shard.metrics.slow_clients_ended.inc();
                    return Err(io::Error::other(reason));
                }
                continue;
            }
        }
        if shard.streams.is_shutting_down() || outbox.is_ending() {
            return Ok(CaughtUp::Stopped);
        }
        let gone = shard
            .hub
            .borrow()
            .topic(topic)
            .unavailable_past(catchup.bounds.unavailable_timeout, Instant::now());
        if let Some(reason) = gone {
            shard.metrics.topic_unavailable_ends.inc();
            return Err(end_with_error(shard, outbox, reason).await);
        }
        let partitions = shard.hub.borrow().topic(topic).partitions();
        if selection.hashed_over != 0 && selection.hashed_over != partitions {
            let reason = format!(
                "the topic now has {partitions} partitions, so keys hash to other partitions; reconnect to resume"
            );
            return Err(end_with_error(shard, outbox, reason).await);
        }
        // Partitions that appeared since the id was made, or that it does
        // not name, start at earliest; a pruned stream keeps those it does
        // not read at the heads, where they never hold it back.
        unresolved.extend((position.len()..partitions).map(Partition::at));
        position.extend_to(partitions, Offset::ZERO);
        {
            let hub = shard.hub.borrow();
            let heads = hub.topic(topic).heads();
            for p in Partition::all(partitions) {
                if !selection.reads(p) {
                    position[p] = heads[p];
                }
            }
        }
        unresolved.retain(|p| selection.reads(*p));
        while let Some(&p) = unresolved.last() {
            match catchup
                .start_offset(&shard.metrics, topic, p, OffsetQuery::Earliest)
                .await
            {
                Ok(earliest) => {
                    position[p] = earliest;
                    unresolved.pop();
                }
                Err(e) => {
                    debug!(error = %e, "offset look-up failed; retrying");
                    glommio::timer::sleep(CATCHUP_RETRY).await;
                }
            }
        }
        held.resize_with(position.len(), || None);
        empty_streak.resize(position.len(), 0);

        // Read what this cursor holds or the cache has, up to a chunk;
        // join when the heads are reached. Only so many cursors of the
        // shard encode at a time, and each steps aside after every chunk:
        // the others wait for a turn off the run queue, so a storm of
        // thousands of readers neither pushes new connections and live
        // writes behind thousands of tasks nor makes every reader finish
        // last (turns are handed out in order).
        match slot {
            Some(_) => futures_lite::future::yield_now().await,
            None => slot = catchup.slots.acquire_permit(1).await.ok(),
        }
        enc.start_turn();
        let mut misses: SmallVec<[(Partition, Offset); 8]> = SmallVec::new();
        let behind_by = {
            let mut hub = shard.hub.borrow_mut();
            let (ts, cache) = hub.topic_and_cache(topic);
            let heads = ts.heads();
            let n = position.len();
            let (mut cached, mut fetched) = (0, 0);
            for i in 0..n {
                let p = Partition::at((turn + i) % n);
                while position[p] < heads[p] && !enc.full() {
                    let at = position[p];
                    let holding = &mut held[p.index()];
                    if !holding.as_ref().is_some_and(|h| h.batch.covers(at)) {
                        *holding = cache
                            .log(topic, p)
                            .and_then(|l| l.lookup(at))
                            .map(|b| Held {
                                batch: Arc::clone(b),
                                source: Source::Cache,
                            });
                    }
                    match holding {
                        Some(h) => {
                            let n = enc.read(&h.batch, p, &mut position, heads[p]);
                            match h.source {
                                Source::Cache => cached += n,
                                Source::Kafka => fetched += n,
                            }
                        }
                        None => {
                            misses.push((p, at));
                            break;
                        }
                    }
                }
            }
            turn = turn.wrapping_add(1);
            shard.metrics.catchup_cached_records.add(cached);
            shard.metrics.catchup_fetched_records.add(fetched);
            if heads == &position {
                enc.push_to(outbox, &position);
                ts.join(Rc::clone(outbox), route.render, selection);
                return Ok(CaughtUp::Joined);
            }
            position.behind(heads)
        };
        let oldest = enc.take_oldest();
        if oldest.is_some() {
            pending_since = oldest;
        }
        let age_ms = oldest.map(|ts| (now_millis() - ts).max(0) as u64);
        if let Some(reason) = lag.exceeded(behind_by, age_ms) {
            shard.metrics.slow_clients_ended.inc();
            return Err(end_with_error(shard, outbox, reason).await);
        }
        if !enc.frames.is_empty() || enc.full() {
            // A turn that read a long stretch and showed nothing still
            // tells the client how far it got.
            enc.push_to(outbox, &position);
            continue;
        }
        if misses.is_empty() {
            // Ahead of this shard on the partitions not yet equal (the id
            // came from a faster shard or instance): wait for the heads.
            slot = None;
            heads_move(shard, outbox, topic).await;
            continue;
        }
        misses.truncate(PARTITIONS_PER_ROUND);
        slot = None;
        let results = futures::future::join_all(
            misses
                .iter()
                .map(|&(p, at)| catchup.fetch(shard, topic, p, at)),
        )
        .await;
        let mut gaps: SmallVec<[Partition; 4]> = SmallVec::new();
        let mut failed = false;
        {
            let hub = shard.hub.borrow();
            let ts = hub.topic(topic);
            for (&(p, at), result) in misses.iter().zip(results) {
                if position[p] != at {
                    continue;
                }
                let head = ts.heads()[p];
                let streak = &mut empty_streak[p.index()];
                match result {
                    Ok(Backfilled { batch: Some(b), .. }) => {
                        *streak = 0;
                        if b.covers(at) {
                            let n = enc.read(&b, p, &mut position, head);
                            shard.metrics.catchup_fetched_records.add(n);
                            held[p.index()] = Some(Held {
                                batch: b,
                                source: Source::Kafka,
                            });
                        }
                        // Else a fetch that started below `at` ended before
                        // it: the next round fetches from `at`.
                    }
                    Ok(Backfilled {
                        batch: None,
                        next_offset,
                        ..
                    }) if next_offset.min(head) > at => {
                        // Kafka returned batches past `at` with no visible
                        // record at or after it (transaction markers,
                        // aborted transactions): nothing to read up to
                        // their end.
                        position[p] = next_offset.min(head);
                        *streak = 0;
                    }
                    Ok(Backfilled {
                        batch: None,
                        high_watermark,
                        ..
                    }) => {
                        // Nothing came back although [at, head) held
                        // records when the owner fetched it. Ask again;
                        // only after several empty answers, each with a
                        // generous wait, is the range taken to hold nothing
                        // visible (transaction markers, compaction) and
                        // skipped, loudly.
                        *streak = streak.saturating_add(1);
                        if *streak > EMPTY_FETCHES_BEFORE_SKIP && high_watermark > at {
                            let to = head.min(high_watermark);
                            warn!(topic = %ts.name, partition = p.0, from = at.0, to = to.0, "no visible records in range; skipping");
                            position[p] = to;
                            *streak = 0;
                        }
                    }
                    Err(KafkaError::OffsetOutOfRange { .. }) => gaps.push(p),
                    Err(e) => {
                        debug!(error = %e, "catch-up fetch failed; retrying");
                        failed = true;
                    }
                }
            }
        }
        enc.push_to(outbox, &position);
        for p in gaps {
            resume_after_gap(catchup, outbox, topic, p, &mut position).await;
        }
        if failed {
            glommio::timer::sleep(CATCHUP_RETRY).await;
        }
    }
}

/// Whether a cursor's client took nothing during its last wait for room,
/// counted in `sse_kafka_stalled_readers` while it is so (and no longer
/// once the cursor ends, however it ends).
struct Stalled<'a> {
    metrics: &'a ShardMetrics,
    on: bool,
}

impl<'a> Stalled<'a> {
    fn new(metrics: &'a ShardMetrics) -> Self {
        Self { metrics, on: false }
    }

    fn get(&self) -> bool {
        self.on
    }

    fn set(&mut self, on: bool) {
        match (self.on, on) {
            (false, true) => self.metrics.stalled_readers.inc(),
            (true, false) => self.metrics.stalled_readers.sub(1),
            _ => {}
        }
        self.on = on;
    }
}

impl Drop for Stalled<'_> {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// Resolves on the next movement of the topic's heads or the next push to
/// the stream (keep-alive, shutdown).
async fn heads_move(shard: &Shard, outbox: &Outbox, topic: TopicId) {
    let mut registered = false;
    poll_fn(|cx| {
        if registered || outbox.poll_notified(cx).is_ready() {
            return Poll::Ready(());
        }
        registered = true;
        shard
            .hub
            .borrow_mut()
            .topic_mut(topic)
            .wait_for_heads(cx.waker());
        Poll::Pending
    })
    .await;
    // A push that woke us (a keep-alive) is written by the cursor's next
    // flush; leaving the outbox notified would make the next wait return
    // at once and spin the shard.
}

/// Ends the stream with `event:error` (the client reconnects and resumes
/// from its last id). Returns the error that ends the stream: the reason,
/// or the write's own error.
async fn end_with_error(shard: &Shard, outbox: &Outbox, reason: String) -> io::Error {
    let mut frame = Vec::new();
    sse::error_event(&mut frame, &reason);
    outbox.push(Rc::from(frame), 0);
    match outbox.flush(&shard.metrics).await {
        Ok(()) => io::Error::other(reason),
        Err(e) => e,
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The requested offset is no longer (or not yet) in Kafka: continue from
/// what Kafka holds and tell the client with `event:gap`.
async fn resume_after_gap(
    catchup: &Catchup,
    outbox: &Outbox,
    topic: TopicId,
    p: Partition,
    position: &mut Position,
) {
    let earliest = catchup
        .sidecar
        .offset(topic, p, OffsetQuery::Earliest)
        .await;
    let latest = catchup.sidecar.offset(topic, p, OffsetQuery::Latest).await;
    let (Ok(earliest), Ok(latest)) = (earliest, latest) else {
        glommio::timer::sleep(CATCHUP_RETRY).await;
        return;
    };
    let requested = position[p];
    let resumed_at = if requested < earliest {
        earliest
    } else {
        latest.min(requested)
    };
    if resumed_at == requested {
        return;
    }
    position[p] = resumed_at;
    outbox.push(Rc::from(sse::gap_event(p, requested, resumed_at)), 0);
}
