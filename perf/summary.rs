//! Turns one measurement run (a JSON-lines file, one object per scenario
//! step and server) into `RESULTS.md` and the sweep chart `results.svg`.
//!
//! The run measures sse-kafka, nchan and the raw ceiling (a minimal program
//! writing one pre-encoded frame per socket) on the same machine, so the
//! interesting numbers are the within-run ratios; this program only reads
//! and formats, it measures nothing. The chart is written by hand so the
//! perf tooling needs no plotting dependency.
//!
//! `cargo run --release -p sse-kafka-perf --bin perf_summary -- perf/results/run.jsonl perf`

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

// ---------------------------------------------------------------------------
// Input model
// ---------------------------------------------------------------------------

/// The three servers of a run, in the order every table lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
enum Server {
    #[serde(rename = "sse-kafka")]
    SseKafka,
    #[serde(rename = "nchan")]
    Nchan,
    #[serde(rename = "raw")]
    Raw,
}

const SERVERS: [Server; 3] = [Server::SseKafka, Server::Nchan, Server::Raw];

impl Server {
    /// The name readers see: "raw" alone would read as "unprocessed data".
    fn label(self) -> &'static str {
        match self {
            Server::SseKafka => "sse-kafka",
            Server::Nchan => "nchan",
            Server::Raw => "raw ceiling",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Server::SseKafka => "#d62728",
            Server::Nchan => "#1f77b4",
            Server::Raw => "#7f7f7f",
        }
    }

    /// The ceiling is a reference, not a competitor: dashed so it reads as one.
    fn dashed(self) -> bool {
        self == Server::Raw
    }
}

/// What a line measured. Unknown names are an error rather than silently
/// dropped, so a typo in a run script cannot make a goal "not measured".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
enum Scenario {
    A,
    B,
    C,
    D,
    E,
    #[serde(rename = "sweep")]
    Sweep,
    #[serde(rename = "drop")]
    Drop,
    #[serde(rename = "extra")]
    Extra,
}

/// The scenarios of the "Standard scenarios" table, in order.
const STANDARD: [Scenario; 5] = [
    Scenario::A,
    Scenario::B,
    Scenario::C,
    Scenario::Drop,
    Scenario::Extra,
];

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Scenario::A => "A",
            Scenario::B => "B",
            Scenario::C => "C",
            Scenario::D => "D",
            Scenario::E => "E",
            Scenario::Sweep => "sweep",
            Scenario::Drop => "drop",
            Scenario::Extra => "extra",
        }
    }
}

/// One measurement line. Everything but `server` and `scenario` is optional
/// because a failed step still leaves a line (with `load: null`), and a
/// missing number must show as "—", not abort the whole summary.
#[derive(Debug, Deserialize)]
struct Record {
    server: Server,
    scenario: Scenario,
    connections: Option<u64>,
    rate: Option<u64>,
    server_cpu_s: Option<f64>,
    cpu_window_s: Option<f64>,
    load: Option<Load>,
    idle: Option<Idle>,
}

/// The load generator's report: only the fields this summary shows.
#[derive(Debug, Default, Deserialize)]
struct Load {
    events_per_s: Option<f64>,
    latency_ms: Option<Latency>,
    connect_ms: Option<Connect>,
    loss: Option<u64>,
    duplicates: Option<u64>,
    errors: Option<u64>,
    resumes: Option<u64>,
    resume_errors: Option<u64>,
    extra: Option<Extra>,
}

#[derive(Debug, Default, Deserialize)]
struct Latency {
    p50: Option<f64>,
    p99: Option<f64>,
    p999: Option<f64>,
    max: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct Connect {
    p99: Option<f64>,
}

/// Clients that connect while the fan-out is running (scenario "extra").
#[derive(Debug, Default, Deserialize)]
struct Extra {
    connections: Option<u64>,
    first_byte_ms: Option<FirstByte>,
    errors: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct FirstByte {
    p50: Option<f64>,
    p99: Option<f64>,
    max: Option<f64>,
}

/// Scenario E: memory of the server before and after opening idle connections.
#[derive(Debug, Default, Deserialize)]
struct Idle {
    connections: Option<u64>,
    rss_before_kb: Option<f64>,
    rss_after_kb: Option<f64>,
}

impl Record {
    fn events_per_s(&self) -> Option<f64> {
        self.load.as_ref()?.events_per_s
    }

    fn latency(&self) -> Option<&Latency> {
        self.load.as_ref()?.latency_ms.as_ref()
    }

    fn p99(&self) -> Option<f64> {
        self.latency()?.p99
    }

    fn loss(&self) -> Option<u64> {
        self.load.as_ref()?.loss
    }

    fn duplicates(&self) -> Option<u64> {
        self.load.as_ref()?.duplicates
    }

    fn extra(&self) -> Option<&Extra> {
        self.load.as_ref()?.extra.as_ref()
    }

