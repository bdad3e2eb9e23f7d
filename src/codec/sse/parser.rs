//! A push parser for `text/event-stream` that follows the WHATWG
//! EventSource parsing rules: it accepts any chunking of the stream and
//! bounds the length of a line. Tests and the load generator read the
//! proxy's streams with it.

use memchr::memchr2;

/// Default bound on one line for [`Parser`]: 1 MiB is far above any record
/// this proxy is meant to carry in one `data:` line, yet small enough that a
/// stream with no line ends cannot exhaust the load generator's memory.
pub const DEFAULT_MAX_LINE: usize = 1024 * 1024;

/// One dispatched event, as an EventSource client would see it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The last event id in force when the event was dispatched (ids persist
    /// across events); `None` when never set or reset by an empty `id:`.
    pub id: Option<String>,
    /// The event type; `None` for the default type (`message`), which is also
    /// what an empty `event:` means.
    pub event: Option<String>,
    /// The data lines joined with LF.
    pub data: String,
    /// A `retry:` that arrived in the same block as this event.
    pub retry: Option<u64>,
}

/// A dispatched event borrowed from the parser's buffers: what
/// [`Parser::feed_ref`] hands out, so a hot reader allocates nothing per
/// event. [`EventRef::to_owned`] gives the [`Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    pub id: Option<&'a str>,
    pub event: Option<&'a str>,
    pub data: &'a str,
    pub retry: Option<u64>,
}

impl EventRef<'_> {
    pub fn to_owned(&self) -> Event {
        Event {
            id: self.id.map(str::to_owned),
            event: self.event.map(str::to_owned),
            data: self.data.to_owned(),
            retry: self.retry,
        }
    }
}

/// Why [`Parser::feed`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("sse line longer than {limit} bytes")]
    LineTooLong { limit: usize },
}

/// A push parser for `text/event-stream` following the WHATWG EventSource
/// rules. Feed it bytes in any chunking; events are dispatched at blank lines.
/// Lines are decoded as UTF-8 with replacement, which equals decoding the whole
/// stream since CR and LF never occur inside a multi-byte sequence.
#[derive(Debug)]
pub struct Parser {
    /// Bytes of an unfinished line carried over from earlier chunks.
    line: Vec<u8>,
    /// The previous chunk ended in CR: an LF starting the next chunk belongs
    /// to the same line end.
    pending_cr: bool,
    /// A leading byte order mark is ignored only on the stream's first line.
    seen_first_line: bool,
    data: String,
    event_type: String,
    /// The spec's "last event ID buffer": set by `id:` lines.
    id_buffer: String,
    /// The source's "last event ID string": the buffer as of the last blank
    /// line, i.e. what a client would send when reconnecting.
    last_event_id: String,
    block_retry: Option<u64>,
    retry: Option<u64>,
    comments: u64,
    max_line: usize,
    /// Set on the first error: the stream position is lost after it, so
    /// every later `feed` reports it again instead of misparsing.
    failed: Option<ParseError>,
}

impl Default for Parser {
    fn default() -> Self {
        Self {
            line: Vec::new(),
            pending_cr: false,
            seen_first_line: false,
            data: String::new(),
            event_type: String::new(),
            id_buffer: String::new(),
            last_event_id: String::new(),
            block_retry: None,
            retry: None,
            comments: 0,
            max_line: DEFAULT_MAX_LINE,
            failed: None,
        }
    }
}

impl Parser {
    /// A parser with the default line limit ([`DEFAULT_MAX_LINE`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the longest accepted line, in bytes, not counting the line end.
    pub fn with_max_line(mut self, limit: usize) -> Self {
        self.max_line = limit;
        self
    }

    /// The last event id as of the last blank line (what a reconnecting
    /// client sends as `Last-Event-ID`); `None` if unset or reset.
    pub fn last_event_id(&self) -> Option<&str> {
        non_empty(&self.last_event_id)
    }

    /// The last valid `retry:` value seen.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// Number of comment lines seen (keep-alives are comments).
    pub fn comments(&self) -> u64 {
        self.comments
    }

