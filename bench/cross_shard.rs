//! The cross-shard path (issue 16, item 3a): one shard owns a partition and,
//! for every batch, forwards it to the N−1 other shards over glommio's
//! channel mesh and applies it itself; each peer receives it and applies it.
//! Measured for N = 2, 4, 8, 16 executors against N = 1 (the owner applies
//! its own batch, no mesh), the baseline, in the same run.
//!
//! Run (release; two to five minutes on a 2-core host):
//!
//! ```text
//! CROSS_SHARD_JSON=perf/results/cross_shard.jsonl cargo bench --bench cross_shard
//! ```
//!
//! (`-- --json PATH` does the same as `CROSS_SHARD_JSON`: one JSON object
//! per table row.) Other knobs, with their defaults:
//! `CROSS_SHARD_EXECUTORS=2,4,8,16`, `CROSS_SHARD_STREAMS=0,4` (in-memory
//! live streams per shard), `CROSS_SHARD_BATCHES=20000` (flood),
//! `CROSS_SHARD_RATE=1000` and `CROSS_SHARD_PACED_BATCHES=3000` (paced),
//! `CROSS_SHARD_LIVE_LATENCY_MS=1` (the live queue's latency; the server's
//! is 1 ms, see stalls below), `CROSS_SHARD_ROUSE_MS=50` (the rouser's
//! period, as the server's; 0: none). Without `--bench` (as under
//! `cargo test --benches`) it does a short smoke run of N = 1 and 2.
//!
//! What runs is the server's own code where the library makes it public:
//! the executors are `LocalExecutorBuilder`s joined in a real
//! `MeshBuilder::full` mesh of `Arc<Batch>` of the server's capacity; the
//! owner's batches come from a sidecar thread over a bounded flume channel
//! of `ToShard::Batch`, as the server's do; the delivering tasks run in a
//! task queue like the server's `live` queue, beside a ticker like the
//! server's; a batch is applied with `shard::hub::apply_batch` (cache
//! insert and eviction with the default cache bounds, heads, encoding once
//! per group) to a `Hub` built as `server::executor` builds it. Four pieces
//! are `pub(crate)` or private and are restated here, line for line:
//! `Forwarder::forward` (the `try_send_to` loop over every peer but our own
//! mesh id, and its map of forwarded positions), `Intake::apply` (topic
//! check, `apply_batch`, the readiness check, a yield every 32 batches),
//! `MESH_CAPACITY` and `SIDECAR_CHANNEL`. The write pass is `pub(crate)`
//! too: with live streams, the frames a batch leaves in the groups' feeds
//! are dropped after each batch (`TopicStream::clear_pending_writes`, as
//! `bench/hot_path.rs` does), so writes to sockets are not in these numbers.
//!
//! Batches are 16 records with 150-byte JSON values (like
//! `perf/compare.sh`'s), built before the clock starts (the sidecar builds
//! them in the server, on its own thread). Two regimes:
//! - `flood`: the sidecar sends as fast as it can, held back only so that
//!   no peer falls more than half a mesh queue behind (the bench's flow
//!   control, not the server's: a full queue would be the server's resync
//!   path, see `shard/mesh.rs`). Peers find several batches per wake-up.
//! - `paced`: a batch every 1/`CROSS_SHARD_RATE` s. Every shard sleeps
//!   between batches, so every batch wakes the owner (the sidecar's flume
//!   send) and every peer (an `eventfd` write by the owner per sleeping
//!   peer): the cost of a lightly loaded server.
//!
//! CPU time is each executor thread's own (`CLOCK_THREAD_CPUTIME_ID`; the
//! user/system split, `sys%`, from `getrusage(RUSAGE_THREAD)`, which this
//! kernel samples at ticks) from the moment every executor has joined the
//! mesh until it has applied the last batch; the sidecar thread is not
//! counted. The executors are not pinned: on a host with fewer cores than N
//! they time-share, so N = 16 on 2 cores adds context switches and cold
//! caches the server (one shard per core) would not have — read the large
//! N as an upper bound there.
//!
//! Two glommio 0.9 behaviours show on such a host, and the bench handles
//! both. Joining the mesh busy-waits for each peer (see [`join`]): the bench
//! joins with a backoff, before the clocks start. And an executor whose
//! latency-sensitive queue was preempted before it ran can park with that
//! queue still runnable (fixed upstream after 0.9: glommio/glommio#53, "do
//! not park the executor while a task queue is still runnable", merged
//! after 0.9, the last release): a peer then sleeps with batches in its
//! mesh queue until its next timer. The server's shards have a rouser for
//! it, a timer every 50 ms (`server::executor::rouse`), and so does every
//! executor here; without it (`CROSS_SHARD_ROUSE_MS=0`) the next timer is
//! the ticker, at most [`TICK`] later. The watchdog counts spans of 250 ms
//! without progress with batches pending (`stalls`); stalls cost wall time
//! (`batch/s`), not CPU time. A 1 ms budget is easily overrun when 17
//! threads share 2 cores: with `CROSS_SHARD_ROUSE_MS=0` they show at
//! N = 16 (and `CROSS_SHARD_LIVE_LATENCY_MS=50` makes them rare).
//!
//! How to read the table (one per regime and stream count):
//! - `total/N1`: CPU of all shards per batch against the N = 1 apply. A
//!   batch is applied by every shard, so this grows with N by design; what
//!   matters is the slope.
//! - `peer us`, `peer/N1`: (total − owner)/(N − 1), what one more shard
//!   costs per batch, against the owner applying its own batch at N = 1.
//!   Near 1 means a peer's apply costs what the owner's own apply costs (the
//!   mesh adds little); it bounds how many batches per second every shard
//!   can take, whatever N.
//! - `fwd/peer`: (owner − N1)/(N − 1), what forwarding to one more peer
//!   costs the owner per batch.
//! - `batch/s`, `thr/N1`: batches until the last peer applied the last one,
//!   per second of wall time (bounded by the cores shared, and by stalls).
//! - `full`: mesh-full events (0 expected; each would have been a resync in
//!   the server; here the batch is then sent waiting, so none is lost);
//!   `waits`: times the flood sidecar waited for the slowest peer; `stalls`:
//!   see above.
//!
//! N = 1 runs first and last in each table; the baseline is their mean and
//! `drift` how far apart they were (the noise of this host in the run).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};
use glommio::{Latency, LocalExecutorBuilder, Placement, Shares, TaskQueueHandle};
use rskafka::chrono::DateTime;
use sse_kafka::codec::sse::{Render, ValueEncoding};
use sse_kafka::config::{
    EventIdForm, DEFAULT_CACHE_MAX_AGE, DEFAULT_CACHE_PARTITION_BYTES, DEFAULT_CACHE_TOTAL_BYTES,
};
use sse_kafka::kafka::{ToShard, TopicTable};
use sse_kafka::model::{Batch, Offset, Partition, Record, RecordAndOffset, TopicId};
use sse_kafka::ops::metrics::ShardMetrics;
use sse_kafka::shard::cache::Limits;
use sse_kafka::shard::hub::{apply_batch, Hub, StepAside};
use sse_kafka::shard::outbox::Outbox;

