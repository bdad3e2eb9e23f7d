//! `guards:` (the JWT guards by name) and a route's `guard` and `roles`:
//! their raw serde form, the per-value checks while they are read, and the
//! checks across fields once the whole file is (an unknown guard, a guard
//! substitution on an unguarded route, a cookie guard beside `cors: *`).
//! Key files are read here too, so that `check` finds a broken key where
//! the config names it; the running proxy re-reads them with
//! [`read_key_file`] when they change.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::bounds::{read_at_most, ReadError};
use super::defaults::{
    DEFAULT_GUARD_LEEWAY, DEFAULT_KEYS_MIN_REFRESH, DEFAULT_KEYS_REFRESH, MAX_GUARDS,
    MAX_GUARD_LEEWAY, MAX_KEY_FILE_BYTES,
};
use super::error::ConfigError;
use super::model::{Guard, KeySource};
use super::values::{deserialize_str_with, DurationAtLeast, PositiveDuration};
use crate::codec::filter::{FilterSpec, Source, Template};
use crate::codec::jwt::KeySet;

/// The shortest HMAC secret: RFC 7518 §3.2 wants a key at least as long as
/// the hash output, 32 bytes for HS256.
pub const MIN_SECRET_BYTES: usize = 32;

/// `guards.NAME`.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a guard: a mapping with keys (or secret), issuer, audience, ..."
)]
pub(super) struct RawGuard {
    #[serde(default)]
    issuer: Option<Texts>,
    #[serde(default)]
    audience: Option<Texts>,
    #[serde(default)]
    keys: Option<RawKeys>,
    #[serde(default)]
    secret: Option<RawSecret>,
    #[serde(default = "default_roles")]
    roles: ClaimPath,
    #[serde(default = "default_identity")]
    identity: ClaimPath,
    #[serde(default = "default_leeway")]
    leeway: Leeway,
    #[serde(default)]
    challenge: Option<PositiveDuration>,
    #[serde(default)]
    cookie: Option<CookieName>,
}

/// `guards.NAME.keys`: exactly one of a file, inline keys or a URL.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "the guard's public keys: { file: jwks.json }, { jwks: [...] } or { url: ... }"
)]
struct RawKeys {
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    jwks: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    refresh: Option<PositiveDuration>,
    #[serde(default)]
    min_refresh: Option<PositiveDuration>,
}

/// `guards.NAME.secret`.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "the guard's HMAC secret: { file: hs.key }"
)]
struct RawSecret {
    file: String,
}

/// A claim's dotted path (`sub`, `realm_access.roles`).
struct ClaimPath(String);

impl<'de> Deserialize<'de> for ClaimPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(
            d,
            "a claim name such as \"sub\" or \"realm_access.roles\"",
            |s| {
                if s.is_empty() || s.split('.').any(str::is_empty) {
                    return Err(format!(
                    "invalid claim path '{s}': names joined by single dots, such as realm_access.roles"
                ));
                }
                Ok(ClaimPath(s.to_owned()))
            },
        )
    }
}

/// `leeway`: at most [`MAX_GUARD_LEEWAY`]; zero is allowed.
type Leeway = DurationAtLeast<0, { MAX_GUARD_LEEWAY.as_nanos() as u64 }>;

/// A cookie name (RFC 6265 §4.1.1: an RFC 2616 token).
struct CookieName(String);

impl<'de> Deserialize<'de> for CookieName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "a cookie name such as \"access_token\"", |s| {
            if !s.is_empty() && s.bytes().all(is_token_byte) {
                Ok(CookieName(s.to_owned()))
            } else {
                Err(format!(
                    "invalid cookie name '{s}': letters, digits and !#$%&'*+-.^_`|~ only"
                ))
            }
        })
    }
}

/// An RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// One string or a list of them, none empty (`issuer`, `audience`).
struct Texts(Vec<String>);

impl<'de> Deserialize<'de> for Texts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        one_or_many(d, |_| Ok(())).map(Texts)
    }
}

/// A route's `roles`: what its tokens must all hold. Each goes into the
/// `scope="..."` of a 403 and is compared with the words of a claim, so it
/// is one RFC 6750 scope token: no spaces, quotes or backslashes.
#[derive(Default)]
pub(super) struct Roles(Vec<String>);

