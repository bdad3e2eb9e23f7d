//! Per-connection sequence tracking. The producer numbers each partition's
//! records 0, 1, 2, … for the run, so a subscriber that sees every record of
//! a partition exactly once sees consecutive numbers. A live subscriber joins
//! mid-stream, so the first number seen for a partition on a fresh connection
//! is only a baseline. After a resume (reconnect with `Last-Event-ID`) the
//! same tracker is kept, so the stream must continue exactly after the last
//! number seen before the drop; the first event of each such partition after
//! the resume decides whether the resume was exact.

/// Partitions are tracked in a vector indexed by partition number; a number
/// above this is treated as a malformed value (Kafka topics in practice have
/// at most a few thousand partitions).
pub const MAX_PARTITIONS: u32 = 1 << 16;

/// What one event means for its partition's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The next number, or a baseline (first event of a partition on a fresh
    /// connection).
    InOrder,
    /// A number at or below the last one seen: delivered again.
    Duplicate,
    /// Numbers were skipped.
    Gap { missing: u64 },
}

#[derive(Debug, Clone, Copy, Default)]
struct PartitionState {
    /// Last number seen; `None` before the baseline.
    last: Option<u64>,
    /// The first event after a resume is still to come and will be judged.
    resume_pending: bool,
}

/// Sequence state of one subscriber, carried across its reconnections.
#[derive(Debug, Default)]
pub struct SeqTracker {
    partitions: Vec<PartitionState>,
    /// Sum of all gaps.
    pub loss: u64,
    /// Events whose number was not above the last one seen.
    pub duplicates: u64,
    /// Reconnections with `Last-Event-ID`.
    pub resumes: u64,
    /// Partitions whose first event after a resume was not the exact
    /// continuation.
    pub resume_errors: u64,
}

