//! Where a request's token comes from, in order: `Authorization: Bearer`
//! (the scheme in any case; another scheme, such as a browser's Basic
//! credentials for the page, is not ours and is passed over), then
//! `?access_token=` (all an `EventSource` can send), then the guard's
//! cookie. The first place that has one decides: a bad bearer token is
//! refused even when the query holds a good one.

use std::borrow::Cow;

use crate::codec::http::{query_param, RequestHead};

/// Where the token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Header,
    /// The URL holds a credential: the stream must not be cached.
    Query,
    /// The browser sent it on its own: the answer allows credentials.
    Cookie,
}

/// A request's token, borrowed from the head where it can be.
#[derive(Debug, PartialEq, Eq)]
pub struct Token<'a> {
    pub bytes: Cow<'a, [u8]>,
    pub place: Place,
}

/// The request's token, or `None` when it has none. An empty bearer token
/// is a token (a malformed one), not the absence of one.
pub fn find<'a>(head: &RequestHead<'a>, cookie: Option<&str>) -> Option<Token<'a>> {
    if let Some(token) = head.authorization.and_then(bearer) {
        return Some(Token {
            bytes: Cow::Borrowed(token),
            place: Place::Header,
        });
    }
    if let Some(token) = query_param(head.query, "access_token") {
        let bytes = match token {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        };
        return Some(Token {
            bytes,
            place: Place::Query,
        });
    }
    let name = cookie?;
    cookie_value(head.cookie?, name.as_bytes()).map(|token| Token {
        bytes: Cow::Borrowed(token),
        place: Place::Cookie,
    })
}

/// The token of an `Authorization: Bearer <token>` value (RFC 6750 §2.1;
/// the scheme is case-insensitive, RFC 9110 §11.1).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(space) => (&value[..space], &value[space..]),
        None => (value, &[][..]),
    };
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
}

/// The value of cookie `name` in a `Cookie` field (`a=1; name=v`, RFC 6265
/// §4.2.1), its double quotes taken off; the first wins.
fn cookie_value<'a>(field: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    field.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        (pair[..eq].trim_ascii() == name).then(|| {
            let value = pair[eq + 1..].trim_ascii();
            value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value)
        })
    })
}

/// The query without its `access_token` parameters, so that nothing after
/// the guard (substitutions, the resume parameters, a log line) can see the
/// credential; `None` when it has none (the query is used as it is).
pub fn query_without_token(query: Option<&str>) -> Option<String> {
    let query = query?;
    // Named as `query_param` reads names: percent-decoded.
    let is_token = |pair: &&str| {
        form_urlencoded::parse(pair.as_bytes())
            .next()
            .is_some_and(|(name, _)| name == "access_token")
    };
    if !query.split('&').any(|p| is_token(&p)) {
        return None;
    }
    let kept: Vec<&str> = query.split('&').filter(|p| !is_token(p)).collect();
    Some(kept.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::http::parse_request;

    fn token_of(request: &str, cookie: Option<&str>) -> Option<(String, Place)> {
        let head = parse_request(request.as_bytes()).unwrap().unwrap();
        find(&head, cookie).map(|t| (String::from_utf8(t.bytes.into_owned()).unwrap(), t.place))
    }

    #[test]
    fn tokens_come_from_the_header_then_the_query_then_the_cookie() {
        let all = "GET /s?access_token=q.q.q HTTP/1.1\r\nHost: h\r\n\
            Authorization: Bearer h.h.h\r\nCookie: a=1; tok=c.c.c\r\n\r\n";
        /// (what, request, the guard's cookie, the token and its place)
        type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<(&'a str, Place)>);
        let cases: &[Case<'_>] = &[
            ("all three", all, Some("tok"), Some(("h.h.h", Place::Header))),
            ("query then cookie",
                "GET /s?x=1&access_token=q.q.q HTTP/1.1\r\nHost: h\r\nCookie: tok=c.c.c\r\n\r\n",
                Some("tok"), Some(("q.q.q", Place::Query))),
            ("cookie, quoted",
                "GET /s HTTP/1.1\r\nHost: h\r\nCookie: a=1;tok=\"c.c.c\" ; b=2\r\n\r\n",
                Some("tok"), Some(("c.c.c", Place::Cookie))),
            ("cookie not read without a cookie name",
                "GET /s HTTP/1.1\r\nHost: h\r\nCookie: tok=c.c.c\r\n\r\n", None, None),
            ("another cookie only",
                "GET /s HTTP/1.1\r\nHost: h\r\nCookie: token=c.c.c\r\n\r\n", Some("tok"), None),
            ("scheme in any case",
                "GET /s HTTP/1.1\r\nHost: h\r\nAuthorization: bEaReR   h.h.h\r\n\r\n",
                None, Some(("h.h.h", Place::Header))),
            ("an empty bearer token is a token",
                "GET /s?access_token=q.q.q HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer\r\n\r\n",
                None, Some(("", Place::Header))),
            ("basic is passed over",
                "GET /s?access_token=q%2Eq.q HTTP/1.1\r\nHost: h\r\nAuthorization: Basic YTpi\r\n\r\n",
                None, Some(("q.q.q", Place::Query))),
            ("bearerx is not bearer",
                "GET /s HTTP/1.1\r\nHost: h\r\nAuthorization: Bearerx h.h.h\r\n\r\n", None, None),
            ("none", "GET /s?a=b HTTP/1.1\r\nHost: h\r\n\r\n", Some("tok"), None),
        ];
        for (what, request, cookie, want) in cases {
            let want = want.map(|(t, p)| (t.to_owned(), p));
            assert_eq!(token_of(request, *cookie), want, "{what}");
        }
    }

    #[test]
    fn the_token_leaves_the_query() {
        let q = query_without_token;
        assert_eq!(q(None), None);
        assert_eq!(q(Some("a=1&since=0")), None);
        assert_eq!(q(Some("access_token=x")), Some(String::new()));
        assert_eq!(
            q(Some("a=1&access_token=x&lastEventId=5&access%5Ftoken=y")),
            Some("a=1&lastEventId=5".to_owned())
        );
        // A parameter that only starts with the name stays.
        assert_eq!(q(Some("access_tokens=1")), None);
    }
}
