//! Partition logs: the shard's cache of recent records.
//!
//! Every batch a shard applies (fetched by its own sidecar or forwarded by
//! the owning shard) is already immutable and reference-counted once
//! (`Arc<Batch>`), so the cache stores the same `Arc`s: no record is copied,
//! and each shard's logs are an index of data the shards share. A log maps
//! offset ranges to batches; ranges never overlap, and a range may be
//! missing (a hole: evicted, never fetched, or skipped by a full mesh
//! queue), in which case a reader goes to Kafka (see `cursor`). Besides the
//! live batches, a log takes batches fetched from Kafka for readers behind
//! it (back-fill), trimmed to the range nothing else covers.
//!
//! Bounds: bytes per partition, bytes in total, and age. Eviction drops the
//! segment that has been in the cache longest; when a partition is over its
//! own bound, its lowest segment. Every shard applies the same batches with
//! the same bounds, so the shards keep (nearly) the same segments and the
//! shared memory stays within `total_bytes` plus what readers still hold.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::model::RecordAndOffset;
use crate::model::{Batch, Offset, Partition, Skip, TopicId};

/// The cache bounds (see `config::CacheConfig`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub partition_bytes: usize,
    pub total_bytes: usize,
    pub max_age: Duration,
}

/// What a record costs in the cache: its bytes plus its in-memory record.
pub fn record_bytes(r: &RecordAndOffset) -> usize {
    std::mem::size_of::<RecordAndOffset>()
        + r.record.key.as_ref().map_or(0, Vec::len)
        + r.record.value.as_ref().map_or(0, Vec::len)
        + r.record
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 48)
            .sum::<usize>()
}

fn batch_bytes(b: &Batch) -> usize {
    std::mem::size_of::<Batch>() + b.records.iter().map(record_bytes).sum::<usize>()
}

#[derive(Debug)]
struct Segment {
    batch: Arc<Batch>,
    bytes: usize,
    /// Insertion number: tells a live segment from a stale eviction entry.
    seq: u64,
}

/// The cached ranges of one partition.
#[derive(Debug, Default)]
pub struct PartitionLog {
    /// Keyed by `batch.from`. INVARIANT: ranges `[from, to)` do not overlap.
    segs: BTreeMap<Offset, Segment>,
    bytes: usize,
}

impl PartitionLog {
    /// The cached batch whose range holds `offset`.
    pub fn lookup(&self, offset: Offset) -> Option<&Arc<Batch>> {
        let (_, seg) = self.segs.range(..=offset).next_back()?;
        (offset < seg.batch.to).then_some(&seg.batch)
    }

    /// The start of the first cached range above `offset`.
    fn next_start(&self, offset: Offset) -> Option<Offset> {
        self.segs.range(offset.next()..).next().map(|(k, _)| *k)
    }

    fn overlaps(&self, from: Offset, to: Offset) -> bool {
        let below = self
            .segs
            .range(..=from)
            .next_back()
            .is_some_and(|(_, s)| s.batch.to > from);
        below || self.next_start(from).is_some_and(|s| s < to)
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The cached ranges, in order (tests and diagnostics).
    pub fn ranges(&self) -> Vec<(i64, i64)> {
        self.segs
            .values()
            .map(|s| (s.batch.from.0, s.batch.to.0))
            .collect()
    }
}

/// A shard's partition logs for every topic.
#[derive(Debug)]
pub struct Cache {
    limits: Limits,
    /// `[topic][partition]`, grown as partitions appear.
    logs: Vec<Vec<PartitionLog>>,
    total: usize,
    /// Insertion order: (when, seq, topic, partition, from). Entries of
    /// segments evicted by their partition's bound go stale and are skipped.
    order: VecDeque<(Instant, u64, TopicId, Partition, Offset)>,
    seq: u64,
    /// Which partitions this shard owns (`p % shards == shard`): only their
    /// bytes are reported, so the shards' reports add up to the data held.
    shard: usize,
    shards: usize,
    owned_bytes: usize,
}

impl Cache {
    pub fn new(limits: Limits, topics: usize, shard: usize, shards: usize) -> Self {
        Self {
            limits,
            logs: (0..topics).map(|_| Vec::new()).collect(),
            total: 0,
            order: VecDeque::new(),
            seq: 0,
            shard,
            shards: shards.max(1),
            owned_bytes: 0,
        }
    }

