//! The live fetch loop of one partition the shard owns: it starts at the
//! partition's latest (or, for a partition added later, earliest) offset,
//! long-polls, and sends every batch to the shard, chained so the shard's
//! heads pass every offset. Errors are logged, counted and retried with
//! backoff, never a crash; through a broker restart the loop keeps its
//! position, so fetching resumes exactly where it stopped. A log that was
//! truncated or replaced under it (retention, a topic deleted and created
//! again) is read again from its earliest offset, and the shard is told
//! with an announcement.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::partition::{OffsetAt, PartitionClient};
use tracing::warn;

use super::error::FetchError;
use super::fetcher::Lane;
use super::messages::ToShard;
use super::running::{clamp_i32, offset_at, partition_client, Running, RETRY_INITIAL};
use crate::model::{Batch, Offset, Partition, Skip, TopicId};

/// Where a partition's fetch loop is.
#[derive(Debug, Clone, Copy)]
struct FetchPosition {
    /// The end of the last batch sent to the shard, where the next one
    /// starts (a partition's batches chain, see [`Batch`]).
    next: Offset,
    /// Where the next fetch asks from: `next`, or past the records nobody
    /// sees (transaction markers, aborted transactions) that followed it.
    fetch_at: Offset,
}

impl FetchPosition {
    fn at(offset: Offset) -> Self {
        Self {
            next: offset,
            fetch_at: offset,
        }
    }
}

/// Which partition a fetch loop reads.
#[derive(Debug, Clone, Copy)]
struct Place<'a> {
    topic: TopicId,
    name: &'a str,
    partition: Partition,
}

/// Why a fetch loop goes back to the earliest offset (logged).
#[derive(Debug, Clone, Copy)]
enum Restart {
    /// Records were deleted under it, or the topic was recreated.
    OutOfRange,
    /// Brokers that answer past the end with nothing instead of
    /// OFFSET_OUT_OF_RANGE (like nisshi): the log ends below the position.
    LogEndsBelow,
    /// The topic was gone and is back with a new log.
    Replaced,
}

impl Restart {
    fn why(self) -> &'static str {
        match self {
            Restart::OutOfRange => "the fetch offset is out of range",
            Restart::LogEndsBelow => "the log ends below the fetch position",
            Restart::Replaced => "the topic is back with a new log",
        }
    }
}

