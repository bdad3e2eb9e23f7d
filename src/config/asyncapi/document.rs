//! One AsyncAPI document as read: its tree, to walk and to follow `$ref`s
//! in, and its text's key index, so that an error names the document, the
//! line and the document path (`operations.receiveEvents.channel.$ref`)
//! as every config error names its place. Only references inside the
//! document (`#/components/...`) are followed; the `asyncapi` crate models
//! 2.x documents and is no help for 3.0.

use std::path::Path;

use serde_yaml_ng::Value;

use crate::config::bounds;
use crate::config::error::ConfigError;
use crate::config::keys::{join_key, KeyIndex};

/// How many `$ref`s one reference may go through before it is taken for
/// a loop.
const MAX_REF_HOPS: usize = 32;

pub(super) struct Document {
    /// The path as errors show it.
    pub(super) file: String,
    pub(super) text: String,
    pub(super) root: Value,
    index: KeyIndex,
}

impl Document {
    /// Reads, bounds and parses the document at `path` (YAML or JSON) and
    /// checks that it is AsyncAPI 3.0 and that each of its local `$ref`s
    /// points at something. A file that cannot be read is the fault of
    /// the config's entry naming it: `unreadable` makes that error.
    pub(super) fn read(
        path: &Path,
        unreadable: &dyn Fn(String) -> ConfigError,
    ) -> Result<Document, ConfigError> {
        let file = path.display().to_string();
        let text = bounds::read(path, &file).map_err(|e| {
            unreadable(format!(
                "cannot read the AsyncAPI document {file}: {}",
                e.message
            ))
        })?;
        Document::parse(text, file)
    }

    /// [`Document::read`] of a text already read.
    pub(super) fn parse(text: String, file: String) -> Result<Document, ConfigError> {
        bounds::check_line_breaks(&text, &file)?;
        bounds::check_nesting(&text, &file)?;
        let root: Value =
            serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::from_yaml(&e, &text, &file))?;
        let index = KeyIndex::new(&text);
        let doc = Document {
            file,
            text,
            root,
            index,
        };
        doc.check_version()?;
        doc.check_refs(&doc.root, "")?;
        Ok(doc)
    }

    /// The error at document path `at` (`-`: the document as a whole).
    pub(super) fn error(&self, at: &str, message: impl Into<String>) -> ConfigError {
        let at = if at.is_empty() { "-" } else { at };
        ConfigError::new(&self.file, self.index.locate(at), at, message.into())
    }

    /// `value` itself, or what its `$ref` points at (through further
    /// `$ref`s), with its document path; `at` is `value`'s own path.
    pub(super) fn resolve<'a>(
        &'a self,
        value: &'a Value,
        at: &str,
    ) -> Result<(&'a Value, String), ConfigError> {
        let (mut value, mut at) = (value, at.to_string());
        for _ in 0..MAX_REF_HOPS {
            let Some(reference) = value.get("$ref") else {
                return Ok((value, at));
            };
            let here = join_key(&at, "$ref");
            (value, at) = self.target(reference, &here)?;
        }
        Err(self.error(&at, "a loop of $refs"))
    }

    /// The value `reference` (the `$ref` at `at`) points at, and its path.
    fn target<'a>(
        &'a self,
        reference: &Value,
        at: &str,
    ) -> Result<(&'a Value, String), ConfigError> {
        let Some(text) = reference.as_str() else {
            return Err(self.error(at, "a $ref is a string (\"#/components/...\")"));
        };
        let Some(pointer) = text.strip_prefix('#') else {
            return Err(self.error(
                at,
                format!("'{text}': only references inside the document (#/...) are followed"),
            ));
        };
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            return Err(self.error(at, format!("'{text}' is not a JSON pointer (#/...)")));
        }
        let mut value = &self.root;
        let mut path = String::new();
        for raw in pointer.split('/').skip(1) {
            let segment = unescape(raw);
            let next = match value {
                Value::Sequence(items) => segment
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i).map(|v| (v, format!("{path}[{i}]")))),
                Value::Mapping(_) => value
                    .get(segment.as_str())
                    .map(|v| (v, join_key(&path, &segment))),
                _ => None,
            };
            let Some((v, p)) = next else {
                return Err(self.error(at, format!("'{text}': no such component in the document")));
            };
            (value, path) = (v, p);
        }
        Ok((value, path))
    }

    /// Every `$ref` under `value` (at `at`) points at something.
    fn check_refs(&self, value: &Value, at: &str) -> Result<(), ConfigError> {
        match value {
            Value::Mapping(map) => {
                for (key, v) in map {
                    let Some(key) = key.as_str() else { continue };
                    let here = join_key(at, key);
                    if key == "$ref" {
                        // Only local ones can be checked here; the others are
                        // refused where they would be needed.
                        if v.as_str().is_some_and(|r| r.starts_with('#')) {
                            self.target(v, &here)?;
                        }
                    } else {
                        self.check_refs(v, &here)?;
                    }
                }
                Ok(())
            }
            Value::Sequence(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| self.check_refs(v, &format!("{at}[{i}]"))),
            Value::Tagged(tagged) => self.check_refs(&tagged.value, at),
            _ => Ok(()),
        }
    }

    /// `asyncapi: 3.0.x`, or an error that says what the document is.
    fn check_version(&self) -> Result<(), ConfigError> {
        if !self.root.is_mapping() {
            return Err(self.error(
                "-",
                "an AsyncAPI document is a mapping (asyncapi: 3.0.0, channels, operations, ...)",
            ));
        }
        match self.root.get("asyncapi").map(|v| (v, v.as_str())) {
            None => Err(self.error("-", "not an AsyncAPI document: it has no `asyncapi: 3.0.0`")),
            Some((_, Some(v))) if v.starts_with("3.0.") => Ok(()),
            Some((_, Some(v))) => Err(self.error(
                "asyncapi",
                format!("an AsyncAPI {v} document; sse-kafka reads AsyncAPI 3.0 (convert a 2.x document with `asyncapi convert`)"),
            )),
            Some((v, None)) => Err(self.error(
                "asyncapi",
                format!("expected a version string such as 3.0.0, not {}", show(v)),
            )),
        }
    }

    /// The entries of the mapping at `key` of `value`, with their paths
    /// under `at`, following a `$ref` to the mapping; none when absent.
    pub(super) fn entries<'a>(
        &'a self,
        value: &'a Value,
        key: &str,
        at: &str,
    ) -> Result<Vec<(&'a str, &'a Value, String)>, ConfigError> {
        let Some(inner) = value.get(key) else {
            return Ok(Vec::new());
        };
        let (inner, inner_at) = self.resolve(inner, &join_key(at, key))?;
        match inner {
            Value::Mapping(map) => Ok(map
                .iter()
                .filter_map(|(k, v)| k.as_str().map(|k| (k, v, join_key(&inner_at, k))))
                .collect()),
            Value::Null => Ok(Vec::new()),
            other => Err(self.error(
                &inner_at,
                format!("expected a mapping, not {}", show(other)),
            )),
        }
    }

    /// The string at `key` of `value`, if there is one; an error if
    /// something else is there.
    pub(super) fn string<'a>(
        &self,
        value: &'a Value,
        key: &str,
        at: &str,
    ) -> Result<Option<&'a str>, ConfigError> {
        match value.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.error(
                &join_key(at, key),
                format!("expected a string, not {}", show(other)),
            )),
        }
    }
}

