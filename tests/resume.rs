//! End-to-end tests of catching up: late subscribers and resumes served from
//! the partition cache, resumes older than the cache served by Kafka
//! fetches, slow clients (bounded memory, `slow_client.max_lag`), resumes
//! past deleted records (`event:gap`), `?since=` and a reconnect storm of
//! 2,000 clients. Real nisshi broker, real proxy binary, real sockets; every
//! stream is checked to be exact: each record once, in partition order.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{
    assert_complete_and_ordered, config_for, now_millis, produce_seq, raw_request, wait_until,
    Broker, Proxy, Sequences, SseClient,
};
use sse_kafka::codec::sse::Event;

const ROUTE_ITEMS: &str = "routes:\n  - path: /items\n    topic: items\n";

/// The next offset of every partition that an event id carries.
fn offsets_of(id: &str) -> Vec<i64> {
    sse_kafka::codec::event_id::decode_progress(
        sse_kafka::codec::event_id::topic_hash("items"),
        id.as_bytes(),
    )
    .expect("a progress id of topic items")
    .offsets()
    .iter()
    .map(|o| o.0)
    .collect()
}

/// The progress id of topic `items` at these next offsets.
fn id_of(next: &[i64]) -> String {
    let mut id = Vec::new();
    let next: Vec<sse_kafka::model::Offset> =
        next.iter().copied().map(sse_kafka::model::Offset).collect();
    sse_kafka::codec::event_id::encode_progress(
        sse_kafka::codec::event_id::topic_hash("items"),
        &next,
        &mut Vec::new(),
        &mut id,
    );
    String::from_utf8(id).unwrap()
}

/// Whether a new stream gets its response head within the deadline.
fn answers_a_new_stream(addr: std::net::SocketAddr) -> bool {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(common::DEADLINE)).unwrap();
    s.write_all(b"GET /items HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 200"
}

fn json(e: &Event) -> serde_json::Value {
    serde_json::from_str(&e.data).unwrap_or_else(|err| panic!("{err}: {e:?}"))
}

#[test]
fn late_subscriber_is_served_from_the_cache() {
    let broker = Broker::start();
    broker.create_topic("items", 4);
    let routes = "routes:\n  - path: /all\n    topic: items\n    start: earliest\n";
    let proxy = Proxy::start(&config_for(&broker, routes), "0,1");
    // The topic was empty when the proxy started: everything below is
    // fetched live by the owning shards and lands in the cache.
    let total = produce_seq(&broker, "items", 4, 0..50, "", 50);
    wait_until("the owners to fetch every record", || {
        proxy.metric("sse_kafka_records_fetched_total") >= total as u64
    });
    assert!(proxy.metric("sse_kafka_cache_bytes") > 0);
    let mut c = SseClient::connect(proxy.addr, "/all", &[]);
    assert_eq!(c.status(), 200);
    assert_complete_and_ordered(&c.take(total), 4, 50);
    assert_eq!(
        proxy.metric("sse_kafka_catchup_fetches_total"),
        0,
        "a late subscriber within the cache must not ask Kafka"
    );
    assert!(proxy.metric("sse_kafka_catchup_cached_records_total") >= total as u64);
    // Then it is live.
    produce_seq(&broker, "items", 4, 50..51, "", 1);
    let mut events = c.take(4);
    events.sort_by_key(common::value_of);
    let values: Vec<_> = events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(values, ["p0-50", "p1-50", "p2-50", "p3-50"]);
}

