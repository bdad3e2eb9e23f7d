//! Opening a topic a request named through a route's topic template: check
//! with Kafka that it exists (a metadata request, which never creates one)
//! unless the process serves it already, add it to the topic table (every
//! shard's sidecar starts watching and fetching it), and wait until this
//! shard has loaded it. A name Kafka said is missing is remembered until
//! the next metadata refresh, so requests for missing names do not become
//! a stream of metadata requests.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use super::plan::{Refusal, UNAVAILABLE_RETRY_AFTER};
use crate::kafka::{SidecarLink, TopicTable};
use crate::model::TopicId;
use crate::shard::Shard;

/// Missing topic names a shard remembers; a flood of distinct names past
/// this is asked about, not remembered.
const MISSING_TOPICS_REMEMBERED: usize = 4096;

/// How long the first request for a topic waits for the shard to load it
/// (metadata and every partition's position) before it gets a 503.
const TOPIC_LOAD_WAIT: Duration = Duration::from_secs(10);

/// A shard's way to open topics requests name.
#[derive(Debug)]
pub struct TopicOpener {
    topics: Arc<TopicTable>,
    sidecar: SidecarLink,
    /// `kafka.metadata_refresh`: how long a missing name is remembered.
    refresh: Duration,
    /// Names Kafka said do not exist, and when.
    missing: RefCell<HashMap<String, Instant>>,
}

impl TopicOpener {
    pub fn new(topics: Arc<TopicTable>, sidecar: SidecarLink, refresh: Duration) -> Self {
        Self {
            topics,
            sidecar,
            refresh,
            missing: RefCell::default(),
        }
    }

    /// The topic named `name`, opened on this shard (see the module doc),
    /// or the HTTP answer to give.
    pub async fn open(&self, shard: &Shard, name: &str) -> Result<TopicId, Refusal> {
        let topic = match self.topics.find(name) {
            Some(topic) => topic,
            None => {
                self.check_exists(shard, name).await?;
                self.topics
                    .register(name)
                    .map_err(|e| Refusal::unavailable(e.to_string(), UNAVAILABLE_RETRY_AFTER))?
            }
        };
        let loaded = poll_fn(|cx| {
            let mut hub = shard.hub.borrow_mut();
            hub.ensure_topics(&self.topics);
            let ts = hub.topic_mut(topic);
            if let Some(outage) = ts.outage() {
                return Poll::Ready(Err(outage.why.clone()));
            }
            if ts.ready() {
                return Poll::Ready(Ok(()));
            }
            ts.wait_for_heads(cx.waker());
            Poll::Pending
        });
        let waited = async {
            glommio::timer::sleep(TOPIC_LOAD_WAIT).await;
            Err("kafka metadata for this topic is not loaded yet".to_owned())
        };
        match futures_lite::future::or(loaded, waited).await {
            Ok(()) => Ok(topic),
            Err(why) => Err(Refusal::unavailable(why, 1)),
        }
    }

    /// Asks Kafka whether `name` exists, unless it said no recently.
    async fn check_exists(&self, shard: &Shard, name: &str) -> Result<(), Refusal> {
        let not_found = || Refusal::new(404, format!("topic '{name}' does not exist"));
        let now = Instant::now();
        if let Some(at) = self.missing.borrow().get(name) {
            if now.saturating_duration_since(*at) < self.refresh {
                return Err(not_found());
            }
        }
        shard.metrics.topic_lookups.inc();
        match self.sidecar.exists(name).await {
            Ok(true) => {
                self.missing.borrow_mut().remove(name);
                Ok(())
            }
            Ok(false) => {
                let mut missing = self.missing.borrow_mut();
                if missing.len() >= MISSING_TOPICS_REMEMBERED {
                    missing.retain(|_, at| now.saturating_duration_since(*at) < self.refresh);
                }
                if missing.len() < MISSING_TOPICS_REMEMBERED {
                    missing.insert(name.to_owned(), now);
                }
                Err(not_found())
            }
            Err(e) => Err(Refusal::unavailable(
                format!("kafka cannot tell whether topic '{name}' exists: {e}"),
                UNAVAILABLE_RETRY_AFTER,
            )),
        }
    }
}
