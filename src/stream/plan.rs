//! Request → plan: a connection's request head is read (usually at once,
//! in the shard's scratch buffer), routed, and turned into what to do — an
//! HTTP answer (errors, CORS preflight), or a stream of a topic with the
//! request's filter and starting point.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::debug;

use super::routes::{Document, Routes};
use crate::codec::filter::{self, Filter, GuardVars, Source};
use crate::codec::http::{self, Method};
use crate::codec::partitioner::partition_for_key;
use crate::codec::topic;
use crate::config::Partitioner;
use crate::guard::{token, Denied, Gate, Place};
use crate::kafka::TopicTable;
use crate::model::{Partition, TopicId};
use crate::shard::audiences::Selection;
use crate::shard::outbox::Outbox;
use crate::shard::streams::Expiry;
use crate::shard::Shard;

/// Seconds a client is asked to wait when Kafka cannot serve its topic.
pub const UNAVAILABLE_RETRY_AFTER: u64 = 5;

/// An HTTP error answer, instead of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub why: String,
    /// `retry-after`, in seconds.
    pub retry_after: Option<u64>,
    /// `www-authenticate`, for a guard's 401 and 403.
    pub challenge: Option<String>,
}

impl Refusal {
    pub fn new(status: u16, why: impl Into<String>) -> Self {
        Self {
            status,
            why: why.into(),
            retry_after: None,
            challenge: None,
        }
    }

    /// A 503 that asks the client to come back after `seconds`.
    pub fn unavailable(why: impl Into<String>, seconds: u64) -> Self {
        Self {
            retry_after: Some(seconds),
            ..Self::new(503, why)
        }
    }

    /// A guard's refusal, with its challenge (a 503 while its keys are
    /// not loaded asks to come back in a second instead).
    pub fn denied(denied: &Denied) -> Self {
        if denied.status() == 503 {
            return Self::unavailable(denied.message(), 1);
        }
        Self {
            challenge: Some(denied.challenge()),
            ..Self::new(denied.status(), denied.message())
        }
    }

    /// The response bytes.
    pub fn response(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match &self.challenge {
            Some(challenge) => {
                http::write_error_challenging(&mut out, self.status, &self.why, challenge);
            }
            None => http::write_error(&mut out, self.status, &self.why, self.retry_after),
        }
        out
    }
}

/// What the shard's streams need to turn requests into plans.
#[derive(Debug)]
pub struct Requests {
    pub routes: Routes,
    /// The guards of guarded routes.
    pub gate: Gate,
    /// The process-wide topic table.
    pub topics: Arc<TopicTable>,
    /// `connections.request_timeout`.
    pub request_timeout: Duration,
    /// Where request heads that have fully arrived are read and parsed, so
    /// the common connection never allocates a head buffer of its own (a
    /// freed buffer per connection still costs RSS: the allocator keeps it).
    head_scratch: RefCell<Vec<u8>>,
}

impl Requests {
    pub fn new(routes: Routes, gate: Gate, topics: Arc<TopicTable>) -> Self {
        let request_timeout = routes.config().connections.request_timeout;
        Self {
            routes,
            gate,
            topics,
            request_timeout,
            head_scratch: RefCell::new(vec![0; http::MAX_HEAD_BYTES]),
        }
    }
}

/// A request's topic, as the request head tells it.
#[derive(Debug)]
pub enum TopicRef {
    /// A topic this shard serves.
    Known(TopicId),
    /// A topic the request named through the route's topic template that
    /// this shard does not serve yet (see `open_topic`).
    Named(String),
}

/// A stream a request asked for, owned so the read buffer can go.
#[derive(Debug)]
pub struct StreamPlan {
    pub route: usize,
    pub last_event_id: Option<Vec<u8>>,
    /// `?since=`, in milliseconds since the epoch.
    pub since: Option<i64>,
    pub allow_origin: Option<Vec<u8>>,
    /// `access-control-allow-credentials`: the route's guard reads a cookie.
    pub allow_credentials: bool,
    /// The token came in the URL: no cache may keep the answer.
    pub private: bool,
    /// When the stream's token runs out, on a guarded route.
    pub expiry: Option<Expiry>,
    pub topic: TopicRef,
    /// The route's filters resolved for this request.
    pub filter: Option<Filter>,
    pub body: Body,
}

