//! Intake: what reaches a shard from Kafka. Its own sidecar's messages
//! (metadata, health, batches of the partitions it owns, which are
//! forwarded to the other shards first), and the batches other shards
//! forward over the mesh; each batch is applied to the hub.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use glommio::channels::channel_mesh::Receivers;
use glommio::TaskQueueHandle;

use super::hub::apply_batch;
use super::mesh::Forwarder;
use super::Shard;
use crate::kafka::ToShard;
use crate::model::Batch;

/// Every this many batches the delivering tasks step aside for the write
/// pass (see `write_pass`), which otherwise runs when they wait for the
/// next batch: enough to share one pass among batches that queued up, few
/// enough that a steady inflow cannot hold the writes back.
const BATCHES_PER_WRITE_PASS: u32 = 32;

/// Applies batches for one shard, counting how many in a row.
#[derive(Debug)]
pub struct Intake {
    shard: Rc<Shard>,
    /// Batches applied since the delivering tasks last stepped aside.
    applied_in_a_row: Cell<u32>,
}

impl Intake {
    pub fn new(shard: Rc<Shard>) -> Rc<Self> {
        Rc::new(Self {
            shard,
            applied_in_a_row: Cell::new(0),
        })
    }

    /// Receives the batches other shards forward, one task per peer in
    /// `queue` (the shard's live queue), for the life of the shard.
    pub fn receive_from_peers(
        self: &Rc<Self>,
        mut peers: Receivers<Arc<Batch>>,
        queue: TaskQueueHandle,
    ) {
        for (_peer, stream) in peers.streams() {
            let intake = Rc::clone(self);
            let receive = async move {
                while let Some(batch) = stream.recv().await {
                    intake.apply(&batch).await;
                }
            };
            glommio::spawn_local_into(receive, queue)
                .expect("a shard's task queues live as long as the shard")
                .detach();
        }
    }

    /// The shard's own sidecar's messages, until it stops: batches are
    /// forwarded to the other shards, then applied locally.
    pub async fn from_sidecar(
        self: Rc<Self>,
        sidecar: flume::Receiver<ToShard>,
        forwarder: Option<Rc<Forwarder>>,
    ) {
        let shard = &self.shard;
        while let Ok(msg) = sidecar.recv_async().await {
            match msg {
                ToShard::Meta { topic, partitions } => {
                    let mut hub = shard.hub.borrow_mut();
                    hub.ensure_topics(&shard.topics);
                    hub.topic_mut(topic).set_partition_count(partitions);
                    drop(hub);
                    shard.update_ready();
                }
                ToShard::Health {
                    topic,
                    availability,
                } => {
                    let mut hub = shard.hub.borrow_mut();
                    hub.ensure_topics(&shard.topics);
                    hub.topic_mut(topic)
                        .set_availability(&availability, Instant::now());
                }
                ToShard::Batch(batch) => {
                    if let Some(f) = &forwarder {
                        f.forward(&shard.metrics, &batch);
                    }
                    self.apply(&batch).await;
                }
            }
        }
    }

    async fn apply(&self, batch: &Arc<Batch>) {
        let shard = &self.shard;
        if !shard.hub.borrow().has_topic(batch.topic) {
            shard.hub.borrow_mut().ensure_topics(&shard.topics);
        }
        apply_batch(&shard.hub, batch, &shard.metrics).await;
        shard.update_ready();
        let applied = self.applied_in_a_row.get() + 1;
        if applied >= BATCHES_PER_WRITE_PASS {
            self.applied_in_a_row.set(0);
            futures_lite::future::yield_now().await;
        } else {
            self.applied_in_a_row.set(applied);
        }
    }
}
