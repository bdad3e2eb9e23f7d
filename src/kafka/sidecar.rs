//! The sidecar thread: one per shard, pinned to the shard's CPU, running a
//! current-thread tokio runtime with its own rskafka client and
//! [`Fetcher`]. It starts a metadata watch per topic (see `watch`), which
//! starts the fetch loops of the partitions the shard owns (see
//! `fetch_loop`), and answers the shard's [`Request`]s: catch-up fetches,
//! offset look-ups, whether a topic exists (see `lookups`), and topics to
//! start watching.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::error::Error as ClientError;
use rskafka::client::partition::{OffsetAt, PartitionClient};
use rskafka::client::{Client, ClientBuilder};
use rskafka::BackoffConfig;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::decode::Skipped;
use super::error::{FetchError, KafkaError};
use super::fetcher::{Fetcher, Lane};
use super::lookups::{Lookups, Reply, REQUEST_INTERVAL};
use super::messages::{Fetched, OffsetQuery, Request};
use super::running::{
    answered, clamp_i32, partition_client, Running, Sidecar, RETRY_INITIAL, RETRY_MAX,
};
use super::topics::TopicTable;
use crate::model::{Offset, Partition, TopicId};
use crate::sys::cpus;

/// The wait of a catch-up fetch. The records exist (the owner fetched
/// them), so Kafka answers at once whatever the wait; nisshi treats the wait
/// as a deadline for assembling the answer (measured: ~5 ms per fetch, so a
/// 1 ms or 5 ms wait returns nothing for existing records, 10 ms and more
/// always returns them). A generous wait costs nothing when data is there.
const CATCHUP_MAX_WAIT_MS: i32 = 500;

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
            lookups: Lookups::default(),
        });
        for i in 0..me.spec.topics.len() {
            me.start_watch(TopicId(i as u32));
        }
        let mut partitions = PartitionClients::default();
        while let Ok(req) = me.spec.requests.recv_async().await {
            match req {
                Request::Watch { topic } => me.start_watch(topic),
                Request::Exists { name, reply } => me.exists(name, reply),
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
                // Logged and counted by the live fetch loop, which met
                // every skipped batch first.
                let skipped = answer.skipped.iter().map(Skipped::range).collect();
                Ok(Fetched {
                    records: answer.records,
                    skipped,
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
}

impl Running {
    /// Answers `reply` with whether Kafka has a topic named `name` (see
    /// `lookups`).
    pub(super) fn exists(self: &Rc<Self>, name: String, reply: Reply) {
        if self.lookups.add(name, reply) {
            tokio::task::spawn_local(Rc::clone(self).look_up());
        }
    }

    /// Sends look-ups while names wait.
    async fn look_up(self: Rc<Self>) {
        loop {
            let batch = self.lookups.next_batch();
            if batch.is_empty() {
                return;
            }
            let next = Instant::now() + REQUEST_INTERVAL;
            self.spec.metrics.topic_metadata_requests.inc();
            let names: Vec<&str> = batch.iter().map(|(name, _)| name.as_str()).collect();
            let found = self.fetcher.topics_exist(&names).await;
            for (i, (name, replies)) in batch.into_iter().enumerate() {
                let answer = match &found {
                    Ok(found) => Ok(found[i]),
                    Err(e) => Err(KafkaError::Metadata {
                        topic: Arc::from(name.as_str()),
                        source: e.clone(),
                    }),
                };
                for reply in replies {
                    let _ = reply.send(answer.clone());
                }
            }
            tokio::time::sleep_until(next).await;
        }
    }
}

async fn lookup_offset(pc: &PartitionClient, at: OffsetQuery) -> Result<Offset, ClientError> {
    let offset = match at {
        OffsetQuery::Earliest => pc.get_offset(OffsetAt::Earliest).await?,
        OffsetQuery::Latest => pc.get_offset(OffsetAt::Latest).await?,
        OffsetQuery::Timestamp(ms) => {
            // Requests refuse such a time (400); past every record is the
            // end, not the start.
            let Some(when) = rskafka::chrono::DateTime::from_timestamp_millis(ms) else {
                return pc.get_offset(OffsetAt::Latest).await.map(Offset);
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
