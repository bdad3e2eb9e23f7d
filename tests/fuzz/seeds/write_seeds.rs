//! Writes the committed seed corpora (`corpus/<target>/`) from the
//! library's own encoders and documents, so that the seeds are inputs the
//! proxy really sees: ids from the event-id encoder, streams from the SSE
//! frame encoders, the README's and the quickstart's configs, and record
//! batches laid out as Kafka clients write them (the layout of the
//! decoder's test writer, `src/kafka/decode/testing.rs`, which is
//! `cfg(test)` and so not reachable from here).
//!
//! Run from `tests/fuzz`: `cargo +nightly run --example write_seeds`. The
//! output is deterministic; rerun it when a format changes and commit the
//! result.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sse_kafka::codec::event_id::{
    encode_key_and_position, encode_key_and_progress, encode_progress, encode_sparse, topic_hash,
};
use sse_kafka::codec::sse::{
    encode_event, encode_id_only, encode_record, encode_retry, error_event, gap_event,
    skipped_event, ValueEncoding, KEEPALIVE,
};
use sse_kafka::model::{Offset, Partition};

/// The topic the event-id target decodes for (`fuzz_targets/event_id.rs`).
const ID_TOPIC: &str = "orders";

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    dir
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("write a seed");
}

fn offsets(v: &[i64]) -> Vec<Offset> {
    v.iter().copied().map(Offset).collect()
}

