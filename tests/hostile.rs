//! Hostile and broken input, end to end: records, batches, clients and
//! requests that must not stop the service for anyone else. Real nisshi
//! broker (behind a corrupting middle where a test needs bytes nisshi would
//! refuse), the real proxy binary, real clients (Python confluent-kafka
//! for what rskafka cannot produce).

mod common;

use common::SseClient;
use common::{config_for, http_get, produce_with_confluent_records, wait_until, Broker, Proxy};
use sse_kafka::codec::sse::Event;

const ROUTES: &str = r#"keepalive: 200ms
routes:
  - path: /all
    topic: items
    start: earliest
  - path: /empty-tag
    topic: items
    start: earliest
    filters:
      - headers: { tag: "" }
"#;

fn data(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.data.as_str()).collect()
}

fn record(value: &str, headers: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"partition": 0, "key": null, "value": value, "headers": headers})
}

/// A null header value is legal Kafka (`headers.add(k, null)` in the Java
/// client). It once failed every fetch of its partition for ever: no later
/// record reached anyone, catch-up reads crossing it stalled, and the
/// proxy still said it was ready. Now the record is delivered, its header
/// present with the empty value, live and on catch-up alike.
#[test]
fn a_null_header_value_stops_nothing() {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let round = |r: &str| {
        vec![
            record(&format!("{r}-0"), serde_json::json!([])),
            record(&format!("{r}-1"), serde_json::json!([["tag", null]])),
            record(&format!("{r}-2"), serde_json::json!([["tag", "x"]])),
        ]
    };
    // Before the proxy starts: read by a catch-up fetch from Kafka.
    produce_with_confluent_records(&broker, "items", &round("a"));
    let proxy = Proxy::start(&config_for(&broker, ROUTES), "0,1");
    let mut all = SseClient::connect(proxy.addr, "/all", &[]);
    assert_eq!(data(&all.take(3)), ["a-0", "a-1", "a-2"]);
    let mut empty = SseClient::connect(proxy.addr, "/empty-tag", &[]);
    assert_eq!(
        data(&empty.take(1)),
        ["a-1"],
        "null matches the empty value"
    );
    // While they stream: the live fetch loop's records.
    produce_with_confluent_records(&broker, "items", &round("b"));
    assert_eq!(data(&all.take(3)), ["b-0", "b-1", "b-2"]);
    assert_eq!(data(&empty.take(1)), ["b-1"]);
    assert_eq!(proxy.metric("sse_kafka_batches_skipped_total"), 0);
    let ready = http_get(proxy.admin, "/health/ready").unwrap();
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
}

/// A batch the proxy cannot decode (here its bytes are corrupted on the
/// way from the broker, so its checksum fails) is skipped, exactly its
/// offsets: every stream of the partition gets `event:gap` with the range,
/// then the records after it; a catch-up read from the cache and one from
/// Kafka (a second proxy) are told the same. Counted, and logged once.
#[test]
fn a_batch_that_cannot_be_decoded_is_skipped_with_a_gap() {
    let broker = Broker::start_corrupting(b"CORRUPTED");
    broker.create_topic("items", 1);
    let proxy = Proxy::start(&config_for(&broker, ROUTES), "0,1");
    let mut live = SseClient::connect(proxy.addr, "/all", &[]);
    assert_eq!(live.status(), 200);
    for value in ["v0", "CORRUPTED", "v2"] {
        broker.produce("items", 0, None, Some(value.as_bytes()));
    }
    let gap = r#"{"partition":0,"requested":1,"resumed_at":2,"reason":"undecodable record batch"}"#;
    let events = live.take(3);
    assert_eq!(data(&events), ["v0", gap, "v2"]);
    assert_eq!(events[1].event.as_deref(), Some("gap"));
    let after_v0 = events[0].id.clone().unwrap();
    // The rest of the partition flows on.
    broker.produce("items", 0, None, Some(b"v3"));
    assert_eq!(data(&live.take(1)), ["v3"]);
    assert_eq!(proxy.metric("sse_kafka_batches_skipped_total"), 1);
    // A resume from v0: the cache holds the skipped run too.
    let mut cached = SseClient::connect(proxy.addr, "/all", &[("last-event-id", &after_v0)]);
    assert_eq!(data(&cached.take(3)), [gap, "v2", "v3"]);
    // A proxy with nothing cached reads it from Kafka.
    let second = Proxy::start(&config_for(&broker, ROUTES), "0");
    let mut fetched = SseClient::connect(second.addr, "/all", &[("last-event-id", &after_v0)]);
    assert_eq!(data(&fetched.take(3)), [gap, "v2", "v3"]);
    wait_until("the skip to be logged", || {
        proxy
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("skipping a record batch"))
    });
    let logged = proxy
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("skipping a record batch"))
        .count();
    assert_eq!(logged, 1, "logged once");
}

