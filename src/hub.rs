//! Topic hubs: a shard's merged stream of each topic, and the live fan-out.
//!
//! Batches of every partition of a topic reach a shard (from its own sidecar
//! or from the owning shard over the mesh) and are merged, in arrival order,
//! into one stream per topic. The hub keeps the stream's *heads* — the next
//! offset of every partition — and groups the live connections by how they
//! render events. For each record it encodes the event id once, the frame
//! once per group, and hands the same reference-counted bytes to every
//! connection of the group. Nothing is formatted per connection here.
//!
//! INVARIANT (exactness of the live stream): a connection is in a group only
//! while its position equals the hub's heads. It joins only when its position
//! equals the heads (checked and done without an await in between), and from
//! then on it receives every record the heads advance over. When that can no
//! longer hold — its queue is over budget, or the shard missed batches (a full
//! mesh queue) — it is removed and handed the heads it had reached as its
//! cursor position, so it continues as a catch-up reader with nothing lost or
//! repeated.

use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use rskafka::record::RecordAndOffset;

use crate::config::EventIdForm;
use crate::connection::{Conn, Offer};
use crate::event_id;
use crate::kafka::{Batch, TopicId};
use crate::log::{Cache, Limits};
use crate::metrics::ShardMetrics;
use crate::sse::{self, ValueEncoding};

/// How a route renders events; connections are grouped by it so each frame
/// is encoded once per distinct rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Render {
    pub value: ValueEncoding,
    pub id: EventIdForm,
}

/// Frames pushed between checks for a yield: long fan-out loops must let
/// the accept loop and new connections run (a fan-out loop that never yields
/// starved new clients of their response headers for minutes).
const PUSHES_PER_YIELD_CHECK: usize = 4096;

struct Group {
    render: Render,
    conns: Vec<Rc<Conn>>,
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
    groups: Vec<Group>,
    /// Catch-up readers waiting for the heads to move.
    waiters: Vec<Waker>,
    id_scratch: Vec<u8>,
    id_buf: Vec<u8>,
    key_id_buf: Vec<u8>,
    frame_buf: Vec<u8>,
    /// Connections whose outbox went from empty to not empty in the batch
    /// being applied: written once the batch is queued (`apply_batch`).
    /// Kept between batches for its capacity.
    to_write: Vec<Rc<Conn>>,
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
            groups: Vec::new(),
            waiters: Vec::new(),
            id_scratch: Vec::new(),
            id_buf: Vec::new(),
            key_id_buf: Vec::new(),
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
        for g in &mut self.groups {
            for conn in g.conns.drain(..) {
                if !conn.is_closed() {
                    conn.end(Rc::clone(frame));
                    ended += 1;
                }
            }
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
    pub fn join(&mut self, conn: Rc<Conn>, render: Render) {
        match self.groups.iter_mut().find(|g| g.render == render) {
            Some(g) => g.conns.push(conn),
            None => self.groups.push(Group {
                render,
                conns: vec![conn],
            }),
        }
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
        for g in &mut self.groups {
            for conn in g.conns.drain(..) {
                if !conn.is_closed() {
                    metrics.demotions.inc();
                    conn.demote(self.heads.clone());
                }
            }
        }
    }

    /// Forgets the connections waiting for their write-through and returns
    /// how many there were (for benchmarks and tests that drive `deliver`
    /// without `apply_batch`).
    pub fn clear_pending_writes(&mut self) -> usize {
        let n = self.to_write.len();
        self.to_write.clear();
        n
    }

    /// Live connections on this shard (all groups).
    pub fn live_connections(&self) -> usize {
        self.groups.iter().map(|g| g.conns.len()).sum()
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
        }
    }