    fn first_byte(&self) -> Option<&FirstByte> {
        self.extra()?.first_byte_ms.as_ref()
    }

    fn cpu_per_million(&self) -> Option<f64> {
        cpu_per_million(self.server_cpu_s, self.events_per_s(), self.cpu_window_s)
    }

    /// "A K=1,000 at 100 rec/s", to name a line in a goal's offender list.
    fn describe(&self) -> String {
        format!(
            "{} K={} at {} rec/s",
            self.scenario.label(),
            count(self.connections),
            count(self.rate)
        )
    }
}

/// A parsed input file: the run's `meta` key/values (in first-seen order)
/// and the measurement lines (in file order).
#[derive(Debug, Default)]
struct Input {
    meta: Vec<(String, String)>,
    records: Vec<Record>,
}

enum Line {
    Meta(Vec<(String, String)>),
    Record(Box<Record>),
}

/// Parses the whole file; `file` is only used to name the failing line.
fn parse_input(text: &str, file: &str) -> Result<Input> {
    let mut input = Input::default();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        let line = parse_line(trimmed).with_context(|| format!("{file}:{}", i + 1))?;
        match line {
            Line::Meta(pairs) => merge_meta(&mut input.meta, pairs),
            Line::Record(r) => input.records.push(*r),
        }
    }
    Ok(input)
}

/// One non-blank line: either `{"meta": {...}}` or a measurement.
fn parse_line(text: &str) -> Result<Line> {
    let value: serde_json::Value = serde_json::from_str(text).context("not valid JSON")?;
    if let Some(meta) = value.get("meta") {
        let Some(obj) = meta.as_object() else {
            bail!("\"meta\" must be an object");
        };
        let pairs = obj
            .iter()
            .map(|(k, v)| {
                let shown = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), shown)
            })
            .collect();
        return Ok(Line::Meta(pairs));
    }
    let record: Record = serde_json::from_value(value).context("not a measurement line")?;
    Ok(Line::Record(Box::new(record)))
}

/// Later meta lines override earlier keys (a run script may append the
/// commit after the fact) while keeping the first position.
fn merge_meta(into: &mut Vec<(String, String)>, pairs: Vec<(String, String)>) {
    for (k, v) in pairs {
        match into.iter_mut().find(|(old, _)| *old == k) {
            Some(slot) => slot.1 = v,
            None => into.push((k, v)),
        }
    }
}

// ---------------------------------------------------------------------------
// Computations
// ---------------------------------------------------------------------------

/// Server CPU seconds per million delivered events. The CPU was measured
/// over `window_s` (warm-up plus window) while `events_per_s` is the window's
/// delivery rate, so the events over the CPU window are estimated as
/// rate × window. None when an input is missing or no events were delivered.
fn cpu_per_million(
    cpu_s: Option<f64>,
    events_per_s: Option<f64>,
    window_s: Option<f64>,
) -> Option<f64> {
    let millions = events_per_s? * window_s? / 1e6;
    (millions > 0.0 && millions.is_finite()).then_some(cpu_s? / millions)
}

/// The p99 bound of scenario D's rate search.
const D_P99_LIMIT_MS: f64 = 100.0;
/// A looser bound, reported beside the goal's: on a host whose loopback
/// cost alone puts a pass over K sockets near 100 ms, the goal's bound can
/// leave every server without a result, and the servers are still compared
/// at the tightest bound they can all meet.
const D_P99_RELAXED_MS: f64 = 250.0;

