//! Audiences: a topic stream's live streams grouped by what they receive
//! (their resolved filter and the partitions they read, a [`Selection`]),
//! then by rendering (`Group`). For each record the fan-out evaluates each
//! distinct filter once — only the filters for the record's key, when
//! filters name keys — encodes the event id once and the frame once per
//! rendering, and appends the same reference-counted bytes to the feed of
//! every matching group. Nothing is formatted per connection, and the cost
//! of a record grows with the number of distinct filters that can match it,
//! not with the number of connections.
//!
//! A stream whose filter passes over records still moves past them: its
//! position is the heads like every live stream's, and the shard's ticker
//! sends an audience that was passed over an id-only event with the heads
//! (see [`Audiences::progress`]), so a client that reconnects does not read
//! those records again.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use super::group::Group;
use super::outbox::Outbox;
use crate::codec::event_id::encode_id;
use crate::codec::filter::{Filter, RecordView};
use crate::codec::sse::{self, Render};
use crate::model::{Partition, Position, RecordAndOffset};

/// What a live stream receives, as the hub keys its audiences: the records
/// its filter takes, from the partitions it reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Selection {
    /// `None` takes every record.
    pub filter: Option<Rc<Filter>>,
    /// The partitions of a stream pruned by key (`partitioner: murmur2`),
    /// increasing; `None` reads every partition. A pruned stream's ids
    /// carry only these partitions.
    pub partitions: Option<Rc<[Partition]>>,
    /// The topic's partition count the keys were hashed with (0 when not
    /// pruned): when it changes, a pruned stream ends.
    pub hashed_over: usize,
}

impl Selection {
    /// Whether the stream reads partition `p`.
    pub fn reads(&self, p: Partition) -> bool {
        self.partitions
            .as_deref()
            .is_none_or(|ps| ps.binary_search(&p).is_ok())
    }
}

/// The live streams of a topic that resolved to one selection.
#[derive(Debug)]
struct Audience {
    selection: Selection,
    /// One group per rendering; nearly always one.
    groups: SmallVec<[Rc<Group>; 1]>,
    /// The topic stream's movement count when this audience last got a
    /// frame: behind it when the heads passed records it was not shown.
    seen: u64,
    /// No progress event before this (see [`Audiences::progress`]).
    next_progress: Option<Instant>,
}

/// Where a record or a progress event goes: the heads after it, and the
/// topic's hash for the ids.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub heads: &'a Position,
    pub hash: u32,
    /// The topic stream's movement count (see `Audience::seen`).
    pub moves: u64,
}

/// One topic stream's audiences and their indexes.
#[derive(Debug, Default)]
pub struct Audiences {
    list: Vec<Audience>,
    /// Index into `list` by selection, for joining.
    by_selection: HashMap<Selection, usize>,
    /// Audiences whose filters name keys, by key: a record is checked only
    /// against those for its key (and the `scanned` ones).
    by_key: HashMap<Box<[u8]>, SmallVec<[u32; 2]>>,
    /// Audiences checked for every record: no filter, or a filter that
    /// takes records of any key.
    scanned: Vec<u32>,
    id_scratch: Vec<u8>,
    id_buf: Vec<u8>,
    frame_buf: Vec<u8>,
}

impl Audiences {
    /// Adds a live stream to the audience of its selection, in the group of
    /// its rendering, at the feed's end. `moves` is the topic stream's
    /// movement count now.
    pub fn join(&mut self, outbox: Rc<Outbox>, render: Render, selection: &Selection, moves: u64) {
        let index = match self.by_selection.get(selection) {
            Some(&i) => i,
            None => {
                let i = self.list.len();
                self.list.push(Audience {
                    selection: selection.clone(),
                    groups: SmallVec::new(),
                    seen: moves,
                    next_progress: None,
                });
                self.by_selection.insert(selection.clone(), i);
                self.index(i);
                i
            }
        };
        let audience = &mut self.list[index];
        match audience.groups.iter().find(|g| g.render() == render) {
            Some(g) => g.add(outbox),
            None => {
                let group = Group::new(render);
                group.add(outbox);
                audience.groups.push(group);
            }
        }
    }