impl Roles {
    /// Roles not read from the config file (an AsyncAPI scheme's `scopes`),
    /// checked as the file's are.
    pub(super) fn checked(roles: Vec<String>) -> Result<Self, String> {
        for r in &roles {
            check_role(r)?;
        }
        Ok(Roles(roles))
    }
}

/// One role: one RFC 6750 scope token.
fn check_role(r: &str) -> Result<(), String> {
    if !r.is_empty()
        && r.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        Ok(())
    } else {
        Err(format!(
            "invalid role '{r}': printable ASCII without spaces, quotes or backslashes"
        ))
    }
}

impl<'de> Deserialize<'de> for Roles {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        one_or_many(d, check_role).map(Roles)
    }
}

/// One string or a non-empty list of them, each non-empty and passing
/// `check`: checked inside the visitor, so an error names the value's own
/// position (see values.rs).
fn one_or_many<'de, D: Deserializer<'de>>(
    d: D,
    check: fn(&str) -> Result<(), String>,
) -> Result<Vec<String>, D::Error> {
    type Check = fn(&str) -> Result<(), String>;
    /// One string, non-empty and passing `check`.
    fn checked(v: &str, check: Check) -> Result<String, String> {
        if v.is_empty() {
            return Err("an empty string names nothing".into());
        }
        check(v).map(|()| v.to_owned())
    }
    struct OneOrMany(Check);
    impl<'de> Visitor<'de> for OneOrMany {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or a list of strings")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
            Ok(vec![checked(v, self.0).map_err(E::custom)?])
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut all = Vec::new();
            while let Some(one) = seq.next_element_seed(CheckedSeed(self.0))? {
                all.push(one);
            }
            if all.is_empty() {
                return Err(de::Error::custom("an empty list; list at least one"));
            }
            Ok(all)
        }
    }
    /// One list entry, checked while it is read (at its own position).
    struct CheckedSeed(Check);
    impl<'de> de::DeserializeSeed<'de> for CheckedSeed {
        type Value = String;
        fn deserialize<D2: Deserializer<'de>>(self, d: D2) -> Result<String, D2::Error> {
            deserialize_str_with(d, "a string", |v| checked(v, self.0))
        }
    }
    d.deserialize_any(OneOrMany(check))
}

fn default_roles() -> ClaimPath {
    ClaimPath("scope".to_owned())
}
fn default_identity() -> ClaimPath {
    ClaimPath("sub".to_owned())
}
fn default_leeway() -> Leeway {
    DurationAtLeast(DEFAULT_GUARD_LEEWAY)
}

type Fail<'a> = &'a dyn Fn(String, String) -> ConfigError;

/// The guards, in order of name (a route refers to one by its index), with
/// their keys loaded. `base` is the config file's folder, which relative
/// key files are read from.
pub(super) fn build_guards(
    raw: BTreeMap<String, RawGuard>,
    base: &Path,
    allow_origins: &[String],
    error: Fail<'_>,
) -> Result<Vec<Guard>, ConfigError> {
    if raw.len() > MAX_GUARDS {
        return Err(error(
            "guards".into(),
            format!("{} guards; at most {MAX_GUARDS}", raw.len()),
        ));
    }
    raw.into_iter()
        .map(|(name, g)| build_guard(name, g, base, allow_origins, error))
        .collect()
}

fn build_guard(
    name: String,
    g: RawGuard,
    base: &Path,
    allow_origins: &[String],
    error: Fail<'_>,
) -> Result<Guard, ConfigError> {
    let at = |field: &str| format!("guards.{name}.{field}");
    // The name is part of every dotted field and of the metrics' labels.
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(error(
            "guards".into(),
            format!("invalid guard name '{name}': letters, digits, '_' and '-' only"),
        ));
    }
    let (source, keys) = match (g.keys, g.secret) {
        (Some(_), Some(_)) => {
            return Err(error(
                at("secret"),
                "a guard has keys or a secret, not both".into(),
            ))
        }
        (None, None) => {
            return Err(error(
                format!("guards.{name}"),
                "a guard needs keys (a JWK set) or a secret (HMAC)".into(),
            ))
        }
        (Some(keys), None) => raw_keys(keys, base, &at, error)?,
        (None, Some(secret)) => {
            let path = base.join(&secret.file);
            let keys = read_key_file(&path, true).map_err(|m| error(at("secret.file"), m))?;
            (KeySource::Secret(path), Some(keys))
        }
    };
    if g.cookie.is_some() && allow_origins.iter().any(|o| o == "*") {
        return Err(error(
            at("cookie"),
            "a cookie is sent by the browser on its own, so a guard that reads one needs cors.allow_origins to list the origins that may use it, not \"*\"".into(),
        ));
    }
    Ok(Guard {
        name,
        issuers: g.issuer.map(|t| t.0).unwrap_or_default(),
        audiences: g.audience.map(|t| t.0).unwrap_or_default(),
        source,
        keys: keys.map(Arc::new),
        roles_claim: g.roles.0,
        identity_claim: g.identity.0,
        leeway: g.leeway.0,
        challenge: g.challenge.map(|c| c.0),
        cookie: g.cookie.map(|c| c.0),
    })
}

