//! The SSE event id as a stateless progress token. The id is opaque to
//! clients: they only echo it back (`Last-Event-ID` header or `?lastEventId=`)
//! when they reconnect. It carries, for one topic, the *next* offset of every
//! partition `0..n`, so the server can resume a stream without keeping any
//! per-client state. Binary layout before base64url (no padding): one version
//! byte (`1`), the FNV-1a 32-bit hash of the topic name (big-endian, so an id
//! presented on the wrong topic is rejected instead of silently mis-seeking),
//! the partition count as an unsigned LEB128 varint, the first offset as an
//! unsigned varint, then each further offset as the zigzag-encoded signed delta
//! from the previous one (partitions of one topic tend to have similar offsets,
//! so most deltas cost one or two bytes). A stream pruned to the partitions
//! its keys hash to writes the sparse layout (version `2`): the same header,
//! the number of pairs, then per partition (increasing) the gap from the
//! previous partition and its next offset, both unsigned varints. Decoding
//! also accepts the Zilla compatible form `["<base64url key>","<progress>"]`
//! / `[null,"<progress>"]` around either layout.
//! Everything read from untrusted input is bounded before it is trusted.

use crate::codec::base64::append_base64;
use crate::model::{Offset, Partition, Position};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

/// Longest id text accepted, in bytes. The design needs at least 16 KiB (a
/// 1,024-partition topic with realistic offsets takes ~5 KiB of text, and
/// worst-case deltas up to 10 bytes per partition); 64 KiB leaves headroom
/// while keeping the decode buffer of a hostile header small.
pub const MAX_ID_BYTES: usize = 64 * 1024;

/// Most partitions an id may claim, checked before anything is allocated.
/// Kafka topics in practice stay far below this; note that `MAX_ID_BYTES` is
/// the tighter bound in practice (every partition costs at least one byte, so
/// at most ~48k partitions fit in 64 KiB of base64 text).
pub const MAX_PARTITIONS: usize = 100_000;

/// Layout version byte; bump it when the layout changes so old ids are
/// rejected with a clear error instead of being misread.
const VERSION: u8 = 1;

/// Layout version of a sparse id: the partitions a stream reads, each with
/// its next offset (a stream pruned to the partitions its keys hash to).
const VERSION_SPARSE: u8 = 2;

/// Version byte + 4-byte topic hash: the fixed part before the varints.
const HEADER_LEN: usize = 1 + 4;

/// A u64 needs at most ceil(64 / 7) = 10 LEB128 bytes.
const MAX_VARINT_LEN: usize = 10;

/// FNV-1a 32-bit offset basis (the published constant for 32-bit FNV).
const FNV_OFFSET_BASIS: u32 = 0x811c_9dc5;

/// FNV-1a 32-bit prime (the published constant for 32-bit FNV).
const FNV_PRIME: u32 = 0x0100_0193;

/// Decoder for the progress text: the URL-safe alphabet like the encoder, but
/// indifferent to `=` padding so an id that some client or proxy re-padded is
/// still accepted. Trailing bits must still be zero, so every id has a single
/// canonical text and a truncated text is reported as an error.
const DECODER: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why an event id was rejected. The `Display` texts are short and free of
/// quotes because they are sent to clients inside a JSON `reason` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("event id too long ({actual} bytes, limit {limit})")]
    TooLong { limit: usize, actual: usize },
    #[error("event id is empty")]
    Empty,
    #[error("event id is not valid base64url")]
    Base64,
    #[error("unsupported event id version {0}")]
    Version(u8),
    #[error("event id is truncated")]
    Truncated,
    #[error("event id belongs to another topic")]
    TopicMismatch { expected: u32, actual: u32 },
    #[error("event id has too many partitions ({actual}, limit {limit})")]
    TooManyPartitions { limit: usize, actual: usize },
    #[error("event id has an out-of-range number")]
    Overflow,
    #[error("event id has a negative offset")]
    NegativeOffset,
    #[error("event id has trailing bytes")]
    TrailingBytes,
    #[error("event id is not a valid key and progress pair")]
    BadZillaForm,
}

