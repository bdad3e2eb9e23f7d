//! End-to-end tests: the real binary against a real nisshi broker, spoken
//! to by real SSE clients over sockets. Wire bytes are asserted where the
//! wire is the promise.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::{config_for, raw_request, Broker, Proxy, SseClient};

const ROUTE_ITEMS: &str = "routes:\n  - path: /items\n    topic: items\n";

fn value_of(e: &sse_kafka::codec::sse::Event) -> (usize, usize) {
    // Values are "p<partition>-<seq>", optionally followed by "-<padding>".
    let mut parts = e.data.strip_prefix('p').unwrap().split('-');
    let p = parts.next().unwrap().parse().unwrap();
    let i = parts.next().unwrap().parse().unwrap();
    (p, i)
}

fn produce_round(
    broker: &Broker,
    topic: &str,
    partitions: i32,
    seq: std::ops::Range<usize>,
) -> usize {
    let mut n = 0;
    for p in 0..partitions {
        let records = seq
            .clone()
            .map(|i| (None, Some(format!("p{p}-{i}").into_bytes())))
            .collect();
        n += broker.produce_many(topic, p, records).len();
    }
    n
}

/// Every client receives every record; within a partition, in offset order.
fn assert_complete_and_ordered(
    events: &[sse_kafka::codec::sse::Event],
    partitions: usize,
    per_partition: usize,
) {
    let mut next = vec![0usize; partitions];
    for e in events {
        let (p, i) = value_of(e);
        assert_eq!(
            i, next[p],
            "partition {p} out of order or duplicated: {e:?}"
        );
        next[p] += 1;
    }
    assert_eq!(next, vec![per_partition; partitions]);
}

#[test]
fn live_delivery_across_partitions_and_shards() {
    let broker = Broker::start();
    broker.create_topic("items", 4);
    let proxy = Proxy::start(&config_for(&broker, ROUTE_ITEMS), "0,1");
    // Enough clients that SO_REUSEPORT puts some on each shard.
    let mut clients: Vec<_> = (0..8)
        .map(|_| SseClient::connect(proxy.addr, "/items", &[]))
        .collect();
    for c in &clients {
        assert_eq!(c.status(), 200);
        assert!(
            c.head.contains("content-type: text/event-stream\r\n"),
            "{}",
            c.head
        );
        assert!(c.head.contains("cache-control: no-cache\r\n"));
        assert!(c.head.contains("access-control-allow-origin: *\r\n"));
    }
    produce_round(&broker, "items", 4, 0..50);
    for c in &mut clients {
        let events = c.take(200);
        assert_complete_and_ordered(&events, 4, 50);
        let retry = c.retry().expect("retry field at stream start");
        assert!(
            (2000..=3000).contains(&retry),
            "retry {retry} outside base+jitter"
        );
    }
    assert!(proxy.metric("sse_kafka_events_sent_total") >= 8 * 200);
    assert_eq!(proxy.metric("sse_kafka_connections_open"), 8);
}

#[test]
fn values_split_on_every_line_end_and_keep_leading_spaces() {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let proxy = Proxy::start(&config_for(&broker, ROUTE_ITEMS), "0");
    let mut c = SseClient::connect(proxy.addr, "/items", &[]);
    let value = b"a\nb\r\nc\rd\n  two spaces\n\ttab\n";
    broker.produce("items", 0, Some(b"k"), Some(value));
    let e = c.next_event();
    assert_eq!(e.data, "a\nb\nc\nd\n  two spaces\n\ttab\n");
    let id = e.id.clone().unwrap();
    let expected = format!(
        "id:{id}\ndata:a\ndata:b\ndata:c\ndata:d\ndata:   two spaces\ndata:\ttab\ndata:\n\n"
    );
    assert!(
        String::from_utf8_lossy(&c.raw).ends_with(&expected),
        "wire bytes: {:?}",
        String::from_utf8_lossy(&c.raw)
    );
}

