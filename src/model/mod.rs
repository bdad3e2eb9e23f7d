//! The data every layer shares.

pub mod record;
