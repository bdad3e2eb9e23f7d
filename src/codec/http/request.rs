//! Request heads: [`parse_request`], a push parser on `httparse` that
//! borrows from the caller's buffer, answers `Ok(None)` while the head is
//! incomplete and bounds every size with a typed error; and
//! [`query_param`].

use std::borrow::Cow;

/// Room for a 16 KiB `Last-Event-ID` (the design requires accepting ids that
/// long) plus ordinary headers.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// Far above what browsers, curl and SSE client libraries send (about 10–20
/// fields), yet it bounds the on-stack `httparse` header array to 64 × 32
/// bytes = 2 KiB per parse.
pub const MAX_HEADERS: usize = 64;

/// Longest request line (method, target and version, excluding the CRLF).
/// The design resumes from `?lastEventId=` when the header is absent and
/// requires ids up to 16 KiB; base64url ids need no percent-encoding, so
/// 16 KiB of id plus 4 KiB for the method, path, other parameters and
/// version. (8 KiB, the usual proxy default, would answer 414 to exactly the
/// long resumes the design promises to accept.)
pub const MAX_REQUEST_LINE: usize = 20 * 1024;

/// Why a request head was rejected. Small and `Copy`, like `httparse::Error`,
/// because the caller only maps it to a status line and a log field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Syntax the server will not interpret; the reason is for logs and the
    /// 400 body.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The buffer holds `limit` bytes and still no complete head.
    #[error("request head exceeds {limit} bytes")]
    HeadTooLarge { limit: usize },
    /// More header fields than `limit`.
    #[error("request has more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    /// The request line is longer than `limit` bytes.
    #[error("request line exceeds {limit} bytes")]
    RequestLineTooLong { limit: usize },
    /// A well-formed `HTTP/x.y` version other than 1.0 and 1.1, such as the
    /// `PRI * HTTP/2.0` preface of a prior-knowledge HTTP/2 client.
    #[error("unsupported HTTP version (only HTTP/1.0 and HTTP/1.1 are served)")]
    UnsupportedVersion,
}

impl RequestError {
    /// The status code to answer with before closing the connection.
    ///
    /// `UnsupportedVersion` is 505 rather than 400: it is only produced when
    /// the version token is grammatical (`HTTP/<digit>…`), so the client did
    /// speak HTTP, just a version we do not serve, and 505 tells its operator
    /// exactly that. A garbled version token is `Malformed` (400).
    pub fn status(&self) -> u16 {
        match self {
            RequestError::Malformed(_) => 400,
            RequestError::UnsupportedVersion => 505,
            RequestError::HeadTooLarge { .. } | RequestError::TooManyHeaders { .. } => 431,
            RequestError::RequestLineTooLong { .. } => 414,
        }
    }
}

/// The request methods the server distinguishes; everything else is answered
/// with 405 by the caller. Methods are case-sensitive (RFC 9110 §9.1), so
/// `get` is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Options,
    Head,
    Other,
}

impl Method {
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "OPTIONS" => Method::Options,
            "HEAD" => Method::Head,
            _ => Method::Other,
        }
    }
}

/// What the server needs from a request head, borrowed from the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead<'a> {
    pub method: Method,
    /// Raw path, without the query, still percent-encoded. Always starts with
    /// `/`, except `*` for `OPTIONS *`. An absolute-form target
    /// (`http://host/p`) is reduced to its path, as RFC 9112 §3.2.2 requires
    /// servers to accept it.
    pub path: &'a str,
    /// After `?`, without any `#fragment`; `Some("")` for a bare `?`.
    pub query: Option<&'a str>,
    /// Header values are as `httparse` yields them: surrounding whitespace
    /// trimmed, otherwise raw bytes (possibly empty, possibly not UTF-8).
    pub last_event_id: Option<&'a [u8]>,
    pub origin: Option<&'a [u8]>,
    pub access_control_request_method: Option<&'a [u8]>,
    /// First field line only: the field is list-valued, but browsers send one.
    pub access_control_request_headers: Option<&'a [u8]>,
    /// `Authorization`, for guarded routes; any scheme (the guard reads
    /// only `Bearer`).
    pub authorization: Option<&'a [u8]>,
    /// `Cookie`: one field, as RFC 6265 §5.4 has user agents send it.
    pub cookie: Option<&'a [u8]>,
    /// Bytes consumed by the head (through the blank line), including any
    /// empty lines before the request line. Bytes after it (a body or a
    /// pipelined request) are not looked at.
    pub head_len: usize,
}

