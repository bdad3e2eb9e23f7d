//! AsyncAPI 3.0 as a front end of the config, both ways. Documents named by
//! `asyncapi:` declare routes that join `routes:` and are checked like
//! them, each error naming the document, line and document path where the
//! setting is written; `write` describes a config's routes in an
//! AsyncAPI document that reads back as the same routes
//! ([`Config::asyncapi_document`](super::Config::asyncapi_document)).
//!
//! - `document`: one document read, its `$ref`s followed.
//! - `channels`: the single-document form (`x-sse-kafka` on a channel).
//! - `zilla`: Zilla's pair of an SSE and a Kafka document.
//! - `write`: the document of a config's routes.

use std::path::Path;
use std::rc::Rc;

mod channels;
mod document;
#[cfg(test)]
mod tests;
mod write;
mod zilla;

pub use write::Format;

use document::Document;

use super::error::ConfigError;
use super::raw::{RawRoute, Source, Sources};

/// A route an AsyncAPI document declares, and where it did.
pub(super) struct Declared {
    pub(super) route: RawRoute,
    pub(super) origin: Origin,
}

/// Where an AsyncAPI route's settings are written, so that an error in
/// one, found by the checks the YAML routes pass too, names that place.
pub(super) struct Origin {
    /// How messages name the route: `sse.yaml channels.items`.
    pub(super) name: String,
    /// The places of the settings not written in `settings`: by the first
    /// segment of a route's field (`path`, `topic`, `filters`, ...).
    places: Vec<(&'static str, Place)>,
    /// Where the other settings are (`x-sse-kafka`, or Zilla's operation).
    settings: Place,
}

/// A document path in one document.
struct Place {
    doc: Rc<Document>,
    at: String,
}

impl Origin {
    /// The error of the route's `field` (`path`, `start`,
    /// `filters[0].key`), at the place in its document that wrote it.
    pub(super) fn error(&self, field: &str, message: String) -> ConfigError {
        let cut = field.find(['.', '[']).unwrap_or(field.len());
        let (head, tail) = field.split_at(cut);
        let (place, at) = match self.places.iter().find(|(name, _)| *name == head) {
            Some((_, place)) if head == "filters" => (place, format!("{}{tail}", place.at)),
            Some((_, place)) => (place, place.at.clone()),
            None if field.is_empty() => (&self.settings, self.settings.at.clone()),
            None => (&self.settings, format!("{}.{field}", self.settings.at)),
        };
        place.doc.error(&at, message)
    }
}

/// The routes the documents of `sources` declare, in order. Their paths
/// are relative to `base`, the config file's directory; `at_config` makes
/// an error at a field of the config file (`asyncapi[1]`).
pub(super) fn declare(
    sources: Option<Sources>,
    base: &Path,
    at_config: &dyn Fn(String, String) -> ConfigError,
) -> Result<Vec<Declared>, ConfigError> {
    let Some(Sources(sources)) = sources else {
        return Ok(Vec::new());
    };
    let mut all = Vec::new();
    for (i, source) in sources.into_iter().enumerate() {
        let read = |path: &str, field: String| {
            Document::read(&base.join(path), &|message| {
                at_config(field.clone(), message)
            })
            .map(Rc::new)
        };
        let (routes, first, none) = match source {
            Source::Single(path) => {
                let doc = read(&path, format!("asyncapi[{i}]"))?;
                (channels::declared(&doc)?, doc, "no operation's channel carries x-sse-kafka (for Zilla's pair of documents, write {sse: PATH, kafka: PATH})")
            }
            Source::Pair { sse, kafka } => {
                let sse = read(&sse, format!("asyncapi[{i}].sse"))?;
                let kafka = read(&kafka, format!("asyncapi[{i}].kafka"))?;
                (zilla::declared(&sse, &kafka)?, sse, "no SSE operation (one with bindings.x-zilla-sse, or any of a document with a server of protocol sse)")
            }
        };
        if routes.is_empty() {
            return Err(first.error("-", format!("declares no route: {none}")));
        }
        all.extend(routes);
    }
    Ok(all)
}
