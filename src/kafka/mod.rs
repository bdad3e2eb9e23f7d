//! The Kafka side.

pub mod fetcher;
mod sidecar;
pub use sidecar::*;