impl StreamPlan {
    /// What the stream's response head says about origins and caches.
    pub fn stream_head(&self) -> http::StreamHead<'_> {
        http::StreamHead {
            allow_origin: self.allow_origin.as_deref(),
            allow_credentials: self.allow_credentials,
            private: self.private,
        }
    }
}

/// Whether the client wants the events or only the stream's response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// GET: the stream.
    Events,
    /// HEAD: the response head a GET would get, then the connection ends.
    HeadOnly,
}

/// What the request head asked for.
#[derive(Debug)]
pub enum Plan {
    /// An answer to write before closing (an error, or a preflight).
    Respond(Vec<u8>),
    Stream(StreamPlan),
    /// Not yet: the token names a kid the guard's keys lack, and they are
    /// being fetched again; plan `head` (the request head's bytes) again
    /// once fetch number `past + 1` of guard number `guard` is done.
    /// [`read`] does, and never returns this.
    AwaitKeys {
        guard: usize,
        past: u64,
        head: Vec<u8>,
    },
}

impl From<Refusal> for Plan {
    fn from(refusal: Refusal) -> Self {
        Plan::Respond(refusal.response())
    }
}

/// Reads and plans the rest of a connection's request, from what
/// [`plan_now`] found.
pub async fn read(
    requests: &Requests,
    shard: &Shard,
    outbox: &Outbox,
    head: Head,
) -> io::Result<Plan> {
    // Decided in one statement, so that no head or plan is held in the
    // connection's future while the rest of the head is awaited.
    let (buf, deadline) = match head {
        Head::Complete(Plan::AwaitKeys { guard, past, head }) => {
            return Ok(Box::pin(await_keys(requests, shard, guard, past, head)).await)
        }
        Head::Complete(plan) => return Ok(plan),
        Head::Partial(buf) => {
            // Nothing at all: the kernel's deferred accept stopped waiting
            // for it, after `defer_accept(request_timeout)` at least, which
            // counts toward its timeout.
            let wait = if buf.is_empty() {
                requests
                    .request_timeout
                    .saturating_sub(defer_accept(requests.request_timeout))
            } else {
                requests.request_timeout
            };
            (buf, Instant::now() + wait)
        }
    };
    // Boxed: the read buffer lives on the heap only while the head is read,
    // not in the connection's future for the life of the stream.
    match Box::pin(read_plan(requests, shard, outbox, buf, deadline)).await? {
        Plan::AwaitKeys { guard, past, head } => {
            Ok(Box::pin(await_keys(requests, shard, guard, past, head)).await)
        }
        plan => Ok(plan),
    }
}

/// How often a request waiting for a guard's keys looks whether they came.
const KEYS_LOOK_EVERY: Duration = Duration::from_millis(10);

/// Waits until the fetch of guard number `guard`'s keys that the request
/// asked for is done (at most the fetch's own timeout), then plans the
/// request again with the keys as they are then, without waiting again.
async fn await_keys(
    requests: &Requests,
    shard: &Shard,
    guard: usize,
    past: u64,
    head: Vec<u8>,
) -> Plan {
    let keys = requests.gate.keys();
    let deadline = Instant::now() + crate::guard::fetch::FETCH_TIMEOUT + Duration::from_secs(1);
    while keys.fetches(guard) <= past && Instant::now() < deadline {
        glommio::timer::sleep(KEYS_LOOK_EVERY).await;
    }
    match http::parse_request(&head) {
        Ok(Some(head)) => plan_for(requests, shard, &head, false),
        // It parsed the first time.
        _ => Refusal::new(400, "bad request").into(),
    }
}

/// How long the kernel holds a new connection back until its request has
/// arrived (`TCP_DEFER_ACCEPT`): half the request timeout, at least 1 s. A
/// connection accepted with its request already in the socket has its head
/// read at once into the shard's scratch buffer (no buffer of its own, so
/// no heap fragmentation per connection: measured, 1 s cost 200 B of RSS
/// per idle stream of a 15,000-connection burst against 5 s); one accepted
/// without (the kernel stopped waiting) has waited this long already, and
/// gets the rest of the timeout. The kernel rounds the wait up to its
/// SYN-ACK retransmissions (1 + 2 + 4 s for 5 s).
pub fn defer_accept(request_timeout: Duration) -> Duration {
    (request_timeout / 2).max(Duration::from_secs(1))
}

