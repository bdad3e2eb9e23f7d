//! The validating value types of the file: durations, byte sizes, lag
//! limits, topic names and patterns, route paths, broker addresses, keywords
//! and non-empty lists. Each checks its value while it is read, inside a serde
//! `Visitor` method: serde_yaml_ng attaches the value's own position only to
//! errors returned from there (an error raised after `String::deserialize`
//! returns would be reported at the enclosing mapping instead), so every
//! refusal here names the value's exact line and column.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::defaults::{KEEPALIVE_RANGE, MAX_RETRY, MIN_FETCH_MAX_WAIT};
use super::model::{ConfigKeyword, MaxLag};
use crate::codec::filter::Template;
use crate::codec::router::PathTemplate;
use crate::codec::topic::check_topic_name;

/// Deserializes a string and converts it with `parse`, reporting its error at
/// the string's position.
pub(super) fn deserialize_str_with<'de, D, T>(
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
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.parse)(v).map_err(E::custom)
        }
    }
    deserializer.deserialize_str(StrVisitor { expecting, parse })
}

/// For a field whose `null` must be seen rather than read as "absent", as
/// serde does for `Option` fields: the field's own type decides what a null
/// means, and only a missing field is `None` (with `#[serde(default)]`).
pub(super) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A humantime duration ("15s", "2m", "100ms") of at least `MIN_NANOS`
/// and at most `MAX_NANOS`.
#[derive(Clone, Copy, Debug)]
pub(super) struct DurationAtLeast<const MIN_NANOS: u64, const MAX_NANOS: u64 = { u64::MAX }>(
    pub(super) Duration,
);
/// A duration greater than zero (a zero interval or timeout makes no sense).
pub(super) type PositiveDuration = DurationAtLeast<1>;
/// `kafka.fetch_max_wait`: at least [`MIN_FETCH_MAX_WAIT`].
pub(super) type FetchWait = DurationAtLeast<{ MIN_FETCH_MAX_WAIT.as_nanos() as u64 }>;
/// `keepalive` (global or a route's): within [`KEEPALIVE_RANGE`].
pub(super) type Keepalive = DurationAtLeast<
    { KEEPALIVE_RANGE.0.as_nanos() as u64 },
    { KEEPALIVE_RANGE.1.as_nanos() as u64 },
>;
/// `retry` and `retry_jitter`: at most [`MAX_RETRY`] (zero is meaningful).
pub(super) type RetryDuration = DurationAtLeast<0, { MAX_RETRY.as_nanos() as u64 }>;

impl<'de, const MIN_NANOS: u64, const MAX_NANOS: u64> Deserialize<'de>
    for DurationAtLeast<MIN_NANOS, MAX_NANOS>
{
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
            let max = Duration::from_nanos(MAX_NANOS);
            if value > max {
                return Err(format!(
                    "duration '{s}' must be at most {}",
                    humantime::format_duration(max)
                ));
            }
            Ok(DurationAtLeast(value))
        })
    }
}

/// A byte size of at least `MIN` bytes: a plain integer, or an integer with
/// suffix B, KiB, MiB or GiB. The 1000-based KB/MB/GB are refused on purpose, so
/// that nobody has to wonder which one was meant.
#[derive(Clone, Copy, Debug)]
pub(super) struct SizeAtLeast<const MIN: u64>(pub(super) usize);
/// A budget that must hold something: a zero budget could never hold anything.
pub(super) type Size = SizeAtLeast<1>;
/// A size where 0 means "off" (the cache budgets).
pub(super) type AnySize = SizeAtLeast<0>;

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
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
pub(super) fn show_size(bytes: usize) -> String {
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
pub(super) struct LagLimit(pub(super) MaxLag);

const LAG_FORMS: &str = "a record count (e.g. 500000) or a duration like \"2m\"";

impl<'de> Deserialize<'de> for LagLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LagVisitor;
        impl<'de> Visitor<'de> for LagVisitor {
            type Value = LagLimit;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
pub(super) struct TopicName(pub(super) String, pub(super) Option<Template>);

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
pub(super) struct TopicPatterns(pub(super) Vec<String>);

impl<'de> Deserialize<'de> for TopicPatterns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor rather than an untagged enum, so an invalid pattern is
        // reported at its own position with its own message.
        struct OneOrMany;
        impl<'de> Visitor<'de> for OneOrMany {
            type Value = TopicPatterns;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
pub(super) struct RoutePath(pub(super) PathTemplate);

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

/// `serve_asyncapi`: the path the served AsyncAPI document is found at,
/// without its extension (`/asyncapi`: `/asyncapi.json` and
/// `/asyncapi.yaml`). A literal path: no parameters, no trailing `/`.
#[derive(Debug)]
pub(super) struct DocumentPath(pub(super) String);

impl<'de> Deserialize<'de> for DocumentPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "an HTTP path starting with '/'", |s| {
            if !s.starts_with('/') || s.ends_with('/') {
                return Err(format!(
                    "'{s}' must start with '/' and not end with one: the document is served at it plus .json and .yaml"
                ));
            }
            if let Some(c) = s.chars().find(|c| {
                c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '{' | '}' | '%')
            }) {
                return Err(format!(
                    "'{s}' must not contain {c:?}: it is a literal path"
                ));
            }
            Ok(DocumentPath(s.to_string()))
        })
    }
}

