//! Response heads: the event stream's head, plain-text errors, CORS
//! preflights and origin decisions, appended to a caller-owned `Vec<u8>`.
//! Header names are written in lowercase, the form HTTP/2 mandates and
//! HTTP/1.1 permits, so the bytes tests pin down are the bytes a future
//! HTTP/2 front end would also use.

/// What an event stream's head says besides the fixed fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamHead<'a> {
    /// `access-control-allow-origin`.
    pub allow_origin: Option<&'a [u8]>,
    /// `access-control-allow-credentials: true`: the stream was opened
    /// with the browser's cookie (never beside `*`).
    pub allow_credentials: bool,
    /// `cache-control: no-store, private` instead of `no-cache`: the URL
    /// holds a credential, so no cache may keep the answer.
    pub private: bool,
}

/// 200 head for an event stream: `content-type: text/event-stream`,
/// `cache-control: no-cache` (`no-store, private` for a private stream),
/// `x-accel-buffering: no` (nginx would otherwise buffer the stream),
/// `connection: close` (the body is close-delimited), and
/// `access-control-allow-origin` (plus `vary: origin` unless it is `*`, and
/// `access-control-allow-credentials: true` when asked for and it is not)
/// when an origin is given. An origin containing CR, LF or NUL is left out
/// rather than written, so a bad value can never split the head; without the
/// header the browser denies access, which is the safe way to fail.
pub fn write_stream_head(out: &mut Vec<u8>, head: StreamHead<'_>) {
    out.extend_from_slice(
        b"HTTP/1.1 200 OK\r\n\
          content-type: text/event-stream\r\n",
    );
    out.extend_from_slice(if head.private {
        b"cache-control: no-store, private\r\n".as_slice()
    } else {
        b"cache-control: no-cache\r\n"
    });
    out.extend_from_slice(
        b"x-accel-buffering: no\r\n\
          connection: close\r\n",
    );
    if let Some(origin) = head.allow_origin {
        push_allow_origin(out, origin);
        if head.allow_credentials && origin != b"*" && is_safe_field_value(origin) {
            out.extend_from_slice(b"access-control-allow-credentials: true\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// A complete plain-text error response: status line with the canonical
/// reason, `content-type: text/plain; charset=utf-8`, `content-length`,
/// `connection: close`, `retry-after: <secs>` if given, `allow: GET, OPTIONS`
/// for 405 (RFC 9110 §15.5.6 requires it), and the body `message` + `"\n"`.
pub fn write_error(out: &mut Vec<u8>, status: u16, message: &str, retry_after_secs: Option<u64>) {
    let allow = (status == 405).then_some("GET, OPTIONS");
    write_error_allowing(out, status, message, retry_after_secs, allow);
}

/// [`write_error`] with the `allow` header of a 405 given (the stream
/// listener serves GET and OPTIONS, the admin listener GET alone).
///
/// The message is one line of text: control characters in it (a request
/// may put CR, LF or NUL into a name it echoes) are written `\xNN`.
pub fn write_error_allowing(
    out: &mut Vec<u8>,
    status: u16,
    message: &str,
    retry_after_secs: Option<u64>,
    allow: Option<&str>,
) {
    write_error_fields(out, status, message, retry_after_secs, allow, None);
}

/// [`write_error`] of a 401 or 403 with its `www-authenticate` challenge
/// (RFC 6750 §3), such as `Bearer realm="sse-kafka", error="invalid_token"`.
/// A challenge holding CR, LF or NUL is left out.
pub fn write_error_challenging(out: &mut Vec<u8>, status: u16, message: &str, challenge: &str) {
    write_error_fields(out, status, message, None, None, Some(challenge));
}

fn write_error_fields(
    out: &mut Vec<u8>,
    status: u16,
    message: &str,
    retry_after_secs: Option<u64>,
    allow: Option<&str>,
    www_authenticate: Option<&str>,
) {
    let message = one_line(message);
    push_status_line(out, status);
    out.extend_from_slice(b"content-type: text/plain; charset=utf-8\r\ncontent-length: ");
    // The trailing newline makes `curl` output end cleanly in a terminal.
    push_decimal(out, message.len() as u64 + 1);
    out.extend_from_slice(b"\r\nconnection: close\r\n");
    if let Some(secs) = retry_after_secs {
        out.extend_from_slice(b"retry-after: ");
        push_decimal(out, secs);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(allow) = allow {
        out.extend_from_slice(b"allow: ");
        out.extend_from_slice(allow.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(challenge) = www_authenticate.filter(|c| is_safe_field_value(c.as_bytes())) {
        out.extend_from_slice(b"www-authenticate: ");
        out.extend_from_slice(challenge.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(message.as_bytes());
    out.push(b'\n');
}

/// A complete 200 response with `body`, a document of `content_type`:
/// `content-length`, `cache-control: no-cache` (it changes when the config
/// does), `connection: close`, and `access-control-allow-origin` (with
/// `vary: origin` unless it is `*`) when an origin is given.
pub fn write_document(
    out: &mut Vec<u8>,
    content_type: &str,
    body: &[u8],
    allow_origin: Option<&[u8]>,
) {
    push_status_line(out, 200);
    out.extend_from_slice(b"content-type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: ");
    push_decimal(out, body.len() as u64);
    out.extend_from_slice(b"\r\ncache-control: no-cache\r\nconnection: close\r\n");
    if let Some(origin) = allow_origin {
        push_allow_origin(out, origin);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// A response's status line and header fields alone, for a HEAD request:
/// everything through the blank line (`content-length` still says what a
/// GET would get).
pub fn without_body(mut response: Vec<u8>) -> Vec<u8> {
    if let Some(end) = memchr::memmem::find(&response, b"\r\n\r\n") {
        response.truncate(end + 4);
    }
    response
}

/// `text` with every control character written `\xNN`.
fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control()) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The headers allowed when the preflight did not list any: the two a
/// resuming EventSource polyfill may set, and a guard's bearer token.
const DEFAULT_ALLOW_HEADERS: &[u8] = b"last-event-id, cache-control, authorization";

/// CORS preflight answer: 204 with `access-control-allow-origin`,
/// `vary: origin` (unless `*`), `access-control-allow-methods: GET, OPTIONS`,
/// `access-control-allow-headers` (the request's
/// `Access-Control-Request-Headers` echoed, else `last-event-id,
/// cache-control, authorization`), `access-control-allow-credentials: true`
/// when `allow_credentials` (a route that reads a cookie) and the origin is
/// not `*`, `access-control-max-age: 86400` and `connection: close`.
///
/// Deliberately no `content-length: 0`: RFC 9110 §8.6 says a server MUST NOT
/// send Content-Length in a 204, which by definition has no body. Values
/// containing CR, LF or NUL are never written: a bad origin is left out (the
/// preflight then fails, closed) and bad request headers fall back to the
/// default list.
pub fn write_preflight(
    out: &mut Vec<u8>,
    allow_origin: &[u8],
    request_headers: Option<&[u8]>,
    allow_credentials: bool,
) {
    push_status_line(out, 204);
    push_allow_origin(out, allow_origin);
    if allow_credentials && allow_origin != b"*" && is_safe_field_value(allow_origin) {
        out.extend_from_slice(b"access-control-allow-credentials: true\r\n");
    }
    out.extend_from_slice(b"access-control-allow-methods: GET, OPTIONS\r\n");
    out.extend_from_slice(b"access-control-allow-headers: ");
    let allow_headers = request_headers
        .filter(|h| !h.is_empty() && is_safe_field_value(h))
        .unwrap_or(DEFAULT_ALLOW_HEADERS);
    out.extend_from_slice(allow_headers);
    // 86400 s (one day) is Firefox's cap; Chromium caps at 7200 s. Either way
    // one preflight per origin and path per period instead of per reconnect.
    out.extend_from_slice(b"\r\naccess-control-max-age: 86400\r\nconnection: close\r\n\r\n");
}

/// CORS decision from the configured `allow_origins`: `*` in the list allows
/// every origin (`Some(b"*")`, even without an `Origin` header, since `*` does
/// not depend on it); otherwise the request's `Origin` is allowed when it
/// equals one of the entries byte for byte (origins are serialized by the
/// browser, so no case folding or normalisation); otherwise `None`.
pub fn cors_allow_origin<'a>(
    allow_origins: &'a [String],
    origin: Option<&'a [u8]>,
) -> Option<&'a [u8]> {
    if allow_origins.iter().any(|allowed| allowed == "*") {
        return Some(b"*");
    }
    let origin = origin?;
    allow_origins
        .iter()
        .any(|allowed| allowed.as_bytes() == origin)
        .then_some(origin)
}

/// The canonical reason phrase (RFC 9110 §15) for the statuses this server
/// sends; empty for others, which RFC 9112 §4 allows (the space before it is
/// still written).
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

fn push_status_line(out: &mut Vec<u8>, status: u16) {
    debug_assert!(
        (100..=999).contains(&status),
        "status {status} is not 3 digits"
    );
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn push_allow_origin(out: &mut Vec<u8>, origin: &[u8]) {
    if !is_safe_field_value(origin) {
        return;
    }
    out.extend_from_slice(b"access-control-allow-origin: ");
    out.extend_from_slice(origin);
    out.extend_from_slice(b"\r\n");
    if origin != b"*" {
        // A specific origin makes the response differ per Origin; caches must
        // not serve one origin's answer to another.
        out.extend_from_slice(b"vary: origin\r\n");
    }
}

/// CR or LF would end the field line early (response splitting); NUL is
/// forbidden in field values by RFC 9110 §5.5.
fn is_safe_field_value(value: &[u8]) -> bool {
    !value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0))
}

/// Appends `n` in decimal without allocating.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    // u64::MAX is 18446744073709551615: 20 digits.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An optional header value in a test table.
    type MaybeBytes = Option<&'static [u8]>;

    fn written(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = b"prefix|".to_vec();
        write(&mut out);
        let out = String::from_utf8(out).unwrap();
        out.strip_prefix("prefix|")
            .expect("writers append")
            .to_owned()
    }

    #[test]
    fn stream_heads() {
        const BASE: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
            cache-control: no-cache\r\nx-accel-buffering: no\r\nconnection: close\r\n";
        let cases: &[(Option<&[u8]>, &str)] = &[
            (None, ""),
            (Some(b"*"), "access-control-allow-origin: *\r\n"),
            (
                Some(b"https://a.example"),
                "access-control-allow-origin: https://a.example\r\nvary: origin\r\n",
            ),
            (Some(b"https://a\r\nset-cookie: x"), ""),
        ];
        for (origin, cors) in cases {
            let expected = format!("{BASE}{cors}\r\n");
            assert_eq!(
                written(|out| write_stream_head(
                    out,
                    StreamHead {
                        allow_origin: *origin,
                        ..StreamHead::default()
                    }
                )),
                expected,
                "{origin:?}"
            );
        }
    }

    #[test]
    fn private_and_credentialed_stream_heads() {
        let head = |allow_origin: Option<&'static [u8]>| StreamHead {
            allow_origin,
            allow_credentials: true,
            private: true,
        };
        let out = written(|out| write_stream_head(out, head(Some(b"https://a.example"))));
        assert!(
            out.contains("\r\ncache-control: no-store, private\r\n"),
            "{out}"
        );
        assert!(!out.contains("no-cache"), "{out}");
        assert!(
            out.contains("access-control-allow-origin: https://a.example\r\nvary: origin\r\naccess-control-allow-credentials: true\r\n"),
            "{out}"
        );
        // Never credentials beside `*`, nor without an origin.
        for origin in [Some(b"*".as_slice()), None] {
            let out = written(|out| write_stream_head(out, head(origin)));
            assert!(!out.contains("credentials"), "{out}");
        }
    }

    #[test]
    fn challenges_go_in_www_authenticate() {
        let out = written(|out| {
            write_error_challenging(
                out,
                401,
                "no token",
                "Bearer realm=\"sse-kafka\", error=\"invalid_token\"",
            )
        });
        assert!(out.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{out}");
        assert!(
            out.contains("\r\nwww-authenticate: Bearer realm=\"sse-kafka\", error=\"invalid_token\"\r\n\r\nno token\n"),
            "{out}"
        );
        let split =
            written(|out| write_error_challenging(out, 401, "x", "Bearer\r\nset-cookie: a"));
        assert!(
            !split.contains("www-authenticate") && !split.contains("set-cookie"),
            "{split}"
        );
    }

    #[test]
    fn a_head_answer_is_the_head_alone() {
        let full = written(|out| write_error(out, 404, "no route", None)).into_bytes();
        let head = String::from_utf8(without_body(full)).unwrap();
        assert!(head.ends_with("connection: close\r\n\r\n"), "{head:?}");
        assert!(head.contains("content-length: 9\r\n"), "{head:?}");
    }

    #[test]
    fn error_messages_are_one_line_of_text() {
        let out = written(|out| write_error(out, 404, "topic 'a\r\nb\0' is bad", None));
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert_eq!(body, "topic 'a\\x0d\\x0ab\\x00' is bad\n");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let admin = written(|out| write_error_allowing(out, 405, "only GET", None, Some("GET")));
        assert!(admin.contains("\r\nallow: GET\r\n"), "{admin}");
    }

    #[test]
    fn error_responses() {
        let cases: &[(u16, &str, Option<u64>, &str)] = &[
            (
                404,
                "no route for /x",
                None,
                "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain; charset=utf-8\r\n\
                 content-length: 16\r\nconnection: close\r\n\r\nno route for /x\n",
            ),
            (
                405,
                "method not allowed",
                None,
                "HTTP/1.1 405 Method Not Allowed\r\ncontent-type: text/plain; charset=utf-8\r\n\
                 content-length: 19\r\nconnection: close\r\nallow: GET, OPTIONS\r\n\r\n\
                 method not allowed\n",
            ),
            (
                503,
                "",
                Some(5),
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
                 content-length: 1\r\nconnection: close\r\nretry-after: 5\r\n\r\n\n",
            ),
            (
                599,
                "é",
                Some(u64::MAX),
                "HTTP/1.1 599 \r\ncontent-type: text/plain; charset=utf-8\r\n\
                 content-length: 3\r\nconnection: close\r\n\
                 retry-after: 18446744073709551615\r\n\r\né\n",
            ),
        ];
        for (status, message, retry, expected) in cases {
            assert_eq!(
                written(|out| write_error(out, *status, message, *retry)),
                *expected
            );
        }
    }

    #[test]
    fn preflights() {
        let tail = "access-control-max-age: 86400\r\nconnection: close\r\n\r\n";
        let cases: &[(&[u8], MaybeBytes, &str)] = &[
            (
                b"*",
                None,
                "access-control-allow-origin: *\r\naccess-control-allow-methods: GET, OPTIONS\r\n\
                 access-control-allow-headers: last-event-id, cache-control, authorization\r\n",
            ),
            (
                b"https://a.example",
                Some(b"last-event-id, authorization"),
                "access-control-allow-origin: https://a.example\r\nvary: origin\r\n\
                 access-control-allow-methods: GET, OPTIONS\r\n\
                 access-control-allow-headers: last-event-id, authorization\r\n",
            ),
            (
                b"bad\norigin",
                Some(b"x\r\ny: z"),
                "access-control-allow-methods: GET, OPTIONS\r\n\
                 access-control-allow-headers: last-event-id, cache-control, authorization\r\n",
            ),
            (
                b"*",
                Some(b""),
                "access-control-allow-origin: *\r\naccess-control-allow-methods: GET, OPTIONS\r\n\
                 access-control-allow-headers: last-event-id, cache-control, authorization\r\n",
            ),
        ];
        for (origin, request_headers, middle) in cases {
            let expected = format!("HTTP/1.1 204 No Content\r\n{middle}{tail}");
            assert_eq!(
                written(|out| write_preflight(out, origin, *request_headers, false)),
                expected
            );
        }
        // A route reading a cookie allows credentials, never beside `*`.
        let with = written(|out| write_preflight(out, b"https://a.example", None, true));
        assert!(
            with.contains("vary: origin\r\naccess-control-allow-credentials: true\r\n"),
            "{with}"
        );
        let star = written(|out| write_preflight(out, b"*", None, true));
        assert!(!star.contains("credentials"), "{star}");
    }

    #[test]
    fn cors_decisions() {
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: &[(Vec<String>, MaybeBytes, MaybeBytes)] = &[
            (list(&[]), Some(b"https://a.example"), None),
            (list(&["*"]), None, Some(b"*")),
            (
                list(&["https://a.example", "*"]),
                Some(b"https://b.example"),
                Some(b"*"),
            ),
            (
                list(&["https://a.example"]),
                Some(b"https://a.example"),
                Some(b"https://a.example"),
            ),
            (
                list(&["https://a.example"]),
                Some(b"https://A.example"),
                None,
            ),
            (
                list(&["https://a.example"]),
                Some(b"https://a.example/"),
                None,
            ),
            (list(&["https://a.example"]), None, None),
        ];
        for (allowed, origin, expected) in cases {
            assert_eq!(
                cors_allow_origin(allowed, *origin),
                *expected,
                "{allowed:?} {origin:?}"
            );
        }
    }

    #[test]
    fn reasons() {
        let cases = [
            (200, "OK"),
            (204, "No Content"),
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (408, "Request Timeout"),
            (414, "URI Too Long"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (503, "Service Unavailable"),
            (505, "HTTP Version Not Supported"),
            (299, ""),
        ];
        for (status, text) in cases {
            assert_eq!(reason(status), text, "{status}");
        }
    }
}
