//! The raw form of the file: serde structs mirroring what the file says, with
//! the defaults of absent settings and the per-value checks of the value types
//! (values.rs). `expecting` replaces serde's default "struct RawX", which
//! would show these private type names in error messages. Never public: the
//! rest of the proxy only ever sees the validated model.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::defaults::*;
use super::filters::RawFilter;
use super::guards::{RawGuard, Roles};
use super::model::{EventIdForm, Partitioner, Start, ValueEncoding};
use super::values::{
    present, AnySize, BrokerAddr, DocumentPath, DurationAtLeast, FetchWait, Keepalive, Keyword,
    LagLimit, NonEmpty, PositiveDuration, PublicUrl, RetryDuration, RoutePath, Size, SizeAtLeast,
    TopicName, TopicPatterns,
};

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of settings (kafka, routes, listen, ...)"
)]
pub(super) struct RawConfig {
    #[serde(default = "default_listen")]
    pub(super) listen: SocketAddr,
    #[serde(default)]
    pub(super) admin_listen: Option<SocketAddr>,
    pub(super) kafka: RawKafka,
    #[serde(default = "default_keepalive")]
    pub(super) keepalive: Keepalive,
    #[serde(default = "default_retry")]
    pub(super) retry: RetryDuration,
    #[serde(default = "default_retry_jitter")]
    pub(super) retry_jitter: RetryDuration,
    #[serde(default)]
    pub(super) cors: RawCors,
    #[serde(default)]
    pub(super) connections: RawConnections,
    #[serde(default)]
    pub(super) cache: RawCache,
    #[serde(default)]
    pub(super) slow_client: RawSlowClient,
    /// Absent when `asyncapi` documents declare every route; a null is
    /// no list, refused where it is.
    #[serde(default, deserialize_with = "present")]
    pub(super) routes: Option<NonEmpty<RawRoute>>,
    #[serde(default)]
    pub(super) guards: Option<BTreeMap<String, RawGuard>>,
    /// AsyncAPI documents whose routes join `routes`.
    #[serde(default)]
    pub(super) asyncapi: Option<Sources>,
    /// Where the AsyncAPI document of the routes is served (`/asyncapi`:
    /// `/asyncapi.json` and `/asyncapi.yaml`).
    #[serde(default)]
    pub(super) serve_asyncapi: Option<DocumentPath>,
    /// The URL clients reach the instance at, for the served document.
    #[serde(default)]
    pub(super) public_url: Option<PublicUrl>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of Kafka settings (bootstrap, ...)"
)]
pub(super) struct RawKafka {
    pub(super) bootstrap: NonEmpty<BrokerAddr>,
    #[serde(default = "default_fetch_max_wait")]
    pub(super) fetch_max_wait: FetchWait,
    #[serde(default = "default_fetch_max_bytes")]
    pub(super) fetch_max_bytes: Size,
    #[serde(default = "default_client_id")]
    pub(super) client_id: String,
    #[serde(default = "default_metadata_refresh")]
    pub(super) metadata_refresh: PositiveDuration,
    #[serde(default = "default_unavailable_timeout")]
    pub(super) unavailable_timeout: PositiveDuration,
    #[serde(default = "default_max_topics")]
    pub(super) max_topics: NonZeroUsize,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of CORS settings (allow_origins)"
)]
pub(super) struct RawCors {
    #[serde(default = "default_allow_origins")]
    pub(super) allow_origins: Vec<String>,
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
    expecting = "a mapping of connection settings (max, max_per_ip, max_queued_bytes, request_timeout, nodelay)"
)]
pub(super) struct RawConnections {
    #[serde(default = "default_max_queued_bytes")]
    pub(super) max_queued_bytes: Size,
    #[serde(default = "default_max_connections")]
    pub(super) max: NonZeroUsize,
    #[serde(default)]
    pub(super) max_per_ip: Option<NonZeroUsize>,
    #[serde(default = "default_request_timeout")]
    pub(super) request_timeout: PositiveDuration,
    #[serde(default = "default_nodelay")]
    pub(super) nodelay: bool,
}

