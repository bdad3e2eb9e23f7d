//! Routes declared in AsyncAPI documents, read from files beside the
//! config as the proxy reads them: what they declare, where each mistake
//! is named (document, line, document path), and the round trip of the
//! document a config's routes make.

use std::path::Path;

use crate::codec::filter::ValueSpec;
use crate::config::{load, Config, ConfigError, DocumentFormat};

/// The config's first lines: a broker, and a guard `jwt0` whose secret
/// is in `hs.key`.
const HEAD: &str = "kafka:\n  bootstrap: [\"127.0.0.1:9092\"]\nguards:\n  jwt0:\n    secret: {file: hs.key}\n    issuer: i\n    audience: a\n";

/// Writes `config` (after [`HEAD`]) and the documents into a new
/// directory and loads the config.
fn load_in(config: &str, docs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hs.key"),
        "0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    for (name, text) in docs {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let path = dir.path().join("sse-kafka.yaml");
    std::fs::write(&path, format!("{HEAD}{config}")).unwrap();
    load(&path)
}

/// A document with one channel `items` and its operation `stream`;
/// `channel` is added to the channel (4-space indent).
fn doc_with(channel: &str) -> String {
    format!(
        "asyncapi: 3.0.0\ninfo: {{title: t, version: '1'}}\nchannels:\n  items:\n    address: /items\n{channel}operations:\n  stream:\n    action: send\n    channel: {{$ref: '#/channels/items'}}\n"
    )
}

/// (what, the channel's extra lines, line, document path, start of the message)
type Case = (
    &'static str,
    &'static str,
    usize,
    &'static str,
    &'static str,
);

fn assert_doc_errors(cases: &[Case]) {
    for (what, channel, line, at, message) in cases {
        let err = match load_in("asyncapi: api.yaml\n", &[("api.yaml", &doc_with(channel))]) {
            Ok(_) => panic!("{what}: loaded, but should fail"),
            Err(e) => e,
        };
        assert!(Path::new(&err.file).ends_with("api.yaml"), "{what}: {err}");
        assert_eq!(
            (err.line, err.field.as_str()),
            (*line, *at),
            "{what}: {err}"
        );
        assert!(err.message.starts_with(message), "{what}: {err}");
    }
}

#[test]
fn a_channel_with_x_sse_kafka_is_a_route() {
    let doc = "asyncapi: 3.0.0\ninfo: {title: t, version: '1'}\nchannels:\n  byKey:\n    $ref: '#/components/channels/byKey'\n  plain:\n    address: /plain\n    bindings: {kafka: {topic: items}}\n    x-sse-kafka: {start: earliest, keepalive: 5s}\n  other:\n    address: /not-a-route\noperations:\n  a:\n    action: send\n    channel: {$ref: '#/channels/byKey'}\n  b:\n    action: receive\n    channel: {$ref: '#/channels/plain'}\n  c:\n    action: send\n    channel: {$ref: '#/channels/other'}\ncomponents:\n  channels:\n    byKey:\n      address: /items/{id}/{tag}/{status}\n      parameters:\n        id: {description: the key}\n        tag: {location: '$message.header#/tag'}\n        status: {$ref: '#/components/parameters/status'}\n      x-sse-kafka:\n        topic: items\n        filters:\n          - key: ${params.id}\n          - key: other\n  parameters:\n    status: {location: '$message.payload#/order/status'}\n";
    let c = load_in(
        "routes: [{path: /yaml, topic: y}]\nasyncapi: [api.yaml]\n",
        &[("api.yaml", doc)],
    )
    .unwrap();
    assert_eq!(
        c.describe_routes(),
        "GET /yaml -> topic y (start live, value text, id progress)\n\
         GET /items/{id}/{tag}/{status} -> topic items (start live, value text, id progress) filters: [key=${params.id}, header tag=${params.tag}, value /order/status=\"${params.status}\"] or [key=other, header tag=${params.tag}, value /order/status=\"${params.status}\"]\n\
         GET /plain -> topic items (start earliest, value text, id progress) keepalive 5s\n"
    );
    let f = &c.routes[1].filters[1];
    assert!(matches!(&f.value[0].1, ValueSpec::Text(t) if t.to_string() == "${params.status}"));
}

