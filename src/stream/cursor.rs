//! Catch-up cursors: a stream whose position is not the hub's heads reads
//! at its own position — from the partition cache, else from Kafka — until
//! it reaches the heads, then joins the live stream.
//!
//! A cursor encodes its own frames, a chunk at a time and only once the
//! socket has taken the previous chunk, so a slow client holds at most one
//! chunk besides references to shared batches, and its pace costs nobody
//! else anything. Positions the cache does not hold are fetched from Kafka
//! through the shard's [`Fetches`]: a cursor that needs a range another
//! cursor is already fetching waits for that fetch, and each partition has
//! a bounded number of fetches in flight, so a reconnect storm becomes a
//! bounded number of broker fetches whatever the number of clients.
//!
//! INVARIANT (exact switch to live): a cursor reads a partition only below
//! the hub's head of that partition, and it joins the live stream only when
//! its position equals the heads, in the same borrow of the hub as the
//! check (no await in between). The hub caches each batch before its heads
//! pass it, and from the join on the connection receives every record the
//! heads advance over (see `hub`). So every offset below the join point was
//! read by the cursor and every offset at or above it comes live: no gap,
//! no duplicate, however fast records arrive.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};
use glommio::net::TcpStream;
use smallvec::SmallVec;
use tracing::{debug, warn};

use crate::codec::filter::RecordView;
use crate::codec::sse;
use crate::config::MaxLag;
use crate::kafka::{Batch, Fetched, KafkaError, OffsetQuery, Request, TopicId};
use crate::server::executor::{RouteInfo, ShardCtx};
use crate::shard::hub::{Render, Selection};
use crate::stream::connection::{self, Conn};

/// A position's offset for a partition whose start is not known yet: the
/// cursor reads it from its earliest offset (a partition added since the id
/// was made), unless its stream does not read that partition.
pub const UNKNOWN: i64 = -1;

/// Frame bytes a cursor encodes before it lets the socket take them.
const CHUNK_BYTES: usize = 32 << 10;

/// Records a cursor reads in one turn, shown or filtered out: a filter that
/// passes over a long stretch of the cache must not hold the shard.
const RECORDS_PER_TURN: u64 = 8192;

/// How often a cursor whose client takes nothing checks its lag.
pub const STUCK_CHECK: Duration = Duration::from_secs(1);

/// Cursors of a shard that encode at the same time (see `catch_up`).
pub const CATCHUP_SLOTS: u64 = 32;

/// Kafka fetches in flight per partition per shard, however many cursors
/// wait: a reconnect storm must not become a fetch storm.
const FETCHES_PER_PARTITION: usize = 2;

/// Partitions a cursor asks Kafka for at once.
const PARTITIONS_PER_ROUND: usize = 8;

/// Empty answers (each with `CATCHUP_MAX_WAIT_MS`) for a range the hub has
/// seen records in, before the range is taken to hold no visible records:
/// 2.5 s of a broker that answers but returns nothing.
const EMPTY_FETCHES_BEFORE_SKIP: u8 = 5;

/// Backoff after a failed catch-up fetch; the stream stays open meanwhile
/// (keep-alives continue).
const CATCHUP_RETRY: Duration = Duration::from_millis(200);

/// What a shared Kafka fetch gives every cursor waiting for it.
#[derive(Debug, Clone)]
pub struct Backfilled {
    /// The batch now holding the requested offset (cached if it fit), or
    /// `None` if Kafka returned nothing at or after it.
    pub batch: Option<Arc<Batch>>,
    pub high_watermark: i64,
    /// Past the last batch Kafka returned: with `batch` `None`, the fetch's
    /// offsets up to here hold no visible record.
    pub next_offset: i64,
}

type FetchResult = Result<Backfilled, KafkaError>;
type FetchFuture = Pin<Box<dyn Future<Output = FetchResult>>>;
type SharedFetch = Shared<FetchFuture>;
type InFlight = SmallVec<[(i64, SharedFetch); FETCHES_PER_PARTITION]>;

