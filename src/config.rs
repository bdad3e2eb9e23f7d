//! The YAML configuration of sse-kafka: where to listen, which Kafka cluster to
//! read, and which HTTP path streams which topic. [`parse`] and [`load`] turn a
//! file into a validated [`Config`] or into a [`ConfigError`] that names the
//! file, the line, the column and the dotted field (`routes[1].topic`), because
//! an operator fixing a broken deployment should never have to guess where the
//! mistake is. Most checks run *during* deserialization, inside small newtypes
//! (durations, sizes, topic names, route paths, keywords), so that serde_yaml_ng
//! attaches the exact position of the offending value; the few checks that span
//! several fields run afterwards and find their position again with a small
//! scanner over the text (`KeyIndex`).

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::marker::PhantomData;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::codec::topic::check_topic_name;
use crate::filter::{FilterSpec, Source, Template, ValueSpec};
use crate::router::PathTemplate;

// ---------------------------------------------------------------------------
// Defaults. Each says why it has its value.

/// All interfaces, port 8080: the proxy usually runs in a container or behind a
/// load balancer and must be reachable from outside its host; 8080 is the
/// customary unprivileged HTTP port, so no extra capability is needed.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 8080));

/// 100ms: a record produced on a quiet topic reaches clients with at most this
/// much added latency, while an idle proxy still makes only ten fetch requests a
/// second per broker instead of spinning.
pub const DEFAULT_FETCH_MAX_WAIT: Duration = Duration::from_millis(100);

/// Smallest accepted `kafka.fetch_max_wait`: brokers answer a fetch with a max
/// wait of 0 immediately even when empty, which turns the fetch loop into a busy
/// loop against the cluster, so 0 is refused and 1ms is the floor.
pub const MIN_FETCH_MAX_WAIT: Duration = Duration::from_millis(1);

/// 1 MiB: the broker's default `message.max.bytes` is about 1 MB, so one fetch
/// can always carry at least one record of the largest default size.
pub const DEFAULT_FETCH_MAX_BYTES: usize = 1 << 20;

/// Names the proxy in broker logs, metrics and quotas.
pub const DEFAULT_CLIENT_ID: &str = "sse-kafka";

/// 15s: well below the 60s idle timeouts of common reverse proxies and load
/// balancers (nginx `proxy_read_timeout`, AWS ALB), so an SSE stream on a quiet
/// topic is not cut for idleness, yet the comment frames cost almost nothing.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);

/// 2s: the HTML spec leaves EventSource's reconnection delay to the browser
/// ("a few seconds"); 2s brings clients back quickly after a proxy restart
/// without hammering a proxy that is still starting.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(2);

/// 1s: spreads the reconnections of every client of a restarted proxy over a
/// second instead of letting them all arrive in the same instant.
pub const DEFAULT_RETRY_JITTER: Duration = Duration::from_secs(1);

/// `*`: the streams are read-only and the proxy uses no cookies or credentials,
/// so any web page may read them unless the operator narrows it down.
pub const DEFAULT_ALLOW_ORIGIN: &str = "*";

/// 1 MiB: the same as one full fetch ([`DEFAULT_FETCH_MAX_BYTES`]), so a client
/// that is briefly slow can absorb a whole fetch; a client that falls further
/// behind than that is disconnected rather than growing the proxy's memory.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 1 << 20;

/// 100000 connections per process: more than one well-provisioned host serves
/// in practice, and below the 1048576 open-file limit that servers commonly
/// raise to, so the proxy refuses clients cleanly instead of failing on EMFILE.
pub const DEFAULT_MAX_CONNECTIONS: usize = 100_000;

/// 10s: a real client sends its tiny GET request head in well under a second,
/// even on a poor mobile link; sockets that send nothing (or drip bytes, as in
/// slowloris) are freed after this.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// 5s: partitions added to a topic, and topics deleted, show up in the streams
/// within seconds, while one metadata request every 5s is negligible load for a
/// broker. (Kafka's own clients wait 5 minutes, `metadata.max.age.ms`, but they
/// are not holding streams open for people watching for new partitions.)
pub const DEFAULT_METADATA_REFRESH: Duration = Duration::from_secs(5);

/// 30s: rides out a broker restart or a leader election, which take seconds,
/// without ending anyone's stream, yet clients of a deleted topic or a dead
/// cluster hear about it within half a minute instead of waiting on a silent
/// stream; six metadata refreshes at [`DEFAULT_METADATA_REFRESH`].
pub const DEFAULT_UNAVAILABLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Topics an instance serves at most by default: the config's own plus
/// those requests name through a route's topic template.
pub const DEFAULT_MAX_TOPICS: usize = 1024;
/// The largest `kafka.max_topics`: every topic costs each shard a metadata
/// watch and the fetch loops of its partitions for the life of the process.
pub const MAX_MAX_TOPICS: usize = 65_536;

/// 64 MiB: about 65 000 records of 1 KiB, minutes of history on a busy
/// partition, so that clients reconnecting after a short outage resume from
/// memory instead of each fetching the same records from Kafka again; sixteen
/// full partitions fit in [`DEFAULT_CACHE_TOTAL_BYTES`].
pub const DEFAULT_CACHE_PARTITION_BYTES: usize = 64 << 20;

/// 1 GiB: a fixed bound the operator can plan memory around, whatever the
/// number of partitions, and small next to the memory of a dedicated host.
pub const DEFAULT_CACHE_TOTAL_BYTES: usize = 1 << 30;

/// 10m: covers the usual reconnections (a network change, a few minutes of a
/// sleeping laptop, a load balancer moving clients); older history is rarely
/// asked for and Kafka serves it on demand, so memory is not held for it.
pub const DEFAULT_CACHE_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// 1 000 000 records: 100s behind at 10 000 records/s. A client that far
/// behind is reading history rather than following the stream, and each such
/// client makes the proxy fetch old data from Kafka for it alone. A count
/// rather than an age, because it does not depend on producers setting
/// sensible record timestamps.
pub const DEFAULT_SLOW_CLIENT_MAX_LAG: MaxLag = MaxLag::Records(1_000_000);

// ---------------------------------------------------------------------------
// The error.

/// A configuration error: `file:line:column: field: message`.
///
/// `line` and `column` are 1-based; 0 means the position is unknown (a file that
/// cannot be read, an empty document). `field` is a dotted path such as
/// `routes[1].topic` or `kafka.bootstrap`; `-` means no single field (the file
/// itself, or the whole document). For YAML syntax errors, which the parser
/// reports without a path, `field` is the key nearest before the error position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {field}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
}

impl ConfigError {
    fn new(file: &str, (line, column): (usize, usize), field: &str, message: String) -> Self {
        ConfigError {
            file: file.to_string(),
            line,
            column,
            field: field.to_string(),
            message,
        }
    }

    /// Turns a serde_yaml_ng error into ours. Its text is
    /// `<path>: <message> at line L column C` for type and value errors (the
    /// path is absent at the document root) and `<problem> at line L column C,
    /// <context>` for syntax errors; we move the path into `field` and drop the
    /// position, which is already in `line` and `column`.
    fn from_yaml(err: &serde_yaml_ng::Error, text: &str, file: &str) -> Self {
        let (line, column) = err.location().map_or((0, 0), |l| (l.line(), l.column()));
        let mut full = err.to_string();
        if line > 0 {
            let mark = format!(" at line {line} column {column}");
            if let Some(at) = full.find(&mark) {
                full.replace_range(at..at + mark.len(), "");
            }
        }
        let (path, message) = match full.split_once(": ") {
            Some((path, rest)) if looks_like_path(path) => (path.to_string(), rest.to_string()),
            _ => (String::new(), full),
        };
        // serde names the offending key only inside the message; the field is
        // more useful as the full path to that key.
        let named = ["unknown field `", "missing field `", "duplicate field `"]
            .iter()
            .find_map(|prefix| message.strip_prefix(prefix))
            .and_then(|rest| rest.split_once('`'))
            .map(|(key, _)| join_key(&path, key));
        let mut message = message;
        // libyaml's complaint about a tab is cryptic ("found character that
        // cannot start any token"); tabs in indentation are the usual cause.
        let indent_has_tab = line > 0
            && text.lines().nth(line - 1).is_some_and(|l| {
                l.chars()
                    .take_while(|c| c.is_whitespace())
                    .any(|c| c == '\t')
            });
        if indent_has_tab {
            message.push_str(" (YAML does not allow tabs for indentation; use spaces)");
        }
        let field = match named {
            Some(field) => field,
            None if !path.is_empty() => path,
            // No path: a syntax error, or a problem with the document as a
            // whole. The nearest key before the position is the best hint.
            None => KeyIndex::new(text)
                .path_at_line(line)
                .unwrap_or_else(|| "-".to_string()),
        };
        ConfigError::new(file, (line, column), &field, message)
    }
}

/// Whether `s` can be a serde_yaml_ng path (`routes[0].topic`) rather than the
/// first words of a message such as `invalid type: ...`. A path starts with
/// one of our top-level keys, plain identifiers, so a space before the first
/// `.` or `[` rules a path out. Further on a path may hold keys the operator
/// chose — header names, JSON pointers (`routes[0].filters[0].value./a b`) —
/// so anything goes there. (A key holding `": "` would still end the path
/// early: the message then starts with the key's tail, nothing worse.)
fn looks_like_path(s: &str) -> bool {
    let first = &s[..s.find(['.', '[']).unwrap_or(s.len())];
    !first.is_empty()
        && first
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-?".contains(c))
}

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

// ---------------------------------------------------------------------------
// The validated model.

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Absent: no admin listener.
    pub admin_listen: Option<SocketAddr>,
    pub kafka: KafkaConfig,
    /// Interval between keepalive comments on an idle stream; never zero.
    pub keepalive: Duration,
    /// Base of the SSE `retry:` field.
    pub retry: Duration,
    /// Random extra added to `retry` per connection.
    pub retry_jitter: Duration,
    pub cors: Cors,
    pub connections: Connections,
    pub cache: CacheConfig,
    pub slow_client: SlowClient,
    /// Never empty; paths are distinct.
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Never empty; each entry is `host:port`.
    pub bootstrap: Vec<String>,
    /// At least [`MIN_FETCH_MAX_WAIT`].
    pub fetch_max_wait: Duration,
    /// Never zero.
    pub fetch_max_bytes: usize,
    pub client_id: String,
    /// How often topic metadata is refreshed, to notice new partitions and
    /// deleted topics; never zero.
    pub metadata_refresh: Duration,
    /// How long a topic may stay unreachable (broker down, topic deleted)
    /// before its streams end with an SSE `error` event; never zero.
    pub unavailable_timeout: Duration,
    /// Topics the instance serves at most (the config's, then those
    /// requests name); at least the config's, at most [`MAX_MAX_TOPICS`].
    pub max_topics: usize,
}

/// The partition logs: the in-memory cache of recent records from which late
/// and reconnecting clients catch up without asking Kafka.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Byte budget of one partition's log; never more than `total_bytes`.
    /// 0 disables the cache.
    pub partition_bytes: usize,
    /// Byte budget of all partition logs together; 0 only when
    /// `partition_bytes` is 0 too.
    pub total_bytes: usize,
    /// Records older than this leave the cache even within budget; never zero.
    pub max_age: Duration,
}

/// When a client that reads behind the live stream is too far behind.
#[derive(Debug, Clone)]
pub struct SlowClient {
    pub max_lag: MaxLag,
}

/// How far behind the newest record a client may be, written in the file as
/// a record count (`max_lag: 500000`) or a duration (`max_lag: 2m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxLag {
    /// At most this many records behind; may be 0.
    Records(u64),
    /// At most this much time behind, by record timestamps; never zero.
    Age(Duration),
}

