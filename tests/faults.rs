//! Faults, end to end: the broker restarting under open streams (sqlite
//! storage, so the log survives), Kafka unreachable or hung for longer than
//! `kafka.unavailable_timeout`, and a topic replaced by one with more
//! partitions. Real nisshi, the real proxy binary, real socket clients.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;

use common::{raw_request, wait_until, ProducerOnly, Proxy, SseClient};
use sse_kafka::codec::sse::Event;

/// A nisshi broker with sqlite storage that can be killed and started
/// again on the same port and file.
struct SqliteBroker {
    child: Option<Child>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl SqliteBroker {
    fn start() -> SqliteBroker {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", common::free_port())
            .parse()
            .unwrap();
        let mut b = SqliteBroker {
            child: None,
            addr,
            dir,
        };
        b.launch();
        b
    }

    fn launch(&mut self) {
        // Relative to the working directory: the broker's own dir.
        self.child = Some(common::spawn_nisshi(
            self.addr,
            "sqlite://nisshi.db",
            self.dir.path(),
        ));
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let addr = self.addr;
        wait_until("the broker port to close", || {
            std::net::TcpStream::connect(addr).is_err()
        });
    }

    /// Stops (SIGSTOP) or continues (SIGCONT) the broker: its connections
    /// stay open and it answers nothing, like a host that hangs.
    fn signal(&self, signal: libc::c_int) {
        let pid = self.child.as_ref().expect("the broker runs").id();
        // SAFETY: kill(2) with the pid of a child this test started.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0);
    }

    fn db(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SqliteBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn config(broker: SocketAddr, extra: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nkeepalive: 200ms\nkafka:\n  bootstrap: [\"{broker}\"]\n  fetch_max_wait: 50ms\n  metadata_refresh: 200ms\n{extra}routes:\n  - path: /items\n    topic: items\n"
    )
}

fn produce(producer: &ProducerOnly, partition: i32, values: impl Iterator<Item = String>) {
    let records = values.map(|v| (None, Some(v.into_bytes()))).collect();
    producer.produce_records(
        "items",
        partition,
        records,
        rskafka::client::partition::Compression::NoCompression,
    );
}

/// Values are `<tag>-p<partition>-<i>`: per partition, the events of `tag`
/// are exactly `0..n`, in order.
fn assert_exact(events: &[Event], tag: &str, partitions: usize, n: usize) {
    let mut next = vec![0usize; partitions];
    for e in events {
        let Some(rest) = e.data.strip_prefix(&format!("{tag}-p")) else {
            continue;
        };
        let (p, i) = rest.split_once('-').unwrap();
        let (p, i): (usize, usize) = (p.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, next[p], "{tag}: partition {p} lost or repeated: {e:?}");
        next[p] += 1;
    }
    assert_eq!(next, vec![n; partitions], "{tag}: not every record arrived");
}

/// The stream ends with an error event naming the cause.
fn expect_unavailable_end(c: &mut SseClient) {
    let error = c.next_event();
    assert_eq!(error.event.as_deref(), Some("error"), "{error:?}");
    assert!(error.data.contains("unavailable"), "{}", error.data);
    c.wait_eof();
}

/// With the broker back: 3 more records of `tag` per partition (after 5),
/// a client resuming from `last_id` as soon as the proxy accepts
/// subscribers again, and every record of `tag` exactly once in order.
fn resume_exactly(
    proxy: &Proxy,
    broker: SocketAddr,
    last_id: &str,
    mut events: Vec<Event>,
    tag: &str,
) {
    let producer = ProducerOnly::connect(broker);
    for p in 0..2 {
        produce(&producer, p, (5..8).map(|i| format!("{tag}-p{p}-{i}")));
    }
    let mut resumed = None;
    wait_until("the proxy to accept subscribers again", || {
        let c = SseClient::connect(proxy.addr, "/items", &[("Last-Event-ID", last_id)]);
        let ok = c.status() == 200;
        resumed = ok.then_some(c);
        ok
    });
    let mut c = resumed.unwrap();
    events.extend(c.take(6));
    assert_exact(&events, tag, 2, 8);
}

/// The broker is killed and started again (same port, same sqlite file)
/// while a client streams: the stream stays open (keep-alives continue),
/// fetching resumes where it stopped, nothing is lost or repeated.
#[test]
fn broker_restart_mid_stream_loses_nothing() {
    let mut broker = SqliteBroker::start();
    let producer = ProducerOnly::connect(broker.addr);
    producer.create_topic("items", 2);
    let proxy = Proxy::start(&config(broker.addr, ""), "0,1");
    let mut c = SseClient::connect(proxy.addr, "/items", &[]);
    for p in 0..2 {
        produce(&producer, p, (0..10).map(|i| format!("a-p{p}-{i}")));
    }
    let mut events = c.take(20);
    drop(producer);
    broker.kill();
    // Down: the stream stays open and keeps getting keep-alives.
    let comments = c.comments();
    c.wait_comments(comments + 2);
    broker.launch();
    assert!(broker.db().join("nisshi.db").exists());
    let producer = ProducerOnly::connect(broker.addr);
    for p in 0..2 {
        produce(&producer, p, (10..20).map(|i| format!("a-p{p}-{i}")));
    }
    events.extend(c.take(20));
    assert_exact(&events, "a", 2, 20);
    assert!(!c.eof);
}

/// Kafka unreachable for longer than `kafka.unavailable_timeout`: new
/// subscribers get 503 with retry-after, open streams end with
/// `event:error`, and once the broker is back the client resumes exactly
/// with its last id.
#[test]
fn kafka_down_past_the_timeout_ends_streams_then_they_resume() {
    let mut broker = SqliteBroker::start();
    let producer = ProducerOnly::connect(broker.addr);
    producer.create_topic("items", 2);
    let proxy = Proxy::start(&config(broker.addr, "  unavailable_timeout: 1s\n"), "0,1");
    let mut c = SseClient::connect(proxy.addr, "/items", &[]);
    for p in 0..2 {
        produce(&producer, p, (0..5).map(|i| format!("b-p{p}-{i}")));
    }
    let events = c.take(10);
    let last_id = c.last_event_id().unwrap();
    drop(producer);
    broker.kill();
    // The stream ends with an error event naming the cause.
    expect_unavailable_end(&mut c);
    assert!(proxy.metric("sse_kafka_topic_unavailable_ends_total") >= 1);
    // Subscribing now is refused with a time to come back.
    let resp = String::from_utf8(raw_request(
        proxy.addr,
        b"GET /items HTTP/1.1\r\nhost: x\r\n\r\n",
    ))
    .unwrap();
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    assert!(resp.contains("retry-after: "), "{resp}");
    // Back: records produced meanwhile reach the resumed client exactly.
    broker.launch();
    resume_exactly(&proxy, broker.addr, &last_id, events, "b");
}

/// The broker hangs (SIGSTOP: connections open, no answers) for longer
/// than `kafka.unavailable_timeout`: no request of the proxy waits for ever
/// (each has a deadline, `fetch::ANSWER_GRACE`), so the metadata watch
/// reports the topic unavailable, the open stream ends with `event:error`,
/// and once the broker continues the client resumes exactly.
#[test]
fn hung_broker_past_the_timeout_ends_streams_then_they_resume() {
    let broker = SqliteBroker::start();
    let producer = ProducerOnly::connect(broker.addr);
    producer.create_topic("items", 2);
    let proxy = Proxy::start(&config(broker.addr, "  unavailable_timeout: 1s\n"), "0,1");
    let mut c = SseClient::connect(proxy.addr, "/items", &[]);
    for p in 0..2 {
        produce(&producer, p, (0..5).map(|i| format!("h-p{p}-{i}")));
    }
    let events = c.take(10);
    let last_id = c.last_event_id().unwrap();
    drop(producer);
    broker.signal(libc::SIGSTOP);
    // Within the deadline (10 s) plus the timeout (1 s), well inside the
    // client's wait.
    expect_unavailable_end(&mut c);
    broker.signal(libc::SIGCONT);
    resume_exactly(&proxy, broker.addr, &last_id, events, "h");
}

/// A topic deleted and created again with more partitions (nisshi has no
/// CreatePartitions, so this is how a topic gains partitions there): the
/// proxy does not re-create the deleted topic itself, discovers the new
/// partitions, reads every partition of the new log from its start, and
/// the open stream delivers all of it.
#[test]
fn topic_recreated_with_more_partitions_is_served_whole() {
    let broker = common::Broker::start();
    broker.create_topic("items", 2);
    let proxy = Proxy::start(&config(broker.addr, ""), "0,1");
    let mut c = SseClient::connect(proxy.addr, "/items", &[]);
    let producer = ProducerOnly::connect(broker.addr);
    for p in 0..2 {
        produce(&producer, p, (0..5).map(|i| format!("old-p{p}-{i}")));
    }
    let events = c.take(10);
    assert_exact(&events, "old", 2, 5);
    let errors = proxy.metric("sse_kafka_kafka_errors_total");
    producer.delete_topic("items");
    // Both fetch loops (one per shard) noticed that the topic is gone.
    wait_until("the proxy to notice the deletion", || {
        proxy.metric("sse_kafka_kafka_errors_total") >= errors + 2
    });
    producer.create_topic("items", 4);
    for p in 0..4 {
        produce(&producer, p, (0..7).map(|i| format!("new-p{p}-{i}")));
    }
    let events = c.take(28);
    assert_exact(&events, "new", 4, 7);
}

/// A topic deleted and not created again: the proxy does not re-create it
/// (its metadata watch never asks for a topic by name), and once it has
/// been gone for `kafka.unavailable_timeout` the open streams end with
/// `event:error` saying so, and new subscribers get 503.
#[test]
fn deleted_topic_ends_streams_after_the_timeout() {
    let broker = common::Broker::start();
    broker.create_topic("items", 2);
    let proxy = Proxy::start(&config(broker.addr, "  unavailable_timeout: 1s\n"), "0,1");
    let mut c = SseClient::connect(proxy.addr, "/items", &[]);
    let producer = ProducerOnly::connect(broker.addr);
    produce(&producer, 0, (0..3).map(|i| format!("d-p0-{i}")));
    assert_eq!(c.take(3).len(), 3);
    producer.delete_topic("items");
    let error = c.next_event();
    assert_eq!(error.event.as_deref(), Some("error"), "{error:?}");
    assert!(error.data.contains("does not exist"), "{}", error.data);
    c.wait_eof();
    let resp = String::from_utf8(raw_request(
        proxy.addr,
        b"GET /items HTTP/1.1\r\nhost: x\r\n\r\n",
    ))
    .unwrap();
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    // Still gone: nothing in the proxy created it again.
    let topics = producer.topics();
    assert!(!topics.contains(&"items".to_owned()), "{topics:?}");
}

/// A stream pruned to the partition its key hashes to (`partitioner:
/// murmur2`) cannot survive a change of the partition count: the key
/// hashes elsewhere now. It ends with `event:error` saying so, and the
/// client's reconnect hashes again.
#[test]
fn pruned_streams_end_when_the_partition_count_changes() {
    let broker = common::Broker::start();
    broker.create_topic("items", 2);
    let routes = "routes:\n  - path: /keys/{id}\n    topic: items\n    start: earliest\n    partitioner: murmur2\n    filters:\n      - key: \"${params.id}\"\n";
    let cfg = config(broker.addr, "").replace("routes:\n", routes);
    let proxy = Proxy::start(&cfg, "0,1");
    let producer = ProducerOnly::connect(broker.addr);
    let key = b"key-1".to_vec();
    let p = sse_kafka::codec::partitioner::partition_for_key(&key, 2);
    producer.produce_records(
        "items",
        p as i32,
        vec![(Some(key.clone()), Some(b"before".to_vec()))],
        rskafka::client::partition::Compression::NoCompression,
    );
    let mut c = SseClient::connect(proxy.addr, "/keys/key-1", &[]);
    assert_eq!(c.next_event().data, "before");
    producer.delete_topic("items");
    producer.create_topic("items", 4);
    let error = c.next_event();
    assert_eq!(error.event.as_deref(), Some("error"), "{error:?}");
    assert!(
        error.data.contains("now has 4 partitions"),
        "{}",
        error.data
    );
    c.wait_eof();
}
