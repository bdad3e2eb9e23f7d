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
