//! Sequenced records for ordering checks: values `p<partition>-<seq>`,
//! produced in chunks to every partition, and [`Sequences`], which checks a
//! stream of them as it arrives (per partition every number once, in
//! order).

use sse_kafka::codec::sse::Event;

use super::broker::Broker;

/// A record value `p<partition>-<seq>`, optionally `-<padding>` after it.
pub fn seq_value(p: i32, i: usize, pad: &str) -> Vec<u8> {
    if pad.is_empty() {
        format!("p{p}-{i}").into_bytes()
    } else {
        format!("p{p}-{i}-{pad}").into_bytes()
    }
}

/// The partition and sequence number of a [`seq_value`] event.
pub fn value_of(e: &Event) -> (usize, usize) {
    let parse = || {
        let mut parts = e.data.strip_prefix('p')?.split('-');
        let p = parts.next()?.parse().ok()?;
        let i = parts.next()?.parse().ok()?;
        Some((p, i))
    };
    parse().unwrap_or_else(|| panic!("not a sequenced record: {e:?}"))
}

/// Produces [`seq_value`]s `seq` to every partition, `chunk` records per
/// produce request; returns how many records were produced.
pub fn produce_seq(
    broker: &Broker,
    topic: &str,
    partitions: i32,
    seq: std::ops::Range<usize>,
    pad: &str,
    chunk: usize,
) -> usize {
    let mut n = 0;
    for p in 0..partitions {
        for part in seq.clone().collect::<Vec<_>>().chunks(chunk.max(1)) {
            let records = part
                .iter()
                .map(|&i| (None, Some(seq_value(p, i, pad))))
                .collect();
            n += broker.produce_many(topic, p, records).len();
        }
    }
    n
}

/// Checks a stream of [`seq_value`] events as it arrives: within each
/// partition every sequence number exactly once, in order.
#[derive(Debug, Clone)]
pub struct Sequences {
    next: Vec<usize>,
}

impl Sequences {
    /// Expects partition `p` to start at `start[p]`.
    pub fn starting_at(start: Vec<usize>) -> Sequences {
        Sequences { next: start }
    }

    pub fn new(partitions: usize) -> Sequences {
        Self::starting_at(vec![0; partitions])
    }

    pub fn check(&mut self, e: &Event) {
        assert_eq!(e.event, None, "expected a record, got {e:?}");
        let (p, i) = value_of(e);
        assert!(p < self.next.len(), "unexpected partition {p}: {e:?}");
        assert_eq!(
            i, self.next[p],
            "partition {p} out of order, duplicated or with a gap: {e:?}"
        );
        self.next[p] += 1;
    }

    /// The next sequence number expected per partition.
    pub fn next(&self) -> &[usize] {
        &self.next
    }

    pub fn assert_each_at(&self, per_partition: usize) {
        assert_eq!(self.next, vec![per_partition; self.next.len()]);
    }
}

/// Every record exactly once; within a partition, in offset order.
pub fn assert_complete_and_ordered(events: &[Event], partitions: usize, per_partition: usize) {
    let mut seq = Sequences::new(partitions);
    for e in events {
        seq.check(e);
    }
    seq.assert_each_at(per_partition);
}
