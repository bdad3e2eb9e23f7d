//! Operations: what the binary is, its log, Prometheus counters, the
//! admin listener and the service manager's notifications.

pub(crate) mod admin;
pub mod build;
pub mod logs;
pub mod metrics;
pub mod notify;
