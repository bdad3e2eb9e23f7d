//! Kafka fetch: one sidecar thread per shard, pinned to the shard's CPU,
//! running a current-thread tokio runtime with its own rskafka client.
//!
//! rskafka needs tokio; the shards run glommio. Rather than a compat layer on
//! the main path, each shard gets a sidecar that owns the Kafka side: it
//! discovers topic metadata, runs one long-poll fetch loop per partition the
//! shard owns (partition `p` belongs to shard `p % N`), and answers on-demand
//! requests (catch-up fetches and offset look-ups) from the shard's
//! connections. Everything crosses into glommio through bounded `flume`
//! channels, which work under any executor.
//!
//! Metadata and offsets go through rskafka's client; record fetches go
//! through [`crate::kafka::fetcher`], on rskafka's protocol layer, which keeps every
//! header of a record (rskafka's client keeps one value per header name).

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::oneshot;
use rskafka::client::error::{Error as RsError, ProtocolError};
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::messenger::RequestError;
use rskafka::BackoffConfig;
use tracing::{debug, info, warn};

use crate::config::KafkaConfig;
use crate::kafka::fetcher::{FetchError, Fetcher, Lane, ANSWER_GRACE};
use crate::model::record::RecordAndOffset;
use crate::ops::metrics::ShardMetrics;
use crate::server::executor::ShardId;

/// Index of a topic in the process-wide [`TopicTable`]. Cheap to copy
/// across threads; no strings on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TopicId(pub u32);

impl TopicId {
    /// A route's topic when its `topic` is a template: each request names
    /// its own. Never in the table (which holds at most
    /// `config::MAX_MAX_TOPICS`).
    pub const PER_REQUEST: TopicId = TopicId(u32::MAX);
}

/// A run of consecutive records of one partition, as fetched.
///
/// INVARIANT: `from <= to`; every record offset is in `from..to`; records
/// are sorted by offset. For one partition the batches of a fetch loop
/// chain exactly: the next batch's `from` is this batch's `to`, and the
/// offsets in between that hold no record hold none anyone sees
/// (transaction markers, aborted transactions, compacted records). A batch with no records is an announcement of
/// the fetch position (sent when a loop starts or after a reset).
#[derive(Debug)]
pub struct Batch {
    pub topic: TopicId,
    pub partition: u32,
    pub from: i64,
    pub to: i64,
    pub records: Vec<RecordAndOffset>,
}

/// What a sidecar tells its shard.
#[derive(Debug)]
pub enum ToShard {
    /// Metadata for a topic is known: it has this many partitions (sent
    /// again when partitions are added).
    Meta { topic: TopicId, partitions: u32 },
    /// The topic became unavailable (the broker does not answer, or the
    /// topic is gone), or available again.
    Health {
        topic: TopicId,
        available: bool,
        reason: String,
    },
    /// A batch fetched by an owned partition's fetch loop.
    Batch(Arc<Batch>),
}

/// Where to look up an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    pub high_watermark: i64,
    /// Past the last batch Kafka returned (see `fetch::Answer`): every
    /// offset from the one asked for up to here that is not in `records`
    /// holds no visible record.
    pub next_offset: i64,
}

/// The wait of a catch-up fetch. The records exist (the owner fetched
/// them), so Kafka answers at once whatever the wait; nisshi treats the wait
/// as a deadline for assembling the answer (measured: ~5 ms per fetch, so a
/// 1 ms or 5 ms wait returns nothing for existing records, 10 ms and more
/// always returns them). A generous wait costs nothing when data is there.
pub const CATCHUP_MAX_WAIT_MS: i32 = 500;