#[derive(Debug, Clone)]
pub struct Cors {
    pub allow_origins: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Connections {
    /// How many bytes a live connection may have waiting, in its own
    /// outbox and its feed, after a write pass before it leaves the live
    /// stream for a cursor; never zero.
    pub max_queued_bytes: usize,
    /// Per process; never zero.
    pub max: usize,
    /// A client that sends no complete request head within this is closed;
    /// never zero.
    pub request_timeout: Duration,
    /// TCP_NODELAY on streams (the default). `false` lets the kernel hold
    /// small frames until the previous packet is acknowledged and send them
    /// together: fewer packets per event under load, for up to a delayed
    /// ACK (~40 ms on Linux) of extra latency.
    pub nodelay: bool,
}

#[derive(Debug, Clone)]
pub struct Route {
    /// A valid [`PathTemplate`]: starts with '/', parameters are whole
    /// segments with distinct names.
    pub path: String,
    /// A valid Kafka topic name, or (when `topic_template` is set) the
    /// template as written.
    pub topic: String,
    /// The topic as a template resolved per request (`${params.topic}`):
    /// the name it gives must match one of `topics`.
    pub topic_template: Option<Template>,
    /// Glob patterns (`*`, `?`) bounding the topics a `topic_template` may
    /// resolve to; set exactly when it is.
    pub topics: Vec<String>,
    pub start: Start,
    pub value: ValueEncoding,
    pub event_id: EventIdForm,
    /// Overrides [`Config::keepalive`] for this route; never zero.
    pub keepalive: Option<Duration>,
    /// Which records the route streams: those that match any of these
    /// filters; empty means every record (the file's `filters` absent; an
    /// empty list in the file is refused). Every `${params.NAME}` in them
    /// names a parameter of `path`; `${query.NAME}` is checked per request.
    pub filters: Vec<FilterSpec>,
    /// How the route's producers place keyed records, when they promise
    /// to: a stream whose filters all name fixed keys then reads only the
    /// partitions those keys hash to.
    pub partitioner: Option<Partitioner>,
}

/// A key partitioner producers use (`partitioner:` on a route).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partitioner {
    /// Kafka's default: murmur2 of the key (see [`crate::partitioner`]).
    Murmur2,
}

/// Where a new client without `Last-Event-ID` starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Only records produced after the client connected.
    Live,
    /// The oldest record the topic still holds.
    Earliest,
}

/// How a route writes record values; defined with the frame encoder.
pub use crate::sse::ValueEncoding;

/// What goes into the SSE `id:` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventIdForm {
    /// The partition offsets only: enough to resume.
    Progress,
    /// The record key, then the offsets.
    KeyAndProgress,
}

impl Config {
    /// The distinct topics of all routes, in order of first appearance, so that
    /// start-up subscribes to each topic once and in a predictable order.
    pub fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = Vec::new();
        for route in self.routes.iter().filter(|r| r.topic_template.is_none()) {
            if !topics.contains(&route.topic) {
                topics.push(route.topic.clone());
            }
        }
        topics
    }

    /// The keepalive interval of route number `route`: its own override, or the
    /// global one. Panics if `route` is out of range, like slice indexing.
    pub fn route_keepalive(&self, route: usize) -> Duration {
        self.routes[route].keepalive.unwrap_or(self.keepalive)
    }

    /// The route table as `sse-kafka check` prints it, one line per route, each
    /// ending in a newline:
    /// `GET /items -> topic items (start live, value text, id progress)`, then,
    /// for a route with filters, ` filters: [key=${params.id}] or [header
    /// tag=red, value /n=5]`. A `value` condition's text is quoted
    /// (`/status="open"`) to tell it from a literal number, boolean or null.
    pub fn describe_routes(&self) -> String {
        let mut out = String::new();
        for r in &self.routes {
            // Writing to a String cannot fail.
            let _ = write!(
                out,
                "GET {} -> topic {} (start {}, value {}, id {})",
                r.path,
                r.topic,
                r.start.keyword(),
                r.value.keyword(),
                r.event_id.keyword()
            );
            for (i, f) in r.filters.iter().enumerate() {
                out.push_str(if i == 0 { " filters: [" } else { " or [" });
                describe_filter(&mut out, f);
                out.push(']');
            }
            if let Some(p) = r.partitioner {
                out.push_str(" partitioner ");
                out.push_str(p.keyword());
            }
            if !r.topics.is_empty() {
                out.push_str(" topics ");
                out.push_str(&r.topics.join(", "));
            }
            out.push('\n');
        }
        out
    }
}

/// One filter's conditions, comma-separated, for [`Config::describe_routes`].
fn describe_filter(out: &mut String, f: &FilterSpec) {
    let mut parts: Vec<String> = Vec::new();
    if let Some(key) = &f.key {
        parts.push(format!("key={key}"));
    }
    for (name, value) in &f.headers {
        parts.push(format!("header {name}={value}"));
    }
    for (pointer, spec) in &f.value {
        parts.push(match spec {
            ValueSpec::Text(text) => format!("value {pointer}={:?}", text.to_string()),
            ValueSpec::Literal(json) => format!("value {pointer}={json}"),
        });
    }
    out.push_str(&parts.join(", "));
}

// ---------------------------------------------------------------------------
// Entry points.

/// Reads and parses the file at `path`. A file that cannot be read gives an
/// error with line and column 0 and field `-`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(&file, (0, 0), "-", format!("cannot read the file: {e}")))?;
    parse(&text, &file)
}

/// Parses and validates configuration `text`; `file` is only used to name the
/// source in errors.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    // An empty document deserializes as null, which serde reports as "invalid
    // type: unit value"; say what is actually wrong.
    if text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    }) {
        return Err(ConfigError::new(
            file,
            (0, 0),
            "-",
            "the file is empty; it needs at least `kafka.bootstrap` and `routes`".to_string(),
        ));
    }
    let raw: RawConfig =
        serde_yaml_ng::from_str(text).map_err(|e| ConfigError::from_yaml(&e, text, file))?;
    validate(raw, text, file)
}

// ---------------------------------------------------------------------------
// Raw serde structs: what the file says, with per-value checks done by the
// newtypes below. `expecting` replaces serde's default "struct RawX", which
// would show our private type names in error messages. Private: the public
// model is only ever validated.

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of settings (kafka, routes, listen, ...)"
)]
struct RawConfig {
    #[serde(default = "default_listen")]
    listen: SocketAddr,
    #[serde(default)]
    admin_listen: Option<SocketAddr>,
    kafka: RawKafka,
    #[serde(default = "default_keepalive")]
    keepalive: PositiveDuration,
    #[serde(default = "default_retry")]
    retry: AnyDuration,
    #[serde(default = "default_retry_jitter")]
    retry_jitter: AnyDuration,
    #[serde(default)]
    cors: RawCors,
    #[serde(default)]
    connections: RawConnections,
    #[serde(default)]
    cache: RawCache,
    #[serde(default)]
    slow_client: RawSlowClient,
    routes: NonEmpty<RawRoute>,
    /// Later feature; parsed so the model exists, rejected by `validate`.
    #[serde(default)]
    guards: Option<Value>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of Kafka settings (bootstrap, ...)"
)]
struct RawKafka {
    bootstrap: NonEmpty<BrokerAddr>,
    #[serde(default = "default_fetch_max_wait")]
    fetch_max_wait: FetchWait,
    #[serde(default = "default_fetch_max_bytes")]
    fetch_max_bytes: Size,
    #[serde(default = "default_client_id")]
    client_id: String,
    #[serde(default = "default_metadata_refresh")]
    metadata_refresh: PositiveDuration,
    #[serde(default = "default_unavailable_timeout")]
    unavailable_timeout: PositiveDuration,
    #[serde(default = "default_max_topics")]
    max_topics: NonZeroUsize,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of CORS settings (allow_origins)"
)]
struct RawCors {
    #[serde(default = "default_allow_origins")]
    allow_origins: Vec<String>,
}

impl Default for RawCors {
    fn default() -> Self {
        RawCors {
            allow_origins: default_allow_origins(),
        }
    }
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of connection settings (max, max_queued_bytes, request_timeout, nodelay)"
)]
struct RawConnections {
    #[serde(default = "default_max_queued_bytes")]
    max_queued_bytes: Size,
    #[serde(default = "default_max_connections")]
    max: NonZeroUsize,
    #[serde(default = "default_request_timeout")]
    request_timeout: PositiveDuration,
    #[serde(default = "default_nodelay")]
    nodelay: bool,
}

impl Default for RawConnections {
    fn default() -> Self {
        RawConnections {
            max_queued_bytes: default_max_queued_bytes(),
            max: default_max_connections(),
            request_timeout: default_request_timeout(),
            nodelay: default_nodelay(),
        }
    }
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of cache settings (partition_bytes, total_bytes, max_age)"
)]
struct RawCache {
    #[serde(default = "default_cache_partition_bytes")]
    partition_bytes: AnySize,
    #[serde(default = "default_cache_total_bytes")]
    total_bytes: AnySize,
    #[serde(default = "default_cache_max_age")]
    max_age: PositiveDuration,
}

impl Default for RawCache {
    fn default() -> Self {
        RawCache {
            partition_bytes: default_cache_partition_bytes(),
            total_bytes: default_cache_total_bytes(),
            max_age: default_cache_max_age(),
        }
    }
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of slow-client settings (max_lag)"
)]
struct RawSlowClient {
    #[serde(default = "default_slow_client_max_lag")]
    max_lag: LagLimit,
}

impl Default for RawSlowClient {
    fn default() -> Self {
        RawSlowClient {
            max_lag: default_slow_client_max_lag(),
        }
    }
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a route: a mapping with path, topic, ..."
)]
struct RawRoute {
    path: RoutePath,
    topic: TopicName,
    #[serde(default = "default_start")]
    start: Keyword<Start>,
    #[serde(default = "default_value")]
    value: Keyword<ValueEncoding>,
    #[serde(default = "default_event_id")]
    event_id: Keyword<EventIdForm>,
    #[serde(default)]
    keepalive: Option<PositiveDuration>,
    /// Absent: every record. A null or empty list is `Some(vec![])`, which
    /// `validate` refuses.
    #[serde(default, deserialize_with = "present")]
    filters: Option<Vec<RawFilter>>,
    // Later features; parsed so the model exists, rejected by `validate`.
    #[serde(default)]
    guard: Option<Value>,
    #[serde(default)]
    partitioner: Option<Keyword<Partitioner>>,
    #[serde(default)]
    topics: Option<TopicPatterns>,
}

/// One entry of a route's `filters`. Absent parts hold no condition; a
/// filter with none at all is refused by `validate`, which also checks that
/// each `${params.NAME}` names a parameter of the route's path.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a filter: a mapping with key, headers and/or value"
)]
struct RawFilter {
    #[serde(default, deserialize_with = "present")]
    key: Option<TextCondition>,
    #[serde(default)]
    headers: HeaderConditions,
    #[serde(default)]
    value: ValueConditions,
}

/// For a field whose `null` must be seen rather than read as "absent", as
/// serde does for `Option` fields: the field's own type decides what a null
/// means, and only a missing field is `None` (with `#[serde(default)]`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

// serde's `default = "..."` wants functions; they only wrap the constants.
fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
}
fn default_keepalive() -> PositiveDuration {
    DurationAtLeast(DEFAULT_KEEPALIVE)
}
fn default_retry() -> AnyDuration {
    DurationAtLeast(DEFAULT_RETRY)
}
fn default_retry_jitter() -> AnyDuration {
    DurationAtLeast(DEFAULT_RETRY_JITTER)
}
fn default_fetch_max_wait() -> FetchWait {
    DurationAtLeast(DEFAULT_FETCH_MAX_WAIT)
}
fn default_fetch_max_bytes() -> Size {
    SizeAtLeast(DEFAULT_FETCH_MAX_BYTES)
}
fn default_client_id() -> String {
    DEFAULT_CLIENT_ID.to_string()
}
fn default_metadata_refresh() -> PositiveDuration {
    DurationAtLeast(DEFAULT_METADATA_REFRESH)
}
fn default_unavailable_timeout() -> PositiveDuration {
    DurationAtLeast(DEFAULT_UNAVAILABLE_TIMEOUT)
}
fn default_max_topics() -> NonZeroUsize {
    NonZeroUsize::new(DEFAULT_MAX_TOPICS).expect("DEFAULT_MAX_TOPICS is not zero")
}
fn default_allow_origins() -> Vec<String> {
    vec![DEFAULT_ALLOW_ORIGIN.to_string()]
}
fn default_max_queued_bytes() -> Size {
    SizeAtLeast(DEFAULT_MAX_QUEUED_BYTES)
}
fn default_max_connections() -> NonZeroUsize {
    NonZeroUsize::new(DEFAULT_MAX_CONNECTIONS).expect("DEFAULT_MAX_CONNECTIONS is not zero")
}
fn default_nodelay() -> bool {
    true
}
fn default_request_timeout() -> PositiveDuration {
    DurationAtLeast(DEFAULT_REQUEST_TIMEOUT)
}
fn default_cache_partition_bytes() -> AnySize {
    SizeAtLeast(DEFAULT_CACHE_PARTITION_BYTES)
}
fn default_cache_total_bytes() -> AnySize {
    SizeAtLeast(DEFAULT_CACHE_TOTAL_BYTES)
}
fn default_cache_max_age() -> PositiveDuration {
    DurationAtLeast(DEFAULT_CACHE_MAX_AGE)
}
fn default_slow_client_max_lag() -> LagLimit {
    LagLimit(DEFAULT_SLOW_CLIENT_MAX_LAG)
}
fn default_start() -> Keyword<Start> {
    Keyword(Start::Live)
}
fn default_value() -> Keyword<ValueEncoding> {
    Keyword(ValueEncoding::Text)
}
fn default_event_id() -> Keyword<EventIdForm> {
    Keyword(EventIdForm::Progress)
}

