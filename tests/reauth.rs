//! End-to-end tests of a guarded stream's token running out: the stream is
//! challenged (`event:challenge`, no id) before its token expires, ends
//! with `event:error` when it has, and the client resumes exactly with a
//! fresh token and its last event id, as the README's browser code does
//! (`?access_token=...&lastEventId=...`); and a real browser (headless
//! Chromium) running that code from a page on another origin loses nothing
//! across re-authentications. Tokens from PyJWT (tests/common/tokens.rs,
//! tests/clients/token_server.py). Real nisshi broker, real proxy binary,
//! real sockets.

mod common;

use std::io::{BufRead, BufReader};

use common::{
    config_for, free_port, http_get, metric_sum, quoted, spawn_python_client, Broker, Keys, Proxy,
    SseClient,
};
use serde_json::{json, Value};

const ISSUER: &str = "https://auth.test/";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token of the test's guard for `sub`, expiring at `exp`.
fn token(keys: &Keys, exp: u64) -> String {
    keys.mint_one(json!({
        "key": "ec1",
        "alg": "ES256",
        "claims": {"iss": ISSUER, "aud": "sse-kafka", "sub": "alice", "exp": exp},
    }))
}

/// The stream's URL with the token and, when resuming, the last id, both
/// in the query as a browser's `EventSource` sends them.
fn url(token: &str, last_id: Option<&str>) -> String {
    let mut url = format!("/items?access_token={token}");
    if let Some(id) = last_id {
        url.push_str("&lastEventId=");
        url.extend(form_urlencoded::byte_serialize(id.as_bytes()));
    }
    url
}

#[test]
fn a_stream_is_challenged_ends_when_its_token_expires_and_resumes_exactly() {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let keys = Keys::new();
    let guard = format!(
        "keepalive: 200ms\nguards:\n  short:\n    issuer: {}\n    audience: sse-kafka\n    keys: {{ file: {} }}\n    leeway: 0s\n    challenge: 3s\n\
         routes:\n  - path: /items\n    topic: items\n    start: earliest\n    guard: short\n",
        quoted(ISSUER),
        quoted(&keys.path("jwks.json")),
    );
    let proxy = Proxy::start(&config_for(&broker, &guard), "0");
    let produce = |v: &str| broker.produce("items", 0, None, Some(v.as_bytes()));
    for v in ["r0", "r1", "r2"] {
        produce(v);
    }
    // Expires in 5 s: challenged at once or within 2 s, ended at 5 s.
    let expires_at = unix_now() + 5;
    let short = token(&keys, expires_at);
    let fresh = token(&keys, unix_now() + 3600);

    let mut client = SseClient::connect(proxy.addr, &url(&short, None), &[]);
    assert_eq!(client.status(), 200, "{}", client.head);
    let data: Vec<String> = client.take(3).into_iter().map(|e| e.data).collect();
    assert_eq!(data, ["r0", "r1", "r2"]);
    let last = client.last_event_id().expect("records carry ids");

    let challenge = client.next_event();
    assert_eq!(
        challenge.event.as_deref(),
        Some("challenge"),
        "{challenge:?}"
    );
    let body: Value = serde_json::from_str(&challenge.data).unwrap();
    assert_eq!(body["expires_at"], expires_at, "{body}");
    assert!(body["expires_in"].as_u64().unwrap() <= 3, "{body}");
    // No `id:` line: the client's last id stays the last record's.
    assert_eq!(client.last_event_id().as_deref(), Some(last.as_str()));
    let raw = String::from_utf8_lossy(&client.raw);
    assert!(raw.contains("\n\nevent:challenge\ndata:{"), "{raw}");
    assert_eq!(
        metric_sum(&proxy, "sse_kafka_guard_challenges_total", None),
        1
    );

    // Until it expires, the stream goes on.
    produce("r3");
    assert_eq!(client.next_event().data, "r3");
    let last = client.last_event_id().unwrap();
    let end = client.next_event();
    assert_eq!(end.event.as_deref(), Some("error"), "{end:?}");
    let reason: Value = serde_json::from_str(&end.data).unwrap();
    assert!(
        reason["reason"].as_str().unwrap().contains("token expired"),
        "{reason}"
    );
    assert!(unix_now() >= expires_at, "ended before the token expired");
    client.wait_eof();
    assert_eq!(
        metric_sum(&proxy, "sse_kafka_guard_expired_streams_total", None),
        1
    );

    // What was produced while the client had no stream, and nothing else:
    // the expired token opens nothing, the fresh one resumes at the id.
    produce("r4");
    produce("r5");
    let mut refused = SseClient::connect(proxy.addr, &url(&short, Some(&last)), &[]);
    assert_eq!(refused.status(), 401, "{}", refused.head);
    refused.wait_eof();
    let mut again = SseClient::connect(proxy.addr, &url(&fresh, Some(&last)), &[]);
    assert_eq!(again.status(), 200, "{}", again.head);
    assert!(
        again.head.contains("cache-control: no-store, private\r\n"),
        "{}",
        again.head
    );
    let data: Vec<String> = again.take(2).into_iter().map(|e| e.data).collect();
    assert_eq!(data, ["r4", "r5"]);
    // A keep-alive after them: nothing more was coming.
    let seen = again.comments();
    again.wait_comments(seen + 1);
    assert_eq!(again.buffered_events(), 0);
}

