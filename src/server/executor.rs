//! Shards: one glommio executor pinned per configured CPU.
//!
//! A shard owns its connections, its topic hubs and, through its Kafka
//! sidecar, the partitions `p` with `p % N == shard`. Everything in a shard is
//! `!Send` (`Rc`, `RefCell`, `Cell`): no locks on the hot path. Batches of
//! owned partitions are forwarded to every other shard over glommio's
//! channel mesh, created once at start (O(N²) channels, kept for the life of
//! the process, as glommio's own docs advise), then applied locally.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::channel_mesh::{Full, MeshBuilder, Senders};
use glommio::net::TcpListener;
use glommio::{CpuSet, LocalExecutorBuilder, Placement, PoolPlacement};
use tracing::{info, warn};

use crate::codec::router::{PathTemplate, Router};
use crate::codec::sse;
use crate::config::{Config, Start};
use crate::kafka::{Batch, Request, ToShard, TopicId, TopicTable};
use crate::ops::metrics::ShardMetrics;
use crate::shard::cache::Limits;
use crate::shard::hub::{self, Hub, Render};
use crate::stream::connection::{self, Conn};
use crate::stream::cursor::Fetches;

/// Index of a shard, `0..N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardId(pub usize);

/// Capacity of each cross-shard queue, in batches. A batch holds up to a
/// fetch's worth of records, so 1,024 batches absorb long bursts; when a
/// queue is full anyway, see `forward` for the policy.
pub const MESH_CAPACITY: usize = 1024;

/// io_uring registered buffers only serve file DMA, which a network proxy
/// does not do: keep them small.
const IO_MEMORY: usize = 64 << 10;

/// How long shutdown waits for streams to flush before the shard exits.
const DRAIN_DEADLINE: Duration = Duration::from_secs(3);

/// Back-off after a failed `accept` (e.g. EMFILE) so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(20);

/// What a connection needs to know about its route, resolved once.
#[derive(Debug, Clone, Copy)]
pub struct RouteInfo {
    pub topic: TopicId,
    pub start: Start,
    pub render: Render,
    pub keepalive: Duration,
}

/// Read-only state shared by every shard.
pub struct Shared {
    pub config: Arc<Config>,
    pub topics: Arc<TopicTable>,
    pub routes: Vec<RouteInfo>,
    pub metrics: Arc<[Arc<ShardMetrics>]>,
}

impl Shared {
    pub fn new(config: Config, shards: usize) -> Self {
        let topics = Arc::new(TopicTable::new(config.topics(), config.kafka.max_topics));
        let routes = (0..config.routes.len())
            .map(|i| {
                let r = &config.routes[i];
                RouteInfo {
                    topic: match r.topic_template {
                        // Resolved per request (see `connection`).
                        Some(_) => TopicId::PER_REQUEST,
                        None => topics
                            .find(&r.topic)
                            .expect("a fixed route topic is in the topic table"),
                    },
                    start: r.start,
                    render: Render {
                        value: r.value,
                        id: r.event_id,
                    },
                    keepalive: config.route_keepalive(i),
                }
            })
            .collect();
        let metrics = (0..shards)
            .map(|_| Arc::new(ShardMetrics::default()))
            .collect();
        Self {
            config: Arc::new(config),
            topics,
            routes,
            metrics,
        }
    }
}

/// A shard's own state.
pub struct ShardCtx {
    pub id: ShardId,
    pub config: Arc<Config>,
    pub routes: Vec<RouteInfo>,
    pub router: Router,
    /// The process-wide topic table (topics requests name join it).
    pub topics: Arc<TopicTable>,
    pub hub: RefCell<Hub>,
    /// Kafka fetches in flight for catch-up readers, shared among them.
    pub fetches: Fetches,
    /// Turns for catch-up readers to encode (see `cursor::catch_up`).
    pub catchup_slots: glommio::sync::Semaphore,
    pub requests: flume::Sender<Request>,
    pub metrics: Arc<ShardMetrics>,
    /// Every open stream, for keep-alives and shutdown.
    pub conns: RefCell<Vec<Rc<Conn>>>,
    pub shutting_down: Cell<bool>,
    /// This shard's share of `connections.max`.
    pub max_connections: usize,
    tick: Duration,
    rng: RefCell<fastrand::Rng>,
    /// Batches applied since the delivering tasks last stepped aside.
    applied_in_a_row: Cell<u32>,
    /// Where request heads that have fully arrived are read and parsed, so
    /// the common connection never allocates a head buffer of its own (a
    /// freed buffer per connection still costs RSS: the allocator keeps it).
    pub head_scratch: RefCell<Vec<u8>>,
    /// Topics requests named that Kafka said do not exist, and when: asked
    /// again only after `kafka.metadata_refresh` (see
    /// `connection::open_topic`).
    pub missing_topics: RefCell<HashMap<String, std::time::Instant>>,
}

