//! One shard's executor: a glommio `LocalExecutor` pinned to its CPU, with
//! its blocking pool fenced to the same CPU. It builds the shard's runtime
//! state ([`Shard`]) and its streams' [`Front`], joins the mesh, starts the
//! shard's tasks (intake, write pass, ticker, the admin listener on shard
//! 0), accepts connections until shutdown, then lets the streams drain.
//!
//! Live delivery comes before catch-up work: the tasks that move live
//! batches to live sockets run in a task queue of their own, ahead of the
//! connections' queue (see [`Queues`]).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::channel_mesh::{Full, MeshBuilder};
use glommio::{
    CpuSet, Latency, LocalExecutorBuilder, Placement, PoolPlacement, Shares, TaskQueueHandle,
};
use tracing::{info, warn};

use crate::config::Config;
use crate::guard::{Gate, KeyHolders};
use crate::kafka::{Request, SidecarLink, ToShard, TopicTable};
use crate::model::{Batch, ShardId, TopicId};
use crate::ops::metrics::ShardMetrics;
use crate::shard::cache::Limits;
use crate::shard::hub::Hub;
use crate::shard::intake::Intake;
use crate::shard::mesh::Forwarder;
use crate::shard::outbox::{Outbox, NO_KEEPALIVE};
use crate::shard::streams::Streams;
use crate::shard::ticker::{self, TickerSettings};
use crate::shard::{write_pass, Shard};
use crate::stream::catchup::{Bounds, Catchup};
use crate::stream::open_topic::TopicOpener;
use crate::stream::plan::Requests;
use crate::stream::routes::Routes;
use crate::stream::{life, Front, Retry};
use crate::sys::{fds, socket};

use super::admission::{Admission, Refused};

/// io_uring registered buffers only serve file DMA, which a network proxy
/// does not do: keep them small.
const IO_MEMORY: usize = 64 << 10;

/// How long shutdown waits for streams to flush before the shard exits.
const DRAIN_DEADLINE: Duration = Duration::from_secs(3);

/// How often shutdown looks whether the streams have drained.
const DRAIN_CHECK: Duration = Duration::from_millis(5);

/// Back-off after a failed `accept` (e.g. EMFILE) so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(20);

/// How soon the live queue wants the CPU once it has work. glommio puts a
/// queue that wakes just behind the one running, which keeps the CPU for
/// this long at most (and gives it up at a task boundary: a catch-up reader
/// steps aside after every chunk); it is also how often the scheduler looks
/// at the other queues while live delivery runs. Small beside the live
/// clients' p99 (tens of ms); a look every millisecond of a long write pass
/// costs an `io_uring_enter`, nothing beside the writes.
const LIVE_LATENCY: Duration = Duration::from_millis(1);

/// The longest a shard sleeps with work it could run (see [`rouse`]).
const ROUSE_EVERY: Duration = Duration::from_millis(50);

/// The live queue's shares: the most glommio gives.
const LIVE_SHARES: usize = 1000;

/// The connections' queue's shares: while both queues have work, live
/// delivery gets ten times the CPU the connections get, and catch-up
/// readers still move (one that falls behind for good meets
/// `slow_client.max_lag`, as it would beside a slow client). A shard that
/// live delivery alone keeps busy leaves the readers little: they catch up
/// once it has room (`perf/resume.sh stall` on a busy 2-core machine: the
/// live p99 while the readers start x1.2-2 of the p99 without them, from
/// x2.3-3.2; all readers stalled some 6 s later).
const CONNECTION_SHARES: usize = 100;

/// The shard's task queues. glommio runs one queue at a time, until it is
/// empty or preempted, and switches only where a task awaits. Every task
/// used to share the default queue, which preempts every 100 ms: a batch
/// from the sidecar waited behind a storm of catch-up readers (each chunk
/// its own turn) until the queue gave up the CPU, 100 ms and more on the
/// live clients' p99 (`perf/resume.sh stall`).
///
/// - `live`: whatever moves live batches to live sockets — the intake from
///   the sidecar and from the mesh peers (and the resync tasks it spawns,
///   which stay in the queue that spawns them) and the write pass.
///   `Latency::Matters` has a wake from another thread (a batch on the
///   sidecar's channel) preempt the running queue at its next task
///   boundary, and bounds the slice that queue still gets to
///   [`LIVE_LATENCY`]. A batch over the mesh is not such a wake (glommio
///   signals a shared channel only to a sleeping executor): it is seen at
///   the running queue's next preemption.
/// - `connections`: each connection's own task — its request, start,
///   catch-up reading, the flushes of a socket the write pass left full,
///   keep-alive writes — and the ticker. The ticker's work grows with the
///   streams open (keep-alives for each, one poll over every socket), not
///   with live traffic, and what it does for the streams (keep-alives, hang
///   ups, waking parked readers) is late by a slice at worst: its place is
///   with them, not ahead of live writes.
///
/// The accept loop and the admin listener stay in the default queue.
#[derive(Debug, Clone, Copy)]
struct Queues {
    live: TaskQueueHandle,
    connections: TaskQueueHandle,
}

