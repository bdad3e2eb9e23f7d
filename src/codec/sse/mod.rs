//! Server-Sent-Events framing (`text/event-stream`, LF line ends) for Kafka
//! records and control events. The encoders only append to the caller's
//! `Vec<u8>` (no other allocation), and write every field so that a
//! spec-following client rebuilds the original text exactly: a value's CR LF,
//! LF and CR all become line breaks (SSE treats all three as line ends, so
//! they cannot be preserved; clients see LF), and a value that starts with a
//! space gets one extra space because clients strip exactly one after the
//! colon. Binary values go out as base64 instead. `frame` holds the
//! encoders, `control` the proxy's own events (`error`, `reset`, `gap`,
//! `challenge`),
//! `parser` the push parser that tests and the load generator read streams
//! with.

mod control;
mod frame;
mod parser;

pub use control::{challenge_event, error_event, gap_event, reset_event, skipped_event};
pub use frame::{
    encode_event, encode_id_only, encode_record, encode_retry, Render, ValueEncoding, KEEPALIVE,
};
#[cfg(test)]
pub(crate) use parser::testing;
pub use parser::{Event, EventRef, ParseError, Parser, DEFAULT_MAX_LINE};