impl Running {
    /// The fetch loop (see the module doc).
    pub(super) async fn fetch_loop(
        self: Rc<Self>,
        topic: TopicId,
        name: String,
        partition: Partition,
        start: OffsetAt,
    ) {
        let at = Place {
            topic,
            name: &name,
            partition,
        };
        let mut delay = RETRY_INITIAL;
        let pc = loop {
            match partition_client(&self.client, &name, partition).await {
                Ok(pc) => break pc,
                Err(e) => self.backoff(&name, partition, &e, &mut delay).await,
            }
            if self.shard_gone() {
                return;
            }
        };
        let mut pos = loop {
            match offset_at(&pc, start).await {
                Ok(offset) => break FetchPosition::at(offset),
                Err(e) => self.backoff(&name, partition, &e, &mut delay).await,
            }
            if self.shard_gone() {
                return;
            }
        };
        if !self.announce(at, pos.next).await {
            return;
        }
        let max_bytes = clamp_i32(self.spec.kafka.fetch_max_bytes);
        let max_wait = i32::try_from(self.spec.kafka.fetch_max_wait.as_millis())
            .unwrap_or(i32::MAX)
            .max(1);
        let fetch_from = |offset| {
            self.fetcher.fetch(
                Lane::live(partition),
                &name,
                partition,
                offset,
                max_bytes,
                max_wait,
            )
        };
        // The last record delivered (offset, timestamp): tells whether the
        // log is still the same one after the topic went missing.
        let mut last_seen: Option<(Offset, i64)> = None;
        // The partition's log start as last told to the shard.
        let mut log_start: Option<Offset> = None;
        loop {
            match fetch_from(pos.fetch_at).await {
                Ok(answer) => {
                    delay = RETRY_INITIAL;
                    // Records below it were deleted (retention,
                    // DeleteRecords): the shards' caches must not serve them.
                    let moved = answer
                        .log_start
                        .filter(|&start| log_start.is_none_or(|known| start > known));
                    if moved.is_some() {
                        log_start = moved;
                    }
                    let records = answer.records;
                    if let Some(r) = records.last() {
                        last_seen = Some((r.offset, r.record.timestamp.timestamp_millis()));
                    }
                    // Batches that cannot be decoded: logged and counted
                    // here, once (the live loop meets each batch once);
                    // their offsets go on as skipped, with the records.
                    let skipped: Vec<Skip> = answer
                        .skipped
                        .iter()
                        .map(|s| {
                            self.spec.metrics.batches_skipped.inc();
                            warn!(topic = %name, partition = partition.0, from = s.from.0, to = s.to.0, error = %s.why, "skipping a record batch that cannot be decoded");
                            s.range()
                        })
                        .collect();
                    let end = records
                        .last()
                        .map(|r| r.offset.next())
                        .max(skipped.last().map(|s| s.to));
                    let Some(end) = end else {
                        // Only records nobody sees (transaction markers,
                        // aborted transactions): fetch past them, or Kafka
                        // answers the same again at once.
                        pos.fetch_at = pos.fetch_at.max(answer.next_offset);
                        if answer.high_watermark >= Offset::ZERO
                            && answer.high_watermark < pos.fetch_at
                        {
                            // The log ends below our position: the topic
                            // was deleted and created again.
                            self.spec.metrics.kafka_errors.inc();
                            let restart = Restart::LogEndsBelow;
                            if !self
                                .restart_at_earliest(&pc, at, &mut pos, &mut delay, restart)
                                .await
                            {
                                return;
                            }
                        } else if moved.is_some() {
                            // Nothing new to send but the log start: a
                            // notice at the fetch position, where the heads
                            // are.
                            let notice = Batch {
                                log_start: moved,
                                ..Batch::announcement(topic, partition, pos.next)
                            };
                            if !self.send(notice).await {
                                return;
                            }
                        }
                        continue;
                    };
                    // The batch chains on to the last one: it covers the
                    // invisible records skipped since, too.
                    let from = pos.next;
                    pos.next = end;
                    pos.fetch_at = pos.next.max(answer.next_offset);
                    self.spec.metrics.records_fetched.add(records.len() as u64);
                    let batch = Batch {
                        topic,
                        partition,
                        from,
                        to: pos.next,
                        records,
                        skipped,
                        log_start: moved,
                    };
                    if !self.send(batch).await {
                        return;
                    }
                }
                Err(FetchError::OffsetOutOfRange) => {
                    // Records were deleted under us (retention: the position
                    // is below the earliest offset), or the topic was
                    // recreated (the position is past its end): either way
                    // continue from the earliest record Kafka holds. Readers
                    // behind a forward jump see the discontinuity and catch
                    // up; a backward jump resets the partition (see hub).
                    self.spec.metrics.kafka_errors.inc();
                    let restart = Restart::OutOfRange;
                    if !self
                        .restart_at_earliest(&pc, at, &mut pos, &mut delay, restart)
                        .await
                    {
                        return;
                    }
                }
                Err(FetchError::UnknownTopicOrPartition) => {
                    // The topic is gone. Asking again would make brokers
                    // that auto-create topics create it anew: wait until
                    // the metadata watch sees it again.
                    self.spec.metrics.kafka_errors.inc();
                    let watch = self.watch_of(topic);
                    let seen = watch.found.get();
                    let missing = watch.missing.get();
                    warn!(topic = %name, partition = partition.0, "topic or partition unknown to kafka; waiting for metadata");
                    while watch.found.get() == seen {
                        if self.shard_gone() {
                            return;
                        }
                        tokio::time::sleep(self.spec.kafka.metadata_refresh).await;
                    }
                    let replaced = watch.missing.get() != missing || {
                        // The metadata may not have caught the topic
                        // missing: compare the last record delivered with
                        // what the log holds at its offset now.
                        match last_seen {
                            Some((offset, timestamp)) => match fetch_from(offset).await {
                                Ok(answer) => !answer.records.iter().any(|r| {
                                    r.offset == offset
                                        && r.record.timestamp.timestamp_millis() == timestamp
                                }),
                                Err(FetchError::OffsetOutOfRange) => true,
                                // Unknown: stay; a log that is shorter
                                // than our position is still noticed.
                                Err(_) => false,
                            },
                            None => false,
                        }
                    };
                    if !replaced {
                        // A spurious error (brokers report it briefly after
                        // creating a topic): go on where we were.
                        continue;
                    }
                    // It exists again: a new log, read from its start.
                    let restart = Restart::Replaced;
                    if !self
                        .restart_at_earliest(&pc, at, &mut pos, &mut delay, restart)
                        .await
                    {
                        return;
                    }
                }
                Err(e) => self.backoff(&name, partition, &e, &mut delay).await,
            }
            if self.shard_gone() {
                return;
            }
        }
    }

    /// Moves a fetch loop to the earliest offset Kafka holds (its log was
    /// truncated or replaced) and announces the new position to the shard.
    /// A failed look-up backs off and leaves `pos` as it was (the loop
    /// meets the same condition again). Returns false when the shard is
    /// gone.
    async fn restart_at_earliest(
        &self,
        pc: &PartitionClient,
        at: Place<'_>,
        pos: &mut FetchPosition,
        delay: &mut Duration,
        restart: Restart,
    ) -> bool {
        match offset_at(pc, OffsetAt::Earliest).await {
            Ok(earliest) => {
                warn!(topic = %at.name, partition = at.partition.0, from = pos.fetch_at.0, earliest = earliest.0, why = restart.why(), "reading the partition from its earliest offset");
                *pos = FetchPosition::at(earliest);
                self.announce(at, earliest).await
            }
            Err(e) => {
                self.backoff(at.name, at.partition, &e, delay).await;
                true
            }
        }
    }

    /// Tells the shard the partition's fetch position (an empty batch).
    /// Returns false when the shard is gone.
    async fn announce(&self, at: Place<'_>, offset: Offset) -> bool {
        self.send(Batch::announcement(at.topic, at.partition, offset))
            .await
    }

    /// Sends a batch to the shard. Returns false when the shard is gone.
    async fn send(&self, batch: Batch) -> bool {
        self.spec
            .to_shard
            .send_async(ToShard::Batch(Arc::new(batch)))
            .await
            .is_ok()
    }
}