    /// Delivers one record of partition `p` to the live connections and
    /// advances the heads — the per-record hot path. Returns how many frames
    /// were pushed. A record below the head was delivered already (an
    /// overlapping batch) and is skipped: never twice.
    pub fn deliver(
        &mut self,
        p: usize,
        rec: &RecordAndOffset,
        budget: usize,
        metrics: &ShardMetrics,
    ) -> usize {
        if rec.offset < self.heads[p] {
            return 0;
        }
        let before = self.heads[p];
        self.heads[p] = rec.offset + 1;
        if self.groups.iter().all(|g| g.conns.is_empty()) {
            return 0;
        }
        // The id is the same for every group: encode it once.
        self.id_buf.clear();
        event_id::encode_progress(
            self.hash,
            &self.heads,
            &mut self.id_scratch,
            &mut self.id_buf,
        );
        let mut pushed = 0;
        let key = rec.record.key.as_deref();
        let value = rec.record.value.as_deref();
        for g in &mut self.groups {
            if g.conns.is_empty() {
                continue;
            }
            self.frame_buf.clear();
            match g.render.id {
                EventIdForm::Progress => sse::encode_record(
                    &mut self.frame_buf,
                    &self.id_buf,
                    key,
                    value,
                    g.render.value,
                ),
                EventIdForm::KeyAndProgress => {
                    self.key_id_buf.clear();
                    event_id::encode_key_and_progress(
                        key,
                        self.hash,
                        &self.heads,
                        &mut self.id_scratch,
                        &mut self.key_id_buf,
                    );
                    sse::encode_record(
                        &mut self.frame_buf,
                        &self.key_id_buf,
                        key,
                        value,
                        g.render.value,
                    )
                }
            }
            let frame: Rc<[u8]> = Rc::from(&self.frame_buf[..]);
            let heads = &self.heads;
            let to_write = &mut self.to_write;
            g.conns.retain(|conn| match conn.offer(&frame, budget) {
                Offer::Queued => {
                    pushed += 1;
                    true
                }
                Offer::QueuedFirst => {
                    pushed += 1;
                    to_write.push(Rc::clone(conn));
                    true
                }
                Offer::OverBudget => {
                    // Slow client: it leaves the broadcast at the position
                    // it had reached before this record.
                    let mut position = heads.clone();
                    position[p] = before;
                    metrics.demotions.inc();
                    conn.demote(position);
                    false
                }
                Offer::Closed => false,
            });
        }
        pushed
    }
}

/// The topic streams of one shard, indexed by `TopicId`, and its
/// partition cache.
pub struct Hub {
    topics: Vec<TopicStream>,
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

    pub fn topics_mut(&mut self) -> impl Iterator<Item = &mut TopicStream> {
        self.topics.iter_mut()
    }

    pub fn all_ready(&self) -> bool {
        self.topics.iter().all(TopicStream::ready)
    }

    pub fn set_partitions(&mut self, id: TopicId, partitions: u32) {
        let ts = self.topic_mut(id);
        ts.partitions = Some(ts.partitions.unwrap_or(0).max(partitions as usize));
        ts.ensure_partition(partitions as usize - 1);
        ts.update_ready();
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
    budget: usize,
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
            hub.cache.clear_partition(batch.topic, batch.partition);
            metrics.cache_bytes.set(hub.cache.owned_bytes() as u64);
        }
        hub.topic_mut(batch.topic)
            .begin_batch(p, batch.from, metrics);
    }
    let mut pushed_since_check = 0;
    for rec in &batch.records {
        pushed_since_check += hub
            .borrow_mut()
            .topic_mut(batch.topic)
            .deliver(p, rec, budget, metrics);
        if pushed_since_check >= PUSHES_PER_YIELD_CHECK {
            // The write pass may run meanwhile: a long batch is written as
            // it goes, so outboxes stay small.
            pushed_since_check = 0;
            hub.borrow_mut().note_writes(batch.topic);
            glommio::yield_if_needed().await;
        }
    }
    let mut hub = hub.borrow_mut();
    let ts = hub.topic_mut(batch.topic);
    if batch.to > ts.heads[p] {
        ts.heads[p] = batch.to;
    }
    ts.wake_waiters();
    hub.note_writes(batch.topic);
}

/// The shard's write pass, run as its own task for the life of the shard:
/// whenever deliveries have left connections with frames to write, writes
/// them all (see `write_pending`). It runs when the delivering task gives up
/// the CPU — after it has applied every batch that was waiting, or at a
/// yield inside a long one — so records that arrive while a pass is under
/// way share the next pass: under load each connection gets several frames
/// per `sendmsg` instead of a full pass per record.
pub async fn write_pass(hub: &std::cell::RefCell<Hub>, metrics: &ShardMetrics) {
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
        write_pending(hub, metrics).await;
    }
}