#[test]
fn tombstone_becomes_delete_event_and_base64_route() {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let routes = "routes:\n  - path: /items\n    topic: items\n  - path: /raw\n    topic: items\n    value: base64\n";
    let proxy = Proxy::start(&config_for(&broker, routes), "0");
    let mut text = SseClient::connect(proxy.addr, "/items", &[]);
    let mut raw = SseClient::connect(proxy.addr, "/raw", &[]);
    broker.produce("items", 0, Some(b"\xffkey?"), None);
    broker.produce("items", 0, None, Some(b"\x00\x01bin"));
    let tomb = text.next_event();
    assert_eq!(tomb.event.as_deref(), Some("delete"));
    assert_eq!(tomb.data, "_2tleT8");
    let tomb2 = raw.next_event();
    assert_eq!(tomb2.event.as_deref(), Some("delete"));
    assert_eq!(tomb2.id, tomb.id, "both routes share the topic's ids");
    let bin = raw.next_event();
    assert_eq!(bin.data, "AAFiaW4=");
    assert_eq!(bin.event, None);
}

#[test]
fn start_earliest_replays_from_the_beginning() {
    let broker = Broker::start();
    broker.create_topic("items", 2);
    produce_round(&broker, "items", 2, 0..10);
    let routes = "routes:\n  - path: /all\n    topic: items\n    start: earliest\n";
    let proxy = Proxy::start(&config_for(&broker, routes), "0,1");
    let mut c = SseClient::connect(proxy.addr, "/all", &[]);
    let mut events = c.take(20);
    // Then it continues live.
    produce_round(&broker, "items", 2, 10..15);
    events.extend(c.take(10));
    assert_complete_and_ordered(&events, 2, 15);
}

/// Reads `first` events, drops the connection, produces more, resumes with
/// the last id (header or query) and checks nothing is lost or repeated.
fn resume_exact(partitions: i32, by_query: bool) {
    let broker = Broker::start();
    broker.create_topic("items", partitions);
    let proxy = Proxy::start(&config_for(&broker, ROUTE_ITEMS), "0,1");
    let per = 6;
    let mut c = SseClient::connect(proxy.addr, "/items", &[]);
    produce_round(&broker, "items", partitions, 0..per);
    let total = partitions as usize * per;
    let first = total / 3;
    let mut events = c.take(first);
    let last_id = events.last().unwrap().id.clone().unwrap();
    drop(c);
    produce_round(&broker, "items", partitions, per..2 * per);
    let mut c2 = if by_query {
        SseClient::connect(proxy.addr, &format!("/items?lastEventId={last_id}"), &[])
    } else {
        SseClient::connect(proxy.addr, "/items", &[("Last-Event-ID", &last_id)])
    };
    events.extend(c2.take(2 * total - first));
    assert_complete_and_ordered(&events, partitions as usize, 2 * per);
    // And the resumed stream is live afterwards.
    produce_round(&broker, "items", partitions, 2 * per..2 * per + 1);
    events.extend(c2.take(partitions as usize));
    assert_complete_and_ordered(&events, partitions as usize, 2 * per + 1);
}

#[test]
fn resume_by_header_4_partitions() {
    resume_exact(4, false);
}

#[test]
fn resume_by_query_4_partitions() {
    resume_exact(4, true);
}

#[test]
fn resume_by_header_64_partitions() {
    resume_exact(64, false);
}

#[test]
fn resume_by_query_64_partitions() {
    resume_exact(64, true);
}

#[test]
fn resume_while_records_keep_arriving() {
    let broker = Broker::start();
    broker.create_topic("items", 4);
    let proxy = Proxy::start(&config_for(&broker, ROUTE_ITEMS), "0,1");
    let addr = broker.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut c = SseClient::connect(proxy.addr, "/items", &[]);
    // A second producer (own client) keeps producing during the switch.
    let producer = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let b = common::ProducerOnly::connect(addr);
            let mut seq = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || seq < 400 {
                for p in 0..4 {
                    b.produce("items", p, format!("p{p}-{seq}").into_bytes());
                }
                seq += 1;
            }
            seq
        })
    };
    let mut events = c.take(200);
    for round in 0..3 {
        let last = events.last().unwrap().id.clone().unwrap();
        drop(c);
        c = SseClient::connect(proxy.addr, "/items", &[("Last-Event-ID", &last)]);
        events.extend(c.take(100 + round * 50));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let produced = producer.join().unwrap();
    let have = events.len();
    events.extend(c.take(produced * 4 - have));
    assert_complete_and_ordered(&events, 4, produced);
}

