//! A route's `filters`: which records it streams. The conditions are read
//! here (a key, headers and JSON-pointer value conditions, each a template
//! that may name `${params.NAME}` or `${query.NAME}`) and checked as a whole
//! by [`route_filters`], which builds the [`FilterSpec`]s the hub evaluates.
//! Duplicate header names and JSON pointers are refused while the mapping is
//! read, from the value's visitor, so that the error carries its position.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::error::ConfigError;
use super::values::{deserialize_str_with, present};
use crate::codec::filter::{FilterSpec, Source, Template, ValueSpec};
use crate::codec::router::PathTemplate;

/// One entry of a route's `filters`. Absent parts hold no condition; a
/// filter with none at all is refused by [`route_filters`], which also checks
/// that each `${params.NAME}` names a parameter of the route's path.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a filter: a mapping with key, headers and/or value"
)]
pub(super) struct RawFilter {
    #[serde(default, deserialize_with = "present")]
    key: Option<TextCondition>,
    #[serde(default)]
    headers: HeaderConditions,
    #[serde(default)]
    value: ValueConditions,
}

impl RawFilter {
    /// A filter of these conditions, built rather than read (Zilla's
    /// `x-zilla-sse-kafka` filters).
    pub(super) fn of(key: Option<Template>, headers: Vec<(String, Template)>) -> Self {
        RawFilter {
            key: key.map(|k| TextCondition(Some(k))),
            headers: HeaderConditions(
                headers
                    .into_iter()
                    .map(|(name, t)| (name, TextCondition(Some(t))))
                    .collect(),
            ),
            value: ValueConditions::default(),
        }
    }

    /// Adds the condition that header `name` is `value`, unless the filter
    /// has one for `name` already.
    pub(super) fn add_header(&mut self, name: &str, value: Template) -> Result<(), String> {
        if name.is_empty() || self.headers.0.iter().any(|(seen, _)| seen == name) {
            return Err(format!(
                "the filter has a condition on header '{name}' already"
            ));
        }
        self.headers
            .0
            .push((name.to_string(), TextCondition(Some(value))));
        Ok(())
    }

    /// Adds the condition that the JSON value at `pointer` is `value`,
    /// unless the filter has one at `pointer` already.
    pub(super) fn add_value(&mut self, pointer: &str, value: Template) -> Result<(), String> {
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            return Err(format!("'{pointer}' is not a JSON pointer"));
        }
        if self.value.0.iter().any(|(seen, _)| seen == pointer) {
            return Err(format!("the filter has a condition at '{pointer}' already"));
        }
        self.value
            .0
            .push((pointer.to_string(), ValueSpec::Text(value)));
        Ok(())
    }
}

/// What a key or header value may be written as: a string, or a number or
/// boolean, which is taken as written (`version: 2` is the text "2", `2.50`
/// stays "2.50"): serde_yaml_ng hands a plain scalar's source text to
/// `deserialize_str`.
const TEXT_FORMS: &str = "a string, number or boolean";

/// A `key` or header value: a [`Template`], or `None` for a YAML null, which
/// [`route_filters`] refuses. A null is not refused here because serde_yaml_ng only
/// knows a value's position inside a visitor method, and `visit_none` is not
/// given one; [`route_filters`] finds the key's position instead.
pub(super) struct TextCondition(Option<Template>);

impl<'de> Deserialize<'de> for TextCondition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        TextSeed { problem: None }.deserialize(d)
    }
}

/// Reads a [`TextCondition`]; `problem`, if set, is a fault of the value's
/// key found by the enclosing mapping (a duplicate), raised from the visitor
/// so that it carries the value's position and the key in its path.
struct TextSeed {
    problem: Option<String>,
}

