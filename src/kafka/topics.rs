//! The process-wide topic table: every topic this instance serves gets a
//! [`TopicId`] here, the config's topics first, then each topic a request
//! names (through a route's `topic` template) in order of first use, up to
//! `kafka.max_topics`. A new topic is announced to every shard's sidecar,
//! which starts watching and fetching it.

use std::sync::Arc;

use super::messages::Request;
use crate::model::TopicId;

/// The process-wide table of topics, indexed by [`TopicId`]: the config's
/// fixed topics first, then every topic a request named through a route's
/// `topic` template, in order of first use. Read under a lock only when a
/// request or a new topic needs a name, never per record.
#[derive(Debug)]
pub struct TopicTable {
    names: std::sync::RwLock<Vec<Arc<str>>>,
    /// `kafka.max_topics`: each topic costs every shard a metadata watch
    /// and a fetch loop per owned partition for the life of the process.
    max: usize,
    /// Every shard's sidecar: told to watch each topic added.
    sidecars: std::sync::OnceLock<Vec<flume::Sender<Request>>>,
}

/// The topic table is full (`kafka.max_topics`, given here).
#[derive(Debug, thiserror::Error)]
#[error("this instance serves {0} topics already (kafka.max_topics)")]
pub struct TooManyTopics(pub usize);

impl TopicTable {
    /// The config's topics, and room for `max` in all.
    pub fn new(fixed: Vec<String>, max: usize) -> Self {
        Self {
            names: std::sync::RwLock::new(fixed.into_iter().map(Arc::from).collect()),
            max,
            sidecars: std::sync::OnceLock::new(),
        }
    }

    /// Set once, when the sidecars' channels exist.
    pub fn set_sidecars(&self, sidecars: Vec<flume::Sender<Request>>) {
        let _ = self.sidecars.set(sidecars);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<str>>> {
        // A panic while holding the lock leaves the table as it was (every
        // change is one push): keep using it.
        self.names.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    pub fn name(&self, topic: TopicId) -> Arc<str> {
        Arc::clone(&self.read()[topic.0 as usize])
    }

    pub fn find(&self, name: &str) -> Option<TopicId> {
        self.read()
            .iter()
            .position(|n| &**n == name)
            .map(|i| TopicId(i as u32))
    }

    /// The topic's id, adding it (and telling every sidecar to watch it)
    /// if it is new.
    pub fn register(&self, name: &str) -> Result<TopicId, TooManyTopics> {
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = names.iter().position(|n| &**n == name) {
            return Ok(TopicId(i as u32));
        }
        if names.len() >= self.max {
            return Err(TooManyTopics(self.max));
        }
        names.push(Arc::from(name));
        let topic = TopicId(names.len() as u32 - 1);
        drop(names);
        for sidecar in self.sidecars.get().into_iter().flatten() {
            // Bounded, and a sidecar takes requests as they come: a full
            // queue means a stalled sidecar, whose shard then never sees
            // the topic ready and answers 503.
            let _ = sidecar.try_send(Request::Watch { topic });
        }
        Ok(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topic_table_adds_each_name_once_tells_every_sidecar_and_stops_at_its_cap() {
        const MAX: usize = 1024;
        let table = TopicTable::new(vec!["fixed-a".into(), "fixed-b".into()], MAX);
        let (tx0, rx0) = flume::bounded(8);
        let (tx1, rx1) = flume::bounded(8);
        table.set_sidecars(vec![tx0, tx1]);
        assert_eq!(table.find("fixed-b"), Some(TopicId(1)));
        assert_eq!(table.register("fixed-a").unwrap(), TopicId(0));
        assert!(rx0.is_empty(), "a known topic is not watched again");

        let added = table.register("orders").unwrap();
        assert_eq!(added, TopicId(2));
        assert_eq!(&*table.name(added), "orders");
        for rx in [&rx0, &rx1] {
            assert!(matches!(rx.try_recv(), Ok(Request::Watch { topic }) if topic == added));
        }
        assert_eq!(table.register("orders").unwrap(), added);
        assert!(rx0.is_empty());

        // Fill the table without sidecars listening: a full queue drops
        // the watch, never blocks.
        for i in table.len()..MAX {
            table.register(&format!("t{i}")).unwrap();
        }
        assert_eq!(table.len(), MAX);
        let full = table.register("one-too-many").unwrap_err();
        assert_eq!(
            full.to_string(),
            "this instance serves 1024 topics already (kafka.max_topics)"
        );
        assert_eq!(table.find("one-too-many"), None);
        assert_eq!(
            table.register("orders").unwrap(),
            added,
            "known names still resolve"
        );
        assert_eq!(table.len(), MAX);
    }
}