/// The Kafka fetches in flight for this shard's cursors, per partition,
/// keyed by the offset each starts at.
#[derive(Default)]
pub struct Fetches {
    inflight: RefCell<HashMap<(TopicId, u32), InFlight>>,
}

impl Fetches {
    /// Fetches in flight (tests).
    pub fn in_flight(&self) -> usize {
        self.inflight.borrow().values().map(SmallVec::len).sum()
    }
}

/// The records at `at` of a partition the cache does not hold: joins a
/// fetch already under way from at or before `at` (it most likely covers
/// `at`; the caller checks), else starts one when the partition has room,
/// else waits for one to finish and looks again.
async fn fetch_shared(ctx: &Rc<ShardCtx>, topic: TopicId, p: u32, at: i64) -> FetchResult {
    enum Next {
        Join(SharedFetch),
        Started(SharedFetch),
        WaitFor(SharedFetch),
    }
    loop {
        let next = {
            let mut inflight = ctx.fetches.inflight.borrow_mut();
            let list = inflight.entry((topic, p)).or_default();
            let covering = list
                .iter()
                .filter(|(from, _)| *from <= at)
                .max_by_key(|(from, _)| *from);
            if let Some((_, f)) = covering {
                Next::Join(f.clone())
            } else if list.len() >= FETCHES_PER_PARTITION {
                Next::WaitFor(list[0].1.clone())
            } else {
                let f = start_fetch(Rc::clone(ctx), topic, p, at);
                list.push((at, f.clone()));
                Next::Started(f)
            }
        };
        match next {
            Next::Join(f) => {
                ctx.metrics.catchup_fetch_joins.inc();
                return f.await;
            }
            Next::Started(f) => return f.await,
            Next::WaitFor(f) => {
                // The partition has its fetches in flight: wait for the
                // oldest, then look again (it may have covered `at`).
                ctx.metrics.catchup_fetch_joins.inc();
                let _ = f.await;
            }
        }
    }
}

fn start_fetch(ctx: Rc<ShardCtx>, topic: TopicId, p: u32, at: i64) -> SharedFetch {
    let fut: FetchFuture = Box::pin(async move {
        let result = fetch(&ctx, topic, p, at).await;
        if let Some(list) = ctx.fetches.inflight.borrow_mut().get_mut(&(topic, p)) {
            list.retain(|(from, _)| *from != at);
        }
        let fetched = result?;
        let next_offset = fetched.next_offset;
        let mut hub = ctx.hub.borrow_mut();
        let head = hub.topic(topic).heads().get(p as usize).copied();
        let batch = hub.cache.backfill(
            topic,
            p,
            at,
            head.unwrap_or(i64::MAX),
            fetched.records,
            Instant::now(),
        );
        ctx.metrics.cache_bytes.set(hub.cache.owned_bytes() as u64);
        Ok(Backfilled {
            batch,
            high_watermark: fetched.high_watermark,
            next_offset,
        })
    });
    fut.shared()
}

/// A cursor's frame encoder: its own buffers, reused between chunks.
struct Encoder {
    render: Render,
    filter: Option<Rc<crate::codec::filter::Filter>>,
    /// The partitions a pruned stream reads: its ids carry only those.
    partitions: Option<Rc<[u32]>>,
    hash: u32,
    scratch: Vec<u8>,
    id: Vec<u8>,
    frames: Vec<u8>,
    events: u32,
    /// Records read this turn (see `RECORDS_PER_TURN`).
    read: u64,
    /// The position moved past records the filter did not show since the
    /// last frame: the chunk ends with an id-only event (see `push_to`).
    passed_over: bool,
    /// Timestamp of the first record encoded since the last check (lag by
    /// age).
    oldest: Option<i64>,
}

impl Encoder {
    /// Puts the id of `position` in `self.id`.
    fn encode_id(&mut self, key: Option<&[u8]>, position: &[i64]) {
        self.id.clear();
        crate::shard::hub::encode_id(
            self.render.id,
            key,
            self.hash,
            self.partitions.as_deref(),
            position,
            &mut self.scratch,
            &mut self.id,
        );
    }