/// FNV-1a 32-bit hash of the topic name's bytes. Not cryptographic: it only
/// has to make an id presented on the wrong topic fail loudly.
pub fn topic_hash(topic: &str) -> u32 {
    topic.bytes().fold(FNV_OFFSET_BASIS, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// Appends the base64url text of the id to `out`. `scratch` is a reusable
/// buffer (cleared inside) so the hot path allocates nothing once warmed up.
///
/// Every offset must be `>= 0` (a Kafka "next offset" always is); this is
/// checked in debug builds only. A negative offset in a release build does not
/// panic but yields an id that `decode_progress` rejects.
pub fn encode_progress(topic_hash: u32, next: &[Offset], scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
    debug_assert!(next.iter().all(|o| o.0 >= 0), "offsets must be >= 0");
    write_binary(topic_hash, next, scratch);
    append_base64(&URL_SAFE_NO_PAD, scratch, out);
}

/// What goes into the SSE `id:` field (a route's `event_id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventIdForm {
    /// The partition offsets only: enough to resume.
    Progress,
    /// The record key, then the offsets (Zilla's form).
    KeyAndProgress,
}

/// Appends the id of `next` in `form` for a stream reading `partitions`
/// (`None`: every partition): the keyed form carries `key`.
pub fn encode_id(
    form: EventIdForm,
    key: Option<&[u8]>,
    topic_hash: u32,
    partitions: Option<&[Partition]>,
    next: &[Offset],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    match form {
        EventIdForm::Progress => encode_position(topic_hash, partitions, next, scratch, out),
        EventIdForm::KeyAndProgress => {
            encode_key_and_position(key, topic_hash, partitions, next, scratch, out)
        }
    }
}

/// What an id says about the stream's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The next offset of every partition `0..n` (version 1).
    All(Position),
    /// The next offset of some partitions, in increasing partition order
    /// (version 2); the stream read no other.
    Some(Vec<(Partition, Offset)>),
}

/// Appends the base64url text of a sparse id: for each partition of
/// `partitions` (increasing), its next offset from `next`.
pub fn encode_sparse(
    topic_hash: u32,
    partitions: &[Partition],
    next: &[Offset],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    debug_assert!(partitions.windows(2).all(|w| w[0] < w[1]));
    scratch.clear();
    scratch.reserve(HEADER_LEN + MAX_VARINT_LEN * (1 + 2 * partitions.len()));
    scratch.push(VERSION_SPARSE);
    scratch.extend_from_slice(&topic_hash.to_be_bytes());
    put_varint(scratch, partitions.len() as u64);
    let mut prev: Option<Partition> = None;
    for &p in partitions {
        // Partitions increase: each after the first as the gap minus one.
        let gap = match prev {
            None => u64::from(p.0),
            Some(q) => u64::from(p.0 - q.0 - 1),
        };
        put_varint(scratch, gap);
        put_varint(scratch, next[p.index()].0 as u64);
        prev = Some(p);
    }
    append_base64(&URL_SAFE_NO_PAD, scratch, out);
}

/// Appends the id of a position: the plain progress form when `partitions`
/// is `None` (the stream reads every partition), else the sparse form over
/// those partitions.
pub fn encode_position(
    topic_hash: u32,
    partitions: Option<&[Partition]>,
    next: &[Offset],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    match partitions {
        None => encode_progress(topic_hash, next, scratch, out),
        Some(ps) => encode_sparse(topic_hash, ps, next, scratch, out),
    }
}

/// [`encode_key_and_progress`] of [`encode_position`].
pub fn encode_key_and_position(
    key: Option<&[u8]>,
    topic_hash: u32,
    partitions: Option<&[Partition]>,
    next: &[Offset],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    match key {
        Some(key) => {
            out.extend_from_slice(b"[\"");
            append_base64(&URL_SAFE_NO_PAD, key, out);
            out.extend_from_slice(b"\",\"");
        }
        None => out.extend_from_slice(b"[null,\""),
    }
    encode_position(topic_hash, partitions, next, scratch, out);
    out.extend_from_slice(b"\"]");
}

/// Appends the Zilla-compatible form `["<base64url(no pad) key>","<progress>"]`,
/// or `[null,"<progress>"]` when `key` is `None`. Both parts are base64url, so
/// no JSON escaping is ever needed.
pub fn encode_key_and_progress(
    key: Option<&[u8]>,
    topic_hash: u32,
    next: &[Offset],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    encode_key_and_position(key, topic_hash, None, next, scratch, out);
}