    /// Feeds bytes (any chunking) and calls `on_event` for every dispatched
    /// event. A line longer than the limit yields `LineTooLong`; after that
    /// the parser is unusable and keeps returning the error.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        mut on_event: impl FnMut(Event),
    ) -> Result<(), ParseError> {
        self.feed_ref(bytes, |e| on_event(e.to_owned()))
    }

    /// [`Parser::feed`] without the copies: each event borrows the parser's
    /// buffers, which are reused, so after warm-up nothing is allocated.
    pub fn feed_ref(
        &mut self,
        bytes: &[u8],
        mut on_event: impl FnMut(EventRef<'_>),
    ) -> Result<(), ParseError> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        let mut rest = bytes;
        if self.pending_cr && !rest.is_empty() {
            self.pending_cr = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(end) = memchr2(b'\r', b'\n', rest) {
            self.check_len(end)?;
            if self.line.is_empty() {
                // The whole line is in this chunk: parse it in place.
                self.process_line(&rest[..end], &mut on_event);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&rest[..end]);
                self.process_line(&line, &mut on_event);
                line.clear();
                self.line = line; // keep the capacity for the next long line
            }
            let mut next = end + 1;
            if rest[end] == b'\r' {
                match rest.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.pending_cr = true,
                }
            }
            rest = &rest[next..];
        }
        self.check_len(rest.len())?;
        self.line.extend_from_slice(rest);
        Ok(())
    }

    /// Fails if the buffered line plus `more` bytes would exceed the limit.
    fn check_len(&mut self, more: usize) -> Result<(), ParseError> {
        if self.line.len().saturating_add(more) > self.max_line {
            let err = ParseError::LineTooLong {
                limit: self.max_line,
            };
            self.failed = Some(err);
            return Err(err);
        }
        Ok(())
    }

    fn process_line(&mut self, mut line: &[u8], on_event: &mut impl FnMut(EventRef<'_>)) {
        if !self.seen_first_line {
            self.seen_first_line = true;
            line = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        if line[0] == b':' {
            self.comments += 1;
            return;
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                self.data.push_str(&String::from_utf8_lossy(value));
                self.data.push('\n');
            }
            b"event" => {
                self.event_type.clear();
                self.event_type.push_str(&String::from_utf8_lossy(value));
            }
            // An id containing NUL is ignored as a whole, per spec.
            b"id" if !value.contains(&0) => {
                self.id_buffer.clear();
                self.id_buffer.push_str(&String::from_utf8_lossy(value));
            }
            b"retry" => {
                // Invalid values are ignored, per spec.
                if let ms @ Some(_) = parse_retry(value) {
                    self.retry = ms;
                    self.block_retry = ms;
                }
            }
            _ => {} // unknown fields are ignored, per spec
        }
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(EventRef<'_>)) {
        // The id becomes the source's last event id at every blank line,
        // even when nothing is dispatched.
        if self.last_event_id != self.id_buffer {
            self.last_event_id.clone_from(&self.id_buffer);
        }
        let retry = self.block_retry.take();
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        self.data.pop(); // every data line appended "\n"; drop the last one
        on_event(EventRef {
            id: non_empty(&self.last_event_id),
            event: non_empty(&self.event_type),
            data: &self.data,
            retry,
        });
        self.data.clear();
        self.event_type.clear();
    }
}

/// The spec accepts only ASCII digits (no sign, not empty); a value too big
/// for a u64 is treated as invalid too.
fn parse_retry(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |ms, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        ms.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// What the encoder's and the parser's tests both read streams with.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Event, Parser};

    /// Every event of `chunks` fed in order, and the parser after them.
    pub(crate) fn parse_all(chunks: &[&[u8]]) -> (Vec<Event>, Parser) {
        let mut parser = Parser::new();
        let mut events = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, |e| events.push(e)).unwrap();
        }
        (events, parser)
    }

    pub(crate) fn parse(wire: &[u8]) -> Vec<Event> {
        parse_all(&[wire]).0
    }

    /// An event as a client sees it, without `retry`.
    pub(crate) fn ev(id: Option<&str>, event: Option<&str>, data: &str) -> Event {
        Event {
            id: id.map(str::to_owned),
            event: event.map(str::to_owned),
            data: data.to_owned(),
            retry: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{ev, parse, parse_all};
    use super::*;
    use proptest::prelude::*;

    use crate::codec::sse::{encode_event, encode_record, encode_retry, ValueEncoding, KEEPALIVE};

    #[test]
    fn parser_spec_table() {
        let cases: Vec<(&str, &[u8], Vec<Event>)> = vec![
            ("no space", b"data:x\n\n", vec![ev(None, None, "x")]),
            ("two spaces", b"data:  x\n\n", vec![ev(None, None, " x")]),
            ("no colon", b"data\ndata\n\n", vec![ev(None, None, "\n")]),
            (
                "crlf",
                b"data:a\r\ndata:b\r\n\r\n",
                vec![ev(None, None, "a\nb")],
            ),
            ("cr", b"data:a\rdata:b\r\r", vec![ev(None, None, "a\nb")]),
            (
                "unknown field",
                b"foo:bar\ndata:x\n\n",
                vec![ev(None, None, "x")],
            ),
            ("field case-sensitive", b"Data:x\n\n", vec![]),
            (
                "empty data buffer",
                b"event:e\nid:1\n\ndata:x\n\n",
                vec![ev(Some("1"), None, "x")],
            ),
            ("no blank line", b"data:x\n", vec![]),
            ("bom", b"\xef\xbb\xbfdata:x\n\n", vec![ev(None, None, "x")]),
            ("bom only first", b"\n\xef\xbb\xbfdata:x\n\n", vec![]),
            (
                "id with nul ignored",
                b"id:1\n\nid:a\0b\ndata:x\n\n",
                vec![ev(Some("1"), None, "x")],
            ),
            (
                "empty id resets",
                b"id:1\ndata:a\n\nid\ndata:b\n\n",
                vec![ev(Some("1"), None, "a"), ev(None, None, "b")],
            ),
            (
                "id persists",
                b"id:1\ndata:a\n\ndata:b\n\n",
                vec![ev(Some("1"), None, "a"), ev(Some("1"), None, "b")],
            ),
            (
                "type resets",
                b"event:t\ndata:a\n\ndata:b\n\n",
                vec![ev(None, Some("t"), "a"), ev(None, None, "b")],
            ),
            (
                "empty event is default",
                b"event:\ndata:a\n\n",
                vec![ev(None, None, "a")],
            ),
            (
                "invalid utf8",
                b"data:\xff\n\n",
                vec![ev(None, None, "\u{fffd}")],
            ),
            ("comment", b": hi\ndata:x\n\n", vec![ev(None, None, "x")]),
        ];
        for (name, wire, want) in cases {
            assert_eq!(parse(wire), want, "{name}");
        }
    }

    #[test]
    fn retry_table() {
        // (wire, parser.retry() afterwards, the one event's retry)
        let cases: &[(&[u8], Option<u64>, Option<u64>)] = &[
            (b"retry:100\ndata:x\n\n", Some(100), Some(100)),
            (b"retry:100\n\ndata:x\n\n", Some(100), None),
            (b"retry: 7\ndata:x\n\n", Some(7), Some(7)),
            (b"retry:1x\ndata:x\n\n", None, None),
            (b"retry:\ndata:x\n\n", None, None),
            (b"retry:-1\ndata:x\n\n", None, None),
            (b"retry:+1\ndata:x\n\n", None, None),
            (b"retry:99999999999999999999\ndata:x\n\n", None, None),
            (b"retry:5\nretry:bad\ndata:x\n\n", Some(5), Some(5)),
        ];
        for &(wire, last, on_event) in cases {
            let (events, parser) = parse_all(&[wire]);
            let name = String::from_utf8_lossy(wire);
            assert_eq!(events.len(), 1, "{name:?}");
            assert_eq!(events[0].retry, on_event, "{name:?}");
            assert_eq!(parser.retry(), last, "{name:?}");
        }
    }

    #[test]
    fn last_event_id_commits_at_blank_line() {
        let mut parser = Parser::new();
        let mut n = 0;
        parser.feed(b"id:1\ndata:x\n\nid:2\n", |_| n += 1).unwrap();
        assert_eq!((n, parser.last_event_id()), (1, Some("1")));
        parser.feed(b"\n", |_| n += 1).unwrap(); // blank line, empty data
        assert_eq!((n, parser.last_event_id()), (1, Some("2")));
    }

    #[test]
    fn keepalives_are_counted_comments() {
        let mut wire = Vec::new();
        for i in 0..3 {
            wire.extend_from_slice(KEEPALIVE);
            encode_record(
                &mut wire,
                i.to_string().as_bytes(),
                None,
                Some(b"v"),
                ValueEncoding::Text,
            );
        }
        let (events, parser) = parse_all(&[&wire]);
        assert_eq!(events.len(), 3);
        assert_eq!(parser.comments(), 3);
    }

    /// A stream mixing every frame kind and every line-end style.
    fn mixed_wire() -> Vec<u8> {
        let mut wire = b"\xef\xbb\xbf".to_vec();
        encode_retry(&mut wire, 2000);
        encode_record(
            &mut wire,
            b"a",
            None,
            Some(b" x\r\ny\rz\n"),
            ValueEncoding::Text,
        );
        wire.extend_from_slice(KEEPALIVE);
        encode_record(&mut wire, b"b", Some(b"k"), None, ValueEncoding::Text);
        encode_event(&mut wire, None, "gap", b"{}");
        wire.extend_from_slice(b"data:cr\r\r");
        wire.extend_from_slice(b"data:crlf\r\n\r\n");
        wire.extend_from_slice(b"retry:10\r\ndata:r\r\n\r\n");
        wire
    }

    #[test]
    fn chunked_feeding_matches_whole() {
        let wire = mixed_wire();
        let (want, whole) = parse_all(&[&wire]);
        assert_eq!(want.len(), 6);
        assert_eq!(want[0], ev(Some("a"), None, " x\ny\nz\n"));
        assert_eq!(want[5].retry, Some(10));
        for cut in 0..=wire.len() {
            let (got, parser) = parse_all(&[&wire[..cut], &wire[cut..]]);
            assert_eq!(got, want, "cut at {cut}");
            assert_eq!(parser.comments(), whole.comments());
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(parse_all(&bytes).0, want, "byte by byte");
        let with_empty: Vec<&[u8]> = wire.chunks(3).flat_map(|c| [c, &[][..]]).collect();
        assert_eq!(parse_all(&with_empty).0, want, "empty chunks between");
    }

    #[test]
    fn cr_lf_split_across_chunks_is_one_line_end() {
        // "data:a\r" | "\n" | "\r\n": CR+LF across chunks is one line end, so
        // the block ends only at the second CRLF (one event, data "a").
        let (events, _) = parse_all(&[b"data:a\r", b"\n", b"\r\n"]);
        assert_eq!(events, vec![ev(None, None, "a")]);
        // A CR at a chunk end followed by a non-LF is a complete line end.
        let (events, _) = parse_all(&[b"data:a\r", b"\rdata:b\n\n"]);
        assert_eq!(events, vec![ev(None, None, "a"), ev(None, None, "b")]);
        // An empty chunk between CR and LF must not break the pairing.
        let (events, _) = parse_all(&[b"data:a\r", b"", b"\n", b"data:b\n\n"]);
        assert_eq!(events, vec![ev(None, None, "a\nb")]);
    }

    #[test]
    fn line_limit() {
        let mut parser = Parser::new().with_max_line(8);
        let mut events = Vec::new();
        parser.feed(b"data:123\n\n", |e| events.push(e)).unwrap(); // exactly 8
        assert_eq!(events, vec![ev(None, None, "123")]);
        // Limit reached across chunks, before any line end is seen.
        parser.feed(b"data:", |e| events.push(e)).unwrap();
        let err = parser.feed(b"1234", |e| events.push(e));
        assert_eq!(err, Err(ParseError::LineTooLong { limit: 8 }));
        // Sticky: the stream position is lost.
        assert_eq!(parser.feed(b"\n\n", |e| events.push(e)), err);
        assert_eq!(err.unwrap_err().to_string(), "sse line longer than 8 bytes");
        // Within one chunk, too.
        let mut parser = Parser::new().with_max_line(3);
        assert!(parser.feed(b"data\n", |_| {}).is_err());
        assert_eq!(Parser::new().max_line, DEFAULT_MAX_LINE);
    }

    #[test]
    fn borrowed_events_reuse_the_buffers() {
        let mut parser = Parser::new();
        let mut seen = Vec::new();
        let mut data_ptrs = Vec::new();
        let wire = b"id:1\nevent:x\ndata:aaaa\n\nid:2\ndata:bb\ndata:c\n\n";
        parser
            .feed_ref(wire, |e| {
                data_ptrs.push(e.data.as_ptr());
                seen.push(e.to_owned());
            })
            .unwrap();
        assert_eq!(
            seen,
            vec![
                ev(Some("1"), Some("x"), "aaaa"),
                ev(Some("2"), None, "bb\nc")
            ]
        );
        // The second event was built in the first one's buffer.
        assert_eq!(data_ptrs[0], data_ptrs[1]);
    }

    proptest! {
        #[test]
        fn prop_borrowed_and_owned_agree(
            bytes in prop::collection::vec(any::<u8>(), 0..512),
            split in any::<prop::sample::Index>(),
        ) {
            let cut = split.index(bytes.len() + 1);
            let (mut owned, mut borrowed) = (Vec::new(), Vec::new());
            let (mut a, mut b) = (Parser::new(), Parser::new());
            for part in [&bytes[..cut], &bytes[cut..]] {
                a.feed(part, |e| owned.push(e)).unwrap();
                b.feed_ref(part, |e| borrowed.push(e.to_owned())).unwrap();
            }
            prop_assert_eq!(owned, borrowed);
            prop_assert_eq!(a.last_event_id(), b.last_event_id());
        }

        #[test]
        fn prop_garbage_never_panics(
            bytes in prop::collection::vec(any::<u8>(), 0..512),
            split in any::<prop::sample::Index>(),
        ) {
            let cut = split.index(bytes.len() + 1);
            let mut parser = Parser::new().with_max_line(64);
            let _ = parser.feed(&bytes[..cut], |_| {});
            let _ = parser.feed(&bytes[cut..], |_| {});
        }
    }
}
