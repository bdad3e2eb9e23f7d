//! Topic hubs: a shard's merged stream of each topic, and the live fan-out.
//!
//! Batches of every partition of a topic reach a shard (from its own sidecar
//! or from the owning shard over the mesh) and are merged, in arrival order,
//! into one stream per topic. The hub keeps the stream's *heads* — the next
//! offset of every partition — and groups the live connections by their
//! resolved filter (an *audience*), then by how they render events. For each
//! record it evaluates each distinct filter once — only the filters for the
//! record's key, when filters name keys — encodes the event id once and the
//! frame once per rendering, and hands the same reference-counted bytes to
//! every connection of each matching group. Nothing is formatted per
//! connection here, and the cost of a record grows with the number of
//! distinct filters that can match it, not with the number of connections.
//!
//! A connection whose filter passes over records still moves past them: its
//! position is the heads like every live connection's, and the shard's
//! ticker sends an audience that was passed over an id-only event with the
//! heads (see [`TopicStream::tick`]), so a client that reconnects does not
//! read those records again.
//!
//! INVARIANT (exactness of the live stream): a connection is in a group only
//! while its position equals the hub's heads. It joins only when its position
//! equals the heads (checked and done without an await in between), and from
//! then on it receives every record the heads advance over. When that can no
//! longer hold — its queue is over budget, or the shard missed batches (a full
//! mesh queue) — it is removed and handed the heads it had reached as its
//! cursor position, so it continues as a catch-up reader with nothing lost or
//! repeated.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use crate::codec::event_id;
use crate::codec::filter::{Filter, RecordView};
use crate::codec::sse::{self, ValueEncoding};
use crate::config::EventIdForm;
use crate::kafka::{Batch, TopicId};
use crate::model::record::RecordAndOffset;
use crate::ops::metrics::ShardMetrics;
use crate::shard::cache::{Cache, Limits};
use crate::shard::feed::Feed;
use crate::stream::connection::Conn;

/// How a route renders events; connections are grouped by it so each frame
/// is encoded once per distinct rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Render {
    pub value: ValueEncoding,
    pub id: EventIdForm,
}

/// Distinct renderings: value encodings × id forms.
const RENDERINGS: usize = 4;

impl Render {
    /// A distinct small number per rendering, `< RENDERINGS`.
    fn slot(self) -> usize {
        let value = match self.value {
            ValueEncoding::Text => 0,
            ValueEncoding::Base64 => 1,
        };
        let id = match self.id {
            EventIdForm::Progress => 0,
            EventIdForm::KeyAndProgress => 1,
        };
        value * 2 + id
    }
}

/// What a live stream receives, as the hub keys its audiences: the records
/// its filter takes, from the partitions it reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Selection {
    /// `None` takes every record.
    pub filter: Option<Rc<Filter>>,
    /// The partitions of a stream pruned by key (`partitioner: murmur2`),
    /// increasing; `None` reads every partition. A pruned stream's ids
    /// carry only these partitions.
    pub partitions: Option<Rc<[u32]>>,
    /// The topic's partition count the keys were hashed with (0 when not
    /// pruned): when it changes, a pruned stream ends.
    pub hashed_over: usize,
}

impl Selection {
    /// Whether the stream reads partition `p`.
    pub fn reads(&self, p: usize) -> bool {
        self.partitions
            .as_deref()
            .is_none_or(|ps| ps.binary_search(&(p as u32)).is_ok())
    }
}

/// Appends the id of `next` as a stream reading `partitions` renders it:
/// the keyed form carries `key`.
pub(crate) fn encode_id(
    form: EventIdForm,
    key: Option<&[u8]>,
    hash: u32,
    partitions: Option<&[u32]>,
    next: &[i64],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    match form {
        EventIdForm::Progress => event_id::encode_position(hash, partitions, next, scratch, out),
        EventIdForm::KeyAndProgress => {
            event_id::encode_key_and_position(key, hash, partitions, next, scratch, out)
        }
    }
}

/// Frames pushed between checks for a yield: long fan-out loops must let
/// the accept loop and new connections run (a fan-out loop that never yields
/// starved new clients of their response headers for minutes).
const PUSHES_PER_YIELD_CHECK: usize = 4096;

struct Group {
    render: Render,
    /// The frames of this group, shared by its live connections.
    feed: Rc<Feed>,
}

