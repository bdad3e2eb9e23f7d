//! One client's stream.

pub mod connection;
pub mod cursor;
