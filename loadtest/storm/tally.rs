//! The counters of one thread for one phase, summed over the threads for
//! the report; errors are counted, and only the first few are printed.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::report;

/// Only the first few errors per thread and phase are printed; all count.
const MAX_LOGGED_ERRORS: u64 = 5;

/// Counters of one thread for one phase.
pub(super) struct Tally {
    /// Failed attempts: connect errors, bad or late heads, broken streams.
    pub(super) errors: u64,
    /// Events without a load stamp: `event:` control events (reset, gap,
    /// error) or foreign data. A clean run has none.
    pub(super) bad_events: u64,
    /// Stamped events received.
    pub(super) events: u64,
    /// Connections that got a response head (phase 3).
    pub(super) resumed: u64,
    /// Connections that reached every head (phase 3).
    pub(super) completed: u64,
    /// Phase 3, per connection: first attempt to its first head (µs).
    pub(super) head: Histogram<u64>,
    /// Phase 3, per connection: first attempt to completion (µs).
    pub(super) catchup: Histogram<u64>,
    logged: u64,
}

impl Tally {
    pub(super) fn new() -> Self {
        Self {
            errors: 0,
            bad_events: 0,
            events: 0,
            resumed: 0,
            completed: 0,
            head: report::new_histogram(),
            catchup: report::new_histogram(),
            logged: 0,
        }
    }

    pub(super) fn sum<'a>(tallies: impl Iterator<Item = &'a Tally> + Clone) -> Tally {
        let mut total = Tally::new();
        for t in tallies.clone() {
            total.errors += t.errors;
            total.bad_events += t.bad_events;
            total.events += t.events;
            total.resumed += t.resumed;
            total.completed += t.completed;
        }
        total.head = report::merge(tallies.clone().map(|t| &t.head));
        total.catchup = report::merge(tallies.map(|t| &t.catchup));
        total
    }

    pub(super) fn log(&mut self, what: std::fmt::Arguments<'_>) {
        self.logged += 1;
        if self.logged <= MAX_LOGGED_ERRORS {
            eprintln!("storm: {what}");
        }
    }
}

pub(super) fn record_us(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(report::LOWEST_US, report::HIGHEST_US);
    // Clamped to the histogram's bounds: cannot fail.
    let _ = h.record(us);
}