    /// The turn is over: the chunk is full, or enough records were read.
    fn full(&self) -> bool {
        self.frames.len() >= CHUNK_BYTES || self.read >= RECORDS_PER_TURN
    }

    /// Encodes the records of `batch` that pass the filter, from
    /// `position[p]` up to `head` (excluded) or until the turn is over,
    /// advancing `position[p]` past every record read. Returns the number
    /// of records read (shown or not).
    fn read(&mut self, batch: &Batch, p: usize, position: &mut [i64], head: i64) -> u64 {
        let start = position[p];
        debug_assert!(batch.from <= start && start < batch.to);
        let first = batch.records.partition_point(|r| r.offset < start);
        let mut n = 0;
        for rec in &batch.records[first..] {
            if rec.offset >= head || self.full() {
                break;
            }
            position[p] = rec.offset + 1;
            n += 1;
            self.read += 1;
            if let Some(filter) = &self.filter {
                if !filter.matches(&RecordView::new(&rec.record)) {
                    self.passed_over = true;
                    continue;
                }
            }
            self.passed_over = false;
            self.encode_id(rec.record.key.as_deref(), position);
            sse::encode_record(
                &mut self.frames,
                &self.id,
                rec.record.key.as_deref(),
                rec.record.value.as_deref(),
                self.render.value,
            );
            self.oldest
                .get_or_insert(rec.record.timestamp.timestamp_millis());
            self.events += 1;
        }
        if !self.full() || position[p] >= head {
            // Every record of the batch below the head is read: the rest
            // of its range (up to the head) holds nothing visible.
            let end = batch.to.min(head);
            if end > position[p] {
                position[p] = end;
                self.passed_over = true;
            }
        }
        n
    }

    /// Queues the encoded chunk on the connection, ending it with an
    /// id-only event at `position` when the cursor passed over records
    /// after its last frame (the client's id then covers them).
    fn push_to(&mut self, conn: &Conn, position: &[i64]) {
        if self.passed_over {
            self.passed_over = false;
            self.encode_id(None, position);
            sse::encode_id_only(&mut self.frames, &self.id);
        }
        if !self.frames.is_empty() {
            conn.push(Rc::from(&self.frames[..]), self.events);
            self.frames.clear();
            self.events = 0;
        }
    }
}

/// Why a stream is a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Its request asked for a position (an id, `since`, `start:
    /// earliest`).
    Request,
    /// It was live and fell behind (its queue went over budget, or its
    /// shard missed batches).
    Demoted,
}

/// How far behind a cursor may fall before its stream is ended: the
/// configured `slow_client.max_lag`, or the lag it started with if that
/// was larger (a client resuming from far back is served as long as it
/// does not fall further behind).
struct LagBound {
    max: MaxLag,
    start: Option<u64>,
}

impl LagBound {
    /// Checks the current lag; returns the reason to end the stream, if
    /// any. `records` is the number of offsets between the position and
    /// the heads, `age_ms` the age of the oldest record just read.
    fn exceeded(&mut self, records: u64, age_ms: Option<u64>) -> Option<String> {
        match self.max {
            MaxLag::Records(max) => {
                let limit = max.max(*self.start.get_or_insert(records));
                (records > limit).then(|| {
                    format!("client fell {records} records behind (slow_client.max_lag is {limit}); reconnect to resume")
                })
            }
            MaxLag::Age(max) => {
                let age = age_ms?;
                let limit = (max.as_millis() as u64).max(*self.start.get_or_insert(age));
                (age > limit).then(|| {
                    format!("client fell {age} ms behind (slow_client.max_lag is {limit} ms); reconnect to resume")
                })
            }
        }
    }
}

