//! The AsyncAPI 3.0 document of a config's routes: what an instance
//! exposes, for the official tooling (and people) to read. Each route is
//! a channel whose `address` is the route's path and whose `x-sse-kafka`
//! holds the route's settings exactly, and an operation (`action: send`:
//! the server sends, the client receives) with the HTTP binding of its
//! query. Given back as `asyncapi:`, the document declares the same routes.
//! The tree is built in document order (serde_yaml_ng's mapping keeps it)
//! and written as JSON or YAML from the same tree.

use serde_yaml_ng::{Mapping, Value};

use crate::codec::event_id::EventIdForm;
use crate::codec::filter::{FilterSpec, Source, Template, ValueSpec};
use crate::codec::router::PathTemplate;
use crate::config::model::{Config, ConfigKeyword, Guard, Route, ValueEncoding};

/// The two forms the document is served in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    /// The media type of the form (RFC 9512 for YAML).
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Yaml => "application/yaml",
        }
    }
}

impl Config {
    /// The AsyncAPI document of the routes, as text in `format`: what
    /// `serve_asyncapi` serves and `sse-kafka asyncapi` prints.
    pub fn asyncapi_document(&self, format: Format) -> String {
        document(self, format)
    }
}

fn document(config: &Config, format: Format) -> String {
    let tree = tree(config);
    match format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(&tree)
                .expect("a tree of strings, numbers and mappings");
            text.push('\n');
            text
        }
        Format::Yaml => {
            serde_yaml_ng::to_string(&tree).expect("a tree of strings, numbers and mappings")
        }
    }
}

/// A mapping of these entries, in this order.
fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Mapping(entries.into_iter().map(|(k, v)| (text(k), v)).collect())
}

fn text(s: &str) -> Value {
    Value::String(s.to_string())
}

fn list(items: impl IntoIterator<Item = Value>) -> Value {
    Value::Sequence(items.into_iter().collect())
}

fn reference(path: &str) -> Value {
    map([("$ref", text(path))])
}

/// Adds `key: value` to the mapping `m`.
fn put(m: &mut Value, key: &str, value: Value) {
    if let Value::Mapping(m) = m {
        m.insert(text(key), value);
    }
}

fn tree(config: &Config) -> Value {
    let ids = channel_ids(&config.routes);
    let mut channels = Mapping::new();
    let mut operations = Mapping::new();
    for (route, id) in config.routes.iter().zip(&ids) {
        channels.insert(text(id), channel(config, route));
        operations.insert(text(id), operation(config, route, id));
    }
    // The messages of records and tombstones, one per form a route uses,
    // then the proxy's own.
    let mut messages = Mapping::new();
    for r in &config.routes {
        messages
            .entry(text(&record_id(r)))
            .or_insert_with(|| record(r));
        messages
            .entry(text(&tombstone_id(r)))
            .or_insert_with(|| tombstone(r));
    }
    let guarded = config.routes.iter().any(|r| r.guard.is_some());
    if let Value::Mapping(control) = control_messages(guarded) {
        messages.extend(control);
    }
    let mut components = map([("messages", Value::Mapping(messages))]);
    let mut schemes = Mapping::new();
    for (i, g) in config.guards.iter().enumerate() {
        if config.routes.iter().any(|r| r.guard == Some(i)) {
            for (name, scheme) in security_schemes(g) {
                schemes.insert(text(&name), scheme);
            }
        }
    }
    if !schemes.is_empty() {
        put(&mut components, "securitySchemes", Value::Mapping(schemes));
    }
    map([
        ("asyncapi", text("3.0.0")),
        (
            "info",
            map([
                ("title", text("sse-kafka")),
                ("version", text(env!("CARGO_PKG_VERSION"))),
                ("description", text(INFO)),
            ]),
        ),
        ("servers", map([("sse-kafka", server(config))])),
        ("defaultContentType", text("text/plain")),
        ("channels", Value::Mapping(channels)),
        ("operations", Value::Mapping(operations)),
        ("components", components),
    ])
}

const INFO: &str =
    "Kafka topics streamed as Server-Sent Events (text/event-stream) over HTTP/1.1 GET. \
Each record is an event whose id resumes the stream exactly where it was, on any instance: \
EventSource sends it back as Last-Event-ID when it reconnects.";

