//! A running sidecar: its state, shared by its tasks on its one thread (the
//! rskafka client, the fetcher, what each topic's metadata watch saw), and
//! what every task of it does the same way: deadlines on rskafka's calls
//! and backoff after a failure.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::error::Error as ClientError;
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::Client;
use rskafka::messenger::RequestError;
use tracing::warn;

use super::fetcher::{Fetcher, ANSWER_GRACE};
use super::lookups::Lookups;
use super::messages::{Request, ToShard};
use super::topics::TopicTable;
use crate::config::KafkaConfig;
use crate::model::ShardId;
use crate::model::{Offset, Partition};
use crate::ops::metrics::ShardMetrics;

/// Everything a sidecar thread needs.
#[derive(Debug)]
pub struct Sidecar {
    pub shard: ShardId,
    pub shards: usize,
    pub cpu: usize,
    pub topics: Arc<TopicTable>,
    pub kafka: KafkaConfig,
    pub to_shard: flume::Sender<ToShard>,
    pub requests: flume::Receiver<Request>,
    pub metrics: Arc<ShardMetrics>,
}

/// Backoff of our own retry loops: quick first retry, capped so a broker that
/// comes back is noticed within a second.
pub(super) const RETRY_INITIAL: Duration = Duration::from_millis(50);
pub(super) const RETRY_MAX: Duration = Duration::from_secs(1);

/// A running sidecar's state, shared by its tasks on its one thread.
pub(super) struct Running {
    pub(super) spec: Sidecar,
    pub(super) client: Arc<Client>,
    pub(super) fetcher: Fetcher,
    /// Per topic, what the metadata watch last saw.
    pub(super) watches: RefCell<Vec<Rc<TopicWatch>>>,
    /// Topic names requests asked about (see `lookups`).
    pub(super) lookups: Lookups,
}

/// What a sidecar's metadata watch knows about a topic; read by the topic's
/// fetch loops, on the sidecar's one thread.
#[derive(Debug)]
pub(super) struct TopicWatch {
    /// As last reported to the shard.
    pub(super) available: Cell<bool>,
    /// Metadata answers that listed the topic.
    pub(super) found: Cell<u64>,
    /// Metadata answers that did not.
    pub(super) missing: Cell<u64>,
}

impl Default for TopicWatch {
    fn default() -> Self {
        Self {
            available: Cell::new(true),
            found: Cell::new(0),
            missing: Cell::new(0),
        }
    }
}

impl Running {
    /// Counts and logs a failed Kafka request, then waits `delay` (doubled
    /// for the next failure, up to [`RETRY_MAX`]).
    pub(super) async fn backoff(
        &self,
        topic: &str,
        partition: Partition,
        error: &dyn std::fmt::Display,
        delay: &mut Duration,
    ) {
        self.spec.metrics.kafka_errors.inc();
        warn!(topic, partition = partition.0, error = %error, retry_in = ?*delay, "kafka request failed");
        tokio::time::sleep(*delay).await;
        *delay = (*delay * 2).min(RETRY_MAX);
    }

    /// Whether the shard is gone (then every task of the sidecar ends).
    pub(super) fn shard_gone(&self) -> bool {
        self.spec.to_shard.is_disconnected()
    }
}

/// rskafka's client sets no deadline on a request: a broker that goes
/// silent without closing the connection would hold a metadata or offset
/// request for ever, and the metadata watch would never report the topic
/// unavailable. Past [`ANSWER_GRACE`] the request is given up as timed out.
pub(super) async fn answered<T>(
    request: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(ANSWER_GRACE, request).await {
        Ok(answer) => answer,
        Err(_) => Err(ClientError::Request(RequestError::IO(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {ANSWER_GRACE:?}"),
        )))),
    }
}

/// A partition client for `partition` of `name`, under [`answered`]'s
/// deadline.
pub(super) async fn partition_client(
    client: &Client,
    name: &str,
    partition: Partition,
) -> Result<PartitionClient, ClientError> {
    answered(client.partition_client(
        name.to_owned(),
        partition.to_kafka(),
        UnknownTopicHandling::Error,
    ))
    .await
}

/// The offset `at` of a partition, from rskafka's client.
pub(super) async fn offset_at(pc: &PartitionClient, at: OffsetAt) -> Result<Offset, ClientError> {
    answered(pc.get_offset(at)).await.map(Offset)
}

/// A byte count as Kafka's `int32` field: saturated, never wrapped.
pub(super) fn clamp_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
