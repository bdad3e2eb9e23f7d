//! System calls.

pub mod cpus;
