//! The shard's write pass: whenever deliveries have left groups with frames
//! to write, it writes every member of each such group in one tight loop —
//! the sends to every stream run back to back, which is what the kernel's
//! TCP path does fastest — instead of waking one task per stream; only a
//! stream whose socket is full is left to its own task.
//!
//! It runs as its own task for the life of the shard, when the delivering
//! task gives up the CPU — after it has applied every batch that was
//! waiting, or at a yield inside a long one — so records that arrive while
//! a pass is under way share the next pass: under load each stream gets
//! several frames per `sendmsg` instead of a full pass per record.

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;

use super::group::Group;
use super::hub::Hub;
use super::outbox::Outbox;
use crate::model::TopicId;
use crate::ops::metrics::ShardMetrics;

/// Streams written between checks whether the executor wants the CPU.
const WRITES_PER_YIELD_CHECK: usize = 256;

/// The write pass task (see the module doc). `budget` is
/// `connections.max_queued_bytes`.
pub async fn write_pass(hub: &RefCell<Hub>, budget: usize, metrics: &ShardMetrics) {
    loop {
        poll_fn(|cx| {
            let mut hub = hub.borrow_mut();
            if std::mem::take(&mut hub.writes_pending) {
                Poll::Ready(())
            } else {
                hub.write_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        write_pending(hub, budget, metrics).await;
    }
}

/// Writes every group that deliveries have listed, topic by topic.
pub async fn write_pending(hub: &RefCell<Hub>, budget: usize, metrics: &ShardMetrics) {
    let topics = hub.borrow().topic_count();
    let mut members = Vec::new();
    for t in 0..topics {
        let topic = TopicId(t as u32);
        let groups = hub.borrow_mut().topic_mut(topic).take_to_write();
        for group in groups {
            write_group(hub, topic, &group, budget, metrics, &mut members).await;
        }
    }
}

/// Writes a group's members, yielding like the delivery loop so new
/// connections and new batches are served during a long pass, then drops
/// the frames every member has sent.
///
/// A member that still has more than `budget` bytes waiting is a slow
/// client: it leaves the feed at the current heads, taking along the frames
/// it has not sent (so nothing is lost), and continues as a cursor. The
/// heads and the feed's frames are read together, with no await between:
/// every record below the heads that the stream's filter takes has its
/// frame in the feed.
async fn write_group(
    hub: &RefCell<Hub>,
    topic: TopicId,
    group: &Rc<Group>,
    budget: usize,
    metrics: &ShardMetrics,
    members: &mut Vec<Rc<Outbox>>,
) {
    group.take_dirty();
    group.members_into(members);
    let mut demoted = false;
    for (i, outbox) in members.iter().enumerate() {
        if outbox.is_closed() {
            continue;
        }
        outbox.write_through(metrics);
        if outbox.queued_bytes() > budget && outbox.is_reading(group.feed()) {
            metrics.demotions.inc();
            outbox.demote(hub.borrow().topic(topic).heads().clone());
            demoted = true;
        }
        if (i + 1) % WRITES_PER_YIELD_CHECK == 0 {
            glommio::yield_if_needed().await;
        }
    }
    members.clear();
    if demoted {
        group.retain_readers();
    }
    group.trim();
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;

    use rskafka::chrono::DateTime;

    use super::*;
    use crate::codec::event_id::EventIdForm;
    use crate::codec::sse::{Render, ValueEncoding};
    use crate::model::{Batch, Offset, Partition, Position, Record, RecordAndOffset, Skip};
    use crate::shard::audiences::Selection;
    use crate::shard::cache::Limits;
    use crate::shard::hub::apply_batch;

    const T: TopicId = TopicId(0);
    const RENDER: Render = Render {
        value: ValueEncoding::Text,
        id: EventIdForm::Progress,
    };

    fn record(offset: i64, value: &str) -> RecordAndOffset {
        RecordAndOffset {
            record: Record {
                key: None,
                value: Some(value.as_bytes().to_vec()),
                headers: Default::default(),
                timestamp: DateTime::from_timestamp(0, 0).unwrap(),
            },
            offset: Offset(offset),
        }
    }

    fn batch(partition: u32, from: i64, to: i64, offsets: std::ops::Range<i64>) -> Arc<Batch> {
        Arc::new(Batch {
            topic: T,
            partition: Partition(partition),
            from: Offset(from),
            to: Offset(to),
            records: offsets.map(|o| record(o, &format!("r{o}"))).collect(),
            skipped: Vec::new(),
            log_start: None,
        })
    }

    fn position(offsets: &[i64]) -> Position {
        Position::from_offsets(offsets.iter().copied().map(Offset).collect())
    }

    const NO_LIMITS: Limits = Limits {
        partition_bytes: usize::MAX,
        total_bytes: usize::MAX,
        max_age: std::time::Duration::from_secs(3600),
    };

    /// Runs `f` on a glommio executor with a 2-partition hub whose heads
    /// are announced at 0, and an outbox on one end of a connected socket
    /// pair.
    fn with_hub(
        f: impl FnOnce(
                RefCell<Hub>,
                Rc<Outbox>,
                ShardMetrics,
                UnixStream,
            ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>
            + 'static,
    ) {
        let ex = glommio::LocalExecutorBuilder::default()
            .io_memory(64 << 10)
            .make()
            .unwrap();
        ex.run(async move {
            let (a, peer) = UnixStream::pair().unwrap();
            peer.set_nonblocking(true).unwrap();
            let hub = RefCell::new(Hub::new(&["t".to_owned()], NO_LIMITS, 0, 1));
            hub.borrow_mut().topic_mut(T).set_partition_count(2);
            let metrics = ShardMetrics::default();
            apply_w(&hub, &batch(0, 0, 0, 0..0), 1 << 20, &metrics).await;
            apply_w(&hub, &batch(1, 0, 0, 0..0), 1 << 20, &metrics).await;
            assert!(hub.borrow().topic(T).ready());
            let outbox = Rc::new(Outbox::new(
                crate::sys::socket::ClientSocket::from_fd(a.into()),
                1,
            ));
            f(hub, outbox, metrics, peer).await;
        });
    }

    /// 400 records (1.6 MB with 4 KB values) of partition 0 in one batch.
    fn big_batch(value: impl Fn(i64) -> String) -> Arc<Batch> {
        Arc::new(Batch {
            topic: T,
            partition: Partition(0),
            from: Offset(0),
            to: Offset(400),
            records: (0..400).map(|o| record(o, &value(o))).collect(),
            skipped: Vec::new(),
            log_start: None,
        })
    }

    /// Applies a batch and runs the write pass, as the shard's tasks would.
    async fn apply_w(hub: &RefCell<Hub>, batch: &Arc<Batch>, budget: usize, m: &ShardMetrics) {
        apply_batch(hub, batch, m).await;
        write_pending(hub, budget, m).await;
    }

    /// Every byte the peer can read now.
    fn received_bytes(peer: &mut UnixStream) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match peer.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("reading the peer: {e}"),
            }
        }
        bytes
    }

    /// The data of every event the peer can read now (whole events: the
    /// writes so far ended at a frame's end).
    fn received(peer: &mut UnixStream) -> Vec<String> {
        let bytes = received_bytes(peer);
        let mut events = Vec::new();
        crate::codec::sse::Parser::new()
            .feed(&bytes, |e| events.push(e.data))
            .unwrap();
        events
    }

    #[test]
    fn live_connection_gets_each_record_once() {
        with_hub(|hub, outbox, m, mut peer| {
            Box::pin(async move {
                hub.borrow_mut().topic_mut(T).join(
                    Rc::clone(&outbox),
                    RENDER,
                    &Selection::default(),
                );
                apply_w(&hub, &batch(0, 0, 3, 0..3), 1 << 20, &m).await;
                // Written through by the hub itself: nothing left queued.
                assert_eq!(outbox.queued_frames(), 0);
                assert_eq!(received(&mut peer), ["r0", "r1", "r2"]);
                // An overlapping batch (from < head) delivers only the new records.
                apply_w(&hub, &batch(0, 1, 5, 1..5), 1 << 20, &m).await;
                assert_eq!(received(&mut peer), ["r3", "r4"]);
                assert_eq!(hub.borrow().topic(T).heads(), &position(&[5, 0]));
                assert_eq!(m.events_sent.get(), 5);
            })
        });
    }

    /// A batch with a skipped run: live streams of the partition get
    /// `event:gap` in place, filtered ones too; a batch that is only a
    /// skipped run moves the heads past it.
    #[test]
    fn a_skipped_run_reaches_live_streams_as_a_gap() {
        with_hub(|hub, outbox, m, mut peer| {
            Box::pin(async move {
                hub.borrow_mut().topic_mut(T).join(
                    Rc::clone(&outbox),
                    RENDER,
                    &Selection::default(),
                );
                let mut b = Batch {
                    topic: T,
                    partition: Partition(0),
                    from: Offset(0),
                    to: Offset(6),
                    records: vec![record(0, "r0"), record(5, "r5")],
                    skipped: vec![Skip {
                        from: Offset(1),
                        to: Offset(5),
                    }],
                    log_start: None,
                };
                apply_w(&hub, &Arc::new(b), 1 << 20, &m).await;
                let gap = |from: i64, to: i64| {
                    format!(
                        r#"{{"partition":0,"requested":{from},"resumed_at":{to},"reason":"undecodable record batch"}}"#
                    )
                };
                assert_eq!(
                    received(&mut peer),
                    ["r0".to_owned(), gap(1, 5), "r5".to_owned()]
                );
                b = Batch {
                    topic: T,
                    partition: Partition(0),
                    from: Offset(6),
                    to: Offset(9),
                    records: Vec::new(),
                    skipped: vec![Skip {
                        from: Offset(6),
                        to: Offset(9),
                    }],
                    log_start: None,
                };
                apply_w(&hub, &Arc::new(b), 1 << 20, &m).await;
                assert_eq!(received(&mut peer), [gap(6, 9)]);
                assert_eq!(hub.borrow().topic(T).heads(), &position(&[9, 0]));
                assert_eq!(m.events_sent.get(), 2, "gaps are not records");
            })
        });
    }

    #[test]
    fn full_socket_leaves_the_rest_to_the_writer() {
        with_hub(|hub, outbox, m, mut peer| {
            Box::pin(async move {
                hub.borrow_mut().topic_mut(T).join(
                    Rc::clone(&outbox),
                    RENDER,
                    &Selection::default(),
                );
                // Far more than a socket buffer holds, in one batch.
                let big = big_batch(|_| "x".repeat(4000));
                apply_w(&hub, &big, 1 << 30, &m).await;
                assert!(outbox.queued_bytes() > 0, "the socket took 1.6 MB?");
                // The writer task was woken for the rest.
                assert!(outbox.is_notified());
                // A closed stream is never written, even if listed (its
                // socket is kept open here, so a write would arrive).
                let _socket = outbox.close();
                let before = received(&mut peer).len();
                assert!(before > 0);
                outbox.write_through(&m);
                assert!(received(&mut peer).is_empty());
            })
        });
    }

    /// A stream's socket becomes glommio's only once it must wait: live
    /// writes that fit leave it bare (no io_uring request armed on it),
    /// and a full socket is waited on and drained all the same.
    #[test]
    fn a_socket_is_handed_to_glommio_only_when_it_must_wait() {
        with_hub(|hub, outbox, m, peer| {
            Box::pin(async move {
                hub.borrow_mut().topic_mut(T).join(
                    Rc::clone(&outbox),
                    RENDER,
                    &Selection::default(),
                );
                apply_w(&hub, &batch(0, 0, 3, 0..3), 1 << 20, &m).await;
                assert_eq!(outbox.queued_frames(), 0);
                assert!(!outbox.waits_in_glommio(), "nothing waited yet");
                let big = big_batch(|_| "x".repeat(4000));
                apply_w(&hub, &big, 1 << 30, &m).await;
                assert!(outbox.queued_bytes() > 0, "the socket took 1.6 MB?");
                assert!(!outbox.waits_in_glommio(), "the write pass never waits");
                let mut reader = crate::sys::socket::glommio_unix(peer.into());
                let read_all = async {
                    let mut bytes = Vec::new();
                    let mut buf = vec![0u8; 64 << 10];
                    // Every event ends with a blank line.
                    while bytes.windows(2).filter(|w| w == b"\n\n").count() < 400 {
                        let n = futures_lite::AsyncReadExt::read(&mut reader, &mut buf)
                            .await
                            .unwrap();
                        assert!(n > 0, "the writer closed early");
                        bytes.extend_from_slice(&buf[..n]);
                    }
                    bytes
                };
                let (flushed, bytes) = futures_lite::future::zip(outbox.flush(&m), read_all).await;
                flushed.unwrap();
                assert!(outbox.waits_in_glommio(), "the flush waited for room");
                assert_eq!(outbox.queued_bytes(), 0);
                let mut events = Vec::new();
                crate::codec::sse::Parser::new()
                    .feed(&bytes, |e| events.push(e.data))
                    .unwrap();
                // 0..3, then 3..400 of the big batch (0..3 were sent).
                assert_eq!(events.len(), 400, "every record, once");
                assert_eq!(m.events_sent.get(), 400);
            })
        });
    }

    #[test]
    fn missed_batch_turns_live_connections_into_cursors_at_the_old_heads() {
        with_hub(|hub, outbox, m, mut peer| {
            Box::pin(async move {
                hub.borrow_mut().topic_mut(T).join(
                    Rc::clone(&outbox),
                    RENDER,
                    &Selection::default(),
                );
                apply_w(&hub, &batch(1, 0, 2, 0..2), 1 << 20, &m).await;
                // Batch [2, 7) never arrived (a full mesh queue): the next starts at 7.
                apply_w(&hub, &batch(1, 7, 8, 7..8), 1 << 20, &m).await;
                assert_eq!(outbox.take_demotion(), Some(position(&[0, 2])));
                assert_eq!(
                    received(&mut peer),
                    ["r0", "r1"],
                    "nothing after the gap reached the cursor"
                );
                assert_eq!(hub.borrow().topic(T).live_connections(), 0);
                assert_eq!(hub.borrow().topic(T).heads(), &position(&[0, 8]));
                assert_eq!(m.demotions.get(), 1);
            })
        });
    }

    #[test]
    fn connection_over_budget_leaves_with_every_frame_it_had_not_sent() {
        with_hub(|hub, outbox, m, mut peer| {
            Box::pin(async move {
                hub.borrow_mut().topic_mut(T).join(
                    Rc::clone(&outbox),
                    RENDER,
                    &Selection::default(),
                );
                // 1.6 MB in one batch: the socket takes part, and what is
                // left is over a 64 KiB budget.
                let big = big_batch(|o| format!("r{o}-{}", "x".repeat(4000)));
                apply_w(&hub, &big, 64 << 10, &m).await;
                // It leaves at the heads, with the unsent frames in its own
                // outbox: the feed holds nothing for it any more.
                assert_eq!(outbox.take_demotion(), Some(position(&[400, 0])));
                assert_eq!(hub.borrow().topic(T).live_connections(), 0);
                assert_eq!(m.demotions.get(), 1);
                let feed_frames: usize = hub
                    .borrow()
                    .topic(T)
                    .groups()
                    .map(|g| g.feed().held())
                    .sum();
                assert_eq!(feed_frames, 0, "nobody reads the feed: trimmed");
                // Everything reaches the client, once and in order.
                let mut bytes = Vec::new();
                while outbox.queued_bytes() > 0 {
                    outbox.write_through(&m);
                    bytes.extend(received_bytes(&mut peer));
                }
                let mut got = Vec::new();
                crate::codec::sse::Parser::new()
                    .feed(&bytes, |e| got.push(e.data))
                    .unwrap();
                let want: Vec<String> = (0..400)
                    .map(|o| format!("r{o}-{}", "x".repeat(4000)))
                    .collect();
                assert_eq!(got, want);
                assert_eq!(outbox.queued_bytes(), 0);
            })
        });
    }
}