#[test]
fn resume_older_than_the_cache_reads_kafka() {
    let broker = Broker::start();
    broker.create_topic("items", 2);
    let cfg = config_for(
        &broker,
        &format!("cache: {{ partition_bytes: 1KiB, total_bytes: 4KiB }}\n{ROUTE_ITEMS}"),
    );
    let proxy = Proxy::start(&cfg, "0,1");
    let pad = "x".repeat(200);
    let mut c = SseClient::connect(proxy.addr, "/items", &[]);
    // One record per batch: the 1 KiB per partition holds only the newest
    // few, so the resume position below is evicted by what follows.
    produce_seq(&broker, "items", 2, 0..10, &pad, 1);
    let mut seq = Sequences::new(2);
    let first = c.take(6);
    for e in &first {
        seq.check(e);
    }
    // The id of the last event taken (the parser may have read further).
    let last = first.last().unwrap().id.clone().unwrap();
    drop(c);
    produce_seq(&broker, "items", 2, 10..40, &pad, 5);
    let mut c = SseClient::connect(proxy.addr, "/items", &[("Last-Event-ID", &last)]);
    for e in c.take(2 * 40 - 6) {
        seq.check(&e);
    }
    seq.assert_each_at(40);
    let fetches = proxy.metric("sse_kafka_catchup_fetches_total");
    let fetched = proxy.metric("sse_kafka_catchup_fetched_records_total");
    eprintln!("catch-up fetches {fetches}, records read from them {fetched}");
    assert!(
        fetches >= 1,
        "the resume position was evicted: Kafka must be asked"
    );
    assert!(fetched >= 1);
    assert!(proxy.metric("sse_kafka_cache_bytes") <= 4096);
    // And it continues live.
    produce_seq(&broker, "items", 2, 40..41, &pad, 1);
    for e in c.take(2) {
        seq.check(&e);
    }
    seq.assert_each_at(41);
}

#[test]
fn slow_client_over_5_mb_loses_nothing_with_bounded_memory() {
    const PER: usize = 320;
    let broker = Broker::start();
    broker.create_topic("items", 4);
    let cfg = config_for(
        &broker,
        &format!(
            "connections: {{ max_queued_bytes: 64KiB }}\ncache: {{ partition_bytes: 256KiB, total_bytes: 512KiB }}\n{ROUTE_ITEMS}"
        ),
    );
    let proxy = Proxy::start(&cfg, "0,1");
    let mut slow = SseClient::connect_small_buffer(proxy.addr, "/items");
    let mut fast = SseClient::connect(proxy.addr, "/items", &[]);
    wait_until("both streams to open", || {
        proxy.metric("sse_kafka_connections_open") == 2
    });
    let rss_before = proxy.rss_bytes();
    let mut rss_peak = rss_before;
    let pad = "x".repeat(4000);
    let produced = produce_seq(&broker, "items", 4, 0..PER, &pad, 40);
    let bytes = produced * (pad.len() + 8);
    assert!(bytes >= 5_000_000, "{bytes} bytes produced");
    // The fast client gets everything while the slow one reads nothing.
    let mut fast_seq = Sequences::new(4);
    for _ in 0..produced {
        fast_seq.check(&fast.next_event());
    }
    fast_seq.assert_each_at(PER);
    rss_peak = rss_peak.max(proxy.rss_bytes());
    wait_until("the slow client's demotion", || {
        proxy.metric("sse_kafka_demotions_total") >= 1
    });
    // Now the slow client reads: every record once, in order, though the
    // 512 KiB cache cannot hold the 5 MB it missed. (Its socket buffers
    // and the frames it takes along when it leaves the live stream hold up
    // to a few MB of them.)
    let mut slow_seq = Sequences::new(4);
    for n in 0..produced {
        slow_seq.check(&slow.next_event());
        if n % 128 == 0 {
            rss_peak = rss_peak.max(proxy.rss_bytes());
        }
    }
    slow_seq.assert_each_at(PER);
    rss_peak = rss_peak.max(proxy.rss_bytes());
    let growth = rss_peak.saturating_sub(rss_before);
    let fetches = proxy.metric("sse_kafka_catchup_fetches_total");
    eprintln!(
        "{bytes} bytes produced; proxy RSS {} KiB before, peak {} KiB (+{} KiB); catch-up fetches {fetches}, fetched records {}, cached records {}",
        rss_before / 1024,
        rss_peak / 1024,
        growth / 1024,
        proxy.metric("sse_kafka_catchup_fetched_records_total"),
        proxy.metric("sse_kafka_catchup_cached_records_total"),
    );
    assert!(
        growth < 64 << 20,
        "proxy RSS grew by {} MiB for one slow client",
        growth >> 20
    );
    assert!(
        fetches >= 1,
        "the cache could not hold 5 MB: Kafka was asked"
    );
    // Both are live again.
    produce_seq(&broker, "items", 4, PER..PER + 1, "", 1);
    for _ in 0..4 {
        slow_seq.check(&slow.next_event());
        fast_seq.check(&fast.next_event());
    }
    slow_seq.assert_each_at(PER + 1);
    fast_seq.assert_each_at(PER + 1);
}

