//! End-to-end tests of filtered streams: key, header and JSON value filters
//! from path and query parameters, OR and AND, percent-encoded parameters,
//! exact resume on a filtered stream (nothing skipped, nothing read again),
//! and the Zilla-compatible `key-and-progress` id. Real nisshi broker, real
//! proxy binary, real sockets.

mod common;

use common::{
    config_for, http_get, produce_with_confluent_records, run_python_client, wait_until, Broker,
    Proxy, SseClient,
};
use sse_kafka::codec::event_id;
use sse_kafka::codec::sse::Event;
use sse_kafka::model::{Offset, Partition};

const ROUTES: &str = r#"keepalive: 200ms
routes:
  - path: /items/{id}
    topic: items
    start: earliest
    filters:
      - key: "${params.id}"
  - path: /tagged/{tag}
    topic: items
    start: earliest
    filters:
      - headers: { tag: "${params.tag}" }
  - path: /orders
    topic: items
    start: earliest
    filters:
      - value: { "/status": "${query.status}" }
  - path: /either/{id}
    topic: items
    start: earliest
    filters:
      - key: "${params.id}"
      - headers: { tag: hot }
  - path: /both/{id}/{tag}
    topic: items
    start: earliest
    filters:
      - key: "${params.id}"
        headers: { tag: "${params.tag}", region: eu }
  - path: /keyed/{id}
    topic: items
    start: earliest
    event_id: key-and-progress
    filters:
      - key: "${params.id}"
  - path: /keyed
    topic: items
    start: earliest
    event_id: key-and-progress
"#;

type Rec = (
    Option<&'static str>,
    &'static str,
    Vec<(&'static str, &'static str)>,
);

