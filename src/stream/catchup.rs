//! What catch-up readers share on a shard: the Kafka fetches in flight for
//! them, their turns to encode, and the settings that bound them.
//!
//! Positions the cache does not hold are fetched from Kafka through the
//! shard's sidecar: a reader that needs a range another reader is already
//! fetching waits for that fetch, and each partition has a bounded number
//! of fetches in flight, so a reconnect storm becomes a bounded number of
//! broker fetches whatever the number of clients.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{FutureExt, Shared};
use smallvec::SmallVec;

use crate::config::MaxLag;
use crate::kafka::{KafkaError, OffsetQuery, SidecarLink};
use crate::model::{Batch, Offset, Partition, TopicId};
use crate::shard::Shard;

/// Cursors of a shard that encode at the same time (see `cursor`).
pub const CATCHUP_SLOTS: u64 = 32;

/// Kafka fetches in flight per partition per shard, however many cursors
/// wait: a reconnect storm must not become a fetch storm.
const FETCHES_PER_PARTITION: usize = 2;

/// What a shared Kafka fetch gives every cursor waiting for it.
#[derive(Debug, Clone)]
pub struct Backfilled {
    /// The batch now holding the requested offset (cached if it fit), or
    /// `None` if Kafka returned nothing at or after it.
    pub batch: Option<Arc<Batch>>,
    pub high_watermark: Offset,
    /// Past the last batch Kafka returned: with `batch` `None`, the fetch's
    /// offsets up to here hold no visible record.
    pub next_offset: Offset,
}

type FetchResult = Result<Backfilled, KafkaError>;
type FetchFuture = Pin<Box<dyn Future<Output = FetchResult>>>;
type SharedFetch = Shared<FetchFuture>;
type InFlight = SmallVec<[(Offset, SharedFetch); FETCHES_PER_PARTITION]>;
type LookupFuture = Pin<Box<dyn Future<Output = Result<Offset, KafkaError>>>>;
type SharedLookup = Shared<LookupFuture>;

/// How far behind a reader may fall, and how long a topic may be
/// unavailable, before its stream ends.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// `slow_client.max_lag`.
    pub max_lag: MaxLag,
    /// `kafka.unavailable_timeout`.
    pub unavailable_timeout: Duration,
}

/// The shard's catch-up readers' shared state.
pub struct Catchup {
    pub sidecar: SidecarLink,
    pub bounds: Bounds,
    /// Turns for catch-up readers to encode (see `cursor::catch_up`).
    pub slots: glommio::sync::Semaphore,
    /// The Kafka fetches in flight, per partition, keyed by the offset
    /// each starts at.
    inflight: RefCell<HashMap<(TopicId, Partition), InFlight>>,
    /// The offset look-ups in flight, per partition and query.
    lookups: RefCell<HashMap<(TopicId, Partition, OffsetQuery), SharedLookup>>,
}