fn raw_keys(
    keys: RawKeys,
    base: &Path,
    at: &dyn Fn(&str) -> String,
    error: Fail<'_>,
) -> Result<(KeySource, Option<KeySet>), ConfigError> {
    let given = [
        ("file", keys.file.is_some()),
        ("jwks", keys.jwks.is_some()),
        ("url", keys.url.is_some()),
    ];
    let mut named = given.iter().filter(|(_, is)| *is).map(|(n, _)| *n);
    let (Some(one), None) = (named.next(), named.next()) else {
        return Err(error(
            at("keys"),
            "give exactly one of file, jwks or url".into(),
        ));
    };
    if one != "url" {
        for (field, set) in [
            ("refresh", keys.refresh.is_some()),
            ("min_refresh", keys.min_refresh.is_some()),
        ] {
            if set {
                return Err(error(
                    at(&format!("keys.{field}")),
                    format!("{field} is for keys from a url"),
                ));
            }
        }
    }
    match (keys.file, keys.jwks) {
        (Some(file), _) => {
            let path = base.join(file);
            let set = read_key_file(&path, false).map_err(|m| error(at("keys.file"), m))?;
            Ok((KeySource::Jwks(path), Some(set)))
        }
        (None, Some(values)) => {
            let set = KeySet::from_jwk_values(values)
                .map_err(|e| error(at("keys.jwks"), e.to_string()))?;
            Ok((KeySource::Inline, Some(set)))
        }
        (None, None) => {
            let url = keys.url.unwrap_or_default();
            check_url(&url).map_err(|m| error(at("keys.url"), m))?;
            let refresh = keys.refresh.map_or(DEFAULT_KEYS_REFRESH, |d| d.0);
            let min_refresh = keys.min_refresh.map_or(DEFAULT_KEYS_MIN_REFRESH, |d| d.0);
            if min_refresh > refresh {
                return Err(error(
                    at("keys.min_refresh"),
                    format!(
                        "min_refresh ({}) must not exceed refresh ({})",
                        humantime::format_duration(min_refresh),
                        humantime::format_duration(refresh)
                    ),
                ));
            }
            let source = KeySource::Url {
                url,
                refresh,
                min_refresh,
            };
            Ok((source, None))
        }
    }
}

/// The longest key URL.
const MAX_URL_BYTES: usize = 2048;

/// A key URL: `http://` or `https://` and a host, printable ASCII.
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("'{url}' is not an http:// or https:// URL"))?;
    if url.len() > MAX_URL_BYTES {
        return Err(format!(
            "the URL is {} bytes; at most {MAX_URL_BYTES}",
            url.len()
        ));
    }
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("'{url}' names no host"));
    }
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a URL of printable ASCII without spaces (percent-encode the rest)".into());
    }
    Ok(())
}

/// The keys of a key file: a JWK set, or (`secret`) an HMAC secret, the
/// file's bytes exactly (a trailing line break is part of it). At most
/// [`MAX_KEY_FILE_BYTES`] are read.
pub fn read_key_file(path: &Path, secret: bool) -> Result<KeySet, String> {
    let bytes = read_at_most(path, MAX_KEY_FILE_BYTES).map_err(|e| match e {
        ReadError::Io(e) => format!("cannot read {}: {e}", path.display()),
        ReadError::TooLarge => format!(
            "{} is larger than {MAX_KEY_FILE_BYTES} bytes",
            path.display()
        ),
    })?;
    let what = |e: crate::codec::jwt::KeyError| format!("{}: {e}", path.display());
    if secret {
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "{}: the secret is {} bytes; HMAC wants at least {MIN_SECRET_BYTES}",
                path.display(),
                bytes.len()
            ));
        }
        KeySet::from_secret(&bytes).map_err(what)
    } else {
        KeySet::from_jwks(&bytes).map_err(what)
    }
}

