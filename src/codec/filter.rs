//! Record filters: which records of a topic a stream shows.
//!
//! A route's `filters` is a list; a record passes if any filter of the list
//! matches (OR). One filter holds any of a `key`, `headers` (name → value)
//! and `value` (JSON pointer → expected scalar) conditions, and matches only
//! if all of them do (AND). Key and header values are compared as bytes,
//! exactly. A `value` condition reads the record's value as JSON; a value
//! that is not JSON never matches one.
//!
//! The configured strings may hold substitutions — `${params.NAME}` (a path
//! parameter, percent-decoded), `${query.NAME}` (a query parameter) and, on
//! a guarded route, `${guard.identity}` and `${guard.claims.PATH}` (claims
//! of the verified token) — that are resolved once per request into a [`Filter`]: plain bytes,
//! hashable, so that a shard groups the connections that resolved to the
//! same filter and evaluates each distinct filter once per record.
//!
//! Everything here is a pure function of bytes: no I/O, no shard state.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;

use smallvec::SmallVec;

use crate::codec::jwt;
use crate::codec::router::{self, Params};
use crate::model::Record;

/// Where a substitution takes its value from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// `${params.NAME}`: a path parameter of the route's template.
    Params,
    /// `${query.NAME}`: a query parameter of the request.
    Query,
    /// `${guard.identity}` (NAME `identity`) or `${guard.claims.PATH}`
    /// (NAME `claims.PATH`): a claim of the request's verified token.
    Guard,
}

impl Source {
    fn prefix(self) -> &'static str {
        match self {
            Source::Params => "params",
            Source::Query => "query",
            Source::Guard => "guard",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Sub(Source, String),
}

/// A configured string that may hold substitutions, such as `${params.id}`
/// or `order-${query.n}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// INVARIANT: no two `Text` pieces in a row, no empty `Text`.
    pieces: Vec<Piece>,
}

/// Why a configured string is not a valid template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("'${{' is not closed by '}}'")]
    Unclosed,
    #[error("empty substitution '${{}}'")]
    Empty,
    #[error(
        "unknown substitution '${{{0}}}'; expected ${{guard.identity}} or ${{guard.claims.NAME}}"
    )]
    Guard(String),
    #[error("unknown substitution '${{{0}}}'; expected ${{params.NAME}}, ${{query.NAME}} or ${{guard.identity}}")]
    Unknown(String),
}

impl Template {
    /// Parses `text`. `$` not followed by `{` is literal; there is no
    /// escape for a literal `${`, which no key or header needs.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut literal = String::new();
        while let Some(start) = rest.find("${") {
            literal.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or(TemplateError::Unclosed)?;
            let inner = after[..end].trim();
            let sub = match inner.split_once('.') {
                _ if inner.is_empty() => return Err(TemplateError::Empty),
                Some(("params", name)) if !name.is_empty() => (Source::Params, name),
                Some(("query", name)) if !name.is_empty() => (Source::Query, name),
                Some(("guard", "identity")) => (Source::Guard, "identity"),
                Some(("guard", name))
                    if name
                        .strip_prefix("claims.")
                        .is_some_and(|p| !p.is_empty() && !p.split('.').any(str::is_empty)) =>
                {
                    (Source::Guard, name)
                }
                Some(("guard", _)) => return Err(TemplateError::Guard(inner.to_owned())),
                _ => return Err(TemplateError::Unknown(inner.to_owned())),
            };
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Sub(sub.0, sub.1.to_owned()));
            rest = &after[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { pieces })
    }

    /// The substitutions in order of appearance.
    pub fn substitutions(&self) -> impl Iterator<Item = (Source, &str)> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Sub(source, name) => Some((*source, name.as_str())),
            Piece::Text(_) => None,
        })
    }

    /// True if the template has no substitution: the same for every request.
    pub fn is_fixed(&self) -> bool {
        self.substitutions().next().is_none()
    }

    /// The template with every substitution replaced.
    pub fn resolve(&self, vars: &Vars<'_>) -> Result<Vec<u8>, Missing> {
        let mut out = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.extend_from_slice(text.as_bytes()),
                Piece::Sub(source, name) => out.extend_from_slice(&vars.get(*source, name)?),
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => f.write_str(text)?,
                Piece::Sub(source, name) => write!(f, "${{{}.{name}}}", source.prefix())?,
            }
        }
        Ok(())
    }
}

