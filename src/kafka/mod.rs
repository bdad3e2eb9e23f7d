//! The Kafka side: one sidecar thread per shard, pinned to the shard's
//! CPU, running a current-thread tokio runtime with its own rskafka client.
//!
//! rskafka needs tokio; the shards run glommio. Rather than a compat layer
//! on the main path, each shard gets a sidecar that owns the Kafka side: it
//! discovers topic metadata ([`watch`]), runs one long-poll fetch loop per
//! partition the shard owns (partition `p` belongs to shard `p % N`,
//! [`fetch_loop`]), and answers on-demand requests (catch-up fetches and
//! offset look-ups) from the shard's streams. Everything crosses into
//! glommio through bounded `flume` channels, which work under any executor
//! ([`messages`]).
//!
//! Metadata and offsets go through rskafka's client; record fetches go
//! through the [`fetcher`], on rskafka's protocol layer with a Fetch of
//! their own ([`protocol`]) whose answer keeps the record batches as bytes,
//! decoded by [`decode`], which keeps every header of a record (rskafka's
//! client keeps one value per header name) and skips exactly a batch it
//! cannot read instead of failing the fetch. [`topics`] is the process-wide
//! topic table.
//!
//! Files: `error` (typed errors with context), `messages` (shard ↔
//! sidecar), `topics`, `sidecar` (the thread and its request loop),
//! `watch`, `fetch_loop`, `fetcher`, `protocol`, `decode`.

pub mod decode;
mod error;
mod fetch_loop;
mod fetcher;
mod lookups;
mod messages;
mod protocol;
mod running;
mod sidecar;
mod topics;
mod watch;

pub use error::KafkaError;
pub use messages::{Availability, OffsetQuery, Request, SidecarLink, ToShard};
pub use running::Sidecar;
pub use topics::TopicTable;