/// What the socket held when the connection was accepted.
#[derive(Debug)]
pub enum Head {
    /// A whole request head: its plan.
    Complete(Plan),
    /// The start of one (possibly nothing yet), to be read on.
    Partial(Vec<u8>),
}

/// Usually the whole request head is in the socket by the time the
/// connection is served: read and parse it in the shard's scratch buffer,
/// without awaiting (so the borrow is never held across a suspension) and
/// without allocating. Thousands of connections arriving at once would
/// otherwise each allocate transient buffers that leave the allocator's
/// heap fragmented for as long as the streams live.
pub fn plan_now(requests: &Requests, shard: &Shard, outbox: &Outbox) -> io::Result<Head> {
    let mut scratch = requests.head_scratch.borrow_mut();
    match outbox.recv_now(&mut scratch)? {
        Some(0) => Err(io::ErrorKind::UnexpectedEof.into()),
        Some(n) => match http::parse_request(&scratch[..n]) {
            Ok(None) => Ok(Head::Partial(scratch[..n].to_vec())),
            Ok(Some(head)) => {
                let mut plan = plan_for(requests, shard, &head, true);
                if let Plan::AwaitKeys { head, .. } = &mut plan {
                    *head = scratch[..n].to_vec();
                }
                Ok(Head::Complete(plan))
            }
            Err(e) => Ok(Head::Complete(bad_request(&e))),
        },
        None => Ok(Head::Partial(Vec::new())),
    }
}

/// Reads the rest of a request head (`buf` holds what arrived so far)
/// within the request timeout and decides what to do with it.
async fn read_plan(
    requests: &Requests,
    shard: &Shard,
    outbox: &Outbox,
    mut buf: Vec<u8>,
    deadline: Instant,
) -> io::Result<Plan> {
    // Most request heads fit in 1 KiB; the buffer doubles as needed and the
    // parser bounds it (431 past MAX_HEAD_BYTES). No separate read chunk: a
    // connection holds as little as possible while it is being set up.
    buf.reserve(1024);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        if buf.len() == buf.capacity() {
            buf.reserve(buf.len());
        }
        let filled = buf.len();
        buf.resize(buf.capacity(), 0);
        let n = outbox.read(&mut buf[filled..], left).await?;
        buf.truncate(filled + n);
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        match http::parse_request(&buf) {
            Ok(None) => continue,
            Ok(Some(head)) => {
                let mut plan = plan_for(requests, shard, &head, true);
                if let Plan::AwaitKeys { head, .. } = &mut plan {
                    head.clone_from(&buf);
                }
                return Ok(plan);
            }
            Err(e) => return Ok(bad_request(&e)),
        }
    }
}

/// The answer to a request for the served AsyncAPI document: the
/// document (or, for HEAD, its head), a CORS preflight, or 405.
fn document_answer(routes: &Routes, head: &http::RequestHead<'_>, document: &Document) -> Plan {
    let allow_origin = http::cors_allow_origin(&routes.config().cors.allow_origins, head.origin);
    match head.method {
        Method::Get | Method::Head => {
            let mut out = Vec::with_capacity(document.body.len() + 256);
            http::write_document(
                &mut out,
                document.content_type,
                document.body.as_bytes(),
                allow_origin,
            );
            Plan::Respond(out)
        }
        Method::Options => match allow_origin {
            Some(origin) => {
                let mut out = Vec::new();
                http::write_preflight(&mut out, origin, head.access_control_request_headers, false);
                Plan::Respond(out)
            }
            None => Refusal::new(403, "origin not allowed").into(),
        },
        _ => Refusal::new(405, "only GET reads the document").into(),
    }
}

fn bad_request(e: &http::RequestError) -> Plan {
    Refusal::new(e.status(), e.to_string()).into()
}

/// The plan for a complete head; a HEAD request's answer has no body
/// (RFC 9110 §9.3.2).
fn plan_for(
    requests: &Requests,
    shard: &Shard,
    head: &http::RequestHead<'_>,
    may_wait: bool,
) -> Plan {
    match plan_for_method(requests, shard, head, may_wait) {
        Plan::Respond(bytes) if head.method == Method::Head => {
            Plan::Respond(http::without_body(bytes))
        }
        plan => plan,
    }
}