/// The values a request offers to substitutions.
#[derive(Debug)]
pub struct Vars<'a> {
    pub params: &'a Params,
    /// The raw query string (after `?`), if any.
    pub query: Option<&'a str>,
    /// The verified token's claims, on a guarded route.
    pub guard: Option<GuardVars<'a>>,
}

/// What `${guard.*}` reads: a verified token's claims.
#[derive(Debug, Clone, Copy)]
pub struct GuardVars<'a> {
    pub claims: &'a serde_json::Map<String, serde_json::Value>,
    /// The dotted path of the claim `${guard.identity}` stands for.
    pub identity: &'a str,
}

impl GuardVars<'_> {
    /// The claim a guard substitution names, as text.
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        let path = match name.strip_prefix("claims.") {
            Some(path) => path,
            None => self.identity,
        };
        jwt::claim_text(self.claims, path)
    }
}

impl Vars<'_> {
    fn get(&self, source: Source, name: &str) -> Result<Cow<'_, [u8]>, Missing> {
        let found = match source {
            Source::Params => router::param(self.params, name).map(Cow::Borrowed),
            Source::Query => crate::codec::http::query_param(self.query, name).map(|v| match v {
                Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
                Cow::Owned(s) => Cow::Owned(s.into_bytes()),
            }),
            Source::Guard => self
                .guard
                .as_ref()
                .and_then(|g| g.get(name))
                .map(|v| match v {
                    Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
                    Cow::Owned(s) => Cow::Owned(s.into_bytes()),
                }),
        };
        found.ok_or_else(|| Missing {
            from: source,
            name: name.to_owned(),
        })
    }
}

/// A substitution the request does not provide: a 400 naming it, or for a
/// guard's claim a 403 (the token lacks what the route needs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", match .from {
    Source::Params => format!("missing path parameter '{name}'"),
    Source::Query => format!("missing query parameter '{name}'"),
    Source::Guard => format!("the token has no claim for '${{guard.{name}}}'"),
})]
pub struct Missing {
    pub from: Source,
    pub name: String,
}

/// What a `value` condition expects at its JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSpec {
    /// A string in the config, possibly with substitutions. It matches a
    /// JSON string with exactly these bytes, or a number or boolean whose
    /// JSON text is exactly these bytes: a value from a URL has no type, so
    /// `/orders/{id}` also finds `{"id": 42}`.
    Text(Template),
    /// A number, boolean or null written as such in the config: matches a
    /// JSON value of that type with the same JSON text (`5` matches `5`,
    /// not `5.0` or `"5"`).
    Literal(String),
}

/// One configured filter: all its conditions must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilterSpec {
    pub key: Option<Template>,
    /// Header name → expected value, in config order.
    pub headers: Vec<(String, Template)>,
    /// JSON pointer (RFC 6901, `""` or starting with `/`) → expected value.
    pub value: Vec<(String, ValueSpec)>,
}

impl FilterSpec {
    /// Every substitution of the filter.
    pub fn substitutions(&self) -> impl Iterator<Item = (Source, &str)> {
        let values = self.value.iter().filter_map(|(_, v)| match v {
            ValueSpec::Text(t) => Some(t),
            ValueSpec::Literal(_) => None,
        });
        self.key
            .iter()
            .chain(self.headers.iter().map(|(_, t)| t))
            .chain(values)
            .flat_map(Template::substitutions)
    }

