//! What crosses between a shard and its Kafka sidecar, both ways, over
//! bounded `flume` channels (which work under glommio and tokio alike):
//! [`ToShard`] from the sidecar (metadata, health, fetched batches), and
//! [`Request`]s from the shard's streams, which a [`SidecarLink`] sends and
//! awaits the answer of.

use std::sync::Arc;

use futures::channel::oneshot;

use super::error::KafkaError;
use crate::model::{Batch, Offset, Partition, RecordAndOffset, Skip, TopicId};

/// Whether Kafka serves a topic, as the sidecar's metadata watch last saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Available,
    /// The broker does not answer, or the topic is gone: why.
    Unavailable(String),
}

/// What a sidecar tells its shard.
#[derive(Debug)]
pub enum ToShard {
    /// Metadata for a topic is known: it has this many partitions (sent
    /// again when partitions are added).
    Meta { topic: TopicId, partitions: u32 },
    /// The topic became unavailable, or available again.
    Health {
        topic: TopicId,
        availability: Availability,
    },
    /// A batch fetched by an owned partition's fetch loop.
    Batch(Arc<Batch>),
}

/// Where to look up an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OffsetQuery {
    Earliest,
    Latest,
    /// The first offset whose record timestamp is at or after this many
    /// milliseconds since the epoch (Kafka ListOffsets by timestamp); the
    /// latest offset when no record is that recent.
    Timestamp(i64),
}

/// Records fetched on demand for a catch-up reader.
#[derive(Debug)]
pub struct Fetched {
    pub records: Vec<RecordAndOffset>,
    /// Batches that could not be decoded (see `Batch::skipped`).
    pub skipped: Vec<Skip>,
    pub high_watermark: Offset,
    /// Past the last batch Kafka returned (see `fetcher::Answer`): every
    /// offset from the one asked for up to here that is not in `records`
    /// holds no visible record.
    pub next_offset: Offset,
}

/// A request from a shard's streams to its sidecar.
#[derive(Debug)]
pub enum Request {
    /// Start watching a topic a request named (see `TopicTable`).
    Watch { topic: TopicId },
    /// Whether the topic exists (a metadata request, which never creates
    /// one).
    Exists {
        name: String,
        reply: oneshot::Sender<Result<bool, KafkaError>>,
    },
    Fetch {
        topic: TopicId,
        partition: Partition,
        offset: Offset,
        reply: oneshot::Sender<Result<Fetched, KafkaError>>,
    },
    Offset {
        topic: TopicId,
        partition: Partition,
        at: OffsetQuery,
        reply: oneshot::Sender<Result<Offset, KafkaError>>,
    },
}

/// A shard's end of its sidecar's request channel: sends a request and
/// waits for the answer. A sidecar that is gone answers
/// [`KafkaError::Unavailable`].
#[derive(Debug, Clone)]
pub struct SidecarLink {
    requests: flume::Sender<Request>,
}

impl SidecarLink {
    pub fn new(requests: flume::Sender<Request>) -> Self {
        Self { requests }
    }

    /// Whether Kafka has a topic of this name.
    pub async fn exists(&self, name: &str) -> Result<bool, KafkaError> {
        self.ask(|reply| Request::Exists {
            name: name.to_owned(),
            reply,
        })
        .await
    }

    /// Records of a partition from `offset` on, fetched for catch-up
    /// readers.
    pub async fn fetch(
        &self,
        topic: TopicId,
        partition: Partition,
        offset: Offset,
    ) -> Result<Fetched, KafkaError> {
        self.ask(|reply| Request::Fetch {
            topic,
            partition,
            offset,
            reply,
        })
        .await
    }

    /// An offset of a partition, looked up in Kafka.
    pub async fn offset(
        &self,
        topic: TopicId,
        partition: Partition,
        at: OffsetQuery,
    ) -> Result<Offset, KafkaError> {
        self.ask(|reply| Request::Offset {
            topic,
            partition,
            at,
            reply,
        })
        .await
    }

    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, KafkaError>>) -> Request,
    ) -> Result<T, KafkaError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send_async(request(reply))
            .await
            .map_err(|_| KafkaError::Unavailable)?;
        answer.await.map_err(|_| KafkaError::Unavailable)?
    }
}
