//! Kafka fetch requests that keep every record header.
//!
//! rskafka's `PartitionClient::fetch_records` turns each record's headers
//! into a map, so a header name that repeats within a record keeps only its
//! last value, and a filter on that header could not match the others. The
//! sidecar's fetches therefore go through rskafka's own protocol layer (its
//! `messenger` and `protocol` modules, public with its `unstable-fuzzing`
//! feature; the version is pinned in `Cargo.toml` for that reason) and
//! decode the records themselves ([`records_from`]), keeping the headers as
//! Kafka sent them. Metadata and offset look-ups stay on rskafka's client.
//!
//! A [`Fetcher`] belongs to one sidecar (one thread, `!Send`). It finds each
//! partition's leader with a metadata request, keeps one connection per
//! broker for the live fetch loops' long polls and another for catch-up
//! fetches (a broker answers one connection's requests in order, so a
//! catch-up fetch never waits behind a long poll), and retries what a
//! leader change or a dropped connection breaks for up to [`RETRY_FOR`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rskafka::chrono::DateTime;
use rskafka::messenger::Messenger;
use rskafka::protocol::error::Error as ApiError;
use rskafka::protocol::messages::{
    FetchRequest, FetchRequestPartition, FetchRequestTopic, IsolationLevel, MetadataRequest,
    MetadataRequestTopic, NORMAL_CONSUMER,
};
use rskafka::protocol::primitives::{Boolean, Int32, Int64, String_};
use rskafka::protocol::record::{ControlBatchOrRecords, ControlBatchRecord, RecordBatch};
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::model::record::{Record, RecordAndOffset};

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
    /// The fetch loops' long polls.
    Live,
    /// Catch-up fetches, answered at once.
    Catchup,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("the fetch offset is out of range")]
    OffsetOutOfRange,
    #[error("the topic or partition is unknown to kafka")]
    UnknownTopicOrPartition,
    #[error("{0}")]
    Other(String),
}

/// One attempt's failure: worth another attempt, or final.
enum Failed {
    Retry(String),
    Final(FetchError),
}

type Connection = Messenger<BufStream<TcpStream>>;
type ConnectionCell = Rc<tokio::sync::OnceCell<Arc<Connection>>>;