fn progress_id(topic: &str, next: &[i64]) -> String {
    use sse_kafka::codec::event_id;
    use sse_kafka::model::Offset;
    let next: Vec<Offset> = next.iter().copied().map(Offset).collect();
    let mut id = Vec::new();
    event_id::encode_progress(event_id::topic_hash(topic), &next, &mut Vec::new(), &mut id);
    String::from_utf8(id).unwrap()
}

/// An id whose offset is past the end of the log (10^15, or 5 past the
/// head; really: an id from before the topic was deleted and created
/// again) once got 200 and then nothing for ever, and the records the new
/// log received below the id's offset were skipped unseen. Now the stream
/// starts with `event:reset` naming the partition, reads that partition
/// from its log's start, and goes live; the other partitions resume
/// exactly.
#[test]
fn an_id_ahead_of_the_log_reads_that_partition_from_its_start() {
    let broker = Broker::start();
    broker.create_topic("items", 2);
    broker.produce("items", 0, None, Some(b"a-0"));
    broker.produce("items", 0, None, Some(b"a-1"));
    broker.produce("items", 1, None, Some(b"b-0"));
    let proxy = Proxy::start(&config_for(&broker, ROUTES), "0,1");
    for ahead in [1_000_000_000_000_000, 2 + 5] {
        let id = progress_id("items", &[ahead, 1]);
        let mut c = SseClient::connect(proxy.addr, "/all", &[("last-event-id", &id)]);
        let reset = c.next_event();
        assert_eq!(reset.event.as_deref(), Some("reset"), "{reset:?}");
        assert!(
            reset.data.contains("ahead of the log") && reset.data.contains("partition 0"),
            "{}",
            reset.data
        );
        assert!(!reset.data.contains("partition 1"), "{}", reset.data);
        assert_eq!(data(&c.take(2)), ["a-0", "a-1"], "from the log's start");
        c.wait_for_id(&progress_id("items", &[2, 1]));
        assert_eq!(c.buffered_events(), 0, "b-0 is not read again");
    }
    // Live from there.
    let id = progress_id("items", &[1_000_000_000_000_000, 1]);
    let mut c = SseClient::connect(proxy.addr, "/all", &[("last-event-id", &id)]);
    assert_eq!(
        c.take(3)[1..]
            .iter()
            .map(|e| e.data.as_str())
            .collect::<Vec<_>>(),
        ["a-0", "a-1"]
    );
    broker.produce("items", 1, None, Some(b"b-1"));
    assert_eq!(data(&c.take(1)), ["b-1"]);
}

/// A 100 KB key once made a 133 KB `key-and-progress` id that the proxy
/// itself refused on resume (431 by header, 414 by query). The key part is
/// cut to its first 256 bytes: the id stays small and resumes both ways.
#[test]
fn a_large_key_makes_an_id_the_proxy_accepts_back() {
    const KEYED: &str = r#"keepalive: 200ms
routes:
  - path: /keyed
    topic: items
    start: earliest
    event_id: key-and-progress
"#;
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let key = vec![b'k'; 100 * 1024];
    broker.produce("items", 0, Some(&key), Some(b"v0"));
    broker.produce("items", 0, Some(&key), Some(b"v1"));
    let proxy = Proxy::start(&config_for(&broker, KEYED), "0,1");
    let mut c = SseClient::connect(proxy.addr, "/keyed", &[]);
    let first = c.take(1);
    let id = first[0].id.clone().unwrap();
    assert!(id.len() < 1024, "id of {} bytes", id.len());
    let mut by_header = SseClient::connect(proxy.addr, "/keyed", &[("last-event-id", &id)]);
    assert_eq!(by_header.status(), 200);
    assert_eq!(data(&by_header.take(1)), ["v1"]);
    let query: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
    let mut by_query = SseClient::connect(proxy.addr, &format!("/keyed?lastEventId={query}"), &[]);
    assert_eq!(by_query.status(), 200);
    assert_eq!(data(&by_query.take(1)), ["v1"]);
}