/// Decodes an id (the `Last-Event-ID` header bytes, or the already
/// percent-decoded `?lastEventId=` value) for the topic with this hash and
/// returns the next offset of every partition, partition 0 first.
///
/// Accepts both the plain progress form and the Zilla form
/// `["<base64url key>","<progress>"]` / `[null,"<progress>"]`; surrounding
/// ASCII whitespace is ignored. The key of the Zilla form is checked for shape
/// only and otherwise ignored.
pub fn decode_progress(topic_hash: u32, id: &[u8]) -> Result<Position, IdError> {
    match decode(topic_hash, id)? {
        Progress::All(next) => Ok(next),
        Progress::Some(_) => Err(IdError::Version(VERSION_SPARSE)),
    }
}

/// Decodes an id of either layout: the next offset of every partition
/// (version 1), or of the partitions a pruned stream reads (version 2).
/// Both may come in the Zilla form; the same bounds apply to both.
pub fn decode(topic_hash: u32, id: &[u8]) -> Result<Progress, IdError> {
    // Checked on the raw input, before any work, so a huge header costs nothing.
    if id.len() > MAX_ID_BYTES {
        return Err(IdError::TooLong {
            limit: MAX_ID_BYTES,
            actual: id.len(),
        });
    }
    let id = id.trim_ascii();
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    let progress = if id.first() == Some(&b'[') {
        zilla_progress(id)?
    } else {
        id
    };
    if progress.is_empty() {
        return Err(IdError::Empty);
    }
    let binary = DECODER.decode(progress).map_err(|_| IdError::Base64)?;
    if binary.first() == Some(&VERSION_SPARSE) {
        return parse_sparse(topic_hash, &binary).map(Progress::Some);
    }
    parse_binary(topic_hash, &binary).map(Progress::All)
}

/// Writes the binary layout into `buf` (cleared first).
fn write_binary(topic_hash: u32, next: &[Offset], buf: &mut Vec<u8>) {
    buf.clear();
    // Worst case, so the pushes below never reallocate mid-way; once `buf` has
    // grown to the topic's size this reserves nothing.
    buf.reserve(HEADER_LEN + MAX_VARINT_LEN * (1 + next.len()));
    buf.push(VERSION);
    buf.extend_from_slice(&topic_hash.to_be_bytes());
    put_varint(buf, next.len() as u64);
    let mut prev: Option<i64> = None;
    for &Offset(offset) in next {
        match prev {
            // Reinterpreting as u64 is the layout's "unsigned varint"; a
            // (contract-violating) negative offset becomes > i64::MAX and is
            // rejected as Overflow on decode.
            None => put_varint(buf, offset as u64),
            // Two offsets in 0..=i64::MAX never overflow when subtracted;
            // wrapping only matters for contract violations, and avoids a
            // panic there.
            Some(p) => put_varint(buf, zigzag(offset.wrapping_sub(p))),
        }
        prev = Some(offset);
    }
}

/// Parses the binary layout, checking every count against what the input can
/// actually hold.
fn parse_binary(topic_hash: u32, binary: &[u8]) -> Result<Position, IdError> {
    let mut r = Reader { buf: binary };
    let count = parse_header(&mut r, VERSION, topic_hash)?;
    let mut offsets = Vec::with_capacity(count);
    let mut prev: i64 = 0;
    for i in 0..count {
        let offset = if i == 0 {
            i64::try_from(r.varint()?).map_err(|_| IdError::Overflow)?
        } else {
            prev.checked_add(unzigzag(r.varint()?))
                .ok_or(IdError::Overflow)?
        };
        if offset < 0 {
            return Err(IdError::NegativeOffset);
        }
        offsets.push(Offset(offset));
        prev = offset;
    }
    if !r.buf.is_empty() {
        return Err(IdError::TrailingBytes);
    }
    Ok(Position::from_offsets(offsets))
}

/// Checks the version byte and the topic hash; returns the partition count.
fn parse_header(r: &mut Reader<'_>, version: u8, topic_hash: u32) -> Result<usize, IdError> {
    let found = r.byte()?;
    if found != version {
        return Err(IdError::Version(found));
    }
    let mut hash = [0u8; 4];
    for b in &mut hash {
        *b = r.byte()?;
    }
    let actual = u32::from_be_bytes(hash);
    if actual != topic_hash {
        return Err(IdError::TopicMismatch {
            expected: topic_hash,
            actual,
        });
    }
    let count = r.varint()?;
    if count > MAX_PARTITIONS as u64 {
        return Err(IdError::TooManyPartitions {
            limit: MAX_PARTITIONS,
            actual: usize::try_from(count).unwrap_or(usize::MAX),
        });
    }
    // `count <= MAX_PARTITIONS`, so it fits in usize on every target. Every
    // value takes at least one byte: a count larger than what is left
    // cannot be satisfied, and must not size an allocation.
    let count = count as usize;
    if count > r.buf.len() {
        return Err(IdError::Truncated);
    }
    Ok(count)
}

