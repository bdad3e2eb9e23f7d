//! The shard's ticker: every tick it drops cached records past their age,
//! sends progress ids to filtered streams that records passed by, ends the
//! live streams of topics Kafka has not served for too long, queues
//! keep-alive comments on silent streams, ends the streams whose clients
//! hung up, and returns freed memory to the kernel after many streams
//! ended.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::outbox::Outbox;
use super::streams::{Due, Expiry};
use super::Shard;
use crate::codec::sse;
use crate::sys::memory;
use crate::sys::socket::HangUps;

/// Streams that end, from the most the shard had open since the last trim,
/// before the freed memory is returned to the kernel (see `sys::memory`).
const ENDED_BEFORE_TRIM: usize = 256;

/// Streams started since the last trim, and none in the last tick, before
/// the freed memory is returned to the kernel: what a burst of new streams
/// freed once each was under way (their tasks, which a live stream gives
/// up; their requests' buffers) lies between what they keep.
const STARTED_BEFORE_TRIM: u64 = 256;

/// What the ticker is set to.
#[derive(Debug, Clone, Copy)]
pub struct TickerSettings {
    /// The top-level `keepalive`: progress ids go out at most this often
    /// per audience.
    pub keepalive: Duration,
    /// `kafka.unavailable_timeout`.
    pub unavailable_timeout: Duration,
}

/// The ticker task, until shutdown.
pub async fn run(shard: Rc<Shard>, settings: TickerSettings) {
    let frame: Rc<[u8]> = Rc::from(sse::KEEPALIVE);
    let mut polls = HangUps::default();
    let mut polled = Vec::new();
    // The most streams open since the memory was last trimmed.
    let mut most_open = 0usize;
    // Streams started, when the memory was last trimmed and at the last tick.
    let (mut started_at_trim, mut started_before) = (0u64, 0u64);
    loop {
        glommio::timer::sleep(shard.streams.tick()).await;
        if shard.streams.is_shutting_down() {
            return;
        }
        let now = Instant::now();
        {
            let mut hub = shard.hub.borrow_mut();
            hub.evict_expired(now, &shard.metrics);
            hub.tick(now, settings.keepalive, &shard.metrics);
        }
        end_unavailable(&shard, settings.unavailable_timeout, now);
        expire_tokens(&shard);
        let open = shard.streams.open();
        for outbox in open.iter() {
            if outbox.tick(&frame) {
                shard.metrics.keepalives_sent.inc();
            }
        }
        hang_ups(&shard, &open, &mut polls, &mut polled);
        most_open = most_open.max(open.len());
        // Also once the last stream is gone: those that ended after the
        // last trim (fewer than the threshold) gave memory back too.
        let all_gone = open.is_empty() && most_open > 0;
        let started = shard.metrics.connections_total.get();
        let burst_over =
            started == started_before && started - started_at_trim >= STARTED_BEFORE_TRIM;
        started_before = started;
        if most_open - open.len() >= ENDED_BEFORE_TRIM || all_gone || burst_over {
            memory::release_free_memory();
            most_open = open.len();
            started_at_trim = started;
        }
    }
}

/// Ends the live streams of topics Kafka has not served for longer than
/// `timeout` with an `event:error` (cursors check the same in their loop);
/// the clients reconnect and resume exactly once the topic is back.
fn end_unavailable(shard: &Shard, timeout: Duration, now: Instant) {
    let mut hub = shard.hub.borrow_mut();
    for ts in hub.topics_mut() {
        if ts.live_connections() == 0 {
            continue;
        }
        let Some(reason) = ts.unavailable_past(timeout, now) else {
            continue;
        };
        let mut frame = Vec::new();
        sse::error_event(&mut frame, &reason);
        let ended = ts.end_live(&Rc::from(frame));
        shard.metrics.topic_unavailable_ends.add(ended);
    }
}

/// Sends their challenge to the streams whose token expires soon, and ends
/// with an `event:error` those whose token expired (past the leeway); the
/// clients come back with a fresh token and their last id and resume
/// exactly. A challenge waits for a stream with bytes queued (like a
/// keep-alive, it must not get ahead of the stream's feed); an end does
/// not wait.
fn expire_tokens(shard: &Shard) {
    let now = crate::codec::jwt::unix_now();
    let mut later = Vec::new();
    while let Some(due) = shard.streams.next_due(now) {
        match due {
            Due::Challenge(outbox, expiry) if outbox.queued_bytes() > 0 => {
                later.push((outbox, expiry));
            }
            Due::Challenge(outbox, expiry) => {
                let mut frame = Vec::with_capacity(80);
                let left = expiry.expires_at.saturating_sub(now);
                sse::challenge_event(&mut frame, expiry.expires_at, left);
                outbox.push(Rc::from(frame), 0);
                shard.metrics.guard_challenges.inc();
                let rest = Expiry {
                    challenge_at: None,
                    ..expiry
                };
                shard.streams.watch_expiry(outbox, rest);
            }
            Due::End(outbox) => {
                let mut frame = Vec::new();
                sse::error_event(
                    &mut frame,
                    "the token expired; reconnect with a fresh one and the last event id",
                );
                outbox.end(Rc::from(frame));
                shard.metrics.guard_expired_ends.inc();
            }
        }
    }
    // Tried again next second.
    for (outbox, expiry) in later {
        let retry = Expiry {
            challenge_at: Some(now + 1),
            ..expiry
        };
        shard.streams.watch_expiry(outbox, retry);
    }
}

/// Ends the streams whose clients closed their end: one `poll` over every
/// stream per tick (an SSE client sends nothing after its request, so
/// end-of-input means it is gone, as nginx also takes it). The same poll
/// wakes the parked streams whose sockets have room (`Outbox::wait_room`).
fn hang_ups(shard: &Shard, open: &[Rc<Outbox>], polls: &mut HangUps, polled: &mut Vec<usize>) {
    polls.clear();
    polled.clear();
    // A stream whose task holds its socket (waiting for room) is skipped:
    // its write fails once the client is gone.
    polled.extend((0..open.len()).filter(|&i| open[i].poll_hang_up(polls)));
    match polls.poll() {
        Ok(0) | Err(_) => return,
        Ok(_) => {}
    }
    for (at, &i) in polled.iter().enumerate() {
        let outbox = &open[i];
        if polls.hung_up(at) && !outbox.is_ending() {
            shard.metrics.hang_ups.inc();
            outbox.hang_up();
        } else if polls.has_room(at) {
            outbox.room();
        }
    }
}
