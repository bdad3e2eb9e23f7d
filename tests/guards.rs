//! End-to-end tests of guarded routes: JWTs taken from the `Authorization`
//! header, the `access_token` query parameter or a cookie; checked against
//! JWK sets (in a file, inline, or a file that changes) and HMAC secrets;
//! refused with 401 `invalid_token` or 403 `insufficient_scope` and their
//! `www-authenticate` challenge; roles; the identity and other claims in
//! filters; credentialed CORS; rejections counted by reason; one signature
//! check per token. Keys and tokens come from PyJWT and `cryptography`
//! (tests/clients/mint.py, through tests/common/tokens.rs), an
//! implementation independent of the server's. Real nisshi broker, real
//! proxy binary, real sockets. Expiry and re-authentication are in
//! tests/reauth.rs.

mod common;

use std::collections::BTreeMap;

use common::{
    config_for, flow, get, get_bearer, metric_sum, quoted, raw_request, rejections, total,
    wait_until, Answer, Broker, Keys, Launch, Proxy, SseClient,
};
use serde_json::{json, Value};
use sse_kafka::codec::event_id;
use sse_kafka::model::Offset;

const ISSUER: &str = "https://auth.test/";
const AUDIENCE: &str = "sse-kafka";
/// The one origin the config lists: a cookie guard needs listed origins.
const ORIGIN: &str = "http://app.test";
/// The challenge of a request without a token (RFC 6750 §3: no error).
const CHALLENGE: &str = r#"Bearer realm="sse-kafka""#;
/// How the challenge of a token that does not verify starts.
const INVALID: &str = r#"Bearer realm="sse-kafka", error="invalid_token""#;
/// How the challenge of a good token that may not read the route starts.
const INSUFFICIENT: &str = r#"Bearer realm="sse-kafka", error="insufficient_scope""#;
/// The keys file of the `rotating` guard: a copy of jwks.json until a test
/// replaces it.
const ROTATING: &str = "rotating.json";

/// The CORS line, on its own so a test can take it out.
fn cors_line() -> String {
    format!("cors: {{ allow_origins: [{}] }}\n", quoted(ORIGIN))
}

/// Every guard and route the tests use, with the key files of `keys`.
/// `jwt0` is the guard of the contract (issuer, audience, roles from
/// `scope`, identity from `sub`, 5 s leeway, a cookie); `nested` reads
/// roles from `realm_access.roles`; `noalg` has rsa1 without `alg`;
/// `inline` holds rsa1 in the config and takes lists of issuers and
/// audiences; `rotating` reads a file a test replaces; `hs` has an HMAC
/// secret and no issuer or audience.
fn guards_yaml(keys: &Keys) -> String {
    let (iss, aud) = (quoted(ISSUER), quoted(AUDIENCE));
    let jwks = quoted(&keys.path("jwks.json"));
    format!(
        r#"keepalive: 200ms
{cors}guards:
  jwt0:
    issuer: {iss}
    audience: {aud}
    keys: {{ file: {jwks} }}
    roles: scope
    identity: sub
    leeway: 5s
    cookie: access_token
  nested:
    issuer: {iss}
    audience: {aud}
    keys: {{ file: {jwks} }}
    roles: realm_access.roles
  noalg:
    issuer: {iss}
    audience: {aud}
    keys: {{ file: {noalg} }}
  inline:
    issuer: ["https://other.test/", {iss}]
    audience: [other, {aud}]
    keys: {{ jwks: [{rsa1}] }}
  rotating:
    issuer: {iss}
    audience: {aud}
    keys: {{ file: {rotating} }}
  hs:
    secret: {{ file: {hs} }}
routes:
  - path: /open
    topic: items
    start: earliest
  - path: /orders
    topic: items
    start: earliest
    guard: jwt0
    roles: ["orders:read"]
  - path: /me
    topic: items
    start: earliest
    guard: jwt0
    filters:
      - key: "${{guard.identity}}"
  - path: /tenant
    topic: items
    start: earliest
    guard: jwt0
    filters:
      - key: "${{guard.claims.tenant.id}}"
  - path: /own-topic
    topic: "t.${{guard.claims.tenant.id}}"
    topics: "t.*"
    start: earliest
    guard: jwt0
  - path: /nested
    topic: items
    start: earliest
    guard: nested
    roles: ["orders:read"]
  - path: /noalg
    topic: items
    start: earliest
    guard: noalg
  - path: /inline
    topic: items
    start: earliest
    guard: inline
  - path: /rotating
    topic: items
    start: earliest
    guard: rotating
  - path: /hs
    topic: items
    start: earliest
    guard: hs
"#,
        cors = cors_line(),
        noalg = quoted(&keys.path("jwks-rsa-noalg.json")),
        rsa1 = flow(&keys.jwk("jwks.json", "rsa1")),
        rotating = quoted(&keys.path(ROTATING)),
        hs = quoted(&keys.path("hs.key")),
    )
}

