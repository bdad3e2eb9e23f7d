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
//! A live stream with nothing to do has no task: the hub's write pass
//! writes it, and its outbox brings a task back (see `park`) only when
//! the stream needs one: a full socket to wait on, a demotion to read
//! behind, a frame of its own, its end. A request that asks for a live
//! stream and was in at accept is started in the accept loop itself
//! (`begin_now`), with no task ever. So an idle stream costs its outbox
//! and what its task would need again, not a task's future (measured:
//! 15,000 idle streams, 2.6 KB of RSS each → 1.1 KB).
//!
//! A task's future is sized by the largest state it can be in: the start
//! (topic opening, offset look-ups, errors' answers) runs in boxed futures
//! that are freed when the stream runs, and the functions that stay
//! resident are written as `async move` blocks rather than `async fn`s,
//! whose arguments the future would hold twice (as its inputs and as the
//! body's locals).

use std::future::Future;
use std::io;
use std::rc::Rc;

use glommio::TaskQueueHandle;
use tracing::debug;

use super::cursor::{self, CaughtUp, Resume};
use super::lag::Origin;
use super::plan::{self, Body, Head, Plan, TopicRef};
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

/// How far a stream's task went.
enum Run {
    /// The stream is over.
    Over,
    /// The stream is live and has nothing to do: its task can go.
    Idle,
}

/// A started stream: what it reads, for the rest of its life.
struct Stream {
    /// The route's index, for the log.
    route_index: usize,
    route: RouteInfo,
    selection: Selection,
}

/// Serves a connection just accepted: its request is read from the socket
/// at once, and a stream that starts live with nothing to wait for is
/// started here, with no task at all (see `begin_now` and `park`);
/// anything else gets a task, spawned into `queue`, which serves the
/// connection to its end. `held` is whatever the caller needs kept until
/// then (the connection's place in the process's count). The outbox owns
/// the socket from the start, so no task's future holds one.
pub fn accept<H: 'static>(
    shard: &Rc<Shard>,
    front: &Rc<Front>,
    outbox: Rc<Outbox>,
    held: H,
    queue: TaskQueueHandle,
) {
    let _ = outbox.set_nodelay(front.nodelay);
    let head = match plan::plan_now(&front.requests, shard, &outbox) {
        Ok(Head::Complete(plan)) => match begin_now(shard, front, &outbox, plan) {
            Ok(stream) => {
                park(
                    Rc::clone(shard),
                    Rc::clone(front),
                    outbox,
                    stream,
                    held,
                    queue,
                );
                return;
            }
            Err(plan) => Head::Complete(plan),
        },
        Ok(partial) => partial,
        Err(e) => {
            debug!(error = %e, "connection closed before a request");
            drop(outbox.close());
            return;
        }
    };
    spawn(
        serve(Rc::clone(shard), Rc::clone(front), outbox, head, held),
        queue,
    );
}

/// Spawns a stream's task into `queue`, detached. It fails only while the
/// executor stops, and the stream ends with it.
fn spawn(task: impl Future<Output = ()> + 'static, queue: TaskQueueHandle) {
    match glommio::spawn_local_into(task, queue) {
        Ok(task) => drop(task.detach()),
        Err(e) => debug!(error = %e, "could not spawn a stream's task"),
    }
}

/// Serves a connection to the end, from what its socket held at once.
/// Taking `held` here rather than in a wrapping future, which would hold
/// this one twice (rustc keeps both the moved-in future and its awaited
/// copy: +1.1 KB of RSS per stream, measured).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice (see the module doc)"
)]
fn serve<H: 'static>(
    shard: Rc<Shard>,
    front: Rc<Front>,
    outbox: Rc<Outbox>,
    head: Head,
    held: H,
) -> impl Future<Output = ()> {
    async move {
        // The hub may hold the outbox (in a group) after this task ends: it
        // is marked closed then, so nothing is sent on it any more, even if
        // the task is dropped mid-stream.
        let closing = CloseOnDrop(&outbox);
        // Not boxed: while a request is awaited (thousands of connections
        // arriving at once) the task holds no more than this.
        let plan = match plan::read(&front.requests, &shard, &outbox, head).await {
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
        // From here the stream's task may end and come back (see `park`).
        std::mem::forget(closing);
        carry_on(shard, front, outbox, stream, state, held).await;
    }
}

/// A started stream's task, from `state` until the stream ends or has
/// nothing to do: a live stream waiting for the hub's next batch holds no
/// task (see `park`), and its next wake-up runs this again from
/// [`State::Live`].
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice (see the module doc)"
)]
fn carry_on<H: 'static>(
    shard: Rc<Shard>,
    front: Rc<Front>,
    outbox: Rc<Outbox>,
    stream: Stream,
    state: State,
    held: H,
) -> impl Future<Output = ()> {
    async move {
        let closing = CloseOnDrop(&outbox);
        match run(&shard, &front, &outbox, &stream, state).await {
            Ok(Run::Idle) => {
                std::mem::forget(closing);
                let queue = glommio::executor().current_task_queue();
                park(shard, front, outbox, stream, held, queue);
                return;
            }
            Ok(Run::Over) => {}
            Err(e) => {
                let path = &front.requests.routes.route(stream.route_index).path;
                debug!(error = %e, route = %path, "stream ended");
            }
        }
        let socket = outbox.close();
        drop(closing);
        shard.metrics.connections_open.sub(1);
        if let Some(socket) = socket {
            socket.close();
        }
        drop(held);
    }
}

