//! Microbenchmarks of the hot path, each beside a baseline measured in the
//! same run (these machines are shared and noisy: compare ratios, not
//! absolute times).
//!
//! `cargo bench --bench hot_path` — groups: `http_parse`, `frame_encode`,
//! `event_id`, `fanout`, `filters`. In each group the `baseline` entry is the
//! least any implementation must do (find the head's end, copy the bytes,
//! push one pointer per connection); in `filters` the baseline is the same
//! records delivered to 100 connections instead of 10,000 (the cost of a
//! record must grow with the distinct filters, not the connections).

use std::collections::VecDeque;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rskafka::chrono::DateTime;
use sse_kafka::codec::sse::Render;
use sse_kafka::codec::sse::ValueEncoding;
use sse_kafka::codec::{event_id, http, sse};
use sse_kafka::config::EventIdForm;
use sse_kafka::model::{Offset, Partition, TopicId};
use sse_kafka::model::{Record, RecordAndOffset};
use sse_kafka::ops::metrics::ShardMetrics;
use sse_kafka::shard::audiences::Selection;
use sse_kafka::shard::hub::Hub;
use sse_kafka::shard::outbox::Outbox;

fn http_parse(c: &mut Criterion) {
    let mut id = Vec::new();
    event_id::encode_progress(
        event_id::topic_hash("items"),
        &[1_000_000, 1_000_200, 999_980, 1_000_050].map(Offset),
        &mut Vec::new(),
        &mut id,
    );
    let request = format!(
        "GET /items?x=1 HTTP/1.1\r\nHost: sse.example.com\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\
         Origin: https://app.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nLast-Event-ID: {}\r\n\r\n",
        String::from_utf8(id).unwrap()
    );
    let bytes = request.as_bytes();
    let mut g = c.benchmark_group("http_parse");
    g.bench_function("baseline_find_head_end", |b| {
        b.iter(|| memchr::memmem::find(black_box(bytes), b"\r\n\r\n"))
    });
    g.bench_function("parse_request", |b| {
        b.iter(|| {
            http::parse_request(black_box(bytes))
                .unwrap()
                .unwrap()
                .head_len
        })
    });
    g.finish();
}

fn frame_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_encode");
    let id = b"ATp5M48EAAoDyg8";
    for lines in [1usize, 5, 50] {
        let value: Vec<u8> = (0..lines)
            .flat_map(|i| {
                format!("{{\"line\":{i},\"payload\":\"{}\"}}\n", "x".repeat(120)).into_bytes()
            })
            .collect();
        let mut out = Vec::with_capacity(value.len() * 2);
        g.bench_with_input(BenchmarkId::new("baseline_copy", lines), &value, |b, v| {
            b.iter(|| {
                out.clear();
                out.extend_from_slice(black_box(v));
                out.len()
            })
        });
        g.bench_with_input(BenchmarkId::new("encode_record", lines), &value, |b, v| {
            b.iter(|| {
                out.clear();
                sse::encode_record(&mut out, id, None, Some(black_box(v)), ValueEncoding::Text);
                out.len()
            })
        });
    }
    g.finish();
}

fn ids(c: &mut Criterion) {
    let mut g = c.benchmark_group("event_id");
    let hash = event_id::topic_hash("items");
    for partitions in [4usize, 64, 1024] {
        let offsets: Vec<Offset> = (0..partitions as i64)
            .map(|p| Offset(5_000_000 + p * 37 % 1000))
            .collect();
        let mut scratch = Vec::new();
        let mut out = Vec::new();
        event_id::encode_progress(hash, &offsets, &mut scratch, &mut out);
        let encoded = out.clone();
        let mut copy: Vec<Offset> = Vec::with_capacity(partitions);
        g.bench_with_input(
            BenchmarkId::new("baseline_copy_offsets", partitions),
            &offsets,
            |b, o| {
                b.iter(|| {
                    copy.clear();
                    copy.extend_from_slice(black_box(o));
                    copy.len()
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("encode", partitions), &offsets, |b, o| {
            b.iter(|| {
                out.clear();
                event_id::encode_progress(hash, black_box(o), &mut scratch, &mut out);
                out.len()
            })
        });
        g.bench_with_input(BenchmarkId::new("decode", partitions), &encoded, |b, e| {
            b.iter(|| event_id::decode_progress(hash, black_box(e)).unwrap().len())
        });
    }
    g.finish();
}

const FANOUT_CONNECTIONS: usize = 10_000;

fn record(offset: i64) -> RecordAndOffset {
    RecordAndOffset {
        record: Record {
            key: Some(b"item-7".to_vec()),
            value: Some(
                format!("{{\"seq\":{offset},\"payload\":\"{}\"}}", "x".repeat(120)).into_bytes(),
            ),
            headers: Default::default(),
            timestamp: DateTime::from_timestamp(0, 0).unwrap(),
        },
        offset: Offset(offset),
    }
}

/// One record to 10,000 live connections of one shard (in-memory sinks).
fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout");
    g.measurement_time(Duration::from_secs(5));
    let frame: Rc<[u8]> = Rc::from(&b"id:ATp5M48EAAoDyg8\ndata:{\"seq\":1}\n\n"[..]);
    let mut queues: Vec<VecDeque<Rc<[u8]>>> = (0..FANOUT_CONNECTIONS)
        .map(|_| VecDeque::with_capacity(4))
        .collect();
    g.bench_function(
        BenchmarkId::new("baseline_push_pointer", FANOUT_CONNECTIONS),
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    for q in &mut queues {
                        q.push_back(Rc::clone(&frame));
                    }
                    total += start.elapsed();
                    queues.iter_mut().for_each(VecDeque::clear);
                }
                total
            })
        },
    );

    let topic = TopicId(0);
    let metrics = ShardMetrics::default();
    let mut hub = Hub::new(
        &["items".to_owned()],
        sse_kafka::shard::cache::Limits {
            partition_bytes: 0,
            total_bytes: 0,
            max_age: std::time::Duration::from_secs(1),
        },
        0,
        1,
    );
    hub.topic_mut(topic).set_partition_count(4);
    let render = Render {
        value: ValueEncoding::Text,
        id: EventIdForm::Progress,
    };
    let conns: Vec<Rc<Outbox>> = (0..FANOUT_CONNECTIONS)
        .map(|_| Rc::new(Outbox::in_memory(u32::MAX)))
        .collect();
    let stream = hub.topic_mut(topic);
    for p in 0..4 {
        stream.begin_batch(Partition(p), Offset(0), &metrics);
    }
    for conn in &conns {
        stream.join(Rc::clone(conn), render, &Default::default());
    }
    let mut offset = 0;
    g.bench_function(
        BenchmarkId::new("deliver_record", FANOUT_CONNECTIONS),
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let rec = record(offset);
                    offset += 1;
                    let start = Instant::now();
                    let reached = stream.deliver(Partition(1), &rec);
                    total += start.elapsed();
                    assert_eq!(reached, FANOUT_CONNECTIONS);
                    // One feed got the frame; the sinks skip it.
                    assert_eq!(stream.clear_pending_writes(), 1);
                }
                total
            })
        },
    );
    g.finish();
}

