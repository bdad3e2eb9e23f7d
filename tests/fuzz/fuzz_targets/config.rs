//! The config loader on any text: `config::parse` never panics, an error
//! names the file and a line of it (or an AsyncAPI document it names), and a config it accepts keeps the
//! promises `config::Config` documents on its fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_kafka::codec::filter::Source;
use sse_kafka::codec::router::PathTemplate;
use sse_kafka::codec::topic::check_topic_name;
use sse_kafka::config::{self, MaxLag, MAX_MAX_TOPICS, MIN_FETCH_MAX_WAIT};

const FILE: &str = "fuzz.yaml";

fuzz_target!(|data: &[u8]| {
    // Files that are not UTF-8 are refused before parsing (config::load).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match config::parse(text, FILE) {
        Ok(config) => config,
        Err(e) => {
            // `file:line:column: field: message`, the line one of the
            // file's (or 0: unknown).
            let shown = e.to_string();
            let Some(rest) = shown.strip_prefix(FILE).and_then(|r| r.strip_prefix(':')) else {
                // An error in an AsyncAPI document the config names
                // names that document.
                assert!(
                    text.contains("asyncapi"),
                    "error does not name the file: {shown}"
                );
                return;
            };
            let line: usize = rest
                .split(':')
                .next()
                .and_then(|l| l.parse().ok())
                .unwrap_or_else(|| panic!("error does not name a line: {shown}"));
            assert!(
                line <= text.lines().count() + 1,
                "line {line} of a {}-line file: {shown}",
                text.lines().count()
            );
            return;
        }
    };
    assert!(!config.routes.is_empty());
    assert!(!config.kafka.bootstrap.is_empty());
    assert!(config.kafka.fetch_max_wait >= MIN_FETCH_MAX_WAIT);
    assert_ne!(config.kafka.fetch_max_bytes, 0);
    assert!(!config.kafka.metadata_refresh.is_zero());
    assert!(!config.kafka.unavailable_timeout.is_zero());
    assert!(config.kafka.max_topics <= MAX_MAX_TOPICS);
    assert!(!config.keepalive.is_zero());
    assert!(config.cache.partition_bytes <= config.cache.total_bytes);
    assert!(!config.cache.max_age.is_zero());
    assert_ne!(config.connections.max_queued_bytes, 0);
    assert_ne!(config.connections.max, 0);
    assert!(!config.connections.request_timeout.is_zero());
    if let MaxLag::Age(age) = config.slow_client.max_lag {
        assert!(!age.is_zero());
    }
    for (i, route) in config.routes.iter().enumerate() {
        assert!(
            config.routes[..i].iter().all(|r| r.path != route.path),
            "duplicate path {}",
            route.path
        );
        let path = PathTemplate::parse(&route.path)
            .unwrap_or_else(|e| panic!("route path {:?}: {e}", route.path));
        assert_eq!(route.topic_template.is_some(), !route.topics.is_empty());
        if route.topic_template.is_none() {
            check_topic_name(&route.topic).unwrap();
        }
        let _ = config.route_keepalive(i);
        assert!(route.guard.is_none_or(|g| g < config.guards.len()));
        assert!(route.guard.is_some() || route.roles.is_empty());
        for filter in &route.filters {
            for (source, name) in filter.substitutions() {
                // A claim needs a guard to come from.
                assert!(source != Source::Guard || route.guard.is_some());
                if source == Source::Params {
                    assert!(
                        path.param_names().any(|p| p == name),
                        "{name} is not a parameter of {}",
                        route.path
                    );
                }
            }
        }
    }
    let topics = config.topics();
    assert!(topics.len() <= config.routes.len());
    assert!(topics.len() <= config.kafka.max_topics);
    let _ = config.warnings();
    let _ = config.describe_routes();
});
