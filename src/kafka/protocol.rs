//! The Kafka Fetch request (versions 4 and 5) on rskafka's messenger, with
//! an answer that keeps each partition's record batches as the bytes the
//! broker sent.
//!
//! rskafka's own `FetchResponse` decodes the batches while reading the
//! answer, so one record it cannot decode (a null header value, which is
//! legal Kafka) fails the whole answer, and the fetch fails the same way
//! for ever: the partition stops. Here the answer's framing is read with
//! rskafka's primitives and the batches are left to [`super::decode`],
//! which skips exactly the batch it cannot decode. Version 5 also answers
//! the partition's log start offset, which trims the cache of records
//! Kafka deleted.
//!
//! Every length in the answer is bounded by what is left of the frame
//! (itself bounded by `fetcher::MAX_MESSAGE_BYTES`): a hostile count never
//! reserves memory it does not have bytes for.

use std::io::{Cursor, Write};

use rskafka::protocol::api_key::ApiKey;
use rskafka::protocol::api_version::{ApiVersion, ApiVersionRange};
use rskafka::protocol::error::Error as ApiError;
use rskafka::protocol::messages::{
    IsolationLevel, ReadVersionedError, ReadVersionedType, RequestBody, WriteVersionedError,
    WriteVersionedType,
};
use rskafka::protocol::primitives::{Int16, Int32, Int64, Int8, NullableBytes, String_};
use rskafka::protocol::traits::{ReadError, ReadType, WriteType};

/// A fetch of one partition of one topic (what the sidecar's fetches are).
#[derive(Debug, Clone)]
pub struct Fetch {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub max_wait_ms: i32,
    /// Bounds the answer, for the request and for the partition (a first
    /// batch larger than it still comes whole, KIP-74).
    pub max_bytes: i32,
    pub isolation: IsolationLevel,
}

/// The answer to a [`Fetch`].
#[derive(Debug)]
pub struct FetchAnswer {
    pub throttle_time_ms: i32,
    pub topics: Vec<TopicAnswer>,
}

#[derive(Debug)]
pub struct TopicAnswer {
    pub topic: String,
    pub partitions: Vec<PartitionAnswer>,
}

#[derive(Debug)]
pub struct PartitionAnswer {
    pub partition: i32,
    pub error: Option<ApiError>,
    pub high_watermark: i64,
    /// The partition's first offset; `None` from a version 4 answer (or
    /// `-1` from a broker that does not know it).
    pub log_start_offset: Option<i64>,
    /// (producer id, first offset) of each aborted transaction in range.
    pub aborted: Vec<(i64, i64)>,
    /// The record batches, undecoded.
    pub records: Vec<u8>,
}

impl RequestBody for Fetch {
    type ResponseBody = FetchAnswer;
    const API_KEY: ApiKey = ApiKey::Fetch;
    /// 4 is the first version with record batches (magic 2, KIP-98); 5
    /// adds the log start offset.
    const API_VERSION_RANGE: ApiVersionRange =
        ApiVersionRange::new(ApiVersion(Int16(4)), ApiVersion(Int16(5)));
    const FIRST_TAGGED_FIELD_IN_REQUEST_VERSION: ApiVersion = ApiVersion(Int16(12));
}

/// Consumers send -1 as their replica id.
const NORMAL_CONSUMER: i32 = -1;

impl<W: Write> WriteVersionedType<W> for Fetch {
    fn write_versioned(
        &self,
        writer: &mut W,
        version: ApiVersion,
    ) -> Result<(), WriteVersionedError> {
        let v = version.0 .0;
        Int32(NORMAL_CONSUMER).write(writer)?;
        Int32(self.max_wait_ms).write(writer)?;
        Int32(1).write(writer)?; // min_bytes
        Int32(self.max_bytes).write(writer)?;
        Int8(match self.isolation {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        })
        .write(writer)?;
        Int32(1).write(writer)?; // one topic
        String_(self.topic.clone()).write(writer)?;
        Int32(1).write(writer)?; // one partition
        Int32(self.partition).write(writer)?;
        Int64(self.offset).write(writer)?;
        if v >= 5 {
            Int64(-1).write(writer)?; // log_start_offset: consumers send -1
        }
        Int32(self.max_bytes).write(writer)?;
        Ok(())
    }
}

type Reader = Cursor<Vec<u8>>;

impl ReadVersionedType<Reader> for FetchAnswer {
    fn read_versioned(
        reader: &mut Reader,
        version: ApiVersion,
    ) -> Result<Self, ReadVersionedError> {
        let v = version.0 .0;
        let throttle_time_ms = Int32::read(reader)?.0;
        let topics = array(reader, |r| {
            let topic = String_::read(r)?.0;
            let partitions = array(r, |r| read_partition(r, v))?;
            Ok(TopicAnswer { topic, partitions })
        })?;
        Ok(Self {
            throttle_time_ms,
            topics,
        })
    }
}