#[test]
fn malformed_id_resets_and_starts_as_configured() {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let proxy = Proxy::start(&config_for(&broker, ROUTE_ITEMS), "0");
    let mut c = SseClient::connect(proxy.addr, "/items", &[("Last-Event-ID", "not-an-id!")]);
    let reset = c.next_event();
    assert_eq!(reset.event.as_deref(), Some("reset"));
    assert!(reset.data.starts_with("{\"reason\":\""), "{}", reset.data);
    broker.produce("items", 0, None, Some(b"after"));
    assert_eq!(c.next_event().data, "after");
    // An id of another topic is a reset too.
    broker.create_topic("other", 1);
    let mut other_id = Vec::new();
    sse_kafka::codec::event_id::encode_progress(
        sse_kafka::codec::event_id::topic_hash("other"),
        &[sse_kafka::model::Offset(0)],
        &mut Vec::new(),
        &mut other_id,
    );
    let mut c2 = SseClient::connect(
        proxy.addr,
        "/items",
        &[("Last-Event-ID", std::str::from_utf8(&other_id).unwrap())],
    );
    assert_eq!(c2.next_event().event.as_deref(), Some("reset"));
}

#[test]
fn http_errors_then_still_serving() {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let proxy = Proxy::start(&config_for(&broker, ROUTE_ITEMS), "0");
    let status = |resp: &[u8]| String::from_utf8_lossy(&resp[..12]).to_string();
    assert_eq!(
        status(&raw_request(proxy.addr, b"GARBAGE\r\n\r\n")),
        "HTTP/1.1 400"
    );
    assert_eq!(
        status(&raw_request(
            proxy.addr,
            b"GET /nope HTTP/1.1\r\nhost: x\r\n\r\n"
        )),
        "HTTP/1.1 404"
    );
    let r405 = raw_request(
        proxy.addr,
        b"POST /items HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n",
    );
    assert_eq!(status(&r405), "HTTP/1.1 405");
    assert!(String::from_utf8_lossy(&r405).contains("allow: GET, OPTIONS\r\n"));
    let mut big = b"GET /items HTTP/1.1\r\nhost: x\r\n".to_vec();
    for i in 0..40 {
        big.extend_from_slice(format!("x-filler-{i}: {}\r\n", "a".repeat(1000)).as_bytes());
    }
    big.extend_from_slice(b"\r\n");
    assert_eq!(status(&raw_request(proxy.addr, &big)), "HTTP/1.1 431");
    let long_line = format!(
        "GET /items?{} HTTP/1.1\r\nhost: x\r\n\r\n",
        "q".repeat(24 * 1024)
    );
    assert_eq!(
        status(&raw_request(proxy.addr, long_line.as_bytes())),
        "HTTP/1.1 414"
    );
    let pre = raw_request(
        proxy.addr,
        b"OPTIONS /items HTTP/1.1\r\nhost: x\r\norigin: https://app.example\r\naccess-control-request-method: GET\r\naccess-control-request-headers: last-event-id\r\n\r\n",
    );
    let pre = String::from_utf8_lossy(&pre).to_string();
    assert!(pre.starts_with("HTTP/1.1 204"), "{pre}");
    assert!(pre.contains("access-control-allow-origin: *\r\n"), "{pre}");
    assert!(
        pre.contains("access-control-allow-headers: last-event-id\r\n"),
        "{pre}"
    );
    // A 16 KiB Last-Event-ID is accepted (it resets: it is not an id).
    let long = "A".repeat(16 * 1024);
    let mut c = SseClient::connect(proxy.addr, "/items", &[("Last-Event-ID", &long)]);
    assert_eq!(c.status(), 200);
    assert_eq!(c.next_event().event.as_deref(), Some("reset"));
    // Still serving.
    let mut c = SseClient::connect(proxy.addr, "/items", &[]);
    broker.produce("items", 0, None, Some(b"ok"));
    assert_eq!(c.next_event().data, "ok");
    assert!(proxy.metric("sse_kafka_http_errors_total") >= 5);
}