/// `?since=` of a time that cannot be represented once replayed the whole
/// topic; it is a 400 like any bad `since`.
#[test]
fn an_unrepresentable_since_is_a_400() {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let proxy = Proxy::start(&config_for(&broker, ROUTES), "0");
    let c = SseClient::connect(proxy.addr, "/all?since=9223372036854775807", &[]);
    assert_eq!(c.status(), 400);
}

/// What arrived on a connection so far, without waiting: `None` while it
/// is open with nothing to read, else the bytes up to now (empty at EOF).
fn arrived(s: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    use std::io::Read;
    s.set_nonblocking(true).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && out.is_empty() => return None,
            Err(_) => return Some(out),
        }
    }
}

/// Connections that never finish their request head once filled the fd
/// table (`connections.max` was checked only once a head had arrived):
/// fresh clients and even `/health/live` timed out, nothing was answered,
/// and the log took ~100 `accept failed` lines a second. Now they count
/// toward the cap from their accept on, the cap is bounded by the
/// descriptor limit less a reserve (with a warning at start), and past it
/// a connection is answered 503 with `retry-after` at once.
#[test]
fn connections_that_never_send_a_head_cannot_exhaust_the_descriptors() {
    use std::io::Write;
    let broker = Broker::start();
    broker.create_topic("items", 1);
    // Default connections.max (100,000), far above 600 descriptors; the
    // held connections must outlive the test's reads.
    let cfg = format!("connections: {{ request_timeout: 60s }}\n{ROUTES}");
    let proxy = Proxy::start_with_fd_limit(&config_for(&broker, &cfg), "0,1", 600);
    assert!(
        proxy
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("connections.max is 100000")),
        "warned at start"
    );
    let cap = 600 - 256;
    let mut held: Vec<std::net::TcpStream> = (0..cap + 150)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(proxy.addr).unwrap();
            s.write_all(b"G").unwrap();
            s
        })
        .collect();
    let mut answers: Vec<Option<Vec<u8>>> = vec![None; held.len()];
    wait_until("the connections past the cap to be answered", || {
        for (s, answer) in held.iter_mut().zip(&mut answers) {
            if answer.as_ref().is_none_or(|a| !a.ends_with(b"\n")) {
                if let Some(more) = arrived(s) {
                    answer.get_or_insert_with(Vec::new).extend(more);
                }
            }
        }
        answers.iter().flatten().count() >= 150
    });
    let refused: Vec<String> = answers
        .iter()
        .flatten()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert_eq!(refused.len(), 150, "exactly the connections past the cap");
    for a in &refused {
        assert!(a.starts_with("HTTP/1.1 503 "), "{a}");
        assert!(a.contains("retry-after: 1\r\n"), "{a}");
    }
    assert_eq!(
        proxy.metric("sse_kafka_connections_refused_full_total"),
        150
    );
    // The admin listener still answers; a fresh client is told to come back.
    let live = http_get(proxy.admin, "/health/live").unwrap();
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    let fresh = SseClient::connect(proxy.addr, "/all", &[]);
    assert_eq!(fresh.status(), 503);
    // Once the idle ones go, fresh clients are served.
    held.clear();
    wait_until("a fresh stream to be served", || {
        SseClient::connect(proxy.addr, "/all", &[]).status() == 200
    });
    let accept_failures = proxy
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("accept failed"))
        .count();
    assert_eq!(accept_failures, 0, "the descriptor table never filled");
}

/// `connections.max` is the process's number (it was split per shard: 100
/// gave 97 open and three 503s); `connections.max_per_ip` bounds one
/// address with 429.
#[test]
fn the_connection_caps_are_per_process_and_per_address() {
    let cfg = format!("connections: {{ max: 100, max_per_ip: 60 }}\n{ROUTES}");
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let proxy = Proxy::start(&config_for(&broker, &cfg), "0,1");
    let a: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let b: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let mut streams: Vec<SseClient> = (0..60)
        .map(|_| SseClient::connect_from(a, proxy.addr, "/all", &[]))
        .collect();
    for s in &streams {
        assert_eq!(s.status(), 200);
    }
    let over = SseClient::connect_from(a, proxy.addr, "/all", &[]);
    assert_eq!(over.status(), 429, "the 61st from one address");
    streams.extend((0..40).map(|_| SseClient::connect_from(b, proxy.addr, "/all", &[])));
    for s in &streams {
        assert_eq!(s.status(), 200, "all 100 open, over both shards");
    }
    let full = SseClient::connect_from(b, proxy.addr, "/all", &[]);
    assert_eq!(full.status(), 503, "the 101st");
    assert_eq!(
        proxy.metric("sse_kafka_connections_refused_per_ip_total"),
        1
    );
    assert_eq!(proxy.metric("sse_kafka_connections_refused_full_total"), 1);
}

