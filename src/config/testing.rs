//! Fixtures shared by the config's tests: small documents, and a runner for
//! tables of expected errors. The tests of each concept read whole documents
//! through `parse`, because an error's line and column only exist once a
//! document is read; this is the one place tests reach up to the entry point.

use super::{parse, Config};

/// The file name errors are expected to name.
pub(super) const FILE: &str = "sse-kafka.yaml";

/// The smallest valid file: one broker, one route.
pub(super) const MINIMAL: &str =
    "kafka:\n  bootstrap: [\"127.0.0.1:9092\"]\nroutes:\n  - path: /items\n    topic: items\n";

/// The file up to the first route.
pub(super) const UP_TO_ROUTES: &str = "kafka:\n  bootstrap: [\"127.0.0.1:9092\"]\nroutes:\n";

/// The `kafka` section with one broker; the case adds the rest.
pub(super) const HEAD: &str = "kafka:\n  bootstrap: [\"a:1\"]\n";

pub(super) fn parse_ok(text: &str) -> Config {
    parse(text, FILE).unwrap_or_else(|e| panic!("unexpected error: {e}"))
}

/// `MINIMAL` with `extra` appended to the first route (4-space indent).
pub(super) fn route_with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

/// (what, text, line, column, field, start of the message)
pub(super) type ErrorCase = (
    &'static str,
    String,
    usize,
    usize,
    &'static str,
    &'static str,
);

/// Parses each case's text as [`FILE`] and checks that it fails at the
/// expected line, column and field, with a message that starts as expected
/// and does not repeat the position.
pub(super) fn assert_errors(cases: Vec<ErrorCase>) {
    for (what, text, line, column, field, message) in cases {
        let err = match parse(&text, FILE) {
            Ok(_) => panic!("{what}: parsed, but should fail:\n{text}"),
            Err(e) => e,
        };
        let got = (err.file.as_str(), err.line, err.column, err.field.as_str());
        assert_eq!(got, (FILE, line, column, field), "{what}: {err}");
        assert!(
            err.message.starts_with(message),
            "{what}: message is: {}",
            err.message
        );
        // The position lives in line and column only, never repeated.
        assert!(
            !err.message.contains(&format!("line {line} column")),
            "{what}: {err}"
        );
    }
}