#[test]
fn a_parameter_in_the_message_alone_makes_the_one_filter() {
    let doc = doc_with("    bindings: {kafka: {topic: t}}\n    x-sse-kafka: {}\n").replace(
        "address: /items\n",
        "address: /items/{tag}\n    parameters:\n      tag: {location: '$message.header#/tag'}\n",
    );
    let c = load_in("asyncapi: api.yaml\n", &[("api.yaml", &doc)]).unwrap();
    assert_eq!(
        c.describe_routes(),
        "GET /items/{tag} -> topic t (start live, value text, id progress) filters: [header tag=${params.tag}]\n"
    );
}

#[test]
fn mistakes_in_a_document_name_its_place() {
    assert_doc_errors(&[
        (
            "unknown setting",
            "    x-sse-kafka: {topic: t, strat: live}\n",
            6,
            "channels.items.x-sse-kafka.strat",
            "unknown field `strat`",
        ),
        (
            "bad start",
            "    x-sse-kafka:\n      topic: t\n      start: soon\n",
            8,
            "channels.items.x-sse-kafka.start",
            "unknown start 'soon'",
        ),
        (
            "a path in x-sse-kafka",
            "    x-sse-kafka:\n      topic: t\n      path: /x\n",
            8,
            "channels.items.x-sse-kafka.path",
            "the channel's `address` is the route's path",
        ),
        (
            "no topic",
            "    x-sse-kafka: {start: live}\n",
            6,
            "channels.items.x-sse-kafka",
            "no topic: set the channel's bindings.kafka.topic",
        ),
        (
            "two topics",
            "    bindings: {kafka: {topic: a}}\n    x-sse-kafka: {topic: b}\n",
            7,
            "channels.items.x-sse-kafka.topic",
            "'b' is not the channel's bindings.kafka.topic 'a'",
        ),
        (
            "a bad binding topic",
            "    bindings:\n      kafka:\n        topic: 'a b'\n    x-sse-kafka: {}\n",
            8,
            "channels.items.bindings.kafka.topic",
            "invalid topic name 'a b'",
        ),
        (
            "an unknown guard",
            "    x-sse-kafka:\n      topic: t\n      guard: jwt9\n",
            8,
            "channels.items.x-sse-kafka.guard",
            "no guard 'jwt9' (guards: jwt0)",
        ),
        (
            "an unknown path parameter",
            "    x-sse-kafka:\n      topic: t\n      filters:\n        - key: ${params.nope}\n",
            9,
            "channels.items.x-sse-kafka.filters[0].key",
            "path '/items' has no parameter 'nope'",
        ),
        (
            "a template without topics",
            "    x-sse-kafka:\n      topic: a.${query.t}\n",
            7,
            "channels.items.x-sse-kafka.topic",
            "a topic with substitutions needs `topics:`",
        ),
        (
            "a parameter the address lacks",
            "    parameters:\n      extra: {description: x}\n    x-sse-kafka: {topic: t}\n",
            7,
            "channels.items.parameters.extra",
            "'extra' is not a parameter of the address '/items'",
        ),
        (
            "x-sse-kafka null",
            "    x-sse-kafka:\n",
            6,
            "channels.items.x-sse-kafka",
            "x-sse-kafka is a mapping of route settings",
        ),
    ]);
}

