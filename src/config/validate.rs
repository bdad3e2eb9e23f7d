//! The checks that span several fields, run once the file is read (and the
//! command line's overrides written over it): duplicate route paths, topic
//! templates and their bounds, guards and the routes they guard, listeners
//! on one port, cache budgets, the topic count. Then the validated model is
//! built from the raw structs.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::Path;

use super::asyncapi;
use super::defaults::MAX_MAX_TOPICS;
use super::error::ConfigError;
use super::filters::route_filters;
use super::guards::{build_guards, roles, route_guard};
use super::keys::KeyIndex;
use super::model::{CacheConfig, Config, Connections, Cors, KafkaConfig, Route, SlowClient};
use super::overrides::Overrides;
use super::raw::{RawConfig, RawRoute};
use super::values::{show_size, BrokerAddr, NonEmpty, EMPTY_LIST};
use crate::codec::filter::Source;
use crate::codec::router::Router;

/// Writes `overrides` over the file's values, then checks what no single
/// value can check alone and builds the public model. Positions come from
/// [`KeyIndex`], since serde's are gone by now; a field whose value a flag
/// gave is blamed on the flag instead ([`Overrides::flag_for`]).
pub(super) fn validate(
    mut raw: RawConfig,
    overrides: &Overrides,
    text: &str,
    file: &str,
) -> Result<Config, ConfigError> {
    let index = KeyIndex::new(text);
    let at_config = |field: String, message: String| {
        ConfigError::new(file, index.locate(&field), &field, message)
    };
    // Key files and AsyncAPI documents are found beside the config file.
    let base = Path::new(file).parent().unwrap_or(Path::new("."));

    // The file's routes, then those its AsyncAPI documents declare, whose
    // errors name the document's place of the setting at fault.
    let declared = asyncapi::declare(raw.asyncapi.take(), base, &at_config)?;
    let mut routes: Vec<RawRoute> = raw.routes.take().map(|r| r.0).unwrap_or_default();
    if routes.is_empty() && declared.is_empty() {
        return Err(ConfigError::new(
            file,
            (1, 1),
            "routes",
            "missing field `routes` (the paths that stream topics; or `asyncapi`, documents that declare them)".into(),
        ));
    }
    let own = routes.len();
    let mut origins = Vec::with_capacity(declared.len());
    for d in declared {
        routes.push(d.route);
        origins.push(d.origin);
    }
    let name = |i: usize| match i.checked_sub(own) {
        None => format!("routes[{i}]"),
        Some(j) => origins[j].name.clone(),
    };

    let error = |field: String, message: String| {
        if let Some(origin) = route_field(&field).and_then(|(i, rest)| {
            let j = i.checked_sub(own)?;
            Some((&origins[j], rest))
        }) {
            return origin.0.error(origin.1, message);
        }
        match overrides.flag_for(&field) {
            Some(flag) => ConfigError::from_flag(file, flag, &field, message),
            None => at_config(field, message),
        }
    };
    let fail = |field: String, message: String| Err(error(field, message));

    apply_overrides(&mut raw, overrides, &error)?;

    // Two routes with one path: the second could never be reached. Nor
    // could it with the same path but other parameter names.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, r) in routes.iter().enumerate() {
        if let Some(first) = seen.insert(r.path.0.shape(), i) {
            let (path, other) = (r.path.0.as_str(), routes[first].path.0.as_str());
            let what = if path == other {
                String::new()
            } else {
                format!(": '{other}', whatever its parameters are called")
            };
            return fail(
                format!("routes[{i}].path"),
                format!(
                    "duplicate route path '{path}' (already used by {}{what})",
                    name(first)
                ),
            );
        }
    }

    // The served document's paths are no route's.
    if let Some(doc) = &raw.serve_asyncapi {
        let router = Router::new(routes.iter().map(|r| r.path.0.clone()).collect());
        for served in [format!("{}.json", doc.0), format!("{}.yaml", doc.0)] {
            if let Some((i, _)) = router.route(&served) {
                return fail(
                    "serve_asyncapi".into(),
                    format!(
                        "the document's {served} is a path of {} ('{}') too; serve the document elsewhere",
                        name(i),
                        routes[i].path.0.as_str()
                    ),
                );
            }
        }
    }

    let filters = routes
        .iter_mut()
        .enumerate()
        .map(|(i, r)| route_filters(i, &r.path.0, r.filters.take(), &error))
        .collect::<Result<Vec<_>, _>>()?;

    let guards = build_guards(
        raw.guards.take().unwrap_or_default(),
        base,
        &raw.cors.allow_origins,
        &error,
    )?;
    let route_guards = routes
        .iter()
        .zip(&filters)
        .enumerate()
        .map(|(i, (r, f))| {
            route_guard(
                i,
                r.guard.as_deref(),
                &r.roles,
                &guards,
                r.topic.1.as_ref(),
                f,
                &error,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;

    // A topic from the request must be bounded, and only such a topic.
    for (i, r) in routes.iter().enumerate() {
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
    for (i, (r, filters)) in routes.iter().zip(&filters).enumerate() {
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
        // Blame admin_listen, unless only listen came from a flag: then the
        // file's admin_listen was fine until the flag moved listen onto it.
        let flag = |field: &str| overrides.flag_for(field).is_some();
        if overlap && flag("listen") && !flag("admin_listen") {
            return fail(
                "listen".into(),
                format!(
                    "{} overlaps admin_listen {admin}; use another port",
                    raw.listen
                ),
            );
        }
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
            max_per_ip: raw.connections.max_per_ip.map(NonZeroUsize::get),
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
        routes: routes
            .into_iter()
            .zip(filters)
            .zip(route_guards)
            .map(|((r, filters), guard)| Route {
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
                guard,
                roles: roles(r.roles),
            })
            .collect(),
        guards,
        serve_asyncapi: raw.serve_asyncapi.map(|d| d.0),
        public_url: raw.public_url.map(|u| u.0),
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

/// `routes[3].filters[0]` as (3, `filters[0]`); `routes[3]` as (3, ``).
fn route_field(field: &str) -> Option<(usize, &str)> {
    let rest = field.strip_prefix("routes[")?;
    let (i, rest) = rest.split_once(']')?;
    Some((i.parse().ok()?, rest.strip_prefix('.').unwrap_or(rest)))
}

/// Writes the flags' values over the file's. Each is checked as the file's
/// value would be: broker addresses by the parser of `kafka.bootstrap`
/// entries (listen addresses are parsed by the flag parser already), and all
/// of them by the checks of [`validate`] that follow.
fn apply_overrides(
    raw: &mut RawConfig,
    overrides: &Overrides,
    error: &dyn Fn(String, String) -> ConfigError,
) -> Result<(), ConfigError> {
    if let Some(listen) = overrides.listen {
        raw.listen = listen;
    }
    if let Some(admin) = overrides.admin_listen {
        raw.admin_listen = Some(admin);
    }
    if let Some(brokers) = &overrides.brokers {
        if brokers.is_empty() {
            return Err(error("kafka.bootstrap".into(), EMPTY_LIST.into()));
        }
        let checked = brokers
            .iter()
            .enumerate()
            .map(|(i, b)| {
                BrokerAddr::parse(b).map_err(|m| error(format!("kafka.bootstrap[{i}]"), m))
            })
            .collect::<Result<Vec<_>, _>>()?;
        raw.kafka.bootstrap = NonEmpty(checked);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::config::testing::{
        assert_errors, route_with, ErrorCase, FILE, HEAD, MINIMAL, UP_TO_ROUTES,
    };
    use crate::config::{parse, parse_with, Flag};

    #[test]
    fn cross_field_errors_name_file_line_and_field() {
        let cases: Vec<ErrorCase> = Vec::from([
            ("max topics below the routes' own", format!("{HEAD}  max_topics: 1\nroutes: [{{path: /a, topic: a}}, {{path: /b, topic: b}}, {{path: /c, topic: a}}]\n"),
                3, 3, "kafka.max_topics", "max_topics (1) must be between the routes' own topics (2) and 65536"),
            ("max topics too many", format!("{HEAD}  max_topics: 100000\nroutes: [{{path: /a, topic: a}}]\n"),
                3, 3, "kafka.max_topics", "max_topics (100000) must be between the routes' own topics (1) and 65536"),
            ("duplicate path", format!("{MINIMAL}  - path: /items\n    topic: other\n"),
                6, 5, "routes[1].path", "duplicate route path '/items' (already used by routes[0])"),
            ("duplicate path but for its parameter's name", format!("{UP_TO_ROUTES}  - path: /a/{{x}}\n    topic: t\n  - path: /a/{{y}}\n    topic: t\n"),
                6, 5, "routes[1].path", "duplicate route path '/a/{y}' (already used by routes[0]: '/a/{x}', whatever its parameters are called)"),
            ("partitioner without a key filter", route_with("    partitioner: murmur2\n"),
                6, 5, "routes[0].partitioner", "partitioner only narrows"),
            ("topics beside a fixed topic", route_with("    topics: \"public.*\"\n"),
                6, 5, "routes[0].topics", "`topics` bounds a topic with substitutions"),
            ("topic template without topics",
                format!("{UP_TO_ROUTES}  - path: /t/{{name}}\n    topic: \"${{params.name}}\"\n"),
                5, 5, "routes[0].topic", "a topic with substitutions needs `topics:`"),
            ("topic template naming no path parameter",
                format!("{UP_TO_ROUTES}  - path: /t/{{name}}\n    topic: \"${{params.other}}\"\n    topics: \"*\"\n"),
                5, 5, "routes[0].topic", "path '/t/{name}' has no parameter 'other'"),
            ("partition over total", format!("{MINIMAL}cache:\n  total_bytes: 1GiB\n  partition_bytes: 2GiB\n"),
                8, 3, "cache.partition_bytes", "partition_bytes (2GiB) must not exceed total_bytes (1GiB)"),
            ("default partition over total", format!("{MINIMAL}cache:\n  total_bytes: 1000000\n"),
                6, 1, "cache.partition_bytes", "partition_bytes (64MiB) must not exceed total_bytes (1000000)"),
            ("cache off by total only", format!("{MINIMAL}cache:\n  total_bytes: 0\n"),
                6, 1, "cache.partition_bytes",
                "partition_bytes (64MiB) must not exceed total_bytes (0); to disable the cache, set partition_bytes to 0 as well"),
            ("admin on the listen port", format!("listen: 0.0.0.0:8080\nadmin_listen: 127.0.0.1:8080\n{MINIMAL}"),
                2, 1, "admin_listen", "127.0.0.1:8080 overlaps listen 0.0.0.0:8080"),
        ]);
        assert_errors(cases);
    }

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

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// `MINIMAL` with both listeners set in the file.
    fn listeners() -> String {
        format!("listen: 0.0.0.0:8080\nadmin_listen: 127.0.0.1:9464\n{MINIMAL}")
    }

    #[test]
    fn valid_overrides_replace_the_files_values() {
        let overrides = Overrides {
            listen: Some(addr("127.0.0.1:9000")),
            admin_listen: Some(addr("127.0.0.1:9001")),
            brokers: Some(vec!["k1:9092".into(), "[::1]:9093".into()]),
        };
        let c = parse_with(&listeners(), FILE, &overrides).unwrap();
        assert_eq!(c.listen, addr("127.0.0.1:9000"));
        assert_eq!(c.admin_listen, Some(addr("127.0.0.1:9001")));
        assert_eq!(c.kafka.bootstrap, ["k1:9092", "[::1]:9093"]);
        // Without overrides the file's values stand.
        let c = parse_with(&listeners(), FILE, &Overrides::default()).unwrap();
        assert_eq!(c.listen, addr("0.0.0.0:8080"));
        assert_eq!(c.admin_listen, Some(addr("127.0.0.1:9464")));
        assert_eq!(c.kafka.bootstrap, ["127.0.0.1:9092"]);
        // A flag gives an admin listener the file does not have.
        let admin_only = Overrides {
            admin_listen: Some(addr("127.0.0.1:9001")),
            ..Overrides::default()
        };
        let c = parse_with(MINIMAL, FILE, &admin_only).unwrap();
        assert_eq!(c.admin_listen, Some(addr("127.0.0.1:9001")));
    }

    #[test]
    fn invalid_overrides_are_refused_naming_the_flag() {
        let brokers = |list: &[&str]| Overrides {
            brokers: Some(list.iter().map(|b| b.to_string()).collect()),
            ..Overrides::default()
        };
        let listen = |a: &str| Overrides {
            listen: Some(addr(a)),
            ..Overrides::default()
        };
        let admin = |a: &str| Overrides {
            admin_listen: Some(addr(a)),
            ..Overrides::default()
        };
        // (what, file, overrides, flag, field, the whole error as printed)
        let cases: Vec<(&str, String, Overrides, Flag, &str, &str)> = vec![
            ("broker without a port", MINIMAL.into(), brokers(&["nohost"]), Flag::Brokers, "kafka.bootstrap[0]",
                "--brokers (SSE_KAFKA_BROKERS): invalid broker address 'nohost': no port; expected host:port"),
            ("an empty entry (stray comma)", MINIMAL.into(), brokers(&["a:1", ""]), Flag::Brokers, "kafka.bootstrap[1]",
                "--brokers (SSE_KAFKA_BROKERS): empty broker address; expected host:port"),
            ("no broker at all", MINIMAL.into(), brokers(&[]), Flag::Brokers, "kafka.bootstrap",
                "--brokers (SSE_KAFKA_BROKERS): must list at least one entry"),
            ("broker port zero", MINIMAL.into(), brokers(&["a:0"]), Flag::Brokers, "kafka.bootstrap[0]",
                "--brokers (SSE_KAFKA_BROKERS): invalid broker address 'a:0': port must be a number from 1 to 65535; expected host:port"),
            ("admin flag onto the file's listen", listeners(), admin("127.0.0.1:8080"), Flag::AdminListen, "admin_listen",
                "--admin-listen (SSE_KAFKA_ADMIN_LISTEN): 127.0.0.1:8080 overlaps listen 0.0.0.0:8080; use another port"),
            ("listen flag onto the file's admin", listeners(), listen("0.0.0.0:9464"), Flag::Listen, "listen",
                "--listen (SSE_KAFKA_LISTEN): 0.0.0.0:9464 overlaps admin_listen 127.0.0.1:9464; use another port"),
            ("admin flag with no admin in the file", MINIMAL.into(), admin("0.0.0.0:8080"), Flag::AdminListen, "admin_listen",
                "--admin-listen (SSE_KAFKA_ADMIN_LISTEN): 0.0.0.0:8080 overlaps listen 0.0.0.0:8080; use another port"),
            ("both flags on one port", MINIMAL.into(),
                Overrides { listen: Some(addr("127.0.0.1:7000")), ..admin("127.0.0.1:7000") },
                Flag::AdminListen, "admin_listen",
                "--admin-listen (SSE_KAFKA_ADMIN_LISTEN): 127.0.0.1:7000 overlaps listen 127.0.0.1:7000; use another port"),
        ];
        for (what, text, overrides, flag, field, want) in cases {
            let err = match parse_with(&text, FILE, &overrides) {
                Ok(_) => panic!("{what}: accepted, but should fail"),
                Err(e) => e,
            };
            assert_eq!(err.to_string(), want, "{what}");
            assert_eq!(
                (err.flag, err.field.as_str()),
                (Some(flag), field),
                "{what}"
            );
            assert_eq!(
                (err.line, err.column),
                (0, 0),
                "{what}: not a place in the file"
            );
        }
    }

    #[test]
    fn overrides_leave_file_errors_at_their_place() {
        // A flag does not excuse the file: its own mistakes keep file, line
        // and field, even in a setting the flag overrides.
        let overrides = Overrides {
            listen: Some(addr("127.0.0.1:9000")),
            brokers: Some(vec!["k1:9092".into()]),
            ..Overrides::default()
        };
        let text = "kafka:\n  bootstrap: [\"nohost\"]\nroutes: [{path: /a, topic: a}]\n";
        let err = parse_with(text, FILE, &overrides).unwrap_err();
        assert_eq!(
            (err.flag, err.line, err.field.as_str()),
            (None, 2, "kafka.bootstrap[0]"),
            "{err}"
        );
        // The file's overlap, with a flag that touches neither listener.
        let text = format!("listen: 0.0.0.0:8080\nadmin_listen: 127.0.0.1:8080\n{MINIMAL}");
        let brokers_only = Overrides {
            brokers: Some(vec!["k1:9092".into()]),
            ..Overrides::default()
        };
        let err = parse_with(&text, FILE, &brokers_only).unwrap_err();
        assert_eq!(
            (err.flag, err.line, err.column, err.field.as_str()),
            (None, 2, 1, "admin_listen"),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("sse-kafka.yaml:2:1: admin_listen: "),
            "{err}"
        );
    }
}
