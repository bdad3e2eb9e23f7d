//! The Kafka layer's errors, typed and with their context: which broker,
//! topic, partition and offset, as rskafka's own errors are. Two levels:
//! [`FetchError`] is what one of the sidecar's fetches met (the fetcher's
//! own connections), [`KafkaError`] what the sidecar answers a shard's
//! request with. Both are `Clone` (sources behind an `Arc`): one Kafka
//! fetch is shared by every catch-up reader waiting for it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::error::Error as ClientError;
use rskafka::messenger::{RequestError, SyncVersionsError};
use rskafka::protocol::error::Error as ApiError;

use crate::model::{Offset, Partition};

/// What a fetch was doing with a broker when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Connecting and agreeing on API versions.
    Connect,
    /// A metadata request (to find a partition's leader).
    Metadata,
    /// The fetch request itself.
    Fetch,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Connect => "connect to",
            Step::Metadata => "metadata from",
            Step::Fetch => "fetch from",
        })
    }
}

/// Why one of the sidecar's fetches failed. The first two are answers the
/// fetch loop acts on; the others were retried for `fetcher::RETRY_FOR`
/// and are the last failure seen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("the fetch offset is out of range")]
    OffsetOutOfRange,
    #[error("the topic or partition is unknown to kafka")]
    UnknownTopicOrPartition,
    #[error("connect to {broker}: {source}")]
    Connect {
        broker: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("api versions of {broker}: {source}")]
    Handshake {
        broker: String,
        #[source]
        source: Arc<SyncVersionsError>,
    },
    #[error("{step} {broker}: {source}")]
    Request {
        step: Step,
        broker: String,
        #[source]
        source: Arc<RequestError>,
    },
    #[error("{step} {broker}: no answer within {waited:?}")]
    NoAnswer {
        step: Step,
        broker: String,
        waited: Duration,
    },
    #[error("{broker} did not answer for {topic}/{partition}")]
    PartitionMissing {
        broker: String,
        topic: String,
        partition: Partition,
    },
    /// An error code for the partition: not the leader any more, no leader
    /// yet, a fenced epoch...
    #[error("{topic}/{partition}: {code}")]
    Partition {
        topic: String,
        partition: Partition,
        code: ApiError,
    },
    #[error("metadata of {topic}: {code}")]
    Topic { topic: String, code: ApiError },
    #[error("{topic}/{partition}: leader {node} is not among the brokers")]
    UnknownLeader {
        topic: String,
        partition: Partition,
        node: i32,
    },
    #[error("{topic}/{partition} has no leader")]
    NoLeader { topic: String, partition: Partition },
    #[error("no broker to ask")]
    NoBroker,
    #[error("{topic}/{partition}: {source}")]
    Decode {
        topic: String,
        partition: Partition,
        #[source]
        source: DecodeError,
    },
}

/// A fetched batch the proxy cannot read. Broker input is never trusted to
/// be well formed or in range; every case but `Offset` skips just the
/// batch (see `decode`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record {offset}: timestamp {first} + {delta} is out of range")]
    Timestamp { offset: i64, first: i64, delta: i64 },
    #[error("batch at offset {base}: offset delta {delta} is out of range")]
    Offset { base: i64, delta: i32 },
    #[error("message format {magic} is not a record batch (magic 2)")]
    Magic { magic: i8 },
    #[error("batch length {length} is impossible")]
    Length { length: i32 },
    #[error("checksum {actual:#010x} does not match the batch's {expected:#010x}")]
    Checksum { expected: u32, actual: u32 },
    #[error("unknown compression codec {codec}")]
    Codec { codec: i16 },
    #[error("{codec}: {reason}")]
    Decompress { codec: &'static str, reason: String },
    #[error("malformed record: {what}")]
    Record { what: &'static str },
}

/// Why the sidecar could not answer a shard's request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KafkaError {
    #[error("topic {topic} partition {partition}: offset {offset} is out of range")]
    OffsetOutOfRange {
        topic: Arc<str>,
        partition: Partition,
        offset: Offset,
    },
    /// A catch-up fetch failed.
    #[error("topic {topic} partition {partition}: {source}")]
    Fetch {
        topic: Arc<str>,
        partition: Partition,
        #[source]
        source: FetchError,
    },
    /// rskafka's client (metadata, offsets) failed for a partition.
    #[error("topic {topic} partition {partition}: {source}")]
    Client {
        topic: Arc<str>,
        partition: Partition,
        #[source]
        source: Arc<ClientError>,
    },
    /// The metadata request asking whether the topic exists failed.
    #[error("topic {topic}: {source}")]
    Metadata {
        topic: Arc<str>,
        #[source]
        source: FetchError,
    },
    /// Too many topic names are waiting to be looked up.
    #[error("too many topic look-ups waiting")]
    LookupsFull,
    /// The sidecar is gone (the shard is shutting down).
    #[error("kafka client unavailable")]
    Unavailable,
}