/// A broker with the topic `items` (one partition), fresh keys, and a
/// proxy on `cpus` running every guard.
fn start(cpus: &str) -> (Broker, Keys, Proxy) {
    start_with(cpus, &Launch::default())
}

fn start_with(cpus: &str, launch: &Launch<'_>) -> (Broker, Keys, Proxy) {
    let broker = Broker::start();
    broker.create_topic("items", 1);
    let keys = Keys::new();
    std::fs::copy(keys.path("jwks.json"), keys.path(ROTATING)).unwrap();
    let proxy = Proxy::start_with(&config_for(&broker, &guards_yaml(&keys)), cpus, launch);
    (broker, keys, proxy)
}

/// Claims `jwt0` accepts: its issuer and audience, an hour to live, the
/// subject alice and the role the /orders route needs; each member of
/// `patch` replaces the claim of its name, and null removes it.
fn claims(patch: Value) -> Value {
    let mut claims = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": "now+3600",
        "sub": "alice",
        "scope": "orders:read",
    });
    for (name, value) in patch.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

/// A token for mint.py: `claims` signed by `key` with `alg`, its `kid` the
/// key's name.
fn signed(key: &str, alg: &str, claims: Value) -> Value {
    json!({"key": key, "alg": alg, "claims": claims})
}

/// `spec` with one more field (`kid`, `corrupt`).
fn with(mut spec: Value, field: &str, value: Value) -> Value {
    spec[field] = value;
    spec
}

/// A token of `jwt0` that reads /orders: rsa1, RS256, [`claims`].
fn good() -> Value {
    signed("rsa1", "RS256", claims(json!({})))
}