/// On loopback the kernel queues about 4 MB unsent per connection (its
/// initial send buffer is 10 segments of a 64 KiB MSS; `ss -tm` shows
/// `tb3939840`), whatever the client's receive buffer: a stalled client is
/// behind *in the proxy* only past that, so the slow-client tests produce
/// well over it.
const KERNEL_SEND_QUEUE: usize = 4 << 20;

#[test]
fn slow_client_past_max_lag_gets_an_error_and_resumes_exactly() {
    const PER: usize = 1500;
    let broker = Broker::start();
    broker.create_topic("items", 4);
    let cfg = config_for(
        &broker,
        &format!(
            "connections: {{ max_queued_bytes: 16KiB }}\nslow_client: {{ max_lag: 200 }}\n{ROUTE_ITEMS}"
        ),
    );
    let proxy = Proxy::start(&cfg, "0,1");
    let mut slow = SseClient::connect_small_buffer(proxy.addr, "/items");
    wait_until("the stream to open", || {
        proxy.metric("sse_kafka_connections_open") == 1
    });
    // 6,000 records of 1 KB while the client reads nothing: past what the
    // kernel queues, the proxy holds it about 1,800 records behind, far
    // more than the 200 allowed.
    let pad = "x".repeat(1000);
    let produced = produce_seq(&broker, "items", 4, 0..PER, &pad, 50);
    assert!(produced * pad.len() > KERNEL_SEND_QUEUE + 1000 * pad.len());
    wait_until("the slow client's demotion", || {
        proxy.metric("sse_kafka_demotions_total") >= 1
    });
    let mut seq = Sequences::new(4);
    let mut received = 0;
    let error = loop {
        assert!(
            received < produced,
            "the client read all {produced} records without being ended, though it stalled while the proxy held it over {} records behind (slow_client.max_lag 200): slow_clients_ended_total {}, demotions {}",
            produced - KERNEL_SEND_QUEUE / pad.len(),
            proxy.metric("sse_kafka_slow_clients_ended_total"),
            proxy.metric("sse_kafka_demotions_total"),
        );
        let e = slow.next_event();
        if e.event.is_some() {
            break e;
        }
        seq.check(&e);
        received += 1;
    };
    assert_eq!(error.event.as_deref(), Some("error"), "{error:?}");
    let reason = json(&error)["reason"].as_str().map(str::to_owned);
    assert!(reason.is_some_and(|r| !r.is_empty()), "{error:?}");
    slow.wait_eof();
    assert!(proxy.metric("sse_kafka_slow_clients_ended_total") >= 1);
    eprintln!(
        "ended after {received} of {produced} records: {}",
        error.data
    );
    // The client resumes from its last id and loses nothing. Records may
    // still be arriving from Kafka, so a resumed stream can fall behind and
    // be ended again: like an EventSource, it reconnects each time with
    // its last id, and every reconnection is exact.
    let mut last = slow.last_event_id().expect("an id before the error");
    let mut ended = 0;
    let again = loop {
        let mut again = SseClient::connect(proxy.addr, "/items", &[("Last-Event-ID", &last)]);
        while received < produced {
            let e = again.next_event();
            if e.event.as_deref() == Some("error") {
                assert!(e.data.contains("slow_client.max_lag"), "{e:?}");
                again.wait_eof();
                break;
            }
            seq.check(&e);
            received += 1;
        }
        if received == produced {
            break again;
        }
        ended += 1;
        assert!(ended < 50, "resumed {ended} times without catching up");
        last = again.last_event_id().expect("an id before the error");
    };
    let mut again = again;
    seq.assert_each_at(PER);
    produce_seq(&broker, "items", 4, PER..PER + 1, "", 1);
    for _ in 0..4 {
        seq.check(&again.next_event());
    }
    seq.assert_each_at(PER + 1);
}

