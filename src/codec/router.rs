//! Maps a raw request path to a configured route: templates such as `/items`,
//! `/items/{id}` or `/a/{x}/b/{y}` are parsed once at startup into literal and
//! parameter segments, and [`Router::route`] matches a path segment by
//! segment. The path is split on `/` *before* percent-decoding, so `%2F`
//! inside a segment is data, never a separator: `/items/a%2Fb` gives `id` =
//! `a/b`. Parameter values are kept as decoded bytes (not `String`) because
//! the design matches and substitutes on bytes, and a value that is not UTF-8
//! is still a value, not a missing route. Matching runs once per connection,
//! so clarity wins over speed here: a linear scan, names cloned per match.

use percent_encoding::percent_decode_str;
use smallvec::SmallVec;

/// Why a route template was rejected at config load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("route path must start with '/'")]
    MustStartWithSlash,
    #[error("route path has an empty parameter name '{{}}'")]
    EmptyParamName,
    /// The offending segment: a brace that does not make a whole-segment
    /// `{name}` (`a{b}`, `{a`, `{a}b`, `{{a}}`, a lone `}`).
    #[error("route path segment '{0}' is not a literal or a whole-segment {{name}}")]
    BadParam(String),
    #[error("route path names parameter '{0}' twice")]
    DuplicateParam(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Compared with the percent-decoded path segment, so the template is
    /// written in plain text (`/a b` matches `/a%20b`).
    Literal(String),
    Param(String),
}

/// A parsed route path such as `/items/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    template: String,
    /// INVARIANT: parameter names are unique and non-empty; there is at least
    /// one segment (`/` is one empty literal segment).
    segments: Vec<Segment>,
}

impl PathTemplate {
    /// Parses a template. Segments are what lies between `/`s after the
    /// leading one, so `/` is one empty segment and `/items/` ends in an empty
    /// segment (trailing slashes are significant).
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let rest = template
            .strip_prefix('/')
            .ok_or(TemplateError::MustStartWithSlash)?;
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            let segment = match raw.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some("") => return Err(TemplateError::EmptyParamName),
                Some(name) if !name.contains(['{', '}']) => {
                    let duplicate = segments
                        .iter()
                        .any(|s| matches!(s, Segment::Param(seen) if seen == name));
                    if duplicate {
                        return Err(TemplateError::DuplicateParam(name.to_owned()));
                    }
                    Segment::Param(name.to_owned())
                }
                _ if raw.contains(['{', '}']) => {
                    return Err(TemplateError::BadParam(raw.to_owned()))
                }
                _ => Segment::Literal(raw.to_owned()),
            };
            segments.push(segment);
        }
        Ok(PathTemplate {
            template: template.to_owned(),
            segments,
        })
    }

    /// Parameter names in path order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Param(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// The template as written in the config.
    /// The template with its parameters' names left out (`/a/{}/b`): two
    /// templates of one shape match the same paths.
    pub fn shape(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            out.push('/');
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Param(_) => out.push_str("{}"),
            }
        }
        out
    }

    pub fn as_str(&self) -> &str {
        &self.template
    }

    fn is_literal(&self) -> bool {
        self.segments
            .iter()
            .all(|segment| matches!(segment, Segment::Literal(_)))
    }

    /// Params if `path` (already split and decoded) matches.
    fn matches(&self, decoded: &[Vec<u8>]) -> Option<Params> {
        if decoded.len() != self.segments.len() {
            return None;
        }
        let mut params = Params::new();
        for (segment, value) in self.segments.iter().zip(decoded) {
            match segment {
                Segment::Literal(literal) if literal.as_bytes() == value.as_slice() => {}
                Segment::Literal(_) => return None,
                // A parameter is exactly one non-empty segment. Decoding never
                // empties a non-empty segment, so checking decoded is enough.
                Segment::Param(_) if value.is_empty() => return None,
                Segment::Param(name) => params.push((name.clone(), value.clone())),
            }
        }
        Some(params)
    }
}

/// Matched parameters as (name, percent-decoded value) pairs in path order.
/// Four inline slots: real routes rarely have more, so no heap allocation for
/// the list itself.
pub type Params = SmallVec<[(String, Vec<u8>); 4]>;

/// The value of the parameter `name`, if the route has one.
pub fn param<'p>(params: &'p Params, name: &str) -> Option<&'p [u8]> {
    params
        .iter()
        .find(|(param_name, _)| param_name == name)
        .map(|(_, value)| value.as_slice())
}

/// The configured routes, in config order.
#[derive(Debug, Clone)]
pub struct Router {
    templates: Vec<PathTemplate>,
}

impl Router {
    pub fn new(templates: Vec<PathTemplate>) -> Self {
        Router { templates }
    }

