//! What the tables and goals derive from the lines: CPU per million
//! events, which D step is a server's best (under the goal's p99 bound or
//! the relaxed one), the step that stands for the extra clients, memory per
//! idle connection, ratios. Pure functions of the records; the wording
//! lives in `markdown` and `goals`.

use crate::input::{Idle, Record, Scenario, Server};

/// Server CPU seconds per million delivered events. The CPU was measured
/// over `window_s` (compare.sh reads it after the warm-up, over the
/// generator's window, timed by its own clock) while `events_per_s` is the
/// generator's delivery rate over its window, so the events over the CPU
/// window are estimated as rate × window. None when an input is missing or no events were delivered.
impl Record {
    /// The server's CPU seconds per million events delivered, over the
    /// run's CPU window.
    pub fn cpu_per_million(&self) -> Option<f64> {
        cpu_per_million(self.server_cpu_s, self.events_per_s(), self.cpu_window_s)
    }
}

pub fn cpu_per_million(
    cpu_s: Option<f64>,
    events_per_s: Option<f64>,
    window_s: Option<f64>,
) -> Option<f64> {
    let millions = events_per_s? * window_s? / 1e6;
    (millions > 0.0 && millions.is_finite()).then_some(cpu_s? / millions)
}

/// The p99 bound of scenario D's rate search.
pub const D_P99_LIMIT_MS: f64 = 100.0;
/// A looser bound, reported beside the goal's: on a host whose loopback
/// cost alone puts a pass over K sockets near 100 ms, the goal's bound can
/// leave every server without a result, and the servers are still compared
/// at the tightest bound they can all meet.
pub const D_P99_RELAXED_MS: f64 = 250.0;

/// Whether a D step counts: p99 under the limit and every event delivered
/// exactly once. A step missing any of these numbers does not count.
pub fn d_passes(r: &Record) -> bool {
    d_passes_under(r, D_P99_LIMIT_MS)
}

/// A D step must also keep up: deliver at least this share of what was
/// offered (K × rate). A server that falls behind its source stamps or
/// fetches records late, and its latency no longer shows the backlog (the
/// raw ceiling generates records in its send loop, so its stamps wait).
const D_KEEP_UP: f64 = 0.95;

fn keeps_up(r: &Record) -> bool {
    match (r.events_per_s(), r.connections, r.rate) {
        (Some(ev), Some(k), Some(rate)) => ev >= D_KEEP_UP * (k * rate) as f64,
        _ => false,
    }
}

pub fn d_passes_under(r: &Record, limit_ms: f64) -> bool {
    keeps_up(r)
        && r.p99().is_some_and(|p| p < limit_ms)
        && r.loss() == Some(0)
        && r.duplicates() == Some(0)
        && r.events_per_s().is_some()
}

/// A server's best D step: the passing step with the most delivered
/// events/s. A faster step that failed is not a result, only a bound.
pub fn best_d(records: &[Record], server: Server) -> Option<&Record> {
    best_d_under(records, server, D_P99_LIMIT_MS)
}

/// The D step that stands for "while D runs" for the extra clients: the
/// best one under the goal's bound, else under the relaxed one, else the
/// lowest rate tried.
pub fn extra_step(records: &[Record], server: Server) -> Option<&Record> {
    best_d(records, server)
        .or_else(|| best_d_under(records, server, D_P99_RELAXED_MS))
        .or_else(|| lines_of(records, Scenario::D, server).min_by_key(|r| r.rate))
        .filter(|r| r.extra().is_some())
}

pub fn best_d_under(records: &[Record], server: Server, limit_ms: f64) -> Option<&Record> {
    records
        .iter()
        .filter(|r| r.scenario == Scenario::D && r.server == server && d_passes_under(r, limit_ms))
        .max_by(|a, b| {
            let (x, y) = (
                a.events_per_s().unwrap_or(0.0),
                b.events_per_s().unwrap_or(0.0),
            );
            x.total_cmp(&y)
        })
}

/// The lines of one scenario and server, in file order.
pub fn lines_of(
    records: &[Record],
    scenario: Scenario,
    server: Server,
) -> impl Iterator<Item = &Record> {
    records
        .iter()
        .filter(move |r| r.scenario == scenario && r.server == server)
}

/// The line a single-value goal uses: the last one, as a rerun of a step
/// supersedes the earlier attempt.
pub fn last_of(records: &[Record], scenario: Scenario, server: Server) -> Option<&Record> {
    lines_of(records, scenario, server).last()
}

/// Resident memory each idle connection costs: (after − before) KiB spread
/// over the connections, in bytes.
pub fn idle_bytes_per_connection(idle: &Idle) -> Option<f64> {
    let conns = idle.connections.filter(|&c| c > 0)? as f64;
    Some((idle.rss_after_kb? - idle.rss_before_kb?) * 1024.0 / conns)
}

pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (b > 0.0).then_some(a / b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::fixtures::{d_search, parse};

    #[test]
    fn best_d_skips_a_faster_failing_step() {
        let input = d_search();
        let best = best_d(&input.records, Server::SseKafka).map(|r| r.rate);
        assert_eq!(best, Some(Some(200)));
        assert_eq!(
            best_d(&input.records, Server::Nchan).map(|r| r.rate),
            Some(Some(100))
        );
        assert!(best_d(&input.records, Server::Raw).is_none());
    }

    #[test]
    fn cpu_per_million_events() {
        // 100k ev/s over a 40 s CPU window = 4M events; 10 CPU s -> 2.5 per M.
        assert_eq!(
            cpu_per_million(Some(10.0), Some(100_000.0), Some(40.0)),
            Some(2.5)
        );
        assert_eq!(cpu_per_million(None, Some(100_000.0), Some(40.0)), None);
        assert_eq!(cpu_per_million(Some(10.0), None, Some(40.0)), None);
        assert_eq!(cpu_per_million(Some(10.0), Some(100_000.0), None), None);
        assert_eq!(cpu_per_million(Some(10.0), Some(0.0), Some(40.0)), None);
        let input = parse(
            r#"{"server":"nchan","scenario":"A","server_cpu_s":3.0,"cpu_window_s":30,"load":{"events_per_s":50000}}"#,
        );
        assert_eq!(input.records[0].cpu_per_million(), Some(2.0));
    }
}