impl Default for RawConnections {
    fn default() -> Self {
        RawConnections {
            max_queued_bytes: default_max_queued_bytes(),
            max: default_max_connections(),
            max_per_ip: None,
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
pub(super) struct RawCache {
    #[serde(default = "default_cache_partition_bytes")]
    pub(super) partition_bytes: AnySize,
    #[serde(default = "default_cache_total_bytes")]
    pub(super) total_bytes: AnySize,
    #[serde(default = "default_cache_max_age")]
    pub(super) max_age: PositiveDuration,
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
pub(super) struct RawSlowClient {
    #[serde(default = "default_slow_client_max_lag")]
    pub(super) max_lag: LagLimit,
}

impl Default for RawSlowClient {
    fn default() -> Self {
        RawSlowClient {
            max_lag: default_slow_client_max_lag(),
        }
    }
}

/// A route as the file writes it. The same settings make an AsyncAPI
/// channel's `x-sse-kafka`, where the path is the channel's address and the
/// topic may be its Kafka binding's: [`RawRouteSettings`].
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a route: a mapping with path, topic, ..."
)]
pub(super) struct RawRoute<P = RoutePath, T = TopicName> {
    pub(super) path: P,
    pub(super) topic: T,
    #[serde(default = "default_start")]
    pub(super) start: Keyword<Start>,
    #[serde(default = "default_value")]
    pub(super) value: Keyword<ValueEncoding>,
    #[serde(default = "default_event_id")]
    pub(super) event_id: Keyword<EventIdForm>,
    #[serde(default)]
    pub(super) keepalive: Option<Keepalive>,
    /// Absent: every record. A null or empty list is `Some(vec![])`, which
    /// `validate` refuses.
    #[serde(default, deserialize_with = "present")]
    pub(super) filters: Option<Vec<RawFilter>>,
    #[serde(default)]
    pub(super) guard: Option<String>,
    #[serde(default)]
    pub(super) roles: Option<Roles>,
    #[serde(default)]
    pub(super) partitioner: Option<Keyword<Partitioner>>,
    #[serde(default)]
    pub(super) topics: Option<TopicPatterns>,
}

/// `asyncapi`: one document or a list of them.
pub(super) struct Sources(pub(super) Vec<Source>);

/// One entry of `asyncapi`: the path of a document whose channels carry
/// `x-sse-kafka`, or Zilla's pair of an SSE and a Kafka document. Paths are
/// relative to the config file's directory.
pub(super) enum Source {
    Single(String),
    Pair { sse: String, kafka: String },
}

/// Zilla's pair, as the file writes it.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "Zilla's pair of documents: a mapping with sse and kafka"
)]
struct RawPair {
    sse: String,
    kafka: String,
}

/// Reads one [`Source`].
struct SourceVisitor;

impl<'de> Visitor<'de> for SourceVisitor {
    type Value = Source;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the path of an AsyncAPI document, or {sse: PATH, kafka: PATH}")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Source, E> {
        if v.is_empty() {
            return Err(E::custom("an empty path names no document"));
        }
        Ok(Source::Single(v.to_string()))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Source, A::Error> {
        let pair = RawPair::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Source::Pair {
            sse: pair.sse,
            kafka: pair.kafka,
        })
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SourceVisitor)
    }
}

