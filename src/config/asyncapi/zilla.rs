//! Zilla's two-document form, so a Zilla user can bring the documents of
//! an `asyncapi` proxy binding: an SSE document and a Kafka document whose
//! operations are paired by name. An SSE operation (one with an
//! `x-zilla-sse` binding, or any operation of a document that has a server
//! of `protocol: sse`) streams the topic that is the address of its Kafka
//! partner's channel, which must be `action: receive`. Its
//! `x-zilla-sse-kafka.filters` (`key`, `headers`) become filters, with
//! Zilla's `{identity}` read as `${guard.identity}`; its `security` names
//! the guard (the scheme's name in `components.securitySchemes` is the
//! guard's in `guards:`), and the scheme's `scopes` are the route's roles.

use std::rc::Rc;

use serde::Deserialize;
use serde_yaml_ng::Value;

use super::channels::{add_conditions, address, parameters};
use super::document::{show, Document};
use super::{Declared, Origin, Place};
use crate::codec::filter::Template;
use crate::config::error::ConfigError;
use crate::config::filters::RawFilter;
use crate::config::guards::Roles;
use crate::config::keys::join_key;
use crate::config::raw::RawRouteSettings;
use crate::config::values::TopicName;

/// The routes the pair declares, in the order of the SSE document's
/// operations.
pub(super) fn declared(
    sse: &Rc<Document>,
    kafka: &Rc<Document>,
) -> Result<Vec<Declared>, ConfigError> {
    let sse_server = sse
        .entries(&sse.root, "servers", "")?
        .iter()
        .any(|(_, s, _)| s.get("protocol").and_then(Value::as_str) == Some("sse"));
    let partners = kafka.entries(&kafka.root, "operations", "")?;
    let mut routes = Vec::new();
    for (name, op, at) in sse.entries(&sse.root, "operations", "")? {
        let bindings = match op.get("bindings") {
            Some(b) => Some(sse.resolve(b, &join_key(&at, "bindings"))?),
            None => None,
        };
        let binding = |key: &str| {
            let (b, b_at) = bindings.as_ref()?;
            b.get(key).map(|v| (v, join_key(b_at, key)))
        };
        if binding("x-zilla-sse").is_none() && !sse_server {
            continue;
        }
        let Some((_, partner, partner_at)) = partners.iter().find(|(n, _, _)| *n == name) else {
            return Err(sse.error(
                &at,
                format!("no operation '{name}' in {} to pair with: the documents' operations are paired by name", kafka.file),
            ));
        };
        let action = kafka.string(partner, "action", partner_at)?;
        if action != Some("receive") {
            return Err(kafka.error(
                &join_key(partner_at, "action"),
                "a stream reads the topic: its Kafka operation's action is receive",
            ));
        }
        let (channel, channel_at) = operation_channel(sse, op, &at)?;
        let (k_channel, k_channel_at) = operation_channel(kafka, partner, partner_at)?;
        let path = address(sse, channel, &channel_at)?;
        let conditions = parameters(sse, channel, &channel_at, &path.0)?;
        let topic_at = join_key(&k_channel_at, "address");
        let topic = match k_channel.get("address") {
            Some(t @ Value::String(_)) => TopicName::deserialize(t.clone())
                .map_err(|e| kafka.error(&topic_at, e.to_string()))?,
            other => {
                return Err(kafka.error(
                    &topic_at,
                    format!(
                        "the Kafka channel's address is the topic, not {}",
                        other.map_or("absent", show)
                    ),
                ))
            }
        };

        // Everything else at its default, as an empty x-sse-kafka has it.
        let mut settings: RawRouteSettings =
            serde_yaml_ng::from_str("{}").expect("every route setting has a default");
        let filters_at = match binding("x-zilla-sse-kafka") {
            Some((v, v_at)) => {
                settings.filters = filters(sse, v, &v_at)?;
                join_key(&v_at, "filters")
            }
            None => conditions
                .first()
                .map_or(at.clone(), |_| join_key(&channel_at, "parameters")),
        };
        let security_at = join_key(&at, "security");
        (settings.guard, settings.roles) = guard(sse, op, &security_at)?;
        let mut route = settings.at(path, topic);
        add_conditions(sse, &mut route, conditions)?;
        let place = |doc: &Rc<Document>, at: String| Place {
            doc: Rc::clone(doc),
            at,
        };
        routes.push(Declared {
            route,
            origin: Origin {
                name: format!("{} {at}", sse.file),
                places: vec![
                    ("path", place(sse, join_key(&channel_at, "address"))),
                    ("topic", place(kafka, topic_at)),
                    ("filters", place(sse, filters_at)),
                    ("guard", place(sse, security_at.clone())),
                    ("roles", place(sse, security_at)),
                ],
                settings: place(sse, at),
            },
        });
    }
    Ok(routes)
}

