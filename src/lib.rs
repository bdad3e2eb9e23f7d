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
//! ## Layers
//!
//! `src/` is folders that are layers; each file is one concept, and a file
//! imports only files of its own folder or of a lower layer (checked by
//! `cargo test --test layers`, which also checks that no files import each
//! other in a circle). Lowest first:
//!
//! 1. [`model`] — the data every layer shares: ids and units (`TopicId`,
//!    `Partition`, `Offset`), records, batches, positions. [`sys`] — every
//!    system call beyond std and glommio (CPU affinity, socket sends,
//!    hang-up polls), the only place `unsafe` is allowed.
//! 2. [`codec`] — pure functions of bytes: HTTP requests and responses, SSE
//!    frames, control events and a parser, event ids, path templates,
//!    JWT verification against a key set,
//!    filters, Kafka's key partitioner, topic names.
//! 3. [`config`] — the validated model every front end builds, and its YAML
//!    front end with file:line:field errors.
//! 4. [`ops`] — build info, the log, Prometheus counters, the admin
//!    listener and the service manager's notifications.
//! 5. [`guard`] — guarded routes: a request's token found, verified
//!    against the guard's keys (re-read when their file changes) and its
//!    roles checked, verified tokens remembered per shard.
//! 6. [`kafka`] — the sidecar thread of each shard: metadata watches, fetch
//!    loops, the fetcher and its record decoding, the topic table, and the
//!    messages between sidecar and shard. Its record-batch decoder is
//!    public so the fuzz targets (`tests/fuzz/`) can reach it.
//! 7. [`shard`] — the shard runtime: intake and mesh, the hub with its
//!    topic streams, audiences, groups and feeds, the partition cache, the
//!    outboxes, the write pass and the ticker.
//! 8. `stream` — one client's stream: request → plan, opening a topic,
//!    where it starts, and its life: live, or behind as a catch-up cursor.
//! 9. [`server`] — process wiring: listeners, sidecars, one executor per
//!    shard, signals. `main.rs` parses flags and calls it.

// Crate-wide lints. `unsafe` is denied everywhere but in `sys`, which
// holds every system call the proxy makes beyond std and glommio, each
// behind a safe function with its `SAFETY` argument.
#![deny(unsafe_code)]
#![warn(rust_2018_idioms, missing_debug_implementations)]
#![warn(clippy::clone_on_ref_ptr)]

pub mod codec;
pub mod config;
pub mod guard;
pub mod kafka;
pub mod model;
pub mod ops;
pub mod server;
pub mod shard;
mod stream;
pub mod sys;