/// What a request should get.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// 200, the stream; no rejection counted.
    Open,
    /// 401 with the bare challenge; counted as `missing`.
    NoToken,
    /// 401 `invalid_token`; counted under this reason.
    Invalid(&'static str),
    /// 403 `insufficient_scope` naming the role missing; counted as
    /// `insufficient_scope`.
    Role(&'static str),
    /// 403 `insufficient_scope`: a filter needs a claim the token lacks;
    /// counted as `insufficient_scope`.
    Claim,
}

/// Where a case's token comes from.
enum Token {
    None,
    /// Bytes that are no JWT.
    Raw(&'static str),
    /// A spec for mint.py.
    Mint(Value),
}

/// A request with its token as `Authorization: Bearer`, and what it
/// should get.
struct Case {
    what: &'static str,
    path: &'static str,
    token: Token,
    want: Want,
}

fn case(what: &'static str, path: &'static str, token: Token, want: Want) -> Case {
    Case {
        what,
        path,
        token,
        want,
    }
}

/// Mints the tokens of `cases` in one run of mint.py, then sends each
/// case's request (its token as a Bearer header) and checks its answer and
/// its count.
fn run_bearer_cases(proxy: &Proxy, keys: &Keys, cases: &[Case]) {
    let specs: Vec<Value> = cases
        .iter()
        .filter_map(|c| match &c.token {
            Token::Mint(spec) => Some(spec.clone()),
            _ => None,
        })
        .collect();
    let mut minted = keys.mint(&specs).into_iter();
    for c in cases {
        let token = match &c.token {
            Token::None => None,
            Token::Raw(raw) => Some(raw.to_string()),
            Token::Mint(_) => minted.next(),
        };
        let header = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = header
            .iter()
            .map(|h| ("authorization", h.as_str()))
            .collect();
        expect(proxy, c.what, c.path, &headers, c.want);
    }
}

/// Sends one request and checks what it got, and that the rejection it
/// caused (if any) was counted under its reason and under no other.
fn expect(proxy: &Proxy, what: &str, path: &str, headers: &[(&str, &str)], want: Want) {
    let before = rejections(proxy);
    let answer = get(proxy, path, headers);
    let ctx = format!("{what} ({path}): {}", answer.head);
    let counted_as = match want {
        Want::Open => {
            assert_eq!(answer.status, 200, "{ctx}");
            assert!(answer.values("www-authenticate").is_empty(), "{ctx}");
            None
        }
        Want::NoToken => {
            assert_eq!(answer.status, 401, "{ctx}");
            assert_eq!(answer.challenge(), CHALLENGE, "{ctx}");
            Some("missing")
        }
        Want::Invalid(reason) => {
            assert_eq!(answer.status, 401, "{ctx}");
            let challenge = answer.challenge();
            assert!(challenge.starts_with(INVALID), "{ctx}");
            assert!(challenge.contains(r#"error_description=""#), "{ctx}");
            Some(reason)
        }
        Want::Role(role) => {
            assert_eq!(answer.status, 403, "{ctx}");
            let challenge = answer.challenge();
            assert!(challenge.starts_with(INSUFFICIENT), "{ctx}");
            assert!(challenge.contains(&format!(r#"scope="{role}""#)), "{ctx}");
            Some("insufficient_scope")
        }
        Want::Claim => {
            assert_eq!(answer.status, 403, "{ctx}");
            assert!(answer.challenge().starts_with(INSUFFICIENT), "{ctx}");
            Some("insufficient_scope")
        }
    };
    match counted_as {
        None => assert_eq!(
            total(&rejections(proxy)),
            total(&before),
            "{what} ({path}): counted as a rejection"
        ),
        Some(reason) => {
            wait_until(&format!("{what} to be counted"), || {
                total(&rejections(proxy)) > total(&before)
            });
            let after = rejections(proxy);
            let count = |m: &BTreeMap<String, u64>| m.get(reason).copied().unwrap_or(0);
            assert_eq!(
                (
                    count(&after) - count(&before),
                    total(&after) - total(&before)
                ),
                (1, 1),
                "{what} ({path}): counted once, as {reason}: {before:?} → {after:?}"
            );
        }
    }
}

#[test]
fn tokens_that_do_not_verify_get_401_invalid_token_counted_by_reason() {
    use Token::{Mint, Raw};
    use Want::{Invalid, NoToken, Open, Role};
    let (_broker, keys, proxy) = start("0,1");
    let rs = |patch| Mint(signed("rsa1", "RS256", claims(patch)));
    let cases = [
        // First, while they are fresh: the tokens within the leeway.
        case(
            "expired 1 s ago, within the 5 s leeway",
            "/orders",
            rs(json!({"exp": "now-1"})),
            Open,
        ),
        case(
            "valid 2 s from now, within the leeway",
            "/orders",
            rs(json!({"nbf": "now+2"})),
            Open,
        ),
        case(
            "an audience array holding ours",
            "/orders",
            rs(json!({"aud": ["other", AUDIENCE]})),
            Open,
        ),
        case("an unguarded route", "/open", Token::None, Open),
        case("no token", "/orders", Token::None, NoToken),
        case("not a JWT", "/orders", Raw("garbage"), Invalid("malformed")),
        case(
            "three parts, none of them JSON",
            "/orders",
            Raw("a.b.c"),
            Invalid("malformed"),
        ),
        case(
            "a corrupted signature",
            "/orders",
            Mint(with(good(), "corrupt", json!(true))),
            Invalid("signature"),
        ),
        case(
            "signed by rsa2 under rsa1's kid",
            "/orders",
            Mint(with(
                signed("rsa2", "RS256", claims(json!({}))),
                "kid",
                json!("rsa1"),
            )),
            Invalid("signature"),
        ),
        case(
            "another issuer",
            "/orders",
            rs(json!({"iss": "https://evil.test/"})),
            Invalid("issuer"),
        ),
        case(
            "another audience",
            "/orders",
            rs(json!({"aud": "other"})),
            Invalid("audience"),
        ),
        case(
            "an audience array without ours",
            "/orders",
            rs(json!({"aud": ["other", "sse-kafka-admin"]})),
            Invalid("audience"),
        ),
        // With the default leeway (60 s) this one would pass.
        case(
            "expired 30 s ago, beyond the 5 s leeway",
            "/orders",
            rs(json!({"exp": "now-30"})),
            Invalid("expired"),
        ),
        case(
            "valid only 30 s from now",
            "/orders",
            rs(json!({"nbf": "now+30"})),
            Invalid("not_yet_valid"),
        ),
        case(
            "no exp",
            "/orders",
            rs(json!({"exp": null})),
            Invalid("claims"),
        ),
        case(
            "no iss, which the guard names",
            "/orders",
            rs(json!({"iss": null})),
            Invalid("claims"),
        ),
        case(
            "alg none",
            "/orders",
            Mint(with(
                json!({"key": "none", "claims": claims(json!({}))}),
                "kid",
                json!("rsa1"),
            )),
            Invalid("algorithm"),
        ),
        case(
            "HS256 with rsa1's public key PEM as the secret",
            "/orders",
            Mint(json!({"key": "hs-with-rsa1-pub", "alg": "HS256", "claims": claims(json!({}))})),
            Invalid("algorithm"),
        ),
        case(
            "RS384 from rsa1, whose JWK says RS256",
            "/orders",
            Mint(signed("rsa1", "RS384", claims(json!({})))),
            Invalid("algorithm"),
        ),
        case(
            "an unknown kid",
            "/orders",
            Mint(with(good(), "kid", json!("rsa9"))),
            Invalid("unknown_key"),
        ),
        case(
            "no kid, with four keys to choose from",
            "/orders",
            Mint(with(good(), "kid", json!(null))),
            Invalid("unknown_key"),
        ),
        case(
            "a key the set does not hold",
            "/orders",
            Mint(signed("rsa2", "RS256", claims(json!({})))),
            Invalid("unknown_key"),
        ),
        case(
            "a role that is not the route's",
            "/orders",
            rs(json!({"scope": "orders:write"})),
            Role("orders:read"),
        ),
        case(
            "no roles at all",
            "/orders",
            rs(json!({"scope": null})),
            Role("orders:read"),
        ),
        case(
            "no sub for the identity filter",
            "/me",
            rs(json!({"sub": null})),
            Want::Claim,
        ),
        case(
            "no tenant.id for the claims filter",
            "/tenant",
            rs(json!({})),
            Want::Claim,
        ),
    ];
    run_bearer_cases(&proxy, &keys, &cases);
}

/// A request's header fields, by name.
type Headers = Vec<(&'static str, String)>;

/// Also: at the most verbose log (every crate at debug, sse-kafka at
/// trace), no token, good or bad, reaches a log line.
#[test]
fn a_token_comes_from_the_header_else_the_query_else_the_cookie() {
    let (_broker, keys, proxy) = start_with(
        "0,1",
        &Launch {
            args: &["--log", "debug,sse_kafka=trace"],
            ..Launch::default()
        },
    );
    let tokens = keys.mint(&[good(), with(good(), "corrupt", json!(true))]);
    let (good, bad) = (&tokens[0], &tokens[1]);
    let bearer = |scheme: &str, t: &str| format!("{scheme} {t}");
    let in_query = |t: &str| format!("/orders?access_token={t}");
    let cookie = |t: &str| format!("a=b; access_token={t}");
    let basic = "Basic YWxpY2U6c2VjcmV0".to_owned();
    let cases: Vec<(&str, String, Headers, Want)> = vec![
        (
            "a Bearer header",
            "/orders".into(),
            vec![("Authorization", bearer("Bearer", good))],
            Want::Open,
        ),
        (
            "the scheme in lowercase",
            "/orders".into(),
            vec![("authorization", bearer("bearer", good))],
            Want::Open,
        ),
        (
            "the scheme in uppercase",
            "/orders".into(),
            vec![("authorization", bearer("BEARER", good))],
            Want::Open,
        ),
        (
            "Basic credentials are not a token",
            "/orders".into(),
            vec![("authorization", basic.clone())],
            Want::NoToken,
        ),
        (
            "Basic credentials are passed over for the query's token",
            in_query(good),
            vec![("authorization", basic.clone())],
            Want::Open,
        ),
        ("the query", in_query(good), vec![], Want::Open),
        (
            "the guard's cookie",
            "/orders".into(),
            vec![("cookie", cookie(good))],
            Want::Open,
        ),
        (
            "a cookie of another name",
            "/orders".into(),
            vec![("cookie", format!("token={good}"))],
            Want::NoToken,
        ),
        (
            "a bad header, though the query holds a good token",
            in_query(good),
            vec![("authorization", bearer("Bearer", bad))],
            Want::Invalid("signature"),
        ),
        (
            "a good header, garbage in the query",
            in_query("garbage"),
            vec![("authorization", bearer("Bearer", good))],
            Want::Open,
        ),
        // The first source that holds a token decides, as for the header
        // over the query.
        (
            "a good query token, garbage in the cookie",
            in_query(good),
            vec![("cookie", cookie("garbage"))],
            Want::Open,
        ),
        (
            "garbage in the query, a good cookie",
            in_query("garbage"),
            vec![("cookie", cookie(good))],
            Want::Invalid("malformed"),
        ),
    ];
    for (what, path, headers, want) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        expect(&proxy, what, path, &headers, *want);
    }

    // A token in the URL must not stay in a cache.
    let by_query = get(&proxy, &in_query(good), &[]);
    assert_eq!(by_query.status, 200, "{}", by_query.head);
    assert_eq!(
        by_query.values("cache-control"),
        ["no-store, private"],
        "{}",
        by_query.head
    );

    // A browser sends the cookie cross-origin only with credentials, and
    // reads the answer only when both headers allow it.
    let by_cookie = get(
        &proxy,
        "/orders",
        &[("origin", ORIGIN), ("cookie", &cookie(good))],
    );
    assert_eq!(by_cookie.status, 200, "{}", by_cookie.head);
    assert_eq!(
        by_cookie.values("access-control-allow-origin"),
        [ORIGIN],
        "{}",
        by_cookie.head
    );
    assert_eq!(
        by_cookie.values("access-control-allow-credentials"),
        ["true"],
        "{}",
        by_cookie.head
    );

    // The preflight before a header token is sent cross-origin.
    let preflight = raw_request(
        proxy.addr,
        format!(
            "OPTIONS /orders HTTP/1.1\r\nhost: test\r\norigin: {ORIGIN}\r\n\
             access-control-request-method: GET\r\n\
             access-control-request-headers: authorization\r\n\r\n"
        )
        .as_bytes(),
    );
    let preflight = Answer::parse(&String::from_utf8_lossy(&preflight));
    assert_eq!(preflight.status, 204, "{}", preflight.head);
    assert_eq!(
        preflight.values("access-control-allow-origin"),
        [ORIGIN],
        "{}",
        preflight.head
    );
    let allowed = preflight.values("access-control-allow-headers");
    assert!(
        allowed
            .iter()
            .flat_map(|v| v.split(','))
            .any(|h| h.trim().eq_ignore_ascii_case("authorization")),
        "{}",
        preflight.head
    );

    // A request the server cannot parse, a token in its target and
    // headers: its error must not quote them either.
    let broken = raw_request(
        proxy.addr,
        format!(
            "GET /orders?access_token={good} HTTP/1.1\r\nhost: test\r\n\
             cookie: access_token={bad}\r\nnot a header\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(String::from_utf8_lossy(&broken).starts_with("HTTP/1.1 400"));
    let log = proxy.log_lines();
    assert!(
        log.iter().any(|l| l.contains("guard refused a request")),
        "the log is at debug: {log:#?}"
    );
    // Each token whole, and its payload and signature (the header part,
    // `{"alg":...}`, is the same in every token).
    for token in [good, bad] {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "{token}");
        for secret in [token.as_str(), parts[1], parts[2]] {
            assert!(
                !log.iter().any(|l| l.contains(secret)),
                "a log line holds a token's {secret}"
            );
        }
    }
}

/// The data of the next `n` events, in order.
fn data(c: &mut SseClient, n: usize) -> Vec<String> {
    c.take(n).into_iter().map(|e| e.data).collect()
}

/// The progress id of topic `items` at these next offsets.
fn progress_id(next: &[i64]) -> String {
    let next: Vec<Offset> = next.iter().copied().map(Offset).collect();
    let mut id = Vec::new();
    event_id::encode_progress(
        event_id::topic_hash("items"),
        &next,
        &mut Vec::new(),
        &mut id,
    );
    String::from_utf8(id).unwrap()
}

#[test]
fn roles_and_claims_decide_what_a_token_reads() {
    use Want::{Open, Role};
    let (broker, keys, proxy) = start("0,1");
    let records = [
        ("alice", "alice-0"),
        ("bob", "bob-0"),
        ("alice", "alice-1"),
        ("bob", "bob-1"),
    ];
    for (key, value) in records {
        broker.produce("items", 0, Some(key.as_bytes()), Some(value.as_bytes()));
    }
    let rs = |patch| signed("rsa1", "RS256", claims(patch));
    let role_cases = [
        (
            "scope, a space-separated string",
            "/orders",
            rs(json!({"scope": "profile orders:read other"})),
            Open,
        ),
        (
            "scope, an array",
            "/orders",
            rs(json!({"scope": ["other", "orders:read"]})),
            Open,
        ),
        (
            "a role that only starts with the route's",
            "/orders",
            rs(json!({"scope": "orders:readall"})),
            Role("orders:read"),
        ),
        (
            "realm_access.roles, a nested array",
            "/nested",
            rs(json!({"scope": null, "realm_access": {"roles": ["x", "orders:read"]}})),
            Open,
        ),
        (
            "realm_access.roles without the route's",
            "/nested",
            rs(json!({"scope": null, "realm_access": {"roles": ["x"]}})),
            Role("orders:read"),
        ),
        (
            "the role in scope, which this guard does not read",
            "/nested",
            rs(json!({})),
            Role("orders:read"),
        ),
    ];
    let specs: Vec<Value> = role_cases.iter().map(|c| c.2.clone()).collect();
    for ((what, path, _, want), token) in role_cases.iter().zip(keys.mint(&specs)) {
        let auth = format!("Bearer {token}");
        expect(&proxy, what, path, &[("authorization", &auth)], *want);
    }

    // Each reads its own records and no other: the stream's id then
    // reaches the end of the partition with nothing more delivered.
    let tokens = keys.mint(&[
        rs(json!({"sub": "alice"})),
        rs(json!({"sub": "bob"})),
        rs(json!({"sub": "alice", "tenant": {"id": "bob"}})),
    ]);
    let streams = [
        ("/me", Some(&tokens[0]), vec!["alice-0", "alice-1"]),
        ("/me", Some(&tokens[1]), vec!["bob-0", "bob-1"]),
        ("/tenant", Some(&tokens[2]), vec!["bob-0", "bob-1"]),
        ("/open", None, vec!["alice-0", "bob-0", "alice-1", "bob-1"]),
    ];
    for (path, token, want) in streams {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let mut c = SseClient::connect(proxy.addr, path, &headers);
        assert_eq!(c.status(), 200, "{path}: {}", c.head);
        assert_eq!(data(&mut c, want.len()), want, "{path}");
        c.wait_for_id(&progress_id(&[4]));
        assert_eq!(c.buffered_events(), 0, "{path} got a record not its own");
    }

    // A topic named by a claim: the tenant's own, a name Kafka cannot
    // have is a 404, no claim a 403.
    broker.create_topic("t.bob", 1);
    broker.produce("t.bob", 0, None, Some(b"own-0"));
    let tokens = keys.mint(&[
        rs(json!({"tenant": {"id": "bob"}})),
        rs(json!({"tenant": {"id": "../items"}})),
        rs(json!({})),
    ]);
    let bearer = |t: &str| format!("Bearer {t}");
    let mut own = SseClient::connect(
        proxy.addr,
        "/own-topic",
        &[("authorization", &bearer(&tokens[0]))],
    );
    assert_eq!(own.status(), 200, "{}", own.head);
    assert_eq!(data(&mut own, 1), ["own-0"]);
    assert_eq!(get_bearer(&proxy, "/own-topic", &tokens[1]).status, 404);
    expect(
        &proxy,
        "no tenant.id for the topic",
        "/own-topic",
        &[("authorization", &bearer(&tokens[2]))],
        Want::Claim,
    );
}

#[test]
fn every_algorithm_verifies_with_its_own_key_and_no_other() {
    use Want::{Invalid, Open};
    let (_broker, keys, proxy) = start("0,1");
    let hs = |alg| {
        with(
            signed("hs", alg, json!({"exp": "now+3600"})),
            "kid",
            json!(null),
        )
    };
    let any = |key, alg| signed(key, alg, claims(json!({})));
    let cases = [
        ("RS256 from rsa1", "/orders", any("rsa1", "RS256"), Open),
        (
            "ES256 from ec1 (P-256)",
            "/orders",
            any("ec1", "ES256"),
            Open,
        ),
        (
            "ES384 from ec2 (P-384)",
            "/orders",
            any("ec2", "ES384"),
            Open,
        ),
        (
            "EdDSA from ed1 (Ed25519)",
            "/orders",
            any("ed1", "EdDSA"),
            Open,
        ),
        (
            "ES256 under ec2's kid, whose JWK says ES384",
            "/orders",
            with(any("ec1", "ES256"), "kid", json!("ec2")),
            Invalid("algorithm"),
        ),
        ("HS256 from the secret", "/hs", hs("HS256"), Open),
        ("HS384 from the secret", "/hs", hs("HS384"), Open),
        ("HS512 from the secret", "/hs", hs("HS512"), Open),
        (
            "HS256 with a corrupted signature",
            "/hs",
            with(hs("HS256"), "corrupt", json!(true)),
            Invalid("signature"),
        ),
        (
            "RS256 where the guard has a secret",
            "/hs",
            with(any("rsa1", "RS256"), "kid", json!(null)),
            Invalid("algorithm"),
        ),
        // rsa1 without `alg`: every RSA algorithm fits it.
        (
            "RS256 from rsa1, no alg",
            "/noalg",
            any("rsa1", "RS256"),
            Open,
        ),
        (
            "RS384 from rsa1, no alg",
            "/noalg",
            any("rsa1", "RS384"),
            Open,
        ),
        (
            "RS512 from rsa1, no alg",
            "/noalg",
            any("rsa1", "RS512"),
            Open,
        ),
        (
            "PS256 from rsa1, no alg",
            "/noalg",
            any("rsa1", "PS256"),
            Open,
        ),
        (
            "ES256 where the set holds rsa1 alone",
            "/noalg",
            any("ec1", "ES256"),
            Invalid("unknown_key"),
        ),
        // The inline set, and lists of issuers and audiences.
        (
            "RS256 from an inline JWK",
            "/inline",
            any("rsa1", "RS256"),
            Open,
        ),
        (
            "the other issuer and audience of the lists",
            "/inline",
            signed(
                "rsa1",
                "RS256",
                claims(json!({"iss": "https://other.test/", "aud": "other"})),
            ),
            Open,
        ),
        (
            "an issuer in neither list",
            "/inline",
            signed(
                "rsa1",
                "RS256",
                claims(json!({"iss": "https://evil.test/"})),
            ),
            Invalid("issuer"),
        ),
    ];
    let specs: Vec<Value> = cases.iter().map(|c| c.2.clone()).collect();
    for ((what, path, _, want), token) in cases.iter().zip(keys.mint(&specs)) {
        let auth = format!("Bearer {token}");
        expect(&proxy, what, path, &[("authorization", &auth)], *want);
    }
}

#[test]
fn a_keys_file_is_read_again_when_it_changes() {
    let (_broker, keys, proxy) = start("0,1");
    let tokens = keys.mint(&[
        signed("rsa2", "RS256", claims(json!({}))),
        good(),
        signed("ec1", "ES256", claims(json!({}))),
    ]);
    let (rsa2, rsa1, ec1) = (&tokens[0], &tokens[1], &tokens[2]);
    let refused = get_bearer(&proxy, "/rotating", rsa2);
    assert_eq!(refused.status, 401, "{}", refused.head);
    assert!(refused.challenge().starts_with(INVALID), "{}", refused.head);
    assert_eq!(get_bearer(&proxy, "/rotating", ec1).status, 200);

    // Replaced the way deployments replace it: written beside, renamed
    // over, so the guard never reads half a file.
    let next = keys.path("rotating.json.next");
    std::fs::copy(keys.path("jwks-rsa2.json"), &next).unwrap();
    std::fs::rename(&next, keys.path(ROTATING)).unwrap();
    wait_until("the guard to read the new keys", || {
        get_bearer(&proxy, "/rotating", rsa2).status == 200
    });
    assert_eq!(get_bearer(&proxy, "/rotating", rsa1).status, 200);
    // The new set replaced the old one: ec1 is gone from it (a token it has
    // not seen, so no cache can answer for it).
    let ec1_after = keys.mint_one(signed("ec1", "ES256", claims(json!({"sub": "bob"}))));
    let refused = get_bearer(&proxy, "/rotating", &ec1_after);
    assert_eq!(refused.status, 401, "{}", refused.head);
    assert!(refused.challenge().starts_with(INVALID), "{}", refused.head);
    // The other guards still have their own keys.
    assert_eq!(get_bearer(&proxy, "/orders", ec1).status, 200);
}

#[test]
fn a_token_is_verified_once_then_served_from_the_cache() {
    const CHECKS: &str = "sse_kafka_guard_signature_checks_total";
    const HITS: &str = "sse_kafka_guard_token_cache_hits_total";
    // One shard, so one cache.
    let (_broker, keys, proxy) = start("0");
    let tokens = keys.mint(&[good(), signed("ec1", "ES256", claims(json!({})))]);
    let checks = metric_sum(&proxy, CHECKS, None);
    let hits = metric_sum(&proxy, HITS, None);
    for _ in 0..20 {
        let c = SseClient::connect(
            proxy.addr,
            "/orders",
            &[("authorization", &format!("Bearer {}", tokens[0]))],
        );
        assert_eq!(c.status(), 200, "{}", c.head);
    }
    wait_until("19 cache hits", || {
        metric_sum(&proxy, HITS, None) >= hits + 19
    });
    assert_eq!(
        (
            metric_sum(&proxy, CHECKS, None) - checks,
            metric_sum(&proxy, HITS, None) - hits
        ),
        (1, 19),
        "20 connections with one token: (signature checks, cache hits)"
    );
    // Another token is checked once more.
    assert_eq!(get_bearer(&proxy, "/orders", &tokens[1]).status, 200);
    wait_until("a second signature check", || {
        metric_sum(&proxy, CHECKS, None) > checks + 1
    });
    assert_eq!(metric_sum(&proxy, CHECKS, None) - checks, 2);
    assert_eq!(metric_sum(&proxy, HITS, None) - hits, 19);
}

/// `sse-kafka check --config <file>` of `config`: exit code and stderr.
fn check(config: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sse-kafka"))
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_route_names_a_guard_that_exists_and_a_cookie_needs_listed_origins() {
    let keys = Keys::new();
    std::fs::copy(keys.path("jwks.json"), keys.path(ROTATING)).unwrap();
    let config = format!(
        "kafka:\n  bootstrap: [\"127.0.0.1:9092\"]\n{}",
        guards_yaml(&keys)
    );
    let (code, err) = check(&config);
    assert_eq!(code, 0, "the tests' config is valid: {err}");

    let unknown = config.replace("guard: nested\n", "guard: nosuch\n");
    assert_ne!(unknown, config);
    let (code, err) = check(&unknown);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nosuch") && err.contains("guard"), "{err}");

    // Without `cors`, every origin is allowed (`*`): a cookie would then
    // authenticate a request any website makes.
    for cors in ["", "cors: { allow_origins: [\"*\"] }\n"] {
        let open = config.replace(&cors_line(), cors);
        assert_ne!(open, config);
        let (code, err) = check(&open);
        assert_eq!(code, 2, "cors {cors:?}: {err}");
        assert!(
            err.contains("cookie") && err.contains("allow_origins"),
            "cors {cors:?}: {err}"
        );
    }
}