impl ShardCtx {
    /// Keep-alive ticks that make up `keepalive` (at least one).
    pub fn keepalive_ticks(&self, keepalive: Duration) -> u32 {
        (keepalive.as_nanos().div_ceil(self.tick.as_nanos())).clamp(1, u128::from(u32::MAX)) as u32
    }

    /// The `retry:` value for a new stream: the configured base plus a random
    /// jitter, so a reconnect storm spreads out.
    pub fn retry_millis(&self) -> u64 {
        let base = self.config.retry.as_millis() as u64;
        let jitter = self.config.retry_jitter.as_millis() as u64;
        base + self.rng.borrow_mut().u64(0..=jitter)
    }
}

/// How often the keep-alive ticker runs: a quarter of the shortest
/// keep-alive, so a comment goes out at most 25% late, clamped so the ticker
/// neither spins nor lags a long interval.
fn tick_for(shared: &Shared) -> Duration {
    let shortest = shared
        .routes
        .iter()
        .map(|r| r.keepalive)
        .min()
        .unwrap_or(shared.config.keepalive);
    (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Sent to a shard by the signal thread.
#[derive(Debug)]
pub enum Control {
    Shutdown,
}

/// Everything one shard is started with.
pub struct ShardSpec {
    pub id: ShardId,
    pub shards: usize,
    pub cpu: usize,
    pub shared: Arc<Shared>,
    pub mesh: Option<MeshBuilder<Arc<Batch>, Full>>,
    pub from_sidecar: flume::Receiver<ToShard>,
    pub requests: flume::Sender<Request>,
    pub control: flume::Receiver<Control>,
    pub listener: socket2::Socket,
    pub admin: Option<std::net::TcpListener>,
}

/// Starts the shard's executor, pinned to its CPU, with its blocking pool
/// fenced to the same CPU.
pub fn spawn(spec: ShardSpec) -> glommio::Result<glommio::ExecutorJoinHandle<()>, ()> {
    let cpu = spec.cpu;
    let pool_cpus = CpuSet::online()?.filter(|l| l.cpu == cpu);
    LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .name(&format!("shard-{}", spec.id.0))
        .io_memory(IO_MEMORY)
        .blocking_thread_pool_placement(PoolPlacement::Fenced(1, pool_cpus))
        .spawn(move || run(spec))
}

async fn run(spec: ShardSpec) {
    let shared = spec.shared;
    let router = Router::new(
        shared
            .config
            .routes
            .iter()
            .map(|r| {
                PathTemplate::parse(&r.path).expect("route paths are validated with the config")
            })
            .collect(),
    );
    let ctx = Rc::new(ShardCtx {
        id: spec.id,
        config: Arc::clone(&shared.config),
        routes: shared.routes.clone(),
        router,
        topics: Arc::clone(&shared.topics),
        hub: RefCell::new(Hub::new(
            &(0..shared.topics.len())
                .map(|t| shared.topics.name(TopicId(t as u32)).to_string())
                .collect::<Vec<_>>(),
            Limits {
                partition_bytes: shared.config.cache.partition_bytes,
                total_bytes: shared.config.cache.total_bytes,
                max_age: shared.config.cache.max_age,
            },
            spec.id.0,
            spec.shards,
        )),
        fetches: Fetches::default(),
        catchup_slots: glommio::sync::Semaphore::new(crate::stream::cursor::CATCHUP_SLOTS),
        requests: spec.requests,
        metrics: Arc::clone(&shared.metrics[spec.id.0]),
        conns: RefCell::default(),
        shutting_down: Cell::new(false),
        max_connections: shared.config.connections.max.div_ceil(spec.shards),
        tick: tick_for(&shared),
        rng: RefCell::new(fastrand::Rng::new()),
        applied_in_a_row: Cell::new(0),
        head_scratch: RefCell::new(vec![0; crate::codec::http::MAX_HEAD_BYTES]),
        missing_topics: RefCell::default(),
    });

    let mut senders = None;
    if let Some(mesh) = spec.mesh {
        match mesh.join().await {
            Ok((tx, mut rx)) => {
                for (_peer, stream) in rx.streams() {
                    let ctx = Rc::clone(&ctx);
                    glommio::spawn_local(async move {
                        while let Some(batch) = stream.recv().await {
                            apply(&ctx, &batch).await;
                        }
                    })
                    .detach();
                }
                senders = Some(Rc::new(Forwarder::new(tx)));
            }
            Err(e) => {
                warn!(shard = ctx.id.0, error = ?e, "could not join the shard mesh");
                return;
            }
        }
    }

    // With no topic in the config (every route names its own per request)
    // there is nothing to wait for.
    update_ready(&ctx);
    glommio::spawn_local(intake(Rc::clone(&ctx), spec.from_sidecar, senders)).detach();
    glommio::spawn_local({
        let ctx = Rc::clone(&ctx);
        async move {
            let budget = ctx.config.connections.max_queued_bytes;
            hub::write_pass(&ctx.hub, budget, &ctx.metrics).await
        }
    })
    .detach();
    glommio::spawn_local(keepalive_ticker(Rc::clone(&ctx))).detach();
    if let Some(admin) = spec.admin {
        // SAFETY: the fd comes from a listener we own and give up here.
        let admin = unsafe { TcpListener::from_raw_fd(admin.into_raw_fd()) };
        glommio::spawn_local(crate::ops::admin::serve(admin, Arc::clone(&shared.metrics))).detach();
    }

    // SAFETY: the fd comes from a socket we own and give up here.
    let listener = unsafe { TcpListener::from_raw_fd(spec.listener.into_raw_fd()) };
    let accept = async {
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    glommio::spawn_local(connection::serve(Rc::clone(&ctx), stream)).detach();
                }
                Err(e) => {
                    warn!(shard = ctx.id.0, error = %e, "accept failed");
                    glommio::timer::sleep(ACCEPT_RETRY).await;
                }
            }
        }
    };
    let stop = async {
        let _ = spec.control.recv_async().await;
    };
    futures_lite::future::or(accept, stop).await;
    drop(listener);

    // Graceful shutdown: stop accepting (done), let every stream flush what
    // it has queued, then end it.
    ctx.shutting_down.set(true);
    for conn in ctx.conns.borrow().iter() {
        conn.notify();
    }
    let deadline = std::time::Instant::now() + DRAIN_DEADLINE;
    while ctx.metrics.connections_open.get() > 0 && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    info!(shard = ctx.id.0, "shard stopped");
}

