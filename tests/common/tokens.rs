//! Tokens for the guard tests: keys and JWTs minted by PyJWT and
//! `cryptography` (tests/clients/mint.py), an implementation independent of
//! the server's; answers read to their head; labelled metrics.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{http_get, run_python_client, Proxy, SseClient};

/// A directory of fresh keys made by `mint.py keys`, and the tokens minted
/// with them. The proxy reads the key files while it runs: this lives as
/// long as the test.
pub struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    pub fn new() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys { dir };
        run_python_client("mint.py", &["keys", &keys.path("")], "");
        keys
    }

    /// The absolute path of a file in the directory.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// One token per spec (see mint.py), in order.
    pub fn mint(&self, specs: &[Value]) -> Vec<String> {
        let input: String = specs.iter().map(|s| format!("{s}\n")).collect();
        let tokens = run_python_client("mint.py", &["token", &self.path("")], &input);
        assert_eq!(tokens.len(), specs.len(), "one token per spec");
        tokens
    }

    pub fn mint_one(&self, spec: Value) -> String {
        self.mint(&[spec]).remove(0)
    }

    /// The public JWK with this `kid` in a JWK set file.
    pub fn jwk(&self, file: &str, kid: &str) -> Value {
        let set: Value =
            serde_json::from_str(&std::fs::read_to_string(self.path(file)).unwrap()).unwrap();
        set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .unwrap_or_else(|| panic!("no kid {kid} in {file}"))
            .clone()
    }
}

/// A YAML (and JSON) double-quoted string.
pub fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A JWK (an object of strings) as a YAML flow mapping: JSON, with a
/// space after each colon, which YAML 1.1 parsers want.
pub fn flow(jwk: &Value) -> String {
    let members: Vec<String> = jwk
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{}: {v}", quoted(k)))
        .collect();
    format!("{{{}}}", members.join(", "))
}

/// A response's status and head; its body is not read (a stream's never
/// ends).
pub struct Answer {
    pub status: u16,
    pub head: String,
}

impl Answer {
    pub fn parse(head: &str) -> Answer {
        assert!(head.len() >= 12, "no status line: {head:?}");
        Answer {
            status: head[9..12].parse().unwrap(),
            head: head.to_owned(),
        }
    }

    /// Every value of the header `name` (names compared without case).
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.head
            .split("\r\n")
            .skip(1)
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect()
    }

    /// The one `www-authenticate` value.
    pub fn challenge(&self) -> &str {
        let values = self.values("www-authenticate");
        assert_eq!(values.len(), 1, "one challenge: {}", self.head);
        values[0]
    }
}

/// A `GET` of `path` with `headers`: the status and head of the answer.
pub fn get(proxy: &Proxy, path: &str, headers: &[(&str, &str)]) -> Answer {
    let client = SseClient::connect(proxy.addr, path, headers);
    Answer::parse(&client.head)
}

/// `get` with the token as `Authorization: Bearer`.
pub fn get_bearer(proxy: &Proxy, path: &str, token: &str) -> Answer {
    get(
        proxy,
        path,
        &[("authorization", &format!("Bearer {token}"))],
    )
}

/// The sum over every sample of the metric `name` whose labels hold
/// `label` (`reason="expired"`), or over all its samples when `None`.
/// Zero when it has none: a labelled counter appears with its first count.
pub fn metric_sum(proxy: &Proxy, name: &str, label: Option<&str>) -> u64 {
    samples(proxy, name)
        .into_iter()
        .filter(|(labels, _)| label.is_none_or(|l| labels.split(',').any(|x| x == l)))
        .map(|(_, v)| v)
        .sum()
}

/// The samples of metric `name` in `/metrics`: (labels without the
/// braces, value).
pub fn samples(proxy: &Proxy, name: &str) -> Vec<(String, u64)> {
    let text = http_get(proxy.admin, "/metrics").expect("metrics");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(inner) => inner.split_once('}')?,
                None => ("", rest),
            };
            // Neither labels nor a space after the name: another metric
            // whose name starts with this one's.
            let value = value.strip_prefix(' ')?;
            let value: f64 = value.split_whitespace().next()?.parse().ok()?;
            Some((labels.to_owned(), value as u64))
        })
        .collect()
}

/// `sse_kafka_guard_rejections_total` by reason.
pub fn rejections(proxy: &Proxy) -> BTreeMap<String, u64> {
    let mut by_reason = BTreeMap::new();
    for (labels, value) in samples(proxy, "sse_kafka_guard_rejections_total") {
        let reason = labels
            .split(',')
            .find_map(|l| l.strip_prefix("reason=\""))
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or_else(|| panic!("a rejection count without a reason: {{{labels}}}"));
        *by_reason.entry(reason.to_owned()).or_insert(0) += value;
    }
    by_reason
}

pub fn total(rejections: &BTreeMap<String, u64>) -> u64 {
    rejections.values().sum()
}