/// `sse_kafka::shard::mesh::MESH_CAPACITY`, which is `pub(crate)`: the
/// capacity of each cross-shard queue, in batches.
const MESH_CAPACITY: usize = 1024;

/// As `server::executor`: io_uring registered buffers are not used.
const IO_MEMORY: usize = 64 << 10;

/// The server's live queue (`server::executor::Queues`): the intake from the
/// sidecar and from the peers runs there.
const LIVE_SHARES: usize = 1000;
const LIVE_LATENCY: Duration = Duration::from_millis(1);

/// `server::executor::ROUSE_EVERY` (private): the longest a shard sleeps
/// with work it could run.
const ROUSE_EVERY: Duration = Duration::from_millis(50);

/// The executor's timers that decide when it looks at its queues.
#[derive(Debug, Clone, Copy)]
struct Timers {
    /// The live queue's latency.
    live_latency: Duration,
    /// The rouser's period; `None`: no rouser.
    rouse: Option<Duration>,
}

impl Timers {
    const SERVER: Timers = Timers {
        live_latency: LIVE_LATENCY,
        rouse: Some(ROUSE_EVERY),
    };
}

/// The server's connections queue, where its ticker runs.
const CONNECTION_SHARES: usize = 100;

/// The server's ticker period at the default keep-alive (15 s / 4, clamped
/// to 1 s: `server::executor::tick_for`).
const TICK: Duration = Duration::from_secs(1);

/// `server::SIDECAR_CHANNEL` (private): batches a sidecar may have in
/// flight to its shard.
const SIDECAR_CHANNEL: usize = 1024;

/// A batch as a busy fetch hands it over: 16 records of 150-byte JSON.
const RECORDS_PER_BATCH: usize = 16;
const VALUE_BYTES: usize = 150;

/// The topic's partitions; the owner (shard 0) owns partition 0
/// (`p % shards == shard`, as the cache counts it).
const PARTITIONS: u32 = 4;
const OWNED: Partition = Partition(0);
const TOPIC: TopicId = TopicId(0);

/// Flood flow control: the owner lets no peer fall further behind than half
/// a queue, so no queue fills (a full queue is the server's resync path,
/// which this bench is not about). Checked every `WINDOW_CHECK` batches;
/// while held back the owner sleeps `WINDOW_WAIT` at a time.
const WINDOW: u64 = MESH_CAPACITY as u64 / 2;
const WINDOW_CHECK: usize = 32;
const WINDOW_WAIT: Duration = Duration::from_micros(50);