/// Whether a D step counts: p99 under the limit and every event delivered
/// exactly once. A step missing any of these numbers does not count.
fn d_passes(r: &Record) -> bool {
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

fn d_passes_under(r: &Record, limit_ms: f64) -> bool {
    keeps_up(r)
        && r.p99().is_some_and(|p| p < limit_ms)
        && r.loss() == Some(0)
        && r.duplicates() == Some(0)
        && r.events_per_s().is_some()
}

/// A server's best D step: the passing step with the most delivered
/// events/s. A faster step that failed is not a result, only a bound.
fn best_d(records: &[Record], server: Server) -> Option<&Record> {
    best_d_under(records, server, D_P99_LIMIT_MS)
}

/// The D step that stands for "while D runs" for the extra clients: the
/// best one under the goal's bound, else under the relaxed one, else the
/// lowest rate tried.
fn extra_step(records: &[Record], server: Server) -> Option<&Record> {
    best_d(records, server)
        .or_else(|| best_d_under(records, server, D_P99_RELAXED_MS))
        .or_else(|| lines_of(records, Scenario::D, server).min_by_key(|r| r.rate))
        .filter(|r| r.extra().is_some())
}

fn best_d_under(records: &[Record], server: Server, limit_ms: f64) -> Option<&Record> {
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
fn lines_of(
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
fn last_of(records: &[Record], scenario: Scenario, server: Server) -> Option<&Record> {
    lines_of(records, scenario, server).last()
}

/// Resident memory each idle connection costs: (after − before) KiB spread
/// over the connections, in bytes.
fn idle_bytes_per_connection(idle: &Idle) -> Option<f64> {
    let conns = idle.connections.filter(|&c| c > 0)? as f64;
    Some((idle.rss_after_kb? - idle.rss_before_kb?) * 1024.0 / conns)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (b > 0.0).then_some(a / b)
}

// ---------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------

const NONE: &str = "—";

/// Inserts thousands separators into a run of ASCII digits.
fn group_digits(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number rounded to an integer with thousands separators: 199,876.
fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return NONE.to_owned();
    }
    let r = v.round();
    let digits = group_digits(&format!("{:.0}", r.abs()));
    if r < 0.0 {
        format!("-{digits}")
    } else {
        digits
    }
}

fn count(v: Option<u64>) -> String {
    v.map_or_else(|| NONE.to_owned(), |n| group_digits(&n.to_string()))
}

fn grouped(v: Option<f64>) -> String {
    v.map_or_else(|| NONE.to_owned(), thousands)
}

fn fixed(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => NONE.to_owned(),
    }
}

fn ms(v: Option<f64>) -> String {
    fixed(v, 1)
}

fn cpu(v: Option<f64>) -> String {
    fixed(v, 2)
}

fn times(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map_or_else(|| NONE.to_owned(), |x| format!("{x:.2}×"))
}

/// A Markdown table; the first `text_cols` columns are left-aligned, the
/// rest (numbers) right-aligned so digits line up in the rendered page.
/// The table, or "_Not measured._" when there are no rows.
fn table_or_none(headers: &[&str], text_cols: usize, rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        "_Not measured._\n".to_owned()
    } else {
        table(headers, text_cols, rows)
    }
}

fn table(headers: &[&str], text_cols: usize, rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|", headers.join(" | "));
    for i in 0..headers.len() {
        out.push_str(if i < text_cols { " --- |" } else { " ---: |" });
    }
    out.push('\n');
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// Inline code that survives backticks inside the text (a shell command may
/// contain them): the fence is one backtick longer than the longest run.
fn inline_code(text: &str) -> String {
    let longest_run = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run + 1);
    format!("{fence} {text} {fence}")
}

// ---------------------------------------------------------------------------
// RESULTS.md
// ---------------------------------------------------------------------------

fn render_markdown(input: &Input) -> String {
    let r = &input.records;
    [
        section_header(&input.meta),
        section_standard(r),
        section_d(r),
        section_idle(r),
        section_extra(r),
        section_sweep(r),
        section_goals(r),
    ]
    .join("\n")
}

/// The meta keys a run writes, in reading order; JSON objects arrive with
/// their keys sorted, so the order is imposed here. Other keys follow.
const META_ORDER: [&str; 5] = ["date", "kernel", "cpu", "commit", "command"];

fn ordered_meta(meta: &[(String, String)]) -> Vec<&(String, String)> {
    let rank = |k: &str| {
        META_ORDER
            .iter()
            .position(|m| *m == k)
            .unwrap_or(META_ORDER.len())
    };
    let mut out: Vec<&(String, String)> = meta.iter().collect();
    out.sort_by_key(|(k, _)| rank(k));
    out
}

fn section_header(meta: &[(String, String)]) -> String {
    let mut out = String::from("# sse-kafka performance results\n\n");
    for (k, v) in ordered_meta(meta) {
        if k == "command" {
            out.push_str(&format!("- **{k}:** {}\n", inline_code(v)));
        } else {
            out.push_str(&format!("- **{k}:** {v}\n"));
        }
    }
    if !meta.is_empty() {
        out.push('\n');
    }
    out.push_str(
        "All three servers — sse-kafka, nchan and the raw ceiling (a minimal \
         program writing one pre-encoded frame per socket, the least work any SSE \
         server can do per event) — were measured in the same run on the same \
         machine, with the server pinned to CPU 0 and the load generator (with \
         the record source: the Kafka broker and producer, or nchan's HTTP \
         publisher) on CPU 1. Ratios between servers are within-run comparisons; \
         absolute numbers depend on this machine and kernel. *Server CPU s* is CPU \
         0's busy time (user, system, irq and softirq) over the measurement \
         window: on loopback much of a send's cost is the receive path, run in \
         softirq context that per-process CPU times do not always include.\n",
    );
    out
}

fn section_standard(records: &[Record]) -> String {
    let headers = [
        "Scenario",
        "Server",
        "K",
        "rec/s",
        "delivered ev/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "connect p99 ms",
        "loss",
        "dup",
        "errors",
        "server CPU s",
        "CPU s per M events",
    ];
    let mut rows = Vec::new();
    for scenario in STANDARD {
        for server in SERVERS {
            rows.extend(lines_of(records, scenario, server).map(standard_row));
        }
    }
    let mut out = String::from("## Standard scenarios\n\n");
    if rows.is_empty() {
        out.push_str("_No measurements._\n");
    } else {
        out.push_str(&table(&headers, 2, &rows));
    }
    out
}