/// Batches from this shard's sidecar: forward to the other shards, then
/// apply locally.
async fn intake(
    ctx: Rc<ShardCtx>,
    from_sidecar: flume::Receiver<ToShard>,
    forwarder: Option<Rc<Forwarder>>,
) {
    while let Ok(msg) = from_sidecar.recv_async().await {
        match msg {
            ToShard::Meta { topic, partitions } => {
                ctx.hub.borrow_mut().ensure_topics(&ctx.topics);
                ctx.hub.borrow_mut().set_partitions(topic, partitions);
                update_ready(&ctx);
            }
            ToShard::Health {
                topic,
                available,
                reason,
            } => {
                ctx.hub.borrow_mut().ensure_topics(&ctx.topics);
                ctx.hub.borrow_mut().topic_mut(topic).set_available(
                    available,
                    reason,
                    std::time::Instant::now(),
                );
            }
            ToShard::Batch(batch) => {
                if let Some(f) = &forwarder {
                    f.forward(&ctx.metrics, &batch);
                }
                apply(&ctx, &batch).await;
            }
        }
    }
}

/// Every this many batches the delivering tasks step aside for the write
/// pass (see `hub::write_pass`), which otherwise runs when they wait for
/// the next batch: enough to share one pass among batches that queued up,
/// few enough that a steady inflow cannot hold the writes back.
const BATCHES_PER_WRITE_PASS: u32 = 32;

async fn apply(ctx: &ShardCtx, batch: &Arc<Batch>) {
    if !ctx.hub.borrow().has_topic(batch.topic) {
        ctx.hub.borrow_mut().ensure_topics(&ctx.topics);
    }
    hub::apply_batch(&ctx.hub, batch, &ctx.metrics).await;
    update_ready(ctx);
    let applied = ctx.applied_in_a_row.get() + 1;
    if applied >= BATCHES_PER_WRITE_PASS {
        ctx.applied_in_a_row.set(0);
        futures_lite::future::yield_now().await;
    } else {
        ctx.applied_in_a_row.set(applied);
    }
}

