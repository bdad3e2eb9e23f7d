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
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
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
    rt.block_on(produce(cfg, stats, stop))
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

    let mut senders = Vec::with_capacity(partitions.len());
    let mut tasks = Vec::with_capacity(partitions.len());
    for &p in &partitions {
        let pc = client
            .partition_client(cfg.topic.clone(), p, UnknownTopicHandling::Retry)
            .await
            .with_context(|| format!("partition client for {}/{p}", cfg.topic))?;
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        tasks.push(tokio::spawn(partition_loop(pc, rx, Arc::clone(&stats))));
    }

    let keys: Vec<Vec<u8>> = (0..cfg.keys)
        .map(|k| format!("key-{k}").into_bytes())
        .collect();
    let mut seqs = vec![0u64; partitions.len()];
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
        match pc.produce(batch, Compression::NoCompression).await {
            Ok(_) => {
                stats.produced.fetch_add(n, Ordering::Relaxed);
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