/// The live connections of a topic that resolved to one selection.
struct Audience {
    selection: Selection,
    /// One group per rendering; nearly always one.
    groups: SmallVec<[Group; 1]>,
    /// The stream's `moves` when this audience last got a frame: behind
    /// `moves` when the heads passed records it was not shown.
    seen: u64,
    /// No progress event before this (see `TopicStream::tick`).
    next_progress: Option<Instant>,
}

impl Audience {
    fn is_empty(&self) -> bool {
        self.groups.iter().all(|g| g.feed.is_empty())
    }
}

/// One topic's merged stream on one shard.
pub struct TopicStream {
    pub name: String,
    pub hash: u32,
    /// Partition count from metadata; `None` until the sidecar reports it.
    partitions: Option<usize>,
    /// Next offset per partition. INVARIANT: `heads.len() == known.len()`.
    heads: Vec<i64>,
    known: Vec<bool>,
    /// Every partition's position was known once (see `ready`).
    was_ready: bool,
    /// Set while Kafka cannot serve the topic: since when, and why.
    unavailable: Option<(Instant, String)>,
    audiences: Vec<Audience>,
    /// Index into `audiences` by selection, for joining.
    by_selection: HashMap<Selection, usize>,
    /// Audiences whose filters name keys, by key: a record is checked only
    /// against those for its key (and the `scanned` ones).
    by_key: HashMap<Box<[u8]>, SmallVec<[u32; 2]>>,
    /// Audiences checked for every record: no filter, or a filter that
    /// takes records of any key.
    scanned: Vec<u32>,
    /// Counts movements of the heads (see `Audience::seen`).
    moves: u64,
    /// Catch-up readers waiting for the heads to move.
    waiters: Vec<Waker>,
    id_scratch: Vec<u8>,
    id_buf: Vec<u8>,
    frame_buf: Vec<u8>,
    /// Feeds that got frames since the write pass last ran (see
    /// `write_pass`).
    to_write: Vec<Rc<Feed>>,
}

