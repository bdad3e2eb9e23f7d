//! `RESULTS.md`: the run's meta data, then one section per scenario —
//! the standard scenarios, D's rate search (judged at the goal's p99 bound
//! and at the relaxed one), idle memory, new connections during fan-out,
//! the sweep with its chart — and the goals. Every row comes from the
//! lines as they are; a missing number shows as "—".

use crate::goals;
use crate::input::{Input, Record, Scenario, Server, SERVERS};
use crate::measures::{
    best_d_under, d_passes, d_passes_under, extra_step, idle_bytes_per_connection, lines_of, ratio,
    D_P99_LIMIT_MS, D_P99_RELAXED_MS,
};
use crate::text::{count, cpu, fixed, grouped, inline_code, ms, table, table_or_none, times, NONE};

/// The scenarios of the "Standard scenarios" table, in order.
const STANDARD: [Scenario; 5] = [
    Scenario::A,
    Scenario::B,
    Scenario::C,
    Scenario::Drop,
    Scenario::Extra,
];

pub fn render_markdown(input: &Input) -> String {
    let r = &input.records;
    [
        section_header(&input.meta),
        section_standard(r),
        section_d(r),
        section_idle(r),
        section_extra(r),
        section_sweep(r),
        goals::section_goals(r),
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