/// A JSON pointer segment's text: `~1` is `/`, `~0` is `~` (RFC 6901), and
/// percent-escapes, which a URI fragment may hold, are decoded.
fn unescape(segment: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
    decoded.replace("~1", "/").replace("~0", "~")
}

/// What kind of value `v` is, for messages.
pub(super) fn show(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Result<Document, ConfigError> {
        Document::parse(text.to_string(), "api.yaml".into())
    }

    #[test]
    fn refs_are_followed_through_chains_and_escapes() {
        let d = doc("asyncapi: 3.0.0\nchannels:\n  a:\n    $ref: '#/components/channels/b~1c'\ncomponents:\n  channels:\n    b/c:\n      $ref: '#/components/channels/d'\n    d:\n      address: /d\n")
            .unwrap();
        let a = d.root.get("channels").unwrap().get("a").unwrap();
        let (target, at) = d.resolve(a, "channels.a").unwrap();
        assert_eq!(at, "components.channels.d");
        assert_eq!(target.get("address").unwrap().as_str(), Some("/d"));
    }

    #[test]
    fn bad_documents_are_named_with_their_place() {
        let cases = [
            ("asyncapi: 2.6.0\nchannels: {}\n", 1, "asyncapi", "an AsyncAPI 2.6.0 document"),
            ("info: {title: x}\n", 0, "-", "not an AsyncAPI document"),
            ("asyncapi: 3.0.0\noperations:\n  go:\n    messages:\n      - $ref: '#/components/messages/nope'\n",
                5, "operations.go.messages[0].$ref", "'#/components/messages/nope': no such component"),
            ("asyncapi: 3.0.0\nchannels:\n  a:\n    $ref: '#/channels/b'\n  b:\n    $ref: '#/channels/a'\n",
                0, "", ""),
        ];
        for (text, line, at, message) in &cases[..3] {
            let err = doc(text).err().unwrap_or_else(|| panic!("{text} parsed"));
            assert_eq!((err.line, err.field.as_str()), (*line, *at), "{err}");
            assert!(err.message.starts_with(message), "{err}");
        }
        // A loop is found where it is followed.
        let d = doc(cases[3].0).unwrap();
        let a = d.root.get("channels").unwrap().get("a").unwrap();
        let err = d.resolve(a, "channels.a").unwrap_err();
        assert_eq!(err.message, "a loop of $refs", "{err}");
        // External references are refused where they are needed.
        let d =
            doc("asyncapi: 3.0.0\nchannels:\n  a:\n    $ref: 'other.yaml#/channels/a'\n").unwrap();
        let a = d.root.get("channels").unwrap().get("a").unwrap();
        let err = d.resolve(a, "channels.a").unwrap_err();
        assert_eq!(
            (err.line, err.field.as_str()),
            (4, "channels.a.$ref"),
            "{err}"
        );
        assert!(
            err.message.contains("only references inside the document"),
            "{err}"
        );
    }
}
