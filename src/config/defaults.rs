//! The documented defaults of the file's settings, and the bounds the checks
//! hold values to. Each says why it has its value: an operator who leaves a
//! setting out gets this, and should be able to tell whether it suits them.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use super::model::MaxLag;

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

/// 100ms to 1h: a shorter keep-alive floods every idle stream with
/// comments (`1ns` was accepted), a longer one is cut by any idle timeout.
pub const KEEPALIVE_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(3600));

/// 2s: the HTML spec leaves EventSource's reconnection delay to the browser
/// ("a few seconds"); 2s brings clients back quickly after a proxy restart
/// without hammering a proxy that is still starting.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(2);

/// 1s: spreads the reconnections of every client of a restarted proxy over a
/// second instead of letting them all arrive in the same instant.
pub const DEFAULT_RETRY_JITTER: Duration = Duration::from_secs(1);

/// 1h: the most `retry` and `retry_jitter` may be (an EventSource told to
/// wait longer has as good as stopped; `18446744073709551615s` was
/// accepted).
pub const MAX_RETRY: Duration = Duration::from_secs(3600);

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
/// those requests name through a route's topic template. Each costs every
/// shard a metadata request per `metadata_refresh` (about 200 a second
/// per shard at 1,024 topics and the 5 s default), which a broker serves
/// without strain; far more should be a deliberate setting.
pub const DEFAULT_MAX_TOPICS: usize = 1024;

/// The largest `kafka.max_topics`: every topic costs each shard a metadata
/// watch and the fetch loops of its partitions for the life of the process,
/// and a `TopicId` is a `u32` with `u32::MAX` reserved; 2^16 topics keep
/// the per-shard tables (one stream and one cache slot per topic) small.
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

/// 60s: the clock skew a guard allows on a token's `exp` and `nbf`, as
/// most JWT libraries default to; hosts synced by NTP are far closer.
pub const DEFAULT_GUARD_LEEWAY: Duration = Duration::from_secs(60);

/// 5m: the most leeway a guard may allow; more would keep expired tokens
/// working long enough to matter.
pub const MAX_GUARD_LEEWAY: Duration = Duration::from_secs(5 * 60);

/// 5m: how often a guard's keys from a URL are fetched again (sooner when
/// the answer's `cache-control: max-age` says so): a key an identity
/// provider retires is gone from the proxy within minutes.
pub const DEFAULT_KEYS_REFRESH: Duration = Duration::from_secs(5 * 60);

/// 10s: the least time between two fetches of a guard's keys, also when
/// tokens name a kid the keys do not have (a storm of made-up kids costs
/// the key server one request per this).
pub const DEFAULT_KEYS_MIN_REFRESH: Duration = Duration::from_secs(10);

/// The most guards one config may name (each is a key set and a set of
/// metrics labels; a deployment has a few).
pub const MAX_GUARDS: usize = 64;

/// The largest key file read (a JWK set of [`crate::codec::jwt::MAX_KEYS`]
/// RSA keys is about 200 KiB).
pub const MAX_KEY_FILE_BYTES: u64 = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{parse_ok, MINIMAL};
    use crate::config::{EventIdForm, Start, ValueEncoding};

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
}
