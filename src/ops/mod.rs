//! Operations.

pub(crate) mod admin;
pub mod metrics;
