//! Batches: runs of consecutive records of one partition, as a fetch loop
//! hands them to its shard, as the mesh forwards them and as the cache keeps
//! them (each batch is immutable and shared by reference count).

use super::ids::{Offset, Partition, TopicId};
use super::record::RecordAndOffset;

/// A run of consecutive records of one partition, as fetched.
///
/// INVARIANT: `from <= to`; every record offset is in `from..to`; records
/// are sorted by offset. For one partition the batches of a fetch loop
/// chain exactly: the next batch's `from` is this batch's `to`, and the
/// offsets in between that hold no record hold none anyone sees
/// (transaction markers, aborted transactions, compacted records). A batch
/// with no records is an announcement of the fetch position (sent when a
/// loop starts or after a reset).
#[derive(Debug)]
pub struct Batch {
    pub topic: TopicId,
    pub partition: Partition,
    pub from: Offset,
    pub to: Offset,
    pub records: Vec<RecordAndOffset>,
}

impl Batch {
    /// An announcement: the partition's fetch position is `at`.
    pub fn announcement(topic: TopicId, partition: Partition, at: Offset) -> Self {
        Self {
            topic,
            partition,
            from: at,
            to: at,
            records: Vec::new(),
        }
    }

    /// Whether the batch's range holds `offset`.
    pub fn covers(&self, offset: Offset) -> bool {
        self.from <= offset && offset < self.to
    }
}