impl std::fmt::Debug for Catchup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catchup")
            .field("bounds", &self.bounds)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl Catchup {
    pub fn new(sidecar: SidecarLink, bounds: Bounds) -> Self {
        Self {
            sidecar,
            bounds,
            slots: glommio::sync::Semaphore::new(CATCHUP_SLOTS),
            inflight: RefCell::default(),
            lookups: RefCell::default(),
        }
    }

    /// Fetches in flight (tests).
    pub fn in_flight(&self) -> usize {
        self.inflight.borrow().values().map(SmallVec::len).sum()
    }

    /// The records at `at` of a partition the cache does not hold: joins a
    /// fetch already under way from at or before `at` (it most likely
    /// covers `at`; the caller checks), else starts one when the partition
    /// has room, else waits for one to finish and looks again.
    pub async fn fetch(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        topic: TopicId,
        p: Partition,
        at: Offset,
    ) -> FetchResult {
        enum Next {
            Join(SharedFetch),
            Started(SharedFetch),
            WaitFor(SharedFetch),
        }
        loop {
            let next = {
                let mut inflight = self.inflight.borrow_mut();
                let list = inflight.entry((topic, p)).or_default();
                let covering = list
                    .iter()
                    .filter(|(from, _)| *from <= at)
                    .max_by_key(|(from, _)| *from);
                if let Some((_, f)) = covering {
                    Next::Join(f.clone())
                } else if list.len() >= FETCHES_PER_PARTITION {
                    Next::WaitFor(list[0].1.clone())
                } else {
                    let f = self.start_fetch(Rc::clone(shard), topic, p, at);
                    list.push((at, f.clone()));
                    Next::Started(f)
                }
            };
            match next {
                Next::Join(f) => {
                    shard.metrics.catchup_fetch_joins.inc();
                    return f.await;
                }
                Next::Started(f) => return f.await,
                Next::WaitFor(f) => {
                    // The partition has its fetches in flight: wait for the
                    // oldest, then look again (it may have covered `at`).
                    shard.metrics.catchup_fetch_joins.inc();
                    let _ = f.await;
                }
            }
        }
    }

    /// A stream's start in a partition: its earliest offset, or the first
    /// at or after a timestamp. Streams that ask while the same look-up is
    /// under way share its answer, so a reconnect storm of `since` or
    /// earliest readers costs Kafka one look-up per partition, not one per
    /// client per partition (which, queued at the broker ahead of the live
    /// fetches, held every live stream back). A shared answer is at most
    /// one look-up's time older than the stream's request: as if it had
    /// come that much earlier. The log's end is not looked up here: an
    /// older end could take an id for one ahead of the log.
    pub async fn start_offset(
        &self,
        metrics: &crate::ops::metrics::ShardMetrics,
        topic: TopicId,
        p: Partition,
        query: OffsetQuery,
    ) -> Result<Offset, KafkaError> {
        debug_assert!(query != OffsetQuery::Latest);
        let key = (topic, p, query);
        let lookup = {
            let mut lookups = self.lookups.borrow_mut();
            match lookups.get(&key) {
                Some(f) => {
                    metrics.offset_lookup_joins.inc();
                    f.clone()
                }
                None => {
                    metrics.offset_lookups.inc();
                    let sidecar = self.sidecar.clone();
                    let f: LookupFuture =
                        Box::pin(async move { sidecar.offset(topic, p, query).await });
                    let f = f.shared();
                    lookups.insert(key, f.clone());
                    f
                }
            }
        };
        let answer = lookup.clone().await;
        // The first to see the answer retires the look-up; a later stream
        // asks Kafka again.
        let mut lookups = self.lookups.borrow_mut();
        if lookups.get(&key).is_some_and(|f| f.ptr_eq(&lookup)) {
            lookups.remove(&key);
        }
        answer
    }

    fn start_fetch(
        self: &Rc<Self>,
        shard: Rc<Shard>,
        topic: TopicId,
        p: Partition,
        at: Offset,
    ) -> SharedFetch {
        let me = Rc::clone(self);
        let fut: FetchFuture = Box::pin(async move {
            let result = me.sidecar.fetch(topic, p, at).await;
            if let Some(list) = me.inflight.borrow_mut().get_mut(&(topic, p)) {
                list.retain(|(from, _)| *from != at);
            }
            let fetched = result?;
            let next_offset = fetched.next_offset;
            let mut hub = shard.hub.borrow_mut();
            let ts = hub.topic(topic);
            // Cached below the head only: the live stream caches what
            // follows. A partition whose head is not known yet bounds
            // nothing.
            let head = ts.knows(p).then(|| ts.heads()[p]);
            let batch = hub.cache.backfill(
                topic,
                p,
                at,
                head,
                (fetched.records, fetched.skipped),
                Instant::now(),
            );
            shard
                .metrics
                .cache_bytes
                .set(hub.cache.owned_bytes() as u64);
            Ok(Backfilled {
                batch,
                high_watermark: fetched.high_watermark,
                next_offset,
            })
        });
        fut.shared()
    }
}
