//! Intake: what reaches a shard from Kafka. Its own sidecar's messages
//! (metadata, health, batches of the partitions it owns, which are
//! forwarded to the other shards first), and the batches other shards
//! forward over the mesh; each batch is applied to the hub.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use glommio::channels::channel_mesh::Receivers;
use glommio::TaskQueueHandle;

use super::hub::{apply_batch, StepAside};
use super::mesh::Forwarder;
use super::Shard;
use crate::kafka::ToShard;
use crate::model::Batch;

/// Applies batches for one shard, stepping aside for its write pass.
#[derive(Debug)]
pub struct Intake {
    shard: Rc<Shard>,
    step_aside: StepAside,
}

impl Intake {
    pub fn new(shard: Rc<Shard>) -> Rc<Self> {
        Rc::new(Self {
            shard,
            step_aside: StepAside::default(),
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
        self.step_aside.after_batch().await;
    }
}