fn update_ready(ctx: &ShardCtx) {
    use std::sync::atomic::Ordering;
    if !ctx.metrics.ready.load(Ordering::Relaxed) && ctx.hub.borrow().all_ready() {
        ctx.metrics.ready.store(true, Ordering::Relaxed);
        info!(shard = ctx.id.0, "all topics ready");
    }
}

/// The owner's side of the mesh.
///
/// Full-queue policy: the owner never waits for a peer. When a peer's queue
/// is full the batch is not sent to it and the partition is marked; a
/// separate task later sends the peer an announcement of the owner's
/// position (an empty batch). The peer sees a batch whose `from` is past its
/// head — a discontinuity — and turns its live connections on that topic
/// into catch-up readers, which fetch the missed records from Kafka. Nothing
/// is lost, the owner is never stalled, and memory stays bounded.
struct Forwarder {
    senders: Senders<Arc<Batch>>,
    /// Per peer: partitions owed an announcement.
    owed: RefCell<HashMap<usize, BTreeSet<(u32, u32)>>>,
    resyncing: RefCell<BTreeSet<usize>>,
    /// The `to` of the last batch forwarded per owned partition.
    forwarded_to: RefCell<HashMap<(u32, u32), i64>>,
}

impl Forwarder {
    fn new(senders: Senders<Arc<Batch>>) -> Self {
        Self {
            senders,
            owed: RefCell::default(),
            resyncing: RefCell::default(),
            forwarded_to: RefCell::default(),
        }
    }

    fn forward(self: &Rc<Self>, metrics: &ShardMetrics, batch: &Arc<Batch>) {
        let key = (batch.topic.0, batch.partition);
        self.forwarded_to.borrow_mut().insert(key, batch.to);
        // Mesh peer ids follow the order in which executors joined, not
        // shard ids: skip our own mesh id.
        let me = self.senders.peer_id();
        for peer in (0..self.senders.nr_consumers()).filter(|p| *p != me) {
            if self.senders.try_send_to(peer, Arc::clone(batch)).is_err() {
                metrics.mesh_full.inc();
                self.owed.borrow_mut().entry(peer).or_default().insert(key);
                if self.resyncing.borrow_mut().insert(peer) {
                    glommio::spawn_local(Rc::clone(self).resync(peer)).detach();
                }
            }
        }
    }

    /// Sends the owed announcements to one peer, waiting for queue room
    /// (this task may wait; the owner's intake never does).
    async fn resync(self: Rc<Self>, peer: usize) {
        loop {
            let next = self
                .owed
                .borrow_mut()
                .get_mut(&peer)
                .and_then(BTreeSet::pop_first);
            let Some((topic, partition)) = next else {
                break;
            };
            let at = self.forwarded_to.borrow()[&(topic, partition)];
            let announcement = Arc::new(Batch {
                topic: TopicId(topic),
                partition,
                from: at,
                to: at,
                records: Vec::new(),
            });
            if self.senders.send_to(peer, announcement).await.is_err() {
                break;
            }
        }
        self.resyncing.borrow_mut().remove(&peer);
    }
}

/// Ends the live streams of topics Kafka has not served for longer than
/// `kafka.unavailable_timeout` with an `event:error` (cursors check the
/// same in their loop); the clients reconnect and resume exactly once the
/// topic is back.
fn end_unavailable(ctx: &ShardCtx, now: Instant) {
    let timeout = ctx.config.kafka.unavailable_timeout;
    let mut hub = ctx.hub.borrow_mut();
    for ts in hub.topics_mut() {
        if ts.live_connections() == 0 {
            continue;
        }
        let Some(reason) = ts.unavailable_past(timeout, now) else {
            continue;
        };
        let mut frame = Vec::new();
        connection::error_event(&mut frame, &reason);
        let ended = ts.end_live(&Rc::from(frame));
        ctx.metrics.topic_unavailable_ends.add(ended);
    }
}

/// Queues keep-alive comments on streams that were silent for their
/// route's `keepalive` and progress ids on filtered streams that records
/// passed by, ends the streams whose clients hung up, and forgets closed
/// streams.
async fn keepalive_ticker(ctx: Rc<ShardCtx>) {
    let frame: Rc<[u8]> = Rc::from(sse::KEEPALIVE);
    let mut polled: Vec<libc::pollfd> = Vec::new();
    loop {
        glommio::timer::sleep(ctx.tick).await;
        if ctx.shutting_down.get() {
            return;
        }
        let now = std::time::Instant::now();
        {
            let mut hub = ctx.hub.borrow_mut();
            hub.evict_expired(now, &ctx.metrics);
            hub.tick(now, ctx.config.keepalive, &ctx.metrics);
        }
        end_unavailable(&ctx, now);
        let mut conns = ctx.conns.borrow_mut();
        conns.retain(|c| !c.is_closed());
        for conn in conns.iter() {
            if conn.tick(&frame) {
                ctx.metrics.keepalives_sent.inc();
            }
        }
        hang_ups(&conns, &mut polled, &ctx.metrics);
    }
}