/// Parses a request head from the start of `buf`.
///
/// `Ok(None)` means the head is incomplete and the caller should read more.
/// Limits: a request line longer than [`MAX_REQUEST_LINE`] (detected as soon
/// as that many bytes arrive without a line end), a buffer holding
/// [`MAX_HEAD_BYTES`] without a complete head (a complete head of at most
/// that size is accepted even if more bytes follow it), and more than
/// [`MAX_HEADERS`] fields. Header names are case-insensitive. HTTP/1.0 and
/// HTTP/1.1 are accepted. `Last-Event-ID`, `Origin`,
/// `Access-Control-Request-Method`, `Authorization` and `Cookie` are
/// single-valued, and a repeated one is `Malformed`: two resume positions,
/// origins or credentials are ambiguous, and
/// picking one could differ from what an intermediary checked. An HTTP/1.1
/// request without `Host`, or with two, is `Malformed` (RFC 9112 §3.2).
pub fn parse_request(buf: &[u8]) -> Result<Option<RequestHead<'_>>, RequestError> {
    // Never hand httparse more than the limit: a head that does not complete
    // inside this window is too large, whatever follows, so the answer does
    // not depend on how the bytes were split into reads.
    let window = &buf[..buf.len().min(MAX_HEAD_BYTES)];
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    // httparse runs first so that bytes it rejects are reported as the 400
    // they are, even on a long line; only then are the lengths judged.
    let status = req
        .parse(window)
        .map_err(|e| map_httparse_error(e, window))?;
    check_request_line(window)?;
    let head_len = match status {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial if window.len() == MAX_HEAD_BYTES => {
            return Err(RequestError::HeadTooLarge {
                limit: MAX_HEAD_BYTES,
            })
        }
        httparse::Status::Partial => return Ok(None),
    };
    // INVARIANT: a Complete parse has set method, path and version.
    let method_token = req
        .method
        .ok_or(RequestError::Malformed("missing method"))?;
    let target = req.path.ok_or(RequestError::Malformed("missing target"))?;
    let method = Method::from_token(method_token);
    let (path, query) = split_target(target, method)?;

    let mut head = RequestHead {
        method,
        path,
        query,
        last_event_id: None,
        origin: None,
        access_control_request_method: None,
        access_control_request_headers: None,
        authorization: None,
        cookie: None,
        head_len,
    };
    let mut host = None;
    for field in req.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("host") {
            set_once(&mut host, field.value, "repeated Host")?;
        } else if name.eq_ignore_ascii_case("last-event-id") {
            set_once(
                &mut head.last_event_id,
                field.value,
                "repeated Last-Event-ID",
            )?;
        } else if name.eq_ignore_ascii_case("origin") {
            set_once(&mut head.origin, field.value, "repeated Origin")?;
        } else if name.eq_ignore_ascii_case("access-control-request-method") {
            set_once(
                &mut head.access_control_request_method,
                field.value,
                "repeated Access-Control-Request-Method",
            )?;
        } else if name.eq_ignore_ascii_case("authorization") {
            set_once(
                &mut head.authorization,
                field.value,
                "repeated Authorization",
            )?;
        } else if name.eq_ignore_ascii_case("cookie") {
            set_once(&mut head.cookie, field.value, "repeated Cookie")?;
        } else if name.eq_ignore_ascii_case("access-control-request-headers")
            && head.access_control_request_headers.is_none()
        {
            head.access_control_request_headers = Some(field.value);
        }
    }
    // RFC 9112 §3.2: an HTTP/1.1 request names its host exactly once.
    if req.version == Some(1) && host.is_none() {
        return Err(RequestError::Malformed("HTTP/1.1 request without Host"));
    }
    Ok(Some(head))
}