impl Queues {
    fn create() -> Self {
        let ex = glommio::executor();
        Self {
            live: ex.create_task_queue(
                Shares::Static(LIVE_SHARES),
                Latency::Matters(LIVE_LATENCY),
                "live",
            ),
            connections: ex.create_task_queue(
                Shares::Static(CONNECTION_SHARES),
                Latency::NotImportant,
                "connections",
            ),
        }
    }
}

/// Spawns a task of the shard into `queue`, detached.
fn spawn_into(queue: TaskQueueHandle, task: impl Future<Output = ()> + 'static) {
    glommio::spawn_local_into(task, queue)
        .expect("a shard's task queues live as long as the shard")
        .detach();
}

/// A timer every [`ROUSE_EVERY`], until the shard ends: it bounds how long
/// the executor can sleep with tasks it could run.
///
/// glommio 0.9 looks for preemption before it runs any task queue, and a
/// preemption already due then reads as "nothing to run": the executor
/// parks with runnable tasks queued until a timer or an I/O completion
/// wakes it. A preemption is due when the preempt timer (the live queue's
/// [`LIVE_LATENCY`]) expired while the thread was off the CPU, or when
/// another thread's wake or the throughput timer wrote the executor's
/// eventfd just then: a batch from the sidecar or a peer shard then waited
/// for the ticker, up to a second (glommio/glommio#53, fixed after 0.9,
/// the last release). With this timer it waits [`ROUSE_EVERY`] at most:
/// `cargo bench --bench cross_shard` at N = 16 on 2 cores had no stall with
/// it and one without (`CROSS_SHARD_ROUSE_MS=0`), where the peer's
/// throughput fell 2.5 times. Cost: 20 wake-ups a second of an idle shard,
/// each ~0.1 ms of CPU on this VM (sleeping costs glommio a membarrier):
/// an idle 2-shard proxy went from 6.4 to 11.2 ms of CPU per second
/// (`perf/idle_cpu.sh`, 3 rounds each). A busy shard is awake anyway.
async fn rouse() {
    loop {
        glommio::timer::sleep(ROUSE_EVERY).await;
    }
}

/// State every shard starts from: read-only, but for the process-wide
/// connection count.
#[derive(Debug)]
pub struct Shared {
    pub config: Arc<Config>,
    pub topics: Arc<TopicTable>,
    pub metrics: Arc<[Arc<ShardMetrics>]>,
    pub admission: Arc<Admission>,
    /// The guards' keys, shared by the shards.
    pub keys: Arc<KeyHolders>,
}

impl Shared {
    /// With the warning to log when the descriptor limit lowers the
    /// connection cap.
    pub fn new(config: Config, shards: usize) -> (Self, Option<String>) {
        let topics = Arc::new(TopicTable::new(config.topics(), config.kafka.max_topics));
        let metrics: Arc<[Arc<ShardMetrics>]> = (0..shards)
            .map(|_| Arc::new(ShardMetrics::default()))
            .collect();
        let fd_limit = fds::descriptor_limit().unwrap_or(None);
        let (admission, warning) = Admission::new(&config.connections, fd_limit);
        let keys = Arc::new(KeyHolders::new(&config.guards, Arc::clone(&metrics)));
        let shared = Self {
            keys,
            config: Arc::new(config),
            topics,
            metrics,
            admission: Arc::new(admission),
        };
        (shared, warning)
    }
}

/// A warning logged at most once per interval, with the count of those
/// left out: a storm of failed accepts (the descriptor table full) is one
/// line a second, not a hundred.
struct Throttled {
    next: Instant,
    suppressed: u64,
}

impl Throttled {
    const EVERY: Duration = Duration::from_secs(1);

    fn new() -> Self {
        Self {
            next: Instant::now(),
            suppressed: 0,
        }
    }

