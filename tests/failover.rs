//! Failover, end to end: an instance killed with SIGKILL (no drain) under
//! open streams while records keep being produced, and every client, once
//! its stream ends, reconnects with its `Last-Event-ID` and gets exactly
//! the records it had not seen: from a new instance started on the same
//! port, or from the other of two instances behind a real HAProxy. Real
//! nisshi, the real proxy binary, real socket clients, one thread each.
//!
//! Exactness is checked twice for every event a client receives: its
//! value (`p<partition>-<seq>`, [`Sequences`]: per partition every number
//! once, in order) and its id, which must carry as the next offset of
//! every partition exactly the records the client has received (a topic
//! this test alone produces to, so sequence number and offset agree).

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use common::{
    config_for, produce_seq, seq_value, wait_until, Broker, HaProxy, ProducerOnly, Proxy,
    Sequences, SseClient, DEADLINE, SERVED_BY,
};
use rskafka::client::partition::Compression;
use sse_kafka::codec::event_id;
use sse_kafka::codec::sse::Event;

const ROUTE_ITEMS: &str = "routes:\n  - path: /items\n    topic: items\n";

/// Sequence numbers per produce request and partition: small, so the
/// producer sends many requests and a kill lands between some of them.
const STEP: usize = 5;

/// Streams one client may open before the test calls it a reconnect loop:
/// the first and one resume after the kill are all it needs.
const MAX_STREAMS: usize = 4;

/// A moment of the test that other threads wait for; the main thread
/// reaches it once.
#[derive(Default)]
struct Moment(AtomicBool);

impl Moment {
    fn reach(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn wait(&self, what: &str) {
        wait_until(what, || self.0.load(Ordering::SeqCst));
    }
}

/// Produces rounds `rounds` of sequenced records (round `i` is
/// `p<p>-<i>` on every partition), `STEP` rounds per request, and counts
/// the rounds done in `done`.
fn produce_rounds(
    producer: &ProducerOnly,
    partitions: i32,
    rounds: Range<usize>,
    done: &AtomicUsize,
) {
    let rounds: Vec<usize> = rounds.collect();
    for step in rounds.chunks(STEP) {
        for p in 0..partitions {
            let records = step
                .iter()
                .map(|&i| (None, Some(seq_value(p, i, ""))))
                .collect();
            producer.produce_records("items", p, records, Compression::NoCompression);
        }
        done.store(*step.last().unwrap() + 1, Ordering::SeqCst);
    }
}

/// The next offset of every partition that an event id of topic `items`
/// carries.
fn next_offsets(id: &str) -> Vec<usize> {
    event_id::decode_progress(event_id::topic_hash("items"), id.as_bytes())
        .unwrap_or_else(|e| panic!("{id:?} is not a progress id of topic items: {e}"))
        .offsets()
        .iter()
        .map(|o| usize::try_from(o.0).expect("a non-negative offset"))
        .collect()
}

/// A response header's value (names are case-insensitive).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The next event of the stream, or `None` once the server has closed it
/// (EOF, or a reset, after which the next read is EOF) with every event it
/// sent taken. Fails after [`DEADLINE`] with neither.
fn next_or_end(c: &mut SseClient) -> Option<Event> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if c.buffered_events() > 0 {
            return Some(c.next_event());
        }
        if c.eof {
            return None;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "neither an event nor the end of the stream within {DEADLINE:?}"
        );
        c.read_some(left);
    }
}

/// One stream (connection) of a [`Follower`].
#[derive(Debug)]
struct Stream {
    /// The instance HAProxy says served it; `None` without HAProxy.
    served_by: Option<String>,
    /// The `Last-Event-ID` it was opened with.
    resumed_from: Option<String>,
    records: usize,
}

/// A client that follows topic `items` as an EventSource does: each time
/// its stream ends it reconnects with the last event id it saw, and it
/// checks every record on arrival (see the file's doc).
struct Follower {
    seq: Sequences,
    streams: Vec<Stream>,
    /// The stream it is on.
    client: SseClient,
}

