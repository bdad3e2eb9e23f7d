//! A catch-up reader's frame encoder: it turns the records of cached or
//! fetched batches into this stream's frames, a chunk at a time, with its
//! own buffers (reused between chunks), and moves the reader's position
//! past every record it reads, shown or filtered out.

use std::rc::Rc;

use crate::codec::event_id::encode_id;
use crate::codec::filter::{Filter, RecordView};
use crate::codec::sse::{self, Render};
use crate::model::{Batch, Offset, Partition, Position, Skip};
use crate::shard::audiences::Selection;
use crate::shard::outbox::Outbox;

/// Frame bytes a cursor encodes before it lets the socket take them.
pub const CHUNK_BYTES: usize = 32 << 10;

/// Records a cursor reads in one turn, shown or filtered out: a filter that
/// passes over a long stretch of the cache must not hold the shard.
const RECORDS_PER_TURN: u64 = 8192;

/// A cursor's encoder (see the module doc).
#[derive(Debug)]
pub struct Encoder {
    render: Render,
    filter: Option<Rc<Filter>>,
    /// The partitions a pruned stream reads: its ids carry only those.
    partitions: Option<Rc<[Partition]>>,
    hash: u32,
    scratch: Vec<u8>,
    id: Vec<u8>,
    pub frames: Vec<u8>,
    events: u32,
    /// Records read this turn (see `RECORDS_PER_TURN`).
    read: u64,
    /// The position moved past records the filter did not show since the
    /// last frame: the chunk ends with an id-only event (see `push_to`).
    passed_over: bool,
    /// Timestamp of the first record encoded since the last check (lag by
    /// age).
    oldest: Option<i64>,
}

impl Encoder {
    pub fn new(render: Render, selection: &Selection, hash: u32) -> Self {
        Self {
            render,
            filter: selection.filter.clone(),
            partitions: selection.partitions.clone(),
            hash,
            scratch: Vec::new(),
            id: Vec::new(),
            frames: Vec::new(),
            events: 0,
            read: 0,
            passed_over: false,
            oldest: None,
        }
    }

    /// Puts the id of `position` in `self.id`.
    fn encode_id(&mut self, key: Option<&[u8]>, position: &Position) {
        self.id.clear();
        encode_id(
            self.render.id,
            key,
            self.hash,
            self.partitions.as_deref(),
            position.offsets(),
            &mut self.scratch,
            &mut self.id,
        );
    }

    /// `event:gap` for the part of a skipped run past `position[p]`, which
    /// moves past it; the chunk then ends with the id (see `push_to`).
    fn gap(&mut self, p: Partition, skip: &Skip, position: &mut Position) {
        let from = skip.from.max(position[p]);
        if from >= skip.to {
            return;
        }
        sse::skipped_event(&mut self.frames, p, from, skip.to);
        position[p] = skip.to;
        self.passed_over = true;
    }

    /// A new turn: no record read yet.
    pub fn start_turn(&mut self) {
        self.read = 0;
    }

    /// The turn is over: the chunk is full, or enough records were read.
    pub fn full(&self) -> bool {
        self.frames.len() >= CHUNK_BYTES || self.read >= RECORDS_PER_TURN
    }

    /// The timestamp of the oldest record encoded since the last call.
    pub fn take_oldest(&mut self) -> Option<i64> {
        self.oldest.take()
    }

    /// Encodes the records of `batch` that pass the filter, from
    /// `position[p]` up to `head` (excluded) or until the turn is over,
    /// advancing `position[p]` past every record read, and an `event:gap`
    /// for every skipped run it passes (see `Batch::skipped`). Returns the
    /// number of records read (shown or not).
    pub fn read(
        &mut self,
        batch: &Batch,
        p: Partition,
        position: &mut Position,
        head: Offset,
    ) -> u64 {
        let start = position[p];
        debug_assert!(batch.covers(start));
        let first = batch.records.partition_point(|r| r.offset < start);
        let mut skips = batch.skipped.iter().filter(|s| s.to > start).peekable();
        let mut n = 0;
        for rec in &batch.records[first..] {
            if rec.offset >= head || self.full() {
                break;
            }
            while let Some(skip) = skips.next_if(|s| s.from < rec.offset) {
                self.gap(p, skip, position);
            }
            position[p] = rec.offset.next();
            n += 1;
            self.read += 1;
            if let Some(filter) = &self.filter {
                if !filter.matches(&RecordView::new(&rec.record)) {
                    self.passed_over = true;
                    continue;
                }
            }
            self.passed_over = false;
            self.encode_id(rec.record.key.as_deref(), position);
            sse::encode_record(
                &mut self.frames,
                &self.id,
                rec.record.key.as_deref(),
                rec.record.value.as_deref(),
                self.render.value,
            );
            self.oldest
                .get_or_insert(rec.record.timestamp.timestamp_millis());
            self.events += 1;
        }
        if !self.full() || position[p] >= head {
            // Every record of the batch below the head is read: the rest
            // of its range (up to the head) holds nothing visible.
            for skip in skips.filter(|s| s.from < head) {
                self.gap(p, skip, position);
            }
            let end = batch.to.min(head);
            if end > position[p] {
                position[p] = end;
                self.passed_over = true;
            }
        }
        n
    }

    /// Frees the encoder's buffers (nothing is encoded and not queued
    /// then): a reader whose client stopped taking its frames holds no
    /// more than the chunk queued on its outbox while it waits.
    pub fn release(&mut self) {
        debug_assert!(self.frames.is_empty());
        self.frames = Vec::new();
        self.scratch = Vec::new();
        self.id = Vec::new();
    }