    /// Whether to log now; if so, how many were left out since the last.
    fn due(&mut self, now: Instant) -> Option<u64> {
        if now < self.next {
            self.suppressed += 1;
            return None;
        }
        self.next = now + Self::EVERY;
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Sent to a shard by the signal thread.
#[derive(Debug)]
pub enum Control {
    Shutdown,
}

/// Everything one shard is started with.
#[derive(Debug)]
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

/// How often the keep-alive ticker runs: a quarter of the shortest
/// keep-alive, so a comment goes out at most 25% late, clamped so the ticker
/// neither spins nor lags a long interval.
fn tick_for(routes: &Routes) -> Duration {
    (routes.shortest_keepalive() / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// The shard's runtime state and its streams' front.
fn build(spec: &ShardSpec) -> (Rc<Shard>, Rc<Front>) {
    let shared = &spec.shared;
    let config = &shared.config;
    let routes = Routes::new(Arc::clone(config), &shared.topics);
    let names: Vec<String> = (0..shared.topics.len())
        .map(|t| shared.topics.name(TopicId(t as u32)).to_string())
        .collect();
    let limits = Limits {
        partition_bytes: config.cache.partition_bytes,
        total_bytes: config.cache.total_bytes,
        max_age: config.cache.max_age,
    };
    let shard = Rc::new(Shard {
        id: spec.id,
        hub: std::cell::RefCell::new(Hub::new(&names, limits, spec.id.0, spec.shards)),
        metrics: Arc::clone(&shared.metrics[spec.id.0]),
        streams: Streams::new(tick_for(&routes)),
        topics: Arc::clone(&shared.topics),
    });
    let sidecar = SidecarLink::new(spec.requests.clone());
    let bounds = Bounds {
        max_lag: config.slow_client.max_lag,
        unavailable_timeout: config.kafka.unavailable_timeout,
    };
    let front = Rc::new(Front {
        requests: Requests::new(
            routes,
            Gate::new(
                &config.guards,
                Arc::clone(&shared.keys),
                Arc::clone(&shared.metrics[spec.id.0]),
            ),
            Arc::clone(&shared.topics),
        ),
        opener: TopicOpener::new(
            Arc::clone(&shared.topics),
            sidecar.clone(),
            config.kafka.metadata_refresh,
        ),
        catchup: Rc::new(Catchup::new(sidecar, bounds)),
        retry: Retry::new(config.retry, config.retry_jitter),
        nodelay: config.connections.nodelay,
    });
    (shard, front)
}

async fn run(spec: ShardSpec) {
    let (shard, front) = build(&spec);
    let shared = Arc::clone(&spec.shared);
    let queues = Queues::create();
    let intake = Intake::new(Rc::clone(&shard));
    let mut forwarder = None;
    if let Some(mesh) = spec.mesh {
        match mesh.join().await {
            Ok((senders, receivers)) => {
                intake.receive_from_peers(receivers, queues.live);
                forwarder = Some(Rc::new(Forwarder::new(senders)));
            }
            Err(e) => {
                warn!(shard = shard.id.0, error = ?e, "could not join the shard mesh");
                return;
            }
        }
    }

    // With no topic in the config (every route names its own per request)
    // there is nothing to wait for.
    shard.update_ready();
    spawn_into(
        queues.live,
        Rc::clone(&intake).from_sidecar(spec.from_sidecar, forwarder),
    );
    spawn_into(queues.live, {
        let shard = Rc::clone(&shard);
        let budget = shared.config.connections.max_queued_bytes;
        async move { write_pass::write_pass(&shard.hub, budget, &shard.metrics).await }
    });
    let settings = TickerSettings {
        keepalive: shared.config.keepalive,
        unavailable_timeout: shared.config.kafka.unavailable_timeout,
    };
    spawn_into(queues.connections, ticker::run(Rc::clone(&shard), settings));
    let rouser = glommio::spawn_local(rouse());
    if shard.id.0 == 0 {
        glommio::spawn_local(crate::ops::notify::when_ready(Arc::clone(&shared.metrics))).detach();
    }
    if let Some(admin) = spec.admin {
        let admin = socket::glommio_listener(admin);
        glommio::spawn_local(crate::ops::admin::serve(admin, Arc::clone(&shared.metrics))).detach();
    }

    let listener = socket::ClientListener::new(spec.listener);
    let accept = async {
        let mut accept_failed = Throttled::new();
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let ip = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
                    match shared.admission.admit(ip) {
                        Ok(admitted) => {
                            // No keep-alive until the stream head is out (see `life::begin`).
                            let outbox = Rc::new(Outbox::new(stream, NO_KEEPALIVE));
                            // Started here if it can be at once; else its
                            // task is queued behind the connections' work,
                            // not run in the accept loop's own queue. The
                            // count is held by the stream (see `life::accept`).
                            life::accept(&shard, &front, outbox, admitted, queues.connections);
                            // Live delivery comes first (see `Queues`).
                            glommio::yield_if_needed().await;
                        }
                        Err(refused) => {
                            match refused {
                                Refused::Full => shard.metrics.refused_full.inc(),
                                Refused::PerIp => shard.metrics.refused_per_ip.inc(),
                            }
                            stream.answer_now(&refused.response());
                        }
                    }
                }
                Err(e) => {
                    if let Some(suppressed) = accept_failed.due(Instant::now()) {
                        warn!(shard = shard.id.0, error = %e, suppressed, "accept failed");
                    }
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
    shard.streams.shut_down();
    let deadline = Instant::now() + DRAIN_DEADLINE;
    while shard.metrics.connections_open.get() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(DRAIN_CHECK).await;
    }
    drop(rouser);
    info!(shard = shard.id.0, "shard stopped");
}