/// How long an executor waiting to join the mesh sleeps per turn (see
/// [`join`]): short beside a scheduler slice, long beside a turn.
const JOIN_BACKOFF: Duration = Duration::from_micros(100);

/// The watchdog (see [`watch`]): how often it looks, and how long no
/// counter may move before it tells a stall.
const WATCH_EVERY: Duration = Duration::from_millis(10);
const STALL_AFTER: Duration = Duration::from_millis(250);

/// How the owner sends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Regime {
    /// As fast as the slowest peer keeps up (see [`WINDOW`]).
    Flood,
    /// At a fixed rate, batches per second.
    Paced(u32),
}

impl Regime {
    fn name(self) -> &'static str {
        match self {
            Regime::Flood => "flood",
            Regime::Paced(_) => "paced",
        }
    }
}

/// CPU time of one thread: its total from `CLOCK_THREAD_CPUTIME_ID` (the
/// scheduler's exact runtime), its user/system split from
/// `getrusage(RUSAGE_THREAD)`, which the kernel may only sample at ticks
/// (on this host it reads 0 over a millisecond of work): the split is
/// indicative over long runs, the total is exact.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    total: Duration,
    user: Duration,
    sys: Duration,
}

impl Cpu {
    /// The calling thread's CPU time so far.
    fn of_this_thread() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable `timespec`; the call only
        // fills it in.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
        let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: `ru` is a valid, writable `rusage`; RUSAGE_THREAD (Linux)
        // only fills it in.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, ru.as_mut_ptr()) };
        assert_eq!(rc, 0, "getrusage(RUSAGE_THREAD)");
        // SAFETY: zero-initialised, then filled by a successful getrusage.
        let ru = unsafe { ru.assume_init() };
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        Self {
            total: Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
            user: tv(ru.ru_utime),
            sys: tv(ru.ru_stime),
        }
    }

    fn since(self, start: Cpu) -> Cpu {
        Cpu {
            total: self.total.saturating_sub(start.total),
            user: self.user.saturating_sub(start.user),
            sys: self.sys.saturating_sub(start.sys),
        }
    }

    fn add(self, other: Cpu) -> Cpu {
        Cpu {
            total: self.total + other.total,
            user: self.user + other.user,
            sys: self.sys + other.sys,
        }
    }

    /// The system part of the time, as `getrusage` splits it.
    fn sys_share(self) -> f64 {
        self.sys.as_secs_f64() / (self.user + self.sys).as_secs_f64().max(1e-9)
    }
}

/// A batch count on a cache line of its own (the owner reads every peer's).
#[repr(align(128))]
#[derive(Default)]
struct Applied(AtomicU64);

/// What the executors of one measurement share.
struct Run {
    /// Batches each executor has applied.
    applied: Vec<Applied>,
    /// Batches the sidecar has handed to the owner.
    sent: AtomicU64,
    /// Set once every executor has joined the mesh and the clocks run.
    running: std::sync::atomic::AtomicBool,
    /// Executors that applied the last batch.
    done: AtomicUsize,
    /// Peers that applied the last batch.
    peers_done: AtomicUsize,
    /// Every executor waits here after joining the mesh; clocks start after.
    start: Barrier,
}

/// What each executor reports.
#[derive(Debug, Clone, Copy)]
struct Report {
    cpu: Cpu,
    started: Instant,
    finished: Instant,
    mesh_full: u64,
}

/// One shard's state as the intake sees it: `Shard` itself cannot be
/// built outside the crate (its `Streams` is `pub(crate)`), so its hub,
/// topic table and metrics are held here.
struct ShardState {
    hub: RefCell<Hub>,
    topics: TopicTable,
    metrics: ShardMetrics,
    step_aside: StepAside,
    /// Whether live streams joined (their frames are then dropped after
    /// each batch, in place of the write pass).
    with_streams: bool,
    _streams: Vec<Rc<Outbox>>,
}