    /// The first route, in config order, that matches `path` — except that a
    /// template of only literals beats templates with parameters when both
    /// match, so `/items/new` reaches its own route even when `/items/{id}` is
    /// listed first. Returns the route's index in the `templates` given to
    /// [`Router::new`] and its params.
    ///
    /// `path` is the raw request path (still percent-encoded, no query); a
    /// path not starting with `/` (such as `*`) matches nothing. Segments are
    /// split first and decoded second; `%` not followed by two hex digits is
    /// kept as is. A trailing slash is not ignored: `/items/` does not match
    /// `/items`.
    pub fn route(&self, path: &str) -> Option<(usize, Params)> {
        let rest = path.strip_prefix('/')?;
        let decoded: Vec<Vec<u8>> = rest
            .split('/')
            .map(|segment| percent_decode_str(segment).collect())
            .collect();
        let candidates = self.templates.iter().enumerate();
        candidates
            .clone()
            .filter(|(_, template)| template.is_literal())
            .chain(candidates)
            .find_map(|(index, template)| Some((index, template.matches(&decoded)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn router(templates: &[&str]) -> Router {
        Router::new(
            templates
                .iter()
                .map(|t| PathTemplate::parse(t).unwrap())
                .collect(),
        )
    }

    #[test]
    fn routes() {
        type Expected<'a> = Option<(usize, &'a [(&'a str, &'a [u8])])>;
        let routes = router(&[
            "/items",
            "/items/{id}",
            "/a/{x}/b/{y}",
            "/items/new",
            "/",
            "/sp ace/",
        ]);
        let cases: &[(&str, Expected<'_>)] = &[
            ("/items", Some((0, &[]))),
            ("/items/42", Some((1, &[("id", b"42")]))),
            ("/items/a%2Fb", Some((1, &[("id", b"a/b")]))),
            ("/items/%FF%00", Some((1, &[("id", b"\xff\x00")]))),
            ("/items/%zz", Some((1, &[("id", b"%zz")]))),
            ("/items/a+b", Some((1, &[("id", b"a+b")]))),
            ("/a/1/b/2", Some((2, &[("x", b"1"), ("y", b"2")]))),
            // Literal beats the earlier param route.
            ("/items/new", Some((3, &[]))),
            // Literals match after decoding.
            ("/items/n%65w", Some((3, &[]))),
            ("/", Some((4, &[]))),
            ("/sp%20ace/", Some((5, &[]))),
            // No match: trailing slash, empty param, extra or missing segments.
            ("/items/", None),
            ("/items//", None),
            ("/items/1/2", None),
            ("/a/1/b", None),
            ("/a/1/b/", None),
            ("/a//b/2", None),
            ("/other", None),
            ("/Items", None),
            ("%2Fitems", None),
            ("/%2Fitems", None),
            ("*", None),
            ("", None),
        ];
        for (path, expected) in cases {
            let got = routes.route(path);
            let got = got.as_ref().map(|(index, params)| {
                let pairs: Vec<(&str, &[u8])> = params
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_slice()))
                    .collect();
                (*index, pairs)
            });
            let expected = expected.map(|(index, pairs)| (index, pairs.to_vec()));
            assert_eq!(got, expected, "{path}");
        }
    }

    #[test]
    fn first_in_config_order_among_equals() {
        let routes = router(&["/{a}/x", "/y/{b}", "/y/x"]);
        assert_eq!(routes.route("/y/x").map(|(i, _)| i), Some(2));
        assert_eq!(routes.route("/z/x").map(|(i, _)| i), Some(0));
        let routes = router(&["/{a}/x", "/y/{b}"]);
        assert_eq!(routes.route("/y/x").map(|(i, _)| i), Some(0));
        let routes = router(&["/s", "/s"]);
        assert_eq!(routes.route("/s").map(|(i, _)| i), Some(0));
    }

    #[test]
    fn param_lookup() {
        let (_, params) = router(&["/a/{x}/b/{y}"]).route("/a/1/b/2").unwrap();
        assert_eq!(param(&params, "y"), Some(b"2".as_slice()));
        assert_eq!(param(&params, "z"), None);
    }

    #[test]
    fn templates() {
        use TemplateError::*;
        let cases: &[(&str, Result<&[&str], TemplateError>)] = &[
            ("/", Ok(&[])),
            ("/items", Ok(&[])),
            ("/items/{id}", Ok(&["id"])),
            ("/a/{x}/b/{y}/", Ok(&["x", "y"])),
            ("/{a.b-c}", Ok(&["a.b-c"])),
            ("", Err(MustStartWithSlash)),
            ("items", Err(MustStartWithSlash)),
            ("{id}", Err(MustStartWithSlash)),
            ("/items/{}", Err(EmptyParamName)),
            ("/a{b}", Err(BadParam("a{b}".into()))),
            ("/{a}b", Err(BadParam("{a}b".into()))),
            ("/{a", Err(BadParam("{a".into()))),
            ("/a}", Err(BadParam("a}".into()))),
            ("/{{a}}", Err(BadParam("{{a}}".into()))),
            ("/{a}/{a}", Err(DuplicateParam("a".into()))),
        ];
        for (template, expected) in cases {
            let got = PathTemplate::parse(template);
            match (got, expected) {
                (Ok(parsed), Ok(names)) => {
                    assert_eq!(
                        parsed.param_names().collect::<Vec<_>>(),
                        *names,
                        "{template}"
                    );
                    assert_eq!(parsed.as_str(), *template);
                }
                (got, expected) => {
                    assert_eq!(got.map(|_| ()), expected.clone().map(|_| ()), "{template}")
                }
            }
        }
    }

    proptest! {
        /// Any value, however encoded, comes back as the one parameter.
        #[test]
        fn encoded_params_round_trip(value in proptest::collection::vec(any::<u8>(), 1..32)) {
            let encoded =
                percent_encoding::percent_encode(&value, percent_encoding::NON_ALPHANUMERIC).to_string();
            let (index, params) = router(&["/items", "/items/{id}"])
                .route(&format!("/items/{encoded}"))
                .unwrap();
            prop_assert_eq!(index, 1);
            prop_assert_eq!(param(&params, "id"), Some(value.as_slice()));
        }

        #[test]
        fn arbitrary_paths_never_panic(path in "\\PC{0,40}") {
            let _ = router(&["/", "/{a}", "/a/{b}/c"]).route(&path);
        }
    }
}
