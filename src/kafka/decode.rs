//! Record decoding: the record batches of a fetch answer, as the bytes the
//! broker sent, turned into the records the proxy keeps, with every header
//! as Kafka sent it (a name may repeat; a null value is kept as an empty
//! one).
//!
//! No batch can stop a partition. A batch the proxy cannot decode — a bad
//! checksum, an unknown codec or message format, a length or varint that
//! runs past its bytes, a decompressed size over [`MAX_BATCH_BYTES`] — is
//! skipped, exactly its offsets, and reported as [`Skipped`]; the batches
//! around it are decoded as usual. Every length and count is checked
//! against the bytes actually there before anything is reserved, and every
//! number a broker sends is checked before it is used: an offset that
//! overflows is a [`DecodeError`], never a panic or a wrapped value.
//!
//! Format: Kafka's record batch, magic 2 (KIP-98), the only one Fetch v4+
//! answers carry from brokers that store the current format.

use std::borrow::Cow;
use std::io::Read;

use rskafka::chrono::DateTime;

use super::error::DecodeError;
use crate::model::{Offset, Record, RecordAndOffset, Skip};

/// The largest a batch may be once decompressed (a bound on what a
/// hostile or broken compressed batch makes the proxy allocate).
pub const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// The bytes of a batch before its records: base offset (8), length (4),
/// leader epoch (4), magic (1), crc (4), attributes (2), last offset delta
/// (4), first and max timestamp (8 + 8), producer id (8), epoch (2), base
/// sequence (4), record count (4).
pub const HEADER_BYTES: usize = 61;
/// Where the length field stops counting (base offset and length itself).
pub const LENGTH_OFFSET: usize = 12;
pub const MAGIC_AT: usize = 16;
pub const CRC_AT: usize = 17;
/// The checksum covers the batch from its attributes on.
pub const ATTRIBUTES_AT: usize = 21;
pub const LAST_DELTA_AT: usize = 23;

/// A run of offsets the decoder could not read: `from..to` of the batch
/// (from the offset asked for, if the batch started below it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub from: Offset,
    pub to: Offset,
    pub why: DecodeError,
}

impl Skipped {
    /// The offsets skipped, as batches carry them.
    pub fn range(&self) -> Skip {
        Skip {
            from: self.from,
            to: self.to,
        }
    }
}

/// What one answer's batches hold.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// The visible records at or after the offset asked for, in order.
    pub records: Vec<RecordAndOffset>,
    /// The offset after the last batch (complete batches only; a batch cut
    /// off by the answer's size is fetched again).
    pub next_offset: Offset,
    /// Batches skipped, in order.
    pub skipped: Vec<Skipped>,
}