/// `public_url`: where clients reach this instance (`https://events.example.com`,
/// perhaps behind a proxy and under a path), for the served document's
/// server. http or https, a host, no user, query or fragment.
#[derive(Debug)]
pub(super) struct PublicUrl(pub(super) crate::config::model::PublicUrl);

impl<'de> Deserialize<'de> for PublicUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "a URL (https://host[:port][/path])", |s| {
            let uri: http::Uri = s.parse().map_err(|e| format!("invalid URL '{s}': {e}"))?;
            let scheme = match uri.scheme_str() {
                Some(scheme @ ("http" | "https")) => scheme.to_string(),
                _ => return Err(format!("'{s}' must start with http:// or https://")),
            };
            let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
            if authority.is_empty() || authority.contains('@') {
                return Err(format!("'{s}' needs a host, and no user"));
            }
            if uri.query().is_some() || s.contains('#') {
                return Err(format!("'{s}' must not have a query or fragment"));
            }
            let path = uri.path().trim_end_matches('/');
            Ok(PublicUrl(crate::config::model::PublicUrl {
                scheme,
                host: authority.to_string(),
                path: path.to_string(),
            }))
        })
    }
}

/// A Kafka bootstrap address `host:port` (`[v6]:port` for IPv6 literals). Only
/// the shape is checked: names are resolved by the Kafka client later.
#[derive(Debug)]
pub(super) struct BrokerAddr(pub(super) String);

impl BrokerAddr {
    /// Checks one address. Shared by `kafka.bootstrap` entries and the
    /// `--brokers` override, so both refuse the same addresses alike.
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            // From the command line, most likely a stray comma.
            return Err("empty broker address; expected host:port".to_string());
        }
        let bad = |why: &str| format!("invalid broker address '{s}': {why}; expected host:port");
        let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        if host.is_empty() || host.chars().any(char::is_whitespace) {
            return Err(bad("bad host"));
        }
        match port.parse::<u16>() {
            Ok(p) if p != 0 => Ok(BrokerAddr(s.to_string())),
            _ => Err(bad("port must be a number from 1 to 65535")),
        }
    }
}

impl<'de> Deserialize<'de> for BrokerAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "a broker address host:port", BrokerAddr::parse)
    }
}

/// A list that must hold at least one entry, checked inside the visitor so the
/// error points at the list itself.
pub(super) struct NonEmpty<T>(pub(super) Vec<T>);

/// Why an empty list is refused.
pub(super) const EMPTY_LIST: &str = "must list at least one entry";

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NonEmpty<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SeqVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for SeqVisitor<T> {
            type Value = NonEmpty<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-empty list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NonEmpty<T>, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                if items.is_empty() {
                    return Err(de::Error::custom(EMPTY_LIST));
                }
                Ok(NonEmpty(items))
            }
        }
        d.deserialize_seq(SeqVisitor(PhantomData))
    }
}