impl TopicStream {
    fn new(name: String) -> Self {
        Self {
            hash: event_id::topic_hash(&name),
            name,
            partitions: None,
            heads: Vec::new(),
            known: Vec::new(),
            was_ready: false,
            unavailable: None,
            audiences: Vec::new(),
            by_selection: HashMap::new(),
            by_key: HashMap::new(),
            scanned: Vec::new(),
            moves: 0,
            waiters: Vec::new(),
            id_scratch: Vec::new(),
            id_buf: Vec::new(),
            frame_buf: Vec::new(),
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
    pub fn unavailable(&self) -> Option<&(Instant, String)> {
        self.unavailable.as_ref()
    }

    /// The reason to end this topic's streams, once Kafka has not served
    /// it for longer than `timeout` (`kafka.unavailable_timeout`).
    pub fn unavailable_past(&self, timeout: Duration, now: Instant) -> Option<String> {
        let (since, why) = self.unavailable.as_ref()?;
        (now.saturating_duration_since(*since) > timeout).then(|| {
            format!(
                "topic {} unavailable for more than {}: {why}; reconnect to resume",
                self.name,
                humantime::format_duration(timeout)
            )
        })
    }

    /// Records what the sidecar's metadata watch reported, and wakes the
    /// waiting cursors so they look.
    pub fn set_available(&mut self, available: bool, reason: String, now: Instant) {
        if available {
            self.unavailable = None;
        } else if self.unavailable.is_none() {
            self.unavailable = Some((now, reason));
        }
        self.wake_waiters();
    }

    /// Ends every live stream with `frame` (an error event): the topic has
    /// been unavailable for too long. Returns how many were ended.
    pub fn end_live(&mut self, frame: &Rc<[u8]>) -> u64 {
        let mut ended = 0;
        for conn in self.drain_live() {
            conn.end(Rc::clone(frame));
            ended += 1;
        }
        self.wake_waiters();
        ended
    }

    /// The heads of all partitions; meaningful once `ready()`.
    pub fn heads(&self) -> &[i64] {
        &self.heads
    }

    pub fn partitions(&self) -> usize {
        self.heads.len()
    }

    fn ensure_partition(&mut self, p: usize) {
        if self.heads.len() <= p {
            self.heads.resize(p + 1, 0);
            self.known.resize(p + 1, false);
        }
    }

    /// Adds a connection to the live stream.
    ///
    /// INVARIANT: the caller checked `position == self.heads()` with no await
    /// since; this is what makes the switch from catch-up to live exact.
    pub fn join(&mut self, conn: Rc<Conn>, render: Render, selection: &Selection) {
        let index = match self.by_selection.get(selection) {
            Some(&i) => i,
            None => {
                let i = self.audiences.len();
                self.audiences.push(Audience {
                    selection: selection.clone(),
                    groups: SmallVec::new(),
                    seen: self.moves,
                    next_progress: None,
                });
                self.by_selection.insert(selection.clone(), i);
                self.index_audience(i);
                i
            }
        };
        let audience = &mut self.audiences[index];
        match audience.groups.iter_mut().find(|g| g.render == render) {
            Some(g) => g.feed.add(conn),
            None => {
                let feed = Feed::new();
                feed.add(conn);
                audience.groups.push(Group { render, feed });
            }
        }
    }

    /// The selection as the stream shares it: the audience's own when one
    /// has it already, so connections with equal selections hold one copy.
    pub fn intern(&self, selection: Selection) -> Selection {
        match self.by_selection.get_key_value(&selection) {
            Some((shared, _)) => shared.clone(),
            None => selection,
        }
    }

    /// Lists audience `i` where `deliver` looks for it.
    fn index_audience(&mut self, i: usize) {
        let keys = self.audiences[i]
            .selection
            .filter
            .as_deref()
            .and_then(Filter::keys);
        match keys {
            Some(keys) => {
                for key in keys {
                    self.by_key.entry(key.into()).or_default().push(i as u32);
                }
            }
            None => self.scanned.push(i as u32),
        }
    }

    /// Drops closed connections and empty audiences (a filter whose
    /// records never come would otherwise keep every client that ever
    /// asked for it), and rebuilds the indexes if an audience went.
    fn prune(&mut self) {
        let before = self.audiences.len();
        for a in &mut self.audiences {
            for g in &mut a.groups {
                g.feed.retain_readers();
            }
            a.groups.retain(|g| !g.feed.is_empty());
        }
        self.audiences.retain(|a| !a.groups.is_empty());
        if self.audiences.len() != before {
            self.by_selection.clear();
            self.by_key.clear();
            self.scanned.clear();
            for i in 0..self.audiences.len() {
                self.by_selection
                    .insert(self.audiences[i].selection.clone(), i);
                self.index_audience(i);
            }
        }
    }

    /// The ticker's work on this stream: prunes closed connections, and
    /// sends every audience the heads passed over without showing it a
    /// record an id-only event with the heads — its clients then resume
    /// after those records, not before — at most once per `every` (the
    /// keep-alive interval: a stream whose filter passes everything by
    /// costs a write per keep-alive interval, as an idle one does). Returns
    /// how many were sent.
    pub fn tick(&mut self, now: Instant, every: Duration) -> u64 {
        self.prune();
        // Streams that read every partition share one frame per id form.
        let mut frames: [Option<Rc<[u8]>>; 2] = [None, None];
        let mut scratch = Vec::new();
        let mut id = Vec::new();
        let mut sent = 0;
        for a in &mut self.audiences {
            if a.seen == self.moves || a.next_progress.is_some_and(|at| now < at) {
                continue;
            }
            a.seen = self.moves;
            a.next_progress = Some(now + every);
            let partitions = a.selection.partitions.as_deref();
            for g in &mut a.groups {
                let form = g.render.id;
                let mut encode = || {
                    id.clear();
                    encode_id(
                        form,
                        None,
                        self.hash,
                        partitions,
                        &self.heads,
                        &mut scratch,
                        &mut id,
                    );
                    let mut frame = Vec::with_capacity(id.len() + 5);
                    sse::encode_id_only(&mut frame, &id);
                    Rc::<[u8]>::from(frame)
                };
                let frame = match partitions {
                    None => frames[form as usize].get_or_insert_with(encode).clone(),
                    Some(_) => encode(),
                };
                if g.feed.push(&frame, 0) {
                    self.to_write.push(Rc::clone(&g.feed));
                }
                sent += g.feed.len() as u64;
            }
        }
        sent
    }

    /// Registers a waker to be woken when the heads move.
    pub fn wait_for_heads(&mut self, waker: &Waker) {
        if !self.waiters.iter().any(|w| w.will_wake(waker)) {
            self.waiters.push(waker.clone());
        }
    }

    fn wake_waiters(&mut self) {
        for w in self.waiters.drain(..) {
            w.wake();
        }
    }

    /// Turns every live connection into a catch-up reader at the current
    /// heads (the shard is about to skip records it never received).
    fn demote_all(&mut self, metrics: &ShardMetrics) {
        for conn in self.drain_live() {
            metrics.demotions.inc();
            conn.demote(self.heads.clone());
        }
    }

    /// Takes every open live connection out of the stream, each with a
    /// copy of the frames it has not sent.
    fn drain_live(&mut self) -> Vec<Rc<Conn>> {
        self.drain_where(|_| true)
    }

    /// [`TopicStream::drain_live`] of the audiences whose selection passes
    /// `which`.
    fn drain_where(&mut self, which: impl Fn(&Selection) -> bool) -> Vec<Rc<Conn>> {
        let mut live = Vec::new();
        for a in self.audiences.iter_mut().filter(|a| which(&a.selection)) {
            for g in &mut a.groups {
                live.extend(g.feed.drain().into_iter().filter(|c| !c.is_closed()));
            }
        }
        live
    }

    /// Drops what deliveries queued without writing it: every live
    /// connection skips to the end of its feed and the feeds are emptied.
    /// Returns how many feeds had frames. For benchmarks, whose connections
    /// are in-memory sinks.
    pub fn clear_pending_writes(&mut self) -> usize {
        let n = self.to_write.len();
        for feed in self.to_write.drain(..) {
            feed.take_dirty();
            let mut conns = Vec::new();
            feed.conns_into(&mut conns);
            conns.iter().for_each(|c| c.discard_queued());
            feed.trim();
        }
        n
    }

    /// Live connections on this shard (all groups).
    pub fn live_connections(&self) -> usize {
        self.audiences
            .iter()
            .flat_map(|a| &a.groups)
            .map(|g| g.feed.len())
            .sum()
    }

    /// Distinct filters among the live connections (tests, benchmarks).
    pub fn audiences(&self) -> usize {
        self.audiences.iter().filter(|a| !a.is_empty()).count()
    }

    /// Starts applying a batch of partition `p` that begins at `from`: the
    /// first batch of a partition sets its head; a batch that starts past
    /// the head means the shard missed records, and the live connections
    /// become catch-up readers.
    pub fn begin_batch(&mut self, p: usize, from: i64, metrics: &ShardMetrics) {
        self.ensure_partition(p);
        if !self.known[p] {
            self.known[p] = true;
            self.heads[p] = from;
            self.update_ready();
        } else if from > self.heads[p] {
            // Records [head, from) never reached this shard (a full mesh
            // queue, or the fetch loop jumped after an out-of-range reset).
            // Live connections become readers that fetch the missing range.
            self.demote_all(metrics);
            self.heads[p] = from;
            self.moves += 1;
        }
    }

    /// Delivers one record of partition `p` to the live connections and
    /// advances the heads — the per-record hot path. Returns how many
    /// connections it went to. A record below the head was delivered already (an
    /// overlapping batch) and is skipped: never twice.
    ///
    /// The record is checked against the audiences listed under its key and
    /// the `scanned` ones, each once; the id is encoded once, and each frame
    /// once per rendering, whatever the number of audiences it goes to.
    pub fn deliver(&mut self, p: usize, rec: &RecordAndOffset) -> usize {
        if rec.offset < self.heads[p] {
            return 0;
        }
        self.heads[p] = rec.offset + 1;
        self.moves += 1;
        let key = rec.record.key.as_deref();
        let keyed = key.and_then(|k| self.by_key.get(k));
        if self.scanned.is_empty() && keyed.is_none() {
            return 0;
        }
        let view = RecordView::new(&rec.record);
        // Per rendering: the frame for streams that read every partition,
        // and the one for streams pruned to this record's partition alone
        // (their id carries that partition only).
        let mut frames: [Option<Rc<[u8]>>; RENDERINGS] = Default::default();
        let mut single: [Option<Rc<[u8]>>; RENDERINGS] = Default::default();
        let mut pushed = 0;
        for &i in self.scanned.iter().chain(keyed.into_iter().flatten()) {
            let a = &mut self.audiences[i as usize];
            let sel = &a.selection;
            if !sel.reads(p) || !sel.filter.as_deref().is_none_or(|f| f.matches(&view)) {
                continue;
            }
            a.seen = self.moves;
            for g in &mut a.groups {
                if g.feed.is_empty() {
                    continue;
                }
                // A stream pruned to one partition reads `p` alone here:
                // its id is the same as every such stream's.
                let partitions = sel.partitions.as_deref();
                let mut encode = || {
                    self.id_buf.clear();
                    encode_id(
                        g.render.id,
                        key,
                        self.hash,
                        partitions,
                        &self.heads,
                        &mut self.id_scratch,
                        &mut self.id_buf,
                    );
                    self.frame_buf.clear();
                    sse::encode_record(
                        &mut self.frame_buf,
                        &self.id_buf,
                        key,
                        rec.record.value.as_deref(),
                        g.render.value,
                    );
                    Rc::<[u8]>::from(&self.frame_buf[..])
                };
                let frame = match sel.partitions.as_deref() {
                    None => frames[g.render.slot()].get_or_insert_with(encode).clone(),
                    Some([_]) => single[g.render.slot()].get_or_insert_with(encode).clone(),
                    // Pruned to several partitions: the id depends on which.
                    Some(_) => encode(),
                };
                if g.feed.push(&frame, 1) {
                    self.to_write.push(Rc::clone(&g.feed));
                }
                pushed += g.feed.len();
            }
        }
        pushed
    }

    /// Ends the live streams pruned by key: the partition count changed,
    /// so keys now hash to other partitions. Their clients reconnect and
    /// resume with the partitions their keys hash to now.
    fn end_pruned(&mut self) -> Vec<Rc<Conn>> {
        self.drain_where(|s| s.partitions.is_some())
    }
}

/// The topic streams of one shard, indexed by `TopicId`, and its
/// partition cache.
pub struct Hub {
    topics: Vec<TopicStream>,
    /// The config's topics come first: `topics[..fixed]`.
    fixed: usize,
    pub cache: Cache,
    /// Some connection has frames waiting for the write pass.
    writes_pending: bool,
    /// The write pass task, when it sleeps.
    write_waker: Option<Waker>,
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

    /// Wakes the write pass if a delivery left connections to write.
    fn note_writes(&mut self, topic: TopicId) {
        if !self.writes_pending && !self.topic(topic).to_write.is_empty() {
            self.writes_pending = true;
            if let Some(w) = self.write_waker.take() {
                w.wake();
            }
        }
    }

    pub fn topic(&self, id: TopicId) -> &TopicStream {
        &self.topics[id.0 as usize]
    }

    pub fn topic_mut(&mut self, id: TopicId) -> &mut TopicStream {
        &mut self.topics[id.0 as usize]
    }

    /// A topic's stream and the cache, borrowed together.
    pub fn topic_and_cache(&mut self, id: TopicId) -> (&mut TopicStream, &mut Cache) {
        (&mut self.topics[id.0 as usize], &mut self.cache)
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
    pub fn ensure_topics(&mut self, table: &crate::kafka::TopicTable) {
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
        (topic.0 as usize) < self.topics.len()
    }

    pub fn set_partitions(&mut self, id: TopicId, partitions: u32) {
        let ts = self.topic_mut(id);
        let before = ts.partitions;
        ts.partitions = Some(before.unwrap_or(0).max(partitions as usize));
        ts.ensure_partition(partitions as usize - 1);
        ts.update_ready();
        if before.is_some_and(|n| n < partitions as usize) {
            let mut frame = Vec::new();
            crate::stream::connection::error_event(
                &mut frame,
                &format!(
                    "topic {} now has {partitions} partitions, so keys hash to other partitions; reconnect to resume",
                    ts.name
                ),
            );
            let frame: Rc<[u8]> = Rc::from(frame);
            for conn in ts.end_pruned() {
                conn.end(Rc::clone(&frame));
            }
        }
        ts.wake_waiters();
    }

    /// Every open live connection, for shutdown.
    pub fn live_count(&self) -> usize {
        self.topics.iter().map(TopicStream::live_connections).sum()
    }
}

/// Applies one batch to the shard's stream of its topic and fans its records
/// out to the live connections. Yields between records when the executor
/// wants the CPU back, so accepting and serving new connections progresses
/// during large fan-outs.
pub async fn apply_batch(
    hub: &std::cell::RefCell<Hub>,
    batch: &Arc<Batch>,
    metrics: &ShardMetrics,
) {
    let p = batch.partition as usize;
    {
        let mut hub = hub.borrow_mut();
        // Cached before the heads move: a cursor reads the log only below
        // the heads (see `cursor`), so it never sees a record the live
        // stream has not passed, and the batch is there for every cursor
        // the moment the heads pass it.
        if !batch.records.is_empty() {
            hub.cache.insert(batch, Instant::now());
            metrics.cache_bytes.set(hub.cache.owned_bytes() as u64);
        }
        let ts = hub.topic_mut(batch.topic);
        if batch.records.is_empty()
            && ts.known.get(p).copied().unwrap_or(false)
            && batch.from < ts.heads[p]
        {
            // An announcement below the head: the partition's log was
            // replaced (the topic was deleted and created again). Its
            // cached records belong to the old log; the live streams go on
            // with the new one from its start.
            ts.heads[p] = batch.from;
            ts.moves += 1;
            hub.cache.clear_partition(batch.topic, batch.partition);
            metrics.cache_bytes.set(hub.cache.owned_bytes() as u64);
        }
        hub.topic_mut(batch.topic)
            .begin_batch(p, batch.from, metrics);
    }
    let mut pushed_since_check = 0;
    for rec in &batch.records {
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
    let ts = hub.topic_mut(batch.topic);
    if batch.to > ts.heads[p] {
        // Offsets without a visible record (transaction markers,
        // compaction): the heads pass them too.
        ts.heads[p] = batch.to;
        ts.moves += 1;
    }
    ts.wake_waiters();
    hub.note_writes(batch.topic);
}

/// The shard's write pass, run as its own task for the life of the shard:
/// whenever deliveries have left feeds with frames to write, writes them
/// all (see `write_pending`). It runs when the delivering task gives up the
/// CPU — after it has applied every batch that was waiting, or at a yield
/// inside a long one — so records that arrive while a pass is under way
/// share the next pass: under load each connection gets several frames per
/// `sendmsg` instead of a full pass per record.
pub async fn write_pass(hub: &std::cell::RefCell<Hub>, budget: usize, metrics: &ShardMetrics) {
    loop {
        std::future::poll_fn(|cx| {
            let mut hub = hub.borrow_mut();
            if std::mem::take(&mut hub.writes_pending) {
                std::task::Poll::Ready(())
            } else {
                hub.write_waker = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        })
        .await;
        write_pending(hub, budget, metrics).await;
    }
}

/// Writes every feed that deliveries have listed, topic by topic. A
/// connection with more than `budget` bytes waiting after its write leaves
/// the live stream (see `write_feed`).
pub async fn write_pending(hub: &std::cell::RefCell<Hub>, budget: usize, metrics: &ShardMetrics) {
    let topics = hub.borrow().topics.len();
    let mut conns = Vec::new();
    for t in 0..topics {
        let topic = TopicId(t as u32);
        let feeds = std::mem::take(&mut hub.borrow_mut().topic_mut(topic).to_write);
        for feed in feeds {
            write_feed(hub, topic, &feed, budget, metrics, &mut conns).await;
        }
    }
}

/// Connections written between checks whether the executor wants the CPU.
const WRITES_PER_YIELD_CHECK: usize = 256;

/// Writes a feed's connections in one tight loop — the sends to every
/// connection run back to back, which is what the kernel's TCP path does
/// fastest — instead of waking one writer task per connection; only a
/// connection whose socket is full is left to its own task. Yields like
/// the delivery loop, so new connections and new batches are served during
/// a long pass. Then drops the frames every connection has sent.
///
/// A connection that still has more than `budget` bytes waiting is a slow
/// client: it leaves the feed at the current heads, taking along the frames
/// it has not sent (so nothing is lost), and continues as a cursor. The
/// heads and the feed's frames are read together, with no await between:
/// every record below the heads that the connection's filter takes has its
/// frame in the feed.
async fn write_feed(
    hub: &std::cell::RefCell<Hub>,
    topic: TopicId,
    feed: &Rc<Feed>,
    budget: usize,
    metrics: &ShardMetrics,
    conns: &mut Vec<Rc<Conn>>,
) {
    feed.take_dirty();
    feed.conns_into(conns);
    let mut demoted = false;
    for (i, conn) in conns.iter().enumerate() {
        if conn.is_closed() {
            continue;
        }
        conn.write_through(metrics);
        if conn.queued_bytes() > budget && conn.is_reading(feed) {
            metrics.demotions.inc();
            conn.demote(hub.borrow().topic(topic).heads.clone());
            demoted = true;
        }
        if (i + 1) % WRITES_PER_YIELD_CHECK == 0 {
            glommio::yield_if_needed().await;
        }
    }
    conns.clear();
    if demoted {
        feed.retain_readers();
    }
    feed.trim();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::TopicId;
    use crate::model::record::Record;
    use rskafka::chrono::DateTime;
    use std::cell::RefCell;
    use std::io::Read as _;
    use std::os::unix::net::UnixStream;

    const T: TopicId = TopicId(0);
    const RENDER: Render = Render {
        value: ValueEncoding::Text,
        id: EventIdForm::Progress,
    };

    fn record(offset: i64, value: &str) -> RecordAndOffset {
        RecordAndOffset {
            record: Record {
                key: None,
                value: Some(value.as_bytes().to_vec()),
                headers: Default::default(),
                timestamp: DateTime::from_timestamp(0, 0).unwrap(),
            },
            offset,
        }
    }

    fn batch(partition: u32, from: i64, to: i64, offsets: std::ops::Range<i64>) -> Arc<Batch> {
        Arc::new(Batch {
            topic: T,
            partition,
            from,
            to,
            records: offsets.map(|o| record(o, &format!("r{o}"))).collect(),
        })
    }

    pub(crate) const NO_LIMITS: Limits = Limits {
        partition_bytes: usize::MAX,
        total_bytes: usize::MAX,
        max_age: std::time::Duration::from_secs(3600),
    };

    /// Runs `f` on a glommio executor with a 2-partition hub whose heads
    /// are announced at 0, and a connected socket pair for connections.
    fn with_hub(
        f: impl FnOnce(
                RefCell<Hub>,
                Rc<Conn>,
                ShardMetrics,
                UnixStream,
            ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>
            + 'static,
    ) {
        let ex = glommio::LocalExecutorBuilder::default()
            .io_memory(64 << 10)
            .make()
            .unwrap();
        ex.run(async move {
            let (a, b) = UnixStream::pair().unwrap();
            b.set_nonblocking(true).unwrap();
            let hub = RefCell::new(Hub::new(&["t".to_owned()], NO_LIMITS, 0, 1));
            hub.borrow_mut().set_partitions(T, 2);
            let metrics = ShardMetrics::default();
            apply_w(&hub, &batch(0, 0, 0, 0..0), 1 << 20, &metrics).await;
            apply_w(&hub, &batch(1, 0, 0, 0..0), 1 << 20, &metrics).await;
            assert!(hub.borrow().topic(T).ready());
            let conn = Rc::new(Conn::new(std::os::fd::AsRawFd::as_raw_fd(&a), 1));
            f(hub, conn, metrics, b).await;
            drop(a);
        });
    }

    /// 400 records (1.6 MB with 4 KB values) of partition 0 in one batch.
    fn big_batch(value: impl Fn(i64) -> String) -> Arc<Batch> {
        Arc::new(Batch {
            topic: T,
            partition: 0,
            from: 0,
            to: 400,
            records: (0..400).map(|o| record(o, &value(o))).collect(),
        })
    }

    /// Applies a batch and runs the write pass, as the shard's tasks would.
    async fn apply_w(hub: &RefCell<Hub>, batch: &Arc<Batch>, budget: usize, m: &ShardMetrics) {
        apply_batch(hub, batch, m).await;
        write_pending(hub, budget, m).await;
    }

    /// Every byte the peer can read now.
    fn received_bytes(peer: &mut UnixStream) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match peer.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("reading the peer: {e}"),
            }
        }
        bytes
    }

    /// The data of every event the peer can read now (whole events: the
    /// writes so far ended at a frame's end).
    fn received(peer: &mut UnixStream) -> Vec<String> {
        let bytes = received_bytes(peer);
        let mut events = Vec::new();
        crate::codec::sse::Parser::new()
            .feed(&bytes, |e| events.push(e.data))
            .unwrap();
        events
    }

    #[test]
    fn live_connection_gets_each_record_once() {
        with_hub(|hub, conn, m, mut peer| {
            Box::pin(async move {
                hub.borrow_mut()
                    .topic_mut(T)
                    .join(Rc::clone(&conn), RENDER, &Selection::default());
                apply_w(&hub, &batch(0, 0, 3, 0..3), 1 << 20, &m).await;
                // Written through by the hub itself: nothing left queued.
                assert_eq!(conn.queued_frames(), 0);
                assert_eq!(received(&mut peer), ["r0", "r1", "r2"]);
                // An overlapping batch (from < head) delivers only the new records.
                apply_w(&hub, &batch(0, 1, 5, 1..5), 1 << 20, &m).await;
                assert_eq!(received(&mut peer), ["r3", "r4"]);
                assert_eq!(hub.borrow().topic(T).heads(), &[5, 0]);
                assert_eq!(m.events_sent.get(), 5);
            })
        });
    }

    #[test]
    fn full_socket_leaves_the_rest_to_the_writer() {
        with_hub(|hub, conn, m, mut peer| {
            Box::pin(async move {
                hub.borrow_mut()
                    .topic_mut(T)
                    .join(Rc::clone(&conn), RENDER, &Selection::default());
                // Far more than a socket buffer holds, in one batch.
                let big = big_batch(|_| "x".repeat(4000));
                apply_w(&hub, &big, 1 << 30, &m).await;
                assert!(conn.queued_bytes() > 0, "the socket took 1.6 MB?");
                // The writer task was woken for the rest.
                assert!(conn.is_notified());
                // A closed connection is never written, even if listed.
                conn.mark_closed();
                let before = received(&mut peer).len();
                assert!(before > 0);
                conn.write_through(&m);
                assert!(received(&mut peer).is_empty());
            })
        });
    }

    #[test]
    fn missed_batch_turns_live_connections_into_cursors_at_the_old_heads() {
        with_hub(|hub, conn, m, mut peer| {
            Box::pin(async move {
                hub.borrow_mut()
                    .topic_mut(T)
                    .join(Rc::clone(&conn), RENDER, &Selection::default());
                apply_w(&hub, &batch(1, 0, 2, 0..2), 1 << 20, &m).await;
                // Batch [2, 7) never arrived (a full mesh queue): the next starts at 7.
                apply_w(&hub, &batch(1, 7, 8, 7..8), 1 << 20, &m).await;
                assert_eq!(conn.take_demotion(), Some(vec![0, 2]));
                assert_eq!(
                    received(&mut peer),
                    ["r0", "r1"],
                    "nothing after the gap reached the cursor"
                );
                assert_eq!(hub.borrow().topic(T).live_connections(), 0);
                assert_eq!(hub.borrow().topic(T).heads(), &[0, 8]);
                assert_eq!(m.demotions.get(), 1);
            })
        });
    }

    #[test]
    fn connection_over_budget_leaves_with_every_frame_it_had_not_sent() {
        with_hub(|hub, conn, m, mut peer| {
            Box::pin(async move {
                hub.borrow_mut()
                    .topic_mut(T)
                    .join(Rc::clone(&conn), RENDER, &Selection::default());
                // 1.6 MB in one batch: the socket takes part, and what is
                // left is over a 64 KiB budget.
                let big = big_batch(|o| format!("r{o}-{}", "x".repeat(4000)));
                apply_w(&hub, &big, 64 << 10, &m).await;
                // It leaves at the heads, with the unsent frames in its own
                // outbox: the feed holds nothing for it any more.
                assert_eq!(conn.take_demotion(), Some(vec![400, 0]));
                assert_eq!(hub.borrow().topic(T).live_connections(), 0);
                assert_eq!(m.demotions.get(), 1);
                let feed_frames: usize = hub.borrow().topics[0]
                    .audiences
                    .iter()
                    .flat_map(|a| &a.groups)
                    .map(|g| g.feed.held())
                    .sum();
                assert_eq!(feed_frames, 0, "nobody reads the feed: trimmed");
                // Everything reaches the client, once and in order.
                let mut bytes = Vec::new();
                while conn.queued_bytes() > 0 {
                    conn.write_through(&m);
                    bytes.extend(received_bytes(&mut peer));
                }
                let mut got = Vec::new();
                crate::codec::sse::Parser::new()
                    .feed(&bytes, |e| got.push(e.data))
                    .unwrap();
                let want: Vec<String> = (0..400)
                    .map(|o| format!("r{o}-{}", "x".repeat(4000)))
                    .collect();
                assert_eq!(got, want);
                assert_eq!(conn.queued_bytes(), 0);
            })
        });
    }
}
