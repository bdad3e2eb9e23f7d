//! The single-document form: every operation whose channel carries an
//! `x-sse-kafka` object is a route. Its path is the channel's `address`;
//! its topic the channel's `bindings.kafka.topic`, else `x-sse-kafka.topic`;
//! its settings are those of a YAML route, read from the document's text so
//! that an error in one has its line. Parameters located in the message
//! (`$message.header#/NAME`, `$message.payload#/POINTER`) become filter
//! conditions. Also the address and parameters of a channel, which Zilla's
//! form shares.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use serde::Deserialize;
use serde_yaml_ng::Value;

use super::document::{show, Document};
use super::{Declared, Origin, Place};
use crate::codec::filter::Template;
use crate::config::error::ConfigError;
use crate::config::filters::RawFilter;
use crate::config::keys::join_key;
use crate::config::raw::{RawRoute, RawRouteSettings};
use crate::config::values::{present, RoutePath, TopicName};

/// The `x-sse-kafka` objects of the document's channels, read from its text.
#[derive(Deserialize)]
struct Extensions {
    #[serde(default)]
    channels: HashMap<String, Channel>,
    #[serde(default)]
    components: Components,
}

#[derive(Deserialize, Default)]
struct Components {
    #[serde(default)]
    channels: HashMap<String, Channel>,
}

#[derive(Deserialize)]
#[serde(expecting = "a channel: a mapping with address, messages, ...")]
struct Channel {
    /// `Some(None)`: `x-sse-kafka: null`, which is refused.
    #[serde(rename = "x-sse-kafka", default, deserialize_with = "present")]
    settings: Option<Option<RawRouteSettings>>,
}

/// The routes `doc` declares, in the order of its operations.
pub(super) fn declared(doc: &Rc<Document>) -> Result<Vec<Declared>, ConfigError> {
    let ext: Extensions = serde_yaml_ng::from_str(&doc.text)
        .map_err(|e| ConfigError::from_yaml(&e, &doc.text, &doc.file))?;
    // By document path; ordered, so that a leftover is reported alike on
    // every run.
    let mut settings: BTreeMap<String, RawRouteSettings> = BTreeMap::new();
    let all = (ext
        .channels
        .into_iter()
        .map(|(k, c)| (join_key("channels", &k), c)))
    .chain(
        (ext.components.channels.into_iter())
            .map(|(k, c)| (join_key("components.channels", &k), c)),
    );
    for (at, channel) in all {
        match channel.settings {
            Some(Some(s)) => {
                settings.insert(at, s);
            }
            Some(None) => {
                return Err(doc.error(
                    &join_key(&at, "x-sse-kafka"),
                    "x-sse-kafka is a mapping of route settings ({} for a route with the defaults)",
                ))
            }
            None => {}
        }
    }

    let mut routes = Vec::new();
    let mut used: HashMap<String, String> = HashMap::new();
    for (_, op, at) in doc.entries(&doc.root, "operations", "")? {
        let Some(channel) = op.get("channel") else {
            return Err(doc.error(
                &at,
                "an operation needs its `channel` ($ref: '#/channels/NAME')",
            ));
        };
        let (channel, channel_at) = doc.resolve(channel, &join_key(&at, "channel"))?;
        if let Some(first) = used.get(&channel_at) {
            return Err(doc.error(
                &join_key(&at, "channel"),
                format!("{channel_at} is the route of {first} already: a path is declared once"),
            ));
        }
        let Some(mut s) = settings.remove(&channel_at) else {
            continue;
        };
        used.insert(channel_at.clone(), at.clone());
        let x = join_key(&channel_at, "x-sse-kafka");
        let path = address(doc, channel, &channel_at)?;
        let conditions = parameters(doc, channel, &channel_at, &path.0)?;
        let (topic, topic_at) = topic(doc, channel, &channel_at, s.topic.take())?;
        let filters_at = match (&s.filters, conditions.first()) {
            (None, Some(c)) => c.at.clone(),
            _ => join_key(&x, "filters"),
        };
        let mut route = s.at(path, topic);
        add_conditions(doc, &mut route, conditions)?;
        let place = |at: String| Place {
            doc: Rc::clone(doc),
            at,
        };
        routes.push(Declared {
            route,
            origin: Origin {
                name: format!("{} {channel_at}", doc.file),
                places: vec![
                    ("path", place(join_key(&channel_at, "address"))),
                    ("topic", place(topic_at)),
                    ("filters", place(filters_at)),
                ],
                settings: place(x),
            },
        });
    }
    if let Some(at) = settings.keys().next() {
        return Err(doc.error(
            &join_key(at, "x-sse-kafka"),
            "no operation uses this channel, so it declares no route: add one (action: send, channel: {$ref: '#/channels/NAME'})",
        ));
    }
    Ok(routes)
}

/// The channel's address as a route path.
pub(super) fn address(doc: &Document, channel: &Value, at: &str) -> Result<RoutePath, ConfigError> {
    let here = join_key(at, "address");
    match channel.get("address") {
        Some(v @ Value::String(_)) => {
            RoutePath::deserialize(v.clone()).map_err(|e| doc.error(&here, e.to_string()))
        }
        None | Some(Value::Null) => Err(doc.error(
            at,
            "a route's channel needs an `address`, the HTTP path it is streamed at",
        )),
        Some(other) => Err(doc.error(&here, format!("expected a path, not {}", show(other)))),
    }
}