/// Leaves a live stream that has nothing to do without a task: what the
/// task would need again (the stream, what `held` keeps) waits in the
/// outbox, and its next wake-up spawns the task again, into `queue`. An
/// idle stream then costs its outbox and this, not a task.
fn park<H: 'static>(
    shard: Rc<Shard>,
    front: Rc<Front>,
    outbox: Rc<Outbox>,
    stream: Stream,
    held: H,
    queue: TaskQueueHandle,
) {
    // Weak: the outbox holds this; the hub and the shard's streams hold the
    // outbox while the stream is open.
    let parked = Rc::downgrade(&outbox);
    let revive = Box::new(move || {
        let Some(outbox) = parked.upgrade() else {
            return;
        };
        spawn(
            carry_on(shard, front, outbox, stream, State::Live, held),
            queue,
        );
    });
    if let Err(revive) = outbox.park(revive) {
        revive();
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
        if let Some(mut socket) = outbox.close() {
            let _ = socket.send_all(&head).await;
            socket.close();
        }
        return None;
    }
    let (stream, mut head, requested, expiry) = open(shard, front, outbox, plan, topic);
    let metrics = &shard.metrics;
    let start = if requested.is_plain_live(&stream.route) {
        Ok(StartAt::Live)
    } else {
        start::start(
            shard,
            &front.catchup,
            &stream.route,
            &stream.selection,
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
        Ok(start) => under_way(shard, outbox, &stream, &head, expiry, start),
    };
    Some((stream, state))
}

/// A request for a stream that starts live with nothing to wait for (its
/// head was in at once, its topic is served, no id, no `since`): started
/// here, without a task of its own, which it would give up at once (see
/// `park`). The plan back when it is not such a request.
#[expect(
    clippy::result_large_err,
    reason = "handed back by value once per connection; a box would allocate for every one"
)]
fn begin_now(
    shard: &Rc<Shard>,
    front: &Front,
    outbox: &Rc<Outbox>,
    plan: Plan,
) -> Result<Stream, Plan> {
    let ready = match &plan {
        Plan::Stream(p) => match p.topic {
            TopicRef::Known(topic) if p.body == Body::Events => {
                let route = front.requests.routes.info(p.route);
                start::plain_live(p.last_event_id.as_deref(), p.since, route).then_some(topic)
            }
            _ => None,
        },
        _ => None,
    };
    let Some(topic) = ready else {
        return Err(plan);
    };
    let Plan::Stream(plan) = plan else {
        unreachable!("only a stream's plan is ready")
    };
    let (stream, head, _, expiry) = open(shard, front, outbox, plan, topic);
    under_way(shard, outbox, &stream, &head, expiry, StartAt::Live);
    Ok(stream)
}

/// The stream `plan` asks for on `topic`, counted open: what it reads, its
/// head so far (status line, `retry:`), where it asked to start, and when
/// its token runs out.
fn open(
    shard: &Rc<Shard>,
    front: &Front,
    outbox: &Rc<Outbox>,
    plan: plan::StreamPlan,
    topic: crate::model::TopicId,
) -> (
    Stream,
    Vec<u8>,
    Requested,
    Option<crate::shard::streams::Expiry>,
) {
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
    sse::encode_retry(&mut head, front.retry_millis());
    let requested = Requested {
        last_event_id: plan.last_event_id,
        since: plan.since,
    };
    let stream = Stream {
        route_index: plan.route,
        route,
        selection,
    };
    (stream, head, requested, plan.expiry)
}

/// Sends the stream head and puts the stream where it starts: live in its
/// audience, or behind, to be read by a cursor.
fn under_way(
    shard: &Shard,
    outbox: &Rc<Outbox>,
    stream: &Stream,
    head: &[u8],
    expiry: Option<crate::shard::streams::Expiry>,
    start: StartAt,
) -> State {
    outbox.send_or_queue(head, &shard.metrics);
    // Only now: the ticker's keep-alives and the token's steps must come
    // after the stream head (the start may wait on Kafka for longer than a
    // keep-alive).
    outbox.set_keepalive(shard.streams.keepalive_ticks(stream.route.keepalive));
    if let Some(expiry) = expiry {
        shard.streams.watch_expiry(Rc::clone(outbox), expiry);
    }
    match start {
        StartAt::Live => {
            let mut hub = shard.hub.borrow_mut();
            hub.topic_mut(stream.route.topic).join(
                Rc::clone(outbox),
                stream.route.render,
                &stream.selection,
            );
            State::Live
        }
        StartAt::Behind(resume) => State::Behind(resume, Origin::Request),
    }
}

/// Writes an HTTP answer instead of a stream, and closes.
async fn answer(shard: &Shard, outbox: &Outbox, bytes: &[u8]) {
    // A preflight or the AsyncAPI document is no error.
    if !bytes.starts_with(b"HTTP/1.1 2") {
        shard.metrics.http_errors.inc();
    }
    if let Some(mut socket) = outbox.close() {
        let _ = socket.send_all(bytes).await;
        socket.close();
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
) -> impl Future<Output = io::Result<Run>> + 'a {
    async move {
        let metrics = &shard.metrics;
        loop {
            state = match state {
                State::Ended(result) => return result.map(|()| Run::Over),
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
                            return Ok(Run::Over);
                        }
                    }
                }
                State::Live => {
                    // Nothing new: the task can go (see `park`).
                    let poked = outbox.take_notified();
                    let over = shard.streams.is_shutting_down()
                        || outbox.is_ending()
                        || outbox.is_closed();
                    if !poked && !over {
                        return Ok(Run::Idle);
                    }
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
                        return Ok(Run::Over);
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