/// The visible records of an answer's batches from `from` on (see the
/// module doc).
///
/// - A batch may start below the offset asked for (Kafka does not split
///   batches): its earlier records are dropped.
/// - Control batches (transaction markers) carry no records.
/// - Fetches ask for committed records only (`READ_COMMITTED`), but Kafka
///   returns the batches of aborted transactions too, with the list of
///   aborted transactions (producer id, first offset): a transactional
///   batch of a producer whose aborted transaction has begun, up to that
///   producer's abort marker, is dropped (as Kafka's Java consumer does).
///
/// The one error is a batch whose offsets cannot be represented: then no
/// offset after it can be trusted either.
pub fn records_from(
    mut bytes: &[u8],
    from: Offset,
    aborted: &[(i64, i64)],
) -> Result<Decoded, DecodeError> {
    // By first offset, the earliest last (popped first).
    let mut pending: Vec<(i64, i64)> = aborted.to_vec();
    pending.sort_by_key(|&(_, first)| std::cmp::Reverse(first));
    let mut aborting: Vec<i64> = Vec::new();
    let mut out = Decoded {
        next_offset: from,
        ..Decoded::default()
    };
    while bytes.len() >= LENGTH_OFFSET {
        let base = i64_at(bytes, 0);
        let length = i32_at(bytes, 8);
        // The batch's own bytes, when they are all there.
        let whole = usize::try_from(length)
            .ok()
            .and_then(|l| l.checked_add(LENGTH_OFFSET))
            .filter(|&total| total <= bytes.len())
            .map(|total| &bytes[..total]);
        let framed = length >= (HEADER_BYTES - LENGTH_OFFSET) as i32;
        if framed && whole.is_none() {
            // Cut off by the answer's size: fetched again from here.
            break;
        }
        if bytes.len() <= MAGIC_AT {
            break;
        }
        let magic = bytes[MAGIC_AT] as i8;
        // The batch's last offset: from its header when it has one.
        let last_delta =
            (magic == 2 && bytes.len() >= LAST_DELTA_AT + 4).then(|| i32_at(bytes, LAST_DELTA_AT));
        let last = match last_delta {
            // A negative delta is nonsense: the batch is taken to hold one
            // offset (its records then fail the check against it).
            Some(delta) if delta >= 0 => base
                .checked_add(i64::from(delta))
                .ok_or(DecodeError::Offset { base, delta })?,
            _ => base,
        };
        let after = last.checked_add(1).ok_or(DecodeError::Offset {
            base,
            delta: last_delta.unwrap_or(0),
        })?;
        let batch = match whole {
            Some(batch) if framed && magic == 2 => batch,
            _ => {
                // Not a batch the proxy can read, or not even one it can
                // find the end of: skip its offsets; without an end, the
                // rest of the answer is fetched again after them.
                let why = if magic != 2 {
                    DecodeError::Magic { magic }
                } else {
                    DecodeError::Length { length }
                };
                match whole {
                    Some(batch) => {
                        skip(&mut out, from, base, after, why);
                        bytes = &bytes[batch.len()..];
                        continue;
                    }
                    None => {
                        // At least one offset, so the next fetch moves on.
                        skip(
                            &mut out,
                            from,
                            base,
                            after.max(from.0.saturating_add(1)),
                            why,
                        );
                        break;
                    }
                }
            }
        };
        bytes = &bytes[batch.len()..];
        let header = Header::of(batch);
        if header.producer_id >= 0 {
            while let Some(&(producer, first)) = pending.last() {
                if first > last {
                    break;
                }
                aborting.push(producer);
                pending.pop();
            }
        }
        let body = match header.check(batch).and_then(|()| body(batch, &header)) {
            Ok(body) => body,
            Err(why) => {
                skip(&mut out, from, base, after, why);
                continue;
            }
        };
        if header.is_control() {
            match control(&body, header.count) {
                Ok(Some(Marker::Abort)) => aborting.retain(|p| *p != header.producer_id),
                Ok(_) => {}
                Err(why) => {
                    skip(&mut out, from, base, after, why);
                    continue;
                }
            }
            out.next_offset = out.next_offset.max(Offset(after));
            continue;
        }
        if header.is_transactional() && aborting.contains(&header.producer_id) {
            out.next_offset = out.next_offset.max(Offset(after));
            continue;
        }
        let kept = out.records.len();
        match read_records(&body, &header, (base, last), from, &mut out.records) {
            Ok(()) => out.next_offset = out.next_offset.max(Offset(after)),
            Err(why) => {
                out.records.truncate(kept);
                skip(&mut out, from, base, after, why);
            }
        }
    }
    Ok(out)
}

/// Records batch `base..after` as skipped (the part at or after `from`).
fn skip(out: &mut Decoded, from: Offset, base: i64, after: i64, why: DecodeError) {
    let start = Offset(base.max(from.0).max(out.next_offset.0));
    let end = Offset(after).max(start);
    out.next_offset = end;
    if start < end {
        out.skipped.push(Skipped {
            from: start,
            to: end,
            why,
        });
    }
}

/// The fields of a batch's header the decoder uses.
struct Header {
    crc: u32,
    attributes: i16,
    first_timestamp: i64,
    producer_id: i64,
    count: i32,
}

impl Header {
    /// `batch` holds at least [`HEADER_BYTES`].
    fn of(batch: &[u8]) -> Self {
        Self {
            crc: u32::from_be_bytes(batch[CRC_AT..CRC_AT + 4].try_into().expect("4 bytes")),
            attributes: i16::from_be_bytes([batch[ATTRIBUTES_AT], batch[ATTRIBUTES_AT + 1]]),
            first_timestamp: i64_at(batch, 27),
            producer_id: i64_at(batch, 43),
            count: i32_at(batch, 57),
        }
    }

