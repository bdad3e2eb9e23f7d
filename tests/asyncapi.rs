//! End-to-end tests of AsyncAPI 3.0, both ways: the document an instance
//! serves (`serve_asyncapi`) and prints (`sse-kafka asyncapi`), checked by
//! the official parser (@asyncapi/parser, tests/clients/asyncapi_check.mjs)
//! and read field by field; that document given back as `asyncapi:`
//! declaring the same routes, which stream the same records; Zilla's pair
//! of documents (tests/asyncapi/zilla/, byte for byte Zilla's example);
//! parameters located in the message filtering on a header or the JSON
//! value; and bad documents refused with the file, line and document path.
//! Real nisshi broker, real proxy binary, real sockets.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Output;

use common::{config_for, raw_request, Broker, Proxy, SseClient};
use serde_json::{json, Value};
use sse_kafka::codec::event_id;
use sse_kafka::model::Offset;

/// The one origin the config lists: a guard that reads a cookie needs
/// listed origins.
const ORIGIN: &str = "http://app.test";

/// Where clients reach the instance: the served document's server.
const PUBLIC_URL: &str = "https://sse.example.test:8443/streams";

/// The `hs` guard's HMAC secret: 32 bytes, RFC 7518 §3.2's least for
/// HS256. No token is minted here; the guard only has to exist.
const SECRET: &[u8; 32] = b"sse-kafka asyncapi test secret!!";

/// The routes the served document describes, one of each kind: plain, a
/// key from the path, a header from the query, a header and a JSON value
/// from the path, a topic from the path, guarded (with base64 values).
const ROUTES: &str = r#"routes:
  - path: /plain
    topic: items
  - path: /items/{id}
    topic: items
    start: earliest
    filters:
      - key: "${params.id}"
  - path: /items
    topic: items
    start: earliest
  - path: /tagged
    topic: items
    filters:
      - headers: { tag: "${query.tag}" }
  - path: /by-tag/{tag}/n/{n}
    topic: items
    filters:
      - headers: { tag: "${params.tag}" }
        value: { "/n": "${params.n}" }
  - path: /public/{t}
    topic: "public.${params.t}"
    topics: "public.*"
  - path: /secret
    topic: items
    value: base64
    guard: hs
    roles: ["orders:read"]
"#;

/// The channel (and operation) ids the served document gives the
/// [`ROUTES`], in order, with each one's path.
const CHANNELS: [(&str, &str); 7] = [
    ("plain", "/plain"),
    ("items.id", "/items/{id}"),
    ("items", "/items"),
    ("tagged", "/tagged"),
    ("by-tag.tag.n.n", "/by-tag/{tag}/n/{n}"),
    ("public.t", "/public/{t}"),
    ("secret", "/secret"),
];

/// Everything of the config but its routes, with the guard's secret in
/// `dir`: the same for the config that writes [`ROUTES`] and the one that
/// reads them back from the document.
fn settings(dir: &Path) -> String {
    let secret = dir.join("hs.key");
    std::fs::write(&secret, SECRET).unwrap();
    format!(
        "keepalive: 200ms\ncors: {{ allow_origins: [\"{ORIGIN}\"] }}\nserve_asyncapi: /asyncapi\npublic_url: {PUBLIC_URL}\nguards:\n  hs:\n    secret: {{ file: {} }}\n    cookie: access_token\n",
        json!(secret.to_str().unwrap())
    )
}

/// `sse-kafka` with `args` (the binary the other tests run), to its exit.
fn sse_kafka<S: AsRef<OsStr>>(args: &[S]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sse-kafka"))
        .args(args)
        .output()
        .expect("run sse-kafka")
}