/// A connection that sends only part of a request head is closed without a
/// response once `connections.request_timeout` has passed since the part
/// arrived: not before, and within the timeout plus a margin.
#[test]
fn idle_request_is_closed_after_the_timeout() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    const TIMEOUT: Duration = Duration::from_millis(300);
    /// Room for a shared, busy CI machine between the server's timer firing
    /// and this test seeing the close.
    const MARGIN: Duration = Duration::from_secs(2);
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let cfg = config_for(
        &broker,
        &format!(
            "connections:\n  request_timeout: {}ms\n{ROUTE_ITEMS}",
            TIMEOUT.as_millis()
        ),
    );
    let proxy = Proxy::start(&cfg, "0");
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    // The server's timer starts when it begins reading the head, after it
    // accepts the connection, which its listener (TCP_DEFER_ACCEPT) does
    // only once these bytes have arrived: so after `sent`.
    let sent = Instant::now();
    s.write_all(b"GET /items HTTP/1.1\r\n").unwrap();
    // Only bounds a server that never closes; the assertions below bound
    // the close itself.
    s.set_read_timeout(Some(common::DEADLINE)).unwrap();
    let mut answer = Vec::new();
    let read = s.read_to_end(&mut answer);
    let elapsed = sent.elapsed();
    assert!(
        read.is_ok(),
        "no clean close (EOF) after {elapsed:?}: {read:?}"
    );
    assert!(
        answer.is_empty(),
        "the server answered a partial request head: {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        elapsed >= TIMEOUT,
        "closed after {elapsed:?}, before the {TIMEOUT:?} request timeout"
    );
    assert!(
        elapsed <= TIMEOUT + MARGIN,
        "closed after {elapsed:?}, more than {MARGIN:?} past the {TIMEOUT:?} request timeout"
    );
}

#[test]
fn keepalive_comments_after_silence() {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let routes =
        "keepalive: 15s\nroutes:\n  - path: /items\n    topic: items\n    keepalive: 200ms\n";
    let proxy = Proxy::start(&config_for(&broker, routes), "0");
    let mut c = SseClient::connect(proxy.addr, "/items", &[]);
    c.wait_comments(2);
    assert!(String::from_utf8_lossy(&c.raw).contains(":\n\n"));
    assert!(proxy.metric("sse_kafka_keepalives_sent_total") >= 2);
}

#[test]
fn sigterm_ends_streams_and_exits_zero() {
    let broker = Broker::start();
    broker.create_topic("items", 2);
    let mut proxy = Proxy::start(&config_for(&broker, ROUTE_ITEMS), "0,1");
    let mut clients: Vec<_> = (0..4)
        .map(|_| SseClient::connect(proxy.addr, "/items", &[]))
        .collect();
    broker.produce("items", 0, None, Some(b"before"));
    for c in &mut clients {
        assert_eq!(c.next_event().data, "before");
    }
    let status = proxy.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    for c in &mut clients {
        c.wait_eof();
    }
}

#[test]
fn bad_config_exits_2_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "kafka:\n  bootstrap: [\"127.0.0.1:9092\"]\nroutes:\n  - path: /items\n    topic: items\n    keepalive: soon\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sse-kafka"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:6:"), "{err}");
    assert!(err.contains("routes[0].keepalive"), "{err}");
    // `check` validates the same way and prints the routes when good.
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "kafka:\n  bootstrap: [\"127.0.0.1:9092\"]\nroutes:\n  - path: /items\n    topic: items\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sse-kafka"))
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("/items"));
}