    fn check(&self, batch: &[u8]) -> Result<(), DecodeError> {
        let actual = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
        if actual != self.crc {
            return Err(DecodeError::Checksum {
                expected: self.crc,
                actual,
            });
        }
        Ok(())
    }

    fn codec(&self) -> i16 {
        self.attributes & 0x7
    }

    fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
}

/// The batch's records, decompressed.
fn body<'b>(batch: &'b [u8], header: &Header) -> Result<Cow<'b, [u8]>, DecodeError> {
    let data = &batch[HEADER_BYTES..];
    let codec = header.codec();
    let failed = |name: &'static str| {
        move |e: std::io::Error| DecodeError::Decompress {
            codec: name,
            reason: e.to_string(),
        }
    };
    let inflated = match codec {
        0 => return Ok(Cow::Borrowed(data)),
        1 => bounded(flate2::read::MultiGzDecoder::new(data)).map_err(failed("gzip"))?,
        2 => snappy(data)?,
        3 => bounded(lz4::Decoder::new(data).map_err(failed("lz4"))?).map_err(failed("lz4"))?,
        4 => bounded(zstd::stream::read::Decoder::new(data).map_err(failed("zstd"))?)
            .map_err(failed("zstd"))?,
        _ => return Err(DecodeError::Codec { codec }),
    };
    Ok(Cow::Owned(inflated))
}

/// Everything a decompressor yields, up to [`MAX_BATCH_BYTES`].
fn bounded(reader: impl Read) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader
        .take(MAX_BATCH_BYTES as u64 + 1)
        .read_to_end(&mut out)?;
    if out.len() > MAX_BATCH_BYTES {
        return Err(std::io::Error::other(format!(
            "more than {MAX_BATCH_BYTES} bytes decompressed"
        )));
    }
    Ok(out)
}