    /// The selection as the audiences share it: the audience's own when one
    /// has it already, so streams with equal selections hold one copy.
    pub fn intern(&self, selection: Selection) -> Selection {
        match self.by_selection.get_key_value(&selection) {
            Some((shared, _)) => shared.clone(),
            None => selection,
        }
    }

    /// Lists audience `i` where `deliver` looks for it.
    fn index(&mut self, i: usize) {
        let keys = self.list[i]
            .selection
            .filter
            .as_deref()
            .and_then(Filter::keys);
        match keys {
            Some(keys) => {
                for key in keys {
                    self.by_key.entry(key.into()).or_default().push(i as u32);
                }
            }
            None => self.scanned.push(i as u32),
        }
    }

    /// Drops closed streams and empty audiences (a filter whose records
    /// never come would otherwise keep every client that ever asked for
    /// it), and rebuilds the indexes if an audience went.
    pub fn prune(&mut self) {
        let before = self.list.len();
        for a in &mut self.list {
            for g in &a.groups {
                g.retain_readers();
            }
            a.groups.retain(|g| !g.is_empty());
        }
        self.list.retain(|a| !a.groups.is_empty());
        if self.list.len() != before {
            self.by_selection.clear();
            self.by_key.clear();
            self.scanned.clear();
            for i in 0..self.list.len() {
                self.by_selection.insert(self.list[i].selection.clone(), i);
                self.index(i);
            }
        }
    }

    /// Sends every audience the heads passed over without showing it a
    /// record an id-only event with the heads — its clients then resume
    /// after those records, not before — at most once per `every` (the
    /// keep-alive interval: a stream whose filter passes everything by costs
    /// a write per keep-alive interval, as an idle one does). Groups that
    /// got a frame go to `to_write`. Returns how many streams were sent one.
    pub fn progress(
        &mut self,
        at: At<'_>,
        now: Instant,
        every: Duration,
        to_write: &mut Vec<Rc<Group>>,
    ) -> u64 {
        // Streams that read every partition share one frame per id form.
        let mut frames: [Option<Rc<[u8]>>; 2] = [None, None];
        let mut scratch = Vec::new();
        let mut id = Vec::new();
        let mut sent = 0;
        for a in &mut self.list {
            if a.seen == at.moves || a.next_progress.is_some_and(|t| now < t) {
                continue;
            }
            a.seen = at.moves;
            a.next_progress = Some(now + every);
            let partitions = a.selection.partitions.as_deref();
            for g in &a.groups {
                let form = g.render().id;
                let mut encode = || {
                    id.clear();
                    encode_id(
                        form,
                        None,
                        at.hash,
                        partitions,
                        at.heads.offsets(),
                        &mut scratch,
                        &mut id,
                    );
                    let mut frame = Vec::with_capacity(id.len() + 5);
                    sse::encode_id_only(&mut frame, &id);
                    Rc::<[u8]>::from(frame)
                };
                let frame = match partitions {
                    None => Rc::clone(frames[form as usize].get_or_insert_with(encode)),
                    Some(_) => encode(),
                };
                if g.push(&frame, 0) {
                    to_write.push(Rc::clone(g));
                }
                sent += g.len() as u64;
            }
        }
        sent
    }

    /// Sends `frame` (a control event: no record, no id) to every live
    /// stream that reads partition `p`, whatever its filter. Groups that
    /// got it go to `to_write`.
    pub fn tell(&mut self, p: Partition, frame: &Rc<[u8]>, to_write: &mut Vec<Rc<Group>>) {
        for a in self.list.iter().filter(|a| a.selection.reads(p)) {
            for g in a.groups.iter().filter(|g| !g.is_empty()) {
                if g.push(frame, 0) {
                    to_write.push(Rc::clone(g));
                }
            }
        }
    }