/// The records of the selection test, each value unique.
fn records() -> Vec<Rec> {
    vec![
        (
            Some("a"),
            r#"{"n":0,"status":"open"}"#,
            vec![("tag", "red")],
        ),
        (
            Some("b"),
            r#"{"n":1,"status":"closed"}"#,
            vec![("tag", "hot")],
        ),
        (Some("a/b c"), r#"{"n":2,"status":"open"}"#, vec![]),
        (Some("a"), "status=open (not JSON)", vec![("tag", "hot")]),
        (
            Some("a"),
            r#"{"n":4,"status":"open now"}"#,
            vec![("tag", "red"), ("region", "eu")],
        ),
        (
            None,
            r#"{"n":5,"status":"open"}"#,
            vec![("tag", "red"), ("region", "us")],
        ),
        (
            Some("A"),
            r#"{"n":6,"status":"open"}"#,
            vec![("tag", "Red")],
        ),
        (Some("a"), r#"{"n":7,"nested":{"status":"open"}}"#, vec![]),
    ]
}

fn produce(broker: &Broker, partition: i32, recs: &[Rec]) {
    let batch = recs
        .iter()
        .map(|(k, v, h)| {
            (
                (
                    k.map(|k| k.as_bytes().to_vec()),
                    Some(v.as_bytes().to_vec()),
                ),
                h.clone(),
            )
        })
        .collect();
    broker.produce_with_headers("items", partition, batch);
}

/// The data of the next `n` events, in order.
fn data(c: &mut SseClient, n: usize) -> Vec<String> {
    c.take(n).into_iter().map(|e| e.data).collect()
}

fn value(n: usize) -> String {
    records()[n].1.to_owned()
}

#[test]
fn filters_select_exactly_the_matching_records() {
    let broker = Broker::start();
    broker.create_topic("items", 2);
    let proxy = Proxy::start(&config_for(&broker, ROUTES), "0,1");
    let recs = records();
    // The first half exists before the clients connect (read by their
    // cursors), the second half arrives while they are live; partition 1
    // gets all of it, partition 0 a copy of the first record.
    produce(&broker, 1, &recs[..4]);
    produce(&broker, 0, &recs[..1]);
    let paths_and_expected: Vec<(&str, Vec<usize>)> = vec![
        ("/items/a", vec![0, 0, 3, 4, 7]),
        ("/items/a%2Fb%20c", vec![2]),
        ("/items/A", vec![6]),
        ("/tagged/red", vec![0, 0, 4, 5]),
        ("/tagged/hot", vec![1, 3]),
        ("/orders?status=open", vec![0, 0, 2, 5, 6]),
        ("/orders?status=open+now", vec![4]),
        ("/orders?status=open%20now", vec![4]),
        ("/either/b", vec![1, 3]),
        ("/either/A", vec![1, 3, 6]),
        ("/both/a/red", vec![4]),
    ];
    let mut clients: Vec<(SseClient, &str, Vec<usize>)> = paths_and_expected
        .into_iter()
        .map(|(path, want)| {
            let c = SseClient::connect(proxy.addr, path, &[]);
            assert_eq!(c.status(), 200, "{path}");
            (c, path, want)
        })
        .collect();
    produce(&broker, 1, &recs[4..]);
    for (c, path, want) in &mut clients {
        let mut got = data(c, want.len());
        // Partition 0's copy of record 0 may come before or after
        // partition 1's records: compare as sorted lists, then check
        // partition 1's order separately below.
        let mut want_values: Vec<String> = want.iter().map(|&n| value(n)).collect();
        got.sort();
        want_values.sort();
        assert_eq!(got, want_values, "{path}");
    }
    // A record that every filter passes over, then one that some take.
    produce(
        &broker,
        1,
        &[(
            Some("zz"),
            r#"{"n":99,"status":"none"}"#,
            vec![("tag", "none")],
        )],
    );
    let last: Rec = (
        Some("a"),
        r#"{"n":100,"status":"open"}"#,
        vec![("tag", "red"), ("region", "eu")],
    );
    produce(&broker, 1, std::slice::from_ref(&last));
    for (c, path, _) in &mut clients {
        let takes_last = matches!(
            *path,
            "/items/a" | "/tagged/red" | "/orders?status=open" | "/both/a/red"
        );
        if takes_last {
            assert_eq!(data(c, 1), [last.1], "{path}");
        }
    }
    // Nothing else reached any client, and every client's id moved to the
    // heads: by the last record it took, or by an id-only event.
    let heads_id = progress_id(&[1, 10]);
    for (c, path, _) in &mut clients {
        c.wait_for_id(&heads_id);
        assert_eq!(c.buffered_events(), 0, "{path} got an event it should not");
    }
}

#[test]
fn a_missing_parameter_is_a_400_naming_it() {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let proxy = Proxy::start(&config_for(&broker, ROUTES), "0");
    let response = http_get(proxy.addr, "/orders").unwrap();
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    assert!(
        response.contains("missing query parameter 'status'"),
        "{response}"
    );
    let response = http_get(proxy.addr, "/orders?other=open").unwrap();
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    // An empty value is a value: it matches an empty JSON string.
    broker.produce("items", 0, None, Some(br#"{"status":""}"#));
    let mut c = SseClient::connect(proxy.addr, "/orders?status=", &[]);
    assert_eq!(c.status(), 200);
    assert_eq!(data(&mut c, 1), [r#"{"status":""}"#]);
}

/// The next offsets of topic `items` that a progress id carries.
fn offsets(id: &str) -> Vec<i64> {
    let position = event_id::decode_progress(event_id::topic_hash("items"), id.as_bytes()).unwrap();
    position.offsets().iter().map(|o| o.0).collect()
}

fn progress_id(next: &[i64]) -> String {
    progress_id_of(event_id::topic_hash("items"), next)
}

/// Records read by catch-up cursors, from the cache or from Kafka.
fn records_read(proxy: &Proxy) -> u64 {
    proxy.metric("sse_kafka_catchup_cached_records_total")
        + proxy.metric("sse_kafka_catchup_fetched_records_total")
}

#[test]
fn a_filtered_stream_resumes_without_skipping_or_reading_again() {
    let broker = Broker::start();
    broker.create_topic("items", 2);
    let proxy = Proxy::start(&config_for(&broker, ROUTES), "0,1");
    let other = |n: usize| -> Vec<(common::KeyValue, Vec<(&str, &str)>)> {
        (0..n)
            .map(|i| {
                (
                    (Some(b"other".to_vec()), Some(format!("o{i}").into_bytes())),
                    vec![],
                )
            })
            .collect()
    };
    broker.produce("items", 0, Some(b"k"), Some(b"k-0"));
    broker.produce_with_headers("items", 0, other(200));
    broker.produce_with_headers("items", 1, other(300));
    let mut c = SseClient::connect(proxy.addr, "/items/k", &[]);
    assert_eq!(data(&mut c, 1), ["k-0"]);
    // The cursor read all 501 records; its client's id then moves past the
    // 500 it was not shown (an id-only event at the end of the chunk).
    c.wait_for_id(&progress_id(&[201, 300]));
    assert_eq!(c.buffered_events(), 0);
    // Live: more records pass the client by; the ticker's id-only event
    // moves its id again.
    broker.produce_with_headers("items", 1, other(50));
    c.wait_for_id(&progress_id(&[201, 350]));
    let id = c.last_event_id().unwrap();
    assert_eq!(offsets(&id), [201, 350]);
    drop(c);

    // While it is away: one record for it among 40 others.
    broker.produce_with_headers("items", 0, other(20));
    broker.produce("items", 1, Some(b"k"), Some(b"k-1"));
    broker.produce_with_headers("items", 1, other(20));
    wait_until("the proxy to fetch the new records", || {
        proxy.metric("sse_kafka_records_fetched_total") >= 501 + 50 + 41
    });
    let read_before = records_read(&proxy);
    let mut c = SseClient::connect(proxy.addr, "/items/k", &[("last-event-id", &id)]);
    let events = c.take(1);
    assert_eq!(events[0].data, "k-1", "skips nothing");
    assert_eq!(offsets(events[0].id.as_deref().unwrap())[1], 351);
    c.wait_for_id(&progress_id(&[221, 371]));
    assert_eq!(c.buffered_events(), 0, "and nothing twice");
    assert_eq!(
        records_read(&proxy) - read_before,
        41,
        "the resume reads only the 41 records produced since its id, none before"
    );
}

/// `["<base64url key>","<progress>"]` split into its parts.
fn key_and_progress(e: &Event) -> (Option<Vec<u8>>, String) {
    use base64::Engine as _;
    let id = e.id.as_deref().expect("an id");
    let parts: (Option<String>, String) = serde_json::from_str(id).expect("a JSON pair");
    let key = parts.0.map(|k| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(k)
            .expect("base64url key")
    });
    (key, parts.1)
}

#[test]
fn key_and_progress_ids_round_trip() {
    let broker = Broker::start();
    broker.create_topic("items", 2);
    let proxy = Proxy::start(&config_for(&broker, ROUTES), "0,1");
    broker.produce("items", 0, Some(b"k\xff?"), Some(b"v0"));
    broker.produce("items", 1, None, Some(b"v1"));
    broker.produce("items", 0, Some(b"k\xff?"), Some(b"v2"));
    broker.produce("items", 1, Some(b"k\xff?"), Some(b"v3"));

    // Keyed records carry their key, and the null key is JSON null.
    let mut all = SseClient::connect(proxy.addr, "/keyed", &[]);
    let mut events = all.take(4);
    events.sort_by(|a, b| a.data.cmp(&b.data));
    let ids: Vec<_> = events.iter().map(key_and_progress).collect();
    assert_eq!(ids[0].0.as_deref(), Some(&b"k\xff?"[..]));
    assert_eq!(ids[1].0, None);
    assert!(events[1].id.as_deref().unwrap().starts_with("[null,\""));

    // Resume from either form of an id: exactly the records after it.
    let mut c = SseClient::connect(proxy.addr, "/keyed/k%FF%3F", &[]);
    let first = c.take(1);
    assert_eq!(first[0].data, "v0");
    let (key, progress) = key_and_progress(&first[0]);
    assert_eq!(key.as_deref(), Some(&b"k\xff?"[..]));
    let zilla_form = first[0].id.clone().unwrap();
    for id in [zilla_form.as_str(), progress.as_str()] {
        let mut resumed =
            SseClient::connect(proxy.addr, "/keyed/k%FF%3F", &[("last-event-id", id)]);
        let mut rest = data(&mut resumed, 2);
        rest.sort();
        assert_eq!(rest, ["v2", "v3"], "resumed from {id}");
    }
}

/// Produces one record per key `key-0..key-{n-1}` (and some binary keys)
/// with Python confluent-kafka and Kafka's default partitioner; returns
/// (key, partition) of each as the broker stored it.
fn produce_with_confluent(broker: &Broker, topic: &str, n: usize) -> Vec<(Vec<u8>, u32)> {
    let addr = broker.addr.to_string();
    run_python_client("produce_keys.py", &[&addr, topic, &n.to_string()], "")
        .iter()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let hex = v["key_hex"].as_str().unwrap();
            let key = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (key, v["partition"].as_u64().unwrap() as u32)
        })
        .collect()
}

#[test]
fn key_pruning_reads_only_the_partition_of_the_key() {
    const ROUTES: &str = r#"keepalive: 200ms
routes:
  - path: /pruned/{id}
    topic: keyed
    start: earliest
    partitioner: murmur2
    filters:
      - key: "${params.id}"
  - path: /scanned/{id}
    topic: keyed
    start: earliest
    filters:
      - key: "${params.id}"
"#;
    let broker = Broker::start();
    broker.create_topic("keyed", 4);
    let proxy = Proxy::start(&config_for(&broker, ROUTES), "0,1");
    let placed = produce_with_confluent(&broker, "keyed", 100);
    assert_eq!(placed.len(), 122);
    // Where a real client with the default partitioner put every key is
    // where sse-kafka computes it.
    for (key, partition) in &placed {
        assert_eq!(
            sse_kafka::codec::partitioner::partition_for_key(key, 4),
            *partition,
            "key {key:?}"
        );
    }
    let p7 = placed.iter().find(|(k, _)| k == b"key-7").unwrap().1;
    let in_p7 = placed.iter().filter(|(_, p)| *p == p7).count() as u64;
    assert!(
        in_p7 < placed.len() as u64 / 2,
        "keys spread over the partitions"
    );
    wait_until("the proxy to fetch every record", || {
        proxy.metric("sse_kafka_records_fetched_total") >= placed.len() as u64
    });
    let hash = event_id::topic_hash("keyed");

    // The pruned stream reads only partition p7, and its ids name it alone.
    let before = records_read(&proxy);
    let mut pruned = SseClient::connect(proxy.addr, "/pruned/key-7", &[]);
    let first = pruned.take(1);
    assert_eq!(first[0].data, "key-7");
    let id = first[0].id.clone().unwrap();
    let event_id::Progress::Some(pairs) = event_id::decode(hash, id.as_bytes()).unwrap() else {
        panic!("a pruned stream's id is sparse: {id}");
    };
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].0, Partition(p7));
    let sparse_end = |n: i64| {
        let mut next = vec![Offset(0); 4];
        next[p7 as usize] = Offset(n);
        let mut id = Vec::new();
        event_id::encode_sparse(hash, &[Partition(p7)], &next, &mut Vec::new(), &mut id);
        String::from_utf8(id).unwrap()
    };
    pruned.wait_for_id(&sparse_end(in_p7 as i64));
    assert_eq!(
        records_read(&proxy) - before,
        in_p7,
        "only partition {p7} was read"
    );
    // The same filter without pruning reads every partition.
    let before = records_read(&proxy);
    let mut scanned = SseClient::connect(proxy.addr, "/scanned/key-7", &[]);
    assert_eq!(data(&mut scanned, 1), ["key-7"]);
    scanned.wait_for_id(&progress_id_of(hash, &partition_ends(&placed)));
    assert_eq!(records_read(&proxy) - before, placed.len() as u64);

    // Live: a second round reaches both, once.
    let second = produce_with_confluent(&broker, "keyed", 100);
    assert_eq!(data(&mut pruned, 1), ["key-7"]);
    assert_eq!(data(&mut scanned, 1), ["key-7"]);
    // Its id then moves past the rest of the round in p7 (an id-only event).
    let p7_after_second = placed
        .iter()
        .chain(&second)
        .filter(|(_, p)| *p == p7)
        .count() as i64;
    pruned.wait_for_id(&sparse_end(p7_after_second));
    let resume_id = pruned.last_event_id().unwrap();
    drop(pruned);

    // A resume from the sparse id, after a third round: the third key-7
    // alone, reading only the new records of partition p7.
    let third = produce_with_confluent(&broker, "keyed", 100);
    let all: Vec<_> = placed
        .iter()
        .chain(&second)
        .chain(&third)
        .cloned()
        .collect();
    wait_until("the proxy to fetch the third round", || {
        proxy.metric("sse_kafka_records_fetched_total") >= all.len() as u64
    });
    let new_in_p7 = third.iter().filter(|(_, p)| *p == p7).count() as u64;
    let before = records_read(&proxy);
    let mut resumed = SseClient::connect(
        proxy.addr,
        "/pruned/key-7",
        &[("last-event-id", &resume_id)],
    );
    assert_eq!(data(&mut resumed, 1), ["key-7"]);
    let p7_end = all.iter().filter(|(_, p)| *p == p7).count() as i64;
    resumed.wait_for_id(&sparse_end(p7_end));
    assert_eq!(resumed.buffered_events(), 0);
    let read = records_read(&proxy) - before;
    assert_eq!(
        read, new_in_p7,
        "the resume reads only partition {p7}'s new records"
    );
}

#[test]
fn any_occurrence_of_a_repeated_header_matches() {
    const ROUTES: &str = r#"keepalive: 200ms
routes:
  - path: /tagged/{tag}
    topic: tags
    start: earliest
    filters:
      - headers: { tag: "${params.tag}" }
"#;
    // One round of records, values `<round>-<n>`; the tags each carries,
    // in order, and which streams must show it.
    let round = |r: &str| -> Vec<serde_json::Value> {
        let headers: [&[(&str, &str)]; 6] = [
            &[("tag", "red"), ("tag", "blue")],
            &[("tag", "blue")],
            &[("tag", "green"), ("tag", "red")],
            &[("tag", "red"), ("region", "eu"), ("tag", "green")],
            &[],
            &[("tags", "red"), ("Tag", "red"), ("tag", "re")],
        ];
        headers
            .iter()
            .enumerate()
            .map(|(n, hs)| {
                serde_json::json!({
                    "partition": 0,
                    "key": null,
                    "value": format!("{r}-{n}"),
                    "headers": hs.iter().map(|(k, v)| [k, v]).collect::<Vec<_>>(),
                })
            })
            .collect()
    };
    let expect = |r: &str, tag: &str| -> Vec<String> {
        let shown: &[usize] = match tag {
            "red" => &[0, 2, 3],
            "blue" => &[0, 1],
            "green" => &[2, 3],
            _ => unreachable!(),
        };
        shown.iter().map(|n| format!("{r}-{n}")).collect()
    };
    let broker = Broker::start();
    broker.create_topic("tags", 1);
    // Produced before the proxy starts: the streams read these with a
    // catch-up fetch from Kafka (the live loop starts at the end).
    let first = produce_with_confluent_records(&broker, "tags", &round("a"));
    assert_eq!(first, (0..6).collect::<Vec<i64>>());
    let proxy = Proxy::start(&config_for(&broker, ROUTES), "0,1");
    let hash = event_id::topic_hash("tags");
    let mut clients: Vec<(&str, SseClient)> = ["red", "blue", "green"]
        .into_iter()
        .map(|tag| {
            let path = format!("/tagged/{tag}");
            (tag, SseClient::connect(proxy.addr, &path, &[]))
        })
        .collect();
    for (tag, client) in &mut clients {
        assert_eq!(data(client, expect("a", tag).len()), expect("a", tag));
        client.wait_for_id(&progress_id_of(hash, &[6]));
    }
    assert!(
        proxy.metric("sse_kafka_catchup_fetched_records_total") >= 6,
        "the first round came from a catch-up fetch"
    );
    // Produced while they stream: the live fetch loop's records.
    produce_with_confluent_records(&broker, "tags", &round("b"));
    for (tag, client) in &mut clients {
        assert_eq!(data(client, expect("b", tag).len()), expect("b", tag));
        // Nothing else: the id reaches the end with no event in between.
        client.wait_for_id(&progress_id_of(hash, &[12]));
        assert_eq!(client.buffered_events(), 0, "{tag}");
    }
}

/// The next offset of each of the 4 partitions after these records.
fn partition_ends(placed: &[(Vec<u8>, u32)]) -> Vec<i64> {
    let mut next = vec![0i64; 4];
    for (_, p) in placed {
        next[*p as usize] += 1;
    }
    next
}

fn progress_id_of(hash: u32, next: &[i64]) -> String {
    let mut id = Vec::new();
    let next: Vec<Offset> = next.iter().copied().map(Offset).collect();
    event_id::encode_progress(hash, &next, &mut Vec::new(), &mut id);
    String::from_utf8(id).unwrap()
}

#[test]
fn a_topic_from_the_path_is_bounded_by_the_topics_patterns() {
    const ROUTES: &str = r#"routes:
  - path: /topics/{name}
    topic: "${params.name}"
    topics: ["public.*", news]
    start: earliest
"#;
    let broker = Broker::start();
    broker.create_topic("public.a", 2);
    broker.create_topic("secret", 1);
    let proxy = Proxy::start(&config_for(&broker, ROUTES), "0,1");
    broker.produce("public.a", 0, None, Some(b"a0"));
    broker.produce("public.a", 1, None, Some(b"a1"));
    broker.produce("secret", 0, None, Some(b"s0"));

    // Outside the patterns, not a topic name, or not a topic at all: 404,
    // and Kafka is not asked to create anything.
    for (path, why) in [
        (
            "/topics/secret",
            "topic 'secret' is not served on this path",
        ),
        (
            "/topics/public",
            "topic 'public' is not served on this path",
        ),
        ("/topics/public.a%2Fb", "is not allowed"),
        (
            "/topics/public.missing",
            "topic 'public.missing' does not exist",
        ),
    ] {
        let response = http_get(proxy.addr, path).unwrap();
        assert!(response.starts_with("HTTP/1.1 404 "), "{path}: {response}");
        assert!(response.contains(why), "{path}: {response}");
    }
    assert!(!broker.topics().contains(&"public.missing".to_owned()));
    // Asked about again, a name Kafka just said is missing gets its 404
    // without another metadata request (until the next refresh, 5 s), on
    // the shard that asked; the other shard asks once itself.
    let lookups = proxy.metric("sse_kafka_topic_lookups_total");
    assert!(lookups >= 1);
    for _ in 0..6 {
        let response = http_get(proxy.addr, "/topics/public.missing").unwrap();
        assert!(response.starts_with("HTTP/1.1 404 "), "{response}");
    }
    let asked = proxy.metric("sse_kafka_topic_lookups_total") - lookups;
    assert!(
        asked <= 1,
        "{asked} metadata requests for a name known missing"
    );

    // Inside: streamed like a configured topic, by clients on both shards.
    let mut clients: Vec<SseClient> = (0..4)
        .map(|_| SseClient::connect(proxy.addr, "/topics/public.a", &[]))
        .collect();
    for c in &mut clients {
        assert_eq!(c.status(), 200);
        let mut got = data(c, 2);
        got.sort();
        assert_eq!(got, ["a0", "a1"]);
    }
    broker.produce("public.a", 1, None, Some(b"a2"));
    for c in &mut clients {
        assert_eq!(data(c, 1), ["a2"]);
    }
}

#[test]
fn topics_named_by_requests_stop_at_max_topics_with_a_503() {
    const REST: &str = r#"  max_topics: 2
routes:
  - path: /topics/{name}
    topic: "${params.name}"
    topics: "t-*"
    start: earliest
"#;
    let broker = Broker::start();
    for t in ["t-a", "t-b", "t-c"] {
        broker.create_topic(t, 1);
        broker.produce(t, 0, None, Some(t.as_bytes()));
    }
    let proxy = Proxy::start(&config_for(&broker, REST), "0,1");
    let mut a = SseClient::connect(proxy.addr, "/topics/t-a", &[]);
    assert_eq!(data(&mut a, 1), ["t-a"]);
    let mut b = SseClient::connect(proxy.addr, "/topics/t-b", &[]);
    assert_eq!(data(&mut b, 1), ["t-b"]);
    // A third topic does not fit: 503, with a retry-after, from either
    // shard (the table is the process's).
    for _ in 0..4 {
        let response = http_get(proxy.addr, "/topics/t-c").unwrap();
        assert!(response.starts_with("HTTP/1.1 503 "), "{response}");
        assert!(response.contains("retry-after: "), "{response}");
        assert!(
            response.contains("this instance serves 2 topics already (kafka.max_topics)"),
            "{response}"
        );
    }
    // The topics it serves are still served, to new clients too.
    let mut again = SseClient::connect(proxy.addr, "/topics/t-a", &[]);
    assert_eq!(data(&mut again, 1), ["t-a"]);
    broker.produce("t-b", 0, None, Some(b"t-b live"));
    assert_eq!(data(&mut b, 1), ["t-b live"]);
}