    /// Makes room for topics added since (see `Hub::ensure_topics`).
    pub fn ensure_topics(&mut self, topics: usize) {
        if self.logs.len() < topics {
            self.logs.resize_with(topics, Vec::new);
        }
    }

    pub fn log(&self, topic: TopicId, partition: Partition) -> Option<&PartitionLog> {
        self.logs[topic.index()].get(partition.index())
    }

    fn log_mut(&mut self, topic: TopicId, partition: Partition) -> &mut PartitionLog {
        let logs = &mut self.logs[topic.index()];
        let p = partition.index();
        if logs.len() <= p {
            logs.resize_with(p + 1, PartitionLog::default);
        }
        &mut logs[p]
    }

    /// Bytes held, counting every partition.
    pub fn total_bytes(&self) -> usize {
        self.total
    }

    /// Bytes held for the partitions this shard owns.
    pub fn owned_bytes(&self) -> usize {
        self.owned_bytes
    }

    /// Caches a batch if it fits and overlaps nothing cached. Returns true
    /// if it was cached. Evicts to stay within the bounds.
    pub fn insert(&mut self, batch: &Arc<Batch>, now: Instant) -> bool {
        if batch.from >= batch.to {
            return false;
        }
        let bytes = batch_bytes(batch);
        if bytes > self.limits.partition_bytes || bytes > self.limits.total_bytes {
            return false;
        }
        let (topic, p) = (batch.topic, batch.partition);
        if self.log_mut(topic, p).overlaps(batch.from, batch.to) {
            return false;
        }
        self.seq += 1;
        let seq = self.seq;
        let log = self.log_mut(topic, p);
        log.segs.insert(
            batch.from,
            Segment {
                batch: Arc::clone(batch),
                bytes,
                seq,
            },
        );
        log.bytes += bytes;
        self.total += bytes;
        if self.owns(p) {
            self.owned_bytes += bytes;
        }
        self.order.push_back((now, seq, topic, p, batch.from));
        // This partition over its bound: drop its lowest ranges.
        while self.log_mut(topic, p).bytes > self.limits.partition_bytes {
            let from = *self
                .log_mut(topic, p)
                .segs
                .keys()
                .next()
                .expect("bytes > 0");
            self.remove(topic, p, from);
        }
        self.evict(now);
        true
    }

    /// Drops the segments that are over the total bound or older than the
    /// age bound, longest cached first.
    pub fn evict(&mut self, now: Instant) {
        while let Some(&(at, seq, t, p, from)) = self.order.front() {
            let over = self.total > self.limits.total_bytes;
            let old = now.saturating_duration_since(at) > self.limits.max_age;
            if !over && !old {
                break;
            }
            self.order.pop_front();
            let live = self
                .log(t, p)
                .and_then(|l| l.segs.get(&from))
                .is_some_and(|s| s.seq == seq);
            if live {
                self.remove(t, p, from);
            }
        }
        // Stale entries (segments a partition bound removed) would pile up
        // when nothing else evicts: drop them once they dominate.
        let live_segments: usize = self.logs.iter().flatten().map(|l| l.segs.len()).sum();
        if self.order.len() > 2 * live_segments + 64 {
            let logs = &self.logs;
            self.order.retain(|&(_, seq, t, p, from)| {
                logs[t.index()]
                    .get(p.index())
                    .and_then(|l| l.segs.get(&from))
                    .is_some_and(|s| s.seq == seq)
            });
        }
    }

    fn remove(&mut self, topic: TopicId, p: Partition, from: Offset) {
        let owned = self.owns(p);
        let log = self.log_mut(topic, p);
        if let Some(seg) = log.segs.remove(&from) {
            log.bytes -= seg.bytes;
            self.total -= seg.bytes;
            if owned {
                self.owned_bytes -= seg.bytes;
            }
        }
    }

    /// Forgets what a partition's log holds below `start`, Kafka's log start
    /// offset (retention or DeleteRecords deleted those records): a reader
    /// below it goes to Kafka and is told of the gap. A segment that
    /// straddles `start` goes whole; Kafka serves its rest again if asked.
    pub fn trim_below(&mut self, topic: TopicId, p: Partition, start: Offset) {
        let below: Vec<Offset> = self
            .log_mut(topic, p)
            .segs
            .range(..start)
            .map(|(&from, _)| from)
            .collect();
        for from in below {
            self.remove(topic, p, from);
        }
    }

