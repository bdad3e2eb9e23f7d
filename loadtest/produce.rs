//! The producer: writes sequenced, timestamped JSON records (see `value`) to
//! one topic at a fixed rate with rskafka. rskafka needs tokio while the
//! subscribers run on glommio, so the producer owns a current-thread tokio
//! runtime on its own thread. Rate limiting is credit based: every tick
//! (1 ms) it sends as many records as the elapsed time allows, so high rates
//! batch several records per tick and a late tick is caught up. Each
//! partition has one task with at most one produce request in flight, which
//! keeps that partition's records in sequence order on the broker.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use rskafka::BackoffConfig;
use tokio::sync::mpsc;

use crate::value::{self, Stamp};

/// Rate-limiter tick: fine enough that records are spread over the second
/// rather than sent in bursts, coarse enough for tokio's timer wheel (1 ms).
const TICK: Duration = Duration::from_millis(1);
/// After a stall, catch up at most this much sending time in one tick, so a
/// long pause does not turn into one giant burst.
const MAX_CATCH_UP: Duration = Duration::from_millis(100);
/// Stop building records when this many are built but not yet acknowledged:
/// the broker is not keeping up, and queueing more only measures the queue.
const MAX_BACKLOG: u64 = 200_000;
/// Records merged into one produce request at most (keeps requests well
/// under Kafka's default 1 MiB message size for small values).
const MAX_RECORDS_PER_REQUEST: usize = 2_000;
/// Time given to in-flight requests after the last tick.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// Kafka's controller deadline for topic creation, in ms.
const CREATE_TOPIC_TIMEOUT_MS: i32 = 5_000;
/// How long to wait for a newly created topic to show up in metadata.
const TOPIC_VISIBLE_TIMEOUT: Duration = Duration::from_secs(10);
const TOPIC_POLL: Duration = Duration::from_millis(200);

/// Which partitions receive records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    All,
    /// The first N partitions (by number).
    First(usize),
}

impl std::str::FromStr for Spread {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Spread::All),
            n => match n.parse::<usize>() {
                Ok(n) if n > 0 => Ok(Spread::First(n)),
                _ => Err(format!("'{s}' is neither 'all' nor a positive count")),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProduceConfig {
    pub brokers: Vec<String>,
    pub topic: String,
    /// Records per second, over all partitions.
    pub rate: u64,
    pub duration: Duration,
    pub value_size: usize,
    /// Distinct record keys (`key-0` … ); 0 sends records without a key.
    pub keys: u64,
    /// Partition count when the topic has to be created.
    pub partitions: i32,
    pub spread: Spread,
    pub headers: BTreeMap<String, Vec<u8>>,
    /// Start each partition's sequence at its high watermark instead of 0:
    /// a producer that wrote the topic alone from offset 0 numbers record
    /// `n` of a partition `n`, so a second one continues the sequence the
    /// first left (perf/soak.sh stops producing, restarts the broker and
    /// goes on, and its subscribers see one unbroken sequence).
    pub continue_sequence: bool,
}

/// Counters shared with the progress display and the report.
#[derive(Debug, Default)]
pub struct ProduceStats {
    /// Records acknowledged by the broker.
    pub produced: AtomicU64,
    /// Records in failed produce requests (their numbers are gaps for the
    /// subscribers).
    pub failed: AtomicU64,
    /// Records not built because the backlog was full.
    pub skipped: AtomicU64,
    /// Built but not yet acknowledged or failed.
    backlog: AtomicU64,
    /// While set, the producer sends nothing and owes nothing: the time
    /// paused is not made up when it resumes (off unless someone sets it).
    pub paused: AtomicBool,
    /// The partitions this run writes (after `--partitions-spread`), set
    /// once the topic is known.
    pub partitions: OnceLock<Vec<u32>>,
    /// Per partition, one past the highest sequence number the broker
    /// acknowledged: once the producer has stopped, the sequence a
    /// subscriber that saw everything has reached.
    heads: Mutex<BTreeMap<u32, u64>>,
    /// Set when the producer thread's work is over (stopped, done or
    /// failed); nothing is acknowledged after it.
    finished: AtomicBool,
    /// Taken briefly after every change that `wait_produced` waits for, so
    /// a waiter cannot miss the notification between its check and its wait.
    progress: Mutex<()>,
    progress_changed: Condvar,
}

/// How `ProduceStats::wait_produced` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducedWait {
    /// At least the requested number of records are acknowledged.
    Reached,
    /// The producer ended first (its duration, a stop or an error).
    ProducerEnded,
    /// The deadline passed first.
    Deadline,
}