// ---------------------------------------------------------------------------
// Validating newtypes. Each check runs inside a `Visitor` method: serde_yaml_ng
// attaches the value's own position only to errors returned from there (an
// error raised after `String::deserialize` returns would be reported at the
// enclosing mapping instead).

/// Deserializes a string and converts it with `parse`, reporting its error at
/// the string's position.
fn deserialize_str_with<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct StrVisitor<F> {
        expecting: &'static str,
        parse: F,
    }
    impl<'de, T, F: FnOnce(&str) -> Result<T, String>> Visitor<'de> for StrVisitor<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.parse)(v).map_err(E::custom)
        }
    }
    deserializer.deserialize_str(StrVisitor { expecting, parse })
}

/// A humantime duration ("15s", "2m", "100ms") of at least `MIN_NANOS`.
#[derive(Clone, Copy, Debug)]
struct DurationAtLeast<const MIN_NANOS: u64>(Duration);
/// Any duration, zero included (a zero jitter or retry is meaningful).
type AnyDuration = DurationAtLeast<0>;
/// A duration greater than zero (a zero interval or timeout makes no sense).
type PositiveDuration = DurationAtLeast<1>;
/// `kafka.fetch_max_wait`: at least [`MIN_FETCH_MAX_WAIT`].
type FetchWait = DurationAtLeast<{ MIN_FETCH_MAX_WAIT.as_nanos() as u64 }>;

impl<'de, const MIN_NANOS: u64> Deserialize<'de> for DurationAtLeast<MIN_NANOS> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "a duration such as \"15s\", \"2m\" or \"100ms\"", |s| {
            let value = humantime::parse_duration(s).map_err(|e| {
                format!("invalid duration '{s}': {e}; expected e.g. \"15s\", \"2m\" or \"100ms\"")
            })?;
            let min = Duration::from_nanos(MIN_NANOS);
            if value < min {
                return Err(if MIN_NANOS == 1 {
                    format!("duration '{s}' must be greater than 0")
                } else {
                    format!(
                        "duration '{s}' must be at least {}",
                        humantime::format_duration(min)
                    )
                });
            }
            Ok(DurationAtLeast(value))
        })
    }
}

/// A byte size of at least `MIN` bytes: a plain integer, or an integer with
/// suffix B, KiB, MiB or GiB. The 1000-based KB/MB/GB are refused on purpose, so
/// that nobody has to wonder which one was meant.
#[derive(Clone, Copy, Debug)]
struct SizeAtLeast<const MIN: u64>(usize);
/// A budget that must hold something: a zero budget could never hold anything.
type Size = SizeAtLeast<1>;
/// A size where 0 means "off" (the cache budgets).
type AnySize = SizeAtLeast<0>;

const SIZE_FORMS: &str =
    "a plain integer of bytes or an integer with suffix B, KiB, MiB or GiB (e.g. 1MiB)";

impl<const MIN: u64> SizeAtLeast<MIN> {
    fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid size '{s}': expected {SIZE_FORMS}");
        let t = s.trim();
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, suffix) = t.split_at(digits);
        let multiplier: u64 = match suffix.trim_start() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => return Err(bad()),
        };
        let number: u64 = number.parse().map_err(|_| bad())?;
        let bytes = number
            .checked_mul(multiplier)
            .ok_or_else(|| format!("size '{s}' is too large"))?;
        Self::from_u64(bytes)
    }

    fn from_u64(bytes: u64) -> Result<Self, String> {
        if bytes < MIN {
            return Err(if MIN == 1 {
                "size must be greater than 0".to_string()
            } else {
                format!("size must be at least {MIN} bytes")
            });
        }
        usize::try_from(bytes)
            .map(SizeAtLeast)
            .map_err(|_| format!("size {bytes} is too large for this machine"))
    }

    fn from_i64(v: i64) -> Result<Self, String> {
        match u64::try_from(v) {
            Ok(v) => Self::from_u64(v),
            Err(_) if MIN == 0 => Err(format!("size {v} must not be negative")),
            Err(_) if MIN == 1 => Err(format!("size {v} must be greater than 0")),
            Err(_) => Err(format!("size {v} must be at least {MIN} bytes")),
        }
    }
}

impl<'de, const MIN: u64> Deserialize<'de> for SizeAtLeast<MIN> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SizeVisitor<const MIN: u64>;
        impl<'de, const MIN: u64> Visitor<'de> for SizeVisitor<MIN> {
            type Value = SizeAtLeast<MIN>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(SIZE_FORMS)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                SizeAtLeast::from_u64(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                SizeAtLeast::from_i64(v).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                SizeAtLeast::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(SizeVisitor)
    }
}

/// A byte count as the file would write it: `64MiB` when exact, else bytes.
fn show_size(bytes: usize) -> String {
    match bytes {
        0 => "0".to_string(),
        b if b % (1 << 30) == 0 => format!("{}GiB", b >> 30),
        b if b % (1 << 20) == 0 => format!("{}MiB", b >> 20),
        b if b % (1 << 10) == 0 => format!("{}KiB", b >> 10),
        b => b.to_string(),
    }
}

/// `slow_client.max_lag`: a record count (a YAML integer, 0 allowed) or a
/// humantime duration string greater than zero. Checked in the visitor, like
/// the others, so an error points at the value.
#[derive(Clone, Copy, Debug)]
struct LagLimit(MaxLag);

const LAG_FORMS: &str = "a record count (e.g. 500000) or a duration like \"2m\"";

impl<'de> Deserialize<'de> for LagLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LagVisitor;
        impl<'de> Visitor<'de> for LagVisitor {
            type Value = LagLimit;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(LAG_FORMS)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<LagLimit, E> {
                Ok(LagLimit(MaxLag::Records(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<LagLimit, E> {
                let v = u64::try_from(v).map_err(|_| {
                    E::custom(format!(
                        "invalid max lag {v}: expected {LAG_FORMS}; a count cannot be negative"
                    ))
                })?;
                self.visit_u64(v)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<LagLimit, E> {
                let age = humantime::parse_duration(s).map_err(|e| {
                    E::custom(format!(
                        "invalid max lag '{s}': expected {LAG_FORMS} (as a duration: {e})"
                    ))
                })?;
                if age.is_zero() {
                    return Err(E::custom(format!("duration '{s}' must be greater than 0")));
                }
                Ok(LagLimit(MaxLag::Age(age)))
            }
        }
        d.deserialize_any(LagVisitor)
    }
}

/// A route's `topic`: a Kafka topic name, checked as the broker checks it
/// ([`check_topic_name`]) so that a typo fails here rather than at the first
/// fetch; or a [`Template`] resolved per request (then the route's `topics`
/// patterns bound what it may resolve to).
#[derive(Debug)]
struct TopicName(String, Option<Template>);

impl<'de> Deserialize<'de> for TopicName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "a Kafka topic name", |s| {
            if s.contains("${") {
                let template = Template::parse(s).map_err(|e| e.to_string())?;
                return Ok(TopicName(s.to_string(), Some(template)));
            }
            check_topic_name(s).map_err(|e| e.to_string())?;
            Ok(TopicName(s.to_string(), None))
        })
    }
}

/// A route's `topics`: glob patterns (`*` any run of characters, `?` one)
/// over topic names, one or a list.
#[derive(Debug, Default)]
struct TopicPatterns(Vec<String>);

impl<'de> Deserialize<'de> for TopicPatterns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor rather than an untagged enum, so an invalid pattern is
        // reported at its own position with its own message.
        struct OneOrMany;
        impl<'de> Visitor<'de> for OneOrMany {
            type Value = TopicPatterns;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a topic pattern or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TopicPatterns, E> {
                let one = TopicPattern::deserialize(de::value::StrDeserializer::<E>::new(v))?;
                Ok(TopicPatterns(vec![one.0]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TopicPatterns, A::Error> {
                let mut all = Vec::new();
                while let Some(p) = seq.next_element::<TopicPattern>()? {
                    all.push(p.0);
                }
                if all.is_empty() {
                    return Err(de::Error::custom(
                        "an empty list allows no topic; list at least one pattern",
                    ));
                }
                Ok(TopicPatterns(all))
            }
        }
        d.deserialize_any(OneOrMany)
    }
}

/// One glob over topic names.
struct TopicPattern(String);

impl<'de> Deserialize<'de> for TopicPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "a topic pattern such as \"public.*\"", |s| {
            let valid = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*' | '?'));
            if !valid {
                return Err(format!(
                    "invalid topic pattern '{s}': use topic name characters (a-z, A-Z, 0-9, '.', '_', '-') and the wildcards '*' and '?'"
                ));
            }
            Ok(TopicPattern(s.to_string()))
        })
    }
}

/// An HTTP route path: starts with '/', and holds no whitespace, '?' or '#',
/// which can never appear in the path part of a request and so would make a
/// route that nothing matches; parameters (`{id}`) are whole segments with
/// distinct names, as the router needs them.
#[derive(Debug)]
struct RoutePath(PathTemplate);

impl<'de> Deserialize<'de> for RoutePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "an HTTP path starting with '/'", |s| {
            if !s.starts_with('/') {
                return Err(format!("route path '{s}' must start with '/'"));
            }
            if let Some(c) = s
                .chars()
                .find(|c| c.is_whitespace() || matches!(c, '?' | '#'))
            {
                return Err(format!(
                    "route path '{s}' must not contain {c:?}: requests never carry it in their path"
                ));
            }
            PathTemplate::parse(s)
                .map(RoutePath)
                .map_err(|e| format!("invalid route path '{s}': {e}"))
        })
    }
}

/// A Kafka bootstrap address `host:port` (`[v6]:port` for IPv6 literals). Only
/// the shape is checked: names are resolved by the Kafka client later.
#[derive(Debug)]
struct BrokerAddr(String);

impl<'de> Deserialize<'de> for BrokerAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "a broker address host:port", |s| {
            let bad =
                |why: &str| format!("invalid broker address '{s}': {why}; expected host:port");
            let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("no port"))?;
            if host.is_empty() || host.chars().any(char::is_whitespace) {
                return Err(bad("bad host"));
            }
            match port.parse::<u16>() {
                Ok(p) if p != 0 => Ok(BrokerAddr(s.to_string())),
                _ => Err(bad("port must be a number from 1 to 65535")),
            }
        })
    }
}

/// What a key or header value may be written as: a string, or a number or
/// boolean, which is taken as written (`version: 2` is the text "2", `2.50`
/// stays "2.50"): serde_yaml_ng hands a plain scalar's source text to
/// `deserialize_str`.
const TEXT_FORMS: &str = "a string, number or boolean";

/// A `key` or header value: a [`Template`], or `None` for a YAML null, which
/// `validate` refuses. A null is not refused here because serde_yaml_ng only
/// knows a value's position inside a visitor method, and `visit_none` is not
/// given one; `validate` finds the key's position instead.
struct TextCondition(Option<Template>);

impl<'de> Deserialize<'de> for TextCondition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        TextSeed { problem: None }.deserialize(d)
    }
}

/// Reads a [`TextCondition`]; `problem`, if set, is a fault of the value's
/// key found by the enclosing mapping (a duplicate), raised from the visitor
/// so that it carries the value's position and the key in its path.
struct TextSeed {
    problem: Option<String>,
}

