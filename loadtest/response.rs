//! HTTP response heads, parsed with httparse for every client of the load
//! generator: the SSE streams of `subscribe` and `storm`, and the storm's
//! scrape of the proxy's `/metrics`. They all take one kind of answer — a
//! 200 whose body is read to the close (bounded by `content-length` when
//! the head gives one) — so anything else is refused here, as a typed
//! error, rather than misparsed later as events. Heads are bounded
//! (`MAX_HEAD`): a peer that is not an HTTP server, or a broken one, cannot
//! make 15,000 connections buffer without end.

use std::io;

/// A response head longer than this is an error.
pub const MAX_HEAD: usize = 16 << 10;
/// Response headers parsed at most; the proxy sends six.
const MAX_HEADERS: usize = 32;

/// Why a response head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed response head: {0}")]
    Malformed(httparse::Error),
    #[error("response head larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("unexpected response: {code} {reason}")]
    Status { code: u16, reason: String },
    /// The streams are read to the close, and the scrape is too small to be
    /// worth a chunked decoder.
    #[error("chunked responses are not supported")]
    Chunked,
    #[error("bad content-length")]
    BadContentLength,
}

/// Why the body of a complete response (read to the close) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error("truncated head")]
    TruncatedHead,
    #[error("body of {len} bytes, content-length {content_length}")]
    Short { len: usize, content_length: usize },
}

/// An accepted response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The head's length: where the body starts in the bytes parsed.
    pub len: usize,
    content_length: Length,
}

/// The `content-length` header, kept raw: only the scrape frames its body
/// by it, so a bad value must not refuse an SSE stream, which ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Absent,
    Bytes(usize),
    Invalid,
}

impl Head {
    /// The body's length, when the head declares one.
    pub fn content_length(&self) -> Result<Option<usize>, HeadError> {
        match self.content_length {
            Length::Absent => Ok(None),
            Length::Bytes(n) => Ok(Some(n)),
            Length::Invalid => Err(HeadError::BadContentLength),
        }
    }
}

/// Parses the response head at the start of `bytes`: `Ok(Some(head))` once
/// it is complete and a 200 without chunked framing, `Ok(None)` while more
/// bytes are needed. A head past `MAX_HEAD` is refused whether complete or
/// not, so the answer does not depend on how the bytes were split in reads.
pub fn parse(bytes: &[u8]) -> Result<Option<Head>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Partial) if bytes.len() <= MAX_HEAD => return Ok(None),
        Ok(_) => return Err(HeadError::TooLarge { limit: MAX_HEAD }),
        Err(e) => return Err(HeadError::Malformed(e)),
    };
    let code = response.code.unwrap_or(0);
    if code != 200 {
        return Err(HeadError::Status {
            code,
            reason: response.reason.unwrap_or("").to_owned(),
        });
    }
    let mut content_length = Length::Absent;
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked")
        {
            return Err(HeadError::Chunked);
        }
        if content_length == Length::Absent && h.name.eq_ignore_ascii_case("content-length") {
            content_length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .map_or(Length::Invalid, Length::Bytes);
        }
    }
    Ok(Some(Head {
        len,
        content_length,
    }))
}

/// The body of a complete response, read to the close: all of what follows
/// the head, or its first `content-length` bytes.
pub fn complete_body(response: &[u8]) -> Result<&[u8], BodyError> {
    let head = parse(response)?.ok_or(BodyError::TruncatedHead)?;
    let body = &response[head.len..];
    match head.content_length()? {
        None => Ok(body),
        Some(n) => body.get(..n).ok_or(BodyError::Short {
            len: body.len(),
            content_length: n,
        }),
    }
}

/// A response head being read, one read at a time, by a non-blocking
/// connection. It never holds more than one byte past `MAX_HEAD` (enough to
/// tell a head that is too large), and reads go through the caller's
/// scratch buffer, shared by a thread's connections: thousands of
/// connections waiting for their heads at once each hold only what
/// arrived.
#[derive(Debug)]
pub struct HeadBuf {
    /// INVARIANT: at most `MAX_HEAD + 1` bytes (reads are cut to fit).
    bytes: Vec<u8>,
}

impl Default for HeadBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl HeadBuf {
    pub fn new() -> Self {
        Self {
            // A typical head, the proxy's included, fits.
            bytes: Vec::with_capacity(512),
        }
    }

    /// One read from `source` through `scratch`, cut to the room left;
    /// returns the bytes read (0: the peer closed). Call `parse` after each
    /// read that returns more than 0: while it says `Ok(None)` there is room
    /// for at least one byte.
    pub fn read_from(
        &mut self,
        source: &mut impl io::Read,
        scratch: &mut [u8],
    ) -> io::Result<usize> {
        let room = (MAX_HEAD + 1)
            .saturating_sub(self.bytes.len())
            .min(scratch.len());
        let n = source.read(&mut scratch[..room])?;
        self.bytes.extend_from_slice(&scratch[..n]);
        Ok(n)
    }

    /// Parses what has arrived (see `parse`).
    pub fn parse(&self) -> Result<Option<Head>, HeadError> {
        parse(&self.bytes)
    }

