//! Phase 1's kickoff: when the paused producer writes, decided by all the
//! connection threads together, so that at the hang-up every connection
//! is at the head of every partition (see `Kickoff` for why).

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::produce::ProduceStats;

/// Phase 1's progress over all threads, and the producer's pauses it
/// decides. Why pause: read live, a stream is only as current as the proxy
/// and this reader manage, and N streams of `--rate` records each are far
/// beyond both at large N (15,000 × 2,000 events/s), so the ids at the
/// hang-up would lag the head by however long phase 1 took (measured: ~32k
/// records at N=15,000), not by `--behind`. So the producer waits until
/// every connection is answered, writes until each partition has a record,
/// and waits again while the connections read those few: at the hang-up
/// every connection is at the head, and phase 2 puts exactly `--behind`
/// records between its ids and the new head.
pub(super) struct Kickoff<'a> {
    pub(super) producer: &'a ProduceStats,
    total: usize,
    /// Connections that got a response head.
    pub(super) answered: AtomicUsize,
    /// Connections with a baseline on every partition.
    pub(super) ready: AtomicUsize,
    /// Where the producer is (see `KickoffStep`).
    step: AtomicU8,
}

/// The producer's steps in phase 1, in order.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KickoffStep {
    /// Paused until every connection is answered.
    Waiting = 0,
    /// Writing until every partition has a record.
    Writing = 1,
    /// Paused while the connections read them (phase 2 resumes it).
    Paused = 2,
}

impl<'a> Kickoff<'a> {
    pub(super) fn new(producer: &'a ProduceStats, total: usize) -> Self {
        Self {
            producer,
            total,
            answered: AtomicUsize::new(0),
            ready: AtomicUsize::new(0),
            step: AtomicU8::new(KickoffStep::Waiting as u8),
        }
    }

    /// Moves the producer on when its condition holds; every thread calls
    /// it on every loop turn, and only the first to see a step change acts.
    pub(super) fn steer(&self) {
        let step = self.step.load(Ordering::Relaxed);
        let next = if step == KickoffStep::Waiting as u8 {
            if self.answered.load(Ordering::Relaxed) < self.total {
                return;
            }
            KickoffStep::Writing
        } else if step == KickoffStep::Writing as u8 {
            let Some(partitions) = self.producer.partitions.get() else {
                return;
            };
            let heads = self.producer.heads();
            if !partitions.iter().all(|p| heads.contains_key(p)) {
                return;
            }
            KickoffStep::Paused
        } else {
            return;
        };
        if self
            .step
            .compare_exchange(step, next as u8, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            let paused = next == KickoffStep::Paused;
            self.producer.paused.store(paused, Ordering::Relaxed);
        }
    }

    pub(super) fn done(&self) -> bool {
        self.ready.load(Ordering::Relaxed) >= self.total || self.producer.finished()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storm::paused_producer_stats;

    #[test]
    fn kickoff_writes_one_record_per_partition_once_all_are_answered() {
        let producer = paused_producer_stats();
        let kickoff = Kickoff::new(&producer, 2);
        let step = || kickoff.step.load(Ordering::Relaxed);
        let paused = || producer.paused.load(Ordering::Relaxed);
        kickoff.answered.fetch_add(1, Ordering::Relaxed);
        kickoff.steer();
        assert_eq!((step(), paused()), (KickoffStep::Waiting as u8, true));
        kickoff.answered.fetch_add(1, Ordering::Relaxed);
        kickoff.steer();
        assert_eq!((step(), paused()), (KickoffStep::Writing as u8, false));
        // Records on one partition of two: keep writing.
        producer.partitions.set(vec![0, 1]).unwrap();
        producer.acknowledged(0, Some(0), 1);
        producer.acknowledged(0, Some(1), 1);
        kickoff.steer();
        assert_eq!((step(), paused()), (KickoffStep::Writing as u8, false));
        producer.acknowledged(1, Some(0), 1);
        kickoff.steer();
        assert_eq!((step(), paused()), (KickoffStep::Paused as u8, true));
        // Nothing moves it on from there (phase 2 resumes the producer).
        kickoff.steer();
        assert_eq!((step(), paused()), (KickoffStep::Paused as u8, true));
        assert!(!kickoff.done());
        kickoff.ready.fetch_add(2, Ordering::Relaxed);
        assert!(kickoff.done());
    }
}
