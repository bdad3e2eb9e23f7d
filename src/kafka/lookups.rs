//! Whether topics exist, for the requests that name one through a route's
//! topic template. A flood of requests for distinct missing names must not
//! become a flood of metadata requests, nor delay the fetches of the topics
//! served: the names asked about are gathered, and one metadata request at
//! a time asks Kafka about up to [`NAMES_PER_REQUEST`] of them (by name,
//! never listing every topic), answering every request waiting on each;
//! requests follow each other no faster than one per [`REQUEST_INTERVAL`],
//! and past [`MAX_WAITING`] names a look-up is refused at once (the stream
//! request gets a 503 with `retry-after`). The sidecar's task that sends
//! the requests is `Running::look_up`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use futures::channel::oneshot;

use super::error::KafkaError;

/// Names one metadata request asks about.
pub const NAMES_PER_REQUEST: usize = 256;

/// The shortest time between two look-up requests of a sidecar: at most
/// 20 a second, whatever the requests' rate.
pub const REQUEST_INTERVAL: Duration = Duration::from_millis(50);

/// Distinct names waiting for a look-up, past which a new one is refused.
pub const MAX_WAITING: usize = 8192;

pub(super) type Reply = oneshot::Sender<Result<bool, KafkaError>>;

/// A sidecar's look-ups: the names waiting, in arrival order, each with the
/// requests waiting on it.
#[derive(Default)]
pub(super) struct Lookups {
    waiting: RefCell<Vec<(String, Vec<Reply>)>>,
    /// Where each waiting name is in `waiting`.
    index: RefCell<HashMap<String, usize>>,
    /// Whether the task sending the requests runs.
    running: Cell<bool>,
}

impl Lookups {
    /// Queues a request waiting on `name`. Returns whether the task that
    /// sends the look-ups must be started.
    pub(super) fn add(&self, name: String, reply: Reply) -> bool {
        let mut waiting = self.waiting.borrow_mut();
        let mut index = self.index.borrow_mut();
        match index.get(&name) {
            Some(&i) => waiting[i].1.push(reply),
            None if waiting.len() >= MAX_WAITING => {
                let _ = reply.send(Err(KafkaError::LookupsFull));
                return false;
            }
            None => {
                index.insert(name.clone(), waiting.len());
                waiting.push((name, vec![reply]));
            }
        }
        !self.running.replace(true)
    }

    /// The next names to ask about (oldest first), taken off the queue;
    /// empty when none is waiting, and the task stops.
    pub(super) fn next_batch(&self) -> Vec<(String, Vec<Reply>)> {
        let mut waiting = self.waiting.borrow_mut();
        let mut index = self.index.borrow_mut();
        let n = waiting.len().min(NAMES_PER_REQUEST);
        let batch: Vec<_> = waiting.drain(..n).collect();
        index.clear();
        for (i, (name, _)) in waiting.iter().enumerate() {
            index.insert(name.clone(), i);
        }
        if batch.is_empty() {
            self.running.set(false);
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(lookups: &Lookups, name: &str) -> (bool, oneshot::Receiver<Result<bool, KafkaError>>) {
        let (reply, answer) = oneshot::channel();
        (lookups.add(name.to_owned(), reply), answer)
    }

    #[test]
    fn one_name_asked_twice_is_one_entry_and_batches_keep_arrival_order() {
        let lookups = Lookups::default();
        let (start, _a) = ask(&lookups, "a");
        assert!(start, "the first look-up starts the task");
        let (start, _b) = ask(&lookups, "b");
        assert!(!start, "the task runs already");
        let (_, _a2) = ask(&lookups, "a");
        let batch = lookups.next_batch();
        let names: Vec<_> = batch.iter().map(|(n, r)| (n.as_str(), r.len())).collect();
        assert_eq!(names, [("a", 2), ("b", 1)]);
        assert!(lookups.next_batch().is_empty());
        let (start, _c) = ask(&lookups, "c");
        assert!(start, "an idle task is started again");
    }

    #[test]
    fn a_batch_is_bounded_and_the_rest_waits_for_the_next() {
        let lookups = Lookups::default();
        let _answers: Vec<_> = (0..NAMES_PER_REQUEST + 3)
            .map(|i| ask(&lookups, &format!("t{i}")))
            .collect();
        assert_eq!(lookups.next_batch().len(), NAMES_PER_REQUEST);
        let rest = lookups.next_batch();
        assert_eq!(rest.len(), 3);
        assert_eq!(rest[0].0, format!("t{NAMES_PER_REQUEST}"));
        // The index followed the drain: a name of the rest is found again.
        let lookups2 = Lookups::default();
        let _w: Vec<_> = (0..NAMES_PER_REQUEST + 1)
            .map(|i| ask(&lookups2, &format!("t{i}")))
            .collect();
        drop(lookups2.next_batch());
        let (_, _again) = ask(&lookups2, &format!("t{NAMES_PER_REQUEST}"));
        let rest = lookups2.next_batch();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].1.len(), 2);
    }

    #[test]
    fn past_the_waiting_bound_a_new_name_is_refused_at_once() {
        let lookups = Lookups::default();
        let _answers: Vec<_> = (0..MAX_WAITING)
            .map(|i| ask(&lookups, &format!("t{i}")))
            .collect();
        let (start, mut refused) = ask(&lookups, "one-too-many");
        assert!(!start);
        assert!(matches!(
            refused.try_recv(),
            Ok(Some(Err(KafkaError::LookupsFull)))
        ));
        // A name already waiting still joins it.
        let (_, mut joined) = ask(&lookups, "t0");
        assert!(matches!(joined.try_recv(), Ok(None)));
    }
}