/// `sse-kafka check --config <path>`: its exit code, stdout and stderr.
fn check(path: &Path) -> (Option<i32>, String, String) {
    let out = sse_kafka(&[
        OsStr::new("check"),
        OsStr::new("--config"),
        path.as_os_str(),
    ]);
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `sse-kafka asyncapi --config <path>` with `format` (`None`: the
/// default): the document it prints.
fn printed(path: &Path, format: Option<&str>) -> Vec<u8> {
    let mut args = vec![
        OsStr::new("asyncapi"),
        OsStr::new("--config"),
        path.as_os_str(),
    ];
    if let Some(f) = format {
        args.extend([OsStr::new("--format"), OsStr::new(f)]);
    }
    let out = sse_kafka(&args);
    assert!(
        out.status.success(),
        "sse-kafka asyncapi: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// What the official parser says of the document at `path`: whether it
/// found no error (severity 0), and its diagnostics, one JSON line each.
fn official_parser(path: &Path) -> (bool, String) {
    assert!(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/node_modules/@asyncapi/parser"
        ))
        .exists(),
        "run `npm ci --prefix tests/clients` (examples/test.sh does)"
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/asyncapi_check.mjs"
    );
    let out = std::process::Command::new("node")
        .arg(script)
        .arg(path)
        .output()
        .expect("node is installed");
    let diagnostics = String::from_utf8(out.stdout).unwrap();
    match out.status.code() {
        Some(0) => (true, diagnostics),
        Some(1) => (false, diagnostics),
        _ => panic!(
            "asyncapi_check.mjs failed on {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// An HTTP answer read to the end (the server closes after each).
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    /// Every value of the header `name`.
    fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of the header `name`.
    fn header(&self, name: &str) -> &str {
        match self.values(name)[..] {
            [one] => one,
            ref all => panic!("{} values of {name}: {all:?}", all.len()),
        }
    }
}

/// Sends `method path` with `headers` and parses the whole answer
/// (httparse for the head).
fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: test\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let bytes = raw_request(addr, req.as_bytes());
    let mut parsed = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut parsed);
    let httparse::Status::Complete(len) = response.parse(&bytes).expect("an HTTP response") else {
        panic!("an incomplete head: {:?}", String::from_utf8_lossy(&bytes));
    };
    Reply {
        status: response.code.unwrap(),
        headers: response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8(h.value.to_vec()).unwrap(),
                )
            })
            .collect(),
        body: bytes[len..].to_vec(),
    }
}

/// The value at JSON pointer `pointer` of `doc`, which must be there.
fn at<'a>(doc: &'a Value, pointer: &str) -> &'a Value {
    doc.pointer(pointer)
        .unwrap_or_else(|| panic!("nothing at {pointer}"))
}

/// What `value` is, following its `$ref`s (`#/...`, inside `doc`).
fn deref<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    while let Some(r) = value.get("$ref") {
        let pointer = r.as_str().unwrap().strip_prefix('#').unwrap();
        value = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("the $ref {r} points at nothing"));
    }
    value
}

/// The keys of the mapping at `pointer`, sorted (serde_json's maps sort
/// them; [`yaml_keys`] keeps the document's order).
fn keys(doc: &Value, pointer: &str) -> Vec<String> {
    at(doc, pointer)
        .as_object()
        .unwrap_or_else(|| panic!("{pointer} is not a mapping"))
        .keys()
        .cloned()
        .collect()
}

/// `names`, sorted: what [`keys`] gives for a mapping of them.
fn sorted<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().map(str::to_owned).collect();
    names.sort_unstable();
    names
}