impl<'de> DeserializeSeed<'de> for TextSeed {
    type Value = TextCondition;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<TextCondition, D::Error> {
        struct NullOr(TextSeed);
        impl<'de> Visitor<'de> for NullOr {
            type Value = TextCondition;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(TEXT_FORMS)
            }
            fn visit_none<E: de::Error>(self) -> Result<TextCondition, E> {
                Ok(TextCondition(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<TextCondition, D::Error> {
                let problem = self.0.problem;
                deserialize_str_with(d, TEXT_FORMS, |s| match problem {
                    Some(problem) => Err(problem),
                    None => Template::parse(s)
                        .map(|t| TextCondition(Some(t)))
                        .map_err(|e| e.to_string()),
                })
            }
        }
        d.deserialize_option(NullOr(self))
    }
}

/// A filter's `headers`: header name → value, in file order.
#[derive(Default)]
pub(super) struct HeaderConditions(Vec<(String, TextCondition)>);

/// A header name in `headers`: any non-empty string.
struct HeaderName(String);

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_str_with(d, "a header name", |s| {
            if s.is_empty() {
                return Err("a header name must not be empty".to_string());
            }
            Ok(HeaderName(s.to_string()))
        })
    }
}

impl<'de> Deserialize<'de> for HeaderConditions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = HeaderConditions;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of header name to value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut headers: Vec<(String, TextCondition)> = Vec::new();
                while let Some(HeaderName(name)) = map.next_key()? {
                    let problem = headers
                        .iter()
                        .any(|(seen, _)| *seen == name)
                        .then(|| format!("header '{name}' is listed twice"));
                    let value = map.next_value_seed(TextSeed { problem })?;
                    headers.push((name, value));
                }
                Ok(HeaderConditions(headers))
            }
        }
        d.deserialize_map(MapVisitor)
    }
}

/// A filter's `value`: JSON pointer → expected scalar, in file order.
#[derive(Default)]
pub(super) struct ValueConditions(Vec<(String, ValueSpec)>);

/// What a `value` condition may expect.
const VALUE_FORMS: &str = "a string, number, boolean or null";

impl<'de> Deserialize<'de> for ValueConditions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = ValueConditions;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of JSON pointer to expected value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut value: Vec<(String, ValueSpec)> = Vec::new();
                while let Some(pointer) = map.next_key::<String>()? {
                    // Checked at the value, whose error path ends in the
                    // pointer: `routes[0].filters[0].value.status`.
                    let problem = if !(pointer.is_empty() || pointer.starts_with('/')) {
                        Some(format!(
                            "a JSON pointer must be empty or start with '/' (did you mean '/{pointer}'?)"
                        ))
                    } else if value.iter().any(|(seen, _)| *seen == pointer) {
                        Some(format!("JSON pointer '{pointer}' is listed twice"))
                    } else {
                        None
                    };
                    let expected = map.next_value_seed(ValueSeed { problem })?;
                    value.push((pointer, expected));
                }
                Ok(ValueConditions(value))
            }
        }
        d.deserialize_map(MapVisitor)
    }
}

/// Reads the expected value of one `value` condition: a YAML string is a
/// [`ValueSpec::Text`] template; a number, boolean or null a
/// [`ValueSpec::Literal`] holding serde_json's text of it, which is how the
/// matcher writes the record's value to compare. `problem` as in
/// [`TextSeed`].
struct ValueSeed {
    problem: Option<String>,
}

impl ValueSeed {
    fn check<E: de::Error>(
        self,
        spec: impl FnOnce() -> Result<ValueSpec, String>,
    ) -> Result<ValueSpec, E> {
        match self.problem {
            Some(problem) => Err(E::custom(problem)),
            None => spec().map_err(E::custom),
        }
    }

