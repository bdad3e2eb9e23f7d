//! Codecs: pure functions of bytes.

pub mod topic;
