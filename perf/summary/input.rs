//! Reading a run: the JSON-lines file `compare.sh` writes, one `{"meta":
//! {...}}` line for the run and one object per scenario step and server.
//! Only the fields the summary shows are modelled, each optional, because
//! a failed step still leaves a line; unknown servers or scenarios are
//! errors that name the file and line.

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::text::count;

/// The three servers of a run, in the order every table lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Server {
    #[serde(rename = "sse-kafka")]
    SseKafka,
    #[serde(rename = "nchan")]
    Nchan,
    #[serde(rename = "raw")]
    Raw,
}

pub const SERVERS: [Server; 3] = [Server::SseKafka, Server::Nchan, Server::Raw];

impl Server {
    /// The name readers see: "raw" alone would read as "unprocessed data".
    pub fn label(self) -> &'static str {
        match self {
            Server::SseKafka => "sse-kafka",
            Server::Nchan => "nchan",
            Server::Raw => "raw ceiling",
        }
    }
}

/// What a line measured. Unknown names are an error rather than silently
/// dropped, so a typo in a run script cannot make a goal "not measured".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Scenario {
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

impl Scenario {
    pub fn label(self) -> &'static str {
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
pub struct Record {
    pub server: Server,
    pub scenario: Scenario,
    pub connections: Option<u64>,
    pub rate: Option<u64>,
    pub server_cpu_s: Option<f64>,
    pub cpu_window_s: Option<f64>,
    pub load: Option<Load>,
    pub idle: Option<Idle>,
}

/// The load generator's report: only the fields this summary shows.
#[derive(Debug, Default, Deserialize)]
pub struct Load {
    pub events_per_s: Option<f64>,
    pub latency_ms: Option<Latency>,
    pub connect_ms: Option<Connect>,
    pub loss: Option<u64>,
    pub duplicates: Option<u64>,
    pub errors: Option<u64>,
    pub resumes: Option<u64>,
    pub resume_errors: Option<u64>,
    pub extra: Option<Extra>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Connect {
    pub p99: Option<f64>,
}

/// Clients that connect while the fan-out is running (scenario "extra").
#[derive(Debug, Default, Deserialize)]
pub struct Extra {
    pub connections: Option<u64>,
    pub first_byte_ms: Option<FirstByte>,
    pub errors: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct FirstByte {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// Scenario E: memory of the server before and after opening idle connections.
#[derive(Debug, Default, Deserialize)]
pub struct Idle {
    pub connections: Option<u64>,
    pub rss_before_kb: Option<f64>,
    pub rss_after_kb: Option<f64>,
}

impl Record {
    pub fn events_per_s(&self) -> Option<f64> {
        self.load.as_ref()?.events_per_s
    }

    pub fn latency(&self) -> Option<&Latency> {
        self.load.as_ref()?.latency_ms.as_ref()
    }

    pub fn p99(&self) -> Option<f64> {
        self.latency()?.p99
    }

    pub fn loss(&self) -> Option<u64> {
        self.load.as_ref()?.loss
    }

    pub fn duplicates(&self) -> Option<u64> {
        self.load.as_ref()?.duplicates
    }

    pub fn extra(&self) -> Option<&Extra> {
        self.load.as_ref()?.extra.as_ref()
    }

    pub fn first_byte(&self) -> Option<&FirstByte> {
        self.extra()?.first_byte_ms.as_ref()
    }

    /// "A K=1,000 at 100 rec/s", to name a line in a goal's offender list.
    pub fn describe(&self) -> String {
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
pub struct Input {
    pub meta: Vec<(String, String)>,
    pub records: Vec<Record>,
}

enum Line {
    Meta(Vec<(String, String)>),
    Record(Box<Record>),
}

/// Parses the whole file; `file` is only used to name the failing line.
pub fn parse_input(text: &str, file: &str) -> Result<Input> {
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

/// Inputs the other modules' tests build on.
#[cfg(test)]
pub mod fixtures {
    use super::{parse_input, Input};

    pub fn parse(text: &str) -> Input {
        match parse_input(text, "t.jsonl") {
            Ok(i) => i,
            Err(e) => panic!("parse failed: {e:#}"),
        }
    }

    /// One D step at K=10,000.
    pub fn d_line(server: &str, rate: u64, ev: f64, p99: f64, loss: u64) -> String {
        format!(
            r#"{{"server":"{server}","scenario":"D","connections":10000,"rate":{rate},"seconds":30,
            "load":{{"events_per_s":{ev},"latency_ms":{{"p50":1,"p90":2,"p99":{p99},"p999":3,"max":4}},
            "loss":{loss},"duplicates":0,"errors":0}}}}"#
        )
        .replace('\n', " ")
    }

    /// A D search per server: sse-kafka's best passing step is the 200
    /// rec/s one (faster steps fail on p99, loss or keeping up), nchan's
    /// only step passes at 96% of the offered rate, raw's fails at 94%.
    pub fn d_search() -> Input {
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
        parse(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
