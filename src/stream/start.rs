//! Where a new stream starts: its `Last-Event-ID` (or `?lastEventId=`) when
//! that decodes for the topic, else `?since=` (a Kafka look-up by
//! timestamp per partition), else the route's `start`. An id that cannot be
//! used starts the stream as if there were none, after an `event:reset`.

use super::catchup::Catchup;
use super::cursor::Resume;
use super::routes::RouteInfo;
use crate::codec::event_id::{self, Progress};
use crate::codec::sse;
use crate::config::Start;
use crate::kafka::{KafkaError, OffsetQuery};
use crate::model::{Offset, Partition};
use crate::shard::audiences::Selection;
use crate::shard::Shard;

/// Where a new stream starts.
#[derive(Debug)]
pub enum StartAt {
    /// At the heads: it joins the live stream at once.
    Live,
    /// At its own position: it reads as a catch-up cursor first.
    Behind(Resume),
}

/// What the client asked for: its last event id wins over `since`, which
/// wins over the route's `start`.
#[derive(Debug)]
pub struct Requested {
    pub last_event_id: Option<Vec<u8>>,
    /// Milliseconds since the epoch.
    pub since: Option<i64>,
}

impl Requested {
    /// Whether the stream starts live with no look-up at all (the common
    /// case, which then needs no boxed future).
    pub fn is_plain_live(&self, route: &RouteInfo) -> bool {
        plain_live(self.last_event_id.as_deref(), self.since, route)
    }
}

/// Whether a stream with this id and `since` on `route` starts live with
/// no look-up at all (see [`Requested::is_plain_live`]).
pub fn plain_live(last_event_id: Option<&[u8]>, since: Option<i64>, route: &RouteInfo) -> bool {
    last_event_id.is_none() && since.is_none() && matches!(route.start, Start::Live)
}

/// Decides where the stream starts; an `event:reset` for an id that cannot
/// be used goes to `head` (the stream's first bytes). A failed Kafka
/// look-up is the error.
pub async fn start(
    shard: &Shard,
    catchup: &Catchup,
    route: &RouteInfo,
    selection: &Selection,
    requested: Requested,
    head: &mut Vec<u8>,
) -> Result<StartAt, KafkaError> {
    let Some(id) = requested.last_event_id else {
        return start_without_id(shard, catchup, route, selection, requested.since).await;
    };
    let hash = shard.hub.borrow().topic(route.topic).hash;
    match event_id::decode(hash, &id) {
        Ok(progress) => {
            let partitions = shard.hub.borrow().topic(route.topic).partitions();
            match resume_of(progress, partitions) {
                Some(resume) => Ok(StartAt::Behind(
                    behind_the_log_end(shard, catchup, route, resume, head).await?,
                )),
                None => {
                    sse::reset_event(head, "id names more partitions than the topic has");
                    start_without_id(shard, catchup, route, selection, requested.since).await
                }
            }
        }
        Err(e) => {
            sse::reset_event(head, &e.to_string());
            start_without_id(shard, catchup, route, selection, requested.since).await
        }
    }
}

/// An id whose offset is past the end of a partition's log (a topic
/// deleted and created again, an id from another cluster) would wait for
/// records that may never come, and skip the ones the new log receives
/// below it. Each such partition starts at its log's start instead — every
/// record the log holds — after an `event:reset` naming them. Only
/// partitions past this shard's head are looked up: an id a little ahead
/// of it (from a faster instance) is not past Kafka's end and waits.
async fn behind_the_log_end(
    shard: &Shard,
    catchup: &Catchup,
    route: &RouteInfo,
    mut resume: Resume,
    head: &mut Vec<u8>,
) -> Result<Resume, KafkaError> {
    let ahead: Vec<(Partition, Offset)> = {
        let hub = shard.hub.borrow();
        let ts = hub.topic(route.topic);
        resume
            .0
            .iter()
            .enumerate()
            .filter_map(|(i, at)| {
                let p = Partition::at(i);
                at.filter(|&at| ts.knows(p) && at > ts.heads()[p])
                    .map(|at| (p, at))
            })
            .collect()
    };
    let mut past_end = Vec::new();
    for (p, at) in ahead {
        let end = catchup
            .sidecar
            .offset(route.topic, p, OffsetQuery::Latest)
            .await?;
        if at > end {
            resume.0[p.index()] = None;
            past_end.push(format!("partition {p} at {at}, log end {end}"));
        }
    }
    if !past_end.is_empty() {
        let reason = format!(
            "id is ahead of the log ({}); read from the log's start",
            past_end.join("; ")
        );
        sse::reset_event(head, &reason);
    }
    Ok(resume)
}

/// The start of a stream without a usable id: `since` (a Kafka look-up by
/// timestamp per partition), else the route's `start`.
async fn start_without_id(
    shard: &Shard,
    catchup: &Catchup,
    route: &RouteInfo,
    selection: &Selection,
    since: Option<i64>,
) -> Result<StartAt, KafkaError> {
    let query = match (since, route.start) {
        (Some(ms), _) => OffsetQuery::Timestamp(ms),
        (None, Start::Live) => return Ok(StartAt::Live),
        (None, Start::Earliest) => OffsetQuery::Earliest,
    };
    let partitions = shard.hub.borrow().topic(route.topic).partitions();
    // A pruned stream looks up only the partitions it reads; the cursor
    // keeps the others at the heads.
    let lookups = Partition::all(partitions).map(|p| async move {
        if selection.reads(p) {
            catchup
                .start_offset(&shard.metrics, route.topic, p, query)
                .await
                .map(Some)
        } else {
            Ok(None)
        }
    });
    let offsets = futures::future::try_join_all(lookups).await?;
    Ok(StartAt::Behind(Resume(offsets)))
}

/// Where an id resumes, over the topic's `partitions`: partitions the id
/// does not name (added since, or outside a pruned stream's) are left to
/// the cursor (see [`Resume`]). `None` if the id names a partition the
/// topic does not have.
fn resume_of(progress: Progress, partitions: usize) -> Option<Resume> {
    let mut resume = vec![None; partitions];
    match progress {
        Progress::All(next) => {
            if next.len() > partitions {
                return None;
            }
            for (p, at) in next.iter() {
                resume[p.index()] = Some(at);
            }
        }
        Progress::Some(pairs) => {
            for (p, next) in pairs {
                *resume.get_mut(p.index())? = Some(next);
            }
        }
    }
    Some(Resume(resume))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Position;

    #[test]
    fn an_id_resumes_the_partitions_it_names() {
        let all = Progress::All(Position::from_offsets(vec![Offset(4), Offset(9)]));
        assert_eq!(
            resume_of(all.clone(), 3),
            Some(Resume(vec![Some(Offset(4)), Some(Offset(9)), None])),
            "a partition added since starts at earliest"
        );
        assert_eq!(
            resume_of(all, 1),
            None,
            "more partitions than the topic has"
        );
        let some = Progress::Some(vec![(Partition(2), Offset(7))]);
        assert_eq!(
            resume_of(some.clone(), 3),
            Some(Resume(vec![None, None, Some(Offset(7))]))
        );
        assert_eq!(resume_of(some, 2), None);
    }
}