impl<'de> Deserialize<'de> for Sources {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct OneOrMany;
        impl<'de> Visitor<'de> for OneOrMany {
            type Value = Sources;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the path of an AsyncAPI document, or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Sources, E> {
                SourceVisitor.visit_str(v).map(|one| Sources(vec![one]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Sources, A::Error> {
                let mut all = Vec::new();
                while let Some(one) = seq.next_element()? {
                    all.push(one);
                }
                if all.is_empty() {
                    return Err(de::Error::custom(
                        "an empty list; list at least one document",
                    ));
                }
                Ok(Sources(all))
            }
        }
        d.deserialize_any(OneOrMany)
    }
}

/// A channel's `x-sse-kafka`: a route's settings without its path (never
/// there) and maybe without its topic.
pub(super) type RawRouteSettings = RawRoute<Option<NoPath>, Option<TopicName>>;

impl RawRouteSettings {
    /// The route these settings make at `path` on `topic`.
    pub(super) fn at(self, path: RoutePath, topic: TopicName) -> RawRoute {
        RawRoute {
            path,
            topic,
            start: self.start,
            value: self.value,
            event_id: self.event_id,
            keepalive: self.keepalive,
            filters: self.filters,
            guard: self.guard,
            roles: self.roles,
            partitioner: self.partitioner,
            topics: self.topics,
        }
    }
}

/// `path` in `x-sse-kafka`: refused, the channel's address is the path.
pub(super) enum NoPath {}

/// Why `path` is refused in `x-sse-kafka`.
const NO_PATH: &str = "the channel's `address` is the route's path; x-sse-kafka does not take one";

impl<'de> Deserialize<'de> for NoPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Refused from a visitor, so that the error has the value's place.
        struct Refuse;
        impl<'de> Visitor<'de> for Refuse {
            type Value = NoPath;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(NO_PATH)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<NoPath, E> {
                Err(E::custom(NO_PATH))
            }
        }
        d.deserialize_any(Refuse)
    }
}

// serde's `default = "..."` wants functions; they only wrap the constants.
fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
}
fn default_keepalive() -> Keepalive {
    DurationAtLeast(DEFAULT_KEEPALIVE)
}
fn default_retry() -> RetryDuration {
    DurationAtLeast(DEFAULT_RETRY)
}
fn default_retry_jitter() -> RetryDuration {
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

#[cfg(test)]
mod tests {
    use crate::config::testing::{assert_errors, route_with, ErrorCase, HEAD, MINIMAL};

    #[test]
    fn structure_errors_name_file_line_and_field() {
        let cases: Vec<ErrorCase> = Vec::from([
            ("unknown field in a route", route_with("    tpoic: x\n"),
                6, 5, "routes[0].tpoic", "unknown field `tpoic`, expected one of `path`, `topic`"),
            ("unknown top-level field", format!("{MINIMAL}keep_alive: 1s\n"),
                6, 1, "keep_alive", "unknown field `keep_alive`"),
            ("max topics zero", format!("{HEAD}  max_topics: 0\nroutes: [{{path: /a, topic: a}}]\n"),
                3, 15, "kafka.max_topics", "invalid value: integer `0`, expected a nonzero usize"),
            ("unknown kafka field", format!("{HEAD}  group: g\nroutes: [{{path: /a, topic: a}}]\n"),
                3, 3, "kafka.group", "unknown field `group`"),
            ("bad listen", format!("listen: 8080\n{MINIMAL}"),
                1, 9, "listen", "invalid socket address syntax"),
            ("missing topic", format!("{HEAD}routes:\n  - path: /a\n    topic: a\n  - path: /b\n"),
                6, 5, "routes[1].topic", "missing field `topic`"),
            ("missing routes", HEAD.to_string(),
                1, 1, "routes", "missing field `routes`"),
            ("unknown cache field", format!("{MINIMAL}cache:\n  max_bytes: 1GiB\n"),
                7, 3, "cache.max_bytes",
                "unknown field `max_bytes`, expected one of `partition_bytes`, `total_bytes`, `max_age`"),
            ("max lag at the top", format!("{MINIMAL}slow_client: 2m\n"),
                6, 14, "slow_client", "invalid type: string \"2m\", expected a mapping of slow-client settings (max_lag)"),
            ("not a mapping", "just words\n".into(),
                1, 1, "-", "invalid type: string \"just words\", expected a mapping of settings"),
        ]);
        assert_errors(cases);
    }
}