/// The operation's channel and its path.
fn operation_channel<'a>(
    doc: &'a Document,
    op: &'a Value,
    at: &str,
) -> Result<(&'a Value, String), ConfigError> {
    match op.get("channel") {
        Some(c) => doc.resolve(c, &join_key(at, "channel")),
        None => Err(doc.error(
            at,
            "an operation needs its `channel` ($ref: '#/channels/NAME')",
        )),
    }
}

/// `x-zilla-sse-kafka.filters`: each a `key` and/or `headers` (name to
/// value), Zilla's `{identity}` standing for the guard's identity.
fn filters(
    doc: &Document,
    binding: &Value,
    at: &str,
) -> Result<Option<Vec<RawFilter>>, ConfigError> {
    let list_at = join_key(at, "filters");
    let list = match binding.get("filters") {
        None => return Ok(None),
        Some(Value::Sequence(list)) => list,
        Some(other) => {
            return Err(doc.error(
                &list_at,
                format!("expected a list of filters, not {}", show(other)),
            ))
        }
    };
    let mut filters = Vec::with_capacity(list.len());
    for (i, f) in list.iter().enumerate() {
        let f_at = format!("{list_at}[{i}]");
        let Value::Mapping(map) = f else {
            return Err(doc.error(
                &f_at,
                format!(
                    "a filter is a mapping with key and/or headers, not {}",
                    show(f)
                ),
            ));
        };
        if let Some(k) = map
            .keys()
            .find(|k| !matches!(k.as_str(), Some("key" | "headers")))
        {
            return Err(doc.error(
                &f_at,
                format!(
                    "unknown field {}, expected `key` or `headers`",
                    k.as_str()
                        .map_or("(not a string)".into(), |k| format!("`{k}`"))
                ),
            ));
        }
        let key = match doc.string(f, "key", &f_at)? {
            Some(k) => Some(template(doc, k, &join_key(&f_at, "key"))?),
            None => None,
        };
        let mut headers = Vec::new();
        for (name, v, v_at) in doc.entries(f, "headers", &f_at)? {
            let Some(text) = v.as_str() else {
                return Err(doc.error(&v_at, format!("expected a string, not {}", show(v))));
            };
            headers.push((name.to_string(), template(doc, text, &v_at)?));
        }
        filters.push(RawFilter::of(key, headers));
    }
    Ok(Some(filters))
}

/// A filter value, Zilla's `{identity}` read as `${guard.identity}`.
fn template(doc: &Document, text: &str, at: &str) -> Result<Template, ConfigError> {
    Template::parse(&text.replace("{identity}", "${guard.identity}"))
        .map_err(|e| doc.error(at, e.to_string()))
}

/// The guard the operation's `security` names, and the scheme's scopes
/// as the route's roles.
fn guard(
    doc: &Document,
    op: &Value,
    at: &str,
) -> Result<(Option<String>, Option<Roles>), ConfigError> {
    let list = match op.get("security") {
        None => return Ok((None, None)),
        Some(Value::Sequence(list)) => list,
        Some(other) => {
            return Err(doc.error(
                at,
                format!("expected a list of security schemes, not {}", show(other)),
            ))
        }
    };
    let scheme = match list.as_slice() {
        [] => return Ok((None, None)),
        [one] => one,
        _ => {
            return Err(doc.error(
                at,
                "one security scheme per route: it names the guard that checks its tokens",
            ))
        }
    };
    let item_at = format!("{at}[0]");
    let (scheme, scheme_at) = doc.resolve(scheme, &item_at)?;
    let Some(name) = scheme_at.strip_prefix("components.securitySchemes.") else {
        return Err(doc.error(
            &item_at,
            "name the scheme ($ref: '#/components/securitySchemes/NAME'): NAME is the guard in `guards:`",
        ));
    };
    let roles = match scheme.get("scopes") {
        None => None,
        Some(Value::Sequence(scopes)) if scopes.is_empty() => None,
        Some(Value::Sequence(scopes)) => {
            let scopes_at = join_key(&scheme_at, "scopes");
            let words = scopes
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| doc.error(&scopes_at, "scopes are strings"))?;
            Some(Roles::checked(words).map_err(|e| doc.error(&scopes_at, e))?)
        }
        Some(other) => {
            return Err(doc.error(
                &join_key(&scheme_at, "scopes"),
                format!("expected a list of scopes, not {}", show(other)),
            ))
        }
    };
    Ok((Some(name.to_string()), roles))
}
