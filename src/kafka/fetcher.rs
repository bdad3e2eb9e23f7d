//! Kafka fetch requests that keep every record header.
//!
//! rskafka's `PartitionClient::fetch_records` turns each record's headers
//! into a map, so a header name that repeats within a record keeps only its
//! last value, and a filter on that header could not match the others; and
//! its answer decoding fails the whole fetch on one record it cannot read
//! (a null header value, legal Kafka), for ever. The sidecar's fetches
//! therefore go through rskafka's own protocol layer (its `messenger` and
//! `protocol` modules, public with its `unstable-fuzzing` feature; the
//! version is pinned in `Cargo.toml` for that reason) with a Fetch of their
//! own ([`super::protocol`]) that keeps the batches as bytes, and decode
//! the records themselves ([`records_from`]), keeping the headers as Kafka
//! sent them and skipping exactly a batch they cannot read. Metadata and
//! offset look-ups stay on rskafka's client.
//!
//! A [`Fetcher`] belongs to one sidecar (one thread, `!Send`). It finds each
//! partition's leader with a metadata request, keeps connections per
//! broker for the live fetch loops' long polls (partitions spread over up
//! to [`LIVE_SLOTS`]) and another for catch-up fetches (a broker answers
//! one connection's requests in order, so neither a catch-up fetch nor
//! another partition's long poll waits behind a long poll), and retries what a
//! leader change or a dropped connection breaks for up to [`RETRY_FOR`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rskafka::messenger::Messenger;
use rskafka::protocol::error::Error as ApiError;
use rskafka::protocol::messages::{
    IsolationLevel, MetadataRequest, MetadataRequestTopic, MetadataResponse,
};
use rskafka::protocol::primitives::{Boolean, String_};
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::decode::{records_from, Skipped};
use super::error::{FetchError, Step};
use super::protocol::Fetch;
use crate::model::{Offset, Partition, RecordAndOffset};

/// How long one fetch keeps retrying a leader change or a lost connection
/// before it reports the error (rskafka's client did the same for us).
pub const RETRY_FOR: Duration = Duration::from_secs(3);
const RETRY_INITIAL: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_millis(500);

/// The largest response frame read from a broker: the bound on every
/// length a broker sends (rskafka's client default).
pub const MAX_MESSAGE_BYTES: usize = 100 * 1024 * 1024;

/// How long a broker may take to accept a connection and agree on API
/// versions, and to answer a request beyond the wait the request allows
/// (a long poll's `max_wait`). A broker that goes silent without closing
/// the connection would otherwise hold a fetch for ever; past this the
/// connection is dropped and a new one made.
pub const ANSWER_GRACE: Duration = Duration::from_secs(10);

/// The longest a broker's throttle hint is obeyed for.
const MAX_THROTTLE: Duration = Duration::from_secs(1);

/// Which connection to a broker a fetch uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// The fetch loops' long polls, one connection per slot: a broker
    /// answers a connection's requests in order, so one partition's long
    /// poll held for all of `max_wait` would hold back another partition's
    /// records behind it (see [`Lane::live`]).
    Live(u16),
    /// Catch-up fetches, answered at once.
    Catchup,
}

/// Long-poll connections per broker and shard at most.
pub const LIVE_SLOTS: u16 = 16;

impl Lane {
    /// The lane of a partition's long polls: partitions spread over
    /// [`LIVE_SLOTS`] connections per broker.
    pub fn live(partition: Partition) -> Self {
        Lane::Live(u16::try_from(partition.0 % u32::from(LIVE_SLOTS)).unwrap_or(0))
    }
}

/// One attempt's failure: worth another attempt, or final.
enum Failed {
    Retry(FetchError),
    Final(FetchError),
}

type Connection = Messenger<BufStream<TcpStream>>;
type ConnectionCell = Rc<tokio::sync::OnceCell<Arc<Connection>>>;

/// The sidecar's fetches (see the module doc).
pub struct Fetcher {
    bootstrap: Vec<String>,
    client_id: Arc<str>,
    /// Broker addresses by node id, from the latest metadata answer.
    brokers: RefCell<HashMap<i32, String>>,
    /// The leader's node id of each partition fetched.
    leaders: RefCell<HashMap<(String, Partition), i32>>,
    connections: RefCell<HashMap<(String, Lane), ConnectionCell>>,
}