impl ShardState {
    /// Shard `shard` of `shards`, as `server::executor::build` makes its
    /// hub (the default cache bounds), with `streams` in-memory live
    /// streams that take every record.
    fn new(shard: usize, shards: usize, streams: usize) -> Self {
        let names = ["items".to_owned()];
        let limits = Limits {
            partition_bytes: DEFAULT_CACHE_PARTITION_BYTES,
            total_bytes: DEFAULT_CACHE_TOTAL_BYTES,
            max_age: DEFAULT_CACHE_MAX_AGE,
        };
        let mut hub = Hub::new(&names, limits, shard, shards);
        let metrics = ShardMetrics::default();
        let render = Render {
            value: ValueEncoding::Text,
            id: EventIdForm::Progress,
        };
        let topic = hub.topic_mut(TOPIC);
        // As the sidecar's metadata and the first batch of each partition
        // leave it: every partition's head known, at 0.
        topic.set_partition_count(PARTITIONS);
        for p in 0..PARTITIONS {
            topic.begin_batch(Partition(p), Offset(0), &metrics);
        }
        let outboxes: Vec<Rc<Outbox>> = (0..streams)
            .map(|_| Rc::new(Outbox::in_memory(u32::MAX)))
            .collect();
        for outbox in &outboxes {
            topic.join(Rc::clone(outbox), render, &Default::default());
        }
        Self {
            hub: RefCell::new(hub),
            topics: TopicTable::new(names.to_vec(), 1),
            metrics,
            step_aside: StepAside::default(),
            with_streams: streams > 0,
            _streams: outboxes,
        }
    }

    /// `shard::intake::Intake::apply` (`pub(crate)`), line for line, but for
    /// `Shard::update_ready`, restated on the hub and metrics it reads.
    async fn apply(&self, batch: &Arc<Batch>) {
        if !self.hub.borrow().has_topic(batch.topic) {
            self.hub.borrow_mut().ensure_topics(&self.topics);
        }
        apply_batch(&self.hub, batch, &self.metrics).await;
        if !self.metrics.ready.load(Ordering::Relaxed) && self.hub.borrow().all_ready() {
            self.metrics.ready.store(true, Ordering::Relaxed);
        }
        if self.with_streams {
            // In place of the write pass (`pub(crate)`): the in-memory
            // streams skip what the batch left in their feeds.
            self.hub
                .borrow_mut()
                .topic_mut(batch.topic)
                .clear_pending_writes();
        }
        self.step_aside.after_batch().await;
    }
}

/// `shard::mesh::Forwarder::forward` (`pub(crate)`), line for line, but for
/// a full queue: the server skips the peer and resyncs it later with an
/// announcement; here the batch is counted and sent waiting, so the run
/// stays lossless and comparable. Returns the full queues met.
async fn forward(
    senders: &Senders<Arc<Batch>>,
    forwarded_to: &RefCell<HashMap<(TopicId, Partition), Offset>>,
    batch: &Arc<Batch>,
) -> u64 {
    let key = (batch.topic, batch.partition);
    forwarded_to.borrow_mut().insert(key, batch.to);
    let me = senders.peer_id();
    let mut full = 0;
    for peer in (0..senders.nr_consumers()).filter(|p| *p != me) {
        if senders.try_send_to(peer, Arc::clone(batch)).is_err() {
            full += 1;
            senders
                .send_to(peer, Arc::clone(batch))
                .await
                .expect("peers live until the last batch");
        }
    }
    full
}

/// Blocks the calling thread for `d`. The project bans `std::thread::sleep`
/// (clippy.toml) because it stalls a shard's streams; here the callers are
/// the bench's own threads (the sidecar's pacing, the watchdog) and, on
/// purpose, an executor still joining the mesh (see [`join`]), before any
/// stream or clock exists.
#[allow(clippy::disallowed_methods)]
fn pause(d: Duration) {
    std::thread::sleep(d);
}

/// Joins the mesh without starving the peers it waits for. glommio's join
/// connects the channels one peer after another, and while a peer has not
/// connected its end it polls again on every turn of the executor's loop
/// (its connection wakers are woken every turn): a busy wait. With more
/// executors than cores the spinning executors take the CPU from the very
/// peers they wait for (on 2 cores, N = 16 took from a second to over five
/// minutes). Beside the join this sleeps the thread briefly on every turn,
/// which hands the CPU over. Before the clocks start, so not measured.
async fn join(mesh: MeshBuilder<Arc<Batch>, Full>) -> (Senders<Arc<Batch>>, Receivers<Arc<Batch>>) {
    let joining = std::pin::pin!(mesh.join());
    let backoff = std::pin::pin!(async {
        loop {
            pause(JOIN_BACKOFF);
            futures_lite::future::yield_now().await;
        }
    });
    match futures::future::select(joining, backoff).await {
        futures::future::Either::Left((joined, _)) => joined.expect("join the mesh"),
        futures::future::Either::Right(_) => unreachable!("the backoff never ends"),
    }
}

/// The server's live queue, with `latency` (the server's: [`LIVE_LATENCY`]).
fn live_queue(latency: Duration) -> TaskQueueHandle {
    glommio::executor().create_task_queue(
        Shares::Static(LIVE_SHARES),
        Latency::Matters(latency),
        "live",
    )
}