#[test]
fn mistakes_in_addresses_and_parameters() {
    let cases: [(&str, &str, usize, &str, &str); 5] = [
        ("no parameters at all", "address: /items/{id}\n    x-sse-kafka: {topic: t}\n",
            5, "channels.items.address", "address parameter 'id' has no entry in `parameters` (the channel has no `parameters`)"),
        ("parameters without it", "address: /items/{id}\n    parameters: {other: {}}\n    x-sse-kafka: {topic: t}\n",
            6, "channels.items.parameters", "address parameter 'id' has no entry in `parameters` (add it)"),
        ("a location elsewhere", "address: /items/{id}\n    parameters:\n      id: {location: '$message.id'}\n    x-sse-kafka: {topic: t}\n",
            7, "channels.items.parameters.id.location", "'$message.id': a route reads parameters located at"),
        ("a bad address", "address: items\n    x-sse-kafka: {topic: t}\n",
            5, "channels.items.address", "route path 'items' must start with '/'"),
        ("a null address", "address: null\n    x-sse-kafka: {topic: t}\n",
            4, "channels.items", "a route's channel needs an `address`"),
    ];
    for (what, replaced, line, at, message) in cases {
        let doc = doc_with("").replace("address: /items\n", replaced);
        let err = load_in("asyncapi: api.yaml\n", &[("api.yaml", &doc)])
            .err()
            .unwrap_or_else(|| panic!("{what}: loaded"));
        assert_eq!((err.line, err.field.as_str()), (line, at), "{what}: {err}");
        assert!(err.message.starts_with(message), "{what}: {err}");
    }
}

#[test]
fn a_path_is_declared_once() {
    // Two operations on one channel.
    let doc = format!(
        "{}  again:\n    action: send\n    channel: {{$ref: '#/channels/items'}}\n",
        doc_with("    x-sse-kafka: {topic: t}\n")
    );
    let err = load_in("asyncapi: api.yaml\n", &[("api.yaml", &doc)]).unwrap_err();
    assert_eq!(
        (err.line, err.field.as_str()),
        (13, "operations.again.channel"),
        "{err}"
    );
    assert!(
        err.message
            .starts_with("channels.items is the route of operations.stream already"),
        "{err}"
    );
    // A YAML route and a channel with one path.
    let err = load_in(
        "routes: [{path: /items, topic: t}]\nasyncapi: api.yaml\n",
        &[("api.yaml", &doc_with("    x-sse-kafka: {topic: t}\n"))],
    )
    .unwrap_err();
    assert!(err.file.ends_with("api.yaml"), "{err}");
    assert_eq!(
        (err.line, err.field.as_str()),
        (5, "channels.items.address"),
        "{err}"
    );
    assert_eq!(
        err.message,
        "duplicate route path '/items' (already used by routes[0])"
    );
    // Two documents with one path: the second names the first.
    let err = load_in(
        "asyncapi: [a.yaml, b.yaml]\n",
        &[
            ("a.yaml", &doc_with("    x-sse-kafka: {topic: t}\n")),
            ("b.yaml", &doc_with("    x-sse-kafka: {topic: u}\n")),
        ],
    )
    .unwrap_err();
    assert!(err.file.ends_with("b.yaml"), "{err}");
    assert!(err.message.contains("a.yaml channels.items"), "{err}");
}

#[test]
fn documents_that_declare_nothing_or_cannot_be_read() {
    // A channel with x-sse-kafka that no operation uses.
    let doc =
        "asyncapi: 3.0.0\nchannels:\n  items:\n    address: /items\n    x-sse-kafka: {topic: t}\n";
    let err = load_in("asyncapi: api.yaml\n", &[("api.yaml", doc)]).unwrap_err();
    assert_eq!(
        (err.line, err.field.as_str()),
        (5, "channels.items.x-sse-kafka"),
        "{err}"
    );
    assert!(
        err.message.starts_with("no operation uses this channel"),
        "{err}"
    );
    // Operations, but none on a route's channel.
    let err = load_in("asyncapi: api.yaml\n", &[("api.yaml", &doc_with(""))]).unwrap_err();
    assert_eq!(err.field, "-", "{err}");
    assert!(
        err.message
            .starts_with("declares no route: no operation's channel carries x-sse-kafka"),
        "{err}"
    );
    // A file that is not there is the config's entry's fault.
    let err = load_in("asyncapi:\n  - api.yaml\n", &[]).unwrap_err();
    assert!(err.file.ends_with("sse-kafka.yaml"), "{err}");
    assert_eq!((err.line, err.field.as_str()), (9, "asyncapi[0]"), "{err}");
    assert!(
        err.message.starts_with("cannot read the AsyncAPI document"),
        "{err}"
    );
    // Neither routes nor documents.
    let err = load_in("", &[]).unwrap_err();
    assert_eq!(err.field, "routes", "{err}");
    assert!(err.message.starts_with("missing field `routes`"), "{err}");
}