impl Follower {
    /// Follows `/items` at `addr` until it has records `0..until` of all
    /// `partitions`; counts itself in `receiving` at its first record and
    /// calls `before_reconnect` each time its stream ends.
    fn follow(
        addr: SocketAddr,
        partitions: usize,
        until: usize,
        receiving: &AtomicUsize,
        before_reconnect: impl Fn(),
    ) -> Follower {
        let mut seq = Sequences::new(partitions);
        let mut streams: Vec<Stream> = Vec::new();
        let mut last_id: Option<String> = None;
        loop {
            let headers: Vec<(&str, &str)> = last_id
                .iter()
                .map(|id| ("Last-Event-ID", id.as_str()))
                .collect();
            let mut client = SseClient::connect(addr, "/items", &headers);
            assert_eq!(client.status(), 200, "{}", client.head);
            let mut stream = Stream {
                served_by: header(&client.head, SERVED_BY).map(str::to_owned),
                resumed_from: last_id.clone(),
                records: 0,
            };
            while let Some(e) = next_or_end(&mut client) {
                check(&mut seq, &e);
                if streams.is_empty() && stream.records == 0 {
                    receiving.fetch_add(1, Ordering::SeqCst);
                }
                stream.records += 1;
                if seq.next().iter().all(|&n| n == until) {
                    streams.push(stream);
                    return Follower {
                        seq,
                        streams,
                        client,
                    };
                }
            }
            // What an EventSource sends when it reconnects.
            last_id = Some(
                client
                    .last_event_id()
                    .expect("an event id before the stream ended"),
            );
            streams.push(stream);
            assert!(
                streams.len() < MAX_STREAMS,
                "{} streams ended before every record arrived: {streams:?}",
                streams.len()
            );
            before_reconnect();
        }
    }

    /// Takes the next `n` events of the stream it is on.
    fn take(&mut self, n: usize) {
        for _ in 0..n {
            let e = self.client.next_event();
            check(&mut self.seq, &e);
        }
    }
}

/// One record checked by value (the next of its partition) and by id
/// (progress exactly at what has been received).
fn check(seq: &mut Sequences, e: &Event) {
    seq.check(e);
    let id = e.id.as_deref().unwrap_or_else(|| panic!("no id: {e:?}"));
    assert_eq!(
        next_offsets(id),
        seq.next(),
        "the id of {e:?} does not carry exactly the records received"
    );
}

/// Two ports that were free a moment ago, and distinct: both are held
/// while they are picked ([`common::free_port`] twice may give one twice).
fn two_free_ports() -> (u16, u16) {
    let port = |l: &TcpListener| l.local_addr().unwrap().port();
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (port(&a), port(&b))
}

/// SIGKILL: the instance dies with no drain. Returns once nothing listens
/// on its ports any more. (The child is reaped when `proxy` drops.)
fn sigkill(proxy: &Proxy) {
    let pid = proxy.pid() as libc::pid_t;
    // SAFETY: kill(2) with the pid of a child this test started and has
    // not reaped, so the pid is still its.
    let sent = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(sent, 0, "kill: {}", std::io::Error::last_os_error());
    wait_until("the killed instance's ports to close", || {
        TcpStream::connect(proxy.addr).is_err() && TcpStream::connect(proxy.admin).is_err()
    });
}