/// The server's ticker (`shard::ticker`, `pub(crate)`) as far as the
/// executor sees it: a timer every [`TICK`] in a queue of its own. Its work
/// is left out (there are no sockets); its wake-ups are not. Beside it, as
/// in the server, the shard's rouser (`server::executor::rouse`, private):
/// a timer every `rouse` in the default queue, which ends a stall (see the
/// module doc); without it only the ticker does.
fn start_ticker(rouse: Option<Duration>) {
    let queue = glommio::executor().create_task_queue(
        Shares::Static(CONNECTION_SHARES),
        Latency::NotImportant,
        "connections",
    );
    let tick = async {
        loop {
            glommio::timer::sleep(TICK).await;
        }
    };
    glommio::spawn_local_into(tick, queue)
        .expect("the queue lives as long as the executor")
        .detach();
    if let Some(every) = rouse {
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(every).await;
            }
        })
        .detach();
    }
}

/// The sidecar's side: hands the batches to the owner over a bounded flume
/// channel of the server's capacity, as a fetch loop does, at the
/// regime's pace. Its own thread, whose CPU time is not counted (in the
/// server it is the sidecar's, not a shard's). Returns how often the flood
/// waited for the slowest peer.
fn sidecar(
    regime: Regime,
    batches: &[Arc<Batch>],
    to_owner: flume::Sender<ToShard>,
    run: &Run,
) -> u64 {
    let slowest = || {
        run.applied[1..]
            .iter()
            .map(|a| a.0.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX)
    };
    run.start.wait();
    run.running.store(true, Ordering::Release);
    let started = Instant::now();
    let mut window_waits = 0;
    for (i, batch) in batches.iter().enumerate() {
        match regime {
            Regime::Flood => {
                if i % WINDOW_CHECK == 0 {
                    while (i as u64).saturating_sub(slowest()) >= WINDOW {
                        window_waits += 1;
                        pause(WINDOW_WAIT);
                    }
                }
            }
            Regime::Paced(per_second) => {
                let due = started + Duration::from_secs_f64(i as f64 / per_second as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    pause(wait);
                }
            }
        }
        to_owner
            .send(ToShard::Batch(Arc::clone(batch)))
            .expect("the owner takes every batch");
        run.sent.store(i as u64 + 1, Ordering::Release);
    }
    window_waits
}

