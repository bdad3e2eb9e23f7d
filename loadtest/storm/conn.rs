//! One storm connection: its socket state, what outlives its reconnects
//! (tracker, newest id, phase 3 progress), and `feed`, which parses its
//! body bytes, tracks each stamped event and checks the phase's goal.

use std::sync::atomic::Ordering;
use std::time::Instant;

use mio::net::TcpStream;
use sse_kafka::codec::sse::{ParseError, Parser};

use crate::response::HeadBuf;
use crate::track::{SeqTracker, MAX_PARTITIONS};
use crate::value;

use super::goal::{caught_up, has_baselines, Goal};
use super::tally::{record_us, Tally};

/// Bad events quoted in the log are cut to this many bytes.
const MAX_QUOTED: usize = 200;

/// Where a connection is in its life.
pub(super) enum State {
    /// Not connected; `retry_at` is when to try again (`None`: parked until
    /// the next phase starts it).
    Idle {
        retry_at: Option<Instant>,
    },
    /// Connecting, then sending the request (`sent` bytes of it so far).
    Requesting {
        stream: TcpStream,
        sent: usize,
        deadline: Instant,
    },
    /// Reading the response head.
    Head {
        stream: TcpStream,
        head: HeadBuf,
        deadline: Instant,
    },
    Streaming {
        stream: TcpStream,
    },
}

/// Phase 3 progress of one connection.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct StormProgress {
    /// The first reconnect attempt began.
    pub(super) started: Option<Instant>,
    /// The tracker reached every head.
    pub(super) completed: Option<Instant>,
}

/// One connection: its socket state plus what outlives its reconnections.
pub(super) struct Conn {
    /// The connection's number over all threads (source address choice).
    pub(super) index: usize,
    pub(super) state: State,
    pub(super) request: Vec<u8>,
    pub(super) parser: Parser,
    /// The id to resume from, once a stream has given one.
    pub(super) resume_id: Option<String>,
    pub(super) tracker: SeqTracker,
    /// Got a response head in the current phase (counted once per phase).
    pub(super) answered: bool,
    /// Phase 1: has a baseline on every partition (counted once).
    pub(super) ready: bool,
    pub(super) storm: StormProgress,
    /// In the worker's `unfinished` queue.
    pub(super) queued: bool,
}

impl Conn {
    pub(super) fn new(index: usize, max_line: usize) -> Self {
        Self {
            index,
            state: State::Idle { retry_at: None },
            request: Vec::with_capacity(256),
            parser: Parser::new().with_max_line(max_line),
            resume_id: None,
            tracker: SeqTracker::new(),
            answered: false,
            ready: false,
            storm: StormProgress::default(),
            queued: false,
        }
    }

    /// Ends the current attempt (closing its socket), keeping the newest id;
    /// retries at `retry_at`.
    pub(super) fn close(&mut self, retry_at: Option<Instant>) {
        // The parser is replaced only when the next head arrives, so an
        // attempt that ends before its first event keeps the older id.
        if let Some(id) = self.parser.last_event_id() {
            if self.resume_id.as_deref() != Some(id) {
                self.resume_id = Some(id.to_owned());
            }
        }
        self.state = State::Idle { retry_at };
    }
}