/// The admin listener's timeout was per read (one byte every 4 s held a
/// connection for ever) and it took any number of connections. Now a
/// request has 5 s in all, at most 64 admin connections are open, and its
/// 405 names the one method it serves.
#[test]
fn the_admin_listener_bounds_its_requests_and_connections() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let proxy = Proxy::start(&config_for(&broker, ROUTES), "0");
    let options = common::raw_request(proxy.admin, b"OPTIONS /metrics HTTP/1.1\r\nhost: a\r\n\r\n");
    let options = String::from_utf8_lossy(&options);
    assert!(options.starts_with("HTTP/1.1 405 "), "{options}");
    assert!(options.contains("\r\nallow: GET\r\n"), "{options}");

    // A byte a second: closed after the request's 5 s, not kept alive.
    let mut trickle = std::net::TcpStream::connect(proxy.admin).unwrap();
    trickle
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let start = Instant::now();
    let mut sent = 0;
    let mut buf = [0u8; 64];
    let closed_after = loop {
        if trickle.write_all(b"G").is_err() {
            break start.elapsed();
        }
        sent += 1;
        match trickle.read(&mut buf) {
            Ok(0) | Err(_) if start.elapsed() > Duration::from_secs(15) => panic!("never closed"),
            Ok(0) => break start.elapsed(),
            Ok(_) => panic!("an answer to an incomplete request"),
            Err(_) => {}
        }
    };
    assert!(
        closed_after >= Duration::from_secs(4) && closed_after < Duration::from_secs(8),
        "closed after {closed_after:?} and {sent} bytes"
    );

    // 64 idle connections: the 65th is closed unanswered; once they go,
    // health checks are answered again.
    let held: Vec<_> = (0..64)
        .map(|_| std::net::TcpStream::connect(proxy.admin).unwrap())
        .collect();
    let mut extra = std::net::TcpStream::connect(proxy.admin).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let _ = extra.write_all(b"GET /health/live HTTP/1.1\r\nhost: a\r\n\r\n");
    let mut got = Vec::new();
    let _ = extra.read_to_end(&mut got);
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    drop(held);
    wait_until("health checks to be answered", || {
        http_get(proxy.admin, "/health/live").is_ok_and(|r| r.starts_with("HTTP/1.1 200"))
    });
}

/// A 404 that names what the request asked for echoes no control bytes.
#[test]
fn a_404_body_is_one_line_of_text() {
    const TOPICS: &str = r#"routes:
  - path: /t/{topic}
    topic: "${params.topic}"
    topics: ["*"]
"#;
    let broker = Broker::start();
    let proxy = Proxy::start(&config_for(&broker, TOPICS), "0");
    let answer = common::raw_request(
        proxy.addr,
        b"GET /t/a%0D%0Aset-cookie:%20x%00 HTTP/1.1\r\nhost: a\r\n\r\n",
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        !body.trim_end_matches('\n').contains(['\r', '\n', '\0']),
        "{body:?}"
    );
    assert!(body.contains("\\x0d\\x0a"), "{body:?}");
}

/// A client that connects and sends nothing lived 25-42 s with a 10 s
/// `request_timeout` (the kernel's deferred accept waited the timeout
/// first, rounded up to its retransmissions). Now the defer is short: it
/// is closed within the timeout and a few seconds.
#[test]
fn a_silent_client_lives_about_the_request_timeout() {
    use std::io::Read;
    use std::time::{Duration, Instant};
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let proxy = Proxy::start(&config_for(&broker, ROUTES), "0");
    let mut silent = std::net::TcpStream::connect(proxy.addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let n = silent.read(&mut buf).unwrap_or(0);
    let lived = start.elapsed();
    assert_eq!(n, 0, "closed without an answer");
    assert!(
        lived >= Duration::from_secs(10) && lived < Duration::from_secs(16),
        "lived {lived:?} with a 10 s request_timeout"
    );
}

/// `sse-kafka check --config <file>`: exit code and stderr.
fn check(config: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, config).unwrap();
    check_path(path.to_str().unwrap())
}