/// The resume side of `slow_client.max_lag`: a client that starts 1,600
/// records behind (over the 200 allowed) is served as long as it does not
/// fall further behind; once it does, it gets `event:error`, and its last
/// id resumes exactly.
#[test]
fn resume_that_falls_further_behind_gets_an_error_and_resumes_exactly() {
    const PER: usize = 400;
    const MORE: usize = 400;
    let broker = Broker::start();
    broker.create_topic("items", 4);
    let cfg = config_for(
        &broker,
        &format!(
            "connections: {{ max_queued_bytes: 16KiB }}\nslow_client: {{ max_lag: 200 }}\n{ROUTE_ITEMS}"
        ),
    );
    // One shard: the probe below shows when the slow client's shard has
    // applied the records it falls behind by.
    let proxy = Proxy::start(&cfg, "0");
    let pad = "x".repeat(4000);
    let first = produce_seq(&broker, "items", 4, 0..PER, &pad, 25);
    // A resume at the last record of every partition: once it has all
    // four, the shard's heads are at `n`. (Waiting for the fetches first
    // keeps the probe from being ahead of the heads; see
    // `resume_ahead_of_the_heads_waits_for_them`.)
    let probe_at = |n: usize| {
        wait_until("the owners to fetch every record", || {
            proxy.metric("sse_kafka_records_fetched_total") >= 4 * n as u64
        });
        let mut c = SseClient::connect(
            proxy.addr,
            "/items",
            &[("Last-Event-ID", &id_of(&[n as i64 - 1; 4]))],
        );
        let mut seq = Sequences::starting_at(vec![n - 1; 4]);
        for _ in 0..4 {
            seq.check(&c.next_event());
        }
    };
    probe_at(PER);
    let cached_before = proxy.metric("sse_kafka_catchup_cached_records_total");
    let mut slow = SseClient::connect_small_buffer_with(
        proxy.addr,
        "/items",
        &[("Last-Event-ID", &id_of(&[0; 4]))],
    );
    // Its cursor has read a first chunk and taken its starting lag; the
    // kernel queues what it can and the client reads nothing while 6.4 MB
    // more arrive, more than the kernel took.
    wait_until("the resume's first read", || {
        proxy.metric("sse_kafka_catchup_cached_records_total") > cached_before
    });
    let more = produce_seq(&broker, "items", 4, PER..PER + MORE, &pad, 25);
    assert!(more * pad.len() > KERNEL_SEND_QUEUE + 200 * pad.len());
    probe_at(PER + MORE);
    let mut seq = Sequences::new(4);
    let mut received = 0;
    let error = loop {
        assert!(
            received < first + more,
            "the client read every record without being ended (slow_clients_ended_total {})",
            proxy.metric("sse_kafka_slow_clients_ended_total"),
        );
        let e = slow.next_event();
        if e.event.is_some() {
            break e;
        }
        seq.check(&e);
        received += 1;
    };
    assert_eq!(error.event.as_deref(), Some("error"), "{error:?}");
    let reason = json(&error)["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains("behind"), "{error:?}");
    slow.wait_eof();
    assert!(
        received < first,
        "ended before it caught up ({received} read)"
    );
    // (At least: a probe the test has closed may also be ended for lag
    // before the proxy notices it hung up.)
    assert!(proxy.metric("sse_kafka_slow_clients_ended_total") >= 1);
    eprintln!("ended after {received} records: {reason}");
    let last = slow.last_event_id().expect("an id before the error");
    let mut again = SseClient::connect(proxy.addr, "/items", &[("Last-Event-ID", &last)]);
    for _ in received..first + more {
        seq.check(&again.next_event());
    }
    seq.assert_each_at(PER + MORE);
}

/// An id past the end of Kafka's log (here five records past everything
/// the partition holds) is not waited for: no instance makes such an id
/// (a faster one is never past Kafka's end), so it comes from a log that
/// was replaced. The stream starts with `event:reset` and reads the
/// partition from its log's start, and the shard keeps serving everyone
/// else meanwhile. (It once waited for the heads to pass the id, skipping
/// every record below it unseen; see tests/hostile.rs.)
#[test]
fn resume_ahead_of_the_log_reads_it_from_the_start() {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let proxy = Proxy::start(&config_for(&broker, ROUTE_ITEMS), "0");
    let mut live = SseClient::connect(proxy.addr, "/items", &[]);
    produce_seq(&broker, "items", 1, 0..10, "", 10);
    let mut live_seq = Sequences::new(1);
    for _ in 0..10 {
        live_seq.check(&live.next_event());
    }
    let mut ahead = SseClient::connect(proxy.addr, "/items", &[("Last-Event-ID", &id_of(&[15]))]);
    assert_eq!(ahead.status(), 200);
    let reset = ahead.next_event();
    assert_eq!(reset.event.as_deref(), Some("reset"), "{reset:?}");
    let mut seq = Sequences::new(1);
    for _ in 0..10 {
        seq.check(&ahead.next_event());
    }
    for step in [10..12, 12..14, 14..20] {
        let n = step.len();
        produce_seq(&broker, "items", 1, step, "", n);
        assert!(
            answers_a_new_stream(proxy.addr),
            "the shard stopped answering new streams"
        );
        for _ in 0..n {
            live_seq.check(&live.next_event());
            seq.check(&ahead.next_event());
        }
    }
    seq.assert_each_at(20);
    live_seq.assert_each_at(20);
}

#[test]
fn resume_after_deleted_records_sends_gap() {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    // No cache: the resume must go to Kafka, which no longer has offset 10.
    let cfg = config_for(
        &broker,
        &format!("cache: {{ partition_bytes: 0, total_bytes: 0 }}\n{ROUTE_ITEMS}"),
    );
    let proxy = Proxy::start(&cfg, "0");
    let mut c = SseClient::connect(proxy.addr, "/items", &[]);
    produce_seq(&broker, "items", 1, 0..100, "", 100);
    let live = c.take(100);
    assert_complete_and_ordered(&live, 1, 100);
    let id_at_10 = live[9].id.clone().unwrap();
    assert_eq!(offsets_of(&id_at_10), [10], "the 10th event's id");
    drop(c);
    broker.delete_records("items", 0, 60);
    let mut c = SseClient::connect(proxy.addr, "/items", &[("Last-Event-ID", &id_at_10)]);
    let gap = c.next_event();
    assert_eq!(gap.event.as_deref(), Some("gap"), "{gap:?}");
    assert_eq!(
        json(&gap),
        serde_json::json!({"partition": 0, "requested": 10, "resumed_at": 60})
    );
    let mut seq = Sequences::starting_at(vec![60]);
    for _ in 60..100 {
        seq.check(&c.next_event());
    }
    produce_seq(&broker, "items", 1, 100..101, "", 1);
    seq.check(&c.next_event());
    seq.assert_each_at(101);
    assert!(proxy.metric("sse_kafka_catchup_fetches_total") >= 1);
}

#[test]
fn since_starts_at_the_first_record_at_or_after_the_time() {
    let broker = Broker::start();
    broker.create_topic("items", 2);
    // One shard, and a live client that has seen both batches before the
    // `since` streams open: Kafka's offset for T is then never ahead of
    // the shard (see `resume_ahead_of_the_heads_waits_for_them`).
    let proxy = Proxy::start(&config_for(&broker, ROUTE_ITEMS), "0");
    let mut live = SseClient::connect(proxy.addr, "/items", &[]);
    // Batch A, then a time T strictly after every timestamp in A, then
    // batch B (timestamps >= T: they are taken after T).
    produce_seq(&broker, "items", 2, 0..5, "", 5);
    let after_a = now_millis();
    wait_until("the clock to pass batch A", || now_millis() > after_a);
    let t = now_millis();
    produce_seq(&broker, "items", 2, 5..10, "", 5);
    assert_complete_and_ordered(&live.take(20), 2, 10);
    let rfc3339 = rskafka::chrono::DateTime::from_timestamp_millis(t)
        .unwrap()
        .to_rfc3339_opts(rskafka::chrono::SecondsFormat::Millis, true);
    let mut clients = vec![
        SseClient::connect(proxy.addr, &format!("/items?since={t}"), &[]),
        SseClient::connect(proxy.addr, &format!("/items?since={rfc3339}"), &[]),
    ];
    let mut seqs = Vec::new();
    for c in &mut clients {
        assert_eq!(c.status(), 200, "{}", c.head);
        let mut seq = Sequences::starting_at(vec![5, 5]);
        for _ in 0..10 {
            seq.check(&c.next_event());
        }
        seq.assert_each_at(10);
        seqs.push(seq);
    }
    // Then live.
    produce_seq(&broker, "items", 2, 10..11, "", 1);
    for (c, seq) in clients.iter_mut().zip(&mut seqs) {
        for _ in 0..2 {
            seq.check(&c.next_event());
        }
        seq.assert_each_at(11);
    }
    // Last-Event-ID wins over since: this id is past p0-6 and p1-2.
    let id = id_of(&[7, 3]);
    let mut c = SseClient::connect(
        proxy.addr,
        &format!("/items?since={t}"),
        &[("Last-Event-ID", &id)],
    );
    let mut seq = Sequences::starting_at(vec![7, 3]);
    for _ in 0..(11 - 7) + (11 - 3) {
        seq.check(&c.next_event());
    }
    seq.assert_each_at(11);
    // A since that is neither a time nor a number is a bad request.
    let resp = raw_request(
        proxy.addr,
        b"GET /items?since=yesterday HTTP/1.1\r\nhost: x\r\n\r\n",
    );
    assert!(
        resp.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&resp)
    );
}