/// Reads from `position` until it equals the hub's heads, then joins the
/// live stream (see the module's invariant). Exact: every record at or
/// after `position` is delivered once, in partition order.
pub async fn catch_up(
    ctx: &Rc<ShardCtx>,
    conn: &Rc<Conn>,
    stream: &mut TcpStream,
    route: &RouteInfo,
    selection: &Selection,
    mut position: Vec<i64>,
    from: Origin,
) -> io::Result<()> {
    let topic = route.topic;
    let mut enc = Encoder {
        render: route.render,
        filter: selection.filter.clone(),
        partitions: selection.partitions.clone(),
        hash: ctx.hub.borrow().topic(topic).hash,
        scratch: Vec::new(),
        id: Vec::new(),
        frames: Vec::new(),
        events: 0,
        read: 0,
        passed_over: false,
        oldest: None,
    };
    let mut lag = LagBound {
        max: ctx.config.slow_client.max_lag,
        // A live stream that fell behind has no allowance of its own.
        start: match from {
            Origin::Demoted => Some(0),
            Origin::Request => None,
        },
    };
    // Per partition: the last batch read, kept while it may serve the next
    // read (the cache may evict it meanwhile), and consecutive fetches
    // that returned nothing new.
    // (The flag: the batch came from a Kafka fetch of this cursor's.)
    let mut held: Vec<Option<(Arc<Batch>, bool)>> = Vec::new();
    let mut empty_streak: Vec<u8> = Vec::new();
    let mut turn = 0usize;
    // The age of the oldest record in the chunk last handed to the socket.
    let mut pending_since: Option<i64> = None;
    // This cursor's turn to encode (see CATCHUP_SLOTS): kept while its
    // client takes what it is given, handed back whenever it waits.
    let mut slot = None;
    loop {
        if !conn.try_send(&ctx.metrics)? {
            // The socket is full: wait for room without a turn. A client
            // that stops reading must still meet `max_lag`: the flush gives
            // up waiting every STUCK_CHECK to look at the lag.
            slot = None;
        }
        if slot.is_none() && !conn.flush_within(stream, &ctx.metrics, STUCK_CHECK).await? {
            let behind_by = lag_of(ctx.hub.borrow().topic(topic).heads(), &position);
            let age_ms = pending_since.map(|ts| (now_millis() - ts).max(0) as u64);
            if let Some(reason) = lag.exceeded(behind_by, age_ms) {
                // Its socket is full: the error event cannot reach it. It
                // sees the stream end and resumes from its last id.
                ctx.metrics.slow_clients_ended.inc();
                return Err(io::Error::other(reason));
            }
            continue;
        }
        if ctx.shutting_down.get() || conn.is_ending() {
            return Ok(());
        }
        let gone = ctx
            .hub
            .borrow()
            .topic(topic)
            .unavailable_past(ctx.config.kafka.unavailable_timeout, Instant::now());
        if let Some(reason) = gone {
            ctx.metrics.topic_unavailable_ends.inc();
            return end_with_error(ctx, conn, stream, reason).await;
        }
        let partitions = ctx.hub.borrow().topic(topic).partitions();
        if selection.hashed_over != 0 && selection.hashed_over != partitions {
            let reason = format!(
                "the topic now has {partitions} partitions, so keys hash to other partitions; reconnect to resume"
            );
            return end_with_error(ctx, conn, stream, reason).await;
        }
        // Partitions that appeared since the id was made, or that it does
        // not name, start at earliest; a pruned stream keeps those it does
        // not read at the heads, where they never hold it back.
        position.resize(partitions, UNKNOWN);
        {
            let hub = ctx.hub.borrow();
            let heads = hub.topic(topic).heads();
            for (p, at) in position.iter_mut().enumerate() {
                if !selection.reads(p) {
                    *at = heads[p];
                }
            }
        }
        while let Some(p) = position.iter().position(|&at| at == UNKNOWN) {
            match offset(ctx, topic, p as u32, OffsetQuery::Earliest).await {
                Ok(earliest) => position[p] = earliest,
                Err(e) => {
                    debug!(error = %e, "offset look-up failed; retrying");
                    glommio::timer::sleep(CATCHUP_RETRY).await;
                }
            }
        }
        held.resize(position.len(), None);
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
            None => slot = ctx.catchup_slots.acquire_permit(1).await.ok(),
        }
        enc.read = 0;
        let mut misses: SmallVec<[(u32, i64); 8]> = SmallVec::new();
        let behind_by = {
            let mut hub = ctx.hub.borrow_mut();
            let (ts, cache) = hub.topic_and_cache(topic);
            let heads = ts.heads();
            let n = position.len();
            let (mut cached, mut fetched) = (0, 0);
            for i in 0..n {
                let p = (turn + i) % n;
                while position[p] < heads[p] && !enc.full() {
                    let at = position[p];
                    let covers = |(b, _): &(Arc<Batch>, bool)| b.from <= at && at < b.to;
                    if !held[p].as_ref().is_some_and(covers) {
                        held[p] = cache
                            .log(topic, p as u32)
                            .and_then(|l| l.lookup(at))
                            .map(|b| (Arc::clone(b), false));
                    }
                    match &held[p] {
                        Some((b, false)) => cached += enc.read(b, p, &mut position, heads[p]),
                        Some((b, true)) => fetched += enc.read(b, p, &mut position, heads[p]),
                        None => {
                            misses.push((p as u32, at));
                            break;
                        }
                    }
                }
            }
            turn = turn.wrapping_add(1);
            ctx.metrics.catchup_cached_records.add(cached);
            ctx.metrics.catchup_fetched_records.add(fetched);
            if heads == &position[..] {
                enc.push_to(conn, &position);
                ts.join(Rc::clone(conn), route.render, selection);
                return Ok(());
            }
            lag_of(heads, &position)
        };
        let oldest = enc.oldest.take();
        if oldest.is_some() {
            pending_since = oldest;
        }
        let age_ms = oldest.map(|ts| (now_millis() - ts).max(0) as u64);
        if let Some(reason) = lag.exceeded(behind_by, age_ms) {
            ctx.metrics.slow_clients_ended.inc();
            return end_with_error(ctx, conn, stream, reason).await;
        }
        if !enc.frames.is_empty() || enc.full() {
            // A turn that read a long stretch and showed nothing still
            // tells the client how far it got.
            enc.push_to(conn, &position);
            continue;
        }
        if misses.is_empty() {
            // Ahead of this shard on the partitions not yet equal (the id
            // came from a faster shard or instance): wait for the heads.
            slot = None;
            conn.wait_for_heads(ctx, topic).await;
            continue;
        }
        misses.truncate(PARTITIONS_PER_ROUND);
        slot = None;
        let results = futures::future::join_all(
            misses
                .iter()
                .map(|&(p, at)| fetch_shared(ctx, topic, p, at)),
        )
        .await;
        let mut gaps: SmallVec<[u32; 4]> = SmallVec::new();
        let mut failed = false;
        {
            let hub = ctx.hub.borrow();
            let ts = hub.topic(topic);
            for (&(p, at), result) in misses.iter().zip(results) {
                let pi = p as usize;
                if position[pi] != at {
                    continue;
                }
                let head = ts.heads()[pi];
                match result {
                    Ok(Backfilled { batch: Some(b), .. }) => {
                        empty_streak[pi] = 0;
                        if b.from <= at && at < b.to {
                            let n = enc.read(&b, pi, &mut position, head);
                            ctx.metrics.catchup_fetched_records.add(n);
                            held[pi] = Some((b, true));
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
                        position[pi] = next_offset.min(head);
                        empty_streak[pi] = 0;
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
                        empty_streak[pi] = empty_streak[pi].saturating_add(1);
                        if empty_streak[pi] > EMPTY_FETCHES_BEFORE_SKIP && high_watermark > at {
                            let to = head.min(high_watermark);
                            warn!(topic = %ts.name, partition = p, from = at, to, "no visible records in range; skipping");
                            position[pi] = to;
                            empty_streak[pi] = 0;
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
        enc.push_to(conn, &position);
        for p in gaps {
            resume_after_gap(ctx, conn, topic, p, &mut position).await;
        }
        if failed {
            glommio::timer::sleep(CATCHUP_RETRY).await;
        }
    }
}

/// Ends the stream with `event:error` (the client reconnects and resumes
/// from its last id).
async fn end_with_error(
    ctx: &ShardCtx,
    conn: &Conn,
    stream: &mut TcpStream,
    reason: String,
) -> io::Result<()> {
    let mut frame = Vec::new();
    connection::error_event(&mut frame, &reason);
    conn.push(Rc::from(frame), 0);
    conn.flush(stream, &ctx.metrics).await?;
    Err(io::Error::other(reason))
}

/// Offsets between a position and the heads, summed over partitions.
fn lag_of(heads: &[i64], position: &[i64]) -> u64 {
    position
        .iter()
        .zip(heads)
        .map(|(at, head)| (head - at).max(0) as u64)
        .sum()
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The requested offset is no longer (or not yet) in Kafka: continue from
/// what Kafka holds and tell the client with `event:gap`.
async fn resume_after_gap(
    ctx: &ShardCtx,
    conn: &Conn,
    topic: TopicId,
    p: u32,
    position: &mut [i64],
) {
    let pi = p as usize;
    let earliest = offset(ctx, topic, p, OffsetQuery::Earliest).await;
    let latest = offset(ctx, topic, p, OffsetQuery::Latest).await;
    let (Ok(earliest), Ok(latest)) = (earliest, latest) else {
        glommio::timer::sleep(CATCHUP_RETRY).await;
        return;
    };
    let requested = position[pi];
    let resumed_at = if requested < earliest {
        earliest
    } else {
        latest.min(requested)
    };
    if resumed_at == requested {
        return;
    }
    position[pi] = resumed_at;
    conn.push(Rc::from(gap_event(p, requested, resumed_at)), 0);
}

/// `event:gap` with `{"partition":..,"requested":..,"resumed_at":..}`.
pub fn gap_event(partition: u32, requested: i64, resumed_at: i64) -> Vec<u8> {
    let data = format!(
        "{{\"partition\":{partition},\"requested\":{requested},\"resumed_at\":{resumed_at}}}"
    );
    let mut frame = Vec::with_capacity(data.len() + 24);
    sse::encode_event(&mut frame, None, "gap", data.as_bytes());
    frame
}

async fn fetch(
    ctx: &ShardCtx,
    topic: TopicId,
    partition: u32,
    offset: i64,
) -> Result<Fetched, KafkaError> {
    ask(ctx, |reply| Request::Fetch {
        topic,
        partition,
        offset,
        reply,
    })
    .await
}

pub async fn offset(
    ctx: &ShardCtx,
    topic: TopicId,
    partition: u32,
    at: OffsetQuery,
) -> Result<i64, KafkaError> {
    ask(ctx, |reply| Request::Offset {
        topic,
        partition,
        at,
        reply,
    })
    .await
}

/// Sends a request to the shard's Kafka sidecar and waits for its answer.
pub(crate) async fn ask<T>(
    ctx: &ShardCtx,
    request: impl FnOnce(oneshot::Sender<Result<T, KafkaError>>) -> Request,
) -> Result<T, KafkaError> {
    let (reply, rx) = oneshot::channel();
    ctx.requests
        .send_async(request(reply))
        .await
        .map_err(|_| KafkaError::Unavailable)?;
    rx.await.map_err(|_| KafkaError::Unavailable)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::event_id;
    use crate::codec::sse::ValueEncoding;
    use crate::config::EventIdForm;
    use crate::model::record::{Record, RecordAndOffset};
    use rskafka::chrono::DateTime;

    fn batch(from: i64, to: i64, offsets: &[i64]) -> Batch {
        Batch {
            topic: TopicId(0),
            partition: 0,
            from,
            to,
            records: offsets
                .iter()
                .map(|&o| RecordAndOffset {
                    record: Record {
                        key: None,
                        value: Some(format!("r{o}").into_bytes()),
                        headers: Default::default(),
                        timestamp: DateTime::from_timestamp(0, 0).unwrap(),
                    },
                    offset: o,
                })
                .collect(),
        }
    }

    fn encoder() -> Encoder {
        Encoder {
            render: Render {
                value: ValueEncoding::Text,
                id: EventIdForm::Progress,
            },
            filter: None,
            partitions: None,
            hash: 7,
            scratch: Vec::new(),
            id: Vec::new(),
            frames: Vec::new(),
            events: 0,
            read: 0,
            passed_over: false,
            oldest: None,
        }
    }

    fn data(frames: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        sse::Parser::new()
            .feed(frames, |e| out.push(e.data))
            .unwrap();
        out
    }

    #[test]
    fn reads_from_the_position_up_to_the_head() {
        let b = batch(10, 20, &[8, 9, 10, 12, 15, 19]);
        let mut enc = encoder();
        let mut position = vec![12, 0];
        // Whole records before the position are skipped; the head stops it.
        assert_eq!(enc.read(&b, 0, &mut position, 16), 2);
        assert_eq!(data(&enc.frames), ["r12", "r15"]);
        assert_eq!(position, [16, 0], "nothing visible in [16, head)");
        // With the head past the batch: its end, though its last record is 19.
        let b = batch(16, 25, &[19]);
        assert_eq!(enc.read(&b, 0, &mut position, 30), 1);
        assert_eq!(position, [25, 0]);
        assert_eq!(enc.events, 3);
    }

    #[test]
    fn a_full_chunk_stops_at_the_next_record() {
        let offsets: Vec<i64> = (0..100_000).collect();
        let b = batch(0, 100_000, &offsets);
        let mut enc = encoder();
        let mut position = vec![0];
        let n = enc.read(&b, 0, &mut position, 100_000);
        assert!(n > 0 && n < 100_000);
        assert_eq!(
            position[0], n as i64,
            "resumes at the first record not encoded"
        );
        assert!(enc.frames.len() >= CHUNK_BYTES);
    }

    #[test]
    fn ids_carry_the_position_after_each_record() {
        let b = batch(0, 3, &[0, 1, 2]);
        let mut enc = encoder();
        let mut position = vec![0, 5];
        enc.read(&b, 0, &mut position, 3);
        let mut ids = Vec::new();
        sse::Parser::new()
            .feed(&enc.frames, |e| ids.push(e.id.unwrap()))
            .unwrap();
        let decoded: Vec<_> = ids
            .iter()
            .map(|id| event_id::decode_progress(7, id.as_bytes()).unwrap())
            .collect();
        assert_eq!(decoded, [vec![1, 5], vec![2, 5], vec![3, 5]]);
    }

    #[test]
    fn lag_bound_allows_the_starting_lag() {
        let mut bound = LagBound {
            max: MaxLag::Records(100),
            start: None,
        };
        assert_eq!(bound.exceeded(50, None), None);
        assert_eq!(bound.exceeded(100, None), None);
        assert!(bound.exceeded(101, None).unwrap().contains("101 records"));
        // A resume that starts far behind may stay there, not fall further.
        let mut resume = LagBound {
            max: MaxLag::Records(100),
            start: None,
        };
        assert_eq!(resume.exceeded(5_000, None), None);
        assert_eq!(resume.exceeded(4_000, None), None);
        assert!(resume.exceeded(5_001, None).is_some());
        let mut age = LagBound {
            max: MaxLag::Age(Duration::from_secs(1)),
            start: None,
        };
        assert_eq!(age.exceeded(1 << 40, None), None, "no record read: no age");
        assert_eq!(age.exceeded(0, Some(10)), None);
        assert!(age.exceeded(0, Some(1_001)).is_some());
    }
}