    /// Queues the encoded chunk on the outbox, ending it with an id-only
    /// event at `position` when the cursor passed over records after its
    /// last frame (the client's id then covers them).
    pub fn push_to(&mut self, outbox: &Outbox, position: &Position) {
        if self.passed_over {
            self.passed_over = false;
            self.encode_id(None, position);
            sse::encode_id_only(&mut self.frames, &self.id);
        }
        if !self.frames.is_empty() {
            outbox.push(Rc::from(&self.frames[..]), self.events);
            self.frames.clear();
            self.events = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use rskafka::chrono::DateTime;

    use super::*;
    use crate::codec::event_id::{self, EventIdForm};
    use crate::codec::sse::ValueEncoding;
    use crate::model::{Record, RecordAndOffset, TopicId};

    fn batch(from: i64, to: i64, offsets: &[i64]) -> Batch {
        Batch {
            topic: TopicId(0),
            partition: Partition(0),
            from: Offset(from),
            to: Offset(to),
            records: offsets
                .iter()
                .map(|&o| RecordAndOffset {
                    record: Record {
                        key: None,
                        value: Some(format!("r{o}").into_bytes()),
                        headers: Default::default(),
                        timestamp: DateTime::from_timestamp(0, 0).unwrap(),
                    },
                    offset: Offset(o),
                })
                .collect(),
            skipped: Vec::new(),
            log_start: None,
        }
    }

    fn encoder() -> Encoder {
        let render = Render {
            value: ValueEncoding::Text,
            id: EventIdForm::Progress,
        };
        Encoder::new(render, &Selection::default(), 7)
    }

    fn pos(offsets: &[i64]) -> Position {
        Position::from_offsets(offsets.iter().copied().map(Offset).collect())
    }

    const P0: Partition = Partition(0);

    fn data(frames: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        sse::Parser::new()
            .feed(frames, |e| out.push(e.data))
            .unwrap();
        out
    }

    #[test]
    fn reads_from_the_position_up_to_the_head() {
        let b = batch(10, 20, &[8, 9, 10, 12, 15, 19]);
        let mut enc = encoder();
        let mut position = pos(&[12, 0]);
        // Whole records before the position are skipped; the head stops it.
        assert_eq!(enc.read(&b, P0, &mut position, Offset(16)), 2);
        assert_eq!(data(&enc.frames), ["r12", "r15"]);
        assert_eq!(position, pos(&[16, 0]), "nothing visible in [16, head)");
        // With the head past the batch: its end, though its last record is 19.
        let b = batch(16, 25, &[19]);
        assert_eq!(enc.read(&b, P0, &mut position, Offset(30)), 1);
        assert_eq!(position, pos(&[25, 0]));
        assert_eq!(enc.events, 3);
    }

    /// A skipped run is told where it lies among the records, once, from
    /// the reader's position on (a reader that starts inside it is told
    /// the rest).
    #[test]
    fn a_skipped_run_is_an_event_gap_in_place() {
        let mut b = batch(10, 20, &[10, 11, 16]);
        b.skipped = vec![Skip {
            from: Offset(12),
            to: Offset(15),
        }];
        let mut enc = encoder();
        let mut position = pos(&[10]);
        assert_eq!(enc.read(&b, P0, &mut position, Offset(20)), 3);
        assert_eq!(
            data(&enc.frames),
            [
                "r10",
                "r11",
                r#"{"partition":0,"requested":12,"resumed_at":15,"reason":"undecodable record batch"}"#,
                "r16"
            ]
        );
        assert_eq!(position, pos(&[20]));
        let mut enc = encoder();
        let mut position = pos(&[13]);
        enc.read(&b, P0, &mut position, Offset(20));
        assert_eq!(
            data(&enc.frames),
            [
                r#"{"partition":0,"requested":13,"resumed_at":15,"reason":"undecodable record batch"}"#,
                "r16"
            ]
        );
        // A run at the batch's end, with no record after it.
        let mut b = batch(0, 9, &[0]);
        b.skipped = vec![Skip {
            from: Offset(1),
            to: Offset(9),
        }];
        let mut enc = encoder();
        let mut position = pos(&[0]);
        enc.read(&b, P0, &mut position, Offset(9));
        assert_eq!(data(&enc.frames).len(), 2);
        assert_eq!(position, pos(&[9]));
    }

    #[test]
    fn a_full_chunk_stops_at_the_next_record() {
        let offsets: Vec<i64> = (0..100_000).collect();
        let b = batch(0, 100_000, &offsets);
        let mut enc = encoder();
        let mut position = pos(&[0]);
        let n = enc.read(&b, P0, &mut position, Offset(100_000));
        assert!(n > 0 && n < 100_000);
        assert_eq!(
            position[P0],
            Offset(n as i64),
            "resumes at the first record not encoded"
        );
        assert!(enc.frames.len() >= CHUNK_BYTES);
    }

    #[test]
    fn ids_carry_the_position_after_each_record() {
        let b = batch(0, 3, &[0, 1, 2]);
        let mut enc = encoder();
        let mut position = pos(&[0, 5]);
        enc.read(&b, P0, &mut position, Offset(3));
        let mut ids = Vec::new();
        sse::Parser::new()
            .feed(&enc.frames, |e| ids.push(e.id.unwrap()))
            .unwrap();
        let decoded: Vec<_> = ids
            .iter()
            .map(|id| event_id::decode_progress(7, id.as_bytes()).unwrap())
            .collect();
        assert_eq!(decoded, [pos(&[1, 5]), pos(&[2, 5]), pos(&[3, 5])]);
    }
}