/// Distinct key filters in the `filters` group.
const FILTER_KEYS: usize = 100;
/// Records delivered per measured iteration in the `filters` group.
const FILTER_RECORDS: usize = 10_000;

fn keyed_record(offset: i64, key: &str) -> RecordAndOffset {
    let mut rec = record(offset);
    rec.record.key = Some(key.as_bytes().to_vec());
    rec
}

/// One shard, 100 distinct key filters (`/items/{id}`), 10,000 records on
/// four partitions: CPU time per record with 10,000 connections spread over
/// the filters, against the same run with 100 connections (one per
/// filter). Two key mixes: every record's key is one of the 100 (each
/// record goes to 1% of the connections), and one record in ten is (the
/// other keys nobody asked for).
fn filters(c: &mut Criterion) {
    use sse_kafka::codec::filter::{self, FilterSpec, Template, Vars};
    let mut g = c.benchmark_group("filters");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(criterion::Throughput::Elements(FILTER_RECORDS as u64));
    let render = Render {
        value: ValueEncoding::Text,
        id: EventIdForm::Progress,
    };
    let no_params = sse_kafka::codec::router::Params::new();
    let key_filter = |k: usize| {
        let spec = FilterSpec {
            key: Some(Template::parse(&format!("item-{k}")).unwrap()),
            ..Default::default()
        };
        let vars = Vars {
            params: &no_params,
            query: None,
            guard: None,
        };
        filter::resolve(&[spec], &vars).unwrap().unwrap()
    };
    for (mix, key_space) in [
        ("all_keys_watched", FILTER_KEYS),
        ("one_in_ten_watched", FILTER_KEYS * 10),
    ] {
        let keys: Vec<String> = (0..key_space).map(|k| format!("item-{k}")).collect();
        for connections in [FILTER_KEYS, 100 * FILTER_KEYS] {
            let metrics = ShardMetrics::default();
            let topic = TopicId(0);
            let mut hub = Hub::new(
                &["items".to_owned()],
                sse_kafka::shard::cache::Limits {
                    partition_bytes: 0,
                    total_bytes: 0,
                    max_age: Duration::from_secs(1),
                },
                0,
                1,
            );
            hub.topic_mut(topic).set_partition_count(4);
            let stream = hub.topic_mut(topic);
            for p in 0..4 {
                stream.begin_batch(Partition(p), Offset(0), &metrics);
            }
            let conns: Vec<Rc<Outbox>> = (0..connections)
                .map(|_| Rc::new(Outbox::in_memory(u32::MAX)))
                .collect();
            for (i, conn) in conns.iter().enumerate() {
                let selection = stream.intern(Selection {
                    filter: Some(Rc::new(key_filter(i % FILTER_KEYS))),
                    ..Default::default()
                });
                stream.join(Rc::clone(conn), render, &selection);
            }
            assert_eq!(stream.audiences(), FILTER_KEYS);
            // Keys spread so that consecutive records go to different
            // filters, as unrelated items do.
            let mut records: Vec<RecordAndOffset> = (0..FILTER_RECORDS)
                .map(|i| keyed_record(0, &keys[(i * 7919) % key_space]))
                .collect();
            let mut offset = 0i64;
            let id = BenchmarkId::new(mix, format!("{connections}_connections"));
            g.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        // The records are reused; their offsets move on
                        // (the hub skips what it has delivered).
                        for (i, rec) in records.iter_mut().enumerate() {
                            rec.offset = Offset(offset + (i / 4) as i64);
                        }
                        offset += (FILTER_RECORDS / 4) as i64;
                        let start = Instant::now();
                        let mut pushed = 0;
                        for (i, rec) in records.iter().enumerate() {
                            pushed += stream.deliver(Partition((i % 4) as u32), black_box(rec));
                        }
                        total += start.elapsed();
                        assert!(pushed > 0);
                        stream.clear_pending_writes();
                    }
                    total
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, http_parse, frame_encode, ids, fanout, filters);
criterion_main!(benches);