impl<'de> DeserializeSeed<'de> for TextSeed {
    type Value = TextCondition;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<TextCondition, D::Error> {
        struct NullOr(TextSeed);
        impl<'de> Visitor<'de> for NullOr {
            type Value = TextCondition;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(TEXT_FORMS)
            }
            fn visit_none<E: de::Error>(self) -> Result<TextCondition, E> {
                Ok(TextCondition(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<TextCondition, D::Error> {
                let problem = self.0.problem;
                deserialize_str_with(d, TEXT_FORMS, |s| match problem {
                    Some(problem) => Err(problem),
                    None => Template::parse(s)
                        .map(|t| TextCondition(Some(t)))
                        .map_err(|e| e.to_string()),
                })
            }
        }
        d.deserialize_option(NullOr(self))
    }
}

/// A filter's `headers`: header name → value, in file order.
#[derive(Default)]
struct HeaderConditions(Vec<(String, TextCondition)>);

/// A header name in `headers`: any non-empty string.
struct HeaderName(String);

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "a header name", |s| {
            if s.is_empty() {
                return Err("a header name must not be empty".to_string());
            }
            Ok(HeaderName(s.to_string()))
        })
    }
}

impl<'de> Deserialize<'de> for HeaderConditions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = HeaderConditions;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of header name to value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut headers: Vec<(String, TextCondition)> = Vec::new();
                while let Some(HeaderName(name)) = map.next_key()? {
                    let problem = headers
                        .iter()
                        .any(|(seen, _)| *seen == name)
                        .then(|| format!("header '{name}' is listed twice"));
                    let value = map.next_value_seed(TextSeed { problem })?;
                    headers.push((name, value));
                }
                Ok(HeaderConditions(headers))
            }
        }
        d.deserialize_map(MapVisitor)
    }
}

/// A filter's `value`: JSON pointer → expected scalar, in file order.
#[derive(Default)]
struct ValueConditions(Vec<(String, ValueSpec)>);

/// What a `value` condition may expect.
const VALUE_FORMS: &str = "a string, number, boolean or null";

impl<'de> Deserialize<'de> for ValueConditions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = ValueConditions;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of JSON pointer to expected value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut value: Vec<(String, ValueSpec)> = Vec::new();
                while let Some(pointer) = map.next_key::<String>()? {
                    // Checked at the value, whose error path ends in the
                    // pointer: `routes[0].filters[0].value.status`.
                    let problem = if !(pointer.is_empty() || pointer.starts_with('/')) {
                        Some(format!(
                            "a JSON pointer must be empty or start with '/' (did you mean '/{pointer}'?)"
                        ))
                    } else if value.iter().any(|(seen, _)| *seen == pointer) {
                        Some(format!("JSON pointer '{pointer}' is listed twice"))
                    } else {
                        None
                    };
                    let expected = map.next_value_seed(ValueSeed { problem })?;
                    value.push((pointer, expected));
                }
                Ok(ValueConditions(value))
            }
        }
        d.deserialize_map(MapVisitor)
    }
}

/// Reads the expected value of one `value` condition: a YAML string is a
/// [`ValueSpec::Text`] template; a number, boolean or null a
/// [`ValueSpec::Literal`] holding serde_json's text of it, which is how the
/// matcher writes the record's value to compare. `problem` as in
/// [`TextSeed`].
struct ValueSeed {
    problem: Option<String>,
}

impl ValueSeed {
    fn check<E: de::Error>(
        self,
        spec: impl FnOnce() -> Result<ValueSpec, String>,
    ) -> Result<ValueSpec, E> {
        match self.problem {
            Some(problem) => Err(E::custom(problem)),
            None => spec().map_err(E::custom),
        }
    }

    fn literal<E: de::Error>(self, json: serde_json::Value) -> Result<ValueSpec, E> {
        self.check(|| Ok(ValueSpec::Literal(json.to_string())))
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = ValueSpec;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ValueSpec, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = ValueSpec;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(VALUE_FORMS)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ValueSpec, E> {
        self.check(|| {
            Template::parse(v)
                .map(ValueSpec::Text)
                .map_err(|e| e.to_string())
        })
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<ValueSpec, E> {
        self.literal(v.into())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ValueSpec, E> {
        self.literal(v.into())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ValueSpec, E> {
        self.literal(v.into())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ValueSpec, E> {
        self.check(|| {
            serde_json::Number::from_f64(v)
                .map(|n| ValueSpec::Literal(n.to_string()))
                .ok_or_else(|| format!("{v} is not a JSON number"))
        })
    }
    fn visit_unit<E: de::Error>(self) -> Result<ValueSpec, E> {
        self.literal(serde_json::Value::Null)
    }
}

/// A list that must hold at least one entry, checked inside the visitor so the
/// error points at the list itself.
struct NonEmpty<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NonEmpty<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SeqVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for SeqVisitor<T> {
            type Value = NonEmpty<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a non-empty list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NonEmpty<T>, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                if items.is_empty() {
                    return Err(de::Error::custom("must list at least one entry"));
                }
                Ok(NonEmpty(items))
            }
        }
        d.deserialize_seq(SeqVisitor(PhantomData))
    }
}

/// A closed set of words in the file (`live`, `key-and-progress`, ...). Kept
/// out of the public enums so that they need not know about serde or YAML.
trait ConfigKeyword: Copy + PartialEq + 'static {
    /// What the word chooses, for error messages.
    const WHAT: &'static str;
    /// Every accepted word and its meaning.
    const WORDS: &'static [(&'static str, Self)];

    fn keyword(self) -> &'static str {
        Self::WORDS
            .iter()
            .find(|(_, v)| *v == self)
            .map(|(word, _)| *word)
            .expect("every variant is listed in WORDS")
    }
}

impl ConfigKeyword for Start {
    const WHAT: &'static str = "start";
    const WORDS: &'static [(&'static str, Self)] =
        &[("live", Start::Live), ("earliest", Start::Earliest)];
}

impl ConfigKeyword for ValueEncoding {
    const WHAT: &'static str = "value encoding";
    const WORDS: &'static [(&'static str, Self)] = &[
        ("text", ValueEncoding::Text),
        ("base64", ValueEncoding::Base64),
    ];
}

impl ConfigKeyword for Partitioner {
    const WHAT: &'static str = "partitioner";
    const WORDS: &'static [(&'static str, Self)] = &[("murmur2", Partitioner::Murmur2)];
}

impl ConfigKeyword for EventIdForm {
    const WHAT: &'static str = "event id form";
    const WORDS: &'static [(&'static str, Self)] = &[
        ("progress", EventIdForm::Progress),
        ("key-and-progress", EventIdForm::KeyAndProgress),
    ];
}

#[derive(Clone, Copy)]
struct Keyword<T>(T);

impl<'de, T: ConfigKeyword> Deserialize<'de> for Keyword<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, T::WHAT, |s| {
            T::WORDS
                .iter()
                .find(|(word, _)| *word == s)
                .map(|(_, v)| Keyword(*v))
                .ok_or_else(|| {
                    let words: Vec<&str> = T::WORDS.iter().map(|(w, _)| *w).collect();
                    format!(
                        "unknown {} '{s}'; expected one of: {}",
                        T::WHAT,
                        words.join(", ")
                    )
                })
        })
    }
}

// ---------------------------------------------------------------------------
// Cross-field validation, after deserialization.

/// Checks what no single value can check alone and builds the public model.
/// Positions come from [`KeyIndex`], since serde's are gone by now.
fn validate(mut raw: RawConfig, text: &str, file: &str) -> Result<Config, ConfigError> {
    let index = KeyIndex::new(text);
    let error = |field: String, message: String| {
        ConfigError::new(file, index.locate(&field), &field, message)
    };
    let fail = |field: String, message: String| Err(error(field, message));

    // Later features: the keys are known (so they are not "unknown field"
    // typos) but nothing implements them yet; silently ignoring a guard would
    // expose a stream its author meant to protect.
    if raw.guards.is_some() {
        return fail("guards".into(), "not supported yet".into());
    }
    for (i, r) in raw.routes.0.iter().enumerate() {
        let later = [("guard", r.guard.is_some())];
        if let Some((name, _)) = later.iter().find(|(_, present)| *present) {
            return fail(format!("routes[{i}].{name}"), "not supported yet".into());
        }
    }

    // Two routes with one path: the second could never be reached.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, r) in raw.routes.0.iter().enumerate() {
        if let Some(first) = seen.insert(r.path.0.as_str(), i) {
            return fail(
                format!("routes[{i}].path"),
                format!(
                    "duplicate route path '{}' (already used by routes[{first}])",
                    r.path.0.as_str()
                ),
            );
        }
    }

    let filters = raw
        .routes
        .0
        .iter_mut()
        .enumerate()
        .map(|(i, r)| route_filters(i, &r.path.0, r.filters.take(), &error))
        .collect::<Result<Vec<_>, _>>()?;

    // A topic from the request must be bounded, and only such a topic.
    for (i, r) in raw.routes.0.iter().enumerate() {
        match (&r.topic.1, &r.topics) {
            (Some(_), None) => {
                return fail(
                    format!("routes[{i}].topic"),
                    "a topic with substitutions needs `topics:`, the patterns of the topics it may resolve to (e.g. topics: \"public.*\")".into(),
                );
            }
            (None, Some(_)) => {
                return fail(
                    format!("routes[{i}].topics"),
                    "`topics` bounds a topic with substitutions; this route's topic is fixed"
                        .into(),
                );
            }
            (Some(template), Some(_)) => {
                let unknown = template.substitutions().find(|(source, name)| {
                    *source == Source::Params && !r.path.0.param_names().any(|p| p == *name)
                });
                if let Some((_, name)) = unknown {
                    return fail(
                        format!("routes[{i}].topic"),
                        format!("path '{}' has no parameter '{name}'", r.path.0.as_str()),
                    );
                }
            }
            (None, None) => {}
        }
    }

    // Pruning by key needs a key to prune by.
    for (i, (r, filters)) in raw.routes.0.iter().zip(&filters).enumerate() {
        if r.partitioner.is_some() && !filters.iter().any(|f| f.key.is_some()) {
            return fail(
                format!("routes[{i}].partitioner"),
                "partitioner only narrows the partitions a key filter reads; no filter of this route has a key".into(),
            );
        }
    }

    // Both listeners on one port: the second bind would fail at start-up with a
    // less helpful message. Port 0 asks for an ephemeral port: never a clash.
    if let Some(admin) = raw.admin_listen {
        let overlap = admin.port() != 0
            && admin.port() == raw.listen.port()
            && (admin.ip() == raw.listen.ip()
                || admin.ip().is_unspecified()
                || raw.listen.ip().is_unspecified());
        if overlap {
            return fail(
                "admin_listen".into(),
                format!("{admin} overlaps listen {}; use another port", raw.listen),
            );
        }
    }

    // A partition's budget larger than the whole cache could never be used;
    // most likely one of the two was mistyped.
    let (partition, total) = (raw.cache.partition_bytes.0, raw.cache.total_bytes.0);
    if partition > total {
        let hint = if total == 0 {
            "; to disable the cache, set partition_bytes to 0 as well"
        } else {
            ""
        };
        return fail(
            "cache.partition_bytes".into(),
            format!(
                "partition_bytes ({}) must not exceed total_bytes ({}){hint}",
                show_size(partition),
                show_size(total)
            ),
        );
    }

    let config = Config {
        listen: raw.listen,
        admin_listen: raw.admin_listen,
        kafka: KafkaConfig {
            bootstrap: raw.kafka.bootstrap.0.into_iter().map(|b| b.0).collect(),
            fetch_max_wait: raw.kafka.fetch_max_wait.0,
            fetch_max_bytes: raw.kafka.fetch_max_bytes.0,
            client_id: raw.kafka.client_id,
            metadata_refresh: raw.kafka.metadata_refresh.0,
            unavailable_timeout: raw.kafka.unavailable_timeout.0,
            max_topics: raw.kafka.max_topics.get(),
        },
        keepalive: raw.keepalive.0,
        retry: raw.retry.0,
        retry_jitter: raw.retry_jitter.0,
        cors: Cors {
            allow_origins: raw.cors.allow_origins,
        },
        connections: Connections {
            max_queued_bytes: raw.connections.max_queued_bytes.0,
            max: raw.connections.max.get(),
            request_timeout: raw.connections.request_timeout.0,
            nodelay: raw.connections.nodelay,
        },
        cache: CacheConfig {
            partition_bytes: partition,
            total_bytes: total,
            max_age: raw.cache.max_age.0,
        },
        slow_client: SlowClient {
            max_lag: raw.slow_client.max_lag.0,
        },
        routes: raw
            .routes
            .0
            .into_iter()
            .zip(filters)
            .map(|(r, filters)| Route {
                path: r.path.0.as_str().to_string(),
                topic: r.topic.0,
                topic_template: r.topic.1,
                topics: r.topics.unwrap_or_default().0,
                start: r.start.0,
                value: r.value.0,
                event_id: r.event_id.0,
                keepalive: r.keepalive.map(|k| k.0),
                filters,
                partitioner: r.partitioner.map(|p| p.0),
            })
            .collect(),
    };

    // Templates add topics at run time; the config's own always fit.
    let (max_topics, fixed) = (config.kafka.max_topics, config.topics().len());
    if max_topics > MAX_MAX_TOPICS || max_topics < fixed {
        return fail(
            "kafka.max_topics".into(),
            format!("max_topics ({max_topics}) must be between the routes' own topics ({fixed}) and {MAX_MAX_TOPICS}"),
        );
    }
    Ok(config)
}