pub struct Fetcher {
    bootstrap: Vec<String>,
    client_id: Arc<str>,
    /// Broker addresses by node id, from the latest metadata answer.
    brokers: RefCell<HashMap<i32, String>>,
    /// The leader's node id of each partition fetched.
    leaders: RefCell<HashMap<(String, i32), i32>>,
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
        partition: i32,
        offset: i64,
        max_bytes: i32,
        max_wait_ms: i32,
    ) -> Result<Answer, FetchError> {
        let request = FetchRequest {
            replica_id: NORMAL_CONSUMER,
            max_wait_ms: Int32(max_wait_ms),
            min_bytes: Int32(1),
            max_bytes: Some(Int32(max_bytes)),
            isolation_level: Some(IsolationLevel::ReadCommitted),
            topics: vec![FetchRequestTopic {
                topic: String_(topic.to_owned()),
                partitions: vec![FetchRequestPartition {
                    partition: Int32(partition),
                    fetch_offset: Int64(offset),
                    partition_max_bytes: Int32(max_bytes),
                }],
            }],
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
                        return Err(FetchError::Other(why));
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
        (topic, partition, offset): (&str, i32, i64),
        request: &FetchRequest,
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
        let wait = Duration::from_millis(request.max_wait_ms.0.max(0) as u64);
        let answer = tokio::time::timeout(wait + ANSWER_GRACE, connection.request(request));
        let response = match answer.await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                self.drop_connection(&addr, lane, &connection);
                self.forget_leader(topic, partition);
                return Err(Failed::Retry(format!("fetch from {addr}: {e}")));
            }
            Err(_) => {
                self.drop_connection(&addr, lane, &connection);
                self.forget_leader(topic, partition);
                return Err(Failed::Retry(format!(
                    "fetch from {addr}: no answer within {:?}",
                    wait + ANSWER_GRACE
                )));
            }
        };
        if let Some(Int32(ms)) = response.throttle_time_ms {
            if ms > 0 {
                let ms = Duration::from_millis(ms as u64).min(MAX_THROTTLE);
                tokio::time::sleep(ms).await;
            }
        }
        let answer = response
            .responses
            .into_iter()
            .filter(|t| t.topic.0 == topic)
            .flat_map(|t| t.partitions)
            .find(|p| p.partition_index.0 == partition);
        let Some(answer) = answer else {
            return Err(Failed::Retry(format!(
                "{addr} did not answer for {topic}/{partition}"
            )));
        };
        match answer.error_code {
            None => {}
            Some(ApiError::OffsetOutOfRange) => {
                return Err(Failed::Final(FetchError::OffsetOutOfRange))
            }
            Some(ApiError::UnknownTopicOrPartition) => {
                self.forget_leader(topic, partition);
                return Err(Failed::Final(FetchError::UnknownTopicOrPartition));
            }
            Some(e) => {
                // Not the leader any more, no leader yet, a fenced epoch...:
                // ask the metadata again.
                self.forget_leader(topic, partition);
                return Err(Failed::Retry(format!("{topic}/{partition}: {e}")));
            }
        }
        let aborted: Vec<(i64, i64)> = answer
            .aborted_transactions
            .iter()
            .map(|t| (t.producer_id.0, t.first_offset.0))
            .collect();
        let (records, next_offset) = records_from(answer.records.0, offset, &aborted)
            .map_err(|e| Failed::Final(FetchError::Other(e)))?;
        Ok(Answer {
            records,
            high_watermark: answer.high_watermark.0,
            next_offset,
        })
    }

    /// The address of the partition's leader, asking the metadata when it
    /// is not known.
    async fn leader(&self, topic: &str, partition: i32) -> Result<String, Failed> {
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
                Err(Failed::Retry(format!(
                    "{topic}/{partition}: leader {node} is not among the brokers"
                )))
            }
        }
    }

    /// Asks a broker (a known one, else a bootstrap one) for the topic's
    /// metadata, records its brokers and partition leaders, and returns
    /// the leader of `partition`. Never creates the topic.
    async fn load_metadata(&self, topic: &str, partition: i32) -> Result<i32, Failed> {
        let mut candidates: Vec<String> = self.brokers.borrow().values().cloned().collect();
        candidates.sort();
        for addr in &self.bootstrap {
            if !candidates.contains(addr) {
                candidates.push(addr.clone());
            }
        }
        let mut last = String::from("no broker to ask");
        for addr in candidates {
            let connection = match self.connection(&addr, Lane::Catchup).await {
                Ok(c) => c,
                Err(Failed::Retry(why)) => {
                    last = why;
                    continue;
                }
                Err(other) => return Err(other),
            };
            let request = MetadataRequest {
                topics: Some(vec![MetadataRequestTopic {
                    name: String_(topic.to_owned()),
                }]),
                allow_auto_topic_creation: Some(Boolean(false)),
            };
            let response =
                match tokio::time::timeout(ANSWER_GRACE, connection.request(request)).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => {
                        self.drop_connection(&addr, Lane::Catchup, &connection);
                        last = format!("metadata from {addr}: {e}");
                        continue;
                    }
                    Err(_) => {
                        self.drop_connection(&addr, Lane::Catchup, &connection);
                        last = format!("metadata from {addr}: no answer within {ANSWER_GRACE:?}");
                        continue;
                    }
                };
            {
                let mut brokers = self.brokers.borrow_mut();
                for b in &response.brokers {
                    brokers.insert(b.node_id.0, format!("{}:{}", b.host.0, b.port.0));
                }
            }
            let Some(t) = response.topics.iter().find(|t| t.name.0 == topic) else {
                return Err(Failed::Final(FetchError::UnknownTopicOrPartition));
            };
            match &t.error {
                None => {}
                Some(ApiError::UnknownTopicOrPartition) => {
                    return Err(Failed::Final(FetchError::UnknownTopicOrPartition))
                }
                Some(e) => return Err(Failed::Retry(format!("metadata of {topic}: {e}"))),
            }
            let mut leaders = self.leaders.borrow_mut();
            for p in &t.partitions {
                let key = (topic.to_owned(), p.partition_index.0);
                if p.error.is_none() && p.leader_id.0 >= 0 {
                    leaders.insert(key, p.leader_id.0);
                } else {
                    leaders.remove(&key);
                }
            }
            return match t
                .partitions
                .iter()
                .find(|p| p.partition_index.0 == partition)
            {
                None => Err(Failed::Final(FetchError::UnknownTopicOrPartition)),
                Some(_) => match leaders.get(&(topic.to_owned(), partition)) {
                    Some(node) => Ok(*node),
                    None => Err(Failed::Retry(format!("{topic}/{partition} has no leader"))),
                },
            };
        }
        Err(Failed::Retry(last))
    }

    fn forget_leader(&self, topic: &str, partition: i32) {
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
                    let stream = TcpStream::connect(addr)
                        .await
                        .map_err(|e| format!("connect to {addr}: {e}"))?;
                    stream.set_nodelay(true).ok();
                    let mut messenger =
                        Messenger::new(BufStream::new(stream), MAX_MESSAGE_BYTES, client_id);
                    messenger
                        .sync_versions()
                        .await
                        .map_err(|e| format!("api versions of {addr}: {e}"))?;
                    Ok::<_, String>(Arc::new(messenger))
                };
                tokio::time::timeout(ANSWER_GRACE, handshake)
                    .await
                    .unwrap_or_else(|_| {
                        Err(format!(
                            "connect to {addr}: no answer within {ANSWER_GRACE:?}"
                        ))
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
    pub high_watermark: i64,
    /// Where the next fetch starts: past every batch returned, visible or
    /// not (transaction markers, aborted transactions), and never below
    /// the offset asked for. A fetch that returned only invisible records
    /// must not be asked again from the same offset: Kafka would answer
    /// the same at once, for ever.
    pub next_offset: i64,
}

/// The visible records of fetched batches from `from` on, and the offset
/// after the last batch (`Answer::next_offset`).
///
/// - A batch may start below the offset asked for (Kafka does not split
///   batches): its earlier records are dropped.
/// - Control batches (transaction markers) carry no records.
/// - Fetches ask for committed records only (`READ_COMMITTED`), but Kafka
///   returns the batches of aborted transactions too, with the list of
///   aborted transactions (producer id, first offset): a transactional
///   batch of a producer whose aborted transaction has begun, up to that
///   producer's abort marker, is dropped (as Kafka's Java consumer does).
pub fn records_from(
    batches: Vec<RecordBatch>,
    from: i64,
    aborted: &[(i64, i64)],
) -> Result<(Vec<RecordAndOffset>, i64), String> {
    // By first offset, the earliest last (popped first).
    let mut pending: Vec<(i64, i64)> = aborted.to_vec();
    pending.sort_by_key(|&(_, first)| std::cmp::Reverse(first));
    let mut aborting: Vec<i64> = Vec::new();
    let mut records_out = Vec::new();
    let mut next_offset = from;
    for batch in batches {
        let last = batch.base_offset + i64::from(batch.last_offset_delta);
        next_offset = next_offset.max(last + 1);
        if batch.producer_id >= 0 {
            while let Some(&(producer, first)) = pending.last() {
                if first > last {
                    break;
                }
                aborting.push(producer);
                pending.pop();
            }
        }
        let records = match batch.records {
            ControlBatchOrRecords::ControlBatch(marker) => {
                if matches!(marker, ControlBatchRecord::Abort) {
                    aborting.retain(|p| *p != batch.producer_id);
                }
                continue;
            }
            ControlBatchOrRecords::Records(records) => records,
        };
        if batch.is_transactional && aborting.contains(&batch.producer_id) {
            continue;
        }
        records_out.reserve(records.len());
        for r in records {
            let offset = batch.base_offset + i64::from(r.offset_delta);
            if offset < from {
                continue;
            }
            let timestamp = batch
                .first_timestamp
                .checked_add(r.timestamp_delta)
                .and_then(DateTime::from_timestamp_millis)
                .ok_or_else(|| {
                    format!(
                        "record {offset}: timestamp {} + {} is out of range",
                        batch.first_timestamp, r.timestamp_delta
                    )
                })?;
            records_out.push(RecordAndOffset {
                record: Record {
                    key: r.key,
                    value: r.value,
                    headers: r.headers.into_iter().map(|h| (h.key, h.value)).collect(),
                    timestamp,
                },
                offset,
            });
        }
    }
    Ok((records_out, next_offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rskafka::protocol::record::{
        ControlBatchRecord, Record as WireRecord, RecordBatchCompression, RecordBatchTimestampType,
        RecordHeader,
    };

    fn batch(base_offset: i64, records: ControlBatchOrRecords) -> RecordBatch {
        let last_offset_delta = match &records {
            ControlBatchOrRecords::Records(r) => {
                r.iter().map(|r| r.offset_delta).max().unwrap_or(0)
            }
            ControlBatchOrRecords::ControlBatch(_) => 0,
        };
        RecordBatch {
            base_offset,
            partition_leader_epoch: 0,
            last_offset_delta,
            first_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records,
            compression: RecordBatchCompression::NoCompression,
            is_transactional: false,
            timestamp_type: RecordBatchTimestampType::CreateTime,
        }
    }

    fn wire(delta: i32, headers: &[(&str, &str)]) -> WireRecord {
        WireRecord {
            timestamp_delta: i64::from(delta) * 10,
            offset_delta: delta,
            key: Some(format!("k{delta}").into_bytes()),
            value: None,
            headers: headers
                .iter()
                .map(|(k, v)| RecordHeader {
                    key: (*k).to_owned(),
                    value: v.as_bytes().to_vec(),
                })
                .collect(),
        }
    }

    #[test]
    fn keeps_repeated_headers_and_skips_what_precedes_the_offset() {
        let batches = vec![
            batch(
                10,
                ControlBatchOrRecords::Records(vec![
                    wire(0, &[]),
                    wire(1, &[("tag", "a"), ("x", "1"), ("tag", "b")]),
                ]),
            ),
            batch(
                12,
                ControlBatchOrRecords::ControlBatch(ControlBatchRecord::Commit),
            ),
            batch(
                13,
                ControlBatchOrRecords::Records(vec![wire(0, &[("tag", "c")])]),
            ),
        ];
        let (got, next_offset) = records_from(batches, 11, &[]).unwrap();
        assert_eq!(next_offset, 14, "past the last batch");
        assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [11, 13]);
        let first = &got[0].record;
        assert_eq!(first.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(first.header_values("tag").collect::<Vec<_>>(), [b"a", b"b"]);
        assert_eq!(first.headers[1], ("x".to_owned(), b"1".to_vec()));
        assert_eq!(first.timestamp.timestamp_millis(), 1_700_000_000_010);
        assert_eq!(
            got[1].record.header_values("tag").collect::<Vec<_>>(),
            [b"c"]
        );
    }

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
                let fetch = fetcher.fetch(Lane::Live, "t", 0, 0, 1 << 20, 100);
                let result = tokio::time::timeout(ANSWER_GRACE * 60, fetch)
                    .await
                    .expect("the fetch never ended");
                let Err(FetchError::Other(why)) = result else {
                    panic!("a silent broker gave {result:?}");
                };
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

    /// Metadata v4: every broker, and topic `t` with partition 0.
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
        out.extend(1i32.to_be_bytes());
        out.extend(0i16.to_be_bytes());
        out.extend(0i32.to_be_bytes()); // partition 0
        out.extend(c.leader.to_be_bytes());
        for _ in 0..2 {
            // replicas, in sync replicas: the leader
            out.extend(1i32.to_be_bytes());
            out.extend(c.leader.to_be_bytes());
        }
    }

    /// Fetch v4 for topic `t` partition 0: an error code, no records.
    fn fetch_v4(error: i16, high_watermark: i64, out: &mut Vec<u8>) {
        out.extend(0i32.to_be_bytes()); // throttle
        out.extend(1i32.to_be_bytes());
        put_str(out, "t");
        out.extend(1i32.to_be_bytes());
        out.extend(0i32.to_be_bytes());
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
                        throttle_time_ms: Some(Int32(0)),
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
                    match on {
                        OnFetch::Silent => std::future::pending::<()>().await,
                        OnFetch::Close => return,
                        OnFetch::NotLeader => fetch_v4(6, -1, &mut body),
                        OnFetch::Empty(high_watermark) => fetch_v4(0, high_watermark, &mut body),
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
        let fetch = fetcher.fetch(Lane::Live, "t", 0, 0, 1 << 20, 100);
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
                let Err(FetchError::Other(why)) = result else {
                    panic!("a silent fetch gave {result:?}");
                };
                assert!(why.contains("no answer within"), "{why}");
                assert!(started.elapsed() >= ANSWER_GRACE + Duration::from_millis(100));
                assert_eq!(cluster.borrow().fetches[&1], 1);
                let connections = fetcher.connections.borrow();
                assert!(!connections.contains_key(&(addr.clone(), Lane::Live)));
                assert!(
                    connections.contains_key(&(addr, Lane::Catchup)),
                    "metadata's"
                );
                assert!(fetcher.leaders.borrow().is_empty());
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
                let Err(FetchError::Other(why)) = result else {
                    panic!("a silent metadata request gave {result:?}");
                };
                assert!(why.starts_with("metadata from"), "{why}");
                assert!(why.contains("no answer within"), "{why}");
                assert!(started.elapsed() >= ANSWER_GRACE);
                assert!(cluster.borrow().fetches.is_empty());
                assert!(fetcher.connections.borrow().is_empty(), "dropped");
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
                        high_watermark: 42,
                        next_offset: 0,
                    };
                    assert_eq!(result, Ok(expected), "{first:?}");
                    let fetches = cluster.borrow().fetches.clone();
                    assert_eq!(fetches, HashMap::from([(1, 1), (2, 1)]), "{first:?}");
                    assert_eq!(fetcher.leaders.borrow()[&("t".to_owned(), 0)], 2);
                })
                .await;
        }
    }

    /// A transactional batch of `producer`.
    fn txn(base_offset: i64, producer: i64, records: ControlBatchOrRecords) -> RecordBatch {
        RecordBatch {
            producer_id: producer,
            is_transactional: true,
            ..batch(base_offset, records)
        }
    }

    #[test]
    fn aborted_transactions_and_markers_are_dropped_and_passed() {
        use ControlBatchOrRecords::{ControlBatch, Records};
        let data = |n: i32| Records((0..n).map(|d| wire(d, &[])).collect());
        let batches = || {
            vec![
                txn(0, 7, data(2)), // committed
                txn(2, 7, ControlBatch(ControlBatchRecord::Commit)),
                txn(3, 8, data(2)), // aborted
                batch(5, data(1)),  // no transaction
                txn(6, 8, ControlBatch(ControlBatchRecord::Abort)),
                txn(7, 8, data(1)), // producer 8 again, committed
                txn(8, 8, ControlBatch(ControlBatchRecord::Commit)),
            ]
        };
        let (records, next_offset) = records_from(batches(), 0, &[(8, 3)]).unwrap();
        let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [0, 1, 5, 7]);
        assert_eq!(next_offset, 9);
        // Without the aborted list every data record is visible.
        let (all, _) = records_from(batches(), 0, &[]).unwrap();
        assert_eq!(all.len(), 6);
        // Only a marker: nothing visible, and the next fetch starts past it.
        let marker = vec![txn(8, 8, ControlBatch(ControlBatchRecord::Commit))];
        let (records, next_offset) = records_from(marker, 8, &[]).unwrap();
        assert!(records.is_empty());
        assert_eq!(next_offset, 9);
        // Nothing at all: the next fetch starts where this one did.
        assert_eq!(records_from(Vec::new(), 12, &[]).unwrap().1, 12);
    }

    #[test]
    fn a_timestamp_out_of_range_is_an_error_not_a_panic() {
        let mut r = wire(0, &[]);
        r.timestamp_delta = i64::MAX;
        let err = records_from(
            vec![batch(0, ControlBatchOrRecords::Records(vec![r]))],
            0,
            &[],
        );
        assert!(err.unwrap_err().contains("out of range"));
    }
}
