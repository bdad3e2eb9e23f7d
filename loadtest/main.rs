//! `sse-kafka-load`: the load generator for sse-kafka. `produce` writes
//! sequenced, timestamped records to a Kafka topic at a fixed rate;
//! `subscribe` holds K SSE connections to the proxy and measures delivery
//! latency, per-connection throughput and exact sequence continuity
//! (including across deliberate `Last-Event-ID` resumes); `run` does both for
//! one fixed window and prints a table on stderr and one JSON object on
//! stdout; `storm` hangs N connections up at once, produces a gap, and times
//! all of them reconnecting together until each has caught up exactly.
//! `subscribe`, `run` and `storm` send bearer tokens to guarded routes
//! with `--token` or `--token-file` (see `tokens`). Every flag has an
//! `SSE_KAFKA_LOAD_*` environment variable.

mod addr;
mod client;
mod produce;
mod report;
mod response;
mod storm;
mod subscribe;
mod target;
mod tokens;
mod track;
mod value;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use produce::{ProduceConfig, ProduceStats, Spread};
use report::Summary;
use storm::StormConfig;
use subscribe::{Live, SubscribeConfig};
use target::Target;
use tokens::Tokens;

/// Progress line refresh period.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Beyond warm-up + window, how long the process may take to wind down
/// (subscriber stop grace, producer drain) before it exits regardless.
const HARD_GRACE: Duration = Duration::from_secs(15);
/// How often the main thread checks whether the workers are done.
const POLL: Duration = Duration::from_millis(50);

#[derive(Parser, Debug)]
#[command(name = "sse-kafka-load", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Produce sequenced JSON records to Kafka.
    Produce {
        #[command(flatten)]
        produce: ProduceArgs,
        /// How long to produce, in seconds.
        #[arg(long, env = "SSE_KAFKA_LOAD_SECONDS", default_value_t = 10.0, value_parser = non_negative)]
        seconds: f64,
    },
    /// Hold SSE connections and measure what arrives.
    Subscribe {
        #[command(flatten)]
        subscribe: SubscribeArgs,
        /// Measurement window after the warm-up, in seconds.
        #[arg(long, env = "SSE_KAFKA_LOAD_SECONDS", default_value_t = 10.0, value_parser = non_negative)]
        seconds: f64,
    },
    /// Produce and subscribe together for one window, then report.
    Run {
        #[command(flatten)]
        produce: ProduceArgs,
        #[command(flatten)]
        subscribe: SubscribeArgs,
        /// Measurement window after the warm-up, in seconds.
        #[arg(long, env = "SSE_KAFKA_LOAD_SECONDS", default_value_t = 10.0, value_parser = non_negative)]
        seconds: f64,
    },
    /// Hang N connections up at once, produce --behind records, reconnect
    /// all N together with Last-Event-ID and time their catch-up.
    Storm {
        #[command(flatten)]
        produce: ProduceArgs,
        #[command(flatten)]
        storm: StormArgs,
    },
}

#[derive(Args, Debug, Clone)]
struct ProduceArgs {
    /// Kafka bootstrap brokers, comma-separated.
    #[arg(
        long,
        env = "SSE_KAFKA_LOAD_BROKERS",
        default_value = "127.0.0.1:9092",
        value_delimiter = ','
    )]
    brokers: Vec<String>,
    /// Topic to produce to (created when missing).
    #[arg(long, env = "SSE_KAFKA_LOAD_TOPIC", default_value = "items")]
    topic: String,
    /// Records per second over all partitions.
    #[arg(long, env = "SSE_KAFKA_LOAD_RATE", default_value_t = 1000)]
    rate: u64,
    /// Exact size of each value in bytes.
    #[arg(long, env = "SSE_KAFKA_LOAD_VALUE_SIZE", default_value_t = 150, value_parser = value_size)]
    value_size: usize,
    /// Distinct record keys; 0 for no key.
    #[arg(long, env = "SSE_KAFKA_LOAD_KEYS", default_value_t = 100)]
    keys: u64,
    /// Partitions of the topic when it has to be created.
    #[arg(long, env = "SSE_KAFKA_LOAD_PARTITIONS", default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..))]
    partitions: i32,
    /// Produce to all partitions or to the first N.
    #[arg(long, env = "SSE_KAFKA_LOAD_PARTITIONS_SPREAD", default_value = "all")]
    partitions_spread: Spread,
    /// Record headers, `k=v,k2=v2`.
    #[arg(long, env = "SSE_KAFKA_LOAD_HEADERS", default_value = "", value_parser = produce::parse_headers)]
    headers: std::collections::BTreeMap<String, Vec<u8>>,
    /// Pin the producer thread to this CPU (default: unpinned), e.g. to keep
    /// it off the CPUs of the proxy and the subscribers.
    #[arg(long, env = "SSE_KAFKA_LOAD_PRODUCER_CPU")]
    producer_cpu: Option<usize>,
    /// Number each partition's records from its high watermark instead of
    /// 0, continuing the sequence of an earlier producer that wrote the
    /// topic alone (e.g. across a broker restart).
    #[arg(long = "continue", env = "SSE_KAFKA_LOAD_CONTINUE")]
    continue_sequence: bool,
}

