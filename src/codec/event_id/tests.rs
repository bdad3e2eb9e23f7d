use super::*;
use proptest::prelude::*;

fn offsets(next: &[i64]) -> Vec<Offset> {
    next.iter().copied().map(Offset).collect()
}

fn encode(hash: u32, next: &[i64]) -> Vec<u8> {
    let (mut scratch, mut out) = (Vec::new(), Vec::new());
    encode_progress(hash, &offsets(next), &mut scratch, &mut out);
    out
}

fn encode_zilla(key: Option<&[u8]>, hash: u32, next: &[i64]) -> Vec<u8> {
    let (mut scratch, mut out) = (Vec::new(), Vec::new());
    encode_key_and_progress(key, hash, &offsets(next), &mut scratch, &mut out);
    out
}

/// What [`decode_progress`] returns, as raw numbers.
fn decoded(hash: u32, id: &[u8]) -> Result<Vec<i64>, IdError> {
    decode_progress(hash, id).map(|p| p.offsets().iter().map(|o| o.0).collect())
}

/// What [`decode`] returns, as raw numbers.
fn decoded_any(hash: u32, id: &[u8]) -> Result<RawProgress, IdError> {
    decode(hash, id).map(|progress| match progress {
        Progress::All(p) => RawProgress::All(p.offsets().iter().map(|o| o.0).collect()),
        Progress::Some(pairs) => RawProgress::Some(pairs.iter().map(|(p, o)| (p.0, o.0)).collect()),
    })
}

#[derive(Debug, PartialEq)]
enum RawProgress {
    All(Vec<i64>),
    Some(Vec<(u32, i64)>),
}

fn partitions(ps: &[u32]) -> Vec<Partition> {
    ps.iter().copied().map(Partition).collect()
}

/// Base64url of an arbitrary binary, to reach the binary parser directly.
fn b64(binary: &[u8]) -> Vec<u8> {
    URL_SAFE_NO_PAD.encode(binary).into_bytes()
}

#[test]
fn fnv1a_known_values() {
    // Published FNV-1a 32 test vectors, plus the golden topic.
    for (topic, want) in [
        ("", 0x811c_9dc5u32),
        ("a", 0xe40c_292c),
        ("foobar", 0xbf9c_f968),
        ("items", 0x3a79_338f),
    ] {
        assert_eq!(topic_hash(topic), want, "{topic:?}");
    }
}

#[test]
fn golden_vector_items() {
    // Worked by hand from the layout:
    //   01            version
    //   3a 79 33 8f   fnv1a32("items"), big-endian
    //   04            n = 4
    //   00            offset[0] = 0
    //   0a            zigzag(5 - 0)      = 10
    //   03            zigzag(3 - 5 = -2) = 3
    //   ca 0f         zigzag(1000 - 3 = 997) = 1994 = 0b1111_1001010
    //                 -> low 7 bits 0x4a | 0x80 = 0xca, then 15 = 0x0f
    // base64url, no padding, of those 11 bytes:
    const GOLDEN: &str = "ATp5M48EAAoDyg8";
    let hash = topic_hash("items");
    let mut raw = Vec::new();
    write_binary(hash, &offsets(&[0, 5, 3, 1000]), &mut raw);
    assert_eq!(
        raw,
        [0x01, 0x3a, 0x79, 0x33, 0x8f, 0x04, 0x00, 0x0a, 0x03, 0xca, 0x0f]
    );
    assert_eq!(encode(hash, &[0, 5, 3, 1000]), GOLDEN.as_bytes());
    assert_eq!(decoded(hash, GOLDEN.as_bytes()), Ok(vec![0, 5, 3, 1000]));
}