fn request_heads() {
    let dir = corpus("request_head");
    let heads: &[(&str, &[u8])] = &[
        (
            "get",
            b"GET /items HTTP/1.1\r\nHost: localhost:8080\r\nAccept: text/event-stream\r\n\r\n",
        ),
        (
            "resume",
            b"GET /items/item-3 HTTP/1.1\r\nHost: a\r\nLast-Event-ID: ATp5M48EAAoDyg8\r\nOrigin: https://app.example\r\nCache-Control: no-cache\r\n\r\n",
        ),
        (
            "query",
            b"GET /by-item?item=item%2D3&lastEventId=ATp5M48EAAoDyg8&since=1700000000000#frag HTTP/1.1\r\nhost: a\r\n\r\n",
        ),
        (
            "preflight",
            b"OPTIONS /items HTTP/1.1\r\nHost: a\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: last-event-id, x-a\r\nAccess-Control-Request-Headers: x-b\r\n\r\n",
        ),
        ("asterisk", b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
        (
            "absolute_form",
            b"GET http://proxy.example:8080/items?x=1 HTTP/1.1\r\nHost: proxy.example\r\n\r\n",
        ),
        ("http10", b"\r\n\r\nHEAD /metrics HTTP/1.0\n\n"),
        (
            "pipelined",
            b"GET /items HTTP/1.1\r\nHost: a\r\n\r\nGET /other HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        ("h2_preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        (
            "repeated_id",
            b"GET / HTTP/1.1\r\nHost: a\r\nlast-event-id: a\r\nLast-Event-Id: b\r\n\r\n",
        ),
        ("partial", b"GET /items HTTP/1.1\r\nHost: local"),
    ];
    for (name, head) in heads {
        write(&dir, name, head);
    }
    // Just past the request-line limit (20 KiB), as a long resume by query
    // would be.
    let mut long = b"GET /items?lastEventId=".to_vec();
    long.resize(20 * 1024 + 1, b'A');
    long.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    write(&dir, "line_too_long", &long);
}

fn event_ids() {
    let dir = corpus("event_id");
    let hash = topic_hash(ID_TOPIC);
    let (mut scratch, mut out) = (Vec::new(), Vec::new());
    let mut progress = |name: &str, next: &[i64]| {
        out.clear();
        encode_progress(hash, &offsets(next), &mut scratch, &mut out);
        write(&dir, name, &out);
        out.clone()
    };
    progress("none", &[]);
    progress("one", &[0]);
    let four = progress("four", &[0, 5, 3, 1000]);
    progress("large", &[i64::MAX, 0, 1 << 40, (1 << 40) - 1]);
    let ramp: Vec<i64> = (0..64).map(|i| 1_000_000 + i * 37 % 1000).collect();
    progress("ramp64", &ramp);
    let next = offsets(&[10, 20, 30, 40, 50, 60, 70, 80]);
    let partitions = [Partition(1), Partition(2), Partition(7)];
    let mut sparse = Vec::new();
    encode_sparse(hash, &partitions, &next, &mut scratch, &mut sparse);
    write(&dir, "sparse", &sparse);
    let mut keyed = Vec::new();
    encode_key_and_progress(Some(b"item-3"), hash, &next, &mut scratch, &mut keyed);
    write(&dir, "keyed", &keyed);
    keyed.clear();
    encode_key_and_progress(None, hash, &next, &mut scratch, &mut keyed);
    write(&dir, "keyed_null", &keyed);
    keyed.clear();
    encode_key_and_position(
        Some(&[0xff; 300]),
        hash,
        Some(&partitions),
        &next,
        &mut scratch,
        &mut keyed,
    );
    write(&dir, "keyed_sparse", &keyed);
    // Forms the decoder accepts that the encoder does not write.
    let mut padded = four.clone();
    padded.push(b'=');
    write(&dir, "padded", &padded);
    let mut spaced = b" [ null , \"".to_vec();
    spaced.extend_from_slice(&four);
    spaced.extend_from_slice(b"\" ]\t");
    write(&dir, "keyed_spaced", &spaced);
    // Another topic's id.
    out.clear();
    encode_progress(topic_hash("items"), &offsets(&[1]), &mut scratch, &mut out);
    write(&dir, "other_topic", &out);
}

fn sse_streams() {
    let dir = corpus("sse_parser");
    let mut id = Vec::new();
    let mut scratch = Vec::new();
    let mut stream = Vec::new();
    encode_retry(&mut stream, 2000);
    let hash = topic_hash("items");
    for (i, value) in [
        &b"{\"item\":\"item-3\"}"[..],
        b"two\r\nlines\nand\rthree",
        b" space",
    ]
    .iter()
    .enumerate()
    {
        id.clear();
        encode_progress(hash, &offsets(&[i as i64 + 1, 7]), &mut scratch, &mut id);
        encode_record(
            &mut stream,
            &id,
            Some(b"k"),
            Some(value),
            ValueEncoding::Text,
        );
    }
    encode_record(
        &mut stream,
        &id,
        Some(b"k"),
        Some(&[0, 159, 146, 150]),
        ValueEncoding::Base64,
    );
    encode_record(&mut stream, &id, Some(b"tomb"), None, ValueEncoding::Text);
    stream.extend_from_slice(KEEPALIVE);
    encode_id_only(&mut stream, &id);
    encode_event(
        &mut stream,
        None,
        "reset",
        b"{\"reason\":\"event id is truncated\"}",
    );
    stream.extend(gap_event(Partition(1), Offset(3), Offset(9)));
    skipped_event(&mut stream, Partition(0), Offset(10), Offset(12));
    error_event(&mut stream, "topic unavailable");
    // [line limit, cut] then the stream: the default limit, cut near the
    // middle.
    let mut seed = vec![255, 128];
    seed.extend_from_slice(&stream);
    write(&dir, "proxy_stream", &seed);
    // The same with CR LF line ends and a byte order mark, cut early.
    let mut crlf = vec![255, 16];
    crlf.extend_from_slice("\u{feff}".as_bytes());
    for &b in &stream {
        if b == b'\n' {
            crlf.extend_from_slice(b"\r\n");
        } else {
            crlf.push(b);
        }
    }
    write(&dir, "crlf_bom", &crlf);
    // The spec's corner cases: fields without a colon, a NUL in an id, an
    // invalid retry, a lone CR, an unfinished event; then a line over a
    // 16-byte limit.
    write(
        &dir,
        "spec_corners",
        b"\xff\x40data\n\nid: a\x00b\nretry: 12a\nretry\nevent\ndata:x\r\rid\ndata: y\ndata",
    );
    write(&dir, "line_too_long", b"\x10\x80data: 0123456789abcdef\n\n");
}

fn configs() {
    let dir = corpus("config");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let quickstart =
        std::fs::read(root.join("examples/quickstart.yaml")).expect("examples/quickstart.yaml");
    write(&dir, "quickstart.yaml", &quickstart);
    // The README's full example: its first YAML block.
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let block = readme
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a yaml block in README.md");
    write(&dir, "readme.yaml", block.as_bytes());
    let docs: &[(&str, &str)] = &[
        (
            "minimal.yaml",
            "kafka:\n  bootstrap: [\"127.0.0.1:9092\"]\nroutes:\n  - path: /items\n    topic: items\n",
        ),
        (
            "topic_template.yaml",
            "kafka: { bootstrap: [\"a:1\", \"b:2\"], max_topics: 8 }\nroutes:\n  - path: /topics/{name}\n    topic: \"${params.name}\"\n    topics: [\"public.*\", news]\n    event_id: key-and-progress\n  - path: /keyed/{id}\n    topic: keyed\n    partitioner: murmur2\n    filters:\n      - key: \"order-${params.id}\"\n      - key: fixed\nslow_client: { max_lag: 2m }\ncache: { partition_bytes: 0, total_bytes: 0 }\nconnections: { max_per_ip: 100, nodelay: false }\n",
        ),
        (
            "errors.yaml",
            "kafka:\n\tbootstrap: [a:1]\nroutes:\n  - path: /x/{id}\n    topic: \"bad topic\"\n    filters: []\n    unknown: 1\n",
        ),
        (
            "aliases.yaml",
            "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nkafka: { bootstrap: *b }\nroutes: [{ path: /i, topic: i }]\n",
        ),
    ];
    for (name, text) in docs {
        write(&dir, name, text.as_bytes());
    }
}

fn filters() {
    let dir = corpus("filter");
    let specs: &[(&str, &str)] = &[
        ("key_param", "k ${params.id}\nr /items/{id}\nu /items/item%2D3\nK item-3\n"),
        (
            "headers_query",
            "h tag=${query.tag}\nh region=eu\nq tag=red&x=%41+b\nH tag=blue\nH tag=red\nH region=eu\nV {}",
        ),
        (
            "value_text",
            "v /item=${query.item}\nq item=item-3\nV {\"item\": \"item-3\", \"n\": 5}",
        ),
        (
            "value_literals",
            "l /n=5\nl /ok=true\nl /gone=null\n|\nl /order/id=42\nV {\"n\":5,\"ok\":true,\"gone\":null,\"order\":{\"id\":42}}",
        ),
        ("value_number_text", "v /a~1b/0=${params.n}\np n=42\nV {\"a/b\":{\"0\":42}}"),
        ("whole_value", "v =open\nV \"open\""),
        (
            "or_keys",
            "k a\n|\nk ${query.k}\n|\nk a\nq k=b\nK b\nV not json",
        ),
        ("missing", "k ${params.nope}\n|\nh x=${query.y}\nK x"),
        ("bad_templates", "k ${\nh a=${}\nv /x=${guard.identity}\nk $${query.a}}\nq a=1"),
    ];
    for (name, text) in specs {
        write(&dir, name, text.as_bytes());
    }
}

/// One record of a batch (`Rec` of the decoder's test writer).
struct Rec<'a> {
    offset_delta: i64,
    timestamp_delta: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    /// `None` writes a null header value (length -1).
    headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

fn zigzag(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => zigzag(out, -1),
        Some(b) => {
            zigzag(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

fn record(r: &Rec<'_>) -> Vec<u8> {
    let mut body = vec![0u8]; // attributes
    zigzag(&mut body, r.timestamp_delta);
    zigzag(&mut body, r.offset_delta);
    bytes(&mut body, r.key);
    bytes(&mut body, r.value);
    zigzag(&mut body, r.headers.len() as i64);
    for (name, value) in &r.headers {
        bytes(&mut body, Some(name.as_bytes()));
        bytes(&mut body, *value);
    }
    let mut out = Vec::new();
    zigzag(&mut out, body.len() as i64);
    out.extend(body);
    out
}

/// A batch's framing: base offset, attributes (codec, transactional 0x10,
/// control 0x20), producer id, last offset delta and record count.
struct Spec {
    base: i64,
    attributes: i16,
    producer_id: i64,
    last_delta: i32,
    count: i32,
}

fn batch(spec: &Spec, raw: &[u8]) -> Vec<u8> {
    let records = match spec.attributes & 7 {
        0 => raw.to_vec(),
        1 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(raw).expect("gzip");
            e.finish().expect("gzip")
        }
        2 => snap::raw::Encoder::new().compress_vec(raw).expect("snappy"),
        3 => {
            let mut e = lz4::EncoderBuilder::new().build(Vec::new()).expect("lz4");
            e.write_all(raw).expect("lz4");
            let (out, result) = e.finish();
            result.expect("lz4");
            out
        }
        4 => zstd::encode_all(raw, 0).expect("zstd"),
        codec => panic!("codec {codec}"),
    };
    let first_timestamp: i64 = 1_700_000_000_000;
    let mut checked = Vec::new();
    checked.extend(spec.attributes.to_be_bytes());
    checked.extend(spec.last_delta.to_be_bytes());
    checked.extend(first_timestamp.to_be_bytes());
    checked.extend(first_timestamp.to_be_bytes()); // max timestamp
    checked.extend(spec.producer_id.to_be_bytes());
    checked.extend(0i16.to_be_bytes()); // producer epoch
    checked.extend((-1i32).to_be_bytes()); // base sequence
    checked.extend(spec.count.to_be_bytes());
    checked.extend(records);
    let mut out = Vec::new();
    out.extend(spec.base.to_be_bytes());
    out.extend(((4 + 1 + 4 + checked.len()) as i32).to_be_bytes());
    out.extend(0i32.to_be_bytes()); // leader epoch
    out.push(2); // magic
    out.extend(crc32c::crc32c(&checked).to_be_bytes());
    out.extend(checked);
    out
}

/// A data batch at `base` of `records`.
fn data(base: i64, attributes: i16, producer_id: i64, records: &[Rec<'_>]) -> Vec<u8> {
    let raw: Vec<u8> = records.iter().flat_map(record).collect();
    let spec = Spec {
        base,
        attributes,
        producer_id,
        last_delta: records.iter().map(|r| r.offset_delta).max().unwrap_or(0) as i32,
        count: records.len() as i32,
    };
    batch(&spec, &raw)
}

/// A transaction marker (a control batch): commit or abort.
fn marker(base: i64, producer_id: i64, commit: bool) -> Vec<u8> {
    let key = [0, 0, 0, u8::from(commit)];
    let r = Rec {
        offset_delta: 0,
        timestamp_delta: 0,
        key: Some(&key),
        value: Some(&[0, 0, 0, 0, 0, 0]),
        headers: Vec::new(),
    };
    let spec = Spec {
        base,
        attributes: 0x30,
        producer_id,
        last_delta: 0,
        count: 1,
    };
    batch(&spec, &record(&r))
}

fn rec(delta: i64) -> Rec<'static> {
    Rec {
        offset_delta: delta,
        timestamp_delta: delta * 10,
        key: Some(b"item-3"),
        value: Some(b"{\"item\":\"item-3\",\"n\":5}"),
        headers: vec![
            ("tag", Some(b"red")),
            ("tag", Some(b"blue")),
            ("empty", None),
        ],
    }
}

/// A seed: flags (bit 0 fix checksums, bit 1 `from` follows, bits 2-3
/// aborted transactions, bits 4-7 where the second decode cuts), then the
/// fields, then the batches.
fn batch_seed(
    flags: u8,
    from: Option<i64>,
    aborted: &[(i64, i64)],
    batches: &[Vec<u8>],
) -> Vec<u8> {
    assert_eq!(from.is_some(), flags & 2 != 0);
    assert_eq!(aborted.len(), usize::from((flags >> 2) & 3));
    let mut out = vec![flags];
    if let Some(from) = from {
        out.extend(from.to_be_bytes());
    }
    for (producer, first) in aborted {
        out.extend(producer.to_be_bytes());
        out.extend(first.to_be_bytes());
    }
    for b in batches {
        out.extend_from_slice(b);
    }
    out
}

fn record_batches() {
    let dir = corpus("record_batch");
    let plain = data(100, 0, -1, &[rec(0), rec(1), rec(2)]);
    let tombstone = data(
        103,
        0,
        -1,
        &[Rec {
            offset_delta: 0,
            timestamp_delta: -5,
            key: None,
            value: None,
            headers: vec![("", None)],
        }],
    );
    // Two whole batches, checksums as written; the second decode cuts in
    // the second batch.
    let two = [plain.clone(), tombstone.clone()];
    write(&dir, "plain", &batch_seed(0xc0, None, &[], &two));
    // From the middle of the first batch, cut off at the end (fetched
    // again).
    let mut cut = two.concat();
    cut.truncate(cut.len() - 5);
    write(
        &dir,
        "from_mid_cut",
        &batch_seed(0x83, Some(101), &[], &[cut]),
    );
    for (name, codec) in [("gzip", 1), ("snappy", 2), ("lz4", 3), ("zstd", 4)] {
        let batch = data(200, codec, -1, &[rec(0), rec(3)]);
        write(&dir, name, &batch_seed(0x81, None, &[], &[batch]));
    }
    // A transaction aborted (its records dropped), then one committed.
    let txn = [
        data(300, 0x10, 7, &[rec(0), rec(1)]),
        marker(302, 7, false),
        data(303, 0x10, 8, &[rec(0)]),
        marker(304, 8, true),
    ];
    write(
        &dir,
        "transactions",
        &batch_seed(0x25, None, &[(7, 300)], &txn),
    );
    // Broken batches between good ones: a bad checksum, bad lengths, a bad
    // varint, an unknown magic and codec.
    let one = |base: i64| data(base, 0, -1, &[rec(0)]);
    let mut bad_crc = plain.clone();
    bad_crc[17] ^= 1;
    let mut short = plain.clone();
    short[8..12].copy_from_slice(&20i32.to_be_bytes()); // length below a header
    let mut magic = one(110);
    magic[16] = 1;
    let mut codec = one(120);
    codec[22] |= 5;
    let mut big_count = one(130);
    big_count[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    let mut varint = one(400);
    // The record's length (17), its attributes, then ten bytes that all
    // say "more" where its timestamp delta is.
    varint.truncate(61);
    varint.extend([0x22, 0]);
    varint.extend([0xff; 10]);
    varint.extend([0x00, 0x00, 0x02, b'k', 0x01, 0x00]);
    let len = (varint.len() - 12) as i32;
    varint[8..12].copy_from_slice(&len.to_be_bytes());
    write(
        &dir,
        "bad_crc",
        &batch_seed(0x40, None, &[], &[bad_crc, one(103)]),
    );
    write(
        &dir,
        "bad_lengths",
        &batch_seed(0x41, None, &[], &[short, magic, codec, big_count, one(140)]),
    );
    write(&dir, "bad_varint", &batch_seed(0x81, None, &[], &[varint]));
    // Batches that go back (never in a Kafka answer): what the decoder
    // does with them must not panic.
    write(
        &dir,
        "overlapping",
        &batch_seed(0x80, None, &[], &[plain.clone(), plain.clone()]),
    );
    // A header count past the record, and a negative key length other than
    // -1.
    let mut header_count = data(
        500,
        0,
        -1,
        &[Rec {
            offset_delta: 0,
            timestamp_delta: 0,
            key: Some(b"k"),
            value: Some(b"v"),
            headers: vec![("h", None)],
        }],
    );
    let at = header_count.len() - 4; // zigzag(1) header count, then "h", -1
    header_count[at] = 0x7e;
    write(
        &dir,
        "bad_header_count",
        &batch_seed(0x81, None, &[], &[header_count]),
    );
    // Offsets at the top of the range: the one error the decoder returns.
    let top = data(i64::MAX - 1, 0, -1, &[rec(0), rec(1)]);
    write(
        &dir,
        "offset_overflow",
        &batch_seed(0x01, None, &[], &[top]),
    );
}

fn main() {
    request_heads();
    event_ids();
    sse_streams();
    configs();
    filters();
    record_batches();
}
