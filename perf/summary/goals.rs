//! The goals of the performance issue, each checked against the run and
//! rendered as MET, MISSED or "not measured": D against nchan and the raw
//! ceiling, CPU per event against nchan, memory per idle connection,
//! exactly-once delivery, and the first byte of new clients during fan-out.
//! A goal is met only on measured numbers; one with nothing to judge is
//! "not measured". The section opens with issue 16's goals against the raw
//! ceiling (`ceiling_goals`), a table.

use crate::ceiling_goals;
use crate::input::{Record, Scenario, Server};
use crate::measures::{
    best_d, best_d_under, extra_step, idle_bytes_per_connection, last_of, lines_of, ratio,
    D_P99_LIMIT_MS, D_P99_RELAXED_MS,
};
use crate::text::{count, cpu, grouped, ms, thousands, times};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Met,
    Missed,
    NotMeasured,
}

struct Goal {
    status: Status,
    text: String,
}

impl Goal {
    fn new(status: Status, text: impl Into<String>) -> Self {
        Goal {
            status,
            text: text.into(),
        }
    }

    fn check(met: bool, text: impl Into<String>) -> Self {
        Goal::new(if met { Status::Met } else { Status::Missed }, text)
    }

    fn render(&self) -> String {
        let tag = match self.status {
            Status::Met => "**MET**",
            Status::Missed => "**MISSED**",
            Status::NotMeasured => "not measured",
        };
        format!("- {tag} — {}\n", self.text)
    }
}

pub fn section_goals(records: &[Record]) -> String {
    let goals = [
        goal_d_ratio(records, Server::Nchan, 1.5),
        goal_d_ratio(records, Server::Raw, 0.8),
        goal_cpu(records),
        goal_idle(records),
        goal_exactly_once(records),
        goal_first_byte(records),
    ];
    let mut out = String::from("## Goals\n\n");
    out.push_str(&ceiling_goals::section_markdown(records));
    out.push_str("\n### The performance issue's goals\n\n");
    for g in &goals {
        out.push_str(&g.render());
    }
    out
}

/// D: sse-kafka's best delivered events/s against another server's best.
fn goal_d_ratio(records: &[Record], other: Server, at_least: f64) -> Goal {
    let what = format!(
        "D: sse-kafka best ev/s ≥ {at_least} × {} best",
        other.label()
    );
    let ours = best_d(records, Server::SseKafka).and_then(Record::events_per_s);
    let theirs = best_d(records, other).and_then(Record::events_per_s);
    let tried = |s| lines_of(records, Scenario::D, s).next().is_some();
    match ratio(ours, theirs) {
        Some(q) => Goal::check(
            q >= at_least,
            format!(
                "{what}: {} vs {} ev/s, ratio {q:.3}×",
                grouped(ours),
                grouped(theirs),
            ),
        ),
        None if ours.is_none() && tried(Server::SseKafka) => Goal::new(
            Status::Missed,
            format!(
                "{what}: no sse-kafka step met p99 < {D_P99_LIMIT_MS:.0} ms{}; {}",
                if theirs.is_none() && tried(other) {
                    format!(" (nor did any {} step)", other.label())
                } else {
                    String::new()
                },
                relaxed_comparison(records, other)
            ),
        ),
        None => Goal::new(Status::NotMeasured, what),
    }
}

/// The D comparison at the relaxed bound, for a goal line.
fn relaxed_comparison(records: &[Record], other: Server) -> String {
    let at = |s| best_d_under(records, s, D_P99_RELAXED_MS);
    let ours = at(Server::SseKafka).and_then(Record::events_per_s);
    let theirs = at(other).and_then(Record::events_per_s);
    match (ours, theirs) {
        (Some(_), Some(_)) => format!(
            "at p99 < {D_P99_RELAXED_MS:.0} ms: {} vs {} ev/s, ratio {}",
            grouped(ours),
            grouped(theirs),
            times(ratio(ours, theirs))
        ),
        (Some(_), None) => format!(
            "at p99 < {D_P99_RELAXED_MS:.0} ms: sse-kafka {} ev/s, {} none (its lowest-rate step: p99 {} ms)",
            grouped(ours),
            other.label(),
            ms(lines_of(records, Scenario::D, other)
                .min_by_key(|r| r.rate)
                .and_then(Record::p99)),
        ),
        _ => format!("no comparison at p99 < {D_P99_RELAXED_MS:.0} ms either"),
    }
}

/// CPU per million events below nchan's in each of A, B and C. Met only
/// when all three were measured; one scenario over nchan's misses it.
fn goal_cpu(records: &[Record]) -> Goal {
    let mut parts = Vec::new();
    let (mut measured, mut below) = (0, 0);
    for scenario in [Scenario::A, Scenario::B, Scenario::C] {
        let cost = |s| last_of(records, scenario, s).and_then(Record::cpu_per_million);
        let (ours, theirs) = (cost(Server::SseKafka), cost(Server::Nchan));
        let label = scenario.label();
        match (ours, theirs) {
            (Some(a), Some(b)) => {
                measured += 1;
                below += usize::from(a < b);
                parts.push(format!("{label}: {a:.2} vs nchan {b:.2}"));
            }
            _ => parts.push(format!(
                "{label}: {} vs nchan {} (not measured)",
                cpu(ours),
                cpu(theirs)
            )),
        }
    }
    let text = format!(
        "server CPU s per M events below nchan's in A, B and C — {}",
        parts.join("; ")
    );
    let status = if below < measured {
        Status::Missed
    } else if measured == 3 {
        Status::Met
    } else {
        Status::NotMeasured
    };
    Goal::new(status, text)
}