/// Parses the sparse layout: `(partition, next offset)` pairs, partitions
/// strictly increasing and below `MAX_PARTITIONS`.
fn parse_sparse(topic_hash: u32, binary: &[u8]) -> Result<Vec<(Partition, Offset)>, IdError> {
    let mut r = Reader { buf: binary };
    let count = parse_header(&mut r, VERSION_SPARSE, topic_hash)?;
    let mut pairs = Vec::with_capacity(count);
    let mut next_partition: u64 = 0;
    for _ in 0..count {
        let partition = next_partition
            .checked_add(r.varint()?)
            .filter(|p| *p < MAX_PARTITIONS as u64)
            .ok_or(IdError::Overflow)?;
        let offset = i64::try_from(r.varint()?).map_err(|_| IdError::Overflow)?;
        // Below MAX_PARTITIONS, so it fits a u32.
        pairs.push((Partition(partition as u32), Offset(offset)));
        next_partition = partition + 1;
    }
    if !r.buf.is_empty() {
        return Err(IdError::TrailingBytes);
    }
    Ok(pairs)
}

/// Extracts the progress text from `[<key>,"<progress>"]` where `<key>` is
/// `null` or a quoted base64 string. `id` is already trimmed and starts with `[`.
/// Only the exact shape we emit (plus JSON whitespace) is accepted: no escapes,
/// since neither part can legitimately contain one.
fn zilla_progress(id: &[u8]) -> Result<&[u8], IdError> {
    let inner = id
        .strip_prefix(b"[")
        .and_then(|s| s.strip_suffix(b"]"))
        .ok_or(IdError::BadZillaForm)?
        .trim_ascii();
    let rest = if let Some(rest) = inner.strip_prefix(b"null") {
        rest
    } else {
        let (key, rest) = quoted(inner)?;
        // The key is ignored, but must look like base64 (either alphabet,
        // padded or not) so that garbage is not silently accepted.
        if !key
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/' | b'='))
        {
            return Err(IdError::BadZillaForm);
        }
        rest
    };
    let rest = rest
        .trim_ascii_start()
        .strip_prefix(b",")
        .ok_or(IdError::BadZillaForm)?
        .trim_ascii_start();
    let (progress, rest) = quoted(rest)?;
    if !rest.is_empty() {
        return Err(IdError::BadZillaForm);
    }
    Ok(progress)
}

/// Splits `"<content>"<rest>` into content and rest. The content may not hold
/// a backslash: JSON escapes never occur in base64 text.
fn quoted(s: &[u8]) -> Result<(&[u8], &[u8]), IdError> {
    let s = s.strip_prefix(b"\"").ok_or(IdError::BadZillaForm)?;
    let end = memchr::memchr(b'"', s).ok_or(IdError::BadZillaForm)?;
    let content = &s[..end];
    if memchr::memchr(b'\\', content).is_some() {
        return Err(IdError::BadZillaForm);
    }
    Ok((content, &s[end + 1..]))
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        // Truncation to the low 7 bits is the point of LEB128.
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Maps small negative and positive deltas to small unsigned numbers
/// (0, -1, 1, -2, … → 0, 1, 2, 3, …) so both directions cost few bytes.
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// A cursor over the decoded binary; running out of input is `Truncated`.
struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, IdError> {
        let (&b, rest) = self.buf.split_first().ok_or(IdError::Truncated)?;
        self.buf = rest;
        Ok(b)
    }

    /// Unsigned LEB128, at most 10 bytes; anything that would not fit a u64
    /// (an 11th byte, or high bits set in the 10th) is `Overflow`.
    fn varint(&mut self) -> Result<u64, IdError> {
        let mut v: u64 = 0;
        for i in 0..MAX_VARINT_LEN {
            let b = self.byte()?;
            // The 10th byte holds only bit 63: any other bit, including the
            // continuation bit, means the value does not fit in a u64.
            if i == MAX_VARINT_LEN - 1 && b > 1 {
                return Err(IdError::Overflow);
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        // Unreachable: the 10th byte either returned above or was rejected.
        Err(IdError::Overflow)
    }
}

#[cfg(test)]
mod tests {
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
            Progress::Some(pairs) => {
                RawProgress::Some(pairs.iter().map(|(p, o)| (p.0, o.0)).collect())
            }
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
}