/// A parameter's place in the message, which makes it a filter condition.
pub(super) struct Condition {
    on: Located,
    /// The parameter's name.
    param: String,
    /// The document path of its `location`.
    at: String,
}

enum Located {
    /// `$message.header#/NAME`: the record header NAME.
    Header(String),
    /// `$message.payload#POINTER`: the JSON value at POINTER.
    Value(String),
}

/// Checks the channel's `parameters` against its address (each `{name}`
/// described, nothing else described) and returns the conditions of those
/// located in the message.
pub(super) fn parameters(
    doc: &Document,
    channel: &Value,
    at: &str,
    path: &crate::codec::router::PathTemplate,
) -> Result<Vec<Condition>, ConfigError> {
    let declared = doc.entries(channel, "parameters", at)?;
    let mut conditions = Vec::new();
    for name in path.param_names() {
        let Some((_, p, p_at)) = declared.iter().find(|(n, _, _)| *n == name) else {
            let (blame, hint) = match channel.get("parameters") {
                None => (join_key(at, "address"), "the channel has no `parameters`"),
                Some(_) => (join_key(at, "parameters"), "add it"),
            };
            return Err(doc.error(
                &blame,
                format!("address parameter '{name}' has no entry in `parameters` ({hint})"),
            ));
        };
        let (p, p_at) = doc.resolve(p, p_at)?;
        let Some(location) = doc.string(p, "location", &p_at)? else {
            continue;
        };
        let loc_at = join_key(&p_at, "location");
        let on = if let Some(name) = location.strip_prefix("$message.header#/") {
            if name.is_empty() || name.contains('/') {
                return Err(doc.error(
                    &loc_at,
                    "a header location names one header: $message.header#/NAME",
                ));
            }
            Located::Header(name.replace("~1", "/").replace("~0", "~"))
        } else if let Some(pointer) = location.strip_prefix("$message.payload#") {
            if !(pointer.is_empty() || pointer.starts_with('/')) {
                return Err(doc.error(&loc_at, format!("'{pointer}' is not a JSON pointer")));
            }
            Located::Value(pointer.to_string())
        } else {
            return Err(doc.error(
                &loc_at,
                format!("'{location}': a route reads parameters located at $message.header#/NAME or $message.payload#/POINTER"),
            ));
        };
        conditions.push(Condition {
            on,
            param: name.to_string(),
            at: loc_at,
        });
    }
    if let Some((extra, _, extra_at)) = declared
        .iter()
        .find(|(n, _, _)| !path.param_names().any(|p| p == *n))
    {
        return Err(doc.error(
            extra_at,
            format!(
                "'{extra}' is not a parameter of the address '{}'",
                path.as_str()
            ),
        ));
    }
    Ok(conditions)
}

/// The route's topic and where it is written: the channel's Kafka binding
/// or `x-sse-kafka.topic`, one of them or both the same.
fn topic(
    doc: &Document,
    channel: &Value,
    at: &str,
    own: Option<TopicName>,
) -> Result<(TopicName, String), ConfigError> {
    let x_at = join_key(&join_key(at, "x-sse-kafka"), "topic");
    let mut bound = None;
    if let Some(bindings) = channel.get("bindings") {
        let (bindings, b_at) = doc.resolve(bindings, &join_key(at, "bindings"))?;
        if let Some(kafka) = bindings.get("kafka") {
            let (kafka, k_at) = doc.resolve(kafka, &join_key(&b_at, "kafka"))?;
            if let Some(t) = kafka.get("topic") {
                let t_at = join_key(&k_at, "topic");
                let name = TopicName::deserialize(t.clone())
                    .map_err(|e| doc.error(&t_at, e.to_string()))?;
                bound = Some((name, t_at));
            }
        }
    }
    match (bound, own) {
        (Some((b, _)), Some(x)) if b.0 != x.0 => Err(doc.error(
            &x_at,
            format!(
                "'{}' is not the channel's bindings.kafka.topic '{}'; write the topic once",
                x.0, b.0
            ),
        )),
        (Some(b), _) => Ok(b),
        (None, Some(x)) => Ok((x, x_at)),
        (None, None) => Err(doc.error(
            &join_key(at, "x-sse-kafka"),
            "no topic: set the channel's bindings.kafka.topic, or x-sse-kafka.topic",
        )),
    }
}

/// Adds each condition to every filter of the route, or makes it the one
/// filter of a route without.
pub(super) fn add_conditions(
    doc: &Document,
    route: &mut RawRoute,
    conditions: Vec<Condition>,
) -> Result<(), ConfigError> {
    if conditions.is_empty() {
        return Ok(());
    }
    let filters = route
        .filters
        .get_or_insert_with(|| vec![RawFilter::of(None, Vec::new())]);
    for c in conditions {
        let value = Template::parse(&format!("${{params.{}}}", c.param))
            .map_err(|e| doc.error(&c.at, e.to_string()))?;
        for f in filters.iter_mut() {
            match &c.on {
                Located::Header(name) => f.add_header(name, value.clone()),
                Located::Value(pointer) => f.add_value(pointer, value.clone()),
            }
            .map_err(|e| doc.error(&c.at, e))?;
        }
    }
    Ok(())
}