#[test]
fn ids_resume_on_another_shard_layout() {
    // An id made by a 2-shard instance resumes on a 1-shard instance.
    let broker = Broker::start();
    broker.create_topic("items", 4);
    let mut seen = BTreeMap::new();
    let last = {
        let proxy = Proxy::start(&config_for(&broker, ROUTE_ITEMS), "0,1");
        let mut c = SseClient::connect(proxy.addr, "/items", &[]);
        produce_round(&broker, "items", 4, 0..5);
        for e in c.take(20) {
            seen.insert(e.data.clone(), ());
        }
        c.last_event_id().unwrap()
    };
    produce_round(&broker, "items", 4, 5..10);
    let proxy = Proxy::start(&config_for(&broker, ROUTE_ITEMS), "0");
    let mut c = SseClient::connect(proxy.addr, "/items", &[("Last-Event-ID", &last)]);
    let rest: HashSet<String> = c.take(20).into_iter().map(|e| e.data).collect();
    for p in 0..4 {
        for i in 5..10 {
            assert!(rest.contains(&format!("p{p}-{i}")), "missing p{p}-{i}");
        }
    }
    assert!(seen.keys().all(|k| !rest.contains(k)));
}

#[test]
fn slow_client_catches_up_losslessly_without_delaying_others() {
    let broker = Broker::start();
    broker.create_topic("items", 4);
    let cfg = config_for(
        &broker,
        &format!("connections:\n  max_queued_bytes: 64KiB\n{ROUTE_ITEMS}"),
    );
    let proxy = Proxy::start(&cfg, "0");
    let mut slow = SseClient::connect_small_buffer(proxy.addr, "/items");
    let mut fast = SseClient::connect(proxy.addr, "/items", &[]);
    let per = 600;
    let pad = "x".repeat(4000);
    for p in 0..4 {
        for chunk in (0..per).collect::<Vec<_>>().chunks(100) {
            let records = chunk
                .iter()
                .map(|i| (None, Some(format!("p{p}-{i}-{pad}").into_bytes())))
                .collect();
            broker.produce_many("items", p, records);
        }
    }
    // The fast client gets everything while the slow one reads nothing.
    let events = fast.take(4 * per);
    assert_complete_and_ordered(&events, 4, per);
    // ~9.6 MB is far over the 64 KiB budget plus socket buffers: the slow
    // client left the live stream ...
    common::wait_until("a demotion", || {
        proxy.metric("sse_kafka_demotions_total") >= 1
    });
    // ... taking along the frames it had not sent. How many that is
    // depends on how many records the shard had when it wrote (one write
    // pass may hold them all), so what it must read from the cache is
    // produced after the demotion is seen.
    let after = 50;
    for p in 0..4 {
        let records = (per..per + after)
            .map(|i| (None, Some(format!("p{p}-{i}-{pad}").into_bytes())))
            .collect();
        broker.produce_many("items", p, records);
    }
    let events = fast.take(4 * after);
    assert_eq!(events.len(), 4 * after);
    // When it reads again it gets every record once, in order, the later
    // ones from the partition cache (Kafka is not asked), then rejoins the
    // live stream.
    let all = per + after;
    let mut slow_events = slow.take(4 * all);
    assert_complete_and_ordered(&slow_events, 4, all);
    assert!(proxy.metric("sse_kafka_catchup_cached_records_total") >= 4 * after as u64);
    assert_eq!(proxy.metric("sse_kafka_catchup_fetches_total"), 0);
    produce_round(&broker, "items", 4, all..all + 1);
    slow_events.extend(slow.take(4));
    assert_complete_and_ordered(&slow_events, 4, all + 1);
    assert_eq!(fast.take(4).len(), 4);
}

#[test]
fn curl_receives_the_stream() {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let proxy = Proxy::start(&config_for(&broker, ROUTE_ITEMS), "0");
    let mut curl = std::process::Command::new("curl")
        .args([
            "-sN",
            "--max-time",
            "30",
            &format!("http://{}/items", proxy.addr),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl is installed");
    let stdout = curl.stdout.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    {
        let lines = std::sync::Arc::clone(&lines);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                lines.lock().unwrap().push(line);
            }
        });
    }
    common::wait_until("curl to connect", || {
        proxy.metric("sse_kafka_connections_open") == 1
    });
    broker.produce("items", 0, None, Some(b"hello curl"));
    common::wait_until("curl to print the event", || {
        lines.lock().unwrap().iter().any(|l| l == "data:hello curl")
    });
    let got = lines.lock().unwrap().clone();
    assert!(got.iter().any(|l| l.starts_with("retry:")), "{got:?}");
    assert!(got.iter().any(|l| l.starts_with("id:")), "{got:?}");
    let _ = curl.kill();
    let _ = curl.wait();
}

