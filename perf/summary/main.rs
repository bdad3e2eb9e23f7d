//! Turns one measurement run (a JSON-lines file, one object per scenario
//! step and server) into `RESULTS.md` and the sweep chart `results.svg`,
//! both written into the directory named second.
//!
//! The run measures sse-kafka, nchan and the raw ceiling (a minimal program
//! writing one pre-encoded frame per socket) on the same machine, so the
//! interesting numbers are the within-run ratios; this program only reads
//! and formats, it measures nothing. `input` reads the file, `measures`
//! derives what the tables and goals need, `markdown` and `goals` write
//! RESULTS.md (with `text` for numbers and tables; `ceiling_goals` judges
//! issue 16's goals against the raw ceiling, a table in RESULTS.md that is
//! also printed to stdout, last, for compare.sh's reader), `chart` draws
//! results.svg (with the axes and SVG pieces of the `plot` library, which
//! soak_chart shares).
//!
//! `cargo run --release -p sse-kafka-perf --bin perf_summary -- perf/results/run.jsonl perf`

mod ceiling_goals;
mod chart;
mod goals;
mod input;
mod markdown;
mod measures;
mod text;

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

fn run(input_path: &str, out_dir: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(input_path).with_context(|| format!("reading {input_path}"))?;
    let input = input::parse_input(&text, input_path)?;
    let dir = Path::new(out_dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let outputs = BTreeMap::from([
        ("RESULTS.md", markdown::render_markdown(&input)),
        ("results.svg", chart::render_svg(&input.records)),
    ]);
    for (name, body) in outputs {
        let path = dir.join(name);
        std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    print!("{}", ceiling_goals::render_text(&input.records, input_path));
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
