//! A topic's metadata watch, one per topic on each sidecar, for the life of
//! the shard: it waits for the topic to exist, tells the shard its partition
//! count, starts a fetch loop for each partition the shard owns, and then
//! refreshes every `kafka.metadata_refresh` to find added partitions and to
//! tell the shard when Kafka stops serving the topic, and when it serves it
//! again. `list_topics` never creates a topic, whatever the broker's
//! auto-create setting.

use std::rc::Rc;
use std::time::Duration;

use rskafka::client::partition::OffsetAt;
use tracing::{debug, info, warn};

use super::messages::{Availability, ToShard};
use super::running::{answered, Running, TopicWatch};
use crate::model::{Partition, TopicId};

/// How often a sidecar polls metadata for a routed topic that does not exist
/// yet (topics auto-create on first produce).
const METADATA_POLL: Duration = Duration::from_millis(500);

impl Running {
    /// Starts the metadata watch of a topic (once).
    pub(super) fn start_watch(self: &Rc<Self>, topic: TopicId) {
        {
            let mut watches = self.watches.borrow_mut();
            if watches.len() > topic.index() {
                return;
            }
            watches.resize_with(topic.index() + 1, Default::default);
        }
        tokio::task::spawn_local(Rc::clone(self).watch(topic));
    }

    /// What the metadata watch of `topic` saw.
    pub(super) fn watch_of(&self, topic: TopicId) -> Rc<TopicWatch> {
        Rc::clone(&self.watches.borrow()[topic.index()])
    }

    /// The watch itself (see the module doc).
    async fn watch(self: Rc<Self>, topic: TopicId) {
        let name = self.spec.topics.name(topic);
        let watch = self.watch_of(topic);
        let mut started = 0u32;
        loop {
            let found = answered(self.client.list_topics()).await.map(|topics| {
                topics
                    .iter()
                    .find(|t| *t.name == *name)
                    .map(|t| t.partitions.len() as u32)
                    .filter(|n| *n > 0)
            });
            let trouble = match found {
                Ok(Some(partitions)) => {
                    watch.found.set(watch.found.get() + 1);
                    if partitions > started {
                        info!(shard = self.spec.shard.0, topic = %name, partitions, "topic metadata loaded");
                        let meta = ToShard::Meta { topic, partitions };
                        if self.spec.to_shard.send_async(meta).await.is_err() {
                            return;
                        }
                        // At start-up, streams begin at the end of the
                        // log; partitions added later are read whole.
                        let from = if started == 0 {
                            OffsetAt::Latest
                        } else {
                            OffsetAt::Earliest
                        };
                        let shards = self.spec.shards;
                        for p in (started..partitions).map(Partition) {
                            if p.index() % shards == self.spec.shard.0 {
                                tokio::task::spawn_local(Rc::clone(&self).fetch_loop(
                                    topic,
                                    name.to_string(),
                                    p,
                                    from,
                                ));
                            }
                        }
                        started = partitions;
                    }
                    None
                }
                Ok(None) => {
                    watch.missing.set(watch.missing.get() + 1);
                    debug!(topic = %name, "topic not found");
                    Some("the topic does not exist".to_owned())
                }
                Err(e) => {
                    self.spec.metrics.kafka_errors.inc();
                    warn!(topic = %name, error = %e, "metadata request failed");
                    Some(format!("kafka does not answer: {e}"))
                }
            };
            if started > 0 && watch.available.replace(trouble.is_none()) != trouble.is_none() {
                let availability = match trouble {
                    None => {
                        info!(topic = %name, "topic available again");
                        Availability::Available
                    }
                    Some(reason) => {
                        warn!(topic = %name, reason, "topic unavailable");
                        Availability::Unavailable(reason)
                    }
                };
                let health = ToShard::Health {
                    topic,
                    availability,
                };
                if self.spec.to_shard.send_async(health).await.is_err() {
                    return;
                }
            }
            if self.shard_gone() {
                return;
            }
            let every = if started == 0 {
                METADATA_POLL.min(self.spec.kafka.metadata_refresh)
            } else {
                self.spec.kafka.metadata_refresh
            };
            tokio::time::sleep(every).await;
        }
    }
}
