//! A stream's life, from the accepted connection to its end: the request is
//! planned, the topic opened if the request named a new one, the stream
//! head sent, and then the stream is in one of two states until it ends —
//!
//! - *live*: in its audience's group, fed the shared frames by the hub and
//!   written by the shard's write pass; it leaves when the hub demotes it
//!   (over budget, or the shard missed batches), handed the position it had
//!   reached;
//! - *behind*: a catch-up cursor reading at its own position (a resume, a
//!   `since`, `start: earliest`, or after a demotion), which joins the live
//!   stream exactly when it reaches the heads (see `cursor`).
//!
//! This is the one place that switches between the two.
//!
//! An idle stream's memory is mostly its task's future, sized by the
//! largest state it can be in: the start (topic opening, offset look-ups,
//! errors' answers) runs in boxed futures that are freed when the stream
//! runs, and
//! the functions that stay resident are written as `async move` blocks
//! rather than `async fn`s, whose arguments the future would hold twice
//! (as its inputs and as the body's locals).

use std::future::Future;
use std::io;
use std::rc::Rc;

use futures_lite::AsyncWriteExt;
use tracing::debug;

use super::cursor::{self, CaughtUp, Resume};
use super::lag::Origin;
use super::plan::{self, Body, Plan, TopicRef};
use super::routes::RouteInfo;
use super::start::{self, Requested, StartAt};
use super::Front;
use crate::codec::{http, sse};
use crate::shard::audiences::Selection;
use crate::shard::outbox::Outbox;
use crate::shard::Shard;

/// The states of a started stream (see the module doc).
#[derive(Debug)]
enum State {
    Live,
    Behind(Resume, Origin),
    /// Over before it ran: its start failed and said so on the stream,
    /// with this outcome of writing that.
    Ended(io::Result<()>),
}

/// A started stream: what it reads, for the rest of its life.
struct Stream {
    /// The route's index, for the log.
    route_index: usize,
    route: RouteInfo,
    selection: Selection,
}

/// Serves one accepted connection to the end. Its outbox owns the socket
/// from the start, so the task's own future holds none (it lives as long
/// as the stream). `held` is whatever the caller needs kept until then
/// (the connection's place in the process's count): taken here rather
/// than by a wrapping future, which would hold this one twice (rustc
/// keeps both the moved-in future and its awaited copy: +1.1 KB of RSS per
/// idle stream, measured).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice (see the module doc)"
)]
pub fn serve<H>(
    shard: Rc<Shard>,
    front: Rc<Front>,
    outbox: Rc<Outbox>,
    held: H,
) -> impl Future<Output = ()> {
    async move {
        // The hub may hold the outbox (in a group) after this task ends: it
        // is marked closed then, so nothing is sent on it any more, even if
        // the task is dropped mid-stream.
        let closing = CloseOnDrop(&outbox);
        let _ = outbox.set_nodelay(front.nodelay);
        // Not boxed: while a request is awaited (thousands of connections
        // arriving at once) the task holds no more than this.
        let plan = match plan::read(&front.requests, &shard, &outbox).await {
            Ok(plan) => plan,
            Err(e) => {
                debug!(error = %e, "connection closed before a request");
                return;
            }
        };
        // `None`: the request got an answer instead of a stream.
        let Some((stream, state)) = Box::pin(begin(&shard, &front, &outbox, plan)).await else {
            return;
        };
        if let Err(e) = run(&shard, &front, &outbox, &stream, state).await {
            let path = &front.requests.routes.route(stream.route_index).path;
            debug!(error = %e, route = %path, "stream ended");
        }
        let socket = outbox.close();
        drop(closing);
        shard.metrics.connections_open.sub(1);
        if let Some(mut socket) = socket {
            let _ = socket.close().await;
        }
        drop(held);
    }
}

