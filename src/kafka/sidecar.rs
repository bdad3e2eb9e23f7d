//! The sidecar thread: one per shard, pinned to the shard's CPU, running a
//! current-thread tokio runtime with its own rskafka client and
//! [`Fetcher`]. It starts a metadata watch per topic (see `watch`), which
//! starts the fetch loops of the partitions the shard owns (see
//! `fetch_loop`), and answers the shard's [`Request`]s: catch-up fetches,
//! offset look-ups, whether a topic exists, and topics to start watching.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::error::Error as ClientError;
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::messenger::RequestError;
use rskafka::BackoffConfig;
use tracing::{debug, warn};

use super::error::{FetchError, KafkaError};
use super::fetcher::{Fetcher, Lane, ANSWER_GRACE};
use super::messages::{Fetched, OffsetQuery, Request, ToShard};
use super::topics::TopicTable;
use super::watch::TopicWatch;
use crate::config::KafkaConfig;
use crate::model::{Offset, Partition, ShardId, TopicId};
use crate::ops::metrics::ShardMetrics;
use crate::sys::cpus;

/// The wait of a catch-up fetch. The records exist (the owner fetched
/// them), so Kafka answers at once whatever the wait; nisshi treats the wait
/// as a deadline for assembling the answer (measured: ~5 ms per fetch, so a
/// 1 ms or 5 ms wait returns nothing for existing records, 10 ms and more
/// always returns them). A generous wait costs nothing when data is there.
pub const CATCHUP_MAX_WAIT_MS: i32 = 500;

/// Backoff of our own retry loops: quick first retry, capped so a broker that
/// comes back is noticed within a second.
pub(super) const RETRY_INITIAL: Duration = Duration::from_millis(50);
pub(super) const RETRY_MAX: Duration = Duration::from_secs(1);

/// rskafka retries internally; bound each of its operations so errors reach
/// our loops, where they are logged and counted, instead of a 500 s backoff.
fn rskafka_backoff() -> BackoffConfig {
    BackoffConfig {
        init_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        base: 2.0,
        deadline: Some(Duration::from_secs(3)),
    }
}

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

/// A running sidecar's state, shared by its tasks on its one thread.
pub(super) struct Running {
    pub(super) spec: Sidecar,
    pub(super) client: Arc<Client>,
    pub(super) fetcher: Fetcher,
    /// Per topic, what the metadata watch last saw.
    pub(super) watches: RefCell<Vec<Rc<TopicWatch>>>,
}

impl Sidecar {
    /// Starts the sidecar thread. It runs until the shard drops its end of
    /// the channels.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name(format!("kafka-{}", self.shard.0))
            .spawn(move || {
                if let Err(e) = cpus::pin_current_thread(self.cpu) {
                    warn!(cpu = self.cpu, error = %e, "could not pin kafka sidecar");
                }
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        warn!(error = %e, "could not start the sidecar runtime");
                        return;
                    }
                };
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, self.run());
            })
    }

    async fn run(self) {
        let Some(client) = self.connect().await else {
            return;
        };
        let fetcher = Fetcher::new(self.kafka.bootstrap.clone(), &self.kafka.client_id);
        let me = Rc::new(Running {
            spec: self,
            client: Arc::new(client),
            fetcher,
            watches: RefCell::default(),
        });
        for i in 0..me.spec.topics.len() {
            me.start_watch(TopicId(i as u32));
        }
        let mut partitions = PartitionClients::default();
        while let Ok(req) = me.spec.requests.recv_async().await {
            match req {
                Request::Watch { topic } => me.start_watch(topic),
                Request::Exists { name, reply } => {
                    let client = Arc::clone(&me.client);
                    tokio::task::spawn_local(async move {
                        let found = answered(client.list_topics())
                            .await
                            .map(|topics| {
                                topics
                                    .iter()
                                    .any(|t| t.name == name && !t.partitions.is_empty())
                            })
                            .map_err(|e| KafkaError::Metadata {
                                topic: Arc::from(name.as_str()),
                                source: Arc::new(e),
                            });
                        let _ = reply.send(found);
                    });
                }
                Request::Fetch {
                    topic,
                    partition,
                    offset,
                    reply,
                } => {
                    let me = Rc::clone(&me);
                    tokio::task::spawn_local(async move {
                        let _ = reply.send(me.catchup_fetch(topic, partition, offset).await);
                    });
                }
                Request::Offset {
                    topic,
                    partition,
                    at,
                    reply,
                } => {
                    let pc = partitions.get(&me.client, &me.spec.topics, topic, partition);
                    let name = me.spec.topics.name(topic);
                    tokio::task::spawn_local(async move {
                        let result = match pc.await {
                            Ok(pc) => answered(lookup_offset(&pc, at))
                                .await
                                .map_err(|e| client_error(&name, partition, e)),
                            Err(e) => Err(e),
                        };
                        let _ = reply.send(result);
                    });
                }
            }
        }
        debug!(
            shard = me.spec.shard.0,
            "sidecar stops: shard closed its request channel"
        );
    }

    /// Builds the rskafka client, retrying until the broker answers or the
    /// shard goes away.
    async fn connect(&self) -> Option<Client> {
        let mut delay = RETRY_INITIAL;
        loop {
            let build = ClientBuilder::new(self.kafka.bootstrap.clone())
                .client_id(self.kafka.client_id.clone())
                .backoff_config(rskafka_backoff())
                .build();
            match answered(build).await {
                Ok(client) => return Some(client),
                Err(e) => {
                    self.metrics.kafka_errors.inc();
                    warn!(shard = self.shard.0, error = %e, "cannot reach kafka; retrying");
                }
            }
            if self.to_shard.is_disconnected() {
                return None;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_MAX);
        }
    }
}

