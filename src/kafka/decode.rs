//! Record decoding: the batches of a fetch answer (rskafka's protocol
//! types, every compression codec already undone) turned into the records
//! the proxy keeps, with every header as Kafka sent it. Every number a
//! broker sends is checked before it is used: an offset or timestamp that
//! overflows is a [`DecodeError`], never a panic or a wrapped value.

use rskafka::chrono::DateTime;
use rskafka::protocol::record::{ControlBatchOrRecords, ControlBatchRecord, RecordBatch};

use super::error::DecodeError;
use crate::model::{Offset, Record, RecordAndOffset};

/// The visible records of fetched batches from `from` on, and the offset
/// after the last batch (`Answer::next_offset`).
///
/// - A batch may start below the offset asked for (Kafka does not split
///   batches): its earlier records are dropped.
/// - Control batches (transaction markers) carry no records.
/// - Fetches ask for committed records only (`READ_COMMITTED`), but Kafka
///   returns the batches of aborted transactions too, with the list of
///   aborted transactions (producer id, first offset): a transactional
///   batch of a producer whose aborted transaction has begun, up to that
///   producer's abort marker, is dropped (as Kafka's Java consumer does).
pub fn records_from(
    batches: Vec<RecordBatch>,
    from: Offset,
    aborted: &[(i64, i64)],
) -> Result<(Vec<RecordAndOffset>, Offset), DecodeError> {
    // By first offset, the earliest last (popped first).
    let mut pending: Vec<(i64, i64)> = aborted.to_vec();
    pending.sort_by_key(|&(_, first)| std::cmp::Reverse(first));
    let mut aborting: Vec<i64> = Vec::new();
    let mut records_out = Vec::new();
    let mut next_offset = from.0;
    for batch in batches {
        let base = batch.base_offset;
        let offset_of = |delta: i32| {
            base.checked_add(i64::from(delta))
                .ok_or(DecodeError::Offset { base, delta })
        };
        let last = offset_of(batch.last_offset_delta)?;
        let after = last.checked_add(1).ok_or(DecodeError::Offset {
            base,
            delta: batch.last_offset_delta,
        })?;
        next_offset = next_offset.max(after);
        if batch.producer_id >= 0 {
            while let Some(&(producer, first)) = pending.last() {
                if first > last {
                    break;
                }
                aborting.push(producer);
                pending.pop();
            }
        }
        let records = match batch.records {
            ControlBatchOrRecords::ControlBatch(marker) => {
                if matches!(marker, ControlBatchRecord::Abort) {
                    aborting.retain(|p| *p != batch.producer_id);
                }
                continue;
            }
            ControlBatchOrRecords::Records(records) => records,
        };
        if batch.is_transactional && aborting.contains(&batch.producer_id) {
            continue;
        }
        records_out.reserve(records.len());
        for r in records {
            let offset = offset_of(r.offset_delta)?;
            if offset < from.0 {
                continue;
            }
            let timestamp = batch
                .first_timestamp
                .checked_add(r.timestamp_delta)
                .and_then(DateTime::from_timestamp_millis)
                .ok_or(DecodeError::Timestamp {
                    offset,
                    first: batch.first_timestamp,
                    delta: r.timestamp_delta,
                })?;
            records_out.push(RecordAndOffset {
                record: Record {
                    key: r.key,
                    value: r.value,
                    headers: r.headers.into_iter().map(|h| (h.key, h.value)).collect(),
                    timestamp,
                },
                offset: Offset(offset),
            });
        }
    }
    Ok((records_out, Offset(next_offset)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rskafka::protocol::record::{
        Record as WireRecord, RecordBatchCompression, RecordBatchTimestampType, RecordHeader,
    };

    fn batch(base_offset: i64, records: ControlBatchOrRecords) -> RecordBatch {
        let last_offset_delta = match &records {
            ControlBatchOrRecords::Records(r) => {
                r.iter().map(|r| r.offset_delta).max().unwrap_or(0)
            }
            ControlBatchOrRecords::ControlBatch(_) => 0,
        };
        RecordBatch {
            base_offset,
            partition_leader_epoch: 0,
            last_offset_delta,
            first_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records,
            compression: RecordBatchCompression::NoCompression,
            is_transactional: false,
            timestamp_type: RecordBatchTimestampType::CreateTime,
        }
    }

    fn wire(delta: i32, headers: &[(&str, &str)]) -> WireRecord {
        WireRecord {
            timestamp_delta: i64::from(delta) * 10,
            offset_delta: delta,
            key: Some(format!("k{delta}").into_bytes()),
            value: None,
            headers: headers
                .iter()
                .map(|(k, v)| RecordHeader {
                    key: (*k).to_owned(),
                    value: v.as_bytes().to_vec(),
                })
                .collect(),
        }
    }

    #[test]
    fn keeps_repeated_headers_and_skips_what_precedes_the_offset() {
        let batches = vec![
            batch(
                10,
                ControlBatchOrRecords::Records(vec![
                    wire(0, &[]),
                    wire(1, &[("tag", "a"), ("x", "1"), ("tag", "b")]),
                ]),
            ),
            batch(
                12,
                ControlBatchOrRecords::ControlBatch(ControlBatchRecord::Commit),
            ),
            batch(
                13,
                ControlBatchOrRecords::Records(vec![wire(0, &[("tag", "c")])]),
            ),
        ];
        let (got, next_offset) = records_from(batches, Offset(11), &[]).unwrap();
        assert_eq!(next_offset, Offset(14), "past the last batch");
        assert_eq!(got.iter().map(|r| r.offset.0).collect::<Vec<_>>(), [11, 13]);
        let first = &got[0].record;
        assert_eq!(first.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(first.header_values("tag").collect::<Vec<_>>(), [b"a", b"b"]);
        assert_eq!(first.headers[1], ("x".to_owned(), b"1".to_vec()));
        assert_eq!(first.timestamp.timestamp_millis(), 1_700_000_000_010);
        assert_eq!(
            got[1].record.header_values("tag").collect::<Vec<_>>(),
            [b"c"]
        );
    }

    /// A transactional batch of `producer`.
    fn txn(base_offset: i64, producer: i64, records: ControlBatchOrRecords) -> RecordBatch {
        RecordBatch {
            producer_id: producer,
            is_transactional: true,
            ..batch(base_offset, records)
        }
    }

    #[test]
    fn aborted_transactions_and_markers_are_dropped_and_passed() {
        use ControlBatchOrRecords::{ControlBatch, Records};
        let data = |n: i32| Records((0..n).map(|d| wire(d, &[])).collect());
        let batches = || {
            vec![
                txn(0, 7, data(2)), // committed
                txn(2, 7, ControlBatch(ControlBatchRecord::Commit)),
                txn(3, 8, data(2)), // aborted
                batch(5, data(1)),  // no transaction
                txn(6, 8, ControlBatch(ControlBatchRecord::Abort)),
                txn(7, 8, data(1)), // producer 8 again, committed
                txn(8, 8, ControlBatch(ControlBatchRecord::Commit)),
            ]
        };
        let (records, next_offset) = records_from(batches(), Offset(0), &[(8, 3)]).unwrap();
        let offsets: Vec<i64> = records.iter().map(|r| r.offset.0).collect();
        assert_eq!(offsets, [0, 1, 5, 7]);
        assert_eq!(next_offset, Offset(9));
        // Without the aborted list every data record is visible.
        let (all, _) = records_from(batches(), Offset(0), &[]).unwrap();
        assert_eq!(all.len(), 6);
        // Only a marker: nothing visible, and the next fetch starts past it.
        let marker = vec![txn(8, 8, ControlBatch(ControlBatchRecord::Commit))];
        let (records, next_offset) = records_from(marker, Offset(8), &[]).unwrap();
        assert!(records.is_empty());
        assert_eq!(next_offset, Offset(9));
        // Nothing at all: the next fetch starts where this one did.
        assert_eq!(
            records_from(Vec::new(), Offset(12), &[]).unwrap().1,
            Offset(12)
        );
    }

    #[test]
    fn a_timestamp_out_of_range_is_an_error_not_a_panic() {
        let mut r = wire(0, &[]);
        r.timestamp_delta = i64::MAX;
        let err = records_from(
            vec![batch(0, ControlBatchOrRecords::Records(vec![r]))],
            Offset(0),
            &[],
        );
        assert_eq!(
            err.unwrap_err(),
            DecodeError::Timestamp {
                offset: 0,
                first: 1_700_000_000_000,
                delta: i64::MAX
            }
        );
        assert!(err_text().contains("out of range"));
    }

    fn err_text() -> String {
        let mut r = wire(0, &[]);
        r.timestamp_delta = i64::MAX;
        records_from(
            vec![batch(0, ControlBatchOrRecords::Records(vec![r]))],
            Offset(0),
            &[],
        )
        .unwrap_err()
        .to_string()
    }

    /// Offsets are the broker's numbers: a batch whose offsets overflow is
    /// an error, in debug and release builds alike, never a panic or a
    /// wrapped offset.
    #[test]
    fn broker_offsets_that_overflow_are_errors_not_panics() {
        use ControlBatchOrRecords::Records;
        // The last offset of the batch overflows.
        let mut late = batch(i64::MAX - 1, Records(vec![wire(0, &[]), wire(5, &[])]));
        late.last_offset_delta = 5;
        assert_eq!(
            records_from(vec![late], Offset(0), &[]).unwrap_err(),
            DecodeError::Offset {
                base: i64::MAX - 1,
                delta: 5
            }
        );
        // A record's own delta overflows (the batch's last delta claims less).
        let mut liar = batch(i64::MAX - 3, Records(vec![wire(0, &[]), wire(7, &[])]));
        liar.last_offset_delta = 1;
        assert_eq!(
            records_from(vec![liar], Offset(0), &[]).unwrap_err(),
            DecodeError::Offset {
                base: i64::MAX - 3,
                delta: 7
            }
        );
        // A batch ending exactly at i64::MAX: its next offset cannot be
        // represented.
        let mut last = batch(i64::MAX, Records(vec![wire(0, &[])]));
        last.last_offset_delta = 0;
        assert_eq!(
            records_from(vec![last], Offset(0), &[]).unwrap_err(),
            DecodeError::Offset {
                base: i64::MAX,
                delta: 0
            }
        );
        // A negative delta is no overflow: its records are below the offset
        // asked for and skipped.
        let mut back = batch(10, Records(vec![wire(-3, &[]), wire(0, &[])]));
        back.last_offset_delta = 0;
        let (records, next) = records_from(vec![back], Offset(8), &[]).unwrap();
        assert_eq!(records.iter().map(|r| r.offset.0).collect::<Vec<_>>(), [10]);
        assert_eq!(next, Offset(11));
    }
}