/// Kafka's snappy: a raw snappy block, or the Java client's framing
/// (xerial: a magic, two version words, then length-prefixed blocks).
fn snappy(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    const XERIAL: &[u8] = b"\x82SNAPPY\0";
    let failed = |reason: String| DecodeError::Decompress {
        codec: "snappy",
        reason,
    };
    let block = |input: &[u8], out: &mut Vec<u8>| {
        let len = snap::raw::decompress_len(input).map_err(|e| failed(e.to_string()))?;
        if out.len() + len > MAX_BATCH_BYTES {
            return Err(failed(format!(
                "more than {MAX_BATCH_BYTES} bytes decompressed"
            )));
        }
        let at = out.len();
        out.resize(at + len, 0);
        snap::raw::Decoder::new()
            .decompress(input, &mut out[at..])
            .map_err(|e| failed(e.to_string()))?;
        Ok(())
    };
    let mut out = Vec::new();
    let Some(mut rest) = data.strip_prefix(XERIAL) else {
        block(data, &mut out)?;
        return Ok(out);
    };
    // Version and compatible version words.
    rest = rest
        .get(8..)
        .ok_or_else(|| failed("xerial header cut short".into()))?;
    while !rest.is_empty() {
        let len = rest
            .get(..4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or_else(|| failed("xerial block length cut short".into()))?;
        let chunk = rest
            .get(4..4 + len)
            .ok_or_else(|| failed(format!("xerial block of {len} bytes runs past the batch")))?;
        block(chunk, &mut out)?;
        rest = &rest[4 + len..];
    }
    Ok(out)
}

enum Marker {
    Abort,
    Commit,
}

/// A control batch's marker (its one record's key: version, type).
fn control(body: &[u8], count: i32) -> Result<Option<Marker>, DecodeError> {
    if count < 1 {
        return Ok(None);
    }
    let mut r = Bytes::new(body);
    let len = r.length("control record")?;
    let mut rec = Bytes::new(r.take(len, "control record")?);
    rec.take(1, "attributes")?;
    rec.varlong("timestamp delta")?;
    rec.varint("offset delta")?;
    let key = rec.bytes("control key")?.ok_or(DecodeError::Record {
        what: "control key",
    })?;
    match key {
        [_, _, 0, 0, ..] => Ok(Some(Marker::Abort)),
        [_, _, 0, 1, ..] => Ok(Some(Marker::Commit)),
        _ => Ok(None),
    }
}

/// Appends the records of a data batch at or after `from`.
fn read_records(
    body: &[u8],
    header: &Header,
    (base, last): (i64, i64),
    from: Offset,
    into: &mut Vec<RecordAndOffset>,
) -> Result<(), DecodeError> {
    let mut previous: Option<i64> = None;
    let mut r = Bytes::new(body);
    // Every record takes at least 7 bytes: no reservation past the data.
    let count = usize::try_from(header.count.max(0)).unwrap_or(0);
    into.reserve(count.min(body.len() / 7));
    for _ in 0..count {
        let len = r.length("record")?;
        let mut rec = Bytes::new(r.take(len, "record")?);
        rec.take(1, "attributes")?;
        let timestamp_delta = rec.varlong("timestamp delta")?;
        let delta = rec.varint("offset delta")?;
        let offset = base
            .checked_add(i64::from(delta))
            .ok_or(DecodeError::Offset { base, delta })?;
        // In order and within the batch: a batch's records chain.
        if offset > last || previous.is_some_and(|p| offset <= p) {
            return Err(DecodeError::Record {
                what: "offset delta out of order or past the batch",
            });
        }
        previous = Some(offset);
        let key = rec.bytes("key")?.map(<[u8]>::to_vec);
        let value = rec.bytes("value")?.map(<[u8]>::to_vec);
        let n = rec.length("header count")?;
        // Every header takes at least 2 bytes.
        if n > rec.left() / 2 {
            return Err(DecodeError::Record {
                what: "header count",
            });
        }
        let mut headers = Vec::with_capacity(n);
        for _ in 0..n {
            let name = rec.bytes("header name")?.ok_or(DecodeError::Record {
                what: "header name",
            })?;
            // A null value (legal Kafka) is kept as the empty value.
            let value = rec.bytes("header value")?.unwrap_or_default();
            headers.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
        }
        if rec.left() != 0 {
            return Err(DecodeError::Record {
                what: "bytes after the headers",
            });
        }
        if offset < from.0 {
            continue;
        }
        let timestamp = header
            .first_timestamp
            .checked_add(timestamp_delta)
            .and_then(DateTime::from_timestamp_millis)
            .ok_or(DecodeError::Timestamp {
                offset,
                first: header.first_timestamp,
                delta: timestamp_delta,
            })?;
        into.push(RecordAndOffset {
            record: Record {
                key,
                value,
                headers,
                timestamp,
            },
            offset: Offset(offset),
        });
    }
    if r.left() != 0 {
        return Err(DecodeError::Record {
            what: "bytes after the last record",
        });
    }
    Ok(())
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// A reader of a record's fields: zig-zag varints and length-prefixed
/// bytes, every length checked against what is left.
struct Bytes<'b> {
    rest: &'b [u8],
}

impl<'b> Bytes<'b> {
    fn new(rest: &'b [u8]) -> Self {
        Self { rest }
    }

    fn left(&self) -> usize {
        self.rest.len()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'b [u8], DecodeError> {
        if n > self.rest.len() {
            return Err(DecodeError::Record { what });
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    /// A zig-zag varint of at most `max_bytes` bytes.
    fn zigzag(&mut self, max_bytes: usize, what: &'static str) -> Result<i64, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let (&byte, rest) = self
                .rest
                .split_first()
                .ok_or(DecodeError::Record { what })?;
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(DecodeError::Record { what })
    }

    fn varint(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        let v = self.zigzag(5, what)?;
        i32::try_from(v).map_err(|_| DecodeError::Record { what })
    }

    fn varlong(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        self.zigzag(10, what)
    }

    /// A length that must not be negative.
    fn length(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        usize::try_from(self.varint(what)?).map_err(|_| DecodeError::Record { what })
    }

    /// Length-prefixed bytes; length -1 is null.
    fn bytes(&mut self, what: &'static str) -> Result<Option<&'b [u8]>, DecodeError> {
        match self.varint(what)? {
            -1 => Ok(None),
            n => {
                let n = usize::try_from(n).map_err(|_| DecodeError::Record { what })?;
                self.take(n, what).map(Some)
            }
        }
    }
}

/// Record batches written the way Kafka clients write them, for the
/// decoder's tests and the fuzz seeds.
#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