/// Executor 0: what `Intake::from_sidecar` does with its sidecar's
/// batches (forwards each to the peers, then applies it), until the
/// sidecar's channel closes after the last.
async fn owner(
    mesh: Option<MeshBuilder<Arc<Batch>, Full>>,
    timers: Timers,
    streams: usize,
    from_sidecar: flume::Receiver<ToShard>,
    run: Arc<Run>,
) -> Report {
    let shards = run.applied.len();
    // The receivers stay alive with the senders (no peer sends here).
    let (senders, _receivers) = match mesh {
        Some(mesh) => {
            let (s, r) = join(mesh).await;
            (Some(s), Some(r))
        }
        None => (None, None),
    };
    let live = live_queue(timers.live_latency);
    start_ticker(timers.rouse);
    let shard = Rc::new(ShardState::new(0, shards, streams));
    run.start.wait();
    let started = Instant::now();
    let cpu = Cpu::of_this_thread();
    let intake = {
        let run = Arc::clone(&run);
        async move {
            let forwarded_to = RefCell::new(HashMap::new());
            let (mut mesh_full, mut applied) = (0, 0);
            while let Ok(msg) = from_sidecar.recv_async().await {
                let ToShard::Batch(batch) = msg else {
                    unreachable!("the bench's sidecar sends batches only");
                };
                if let Some(senders) = &senders {
                    mesh_full += forward(senders, &forwarded_to, &batch).await;
                }
                shard.apply(&batch).await;
                applied += 1;
                run.applied[0].0.store(applied, Ordering::Release);
            }
            mesh_full
        }
    };
    let mesh_full = glommio::spawn_local_into(intake, live)
        .expect("the live queue lives as long as the executor")
        .await;
    let cpu = Cpu::of_this_thread().since(cpu);
    let finished = Instant::now();
    run.done.fetch_add(1, Ordering::Release);
    // The senders stay alive until every peer has applied the last batch.
    while run.peers_done.load(Ordering::Acquire) < shards - 1 {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    Report {
        cpu,
        started,
        finished,
        mesh_full,
    }
}

/// Executor `me` ≥ 1: applies what the owner forwards, one receiving task
/// per peer in the live queue, as `Intake::receive_from_peers` does.
async fn peer(
    me: usize,
    mesh: MeshBuilder<Arc<Batch>, Full>,
    timers: Timers,
    streams: usize,
    total: u64,
    run: Arc<Run>,
) -> Report {
    let shards = run.applied.len();
    let (_senders, mut receivers) = join(mesh).await;
    let live = live_queue(timers.live_latency);
    start_ticker(timers.rouse);
    let shard = Rc::new(ShardState::new(me, shards, streams));
    run.start.wait();
    let started = Instant::now();
    let cpu = Cpu::of_this_thread();
    let (done, finished) = futures::channel::oneshot::channel::<Instant>();
    let done = Rc::new(Cell::new(Some(done)));
    let applied = Rc::new(Cell::new(0u64));
    for (_peer, stream) in receivers.streams() {
        let (shard, run, done, applied) = (
            Rc::clone(&shard),
            Arc::clone(&run),
            Rc::clone(&done),
            Rc::clone(&applied),
        );
        let receive = async move {
            while let Some(batch) = stream.recv().await {
                shard.apply(&batch).await;
                let n = applied.get() + 1;
                applied.set(n);
                run.applied[me].0.store(n, Ordering::Release);
                if n == total {
                    if let Some(done) = done.take() {
                        let _ = done.send(Instant::now());
                    }
                }
            }
        };
        glommio::spawn_local_into(receive, live)
            .expect("the live queue lives as long as the executor")
            .detach();
    }
    let finished = finished.await.expect("the last batch arrives");
    let cpu = Cpu::of_this_thread().since(cpu);
    run.peers_done.fetch_add(1, Ordering::Release);
    run.done.fetch_add(1, Ordering::Release);
    Report {
        cpu,
        started,
        finished,
        mesh_full: 0,
    }
}

/// Watches a measurement until every executor applied the last of
/// `total` batches; returns how many stalls it saw: spans of
/// [`STALL_AFTER`] in which no counter moved while some executor had
/// batches handed to it and not applied. Each is told on stderr with the
/// counters.
fn watch(run: &Run) -> u64 {
    let counters = || -> Vec<u64> {
        std::iter::once(run.sent.load(Ordering::Acquire))
            .chain(run.applied.iter().map(|a| a.0.load(Ordering::Acquire)))
            .collect()
    };
    // Some executor holds a batch it has not applied: the owner one the
    // sidecar sent, a peer one the owner applied (and so forwarded).
    let pending = |c: &[u64]| c[0] > c[1] || c[2..].iter().any(|&a| a < c[1]);
    let (mut last, mut moved, mut stalls, mut stalled) = (counters(), Instant::now(), 0, false);
    while run.done.load(Ordering::Acquire) < run.applied.len() {
        pause(WATCH_EVERY);
        let now = counters();
        if now != last || !run.running.load(Ordering::Acquire) {
            (last, moved, stalled) = (now, Instant::now(), false);
        } else if !stalled && moved.elapsed() >= STALL_AFTER && pending(&now) {
            stalled = true;
            stalls += 1;
            eprintln!(
                "cross_shard: stall, {} executors: sent {}, applied (owner first) {:?}",
                run.applied.len(),
                now[0],
                &now[1..]
            );
        }
    }
    stalls
}

/// One measurement: `shards` executors, the batches of `regime`.
#[derive(Debug, Clone, Copy)]
struct Sample {
    shards: usize,
    batches: usize,
    total: Cpu,
    owner: Duration,
    wall: Duration,
    mesh_full: u64,
    window_waits: u64,
    /// Stalls the watchdog saw (see [`watch`]).
    stalls: u64,
}

impl Sample {
    fn per_batch_us(&self, d: Duration) -> f64 {
        d.as_secs_f64() * 1e6 / self.batches as f64
    }
    fn total_us(&self) -> f64 {
        self.per_batch_us(self.total.total)
    }
    fn owner_us(&self) -> f64 {
        self.per_batch_us(self.owner)
    }
    fn sys_share(&self) -> f64 {
        self.total.sys_share()
    }
    fn per_second(&self) -> f64 {
        self.batches as f64 / self.wall.as_secs_f64()
    }
}

fn measure(
    shards: usize,
    regime: Regime,
    timers: Timers,
    streams: usize,
    batches: &Arc<Vec<Arc<Batch>>>,
) -> Sample {
    let run = Arc::new(Run {
        applied: (0..shards).map(|_| Applied::default()).collect(),
        sent: AtomicU64::new(0),
        running: std::sync::atomic::AtomicBool::new(false),
        done: AtomicUsize::new(0),
        peers_done: AtomicUsize::new(0),
        // The executors and the sidecar.
        start: Barrier::new(shards + 1),
    });
    let mesh = (shards > 1).then(|| MeshBuilder::<Arc<Batch>, Full>::full(shards, MESH_CAPACITY));
    let total = batches.len() as u64;
    let (to_owner, from_sidecar) = flume::bounded(SIDECAR_CHANNEL);
    let mut from_sidecar = Some(from_sidecar);
    let handles: Vec<_> = (0..shards)
        .map(|i| {
            let (mesh, run) = (mesh.clone(), Arc::clone(&run));
            let from_sidecar = from_sidecar.take();
            // Not pinned: with more executors than cores they time-share.
            LocalExecutorBuilder::new(Placement::Unbound)
                .name(&format!("shard-{i}"))
                .io_memory(IO_MEMORY)
                .spawn(move || async move {
                    match (from_sidecar, mesh) {
                        (Some(from_sidecar), mesh) => {
                            owner(mesh, timers, streams, from_sidecar, run).await
                        }
                        (None, Some(mesh)) => peer(i, mesh, timers, streams, total, run).await,
                        (None, None) => unreachable!("peers only with a mesh"),
                    }
                })
                .expect("start an executor")
        })
        .collect();
    drop(mesh);
    let window_waits = {
        let (run, batches) = (Arc::clone(&run), Arc::clone(batches));
        std::thread::Builder::new()
            .name("sidecar".into())
            .spawn(move || sidecar(regime, &batches, to_owner, &run))
            .expect("start the sidecar thread")
    };
    let stalls = watch(&run);
    let reports: Vec<Report> = handles
        .into_iter()
        .map(|h| h.join().expect("executor ran"))
        .collect();
    let total_cpu = reports.iter().fold(Cpu::default(), |a, r| a.add(r.cpu));
    let started = reports[0].started;
    let finished = reports.iter().map(|r| r.finished).max().expect("one");
    Sample {
        shards,
        batches: batches.len(),
        total: total_cpu,
        owner: reports[0].cpu.total,
        wall: finished - started,
        mesh_full: reports.iter().map(|r| r.mesh_full).sum(),
        window_waits: window_waits.join().expect("the sidecar ran"),
        stalls,
    }
}

/// Batches 0.. of partition [`OWNED`], chained from offset 0.
fn build_batches(count: usize) -> Vec<Arc<Batch>> {
    (0..count)
        .map(|b| {
            let from = (b * RECORDS_PER_BATCH) as i64;
            let records = (0..RECORDS_PER_BATCH as i64)
                .map(|r| {
                    let offset = from + r;
                    let head = format!("{{\"seq\":{offset},\"ts\":1700000000000,\"pad\":\"");
                    let pad = VALUE_BYTES - head.len() - 2;
                    let value = format!("{head}{}\"}}", "x".repeat(pad)).into_bytes();
                    debug_assert_eq!(value.len(), VALUE_BYTES);
                    RecordAndOffset {
                        record: Record {
                            key: Some(format!("item-{}", offset % 100).into_bytes()),
                            value: Some(value),
                            headers: Vec::new(),
                            timestamp: DateTime::from_timestamp(1_700_000_000, 0).expect("valid"),
                        },
                        offset: Offset(offset),
                    }
                })
                .collect();
            Arc::new(Batch {
                topic: TOPIC,
                partition: OWNED,
                from: Offset(from),
                to: Offset(from + RECORDS_PER_BATCH as i64),
                records,
                skipped: Vec::new(),
                log_start: None,
            })
        })
        .collect()
}

/// What to run, from the environment (and `--json PATH`).
struct Settings {
    executors: Vec<usize>,
    streams: Vec<usize>,
    flood_batches: usize,
    rate: u32,
    paced_batches: usize,
    timers: Timers,
    json: Option<String>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v}: not a list of numbers"))
            })
            .collect(),
        Err(_) => default.to_vec(),
    }
}