/// Everything from the request to the stream's first state: the answer
/// to a request that gets no stream, or the topic, the stream head and
/// where the stream starts. A stream (counted open from here) and its
/// state, or `None` when the request got an answer instead.
async fn begin(
    shard: &Rc<Shard>,
    front: &Front,
    outbox: &Rc<Outbox>,
    plan: Plan,
) -> Option<(Stream, State)> {
    let plan = match plan {
        Plan::Stream(plan) => plan,
        // `plan::read` waits these out.
        Plan::AwaitKeys { .. } => {
            let bytes = plan::Refusal::unavailable("the route's keys are being fetched", 1);
            answer(shard, outbox, &bytes.response()).await;
            return None;
        }
        Plan::Respond(bytes) => {
            answer(shard, outbox, &bytes).await;
            return None;
        }
    };
    let topic = match plan.topic {
        TopicRef::Known(topic) => topic,
        TopicRef::Named(ref name) => match front.opener.open(shard, name).await {
            Ok(topic) => topic,
            Err(refusal) => {
                let mut bytes = refusal.response();
                if plan.body == Body::HeadOnly {
                    bytes = http::without_body(bytes);
                }
                answer(shard, outbox, &bytes).await;
                return None;
            }
        },
    };
    if plan.body == Body::HeadOnly {
        // What a GET would get first, and no events.
        let mut head = Vec::new();
        http::write_stream_head(&mut head, plan.stream_head());
        if let Some(mut stream) = outbox.close() {
            let _ = stream.write_all(&head).await;
            let _ = stream.close().await;
        }
        return None;
    }
    let mut head = Vec::with_capacity(256);
    http::write_stream_head(&mut head, plan.stream_head());
    let routes = &front.requests.routes;
    let route = RouteInfo {
        topic,
        ..*routes.info(plan.route)
    };
    let selection = {
        let hub = shard.hub.borrow();
        let ts = hub.topic(topic);
        let placement = routes.route(plan.route).partitioner;
        ts.intern(plan::select(plan.filter, placement, ts.partitions()))
    };
    shard.metrics.connections_open.inc();
    shard.metrics.connections_total.inc();
    shard.streams.add(Rc::clone(outbox));
    let requested = Requested {
        last_event_id: plan.last_event_id,
        since: plan.since,
    };
    let metrics = &shard.metrics;
    sse::encode_retry(&mut head, front.retry_millis());
    let start = if requested.is_plain_live(&route) {
        Ok(StartAt::Live)
    } else {
        start::start(
            shard,
            &front.catchup,
            &route,
            &selection,
            requested,
            &mut head,
        )
        .await
    };
    let state = match start {
        Err(e) => {
            // Kafka did not answer an offset look-up: say so on the stream.
            sse::error_event(&mut head, &e.to_string());
            outbox.push(Rc::from(head), 0);
            State::Ended(outbox.flush(metrics).await)
        }
        Ok(start) => {
            outbox.send_or_queue(&head, metrics);
            // Only now: the ticker's keep-alives and the token's steps
            // must come after the stream head (the start may wait on
            // Kafka for longer than a keep-alive).
            outbox.set_keepalive(shard.streams.keepalive_ticks(route.keepalive));
            if let Some(expiry) = plan.expiry {
                shard.streams.watch_expiry(Rc::clone(outbox), expiry);
            }
            match start {
                StartAt::Live => {
                    let mut hub = shard.hub.borrow_mut();
                    hub.topic_mut(route.topic)
                        .join(Rc::clone(outbox), route.render, &selection);
                    State::Live
                }
                StartAt::Behind(resume) => State::Behind(resume, Origin::Request),
            }
        }
    };
    let stream = Stream {
        route_index: plan.route,
        route,
        selection,
    };
    Some((stream, state))
}

/// Writes an HTTP answer instead of a stream, and closes.
async fn answer(shard: &Shard, outbox: &Outbox, bytes: &[u8]) {
    // A preflight or the AsyncAPI document is no error.
    if !bytes.starts_with(b"HTTP/1.1 2") {
        shard.metrics.http_errors.inc();
    }
    if let Some(mut stream) = outbox.close() {
        let _ = stream.write_all(bytes).await;
        let _ = stream.close().await;
    }
}

/// Marks a stream's outbox closed when dropped (see `serve`).
struct CloseOnDrop<'a>(&'a Outbox);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        drop(self.0.close());
    }
}

/// A started stream, from `state` to its end.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice (see the module doc)"
)]
fn run<'a>(
    shard: &'a Rc<Shard>,
    front: &'a Front,
    outbox: &'a Rc<Outbox>,
    stream: &'a Stream,
    mut state: State,
) -> impl Future<Output = io::Result<()>> + 'a {
    async move {
        let metrics = &shard.metrics;
        loop {
            state = match state {
                State::Ended(result) => return result,
                State::Behind(resume, origin) => {
                    // Boxed: a live stream's resident future stays small.
                    let reader = cursor::catch_up(
                        shard,
                        &front.catchup,
                        outbox,
                        &stream.route,
                        &stream.selection,
                        resume,
                        origin,
                    );
                    match Box::pin(reader).await? {
                        CaughtUp::Joined => State::Live,
                        CaughtUp::Stopped => {
                            outbox.flush_within(metrics, cursor::STUCK_CHECK).await?;
                            return Ok(());
                        }
                    }
                }
                State::Live => {
                    outbox.notified().await;
                    // A full socket: keep waiting while the stream is live;
                    // once the hub has demoted it, the cursor takes over the
                    // waiting (and checks `slow_client.max_lag` while it
                    // does).
                    while !outbox.flush_within(metrics, cursor::STUCK_CHECK).await? {
                        if outbox.is_demoted() || outbox.is_ending() {
                            break;
                        }
                    }
                    if shard.streams.is_shutting_down() || outbox.is_ending() {
                        return Ok(());
                    }
                    match outbox.take_demotion() {
                        Some(position) => State::Behind(position.into(), Origin::Demoted),
                        None => State::Live,
                    }
                }
            }
        }
    }
}