/// The keys of the YAML mapping at `key` of `doc`, in document order.
fn yaml_keys(doc: &serde_yaml_ng::Value, key: &str) -> Vec<String> {
    doc[key]
        .as_mapping()
        .unwrap_or_else(|| panic!("{key} is not a mapping"))
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

/// The id that says a stream has passed every record of a topic whose
/// partitions' next offsets are `next`.
fn progress_id(topic: &str, next: &[i64]) -> String {
    let next: Vec<Offset> = next.iter().copied().map(Offset).collect();
    let mut id = Vec::new();
    event_id::encode_progress(event_id::topic_hash(topic), &next, &mut Vec::new(), &mut id);
    String::from_utf8(id).unwrap()
}

/// The data of the next `n` events.
fn data(c: &mut SseClient, n: usize) -> Vec<String> {
    c.take(n).into_iter().map(|e| e.data).collect()
}

/// Reads `c` until it has passed the records up to `heads_id`, and fails
/// if any event is left over: the events taken were all it was sent.
fn nothing_more(c: &mut SseClient, heads_id: &str, path: &str) {
    c.wait_for_id(heads_id);
    assert_eq!(c.buffered_events(), 0, "{path} got an event it should not");
}

#[test]
fn the_served_document_describes_every_route_and_passes_the_official_parser() {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&broker, &format!("{}{ROUTES}", settings(dir.path())));
    let config_path = dir.path().join("sse-kafka.yaml");
    std::fs::write(&config_path, &config).unwrap();
    let proxy = Proxy::start(&config, "0");

    // Both forms, with their media types and CORS for the listed origin.
    let origin = [("origin", ORIGIN)];
    let json_reply = request(proxy.addr, "GET", "/asyncapi.json", &origin);
    let yaml_reply = request(proxy.addr, "GET", "/asyncapi.yaml", &origin);
    for (reply, media) in [
        (&json_reply, "application/json"),
        (&yaml_reply, "application/yaml"),
    ] {
        assert_eq!(reply.status, 200, "{media}");
        assert_eq!(reply.header("content-type"), media);
        assert_eq!(reply.header("access-control-allow-origin"), ORIGIN);
        assert_eq!(reply.header("vary"), "origin");
        assert_eq!(
            reply.header("content-length"),
            reply.body.len().to_string(),
            "{media}"
        );
    }
    // An origin not listed gets no CORS header, nor does a request
    // without one.
    for headers in [&[("origin", "http://other.test")][..], &[]] {
        let reply = request(proxy.addr, "GET", "/asyncapi.json", headers);
        assert_eq!(reply.status, 200);
        assert!(reply.values("access-control-allow-origin").is_empty());
        assert_eq!(reply.body, json_reply.body);
    }

    // `sse-kafka asyncapi` prints exactly what is served.
    assert_eq!(
        printed(&config_path, Some("json")),
        json_reply.body,
        "--format json"
    );
    assert_eq!(
        printed(&config_path, Some("yaml")),
        yaml_reply.body,
        "--format yaml"
    );
    assert_eq!(printed(&config_path, None), yaml_reply.body, "the default");

    // HEAD: the head a GET gets, and no body.
    let head = request(proxy.addr, "HEAD", "/asyncapi.yaml", &origin);
    assert_eq!(head.status, 200);
    assert_eq!(head.headers, yaml_reply.headers);
    assert!(
        head.body.is_empty(),
        "{} bytes after a HEAD",
        head.body.len()
    );
    // A preflight from the listed origin, without credentials (the
    // document is public); other methods are refused.
    let preflight = request(
        proxy.addr,
        "OPTIONS",
        "/asyncapi.json",
        &[("origin", ORIGIN), ("access-control-request-method", "GET")],
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), ORIGIN);
    assert!(preflight
        .values("access-control-allow-credentials")
        .is_empty());
    for method in ["POST", "PUT", "DELETE"] {
        let refused = request(proxy.addr, method, "/asyncapi.json", &[]);
        assert_eq!(refused.status, 405, "{method}");
        assert!(refused.header("allow").contains("GET"), "{method}");
    }
    // Only the two forms are served.
    assert_eq!(request(proxy.addr, "GET", "/asyncapi", &[]).status, 404);

    // The official parser finds no error in either form, and does find
    // one in a broken copy (so its silence means something).
    let json_path = dir.path().join("served.json");
    let yaml_path = dir.path().join("served.yaml");
    let broken_path = dir.path().join("broken.yaml");
    std::fs::write(&json_path, &json_reply.body).unwrap();
    std::fs::write(&yaml_path, &yaml_reply.body).unwrap();
    let yaml_text = String::from_utf8(yaml_reply.body.clone()).unwrap();
    let broken = yaml_text.replacen("action: send", "action: stream", 1);
    assert_ne!(broken, yaml_text);
    std::fs::write(&broken_path, broken).unwrap();
    let [json_verdict, yaml_verdict, broken_verdict] = std::thread::scope(|s| {
        [&json_path, &yaml_path, &broken_path]
            .map(|p| s.spawn(move || official_parser(p)))
            .map(|h| h.join().unwrap())
    });
    assert!(json_verdict.0, "served JSON: {}", json_verdict.1);
    assert!(yaml_verdict.0, "served YAML: {}", yaml_verdict.1);
    assert!(
        !broken_verdict.0 && broken_verdict.1.contains(r#""severity":0"#),
        "the parser let `action: stream` pass: {}",
        broken_verdict.1
    );

    // The two forms are one document.
    let doc: Value = serde_json::from_slice(&json_reply.body).unwrap();
    let from_yaml: Value = serde_yaml_ng::from_slice(&yaml_reply.body).unwrap();
    assert_eq!(from_yaml, doc, "the YAML and the JSON differ");

    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        doc["servers"],
        json!({"sse-kafka": {
            "host": "sse.example.test:8443",
            "protocol": "https",
            "protocolVersion": "1.1",
            "pathname": "/streams",
        }})
    );

    // One channel and one operation per route, in the routes' order.
    let ids = CHANNELS.map(|(id, _)| id);
    let in_order: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&yaml_reply.body).unwrap();
    assert_eq!(yaml_keys(&in_order, "channels"), ids);
    assert_eq!(yaml_keys(&in_order, "operations"), ids);
    assert_eq!(keys(&doc, "/channels"), sorted(ids));
    for (id, path) in CHANNELS {
        let channel = at(&doc, &format!("/channels/{id}"));
        assert_eq!(channel["address"], path, "{id}");
        let guarded = id == "secret";
        // Fixed topics are bound; a topic from the path is not.
        let bound = channel.pointer("/bindings/kafka/topic");
        if id == "public.t" {
            assert_eq!(bound, None, "{id}");
        } else {
            assert_eq!(bound, Some(&json!("items")), "{id}");
        }
        // The messages: records, tombstones, the proxy's own, and the
        // challenge on the guarded route alone; each $ref resolves.
        let mut want = vec!["message", "delete", "reset", "gap", "error"];
        if guarded {
            want.push("challenge");
        }
        let names = keys(&doc, &format!("/channels/{id}/messages"));
        assert_eq!(names, sorted(want.iter().copied()), "{id}");
        for name in &want {
            let message = deref(&doc, &channel["messages"][name]);
            assert!(message.get("payload").is_some(), "{id} {name}: {message}");
        }
        let record = deref(&doc, &channel["messages"]["message"]);
        let id_field = record.pointer("/headers/properties/id/description");
        assert!(
            id_field
                .and_then(Value::as_str)
                .is_some_and(|d| d.contains("Last-Event-ID")),
            "{id}: {record}"
        );
        assert_eq!(record["payload"]["type"], "string");
        let encoding = record.pointer("/payload/contentEncoding");
        assert_eq!(encoding, guarded.then_some(&json!("base64")), "{id}");

        let op = at(&doc, &format!("/operations/{id}"));
        assert_eq!(op["action"], "send", "{id}");
        assert_eq!(op["channel"], json!({"$ref": format!("#/channels/{id}")}));
        assert_eq!(op["bindings"]["http"]["method"], "GET", "{id}");
        let query = &op["bindings"]["http"]["query"];
        let mut want = vec!["lastEventId", "since"];
        if id == "tagged" {
            want.push("tag");
        }
        if guarded {
            want.push("access_token");
        }
        assert_eq!(keys(query, "/properties"), sorted(want), "{id}");
        let required = (id == "tagged").then_some(json!(["tag"]));
        assert_eq!(query.get("required"), required.as_ref(), "{id}");
        // Every message of the operation is one of its channel's.
        for m in op["messages"].as_array().unwrap() {
            let r = m["$ref"].as_str().unwrap();
            assert!(r.starts_with(&format!("#/channels/{id}/messages/")), "{r}");
            deref(&doc, m);
        }
        assert_eq!(op.get("security").is_some(), guarded, "{id}");
    }

    // What each path parameter feeds.
    let parameters = |id: &str| at(&doc, &format!("/channels/{id}")).get("parameters");
    assert_eq!(parameters("plain"), None);
    assert_eq!(parameters("tagged"), None);
    assert_eq!(
        parameters("items.id"),
        Some(&json!({"id": {"description": "Selects the record key (filter 1)."}}))
    );
    assert_eq!(
        parameters("by-tag.tag.n.n"),
        Some(&json!({
            "tag": {"description": "Selects record header `tag` (filter 1)."},
            "n": {"description": "Selects the JSON value at `/n` (filter 1)."},
        }))
    );
    assert_eq!(
        parameters("public.t"),
        Some(&json!({"t": {"description": "Selects the Kafka topic (one of `public.*`)."}}))
    );

    // The route's settings, as a YAML route writes them.
    let x = |id: &str| at(&doc, &format!("/channels/{id}/x-sse-kafka"));
    assert_eq!(
        x("plain"),
        &json!({"topic": "items", "start": "live", "value": "text", "event_id": "progress"})
    );
    assert_eq!(
        x("items.id"),
        &json!({"topic": "items", "start": "earliest", "value": "text", "event_id": "progress",
            "filters": [{"key": "${params.id}"}]})
    );
    assert_eq!(
        x("tagged")["filters"],
        json!([{"headers": {"tag": "${query.tag}"}}])
    );
    assert_eq!(
        x("by-tag.tag.n.n")["filters"],
        json!([{"headers": {"tag": "${params.tag}"}, "value": {"/n": "${params.n}"}}])
    );
    assert_eq!(
        x("public.t"),
        &json!({"topic": "public.${params.t}", "topics": ["public.*"], "start": "live",
            "value": "text", "event_id": "progress"})
    );
    assert_eq!(
        x("secret"),
        &json!({"topic": "items", "start": "live", "value": "base64", "event_id": "progress",
            "guard": "hs", "roles": ["orders:read"]})
    );

    // The guarded operation: its schemes, and the roles in words.
    let secret = at(&doc, "/operations/secret");
    assert_eq!(
        secret["security"],
        json!([
            {"$ref": "#/components/securitySchemes/hs-bearer"},
            {"$ref": "#/components/securitySchemes/hs-query"},
            {"$ref": "#/components/securitySchemes/hs-cookie"},
        ])
    );
    let description = secret["description"].as_str().unwrap();
    assert!(
        description.contains("`hs`") && description.contains("orders:read"),
        "{description}"
    );
    let schemes = at(&doc, "/components/securitySchemes");
    assert_eq!(
        keys(schemes, ""),
        sorted(["hs-bearer", "hs-query", "hs-cookie"])
    );
    let scheme = |name: &str, fields: &[&str]| -> Value {
        fields
            .iter()
            .map(|f| (f.to_string(), schemes[name][f].clone()))
            .collect()
    };
    assert_eq!(
        scheme("hs-bearer", &["type", "scheme", "bearerFormat"]),
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    );
    assert_eq!(
        scheme("hs-query", &["type", "in", "name"]),
        json!({"type": "httpApiKey", "in": "query", "name": "access_token"})
    );
    assert_eq!(
        scheme("hs-cookie", &["type", "in", "name"]),
        json!({"type": "httpApiKey", "in": "cookie", "name": "access_token"})
    );
    // The challenge is a message of the document because a route is
    // guarded.
    assert!(doc.pointer("/components/messages/challenge").is_some());
}