fn check_path(path: &str) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sse-kafka"))
        .args(["check", "--config", path])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const MINIMAL: &str =
    "kafka:\n  bootstrap: [\"127.0.0.1:9092\"]\nroutes:\n  - path: /items\n    topic: items\n";

/// Config input is bounded before it is parsed: `--config /dev/zero` grew
/// memory for ever and deep nesting took quadratic time (200k levels in
/// 400 KB: 103 s); absurd durations were accepted; the billion-laughs
/// error said `0:0: -`. Each is now an error naming file and line.
#[test]
fn config_input_is_bounded_with_file_and_line_errors() {
    let (code, err) = check_path("/dev/zero");
    assert_eq!(code, 2);
    assert!(
        err.contains("/dev/zero") && err.contains("larger than 1048576 bytes"),
        "{err}"
    );

    let deep = format!(
        "{MINIMAL}x: {}{}\n",
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    let (code, err) = check(&deep);
    assert_eq!(code, 2);
    assert!(
        err.contains("c.yaml:6:") && err.contains("nested deeper than 64"),
        "{err}"
    );

    for (extra, line, field) in [
        ("retry: 18446744073709551615s\n", 6, "retry"),
        ("keepalive: 1ns\n", 6, "keepalive"),
        ("retry_jitter: 2h\n", 6, "retry_jitter"),
    ] {
        let (code, err) = check(&format!("{MINIMAL}{extra}"));
        assert_eq!(code, 2, "{extra}");
        assert!(err.contains(&format!("c.yaml:{line}:")), "{extra}: {err}");
        assert!(err.contains(field), "{extra}: {err}");
    }

    // Under a guard's inline keys (a list of any JSON values): serde
    // expands the aliases until its repetition limit.
    let mut laughs = format!("{MINIMAL}guards:\n  g:\n    keys:\n      jwks:\n        - &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (prev, c) in "abcdefgh".chars().zip("bcdefghi".chars()) {
        let refs = vec![format!("*{prev}"); 9].join(",");
        laughs.push_str(&format!("        - &{c} [{refs}]\n"));
    }
    let (code, err) = check(&laughs);
    assert_eq!(code, 2);
    assert!(
        err.contains("c.yaml:") && err.contains("guards.g.keys.jwks"),
        "{err}"
    );
    assert!(err.contains("billion laughs"), "{err}");
}

/// `check` says loudly that the default CORS lets any website read.
#[test]
fn check_warns_about_any_origin() {
    let (code, err) = check(MINIMAL);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: cors.allow_origins is \"*\""),
        "{err}"
    );
    let (_, narrowed) = check(&format!(
        "{MINIMAL}cors: {{ allow_origins: [\"https://a.example\"] }}\n"
    ));
    assert!(!narrowed.contains("warning"), "{narrowed}");
}

/// After Kafka deleted records (DeleteRecords, or retention) that the
/// proxy still had cached, a resume below the new log start was served
/// them, with no `event:gap`, for up to `cache.max_age`. The proxy learns
/// the log start from its fetches and drops what the cache holds below
/// it: such a resume is told of the gap, then continues.
#[test]
fn a_resume_below_the_log_start_gets_a_gap_not_deleted_records() {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let proxy = Proxy::start(&config_for(&broker, ROUTES), "0,1");
    let mut live = SseClient::connect(proxy.addr, "/all", &[]);
    assert_eq!(live.status(), 200);
    for i in 0..10 {
        broker.produce("items", 0, None, Some(format!("v{i}").as_bytes()));
    }
    let events = live.take(10);
    let after_v4 = events[4].id.clone().unwrap();
    // Served from the cache while Kafka still holds them.
    let mut cached = SseClient::connect(proxy.addr, "/all", &[("last-event-id", &after_v4)]);
    assert_eq!(data(&cached.take(1)), ["v5"]);
    broker.delete_records("items", 0, 7);
    let gap = r#"{"partition":0,"requested":5,"resumed_at":7}"#;
    wait_until("resumes below the log start to be told of the gap", || {
        let mut c = SseClient::connect(proxy.addr, "/all", &[("last-event-id", &after_v4)]);
        c.next_event().data == gap
    });
    let mut resumed = SseClient::connect(proxy.addr, "/all", &[("last-event-id", &after_v4)]);
    let events = resumed.take(4);
    assert_eq!(events[0].event.as_deref(), Some("gap"));
    assert_eq!(data(&events), [gap, "v7", "v8", "v9"]);
}