/// A request from a shard's connections to its sidecar.
#[derive(Debug)]
pub enum Request {
    /// Start watching a topic a request named (see [`TopicTable`]).
    Watch { topic: TopicId },
    /// Whether the topic exists (a metadata request, which never creates
    /// one).
    Exists {
        name: String,
        reply: oneshot::Sender<Result<bool, KafkaError>>,
    },
    Fetch {
        topic: TopicId,
        partition: u32,
        offset: i64,
        reply: oneshot::Sender<Result<Fetched, KafkaError>>,
    },
    Offset {
        topic: TopicId,
        partition: u32,
        at: OffsetQuery,
        reply: oneshot::Sender<Result<i64, KafkaError>>,
    },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum KafkaError {
    #[error("topic {topic} partition {partition}: offset {offset} is out of range")]
    OffsetOutOfRange {
        topic: String,
        partition: u32,
        offset: i64,
    },
    #[error("topic {topic} partition {partition}: {message}")]
    Broker {
        topic: String,
        partition: u32,
        message: String,
    },
    #[error("kafka client unavailable")]
    Unavailable,
}

/// Backoff of our own retry loops: quick first retry, capped so a broker that
/// comes back is noticed within a second.
const RETRY_INITIAL: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// How often a sidecar polls metadata for a routed topic that does not exist
/// yet (topics auto-create on first produce).
const METADATA_POLL: Duration = Duration::from_millis(500);

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

/// The process-wide table of topics, indexed by [`TopicId`]: the config's
/// fixed topics first, then every topic a request named through a route's
/// `topic` template, in order of first use. Read under a lock only when a
/// request or a new topic needs a name, never per record.
pub struct TopicTable {
    names: std::sync::RwLock<Vec<Arc<str>>>,
    /// `kafka.max_topics`: each topic costs every shard a metadata watch
    /// and a fetch loop per owned partition for the life of the process.
    max: usize,
    /// Every shard's sidecar: told to watch each topic added.
    sidecars: std::sync::OnceLock<Vec<flume::Sender<Request>>>,
}

/// The topic table is full (`kafka.max_topics`, given here).
#[derive(Debug, thiserror::Error)]
#[error("this instance serves {0} topics already (kafka.max_topics)")]
pub struct TooManyTopics(pub usize);

impl TopicTable {
    /// The config's topics, and room for `max` in all.
    pub fn new(fixed: Vec<String>, max: usize) -> Self {
        Self {
            names: std::sync::RwLock::new(fixed.into_iter().map(Arc::from).collect()),
            max,
            sidecars: std::sync::OnceLock::new(),
        }
    }