impl SeqTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one event of `partition` numbered `seq`.
    pub fn observe(&mut self, partition: u32, seq: u64) -> Observation {
        let index = partition as usize;
        if index >= self.partitions.len() {
            self.partitions.resize(index + 1, PartitionState::default());
        }
        let state = &mut self.partitions[index];
        let observation = match state.last {
            None => Observation::InOrder,
            Some(last) if seq == last + 1 => Observation::InOrder,
            Some(last) if seq <= last => Observation::Duplicate,
            Some(last) => Observation::Gap {
                missing: seq - last - 1,
            },
        };
        if std::mem::take(&mut state.resume_pending) && observation != Observation::InOrder {
            self.resume_errors += 1;
        }
        match observation {
            Observation::Duplicate => self.duplicates += 1,
            Observation::Gap { missing } => {
                self.loss += missing;
                state.last = Some(seq);
            }
            Observation::InOrder => state.last = Some(seq),
        }
        observation
    }

    /// The last number seen on `partition` (its baseline or later), if any.
    pub fn last(&self, partition: u32) -> Option<u64> {
        self.partitions
            .get(partition as usize)
            .and_then(|state| state.last)
    }

    /// Every partition seen, with its last number.
    pub fn lasts(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.partitions
            .iter()
            .enumerate()
            .filter_map(|(p, state)| Some((p as u32, state.last?)))
    }

    /// Marks a reconnection with `Last-Event-ID`: every partition seen so far
    /// must continue exactly. Partitions never seen before get their baseline
    /// from their first event, as on a fresh connection (the tracker cannot
    /// know where they stood).
    pub fn begin_resume(&mut self) {
        self.resumes += 1;
        for state in &mut self.partitions {
            state.resume_pending = state.last.is_some();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Observation::*;

    /// One step of a scenario: an event, or a resume marker.
    enum Step {
        Ev(u32, u64, Observation),
        Resume,
    }
    use Step::*;

    struct Case {
        name: &'static str,
        steps: Vec<Step>,
        loss: u64,
        duplicates: u64,
        resumes: u64,
        resume_errors: u64,
    }

    #[test]
    fn last_is_per_partition() {
        let mut t = SeqTracker::new();
        assert_eq!(t.last(0), None);
        t.observe(2, 7);
        t.observe(2, 9);
        t.observe(2, 3);
        assert_eq!((t.last(0), t.last(2), t.last(9)), (None, Some(9), None));
        t.observe(5, 1);
        assert_eq!(t.lasts().collect::<Vec<_>>(), [(2, 9), (5, 1)]);
    }

    #[test]
    fn scenarios() {
        let cases = vec![
            Case {
                name: "in order from a mid-stream baseline",
                steps: vec![Ev(0, 41, InOrder), Ev(0, 42, InOrder), Ev(0, 43, InOrder)],
                loss: 0,
                duplicates: 0,
                resumes: 0,
                resume_errors: 0,
            },
            Case {
                name: "first event sets the baseline, even at a high number",
                steps: vec![Ev(7, 1_000_000, InOrder), Ev(7, 1_000_001, InOrder)],
                loss: 0,
                duplicates: 0,
                resumes: 0,
                resume_errors: 0,
            },
            Case {
                name: "gap",
                steps: vec![
                    Ev(0, 0, InOrder),
                    Ev(0, 1, InOrder),
                    Ev(0, 5, Gap { missing: 3 }),
                    Ev(0, 6, InOrder),
                    Ev(0, 8, Gap { missing: 1 }),
                ],
                loss: 4,
                duplicates: 0,
                resumes: 0,
                resume_errors: 0,
            },
            Case {
                name: "duplicate and older",
                steps: vec![
                    Ev(0, 10, InOrder),
                    Ev(0, 11, InOrder),
                    Ev(0, 11, Duplicate),
                    Ev(0, 9, Duplicate),
                    Ev(0, 12, InOrder),
                ],
                loss: 0,
                duplicates: 2,
                resumes: 0,
                resume_errors: 0,
            },
            Case {
                name: "partitions interleaved independently",
                steps: vec![
                    Ev(2, 100, InOrder),
                    Ev(0, 5, InOrder),
                    Ev(1, 0, InOrder),
                    Ev(0, 6, InOrder),
                    Ev(2, 101, InOrder),
                    Ev(1, 2, Gap { missing: 1 }),
                    Ev(2, 101, Duplicate),
                    Ev(0, 7, InOrder),
                ],
                loss: 1,
                duplicates: 1,
                resumes: 0,
                resume_errors: 0,
            },
            Case {
                name: "exact resume continues across the reconnect",
                steps: vec![
                    Ev(0, 3, InOrder),
                    Ev(1, 8, InOrder),
                    Resume,
                    Ev(1, 9, InOrder),
                    Ev(0, 4, InOrder),
                    Ev(2, 50, InOrder), // unseen before the drop: baseline
                ],
                loss: 0,
                duplicates: 0,
                resumes: 1,
                resume_errors: 0,
            },
            Case {
                name: "resume that replays and one that skips",
                steps: vec![
                    Ev(0, 3, InOrder),
                    Ev(1, 8, InOrder),
                    Resume,
                    Ev(0, 3, Duplicate),
                    Ev(0, 4, InOrder),
                    Ev(1, 10, Gap { missing: 1 }),
                    Resume,
                    Ev(1, 11, InOrder),
                ],
                loss: 1,
                duplicates: 1,
                resumes: 2,
                resume_errors: 2,
            },
        ];
        for case in cases {
            let mut t = SeqTracker::new();
            for (i, step) in case.steps.iter().enumerate() {
                match *step {
                    Ev(p, seq, want) => {
                        assert_eq!(t.observe(p, seq), want, "{}: step {i}", case.name)
                    }
                    Resume => t.begin_resume(),
                }
            }
            assert_eq!(t.loss, case.loss, "{}: loss", case.name);
            assert_eq!(t.duplicates, case.duplicates, "{}: duplicates", case.name);
            assert_eq!(t.resumes, case.resumes, "{}: resumes", case.name);
            assert_eq!(
                t.resume_errors, case.resume_errors,
                "{}: resume errors",
                case.name
            );
        }
    }
}