/// Ends the streams whose clients closed their end. A stream's socket is
/// otherwise only written, so a client that went away would hold its
/// descriptor until a keep-alive failed; one `poll` over every stream per
/// tick finds them (an SSE client sends nothing after its request, so
/// end-of-input means it is gone, as nginx also takes it).
fn hang_ups(conns: &[Rc<Conn>], polled: &mut Vec<libc::pollfd>, metrics: &ShardMetrics) {
    polled.clear();
    polled.extend(conns.iter().map(|c| libc::pollfd {
        fd: c.fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    }));
    // SAFETY: `polled` is a valid array of its length; the descriptors are
    // open (closed streams were dropped from `conns` above, and a stream's
    // descriptor is closed only after it is marked closed).
    let n = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, 0) };
    if n <= 0 {
        return;
    }
    for (conn, p) in conns.iter().zip(polled.iter()) {
        if p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0 && !conn.is_ending() {
            metrics.hang_ups.inc();
            conn.hang_up();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(from: i64, to: i64) -> Arc<Batch> {
        Arc::new(Batch {
            topic: TopicId(0),
            partition: 3,
            from,
            to,
            records: Vec::new(),
        })
    }

    /// The full-queue policy: the owner never waits; the peer that missed a
    /// batch later receives an announcement of the owner's position, which
    /// its hub sees as a discontinuity (tested in hub.rs).
    #[test]
    fn full_peer_queue_is_skipped_then_resynced_with_an_announcement() {
        let mesh = MeshBuilder::<Arc<Batch>, Full>::full(2, 2);
        let (forwarded_tx, forwarded_rx) = std::sync::mpsc::channel::<i64>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let peer_mesh = mesh.clone();
        let peer = LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(IO_MEMORY)
            .spawn(move || async move {
                let (_tx, mut rx) = peer_mesh.join().await.unwrap();
                // Receive only after the owner filled the queue.
                let end = forwarded_rx.recv().unwrap();
                let (_, stream) = rx.streams().pop().unwrap();
                let mut got = Vec::new();
                while got.last() != Some(&(end, end)) {
                    let b = stream.recv().await.unwrap();
                    got.push((b.from, b.to));
                }
                done_tx.send(()).unwrap();
                got
            })
            .unwrap();
        let owner = LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(IO_MEMORY)
            .spawn(move || async move {
                let (tx, _rx) = mesh.join().await.unwrap();
                let metrics = ShardMetrics::default();
                let f = Rc::new(Forwarder::new(tx));
                // Forward until the peer's queue is full; each call returns
                // at once, full or not.
                let mut next = 0;
                while metrics.mesh_full.get() == 0 {
                    f.forward(&metrics, &batch(next, next + 1));
                    next += 1;
                    assert!(next < 1000, "the queue never filled");
                }
                // One more while full: also skipped, and owed only once.
                f.forward(&metrics, &batch(next, next + 1));
                next += 1;
                assert_eq!(metrics.mesh_full.get(), 2);
                forwarded_tx.send(next).unwrap();
                while !f.resyncing.borrow().is_empty() {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
                // Keep the senders alive until the peer has read everything.
                done_rx.recv().unwrap();
                next
            })
            .unwrap();
        let end = owner.join().unwrap();
        let got = peer.join().unwrap();
        // The batches that fit, in order ...
        let accepted = got.iter().take_while(|(from, to)| from < to).count();
        for (i, (from, to)) in got[..accepted].iter().enumerate() {
            assert_eq!((*from, *to), (i as i64, i as i64 + 1));
        }
        // Then only announcements (empty, from == to), moving forward, the
        // last at the owner's position: what the peer missed shows as jumps.
        let announcements = &got[accepted..];
        assert!(!announcements.is_empty());
        assert!(announcements
            .iter()
            .all(|(from, to)| from == to && *from > accepted as i64));
        assert!(announcements.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(*announcements.last().unwrap(), (end, end));
    }
}