const IDLE_LIMIT_BYTES: f64 = 2048.0;

fn goal_idle(records: &[Record]) -> Goal {
    let what = "E: sse-kafka bytes per idle connection < 2,048";
    let bytes = last_of(records, Scenario::E, Server::SseKafka)
        .and_then(|r| r.idle.as_ref())
        .and_then(idle_bytes_per_connection);
    match bytes {
        Some(b) => Goal::check(b < IDLE_LIMIT_BYTES, format!("{what}: {}", thousands(b))),
        None => Goal::new(Status::NotMeasured, what),
    }
}

/// Why a line breaks exactly-once delivery, or None when it does not.
/// Missing numbers count as a problem: an unmeasured line proves nothing.
fn delivery_problem(r: &Record) -> Option<String> {
    if r.load.is_none() {
        return Some("no load report".to_owned());
    }
    let mut why = Vec::new();
    if r.loss() != Some(0) {
        why.push(format!("loss {}", count(r.loss())));
    }
    if r.duplicates() != Some(0) {
        why.push(format!("duplicates {}", count(r.duplicates())));
    }
    if r.scenario == Scenario::Drop {
        let load = r.load.as_ref();
        let resume_errors = load.and_then(|l| l.resume_errors);
        let resumes = load.and_then(|l| l.resumes);
        if resume_errors != Some(0) {
            why.push(format!("resume errors {}", count(resume_errors)));
        }
        if resumes.is_none_or(|n| n == 0) {
            why.push(format!("resumes {}", count(resumes)));
        }
    }
    (!why.is_empty()).then(|| why.join(", "))
}

/// Zero loss and duplicates in every sse-kafka line that delivers events
/// (D only counts its best step: the failing steps of a search are expected
/// to lose events); "drop" must also have resumed, without resume errors.
fn goal_exactly_once(records: &[Record]) -> Goal {
    let what = "zero loss and zero duplicates in every sse-kafka line (A, B, C, D best, drop, extra, sweep); drop also resumes > 0 and no resume errors";
    let scenarios = [
        Scenario::A,
        Scenario::B,
        Scenario::C,
        Scenario::Drop,
        Scenario::Extra,
        Scenario::Sweep,
    ];
    let mut checked: Vec<&Record> = scenarios
        .iter()
        .flat_map(|&s| lines_of(records, s, Server::SseKafka))
        .collect();
    checked.extend(best_d(records, Server::SseKafka));
    if checked.is_empty() {
        return Goal::new(Status::NotMeasured, what);
    }
    let offenders: Vec<String> = checked
        .iter()
        .filter_map(|r| delivery_problem(r).map(|p| format!("{}: {p}", r.describe())))
        .collect();
    if offenders.is_empty() {
        Goal::new(
            Status::Met,
            format!("{what}: {} lines checked", checked.len()),
        )
    } else {
        Goal::new(
            Status::Missed,
            format!("{what}: offenders — {}", offenders.join("; ")),
        )
    }
}

const FIRST_BYTE_LIMIT_MS: f64 = 200.0;

fn goal_first_byte(records: &[Record]) -> Goal {
    let what = "extra: sse-kafka first byte p99 < 200 ms";
    let p99 = extra_step(records, Server::SseKafka)
        .and_then(Record::first_byte)
        .and_then(|f| f.p99);
    match p99 {
        Some(p) => Goal::check(p < FIRST_BYTE_LIMIT_MS, format!("{what}: {p:.1} ms")),
        None => Goal::new(Status::NotMeasured, what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::fixtures::{d_search, parse};

    #[test]
    fn d_ratio_uses_the_best_passing_steps() {
        let input = d_search();
        let goal = goal_d_ratio(&input.records, Server::Nchan, 1.5);
        assert_eq!(goal.status, Status::Met);
        assert!(goal.text.contains("1.979×"), "{}", goal.text);
        assert_eq!(
            goal_d_ratio(&input.records, Server::Raw, 0.8).status,
            Status::NotMeasured
        );
    }

    #[test]
    fn idle_bytes_and_missing_goals() {
        let input = parse(
            r#"{"server":"sse-kafka","scenario":"E","idle":{"connections":10000,"rss_before_kb":10000,"rss_after_kb":20000}}"#,
        );
        let goal = goal_idle(&input.records);
        assert_eq!(goal.status, Status::Met);
        assert!(goal.text.ends_with("1,024"), "{}", goal.text);
        assert_eq!(goal_first_byte(&input.records).status, Status::NotMeasured);
        assert_eq!(goal_cpu(&input.records).status, Status::NotMeasured);
        assert_eq!(
            goal_exactly_once(&input.records).status,
            Status::NotMeasured
        );
    }

    #[test]
    fn drop_needs_resumes() {
        let input = parse(
            r#"{"server":"sse-kafka","scenario":"drop","load":{"loss":0,"duplicates":0,"resumes":0,"resume_errors":0}}"#,
        );
        let goal = goal_exactly_once(&input.records);
        assert_eq!(goal.status, Status::Missed);
        assert!(goal.text.contains("resumes 0"), "{}", goal.text);
    }
}