#[derive(Args, Debug, Clone)]
struct SubscribeArgs {
    /// The SSE endpoint.
    #[arg(
        long,
        env = "SSE_KAFKA_LOAD_URL",
        default_value = "http://127.0.0.1:8080/items"
    )]
    url: String,
    /// Concurrent SSE connections.
    #[arg(long, env = "SSE_KAFKA_LOAD_CONNECTIONS", default_value_t = 100)]
    connections: usize,
    /// CPUs for the subscriber executors (one pinned executor per CPU).
    #[arg(long, env = "SSE_KAFKA_LOAD_CPUS", default_value = "0")]
    cpus: String,
    /// Source addresses to bind, round-robin (e.g. 127.0.0.2-127.0.0.254);
    /// needed beyond ~28k connections to one server address.
    #[arg(long, env = "SSE_KAFKA_LOAD_SOURCE_ADDRESSES")]
    source_addresses: Option<String>,
    /// Seconds before the window during which nothing is measured.
    #[arg(long, env = "SSE_KAFKA_LOAD_WARMUP", default_value_t = 2.0, value_parser = non_negative)]
    warmup: f64,
    /// Fraction of connections that drop and resume with Last-Event-ID at
    /// the middle of the window.
    #[arg(long, env = "SSE_KAFKA_LOAD_DROP_FRACTION", default_value_t = 0.0, value_parser = fraction)]
    drop_fraction: f64,
    /// Extra clients that each connect once during the middle half of the
    /// window and report connect-to-first-byte (then hang up).
    #[arg(long, env = "SSE_KAFKA_LOAD_EXTRA_CONNECTIONS", default_value_t = 0)]
    extra_connections: usize,
    /// Microseconds to keep polling without sleeping after events arrive.
    /// On loopback every wake-up of a sleeping reader is paid by the
    /// sending server (an inter-processor interrupt per packet); spinning
    /// takes that cost off the server, as clients on other hosts would.
    #[arg(long, env = "SSE_KAFKA_LOAD_SPIN_US", default_value_t = 0)]
    spin_us: u64,
    /// Open the connections at most this many at a time: a connection's
    /// first attempt waits until fewer than N others wait for their first
    /// response head (0: all at once). Keeps a burst of K connects inside
    /// the proxy's accept and SYN queues, so the opening rate measures the
    /// proxy, not SYN retransmissions.
    #[arg(long, env = "SSE_KAFKA_LOAD_CONNECT_CONCURRENCY", default_value_t = 0)]
    connect_concurrency: usize,
    #[command(flatten)]
    tokens: TokenArgs,
}