    fn resolve(&self, vars: &Vars<'_>) -> Result<Conjunction, Missing> {
        let key = self
            .key
            .as_ref()
            .map(|t| t.resolve(vars).map(Vec::into_boxed_slice))
            .transpose()?;
        let headers = self
            .headers
            .iter()
            .map(|(name, t)| Ok((name.as_str().into(), t.resolve(vars)?.into_boxed_slice())))
            .collect::<Result<_, Missing>>()?;
        let value = self
            .value
            .iter()
            .map(|(pointer, spec)| {
                let expected = match spec {
                    ValueSpec::Text(t) => Expected::Text(t.resolve(vars)?.into_boxed_slice()),
                    ValueSpec::Literal(json) => Expected::Literal(json.as_str().into()),
                };
                Ok((pointer.as_str().into(), expected))
            })
            .collect::<Result<_, Missing>>()?;
        Ok(Conjunction {
            key,
            headers,
            value,
        })
    }
}

/// Resolves a route's filters for one request. `None` when the route has no
/// filters (every record passes).
pub fn resolve(specs: &[FilterSpec], vars: &Vars<'_>) -> Result<Option<Filter>, Missing> {
    if specs.is_empty() {
        return Ok(None);
    }
    let mut any: Vec<Conjunction> = Vec::with_capacity(specs.len());
    for spec in specs {
        let c = spec.resolve(vars)?;
        // Two filters that resolved alike are one: equal requests must make
        // equal filters whatever their parameters (grouping depends on it).
        if !any.contains(&c) {
            any.push(c);
        }
    }
    Ok(Some(Filter { any }))
}

/// An expected JSON scalar, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Expected {
    Text(Box<[u8]>),
    Literal(Box<str>),
}

impl Expected {
    fn matches(&self, found: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (self, found) {
            (Expected::Text(want), Value::String(s)) => s.as_bytes() == &want[..],
            (Expected::Text(want), Value::Number(_) | Value::Bool(_)) => {
                same_json_text(found, want)
            }
            (Expected::Literal(want), Value::Number(_) | Value::Bool(_) | Value::Null) => {
                same_json_text(found, want.as_bytes())
            }
            _ => false,
        }
    }
}

/// Whether the JSON text of a scalar (as serde_json writes it) is `want`.
/// The text is written into a stack buffer (no allocation) unless it is
/// longer than any common number.
fn same_json_text(found: &serde_json::Value, want: &[u8]) -> bool {
    let mut buf = [0u8; 40];
    let mut rest: &mut [u8] = &mut buf;
    if serde_json::to_writer(&mut rest, found).is_ok() {
        let len = 40 - rest.len();
        return buf[..len] == *want;
    }
    serde_json::to_vec(found).is_ok_and(|text| text == want)
}

/// A resolved header condition: name, expected value.
type HeaderIs = (Box<str>, Box<[u8]>);

/// One resolved filter: all of its conditions hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Conjunction {
    key: Option<Box<[u8]>>,
    headers: Box<[HeaderIs]>,
    value: Box<[(Box<str>, Expected)]>,
}

impl Conjunction {
    fn matches(&self, rec: &RecordView<'_>) -> bool {
        if let Some(key) = &self.key {
            if rec.record.key.as_deref() != Some(&key[..]) {
                return false;
            }
        }
        let headers_match = self
            .headers
            .iter()
            .all(|(name, want)| rec.headers(name).any(|found| found == &want[..]));
        if !headers_match {
            return false;
        }
        if self.value.is_empty() {
            return true;
        }
        let Some(json) = rec.json() else {
            return false;
        };
        self.value.iter().all(|(pointer, want)| {
            json.pointer(pointer)
                .is_some_and(|found| want.matches(found))
        })
    }
}

/// A route's filters resolved for one request: a record passes if any of
/// them matches. Equal filters (from requests with equal parameters) are
/// equal values with equal hashes: a shard's connections are grouped by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Filter {
    /// INVARIANT: not empty, no duplicates.
    any: Vec<Conjunction>,
}