/// Checks route `i`'s filters as a whole and builds the model: what each
/// value could not check alone (a filter or a list with nothing in it, a null,
/// a path parameter the route's path does not have). `error` makes a
/// [`ConfigError`] at a field.
fn route_filters(
    i: usize,
    path: &PathTemplate,
    raw: Option<Vec<RawFilter>>,
    error: &dyn Fn(String, String) -> ConfigError,
) -> Result<Vec<FilterSpec>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    if raw.is_empty() {
        // `filters: []` would stream nothing at all: surely not what was meant.
        return Err(error(
            format!("routes[{i}].filters"),
            "an empty list matches no record; remove `filters` to stream every record".into(),
        ));
    }
    let mut specs = Vec::with_capacity(raw.len());
    for (j, f) in raw.into_iter().enumerate() {
        let at = format!("routes[{i}].filters[{j}]");
        if f.key.is_none() && f.headers.0.is_empty() && f.value.0.is_empty() {
            // It would match every record, which is surely not what was meant.
            return Err(error(
                at,
                "a filter needs at least one of key, headers, value".into(),
            ));
        }
        // A null would otherwise have to mean something; leaving the
        // condition out says "any" unambiguously.
        let text = |field: String, c: TextCondition| {
            c.0.ok_or_else(|| {
                error(
                    field,
                    format!(
                        "expected {TEXT_FORMS}, not null; leave the condition out to match any"
                    ),
                )
            })
        };
        let key = f.key.map(|c| text(format!("{at}.key"), c)).transpose()?;
        let headers = f
            .headers
            .0
            .into_iter()
            .map(|(name, c)| Ok((name.clone(), text(format!("{at}.headers.{name}"), c)?)))
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let spec = FilterSpec {
            key,
            headers,
            value: f.value.0,
        };

        // `${params.NAME}` is known now; `${query.NAME}` only per request.
        let mut templates: Vec<(String, &Template)> = Vec::new();
        templates.extend(spec.key.iter().map(|t| (format!("{at}.key"), t)));
        for (name, t) in &spec.headers {
            templates.push((format!("{at}.headers.{name}"), t));
        }
        for (pointer, v) in &spec.value {
            if let ValueSpec::Text(t) = v {
                templates.push((format!("{at}.value.{pointer}"), t));
            }
        }
        for (field, template) in templates {
            let unknown = template.substitutions().find(|(source, name)| {
                *source == Source::Params && !path.param_names().any(|p| p == *name)
            });
            if let Some((_, name)) = unknown {
                return Err(error(
                    field,
                    format!("path '{}' has no parameter '{name}'", path.as_str()),
                ));
            }
        }
        specs.push(spec);
    }
    Ok(specs)
}

// ---------------------------------------------------------------------------
// The key scanner.

/// Where each key and list item of a block-style YAML text sits, by dotted path
/// (`routes[1].topic`), 1-based line and column.
///
/// It follows indentation only, which is all our config files use: keys
/// (`key:` plain or quoted), list items (`- `, also `- key:` on one line) and
/// comments. It does not look inside flow collections (`{ a: 1 }`, `[x, y]`):
/// their key is indexed, their contents are not, and lookups of paths inside
/// fall back to the nearest indexed parent. Block scalars (`|`, `>`) are
/// skipped. It never fails; at worst an error points at a parent's line.
struct KeyIndex {
    entries: Vec<KeyEntry>,
}

#[derive(Debug, PartialEq)]
struct KeyEntry {
    path: String,
    line: usize,
    column: usize,
}

/// One level of the path being built while scanning.
enum Segment {
    Key(String),
    Item(usize),
}

impl KeyIndex {
    fn new(text: &str) -> Self {
        let mut entries = Vec::new();
        // (indent column, segment); the path is the segments joined.
        let mut stack: Vec<(usize, Segment)> = Vec::new();
        // Lines more indented than this belong to a block scalar.
        let mut block_scalar_indent: Option<usize> = None;

        for (line_no, raw_line) in text.lines().enumerate() {
            let line = strip_comment(raw_line);
            let indent = line.len() - line.trim_start_matches(' ').len();
            let mut rest = line[indent..].trim_end();
            // Blank lines say nothing; tab-indented ones are not valid YAML and
            // their depth cannot be known, so they are left out.
            if rest.is_empty() || rest.starts_with('\t') {
                continue;
            }
            if let Some(floor) = block_scalar_indent {
                if indent > floor {
                    continue;
                }
                block_scalar_indent = None;
            }
            if indent == 0 && (rest.starts_with("---") || rest.starts_with("...")) {
                stack.clear();
                continue;
            }
            if rest.starts_with('%') {
                continue; // a directive
            }

            let mut col = indent; // 0-based, in bytes (== chars for the ASCII indentation)
            loop {
                if rest == "-" || rest.starts_with("- ") {
                    // A list item at `col`: the next item of an open list at the
                    // same column, or the first item of a new one.
                    while stack.last().is_some_and(|(c, _)| *c > col) {
                        stack.pop();
                    }
                    match stack.last_mut() {
                        Some((c, Segment::Item(i))) if *c == col => *i += 1,
                        _ => stack.push((col, Segment::Item(0))),
                    }
                    entries.push(KeyEntry {
                        path: render_path(&stack),
                        line: line_no + 1,
                        column: raw_line[..col].chars().count() + 1,
                    });
                    let after = &rest[1..];
                    let trimmed = after.trim_start();
                    col += 1 + after.len() - trimmed.len();
                    rest = trimmed;
                    if rest.is_empty() {
                        break;
                    }
                    continue;
                }
                if let Some((key, value)) = split_key(rest) {
                    // A key closes every deeper or sibling level.
                    while stack.last().is_some_and(|(c, _)| *c >= col) {
                        stack.pop();
                    }
                    stack.push((col, Segment::Key(key)));
                    entries.push(KeyEntry {
                        path: render_path(&stack),
                        line: line_no + 1,
                        column: raw_line[..col].chars().count() + 1,
                    });
                    if value.starts_with('|') || value.starts_with('>') {
                        block_scalar_indent = Some(col);
                    }
                }
                break;
            }
        }
        KeyIndex { entries }
    }

    /// Line and column of `path`, or of its nearest indexed parent; (0, 0) when
    /// not even the top-level key is there.
    fn locate(&self, path: &str) -> (usize, usize) {
        let mut path = path;
        loop {
            if let Some(e) = self.entries.iter().find(|e| e.path == path) {
                return (e.line, e.column);
            }
            // Drop the last segment: `.key` or `[i]`.
            match path.rfind(['.', '[']) {
                Some(cut) if cut > 0 => path = &path[..cut],
                _ => return (0, 0),
            }
        }
    }

    /// The path of the last key or item that starts on or before `line`.
    fn path_at_line(&self, line: usize) -> Option<String> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.line <= line)
            .map(|e| e.path.clone())
    }
}

fn render_path(stack: &[(usize, Segment)]) -> String {
    let mut path = String::new();
    for (_, segment) in stack {
        match segment {
            Segment::Key(k) => path = join_key(&path, k),
            Segment::Item(i) => path.push_str(&format!("[{i}]")),
        }
    }
    path
}

/// The line without its comment. A `#` starts a comment only at the start or
/// after whitespace, and not inside quotes (`path: "/a#b"`).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && prev_space => return &line[..i],
            None => {}
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// Splits `key: value` (or `key:` at the end of the line) into the key, without
/// quotes, and the value. `host:9092` or `http://x` are scalars, not keys: a
/// key's colon is followed by whitespace or the end of the line.
fn split_key(s: &str) -> Option<(String, &str)> {
    if let Some(q) = s.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let close = s[1..].find(q)? + 1;
        let after = s[close + 1..].trim_start();
        let value = after.strip_prefix(':')?;
        if !(value.is_empty() || value.starts_with([' ', '\t'])) {
            return None;
        }
        return Some((s[1..close].to_string(), value.trim_start()));
    }
    if s.starts_with(['{', '[', '&', '*', '!', '|', '>']) {
        return None;
    }
    let bytes = s.as_bytes();
    (0..bytes.len()).find_map(|i| {
        let ends_key = bytes[i] == b':'
            && (i + 1 == bytes.len() || bytes[i + 1] == b' ' || bytes[i + 1] == b'\t');
        ends_key.then(|| (s[..i].trim_end().to_string(), s[i + 1..].trim_start()))
    })
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "sse-kafka.yaml";

    fn parse_ok(text: &str) -> Config {
        parse(text, FILE).unwrap_or_else(|e| panic!("unexpected error: {e}"))
    }

    /// The example of the design notes, every field set.
    const FULL: &str = r#"
listen: 0.0.0.0:8081
admin_listen: 127.0.0.1:9464
kafka:
  bootstrap: ["127.0.0.1:9092", "kafka-2.internal:9093"]
  fetch_max_wait: 250ms
  fetch_max_bytes: 2MiB
  client_id: edge-proxy
  metadata_refresh: 2s
  unavailable_timeout: 1m
  max_topics: 64
keepalive: 20s
retry: 3s
retry_jitter: 500ms
cors: { allow_origins: ["https://a.example", "https://b.example"] }
connections:
  max_queued_bytes: 65536
  max: 5000
  request_timeout: 5s
  nodelay: false
cache:
  partition_bytes: 16MiB
  total_bytes: 2GiB
  max_age: 90s
slow_client:
  max_lag: 2m
routes:
  - path: /items
    topic: items
    start: earliest
    value: base64
    event_id: key-and-progress
    keepalive: 5s
  - path: /items/live      # same topic, other options
    topic: items
  - path: /orders
    topic: orders.v2_eu-1
    start: live
    value: text
    event_id: progress
