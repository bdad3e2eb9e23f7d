//! What the binary is: its version and the commit it was built from (set
//! by `build.rs`), for `--version` and `sse_kafka_build_info`.

/// The package version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit built from (12 hex digits), or `unknown` outside a checkout.
pub const COMMIT: &str = env!("SSE_KAFKA_COMMIT");

/// What `--version` prints after the name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SSE_KAFKA_COMMIT"),
    ")"
);