#[test]
fn round_trip_table() {
    let hash = topic_hash("orders");
    let ramp = |n: i64| {
        (0..n)
            .map(|i| 1_000_000 + i * 37 % 1000)
            .collect::<Vec<_>>()
    };
    let cases: Vec<Vec<i64>> = vec![
        vec![],
        vec![0],
        vec![i64::MAX],
        vec![0, i64::MAX, 0, i64::MAX],
        vec![1, 2, 3, 4],
        ramp(64),
        ramp(1024),
    ];
    for next in cases {
        let id = encode(hash, &next);
        assert_eq!(decoded(hash, &id), Ok(next.clone()), "len {}", next.len());
    }
}

#[test]
fn appends_and_reuses_scratch() {
    let hash = topic_hash("t");
    let mut scratch = vec![0xff; 100]; // stale content must be ignored
    let mut out = b"prefix:".to_vec();
    encode_progress(hash, &offsets(&[7, 8]), &mut scratch, &mut out);
    let id = out.strip_prefix(b"prefix:").unwrap();
    assert_eq!(decoded(hash, id), Ok(vec![7, 8]));
}

#[test]
fn warmed_buffers_are_not_reallocated() {
    let hash = topic_hash("t");
    let next: Vec<Offset> = (0..1024).map(|i| Offset(5_000_000 + i * 3)).collect();
    let (mut scratch, mut out) = (Vec::new(), Vec::new());
    encode_key_and_progress(Some(b"key"), hash, &next, &mut scratch, &mut out);
    let (scratch_ptr, out_ptr) = (scratch.as_ptr(), out.as_ptr());
    for _ in 0..3 {
        out.clear();
        encode_key_and_progress(Some(b"key"), hash, &next, &mut scratch, &mut out);
        assert_eq!((scratch.as_ptr(), out.as_ptr()), (scratch_ptr, out_ptr));
    }
}

#[test]
fn realistic_1024_partitions_fit_16k() {
    // Deterministic spread of offsets over 1e6..1e7 (a simple LCG keeps
    // the test reproducible without extra dependencies).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let next: Vec<i64> = (0..1024)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            1_000_000 + ((x >> 33) % 9_000_000) as i64
        })
        .collect();
    let hash = topic_hash("big");
    let id = encode(hash, &next);
    // ~4 bytes per partition (deltas up to ±9e6 zigzag to < 2^28): ~5 KiB.
    assert!(id.len() < 16 * 1024, "id is {} bytes", id.len());
    assert_eq!(decoded(hash, &id), Ok(next));
}