/// A route's guard and roles, checked against the guards and against its
/// substitutions: `guard` names one of `guards`; `roles` need a guard;
/// `${guard.*}` needs one too. Returns the guard's index.
pub(super) fn route_guard(
    i: usize,
    guard: Option<&str>,
    roles: &Option<Roles>,
    guards: &[Guard],
    topic: Option<&Template>,
    filters: &[FilterSpec],
    error: Fail<'_>,
) -> Result<Option<usize>, ConfigError> {
    let index = match guard {
        None => None,
        Some(name) => Some(guards.iter().position(|g| g.name == name).ok_or_else(|| {
            let known: Vec<&str> = guards.iter().map(|g| g.name.as_str()).collect();
            let known = if known.is_empty() {
                "there is no guards: section".to_owned()
            } else {
                format!("guards: {}", known.join(", "))
            };
            error(
                format!("routes[{i}].guard"),
                format!("no guard '{name}' ({known})"),
            )
        })?),
    };
    if index.is_none() && roles.is_some() {
        return Err(error(
            format!("routes[{i}].roles"),
            "roles are checked by a guard; this route has none".into(),
        ));
    }
    let topic_subs = topic.into_iter().flat_map(|t| t.substitutions());
    let places = topic_subs.map(|s| ("topic".to_owned(), s)).chain(
        filters
            .iter()
            .enumerate()
            .flat_map(|(j, f)| f.substitutions().map(move |s| (format!("filters[{j}]"), s))),
    );
    for (field, (source, name)) in places {
        if source == Source::Query && name == "access_token" {
            return Err(error(
                format!("routes[{i}].{field}"),
                "${query.access_token} is the guard's token: it is taken out of the query and never substituted".into(),
            ));
        }
        if source == Source::Guard && index.is_none() {
            return Err(error(
                format!("routes[{i}].{field}"),
                format!("${{guard.{name}}} needs a guard on this route (its `guard`)"),
            ));
        }
    }
    Ok(index)
}