#[test]
fn new_connections_are_answered_during_heavy_fanout() {
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let broker = Broker::start();
    broker.create_topic("items", 2);
    let proxy = Proxy::start(&config_for(&broker, ROUTE_ITEMS), "0");
    // 2,000 readers drained by one thread.
    let readers: Vec<_> = (0..2000)
        .map(|_| {
            let c = SseClient::connect(proxy.addr, "/items", &[]);
            let s = c.into_stream();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let drain = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut readers = readers;
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                for s in &mut readers {
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                    }
                }
            }
        })
    };
    let addr = broker.addr;
    let producer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let b = common::ProducerOnly::connect(addr);
            let value = "v".repeat(150);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                b.produce("items", (n % 2) as i32, value.clone().into_bytes());
                n += 1;
            }
        })
    };
    let before = proxy.metric("sse_kafka_events_sent_total");
    common::wait_until("the fan-out to be busy", || {
        proxy.metric("sse_kafka_events_sent_total") > before + 100_000
    });
    // Every new client gets its response head and then events, while the
    // shard keeps fanning out to the 2,000 others.
    for _ in 0..100 {
        let mut c = SseClient::connect(proxy.addr, "/items", &[]);
        assert_eq!(c.status(), 200);
        assert!(c.next_event().data.starts_with('v'));
    }
    stop.store(true, Ordering::Relaxed);
    producer.join().unwrap();
    drain.join().unwrap();
}

#[test]
fn every_compression_codec_is_decoded() {
    use rskafka::client::partition::Compression;
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let proxy = Proxy::start(&config_for(&broker, ROUTE_ITEMS), "0");
    let mut c = SseClient::connect(proxy.addr, "/items", &[]);
    let codecs = [
        ("none", Compression::NoCompression),
        ("gzip", Compression::Gzip),
        ("lz4", Compression::Lz4),
        ("snappy", Compression::Snappy),
        ("zstd", Compression::Zstd),
    ];
    for (name, codec) in codecs {
        let records = (0..3)
            .map(|i| (None, Some(format!("{name}-{i}").into_bytes())))
            .collect();
        broker.produce_compressed("items", 0, records, codec);
        for i in 0..3 {
            assert_eq!(c.next_event().data, format!("{name}-{i}"));
        }
    }
}

/// The npm `eventsource` package (a WHATWG-conformant EventSource) loses
/// nothing when its server goes away and a new instance takes the port:
/// it reconnects with Last-Event-ID and the new process resumes exactly.
#[test]
fn eventsource_reconnects_to_a_new_instance_and_resumes_exactly() {
    use std::io::BufRead;
    let broker = Broker::start();
    broker.create_topic("items", 4);
    let port = common::free_port();
    let cfg = format!(
        "listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:0\nretry: 100ms\nretry_jitter: 100ms\nkafka:\n  bootstrap: [\"{}\"]\n  fetch_max_wait: 50ms\n{ROUTE_ITEMS}",
        broker.addr
    );
    let mut first = Proxy::start(&cfg, "0,1");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/eventsource.mjs");
    assert!(
        std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/node_modules/eventsource"
        ))
        .exists(),
        "run `npm ci --prefix tests/clients` (examples/test.sh does)"
    );
    let mut node = std::process::Command::new("node")
        .args([script, &format!("http://127.0.0.1:{port}/items"), "40"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node is installed");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = std::sync::Arc::clone(&lines);
        let stdout = node.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                lines.lock().unwrap().push(line);
            }
        })
    };
    let count = |what: &str| {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(what))
            .count()
    };
    common::wait_until("the EventSource to open", || {
        count("\"type\":\"open\"") == 1
    });
    produce_round(&broker, "items", 4, 0..5);
    common::wait_until("20 events", || count("\"type\":\"message\"") == 20);
    assert_eq!(first.terminate(Duration::from_secs(10)).code(), Some(0));
    produce_round(&broker, "items", 4, 5..10);
    let _second = Proxy::start(&cfg, "0,1");
    assert!(
        node.wait().unwrap().success(),
        "the client saw 40 events and exited"
    );
    reader.join().unwrap();
    let lines = lines.lock().unwrap();
    assert_eq!(
        count_of(&lines, "\"type\":\"open\""),
        2,
        "one reconnect: {lines:?}"
    );
    let events: Vec<sse_kafka::codec::sse::Event> = lines
        .iter()
        .filter(|l| l.contains("\"type\":\"message\""))
        .map(|l| {
            let data = l
                .split("\"data\":\"")
                .nth(1)
                .unwrap()
                .trim_end_matches("\"}");
            sse_kafka::codec::sse::Event {
                data: data.to_owned(),
                ..Default::default()
            }
        })
        .collect();
    assert_complete_and_ordered(&events, 4, 10);
}

