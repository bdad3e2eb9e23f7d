//! Operations.

pub mod admin;
pub mod metrics;