#[test]
fn two_thousand_clients_reconnecting_at_once_are_exact() {
    const CLIENTS: usize = 2000;
    const FIRST: usize = 3;
    const MORE: usize = 500;
    let broker = Broker::start();
    broker.create_topic("items", 4);
    let proxy = Proxy::start(&config_for(&broker, ROUTE_ITEMS), "0,1");
    // Spread over 200 loopback source addresses: 4,000 connections (and
    // their TIME_WAITs) never crowd one address's ephemeral ports.
    let source = |i: usize| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 200) as u8));
    let mut clients: Vec<SseClient> = (0..CLIENTS)
        .map(|i| SseClient::connect_from(source(i), proxy.addr, "/items", &[]))
        .collect();
    wait_until("every stream to open", || {
        proxy.metric("sse_kafka_connections_open") == CLIENTS as u64
    });
    produce_seq(&broker, "items", 4, 0..FIRST, "", FIRST);
    let mut seqs = Vec::with_capacity(CLIENTS);
    let mut ids = Vec::with_capacity(CLIENTS);
    for c in &mut clients {
        let mut seq = Sequences::new(4);
        let mut last = None;
        for _ in 0..4 * FIRST {
            let e = c.next_event();
            seq.check(&e);
            last = e.id;
        }
        seq.assert_each_at(FIRST);
        seqs.push(seq);
        ids.push(last.unwrap());
    }
    // Dropped without waiting for the proxy to notice: it finds idle
    // closed streams only when it next writes to them.
    drop(clients);
    produce_seq(&broker, "items", 4, FIRST..FIRST + MORE, "", MORE);
    // All 2,000 requests go out before any answer is read.
    let requested: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            SseClient::request_from(source(i), proxy.addr, "/items", &[("Last-Event-ID", id)])
        })
        .collect();
    let mut clients: Vec<SseClient> = requested.into_iter().map(|r| r.open()).collect();
    for (c, seq) in clients.iter_mut().zip(&mut seqs) {
        for _ in 0..4 * MORE {
            seq.check(&c.next_event());
        }
        seq.assert_each_at(FIRST + MORE);
    }
    let fetches = proxy.metric("sse_kafka_catchup_fetches_total");
    eprintln!(
        "{CLIENTS} resumes: catch-up fetches {fetches}, joins {}, cached records {}",
        proxy.metric("sse_kafka_catchup_fetch_joins_total"),
        proxy.metric("sse_kafka_catchup_cached_records_total"),
    );
    assert_eq!(fetches, 0, "every missed record was in the cache");
    // Still live, all of them.
    produce_seq(&broker, "items", 4, FIRST + MORE..FIRST + MORE + 1, "", 1);
    for (c, seq) in clients.iter_mut().zip(&mut seqs) {
        for _ in 0..4 {
            seq.check(&c.next_event());
        }
        seq.assert_each_at(FIRST + MORE + 1);
    }
}