fn count_of(lines: &[String], what: &str) -> usize {
    lines.iter().filter(|l| l.contains(what)).count()
}

#[test]
fn unknown_topic_is_503_until_its_metadata_loads() {
    let broker = Broker::start();
    let proxy = common::Proxy::start_unready(&config_for(&broker, ROUTE_ITEMS), "0,1");
    let live = common::http_get(proxy.admin, "/health/live").unwrap();
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    let ready = common::http_get(proxy.admin, "/health/ready").unwrap();
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    let resp = String::from_utf8(raw_request(
        proxy.addr,
        b"GET /items HTTP/1.1\r\nhost: x\r\n\r\n",
    ))
    .unwrap();
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    assert!(resp.contains("retry-after: 1\r\n"), "{resp}");
    // The topic appears: the proxy discovers it and serves.
    broker.create_topic("items", 2);
    common::wait_until("ready", || {
        common::http_get(proxy.admin, "/health/ready")
            .map(|r| r.starts_with("HTTP/1.1 200"))
            .unwrap_or(false)
    });
    let mut c = SseClient::connect(proxy.addr, "/items", &[]);
    broker.produce("items", 1, None, Some(b"now"));
    assert_eq!(c.next_event().data, "now");
}

/// The load generator's binary. It is another package of the workspace
/// (loadtest/), and cargo neither names (`CARGO_BIN_EXE_*`) nor builds the
/// binaries of other packages for a test, so it is taken from where cargo
/// puts every binary of the workspace, beside the proxy's; the test command
/// (examples/test.sh) builds it first.
fn load_generator() -> std::path::PathBuf {
    let proxy = std::path::Path::new(env!("CARGO_BIN_EXE_sse-kafka"));
    let path = proxy.with_file_name("sse-kafka-load");
    assert!(
        path.is_file(),
        "{} is missing: build it first (cargo build -p sse-kafka-load, same profile)",
        path.display()
    );
    path
}