#[derive(Args, Debug, Clone)]
struct StormArgs {
    /// The SSE endpoint of phase 1.
    #[arg(
        long,
        env = "SSE_KAFKA_LOAD_URL",
        default_value = "http://127.0.0.1:8080/items"
    )]
    url: String,
    /// Where every connection reconnects (default: --url), e.g. another
    /// instance.
    #[arg(long, env = "SSE_KAFKA_LOAD_RESUME_URL")]
    resume_url: Option<String>,
    /// Connections that hang up and reconnect together.
    #[arg(long, env = "SSE_KAFKA_LOAD_CONNECTIONS", default_value_t = 1000)]
    connections: usize,
    /// CPUs for the connection threads (one pinned thread per CPU).
    #[arg(long, env = "SSE_KAFKA_LOAD_CPUS", default_value = "0")]
    cpus: String,
    /// Source addresses to bind, round-robin (e.g. 127.0.0.2-127.0.0.60);
    /// needed beyond ~28k connections to one server address.
    #[arg(long, env = "SSE_KAFKA_LOAD_SOURCE_ADDRESSES")]
    source_addresses: Option<String>,
    /// Records to produce between the hang-up and the reconnect.
    #[arg(long, env = "SSE_KAFKA_LOAD_BEHIND", default_value_t = 4000)]
    behind: u64,
    /// Bound of each phase (connect, gap, storm), in seconds.
    #[arg(long, env = "SSE_KAFKA_LOAD_TIMEOUT", default_value_t = 120.0, value_parser = positive)]
    timeout: f64,
    /// The proxy's admin listener (host:port), for the catch-up counters.
    #[arg(long, env = "SSE_KAFKA_LOAD_ADMIN")]
    admin: Option<String>,
    /// The admin listener of the --resume-url instance (default: --admin).
    #[arg(long, env = "SSE_KAFKA_LOAD_RESUME_ADMIN")]
    resume_admin: Option<String>,
    #[command(flatten)]
    tokens: TokenArgs,
}

/// Bearer tokens for guarded routes (see `tokens`). `Debug` by hand: a
/// token must not reach a log line.
#[derive(Args, Clone)]
struct TokenArgs {
    /// A bearer token every connection sends (`authorization: Bearer`).
    /// Prefer the environment variable: a flag shows in the process list.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SSE_KAFKA_LOAD_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    token: Option<String>,
    /// A file of bearer tokens, one a line: connection i sends line i mod n.
    #[arg(long, value_name = "FILE", env = "SSE_KAFKA_LOAD_TOKEN_FILE")]
    token_file: Option<PathBuf>,
}

impl fmt::Debug for TokenArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenArgs")
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("token_file", &self.token_file)
            .finish()
    }
}

impl TokenArgs {
    fn tokens(&self) -> anyhow::Result<Tokens> {
        Ok(match (&self.token, &self.token_file) {
            (Some(token), _) => Tokens::one(token)?,
            (None, Some(path)) => Tokens::from_file(path)?,
            (None, None) => Tokens::default(),
        })
    }
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("'{s}' is not a positive number")),
    }
}

fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("'{s}' is not a non-negative number")),
    }
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("'{s}' is not a fraction between 0 and 1")),
    }
}

fn value_size(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= value::MAX_UNPADDED_LEN => Ok(n),
        _ => Err(format!(
            "'{s}': values need at least {} bytes to hold the stamp",
            value::MAX_UNPADDED_LEN
        )),
    }
}

/// Wall-clock nanoseconds since the Unix epoch: the producer's `ts` and the
/// subscriber's receive time must use the same clock, and only the wall
/// clock is comparable across threads and processes.
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl ProduceArgs {
    fn config(&self, duration: Duration) -> ProduceConfig {
        ProduceConfig {
            brokers: self.brokers.clone(),
            topic: self.topic.clone(),
            rate: self.rate,
            duration,
            value_size: self.value_size,
            keys: self.keys,
            partitions: self.partitions,
            spread: self.partitions_spread,
            headers: self.headers.clone(),
            continue_sequence: self.continue_sequence,
        }
    }
}

impl SubscribeArgs {
    fn config(&self, seconds: f64) -> anyhow::Result<SubscribeConfig> {
        let cpus = sse_kafka::sys::cpus::parse_cpu_list(&self.cpus)?;
        let sources = match &self.source_addresses {
            Some(text) => addr::parse_address_list(text).map_err(anyhow::Error::msg)?,
            None => Vec::new(),
        };
        Ok(SubscribeConfig {
            target: Target::parse(&self.url)?,
            connections: self.connections,
            cpus,
            sources,
            warmup: Duration::from_secs_f64(self.warmup),
            window: Duration::from_secs_f64(seconds),
            drop_fraction: self.drop_fraction,
            extra: self.extra_connections,
            spin: Duration::from_micros(self.spin_us),
            connect_concurrency: self.connect_concurrency,
            tokens: self.tokens.tokens()?,
        })
    }
}