fn read_partition(r: &mut Reader, v: i16) -> Result<PartitionAnswer, ReadError> {
    let partition = Int32::read(r)?.0;
    let error = ApiError::new(Int16::read(r)?.0);
    let high_watermark = Int64::read(r)?.0;
    let _last_stable_offset = Int64::read(r)?;
    let log_start_offset = if v >= 5 {
        Some(Int64::read(r)?.0).filter(|&o| o >= 0)
    } else {
        None
    };
    let aborted = array(r, |r| Ok((Int64::read(r)?.0, Int64::read(r)?.0)))?;
    let records = NullableBytes::read(r)?.0.unwrap_or_default();
    Ok(PartitionAnswer {
        partition,
        error,
        high_watermark,
        log_start_offset,
        aborted,
        records,
    })
}

/// An array (a null one is empty) whose count is bounded by the bytes left:
/// every element takes at least one.
fn array<T>(
    r: &mut Reader,
    mut element: impl FnMut(&mut Reader) -> Result<T, ReadError>,
) -> Result<Vec<T>, ReadError> {
    let n = Int32::read(r)?.0;
    if n == -1 {
        return Ok(Vec::new());
    }
    let left = r.get_ref().len() as u64 - r.position().min(r.get_ref().len() as u64);
    let n = u64::try_from(n)
        .ok()
        .filter(|&n| n <= left)
        .ok_or_else(|| {
            ReadError::Malformed(format!("array of {n} elements in {left} bytes").into())
        })?;
    (0..n).map(|_| element(r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(version: i16, body: &[u8]) -> Result<FetchAnswer, ReadVersionedError> {
        FetchAnswer::read_versioned(&mut Cursor::new(body.to_vec()), ApiVersion(Int16(version)))
    }

    /// A version 5 answer for one partition, with `records` as its batches.
    fn v5(log_start: i64, records: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(0i32.to_be_bytes()); // throttle
        b.extend(1i32.to_be_bytes()); // topics
        b.extend(1i16.to_be_bytes());
        b.extend(b"t");
        b.extend(1i32.to_be_bytes()); // partitions
        b.extend(3i32.to_be_bytes()); // index
        b.extend(0i16.to_be_bytes()); // no error
        b.extend(42i64.to_be_bytes()); // high watermark
        b.extend(40i64.to_be_bytes()); // last stable offset
        b.extend(log_start.to_be_bytes());
        b.extend(1i32.to_be_bytes()); // aborted transactions
        b.extend(7i64.to_be_bytes());
        b.extend(30i64.to_be_bytes());
        b.extend((records.len() as i32).to_be_bytes());
        b.extend(records);
        b
    }

    #[test]
    fn a_version_5_answer_keeps_the_batches_as_bytes_and_the_log_start() {
        let got = answer(5, &v5(12, b"batches")).unwrap();
        let p = &got.topics[0].partitions[0];
        assert_eq!(got.topics[0].topic, "t");
        assert_eq!((p.partition, p.error, p.high_watermark), (3, None, 42));
        assert_eq!(p.log_start_offset, Some(12));
        assert_eq!(p.aborted, [(7, 30)]);
        assert_eq!(p.records, b"batches");
        // A broker that does not know the log start sends -1.
        let unknown = answer(5, &v5(-1, b"")).unwrap();
        assert_eq!(unknown.topics[0].partitions[0].log_start_offset, None);
    }

    #[test]
    fn a_count_larger_than_the_answer_is_an_error_not_an_allocation() {
        let mut b = Vec::new();
        b.extend(0i32.to_be_bytes());
        b.extend(i32::MAX.to_be_bytes()); // topics
        let err = answer(5, &b).unwrap_err().to_string();
        assert!(err.contains("2147483647 elements in 0 bytes"), "{err}");
        // A negative count other than -1 (null) too.
        let mut b = Vec::new();
        b.extend(0i32.to_be_bytes());
        b.extend((-5i32).to_be_bytes());
        assert!(answer(5, &b).is_err());
    }

    #[test]
    fn the_request_names_one_partition_and_asks_for_the_log_start_from_version_5() {
        let fetch = Fetch {
            topic: "t".into(),
            partition: 2,
            offset: 9,
            max_wait_ms: 10,
            max_bytes: 1000,
            isolation: IsolationLevel::ReadCommitted,
        };
        let written = |v: i16| {
            let mut out = Vec::new();
            fetch
                .write_versioned(&mut out, ApiVersion(Int16(v)))
                .unwrap();
            out
        };
        let (v4, v5) = (written(4), written(5));
        assert_eq!(v5.len(), v4.len() + 8, "version 5 adds log_start_offset");
        assert_eq!(&v4[..4], &(-1i32).to_be_bytes(), "replica id");
        assert_eq!(v4[16], 1, "read committed");
        assert_eq!(&v4[v4.len() - 4..], &1000i32.to_be_bytes());
    }
}