fn plan_for_method(
    requests: &Requests,
    shard: &Shard,
    head: &http::RequestHead<'_>,
    may_wait: bool,
) -> Plan {
    let routes = &requests.routes;
    if let Some(document) = routes.document(head.path) {
        return document_answer(routes, head, document);
    }
    let Some((route, params)) = routes.router().route(head.path) else {
        return Refusal::new(404, "no route for this path").into();
    };
    let route_config = routes.route(route);
    let allow_origin = http::cors_allow_origin(&routes.config().cors.allow_origins, head.origin);
    // A guard that reads the browser's cookie: its answers say the browser
    // may send it (the origin is a listed one, never `*`).
    let allow_credentials = route_config
        .guard
        .is_some_and(|g| requests.gate.guard(g).cookie.is_some());
    match head.method {
        Method::Get | Method::Head => {}
        Method::Options => {
            let Some(origin) = allow_origin else {
                return Refusal::new(403, "origin not allowed").into();
            };
            let mut out = Vec::new();
            http::write_preflight(
                &mut out,
                origin,
                head.access_control_request_headers,
                allow_credentials,
            );
            return Plan::Respond(out);
        }
        _ => return Refusal::new(405, "only GET streams events").into(),
    }
    let admitted = match route_config.guard {
        None => None,
        Some(g) => match requests.gate.check(g, &route_config.roles, head, may_wait) {
            Ok(admitted) => Some((g, admitted)),
            Err(Denied::Fetching { guard, past }) => {
                return Plan::AwaitKeys {
                    guard,
                    past,
                    head: Vec::new(),
                }
            }
            Err(denied) => return refuse(route, &denied).into(),
        },
    };
    // The token never reaches what follows.
    let stripped = token::query_without_token(head.query);
    let query = stripped.as_deref().or(head.query);
    let vars = filter::Vars {
        params: &params,
        query,
        guard: admitted.as_ref().map(|(g, a)| GuardVars {
            claims: &a.verified.claims,
            identity: &requests.gate.guard(*g).identity_claim,
        }),
    };
    let filter = match filter::resolve(&route_config.filters, &vars) {
        Ok(filter) => filter,
        Err(missing) => return missing_refusal(requests, route, &missing).into(),
    };
    let topic = match request_topic(requests, shard, route, &vars) {
        Ok(topic) => topic,
        Err(refusal) => return refusal.into(),
    };
    if let TopicRef::Known(topic) = topic {
        let hub = shard.hub.borrow();
        let ts = hub.topic(topic);
        if !ts.ready() {
            return Refusal::unavailable("kafka metadata for this topic is not loaded yet", 1)
                .into();
        }
        if let Some(outage) = ts.outage() {
            let why = format!("kafka cannot serve this topic now: {}", outage.why);
            return Refusal::unavailable(why, UNAVAILABLE_RETRY_AFTER).into();
        }
    }
    let since = match http::query_param(query, "since") {
        None => None,
        Some(text) => match parse_since(&text) {
            Some(ms) => Some(ms),
            None => {
                return Refusal::new(
                    400,
                    "since: expected an RFC 3339 time (2026-11-28T09:00:00Z) or milliseconds since the epoch",
                )
                .into()
            }
        },
    };
    let last_event_id = head
        .last_event_id
        .map(<[u8]>::to_vec)
        .or_else(|| http::query_param(query, "lastEventId").map(|v| v.as_bytes().to_vec()));
    Plan::Stream(StreamPlan {
        route,
        last_event_id,
        since,
        allow_origin: allow_origin.map(<[u8]>::to_vec),
        allow_credentials,
        private: admitted
            .as_ref()
            .is_some_and(|(_, a)| a.place == Place::Query),
        expiry: admitted.as_ref().map(|(g, a)| {
            let guard = requests.gate.guard(*g);
            let exp = a.verified.expires_at;
            Expiry {
                expires_at: exp,
                challenge_at: guard.challenge.map(|d| exp.saturating_sub(d.as_secs())),
                end_at: exp.saturating_add(guard.leeway.as_secs()),
            }
        }),
        topic,
        filter,
        body: if head.method == Method::Head {
            Body::HeadOnly
        } else {
            Body::Events
        },
    })
}

/// A guard's refusal, logged at debug level only: a storm of bad tokens
/// must not flood the log (the metrics count them by reason).
fn refuse(route: usize, denied: &Denied) -> Refusal {
    debug!(route, status = denied.status(), reason = ?denied.rejection(), "guard refused a request");
    Refusal::denied(denied)
}

