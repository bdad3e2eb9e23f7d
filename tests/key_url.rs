//! End-to-end tests of a guard whose keys come from a URL: served by a
//! key server in the test, fetched by the proxy's key fetcher. Until the
//! first set arrives, guarded routes answer 503 and /health/ready is 503;
//! a token whose kid is new makes the proxy fetch the keys again and works
//! on its first request; requests with unknown kids within `min_refresh`
//! cost at most one fetch; with the key server down the last good keys
//! stay. Tokens from PyJWT (tests/common/tokens.rs). Real nisshi broker,
//! real proxy binary, real sockets.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    config_for, get_bearer, http_get, quoted, rejections, wait_until, Broker, Keys, Proxy,
};
use serde_json::json;

const ISSUER: &str = "https://auth.test/";

/// What the key server answers.
#[derive(Clone)]
enum Serving {
    /// 200 with this JWK set.
    Keys(String),
    /// 500.
    Failing,
    /// The connection closed without an answer.
    Down,
}

/// A key server on an ephemeral port: `/jwks.json` answered as `serving`
/// says, every request counted.
struct KeyServer {
    addr: SocketAddr,
    serving: Arc<Mutex<Serving>>,
    requests: Arc<AtomicU64>,
}

impl KeyServer {
    fn start(serving: Serving) -> KeyServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = Arc::new(Mutex::new(serving));
        let requests = Arc::new(AtomicU64::new(0));
        let (state, count) = (Arc::clone(&serving), Arc::clone(&requests));
        // Lives until the test process ends.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let answer = match state.lock().unwrap().clone() {
                    Serving::Keys(body) => format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: max-age=3600\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    Serving::Failing => "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into(),
                    Serving::Down => continue,
                };
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        KeyServer {
            addr,
            serving,
            requests,
        }
    }

    fn serve(&self, serving: Serving) {
        *self.serving.lock().unwrap() = serving;
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A token of the guard signed by `key` with `alg`, its kid `kid`.
fn token(keys: &Keys, key: &str, alg: &str, kid: &str) -> String {
    keys.mint_one(json!({
        "key": key, "alg": alg, "kid": kid,
        "claims": {"iss": ISSUER, "aud": "sse-kafka", "sub": "alice", "exp": "now+3600"},
    }))
}

fn status_of(proxy: &Proxy, path: &str, token: &str) -> u16 {
    get_bearer(proxy, path, token).status
}

#[test]
fn keys_from_a_url_are_fetched_again_for_a_new_kid_and_outlive_their_server() {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let keys = Keys::new();
    let jwks = std::fs::read_to_string(keys.path("jwks.json")).unwrap();
    let rotated = std::fs::read_to_string(keys.path("jwks-rsa2.json")).unwrap();
    let server = KeyServer::start(Serving::Failing);
    let min_refresh = Duration::from_secs(2);
    let config = config_for(
        &broker,
        &format!(
            "guards:\n  remote:\n    issuer: {}\n    audience: sse-kafka\n    keys: {{ url: \"http://{}/jwks.json\", refresh: 1h, min_refresh: 2s }}\n\
             routes:\n  - path: /items\n    topic: items\n    guard: remote\n  - path: /open\n    topic: items\n",
            quoted(ISSUER),
            server.addr
        ),
    );
    let proxy = Proxy::start_unready(&config, "0");
    let rsa1 = token(&keys, "rsa1", "RS256", "rsa1");

    // No keys yet: the guarded route asks to come back, the proxy is not
    // ready; the unguarded route streams.
    wait_until("a first fetch to fail", || server.requests() >= 1);
    let refused = get_bearer(&proxy, "/items", &rsa1);
    assert_eq!(refused.status, 503, "{}", refused.head);
    assert!(
        refused.head.contains("retry-after: 1\r\n"),
        "{}",
        refused.head
    );
    let ready = http_get(proxy.admin, "/health/ready").unwrap();
    assert!(
        ready.starts_with("HTTP/1.1 503") && ready.contains("a guard's keys"),
        "{ready}"
    );
    assert_eq!(get_bearer(&proxy, "/open", "").status, 200);

    // The key server answers: within min_refresh the keys come.
    server.serve(Serving::Keys(jwks));
    wait_until("the proxy to be ready", || {
        http_get(proxy.admin, "/health/ready").is_ok_and(|r| r.starts_with("HTTP/1.1 200"))
    });
    let loaded_at = Instant::now();
    assert_eq!(status_of(&proxy, "/items", &rsa1), 200);

    // A new key at the server: a token of its kid works on its first
    // request, once min_refresh has passed since the last fetch.
    server.serve(Serving::Keys(rotated));
    let rsa2 = token(&keys, "rsa2", "RS256", "rsa2");
    wait_until("min_refresh to pass", || loaded_at.elapsed() > min_refresh);
    let before = server.requests();
    assert_eq!(status_of(&proxy, "/items", &rsa2), 200);
    assert_eq!(server.requests(), before + 1, "one fetch for the new kid");

    // Twenty tokens of a kid nobody has, within min_refresh: at most one
    // fetch, each refused as an unknown key.
    let unknown = token(&keys, "rsa1", "RS256", "rsa9");
    let (before, refusals) = (server.requests(), rejections(&proxy));
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(status_of(&proxy, "/items", &unknown), 401);
    }
    assert!(
        started.elapsed() < min_refresh,
        "the requests took longer than min_refresh"
    );
    assert!(
        server.requests() <= before + 1,
        "{} fetches",
        server.requests() - before
    );
    let count =
        |m: &std::collections::BTreeMap<String, u64>| m.get("unknown_key").copied().unwrap_or(0);
    assert_eq!(count(&rejections(&proxy)) - count(&refusals), 20);

    // The key server goes down: the last good keys stay, for tokens seen
    // before and new ones alike.
    server.serve(Serving::Down);
    let fresh = token(&keys, "rsa2", "RS256", "rsa2");
    let before = server.requests();
    let again = Instant::now();
    wait_until("min_refresh to pass again", || {
        again.elapsed() > min_refresh
    });
    assert_eq!(status_of(&proxy, "/items", &unknown), 401);
    wait_until("the proxy to try the server", || server.requests() > before);
    assert_eq!(status_of(&proxy, "/items", &rsa1), 200);
    assert_eq!(status_of(&proxy, "/items", &fresh), 200);
    let ready = http_get(proxy.admin, "/health/ready").unwrap();
    assert!(ready.starts_with("HTTP/1.1 200"), "still ready: {ready}");
}