impl Running {
    /// A fetch for catch-up readers, on its own connection to the leader
    /// (see [`Lane`]).
    async fn catchup_fetch(
        &self,
        topic: TopicId,
        partition: Partition,
        offset: Offset,
    ) -> Result<Fetched, KafkaError> {
        let metrics = &self.spec.metrics;
        let name = self.spec.topics.name(topic);
        metrics.catchup_fetches.inc();
        let fetched = self.fetcher.fetch(
            Lane::Catchup,
            &name,
            partition,
            offset,
            clamp_i32(self.spec.kafka.fetch_max_bytes),
            CATCHUP_MAX_WAIT_MS,
        );
        match fetched.await {
            Ok(answer) => {
                metrics.records_fetched.add(answer.records.len() as u64);
                Ok(Fetched {
                    records: answer.records,
                    high_watermark: answer.high_watermark,
                    next_offset: answer.next_offset,
                })
            }
            Err(FetchError::OffsetOutOfRange) => Err(KafkaError::OffsetOutOfRange {
                topic: name,
                partition,
                offset,
            }),
            Err(source) => Err(KafkaError::Fetch {
                topic: name,
                partition,
                source,
            }),
        }
    }

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

async fn lookup_offset(pc: &PartitionClient, at: OffsetQuery) -> Result<Offset, ClientError> {
    let offset = match at {
        OffsetQuery::Earliest => pc.get_offset(OffsetAt::Earliest).await?,
        OffsetQuery::Latest => pc.get_offset(OffsetAt::Latest).await?,
        OffsetQuery::Timestamp(ms) => {
            let Some(when) = rskafka::chrono::DateTime::from_timestamp_millis(ms) else {
                return pc.get_offset(OffsetAt::Earliest).await.map(Offset);
            };
            match pc.get_offset(OffsetAt::Timestamp(when)).await? {
                // No record that recent: start at the end.
                -1 => pc.get_offset(OffsetAt::Latest).await?,
                offset => offset,
            }
        }
    };
    Ok(Offset(offset))
}

/// A partition client, as a future that owns what it needs.
type PartitionClientFuture =
    std::pin::Pin<Box<dyn Future<Output = Result<Arc<PartitionClient>, KafkaError>> + 'static>>;

/// Partition clients for on-demand requests, created on first use and
/// shared by every later request for the same partition.
#[derive(Default)]
struct PartitionClients {
    clients: HashMap<(TopicId, Partition), Rc<tokio::sync::OnceCell<Arc<PartitionClient>>>>,
}

impl PartitionClients {
    fn get(
        &mut self,
        client: &Arc<Client>,
        topics: &TopicTable,
        topic: TopicId,
        partition: Partition,
    ) -> PartitionClientFuture {
        let cell = Rc::clone(self.clients.entry((topic, partition)).or_default());
        let client = Arc::clone(client);
        let name = topics.name(topic);
        Box::pin(async move {
            cell.get_or_try_init(|| async {
                partition_client(&client, &name, partition)
                    .await
                    .map(Arc::new)
                    .map_err(|e| client_error(&name, partition, e))
            })
            .await
            .cloned()
        })
    }
}

fn client_error(topic: &Arc<str>, partition: Partition, error: ClientError) -> KafkaError {
    KafkaError::Client {
        topic: Arc::clone(topic),
        partition,
        source: Arc::new(error),
    }
}

/// A byte count as Kafka's `int32` field: saturated, never wrapped.
pub(super) fn clamp_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