/// The answer to a substitution the request does not provide: a 400, or a
/// 403 when it is a claim the token lacks (counted as the guard's).
fn missing_refusal(requests: &Requests, route: usize, missing: &filter::Missing) -> Refusal {
    if missing.from == Source::Guard {
        let denied = Denied::Claim(missing.to_string());
        requests.gate.count(&denied);
        return refuse(route, &denied);
    }
    Refusal::new(400, missing.to_string())
}

/// The topic of a request to route number `route`: the route's own, or the
/// one its topic template names — a valid topic name matching one of the
/// route's `topics` patterns, else 404 (400 for a missing parameter).
fn request_topic(
    requests: &Requests,
    shard: &Shard,
    route: usize,
    vars: &filter::Vars<'_>,
) -> Result<TopicRef, Refusal> {
    let route_config = requests.routes.route(route);
    let Some(template) = &route_config.topic_template else {
        return Ok(TopicRef::Known(requests.routes.info(route).topic));
    };
    let name = template
        .resolve(vars)
        .map_err(|m| missing_refusal(requests, route, &m))?;
    let name = String::from_utf8(name).map_err(|_| Refusal::new(404, "no such topic here"))?;
    topic::check_topic_name(&name).map_err(|why| Refusal::new(404, why.to_string()))?;
    if !route_config
        .topics
        .iter()
        .any(|p| topic::glob_matches(p, &name))
    {
        return Err(Refusal::new(
            404,
            format!("topic '{name}' is not served on this path"),
        ));
    }
    let known = requests.topics.find(&name).filter(|&t| {
        let hub = shard.hub.borrow();
        hub.has_topic(t) && hub.topic(t).ready()
    });
    Ok(match known {
        Some(topic) => TopicRef::Known(topic),
        None => TopicRef::Named(name),
    })
}

/// A request's selection: its filter and, on a route whose producers hash
/// keys with Kafka's default partitioner (`partitioner: murmur2`), the
/// partitions its filter's keys hash to among `count` — only when every
/// filter names a key; else every partition.
pub fn select(filter: Option<Filter>, placement: Option<Partitioner>, count: usize) -> Selection {
    let partitions: Option<Rc<[Partition]>> =
        match (filter.as_ref().and_then(Filter::keys), placement) {
            (Some(keys), Some(Partitioner::Murmur2)) if count > 0 => {
                let count = u32::try_from(count).unwrap_or(u32::MAX);
                let mut ps: Vec<Partition> = keys
                    .iter()
                    .map(|k| Partition(partition_for_key(k, count)))
                    .collect();
                ps.sort_unstable();
                ps.dedup();
                Some(Rc::from(ps))
            }
            _ => None,
        };
    Selection {
        hashed_over: if partitions.is_some() { count } else { 0 },
        filter: filter.map(Rc::new),
        partitions,
    }
}

/// `?since=`: an RFC 3339 time or milliseconds since the epoch.
fn parse_since(text: &str) -> Option<i64> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // A time Kafka's look-up cannot take is no time (once it replayed
        // the whole topic).
        return text
            .parse()
            .ok()
            .filter(|&ms| rskafka::chrono::DateTime::from_timestamp_millis(ms).is_some());
    }
    rskafka::chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_rfc_3339_or_epoch_millis() {
        let since = parse_since;
        assert_eq!(since("1700000000123"), Some(1_700_000_000_123));
        assert_eq!(since("0"), Some(0));
        assert_eq!(since("2023-11-14T22:13:20.123Z"), Some(1_700_000_000_123));
        assert_eq!(since("2023-11-15T00:13:20+02:00"), Some(1_700_000_000_000));
        for bad in [
            "",
            "yesterday",
            "-5",
            "1.5",
            "2023-11-14",
            "99999999999999999999",
            "9223372036854775807",
        ] {
            assert_eq!(since(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn refusals_are_plain_http_errors() {
        let body = String::from_utf8(Refusal::unavailable("full", 7).response()).unwrap();
        assert!(body.starts_with("HTTP/1.1 503 "), "{body}");
        assert!(body.contains("retry-after: 7\r\n"), "{body}");
        assert!(body.ends_with("full\n"), "{body}");
    }
}