    /// Takes every open live stream out of the audiences whose selection
    /// passes `which`; the caller demotes or ends each.
    pub fn drain_where(&mut self, which: impl Fn(&Selection) -> bool) -> Vec<Rc<Outbox>> {
        let mut live = Vec::new();
        for a in self.list.iter().filter(|a| which(&a.selection)) {
            for g in &a.groups {
                live.extend(g.drain());
            }
        }
        live
    }

    /// Live streams (all groups; some may have closed since the last
    /// prune).
    pub fn live(&self) -> usize {
        self.list
            .iter()
            .flat_map(|a| &a.groups)
            .map(|g| g.len())
            .sum()
    }

    /// Distinct selections among the live streams (tests, benchmarks).
    pub fn count(&self) -> usize {
        self.list
            .iter()
            .filter(|a| a.groups.iter().any(|g| !g.is_empty()))
            .count()
    }

    /// Every group (tests).
    #[cfg(test)]
    pub(crate) fn groups(&self) -> impl Iterator<Item = &Rc<Group>> {
        self.list.iter().flat_map(|a| &a.groups)
    }

    /// Fans one record of partition `p` out to the live streams — the
    /// per-record hot path; `at` holds the heads already past it. Groups
    /// that got a frame go to `to_write`. Returns how many streams it went
    /// to.
    ///
    /// The record is checked against the audiences listed under its key and
    /// the `scanned` ones, each once; the id is encoded once, and each frame
    /// once per rendering, whatever the number of audiences it goes to.
    pub fn deliver(
        &mut self,
        p: Partition,
        rec: &RecordAndOffset,
        at: At<'_>,
        to_write: &mut Vec<Rc<Group>>,
    ) -> usize {
        let key = rec.record.key.as_deref();
        let keyed = key.and_then(|k| self.by_key.get(k));
        if self.scanned.is_empty() && keyed.is_none() {
            return 0;
        }
        let view = RecordView::new(&rec.record);
        // Per rendering: the frame for streams that read every partition,
        // and the one for streams pruned to this record's partition alone
        // (their id carries that partition only).
        let mut frames: [Option<Rc<[u8]>>; Render::COUNT] = Default::default();
        let mut single: [Option<Rc<[u8]>>; Render::COUNT] = Default::default();
        let mut pushed = 0;
        for &i in self.scanned.iter().chain(keyed.into_iter().flatten()) {
            let a = &mut self.list[i as usize];
            let sel = &a.selection;
            if !sel.reads(p) || !sel.filter.as_deref().is_none_or(|f| f.matches(&view)) {
                continue;
            }
            a.seen = at.moves;
            for g in &a.groups {
                if g.is_empty() {
                    continue;
                }
                let render = g.render();
                let partitions = sel.partitions.as_deref();
                let mut encode = || {
                    self.id_buf.clear();
                    encode_id(
                        render.id,
                        key,
                        at.hash,
                        partitions,
                        at.heads.offsets(),
                        &mut self.id_scratch,
                        &mut self.id_buf,
                    );
                    self.frame_buf.clear();
                    sse::encode_record(
                        &mut self.frame_buf,
                        &self.id_buf,
                        key,
                        rec.record.value.as_deref(),
                        render.value,
                    );
                    Rc::<[u8]>::from(&self.frame_buf[..])
                };
                let frame = match partitions {
                    None => Rc::clone(frames[render.slot()].get_or_insert_with(encode)),
                    // A stream pruned to one partition reads `p` alone
                    // here: its id is the same as every such stream's.
                    Some([_]) => Rc::clone(single[render.slot()].get_or_insert_with(encode)),
                    // Pruned to several partitions: the id depends on which.
                    Some(_) => encode(),
                };
                if g.push(&frame, 1) {
                    to_write.push(Rc::clone(g));
                }
                pushed += g.len();
            }
        }
        pushed
    }
}