#[test]
fn the_served_document_read_back_declares_the_same_routes_and_streams_the_same() {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    let first = dir.path().join("first.yaml");
    std::fs::write(&first, config_for(&broker, &format!("{settings}{ROUTES}"))).unwrap();
    // The YAML the endpoint serves (the first test holds the two to the
    // same bytes), as the only source of routes of the second config: a
    // path relative to that config's directory for `check`, absolute for
    // the proxy, whose config lives elsewhere.
    let document = printed(&first, Some("yaml"));
    let document_path = dir.path().join("routes.asyncapi.yaml");
    std::fs::write(&document_path, &document).unwrap();
    let second = dir.path().join("second.yaml");
    std::fs::write(
        &second,
        config_for(
            &broker,
            &format!("{settings}asyncapi: routes.asyncapi.yaml\n"),
        ),
    )
    .unwrap();

    let (code, first_routes, err) = check(&first);
    assert_eq!(code, Some(0), "{err}");
    let (code, second_routes, err) = check(&second);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        first_routes.lines().count(),
        CHANNELS.len(),
        "{first_routes}"
    );
    assert!(
        first_routes
            .lines()
            .any(|l| l.starts_with("GET /items/{id} -> topic items")
                && l.contains("key=${params.id}")),
        "{first_routes}"
    );
    assert_eq!(second_routes, first_routes);
    // The document of the routes read back is the document they were
    // read from.
    assert_eq!(printed(&second, Some("yaml")), document);

    let config = config_for(
        &broker,
        &format!(
            "{settings}asyncapi: {}\n",
            json!(document_path.to_str().unwrap())
        ),
    );
    let proxy = Proxy::start(&config, "0");
    let served = request(proxy.addr, "GET", "/asyncapi.yaml", &[]);
    assert_eq!(served.status, 200);
    assert_eq!(
        served.body, document,
        "the second instance serves another document"
    );

    let mut clients: Vec<(&str, SseClient)> = ["/items/item-3", "/items/item-4", "/items"]
        .into_iter()
        .map(|path| {
            let c = SseClient::connect(proxy.addr, path, &[]);
            assert_eq!(c.status(), 200, "{path}");
            (path, c)
        })
        .collect();
    // Keys that differ from item-3 by a suffix, a case and nothing at all.
    let records: [(Option<&str>, &str); 8] = [
        (Some("item-3"), "0 item-3"),
        (Some("item-30"), "1 item-30"),
        (Some("item-4"), "2 item-4"),
        (None, "3 no key"),
        (Some("item-3"), "4 item-3"),
        (Some("Item-3"), "5 Item-3"),
        (Some("item-4"), "6 item-4"),
        (Some("item-3"), "7 item-3"),
    ];
    broker.produce_many(
        "items",
        0,
        records
            .iter()
            .map(|(k, v)| {
                (
                    k.map(|k| k.as_bytes().to_vec()),
                    Some(v.as_bytes().to_vec()),
                )
            })
            .collect(),
    );
    let heads = progress_id("items", &[records.len() as i64]);
    for (path, c) in &mut clients {
        let want: Vec<&str> = match *path {
            "/items/item-3" => vec!["0 item-3", "4 item-3", "7 item-3"],
            "/items/item-4" => vec!["2 item-4", "6 item-4"],
            _ => records.iter().map(|(_, v)| *v).collect(),
        };
        assert_eq!(data(c, want.len()), want, "{path}");
        nothing_more(c, &heads, path);
    }
}

