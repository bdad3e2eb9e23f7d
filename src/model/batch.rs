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
/// with no records and nothing skipped is an announcement of the fetch
/// position (sent when a loop starts or after a reset).
#[derive(Debug)]
pub struct Batch {
    pub topic: TopicId,
    pub partition: Partition,
    pub from: Offset,
    pub to: Offset,
    pub records: Vec<RecordAndOffset>,
    /// Runs of offsets Kafka holds that could not be decoded (see
    /// `kafka::decode`), in order, within `from..to` and holding none of
    /// `records`. Every stream reading the partition is told with
    /// `event:gap`. Almost always empty (no allocation).
    pub skipped: Vec<Skip>,
    /// The partition's log start offset as Kafka answered it with this
    /// fetch, when it moved (records below it were deleted: retention,
    /// DeleteRecords); caches drop what they hold below it.
    pub log_start: Option<Offset>,
}

/// Offsets `from..to` of a partition the proxy could not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip {
    pub from: Offset,
    pub to: Offset,
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
            skipped: Vec::new(),
            log_start: None,
        }
    }

    /// Whether the batch only tells the fetch position (see [`Batch`]).
    pub fn is_announcement(&self) -> bool {
        self.records.is_empty() && self.skipped.is_empty()
    }

    /// Whether the batch's range holds `offset`.
    pub fn covers(&self, offset: Offset) -> bool {
        self.from <= offset && offset < self.to
    }
}