    /// Body bytes that arrived with the head.
    pub fn body(&self, head: &Head) -> &[u8] {
        &self.bytes[head.len..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSE_OK: &str =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";

    #[test]
    fn parses_heads() {
        let big = format!("HTTP/1.1 200 OK\r\nx: {}\r\n", "a".repeat(MAX_HEAD));
        let big_complete = format!("{big}\r\n");
        let too_large = Err(HeadError::TooLarge { limit: MAX_HEAD });
        let with_body = format!("{SSE_OK}retry:2000\n\ndata:x");
        // (name, bytes, the head's length or the refusal)
        type Case<'a> = (&'a str, &'a [u8], Result<Option<usize>, HeadError>);
        let cases: Vec<Case<'_>> = vec![
            (
                "complete, with body bytes",
                with_body.as_bytes(),
                Ok(Some(SSE_OK.len())),
            ),
            ("HTTP/1.0", b"HTTP/1.0 200 OK\r\n\r\n", Ok(Some(19))),
            ("partial", &SSE_OK.as_bytes()[..20], Ok(None)),
            ("status line only", b"HTTP/1.1 200 OK\r\n", Ok(None)),
            ("nothing yet", b"", Ok(None)),
            (
                "not 200",
                b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n\r\n",
                Err(HeadError::Status {
                    code: 503,
                    reason: "Service Unavailable".into(),
                }),
            ),
            (
                "chunked",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(HeadError::Chunked),
            ),
            (
                "chunked after another coding",
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
                Err(HeadError::Chunked),
            ),
            (
                "over the limit, incomplete",
                big.as_bytes(),
                too_large.clone(),
            ),
            (
                "over the limit, complete",
                big_complete.as_bytes(),
                too_large,
            ),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(parse(bytes).map(|h| h.map(|h| h.len)), want, "{name}");
        }
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"SSH-2.0\r\n\r\n",
            b"garbage",
        ] {
            assert!(
                matches!(parse(bad), Err(HeadError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_bad_content_length_refuses_only_a_framed_body() {
        let head = parse(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.content_length(), Err(HeadError::BadContentLength));
        let head = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.content_length(), Ok(Some(5)));
        let head = parse(SSE_OK.as_bytes()).unwrap().unwrap();
        assert_eq!(head.content_length(), Ok(None));
    }

    #[test]
    fn extracts_complete_bodies() {
        // (response, its body or the refusal)
        type Case = (&'static [u8], Result<&'static [u8], BodyError>);
        let cases: &[Case] = &[
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nabcde",
                Ok(b"abcde"),
            ),
            (b"HTTP/1.1 200 OK\r\n\r\nabc", Ok(b"abc")),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nabc",
                Ok(b"ab"),
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc",
                Err(BodyError::Short {
                    len: 3,
                    content_length: 9,
                }),
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\nabc",
                Err(BodyError::Head(HeadError::BadContentLength)),
            ),
            (
                b"HTTP/1.1 404 Not Found\r\n\r\n",
                Err(BodyError::Head(HeadError::Status {
                    code: 404,
                    reason: "Not Found".into(),
                })),
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc",
                Err(BodyError::Head(HeadError::Chunked)),
            ),
            (b"HTTP/1.1 200 OK\r\n", Err(BodyError::TruncatedHead)),
        ];
        for (response, want) in cases {
            assert_eq!(
                complete_body(response),
                *want,
                "{}",
                String::from_utf8_lossy(response)
            );
        }
        assert!(matches!(
            complete_body(b"garbage"),
            Err(BodyError::Head(HeadError::Malformed(_)))
        ));
    }

    /// A reader that hands out its bytes in pieces of at most `piece`.
    struct Pieces<'a> {
        rest: &'a [u8],
        piece: usize,
    }

    impl io::Read for Pieces<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.piece).min(self.rest.len());
            buf[..n].copy_from_slice(&self.rest[..n]);
            self.rest = &self.rest[n..];
            Ok(n)
        }
    }

    /// Reads like a connection does: until the head is complete, refused,
    /// or the source is empty; returns the outcome and the bytes held.
    fn read_all(
        source: &mut impl io::Read,
        scratch: &mut [u8],
    ) -> (HeadBuf, Result<Option<Head>, HeadError>) {
        let mut head = HeadBuf::new();
        loop {
            if head.read_from(source, scratch).unwrap() == 0 {
                return (head, Ok(None));
            }
            match head.parse() {
                Ok(None) => {}
                done => return (head, done),
            }
        }
    }

    #[test]
    fn head_bufs_keep_the_body_bytes_in_any_split() {
        let stream = format!("{SSE_OK}retry:2000\n\ndata:x\n\n");
        for piece in [1, 7, SSE_OK.len(), stream.len()] {
            for scratch in [3, 64 << 10] {
                let mut source = Pieces {
                    rest: stream.as_bytes(),
                    piece,
                };
                let (buf, parsed) = read_all(&mut source, &mut vec![0; scratch]);
                let head = parsed.unwrap().expect("a complete head");
                assert_eq!(head.len, SSE_OK.len(), "piece {piece}, scratch {scratch}");
                // What came with the head is in the buffer, the rest is
                // still in the source: nothing is lost between the two.
                let mut seen = buf.body(&head).to_vec();
                seen.extend_from_slice(source.rest);
                assert_eq!(
                    seen,
                    &stream.as_bytes()[SSE_OK.len()..],
                    "piece {piece}, scratch {scratch}"
                );
            }
        }
    }

    #[test]
    fn head_bufs_hold_at_most_one_byte_past_the_limit() {
        // An endless head: the buffer stops one byte past the limit.
        let endless = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(4 * MAX_HEAD));
        let mut source = Pieces {
            rest: endless.as_bytes(),
            piece: usize::MAX,
        };
        let (buf, parsed) = read_all(&mut source, &mut vec![0; 64 << 10]);
        assert_eq!(parsed, Err(HeadError::TooLarge { limit: MAX_HEAD }));
        assert_eq!(buf.bytes.len(), MAX_HEAD + 1);
        assert_eq!(source.rest.len(), endless.len() - (MAX_HEAD + 1));
    }
}