/// The instance as clients reach it: `public_url`, else `listen`.
fn server(config: &Config) -> Value {
    let (scheme, host, path) = match &config.public_url {
        Some(u) => (u.scheme.as_str(), u.host.clone(), u.path.as_str()),
        None => ("http", config.listen.to_string(), ""),
    };
    let mut server = map([
        ("host", text(&host)),
        ("protocol", text(scheme)),
        ("protocolVersion", text("1.1")),
    ]);
    if !path.is_empty() {
        put(&mut server, "pathname", text(path));
    }
    server
}

/// A channel id per route, from its path (`/items/{id}`: `items.id`),
/// made distinct.
fn channel_ids(routes: &[Route]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::with_capacity(routes.len());
    for r in routes {
        let base: String = r
            .path
            .trim_start_matches('/')
            .split('/')
            .map(|seg| {
                seg.trim_start_matches('{')
                    .trim_end_matches('}')
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join(".");
        let base = if base.trim_matches('.').is_empty() {
            "root".to_string()
        } else {
            base
        };
        let mut id = base.clone();
        let mut n = 2;
        while ids.contains(&id) {
            id = format!("{base}-{n}");
            n += 1;
        }
        ids.push(id);
    }
    ids
}

fn channel(config: &Config, r: &Route) -> Value {
    let mut c = map([
        ("address", text(&r.path)),
        ("title", text(&format!("GET {}", r.path))),
        ("description", text(&describe(config, r))),
    ]);
    let template = PathTemplate::parse(&r.path).expect("route paths are validated with the config");
    let params: Mapping = template
        .param_names()
        .map(|name| {
            (
                text(name),
                map([("description", text(&parameter(r, name)))]),
            )
        })
        .collect();
    if !params.is_empty() {
        put(&mut c, "parameters", Value::Mapping(params));
    }
    let (record, tombstone) = (record_id(r), tombstone_id(r));
    let mut messages = map([
        (
            "message",
            reference(&format!("#/components/messages/{record}")),
        ),
        (
            "delete",
            reference(&format!("#/components/messages/{tombstone}")),
        ),
    ]);
    for name in control_names(r) {
        put(
            &mut messages,
            name,
            reference(&format!("#/components/messages/{name}")),
        );
    }
    put(&mut c, "messages", messages);
    if r.topic_template.is_none() {
        put(
            &mut c,
            "bindings",
            map([(
                "kafka",
                map([("topic", text(&r.topic)), ("bindingVersion", text("0.5.0"))]),
            )]),
        );
    }
    put(&mut c, "x-sse-kafka", settings(config, r));
    c
}

/// What a route streams, in words.
fn describe(config: &Config, r: &Route) -> String {
    let mut out = match &r.topic_template {
        None => format!("The records of Kafka topic `{}`", r.topic),
        Some(_) => format!(
            "The records of the Kafka topic `{}` names (one of `{}`)",
            r.topic,
            r.topics.join("`, `")
        ),
    };
    if !r.filters.is_empty() {
        out.push_str(" that match one of its filters (see x-sse-kafka)");
    }
    out.push_str(match r.start.keyword() {
        "earliest" => "; a new client starts at the oldest record Kafka holds",
        _ => "; a new client starts with the records produced after it connected",
    });
    out.push_str(" (`?since=` starts at a time, `Last-Event-ID` resumes).");
    if let Some(g) = r.guard {
        out.push_str(&format!(" Guarded by `{}`", config.guards[g].name));
        if !r.roles.is_empty() {
            out.push_str(&format!(
                ": the token must hold the roles {}",
                r.roles.join(", ")
            ));
        }
        out.push('.');
    }
    out
}

/// What path parameter `name` selects.
fn parameter(r: &Route, name: &str) -> String {
    let uses = |t: &Template| {
        t.substitutions()
            .any(|(source, n)| source == Source::Params && n == name)
    };
    let mut what: Vec<String> = Vec::new();
    if r.topic_template.as_ref().is_some_and(uses) {
        what.push(format!(
            "the Kafka topic (one of `{}`)",
            r.topics.join("`, `")
        ));
    }
    for (j, f) in r.filters.iter().enumerate() {
        let n = j + 1;
        if f.key.as_ref().is_some_and(uses) {
            what.push(format!("the record key (filter {n})"));
        }
        for (header, t) in &f.headers {
            if uses(t) {
                what.push(format!("record header `{header}` (filter {n})"));
            }
        }
        for (pointer, v) in &f.value {
            if matches!(v, ValueSpec::Text(t) if uses(t)) {
                what.push(format!("the JSON value at `{pointer}` (filter {n})"));
            }
        }
    }
    if what.is_empty() {
        return "A path segment that selects nothing by itself.".to_string();
    }
    format!("Selects {}.", what.join(" and "))
}

/// The `id:` of a record's event, in words.
fn id_description(r: &Route) -> String {
    let form = match r.event_id {
        EventIdForm::Progress => "It encodes the next offset of every partition the stream has passed",
        EventIdForm::KeyAndProgress => {
            "It is the JSON array [\"<base64url of the record key>\", \"<progress>\"] (Zilla's form); the progress encodes the next offset of every partition the stream has passed"
        }
    };
    format!(
        "Opaque: resume with it as Last-Event-ID (EventSource sends it when it reconnects) or ?lastEventId=, on any instance. {form}."
    )
}

/// The SSE fields of a record's event besides `data`.
fn fields(r: &Route, event: Option<&str>) -> Value {
    let mut properties = map([(
        "id",
        map([
            ("type", text("string")),
            ("description", text(&id_description(r))),
        ]),
    )]);
    if let Some(event) = event {
        put(
            &mut properties,
            "event",
            map([("type", text("string")), ("const", text(event))]),
        );
    }
    map([("type", text("object")), ("properties", properties)])
}

/// The component name of a route's record message: by value encoding
/// and id form.
fn record_id(r: &Route) -> String {
    let mut id = String::from("record");
    if r.value == ValueEncoding::Base64 {
        id.push_str("-base64");
    }
    if r.event_id == EventIdForm::KeyAndProgress {
        id.push_str("-keyed");
    }
    id
}

/// The component name of a route's tombstone message: by id form.
fn tombstone_id(r: &Route) -> String {
    match r.event_id {
        EventIdForm::Progress => "delete".to_string(),
        EventIdForm::KeyAndProgress => "delete-keyed".to_string(),
    }
}

fn record(r: &Route) -> Value {
    let (content_type, payload) = match r.value {
        ValueEncoding::Text => (
            "text/plain",
            map([
                ("type", text("string")),
                (
                    "description",
                    text("The record's value as text; each line of it is a data: line."),
                ),
            ]),
        ),
        ValueEncoding::Base64 => (
            "text/plain",
            map([
                ("type", text("string")),
                ("contentEncoding", text("base64")),
                ("description", text("The record's value, base64.")),
            ]),
        ),
    };
    map([
        ("name", text("message")),
        ("title", text("A record")),
        (
            "summary",
            text("A Kafka record: its value is the data (event type message, the default)."),
        ),
        ("contentType", text(content_type)),
        ("headers", fields(r, None)),
        ("payload", payload),
    ])
}

fn tombstone(r: &Route) -> Value {
    map([
        ("name", text("delete")),
        ("title", text("A tombstone")),
        ("summary", text("A record without a value: its key is deleted.")),
        ("contentType", text("text/plain")),
        ("headers", fields(r, Some("delete"))),
        ("payload", map([
            ("type", text("string")),
            ("description", text("The record's key, base64url without padding; empty for a record without a key.")),
        ])),
    ])
}

/// The proxy's own events a route's streams may carry.
fn control_names(r: &Route) -> impl Iterator<Item = &'static str> {
    ["reset", "gap", "error"]
        .into_iter()
        .chain(r.guard.is_some().then_some("challenge"))
}

fn control_messages(guarded: bool) -> Value {
    let integer = |description: &str| {
        map([
            ("type", text("integer")),
            ("description", text(description)),
        ])
    };
    let string =
        |description: &str| map([("type", text("string")), ("description", text(description))]);
    let object = |properties: Value, required: &[&str]| {
        map([
            ("type", text("object")),
            ("properties", properties),
            ("required", list(required.iter().map(|r| text(r)))),
        ])
    };
    let message = |name: &str, summary: &str, payload: Value| {
        map([
            ("name", text(name)),
            ("title", text(&format!("event:{name}"))),
            ("summary", text(summary)),
            ("contentType", text("application/json")),
            (
                "headers",
                map([
                    ("type", text("object")),
                    (
                        "properties",
                        map([(
                            "event",
                            map([("type", text("string")), ("const", text(name))]),
                        )]),
                    ),
                ]),
            ),
            ("payload", payload),
        ])
    };
    let reason = || object(map([("reason", string("Why, in words."))]), &["reason"]);
    let mut messages = map([
        ("reset", message(
            "reset",
            "The Last-Event-ID could not be used (malformed, or of another topic): the stream starts as if there were none.",
            reason(),
        )),
        ("gap", message(
            "gap",
            "Kafka no longer holds records the stream asked for (or could not decode them): it resumes at the next it has.",
            object(map([
                ("partition", integer("The partition.")),
                ("requested", integer("The offset asked for.")),
                ("resumed_at", integer("The offset the stream goes on from.")),
                ("reason", string("Set when the records were there but could not be decoded.")),
            ]), &["partition", "requested", "resumed_at"]),
        )),
        ("error", message(
            "error",
            "The stream ends (the topic is unavailable, the client fell too far behind, its token expired, the server shuts down): reconnect with the last id.",
            reason(),
        )),
    ]);
    if guarded {
        put(&mut messages, "challenge", message(
            "challenge",
            "The stream's token expires soon: open a new stream with a fresh token and the last id before it does.",
            object(map([
                ("expires_at", integer("When the token expires, in seconds since the epoch.")),
                ("expires_in", integer("Seconds until then.")),
            ]), &["expires_at", "expires_in"]),
        ));
    }
    messages
}

/// The route's settings as a YAML route writes them, without its path.
fn settings(config: &Config, r: &Route) -> Value {
    let mut s = map([("topic", text(&r.topic))]);
    if !r.topics.is_empty() {
        put(&mut s, "topics", list(r.topics.iter().map(|t| text(t))));
    }
    put(&mut s, "start", text(r.start.keyword()));
    put(&mut s, "value", text(r.value.keyword()));
    put(&mut s, "event_id", text(r.event_id.keyword()));
    if let Some(k) = r.keepalive {
        put(
            &mut s,
            "keepalive",
            text(&humantime::format_duration(k).to_string()),
        );
    }
    if !r.filters.is_empty() {
        put(&mut s, "filters", list(r.filters.iter().map(filter)));
    }
    if let Some(p) = r.partitioner {
        put(&mut s, "partitioner", text(p.keyword()));
    }
    if let Some(g) = r.guard {
        put(&mut s, "guard", text(&config.guards[g].name));
        if !r.roles.is_empty() {
            put(&mut s, "roles", list(r.roles.iter().map(|role| text(role))));
        }
    }
    s
}

fn filter(f: &FilterSpec) -> Value {
    let mut out = Value::Mapping(Mapping::new());
    if let Some(key) = &f.key {
        put(&mut out, "key", text(&key.to_string()));
    }
    if !f.headers.is_empty() {
        let headers = f
            .headers
            .iter()
            .map(|(name, t)| (text(name), text(&t.to_string())));
        put(&mut out, "headers", Value::Mapping(headers.collect()));
    }
    if !f.value.is_empty() {
        let value = f.value.iter().map(|(pointer, spec)| {
            let v = match spec {
                ValueSpec::Text(t) => text(&t.to_string()),
                // The JSON text of a number, boolean or null is that YAML value.
                ValueSpec::Literal(json) => {
                    serde_yaml_ng::from_str(json).unwrap_or_else(|_| text(json))
                }
            };
            (text(pointer), v)
        });
        put(&mut out, "value", Value::Mapping(value.collect()));
    }
    out
}

/// The query a route's streams read: resume and start, its `${query.*}`
/// substitutions (required), the token on guarded routes.
fn query(r: &Route) -> Value {
    let mut properties = map([
        ("lastEventId", map([
            ("type", text("string")),
            ("description", text("Resume after this event id, when there is no Last-Event-ID header.")),
        ])),
        ("since", map([
            ("type", text("string")),
            ("description", text("Without an id: start at the first record of this time or later, RFC 3339 (2026-11-28T09:00:00Z) or milliseconds since the epoch.")),
        ])),
    ]);
    let mut required: Vec<String> = Vec::new();
    let templates =
        r.topic_template
            .iter()
            .chain(r.filters.iter().flat_map(|f| {
                f.key.iter().chain(f.headers.iter().map(|(_, t)| t)).chain(
                    f.value.iter().filter_map(|(_, v)| match v {
                        ValueSpec::Text(t) => Some(t),
                        ValueSpec::Literal(_) => None,
                    }),
                )
            }));
    for t in templates {
        for (source, name) in t.substitutions() {
            if source == Source::Query && !required.iter().any(|n| n == name) {
                required.push(name.to_string());
                put(
                    &mut properties,
                    name,
                    map([
                        ("type", text("string")),
                        (
                            "description",
                            text("Substituted into the route's topic or filters."),
                        ),
                    ]),
                );
            }
        }
    }
    if r.guard.is_some() {
        put(&mut properties, "access_token", map([
            ("type", text("string")),
            ("description", text("The JWT, for clients that cannot send an Authorization header (EventSource).")),
        ]));
    }
    let mut schema = map([("type", text("object")), ("properties", properties)]);
    if !required.is_empty() {
        put(
            &mut schema,
            "required",
            list(required.iter().map(|n| text(n))),
        );
    }
    schema
}

fn operation(config: &Config, r: &Route, id: &str) -> Value {
    let channel = format!("#/channels/{id}");
    let mut messages = vec![
        reference(&format!("{channel}/messages/message")),
        reference(&format!("{channel}/messages/delete")),
    ];
    messages.extend(control_names(r).map(|name| reference(&format!("{channel}/messages/{name}"))));
    let mut op = map([
        ("action", text("send")),
        ("channel", reference(&channel)),
        ("title", text(&format!("GET {}", r.path))),
        (
            "summary",
            text(&format!(
                "Streams the records of topic {} as Server-Sent Events.",
                r.topic
            )),
        ),
        ("messages", list(messages)),
        (
            "bindings",
            map([(
                "http",
                map([
                    ("method", text("GET")),
                    ("query", query(r)),
                    ("bindingVersion", text("0.3.0")),
                ]),
            )]),
        ),
    ]);
    if let Some(g) = r.guard {
        let guard = &config.guards[g];
        let mut needs = format!("A token that guard `{}` verifies", guard.name);
        if !r.roles.is_empty() {
            needs.push_str(&format!(", holding the roles {}", r.roles.join(", ")));
        }
        needs.push_str(", by any of the security schemes.");
        put(&mut op, "description", text(&needs));
        let schemes = security_schemes(guard)
            .into_iter()
            .map(|(name, _)| reference(&format!("#/components/securitySchemes/{name}")));
        put(&mut op, "security", list(schemes));
    }
    op
}

/// A guard's ways of presenting its token, by scheme name.
fn security_schemes(g: &Guard) -> Vec<(String, Value)> {
    let mut about = format!("A JWT that guard `{}` verifies", g.name);
    if !g.issuers.is_empty() {
        about.push_str(&format!(", issued by {}", g.issuers.join(" or ")));
    }
    if !g.audiences.is_empty() {
        about.push_str(&format!(", for {}", g.audiences.join(" or ")));
    }
    about.push_str(&format!("; its roles are in claim `{}`", g.roles_claim));
    let mut schemes = vec![
        (
            format!("{}-bearer", g.name),
            map([
                ("type", text("http")),
                ("scheme", text("bearer")),
                ("bearerFormat", text("JWT")),
                (
                    "description",
                    text(&format!("{about}, in Authorization: Bearer.")),
                ),
            ]),
        ),
        (
            format!("{}-query", g.name),
            map([
                ("type", text("httpApiKey")),
                ("name", text("access_token")),
                ("in", text("query")),
                (
                    "description",
                    text(&format!(
                        "{about}, in ?access_token= (what EventSource can send)."
                    )),
                ),
            ]),
        ),
    ];
    if let Some(cookie) = &g.cookie {
        schemes.push((
            format!("{}-cookie", g.name),
            map([
                ("type", text("httpApiKey")),
                ("name", text(cookie)),
                ("in", text("cookie")),
                (
                    "description",
                    text(&format!("{about}, in cookie {cookie}.")),
                ),
            ]),
        ));
    }
    schemes
}
