//! The YAML configuration of sse-kafka: where to listen, which Kafka cluster to
//! read, and which HTTP path streams which topic. [`parse`] and [`load`] turn a
//! file into a validated [`Config`] or into a [`ConfigError`] that names the
//! file, the line, the column and the dotted field (`routes[1].topic`), because
//! an operator fixing a broken deployment should never have to guess where the
//! mistake is. Most checks run *during* deserialization, inside small newtypes
//! (durations, sizes, topic names, route paths, keywords), so that serde_yaml_ng
//! attaches the exact position of the offending value; the few checks that span
//! several fields run afterwards and find their position again with a small
//! scanner over the text (`KeyIndex`). [`load_with`] also writes command-line
//! [`Overrides`] over the file before those checks, so a flag's value is
//! checked like the file's, and an error in it names the flag.
//!
//! One concept per file; each uses only those listed after it:
//!
//! - `validate`: the checks across fields, the overrides, building the model.
//! - `asyncapi`: routes declared in AsyncAPI 3.0 documents, and the
//!   document of a config's routes.
//! - `raw`: the serde structs mirroring the file, with their defaults.
//! - `filters`: a route's filter conditions, into [`crate::codec::filter::FilterSpec`]s.
//! - `guards`: the JWT guards, their key files, a route's guard and roles.
//! - `bounds`: the file's size and nesting depth, checked before parsing;
//!   bounded reads of it and of key files.
//! - `values`: the validating value types (durations, sizes, addresses, ...).
//! - `error`: [`ConfigError`], and serde_yaml_ng's errors turned into it.
//! - `keys`: the scanner that finds a field's line and column in the text.
//! - `overrides`: the flags that may override the file, [`Overrides`].
//! - `defaults`: the documented defaults and bounds.
//! - `model`: the validated [`Config`] and its parts.
//!
//! Topic names and topic globs are checked by [`crate::codec::topic`], which
//! connections use at run time too.

use std::path::Path;

mod asyncapi;
mod bounds;
mod defaults;
mod error;
mod filters;
mod guards;
mod keys;
mod model;
mod overrides;
mod raw;
#[cfg(test)]
mod testing;
mod validate;
mod values;

pub use asyncapi::Format as DocumentFormat;
pub use defaults::*;
pub use error::ConfigError;
pub use guards::{read_key_file, MIN_SECRET_BYTES};
pub use model::{
    CacheConfig, Config, Connections, Cors, EventIdForm, Guard, KafkaConfig, KeySource, MaxLag,
    Partitioner, PublicUrl, Route, SlowClient, Start, ValueEncoding,
};
pub use overrides::{Flag, Overrides};

use raw::RawConfig;
use validate::validate;

/// Reads and parses the file at `path`. A file that cannot be read gives an
/// error with line and column 0 and field `-`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, &Overrides::default())
}

/// [`load`], with `overrides` written over the file's values before they are
/// checked. An error in an override's value names the flag
/// (`--brokers (SSE_KAFKA_BROKERS): ...`); the file's own errors keep
/// `file:line:column: field`, even in a setting a flag overrides.
pub fn load_with(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = bounds::read(path, &file)?;
    parse_with(&text, &file, overrides)
}

/// Parses and validates configuration `text`; `file` is only used to name the
/// source in errors.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    parse_with(text, file, &Overrides::default())
}

/// [`parse`] with overrides, as [`load_with`].
fn parse_with(text: &str, file: &str, overrides: &Overrides) -> Result<Config, ConfigError> {
    // An empty document deserializes as null, which serde reports as "invalid
    // type: unit value"; say what is actually wrong.
    if text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    }) {
        return Err(ConfigError::new(
            file,
            (0, 0),
            "-",
            "the file is empty; it needs at least `kafka.bootstrap` and `routes`".to_string(),
        ));
    }
    bounds::check_line_breaks(text, file)?;
    bounds::check_nesting(text, file)?;
    let raw: RawConfig =
        serde_yaml_ng::from_str(text).map_err(|e| ConfigError::from_yaml(&e, text, file))?;
    validate(raw, overrides, text, file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::MINIMAL;

    #[test]
    fn load_reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sse-kafka.yaml");
        std::fs::write(&path, MINIMAL).unwrap();
        assert_eq!(load(&path).unwrap().routes[0].topic, "items");

        std::fs::write(&path, "kafka: {bootstrap: []}\nroutes: []\n").unwrap();
        let err = load(&path).unwrap_err();
        assert_eq!(
            (err.file.as_str(), err.line, err.field.as_str()),
            (path.to_str().unwrap(), 1, "kafka.bootstrap")
        );
    }

    #[test]
    fn load_of_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.yaml");
        let err = load(&path).unwrap_err();
        assert_eq!(err.file, path.display().to_string());
        assert_eq!((err.line, err.column, err.field.as_str()), (0, 0, "-"));
        assert!(err.message.starts_with("cannot read the file: "), "{err}");
    }

    #[test]
    fn load_with_applies_the_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sse-kafka.yaml");
        std::fs::write(&path, MINIMAL).unwrap();
        let good = Overrides {
            brokers: Some(vec!["k1:9092".into()]),
            ..Overrides::default()
        };
        assert_eq!(
            load_with(&path, &good).unwrap().kafka.bootstrap,
            ["k1:9092"]
        );
        let bad = Overrides {
            brokers: Some(vec!["nohost".into()]),
            ..Overrides::default()
        };
        let err = load_with(&path, &bad).unwrap_err();
        assert_eq!(
            (err.file.as_str(), err.flag),
            (path.to_str().unwrap(), Some(Flag::Brokers))
        );
        // `load` is `load_with` without overrides.
        assert_eq!(load(&path).unwrap().kafka.bootstrap, ["127.0.0.1:9092"]);
    }
}