impl Settings {
    fn from_env() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let json = args
            .iter()
            .position(|a| a == "--json")
            .and_then(|i| args.get(i + 1).cloned())
            .or_else(|| std::env::var("CROSS_SHARD_JSON").ok());
        // `cargo bench` passes `--bench`; `cargo test --benches` does not:
        // then a smoke run only.
        if !args.iter().any(|a| a == "--bench") {
            return Self {
                executors: vec![2],
                streams: vec![0, 4],
                flood_batches: 500,
                rate: 2000,
                paced_batches: 100,
                timers: Timers::SERVER,
                json,
            };
        }
        Self {
            executors: env_list("CROSS_SHARD_EXECUTORS", &[2, 4, 8, 16]),
            streams: env_list("CROSS_SHARD_STREAMS", &[0, 4]),
            flood_batches: env_or("CROSS_SHARD_BATCHES", 20_000),
            rate: env_or("CROSS_SHARD_RATE", 1000),
            paced_batches: env_or("CROSS_SHARD_PACED_BATCHES", 3000),
            timers: Timers {
                live_latency: Duration::from_millis(env_or(
                    "CROSS_SHARD_LIVE_LATENCY_MS",
                    LIVE_LATENCY.as_millis() as u64,
                )),
                rouse: match env_or("CROSS_SHARD_ROUSE_MS", ROUSE_EVERY.as_millis() as u64) {
                    0 => None,
                    ms => Some(Duration::from_millis(ms)),
                },
            },
            json,
        }
    }
}