#[test]
fn zillas_pair_of_documents_streams_its_topic() {
    let zilla = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/asyncapi/zilla");
    let broker = Broker::start();
    broker.create_topic("events", 1);
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(
        &broker,
        &format!(
            "keepalive: 200ms\nserve_asyncapi: /asyncapi\nasyncapi:\n  - sse: {zilla}/sse-asyncapi.yaml\n    kafka: {zilla}/kafka-asyncapi.yaml\n"
        ),
    );
    let path = dir.path().join("sse-kafka.yaml");
    std::fs::write(&path, &config).unwrap();
    let (code, routes, err) = check(&path);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        routes,
        "GET /events -> topic events (start live, value text, id progress)\n"
    );

    let proxy = Proxy::start(&config, "0");
    let mut c = SseClient::connect(proxy.addr, "/events", &[]);
    assert_eq!(c.status(), 200);
    const EVENT: &str = r#"{"id":1,"name":"Hello World!"}"#;
    broker.produce("events", 0, Some(b"1"), Some(EVENT.as_bytes()));
    let e = c.next_event();
    assert_eq!((e.event.as_deref(), e.data.as_str()), (None, EVENT));
    nothing_more(&mut c, &progress_id("events", &[1]), "/events");

    // The instance describes the route in its own document.
    let served = request(proxy.addr, "GET", "/asyncapi.json", &[]);
    let doc: Value = serde_json::from_slice(&served.body).unwrap();
    assert_eq!(keys(&doc, "/channels"), ["events"]);
    assert_eq!(doc["channels"]["events"]["address"], "/events");
    assert_eq!(
        doc["channels"]["events"]["bindings"]["kafka"]["topic"],
        "events"
    );
}

