//! The mesh: every shard forwards the batches of the partitions it owns to
//! every other shard over glommio's channel mesh, created once at start
//! (O(N²) channels, kept for the life of the process, as glommio's own docs
//! advise).
//!
//! Full-queue policy: the owner never waits for a peer. When a peer's queue
//! is full the batch is not sent to it and the partition is marked; a
//! separate task later sends the peer an announcement of the owner's
//! position (an empty batch). The peer sees a batch whose `from` is past its
//! head — a discontinuity — and turns its live streams on that topic into
//! catch-up readers, which fetch the missed records from Kafka. Nothing is
//! lost, the owner is never stalled, and memory stays bounded.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use glommio::channels::channel_mesh::Senders;

use crate::model::{Batch, Offset, Partition, TopicId};
use crate::ops::metrics::ShardMetrics;

/// Capacity of each cross-shard queue, in batches. A batch holds up to a
/// fetch's worth of records, so 1,024 batches absorb long bursts; when a
/// queue is full anyway, see the module doc for the policy.
pub const MESH_CAPACITY: usize = 1024;

/// The owner's side of the mesh.
pub struct Forwarder {
    senders: Senders<Arc<Batch>>,
    /// Per peer: partitions owed an announcement.
    owed: RefCell<HashMap<usize, BTreeSet<(TopicId, Partition)>>>,
    resyncing: RefCell<BTreeSet<usize>>,
    /// The `to` of the last batch forwarded per owned partition.
    forwarded_to: RefCell<HashMap<(TopicId, Partition), Offset>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("peers", &self.senders.nr_consumers())
            .field("owed", &self.owed)
            .field("resyncing", &self.resyncing)
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    pub fn new(senders: Senders<Arc<Batch>>) -> Self {
        Self {
            senders,
            owed: RefCell::default(),
            resyncing: RefCell::default(),
            forwarded_to: RefCell::default(),
        }
    }

    /// Sends `batch` to every other shard without waiting (see the module
    /// doc for a full queue).
    pub fn forward(self: &Rc<Self>, metrics: &ShardMetrics, batch: &Arc<Batch>) {
        let key = (batch.topic, batch.partition);
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
            let announcement = Arc::new(Batch::announcement(topic, partition, at));
            if self.senders.send_to(peer, announcement).await.is_err() {
                break;
            }
        }
        self.resyncing.borrow_mut().remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use glommio::channels::channel_mesh::{Full, MeshBuilder};
    use glommio::{LocalExecutorBuilder, Placement};

    use super::*;

    /// io_uring registered buffers are not used: keep them small.
    const IO_MEMORY: usize = 64 << 10;

    fn batch(from: i64, to: i64) -> Arc<Batch> {
        Arc::new(Batch {
            topic: TopicId(0),
            partition: Partition(3),
            from: Offset(from),
            to: Offset(to),
            records: Vec::new(),
            skipped: Vec::new(),
            log_start: None,
        })
    }

    /// The full-queue policy: the owner never waits; the peer that missed a
    /// batch later receives an announcement of the owner's position, which
    /// its hub sees as a discontinuity (tested in write_pass.rs).
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
                    got.push((b.from.0, b.to.0));
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