    /// Forgets a partition's cached records (its log was replaced).
    pub fn clear_partition(&mut self, topic: TopicId, p: Partition) {
        let froms: Vec<Offset> = self.log_mut(topic, p).segs.keys().copied().collect();
        for from in froms {
            self.remove(topic, p, from);
        }
    }

    fn owns(&self, p: Partition) -> bool {
        p.index() % self.shards == self.shard
    }

    /// Turns records fetched from Kafka at `at` (for readers the cache did
    /// not serve) into a batch covering what no cached range covers, below
    /// `limit` (the hub's head: the live stream caches what follows), and
    /// caches it. Returns the batch that now holds `at`: the new one, or the
    /// cached one if another fetch got there first. `None` when Kafka
    /// returned nothing at or after `at`.
    pub fn backfill(
        &mut self,
        topic: TopicId,
        p: Partition,
        at: Offset,
        limit: Option<Offset>,
        (records, skipped): (Vec<RecordAndOffset>, Vec<Skip>),
        now: Instant,
    ) -> Option<Arc<Batch>> {
        let log = self.log_mut(topic, p);
        if let Some(cached) = log.lookup(at) {
            return Some(Arc::clone(cached));
        }
        let limit = match (log.next_start(at), limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let end = records
            .last()
            .map(|r| r.offset.next())
            .max(skipped.last().map(|s| s.to))?;
        if end <= at {
            return None;
        }
        // Everything fetched in [at, to) is known: a record missing from it
        // is not visible (deleted by compaction, a transaction marker), or
        // in a skipped run.
        let to = limit.map_or(end, |limit| end.min(limit));
        let records: Vec<_> = records
            .into_iter()
            .filter(|r| r.offset >= at && r.offset < to)
            .collect();
        let skipped = skipped
            .into_iter()
            .map(|s| Skip {
                from: s.from.max(at),
                to: s.to.min(to),
            })
            .filter(|s| s.from < s.to)
            .collect();
        let batch = Arc::new(Batch {
            topic,
            partition: p,
            from: at,
            to,
            records,
            skipped,
            log_start: None,
        });
        self.insert(&batch, now);
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Record;
    use rskafka::chrono::DateTime;

    const T: TopicId = TopicId(0);

    fn offset(o: i64) -> Offset {
        Offset(o)
    }

    const P0: Partition = Partition(0);
    const P1: Partition = Partition(1);

    fn rec(offset: i64, len: usize) -> RecordAndOffset {
        RecordAndOffset {
            record: Record {
                key: None,
                value: Some(vec![b'x'; len]),
                headers: Default::default(),
                timestamp: DateTime::from_timestamp(0, 0).unwrap(),
            },
            offset: Offset(offset),
        }
    }

    fn batch(p: u32, from: i64, to: i64) -> Arc<Batch> {
        Arc::new(Batch {
            topic: T,
            partition: Partition(p),
            from: Offset(from),
            to: Offset(to),
            records: (from..to).map(|o| rec(o, 100)).collect(),
            skipped: Vec::new(),
            log_start: None,
        })
    }

    fn unbounded() -> Limits {
        Limits {
            partition_bytes: usize::MAX,
            total_bytes: usize::MAX,
            max_age: Duration::from_secs(3600),
        }
    }

    /// Kafka deleted records below its log start: nothing below it is
    /// served from the cache any more, a segment across it included.
    #[test]
    fn trimming_below_the_log_start_drops_what_kafka_deleted() {
        let mut c = Cache::new(unbounded(), 1, 0, 1);
        let now = Instant::now();
        for (from, to) in [(0, 5), (5, 9), (9, 12)] {
            assert!(c.insert(&batch(0, from, to), now));
        }
        let before = c.total_bytes();
        c.trim_below(T, P0, offset(7));
        assert_eq!(c.log(T, P0).unwrap().ranges(), [(9, 12)]);
        assert!(c.total_bytes() < before);
        // Idempotent, and a start below everything keeps everything.
        c.trim_below(T, P0, offset(7));
        c.trim_below(T, P0, offset(0));
        assert_eq!(c.log(T, P0).unwrap().ranges(), [(9, 12)]);
    }

    #[test]
    fn lookup_finds_the_range_holding_an_offset() {
        let mut c = Cache::new(unbounded(), 1, 0, 1);
        let now = Instant::now();
        assert!(c.insert(&batch(0, 0, 5), now));
        assert!(c.insert(&batch(0, 5, 9), now));
        assert!(c.insert(&batch(0, 20, 22), now));
        let log = c.log(T, P0).unwrap();
        assert_eq!(log.lookup(offset(0)).unwrap().from, offset(0));
        assert_eq!(log.lookup(offset(4)).unwrap().from, offset(0));
        assert_eq!(log.lookup(offset(5)).unwrap().from, offset(5));
        assert_eq!(log.lookup(offset(8)).unwrap().from, offset(5));
        assert!(log.lookup(offset(9)).is_none(), "a hole");
        assert!(log.lookup(offset(22)).is_none());
        assert_eq!(log.lookup(offset(21)).unwrap().from, offset(20));
        assert!(c.log(T, P1).is_none());
    }

    #[test]
    fn overlapping_and_empty_batches_are_refused() {
        let mut c = Cache::new(unbounded(), 1, 0, 1);
        let now = Instant::now();
        assert!(c.insert(&batch(0, 10, 20), now));
        for (from, to) in [(5, 11), (19, 25), (12, 13), (0, 30)] {
            assert!(!c.insert(&batch(0, from, to), now), "[{from},{to})");
        }
        assert!(!c.insert(&batch(0, 30, 30), now));
        assert!(c.insert(&batch(0, 5, 10), now));
        assert!(c.insert(&batch(0, 20, 25), now));
        assert_eq!(
            c.log(T, P0).unwrap().ranges(),
            [(5, 10), (10, 20), (20, 25)]
        );
    }

    #[test]
    fn partition_bound_evicts_its_lowest_ranges() {
        let one = batch_bytes(&batch(0, 0, 10));
        let limits = Limits {
            partition_bytes: 2 * one,
            ..unbounded()
        };
        let mut c = Cache::new(limits, 1, 0, 1);
        let now = Instant::now();
        for i in 0..4 {
            assert!(c.insert(&batch(0, i * 10, i * 10 + 10), now));
        }
        assert!(c.insert(&batch(1, 0, 10), now));
        assert_eq!(c.log(T, P0).unwrap().ranges(), [(20, 30), (30, 40)]);
        assert_eq!(c.log(T, P1).unwrap().ranges(), [(0, 10)]);
        assert_eq!(c.total_bytes(), 3 * one);
    }

    #[test]
    fn total_bound_and_age_evict_longest_cached_first() {
        let one = batch_bytes(&batch(0, 0, 10));
        let limits = Limits {
            total_bytes: 3 * one,
            max_age: Duration::from_secs(10),
            ..unbounded()
        };
        let mut c = Cache::new(limits, 1, 0, 1);
        let t0 = Instant::now();
        c.insert(&batch(0, 0, 10), t0);
        c.insert(&batch(1, 0, 10), t0 + Duration::from_secs(1));
        c.insert(&batch(0, 10, 20), t0 + Duration::from_secs(2));
        c.insert(&batch(1, 10, 20), t0 + Duration::from_secs(3));
        // Over the total: the first inserted went.
        assert_eq!(c.log(T, P0).unwrap().ranges(), [(10, 20)]);
        assert_eq!(c.log(T, P1).unwrap().ranges(), [(0, 10), (10, 20)]);
        // Age: everything inserted more than 10 s before now.
        c.evict(t0 + Duration::from_millis(11_500));
        assert_eq!(c.log(T, P0).unwrap().ranges(), [(10, 20)]);
        assert_eq!(c.log(T, P1).unwrap().ranges(), [(10, 20)]);
        c.evict(t0 + Duration::from_secs(60));
        assert_eq!(c.total_bytes(), 0);
        assert!(c.order.is_empty());
    }

    #[test]
    fn owned_bytes_count_only_this_shards_partitions() {
        let mut c = Cache::new(unbounded(), 1, 1, 2);
        let now = Instant::now();
        c.insert(&batch(0, 0, 10), now);
        c.insert(&batch(1, 0, 10), now);
        c.insert(&batch(3, 0, 5), now);
        assert_eq!(
            c.owned_bytes(),
            batch_bytes(&batch(1, 0, 10)) + batch_bytes(&batch(3, 0, 5))
        );
        assert!(c.total_bytes() > c.owned_bytes());
    }

    #[test]
    fn backfill_covers_only_what_nothing_else_covers() {
        let mut c = Cache::new(unbounded(), 1, 0, 1);
        let now = Instant::now();
        c.insert(&batch(0, 100, 110), now);
        // Kafka returns whole record batches: from 90 (before `at`) to 104.
        let fetched: Vec<_> = (90..105).map(|o| rec(o, 10)).collect();
        let b = c
            .backfill(
                T,
                P0,
                offset(95),
                Some(offset(110)),
                (fetched, Vec::new()),
                now,
            )
            .unwrap();
        assert_eq!((b.from.0, b.to.0), (95, 100));
        let offsets: Vec<_> = b.records.iter().map(|r| r.offset.0).collect();
        assert_eq!(offsets, [95, 96, 97, 98, 99]);
        assert_eq!(c.log(T, P0).unwrap().ranges(), [(95, 100), (100, 110)]);
        // Already covered: the cached batch.
        let again = c
            .backfill(
                T,
                P0,
                offset(97),
                Some(offset(110)),
                (vec![rec(97, 1)], Vec::new()),
                now,
            )
            .unwrap();
        assert!(Arc::ptr_eq(&again, &b));
        // Nothing at or after `at`.
        assert!(c
            .backfill(
                T,
                P0,
                offset(50),
                Some(offset(110)),
                (vec![rec(40, 1)], Vec::new()),
                now
            )
            .is_none());
        assert!(c
            .backfill(
                T,
                P0,
                offset(50),
                Some(offset(110)),
                (Vec::new(), Vec::new()),
                now
            )
            .is_none());
    }

    #[test]
    fn backfill_stops_at_the_head_and_marks_invisible_ranges() {
        let mut c = Cache::new(unbounded(), 1, 0, 1);
        let now = Instant::now();
        // The head is 30: records past it belong to the live stream.
        let b = c
            .backfill(
                T,
                P0,
                offset(20),
                Some(offset(30)),
                ((20..40).map(|o| rec(o, 1)).collect(), Vec::new()),
                now,
            )
            .unwrap();
        assert_eq!((b.from.0, b.to.0, b.records.len()), (20, 30, 10));
        // Offsets 0..10 hold nothing visible: the first record is at 10.
        let b = c
            .backfill(
                T,
                P0,
                offset(0),
                Some(offset(30)),
                ((10..15).map(|o| rec(o, 1)).collect(), Vec::new()),
                now,
            )
            .unwrap();
        assert_eq!((b.from.0, b.to.0), (0, 15));
        assert_eq!(b.records.first().unwrap().offset, Offset(10));
        // A fetch past the next cached range: cut where it starts, even
        // with no record in between.
        let b = c
            .backfill(
                T,
                P0,
                offset(15),
                Some(offset(30)),
                ((25..26).map(|o| rec(o, 1)).collect(), Vec::new()),
                now,
            )
            .unwrap();
        assert_eq!((b.from.0, b.to.0, b.records.len()), (15, 20, 0));
        assert_eq!(
            c.log(T, P0).unwrap().ranges(),
            [(0, 15), (15, 20), (20, 30)]
        );
    }

    #[test]
    fn a_disabled_cache_still_hands_back_fetched_batches() {
        let limits = Limits {
            partition_bytes: 0,
            total_bytes: 0,
            max_age: Duration::from_secs(1),
        };
        let mut c = Cache::new(limits, 1, 0, 1);
        let now = Instant::now();
        assert!(!c.insert(&batch(0, 0, 10), now));
        let b = c
            .backfill(
                T,
                P0,
                offset(0),
                Some(offset(10)),
                ((0..10).map(|o| rec(o, 1)).collect(), Vec::new()),
                now,
            )
            .unwrap();
        assert_eq!(b.records.len(), 10);
        assert_eq!(c.total_bytes(), 0);
    }
}
