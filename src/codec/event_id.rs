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

/// The most bytes of a record key the keyed id form carries: longer keys
/// are cut to their first `MAX_ID_KEY_BYTES` (the key part is for people
/// and Zilla-style clients; resume ignores it). Uncut, a 100 KB key made an
/// id of 133 KB that the proxy itself refused on resume (431 by header, 414
/// by query), and a browser's EventSource stops for good on that.
pub const MAX_ID_KEY_BYTES: usize = 256;

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
            let key = &key[..key.len().min(MAX_ID_KEY_BYTES)];
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
mod tests;
