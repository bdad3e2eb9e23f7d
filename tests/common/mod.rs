//! One helper for every integration test: a real nisshi broker and the real
//! `sse-kafka` binary on ephemeral ports, a Kafka client (rskafka) to create
//! topics and produce, and a raw SSE client that keeps the exact wire bytes.
//! Each concept has its own file; this one holds the small waits they share
//! and re-exports the rest, so tests name everything as `common::...`.
//!
//! Nothing here sleeps to synchronise: every wait polls a condition with a
//! deadline and fails loudly when it passes.

// Every test binary compiles this module on its own and uses only some of
// it: unused helpers and re-exports are expected.
#![allow(dead_code)]

mod broker;
mod corrupter;
mod haproxy;
mod http;
mod producer;
mod proxy;
mod python;
mod sequences;
mod sse_client;
mod tokens;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use rskafka::chrono::Utc;

#[allow(unused_imports)]
pub use broker::{spawn_nisshi, Broker};
#[allow(unused_imports)]
pub use haproxy::{HaProxy, SERVED_BY};
#[allow(unused_imports)]
pub use http::{http_get, raw_request};
#[allow(unused_imports)]
pub use producer::{KeyValue, ProducerOnly};
#[allow(unused_imports)]
pub use proxy::{config_for, Launch, Proxy};
#[allow(unused_imports)]
pub use python::{produce_with_confluent_records, run_python_client, spawn_python_client};
#[allow(unused_imports)]
pub use sequences::{assert_complete_and_ordered, produce_seq, seq_value, value_of, Sequences};
#[allow(unused_imports)]
pub use sse_client::{Requested, SseClient};
#[allow(unused_imports)]
pub use tokens::{
    flow, get, get_bearer, metric_sum, quoted, rejections, samples, total, Answer, Keys,
};

/// Generous: CI machines are shared and slow.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A port that was free a moment ago (the broker needs its port up front).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `cond` until it holds; fails the test after [`DEADLINE`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        pause();
    }
}

/// The pause between two looks at a condition a test polls with a
/// deadline (the condition, not the pause, is the synchronisation). The
/// project bans `std::thread::sleep` (clippy.toml) for the server's
/// threads; a test thread polling another process is the exception, here
/// alone.
#[allow(clippy::disallowed_methods)]
pub fn pause() {
    std::thread::sleep(Duration::from_millis(10));
}

/// Milliseconds since the Unix epoch, as Kafka timestamps count.
pub fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}