    fn literal<E: de::Error>(self, json: serde_json::Value) -> Result<ValueSpec, E> {
        self.check(|| Ok(ValueSpec::Literal(json.to_string())))
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = ValueSpec;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ValueSpec, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = ValueSpec;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(VALUE_FORMS)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ValueSpec, E> {
        self.check(|| {
            Template::parse(v)
                .map(ValueSpec::Text)
                .map_err(|e| e.to_string())
        })
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<ValueSpec, E> {
        self.literal(v.into())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ValueSpec, E> {
        self.literal(v.into())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ValueSpec, E> {
        self.literal(v.into())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ValueSpec, E> {
        self.check(|| {
            serde_json::Number::from_f64(v)
                .map(|n| ValueSpec::Literal(n.to_string()))
                .ok_or_else(|| format!("{v} is not a JSON number"))
        })
    }
    fn visit_unit<E: de::Error>(self) -> Result<ValueSpec, E> {
        self.literal(serde_json::Value::Null)
    }
}

/// Checks route `i`'s filters as a whole and builds the model: what each
/// value could not check alone (a filter or a list with nothing in it, a null,
/// a path parameter the route's path does not have). `error` makes a
/// [`ConfigError`] at a field.
pub(super) fn route_filters(
    i: usize,
    path: &PathTemplate,
    raw: Option<Vec<RawFilter>>,
    error: &dyn Fn(String, String) -> ConfigError,
) -> Result<Vec<FilterSpec>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    if raw.is_empty() {
        // `filters: []` would stream nothing at all: surely not what was meant.
        return Err(error(
            format!("routes[{i}].filters"),
            "an empty list matches no record; remove `filters` to stream every record".into(),
        ));
    }
    let mut specs = Vec::with_capacity(raw.len());
    for (j, f) in raw.into_iter().enumerate() {
        let at = format!("routes[{i}].filters[{j}]");
        if f.key.is_none() && f.headers.0.is_empty() && f.value.0.is_empty() {
            // It would match every record, which is surely not what was meant.
            return Err(error(
                at,
                "a filter needs at least one of key, headers, value".into(),
            ));
        }
        // A null would otherwise have to mean something; leaving the
        // condition out says "any" unambiguously.
        let text = |field: String, c: TextCondition| {
            c.0.ok_or_else(|| {
                error(
                    field,
                    format!(
                        "expected {TEXT_FORMS}, not null; leave the condition out to match any"
                    ),
                )
            })
        };
        let key = f.key.map(|c| text(format!("{at}.key"), c)).transpose()?;
        let headers = f
            .headers
            .0
            .into_iter()
            .map(|(name, c)| Ok((name.clone(), text(format!("{at}.headers.{name}"), c)?)))
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let spec = FilterSpec {
            key,
            headers,
            value: f.value.0,
        };

        // `${params.NAME}` is known now; `${query.NAME}` only per request.
        let mut templates: Vec<(String, &Template)> = Vec::new();
        templates.extend(spec.key.iter().map(|t| (format!("{at}.key"), t)));
        for (name, t) in &spec.headers {
            templates.push((format!("{at}.headers.{name}"), t));
        }
        for (pointer, v) in &spec.value {
            if let ValueSpec::Text(t) = v {
                templates.push((format!("{at}.value.{pointer}"), t));
            }
        }
        for (field, template) in templates {
            let unknown = template.substitutions().find(|(source, name)| {
                *source == Source::Params && !path.param_names().any(|p| p == *name)
            });
            if let Some((_, name)) = unknown {
                return Err(error(
                    field,
                    format!("path '{}' has no parameter '{name}'", path.as_str()),
                ));
            }
        }
        specs.push(spec);
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::config::testing::{parse_ok, FILE, MINIMAL};

    /// A route `/items/{id}` whose `filters:` key is on line 6, column 5;
    /// its first entry starts on line 7, column 7.
    const FILTERED: &str = "kafka:\n  bootstrap: [\"a:1\"]\nroutes:\n  - path: /items/{id}\n    topic: items\n    filters:\n";

    #[test]
    fn filter_errors_name_file_line_and_field() {
        // (what, filters entries (6-space indent), line, column, field, start of the message)
        let cases: &[(&str, &str, usize, usize, &str, &str)] = &[
            ("unknown filter field", "      - key: a\n        keys: b\n",
                8, 9, "routes[0].filters[0].keys",
                "unknown field `keys`, expected one of `key`, `headers`, `value`"),
            ("filter not a mapping", "      - abc\n",
                7, 9, "routes[0].filters[0]",
                "invalid type: string \"abc\", expected a filter: a mapping with key, headers and/or value"),
            ("key template unclosed", "      - key: \"${params.id\"\n",
                7, 14, "routes[0].filters[0].key", "'${' is not closed by '}'"),
            ("key a list", "      - key: [a]\n",
                7, 14, "routes[0].filters[0].key",
                "invalid type: sequence, expected a string, number or boolean"),
            ("key null", "      - key:\n        value: {/a: 1}\n",
                7, 9, "routes[0].filters[0].key",
                "expected a string, number or boolean, not null; leave the condition out to match any"),
            ("key guard claim without claims.", "      - key: ${guard.sub}\n",
                7, 14, "routes[0].filters[0].key",
                "unknown substitution '${guard.sub}'; expected ${guard.identity} or ${guard.claims.NAME}"),
            ("header template", "      - headers:\n          tag: \"${env.X}\"\n",
                8, 16, "routes[0].filters[0].headers.tag",
                "unknown substitution '${env.X}'; expected ${params.NAME}, ${query.NAME} or ${guard.identity}"),
            ("header name with a space", "      - headers: {\"x tag\": \"${}\"}\n",
                7, 28, "routes[0].filters[0].headers.x tag", "empty substitution '${}'"),
            ("header null", "      - headers:\n          tag: ~\n",
                8, 11, "routes[0].filters[0].headers.tag",
                "expected a string, number or boolean, not null"),
            ("header null in a flow mapping", "      - headers: {a: b, tag: }\n",
                7, 9, "routes[0].filters[0].headers.tag",
                "expected a string, number or boolean, not null"),
            ("header empty name", "      - headers: {\"\": x}\n",
                7, 19, "routes[0].filters[0].headers", "a header name must not be empty"),
            ("header twice", "      - headers:\n          tag: a\n          tag: b\n",
                9, 16, "routes[0].filters[0].headers.tag", "header 'tag' is listed twice"),
            ("headers a list", "      - headers: [tag]\n",
                7, 18, "routes[0].filters[0].headers",
                "invalid type: sequence, expected a mapping of header name to value"),
            ("value template", "      - value:\n          /status: \"${guard.claims}\"\n",
                8, 20, "routes[0].filters[0].value./status", "unknown substitution '${guard.claims}'"),
            ("pointer without '/'", "      - value: {status: open}\n",
                7, 25, "routes[0].filters[0].value.status",
                "a JSON pointer must be empty or start with '/' (did you mean '/status'?)"),
            ("pointer twice", "      - value:\n          /a: 1\n          /a: 2\n",
                9, 15, "routes[0].filters[0].value./a", "JSON pointer '/a' is listed twice"),
            ("value a list", "      - value: {/a: [1]}\n",
                7, 21, "routes[0].filters[0].value./a",
                "invalid type: sequence, expected a string, number, boolean or null"),
            ("value a mapping", "      - value:\n          /a: {b: 1}\n",
                8, 15, "routes[0].filters[0].value./a",
                "invalid type: map, expected a string, number, boolean or null"),
            ("value not a number", "      - value: {/a: .nan}\n",
                7, 21, "routes[0].filters[0].value./a", "NaN is not a JSON number"),
            ("empty filter", "      - {}\n",
                7, 7, "routes[0].filters[0]", "a filter needs at least one of key, headers, value"),
            ("filter of empty parts", "      - key: a\n      - headers: {}\n        value: {}\n",
                8, 7, "routes[0].filters[1]", "a filter needs at least one of key, headers, value"),
            ("empty filter list", "",
                6, 5, "routes[0].filters",
                "an empty list matches no record; remove `filters` to stream every record"),
            ("filters a mapping", "      key: a\n",
                7, 7, "routes[0].filters", "invalid type: map, expected a sequence"),
            ("unknown path parameter in key", "      - key: \"${params.x}\"\n",
                7, 9, "routes[0].filters[0].key", "path '/items/{id}' has no parameter 'x'"),
            ("unknown path parameter in a flow header", "      - key: a\n      - headers: {tag: \"t-${params.tag}\"}\n",
                8, 9, "routes[0].filters[1].headers.tag", "path '/items/{id}' has no parameter 'tag'"),
            ("unknown path parameter in a value", "      - value:\n          /ok: true\n          /n: ${params.n}\n",
                9, 11, "routes[0].filters[0].value./n", "path '/items/{id}' has no parameter 'n'"),
        ];
        for (what, entries, line, column, field, message) in cases {
            let text = format!("{FILTERED}{entries}");
            let err = match parse(&text, FILE) {
                Ok(_) => panic!("{what}: parsed, but should fail:\n{text}"),
                Err(e) => e,
            };
            let got = (err.file.as_str(), err.line, err.column, err.field.as_str());
            assert_eq!(got, (FILE, *line, *column, *field), "{what}: {err}");
            assert!(
                err.message.starts_with(message),
                "{what}: message is: {}",
                err.message
            );
            assert!(!err.message.contains(" at line "), "{what}: {err}");
        }
        // `filters: []` is the same mistake as the bare key above.
        let err = parse(&format!("{MINIMAL}    filters: []\n"), FILE).unwrap_err();
        assert_eq!(
            (err.line, err.column, err.field.as_str()),
            (6, 5, "routes[0].filters")
        );
        assert!(err.message.starts_with("an empty list matches no record"));
    }

    #[test]
    fn filters_parse_into_the_model() {
        let text = format!(
            "{FILTERED}{}",
            r#"      - key: "${params.id}"       # list = OR; inside one = AND
        headers: { tag: "${query.tag}", region: eu, version: 2, rate: 2.50, on: true }
        value: { "/status": "open", "/n": 5, "/ok": true, "/gone": null, "/f": 1.5, "/neg": -3, "/s": "5", "": "${params.id}" }
      - headers:
          z-last: a
          a-first: 'b c'
      - value:
          /deep/a~1b: x
          /none:
  - path: /plain
    topic: items
"#
        );
        let c = parse_ok(&text);
        let t = |s: &str| Template::parse(s).unwrap();
        let lit = |s: &str| ValueSpec::Literal(s.to_string());
        let text_of = |s: &str| ValueSpec::Text(t(s));
        let owned = |pairs: &[(&str, &str)]| -> Vec<(String, Template)> {
            pairs.iter().map(|(n, v)| (n.to_string(), t(v))).collect()
        };
        let want = vec![
            FilterSpec {
                key: Some(t("${params.id}")),
                // In file order; numbers and booleans as written.
                headers: owned(&[
                    ("tag", "${query.tag}"),
                    ("region", "eu"),
                    ("version", "2"),
                    ("rate", "2.50"),
                    ("on", "true"),
                ]),
                value: vec![
                    ("/status".into(), text_of("open")),
                    ("/n".into(), lit("5")),
                    ("/ok".into(), lit("true")),
                    ("/gone".into(), lit("null")),
                    ("/f".into(), lit("1.5")),
                    ("/neg".into(), lit("-3")),
                    ("/s".into(), text_of("5")),
                    ("".into(), text_of("${params.id}")),
                ],
            },
            FilterSpec {
                headers: owned(&[("z-last", "a"), ("a-first", "b c")]),
                ..Default::default()
            },
            FilterSpec {
                value: vec![
                    ("/deep/a~1b".into(), text_of("x")),
                    ("/none".into(), lit("null")),
                ],
                ..Default::default()
            },
        ];
        assert_eq!(c.routes[0].path, "/items/{id}");
        assert_eq!(c.routes[0].filters, want);
        assert_eq!(c.routes[1].filters, [], "no filters: every record");
        assert_eq!(
            c.describe_routes(),
            "GET /items/{id} -> topic items (start live, value text, id progress) filters: \
             [key=${params.id}, header tag=${query.tag}, header region=eu, header version=2, \
             header rate=2.50, header on=true, value /status=\"open\", value /n=5, value /ok=true, \
             value /gone=null, value /f=1.5, value /neg=-3, value /s=\"5\", value =\"${params.id}\"] \
             or [header z-last=a, header a-first=b c] or [value /deep/a~1b=\"x\", value /none=null]\n\
             GET /plain -> topic items (start live, value text, id progress)\n"
        );
    }
}