/// A record of the `orders` topic: key, value, headers.
type Order = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

#[test]
fn located_parameters_filter_on_the_json_value_and_on_a_header() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/asyncapi/locations.yaml");
    // The extension is written in a document the official tooling takes.
    let (valid, diagnostics) = official_parser(Path::new(fixture));
    assert!(valid, "{fixture}: {diagnostics}");

    let broker = Broker::start();
    broker.create_topic("orders", 1);
    let config = config_for(&broker, &format!("keepalive: 200ms\nasyncapi: {fixture}\n"));
    let proxy = Proxy::start(&config, "0");
    let paths = [
        "/by-status/open",
        "/by-status/closed",
        "/by-tag/red",
        "/open-or-vip/red",
    ];
    let mut clients: Vec<(&str, SseClient)> = paths
        .into_iter()
        .map(|path| {
            let c = SseClient::connect(proxy.addr, path, &[]);
            assert_eq!(c.status(), 200, "{path}");
            (path, c)
        })
        .collect();
    let records: [Order; 9] = [
        ("k0", r#"{"n":0,"status":"open"}"#, &[("tag", "red")]),
        ("k1", r#"{"n":1,"status":"closed"}"#, &[("tag", "blue")]),
        ("vip", r#"{"n":2,"status":"closed"}"#, &[("tag", "red")]),
        ("k3", r#"{"n":3,"status":"open"}"#, &[("tag", "blue")]),
        ("k4", "status: open (not JSON)", &[("tag", "red")]),
        ("k5", r#"{"n":5,"status":"opened"}"#, &[]),
        ("vip", r#"{"n":6,"status":"open"}"#, &[("tag", "Red")]),
        (
            "k7",
            r#"{"n":7,"nested":{"status":"open"}}"#,
            &[("tag", "red")],
        ),
        ("k8", r#"{"n":8,"status":"open"}"#, &[("tag", "red")]),
    ];
    broker.produce_with_headers(
        "orders",
        0,
        records
            .iter()
            .map(|(k, v, h)| {
                (
                    (Some(k.as_bytes().to_vec()), Some(v.as_bytes().to_vec())),
                    h.to_vec(),
                )
            })
            .collect(),
    );
    let heads = progress_id("orders", &[records.len() as i64]);
    for (path, c) in &mut clients {
        // By record number: the JSON value's status; the tag header
        // (exactly, case and all); the tag and then an open status or
        // the key vip (the header joins each of the document's filters).
        let want: &[usize] = match *path {
            "/by-status/open" => &[0, 3, 6, 8],
            "/by-status/closed" => &[1, 2],
            "/by-tag/red" => &[0, 2, 4, 7, 8],
            _ => &[0, 2, 8],
        };
        let want: Vec<&str> = want.iter().map(|&n| records[n].1).collect();
        assert_eq!(data(c, want.len()), want, "{path}");
        nothing_more(c, &heads, path);
    }
}

/// A config that `check` refuses, and the error it must print.
struct Refused {
    what: &'static str,
    /// The config after its `kafka:` section.
    config: String,
    /// Documents written beside the config.
    files: Vec<(&'static str, String)>,
    /// `FILE:LINE:COL: DOCPATH: message` (how it starts); `@/` stands
    /// for the case's directory.
    error: String,
}

/// The start of every single document below (4 lines).
const HEAD: &str = "asyncapi: 3.0.0\ninfo:\n  title: refused\n  version: 1.0.0\n";

/// `channels:` with channel `name` at `address` carrying x-sse-kafka
/// (4 lines, or 5 with `extra`).
fn channel(name: &str, address: &str, extra: &str) -> String {
    format!("  {name}:\n    address: {address}\n{extra}    x-sse-kafka:\n      topic: t\n")
}

/// Operation `name` on channel `channel` (4 lines).
fn operation(name: &str, channel: &str) -> String {
    format!("  {name}:\n    action: send\n    channel:\n      $ref: '#/channels/{channel}'\n")
}

fn refused_cases() -> Vec<Refused> {
    let zilla = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/asyncapi/zilla");
    let sse = format!("{zilla}/sse-asyncapi.yaml");
    let kafka = std::fs::read_to_string(format!("{zilla}/kafka-asyncapi.yaml")).unwrap();
    let single = |files: Vec<(&'static str, String)>, what, error: &str| Refused {
        what,
        config: "asyncapi: api.yaml\n".into(),
        files,
        error: error.into(),
    };
    let api = |text: String| vec![("api.yaml", text)];
    vec![
        single(
            api("asyncapi: 2.6.0\ninfo:\n  title: old\n  version: 1.0.0\nchannels: {}\n".into()),
            "an AsyncAPI 2.6.0 document",
            "@/api.yaml:1:1: asyncapi: an AsyncAPI 2.6.0 document; sse-kafka reads AsyncAPI 3.0",
        ),
        single(
            api(format!(
                "{HEAD}channels:\n{}operations:\n{}    messages:\n      - $ref: '#/components/messages/nope'\n",
                channel("a", "/a", ""),
                operation("go", "a")
            )),
            "an unresolved $ref",
            "@/api.yaml:16:9: operations.go.messages[0].$ref: '#/components/messages/nope': no such component in the document",
        ),
        single(
            api(format!(
                "{HEAD}channels:\n{}operations:\n{}",
                channel("a", "/a/{id}", ""),
                operation("go", "a")
            )),
            "an address parameter and no parameters",
            "@/api.yaml:7:5: channels.a.address: address parameter 'id' has no entry in `parameters` (the channel has no `parameters`)",
        ),
        single(
            api(format!(
                "{HEAD}channels:\n{}operations:\n{}",
                channel("a", "/a/{id}", "    parameters:\n      other: {}\n"),
                operation("go", "a")
            )),
            "an address parameter missing from parameters",
            "@/api.yaml:8:5: channels.a.parameters: address parameter 'id' has no entry in `parameters` (add it)",
        ),
        single(
            api(format!(
                "{HEAD}channels:\n{}{}operations:\n{}{}",
                channel("a", "/p", ""),
                channel("b", "/p", ""),
                operation("A", "a"),
                operation("B", "b")
            )),
            "two channels at one address",
            "@/api.yaml:11:5: channels.b.address: duplicate route path '/p' (already used by @/api.yaml channels.a)",
        ),
        Refused {
            what: "a channel at the path of a YAML route",
            config: "asyncapi: api.yaml\nroutes:\n  - path: /p\n    topic: t\n".into(),
            files: api(format!(
                "{HEAD}channels:\n{}operations:\n{}",
                channel("a", "/p", ""),
                operation("A", "a")
            )),
            error: "@/api.yaml:7:5: channels.a.address: duplicate route path '/p' (already used by routes[0])".into(),
        },
        single(
            api(format!(
                "{HEAD}channels:\n{}operations:\n{}{}",
                channel("a", "/p", ""),
                operation("A", "a"),
                operation("B", "a")
            )),
            "two operations on one channel",
            "@/api.yaml:17:5: operations.B.channel: channels.a is the route of operations.A already: a path is declared once",
        ),
        Refused {
            what: "an SSE operation without a Kafka partner",
            config: format!("asyncapi:\n  - sse: {sse}\n    kafka: kafka.yaml\n"),
            files: vec![("kafka.yaml", kafka.replace("receiveEvents:", "listEvents:"))],
            error: format!("{sse}:21:3: operations.receiveEvents: no operation 'receiveEvents' in @/kafka.yaml to pair with"),
        },
        Refused {
            what: "a Kafka partner that sends",
            config: format!("asyncapi:\n  - sse: {sse}\n    kafka: kafka.yaml\n"),
            files: vec![("kafka.yaml", kafka.replace("action: receive", "action: send"))],
            error: "@/kafka.yaml:19:5: operations.receiveEvents.action: a stream reads the topic: its Kafka operation's action is receive".into(),
        },
        Refused {
            what: "a document that is not there",
            config: "asyncapi:\n  - missing.yaml\n".into(),
            files: vec![],
            error: "@/sse-kafka.yaml:4:3: asyncapi[0]: cannot read the AsyncAPI document @/missing.yaml: ".into(),
        },
        Refused {
            what: "serve_asyncapi at a route's path",
            config: "serve_asyncapi: /asyncapi\nroutes:\n  - path: /{name}\n    topic: t\n".into(),
            files: vec![],
            error: "@/sse-kafka.yaml:3:1: serve_asyncapi: the document's /asyncapi.json is a path of routes[0] ('/{name}') too".into(),
        },
    ]
}

#[test]
fn bad_documents_exit_2_naming_file_line_and_document_path() {
    for case in refused_cases() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sse-kafka.yaml");
        std::fs::write(
            &config,
            format!("kafka:\n  bootstrap: [\"127.0.0.1:9092\"]\n{}", case.config),
        )
        .unwrap();
        for (name, text) in &case.files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let (code, out, err) = check(&config);
        let what = case.what;
        assert_eq!(code, Some(2), "{what}: {out}{err}");
        assert_eq!(out, "", "{what}: routes printed");
        let base = format!("{}/", dir.path().display());
        let want = format!("error: {}", case.error.replace("@/", &base));
        assert!(
            err.lines().any(|l| l.starts_with(&want)),
            "{what}: want a line starting {want:?}, got:\n{err}"
        );
    }
}