fn standard_row(r: &Record) -> Vec<String> {
    let load = r.load.as_ref();
    let lat = r.latency();
    vec![
        r.scenario.label().to_owned(),
        r.server.label().to_owned(),
        count(r.connections),
        count(r.rate),
        grouped(r.events_per_s()),
        ms(lat.and_then(|l| l.p50)),
        ms(lat.and_then(|l| l.p99)),
        ms(lat.and_then(|l| l.p999)),
        ms(lat.and_then(|l| l.max)),
        ms(load.and_then(|l| l.connect_ms.as_ref()).and_then(|c| c.p99)),
        count(r.loss()),
        count(r.duplicates()),
        count(load.and_then(|l| l.errors)),
        cpu(r.server_cpu_s),
        cpu(r.cpu_per_million()),
    ]
}

fn section_d(records: &[Record]) -> String {
    let mut out =
        String::from("## D: highest delivered events/s at K=10,000 with p99 < 100 ms\n\n");
    let steps: Vec<&Record> = SERVERS
        .iter()
        .flat_map(|&s| {
            let mut v: Vec<&Record> = lines_of(records, Scenario::D, s).collect();
            v.sort_by_key(|r| r.rate);
            v
        })
        .collect();
    if steps.is_empty() {
        out.push_str("_Not measured._\n");
        return out;
    }
    out.push_str(
        "Best = the step with the most delivered events/s whose p99 is under \
         100 ms with zero loss and zero duplicates, delivering at least 95% of \
         the offered K × rate (a server that falls behind its source is not \
         keeping that rate, whatever its latency says).\n\n",
    );
    out.push_str(&d_best_table(records, D_P99_LIMIT_MS));
    out.push_str(&format!(
        "\nThe same search judged at p99 < {D_P99_RELAXED_MS:.0} ms:\n\n"
    ));
    out.push_str(&d_best_table(records, D_P99_RELAXED_MS));
    out.push_str("\nAll D steps:\n\n");
    let step_rows: Vec<Vec<String>> = steps
        .iter()
        .map(|r| {
            vec![
                r.server.label().to_owned(),
                count(r.rate),
                grouped(r.events_per_s()),
                ms(r.latency().and_then(|l| l.p50)),
                ms(r.p99()),
                count(r.loss()),
                count(r.duplicates()),
                ms(r.first_byte().and_then(|f| f.p99)),
                if d_passes(r) {
                    "pass".to_owned()
                } else if d_passes_under(r, D_P99_RELAXED_MS) {
                    format!("pass at {D_P99_RELAXED_MS:.0} ms only")
                } else {
                    "fail".to_owned()
                },
            ]
        })
        .collect();
    let headers = [
        "Server",
        "rec/s",
        "ev/s",
        "p50 ms",
        "p99 ms",
        "loss",
        "dup",
        "extra first byte p99 ms",
        "result",
    ];
    out.push_str(&table(&headers, 1, &step_rows));
    out
}

/// The best D step of each server under `limit_ms`, with ratios.
fn d_best_table(records: &[Record], limit_ms: f64) -> String {
    let nchan = best_d_under(records, Server::Nchan, limit_ms).and_then(Record::events_per_s);
    let raw = best_d_under(records, Server::Raw, limit_ms).and_then(Record::events_per_s);
    let best_rows: Vec<Vec<String>> = SERVERS
        .iter()
        .filter(|&&s| lines_of(records, Scenario::D, s).next().is_some())
        .map(|&s| match best_d_under(records, s, limit_ms) {
            Some(b) => vec![
                s.label().to_owned(),
                count(b.rate),
                grouped(b.events_per_s()),
                ms(b.p99()),
                cpu(b.cpu_per_million()),
                times(ratio(b.events_per_s(), nchan)),
                times(ratio(b.events_per_s(), raw)),
            ],
            None => {
                let mut row = vec![s.label().to_owned(), "no step passed".to_owned()];
                row.extend(std::iter::repeat_n(NONE.to_owned(), 5));
                row
            }
        })
        .collect();
    let headers = [
        "Server",
        "best rec/s",
        "delivered ev/s",
        "p99 ms",
        "server CPU s per M events",
        "ratio to nchan",
        "ratio to raw ceiling",
    ];
    table(&headers, 1, &best_rows)
}

