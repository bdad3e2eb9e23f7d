//! Ids and units: which shard, which topic, which partition, which offset.
//! Plain numbers in the wire formats and in Kafka's API, newtypes here, so a
//! partition is never mistaken for an offset or a count.

use std::fmt;

/// Index of a shard, `0..N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShardId(pub usize);

/// Index of a topic in the process-wide topic table. Cheap to copy across
/// threads; no strings on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicId(pub u32);

impl TopicId {
    /// A route's topic when its `topic` is a template: each request names
    /// its own. Never in the table (which holds at most
    /// `config::MAX_MAX_TOPICS`).
    pub const PER_REQUEST: TopicId = TopicId(u32::MAX);

    /// The topic's index in per-topic tables.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A partition of a topic. Kafka numbers partitions `0..count` with an
/// `int32`; metadata never names a negative one, so `u32` holds every
/// partition and converts back without loss (see [`Partition::to_kafka`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition(pub u32);

impl Partition {
    /// The partition's index in per-partition tables.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The partition numbered `i` (an index into a table of a topic's
    /// partitions, which Kafka counts with an `int32`).
    pub fn at(i: usize) -> Partition {
        Partition(u32::try_from(i).expect("a topic has fewer than 2^32 partitions"))
    }

    /// Partitions `0..count`.
    pub fn all(count: usize) -> impl Iterator<Item = Partition> {
        (0..count).map(Partition::at)
    }

    /// The number Kafka's API uses. Partitions come from Kafka's metadata
    /// (non-negative `int32`s), so this never saturates in practice; a
    /// number past `i32::MAX` would only name a partition Kafka lacks.
    pub fn to_kafka(self) -> i32 {
        i32::try_from(self.0).unwrap_or(i32::MAX)
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An offset in a partition's log. In a position it is the *next* offset to
/// read, which Kafka never makes negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Offset(pub i64);

impl Offset {
    pub const ZERO: Offset = Offset(0);

    /// The offset after this one (where a reader that has read this offset
    /// goes on). Saturates: `i64::MAX` is past any log.
    pub fn next(self) -> Offset {
        Offset(self.0.saturating_add(1))
    }

    /// Offsets from `self` up to `later`: 0 when `later` is not after it.
    pub fn until(self, later: Offset) -> u64 {
        later.0.saturating_sub(self.0).max(0) as u64
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_the_distance_and_never_wrap() {
        assert_eq!(Offset(5).until(Offset(9)), 4);
        assert_eq!(Offset(9).until(Offset(5)), 0);
        assert_eq!(Offset(i64::MIN).until(Offset(i64::MAX)), i64::MAX as u64);
        assert_eq!(Offset(7).next(), Offset(8));
        assert_eq!(Offset(i64::MAX).next(), Offset(i64::MAX));
    }

    #[test]
    fn partitions_convert_to_kafka_numbers() {
        assert_eq!(Partition(3).to_kafka(), 3);
        assert_eq!(Partition(u32::MAX).to_kafka(), i32::MAX);
        assert_eq!(
            Partition::all(3).collect::<Vec<_>>(),
            [Partition(0), Partition(1), Partition(2)]
        );
    }
}
