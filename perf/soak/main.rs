//! Turns a soak's samples (the TSV perf/soak.sh writes, one line every
//! 10 s) into the chart `soak.svg`, written into the directory named
//! second. `samples` reads the file, `chart` draws it (with the axes and
//! SVG pieces of the `plot` library, which perf_summary shares).
//!
//! `cargo run --release -p sse-kafka-perf --bin soak_chart -- perf/results/soak.tsv perf`

mod chart;
mod samples;

use anyhow::{Context, Result};
use std::path::Path;
use std::process::ExitCode;

fn run(input_path: &str, out_dir: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(input_path).with_context(|| format!("reading {input_path}"))?;
    let samples = samples::parse_samples(&text, input_path)?;
    let dir = Path::new(out_dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("soak.svg");
    std::fs::write(&path, chart::render_svg(&samples))
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, out_dir] = args.as_slice() else {
        eprintln!("usage: soak_chart <samples.tsv> <out-dir>");
        return ExitCode::from(2);
    };
    match run(input, out_dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("soak_chart: {e:#}");
            ExitCode::FAILURE
        }
    }
}