impl ProduceStats {
    /// Per partition, one past the highest acknowledged sequence number
    /// (partitions with nothing acknowledged are absent).
    pub fn heads(&self) -> BTreeMap<u32, u64> {
        self.heads.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Blocks until `at_least` records are acknowledged, the producer ends,
    /// or `deadline` passes.
    pub fn wait_produced(&self, at_least: u64, deadline: Instant) -> ProducedWait {
        let Ok(mut guard) = self.progress.lock() else {
            return ProducedWait::ProducerEnded;
        };
        loop {
            if self.produced.load(Ordering::Relaxed) >= at_least {
                return ProducedWait::Reached;
            }
            if self.finished.load(Ordering::Relaxed) {
                return ProducedWait::ProducerEnded;
            }
            let now = Instant::now();
            if now >= deadline {
                return ProducedWait::Deadline;
            }
            guard = match self.progress_changed.wait_timeout(guard, deadline - now) {
                Ok((guard, _)) => guard,
                Err(_) => return ProducedWait::ProducerEnded,
            };
        }
    }

    /// Whether the producer's work is over (stopped, done or failed).
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::Relaxed)
    }

    /// Blocks until the producer's work is over or `deadline` passes; true
    /// when it is over.
    pub fn wait_finished(&self, deadline: Instant) -> bool {
        self.wait_produced(u64::MAX, deadline) == ProducedWait::ProducerEnded
    }

    /// Wakes `wait_produced` after a counter it reads has changed.
    fn notify_progress(&self) {
        // Taking the lock orders this change before a waiter's next check or
        // after its wait began; either way it sees the change.
        drop(self.progress.lock());
        self.progress_changed.notify_all();
    }

    /// Records an acknowledged request for `partition` whose last record
    /// had sequence number `last_seq`.
    pub fn acknowledged(&self, partition: u32, last_seq: Option<u64>, records: u64) {
        if let (Some(seq), Ok(mut heads)) = (last_seq, self.heads.lock()) {
            let head = heads.entry(partition).or_insert(0);
            *head = (*head).max(seq + 1);
        }
        self.produced.fetch_add(records, Ordering::Relaxed);
    }
}

/// Parses `k=v,k2=v2` into record headers.
pub fn parse_headers(text: &str) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut out = BTreeMap::new();
    for item in text.split(',').filter(|s| !s.trim().is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("header '{item}' is not k=v"))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("header '{item}' has an empty name"));
        }
        out.insert(k.to_string(), v.as_bytes().to_vec());
    }
    Ok(out)
}

/// Runs the producer to completion on the calling thread (meant to be a
/// thread of its own). `stop` ends it early.
pub fn run_blocking(
    cfg: ProduceConfig,
    stats: Arc<ProduceStats>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the producer's tokio runtime")?;
    let result = rt.block_on(produce(cfg, Arc::clone(&stats), stop));
    stats.finished.store(true, Ordering::Relaxed);
    stats.notify_progress();
    result
}

/// rskafka retries internally; bound each operation so a dead broker fails
/// the run instead of backing off for minutes.
fn backoff() -> BackoffConfig {
    BackoffConfig {
        init_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        base: 2.0,
        deadline: Some(Duration::from_secs(10)),
    }
}