"#;

    /// The file up to the first route.
    const UP_TO_ROUTES: &str = "kafka:\n  bootstrap: [\"127.0.0.1:9092\"]\nroutes:\n";

    #[test]
    fn topic_templates_are_bounded_by_patterns() {
        let c = parse(
            &format!("{UP_TO_ROUTES}  - path: /t/{{name}}\n    topic: \"ev.${{params.name}}\"\n    topics: [\"ev.*\", news]\n  - path: /fixed\n    topic: fixed\n"),
            "t.yaml",
        )
        .unwrap();
        let r = &c.routes[0];
        assert_eq!(r.topics, ["ev.*", "news"]);
        assert!(r.topic_template.is_some());
        assert_eq!(
            c.topics(),
            ["fixed"],
            "only fixed topics are known at start"
        );
    }

    const MINIMAL: &str =
        "kafka:\n  bootstrap: [\"127.0.0.1:9092\"]\nroutes:\n  - path: /items\n    topic: items\n";

    #[test]
    fn full_config() {
        let c = parse_ok(FULL);
        assert_eq!(c.listen, "0.0.0.0:8081".parse().unwrap());
        assert_eq!(c.admin_listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(
            c.kafka.bootstrap,
            ["127.0.0.1:9092", "kafka-2.internal:9093"]
        );
        assert_eq!(c.kafka.fetch_max_wait, Duration::from_millis(250));
        assert_eq!(c.kafka.fetch_max_bytes, 2 << 20);
        assert_eq!(c.kafka.client_id, "edge-proxy");
        assert_eq!(c.kafka.metadata_refresh, Duration::from_secs(2));
        assert_eq!(c.kafka.unavailable_timeout, Duration::from_secs(60));
        assert_eq!(c.kafka.max_topics, 64);
        assert_eq!(c.keepalive, Duration::from_secs(20));
        assert_eq!(c.retry, Duration::from_secs(3));
        assert_eq!(c.retry_jitter, Duration::from_millis(500));
        assert_eq!(
            c.cors.allow_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(c.connections.max_queued_bytes, 65536);
        assert_eq!(c.connections.max, 5000);
        assert_eq!(c.connections.request_timeout, Duration::from_secs(5));
        assert!(!c.connections.nodelay);
        assert_eq!(c.cache.partition_bytes, 16 << 20);
        assert_eq!(c.cache.total_bytes, 2 << 30);
        assert_eq!(c.cache.max_age, Duration::from_secs(90));
        assert_eq!(c.slow_client.max_lag, MaxLag::Age(Duration::from_secs(120)));
        assert_eq!(c.routes.len(), 3);
        let r = &c.routes[0];
        assert_eq!((r.path.as_str(), r.topic.as_str()), ("/items", "items"));
        assert_eq!(r.start, Start::Earliest);
        assert_eq!(r.value, ValueEncoding::Base64);
        assert_eq!(r.event_id, EventIdForm::KeyAndProgress);
        assert_eq!(r.keepalive, Some(Duration::from_secs(5)));
        let r = &c.routes[2];
        assert_eq!(
            (r.path.as_str(), r.topic.as_str()),
            ("/orders", "orders.v2_eu-1")
        );
        assert_eq!(
            (r.start, r.value, r.event_id),
            (Start::Live, ValueEncoding::Text, EventIdForm::Progress)
        );
        assert_eq!(r.keepalive, None);

        assert_eq!(c.topics(), ["items", "orders.v2_eu-1"]);
        assert_eq!(c.route_keepalive(0), Duration::from_secs(5));
        assert_eq!(c.route_keepalive(1), Duration::from_secs(20));
        assert_eq!(
            c.describe_routes(),
            "GET /items -> topic items (start earliest, value base64, id key-and-progress)\n\
             GET /items/live -> topic items (start live, value text, id progress)\n\
             GET /orders -> topic orders.v2_eu-1 (start live, value text, id progress)\n"
        );
    }

    #[test]
    fn defaults_from_minimal_config() {
        let c = parse_ok(MINIMAL);
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.admin_listen, None);
        assert_eq!(c.kafka.bootstrap, ["127.0.0.1:9092"]);
        assert_eq!(c.kafka.fetch_max_wait, Duration::from_millis(100));
        assert_eq!(c.kafka.fetch_max_bytes, 1 << 20);
        assert_eq!(c.kafka.client_id, "sse-kafka");
        assert_eq!(c.kafka.metadata_refresh, Duration::from_secs(5));
        assert_eq!(c.kafka.unavailable_timeout, Duration::from_secs(30));
        assert_eq!(c.kafka.max_topics, DEFAULT_MAX_TOPICS);
        assert_eq!(c.keepalive, Duration::from_secs(15));
        assert_eq!(c.retry, Duration::from_secs(2));
        assert_eq!(c.retry_jitter, Duration::from_secs(1));
        assert_eq!(c.cors.allow_origins, ["*"]);
        assert_eq!(c.connections.max_queued_bytes, 1 << 20);
        assert_eq!(c.connections.max, 100_000);
        assert_eq!(c.connections.request_timeout, Duration::from_secs(10));
        assert!(c.connections.nodelay);
        assert_eq!(c.cache.partition_bytes, 64 << 20);
        assert_eq!(c.cache.total_bytes, 1 << 30);
        assert_eq!(c.cache.max_age, Duration::from_secs(600));
        assert_eq!(c.slow_client.max_lag, MaxLag::Records(1_000_000));
        let r = &c.routes[0];
        assert_eq!(
            (r.start, r.value, r.event_id),
            (Start::Live, ValueEncoding::Text, EventIdForm::Progress)
        );
        assert_eq!(r.keepalive, None);
        assert_eq!(c.route_keepalive(0), DEFAULT_KEEPALIVE);
        assert_eq!(
            c.describe_routes(),
            "GET /items -> topic items (start live, value text, id progress)\n"
        );
        // Empty sections mean "all defaults" too.
        let c = parse_ok(&format!(
            "{MINIMAL}cors: {{}}\nconnections: {{}}\ncache: {{}}\nslow_client: {{}}\n"
        ));
        assert_eq!(c.cors.allow_origins, ["*"]);
        assert_eq!(c.connections.max, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(c.cache.partition_bytes, DEFAULT_CACHE_PARTITION_BYTES);
        assert_eq!(c.cache.total_bytes, DEFAULT_CACHE_TOTAL_BYTES);
        assert_eq!(c.cache.max_age, DEFAULT_CACHE_MAX_AGE);
        assert_eq!(c.slow_client.max_lag, DEFAULT_SLOW_CLIENT_MAX_LAG);
    }

    /// `MINIMAL` with `extra` appended to the first route (4-space indent).
    fn route_with(extra: &str) -> String {
        format!("{MINIMAL}{extra}")
    }

    #[test]
    fn errors_name_file_line_and_field() {
        // (what, text, line, column, field, start of the message)
        let two_routes = format!("{MINIMAL}  - path: /other\n    topic: other\n");
        const HEAD: &str = "kafka:\n  bootstrap: [\"a:1\"]\n";
        let cases: Vec<(&str, String, usize, usize, &str, &str)> = Vec::from([
            ("unknown field in a route", route_with("    tpoic: x\n"),
                6, 5, "routes[0].tpoic", "unknown field `tpoic`, expected one of `path`, `topic`"),
            ("unknown top-level field", format!("{MINIMAL}keep_alive: 1s\n"),
                6, 1, "keep_alive", "unknown field `keep_alive`"),
            ("max topics below the routes' own", format!("{HEAD}  max_topics: 1\nroutes: [{{path: /a, topic: a}}, {{path: /b, topic: b}}, {{path: /c, topic: a}}]\n"),
                3, 3, "kafka.max_topics", "max_topics (1) must be between the routes' own topics (2) and 65536"),
            ("max topics too many", format!("{HEAD}  max_topics: 100000\nroutes: [{{path: /a, topic: a}}]\n"),
                3, 3, "kafka.max_topics", "max_topics (100000) must be between the routes' own topics (1) and 65536"),
            ("max topics zero", format!("{HEAD}  max_topics: 0\nroutes: [{{path: /a, topic: a}}]\n"),
                3, 15, "kafka.max_topics", "invalid value: integer `0`, expected a nonzero usize"),
            ("unknown kafka field", format!("{HEAD}  group: g\nroutes: [{{path: /a, topic: a}}]\n"),
                3, 3, "kafka.group", "unknown field `group`"),
            ("bad duration", route_with("    keepalive: 5 parsecs\n"),
                6, 16, "routes[0].keepalive", "invalid duration '5 parsecs': unknown time unit"),
            ("duration without unit", format!("{MINIMAL}retry: 15\n"),
                6, 8, "retry", "invalid duration '15': time unit needed"),
            ("zero keepalive", format!("{MINIMAL}keepalive: 0s\n"),
                6, 12, "keepalive", "duration '0s' must be greater than 0"),
            ("fetch wait under 1ms", format!("{HEAD}  fetch_max_wait: 0ms\nroutes: [{{path: /a, topic: a}}]\n"),
                3, 19, "kafka.fetch_max_wait", "duration '0ms' must be at least 1ms"),
            ("bad size", format!("{MINIMAL}connections:\n  max_queued_bytes: 1MB\n"),
                7, 21, "connections.max_queued_bytes",
                "invalid size '1MB': expected a plain integer of bytes or an integer with suffix"),
            ("zero size", format!("{HEAD}  fetch_max_bytes: 0\nroutes: [{{path: /a, topic: a}}]\n"),
                3, 20, "kafka.fetch_max_bytes", "size must be greater than 0"),
            ("topic with a space", format!("{HEAD}routes:\n  - path: /a\n    topic: my items\n"),
                5, 12, "routes[0].topic", "invalid topic name 'my items': ' ' is not allowed"),
            ("topic too long", format!("{HEAD}routes:\n  - path: /a\n    topic: {}\n", "t".repeat(250)),
                5, 12, "routes[0].topic", "topic name is 250 characters long; Kafka allows at most 249"),
            ("empty topic", format!("{HEAD}routes:\n  - path: /a\n    topic: \"\"\n"),
                5, 12, "routes[0].topic", "topic name must not be empty"),
            ("path without '/'", format!("{HEAD}routes:\n  - path: items\n    topic: items\n"),
                4, 11, "routes[0].path", "route path 'items' must start with '/'"),
            ("path with a query", format!("{HEAD}routes:\n  - path: /a?b\n    topic: items\n"),
                4, 11, "routes[0].path", "route path '/a?b' must not contain '?'"),
            ("bad keyword", route_with("    start: latest\n"),
                6, 12, "routes[0].start", "unknown start 'latest'; expected one of: live, earliest"),
            ("bad event id", route_with("    event_id: key\n"),
                6, 15, "routes[0].event_id", "unknown event id form 'key'; expected one of: progress, key-and-progress"),
            ("bad broker", "kafka:\n  bootstrap:\n    - 127.0.0.1:9092\n    - kafka-2\nroutes: [{path: /a, topic: a}]\n".into(),
                4, 7, "kafka.bootstrap[1]", "invalid broker address 'kafka-2': no port"),
            ("bad listen", format!("listen: 8080\n{MINIMAL}"),
                1, 9, "listen", "invalid socket address syntax"),
            ("empty routes", format!("{HEAD}routes: []\n"),
                3, 9, "routes", "must list at least one entry"),
            ("empty bootstrap", "kafka:\n  bootstrap: []\nroutes: [{path: /a, topic: a}]\n".into(),
                2, 14, "kafka.bootstrap", "must list at least one entry"),
            ("routes left null", format!("{HEAD}routes:\n"),
                3, 8, "routes", "must list at least one entry"),
            ("missing topic", format!("{HEAD}routes:\n  - path: /a\n    topic: a\n  - path: /b\n"),
                6, 5, "routes[1].topic", "missing field `topic`"),
            ("missing routes", HEAD.to_string(),
                1, 1, "routes", "missing field `routes`"),
            ("duplicate path", format!("{MINIMAL}  - path: /items\n    topic: other\n"),
                6, 5, "routes[1].path", "duplicate route path '/items' (already used by routes[0])"),
            ("guard beside filters", format!("{two_routes}    filters:\n      - key: abc\n    guard: {{a: b}}\n"),
                10, 5, "routes[1].guard", "not supported yet"),
            ("bad path parameter", format!("{HEAD}routes:\n  - path: /a/{{x}}y\n    topic: a\n"),
                4, 11, "routes[0].path",
                "invalid route path '/a/{x}y': route path segment '{x}y' is not a literal or a whole-segment {name}"),
            ("path parameter twice", format!("{HEAD}routes:\n  - path: /a/{{x}}/{{x}}\n    topic: a\n"),
                4, 11, "routes[0].path", "invalid route path '/a/{x}/{x}': route path names parameter 'x' twice"),
            ("unsupported guard", route_with("    guard: {token: x}\n"),
                6, 5, "routes[0].guard", "not supported yet"),
            ("partitioner without a key filter", route_with("    partitioner: murmur2\n"),
                6, 5, "routes[0].partitioner", "partitioner only narrows"),
            ("unknown partitioner", route_with("    partitioner: crc32\n"),
                6, 18, "routes[0].partitioner", "unknown partitioner 'crc32'; expected one of: murmur2"),
            ("topics beside a fixed topic", route_with("    topics: \"public.*\"\n"),
                6, 5, "routes[0].topics", "`topics` bounds a topic with substitutions"),
            ("topic template without topics",
                format!("{UP_TO_ROUTES}  - path: /t/{{name}}\n    topic: \"${{params.name}}\"\n"),
                5, 5, "routes[0].topic", "a topic with substitutions needs `topics:`"),
            ("topic template naming no path parameter",
                format!("{UP_TO_ROUTES}  - path: /t/{{name}}\n    topic: \"${{params.other}}\"\n    topics: \"*\"\n"),
                5, 5, "routes[0].topic", "path '/t/{name}' has no parameter 'other'"),
            ("bad topic pattern",
                format!("{UP_TO_ROUTES}  - path: /t/{{name}}\n    topic: \"${{params.name}}\"\n    topics: [\"a b\"]\n"),
                6, 14, "routes[0].topics[0]", "invalid topic pattern 'a b'"),
            ("unsupported guards", format!("guards:\n  jwt: {{}}\n{MINIMAL}"),
                1, 1, "guards", "not supported yet"),
            ("zero metadata refresh", format!("{HEAD}  metadata_refresh: 0s\nroutes: [{{path: /a, topic: a}}]\n"),
                3, 21, "kafka.metadata_refresh", "duration '0s' must be greater than 0"),
            ("unavailable timeout without unit", format!("{HEAD}  unavailable_timeout: 30\nroutes: [{{path: /a, topic: a}}]\n"),
                3, 24, "kafka.unavailable_timeout", "invalid duration '30': time unit needed"),
            ("unknown cache field", format!("{MINIMAL}cache:\n  max_bytes: 1GiB\n"),
                7, 3, "cache.max_bytes",
                "unknown field `max_bytes`, expected one of `partition_bytes`, `total_bytes`, `max_age`"),
            ("bad cache size", format!("{MINIMAL}cache:\n  total_bytes: 1GB\n"),
                7, 16, "cache.total_bytes", "invalid size '1GB': expected a plain integer of bytes"),
            ("negative cache size", format!("{MINIMAL}cache:\n  partition_bytes: -1\n"),
                7, 20, "cache.partition_bytes", "size -1 must not be negative"),
            ("zero cache age", format!("{MINIMAL}cache:\n  max_age: 0s\n"),
                7, 12, "cache.max_age", "duration '0s' must be greater than 0"),
            ("partition over total", format!("{MINIMAL}cache:\n  total_bytes: 1GiB\n  partition_bytes: 2GiB\n"),
                8, 3, "cache.partition_bytes", "partition_bytes (2GiB) must not exceed total_bytes (1GiB)"),
            ("default partition over total", format!("{MINIMAL}cache:\n  total_bytes: 1000000\n"),
                6, 1, "cache.partition_bytes", "partition_bytes (64MiB) must not exceed total_bytes (1000000)"),
            ("cache off by total only", format!("{MINIMAL}cache:\n  total_bytes: 0\n"),
                6, 1, "cache.partition_bytes",
                "partition_bytes (64MiB) must not exceed total_bytes (0); to disable the cache, set partition_bytes to 0 as well"),
            ("max lag a word", format!("{MINIMAL}slow_client:\n  max_lag: soon\n"),
                7, 12, "slow_client.max_lag",
                "invalid max lag 'soon': expected a record count (e.g. 500000) or a duration like \"2m\" (as a duration: "),
            ("max lag negative", format!("{MINIMAL}slow_client:\n  max_lag: -1\n"),
                7, 12, "slow_client.max_lag",
                "invalid max lag -1: expected a record count (e.g. 500000) or a duration like \"2m\"; a count cannot be negative"),
            ("max lag zero age", format!("{MINIMAL}slow_client:\n  max_lag: 0s\n"),
                7, 12, "slow_client.max_lag", "duration '0s' must be greater than 0"),
            ("max lag fractional", format!("{MINIMAL}slow_client:\n  max_lag: 1.5\n"),
                7, 12, "slow_client.max_lag",
                "invalid type: floating point `1.5`, expected a record count (e.g. 500000) or a duration like \"2m\""),
            ("max lag at the top", format!("{MINIMAL}slow_client: 2m\n"),
                6, 14, "slow_client", "invalid type: string \"2m\", expected a mapping of slow-client settings (max_lag)"),
            ("admin on the listen port", format!("listen: 0.0.0.0:8080\nadmin_listen: 127.0.0.1:8080\n{MINIMAL}"),
                2, 1, "admin_listen", "127.0.0.1:8080 overlaps listen 0.0.0.0:8080"),
            ("YAML syntax error",
                format!("{HEAD}routes:\n  - path: /a\n    topic: a\n   keepalive: 1s\n"),
                6,
                4,
                "routes[0].keepalive",
                "did not find expected '-' indicator, while parsing a block collection at line 4",
            ),
            ("tab indentation", format!("{HEAD}routes:\n\t- path: /a\n"),
                4, 1, "routes", "found character that cannot start any token"),
            ("not a mapping", "just words\n".into(),
                1, 1, "-", "invalid type: string \"just words\", expected a mapping of settings"),
            ("empty file", "# nothing yet\n\n".into(),
                0, 0, "-", "the file is empty"),
        ]);
        for (what, text, line, column, field, message) in cases {
            let err = match parse(&text, FILE) {
                Ok(_) => panic!("{what}: parsed, but should fail:\n{text}"),
                Err(e) => e,
            };
            let got = (err.file.as_str(), err.line, err.column, err.field.as_str());
            assert_eq!(got, (FILE, line, column, field), "{what}: {err}");
            assert!(
                err.message.starts_with(message),
                "{what}: message is: {}",
                err.message
            );
            // The position lives in line and column only, never repeated.
            assert!(
                !err.message.contains(&format!("line {line} column")),
                "{what}: {err}"
            );
        }
    }

    /// A route `/items/{id}` whose `filters:` key is on line 6, column 5;
    /// its first entry starts on line 7, column 7.
    const FILTERED: &str = "kafka:\n  bootstrap: [\"a:1\"]\nroutes:\n  - path: /items/{id}\n    topic: items\n    filters:\n";

    #[test]
    fn filter_errors_name_file_line_and_field() {
        // (what, filters entries (6-space indent), line, column, field, start of the message)
        let cases: &[(&str, &str, usize, usize, &str, &str)] = &[
            ("unknown filter field", "      - key: a\n        keys: b\n",
                8, 9, "routes[0].filters[0].keys",
                "unknown field `keys`, expected one of `key`, `headers`, `value`"),
            ("filter not a mapping", "      - abc\n",
                7, 9, "routes[0].filters[0]",
                "invalid type: string \"abc\", expected a filter: a mapping with key, headers and/or value"),
            ("key template unclosed", "      - key: \"${params.id\"\n",
                7, 14, "routes[0].filters[0].key", "'${' is not closed by '}'"),
            ("key a list", "      - key: [a]\n",
                7, 14, "routes[0].filters[0].key",
                "invalid type: sequence, expected a string, number or boolean"),
            ("key null", "      - key:\n        value: {/a: 1}\n",
                7, 9, "routes[0].filters[0].key",
                "expected a string, number or boolean, not null; leave the condition out to match any"),
            ("key guard identity", "      - key: ${guard.identity}\n",
                7, 14, "routes[0].filters[0].key",
                "'${guard.identity}' needs guards, which are not supported yet"),
            ("header template", "      - headers:\n          tag: \"${env.X}\"\n",
                8, 16, "routes[0].filters[0].headers.tag",
                "unknown substitution '${env.X}'; expected ${params.NAME} or ${query.NAME}"),
            ("header name with a space", "      - headers: {\"x tag\": \"${}\"}\n",
                7, 28, "routes[0].filters[0].headers.x tag", "empty substitution '${}'"),
            ("header null", "      - headers:\n          tag: ~\n",
                8, 11, "routes[0].filters[0].headers.tag",
                "expected a string, number or boolean, not null"),
            ("header null in a flow mapping", "      - headers: {a: b, tag: }\n",
                7, 9, "routes[0].filters[0].headers.tag",
                "expected a string, number or boolean, not null"),
            ("header empty name", "      - headers: {\"\": x}\n",
                7, 19, "routes[0].filters[0].headers", "a header name must not be empty"),
            ("header twice", "      - headers:\n          tag: a\n          tag: b\n",
                9, 16, "routes[0].filters[0].headers.tag", "header 'tag' is listed twice"),
            ("headers a list", "      - headers: [tag]\n",
                7, 18, "routes[0].filters[0].headers",
                "invalid type: sequence, expected a mapping of header name to value"),
            ("value template", "      - value:\n          /status: \"${guard.identity}\"\n",
                8, 20, "routes[0].filters[0].value./status", "'${guard.identity}' needs guards"),
            ("pointer without '/'", "      - value: {status: open}\n",
                7, 25, "routes[0].filters[0].value.status",
                "a JSON pointer must be empty or start with '/' (did you mean '/status'?)"),
            ("pointer twice", "      - value:\n          /a: 1\n          /a: 2\n",
                9, 15, "routes[0].filters[0].value./a", "JSON pointer '/a' is listed twice"),
            ("value a list", "      - value: {/a: [1]}\n",
                7, 21, "routes[0].filters[0].value./a",
                "invalid type: sequence, expected a string, number, boolean or null"),
            ("value a mapping", "      - value:\n          /a: {b: 1}\n",
                8, 15, "routes[0].filters[0].value./a",
                "invalid type: map, expected a string, number, boolean or null"),
            ("value not a number", "      - value: {/a: .nan}\n",
                7, 21, "routes[0].filters[0].value./a", "NaN is not a JSON number"),
            ("empty filter", "      - {}\n",
                7, 7, "routes[0].filters[0]", "a filter needs at least one of key, headers, value"),
            ("filter of empty parts", "      - key: a\n      - headers: {}\n        value: {}\n",
                8, 7, "routes[0].filters[1]", "a filter needs at least one of key, headers, value"),
            ("empty filter list", "",
                6, 5, "routes[0].filters",
                "an empty list matches no record; remove `filters` to stream every record"),
            ("filters a mapping", "      key: a\n",
                7, 7, "routes[0].filters", "invalid type: map, expected a sequence"),
            ("unknown path parameter in key", "      - key: \"${params.x}\"\n",
                7, 9, "routes[0].filters[0].key", "path '/items/{id}' has no parameter 'x'"),
            ("unknown path parameter in a flow header", "      - key: a\n      - headers: {tag: \"t-${params.tag}\"}\n",
                8, 9, "routes[0].filters[1].headers.tag", "path '/items/{id}' has no parameter 'tag'"),
            ("unknown path parameter in a value", "      - value:\n          /ok: true\n          /n: ${params.n}\n",
                9, 11, "routes[0].filters[0].value./n", "path '/items/{id}' has no parameter 'n'"),
        ];
        for (what, entries, line, column, field, message) in cases {
            let text = format!("{FILTERED}{entries}");
            let err = match parse(&text, FILE) {
                Ok(_) => panic!("{what}: parsed, but should fail:\n{text}"),
                Err(e) => e,
            };
            let got = (err.file.as_str(), err.line, err.column, err.field.as_str());
            assert_eq!(got, (FILE, *line, *column, *field), "{what}: {err}");
            assert!(
                err.message.starts_with(message),
                "{what}: message is: {}",
                err.message
            );
            assert!(!err.message.contains(" at line "), "{what}: {err}");
        }
        // `filters: []` is the same mistake as the bare key above.
        let err = parse(&format!("{MINIMAL}    filters: []\n"), FILE).unwrap_err();
        assert_eq!(
            (err.line, err.column, err.field.as_str()),
            (6, 5, "routes[0].filters")
        );
        assert!(err.message.starts_with("an empty list matches no record"));
    }

    #[test]
    fn partitioner_murmur2_on_a_key_filter() {
        let c = parse(
            "kafka:\n  bootstrap: [\"127.0.0.1:9092\"]\nroutes:\n  - path: /items/{id}\n    topic: items\n    partitioner: murmur2\n    filters:\n      - key: \"${params.id}\"\n",
            "t.yaml",
        )
        .unwrap();
        assert_eq!(c.routes[0].partitioner, Some(Partitioner::Murmur2));
        assert!(c
            .describe_routes()
            .ends_with("filters: [key=${params.id}] partitioner murmur2\n"));
    }

    #[test]
    fn filters_parse_into_the_model() {
        let text = format!(
            "{FILTERED}{}",
            r#"      - key: "${params.id}"       # list = OR; inside one = AND
        headers: { tag: "${query.tag}", region: eu, version: 2, rate: 2.50, on: true }
        value: { "/status": "open", "/n": 5, "/ok": true, "/gone": null, "/f": 1.5, "/neg": -3, "/s": "5", "": "${params.id}" }
      - headers:
          z-last: a
          a-first: 'b c'
      - value:
          /deep/a~1b: x
          /none:
  - path: /plain
    topic: items
"#
        );
        let c = parse_ok(&text);
        let t = |s: &str| Template::parse(s).unwrap();
        let lit = |s: &str| ValueSpec::Literal(s.to_string());
        let text_of = |s: &str| ValueSpec::Text(t(s));
        let owned = |pairs: &[(&str, &str)]| -> Vec<(String, Template)> {
            pairs.iter().map(|(n, v)| (n.to_string(), t(v))).collect()
        };
        let want = vec![
            FilterSpec {
                key: Some(t("${params.id}")),
                // In file order; numbers and booleans as written.
                headers: owned(&[
                    ("tag", "${query.tag}"),
                    ("region", "eu"),
                    ("version", "2"),
                    ("rate", "2.50"),
                    ("on", "true"),
                ]),
                value: vec![
                    ("/status".into(), text_of("open")),
                    ("/n".into(), lit("5")),
                    ("/ok".into(), lit("true")),
                    ("/gone".into(), lit("null")),
                    ("/f".into(), lit("1.5")),
                    ("/neg".into(), lit("-3")),
                    ("/s".into(), text_of("5")),
                    ("".into(), text_of("${params.id}")),
                ],
            },
            FilterSpec {
                headers: owned(&[("z-last", "a"), ("a-first", "b c")]),
                ..Default::default()
            },
            FilterSpec {
                value: vec![
                    ("/deep/a~1b".into(), text_of("x")),
                    ("/none".into(), lit("null")),
                ],
                ..Default::default()
            },
        ];
        assert_eq!(c.routes[0].path, "/items/{id}");
        assert_eq!(c.routes[0].filters, want);
        assert_eq!(c.routes[1].filters, [], "no filters: every record");
        assert_eq!(
            c.describe_routes(),
            "GET /items/{id} -> topic items (start live, value text, id progress) filters: \
             [key=${params.id}, header tag=${query.tag}, header region=eu, header version=2, \
             header rate=2.50, header on=true, value /status=\"open\", value /n=5, value /ok=true, \
             value /gone=null, value /f=1.5, value /neg=-3, value /s=\"5\", value =\"${params.id}\"] \
             or [header z-last=a, header a-first=b c] or [value /deep/a~1b=\"x\", value /none=null]\n\
             GET /plain -> topic items (start live, value text, id progress)\n"
        );
    }

    #[test]
    fn tab_error_explains_itself() {
        let err = parse("kafka:\n\tbootstrap: []\n", FILE).unwrap_err();
        assert!(err.message.contains("YAML does not allow tabs"), "{err}");
    }

    #[test]
    fn error_display() {
        let err = parse(
            "kafka:\n  bootstrap: [\"a:1\"]\nroutes: []\n",
            "/etc/sse-kafka.yaml",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/sse-kafka.yaml:3:9: routes: must list at least one entry"
        );
    }

    #[test]
    fn sizes() {
        let ok = [
            ("0B", None),
            ("1", Some(1)),
            ("512B", Some(512)),
            ("4 KiB", Some(4096)),
            ("1MiB", Some(1 << 20)),
            ("2GiB", Some(2usize << 30)),
            ("1048576", Some(1 << 20)),
            ("1MB", None),
            ("1kib", None),
            ("1.5MiB", None),
            ("MiB", None),
            ("-1", None),
            ("", None),
            ("99999999999999999999GiB", None),
            ("18446744073709551615GiB", None),
        ];
        for (text, want) in ok {
            assert_eq!(Size::parse(text).ok().map(|s| s.0), want, "{text}");
        }
        // Integers (not strings) in the YAML take the other path.
        let c = parse_ok(&format!(
            "{MINIMAL}connections: {{max_queued_bytes: 4096}}\n"
        ));
        assert_eq!(c.connections.max_queued_bytes, 4096);
        let err = parse(
            &format!("{MINIMAL}connections: {{max_queued_bytes: -5}}\n"),
            FILE,
        )
        .unwrap_err();
        assert_eq!(
            (err.line, err.field.as_str()),
            (6, "connections.max_queued_bytes")
        );
    }

    #[test]
    fn cache_sizes_may_be_zero() {
        assert_eq!(AnySize::parse("0").map(|s| s.0), Ok(0));
        assert_eq!(AnySize::parse("0B").map(|s| s.0), Ok(0));
        assert!(Size::parse("0").is_err());
        let c = parse_ok(&format!(
            "{MINIMAL}cache:\n  partition_bytes: 0\n  total_bytes: 0\n"
        ));
        assert_eq!((c.cache.partition_bytes, c.cache.total_bytes), (0, 0));
        // Equal budgets are fine: one partition may use the whole cache.
        let c = parse_ok(&format!(
            "{MINIMAL}cache: {{partition_bytes: 512KiB, total_bytes: 524288}}\n"
        ));
        assert_eq!(
            (c.cache.partition_bytes, c.cache.total_bytes),
            (512 << 10, 512 << 10)
        );
        // Off per partition, with the default total.
        let c = parse_ok(&format!("{MINIMAL}cache:\n  partition_bytes: 0B\n"));
        assert_eq!((c.cache.partition_bytes, c.cache.total_bytes), (0, 1 << 30));
    }

    #[test]
    fn show_size_uses_the_files_units() {
        let cases = [
            (0, "0"),
            (1000, "1000"),
            (4096, "4KiB"),
            (64 << 20, "64MiB"),
            (3 << 30, "3GiB"),
            ((1 << 30) + 1024, "1048577KiB"),
        ];
        for (bytes, want) in cases {
            assert_eq!(show_size(bytes), want, "{bytes}");
        }
    }

    #[test]
    fn max_lag_forms() {
        let cases = [
            ("500000", Some(MaxLag::Records(500_000))),
            ("0", Some(MaxLag::Records(0))),
            ("18446744073709551615", Some(MaxLag::Records(u64::MAX))),
            ("2m", Some(MaxLag::Age(Duration::from_secs(120)))),
            ("\"1h 30m\"", Some(MaxLag::Age(Duration::from_secs(5400)))),
            ("250ms", Some(MaxLag::Age(Duration::from_millis(250)))),
            ("soon", None),
            ("\"500000\"", None), // a quoted number is a string: no unit
            ("-1", None),
            ("0s", None),
            ("1.5", None),
            ("[1]", None),
        ];
        for (value, want) in cases {
            let text = format!("{MINIMAL}slow_client:\n  max_lag: {value}\n");
            match (parse(&text, FILE), want) {
                (Ok(c), Some(want)) => assert_eq!(c.slow_client.max_lag, want, "{value}"),
                (Err(e), None) => {
                    assert_eq!(
                        (e.line, e.column, e.field.as_str()),
                        (7, 12, "slow_client.max_lag"),
                        "{value}: {e}"
                    );
                    // Every refusal but the zero duration says what would do.
                    if value != "0s" {
                        assert!(
                            e.message
                                .contains("a record count (e.g. 500000) or a duration like \"2m\""),
                            "{value}: {e}"
                        );
                    }
                }
                (got, want) => panic!("{value}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn load_reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sse-kafka.yaml");
        std::fs::write(&path, MINIMAL).unwrap();
        assert_eq!(load(&path).unwrap().routes[0].topic, "items");

        std::fs::write(&path, "kafka: {bootstrap: []}\nroutes: []\n").unwrap();
        let err = load(&path).unwrap_err();
        assert_eq!(
            (err.file.as_str(), err.line, err.field.as_str()),
            (path.to_str().unwrap(), 1, "kafka.bootstrap")
        );
    }

    #[test]
    fn load_of_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.yaml");
        let err = load(&path).unwrap_err();
        assert_eq!(err.file, path.display().to_string());
        assert_eq!((err.line, err.column, err.field.as_str()), (0, 0, "-"));
        assert!(err.message.starts_with("cannot read the file: "), "{err}");
    }

    #[test]
    fn key_index_records_paths_and_positions() {
        let text = "\
# comment: not a key
listen: 0.0.0.0:8080   # trailing: comment
kafka:
  bootstrap:
  - a:9092
  - 'b:9092'
routes:
  - path: \"/a#b\"
    topic: a
    filters:
      - key: x
        nested:
          deep: 1
  -   path: /b
    note: |
      looks: like a key
      - and an item
    'quoted key': 1
  - {path: /c, topic: c}
  -
    path: /d
connections: {max: 1}
";
        let got: Vec<(String, usize, usize)> = KeyIndex::new(text)
            .entries
            .into_iter()
            .map(|e| (e.path, e.line, e.column))
            .collect();
        let want = [
            ("listen", 2, 1),
            ("kafka", 3, 1),
            ("kafka.bootstrap", 4, 3),
            ("kafka.bootstrap[0]", 5, 3),
            ("kafka.bootstrap[1]", 6, 3),
            ("routes", 7, 1),
            ("routes[0]", 8, 3),
            ("routes[0].path", 8, 5),
            ("routes[0].topic", 9, 5),
            ("routes[0].filters", 10, 5),
            ("routes[0].filters[0]", 11, 7),
            ("routes[0].filters[0].key", 11, 9),
            ("routes[0].filters[0].nested", 12, 9),
            ("routes[0].filters[0].nested.deep", 13, 11),
            ("routes[1]", 14, 3),
            ("routes[1].path", 14, 7),
            ("routes[1].note", 15, 5),
            ("routes[1].quoted key", 18, 5),
            ("routes[2]", 19, 3),
            ("routes[3]", 20, 3),
            ("routes[3].path", 21, 5),
            ("connections", 22, 1),
        ];
        let want: Vec<(String, usize, usize)> = want
            .iter()
            .map(|(p, l, c)| (p.to_string(), *l, *c))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn key_index_lookups() {
        let text = "kafka:\n  bootstrap: [a]\nroutes:\n- path: /a\n  topic: a\n- path: /b\n  topic: b\nlisten: x\n";
        let index = KeyIndex::new(text);
        let cases = [
            ("routes[1].topic", (7, 3)),
            ("routes[1].path", (6, 3)),
            ("routes[0].filters", (4, 1)),  // absent key: its route
            ("routes[9].path", (3, 1)),     // absent route: the list
            ("kafka.bootstrap[0]", (2, 3)), // inside a flow list: the list
            ("listen", (8, 1)),
            ("guards", (0, 0)),
        ];
        for (path, want) in cases {
            assert_eq!(index.locate(path), want, "{path}");
        }
        assert_eq!(index.path_at_line(0), None);
        assert_eq!(index.path_at_line(5).as_deref(), Some("routes[0].topic"));
        assert_eq!(index.path_at_line(100).as_deref(), Some("listen"));
    }

    /// JSON pointers are keys with '/', '~' and sometimes '.' or '[' in them;
    /// header names may hold spaces. Block-style keys are found exactly;
    /// keys inside a flow mapping fall back to the mapping's key.
    #[test]
    fn key_index_finds_pointer_and_header_keys() {
        let text = "\
routes:
  - path: /a
    filters:
      - value:
          /status: open
          \"/a.b\": 1
          '/x[0]/y': 2
          \"\": 3
          /deep/a~1b: 4
        headers:
          \"x tag\": a
          ce.type: b
      - value: {\"/f.g\": 1, /h: 2}
";
        let index = KeyIndex::new(text);
        let cases = [
            ("routes[0].filters[0].value./status", (5, 11)),
            ("routes[0].filters[0].value./a.b", (6, 11)),
            ("routes[0].filters[0].value./x[0]/y", (7, 11)),
            ("routes[0].filters[0].value.", (8, 11)),
            ("routes[0].filters[0].value./deep/a~1b", (9, 11)),
            ("routes[0].filters[0].headers.x tag", (11, 11)),
            ("routes[0].filters[0].headers.ce.type", (12, 11)),
            ("routes[0].filters[0].value./absent", (4, 9)),
            ("routes[0].filters[1].value./f.g", (13, 9)),
            ("routes[0].filters[1].value./h", (13, 9)),
        ];
        for (path, want) in cases {
            assert_eq!(index.locate(path), want, "{path}");
        }
    }

    #[test]
    fn split_key_cases() {
        let cases = [
            ("key: v", Some(("key", "v"))),
            ("key:", Some(("key", ""))),
            ("key :  v", Some(("key", "v"))),
            ("\"a b\": v", Some(("a b", "v"))),
            ("'k':", Some(("k", ""))),
            ("host:9092", None),
            ("http://x", None),
            ("{a: 1}", None),
            ("[a, b]", None),
            ("plain", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                split_key(text).as_ref().map(|(k, v)| (k.as_str(), *v)),
                want,
                "{text}"
            );
        }
    }
}