    /// Set once, when the sidecars' channels exist.
    pub fn set_sidecars(&self, sidecars: Vec<flume::Sender<Request>>) {
        let _ = self.sidecars.set(sidecars);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<str>>> {
        // A panic while holding the lock leaves the table as it was (every
        // change is one push): keep using it.
        self.names.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    pub fn name(&self, topic: TopicId) -> Arc<str> {
        Arc::clone(&self.read()[topic.0 as usize])
    }

    pub fn find(&self, name: &str) -> Option<TopicId> {
        self.read()
            .iter()
            .position(|n| &**n == name)
            .map(|i| TopicId(i as u32))
    }

    /// The topic's id, adding it (and telling every sidecar to watch it)
    /// if it is new.
    pub fn register(&self, name: &str) -> Result<TopicId, TooManyTopics> {
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = names.iter().position(|n| &**n == name) {
            return Ok(TopicId(i as u32));
        }
        if names.len() >= self.max {
            return Err(TooManyTopics(self.max));
        }
        names.push(Arc::from(name));
        let topic = TopicId(names.len() as u32 - 1);
        drop(names);
        for sidecar in self.sidecars.get().into_iter().flatten() {
            // Bounded, and a sidecar takes requests as they come: a full
            // queue means a stalled sidecar, whose shard then never sees
            // the topic ready and answers 503.
            let _ = sidecar.try_send(Request::Watch { topic });
        }
        Ok(topic)
    }
}

/// Where a partition's fetch loop is.
#[derive(Debug, Clone, Copy)]
struct FetchPosition {
    /// The end of the last batch sent to the shard, where the next one
    /// starts (a partition's batches chain, see [`Batch`]).
    next: i64,
    /// Where the next fetch asks from: `next`, or past the records nobody
    /// sees (transaction markers, aborted transactions) that followed it.
    fetch_at: i64,
}

impl FetchPosition {
    fn at(offset: i64) -> Self {
        Self {
            next: offset,
            fetch_at: offset,
        }
    }
}

/// Everything a sidecar thread needs.
pub struct Sidecar {
    pub shard: ShardId,
    pub shards: usize,
    pub cpu: usize,
    pub topics: Arc<TopicTable>,
    pub kafka: KafkaConfig,
    pub to_shard: flume::Sender<ToShard>,
    pub requests: flume::Receiver<Request>,
    pub metrics: Arc<ShardMetrics>,
    /// Per topic, what the metadata watch last saw.
    pub watches: std::cell::RefCell<Vec<Arc<TopicWatch>>>,
}

/// What a sidecar's metadata watch knows about a topic; read by the
/// topic's fetch loops. Only the sidecar's own thread touches it; the
/// fields are atomics (relaxed) only so the sidecar can be moved onto its
/// thread with its table of watches.
#[derive(Debug)]
pub struct TopicWatch {
    /// As last reported to the shard.
    available: AtomicBool,
    /// Metadata answers that listed the topic.
    found: AtomicU64,
    /// Metadata answers that did not.
    missing: AtomicU64,
}

impl Default for TopicWatch {
    fn default() -> Self {
        Self {
            available: AtomicBool::new(true),
            found: AtomicU64::new(0),
            missing: AtomicU64::new(0),
        }
    }
}

impl Sidecar {
    /// Starts the sidecar thread. It runs until the shard drops its end of
    /// the channels.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name(format!("kafka-{}", self.shard.0))
            .spawn(move || {
                if let Err(e) = crate::sys::cpus::pin_current_thread(self.cpu) {
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
        let client = Arc::new(client);
        let me = Rc::new(self);
        let fetcher = Rc::new(Fetcher::new(
            me.kafka.bootstrap.clone(),
            &me.kafka.client_id,
        ));
        for idx in 0..me.topics.len() {
            me.start_watch(&client, &fetcher, TopicId(idx as u32));
        }
        let mut partitions = PartitionClients::default();
        while let Ok(req) = me.requests.recv_async().await {
            match req {
                Request::Watch { topic } => me.start_watch(&client, &fetcher, topic),
                Request::Exists { name, reply } => {
                    let client = Arc::clone(&client);
                    tokio::task::spawn_local(async move {
                        let found = answered(client.list_topics())
                            .await
                            .map(|topics| {
                                topics
                                    .iter()
                                    .any(|t| t.name == name && !t.partitions.is_empty())
                            })
                            .map_err(|e| KafkaError::Broker {
                                topic: name.clone(),
                                partition: 0,
                                message: e.to_string(),
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
                    let max_bytes = clamp_i32(me.kafka.fetch_max_bytes);
                    let metrics = Arc::clone(&me.metrics);
                    let name = me.topics.name(topic);
                    let fetcher = Rc::clone(&fetcher);
                    tokio::task::spawn_local(async move {
                        metrics.catchup_fetches.inc();
                        let fetched = fetcher.fetch(
                            Lane::Catchup,
                            &name,
                            partition as i32,
                            offset,
                            max_bytes,
                            CATCHUP_MAX_WAIT_MS,
                        );
                        let result = match fetched.await {
                            Ok(answer) => {
                                metrics.records_fetched.add(answer.records.len() as u64);
                                Ok(Fetched {
                                    records: answer.records,
                                    high_watermark: answer.high_watermark,
                                    next_offset: answer.next_offset,
                                })
                            }
                            Err(FetchError::OffsetOutOfRange) => {
                                Err(KafkaError::OffsetOutOfRange {
                                    topic: name.to_string(),
                                    partition,
                                    offset,
                                })
                            }
                            Err(e) => Err(KafkaError::Broker {
                                topic: name.to_string(),
                                partition,
                                message: e.to_string(),
                            }),
                        };
                        let _ = reply.send(result);
                    });
                }
                Request::Offset {
                    topic,
                    partition,
                    at,
                    reply,
                } => {
                    let pc = partitions.get(&client, &me.topics, topic, partition);
                    let name = me.topics.name(topic);
                    tokio::task::spawn_local(async move {
                        let result = match pc.await {
                            Ok(pc) => answered(lookup_offset(&pc, at))
                                .await
                                .map_err(|e| map_error(&name, partition, -1, e)),
                            Err(e) => Err(e),
                        };
                        let _ = reply.send(result);
                    });
                }
            }
        }
        debug!(
            shard = me.shard.0,
            "sidecar stops: shard closed its request channel"
        );
    }

    /// Starts the metadata watch of a topic (once).
    fn start_watch(self: &Rc<Self>, client: &Arc<Client>, fetcher: &Rc<Fetcher>, topic: TopicId) {
        {
            let mut watches = self.watches.borrow_mut();
            let i = topic.0 as usize;
            if watches.len() > i {
                return;
            }
            watches.resize_with(i + 1, Default::default);
        }
        let name = self.topics.name(topic).to_string();
        let fetcher = Rc::clone(fetcher);
        tokio::task::spawn_local(Rc::clone(self).watch(Arc::clone(client), fetcher, topic, name));
    }

    /// What the metadata watch of `topic` saw.
    fn watch_of(&self, topic: TopicId) -> Arc<TopicWatch> {
        Arc::clone(&self.watches.borrow()[topic.0 as usize])
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
            let built = answered(build).await;
            match built {
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

    /// Watches a topic's metadata for the life of the shard: waits for the
    /// topic to exist, tells the shard its partition count and starts a
    /// fetch loop for each partition this shard owns; then refreshes every
    /// `kafka.metadata_refresh` to discover added partitions (whose loops
    /// start at their earliest offset, so nothing produced to them is
    /// missed) and to tell the shard when the topic becomes unavailable
    /// (the broker does not answer, or the topic is gone) and available
    /// again. `list_topics` never creates a topic, whatever the broker's
    /// auto-create setting.
    async fn watch(
        self: Rc<Self>,
        client: Arc<Client>,
        fetcher: Rc<Fetcher>,
        topic: TopicId,
        name: String,
    ) {
        let watch = self.watch_of(topic);
        let mut started = 0u32;
        loop {
            let found = answered(client.list_topics()).await.map(|topics| {
                topics
                    .iter()
                    .find(|t| t.name == name)
                    .map(|t| t.partitions.len() as u32)
                    .filter(|n| *n > 0)
            });
            let trouble = match found {
                Ok(Some(partitions)) => {
                    watch.found.fetch_add(1, Relaxed);
                    if partitions > started {
                        info!(shard = self.shard.0, topic = %name, partitions, "topic metadata loaded");
                        if self
                            .to_shard
                            .send_async(ToShard::Meta { topic, partitions })
                            .await
                            .is_err()
                        {
                            return;
                        }
                        // At start-up, streams begin at the end of the
                        // log; partitions added later are read whole.
                        let from = if started == 0 {
                            OffsetAt::Latest
                        } else {
                            OffsetAt::Earliest
                        };
                        for partition in (started..partitions)
                            .filter(|p| *p as usize % self.shards == self.shard.0)
                        {
                            tokio::task::spawn_local(Rc::clone(&self).fetch_loop(
                                Arc::clone(&client),
                                Rc::clone(&fetcher),
                                topic,
                                name.clone(),
                                partition,
                                from,
                            ));
                        }
                        started = partitions;
                    }
                    None
                }
                Ok(None) => {
                    watch.missing.fetch_add(1, Relaxed);
                    debug!(topic = %name, "topic not found");
                    Some("the topic does not exist".to_owned())
                }
                Err(e) => {
                    self.metrics.kafka_errors.inc();
                    warn!(topic = %name, error = %e, "metadata request failed");
                    Some(format!("kafka does not answer: {e}"))
                }
            };
            if started > 0 {
                let available = trouble.is_none();
                if watch.available.swap(available, Relaxed) != available {
                    let reason = trouble.unwrap_or_default();
                    if !available {
                        warn!(topic = %name, reason, "topic unavailable");
                    } else {
                        info!(topic = %name, "topic available again");
                    }
                    if self
                        .to_shard
                        .send_async(ToShard::Health {
                            topic,
                            available,
                            reason,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            if self.to_shard.is_disconnected() {
                return;
            }
            let every = if started == 0 {
                METADATA_POLL.min(self.kafka.metadata_refresh)
            } else {
                self.kafka.metadata_refresh
            };
            tokio::time::sleep(every).await;
        }
    }

    /// The live fetch loop of one owned partition: starts at `start`,
    /// long-polls, and sends every batch to the shard. Errors are logged,
    /// counted and retried with backoff; never a crash. Through a broker
    /// restart the loop keeps its position, so fetching resumes exactly
    /// where it stopped.
    async fn fetch_loop(
        self: Rc<Self>,
        client: Arc<Client>,
        fetcher: Rc<Fetcher>,
        topic: TopicId,
        name: String,
        partition: u32,
        start: OffsetAt,
    ) {
        let mut delay = RETRY_INITIAL;
        let pc = loop {
            let pc = client.partition_client(
                name.clone(),
                partition as i32,
                UnknownTopicHandling::Error,
            );
            match answered(pc).await {
                Ok(pc) => break pc,
                Err(e) => self.backoff(&name, partition, &e, &mut delay).await,
            }
            if self.to_shard.is_disconnected() {
                return;
            }
        };
        let mut pos = loop {
            match answered(pc.get_offset(start)).await {
                Ok(offset) => break FetchPosition::at(offset),
                Err(e) => self.backoff(&name, partition, &e, &mut delay).await,
            }
            if self.to_shard.is_disconnected() {
                return;
            }
        };
        if !self.announce(topic, partition, pos.next).await {
            return;
        }
        let max_bytes = clamp_i32(self.kafka.fetch_max_bytes);
        let max_wait = (self.kafka.fetch_max_wait.as_millis() as i32).max(1);
        let fetch_from = |offset| {
            fetcher.fetch(
                Lane::Live,
                &name,
                partition as i32,
                offset,
                max_bytes,
                max_wait,
            )
        };
        // The last record delivered (offset, timestamp): tells whether the
        // log is still the same one after the topic went missing.
        let mut last_seen: Option<(i64, i64)> = None;
        loop {
            match fetch_from(pos.fetch_at).await {
                Ok(answer) => {
                    delay = RETRY_INITIAL;
                    let records = answer.records;
                    if let Some(r) = records.last() {
                        last_seen = Some((r.offset, r.record.timestamp.timestamp_millis()));
                    }
                    let Some(last) = records.last() else {
                        // Only records nobody sees (transaction markers,
                        // aborted transactions): fetch past them, or Kafka
                        // answers the same again at once.
                        pos.fetch_at = pos.fetch_at.max(answer.next_offset);
                        if (0..pos.fetch_at).contains(&answer.high_watermark) {
                            // The log ends below our position: the topic
                            // was deleted and created again (brokers that
                            // answer past the end with nothing instead of
                            // OFFSET_OUT_OF_RANGE, like nisshi).
                            self.metrics.kafka_errors.inc();
                            let why = "the log ends below the fetch position";
                            let at = (topic, partition, name.as_str());
                            if !self
                                .restart_at_earliest(&pc, at, &mut pos, &mut delay, why)
                                .await
                            {
                                return;
                            }
                        }
                        continue;
                    };
                    // The batch chains on to the last one: it covers the
                    // invisible records skipped since, too.
                    let from = pos.next;
                    pos.next = last.offset + 1;
                    pos.fetch_at = pos.next.max(answer.next_offset);
                    self.metrics.records_fetched.add(records.len() as u64);
                    let batch = Batch {
                        topic,
                        partition,
                        from,
                        to: pos.next,
                        records,
                    };
                    if self
                        .to_shard
                        .send_async(ToShard::Batch(Arc::new(batch)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(FetchError::OffsetOutOfRange) => {
                    // Records were deleted under us (retention: the position
                    // is below the earliest offset), or the topic was
                    // recreated (the position is past its end): either way
                    // continue from the earliest record Kafka holds. Readers
                    // behind a forward jump see the discontinuity and catch
                    // up; a backward jump resets the partition (see hub).
                    self.metrics.kafka_errors.inc();
                    let why = "the fetch offset is out of range";
                    let at = (topic, partition, name.as_str());
                    if !self
                        .restart_at_earliest(&pc, at, &mut pos, &mut delay, why)
                        .await
                    {
                        return;
                    }
                }
                Err(FetchError::UnknownTopicOrPartition) => {
                    // The topic is gone. Asking again would make brokers
                    // that auto-create topics create it anew: wait until
                    // the metadata watch sees it again.
                    self.metrics.kafka_errors.inc();
                    let watch = self.watch_of(topic);
                    let seen = watch.found.load(Relaxed);
                    let missing = watch.missing.load(Relaxed);
                    warn!(topic = %name, partition, "topic or partition unknown to kafka; waiting for metadata");
                    while watch.found.load(Relaxed) == seen {
                        if self.to_shard.is_disconnected() {
                            return;
                        }
                        tokio::time::sleep(self.kafka.metadata_refresh).await;
                    }
                    let replaced = watch.missing.load(Relaxed) != missing || {
                        // The metadata may not have caught the topic
                        // missing: compare the last record delivered with
                        // what the log holds at its offset now.
                        match last_seen {
                            Some((offset, timestamp)) => {
                                match fetch_from(offset).await {
                                    Ok(answer) => !answer.records.iter().any(|r| {
                                        r.offset == offset
                                            && r.record.timestamp.timestamp_millis() == timestamp
                                    }),
                                    Err(FetchError::OffsetOutOfRange) => true,
                                    // Unknown: stay; a log that is shorter
                                    // than our position is still noticed.
                                    Err(_) => false,
                                }
                            }
                            None => false,
                        }
                    };
                    if !replaced {
                        // A spurious error (brokers report it briefly after
                        // creating a topic): go on where we were.
                        continue;
                    }
                    // It exists again: a new log, read from its start.
                    let why = "the topic is back with a new log";
                    let at = (topic, partition, name.as_str());
                    if !self
                        .restart_at_earliest(&pc, at, &mut pos, &mut delay, why)
                        .await
                    {
                        return;
                    }
                }
                Err(e) => self.backoff(&name, partition, &e, &mut delay).await,
            }
            if self.to_shard.is_disconnected() {
                return;
            }
        }
    }

    /// Moves a fetch loop to the earliest offset Kafka holds (its log was
    /// truncated or replaced) and announces the new position to the shard.
    /// A failed look-up backs off and leaves `pos` as it was (the loop
    /// meets the same condition again). Returns false when the shard is
    /// gone.
    async fn restart_at_earliest(
        &self,
        pc: &PartitionClient,
        (topic, partition, name): (TopicId, u32, &str),
        pos: &mut FetchPosition,
        delay: &mut Duration,
        why: &str,
    ) -> bool {
        match answered(pc.get_offset(OffsetAt::Earliest)).await {
            Ok(earliest) => {
                warn!(topic = %name, partition, from = pos.fetch_at, earliest, why, "reading the partition from its earliest offset");
                *pos = FetchPosition::at(earliest);
                self.announce(topic, partition, earliest).await
            }
            Err(e) => {
                self.backoff(name, partition, &e, delay).await;
                true
            }
        }
    }

    async fn announce(&self, topic: TopicId, partition: u32, at: i64) -> bool {
        let batch = Batch {
            topic,
            partition,
            from: at,
            to: at,
            records: Vec::new(),
        };
        self.to_shard
            .send_async(ToShard::Batch(Arc::new(batch)))
            .await
            .is_ok()
    }

    async fn backoff(
        &self,
        topic: &str,
        partition: u32,
        error: &dyn std::fmt::Display,
        delay: &mut Duration,
    ) {
        self.metrics.kafka_errors.inc();
        warn!(topic, partition, error = %error, retry_in = ?*delay, "kafka request failed");
        tokio::time::sleep(*delay).await;
        *delay = (*delay * 2).min(RETRY_MAX);
    }
}

/// rskafka's client sets no deadline on a request: a broker that goes
/// silent without closing the connection would hold a metadata or offset
/// request for ever, and the metadata watch would never report the topic
/// unavailable. Past [`ANSWER_GRACE`] the request is given up as timed out.
async fn answered<T>(
    request: impl std::future::Future<Output = Result<T, RsError>>,
) -> Result<T, RsError> {
    match tokio::time::timeout(ANSWER_GRACE, request).await {
        Ok(answer) => answer,
        Err(_) => Err(RsError::Request(RequestError::IO(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {ANSWER_GRACE:?}"),
        )))),
    }
}

async fn lookup_offset(pc: &PartitionClient, at: OffsetQuery) -> Result<i64, RsError> {
    match at {
        OffsetQuery::Earliest => pc.get_offset(OffsetAt::Earliest).await,
        OffsetQuery::Latest => pc.get_offset(OffsetAt::Latest).await,
        OffsetQuery::Timestamp(ms) => {
            let Some(when) = rskafka::chrono::DateTime::from_timestamp_millis(ms) else {
                return pc.get_offset(OffsetAt::Earliest).await;
            };
            match pc.get_offset(OffsetAt::Timestamp(when)).await? {
                // No record that recent: start at the end.
                -1 => pc.get_offset(OffsetAt::Latest).await,
                offset => Ok(offset),
            }
        }
    }
}

/// Partition clients for on-demand requests, created on first use and
/// shared by every later request for the same partition.
#[derive(Default)]
struct PartitionClients {
    clients: HashMap<(TopicId, u32), Arc<tokio::sync::OnceCell<Arc<PartitionClient>>>>,
}

impl PartitionClients {
    fn get(
        &mut self,
        client: &Arc<Client>,
        topics: &TopicTable,
        topic: TopicId,
        partition: u32,
    ) -> impl std::future::Future<Output = Result<Arc<PartitionClient>, KafkaError>> + 'static {
        let cell = Arc::clone(self.clients.entry((topic, partition)).or_default());
        let client = Arc::clone(client);
        let name = topics.name(topic).to_string();
        async move {
            cell.get_or_try_init(|| async {
                let pc = client.partition_client(
                    name.clone(),
                    partition as i32,
                    UnknownTopicHandling::Error,
                );
                answered(pc)
                    .await
                    .map(Arc::new)
                    .map_err(|e| map_error(&name, partition, -1, e))
            })
            .await
            .cloned()
        }
    }
}

fn map_error(topic: &str, partition: u32, offset: i64, error: RsError) -> KafkaError {
    match error {
        RsError::ServerError {
            protocol_error: ProtocolError::OffsetOutOfRange,
            ..
        } => KafkaError::OffsetOutOfRange {
            topic: topic.to_owned(),
            partition,
            offset,
        },
        other => KafkaError::Broker {
            topic: topic.to_owned(),
            partition,
            message: other.to_string(),
        },
    }
}

fn clamp_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topic_table_adds_each_name_once_tells_every_sidecar_and_stops_at_its_cap() {
        const MAX: usize = 1024;
        let table = TopicTable::new(vec!["fixed-a".into(), "fixed-b".into()], MAX);
        let (tx0, rx0) = flume::bounded(8);
        let (tx1, rx1) = flume::bounded(8);
        table.set_sidecars(vec![tx0, tx1]);
        assert_eq!(table.find("fixed-b"), Some(TopicId(1)));
        assert_eq!(table.register("fixed-a").unwrap(), TopicId(0));
        assert!(rx0.is_empty(), "a known topic is not watched again");

        let added = table.register("orders").unwrap();
        assert_eq!(added, TopicId(2));
        assert_eq!(&*table.name(added), "orders");
        for rx in [&rx0, &rx1] {
            assert!(matches!(rx.try_recv(), Ok(Request::Watch { topic }) if topic == added));
        }
        assert_eq!(table.register("orders").unwrap(), added);
        assert!(rx0.is_empty());

        // Fill the table without sidecars listening: a full queue drops
        // the watch, never blocks.
        for i in table.len()..MAX {
            table.register(&format!("t{i}")).unwrap();
        }
        assert_eq!(table.len(), MAX);
        let full = table.register("one-too-many").unwrap_err();
        assert_eq!(
            full.to_string(),
            "this instance serves 1024 topics already (kafka.max_topics)"
        );
        assert_eq!(table.find("one-too-many"), None);
        assert_eq!(
            table.register("orders").unwrap(),
            added,
            "known names still resolve"
        );
        assert_eq!(table.len(), MAX);
    }
}
