//! The checks that span several fields, run once the file is read: duplicate route paths, topic
//! templates and their bounds, listeners on one port, cache budgets, the
//! topic count, features not implemented yet. Then the validated model is
//! built from the raw structs.

use std::collections::HashMap;

use super::defaults::MAX_MAX_TOPICS;
use super::error::ConfigError;
use super::filters::route_filters;
use super::keys::KeyIndex;
use super::model::{CacheConfig, Config, Connections, Cors, KafkaConfig, Route, SlowClient};
use super::raw::RawConfig;
use super::values::show_size;
use crate::filter::Source;

/// Checks what no single value can check alone and builds the public model.
/// Positions come from [`KeyIndex`], since serde's are gone by now.
pub(super) fn validate(mut raw: RawConfig, text: &str, file: &str) -> Result<Config, ConfigError> {
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

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use crate::config::testing::{
        assert_errors, route_with, ErrorCase, HEAD, MINIMAL, UP_TO_ROUTES,
    };

    #[test]
    fn cross_field_errors_name_file_line_and_field() {
        let two_routes = format!("{MINIMAL}  - path: /other\n    topic: other\n");
        let cases: Vec<ErrorCase> = Vec::from([
            ("max topics below the routes' own", format!("{HEAD}  max_topics: 1\nroutes: [{{path: /a, topic: a}}, {{path: /b, topic: b}}, {{path: /c, topic: a}}]\n"),
                3, 3, "kafka.max_topics", "max_topics (1) must be between the routes' own topics (2) and 65536"),
            ("max topics too many", format!("{HEAD}  max_topics: 100000\nroutes: [{{path: /a, topic: a}}]\n"),
                3, 3, "kafka.max_topics", "max_topics (100000) must be between the routes' own topics (1) and 65536"),
            ("duplicate path", format!("{MINIMAL}  - path: /items\n    topic: other\n"),
                6, 5, "routes[1].path", "duplicate route path '/items' (already used by routes[0])"),
            ("guard beside filters", format!("{two_routes}    filters:\n      - key: abc\n    guard: {{a: b}}\n"),
                10, 5, "routes[1].guard", "not supported yet"),
            ("unsupported guard", route_with("    guard: {token: x}\n"),
                6, 5, "routes[0].guard", "not supported yet"),
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
            ("unsupported guards", format!("guards:\n  jwt: {{}}\n{MINIMAL}"),
                1, 1, "guards", "not supported yet"),
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
}
