//! The validated configuration: what the rest of the proxy reads. Every value
//! here has passed its checks (see `validate.rs`), so its users never check
//! again; each field's doc says what is guaranteed. Also the words the file
//! writes for each choice (`live`, `key-and-progress`, ...), which both the
//! reader of the file and [`Config::describe_routes`] use.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::codec::filter::{FilterSpec, Template, ValueSpec};
use crate::codec::jwt::KeySet;

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
    /// The JWT guards, in order of name; a route's `guard` is an index.
    pub guards: Vec<Guard>,
    /// `serve_asyncapi`: the AsyncAPI document of the routes is served at
    /// this path plus `.json` and `.yaml`, which no route matches. A literal
    /// path starting with `/`, not ending with one.
    pub serve_asyncapi: Option<String>,
    /// Where clients reach this instance, for the served document's server.
    pub public_url: Option<PublicUrl>,
}

/// `public_url`, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// `host` or `host:port`.
    pub host: String,
    /// Empty, or starting with `/` and not ending with one.
    pub path: String,
}

/// A JWT guard (`guards.NAME`): which tokens open the routes it guards.
#[derive(Debug, Clone)]
pub struct Guard {
    /// Letters, digits, `_` and `-`: it labels the guard's metrics.
    pub name: String,
    /// `iss` must equal one of them; empty: any issuer.
    pub issuers: Vec<String>,
    /// `aud` must hold one of them; empty: any audience.
    pub audiences: Vec<String>,
    /// Where the keys come from, to re-read them.
    pub source: KeySource,
    /// The keys as they were when the config was read (never empty);
    /// `None` for keys from a URL, which the proxy fetches once it runs.
    pub keys: Option<Arc<KeySet>>,
    /// The dotted path of the claim holding the token's roles.
    pub roles_claim: String,
    /// The dotted path of the claim `${guard.identity}` stands for.
    pub identity_claim: String,
    /// Clock skew allowed on `exp` and `nbf`; at most
    /// [`MAX_GUARD_LEEWAY`](super::MAX_GUARD_LEEWAY).
    pub leeway: Duration,
    /// Send `event:challenge` this long before a stream's token expires.
    pub challenge: Option<Duration>,
    /// A cookie the token may come from too; only when `cors.allow_origins`
    /// lists origins (never `*`).
    pub cookie: Option<String>,
}

/// Where a guard's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Written in the config (`keys: { jwks: [...] }`): fixed.
    Inline,
    /// A JWK set file, re-read when it changes.
    Jwks(PathBuf),
    /// An HMAC secret file, re-read when it changes.
    Secret(PathBuf),
    /// A JWK set at an `http` or `https` URL, fetched every `refresh`
    /// (sooner if its answer says so, never sooner than `min_refresh`),
    /// and again, at most once per `min_refresh`, for a token whose kid
    /// it lacks.
    Url {
        url: String,
        refresh: Duration,
        min_refresh: Duration,
    },
}

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Never empty; each entry is `host:port`.
    pub bootstrap: Vec<String>,
    /// At least [`MIN_FETCH_MAX_WAIT`](super::MIN_FETCH_MAX_WAIT).
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
    /// requests name); at least the config's, at most [`MAX_MAX_TOPICS`](super::MAX_MAX_TOPICS).
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
    /// Per process, counting connections still sending their request head;
    /// never zero. Bounded at run time by the process's descriptor limit
    /// (less a reserve for Kafka and the admin listener).
    pub max: usize,
    /// Connections one client address may hold at once (answered 429 past
    /// it); `None` (the default) for no per-address bound.
    pub max_per_ip: Option<usize>,
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
    /// A valid [`PathTemplate`](crate::codec::router::PathTemplate): starts with '/', parameters are whole
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
    /// The index in [`Config::guards`] of the guard a request must pass.
    pub guard: Option<usize>,
    /// Roles the request's token must all hold; empty without a guard.
    pub roles: Vec<String>,
}

/// A key partitioner producers use (`partitioner:` on a route).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partitioner {
    /// Kafka's default: murmur2 of the key (see [`crate::codec::partitioner`]).
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
pub use crate::codec::sse::ValueEncoding;

/// What goes into the SSE `id:` field; defined with the id codec.
pub use crate::codec::event_id::EventIdForm;

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

    /// Legal but risky choices an operator should hear about, for `check`
    /// to print and `run` to log.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.cors.allow_origins.iter().any(|o| o == "*") {
            out.push(
                "cors.allow_origins is \"*\" (the default): any website a visitor opens can read these streams from the visitor's browser, an intranet instance's too; list the origins that may"
                    .to_owned(),
            );
        }
        for g in &self.guards {
            for (what, empty) in [
                ("issuer", g.issuers.is_empty()),
                ("audience", g.audiences.is_empty()),
            ] {
                if empty {
                    out.push(format!(
                        "guards.{} has no {what}: a token of any {what} signed by its keys opens its routes",
                        g.name
                    ));
                }
            }
        }
        out
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
            if let Some(k) = r.keepalive {
                out.push_str(" keepalive ");
                out.push_str(&humantime::format_duration(k).to_string());
            }
            if let Some(p) = r.partitioner {
                out.push_str(" partitioner ");
                out.push_str(p.keyword());
            }
            if !r.topics.is_empty() {
                out.push_str(" topics ");
                out.push_str(&r.topics.join(", "));
            }
            if let Some(g) = r.guard {
                out.push_str(" guard ");
                out.push_str(&self.guards[g].name);
                if !r.roles.is_empty() {
                    out.push_str(" roles ");
                    out.push_str(&r.roles.join(", "));
                }
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

/// A closed set of words in the file (`live`, `key-and-progress`, ...): one
/// table per choice, read by `Keyword` (values.rs) and written by
/// [`Config::describe_routes`], so the two cannot disagree. A trait beside the
/// enums rather than serde attributes on them: the public enums need not know
/// about serde or YAML.
pub(super) trait ConfigKeyword: Copy + PartialEq + 'static {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::config::testing::parse_ok;

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

    #[test]
    fn any_origin_is_warned_about_and_a_list_is_not() {
        use crate::config::testing::MINIMAL;
        let open = parse_ok(MINIMAL).warnings();
        assert_eq!(open.len(), 1);
        assert!(open[0].contains("cors.allow_origins is \"*\""), "{open:?}");
        assert!(parse_ok(FULL).warnings().is_empty());
    }

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
            "GET /items -> topic items (start earliest, value base64, id key-and-progress) keepalive 5s\n\
             GET /items/live -> topic items (start live, value text, id progress)\n\
             GET /orders -> topic orders.v2_eu-1 (start live, value text, id progress)\n"
        );
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
}