#[test]
fn rejections_table() {
    let hash = topic_hash("items");
    let other = topic_hash("other");
    let valid = encode(hash, &[1, 2]);
    let header = |version: u8, h: u32| {
        let mut v = vec![version];
        v.extend_from_slice(&h.to_be_bytes());
        v
    };
    let with = |tail: &[u8]| {
        let mut v = header(VERSION, hash);
        v.extend_from_slice(tail);
        b64(&v)
    };
    let too_long = vec![b'A'; MAX_ID_BYTES + 1];
    let cases: Vec<(&str, Vec<u8>, IdError)> = vec![
        ("empty", b"".to_vec(), IdError::Empty),
        ("whitespace only", b" \t\r\n".to_vec(), IdError::Empty),
        (
            "too long",
            too_long,
            IdError::TooLong {
                limit: MAX_ID_BYTES,
                actual: MAX_ID_BYTES + 1,
            },
        ),
        ("bad char", b"AB*D".to_vec(), IdError::Base64),
        ("standard alphabet", b"+/+/".to_vec(), IdError::Base64),
        ("one char", b"A".to_vec(), IdError::Base64),
        ("version 3", b64(&header(3, hash)), IdError::Version(3)),
        ("version 0", b64(&[0]), IdError::Version(0)),
        (
            "topic mismatch",
            encode(other, &[1, 2]),
            IdError::TopicMismatch {
                expected: hash,
                actual: other,
            },
        ),
        ("no count", with(&[]), IdError::Truncated),
        ("count beyond input", with(&[3, 0, 0]), IdError::Truncated),
        (
            "too many partitions",
            with(&[0xa1, 0x8d, 0x06]), // 100_001
            IdError::TooManyPartitions {
                limit: MAX_PARTITIONS,
                actual: MAX_PARTITIONS + 1,
            },
        ),
        (
            "huge count",
            with(&[0xff; 9].iter().copied().chain([0x01]).collect::<Vec<_>>()),
            IdError::TooManyPartitions {
                limit: MAX_PARTITIONS,
                actual: usize::try_from(u64::MAX).unwrap_or(usize::MAX),
            },
        ),
        (
            "11-byte varint",
            with(&[
                1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
            ]),
            IdError::Overflow,
        ),
        (
            "10th byte too big",
            with(&[
                1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
            ]),
            IdError::Overflow,
        ),
        (
            "first offset > i64::MAX",
            with(&[
                1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
            ]), // 2^63
            IdError::Overflow,
        ),
        (
            "delta overflows",
            // i64::MAX, then +1 (zigzag 2)
            with(&[
                2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x02,
            ]),
            IdError::Overflow,
        ),
        (
            "delta below zero",
            with(&[2, 0x05, 0x0b]),
            IdError::NegativeOffset,
        ), // 5, then -6
        (
            "trailing bytes",
            with(&[1, 0x05, 0x00]),
            IdError::TrailingBytes,
        ),
        (
            "zilla no close",
            [b"[null,\"", &valid[..]].concat(),
            IdError::BadZillaForm,
        ),
        (
            "zilla no comma",
            [b"[null \"", &valid[..], b"\"]"].concat(),
            IdError::BadZillaForm,
        ),
        (
            "zilla unquoted",
            [b"[null,", &valid[..], b"]"].concat(),
            IdError::BadZillaForm,
        ),
        (
            "zilla extra",
            [b"[null,\"", &valid[..], b"\",1]"].concat(),
            IdError::BadZillaForm,
        ),
        (
            "zilla escape in key",
            [b"[\"a\\\"b\",\"", &valid[..], b"\"]"].concat(),
            IdError::BadZillaForm,
        ),
        (
            "zilla bad key",
            [b"[\"a b\",\"", &valid[..], b"\"]"].concat(),
            IdError::BadZillaForm,
        ),
        (
            "zilla number key",
            [b"[1,\"", &valid[..], b"\"]"].concat(),
            IdError::BadZillaForm,
        ),
        (
            "zilla empty progress",
            b"[null,\"\"]".to_vec(),
            IdError::Empty,
        ),
        ("zilla empty", b"[]".to_vec(), IdError::BadZillaForm),
    ];
    for (name, id, want) in cases {
        assert_eq!(decoded(hash, &id), Err(want), "{name}");
    }
}

#[test]
fn accepts_whitespace_and_padding() {
    let hash = topic_hash("items");
    let id = encode(hash, &[0, 5, 3, 1000]); // 15 chars -> one '=' of padding
    let mut padded = id.clone();
    padded.push(b'=');
    let spaced = [b"  \t", &id[..], b"\r\n"].concat();
    for input in [padded, spaced] {
        assert_eq!(decoded(hash, &input), Ok(vec![0, 5, 3, 1000]));
    }
}

#[test]
fn zilla_form_table() {
    let hash = topic_hash("items");
    let next = [10, 20, 15];
    let progress = String::from_utf8(encode(hash, &next)).unwrap();
    // Key bytes whose base64 needs the URL-safe characters '-' and '_'.
    let key: &[u8] = &[0xfb, 0xff, 0xbf, 0x00, b'"', b'\\'];
    let cases: Vec<(Option<&[u8]>, String)> = vec![
        (None, format!("[null,\"{progress}\"]")),
        (Some(b""), format!("[\"\",\"{progress}\"]")),
        (Some(b"k"), format!("[\"aw\",\"{progress}\"]")),
        (Some(key), format!("[\"-_-_ACJc\",\"{progress}\"]")),
    ];
    for (key, want) in cases {
        let id = encode_zilla(key, hash, &next);
        assert_eq!(String::from_utf8(id.clone()).unwrap(), want);
        assert_eq!(decoded(hash, &id), Ok(next.to_vec()), "{want}");
    }
    // JSON whitespace is tolerated; a padded standard-alphabet key too.
    let loose = format!(" [ \"a+/=\" ,\t\"{progress}\" ] \n");
    assert_eq!(decoded(hash, loose.as_bytes()), Ok(next.to_vec()));
    let loose = format!("[ null , \"{progress}\"]");
    assert_eq!(decoded(hash, loose.as_bytes()), Ok(next.to_vec()));
}