/// RFC 9112 §3.2: an HTTP/1.1 request without `Host`, or with two, is a
/// 400 (both were served). HTTP/1.0 needs none.
#[test]
fn an_http_1_1_request_names_its_host_once() {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let proxy = Proxy::start(&config_for(&broker, ROUTES), "0");
    for bad in [
        &b"GET /all HTTP/1.1\r\naccept: text/event-stream\r\n\r\n"[..],
        &b"GET /all HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n"[..],
    ] {
        let answer = common::raw_request(proxy.addr, bad);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        assert!(answer.contains("Host"), "{answer}");
    }
    let mut old = std::net::TcpStream::connect(proxy.addr).unwrap();
    std::io::Write::write_all(&mut old, b"GET /all HTTP/1.0\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    std::io::Read::read_exact(&mut old, &mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
}

/// `HEAD` on a stream's path was a 405; it gets the head a GET would get,
/// with no events, and a missing topic's 404 like a GET.
#[test]
fn head_gets_the_stream_head() {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let proxy = Proxy::start(&config_for(&broker, ROUTES), "0");
    let answer = common::raw_request(proxy.addr, b"HEAD /all HTTP/1.1\r\nhost: a\r\n\r\n");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.contains("content-type: text/event-stream\r\n"),
        "{answer}"
    );
    assert!(answer.ends_with("\r\n\r\n"), "no body: {answer:?}");
    let missing = common::raw_request(proxy.addr, b"HEAD /nope HTTP/1.1\r\nhost: a\r\n\r\n");
    let missing = String::from_utf8_lossy(&missing);
    assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
    assert!(missing.ends_with("\r\n\r\n"), "no body: {missing:?}");
}

