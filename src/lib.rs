//! # sse-kafka
//!
//! Streams Kafka topics to HTTP clients as Server-Sent Events, built for
//! massive fan-out on dedicated Linux hosts.
//!
//! ## Architecture
//!
//! ```text
//!            Kafka brokers
//!                 │  rskafka (tokio, one sidecar thread per shard, same CPU)
//!    ┌────────────┴──────────────────────────────┐
//!    │ shard c owns partitions p where p % N == c│   fetch loop per owned partition
//!    └──────┬──────────────────┬─────────────────┘
//!           │ glommio channel mesh (Arc'd batches)
//!    ┌──────▼───────┐   ┌──────▼───────┐
//!    │ shard 0      │   │ shard 1 ...  │   glommio LocalExecutor pinned per CPU
//!    │ topic hubs   │   │              │   SO_REUSEPORT listener on every shard
//!    │ connections  │   │ connections  │   hand-written HTTP/1.1 SSE writer
//!    └──────────────┘   └──────────────┘
//! ```
//!
//! - Each shard is a glommio executor pinned to one CPU; everything it owns
//!   is `!Send`. Its Kafka sidecar (a tokio current-thread runtime on the
//!   same CPU) fetches the partitions the shard owns and answers on-demand
//!   fetches for catch-up readers.
//! - The owner forwards each batch to every other shard over the mesh; each
//!   shard merges the batches of a topic into one stream (the *hub*),
//!   evaluates each distinct filter of its connections once per record,
//!   encodes each event once per rendering and appends it once to the *feed*
//!   of every matching group of connections; one write pass per shard then
//!   sends each connection what it has not sent from its feed with one
//!   `sendmsg`, so batches that arrive during a pass share the next one.
//! - Every shard caches the batches it applies in per-partition logs
//!   (shared `Arc`s, bounded by bytes and age).
//! - Event ids encode the next offset of every partition the stream has
//!   passed, so any instance can resume any id exactly. A connection whose
//!   position is not the hub's head (a resume, `start: earliest`, a slow
//!   client, a shard that missed batches) is a *cursor*: it reads the cache
//!   at its own position, or Kafka (one fetch shared by every cursor that
//!   needs the range) where the cache does not reach, and joins the live
//!   stream when it reaches the head.
//!
//! ## Module map (in data-flow order)
//!
//! - [`config`], [`cpus`]: the YAML config and the `--cpus` list.
//! - [`server`]: process wiring, listeners, signals.
//! - [`shard`]: the per-CPU executors, the mesh and its full-queue policy.
//! - [`kafka`]: the sidecar: metadata, fetch loops, on-demand requests.
//! - [`fetch`], [`record`]: Kafka fetches decoded with every record header
//!   (a name may repeat), and the record type the rest of the proxy keeps.
//! - [`log`]: the partition cache.
//! - [`hub`]: per-shard topic streams and the live fan-out.
//! - [`feed`]: the frames a group of live connections shares, each
//!   connection reading them at its own place.
//! - [`connection`]: request handling and the outbox writer.
//! - [`cursor`]: catch-up readers and their shared Kafka fetches.
//! - Codecs, pure functions of bytes: [`http`] (requests, responses),
//!   [`router`] (path templates), [`sse`] (event frames and a parser),
//!   [`event_id`] (the progress id), [`filter`] (record filters and their
//!   substitutions).
//! - [`partitioner`]: Kafka's default key partitioner (murmur2), for key pruning.
//! - [`admin`], [`metrics`]: health and Prometheus metrics.

// Crate-wide lints. `unsafe` is denied everywhere but in `sys`, which
// holds every system call the proxy makes beyond std and glommio, each
// behind a safe function with its `SAFETY` argument.
#![deny(unsafe_code)]
#![warn(rust_2018_idioms, missing_debug_implementations)]
#![warn(clippy::clone_on_ref_ptr)]

pub mod codec;
pub mod config;
mod kafka;
pub mod model;
pub mod ops;
pub mod server;
pub mod shard;
mod stream;
pub mod sys;