impl Fetcher {
    pub fn new(bootstrap: Vec<String>, client_id: &str) -> Self {
        Self {
            bootstrap,
            client_id: Arc::from(client_id),
            brokers: RefCell::default(),
            leaders: RefCell::default(),
            connections: RefCell::default(),
        }
    }

    /// Records of `topic`/`partition` from `offset` on (see
    /// [`records_from`]), the partition's high watermark, and where to
    /// fetch next. `max_bytes`
    /// bounds the answer as Kafka's `partition_max_bytes` does (a first
    /// batch larger than it still comes whole).
    pub async fn fetch(
        &self,
        lane: Lane,
        topic: &str,
        partition: Partition,
        offset: Offset,
        max_bytes: i32,
        max_wait_ms: i32,
    ) -> Result<Answer, FetchError> {
        let request = Fetch {
            topic: topic.to_owned(),
            partition: partition.to_kafka(),
            offset: offset.0,
            max_wait_ms,
            max_bytes,
            isolation: IsolationLevel::ReadCommitted,
        };
        let deadline = Instant::now() + RETRY_FOR;
        let mut delay = RETRY_INITIAL;
        loop {
            match self
                .fetch_once(lane, (topic, partition, offset), &request)
                .await
            {
                Ok(done) => return Ok(done),
                Err(Failed::Final(e)) => return Err(e),
                Err(Failed::Retry(why)) => {
                    if Instant::now() + delay > deadline {
                        return Err(why);
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// One attempt at `request`, which asks for `offset` of `topic`/`partition`.
    async fn fetch_once(
        &self,
        lane: Lane,
        (topic, partition, offset): (&str, Partition, Offset),
        request: &Fetch,
    ) -> Result<Answer, Failed> {
        let addr = self.leader(topic, partition).await?;
        let connection = match self.connection(&addr, lane).await {
            Ok(connection) => connection,
            Err(e) => {
                // The leader may have moved off a broker that went away.
                self.forget_leader(topic, partition);
                return Err(e);
            }
        };
        let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64);
        let answer = tokio::time::timeout(wait + ANSWER_GRACE, connection.request(request));
        let response = match answer.await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                self.drop_connection(&addr, lane, &connection);
                self.forget_leader(topic, partition);
                return Err(Failed::Retry(FetchError::Request {
                    step: Step::Fetch,
                    broker: addr,
                    source: Arc::new(e),
                }));
            }
            Err(_) => {
                self.drop_connection(&addr, lane, &connection);
                self.forget_leader(topic, partition);
                return Err(Failed::Retry(FetchError::NoAnswer {
                    step: Step::Fetch,
                    broker: addr,
                    waited: wait + ANSWER_GRACE,
                }));
            }
        };
        if response.throttle_time_ms > 0 {
            let ms = Duration::from_millis(response.throttle_time_ms as u64).min(MAX_THROTTLE);
            tokio::time::sleep(ms).await;
        }
        let answer = response
            .topics
            .into_iter()
            .filter(|t| t.topic == topic)
            .flat_map(|t| t.partitions)
            .find(|p| p.partition == partition.to_kafka());
        let Some(answer) = answer else {
            return Err(Failed::Retry(FetchError::PartitionMissing {
                broker: addr,
                topic: topic.to_owned(),
                partition,
            }));
        };
        match answer.error {
            None => {}
            Some(ApiError::OffsetOutOfRange) => {
                return Err(Failed::Final(FetchError::OffsetOutOfRange))
            }
            Some(ApiError::UnknownTopicOrPartition) => {
                self.forget_leader(topic, partition);
                return Err(Failed::Final(FetchError::UnknownTopicOrPartition));
            }
            Some(code) => {
                // Not the leader any more, no leader yet, a fenced epoch...:
                // ask the metadata again.
                self.forget_leader(topic, partition);
                return Err(Failed::Retry(FetchError::Partition {
                    topic: topic.to_owned(),
                    partition,
                    code,
                }));
            }
        }
        let decoded = records_from(&answer.records, offset, &answer.aborted).map_err(|source| {
            Failed::Final(FetchError::Decode {
                topic: topic.to_owned(),
                partition,
                source,
            })
        })?;
        Ok(Answer {
            records: decoded.records,
            high_watermark: Offset(answer.high_watermark),
            log_start: answer.log_start_offset.map(Offset),
            next_offset: decoded.next_offset,
            skipped: decoded.skipped,
        })
    }

    /// The address of the partition's leader, asking the metadata when it
    /// is not known.
    async fn leader(&self, topic: &str, partition: Partition) -> Result<String, Failed> {
        let known = self
            .leaders
            .borrow()
            .get(&(topic.to_owned(), partition))
            .copied();
        let node = match known {
            Some(node) => node,
            None => self.load_metadata(topic, partition).await?,
        };
        match self.brokers.borrow().get(&node) {
            Some(addr) => Ok(addr.clone()),
            None => {
                self.forget_leader(topic, partition);
                Err(Failed::Retry(FetchError::UnknownLeader {
                    topic: topic.to_owned(),
                    partition,
                    node,
                }))
            }
        }
    }

    /// Asks a broker (a known one, else a bootstrap one) for the topic's
    /// metadata, records its brokers and partition leaders, and returns
    /// the leader of `partition`. Never creates the topic.
    async fn load_metadata(&self, topic: &str, partition: Partition) -> Result<i32, Failed> {
        let response = self.metadata(&[topic]).await.map_err(Failed::Retry)?;
        let Some(t) = response.topics.iter().find(|t| t.name.0 == topic) else {
            return Err(Failed::Final(FetchError::UnknownTopicOrPartition));
        };
        match &t.error {
            None => {}
            Some(ApiError::UnknownTopicOrPartition) => {
                return Err(Failed::Final(FetchError::UnknownTopicOrPartition))
            }
            Some(code) => {
                return Err(Failed::Retry(FetchError::Topic {
                    topic: topic.to_owned(),
                    code: *code,
                }))
            }
        }
        let mut leaders = self.leaders.borrow_mut();
        for p in &t.partitions {
            let Ok(index) = u32::try_from(p.partition_index.0) else {
                // A negative partition number names nothing to fetch.
                continue;
            };
            let key = (topic.to_owned(), Partition(index));
            if p.error.is_none() && p.leader_id.0 >= 0 {
                leaders.insert(key, p.leader_id.0);
            } else {
                leaders.remove(&key);
            }
        }
        match t
            .partitions
            .iter()
            .find(|p| p.partition_index.0 == partition.to_kafka())
        {
            None => Err(Failed::Final(FetchError::UnknownTopicOrPartition)),
            Some(_) => match leaders.get(&(topic.to_owned(), partition)) {
                Some(node) => Ok(*node),
                None => Err(Failed::Retry(FetchError::NoLeader {
                    topic: topic.to_owned(),
                    partition,
                })),
            },
        }
    }

    /// Which of `topics` exist, in their order: one metadata request naming
    /// them (never all topics, and never creating one). A topic exists when
    /// Kafka answers it without an error and with partitions.
    pub async fn topics_exist(&self, topics: &[&str]) -> Result<Vec<bool>, FetchError> {
        let response = self.metadata(topics).await?;
        Ok(topics
            .iter()
            .map(|name| {
                response
                    .topics
                    .iter()
                    .any(|t| t.name.0 == *name && t.error.is_none() && !t.partitions.is_empty())
            })
            .collect())
    }

    /// A metadata request for `topics` (never creating one), from a known
    /// broker or else a bootstrap one; records the brokers it lists.
    async fn metadata(&self, topics: &[&str]) -> Result<MetadataResponse, FetchError> {
        let mut candidates: Vec<String> = self.brokers.borrow().values().cloned().collect();
        candidates.sort();
        for addr in &self.bootstrap {
            if !candidates.contains(addr) {
                candidates.push(addr.clone());
            }
        }
        let mut last = FetchError::NoBroker;
        for addr in candidates {
            let connection = match self.connection(&addr, Lane::Catchup).await {
                Ok(c) => c,
                Err(Failed::Retry(why) | Failed::Final(why)) => {
                    last = why;
                    continue;
                }
            };
            let request = MetadataRequest {
                topics: Some(
                    topics
                        .iter()
                        .map(|name| MetadataRequestTopic {
                            name: String_((*name).to_owned()),
                        })
                        .collect(),
                ),
                allow_auto_topic_creation: Some(Boolean(false)),
            };
            let response =
                match tokio::time::timeout(ANSWER_GRACE, connection.request(request)).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => {
                        self.drop_connection(&addr, Lane::Catchup, &connection);
                        last = FetchError::Request {
                            step: Step::Metadata,
                            broker: addr,
                            source: Arc::new(e),
                        };
                        continue;
                    }
                    Err(_) => {
                        self.drop_connection(&addr, Lane::Catchup, &connection);
                        last = FetchError::NoAnswer {
                            step: Step::Metadata,
                            broker: addr,
                            waited: ANSWER_GRACE,
                        };
                        continue;
                    }
                };
            let mut brokers = self.brokers.borrow_mut();
            for b in &response.brokers {
                brokers.insert(b.node_id.0, format!("{}:{}", b.host.0, b.port.0));
            }
            return Ok(response);
        }
        Err(last)
    }

    fn forget_leader(&self, topic: &str, partition: Partition) {
        self.leaders
            .borrow_mut()
            .remove(&(topic.to_owned(), partition));
    }

    /// The open connection to `addr` for `lane`, connecting (once, however
    /// many ask at the same time) if there is none.
    async fn connection(&self, addr: &str, lane: Lane) -> Result<Arc<Connection>, Failed> {
        let cell = Rc::clone(
            self.connections
                .borrow_mut()
                .entry((addr.to_owned(), lane))
                .or_default(),
        );
        let client_id = Arc::clone(&self.client_id);
        let connected = cell
            .get_or_try_init(|| async move {
                let handshake = async {
                    let stream =
                        TcpStream::connect(addr)
                            .await
                            .map_err(|e| FetchError::Connect {
                                broker: addr.to_owned(),
                                source: Arc::new(e),
                            })?;
                    stream.set_nodelay(true).ok();
                    let mut messenger =
                        Messenger::new(BufStream::new(stream), MAX_MESSAGE_BYTES, client_id);
                    messenger
                        .sync_versions()
                        .await
                        .map_err(|e| FetchError::Handshake {
                            broker: addr.to_owned(),
                            source: Arc::new(e),
                        })?;
                    Ok::<_, FetchError>(Arc::new(messenger))
                };
                tokio::time::timeout(ANSWER_GRACE, handshake)
                    .await
                    .unwrap_or_else(|_| {
                        Err(FetchError::NoAnswer {
                            step: Step::Connect,
                            broker: addr.to_owned(),
                            waited: ANSWER_GRACE,
                        })
                    })
            })
            .await;
        match connected {
            Ok(c) => Ok(Arc::clone(c)),
            Err(why) => {
                self.connections
                    .borrow_mut()
                    .remove(&(addr.to_owned(), lane));
                Err(Failed::Retry(why))
            }
        }
    }

    /// Forgets a connection that failed, unless it was replaced already.
    fn drop_connection(&self, addr: &str, lane: Lane, failed: &Arc<Connection>) {
        let mut connections = self.connections.borrow_mut();
        let key = (addr.to_owned(), lane);
        let same = connections
            .get(&key)
            .and_then(|cell| cell.get())
            .is_some_and(|c| Arc::ptr_eq(c, failed));
        if same {
            connections.remove(&key);
        }
    }
}

/// What one fetch returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The visible records from the offset asked for on, in order.
    pub records: Vec<RecordAndOffset>,
    pub high_watermark: Offset,
    /// The partition's first offset, from brokers that answer Fetch v5+.
    pub log_start: Option<Offset>,
    /// Where the next fetch starts: past every batch returned, visible or
    /// not (transaction markers, aborted transactions), and never below
    /// the offset asked for. A fetch that returned only invisible records
    /// must not be asked again from the same offset: Kafka would answer
    /// the same at once, for ever.
    pub next_offset: Offset,
    /// Batches that could not be decoded, skipped (in order; their
    /// offsets are below `next_offset`).
    pub skipped: Vec<Skipped>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A broker that accepts connections and never answers: a fetch gives
    /// up after `ANSWER_GRACE` per attempt instead of waiting for ever.
    #[tokio::test(start_paused = true)]
    async fn a_silent_broker_fails_the_fetch_instead_of_holding_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Rc::new(RefCell::new(Vec::new()));
        let held = Rc::clone(&accepted);
        let local = tokio::task::LocalSet::new();
        local.spawn_local(async move {
            while let Ok((socket, _)) = listener.accept().await {
                held.borrow_mut().push(socket);
            }
        });
        local
            .run_until(async {
                let fetcher = Fetcher::new(vec![addr], "test");
                let started = Instant::now();
                // The clock is paused: waits take no real time, and a fetch
                // that never ends fails here instead of hanging the test.
                let fetch = fetcher.fetch(
                    Lane::live(Partition(0)),
                    "t",
                    Partition(0),
                    Offset(0),
                    1 << 20,
                    100,
                );
                let result = tokio::time::timeout(ANSWER_GRACE * 60, fetch)
                    .await
                    .expect("the fetch never ended");
                let Err(e @ FetchError::NoAnswer { .. }) = result else {
                    panic!("a silent broker gave {result:?}");
                };
                let why = e.to_string();
                assert!(why.contains("no answer within"), "{why}");
                assert!(started.elapsed() >= ANSWER_GRACE);
                assert!(
                    fetcher.connections.borrow().is_empty(),
                    "nothing half-open kept"
                );
            })
            .await;
        assert!(!accepted.borrow().is_empty(), "the fetcher did connect");
    }

    /// How a fake broker answers a fetch.
    #[derive(Debug, Clone, Copy)]
    enum OnFetch {
        /// Keeps the connection open and never answers.
        Silent,
        /// `NOT_LEADER_OR_FOLLOWER`; the leader then moves.
        NotLeader,
        /// Closes the connection; the leader then moves.
        Close,
        /// No records, and this high watermark.
        Empty(i64),
        /// Holds a fetch of partition 0 for ever (a long poll that waits
        /// for records which never come); answers partition 1 at once
        /// with no records. Like Kafka, each connection's requests are
        /// answered in order.
        HoldPartition0,
    }

    /// The state every fake broker answers from.
    struct Cluster {
        /// Node id, address and fetch behaviour of each broker.
        brokers: Vec<(i32, SocketAddr, OnFetch)>,
        /// The leader of partition 0 of topic `t`.
        leader: i32,
        /// Where the leader goes after a `NotLeader` or `Close` answer.
        moves_to: i32,
        /// Fetch requests each node received.
        fetches: HashMap<i32, usize>,
        /// Metadata requests go unanswered (the connection stays open).
        metadata_silent: bool,
    }

    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as i16).to_be_bytes());
        out.extend(s.as_bytes());
    }

    /// Metadata v4: every broker, and topic `t` with partitions 0 and 1.
    fn metadata_v4(c: &Cluster, out: &mut Vec<u8>) {
        out.extend(0i32.to_be_bytes()); // throttle
        out.extend((c.brokers.len() as i32).to_be_bytes());
        for (node, addr, _) in &c.brokers {
            out.extend(node.to_be_bytes());
            put_str(out, &addr.ip().to_string());
            out.extend(i32::from(addr.port()).to_be_bytes());
            out.extend((-1i16).to_be_bytes()); // rack
        }
        out.extend((-1i16).to_be_bytes()); // cluster id
        out.extend(c.brokers[0].0.to_be_bytes()); // controller
        out.extend(1i32.to_be_bytes());
        out.extend(0i16.to_be_bytes());
        put_str(out, "t");
        out.push(0); // not internal
        out.extend(2i32.to_be_bytes());
        for partition in 0..2i32 {
            out.extend(0i16.to_be_bytes());
            out.extend(partition.to_be_bytes());
            out.extend(c.leader.to_be_bytes());
            for _ in 0..2 {
                // replicas, in sync replicas: the leader
                out.extend(1i32.to_be_bytes());
                out.extend(c.leader.to_be_bytes());
            }
        }
    }

    /// The partition a Fetch v4 request asks for (its first; the fetcher
    /// asks for one): past the header (client id), replica id, max wait,
    /// min bytes, max bytes, isolation level, topic count and name, and
    /// partition count.
    fn fetched_partition(req: &[u8]) -> i32 {
        let i16_at = |at: usize| i16::from_be_bytes([req[at], req[at + 1]]) as usize;
        let client_id_end = 8 + 2 + i16_at(8);
        let topic_at = client_id_end + 4 * 4 + 1 + 4;
        let partition_at = topic_at + 2 + i16_at(topic_at) + 4;
        i32::from_be_bytes(req[partition_at..partition_at + 4].try_into().unwrap())
    }

    /// Fetch v4 for topic `t` and a partition: an error code, no records.
    fn fetch_v4(partition: i32, error: i16, high_watermark: i64, out: &mut Vec<u8>) {
        out.extend(0i32.to_be_bytes()); // throttle
        out.extend(1i32.to_be_bytes());
        put_str(out, "t");
        out.extend(1i32.to_be_bytes());
        out.extend(partition.to_be_bytes());
        out.extend(error.to_be_bytes());
        out.extend(high_watermark.to_be_bytes());
        out.extend(high_watermark.to_be_bytes()); // last stable offset
        out.extend((-1i32).to_be_bytes()); // no aborted transactions
        out.extend(0i32.to_be_bytes()); // no records
    }

    /// One connection to fake broker `node`: just enough Kafka for a
    /// `Fetcher` (ApiVersions, Metadata v4, Fetch v4).
    async fn serve(mut socket: tokio::net::TcpStream, node: i32, cluster: Rc<RefCell<Cluster>>) {
        use rskafka::protocol::api_key::ApiKey;
        use rskafka::protocol::api_version::ApiVersion;
        use rskafka::protocol::messages::WriteVersionedType;
        use rskafka::protocol::messages::{ApiVersionsResponse, ApiVersionsResponseApiKey};
        use rskafka::protocol::primitives::Int16;
        loop {
            let mut len = [0u8; 4];
            if socket.read_exact(&mut len).await.is_err() {
                return;
            }
            let mut req = vec![0u8; i32::from_be_bytes(len) as usize];
            if socket.read_exact(&mut req).await.is_err() {
                return;
            }
            let api_key = i16::from_be_bytes([req[0], req[1]]);
            let version = i16::from_be_bytes([req[2], req[3]]);
            let mut body = Vec::new();
            match api_key {
                18 => {
                    let range = |api_key, min, max| ApiVersionsResponseApiKey {
                        api_key,
                        min_version: ApiVersion(Int16(min)),
                        max_version: ApiVersion(Int16(max)),
                        tagged_fields: None,
                    };
                    let versions = ApiVersionsResponse {
                        error_code: None,
                        api_keys: vec![
                            range(ApiKey::ApiVersions, 0, 3),
                            range(ApiKey::Metadata, 4, 4),
                            range(ApiKey::Fetch, 4, 4),
                        ],
                        throttle_time_ms: Some(rskafka::protocol::primitives::Int32(0)),
                        tagged_fields: None,
                    };
                    versions
                        .write_versioned(&mut body, ApiVersion(Int16(version)))
                        .unwrap();
                }
                3 if cluster.borrow().metadata_silent => std::future::pending::<()>().await,
                3 => metadata_v4(&cluster.borrow(), &mut body),
                1 => {
                    let on = {
                        let mut c = cluster.borrow_mut();
                        *c.fetches.entry(node).or_default() += 1;
                        let on = c.brokers.iter().find(|b| b.0 == node).unwrap().2;
                        if matches!(on, OnFetch::NotLeader | OnFetch::Close) {
                            c.leader = c.moves_to;
                        }
                        on
                    };
                    let partition = fetched_partition(&req);
                    match on {
                        OnFetch::Silent => std::future::pending::<()>().await,
                        OnFetch::HoldPartition0 if partition == 0 => {
                            std::future::pending::<()>().await
                        }
                        OnFetch::HoldPartition0 => fetch_v4(partition, 0, 0, &mut body),
                        OnFetch::Close => return,
                        OnFetch::NotLeader => fetch_v4(partition, 6, -1, &mut body),
                        OnFetch::Empty(high_watermark) => {
                            fetch_v4(partition, 0, high_watermark, &mut body)
                        }
                    }
                }
                other => panic!("the fake broker got api key {other}"),
            }
            let mut frame = ((4 + body.len()) as i32).to_be_bytes().to_vec();
            frame.extend(&req[4..8]); // correlation id
            frame.extend(body);
            if socket.write_all(&frame).await.is_err() {
                return;
            }
        }
    }

    /// Starts fake brokers 1, 2, ... with these fetch behaviours; the
    /// leader is broker 1 and moves to broker 2. Call inside a `LocalSet`.
    async fn fake_cluster(on_fetch: &[OnFetch]) -> Rc<RefCell<Cluster>> {
        let mut listeners = Vec::new();
        for _ in on_fetch {
            listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let cluster = Rc::new(RefCell::new(Cluster {
            brokers: (1..)
                .zip(&listeners)
                .zip(on_fetch)
                .map(|((node, l), on)| (node, l.local_addr().unwrap(), *on))
                .collect(),
            leader: 1,
            moves_to: 2,
            fetches: HashMap::new(),
            metadata_silent: false,
        }));
        for (node, listener) in (1..).zip(listeners) {
            let cluster = Rc::clone(&cluster);
            tokio::task::spawn_local(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    tokio::task::spawn_local(serve(socket, node, Rc::clone(&cluster)));
                }
            });
        }
        cluster
    }

    /// The clock is paused: waits take no real time, and a fetch that never
    /// ends fails here instead of hanging the test.
    async fn fetch_bounded(fetcher: &Fetcher) -> Result<Answer, FetchError> {
        let fetch = fetcher.fetch(
            Lane::live(Partition(0)),
            "t",
            Partition(0),
            Offset(0),
            1 << 20,
            100,
        );
        tokio::time::timeout(ANSWER_GRACE * 60, fetch)
            .await
            .expect("the fetch never ended")
    }

    /// A broker that agrees on versions and metadata, then never answers
    /// the fetch: given up after the long poll's wait plus `ANSWER_GRACE`,
    /// its connection dropped, its leadership asked again next time.
    #[tokio::test(start_paused = true)]
    async fn a_fetch_without_an_answer_is_given_up_and_its_connection_dropped() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let cluster = fake_cluster(&[OnFetch::Silent]).await;
                let addr = cluster.borrow().brokers[0].1.to_string();
                let fetcher = Fetcher::new(vec![addr.clone()], "test");
                let started = Instant::now();
                let result = fetch_bounded(&fetcher).await;
                let Err(e @ FetchError::NoAnswer { .. }) = result else {
                    panic!("a silent fetch gave {result:?}");
                };
                let why = e.to_string();
                assert!(why.contains("no answer within"), "{why}");
                assert!(started.elapsed() >= ANSWER_GRACE + Duration::from_millis(100));
                assert_eq!(cluster.borrow().fetches[&1], 1);
                let connections = fetcher.connections.borrow();
                assert!(!connections.contains_key(&(addr.clone(), Lane::live(Partition(0)))));
                assert!(
                    connections.contains_key(&(addr, Lane::Catchup)),
                    "metadata's"
                );
                assert!(!fetcher
                    .leaders
                    .borrow()
                    .contains_key(&("t".to_owned(), Partition(0))));
            })
            .await;
    }

    /// A broker that agrees on versions, then never answers the metadata
    /// request: given up after `ANSWER_GRACE`, without a fetch.
    #[tokio::test(start_paused = true)]
    async fn a_metadata_request_without_an_answer_is_given_up() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let cluster = fake_cluster(&[OnFetch::Empty(0)]).await;
                cluster.borrow_mut().metadata_silent = true;
                let addr = cluster.borrow().brokers[0].1.to_string();
                let fetcher = Fetcher::new(vec![addr.clone()], "test");
                let started = Instant::now();
                let result = fetch_bounded(&fetcher).await;
                let Err(e @ FetchError::NoAnswer { .. }) = result else {
                    panic!("a silent metadata request gave {result:?}");
                };
                let why = e.to_string();
                assert!(why.starts_with("metadata from"), "{why}");
                assert!(why.contains("no answer within"), "{why}");
                assert!(started.elapsed() >= ANSWER_GRACE);
                assert!(cluster.borrow().fetches.is_empty());
                assert!(fetcher.connections.borrow().is_empty(), "dropped");
            })
            .await;
    }

    /// Partition 0's long poll is held by the broker, which answers a
    /// connection's requests in order: partition 1's long poll, on its own
    /// connection, is answered all the same. On one shared connection it
    /// would wait behind partition 0's for all of `max_wait` (nisshi holds
    /// every long poll that long), and with many partitions a record
    /// waited for the sum.
    // Real time: a paused clock would jump to the held fetch's deadline
    // whenever both wait on the sockets.
    #[tokio::test]
    async fn one_partitions_held_long_poll_does_not_hold_back_anothers() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let cluster = fake_cluster(&[OnFetch::HoldPartition0]).await;
                let addr = cluster.borrow().brokers[0].1.to_string();
                let fetcher = Fetcher::new(vec![addr.clone()], "test");
                let held = fetcher.fetch(
                    Lane::live(Partition(0)),
                    "t",
                    Partition(0),
                    Offset(0),
                    1 << 20,
                    100,
                );
                let other = fetcher.fetch(
                    Lane::live(Partition(1)),
                    "t",
                    Partition(1),
                    Offset(0),
                    1 << 20,
                    100,
                );
                let mut held = std::pin::pin!(held);
                let answer = tokio::select! {
                    biased;
                    _ = &mut held => panic!("partition 0's fetch was answered"),
                    answer = other => answer.expect("partition 1's fetch"),
                };
                // Behind partition 0's on one connection, it would have
                // ended in `NoAnswer` after `ANSWER_GRACE`.
                assert!(answer.records.is_empty());
                assert_eq!(cluster.borrow().fetches[&1], 2);
                assert_ne!(Lane::live(Partition(0)), Lane::live(Partition(1)));
                assert_eq!(
                    Lane::live(Partition(0)),
                    Lane::live(Partition(u32::from(LIVE_SLOTS)))
                );
            })
            .await;
    }

    /// The leader moves to another broker: told so (`NOT_LEADER_OR_FOLLOWER`)
    /// or cut off (the connection closes), the fetcher asks the metadata
    /// again and fetches from the new leader, within one `fetch` call.
    #[tokio::test(start_paused = true)]
    async fn a_leader_that_moves_is_found_again() {
        for first in [OnFetch::NotLeader, OnFetch::Close] {
            let local = tokio::task::LocalSet::new();
            local
                .run_until(async {
                    let cluster = fake_cluster(&[first, OnFetch::Empty(42)]).await;
                    let bootstrap = cluster.borrow().brokers[0].1.to_string();
                    let fetcher = Fetcher::new(vec![bootstrap], "test");
                    let result = fetch_bounded(&fetcher).await;
                    let expected = Answer {
                        records: Vec::new(),
                        high_watermark: Offset(42),
                        log_start: None,
                        next_offset: Offset(0),
                        skipped: Vec::new(),
                    };
                    match result {
                        Ok(answer) => assert_eq!(answer, expected, "{first:?}"),
                        Err(e) => panic!("{first:?}: {e}"),
                    }
                    let fetches = cluster.borrow().fetches.clone();
                    assert_eq!(fetches, HashMap::from([(1, 1), (2, 1)]), "{first:?}");
                    assert_eq!(fetcher.leaders.borrow()[&("t".to_owned(), Partition(0))], 2);
                })
                .await;
        }
    }
}