/// The route's roles, for the model.
pub(super) fn roles(roles: Option<Roles>) -> Vec<String> {
    roles.map(|r| r.0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::testing::{assert_errors, parse_ok, ErrorCase, MINIMAL};
    use crate::config::{load, parse};

    /// An Ed25519 public JWK (the seed 00 01 .. 1f; see codec/jwt/tests.rs).
    const ED_JWK: &str = r#"{"kty": "OKP", "crv": "Ed25519", "x": "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg", "kid": "ed1"}"#;

    /// A folder with `jwks.json` (the Ed25519 key), `hs.key` (40 bytes),
    /// `short.key` (5 bytes) and `bad.json` (not a JWK set).
    fn key_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let write =
            |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).unwrap();
        write("jwks.json", format!("{{\"keys\": [{ED_JWK}]}}").as_bytes());
        write("hs.key", &[7u8; 40]);
        write("short.key", b"12345");
        write("bad.json", b"{\"keys\": 5}");
        dir
    }

    /// `guards:` first (line 1), then `MINIMAL` with `route` appended.
    fn with_guards(guards: &str, route: &str) -> String {
        format!("guards:\n{guards}{MINIMAL}{route}")
    }

    #[test]
    fn guards_load_their_keys_and_routes_name_them() {
        let dir = key_dir();
        let d = dir.path().display();
        let text = format!(
            "cors: {{allow_origins: [\"https://app.test\"]}}\n\
             guards:\n  jwt0:\n    issuer: https://auth.test/\n    audience: [a, b]\n    keys: {{file: {d}/jwks.json}}\n    roles: realm_access.roles\n    identity: email\n    leeway: 5s\n    challenge: 30s\n    cookie: access_token\n\
             \x20 hs:\n    secret: {{file: {d}/hs.key}}\n\
             \x20 inline:\n    issuer: x\n    audience: y\n    keys:\n      jwks: [{ED_JWK}]\n\
             {MINIMAL}    guard: jwt0\n    roles: [\"orders:read\", admin]\n    filters:\n      - key: \"${{guard.identity}}\"\n\
             \x20 - path: /hs\n    topic: items\n    guard: hs\n"
        );
        let c = parse_ok(&text);
        let names: Vec<&str> = c.guards.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["hs", "inline", "jwt0"], "in order of name");
        let jwt0 = &c.guards[2];
        assert_eq!(jwt0.issuers, ["https://auth.test/"]);
        assert_eq!(jwt0.audiences, ["a", "b"]);
        assert_eq!(jwt0.source, KeySource::Jwks(dir.path().join("jwks.json")));
        assert!(jwt0.keys.as_ref().unwrap().has_kid("ed1"));
        assert_eq!(
            (jwt0.roles_claim.as_str(), jwt0.identity_claim.as_str()),
            ("realm_access.roles", "email")
        );
        assert_eq!(jwt0.leeway, Duration::from_secs(5));
        assert_eq!(jwt0.challenge, Some(Duration::from_secs(30)));
        assert_eq!(jwt0.cookie.as_deref(), Some("access_token"));
        let hs = &c.guards[0];
        assert_eq!(hs.source, KeySource::Secret(dir.path().join("hs.key")));
        assert_eq!(
            (
                hs.roles_claim.as_str(),
                hs.identity_claim.as_str(),
                hs.leeway
            ),
            ("scope", "sub", Duration::from_secs(60)),
            "the defaults"
        );
        assert_eq!(c.guards[1].source, KeySource::Inline);
        // Keys from a URL: fetched once the proxy runs, with its defaults.
        let u = parse_ok(&with_guards(
            "  u:\n    keys: {url: \"https://auth.test/jwks.json\"}\n",
            "    guard: u\n",
        ));
        assert!(u.guards[0].keys.is_none());
        assert_eq!(
            u.guards[0].source,
            KeySource::Url {
                url: "https://auth.test/jwks.json".into(),
                refresh: Duration::from_secs(300),
                min_refresh: Duration::from_secs(10),
            }
        );
        assert_eq!(c.routes[0].guard, Some(2));
        assert_eq!(c.routes[0].roles, ["orders:read", "admin"]);
        assert_eq!((c.routes[1].guard, c.routes[1].roles.len()), (Some(0), 0));
        assert!(c
            .describe_routes()
            .contains(" guard jwt0 roles orders:read, admin\n"));
        // The HMAC guard names neither issuer nor audience: said by `check`.
        let warnings = c.warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with("guards.hs has no issuer"),
            "{warnings:?}"
        );
        // No guards: none, and every route unguarded.
        let plain = parse_ok(MINIMAL);
        assert!(plain.guards.is_empty() && plain.routes[0].guard.is_none());
    }

    #[test]
    fn key_files_are_read_beside_the_config_file() {
        let dir = key_dir();
        let config = dir.path().join("sse-kafka.yaml");
        let text = with_guards("  g:\n    keys: {file: jwks.json}\n", "    guard: g\n");
        std::fs::write(&config, text).unwrap();
        let c = load(&config).unwrap();
        assert_eq!(
            c.guards[0].source,
            KeySource::Jwks(dir.path().join("jwks.json"))
        );
        // The same text read from elsewhere does not find the file.
        let err = parse(
            &with_guards("  g:\n    keys: {file: jwks.json}\n", ""),
            "elsewhere/c.yaml",
        )
        .unwrap_err();
        assert_eq!(err.field, "guards.g.keys.file", "{err}");
    }

    #[test]
    fn guard_errors_name_file_line_and_field() {
        let dir = key_dir();
        let d = dir.path().display();
        let ed = format!("  g:\n    keys: {{file: {d}/jwks.json}}\n");
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let cases: Vec<ErrorCase> = Vec::from([
            ("unknown guard", with_guards(&ed, "    guard: nope\n"),
                9, 5, "routes[0].guard", "no guard 'nope' (guards: g)"),
            ("no guards at all", format!("{MINIMAL}    guard: g\n"),
                6, 5, "routes[0].guard", "no guard 'g' (there is no guards: section)"),
            ("roles without a guard", with_guards(&ed, "    roles: [a]\n"),
                9, 5, "routes[0].roles", "roles are checked by a guard"),
            ("identity on an unguarded route", with_guards(&ed, "    filters:\n      - key: \"${guard.identity}\"\n"),
                10, 7, "routes[0].filters[0]", "${guard.identity} needs a guard on this route"),
            ("a claim in an unguarded topic", format!("{MINIMAL}  - path: /t\n    topic: \"t.${{guard.claims.tenant}}\"\n    topics: \"t.*\"\n"),
                7, 5, "routes[1].topic", "${guard.claims.tenant} needs a guard"),
            ("the token as a substitution", with_guards(&ed, "    guard: g\n    filters:\n      - key: \"${query.access_token}\"\n"),
                11, 7, "routes[0].filters[0]", "${query.access_token} is the guard's token"),
            ("keys and secret", with_guards(&format!("{ed}    secret: {{file: {d}/hs.key}}\n"), ""),
                4, 5, "guards.g.secret", "a guard has keys or a secret, not both"),
            ("neither keys nor secret", with_guards("  g:\n    issuer: x\n", ""),
                2, 3, "guards.g", "a guard needs keys (a JWK set) or a secret (HMAC)"),
            ("two key sources", with_guards(&format!("  g:\n    keys:\n      file: {d}/jwks.json\n      jwks: []\n"), ""),
                3, 5, "guards.g.keys", "give exactly one of file, jwks or url"),
            ("keys from a url not http", with_guards("  g:\n    keys:\n      url: ftp://h/jwks.json\n", ""),
                4, 7, "guards.g.keys.url", "'ftp://h/jwks.json' is not an http:// or https:// URL"),
            ("keys from a url without a host", with_guards("  g:\n    keys:\n      url: https:///jwks.json\n", ""),
                4, 7, "guards.g.keys.url", "'https:///jwks.json' names no host"),
            ("min_refresh over refresh", with_guards("  g:\n    keys:\n      url: https://h/k\n      refresh: 1m\n      min_refresh: 2m\n", ""),
                6, 7, "guards.g.keys.min_refresh", "min_refresh (2m) must not exceed refresh (1m)"),
            ("refresh without a url", with_guards(&format!("  g:\n    keys:\n      file: {d}/jwks.json\n      refresh: 5m\n"), ""),
                5, 7, "guards.g.keys.refresh", "refresh is for keys from a url"),
            ("a missing key file", with_guards("  g:\n    keys:\n      file: /nonexistent/jwks.json\n", ""),
                4, 7, "guards.g.keys.file", "cannot read /nonexistent/jwks.json: No such file"),
            ("not a key set", with_guards(&format!("  g:\n    keys:\n      file: {d}/bad.json\n"), ""),
                4, 7, "guards.g.keys.file", leak(format!("{d}/bad.json: "))),
            ("a short secret", with_guards(&format!("  g:\n    secret:\n      file: {d}/short.key\n"), ""),
                4, 7, "guards.g.secret.file", leak(format!("{d}/short.key: the secret is 5 bytes; HMAC wants at least 32"))),
            ("a private key inline", with_guards("  g:\n    keys:\n      jwks: [{kty: oct, k: AAAA, d: x}]\n", ""),
                4, 7, "guards.g.keys.jwks", "key 0"),
            ("a cookie beside cors *", with_guards(&format!("{ed}    cookie: tok\n"), ""),
                4, 5, "guards.g.cookie", "a cookie is sent by the browser on its own"),
            ("leeway too long", with_guards(&format!("{ed}    leeway: 1h\n"), ""),
                4, 13, "guards.g.leeway", "duration '1h' must be at most 5m"),
            ("a bad cookie name", with_guards(&format!("{ed}    cookie: \"a b\"\n"), ""),
                4, 13, "guards.g.cookie", "invalid cookie name 'a b'"),
            ("a role with a space", with_guards(&ed, "    guard: g\n    roles: [\"a b\"]\n"),
                10, 13, "routes[0].roles[0]", "invalid role 'a b'"),
            ("an empty issuer list", with_guards(&format!("{ed}    issuer: []\n"), ""),
                4, 13, "guards.g.issuer", "an empty list; list at least one"),
            ("a bad claim path", with_guards(&format!("{ed}    roles: a..b\n"), ""),
                4, 12, "guards.g.roles", "invalid claim path 'a..b'"),
            ("a guard name with a dot", with_guards(&format!("  a.b:\n    keys: {{file: {d}/jwks.json}}\n"), ""),
                1, 1, "guards", "invalid guard name 'a.b'"),
            ("a misspelt field", with_guards(&format!("{ed}    isuser: x\n"), ""),
                4, 5, "guards.g.isuser", "unknown field `isuser`"),
        ]);
        assert_errors(cases);
    }
}