impl StormArgs {
    fn config(&self, value_size: usize) -> anyhow::Result<StormConfig> {
        let target = Target::parse(&self.url)?;
        let resume_target = match &self.resume_url {
            Some(url) => Target::parse(url)?,
            None => target.clone(),
        };
        if resume_target != target && self.resume_admin.is_none() && self.admin.is_some() {
            eprintln!(
                "sse-kafka-load: --resume-url without --resume-admin: the catch-up counters come from --admin"
            );
        }
        let sources = match &self.source_addresses {
            Some(text) => addr::parse_address_list(text).map_err(anyhow::Error::msg)?,
            None => Vec::new(),
        };
        Ok(StormConfig {
            target,
            resume_target,
            connections: self.connections,
            cpus: sse_kafka::sys::cpus::parse_cpu_list(&self.cpus)?,
            sources,
            behind: self.behind,
            timeout: Duration::from_secs_f64(self.timeout),
            admin: self.resume_admin.clone().or_else(|| self.admin.clone()),
            max_line: StormConfig::max_line_for(value_size),
            tokens: self.tokens.tokens()?,
        })
    }
}

fn main() {
    let cli = Cli::parse();
    let code = match execute(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sse-kafka-load: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn execute(command: Command) -> anyhow::Result<i32> {
    raise_fd_limit();
    match command {
        Command::Produce { produce, seconds } => {
            let duration = Duration::from_secs_f64(seconds);
            let stats = Arc::new(ProduceStats::default());
            let stop = Arc::new(AtomicBool::new(false));
            let producer = spawn_producer(&produce, duration, &stats, &stop)?;
            let bar = progress_bar();
            let start = Instant::now();
            while !producer.is_finished() {
                if start.elapsed() > duration + HARD_GRACE {
                    anyhow::bail!("producer did not stop in time");
                }
                thread::sleep(POLL);
                bar.set_message(format!(
                    "produced {}",
                    stats.produced.load(Ordering::Relaxed)
                ));
                bar.tick();
            }
            bar.finish_and_clear();
            let result = producer.join().expect("producer thread panicked");
            let produced = stats.produced.load(Ordering::Relaxed);
            let out = serde_json::json!({
                "produced": produced,
                "produce_failed": stats.failed.load(Ordering::Relaxed),
                "skipped": stats.skipped.load(Ordering::Relaxed),
                "records_per_s": produced as f64 / seconds.max(f64::MIN_POSITIVE),
                // One past the last acknowledged sequence number, per
                // partition: where a subscriber that saw everything stands.
                "heads": stats.heads(),
            });
            println!("{out}");
            result.map(|()| 0)
        }
        Command::Subscribe { subscribe, seconds } => {
            let cfg = subscribe.config(seconds)?;
            let summary = subscribe_with_progress(cfg, None)?;
            print_report(&summary);
            Ok(0)
        }
        Command::Run {
            produce,
            subscribe,
            seconds,
        } => {
            let cfg = subscribe.config(seconds)?;
            // The producer covers warm-up and window; what it sends after
            // the window would not be measured.
            let duration = cfg.warmup + cfg.window;
            let stats = Arc::new(ProduceStats::default());
            let stop = Arc::new(AtomicBool::new(false));
            let producer = spawn_producer(&produce, duration, &stats, &stop)?;
            let summary = subscribe_with_progress(cfg, Some(&stats));
            stop.store(true, Ordering::Relaxed);
            let deadline = Instant::now() + HARD_GRACE;
            while !producer.is_finished() && Instant::now() < deadline {
                thread::sleep(POLL);
            }
            let produced = if producer.is_finished() {
                producer.join().expect("producer thread panicked")
            } else {
                Err(anyhow::anyhow!("producer did not stop in time"))
            };
            let mut summary = summary?;
            summary.produced = Some(stats.produced.load(Ordering::Relaxed));
            summary.produce_failed = stats.failed.load(Ordering::Relaxed);
            print_report(&summary);
            match produced {
                Ok(()) => Ok(0),
                Err(e) => {
                    eprintln!("sse-kafka-load: producer: {e:#}");
                    Ok(1)
                }
            }
        }
        Command::Storm { produce, storm } => {
            let cfg = storm.config(produce.value_size)?;
            // The producer runs through phases 1 and 2, each bounded by the
            // timeout; the storm stops it at the end of phase 2.
            let duration = cfg.timeout * 2;
            let stats = storm::paused_producer_stats();
            let stop = Arc::new(AtomicBool::new(false));
            let handle = spawn_producer(&produce, duration, &stats, &stop)?;
            let report = storm::run(
                cfg,
                storm::Producer {
                    stats,
                    stop,
                    handle,
                },
            )?;
            eprint!("{}", report.table());
            println!("{}", report.to_json());
            Ok(if report.passed() { 0 } else { 1 })
        }
    }
}

fn spawn_producer(
    args: &ProduceArgs,
    duration: Duration,
    stats: &Arc<ProduceStats>,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<thread::JoinHandle<anyhow::Result<()>>> {
    let (stats, stop) = (Arc::clone(stats), Arc::clone(stop));
    let (cfg, cpu) = (args.config(duration), args.producer_cpu);
    thread::Builder::new()
        .name("producer".into())
        .spawn(move || {
            if let Some(cpu) = cpu {
                sse_kafka::sys::cpus::pin_current_thread(cpu)
                    .with_context(|| format!("pinning the producer to CPU {cpu}"))?;
            }
            produce::run_blocking(cfg, stats, stop)
        })
        .context("starting the producer thread")
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
            .expect("constant template is valid"),
    );
    bar
}

/// Runs the subscribers on their own thread while this one draws the
/// progress line; gives up after warm-up + window + `HARD_GRACE`.
fn subscribe_with_progress(
    cfg: SubscribeConfig,
    producer: Option<&ProduceStats>,
) -> anyhow::Result<Summary> {
    let live = Arc::new(Live::default());
    let total = cfg.warmup + cfg.window;
    let (warmup, connections) = (cfg.warmup, cfg.connections);
    let worker = {
        let live = Arc::clone(&live);
        thread::Builder::new()
            .name("subscribers".into())
            .spawn(move || subscribe::run(cfg, live))
            .context("starting the subscriber thread")?
    };
    let bar = progress_bar();
    let start = Instant::now();
    let mut last_tick = start;
    let mut last_events = 0u64;
    while !worker.is_finished() {
        if start.elapsed() > total + HARD_GRACE {
            bar.finish_and_clear();
            anyhow::bail!("subscribers did not stop within {HARD_GRACE:?} after the window");
        }
        thread::sleep(POLL);
        if last_tick.elapsed() < PROGRESS_EVERY {
            bar.tick();
            continue;
        }
        let events = live.events.load(Ordering::Relaxed);
        let rate = (events - last_events) as f64 / last_tick.elapsed().as_secs_f64();
        (last_tick, last_events) = (Instant::now(), events);
        let p99 = live
            .latency
            .lock()
            .map(|h| report::percentiles_ms(&h).p99)
            .unwrap_or(0.0);
        let phase = if start.elapsed() < warmup {
            "warm-up"
        } else if start.elapsed() < total {
            "measuring"
        } else {
            "stopping"
        };
        let produced = producer
            .map(|p| format!("  produced {}", p.produced.load(Ordering::Relaxed)))
            .unwrap_or_default();
        bar.set_message(format!(
            "{phase}  {rate:.0} ev/s  conns {}/{connections}  p99 {p99:.2} ms  errors {}{produced}",
            live.open.load(Ordering::Relaxed),
            live.errors.load(Ordering::Relaxed),
        ));
    }
    bar.finish_and_clear();
    worker.join().expect("subscriber thread panicked")
}

fn print_report(summary: &Summary) {
    eprint!("{}", summary.table());
    println!("{}", summary.to_json());
}

/// Each connection is a file descriptor; the soft limit (often 1024) would
/// cap a run long before the hard limit does.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0
        && limit.rlim_cur < limit.rlim_max
    {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct we pass.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    }
}