/// Zilla's form: the SSE document's operation `events` on `/events/{id}`.
fn zilla_sse(operation: &str) -> String {
    format!("asyncapi: 3.0.0\ninfo: {{title: s, version: '1'}}\nchannels:\n  events:\n    address: /events/{{id}}\n    parameters: {{id: {{}}}}\noperations:\n  events:\n    action: receive\n    channel: {{$ref: '#/channels/events'}}\n{operation}components:\n  securitySchemes:\n    jwt0: {{type: openIdConnect, openIdConnectUrl: 'https://i/.well-known/openid-configuration', scopes: [read]}}\n")
}

const ZILLA_KAFKA: &str = "asyncapi: 3.0.0\ninfo: {title: k, version: '1'}\nchannels:\n  events:\n    address: events\noperations:\n  events:\n    action: receive\n    channel: {$ref: '#/channels/events'}\n";

fn load_zilla(sse: &str, kafka: &str) -> Result<Config, ConfigError> {
    load_in(
        "asyncapi:\n  - sse: sse.yaml\n    kafka: kafka.yaml\n",
        &[("sse.yaml", sse), ("kafka.yaml", kafka)],
    )
}

#[test]
fn zillas_pair_of_documents() {
    let sse = zilla_sse("    bindings:\n      x-zilla-sse: {}\n      x-zilla-sse-kafka:\n        filters:\n          - key: '{identity}'\n            headers: {tag: x}\n    security:\n      - $ref: '#/components/securitySchemes/jwt0'\n");
    let c = load_zilla(&sse, ZILLA_KAFKA).unwrap();
    assert_eq!(
        c.describe_routes(),
        "GET /events/{id} -> topic events (start live, value text, id progress) filters: [key=${guard.identity}, header tag=x] guard jwt0 roles read\n"
    );
}

#[test]
fn mistakes_in_zillas_pair() {
    let bound = "    bindings:\n      x-zilla-sse: {}\n";
    let cases = [
        ("no partner", zilla_sse(bound), ZILLA_KAFKA.replace("  events:\n    action", "  other:\n    action"),
            "sse.yaml", 8, "operations.events", "no operation 'events' in "),
        ("a partner that sends", zilla_sse(bound), ZILLA_KAFKA.replace("action: receive", "action: send"),
            "kafka.yaml", 8, "operations.events.action", "a stream reads the topic"),
        ("a bad topic", zilla_sse(bound), ZILLA_KAFKA.replace("address: events", "address: 'e v'"),
            "kafka.yaml", 5, "channels.events.address", "invalid topic name 'e v'"),
        ("identity without a guard",
            zilla_sse("    bindings:\n      x-zilla-sse: {}\n      x-zilla-sse-kafka:\n        filters:\n          - key: '{identity}'\n"),
            ZILLA_KAFKA.to_string(),
            "sse.yaml", 15, "operations.events.bindings.x-zilla-sse-kafka.filters[0]", "${guard.identity} needs a guard on this route"),
        ("an unknown guard", zilla_sse(bound).replace("    jwt0: {", "    other: {").replace("x-zilla-sse: {}\n", "x-zilla-sse: {}\n    security: [{$ref: '#/components/securitySchemes/other'}]\n"),
            ZILLA_KAFKA.to_string(),
            "sse.yaml", 13, "operations.events.security", "no guard 'other' (guards: jwt0)"),
        ("no SSE operation", zilla_sse(""), ZILLA_KAFKA.to_string(),
            "sse.yaml", 0, "-", "declares no route: no SSE operation"),
    ];
    for (what, sse, kafka, file, line, at, message) in cases {
        let err = load_zilla(&sse, &kafka)
            .err()
            .unwrap_or_else(|| panic!("{what}: loaded"));
        assert!(err.file.ends_with(file), "{what}: {err}");
        assert_eq!((err.line, err.field.as_str()), (line, at), "{what}: {err}");
        assert!(err.message.starts_with(message), "{what}: {err}");
    }
}

