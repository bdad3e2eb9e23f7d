//! How far behind a catch-up reader may fall before its stream is ended:
//! the configured `slow_client.max_lag`, or the lag it started with if that
//! was larger (a client resuming from far back is served as long as it
//! does not fall further behind).

use crate::config::MaxLag;

/// Why a reader is a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Its request asked for a position (an id, `since`, `start:
    /// earliest`).
    Request,
    /// It was live and fell behind (its queue went over budget, or its
    /// shard missed batches).
    Demoted,
}

/// A reader's lag limit (see the module doc).
#[derive(Debug)]
pub struct LagBound {
    max: MaxLag,
    start: Option<u64>,
}

impl LagBound {
    pub fn new(max: MaxLag, origin: Origin) -> Self {
        Self {
            max,
            // A live stream that fell behind has no allowance of its own.
            start: match origin {
                Origin::Demoted => Some(0),
                Origin::Request => None,
            },
        }
    }

    /// Checks the current lag; returns the reason to end the stream, if
    /// any. `records` is the number of offsets between the position and
    /// the heads, `age_ms` the age of the oldest record just read.
    pub fn exceeded(&mut self, records: u64, age_ms: Option<u64>) -> Option<String> {
        match self.max {
            MaxLag::Records(max) => {
                let limit = max.max(*self.start.get_or_insert(records));
                (records > limit).then(|| {
                    format!("client fell {records} records behind (slow_client.max_lag is {limit}); reconnect to resume")
                })
            }
            MaxLag::Age(max) => {
                let age = age_ms?;
                let limit = (max.as_millis() as u64).max(*self.start.get_or_insert(age));
                (age > limit).then(|| {
                    format!("client fell {age} ms behind (slow_client.max_lag is {limit} ms); reconnect to resume")
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn lag_bound_allows_the_starting_lag() {
        let mut bound = LagBound::new(MaxLag::Records(100), Origin::Request);
        assert_eq!(bound.exceeded(50, None), None);
        assert_eq!(bound.exceeded(100, None), None);
        assert!(bound.exceeded(101, None).unwrap().contains("101 records"));
        // A resume that starts far behind may stay there, not fall further.
        let mut resume = LagBound::new(MaxLag::Records(100), Origin::Request);
        assert_eq!(resume.exceeded(5_000, None), None);
        assert_eq!(resume.exceeded(4_000, None), None);
        assert!(resume.exceeded(5_001, None).is_some());
        let mut age = LagBound::new(MaxLag::Age(Duration::from_secs(1)), Origin::Request);
        assert_eq!(age.exceeded(1 << 40, None), None, "no record read: no age");
        assert_eq!(age.exceeded(0, Some(10)), None);
        assert!(age.exceeded(0, Some(1_001)).is_some());
    }

    #[test]
    fn a_demoted_stream_has_no_allowance_of_its_own() {
        let mut bound = LagBound::new(MaxLag::Records(100), Origin::Demoted);
        assert_eq!(bound.exceeded(100, None), None);
        assert!(bound.exceeded(101, None).is_some());
    }
}