impl Filter {
    pub fn matches(&self, rec: &RecordView<'_>) -> bool {
        self.any.iter().any(|c| c.matches(rec))
    }

    /// The record keys this filter can match, when every one of its
    /// filters names a key; `None` when some record with any key (or none)
    /// may match. A shard indexes such filters by key, so a record is only
    /// checked against the filters for its own key.
    pub fn keys(&self) -> Option<SmallVec<[&[u8]; 1]>> {
        let mut keys = SmallVec::new();
        for c in &self.any {
            let key = c.key.as_deref()?;
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        Some(keys)
    }
}

/// A record as filters see it: its value parsed as JSON at most once, and
/// only if a `value` condition asks.
#[derive(Debug)]
pub struct RecordView<'a> {
    record: &'a Record,
    json: OnceCell<Option<serde_json::Value>>,
}

impl<'a> RecordView<'a> {
    pub fn new(record: &'a Record) -> Self {
        Self {
            record,
            json: OnceCell::new(),
        }
    }

    /// Every value of header `name`: Kafka allows a name to repeat in one
    /// record, and any occurrence matches.
    fn headers<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + 's {
        self.record.header_values(name)
    }

    /// The value as JSON, or `None` if there is no value or it is not JSON.
    fn json(&self) -> Option<&serde_json::Value> {
        self.json
            .get_or_init(|| serde_json::from_slice(self.record.value.as_deref()?).ok())
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rskafka::chrono::DateTime;

    fn record(key: Option<&str>, headers: &[(&str, &str)], value: Option<&str>) -> Record {
        Record {
            key: key.map(|k| k.as_bytes().to_vec()),
            value: value.map(|v| v.as_bytes().to_vec()),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            timestamp: DateTime::from_timestamp(0, 0).unwrap(),
        }
    }

    fn t(s: &str) -> Template {
        Template::parse(s).unwrap()
    }

    fn params(pairs: &[(&str, &[u8])]) -> Params {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect()
    }

    fn fixed(specs: &[FilterSpec]) -> Filter {
        let p = Params::new();
        resolve(
            specs,
            &Vars {
                guard: None,
                params: &p,
                query: None,
            },
        )
        .unwrap()
        .unwrap()
    }

    fn passes(f: &Filter, r: &Record) -> bool {
        f.matches(&RecordView::new(r))
    }

    #[test]
    fn templates_parse_and_print() {
        type Subs<'a> = &'a [(Source, &'a str)];
        let cases: &[(&str, Result<Subs<'_>, TemplateError>)] = &[
            ("abc", Ok(&[])),
            ("", Ok(&[])),
            ("$5 and $x", Ok(&[])),
            ("${params.id}", Ok(&[(Source::Params, "id")])),
            (
                "a-${params.x}-${query.y}!",
                Ok(&[(Source::Params, "x"), (Source::Query, "y")]),
            ),
            ("${ params.id }", Ok(&[(Source::Params, "id")])),
            ("${params.id", Err(TemplateError::Unclosed)),
            ("${}", Err(TemplateError::Empty)),
            ("${guard.identity}", Ok(&[(Source::Guard, "identity")])),
            (
                "t-${guard.claims.tenant.id}",
                Ok(&[(Source::Guard, "claims.tenant.id")]),
            ),
            (
                "${guard.sub}",
                Err(TemplateError::Guard("guard.sub".into())),
            ),
            (
                "${guard.claims.}",
                Err(TemplateError::Guard("guard.claims.".into())),
            ),
            (
                "${guard.claims.a..b}",
                Err(TemplateError::Guard("guard.claims.a..b".into())),
            ),
            ("${params.}", Err(TemplateError::Unknown("params.".into()))),
            (
                "${env.HOME}",
                Err(TemplateError::Unknown("env.HOME".into())),
            ),
            ("${id}", Err(TemplateError::Unknown("id".into()))),
        ];
        for (text, expected) in cases {
            match (Template::parse(text), expected) {
                (Ok(tpl), Ok(subs)) => {
                    assert_eq!(tpl.substitutions().collect::<Vec<_>>(), *subs, "{text}");
                    assert_eq!(tpl.is_fixed(), subs.is_empty());
                    if !text.contains("${ ") {
                        assert_eq!(tpl.to_string(), *text);
                    }
                }
                (got, want) => assert_eq!(got.map(|_| ()), want.clone().map(|_| ()), "{text}"),
            }
        }
    }

    #[test]
    fn substitutions_resolve_or_name_what_is_missing() {
        let p = params(&[("id", b"a/b \xff")]);
        let vars = Vars {
            params: &p,
            query: Some("status=open%20now&n=1+2&empty="),
            guard: None,
        };
        assert_eq!(t("x${params.id}y").resolve(&vars).unwrap(), b"xa/b \xffy");
        assert_eq!(t("${query.status}").resolve(&vars).unwrap(), b"open now");
        assert_eq!(t("${query.n}").resolve(&vars).unwrap(), b"1 2");
        assert_eq!(t("${query.empty}").resolve(&vars).unwrap(), b"");
        let missing = t("${query.other}").resolve(&vars).unwrap_err();
        assert_eq!(missing.to_string(), "missing query parameter 'other'");
        let missing = t("${params.x}").resolve(&vars).unwrap_err();
        assert_eq!(missing.to_string(), "missing path parameter 'x'");
        let none = Vars {
            params: &p,
            query: None,
            guard: None,
        };
        assert!(t("${query.status}").resolve(&none).is_err());
    }

    #[test]
    fn key_and_headers_match_exact_bytes() {
        let by_key = fixed(&[FilterSpec {
            key: Some(t("item-7")),
            ..Default::default()
        }]);
        assert!(passes(&by_key, &record(Some("item-7"), &[], Some("x"))));
        assert!(!passes(&by_key, &record(Some("item-70"), &[], Some("x"))));
        assert!(!passes(&by_key, &record(Some("Item-7"), &[], Some("x"))));
        assert!(!passes(&by_key, &record(None, &[], Some("x"))));
        // A tombstone still has its key.
        assert!(passes(&by_key, &record(Some("item-7"), &[], None)));

        let both = fixed(&[FilterSpec {
            key: Some(t("k")),
            headers: vec![("tag".into(), t("red")), ("region".into(), t("eu"))],
            ..Default::default()
        }]);
        let all = [("tag", "red"), ("region", "eu"), ("other", "x")];
        assert!(passes(&both, &record(Some("k"), &all, None)));
        assert!(
            !passes(&both, &record(Some("j"), &all, None)),
            "key AND headers"
        );
        assert!(
            !passes(&both, &record(Some("k"), &all[..1], None)),
            "every header"
        );
        assert!(!passes(
            &both,
            &record(Some("k"), &[("tag", "red"), ("region", "EU")], None)
        ));
    }

    #[test]
    fn any_occurrence_of_a_repeated_header_matches() {
        let red = fixed(&[FilterSpec {
            headers: vec![("tag".into(), t("red")), ("region".into(), t("eu"))],
            ..Default::default()
        }]);
        let first = [("tag", "red"), ("tag", "blue"), ("region", "eu")];
        let middle = [
            ("tag", "blue"),
            ("region", "eu"),
            ("tag", "red"),
            ("tag", "x"),
        ];
        let last = [
            ("region", "us"),
            ("tag", "blue"),
            ("region", "eu"),
            ("tag", "red"),
        ];
        let neither = [("tag", "blue"), ("tag", "green"), ("region", "eu")];
        assert!(passes(&red, &record(None, &first, None)));
        assert!(passes(&red, &record(None, &middle, None)));
        assert!(passes(&red, &record(None, &last, None)));
        assert!(!passes(&red, &record(None, &neither, None)));
    }

    #[test]
    fn a_list_of_filters_is_an_or() {
        let either = fixed(&[
            FilterSpec {
                key: Some(t("a")),
                ..Default::default()
            },
            FilterSpec {
                headers: vec![("tag".into(), t("hot"))],
                ..Default::default()
            },
        ]);
        assert!(passes(&either, &record(Some("a"), &[], None)));
        assert!(passes(&either, &record(Some("b"), &[("tag", "hot")], None)));
        assert!(!passes(
            &either,
            &record(Some("b"), &[("tag", "cold")], None)
        ));
        assert_eq!(either.keys(), None, "the header filter takes any key");
        let keys = fixed(&[
            FilterSpec {
                key: Some(t("a")),
                ..Default::default()
            },
            FilterSpec {
                key: Some(t("b")),
                headers: vec![("x".into(), t("y"))],
                ..Default::default()
            },
        ]);
        assert_eq!(keys.keys().unwrap().as_slice(), [b"a".as_slice(), b"b"]);
    }

    #[test]
    fn value_conditions_read_json() {
        let spec = |pointer: &str, v: ValueSpec| {
            fixed(&[FilterSpec {
                value: vec![(pointer.into(), v)],
                ..Default::default()
            }])
        };
        let text = |s: &str| ValueSpec::Text(t(s));
        let lit = |s: &str| ValueSpec::Literal(s.into());
        let value = r#"{"status":"open","n":42,"f":1.5,"ok":true,"none":null,"nested":{"a/b":["x","y"]},"s5":"5"}"#;
        let r = record(None, &[], Some(value));
        let cases = [
            (spec("/status", text("open")), true),
            (spec("/status", text("Open")), false),
            (spec("/status", text("open ")), false),
            (spec("/missing", text("open")), false),
            (spec("/n", text("42")), true),
            (spec("/n", text("42.0")), false),
            (spec("/n", lit("42")), true),
            (spec("/s5", lit("5")), false),
            (spec("/s5", text("5")), true),
            (spec("/f", lit("1.5")), true),
            (spec("/ok", text("true")), true),
            (spec("/ok", lit("true")), true),
            (spec("/none", lit("null")), true),
            (spec("/none", text("null")), false),
            (spec("/nested/a~1b/1", text("y")), true),
            (spec("/nested", text("{}")), false),
        ];
        for (i, (f, want)) in cases.iter().enumerate() {
            assert_eq!(passes(f, &r), *want, "case {i}: {f:?}");
        }
        let open = spec("/status", text("open"));
        for not_json in ["status=open", "{\"status\":\"open\"", "", "\u{ff}"] {
            assert!(
                !passes(&open, &record(None, &[], Some(not_json))),
                "{not_json:?}"
            );
        }
        assert!(!passes(&open, &record(None, &[], None)), "tombstone");
    }

    #[test]
    fn equal_requests_make_equal_filters() {
        let specs = [
            FilterSpec {
                key: Some(t("${params.id}")),
                ..Default::default()
            },
            FilterSpec {
                key: Some(t("${query.alt}")),
                ..Default::default()
            },
        ];
        let p = params(&[("id", b"7")]);
        let make = |q| {
            resolve(
                &specs,
                &Vars {
                    params: &p,
                    query: Some(q),
                    guard: None,
                },
            )
            .unwrap()
            .unwrap()
        };
        assert_eq!(make("alt=8"), make("x=1&alt=8"));
        assert_ne!(make("alt=8"), make("alt=9"));
        // Both filters resolved to key 7: one conjunction.
        assert_eq!(make("alt=7").any.len(), 1);
        assert_eq!(
            resolve(
                &specs,
                &Vars {
                    params: &p,
                    query: None,
                    guard: None
                }
            )
            .unwrap_err(),
            Missing {
                from: Source::Query,
                name: "alt".into()
            }
        );
        assert_eq!(
            resolve(
                &[],
                &Vars {
                    params: &p,
                    query: None,
                    guard: None
                }
            ),
            Ok(None)
        );
    }
}
