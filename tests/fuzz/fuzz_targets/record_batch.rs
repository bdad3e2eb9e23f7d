//! Record-batch decoding (`kafka::decode::records_from`) on any bytes: it
//! never panics, and what it returns is consistent: records in increasing
//! offset order from the offset asked for, skipped ranges that are ordered,
//! disjoint and hold no returned record, everything below the next offset;
//! and the answer cut short keeps a prefix of the records (a batch cut off
//! by the fetch's size is fetched again, never misread).
//!
//! Input: a flags byte, then the fields it announces, then the batches as
//! a broker sends them:
//!
//! - bit 0: rewrite each whole batch's crc32c before decoding, so that
//!   mutations reach the records instead of stopping at the checksum;
//! - bit 1: an 8-byte big-endian offset to decode from follows (else 0);
//! - bits 2–3: that many aborted transactions follow, 16 bytes each
//!   (producer id, first offset, big-endian).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_kafka::kafka::decode::{
    records_from, ATTRIBUTES_AT, CRC_AT, HEADER_BYTES, LAST_DELTA_AT, LENGTH_OFFSET, MAGIC_AT,
};
use sse_kafka::model::Offset;

fn take_i64(data: &mut &[u8]) -> Option<i64> {
    let (head, rest) = data.split_first_chunk::<8>()?;
    *data = rest;
    Some(i64::from_be_bytes(*head))
}

/// Writes the right checksum into every whole batch, walking them as the
/// decoder does.
fn fix_checksums(mut bytes: &mut [u8]) {
    while bytes.len() >= LENGTH_OFFSET {
        let length = i32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes"));
        let Some(total) = usize::try_from(length)
            .ok()
            .map(|l| l + LENGTH_OFFSET)
            .filter(|&t| t <= bytes.len())
        else {
            return;
        };
        let (batch, rest) = std::mem::take(&mut bytes).split_at_mut(total);
        if total >= HEADER_BYTES {
            let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
            batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        }
        bytes = rest;
    }
}

/// Whether the batches' offsets increase, as in every answer Kafka sends:
/// each batch starts after the last offset of the one before. The decoder
/// does not check this, so for an answer whose batches overlap or go back
/// it returns records out of order, or inside a range it skipped; the
/// checks of order below hold only for answers in order. Walks the
/// batches as the decoder does.
fn in_order(mut bytes: &[u8]) -> bool {
    let mut last: Option<i64> = None;
    while bytes.len() >= 8 {
        let base = i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
        if last.is_some_and(|l| base <= l) {
            return false;
        }
        let Some(length) = bytes
            .get(8..12)
            .map(|b| i32::from_be_bytes(b.try_into().expect("4")))
        else {
            return true;
        };
        let delta = match bytes.get(LAST_DELTA_AT..LAST_DELTA_AT + 4) {
            Some(b) if bytes[MAGIC_AT] == 2 => i32::from_be_bytes(b.try_into().expect("4")).max(0),
            _ => 0,
        };
        last = Some(base.saturating_add(i64::from(delta)));
        match usize::try_from(length).ok().map(|l| l + LENGTH_OFFSET) {
            Some(total) if total <= bytes.len() => bytes = &bytes[total..],
            _ => return true,
        }
    }
    true
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut data)) = data.split_first() else {
        return;
    };
    let from = if flags & 2 != 0 {
        match take_i64(&mut data) {
            Some(from) => Offset(from),
            None => return,
        }
    } else {
        Offset::ZERO
    };
    let mut aborted = Vec::new();
    for _ in 0..(flags >> 2) & 3 {
        match (take_i64(&mut data), take_i64(&mut data)) {
            (Some(producer), Some(first)) => aborted.push((producer, first)),
            _ => return,
        }
    }
    let mut bytes = data.to_vec();
    if flags & 1 != 0 {
        fix_checksums(&mut bytes);
    }
    let Ok(decoded) = records_from(&bytes, from, &aborted) else {
        return;
    };
    assert!(decoded.next_offset >= from);
    // The same answer cut short, at a point the input picks.
    let cut = usize::from(flags >> 4) * bytes.len() / 16;
    if let Ok(short) = records_from(&bytes[..cut], from, &aborted) {
        assert!(
            decoded.records.starts_with(&short.records),
            "cut at {cut}: {} records, not a prefix of {}",
            short.records.len(),
            decoded.records.len()
        );
    }
    if !in_order(&bytes) {
        return;
    }
    let mut previous: Option<Offset> = None;
    for r in &decoded.records {
        assert!(
            r.offset >= from && r.offset < decoded.next_offset,
            "{:?}",
            r.offset
        );
        assert!(previous.is_none_or(|p| p < r.offset), "out of order");
        previous = Some(r.offset);
        assert!(
            !decoded
                .skipped
                .iter()
                .any(|s| s.from <= r.offset && r.offset < s.to),
            "record {:?} in a skipped range",
            r.offset
        );
    }
    let mut end = from;
    for s in &decoded.skipped {
        assert!(end <= s.from && s.from < s.to, "{:?}", decoded.skipped);
        assert_eq!(s.range().from, s.from);
        end = s.to;
    }
    assert!(end <= decoded.next_offset);
});