/// Parses body bytes of connection `conn`, tracks each stamped event and
/// checks the phase's goal for the connection.
pub(super) fn feed(
    conn: &mut Conn,
    bytes: &[u8],
    goal: Goal<'_>,
    tally: &mut Tally,
    now: Instant,
) -> Result<(), ParseError> {
    let (mut events, mut bad) = (0u64, 0u64);
    let mut quoted: Option<String> = None;
    let tracker = &mut conn.tracker;
    let parsed = conn.parser.feed_ref(bytes, |event| {
        let stamp = match event.event {
            Some(_) => None,
            None => value::parse(event.data.as_bytes()),
        };
        match stamp {
            Some(s) if s.partition < MAX_PARTITIONS => {
                tracker.observe(s.partition, s.seq);
                events += 1;
            }
            _ => {
                bad += 1;
                if quoted.is_none() {
                    let mut text = format!(
                        "event:{} data:{}",
                        event.event.unwrap_or("message"),
                        event.data
                    );
                    let mut cut = text.len().min(MAX_QUOTED);
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                    quoted = Some(text);
                }
            }
        }
    });
    tally.events += events;
    if bad > 0 {
        tally.bad_events += bad;
        if let Some(text) = quoted {
            tally.log(format_args!(
                "connection {}: {bad} events without a load stamp, first: {text}",
                conn.index
            ));
        }
    }
    match goal {
        Goal::Baselines(kickoff) => {
            if !conn.ready {
                if let Some(partitions) = kickoff.producer.partitions.get() {
                    if has_baselines(&conn.tracker, partitions) {
                        conn.ready = true;
                        kickoff.ready.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        Goal::Heads(heads) => {
            if conn.storm.completed.is_none() && caught_up(&conn.tracker, heads) {
                conn.storm.completed = Some(now);
                tally.completed += 1;
                if let Some(started) = conn.storm.started {
                    record_us(&mut tally.catchup, now - started);
                }
            }
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::produce::ProduceStats;
    use crate::storm::kickoff::Kickoff;

    fn event(p: u32, seq: u64) -> String {
        let v = value::encode(
            value::Stamp {
                partition: p,
                seq,
                ts_ns: 1,
            },
            value::MAX_UNPADDED_LEN,
        );
        format!("id:i{p}-{seq}\ndata:{}\n\n", String::from_utf8(v).unwrap())
    }

    #[test]
    fn feed_completes_at_the_heads_in_any_chunking() {
        let heads = [(0u32, 3u64), (1, 2)];
        let mut stream = String::new();
        for (p, seq) in [(0, 1), (1, 0), (0, 2), (1, 1)] {
            stream.push_str(&event(p, seq));
        }
        for chunk in [1, 7, 64, stream.len()] {
            let mut conn = Conn::new(0, 4096);
            conn.tracker.observe(0, 0);
            conn.tracker.begin_resume();
            let start = Instant::now();
            conn.storm.started = Some(start);
            let mut tally = Tally::new();
            let bytes = stream.as_bytes();
            for (i, piece) in bytes.chunks(chunk).enumerate() {
                assert!(
                    conn.storm.completed.is_none(),
                    "chunk {chunk}: early at {i}"
                );
                feed(&mut conn, piece, Goal::Heads(&heads), &mut tally, start).unwrap();
            }
            assert!(conn.storm.completed.is_some(), "chunk {chunk}");
            assert_eq!(tally.completed, 1, "chunk {chunk}");
            assert_eq!(tally.events, 4, "chunk {chunk}");
            assert_eq!(tally.catchup.len(), 1, "chunk {chunk}");
            assert_eq!(conn.tracker.resume_errors, 0, "chunk {chunk}");
            assert_eq!(conn.parser.last_event_id(), Some("i1-1"), "chunk {chunk}");
            // More events do not complete it twice.
            feed(
                &mut conn,
                event(0, 3).as_bytes(),
                Goal::Heads(&heads),
                &mut tally,
                start,
            )
            .unwrap();
            assert_eq!(tally.completed, 1);
        }
    }

    #[test]
    fn feed_counts_control_events_and_bounds_lines() {
        let heads = [(0u32, 5u64)];
        let mut conn = Conn::new(3, 64);
        let mut tally = Tally::new();
        let now = Instant::now();
        let text = "event:reset\ndata:{\"reason\":\"bad id\"}\n\ndata:hello\n\n";
        feed(
            &mut conn,
            text.as_bytes(),
            Goal::Heads(&heads),
            &mut tally,
            now,
        )
        .unwrap();
        assert_eq!((tally.bad_events, tally.events, tally.completed), (2, 0, 0));
        let long = format!("data:{}\n", "x".repeat(100));
        assert!(feed(
            &mut conn,
            long.as_bytes(),
            Goal::Heads(&heads),
            &mut tally,
            now
        )
        .is_err());
    }

    #[test]
    fn feed_marks_ready_once_every_partition_has_a_baseline() {
        let producer = ProduceStats::default();
        let kickoff = Kickoff::new(&producer, 1);
        let goal = Goal::Baselines(&kickoff);
        let mut conn = Conn::new(0, 4096);
        let mut tally = Tally::new();
        let now = Instant::now();
        // The partition list is not known yet: not ready.
        feed(&mut conn, event(0, 5).as_bytes(), goal, &mut tally, now).unwrap();
        assert!(!conn.ready);
        producer.partitions.set(vec![0, 1]).unwrap();
        feed(&mut conn, event(0, 6).as_bytes(), goal, &mut tally, now).unwrap();
        assert!(!conn.ready);
        feed(&mut conn, event(1, 0).as_bytes(), goal, &mut tally, now).unwrap();
        assert!(conn.ready);
        feed(&mut conn, event(1, 1).as_bytes(), goal, &mut tally, now).unwrap();
        assert_eq!(kickoff.ready.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn close_keeps_the_newest_id() {
        let mut conn = Conn::new(0, 4096);
        let mut tally = Tally::new();
        let heads = [(0u32, 100u64)];
        let now = Instant::now();
        feed(
            &mut conn,
            event(0, 1).as_bytes(),
            Goal::Heads(&heads),
            &mut tally,
            now,
        )
        .unwrap();
        conn.close(None);
        assert_eq!(conn.resume_id.as_deref(), Some("i0-1"));
        // A new attempt's parser without events keeps the older id.
        conn.parser = Parser::new();
        conn.close(None);
        assert_eq!(conn.resume_id.as_deref(), Some("i0-1"));
    }
}