/// Routes of every kind, for the document of them.
const ROUTES: &str = "cors: {allow_origins: [\"https://a.example\"]}\nserve_asyncapi: /asyncapi\npublic_url: https://events.example.com/sse/\nroutes:\n  - path: /items\n    topic: items\n    start: earliest\n  - path: /items/{id}\n    topic: items\n    partitioner: murmur2\n    filters:\n      - key: ${params.id}\n      - headers: {alias: \"${params.id}\"}\n  - path: /search\n    topic: items\n    value: base64\n    event_id: key-and-progress\n    keepalive: 5s\n    filters:\n      - headers: {tag: \"${query.tag}\"}\n        value: {\"/n\": 5, \"/s\": open, \"/b\": true, \"/z\": null, \"/f\": 2.5}\n  - path: /t/{topic}\n    topic: public.${params.topic}\n    topics: [\"public.*\", \"shared.?\"]\n  - path: /orders\n    topic: orders\n    guard: jwt0\n    roles: [\"orders:read\", admin]\n    filters:\n      - key: ${guard.identity}\n";

#[test]
fn the_document_of_the_routes_declares_them_again() {
    let c = load_in(ROUTES, &[]).unwrap();
    for format in [DocumentFormat::Yaml, DocumentFormat::Json] {
        let doc = c.asyncapi_document(format);
        let again = load_in("asyncapi: served.txt\n", &[("served.txt", &doc)])
            .unwrap_or_else(|e| panic!("{format:?}: {e}\n{doc}"));
        assert_eq!(again.describe_routes(), c.describe_routes(), "{format:?}");
        // And its document is the same bytes.
        let with_serving = "cors: {allow_origins: [\"https://a.example\"]}\nserve_asyncapi: /asyncapi\npublic_url: https://events.example.com/sse/\nasyncapi: served.txt\n";
        let again = load_in(with_serving, &[("served.txt", &doc)]).unwrap();
        assert_eq!(again.asyncapi_document(format), doc, "{format:?}");
    }
}

#[test]
fn the_document_says_what_each_route_is() {
    let c = load_in(ROUTES, &[]).unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&c.asyncapi_document(DocumentFormat::Json)).unwrap();
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let server = &doc["servers"]["sse-kafka"];
    assert_eq!(
        (
            server["host"].as_str(),
            server["protocol"].as_str(),
            server["pathname"].as_str()
        ),
        (Some("events.example.com"), Some("https"), Some("/sse"))
    );
    assert_eq!(server["protocolVersion"], "1.1");
    let ids: Vec<&String> = doc["channels"].as_object().unwrap().keys().collect();
    // (serde_json's map sorts them; the document has them in route order.)
    assert_eq!(ids, ["items", "items.id", "orders", "search", "t.topic"]);
    let ch = &doc["channels"]["items.id"];
    assert_eq!(ch["address"], "/items/{id}");
    assert_eq!(
        ch["parameters"]["id"]["description"],
        "Selects the record key (filter 1) and record header `alias` (filter 2)."
    );
    assert_eq!(ch["bindings"]["kafka"]["topic"], "items");
    assert_eq!(ch["x-sse-kafka"]["partitioner"], "murmur2");
    let t = &doc["channels"]["t.topic"];
    assert!(
        t.get("bindings").is_none(),
        "a topic per request has no binding"
    );
    assert_eq!(
        t["parameters"]["topic"]["description"],
        "Selects the Kafka topic (one of `public.*`, `shared.?`)."
    );
    assert_eq!(
        t["x-sse-kafka"]["topics"],
        serde_json::json!(["public.*", "shared.?"])
    );
    // Messages: base64 and the keyed id where the route says so; a
    // challenge only where a guard is.
    assert_eq!(
        doc["channels"]["search"]["messages"]["message"]["$ref"],
        "#/components/messages/record-base64-keyed"
    );
    let keyed = &doc["components"]["messages"]["record-base64-keyed"];
    assert_eq!(keyed["payload"]["contentEncoding"], "base64");
    assert!(keyed["headers"]["properties"]["id"]["description"]
        .as_str()
        .unwrap()
        .contains("Zilla's form"));
    assert!(doc["channels"]["items"]["messages"]
        .get("challenge")
        .is_none());
    assert_eq!(
        doc["channels"]["orders"]["messages"]["challenge"]["$ref"],
        "#/components/messages/challenge"
    );
    assert_eq!(
        doc["components"]["messages"]["gap"]["payload"]["required"],
        serde_json::json!(["partition", "requested", "resumed_at"])
    );
    // Operations: the query each reads, and the guard's schemes.
    let search = &doc["operations"]["search"];
    assert_eq!(search["action"], "send");
    assert_eq!(search["bindings"]["http"]["method"], "GET");
    assert_eq!(
        search["bindings"]["http"]["query"]["required"],
        serde_json::json!(["tag"])
    );
    let orders = &doc["operations"]["orders"];
    assert!(orders["bindings"]["http"]["query"]["properties"]
        .get("access_token")
        .is_some());
    assert_eq!(
        orders["security"],
        serde_json::json!([
            {"$ref": "#/components/securitySchemes/jwt0-bearer"},
            {"$ref": "#/components/securitySchemes/jwt0-query"},
        ])
    );
    assert!(orders["description"]
        .as_str()
        .unwrap()
        .contains("holding the roles orders:read, admin"));
    let bearer = &doc["components"]["securitySchemes"]["jwt0-bearer"];
    assert_eq!(
        (
            bearer["type"].as_str(),
            bearer["scheme"].as_str(),
            bearer["bearerFormat"].as_str()
        ),
        (Some("http"), Some("bearer"), Some("JWT"))
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["jwt0-query"]["in"],
        "query"
    );
}