/// One of the words of a [`ConfigKeyword`] choice (`start: live`).
#[derive(Clone, Copy)]
pub(super) struct Keyword<T>(pub(super) T);

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::config::testing::{
        assert_errors, parse_ok, route_with, ErrorCase, FILE, HEAD, MINIMAL, UP_TO_ROUTES,
    };

    #[test]
    fn value_errors_name_file_line_and_field() {
        let cases: Vec<ErrorCase> = Vec::from([
            ("bad duration", route_with("    keepalive: 5 parsecs\n"),
                6, 16, "routes[0].keepalive", "invalid duration '5 parsecs': unknown time unit"),
            ("duration without unit", format!("{MINIMAL}retry: 15\n"),
                6, 8, "retry", "invalid duration '15': time unit needed"),
            ("zero keepalive", format!("{MINIMAL}keepalive: 0s\n"),
                6, 12, "keepalive", "duration '0s' must be at least 100ms"),
            ("keepalive of a nanosecond", format!("{MINIMAL}keepalive: 1ns\n"),
                6, 12, "keepalive", "duration '1ns' must be at least 100ms"),
            ("a route's keepalive of a day", route_with("    keepalive: 1day\n"),
                6, 16, "routes[0].keepalive", "duration '1day' must be at most 1h"),
            ("retry past an hour", format!("{MINIMAL}retry: 18446744073709551615s\n"),
                6, 8, "retry", "duration '18446744073709551615s' must be at most 1h"),
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
                5, 12, "routes[0].topic", "topic name is 250 bytes long; Kafka allows at most 249"),
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
            ("empty routes", format!("{HEAD}routes: []\n"),
                3, 9, "routes", "must list at least one entry"),
            ("empty bootstrap", "kafka:\n  bootstrap: []\nroutes: [{path: /a, topic: a}]\n".into(),
                2, 14, "kafka.bootstrap", "must list at least one entry"),
            ("routes left null", format!("{HEAD}routes:\n"),
                3, 8, "routes", "must list at least one entry"),
            ("bad path parameter", format!("{HEAD}routes:\n  - path: /a/{{x}}y\n    topic: a\n"),
                4, 11, "routes[0].path",
                "invalid route path '/a/{x}y': route path segment '{x}y' is not a literal or a whole-segment {name}"),
            ("path parameter twice", format!("{HEAD}routes:\n  - path: /a/{{x}}/{{x}}\n    topic: a\n"),
                4, 11, "routes[0].path", "invalid route path '/a/{x}/{x}': route path names parameter 'x' twice"),
            ("unknown partitioner", route_with("    partitioner: crc32\n"),
                6, 18, "routes[0].partitioner", "unknown partitioner 'crc32'; expected one of: murmur2"),
            ("bad topic pattern",
                format!("{UP_TO_ROUTES}  - path: /t/{{name}}\n    topic: \"${{params.name}}\"\n    topics: [\"a b\"]\n"),
                6, 14, "routes[0].topics[0]", "invalid topic pattern 'a b'"),
            ("zero metadata refresh", format!("{HEAD}  metadata_refresh: 0s\nroutes: [{{path: /a, topic: a}}]\n"),
                3, 21, "kafka.metadata_refresh", "duration '0s' must be greater than 0"),
            ("unavailable timeout without unit", format!("{HEAD}  unavailable_timeout: 30\nroutes: [{{path: /a, topic: a}}]\n"),
                3, 24, "kafka.unavailable_timeout", "invalid duration '30': time unit needed"),
            ("bad cache size", format!("{MINIMAL}cache:\n  total_bytes: 1GB\n"),
                7, 16, "cache.total_bytes", "invalid size '1GB': expected a plain integer of bytes"),
            ("negative cache size", format!("{MINIMAL}cache:\n  partition_bytes: -1\n"),
                7, 20, "cache.partition_bytes", "size -1 must not be negative"),
            ("zero cache age", format!("{MINIMAL}cache:\n  max_age: 0s\n"),
                7, 12, "cache.max_age", "duration '0s' must be greater than 0"),
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
        ]);
        assert_errors(cases);
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
    fn broker_addresses() {
        let cases = [
            ("127.0.0.1:9092", None),
            ("kafka-2.internal:9093", None),
            ("[::1]:9092", None),
            ("", Some("empty broker address; expected host:port".to_string())),
            ("nohost", Some("invalid broker address 'nohost': no port; expected host:port".into())),
            (":9092", Some("invalid broker address ':9092': bad host; expected host:port".into())),
            ("a b:1", Some("invalid broker address 'a b:1': bad host; expected host:port".into())),
            (
                "h:0",
                Some("invalid broker address 'h:0': port must be a number from 1 to 65535; expected host:port".into()),
            ),
            (
                "h:65536",
                Some("invalid broker address 'h:65536': port must be a number from 1 to 65535; expected host:port".into()),
            ),
        ];
        for (text, want) in cases {
            let got = BrokerAddr::parse(text).map(|b| b.0);
            match want {
                None => assert_eq!(got.as_deref(), Ok(text), "{text:?}"),
                Some(want) => assert_eq!(got, Err(want), "{text:?}"),
            }
        }
    }
}