fn section_idle(records: &[Record]) -> String {
    let mut out = String::from("## E: idle connections\n\n");
    let rows: Vec<Vec<String>> = SERVERS
        .iter()
        .flat_map(|&s| lines_of(records, Scenario::E, s))
        .map(|r| {
            let idle = r.idle.as_ref();
            let mb = |kb: Option<f64>| fixed(kb.map(|k| k / 1024.0), 1);
            vec![
                r.server.label().to_owned(),
                count(idle.and_then(|i| i.connections)),
                mb(idle.and_then(|i| i.rss_before_kb)),
                mb(idle.and_then(|i| i.rss_after_kb)),
                grouped(idle.and_then(idle_bytes_per_connection)),
            ]
        })
        .collect();
    let headers = [
        "Server",
        "connections",
        "RSS before MB",
        "RSS after MB",
        "bytes per connection",
    ];
    out.push_str(&table_or_none(&headers, 1, &rows));
    out
}

fn section_extra(records: &[Record]) -> String {
    let mut out = String::from(
        "## New connections during fan-out\n\n\
         1,000 extra clients connect, evenly over the middle half of a D step's \
         window, and time the first byte of the answer. The step is the \
         server's best D step (p99 < 100 ms, else < 250 ms, else its lowest rate).\n\n",
    );
    let rows: Vec<Vec<String>> = SERVERS
        .iter()
        .filter_map(|&s| extra_step(records, s))
        .map(|r| {
            let extra = r.extra();
            let fb = r.first_byte();
            vec![
                r.server.label().to_owned(),
                count(r.rate),
                count(extra.and_then(|e| e.connections)),
                ms(fb.and_then(|f| f.p50)),
                ms(fb.and_then(|f| f.p99)),
                ms(fb.and_then(|f| f.max)),
                count(extra.and_then(|e| e.errors)),
            ]
        })
        .collect();
    let headers = [
        "Server",
        "during D at rec/s",
        "extra clients",
        "first byte p50 ms",
        "first byte p99 ms",
        "first byte max ms",
        "errors",
    ];
    out.push_str(&table_or_none(&headers, 1, &rows));
    out
}

fn section_sweep(records: &[Record]) -> String {
    let mut out = String::from("## Sweep: delivered events/s and p99 against K\n\n");
    let rows: Vec<Vec<String>> = SERVERS
        .iter()
        .flat_map(|&s| {
            let mut v: Vec<&Record> = lines_of(records, Scenario::Sweep, s).collect();
            v.sort_by_key(|r| r.connections);
            v
        })
        .map(|r| {
            vec![
                r.server.label().to_owned(),
                count(r.connections),
                count(r.rate),
                grouped(r.events_per_s()),
                ms(r.p99()),
            ]
        })
        .collect();
    out.push_str(&table_or_none(
        &["Server", "K", "rec/s", "ev/s", "p99 ms"],
        1,
        &rows,
    ));
    out.push('\n');
    out.push_str("![Sweep: delivered events/s and p99 latency against K](results.svg)\n");
    out
}

// ---------------------------------------------------------------------------
// Goals
// ---------------------------------------------------------------------------

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

fn section_goals(records: &[Record]) -> String {
    let goals = [
        goal_d_ratio(records, Server::Nchan, 1.5),
        goal_d_ratio(records, Server::Raw, 0.8),
        goal_cpu(records),
        goal_idle(records),
        goal_exactly_once(records),
        goal_first_byte(records),
    ];
    let mut out = String::from("## Goals\n\n");
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

// ---------------------------------------------------------------------------
// results.svg
// ---------------------------------------------------------------------------

/// Tick values 1, 2, 2.5 or 5 × 10^n apart covering [lo, hi] with about `target`
/// ticks, so axis labels read as round numbers. The first and last tick
/// bracket the data and become the axis ends.
fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() {
        return vec![0.0, 1.0];
    }
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else if lo == 0.0 {
        (0.0, 1.0)
    } else {
        // One value: open a window around it.
        (lo - lo.abs() * 0.5, hi + hi.abs() * 0.5)
    };
    let raw = (hi - lo) / target.saturating_sub(1).max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 2.5 {
        2.5
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    let step = nice * mag;
    let first = (lo / step).floor();
    let last = (hi / step).ceil();
    let n = ((last - first) as usize).min(100);
    (0..=n).map(|i| (first + i as f64) * step).collect()
}

/// The nearest 1, 2 or 5 × 10^n at or beyond `v` (above when `up`), so a
/// log axis ends just past the data instead of a whole decade away.
fn log_bound(v: f64, up: bool) -> f64 {
    let base = 10f64.powf(v.log10().floor());
    let steps = [1.0, 2.0, 5.0, 10.0].map(|m| m * base);
    let pick = if up {
        steps.iter().find(|&&c| c >= v * (1.0 - 1e-9))
    } else {
        steps.iter().rev().find(|&&c| c <= v * (1.0 + 1e-9))
    };
    pick.copied().unwrap_or(base)
}

/// Log-axis ticks: both ends and every decade between, plus 2× and 5× when
/// the range is at most two decades so a short axis still has labels.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (e0, e1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let fine = e1 - e0 <= 2;
    let mut ticks = vec![lo, hi];
    for e in e0..=e1.min(e0 + 30) {
        let base = 10f64.powi(e);
        for m in [1.0, 2.0, 5.0] {
            let v = base * m;
            if (m == 1.0 || fine) && v > lo * 1.001 && v < hi * 0.999 {
                ticks.push(v);
            }
        }
    }
    ticks.sort_by(f64::total_cmp);
    ticks
}