/// A key past `MAX_ID_KEY_BYTES` is cut to its first bytes: every keyed
/// id fits the proxy's own limits and resumes.
#[test]
fn a_large_key_is_cut_so_the_id_stays_small() {
    let hash = topic_hash("items");
    let next = [10, 20];
    let big = vec![b'k'; 100_000];
    let id = encode_zilla(Some(&big), hash, &next);
    assert!(id.len() < 400, "{}", id.len());
    let cut = encode_zilla(Some(&big[..MAX_ID_KEY_BYTES]), hash, &next);
    assert_eq!(id, cut);
    assert_eq!(decoded(hash, &id), Ok(next.to_vec()));
    // Up to the bound, the whole key.
    let exact = encode_zilla(Some(&big[..MAX_ID_KEY_BYTES - 1]), hash, &next);
    assert!(exact.len() < id.len());
}

#[test]
fn every_truncation_is_an_error() {
    let hash = topic_hash("items");
    let next: Vec<i64> = (0..40).map(|i| 1_000_000 + i * 12_345).collect();
    // Truncating the binary gives exactly `Truncated`…
    let mut raw = Vec::new();
    write_binary(hash, &offsets(&next), &mut raw);
    for cut in 0..raw.len() {
        let got = decoded(hash, &b64(&raw[..cut]));
        let want = if cut == 0 {
            IdError::Empty
        } else {
            IdError::Truncated
        };
        assert_eq!(got, Err(want), "binary cut at {cut}");
    }
    // …and truncating either text form at any byte is some error.
    for id in [encode(hash, &next), encode_zilla(Some(b"key"), hash, &next)] {
        for cut in 0..id.len() {
            assert!(decoded(hash, &id[..cut]).is_err(), "text cut at {cut}");
        }
    }
}

#[test]
fn zigzag_table() {
    for (v, z) in [
        (0i64, 0u64),
        (-1, 1),
        (1, 2),
        (-2, 3),
        (i64::MAX, u64::MAX - 1),
        (i64::MIN, u64::MAX),
    ] {
        assert_eq!(zigzag(v), z);
        assert_eq!(unzigzag(z), v);
    }
}

