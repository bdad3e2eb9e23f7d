//! The log: `tracing` lines on stderr, as text or as one JSON object per
//! line (`--log-format json`, for log shippers), filtered by `--log` or
//! else `RUST_LOG`.
//!
//! Quiet by default: sse-kafka's own lines at `info`, every other crate's
//! (rskafka announces each connection at `info`) at `warn`. A bare level
//! names sse-kafka's level and keeps the others at `warn` unless it is
//! quieter; a filter with directives (`info,rskafka=debug`) is taken as
//! `tracing-subscriber` reads it.
//!
//! No line carries a request's target, query or headers, so a token (in
//! `Authorization`, `access_token` or a cookie) never reaches the log;
//! `tests/guards.rs` checks it at `trace`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The filter when neither `--log` nor `RUST_LOG` gives one.
pub const DEFAULT_FILTER: &str = "warn,sse_kafka=info";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`,
    /// `message` and the event's fields at the top level.
    Json,
}

/// The `tracing` directives a filter spec stands for (see the module doc).
pub fn directives(spec: Option<&str>) -> String {
    let Some(spec) = spec.map(str::trim).filter(|s| !s.is_empty()) else {
        return DEFAULT_FILTER.to_owned();
    };
    match spec.to_ascii_lowercase().as_str() {
        level @ ("info" | "debug" | "trace") => format!("warn,sse_kafka={level}"),
        _ => spec.to_owned(),
    }
}

/// Installs the subscriber for the process. `flag` is `--log`, which wins
/// over `RUST_LOG`; a filter that does not parse is an error naming where
/// it came from.
pub fn init(format: LogFormat, flag: Option<&str>) -> Result<(), String> {
    let (source, spec) = match flag {
        Some(f) => ("--log", Some(f.to_owned())),
        None => ("RUST_LOG", std::env::var("RUST_LOG").ok()),
    };
    let filter = EnvFilter::builder()
        .parse(directives(spec.as_deref()))
        .map_err(|e| format!("{source}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|e| format!("cannot install the log: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_level_is_sse_kafkas_and_other_crates_stay_at_warn() {
        assert_eq!(directives(None), DEFAULT_FILTER);
        assert_eq!(directives(Some("  ")), DEFAULT_FILTER);
        assert_eq!(directives(Some("debug")), "warn,sse_kafka=debug");
        assert_eq!(directives(Some("INFO")), "warn,sse_kafka=info");
        // Quieter than warn: for every crate.
        assert_eq!(directives(Some("error")), "error");
        assert_eq!(directives(Some("off")), "off");
        // Directives: as written.
        assert_eq!(directives(Some("info,rskafka=debug")), "info,rskafka=debug");
        for spec in [None, Some("trace"), Some("warn")] {
            EnvFilter::builder()
                .parse(directives(spec))
                .unwrap_or_else(|e| panic!("{spec:?}: {e}"));
        }
        assert!(EnvFilter::builder()
            .parse(directives(Some("sse_kafka=loud")))
            .is_err());
    }
}