fn main() {
    let settings = Settings::from_env();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let all = Arc::new(build_batches(
        settings.flood_batches.max(settings.paced_batches),
    ));
    let mut json = settings
        .json
        .as_ref()
        .map(|path| std::fs::File::create(path).unwrap_or_else(|e| panic!("{path}: {e}")));
    println!(
        "cross_shard: {RECORDS_PER_BATCH} records x {VALUE_BYTES} B per batch, mesh capacity {MESH_CAPACITY}, \
         executors unpinned on {cpus} CPUs; CPU = each executor thread's CPU clock"
    );
    for regime in [Regime::Flood, Regime::Paced(settings.rate)] {
        let count = match regime {
            Regime::Flood => settings.flood_batches,
            Regime::Paced(_) => settings.paced_batches,
        };
        let batches = Arc::new(all[..count].to_vec());
        for &streams in &settings.streams {
            let first = measure(1, regime, settings.timers, streams, &batches);
            let samples: Vec<Sample> = settings
                .executors
                .iter()
                .map(|&n| measure(n, regime, settings.timers, streams, &batches))
                .collect();
            let last = measure(1, regime, settings.timers, streams, &batches);
            let apply = (first.total_us() + last.total_us()) / 2.0;
            let per_second = (first.per_second() + last.per_second()) / 2.0;
            let drift = (last.total_us() - first.total_us()) / apply;
            let rate = match regime {
                Regime::Flood => String::from("as fast as the slowest peer"),
                Regime::Paced(r) => format!("{r} batches/s"),
            };
            println!(
                "\n{} ({rate}), {streams} live streams per shard, {count} batches; \
                 N=1 apply {apply:.2} us/batch (first {:.2}, last {:.2}, drift {:+.1}%)",
                regime.name(),
                first.total_us(),
                last.total_us(),
                drift * 100.0
            );
            println!(
                "{:>3} {:>9} {:>9} {:>5} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7} {:>5} {:>6} {:>6}",
                "N",
                "total us",
                "owner us",
                "sys%",
                "total/N1",
                "peer us",
                "peer/N1",
                "fwd/peer",
                "batch/s",
                "thr/N1",
                "full",
                "waits",
                "stalls"
            );
            for s in std::iter::once(&first)
                .chain(&samples)
                .chain(std::iter::once(&last))
            {
                let peers = s.shards.saturating_sub(1);
                let peer_us = (peers > 0).then(|| (s.total_us() - s.owner_us()) / peers as f64);
                let fwd_us = (peers > 0).then(|| (s.owner_us() - apply) / peers as f64);
                let dash = |v: Option<f64>, digits: usize| {
                    v.map_or("-".to_owned(), |v| format!("{v:.digits$}"))
                };
                println!(
                    "{:>3} {:>9.2} {:>9.2} {:>5.0} {:>8.2} {:>8} {:>8} {:>8} {:>9.0} {:>7.2} {:>5} {:>6} {:>6}",
                    s.shards,
                    s.total_us(),
                    s.owner_us(),
                    s.sys_share() * 100.0,
                    s.total_us() / apply,
                    dash(peer_us, 2),
                    dash(peer_us.map(|p| p / apply), 2),
                    dash(fwd_us, 2),
                    s.per_second(),
                    s.per_second() / per_second,
                    s.mesh_full,
                    s.window_waits,
                    s.stalls
                );
                if let Some(file) = &mut json {
                    let line = serde_json::json!({
                        "bench": "cross_shard",
                        "regime": regime.name(),
                        "rate": match regime { Regime::Paced(r) => Some(r), Regime::Flood => None },
                        "streams": streams,
                        "executors": s.shards,
                        "cpus": cpus,
                        "batches": s.batches,
                        "records_per_batch": RECORDS_PER_BATCH,
                        "value_bytes": VALUE_BYTES,
                        "total_cpu_us_per_batch": s.total_us(),
                        "owner_cpu_us_per_batch": s.owner_us(),
                        "sys_share": s.sys_share(),
                        "peer_cpu_us_per_batch": peer_us,
                        "forward_cpu_us_per_peer": fwd_us,
                        "baseline_apply_us_per_batch": apply,
                        "baseline_drift": drift,
                        "total_ratio_to_n1": s.total_us() / apply,
                        "peer_ratio_to_n1": peer_us.map(|p| p / apply),
                        "batches_per_s": s.per_second(),
                        "throughput_ratio_to_n1": s.per_second() / per_second,
                        "mesh_full": s.mesh_full,
                        "window_waits": s.window_waits,
                        "stalls": s.stalls,
                        "live_latency_ms": settings.timers.live_latency.as_secs_f64() * 1e3,
                        "rouse_ms": settings.timers.rouse.map(|d| d.as_secs_f64() * 1e3),
                    });
                    writeln!(file, "{line}").expect("write the JSON lines");
                }
            }
        }
    }
}
