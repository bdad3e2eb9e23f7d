//! Filter templates, their substitution and the matching of records (key,
//! headers, JSON values): nothing panics, a template prints back to itself,
//! a missing substitution is one the request lacks, a filter's key index
//! never hides a record it matches, and a record made to satisfy a filter's
//! conditions is matched.
//!
//! Input: lines, each `<tag> <text>`; the tag says what the text is:
//!
//! - `k` key template, `h NAME=TEMPLATE` header condition,
//!   `v POINTER=TEMPLATE` value condition, `l POINTER=JSON` literal value
//!   condition; `|` starts the next filter of the route (OR);
//! - `r TEMPLATE` route path and `u PATH` request path (their parameters),
//!   `p NAME=VALUE` one more path parameter, `q QUERY` the query string;
//! - `K BYTES` record key, `H NAME=BYTES` record header, and `V` the record
//!   value: everything after `V `, line ends included (so it comes last).
#![no_main]

use chrono::DateTime;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sse_kafka::codec::filter::{self, FilterSpec, Source, Template, ValueSpec, Vars};
use sse_kafka::codec::http::query_param;
use sse_kafka::codec::router::{self, Params, PathTemplate, Router};
use sse_kafka::model::Record;

/// `NAME=VALUE`, or all name when there is no `=`.
fn pair(text: &[u8]) -> (&[u8], &[u8]) {
    match text.iter().position(|&b| b == b'=') {
        Some(eq) => (&text[..eq], &text[eq + 1..]),
        None => (text, b""),
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A template, checked to print back to itself; `None` if it is invalid.
fn template(text: &[u8]) -> Option<Template> {
    let t = Template::parse(&lossy(text)).ok()?;
    let shown = t.to_string();
    assert_eq!(Template::parse(&shown).as_ref(), Ok(&t), "{shown:?}");
    assert_eq!(t.is_fixed(), t.substitutions().next().is_none());
    Some(t)
}

/// The JSON document whose value at `pointer` is `leaf` (RFC 6901 tokens,
/// `~1` then `~0` unescaped, as serde_json reads them).
fn document(pointer: &str, leaf: Value) -> Option<Value> {
    if pointer.is_empty() {
        return Some(leaf);
    }
    let tokens = pointer.strip_prefix('/')?;
    // serde_json refuses documents nested past 128 levels.
    if tokens.split('/').count() > 100 {
        return None;
    }
    let mut value = leaf;
    for token in tokens.split('/').rev() {
        let key = token.replace("~1", "/").replace("~0", "~");
        value = Value::Object([(key, value)].into_iter().collect());
    }
    Some(value)
}

/// A record that meets every condition of `spec`, when one is easy to
/// build (at most one value condition, of text that is UTF-8 or of a
/// literal written as serde_json writes it).
fn ideal(spec: &FilterSpec, vars: &Vars<'_>) -> Option<Record> {
    let key = match &spec.key {
        Some(t) => Some(t.resolve(vars).ok()?),
        None => None,
    };
    let mut headers = Vec::new();
    for (name, t) in &spec.headers {
        headers.push((name.clone(), t.resolve(vars).ok()?));
    }
    let value = match spec.value.as_slice() {
        [] => None,
        [(pointer, want)] => {
            let leaf = match want {
                ValueSpec::Text(t) => Value::String(String::from_utf8(t.resolve(vars).ok()?).ok()?),
                ValueSpec::Literal(text) => {
                    let v: Value = serde_json::from_str(text).ok()?;
                    let scalar = matches!(v, Value::Number(_) | Value::Bool(_) | Value::Null);
                    if !scalar || serde_json::to_string(&v).ok()? != *text {
                        return None;
                    }
                    v
                }
            };
            Some(serde_json::to_vec(&document(pointer, leaf)?).ok()?)
        }
        _ => return None,
    };
    Some(Record {
        key,
        value,
        headers,
        timestamp: DateTime::from_timestamp(0, 0)?,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut specs = vec![FilterSpec::default()];
    let (mut route, mut path, mut query) = (None, None, None);
    let mut extra = Params::new();
    let mut record = Record {
        key: None,
        value: None,
        headers: Vec::new(),
        timestamp: DateTime::from_timestamp(0, 0).unwrap(),
    };
    let mut rest = data;
    while !rest.is_empty() {
        if let Some(value) = rest.strip_prefix(b"V ") {
            record.value = Some(value.to_vec());
            break;
        }
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let line = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        let (tag, text) = match line {
            [tag, b' ', text @ ..] => (*tag, text),
            [tag] => (*tag, &b""[..]),
            _ => continue,
        };
        let spec = specs.last_mut().expect("never empty");
        match tag {
            b'|' => specs.push(FilterSpec::default()),
            b'k' => spec.key = template(text),
            b'h' => {
                let (name, t) = pair(text);
                if let Some(t) = template(t) {
                    spec.headers.push((lossy(name), t));
                }
            }
            b'v' => {
                let (pointer, t) = pair(text);
                if let Some(t) = template(t) {
                    spec.value.push((lossy(pointer), ValueSpec::Text(t)));
                }
            }
            b'l' => {
                let (pointer, json) = pair(text);
                spec.value
                    .push((lossy(pointer), ValueSpec::Literal(lossy(json))));
            }
            b'r' => route = PathTemplate::parse(&lossy(text)).ok(),
            b'u' => path = Some(lossy(text)),
            b'p' => {
                let (name, value) = pair(text);
                extra.push((lossy(name), value.to_vec()));
            }
            b'q' => query = Some(lossy(text)),
            b'K' => record.key = Some(text.to_vec()),
            b'H' => {
                let (name, value) = pair(text);
                record.headers.push((lossy(name), value.to_vec()));
            }
            _ => {}
        }
    }
    let mut params = match (route, &path) {
        (Some(route), Some(path)) => Router::new(vec![route])
            .route(path)
            .map(|(_, params)| params)
            .unwrap_or_default(),
        _ => Params::new(),
    };
    params.extend(extra);
    let vars = Vars {
        params: &params,
        query: query.as_deref(),
        guard: None,
    };

    let filter = match filter::resolve(&specs, &vars) {
        Ok(filter) => filter.expect("specs are never empty"),
        Err(missing) => {
            // Named by some filter, and absent from the request.
            let named = specs
                .iter()
                .flat_map(FilterSpec::substitutions)
                .any(|(source, name)| source == missing.from && name == missing.name);
            assert!(named, "{missing:?}");
            let found = match missing.from {
                Source::Params => router::param(&params, &missing.name).is_some(),
                Source::Query => query_param(vars.query, &missing.name).is_some(),
                // No token: every guard substitution is missing.
                Source::Guard => false,
            };
            assert!(!found, "{missing:?}");
            return;
        }
    };
    let matched = filter.matches(&filter::RecordView::new(&record));
    if let Some(keys) = filter.keys() {
        // A shard checks a record only against the filters of its key.
        if matched {
            let key = record
                .key
                .as_deref()
                .expect("a keyed filter matched no key");
            assert!(keys.contains(&key), "key {key:?} not in {keys:?}");
        }
    }
    for spec in &specs {
        let Some(record) = ideal(spec, &vars) else {
            continue;
        };
        let view = filter::RecordView::new(&record);
        assert!(filter.matches(&view), "{spec:?} does not match {record:?}");
        let alone = filter::resolve(std::slice::from_ref(spec), &vars)
            .expect("resolved above")
            .expect("one spec");
        assert!(alone.matches(&view));
        // A fixed key filter keeps its key in the index.
        let keys = alone.keys();
        if let (Some(keys), Some(key)) = (&keys, &record.key) {
            assert_eq!(keys.as_slice(), [key.as_slice()]);
        }
    }
});