#[test]
fn serving_settings_are_checked() {
    let route = "routes: [{path: '/{name}', topic: t}]\n";
    let err = load_in(&format!("serve_asyncapi: /asyncapi\n{route}"), &[]).unwrap_err();
    assert_eq!(
        (err.line, err.field.as_str()),
        (8, "serve_asyncapi"),
        "{err}"
    );
    assert!(
        err.message
            .starts_with("the document's /asyncapi.json is a path of routes[0] ('/{name}') too"),
        "{err}"
    );
    for (value, message) in [
        (
            "/docs/",
            "'/docs/' must start with '/' and not end with one",
        ),
        ("/a{b}", "'/a{b}' must not contain '{'"),
    ] {
        let err = load_in(&format!("serve_asyncapi: \"{value}\"\n{route}"), &[]).unwrap_err();
        assert_eq!(err.field, "serve_asyncapi", "{err}");
        assert!(err.message.starts_with(message), "{err}");
    }
    for (value, message) in [
        ("ftp://x", "'ftp://x' must start with http:// or https://"),
        ("https://u@x", "'https://u@x' needs a host, and no user"),
        (
            "https://x/?a=1",
            "'https://x/?a=1' must not have a query or fragment",
        ),
    ] {
        let err = load_in(&format!("public_url: \"{value}\"\n{route}"), &[]).unwrap_err();
        assert_eq!(err.field, "public_url", "{err}");
        assert!(err.message.starts_with(message), "{err}");
    }
}

#[test]
fn the_quickstarts_declare_the_same_routes_but_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let yaml = load(&root.join("quickstart.yaml"))
        .unwrap()
        .describe_routes();
    let asyncapi = load(&root.join("asyncapi/quickstart.yaml"))
        .unwrap()
        .describe_routes();
    // The query route of the YAML quickstart is a path route in AsyncAPI,
    // which puts what filters in the address.
    let (yaml, asyncapi): (Vec<&str>, Vec<&str>) =
        (yaml.lines().collect(), asyncapi.lines().collect());
    assert_eq!(yaml[..3], asyncapi[..3]);
    assert_eq!(asyncapi[3], "GET /by-item/{item} -> topic items (start live, value text, id progress) filters: [value /item=\"${params.item}\"]");
}