/// Thousands of requests for distinct missing topics at once (a scan, or
/// a client bug) once became one metadata request each, listing every
/// topic, while live delivery on a served topic paused for seconds. Now
/// the names are gathered and asked about together, by name, one request
/// at a time: every request still gets its 404, Kafka gets a few metadata
/// requests, and the live stream gets every record produced meanwhile.
#[test]
fn a_flood_of_missing_topics_is_a_few_metadata_requests() {
    const NAMES: usize = 3000;
    let routes = r#"routes:
  - path: /live
    topic: news
  - path: /topics/{name}
    topic: "${params.name}"
    topics: ["public.*"]
"#;
    let broker = Broker::start();
    broker.create_topic("news", 1);
    let proxy = Proxy::start(&config_for(&broker, routes), "0,1");
    let mut live = SseClient::connect(proxy.addr, "/live", &[]);
    assert_eq!(live.status(), 200);
    let lookups_before = proxy.metric("sse_kafka_topic_lookups_total");
    let requests_before = proxy.metric("sse_kafka_topic_metadata_requests_total");

    // Every request is sent before any answer is read, so they are all
    // waiting at once.
    let mut pending: Vec<std::net::TcpStream> = (0..NAMES)
        .map(|i| {
            let mut s = std::net::TcpStream::connect(proxy.addr).unwrap();
            let request = format!("GET /topics/public.missing-{i} HTTP/1.1\r\nhost: test\r\n\r\n");
            std::io::Write::write_all(&mut s, request.as_bytes()).unwrap();
            s
        })
        .collect();
    for i in 0..20 {
        broker.produce("news", 0, None, Some(format!("n{i}").as_bytes()));
    }
    for (i, s) in pending.iter_mut().enumerate() {
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(s, &mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 404 "), "name {i}: {answer}");
        assert!(
            answer.contains(&format!("topic 'public.missing-{i}' does not exist")),
            "name {i}: {answer}"
        );
    }
    let want: Vec<String> = (0..20).map(|i| format!("n{i}")).collect();
    assert_eq!(data(&live.take(20)), want);

    let lookups = proxy.metric("sse_kafka_topic_lookups_total") - lookups_before;
    let requests = proxy.metric("sse_kafka_topic_metadata_requests_total") - requests_before;
    assert_eq!(lookups, NAMES as u64, "every name is looked up once");
    assert!(
        requests >= 1 && requests * 10 <= lookups,
        "{requests} metadata requests for {lookups} look-ups"
    );
}

/// Thousands of clients that resume from the start of a cached topic and
/// then never read once held ~68 KiB each (their encoder's buffers grown to
/// twice a chunk, a chunk queued, the batches they held), and the memory
/// stayed with the process after they left. Now a reader whose client
/// takes nothing for a second is parked with its queued chunk alone, is
/// counted as stalled, and what the readers freed goes back to the kernel.
#[test]
fn readers_that_never_read_hold_one_chunk_and_give_it_back() {
    const READERS: usize = 1000;
    let routes = r#"cache: {partition_bytes: 256MiB, total_bytes: 1GiB, max_age: 1h}
routes:
  - path: /items
    topic: items
"#;
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let proxy = Proxy::start(&config_for(&broker, routes), "0");
    let value = vec![b'v'; 200];
    for _ in 0..20 {
        let records = (0..1000).map(|_| (None, Some(value.clone()))).collect();
        broker.produce_many("items", 0, records);
    }
    wait_until("the proxy cached every record", || {
        proxy.metric("sse_kafka_records_fetched_total") >= 20_000
    });
    let before = proxy.rss_bytes();

    let readers: Vec<SseClient> = (0..READERS)
        .map(|_| SseClient::connect_small_buffer(proxy.addr, "/items?since=0"))
        .collect();
    wait_until("every reader is stalled", || {
        proxy.metric("sse_kafka_stalled_readers") == READERS as u64
    });
    let during = proxy.rss_bytes();
    let per_reader = during.saturating_sub(before) / READERS as u64;
    assert!(
        per_reader < 40 << 10,
        "{per_reader} bytes of RSS per stalled reader ({before} before, {during} during)"
    );

    drop(readers);
    wait_until("the readers are gone", || {
        proxy.metric("sse_kafka_connections_open") == 0
    });
    assert_eq!(proxy.metric("sse_kafka_stalled_readers"), 0);
    wait_until("the memory they held is back with the kernel", || {
        proxy.rss_bytes().saturating_sub(before) < (8 << 10) * READERS as u64
    });
}

/// Kafka's ListOffsets API key.
const LIST_OFFSETS: i16 = 2;

/// A reconnect storm of `since` readers asked Kafka one offset look-up per
/// client per partition; queued at the broker ahead of the live fetches,
/// they held every live stream back (10,000 such readers: live p99 from
/// 70 ms to about a second). Readers that ask while the same look-up is
/// under way now share its answer, and each still reads every record from
/// its start.
#[test]
fn a_storm_of_since_readers_shares_its_offset_look_ups() {
    const READERS: usize = 300;
    const PARTITIONS: usize = 4;
    let routes = "routes:\n  - path: /items\n    topic: items\n";
    let broker = Broker::start_counting();
    broker.create_topic("items", PARTITIONS as i32);
    for p in 0..PARTITIONS {
        broker.produce("items", p as i32, None, Some(format!("p{p}").as_bytes()));
    }
    let proxy = Proxy::start(&config_for(&broker, routes), "0");
    let before = broker.requests(LIST_OFFSETS);

    // Connected first, then every request sent before any answer is read:
    // the proxy has them all at once.
    let mut readers: Vec<std::net::TcpStream> = (0..READERS)
        .map(|_| std::net::TcpStream::connect(proxy.addr).unwrap())
        .collect();
    for s in &mut readers {
        std::io::Write::write_all(s, b"GET /items?since=0 HTTP/1.1\r\nhost: test\r\n\r\n").unwrap();
    }
    for (i, s) in readers.iter_mut().enumerate() {
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while (0..PARTITIONS)
            .any(|p| memchr::memmem::find(&got, format!("data:p{p}\n").as_bytes()).is_none())
        {
            let n = std::io::Read::read(s, &mut buf).unwrap();
            assert!(
                n > 0,
                "reader {i} ended early: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200 "), "reader {i}");
    }
    let lookups = broker.requests(LIST_OFFSETS) - before;
    assert!(
        lookups * 10 <= (READERS * PARTITIONS) as u64,
        "{lookups} ListOffsets requests for {READERS} readers of {PARTITIONS} partitions"
    );
    assert_eq!(
        proxy.metric("sse_kafka_offset_lookups_total")
            + proxy.metric("sse_kafka_offset_lookup_joins_total"),
        (READERS * PARTITIONS) as u64
    );
}