/// Ends a child process when dropped (the test's page server).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Headless Chromium opens a page on another origin (127.0.0.2) that runs
/// the README's re-authentication code against a guarded route whose
/// tokens live 5 s and are challenged 3 s before they expire: the page
/// fetches a fresh token from its server at each challenge and reopens its
/// EventSource with the last id; records are produced between challenges.
/// Every record arrives once, in order, across several streams, and no
/// stream had to be ended for an expired token.
#[test]
fn a_browser_reauthenticates_with_the_readme_code_and_loses_nothing() {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let keys = Keys::new();
    let port = free_port();
    let mut server = Killed(spawn_python_client(
        "token_server.py",
        &[
            &keys.path(""),
            "5",
            &format!("http://127.0.0.1:{port}/items"),
        ],
    ));
    let mut line = String::new();
    BufReader::new(server.0.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let page_port: u16 = line.trim().parse().expect("the page server's port");
    let origin = format!("http://127.0.0.2:{page_port}");
    let config = format!(
        "listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:0\nretry: 100ms\nkafka:\n  bootstrap: [\"{}\"]\n  fetch_max_wait: 50ms\n\
         cors: {{ allow_origins: [{}] }}\n\
         guards:\n  short:\n    issuer: {}\n    audience: sse-kafka\n    keys: {{ file: {} }}\n    leeway: 0s\n    challenge: 3s\n\
         routes:\n  - path: /items\n    topic: items\n    start: earliest\n    guard: short\n",
        broker.addr,
        quoted(&origin),
        quoted(ISSUER),
        quoted(&keys.path("jwks.json")),
    );
    let proxy = Proxy::start(&config, "0");

    // Records through several tokens: a batch, then the next challenge
    // (the page then moves to a new stream), then the next batch.
    const ROUNDS: u64 = 4;
    const PER_ROUND: usize = 20;
    const RECORDS: usize = ROUNDS as usize * PER_ROUND;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/browser.mjs");
    let page = format!("{origin}/");
    let producing = std::thread::scope(|scope| {
        let browser = scope.spawn(|| {
            std::process::Command::new("node")
                .args([script, &page, &RECORDS.to_string(), "60000"])
                .output()
                .expect("node is installed")
        });
        for round in 0..ROUNDS {
            for i in 0..PER_ROUND {
                let n = round as usize * PER_ROUND + i;
                broker.produce("items", 0, None, Some(format!("m{n}").as_bytes()));
            }
            // Or the browser is done (it failed: its report says why).
            let deadline = std::time::Instant::now() + common::DEADLINE;
            let challenges = || metric_sum(&proxy, "sse_kafka_guard_challenges_total", None);
            while challenges() <= round && !browser.is_finished() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no challenge {round} within {:?}: {} challenges, {} streams ended expired, {} opened, rejections {:?}",
                    common::DEADLINE,
                    challenges(),
                    metric_sum(&proxy, "sse_kafka_guard_expired_streams_total", None),
                    metric_sum(&proxy, "sse_kafka_connections_total", None),
                    common::rejections(&proxy),
                );
                common::pause();
            }
        }
        browser.join().unwrap()
    });
    let stdout = String::from_utf8_lossy(&producing.stdout);
    assert!(
        producing.status.success(),
        "browser.mjs (examples/test.sh installs chromium and puppeteer-core): {stdout}\n{}",
        String::from_utf8_lossy(&producing.stderr)
    );
    let report: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let received: Vec<&str> = report["received"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let want: Vec<String> = (0..RECORDS).map(|i| format!("m{i}")).collect();
    assert_eq!(received, want, "every record once, in order: {report}");
    let opened = report["opened"].as_u64().unwrap();
    assert!(
        opened >= 3,
        "the page re-authenticated at least twice: {report}"
    );
    let issued: u64 = http_get_body(page_port, "/count").parse().unwrap();
    assert_eq!(issued, opened, "one token per stream");
    assert!(metric_sum(&proxy, "sse_kafka_guard_challenges_total", None) >= opened - 1);
    assert_eq!(
        metric_sum(&proxy, "sse_kafka_guard_expired_streams_total", None),
        0,
        "the page moved on before any token expired"
    );
}

/// The body of a GET to the page server.
fn http_get_body(port: u16, path: &str) -> String {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 2], port));
    let answer = http_get(addr, path).unwrap();
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}
