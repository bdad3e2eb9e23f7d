//! Microbenchmarks of the hot path, each beside a baseline measured in the
//! same run (these machines are shared and noisy: compare ratios, not
//! absolute times).
//!
//! `cargo bench --bench hot_path` — groups: `http_parse`, `frame_encode`,
//! `event_id`, `fanout`. In each group the `baseline` entry is the least any
//! implementation must do (find the head's end, copy the bytes, push one
//! pointer per connection).

use std::collections::VecDeque;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rskafka::chrono::DateTime;
use rskafka::record::{Record, RecordAndOffset};
use sse_kafka::config::EventIdForm;
use sse_kafka::connection::Conn;
use sse_kafka::hub::{Hub, Render};
use sse_kafka::kafka::TopicId;
use sse_kafka::metrics::ShardMetrics;
use sse_kafka::sse::ValueEncoding;
use sse_kafka::{event_id, http, sse};

fn http_parse(c: &mut Criterion) {
    let mut id = Vec::new();
    event_id::encode_progress(
        event_id::topic_hash("items"),
        &[1_000_000, 1_000_200, 999_980, 1_000_050],
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
        let offsets: Vec<i64> = (0..partitions as i64)
            .map(|p| 5_000_000 + p * 37 % 1000)
            .collect();
        let mut scratch = Vec::new();
        let mut out = Vec::new();
        event_id::encode_progress(hash, &offsets, &mut scratch, &mut out);
        let encoded = out.clone();
        let mut copy: Vec<i64> = Vec::with_capacity(partitions);
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
        offset,
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
        sse_kafka::log::Limits {
            partition_bytes: 0,
            total_bytes: 0,
            max_age: std::time::Duration::from_secs(1),
        },
        0,
        1,
    );
    hub.set_partitions(topic, 4);
    let render = Render {
        value: ValueEncoding::Text,
        id: EventIdForm::Progress,
    };
    let conns: Vec<Rc<Conn>> = (0..FANOUT_CONNECTIONS)
        .map(|_| Rc::new(Conn::new(-1, u32::MAX)))
        .collect();
    let stream = hub.topic_mut(topic);
    for p in 0..4 {
        stream.begin_batch(p, 0, &metrics);
    }
    for conn in &conns {
        stream.join(Rc::clone(conn), render);
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
                    let pushed = stream.deliver(1, &rec, usize::MAX, &metrics);
                    total += start.elapsed();
                    assert_eq!(pushed, FANOUT_CONNECTIONS);
                    assert_eq!(stream.clear_pending_writes(), FANOUT_CONNECTIONS);
                    conns.iter().for_each(|c| c.discard_queued());
                }
                total
            })
        },
    );
    g.finish();
}

criterion_group!(benches, http_parse, frame_encode, ids, fanout);
criterion_main!(benches);