fn set_once<'a>(
    slot: &mut Option<&'a [u8]>,
    value: &'a [u8],
    repeated: &'static str,
) -> Result<(), RequestError> {
    if slot.replace(value).is_some() {
        return Err(RequestError::Malformed(repeated));
    }
    Ok(())
}

fn map_httparse_error(error: httparse::Error, window: &[u8]) -> RequestError {
    match error {
        httparse::Error::TooManyHeaders => RequestError::TooManyHeaders { limit: MAX_HEADERS },
        httparse::Error::Version => classify_version(window),
        httparse::Error::HeaderName => RequestError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => RequestError::Malformed("invalid header value"),
        httparse::Error::NewLine => RequestError::Malformed("invalid line ending"),
        httparse::Error::Token => RequestError::Malformed("invalid method or request target"),
        // Only produced when parsing responses.
        httparse::Error::Status => RequestError::Malformed("invalid request line"),
    }
}

/// httparse reports any version other than exactly `HTTP/1.0` or `HTTP/1.1`
/// as `Error::Version`, garbage included; tell "a version we do not serve"
/// (`HTTP/` and a digit) from a broken request line.
fn classify_version(window: &[u8]) -> RequestError {
    let line = first_line(window);
    let version = match memchr::memrchr(b' ', line) {
        Some(space) => &line[space + 1..],
        None => line,
    };
    match version.strip_prefix(b"HTTP/") {
        Some(rest) if rest.first().is_some_and(u8::is_ascii_digit) => {
            RequestError::UnsupportedVersion
        }
        _ => RequestError::Malformed("invalid HTTP version"),
    }
}

