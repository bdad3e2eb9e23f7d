use super::testing::{batch, batch_of, marker, record, Rec, Spec};
use super::*;

fn decode(bytes: &[u8], from: i64) -> Decoded {
    records_from(bytes, Offset(from), &[]).unwrap()
}

fn offsets(d: &Decoded) -> Vec<i64> {
    d.records.iter().map(|r| r.offset.0).collect()
}

fn skipped(d: &Decoded) -> Vec<(i64, i64)> {
    d.skipped.iter().map(|s| (s.from.0, s.to.0)).collect()
}

#[test]
fn keeps_repeated_headers_and_skips_what_precedes_the_offset() {
    let mut bytes = batch(
        Spec::at(10),
        &[
            Rec::at(0),
            Rec::at(1)
                .header("tag", Some("a"))
                .header("x", Some("1"))
                .header("tag", Some("b")),
        ],
    );
    bytes.extend(marker(Spec::at(12), true));
    bytes.extend(batch(Spec::at(13), &[Rec::at(0).header("tag", Some("c"))]));
    let got = decode(&bytes, 11);
    assert_eq!(got.next_offset, Offset(14), "past the last batch");
    assert_eq!(offsets(&got), [11, 13]);
    assert!(got.skipped.is_empty());
    let first = &got.records[0].record;
    assert_eq!(first.key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(first.header_values("tag").collect::<Vec<_>>(), [b"a", b"b"]);
    assert_eq!(first.headers[1], ("x".to_owned(), b"1".to_vec()));
    assert_eq!(first.timestamp.timestamp_millis(), 1_700_000_000_010);
    assert_eq!(
        got.records[1]
            .record
            .header_values("tag")
            .collect::<Vec<_>>(),
        [b"c"]
    );
}

/// Legal Kafka (`headers.add(k, null)` in the Java client): the record is
/// delivered, its header present with the empty value.
#[test]
fn a_null_header_value_is_decoded_as_present_and_empty() {
    let rec = Rec::at(0).header("tag", None).header("tag", Some("x"));
    let got = decode(&batch(Spec::at(0), &[rec, Rec::at(1)]), 0);
    assert_eq!(offsets(&got), [0, 1]);
    assert!(got.skipped.is_empty());
    let headers = &got.records[0].record.headers;
    assert_eq!(
        headers,
        &[("tag".into(), Vec::new()), ("tag".into(), b"x".to_vec())]
    );
}

#[test]
fn every_codec_kafka_writes_is_decoded() {
    let records: Vec<Rec> = (0..50)
        .map(|d| Rec {
            value: Some(format!("value {d} ").repeat(20).into_bytes()),
            ..Rec::at(d)
        })
        .collect();
    for codec in 0..=4 {
        let got = decode(&batch(Spec::at(100).codec(codec), &records), 100);
        assert!(got.skipped.is_empty(), "codec {codec}: {:?}", got.skipped);
        assert_eq!(got.records.len(), 50, "codec {codec}");
        assert_eq!(got.next_offset, Offset(150));
        assert_eq!(got.records[49].record.value, records[49].value);
    }
    // The Java client's snappy framing (xerial): magic, two version words,
    // then length-prefixed blocks.
    let raw: Vec<u8> = records.iter().flat_map(record).collect();
    let (a, b) = raw.split_at(raw.len() / 2);
    let mut xerial = b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01".to_vec();
    for half in [a, b] {
        let block = snap::raw::Encoder::new().compress_vec(half).unwrap();
        xerial.extend((block.len() as u32).to_be_bytes());
        xerial.extend(block);
    }
    let mut framed = batch_of(Spec::at(0).codec(0), 49, 50, false, &xerial);
    // Same bytes, marked snappy (the checksum covers the attributes).
    framed[22] |= 2;
    let crc = crc32c::crc32c(&framed[21..]);
    framed[17..21].copy_from_slice(&crc.to_be_bytes());
    let got = decode(&framed, 0);
    assert!(got.skipped.is_empty(), "{:?}", got.skipped);
    assert_eq!(got.records.len(), 50);
}

/// One bad batch among good ones: exactly its offsets are skipped and
/// reported, the batches around it are delivered.
#[test]
fn a_batch_that_cannot_be_decoded_is_skipped_exactly() {
    let good = |base| batch(Spec::at(base), &[Rec::at(0), Rec::at(1)]);
    let bad_crc = {
        let mut b = good(2);
        let last = b.len() - 1;
        b[last] ^= 0xff;
        b
    };
    let bad_codec = batch(Spec::at(4).codec(7), &[Rec::at(0), Rec::at(1)]);
    // A record whose key length runs past the record.
    let bad_record = {
        let mut raw = record(&Rec::at(0));
        raw[4] = 0x7e; // key length 63
        batch_of(Spec::at(6), 1, 1, false, &raw)
    };
    // Claims far more records than its bytes hold.
    let bad_count = {
        let raw = record(&Rec::at(0));
        batch_of(Spec::at(8), 1, i32::MAX, false, &raw)
    };
    type Case = (&'static str, Vec<u8>, fn(&DecodeError) -> bool);
    let cases: [Case; 4] = [
        ("checksum", bad_crc, |e| {
            matches!(e, DecodeError::Checksum { .. })
        }),
        ("codec", bad_codec, |e| {
            matches!(e, DecodeError::Codec { codec: 7 })
        }),
        ("record", bad_record, |e| {
            matches!(e, DecodeError::Record { .. })
        }),
        ("count", bad_count, |e| {
            matches!(e, DecodeError::Record { .. })
        }),
    ];
    for (name, bad, is) in cases {
        let base = i64_at(&bad, 0);
        let mut bytes = good(base - 2);
        bytes.extend(&bad);
        bytes.extend(good(base + 2));
        let got = decode(&bytes, base - 2);
        assert_eq!(
            offsets(&got),
            [base - 2, base - 1, base + 2, base + 3],
            "{name}"
        );
        assert_eq!(skipped(&got), [(base, base + 2)], "{name}");
        assert!(is(&got.skipped[0].why), "{name}: {}", got.skipped[0].why);
        assert_eq!(got.next_offset, Offset(base + 4), "{name}");
    }
}

#[test]
fn an_old_message_format_entry_is_skipped_not_a_stall() {
    // Magic 1: offset, size, crc, magic, attributes, timestamp, key, value.
    let mut legacy = Vec::new();
    legacy.extend(5i64.to_be_bytes());
    let message = [
        0u8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
    ];
    legacy.extend((message.len() as i32).to_be_bytes());
    legacy.extend(message);
    let mut bytes = legacy;
    bytes.extend(batch(Spec::at(6), &[Rec::at(0)]));
    let got = decode(&bytes, 5);
    assert_eq!(skipped(&got), [(5, 6)]);
    assert_eq!(got.skipped[0].why, DecodeError::Magic { magic: 1 });
    assert_eq!(offsets(&got), [6]);
}

#[test]
fn a_batch_cut_off_by_the_answer_size_is_fetched_again_not_skipped() {
    let mut bytes = batch(Spec::at(0), &[Rec::at(0)]);
    let second = batch(Spec::at(1), &[Rec::at(0), Rec::at(1)]);
    bytes.extend(&second[..second.len() - 3]);
    let got = decode(&bytes, 0);
    assert_eq!(offsets(&got), [0]);
    assert!(got.skipped.is_empty());
    assert_eq!(
        got.next_offset,
        Offset(1),
        "the next fetch starts at the cut batch"
    );
}

/// Garbage with no usable length still moves the position on.
#[test]
fn an_unframeable_batch_moves_the_position_on() {
    let mut garbage = 3i64.to_be_bytes().to_vec();
    garbage.extend((-7i32).to_be_bytes());
    garbage.extend([2u8; 20]);
    let got = decode(&garbage, 3);
    assert_eq!(got.skipped.len(), 1);
    assert!(got.next_offset > Offset(3), "{:?}", got.next_offset);
    assert_eq!(got.skipped[0].why, DecodeError::Length { length: -7 });
}

#[test]
fn a_decompression_bomb_is_skipped_within_the_bound() {
    let big = Rec {
        value: Some(vec![0u8; MAX_BATCH_BYTES + 1]),
        ..Rec::at(0)
    };
    let mut bytes = batch(Spec::at(0).codec(4), &[big]);
    assert!(bytes.len() < 1 << 20, "the bomb is small: {}", bytes.len());
    bytes.extend(batch(Spec::at(1), &[Rec::at(0)]));
    let got = decode(&bytes, 0);
    assert_eq!(skipped(&got), [(0, 1)]);
    assert!(got.skipped[0].why.to_string().contains("decompressed"));
    assert_eq!(offsets(&got), [1]);
}

#[test]
fn aborted_transactions_and_markers_are_dropped_and_passed() {
    let data = |spec, n: i32| batch(spec, &(0..n).map(Rec::at).collect::<Vec<_>>());
    let bytes = [
        data(Spec::at(0).txn(7), 2), // committed
        marker(Spec::at(2).txn(7), true),
        data(Spec::at(3).txn(8), 2), // aborted
        data(Spec::at(5), 1),        // no transaction
        marker(Spec::at(6).txn(8), false),
        data(Spec::at(7).txn(8), 1), // producer 8 again, committed
        marker(Spec::at(8).txn(8), true),
    ]
    .concat();
    let got = records_from(&bytes, Offset(0), &[(8, 3)]).unwrap();
    assert_eq!(offsets(&got), [0, 1, 5, 7]);
    assert_eq!(got.next_offset, Offset(9));
    // Without the aborted list every data record is visible.
    assert_eq!(decode(&bytes, 0).records.len(), 6);
    // Only a marker: nothing visible, and the next fetch starts past it.
    let only = decode(&marker(Spec::at(8).txn(8), true), 8);
    assert!(only.records.is_empty());
    assert_eq!(only.next_offset, Offset(9));
    // Nothing at all: the next fetch starts where this one did.
    assert_eq!(decode(&[], 12).next_offset, Offset(12));
}

#[test]
fn a_timestamp_out_of_range_skips_its_batch_not_the_partition() {
    let r = Rec {
        timestamp_delta: i64::MAX,
        ..Rec::at(0)
    };
    let mut bytes = batch(Spec::at(0), &[r]);
    bytes.extend(batch(Spec::at(1), &[Rec::at(0)]));
    let got = decode(&bytes, 0);
    assert_eq!(
        got.skipped[0].why,
        DecodeError::Timestamp {
            offset: 0,
            first: 1_700_000_000_000,
            delta: i64::MAX
        }
    );
    assert!(got.skipped[0].why.to_string().contains("out of range"));
    assert_eq!(offsets(&got), [1]);
}

/// Offsets are the broker's numbers: a batch whose offsets overflow is an
/// error, in debug and release builds alike, never a panic or a wrapped
/// offset.
#[test]
fn broker_offsets_that_overflow_are_errors_not_panics() {
    // The last offset of the batch overflows.
    let late = batch_of(Spec::at(i64::MAX - 1), 5, 0, false, &[]);
    assert_eq!(
        records_from(&late, Offset(0), &[]).unwrap_err(),
        DecodeError::Offset {
            base: i64::MAX - 1,
            delta: 5
        }
    );
    // A batch ending exactly at i64::MAX: its next offset cannot be
    // represented.
    let last = batch(Spec::at(i64::MAX), &[Rec::at(0)]);
    assert_eq!(
        records_from(&last, Offset(0), &[]).unwrap_err(),
        DecodeError::Offset {
            base: i64::MAX,
            delta: 0
        }
    );
    // A record's own delta overflows (the batch's last delta claims less):
    // that batch is skipped.
    let raw: Vec<u8> = [Rec::at(0), Rec::at(7)].iter().flat_map(record).collect();
    let liar = batch_of(Spec::at(i64::MAX - 3), 1, 2, false, &raw);
    let got = decode(&liar, 0);
    assert_eq!(
        got.skipped[0].why,
        DecodeError::Offset {
            base: i64::MAX - 3,
            delta: 7
        }
    );
    assert!(got.records.is_empty());
    // A negative delta is no overflow: its records are below the offset
    // asked for and dropped.
    let raw: Vec<u8> = [Rec::at(-3), Rec::at(0)].iter().flat_map(record).collect();
    let back = batch_of(Spec::at(10), 0, 2, false, &raw);
    let got = decode(&back, 8);
    assert_eq!(offsets(&got), [10]);
    assert_eq!(got.next_offset, Offset(11));
}
