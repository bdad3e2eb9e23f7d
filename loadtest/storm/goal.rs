//! What a phase waits for, and how far a connection's tracker is from it:
//! phase 1 wants a baseline on every partition, phase 3 every head.

use crate::track::SeqTracker;

use super::kickoff::Kickoff;

/// What a phase waits for.
#[derive(Clone, Copy)]
pub(super) enum Goal<'a> {
    /// Phase 1: every connection over all threads has a baseline on every
    /// partition the producer writes.
    Baselines(&'a Kickoff<'a>),
    /// Phase 3: this thread's connections have reached these heads
    /// (partition, one past the last sequence number).
    Heads(&'a [(u32, u64)]),
}

/// Whether the tracker has a baseline on each of `partitions`.
pub(super) fn has_baselines(tracker: &SeqTracker, partitions: &[u32]) -> bool {
    partitions.iter().all(|&p| tracker.last(p).is_some())
}

/// Whether the tracker has reached every head (partition, one past the
/// last sequence number produced). A partition with head 0 has nothing to
/// reach.
pub(super) fn caught_up(tracker: &SeqTracker, heads: &[(u32, u64)]) -> bool {
    heads
        .iter()
        .all(|&(p, head)| head == 0 || tracker.last(p).is_some_and(|last| last + 1 >= head))
}

/// Records the tracker still lacks to reach the heads (a partition without
/// a baseline lacks all of its records).
pub(super) fn missing(tracker: &SeqTracker, heads: &[(u32, u64)]) -> u64 {
    heads
        .iter()
        .map(|&(p, head)| match tracker.last(p) {
            Some(last) => head.saturating_sub(last + 1),
            None => head,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tracker that has seen `events` (partition, seq) in order.
    fn tracker(events: &[(u32, u64)]) -> SeqTracker {
        let mut t = SeqTracker::new();
        for &(p, seq) in events {
            t.observe(p, seq);
        }
        t
    }

    #[test]
    fn goals_per_connection() {
        struct Case {
            name: &'static str,
            seen: Vec<(u32, u64)>,
            heads: Vec<(u32, u64)>,
            baselines: bool,
            caught_up: bool,
            missing: u64,
        }
        let cases = [
            Case {
                name: "nothing seen",
                seen: vec![],
                heads: vec![(0, 10), (1, 10)],
                baselines: false,
                caught_up: false,
                missing: 20,
            },
            Case {
                name: "one partition of two",
                seen: vec![(0, 9)],
                heads: vec![(0, 10), (1, 10)],
                baselines: false,
                caught_up: false,
                missing: 10,
            },
            Case {
                name: "baselines, behind on both",
                seen: vec![(0, 3), (1, 5)],
                heads: vec![(0, 10), (1, 10)],
                baselines: true,
                caught_up: false,
                missing: 6 + 4,
            },
            Case {
                name: "at the head on one, one short on the other",
                seen: vec![(0, 9), (1, 8)],
                heads: vec![(0, 10), (1, 10)],
                baselines: true,
                caught_up: false,
                missing: 1,
            },
            Case {
                name: "at every head",
                seen: vec![(0, 9), (1, 9), (0, 8)],
                heads: vec![(0, 10), (1, 10)],
                baselines: true,
                caught_up: true,
                missing: 0,
            },
            Case {
                name: "past a head (records counted as failed that landed)",
                seen: vec![(0, 12), (1, 9)],
                heads: vec![(0, 10), (1, 10)],
                baselines: true,
                caught_up: true,
                missing: 0,
            },
            Case {
                name: "a partition with nothing produced has nothing to reach",
                seen: vec![(0, 9)],
                heads: vec![(0, 10), (1, 0)],
                baselines: false,
                caught_up: true,
                missing: 0,
            },
        ];
        for c in cases {
            let t = tracker(&c.seen);
            let partitions: Vec<u32> = c.heads.iter().map(|&(p, _)| p).collect();
            assert_eq!(has_baselines(&t, &partitions), c.baselines, "{}", c.name);
            assert_eq!(caught_up(&t, &c.heads), c.caught_up, "{}", c.name);
            assert_eq!(missing(&t, &c.heads), c.missing, "{}", c.name);
        }
    }
}