/// Writes every connection that deliveries have listed, topic by topic.
pub async fn write_pending(hub: &std::cell::RefCell<Hub>, metrics: &ShardMetrics) {
    let topics = hub.borrow().topics.len();
    for t in 0..topics {
        let topic = TopicId(t as u32);
        let to_write = std::mem::take(&mut hub.borrow_mut().topic_mut(topic).to_write);
        if !to_write.is_empty() {
            write_through(hub, topic, to_write, metrics).await;
        }
    }
}

/// Connections written between checks whether the executor wants the CPU.
const WRITES_PER_YIELD_CHECK: usize = 256;

/// Writes the listed connections' frames in one tight loop — the sends to
/// every connection run back to back, which is what the kernel's TCP path
/// does fastest — instead of waking one writer task per connection. Yields
/// like the delivery loop, so new connections and new batches are served
/// during a long pass.
async fn write_through(
    hub: &std::cell::RefCell<Hub>,
    topic: TopicId,
    mut conns: Vec<Rc<Conn>>,
    metrics: &ShardMetrics,
) {
    for (i, conn) in conns.iter().enumerate() {
        conn.write_through(metrics);
        if (i + 1) % WRITES_PER_YIELD_CHECK == 0 {
            glommio::yield_if_needed().await;
        }
    }
    conns.clear();
    // Hand the capacity back unless another batch started a list meanwhile.
    let mut hub = hub.borrow_mut();
    let ts = hub.topic_mut(topic);
    if ts.to_write.capacity() < conns.capacity() && ts.to_write.is_empty() {
        ts.to_write = conns;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::TopicId;
    use rskafka::chrono::DateTime;
    use rskafka::record::Record;
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

    /// Applies a batch and runs the write pass, as the shard's tasks would.
    async fn apply_w(hub: &RefCell<Hub>, batch: &Arc<Batch>, budget: usize, m: &ShardMetrics) {
        apply_batch(hub, batch, budget, m).await;
        write_pending(hub, m).await;
    }

    /// The data of every event the peer can read now.
    fn received(peer: &mut UnixStream) -> Vec<String> {
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
        let mut events = Vec::new();
        crate::sse::Parser::new()
            .feed(&bytes, |e| events.push(e.data))
            .unwrap();
        events
    }

    #[test]
    fn live_connection_gets_each_record_once() {
        with_hub(|hub, conn, m, mut peer| {
            Box::pin(async move {
                hub.borrow_mut().topic_mut(T).join(Rc::clone(&conn), RENDER);
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
                hub.borrow_mut().topic_mut(T).join(Rc::clone(&conn), RENDER);
                // Far more than a socket buffer holds, in one batch.
                let big = Arc::new(Batch {
                    topic: T,
                    partition: 0,
                    from: 0,
                    to: 400,
                    records: (0..400).map(|o| record(o, &"x".repeat(4000))).collect(),
                });
                apply_w(&hub, &big, 1 << 30, &m).await;
                assert!(conn.queued_frames() > 0, "the socket took 1.6 MB?");
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
                hub.borrow_mut().topic_mut(T).join(Rc::clone(&conn), RENDER);
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
    fn connection_over_budget_leaves_at_the_record_it_missed() {
        with_hub(|hub, conn, m, mut peer| {
            Box::pin(async move {
                hub.borrow_mut().topic_mut(T).join(Rc::clone(&conn), RENDER);
                // Budget of 1 byte: the first frame is queued (0 bytes were
                // queued before it), the second finds the budget exceeded.
                apply_w(&hub, &batch(0, 0, 3, 0..3), 1, &m).await;
                assert_eq!(received(&mut peer), ["r0"]);
                assert_eq!(conn.take_demotion(), Some(vec![1, 0]));
                assert_eq!(hub.borrow().topic(T).heads(), &[3, 0]);
            })
        });
    }
}
