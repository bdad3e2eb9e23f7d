//! The shard runtime.

pub mod cache;
pub mod feed;
pub mod hub;