/// A single instance is killed mid-stream and a new one is started on the
/// same ports with the same config: its cache is empty, so the resumes
/// read from Kafka what the dead instance had not delivered and what was
/// produced while no instance ran, then join the live stream.
#[test]
fn sigkill_mid_stream_then_a_new_proxy_on_the_same_port_resumes_exactly() {
    const CLIENTS: usize = 6;
    const PARTITIONS: i32 = 3;
    const PER: usize = 300;
    // Rounds produced before the kill may happen, before it must have
    // happened, and before the new instance may start.
    const KILL_FROM: usize = 100;
    const KILLED_BY: usize = 200;
    const RESTART_FROM: usize = 250;
    let broker = Broker::start();
    broker.create_topic("items", PARTITIONS);
    let (port, admin) = two_free_ports();
    // config_for's, on fixed ports.
    let cfg = format!(
        "listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:{admin}\nkafka:\n  bootstrap: [\"{}\"]\n  fetch_max_wait: 50ms\n{ROUTE_ITEMS}",
        broker.addr
    );
    let old = Proxy::start(&cfg, "0,1");
    let addr = old.addr;
    let receiving = AtomicUsize::new(0);
    let produced = AtomicUsize::new(0);
    let (killed, restarted) = (Moment::default(), Moment::default());
    let (new, mut followers) = std::thread::scope(|s| {
        let followers: Vec<_> = (0..CLIENTS)
            .map(|_| {
                s.spawn(|| {
                    Follower::follow(addr, PARTITIONS as usize, PER, &receiving, || {
                        restarted.wait("the new instance")
                    })
                })
            })
            .collect();
        wait_until("every stream to open", || {
            old.metric("sse_kafka_connections_open") == CLIENTS as u64
        });
        let producer = s.spawn(|| {
            let producer = ProducerOnly::connect(broker.addr);
            produce_rounds(&producer, PARTITIONS, 0..KILLED_BY, &produced);
            killed.wait("the kill");
            produce_rounds(&producer, PARTITIONS, KILLED_BY..RESTART_FROM, &produced);
            restarted.wait("the new instance");
            produce_rounds(&producer, PARTITIONS, RESTART_FROM..PER, &produced);
        });
        wait_until("every client to stream records", || {
            receiving.load(Ordering::SeqCst) == CLIENTS
                && produced.load(Ordering::SeqCst) >= KILL_FROM
        });
        sigkill(&old);
        killed.reach();
        // Records produced while no instance runs.
        wait_until("records produced while down", || {
            produced.load(Ordering::SeqCst) >= RESTART_FROM
        });
        let new = Proxy::start(&cfg, "0,1");
        assert_eq!((new.addr, new.admin), (old.addr, old.admin));
        restarted.reach();
        producer.join().unwrap();
        let followers: Vec<Follower> = followers
            .into_iter()
            .map(|f| f.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect();
        (new, followers)
    });
    for f in &followers {
        let [before, after] = &f.streams[..] else {
            panic!("not one stream, then one resume: {:?}", f.streams);
        };
        assert!(before.records > 0 && after.records > 0, "{:?}", f.streams);
        assert!(after.resumed_from.is_some(), "{:?}", f.streams);
        assert_eq!(before.records + after.records, PARTITIONS as usize * PER);
    }
    // Nothing the resumes needed was in the new instance's cache: it
    // started at the log's end, after every record they missed.
    let fetches = new.metric("sse_kafka_catchup_fetches_total");
    assert!(fetches >= 1, "catch-up fetches {fetches}");
    // Still live, and nothing repeated after the last record.
    produce_seq(&broker, "items", PARTITIONS, PER..PER + 1, "", 1);
    for f in &mut followers {
        f.take(PARTITIONS as usize);
        f.seq.assert_each_at(PER + 1);
    }
}

/// Two instances behind HAProxy share 200 clients; one is killed with
/// SIGKILL while records are produced. Its clients reconnect through
/// HAProxy at once (no `retry` wait: a harsher storm than EventSource's),
/// land on the survivor, and every client ends with every record exactly
/// once; the survivor's own clients are never interrupted.
#[test]
fn two_instances_behind_haproxy_one_killed_every_client_resumes_exactly() {
    const CLIENTS: usize = 200;
    const PARTITIONS: i32 = 4;
    const PER: usize = 300;
    // Rounds produced before the kill may happen and before it must have.
    const KILL_FROM: usize = 100;
    const KILLED_BY: usize = 200;
    let broker = Broker::start();
    broker.create_topic("items", PARTITIONS);
    let cfg = config_for(&broker, ROUTE_ITEMS);
    let a = Proxy::start(&cfg, "0,1");
    let b = Proxy::start(&cfg, "0,1");
    let lb = HaProxy::start(&[("a", &a), ("b", &b)]);
    let receiving = AtomicUsize::new(0);
    let produced = AtomicUsize::new(0);
    let killed = Moment::default();
    let (on_a, on_b, mut followers) = std::thread::scope(|s| {
        let followers: Vec<_> = (0..CLIENTS)
            .map(|_| {
                s.spawn(|| Follower::follow(lb.addr, PARTITIONS as usize, PER, &receiving, || {}))
            })
            .collect();
        let open = |p: &Proxy| p.metric("sse_kafka_connections_open");
        wait_until("every stream to open on an instance", || {
            open(&a) + open(&b) == CLIENTS as u64
        });
        let (on_a, on_b) = (open(&a), open(&b));
        assert!(
            on_a > 0 && on_b > 0,
            "round robin left an instance without clients: a {on_a}, b {on_b}"
        );
        let producer = s.spawn(|| {
            let producer = ProducerOnly::connect(broker.addr);
            produce_rounds(&producer, PARTITIONS, 0..KILLED_BY, &produced);
            killed.wait("the kill");
            produce_rounds(&producer, PARTITIONS, KILLED_BY..PER, &produced);
        });
        wait_until("every client to stream records", || {
            receiving.load(Ordering::SeqCst) == CLIENTS
                && produced.load(Ordering::SeqCst) >= KILL_FROM
        });
        sigkill(&a);
        killed.reach();
        wait_until("haproxy to take the killed instance out", || {
            lb.status_of("a") == "DOWN"
        });
        producer.join().unwrap();
        let followers: Vec<Follower> = followers
            .into_iter()
            .map(|f| f.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect();
        (on_a, on_b, followers)
    });
    let first_on = |name: &str| {
        followers
            .iter()
            .filter(|f| f.streams[0].served_by.as_deref() == Some(name))
            .count() as u64
    };
    assert_eq!(
        (first_on("a"), first_on("b")),
        (on_a, on_b),
        "x-served-by disagrees with the instances' connections_open"
    );
    for f in &followers {
        let total: usize = f.streams.iter().map(|s| s.records).sum();
        assert_eq!(total, PARTITIONS as usize * PER, "{:?}", f.streams);
        match &f.streams[..] {
            [only] => assert_eq!(only.served_by.as_deref(), Some("b"), "{:?}", f.streams),
            [before, after] => {
                assert_eq!(before.served_by.as_deref(), Some("a"), "{:?}", f.streams);
                assert_eq!(after.served_by.as_deref(), Some("b"), "{:?}", f.streams);
                assert!(after.resumed_from.is_some() && after.records > 0);
            }
            _ => panic!("not one stream, or one resume: {:?}", f.streams),
        }
    }
    let resumed = followers.iter().filter(|f| f.streams.len() == 2).count() as u64;
    assert_eq!(resumed, on_a, "every client of the killed instance resumed");
    wait_until("every client to be on the survivor", || {
        b.metric("sse_kafka_connections_open") == CLIENTS as u64
    });
    // Still live, all of them, and nothing repeated after the last record.
    produce_seq(&broker, "items", PARTITIONS, PER..PER + 1, "", 1);
    for f in &mut followers {
        f.take(PARTITIONS as usize);
        f.seq.assert_each_at(PER + 1);
    }
    eprintln!(
        "{CLIENTS} clients: {on_a} on the killed instance resumed on the other ({on_b}); survivor catch-up fetches {}, cached records {}",
        b.metric("sse_kafka_catchup_fetches_total"),
        b.metric("sse_kafka_catchup_cached_records_total"),
    );
}
