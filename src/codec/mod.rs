//! Codecs: pure functions of bytes.

pub mod base64;
pub mod event_id;
pub mod filter;
pub mod http;
pub mod jwt;
pub mod partitioner;
pub mod router;
pub mod sse;
pub mod topic;