/// A value range mapped onto pixels, linear or logarithmic.
#[derive(Debug)]
struct Axis {
    log: bool,
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

/// Spans wider than this ratio go on a log scale; below it a linear scale
/// is easier to read.
const LOG_RATIO: f64 = 50.0;

impl Axis {
    /// An axis for `values`: from zero when `from_zero`, log only when
    /// `may_log` and the positive values span more than `LOG_RATIO`.
    fn fit(values: &[f64], from_zero: bool, may_log: bool) -> Axis {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if may_log && min > 0.0 && max / min > LOG_RATIO {
            let (lo, hi) = (log_bound(min, false), log_bound(max, true));
            return Axis {
                log: true,
                lo,
                hi,
                ticks: log_ticks(lo, hi),
            };
        }
        let start = if from_zero { 0.0 } else { min };
        let ticks = nice_ticks(start, max, 5);
        Axis {
            log: false,
            lo: ticks.first().copied().unwrap_or(0.0),
            hi: ticks.last().copied().unwrap_or(1.0),
            ticks,
        }
    }

    /// Where `v` falls between pixel `p0` (at lo) and `p1` (at hi).
    fn map(&self, v: f64, p0: f64, p1: f64) -> f64 {
        let t = if self.log {
            let v = v.max(self.lo);
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        let t = if t.is_finite() { t } else { 0.0 };
        p0 + t * (p1 - p0)
    }
}

/// A tick label: 2M, 250k, 1.5, 0.25.
fn tick_label(v: f64) -> String {
    let trim = |x: f64| {
        let s = format!("{x:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".to_owned()
        } else {
            s.to_owned()
        }
    };
    if v.abs() >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v.abs() >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

const SVG_W: f64 = 900.0;
const SVG_H: f64 = 420.0;
const PANEL_W: f64 = SVG_W / 2.0;
const PLOT_TOP: f64 = 50.0;
const PLOT_BOTTOM: f64 = 330.0;
const PLOT_LEFT: f64 = 75.0;
const PLOT_RIGHT: f64 = 20.0;

/// One server's points for one panel, sorted by K.
struct Series {
    server: Server,
    points: Vec<(f64, f64)>,
}

/// The sweep's (K, value) points per server, skipping lines without them.
fn sweep_series(records: &[Record], value: fn(&Record) -> Option<f64>) -> Vec<Series> {
    SERVERS
        .iter()
        .map(|&server| {
            let mut points: Vec<(f64, f64)> = lines_of(records, Scenario::Sweep, server)
                .filter_map(|r| Some((r.connections? as f64, value(r)?)))
                .filter(|(k, v)| k.is_finite() && v.is_finite())
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series { server, points }
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

fn render_svg(records: &[Record]) -> String {
    let rate = sweep_series(records, Record::events_per_s);
    let p99 = sweep_series(records, Record::p99);
    let ks: Vec<f64> = rate
        .iter()
        .chain(&p99)
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    let x = Axis::fit(&ks, false, true);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{SVG_W}\" height=\"{SVG_H}\" \
         viewBox=\"0 0 {SVG_W} {SVG_H}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n\
         <rect width=\"{SVG_W}\" height=\"{SVG_H}\" fill=\"white\"/>\n"
    );
    out.push_str(&panel(
        0,
        "delivered events/s",
        "events/s",
        &x,
        &rate,
        false,
    ));
    out.push_str(&panel(1, "p99 latency ms", "p99 ms", &x, &p99, true));
    let mut shown: Vec<Server> = Vec::new();
    for s in rate.iter().chain(&p99) {
        if !shown.contains(&s.server) {
            shown.push(s.server);
        }
    }
    shown.sort_by_key(|s| SERVERS.iter().position(|x| x == s));
    out.push_str(&legend(&shown));
    out.push_str("</svg>\n");
    out
}

/// One panel: frame, grid, ticks, titles and the series (or "no data").
fn panel(
    index: usize,
    title: &str,
    y_title: &str,
    x: &Axis,
    series: &[Series],
    may_log: bool,
) -> String {
    let left = index as f64 * PANEL_W + PLOT_LEFT;
    let right = (index as f64 + 1.0) * PANEL_W - PLOT_RIGHT;
    let mid = (left + right) / 2.0;
    let mut out = format!(
        "<g>\n<text x=\"{mid}\" y=\"28\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{title}</text>\n"
    );
    out.push_str(&format!(
        "<rect x=\"{left}\" y=\"{PLOT_TOP}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n",
        right - left,
        PLOT_BOTTOM - PLOT_TOP
    ));
    if series.is_empty() {
        out.push_str(&format!(
            "<text x=\"{mid}\" y=\"{}\" text-anchor=\"middle\" font-size=\"16\" fill=\"#888\">no data</text>\n</g>\n",
            (PLOT_TOP + PLOT_BOTTOM) / 2.0
        ));
        return out;
    }
    let values: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .collect();
    let y = Axis::fit(&values, true, may_log);
    out.push_str(&x_ticks(x, left, right));
    out.push_str(&y_ticks(&y, left, right));
    let y_title_x = left - 55.0;
    let y_mid = (PLOT_TOP + PLOT_BOTTOM) / 2.0;
    let scale = if y.log { " (log scale)" } else { "" };
    out.push_str(&format!(
        "<text x=\"{y_title_x}\" y=\"{y_mid}\" text-anchor=\"middle\" transform=\"rotate(-90 {y_title_x} {y_mid})\">{y_title}{scale}</text>\n"
    ));
    let x_scale = if x.log { " (log scale)" } else { "" };
    out.push_str(&format!(
        "<text x=\"{mid}\" y=\"{}\" text-anchor=\"middle\">connections K{x_scale}</text>\n",
        PLOT_BOTTOM + 38.0
    ));
    for s in series {
        out.push_str(&polyline(s, x, &y, left, right));
    }
    out.push_str("</g>\n");
    out
}

fn x_ticks(x: &Axis, left: f64, right: f64) -> String {
    let mut out = String::new();
    for &t in &x.ticks {
        let px = x.map(t, left, right);
        out.push_str(&format!(
            "<line x1=\"{px:.1}\" y1=\"{PLOT_BOTTOM}\" x2=\"{px:.1}\" y2=\"{}\" stroke=\"#333\"/>\n\
             <text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            PLOT_BOTTOM + 5.0,
            PLOT_BOTTOM + 18.0,
            tick_label(t)
        ));
    }
    out
}

fn y_ticks(y: &Axis, left: f64, right: f64) -> String {
    let mut out = String::new();
    for &t in &y.ticks {
        let py = y.map(t, PLOT_BOTTOM, PLOT_TOP);
        out.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{py:.1}\" x2=\"{right}\" y2=\"{py:.1}\" stroke=\"#e5e5e5\"/>\n\
             <line x1=\"{}\" y1=\"{py:.1}\" x2=\"{left}\" y2=\"{py:.1}\" stroke=\"#333\"/>\n\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            left - 5.0,
            left - 8.0,
            py + 4.0,
            tick_label(t)
        ));
    }
    out
}

fn polyline(s: &Series, x: &Axis, y: &Axis, left: f64, right: f64) -> String {
    let colour = s.server.colour();
    let dash = if s.server.dashed() {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    };
    let pixels: Vec<(f64, f64)> = s
        .points
        .iter()
        .map(|&(k, v)| (x.map(k, left, right), y.map(v, PLOT_BOTTOM, PLOT_TOP)))
        .collect();
    let coords: Vec<String> = pixels
        .iter()
        .map(|(a, b)| format!("{a:.1},{b:.1}"))
        .collect();
    let mut out = format!(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>\n",
        coords.join(" ")
    );
    for ((px, py), (k, v)) in pixels.iter().zip(&s.points) {
        out.push_str(&format!(
            "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3.5\" fill=\"{colour}\"><title>{} K={}: {}</title></circle>\n",
            s.server.label(),
            thousands(*k),
            tick_label(*v)
        ));
    }
    out
}

/// One legend row under both panels, centred.
fn legend(servers: &[Server]) -> String {
    const ITEM_W: f64 = 140.0;
    let y = SVG_H - 18.0;
    let start = (SVG_W - ITEM_W * servers.len() as f64) / 2.0;
    let mut out = String::new();
    for (i, s) in servers.iter().enumerate() {
        let x0 = start + i as f64 * ITEM_W;
        let dash = if s.dashed() {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        out.push_str(&format!(
            "<line x1=\"{x0}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{c}\" stroke-width=\"2\"{dash}/>\n\
             <circle cx=\"{}\" cy=\"{y}\" r=\"3.5\" fill=\"{c}\"/>\n\
             <text x=\"{}\" y=\"{}\">{}</text>\n",
            x0 + 30.0,
            x0 + 15.0,
            x0 + 38.0,
            y + 4.0,
            s.label(),
            c = s.colour()
        ));
    }
    out
}

// ---------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------

fn run(input_path: &str, out_dir: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(input_path).with_context(|| format!("reading {input_path}"))?;
    let input = parse_input(&text, input_path)?;
    let dir = Path::new(out_dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let outputs = BTreeMap::from([
        ("RESULTS.md", render_markdown(&input)),
        ("results.svg", render_svg(&input.records)),
    ]);
    for (name, body) in outputs {
        let path = dir.join(name);
        std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, out_dir] = args.as_slice() else {
        eprintln!("usage: perf_summary <results.jsonl> <out-dir>");
        return ExitCode::from(2);
    };
    match run(input, out_dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("perf_summary: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Input {
        match parse_input(text, "t.jsonl") {
            Ok(i) => i,
            Err(e) => panic!("parse failed: {e:#}"),
        }
    }

    fn d_line(server: &str, rate: u64, ev: f64, p99: f64, loss: u64) -> String {
        format!(
            r#"{{"server":"{server}","scenario":"D","connections":10000,"rate":{rate},"seconds":30,
            "load":{{"events_per_s":{ev},"latency_ms":{{"p50":1,"p90":2,"p99":{p99},"p999":3,"max":4}},
            "loss":{loss},"duplicates":0,"errors":0}}}}"#
        )
        .replace('\n', " ")
    }

    #[test]
    fn best_d_skips_a_faster_failing_step() {
        let text = [
            d_line("sse-kafka", 100, 1_000_000.0, 20.0, 0),
            d_line("sse-kafka", 200, 1_900_000.0, 80.0, 0),
            d_line("sse-kafka", 300, 2_500_000.0, 150.0, 0), // p99 too high
            d_line("sse-kafka", 400, 2_600_000.0, 50.0, 7),  // loses events
            d_line("sse-kafka", 500, 2_700_000.0, 50.0, 0),  // 54% of 10,000 × 500: behind
            d_line("nchan", 100, 960_000.0, 99.0, 0),        // 96%: keeps up
            d_line("raw", 100, 940_000.0, 50.0, 0),          // 94%: behind
        ]
        .join("\n");
        let input = parse(&text);
        let best = best_d(&input.records, Server::SseKafka).map(|r| r.rate);
        assert_eq!(best, Some(Some(200)));
        assert_eq!(
            best_d(&input.records, Server::Nchan).map(|r| r.rate),
            Some(Some(100))
        );
        assert!(best_d(&input.records, Server::Raw).is_none());
        let goal = goal_d_ratio(&input.records, Server::Nchan, 1.5);
        assert_eq!(goal.status, Status::Met);
        assert!(goal.text.contains("1.979×"), "{}", goal.text);
        assert_eq!(
            goal_d_ratio(&input.records, Server::Raw, 0.8).status,
            Status::NotMeasured
        );
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

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(199_876.4), "199,876");
        assert_eq!(thousands(999.6), "1,000");
        assert_eq!(thousands(12.0), "12");
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(-1_234_567.0), "-1,234,567");
        assert_eq!(thousands(f64::NAN), NONE);
        assert_eq!(count(Some(10_000)), "10,000");
        assert_eq!(count(None), NONE);
    }

    #[test]
    fn nice_ticks_are_round() {
        assert_eq!(
            nice_ticks(0.0, 1_870_000.0, 5),
            vec![0.0, 500_000.0, 1_000_000.0, 1_500_000.0, 2_000_000.0]
        );
        assert_eq!(nice_ticks(0.0, 87.0, 5), vec![0.0, 25.0, 50.0, 75.0, 100.0]);
        assert_eq!(nice_ticks(0.0, 120.0, 5), vec![0.0, 50.0, 100.0, 150.0]);
        assert_eq!(nice_ticks(0.0, 0.0, 5), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        let t = nice_ticks(1000.0, 20_000.0, 5);
        assert_eq!(t.first(), Some(&0.0));
        assert_eq!(t.last(), Some(&20_000.0));
        let t = nice_ticks(0.0, 0.7, 5);
        assert!(
            t.iter()
                .all(|v| (v * 10.0 - (v * 10.0).round()).abs() < 1e-9),
            "{t:?}"
        );
        assert_eq!(log_ticks(1.0, 1000.0), vec![1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(
            log_ticks(1.0, 100.0),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
        assert_eq!(tick_label(2_000_000.0), "2M");
        assert_eq!(tick_label(250_000.0), "250k");
        assert_eq!(tick_label(0.25), "0.25");
    }

    #[test]
    fn bad_line_names_file_and_line() {
        let text = "{\"meta\":{\"date\":\"today\"}}\n\n{\"server\":\"nchan\",\"scenario\":\"A\"}\n{not json\n";
        let err = match parse_input(text, "run.jsonl") {
            Ok(_) => panic!("bad line accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.starts_with("run.jsonl:4:"), "{err}");
        let err = match parse_input("{\"server\":\"apache\",\"scenario\":\"A\"}", "run.jsonl") {
            Ok(_) => panic!("unknown server accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.starts_with("run.jsonl:1:"), "{err}");
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

    #[test]
    fn svg_without_sweep_says_no_data() {
        let svg = render_svg(&[]);
        assert_eq!(svg.matches("no data").count(), 2);
    }
}
