//! Routes as a shard's streams use them: the router that maps a path to a
//! route, and what each route resolves to once (its topic id, start,
//! rendering and keep-alive), beside the route's own config; and the
//! served AsyncAPI document of them all.

use std::sync::Arc;
use std::time::Duration;

use crate::codec::router::{PathTemplate, Router};
use crate::codec::sse::Render;
use crate::config::{Config, DocumentFormat, Route, Start};
use crate::kafka::TopicTable;
use crate::model::TopicId;

/// What a stream needs to know about its route, resolved once.
#[derive(Debug, Clone, Copy)]
pub struct RouteInfo {
    pub topic: TopicId,
    pub start: Start,
    pub render: Render,
    pub keepalive: Duration,
}

/// Every route of the config, resolved.
#[derive(Debug)]
pub struct Routes {
    config: Arc<Config>,
    router: Router,
    infos: Vec<RouteInfo>,
    /// The AsyncAPI document, when `serve_asyncapi` asks for it: by path.
    documents: Vec<Document>,
}

/// The served AsyncAPI document in one of its forms.
#[derive(Debug)]
pub struct Document {
    /// `serve_asyncapi` plus `.json` or `.yaml`.
    pub path: String,
    pub content_type: &'static str,
    pub body: String,
}

impl Routes {
    /// The config's routes against the topic table (which holds every
    /// fixed topic of the routes).
    pub fn new(config: Arc<Config>, topics: &TopicTable) -> Self {
        let router = Router::new(
            config
                .routes
                .iter()
                .map(|r| {
                    PathTemplate::parse(&r.path).expect("route paths are validated with the config")
                })
                .collect(),
        );
        let infos = (0..config.routes.len())
            .map(|i| {
                let r = &config.routes[i];
                RouteInfo {
                    topic: match r.topic_template {
                        // Resolved per request (see `plan`).
                        Some(_) => TopicId::PER_REQUEST,
                        None => topics
                            .find(&r.topic)
                            .expect("a fixed route topic is in the topic table"),
                    },
                    start: r.start,
                    render: Render {
                        value: r.value,
                        id: r.event_id,
                    },
                    keepalive: config.route_keepalive(i),
                }
            })
            .collect();
        let documents = match &config.serve_asyncapi {
            None => Vec::new(),
            Some(at) => [
                (DocumentFormat::Json, "json"),
                (DocumentFormat::Yaml, "yaml"),
            ]
            .into_iter()
            .map(|(format, ext)| Document {
                path: format!("{at}.{ext}"),
                content_type: format.content_type(),
                body: config.asyncapi_document(format),
            })
            .collect(),
        };
        Self {
            config,
            router,
            infos,
            documents,
        }
    }

    /// The served AsyncAPI document at request path `path`, if it is one
    /// of its paths (no route ever is).
    pub fn document(&self, path: &str) -> Option<&Document> {
        self.documents.iter().find(|d| d.path == path)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Route number `i`, resolved.
    pub fn info(&self, i: usize) -> &RouteInfo {
        &self.infos[i]
    }

    /// Route number `i` as configured.
    pub fn route(&self, i: usize) -> &Route {
        &self.config.routes[i]
    }

    /// The shortest keep-alive of every route (and the top-level one).
    pub fn shortest_keepalive(&self) -> Duration {
        self.infos
            .iter()
            .map(|r| r.keepalive)
            .min()
            .unwrap_or(self.config.keepalive)
    }
}