async fn produce(
    cfg: ProduceConfig,
    stats: Arc<ProduceStats>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let client = ClientBuilder::new(cfg.brokers.clone())
        .backoff_config(backoff())
        .build()
        .await
        .with_context(|| format!("connecting to Kafka at {}", cfg.brokers.join(",")))?;
    let mut partitions = ensure_topic(&client, &cfg).await?;
    if let Spread::First(n) = cfg.spread {
        if n > partitions.len() {
            bail!(
                "--partitions-spread {n} but topic {} has {} partitions",
                cfg.topic,
                partitions.len()
            );
        }
        partitions.truncate(n);
    }
    let _ = stats
        .partitions
        .set(partitions.iter().map(|&p| p as u32).collect());

    let mut clients = Vec::with_capacity(partitions.len());
    for &p in &partitions {
        let pc = client
            .partition_client(cfg.topic.clone(), p, UnknownTopicHandling::Retry)
            .await
            .with_context(|| format!("partition client for {}/{p}", cfg.topic))?;
        clients.push(pc);
    }
    let mut seqs = vec![0u64; partitions.len()];
    if cfg.continue_sequence {
        for (seq, pc) in seqs.iter_mut().zip(&clients) {
            let watermark = pc
                .get_offset(OffsetAt::Latest)
                .await
                .with_context(|| format!("high watermark of {}/{}", cfg.topic, pc.partition()))?;
            *seq = u64::try_from(watermark).context("negative high watermark")?;
        }
    }
    let mut senders = Vec::with_capacity(partitions.len());
    let mut tasks = Vec::with_capacity(partitions.len());
    for pc in clients {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        tasks.push(tokio::spawn(partition_loop(pc, rx, Arc::clone(&stats))));
    }

    let keys: Vec<Vec<u8>> = (0..cfg.keys)
        .map(|k| format!("key-{k}").into_bytes())
        .collect();
    let mut next_partition = 0usize;
    let mut next_key = 0usize;
    let mut batches: Vec<Vec<Record>> = vec![Vec::new(); partitions.len()];
    let max_per_tick = ((cfg.rate as f64 * MAX_CATCH_UP.as_secs_f64()) as u64).max(1);
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let start = Instant::now();
    // Records accounted for so far (sent, skipped or forgiven).
    let mut credited = 0u64;
    loop {
        ticker.tick().await;
        let elapsed = start.elapsed();
        if elapsed >= cfg.duration || stop.load(Ordering::Relaxed) {
            break;
        }
        let due = (cfg.rate as f64 * elapsed.as_secs_f64()) as u64;
        if stats.paused.load(Ordering::Relaxed) {
            credited = due;
            continue;
        }
        let owed = due.saturating_sub(credited);
        let n = owed.min(max_per_tick);
        // Credit beyond the catch-up cap is forgiven, not carried.
        credited += owed;
        if n == 0 {
            continue;
        }
        if stats.backlog.load(Ordering::Relaxed) > MAX_BACKLOG {
            stats.skipped.fetch_add(n, Ordering::Relaxed);
            continue;
        }
        let ts_ns = crate::unix_ns();
        let timestamp = chrono::Utc::now();
        for _ in 0..n {
            let i = next_partition;
            next_partition = (next_partition + 1) % partitions.len();
            let stamp = Stamp {
                partition: partitions[i] as u32,
                seq: seqs[i],
                ts_ns,
            };
            seqs[i] += 1;
            let key = if keys.is_empty() {
                None
            } else {
                next_key = (next_key + 1) % keys.len();
                Some(keys[next_key].clone())
            };
            batches[i].push(Record {
                key,
                value: Some(value::encode(stamp, cfg.value_size)),
                headers: cfg.headers.clone(),
                timestamp,
            });
        }
        stats.backlog.fetch_add(n, Ordering::Relaxed);
        for (batch, tx) in batches.iter_mut().zip(&senders) {
            if !batch.is_empty() {
                // The receiver only goes away if its task panicked.
                let _ = tx.send(std::mem::take(batch));
            }
        }
    }
    drop(senders);
    let drained = tokio::time::timeout(DRAIN_GRACE, async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
    if drained.is_err() {
        eprintln!("producer: in-flight requests still pending after {DRAIN_GRACE:?}");
    }
    Ok(())
}

/// Sends one partition's batches, one request at a time, merging batches
/// that queued up meanwhile.
async fn partition_loop(
    pc: PartitionClient,
    mut rx: mpsc::UnboundedReceiver<Vec<Record>>,
    stats: Arc<ProduceStats>,
) {
    let mut logged = false;
    while let Some(mut batch) = rx.recv().await {
        while batch.len() < MAX_RECORDS_PER_REQUEST {
            match rx.try_recv() {
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        // Records are queued in sequence order: the last is the highest.
        let last_seq = batch
            .last()
            .and_then(|r| r.value.as_deref())
            .and_then(value::parse)
            .map(|stamp| stamp.seq);
        match pc.produce(batch, Compression::NoCompression).await {
            Ok(_) => {
                stats.acknowledged(pc.partition() as u32, last_seq, n);
            }
            Err(e) => {
                stats.failed.fetch_add(n, Ordering::Relaxed);
                if !logged {
                    // Once per partition: a broker outage would flood stderr.
                    eprintln!("producer: partition {}: {e}", pc.partition());
                    logged = true;
                }
            }
        }
        stats.backlog.fetch_sub(n, Ordering::Relaxed);
        stats.notify_progress();
    }
}

/// The topic's partition numbers, creating the topic when missing.
async fn ensure_topic(client: &Client, cfg: &ProduceConfig) -> anyhow::Result<Vec<i32>> {
    let find = || async {
        let topics = client.list_topics().await.context("listing topics")?;
        anyhow::Ok(
            topics
                .into_iter()
                .find(|t| t.name == cfg.topic)
                .map(|t| t.partitions.into_iter().collect::<Vec<i32>>()),
        )
    };
    if let Some(p) = find().await? {
        return Ok(p);
    }
    let created = client
        .controller_client()
        .context("controller client")?
        .create_topic(
            cfg.topic.clone(),
            cfg.partitions,
            1,
            CREATE_TOPIC_TIMEOUT_MS,
        )
        .await;
    if let Err(e) = created {
        // Someone else may have created it meanwhile; the listing decides.
        eprintln!("producer: create topic {}: {e}", cfg.topic);
    }
    let deadline = Instant::now() + TOPIC_VISIBLE_TIMEOUT;
    loop {
        if let Some(p) = find().await? {
            if !p.is_empty() {
                return Ok(p);
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "topic {} not visible after {TOPIC_VISIBLE_TIMEOUT:?}",
                cfg.topic
            );
        }
        tokio::time::sleep(TOPIC_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_one_past_the_highest_acknowledged() {
        let stats = ProduceStats::default();
        stats.acknowledged(0, Some(9), 10);
        stats.acknowledged(3, Some(4), 5);
        stats.acknowledged(0, Some(5), 2); // an older request acknowledged late
        stats.acknowledged(1, None, 1); // a value without a stamp
        let heads: Vec<(u32, u64)> = stats.heads().into_iter().collect();
        assert_eq!(heads, vec![(0, 10), (3, 5)]);
        assert_eq!(stats.produced.load(Ordering::Relaxed), 18);
    }

    #[test]
    fn wait_produced_ends_on_count_producer_end_or_deadline() {
        let stats = Arc::new(ProduceStats::default());
        let past = Instant::now();
        assert_eq!(stats.wait_produced(0, past), ProducedWait::Reached);
        assert_eq!(stats.wait_produced(1, past), ProducedWait::Deadline);
        // Woken from another thread, well before the deadline.
        let deadline = Instant::now() + Duration::from_secs(60);
        let acker = {
            let stats = Arc::clone(&stats);
            std::thread::spawn(move || {
                stats.acknowledged(0, Some(2), 3);
                stats.notify_progress();
            })
        };
        assert_eq!(stats.wait_produced(3, deadline), ProducedWait::Reached);
        acker.join().unwrap();
        assert!(!stats.finished());
        let ender = {
            let stats = Arc::clone(&stats);
            std::thread::spawn(move || {
                stats.finished.store(true, Ordering::Relaxed);
                stats.notify_progress();
            })
        };
        assert!(stats.wait_finished(deadline));
        assert_eq!(
            stats.wait_produced(100, deadline),
            ProducedWait::ProducerEnded
        );
        ender.join().unwrap();
    }

    #[test]
    fn parses_spread() {
        let cases: &[(&str, Option<Spread>)] = &[
            ("all", Some(Spread::All)),
            ("1", Some(Spread::First(1))),
            ("12", Some(Spread::First(12))),
            ("0", None),
            ("-1", None),
            ("some", None),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Spread>().ok(), *want, "{text}");
        }
    }

    #[test]
    fn parses_headers() {
        let h = parse_headers("a=1, b = x=y ,").unwrap();
        assert_eq!(h.get("a").map(Vec::as_slice), Some(&b"1"[..]));
        assert_eq!(h.get("b").map(Vec::as_slice), Some(&b" x=y "[..]));
        assert_eq!(h.len(), 2);
        assert!(parse_headers("").unwrap().is_empty());
        assert!(parse_headers("novalue").is_err());
        assert!(parse_headers("=v").is_err());
    }
}