#[test]
fn sparse_ids_round_trip_and_are_bounded() {
    let h = topic_hash("items");
    let next = [5, 70_000, 3, 1 << 40];
    for ps in [&[1u32][..], &[0, 3], &[0, 1, 2, 3], &[]] {
        let mut id = Vec::new();
        encode_sparse(
            h,
            &partitions(ps),
            &offsets(&next),
            &mut Vec::new(),
            &mut id,
        );
        let want: Vec<(u32, i64)> = ps.iter().map(|&p| (p, next[p as usize])).collect();
        assert_eq!(decoded_any(h, &id), Ok(RawProgress::Some(want.clone())));
        assert_eq!(
            decoded(h, &id),
            Err(IdError::Version(VERSION_SPARSE)),
            "a sparse id is not a full one"
        );
        // The Zilla form wraps it like any progress.
        let mut zilla = Vec::new();
        encode_key_and_position(
            Some(b"k"),
            h,
            Some(&partitions(ps)),
            &offsets(&next),
            &mut Vec::new(),
            &mut zilla,
        );
        assert_eq!(decoded_any(h, &zilla), Ok(RawProgress::Some(want)));
        assert!(matches!(
            decoded_any(topic_hash("other"), &id),
            Err(IdError::TopicMismatch { .. })
        ));
    }
    let mut one = Vec::new();
    encode_position(
        h,
        Some(&[Partition(2)]),
        &offsets(&next),
        &mut Vec::new(),
        &mut one,
    );
    let mut all = Vec::new();
    encode_position(h, None, &offsets(&next), &mut Vec::new(), &mut all);
    assert!(one.len() < all.len());
    assert_eq!(decoded_any(h, &all), Ok(RawProgress::All(next.to_vec())));
    // Hand-made binaries: a partition past the bound, a truncated pair,
    // trailing bytes, a count larger than the input.
    let text = |bin: &[u8]| URL_SAFE_NO_PAD.encode(bin).into_bytes();
    let head = |count: u8| {
        let mut b = vec![VERSION_SPARSE];
        b.extend_from_slice(&h.to_be_bytes());
        b.push(count);
        b
    };
    let mut far = head(1);
    put_varint(&mut far, MAX_PARTITIONS as u64);
    far.push(0);
    assert_eq!(decoded_any(h, &text(&far)), Err(IdError::Overflow));
    let mut cut = head(1);
    cut.push(3);
    assert_eq!(decoded_any(h, &text(&cut)), Err(IdError::Truncated));
    let mut extra = head(1);
    extra.extend_from_slice(&[3, 7, 0]);
    assert_eq!(decoded_any(h, &text(&extra)), Err(IdError::TrailingBytes));
    let mut big = head(100);
    big.extend_from_slice(&[3, 7]);
    assert_eq!(decoded_any(h, &text(&big)), Err(IdError::Truncated));
}

proptest! {
    #[test]
    fn sparse_round_trip(
        next in proptest::collection::vec(0i64..i64::MAX, 1..64),
        picks in proptest::collection::vec(any::<bool>(), 64),
    ) {
        let ps: Vec<u32> = (0..next.len() as u32).filter(|&p| picks[p as usize]).collect();
        let h = topic_hash("t");
        let mut id = Vec::new();
        encode_sparse(h, &partitions(&ps), &offsets(&next), &mut Vec::new(), &mut id);
        let want: Vec<(u32, i64)> = ps.iter().map(|&p| (p, next[p as usize])).collect();
        prop_assert_eq!(decoded_any(h, &id), Ok(RawProgress::Some(want)));
    }
}

proptest! {
    #[test]
    fn prop_round_trip(next in prop::collection::vec(0..=i64::MAX, 0..2000), hash in any::<u32>()) {
        let id = encode(hash, &next);
        prop_assert!(id.len() <= MAX_ID_BYTES);
        prop_assert_eq!(decoded(hash, &id), Ok(next));
    }

    #[test]
    fn prop_round_trip_clustered(
        base in 0..=i64::MAX / 2,
        deltas in prop::collection::vec(-1000i64..1000, 0..2000),
    ) {
        let next: Vec<i64> = deltas.iter().map(|d| base + d.abs() * 1000).collect();
        let hash = topic_hash("clustered");
        prop_assert_eq!(decoded(hash, &encode(hash, &next)), Ok(next));
    }

    #[test]
    fn prop_zilla_round_trip(
        key in prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
        next in prop::collection::vec(0..=i64::MAX, 0..64),
    ) {
        let hash = topic_hash("z");
        let id = encode_zilla(key.as_deref(), hash, &next);
        prop_assert_eq!(decoded(hash, &id), Ok(next));
    }

    #[test]
    fn prop_garbage_text_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decoded(topic_hash("items"), &bytes);
    }

    #[test]
    fn prop_garbage_binary_never_panics(tail in prop::collection::vec(any::<u8>(), 0..512)) {
        // Valid header so the fuzzing reaches the varint parser.
        let hash = topic_hash("items");
        let mut raw = vec![VERSION];
        raw.extend_from_slice(&hash.to_be_bytes());
        raw.extend_from_slice(&tail);
        if let Ok(offsets) = decoded(hash, &b64(&raw)) {
            prop_assert!(offsets.iter().all(|&o| o >= 0));
        }
    }
}