/// The bundled load generator against the real proxy: 200 connections on
/// two shards, a fifth of them dropped mid-window and resumed with
/// Last-Event-ID while records keep coming, and twenty extra clients timed
/// to their first byte. Every resume is exact, and the generator's own
/// report (JSON) says so.
#[test]
fn load_generator_sees_no_loss_across_concurrent_resumes() {
    let broker = Broker::start();
    broker.create_topic("items", 4);
    let proxy = Proxy::start(&config_for(&broker, ROUTE_ITEMS), "0,1");
    let out = std::process::Command::new(load_generator())
        .args([
            "run",
            "--brokers",
            &broker.addr.to_string(),
            "--topic",
            "items",
            "--rate",
            "400",
        ])
        .args([
            "--url",
            &format!("http://{}/items", proxy.addr),
            "--connections",
            "200",
        ])
        .args([
            "--cpus",
            "1",
            "--warmup",
            "2",
            "--seconds",
            "4",
            "--drop-fraction",
            "0.2",
            "--extra-connections",
            "20",
        ])
        .output()
        .expect("run sse-kafka-load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["loss"], 0, "{report}");
    assert_eq!(report["duplicates"], 0, "{report}");
    assert_eq!(report["resume_errors"], 0, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert!(report["resumes"].as_u64().unwrap() >= 40, "{report}");
    // The extra clients each got a first byte and hung up.
    assert_eq!(report["extra"]["answered"], 20, "{report}");
    assert_eq!(report["extra"]["errors"], 0, "{report}");
    assert!(
        report["per_connection_events"]["min"].as_u64().unwrap() > 0,
        "{report}"
    );
}

/// Fifty clients drop, records keep being produced, and all of them resume
/// at once from ids well behind the head: each gets exactly what it missed,
/// through fifty concurrent catch-up readers.
#[test]
fn simultaneous_resumes_from_behind_are_exact() {
    let broker = Broker::start();
    broker.create_topic("items", 4);
    let proxy = Proxy::start(&config_for(&broker, ROUTE_ITEMS), "0,1");
    let mut clients: Vec<_> = (0..50)
        .map(|_| SseClient::connect(proxy.addr, "/items", &[]))
        .collect();
    produce_round(&broker, "items", 4, 0..10);
    let mut seen: Vec<Vec<sse_kafka::codec::sse::Event>> =
        clients.iter_mut().map(|c| c.take(40)).collect();
    let ids: Vec<String> = seen
        .iter()
        .map(|e| e.last().unwrap().id.clone().unwrap())
        .collect();
    drop(clients);
    produce_round(&broker, "items", 4, 10..60);
    let mut resumed: Vec<_> = ids
        .iter()
        .map(|id| SseClient::connect(proxy.addr, "/items", &[("Last-Event-ID", id)]))
        .collect();
    for (c, events) in resumed.iter_mut().zip(&mut seen) {
        events.extend(c.take(200));
        assert_complete_and_ordered(events, 4, 60);
    }
}

/// The command line's overrides are validated with the file, before any
/// broker is contacted (none runs here): a bad value exits 2 and the message
/// names the flag and its variable, not a place in the (valid) file.
#[test]
fn bad_override_exits_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.yaml");
    // Port 0 so that a binary which wrongly starts binds no fixed port.
    std::fs::write(
        &path,
        "listen: 127.0.0.1:0\nkafka:\n  bootstrap: [\"127.0.0.1:9092\"]\nroutes:\n  - path: /items\n    topic: items\n",
    )
    .unwrap();
    let port = common::free_port().to_string();
    let (listen, admin) = (format!("127.0.0.1:{port}"), format!("0.0.0.0:{port}"));
    // (flags, environment, the error line)
    let cases = [
        (
            vec!["--brokers", "nohost"],
            vec![],
            "error: --brokers (SSE_KAFKA_BROKERS): invalid broker address 'nohost': no port; expected host:port".into(),
        ),
        (
            vec![],
            vec![("SSE_KAFKA_BROKERS", "127.0.0.1:9092,")],
            "error: --brokers (SSE_KAFKA_BROKERS): empty broker address; expected host:port".into(),
        ),
        (
            vec!["--listen", &listen, "--admin-listen", &admin],
            vec![],
            format!("error: --admin-listen (SSE_KAFKA_ADMIN_LISTEN): {admin} overlaps listen {listen}; use another port"),
        ),
        (
            vec!["--admin-listen", &admin],
            vec![("SSE_KAFKA_LISTEN", &listen)],
            format!("error: --admin-listen (SSE_KAFKA_ADMIN_LISTEN): {admin} overlaps listen {listen}; use another port"),
        ),
    ];
    for (i, (flags, env, want)) in cases.into_iter().enumerate() {
        let stderr = dir.path().join(format!("stderr-{i}"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sse-kafka"))
            .env_clear()
            .envs(env)
            .args(["run", "--config"])
            .arg(&path)
            .args(&flags)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + common::DEADLINE;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                child.wait().unwrap();
                break None;
            }
            common::pause();
        };
        let err = std::fs::read_to_string(&stderr).unwrap();
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(2),
            "{flags:?}: still running or wrong exit; stderr:\n{err}"
        );
        assert_eq!(err.trim_end(), want, "{flags:?}");
    }
}