/// The request line as far as it has arrived (without CR/LF), after the
/// empty lines RFC 9112 §2.2 lets a server skip, which httparse skips too.
fn first_line(window: &[u8]) -> &[u8] {
    let start = window
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(window.len());
    let rest = &window[start..];
    let line = match memchr::memchr(b'\n', rest) {
        Some(lf) => &rest[..lf],
        None => rest,
    };
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn check_request_line(window: &[u8]) -> Result<(), RequestError> {
    // Scanning MAX + 2 bytes (a maximal line and its CRLF) is enough to decide;
    // it keeps a 32 KiB unterminated line from being scanned on every read.
    let start = window
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(window.len());
    let rest = &window[start..];
    let scan = &rest[..rest.len().min(MAX_REQUEST_LINE + 2)];
    if first_line(scan).len() > MAX_REQUEST_LINE {
        return Err(RequestError::RequestLineTooLong {
            limit: MAX_REQUEST_LINE,
        });
    }
    Ok(())
}

/// Splits a request target into the raw path and query.
fn split_target(target: &str, method: Method) -> Result<(&str, Option<&str>), RequestError> {
    // Clients must not send a fragment, but one that does should not have it
    // treated as part of the query.
    let target = target.split_once('#').map_or(target, |(before, _)| before);
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    if path.starts_with('/') {
        return Ok((path, query));
    }
    if path == "*" {
        // RFC 9112 §3.2.4: asterisk-form is only for a server-wide OPTIONS.
        return match (method, query) {
            (Method::Options, None) => Ok((path, None)),
            _ => Err(RequestError::Malformed("'*' target outside OPTIONS")),
        };
    }
    match path_of_absolute_form(path) {
        Some(path) => Ok((path, query)),
        None => Err(RequestError::Malformed("request target is not a path")),
    }
}

/// `http://authority/path` → `/path` (and `http://authority` → `/`). The
/// authority is not checked against anything: routing is by path only.
fn path_of_absolute_form(target: &str) -> Option<&str> {
    let (scheme, rest) = target.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let authority_len = rest.find('/').unwrap_or(rest.len());
    if authority_len == 0 {
        return None;
    }
    match &rest[authority_len..] {
        "" => Some("/"),
        path => Some(path),
    }
}

/// The value of a query parameter, form-urlencoded decoded (`+` is space,
/// `%XX`), first occurrence. Bytes that do not decode to UTF-8 become U+FFFD:
/// parameters feed `${query.NAME}` substitutions and `?since=`, which are
/// text. Borrows when no decoding was needed.
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<Cow<'a, str>> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn get(path: &str, query: Option<&str>) -> RequestHead<'static> {
        // Leaking is fine in tests: it gives the expected value the same
        // 'static lifetime as the input literals.
        let path: &'static str = Box::leak(path.to_owned().into_boxed_str());
        let query = query.map(|q| &*Box::leak(q.to_owned().into_boxed_str()));
        RequestHead {
            method: Method::Get,
            path,
            query,
            last_event_id: None,
            origin: None,
            access_control_request_method: None,
            access_control_request_headers: None,
            authorization: None,
            cookie: None,
            head_len: 0,
        }
    }

    /// (name, input, expected head, count of bytes after the head). The
    /// expected `head_len` is filled in from the input, not counted by hand.
    fn valid_cases() -> Vec<(&'static str, &'static [u8], RequestHead<'static>)> {
        let cases: Vec<(&'static str, &'static [u8], RequestHead<'static>, usize)> =
            vec![
            ("simple", b"GET /items HTTP/1.1\r\nHost: h\r\n\r\n", get("/items", None), 0),
            (
                "query and fragment",
                b"GET /items/a%2Fb?since=1&x=y#frag HTTP/1.1\r\nHost: h\r\n\r\n",
                get("/items/a%2Fb", Some("since=1&x=y")),
                0,
            ),
            ("bare ?", b"GET /? HTTP/1.1\r\nHost: h\r\n\r\n", get("/", Some("")), 0),
            ("http/1.0", b"GET / HTTP/1.0\r\n\r\n", get("/", None), 0),
            (
                "absolute form",
                b"GET http://example.com:8080/items?a=1 HTTP/1.1\r\nHost: h\r\n\r\n",
                get("/items", Some("a=1")),
                0,
            ),
            (
                "absolute form without path",
                b"GET HTTPS://example.com HTTP/1.1\r\nHost: h\r\n\r\n",
                get("/", None),
                0,
            ),
            (
                "leading empty lines are skipped and counted",
                b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
                get("/", None),
                0,
            ),
            (
                "bare LF line endings",
                b"GET / HTTP/1.1\nHost: h\nLast-Event-ID: 7\n\n",
                RequestHead {
                    last_event_id: Some(b"7"),
                    ..get("/", None)
                },
                0,
            ),
            (
                "pipelined bytes after the head are ignored",
                b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
                get("/a", None),
                28,
            ),
            (
                "header names are case-insensitive, values trimmed",
                b"GET /s HTTP/1.1\r\nHost: h\r\nlast-event-id:  abc  \r\nORIGIN: https://a.example\r\n\r\n",
                RequestHead {
                    last_event_id: Some(b"abc"),
                    origin: Some(b"https://a.example"),
                    ..get("/s", None)
                },
                0,
            ),
            (
                "preflight, first Access-Control-Request-Headers wins",
                b"OPTIONS /s HTTP/1.1\r\nHost: h\r\nOrigin: https://a.example\r\n\
                  Access-Control-Request-Method: GET\r\n\
                  Access-Control-Request-Headers: last-event-id\r\n\
                  Access-Control-Request-Headers: x-second\r\n\r\n",
                RequestHead {
                    method: Method::Options,
                    origin: Some(b"https://a.example"),
                    access_control_request_method: Some(b"GET"),
                    access_control_request_headers: Some(b"last-event-id"),
                    ..get("/s", None)
                },
                0,
            ),
            (
                "credentials: authorization and cookie, any case",
                b"GET /s HTTP/1.1\r\nHost: h\r\nauthorization: Bearer a.b.c\r\nCOOKIE: x=1; t=2\r\n\r\n",
                RequestHead {
                    authorization: Some(b"Bearer a.b.c"),
                    cookie: Some(b"x=1; t=2"),
                    ..get("/s", None)
                },
                0,
            ),
            (
                "options asterisk",
                b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
                RequestHead {
                    method: Method::Options,
                    ..get("*", None)
                },
                0,
            ),
            (
                "methods are case-sensitive",
                b"get / HTTP/1.1\r\nHost: h\r\n\r\n",
                RequestHead {
                    method: Method::Other,
                    ..get("/", None)
                },
                0,
            ),
            (
                "head",
                b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n",
                RequestHead {
                    method: Method::Head,
                    ..get("/", None)
                },
                0,
            ),
        ];
        cases
            .into_iter()
            .map(|(name, input, head, after)| {
                let head_len = input.len() - after;
                (name, input, RequestHead { head_len, ..head })
            })
            .collect()
    }

    #[test]
    fn parses_valid_heads() {
        for (name, input, expected) in valid_cases() {
            assert_eq!(parse_request(input), Ok(Some(expected)), "{name}");
        }
    }

    #[test]
    fn every_split_point_is_incomplete_then_the_same_result() {
        for (name, input, expected) in valid_cases() {
            for end in 0..expected.head_len {
                assert_eq!(
                    parse_request(&input[..end]),
                    Ok(None),
                    "{name} cut at {end}"
                );
            }
            let full = &input[..expected.head_len];
            assert_eq!(parse_request(full), Ok(Some(expected)), "{name} exact");
        }
    }

    #[test]
    fn rejects_bad_heads() {
        use RequestError::*;
        let cases: &[(&str, &[u8], RequestError)] = &[
            (
                "http/2 preface",
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                UnsupportedVersion,
            ),
            ("http/1.2", b"GET / HTTP/1.2\r\n\r\n", UnsupportedVersion),
            (
                "http/1.1 without host",
                b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
                Malformed("HTTP/1.1 request without Host"),
            ),
            (
                "two hosts",
                b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
                Malformed("repeated Host"),
            ),
            ("http/3 cut short", b"GET / HTTP/3", UnsupportedVersion),
            (
                "garbage version",
                b"GET / FOO/1.1\r\n\r\n",
                Malformed("invalid HTTP version"),
            ),
            (
                "relative target",
                b"GET items HTTP/1.1\r\nHost: h\r\n\r\n",
                Malformed("request target is not a path"),
            ),
            (
                "ftp target",
                b"GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
                Malformed("request target is not a path"),
            ),
            (
                "empty authority",
                b"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n",
                Malformed("request target is not a path"),
            ),
            (
                "asterisk with GET",
                b"GET * HTTP/1.1\r\nHost: h\r\n\r\n",
                Malformed("'*' target outside OPTIONS"),
            ),
            (
                "space in header name",
                b"GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n",
                Malformed("invalid header name"),
            ),
            (
                "control byte in value",
                b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n",
                Malformed("invalid header value"),
            ),
            (
                "bad method byte",
                b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n",
                Malformed("invalid method or request target"),
            ),
            (
                "bare CR",
                b"GET / HTTP/1.1\rX",
                Malformed("invalid line ending"),
            ),
            (
                "repeated last-event-id",
                b"GET / HTTP/1.1\r\nHost: h\r\nLast-Event-ID: a\r\nlast-event-id: b\r\n\r\n",
                Malformed("repeated Last-Event-ID"),
            ),
            (
                "repeated origin",
                b"GET / HTTP/1.1\r\nHost: h\r\nOrigin: a\r\nOrigin: a\r\n\r\n",
                Malformed("repeated Origin"),
            ),
            (
                "repeated authorization",
                b"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n",
                Malformed("repeated Authorization"),
            ),
            (
                "repeated cookie",
                b"GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n",
                Malformed("repeated Cookie"),
            ),
            (
                "repeated request method",
                b"OPTIONS / HTTP/1.1\r\nHost: h\r\nAccess-Control-Request-Method: GET\r\n\
                  Access-Control-Request-Method: GET\r\n\r\n",
                Malformed("repeated Access-Control-Request-Method"),
            ),
        ];
        for (name, input, expected) in cases {
            assert_eq!(parse_request(input), Err(*expected), "{name}");
        }
    }

    /// `count` header fields, `Host` the first of them.
    fn request_with_fields(count: usize) -> Vec<u8> {
        let mut req = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 1..count {
            req.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        req
    }

    fn request_with_target_len(line_len: usize) -> Vec<u8> {
        // "GET " + target + " HTTP/1.1" is line_len bytes.
        let target_len = line_len - "GET  HTTP/1.1".len();
        let mut req = b"GET /".to_vec();
        req.resize(4 + target_len, b'a');
        req.extend_from_slice(b" HTTP/1.1\r\nHost: h\r\n\r\n");
        req
    }

    #[test]
    fn enforces_limits() {
        let fields_at_limit = request_with_fields(MAX_HEADERS);
        assert!(matches!(parse_request(&fields_at_limit), Ok(Some(_))));
        assert_eq!(
            parse_request(&request_with_fields(MAX_HEADERS + 1)),
            Err(RequestError::TooManyHeaders { limit: MAX_HEADERS })
        );

        let line_at_limit = request_with_target_len(MAX_REQUEST_LINE);
        assert!(matches!(parse_request(&line_at_limit), Ok(Some(_))));
        let too_long = request_with_target_len(MAX_REQUEST_LINE + 1);
        let err = Err(RequestError::RequestLineTooLong {
            limit: MAX_REQUEST_LINE,
        });
        assert_eq!(parse_request(&too_long), err);
        // Detected before the line ends, as soon as more than the limit has
        // arrived; a maximal line cut after its CR is still just incomplete.
        assert_eq!(parse_request(&too_long[..MAX_REQUEST_LINE]), Ok(None));
        assert_eq!(parse_request(&too_long[..MAX_REQUEST_LINE + 1]), err);
        assert_eq!(
            parse_request(&line_at_limit[..MAX_REQUEST_LINE + 1]),
            Ok(None)
        );

        // A complete head of exactly MAX_HEAD_BYTES is accepted, even with
        // more bytes behind it; one byte more never completes in the window.
        let mut head = b"GET / HTTP/1.1\r\nHost: h\r\nx: ".to_vec();
        head.resize(MAX_HEAD_BYTES - 4, b'v');
        head.extend_from_slice(b"\r\n\r\n");
        let mut with_body = head.clone();
        with_body.extend_from_slice(b"body");
        assert!(matches!(parse_request(&with_body), Ok(Some(h)) if h.head_len == MAX_HEAD_BYTES));
        head.insert(20, b'v');
        let too_large = Err(RequestError::HeadTooLarge {
            limit: MAX_HEAD_BYTES,
        });
        assert_eq!(parse_request(&head), too_large);
        assert_eq!(parse_request(&head[..MAX_HEAD_BYTES - 1]), Ok(None));
        assert_eq!(parse_request(&head[..MAX_HEAD_BYTES]), too_large);
    }

    #[test]
    fn accepts_16_kib_event_ids_in_header_and_query() {
        let id = "A".repeat(16 * 1024);
        let header = format!(
            "GET /s HTTP/1.1\r\nHost: h\r\nUser-Agent: curl/8\r\nLast-Event-ID: {id}\r\n\r\n"
        );
        let head = parse_request(header.as_bytes()).unwrap().unwrap();
        assert_eq!(head.last_event_id, Some(id.as_bytes()));
        let query = format!("GET /s?lastEventId={id}&since=0 HTTP/1.1\r\nHost: h\r\n\r\n");
        let head = parse_request(query.as_bytes()).unwrap().unwrap();
        assert_eq!(
            query_param(head.query, "lastEventId").as_deref(),
            Some(id.as_str())
        );
    }

    #[test]
    fn error_statuses() {
        use RequestError::*;
        let cases = [
            (Malformed("x"), 400),
            (UnsupportedVersion, 505),
            (HeadTooLarge { limit: 1 }, 431),
            (TooManyHeaders { limit: 1 }, 431),
            (RequestLineTooLong { limit: 1 }, 414),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error}");
        }
    }

    #[test]
    fn query_params() {
        let cases: &[(Option<&str>, &str, Option<&str>)] = &[
            (None, "a", None),
            (Some(""), "a", None),
            (Some("a=1&b=2"), "b", Some("2")),
            (Some("a=1&a=2"), "a", Some("1")),
            (Some("a"), "a", Some("")),
            (Some("q=a+b%2Fc"), "q", Some("a b/c")),
            (Some("a%20b=x"), "a b", Some("x")),
            (Some("A=1"), "a", None),
            (Some("x=%FF"), "x", Some("\u{FFFD}")),
        ];
        for (query, name, expected) in cases {
            assert_eq!(
                query_param(*query, name).as_deref(),
                *expected,
                "{query:?} {name}"
            );
        }
        assert!(matches!(
            query_param(Some("a=plain"), "a"),
            Some(Cow::Borrowed("plain"))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_request(&bytes);
        }

        #[test]
        fn request_like_bytes_never_panic(
            line in "[A-Z]{1,7} [ -~]{0,64} HTTP/[0-9]\\.[0-9]",
            rest in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut bytes = line.into_bytes();
            bytes.extend_from_slice(b"\r\n");
            bytes.extend_from_slice(&rest);
            let _ = parse_request(&bytes);
        }

        /// Any valid head gives Ok(None) for every prefix and then the same
        /// head, whatever follows it.
        #[test]
        fn valid_heads_are_split_invariant(
            method in "GET|OPTIONS|HEAD|DELETE",
            path in "(/[a-zA-Z0-9%._~-]{0,8}){1,4}",
            query in proptest::option::of("[a-zA-Z0-9=&+%]{0,16}"),
            id in proptest::option::of("[!-~]{0,40}"),
            origin in proptest::option::of("https?://[a-z]{1,10}(:[0-9]{1,5})?"),
            trailing in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let mut req = format!("{method} {path}");
            if let Some(q) = &query { req.push('?'); req.push_str(q); }
            req.push_str(" HTTP/1.1\r\nHost: h\r\n");
            if let Some(id) = &id { req.push_str(&format!("Last-Event-ID: {id}\r\n")); }
            if let Some(o) = &origin { req.push_str(&format!("Origin: {o}\r\n")); }
            req.push_str("\r\n");
            let head_len = req.len();
            let mut bytes = req.into_bytes();
            bytes.extend_from_slice(&trailing);

            let head = parse_request(&bytes).unwrap().unwrap();
            prop_assert_eq!(head.head_len, head_len);
            prop_assert_eq!(head.path, path.as_str());
            prop_assert_eq!(head.query, query.as_deref());
            prop_assert_eq!(head.last_event_id, id.as_deref().map(str::as_bytes));
            prop_assert_eq!(head.origin, origin.as_deref().map(str::as_bytes));
            for end in 0..head_len {
                prop_assert_eq!(parse_request(&bytes[..end]), Ok(None));
            }
            prop_assert_eq!(parse_request(&bytes[..head_len]), Ok(Some(head)));
        }
    }
}
