//! Server-Sent-Events framing (`text/event-stream`, LF line ends) for Kafka
//! records and control events, plus a push parser that follows the WHATWG
//! EventSource parsing rules. The encoders only append to the caller's
//! `Vec<u8>` (no other allocation), and write every field so that a
//! spec-following client rebuilds the original text exactly: a value's CR LF,
//! LF and CR all become line breaks (SSE treats all three as line ends, so
//! they cannot be preserved; clients see LF), and a value that starts with a
//! space gets one extra space because clients strip exactly one after the
//! colon. Binary values go out as base64 instead. The parser is used by tests
//! and the load generator: it accepts any chunking of the stream and bounds
//! the length of a line.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::engine::Config as _;
use base64::engine::GeneralPurpose;
use base64::Engine as _;
use memchr::memchr2;

/// The keep-alive comment: a comment line plus the blank line that ends the
/// block. Clients ignore it, but it keeps proxies from timing out the stream.
pub const KEEPALIVE: &[u8] = b":\n\n";

/// Default bound on one line for [`Parser`]: 1 MiB is far above any record
/// this proxy is meant to carry in one `data:` line, yet small enough that a
/// stream with no line ends cannot exhaust the load generator's memory.
pub const DEFAULT_MAX_LINE: usize = 1024 * 1024;

/// The event type of a tombstone (a Kafka record with a null value).
const DELETE_EVENT: &str = "delete";

/// u64::MAX has 20 decimal digits.
const MAX_U64_DIGITS: usize = 20;

/// How a record's value is written into `data:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueEncoding {
    /// The value is UTF-8 text, written as `data:` lines. Clients see its
    /// line ends as LF. Invalid UTF-8 is passed through as is; browsers will
    /// show U+FFFD for it, so binary topics should use [`ValueEncoding::Base64`].
    Text,
    /// The value is written as one line of standard base64 (with padding).
    Base64,
}

/// Appends one event frame for a Kafka record: `id:<id>\n`, then the data
/// lines, then `\n`.
///
/// - `value` Some + `Text`: the value is split on CR LF, LF and CR; each line
///   is written `data:` + line (`data: ` + line if it begins with a space). An
///   empty value gives one `data:` line; `"a\n"` gives `data:a\ndata:\n`.
/// - `value` Some + `Base64`: one line `data:` + standard base64 of the value.
/// - `value` None (a tombstone): `event:delete` and `data:` + base64url (no
///   padding) of the key, empty when there is no key (or the key is empty).
///
/// `id` must not contain CR, LF or NUL (checked in debug builds); ids from
/// `event_id` never do.
pub fn encode_record(
    out: &mut Vec<u8>,
    id: &[u8],
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    encoding: ValueEncoding,
) {
    debug_assert!(
        is_single_line(id) && !id.contains(&0),
        "id must be one line without NUL"
    );
    put_field(out, b"id:", id);
    match (value, encoding) {
        (Some(value), ValueEncoding::Text) => put_text_data(out, value),
        (Some(value), ValueEncoding::Base64) => {
            out.extend_from_slice(b"data:");
            append_base64(&STANDARD, value, out);
            out.extend_from_slice(b"\n\n");
        }
        (None, _) => {
            out.extend_from_slice(b"event:");
            out.extend_from_slice(DELETE_EVENT.as_bytes());
            out.extend_from_slice(b"\ndata:");
            append_base64(&URL_SAFE_NO_PAD, key.unwrap_or_default(), out);
            out.extend_from_slice(b"\n\n");
        }
    }
}

/// Appends an event of only an `id:` line: clients take it as their last
/// event id (the WHATWG rules set it at every blank line) and dispatch
/// nothing, since there is no data. Streams that filter records send it so
/// a client's id moves past the records it was not shown.
pub fn encode_id_only(out: &mut Vec<u8>, id: &[u8]) {
    debug_assert!(
        is_single_line(id) && !id.contains(&0),
        "id must be one line without NUL"
    );
    put_field(out, b"id:", id);
    out.push(b'\n');
}

/// Appends a control event: optional `id:` line, `event:<event>\n`,
/// `data:<data>\n\n`. `id`, `event` and `data` must each be one line (checked
/// in debug builds); this is meant for the reset/gap/error JSON. As for every
/// field, a value starting with a space is written with one extra space.
pub fn encode_event(out: &mut Vec<u8>, id: Option<&[u8]>, event: &str, data: &[u8]) {
    debug_assert!(is_single_line(event.as_bytes()), "event must be one line");
    debug_assert!(is_single_line(data), "data must be one line");
    if let Some(id) = id {
        debug_assert!(
            is_single_line(id) && !id.contains(&0),
            "id must be one line without NUL"
        );
        put_field(out, b"id:", id);
    }
    put_field(out, b"event:", event.as_bytes());
    put_field(out, b"data:", data);
    out.push(b'\n');
}

/// Appends `retry:<ms>\n\n`, which sets the client's reconnection delay.
pub fn encode_retry(out: &mut Vec<u8>, millis: u64) {
    // Decimal digits into a stack buffer, so no formatter and no allocation.
    let mut digits = [0u8; MAX_U64_DIGITS];
    let mut at = digits.len();
    let mut v = millis;
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(b"retry:");
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\n\n");
}

/// Writes `name` + value + LF, with one extra space before a value that starts
/// with a space (the client strips exactly one).
fn put_field(out: &mut Vec<u8>, name_colon: &[u8], value: &[u8]) {
    out.extend_from_slice(name_colon);
    if value.first() == Some(&b' ') {
        out.push(b' ');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Writes a text value as `data:` lines, closing the frame with the blank line.
/// The separator `\ndata:` of consecutive lines is one slice, so a line costs
/// two `extend_from_slice` calls (content, separator) plus a push for a
/// leading space.
fn put_text_data(out: &mut Vec<u8>, value: &[u8]) {
    // Room for the common single-line value; multi-line values grow `out`
    // by amortized doubling.
    out.reserve(b"data:".len() + value.len() + b"\n\n".len() + 1);
    out.extend_from_slice(b"data:");
    let mut rest = value;
    loop {
        if rest.first() == Some(&b' ') {
            out.push(b' ');
        }
        match memchr2(b'\r', b'\n', rest) {
            Some(end) => {
                out.extend_from_slice(&rest[..end]);
                out.extend_from_slice(b"\ndata:");
                // CR LF is one line end; a lone CR or LF is one too.
                let skip = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[end + skip..];
            }
            None => {
                out.extend_from_slice(rest);
                out.extend_from_slice(b"\n\n");
                return;
            }
        }
    }
}

fn is_single_line(s: &[u8]) -> bool {
    memchr2(b'\r', b'\n', s).is_none()
}

/// Appends base64 of `data` without a temporary allocation: the exact encoded
/// length is known up front, so `out` grows once and the engine writes in place.
pub(crate) fn append_base64(engine: &GeneralPurpose, data: &[u8], out: &mut Vec<u8>) {
    let padding = engine.config().encode_padding();
    // `None` only when the length overflows usize, impossible for a slice
    // that fits in memory (base64 grows data by 4/3).
    let len = base64::encoded_len(data.len(), padding).expect("base64 length overflows usize");
    let start = out.len();
    out.resize(start + len, 0);
    let written = engine
        .encode_slice(data, &mut out[start..])
        .expect("output sized by encoded_len");
    debug_assert_eq!(written, len);
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(chunks: &[&[u8]]) -> (Vec<Event>, Parser) {
        let mut parser = Parser::new();
        let mut events = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, |e| events.push(e)).unwrap();
        }
        (events, parser)
    }

    fn parse(wire: &[u8]) -> Vec<Event> {
        parse_all(&[wire]).0
    }

    fn text_record(id: &str, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_record(
            &mut out,
            id.as_bytes(),
            None,
            Some(value),
            ValueEncoding::Text,
        );
        out
    }

    fn ev(id: Option<&str>, event: Option<&str>, data: &str) -> Event {
        Event {
            id: id.map(str::to_owned),
            event: event.map(str::to_owned),
            data: data.to_owned(),
            retry: None,
        }
    }

    /// What a client sees for a text value: every line end becomes LF.
    fn normalized(value: &str) -> String {
        value.replace("\r\n", "\n").replace('\r', "\n")
    }

    #[test]
    fn text_golden_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b"id:7\ndata:\n\n"),
            (b"hello", b"id:7\ndata:hello\n\n"),
            (b"a\n", b"id:7\ndata:a\ndata:\n\n"),
            (b"a\nb", b"id:7\ndata:a\ndata:b\n\n"),
            (b"a\r\nb\rc\nd", b"id:7\ndata:a\ndata:b\ndata:c\ndata:d\n\n"),
            (b"\r\n\r\n", b"id:7\ndata:\ndata:\ndata:\n\n"),
            (b"\n\r", b"id:7\ndata:\ndata:\ndata:\n\n"),
            (b" lead", b"id:7\ndata:  lead\n\n"),
            (b"x\n  two", b"id:7\ndata:x\ndata:   two\n\n"),
            (b"a:b", b"id:7\ndata:a:b\n\n"),
            (b"{\"k\":1}", b"id:7\ndata:{\"k\":1}\n\n"),
        ];
        for (value, wire) in cases {
            assert_eq!(
                text_record("7", value),
                wire.to_vec(),
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn base64_and_tombstone_golden() {
        type Case<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, ValueEncoding, &'a [u8]);
        let cases: &[Case] = &[
            (
                None,
                Some(b"\xfb\xff"),
                ValueEncoding::Base64,
                b"id:i\ndata:+/8=\n\n",
            ),
            (None, Some(b""), ValueEncoding::Base64, b"id:i\ndata:\n\n"),
            (
                Some(b"k"),
                Some(b"hi"),
                ValueEncoding::Base64,
                b"id:i\ndata:aGk=\n\n",
            ),
            (
                Some(b"\xfb\xff"),
                None,
                ValueEncoding::Text,
                b"id:i\nevent:delete\ndata:-_8\n\n",
            ),
            (
                Some(b"\xfb\xff"),
                None,
                ValueEncoding::Base64,
                b"id:i\nevent:delete\ndata:-_8\n\n",
            ),
            (
                None,
                None,
                ValueEncoding::Text,
                b"id:i\nevent:delete\ndata:\n\n",
            ),
        ];
        for &(key, value, encoding, wire) in cases {
            let mut out = Vec::new();
            encode_record(&mut out, b"i", key, value, encoding);
            assert_eq!(out, wire, "{key:?} {value:?} {encoding:?}");
        }
    }

    #[test]
    fn control_golden() {
        let mut out = Vec::new();
        encode_event(&mut out, Some(b"abc"), "reset", b"{\"reason\":\"x\"}");
        encode_event(&mut out, None, "error", b" spaced");
        encode_retry(&mut out, 0);
        encode_retry(&mut out, 1500);
        encode_retry(&mut out, u64::MAX);
        out.extend_from_slice(KEEPALIVE);
        let want: &[u8] = b"id:abc\nevent:reset\ndata:{\"reason\":\"x\"}\n\n\
            event:error\ndata:  spaced\n\n\
            retry:0\n\nretry:1500\n\nretry:18446744073709551615\n\n:\n\n";
        assert_eq!(out, want);

        let (events, parser) = parse_all(&[&out]);
        let reset = ev(Some("abc"), Some("reset"), "{\"reason\":\"x\"}");
        assert_eq!(
            events,
            vec![reset, ev(Some("abc"), Some("error"), " spaced")]
        );
        assert_eq!(parser.retry(), Some(u64::MAX));
        assert_eq!(parser.comments(), 1);
        assert_eq!(parser.last_event_id(), Some("abc"));
    }

    #[test]
    fn appends_to_existing_output() {
        let mut out = b"before".to_vec();
        encode_record(&mut out, b"1", None, Some(b"v"), ValueEncoding::Text);
        assert_eq!(out, b"beforeid:1\ndata:v\n\n");
    }

    #[test]
    fn record_round_trip_table() {
        let values = [
            "",
            "x",
            "a\n",
            "\n",
            "\r",
            "\r\n",
            "a\r\n\r\nb",
            "a\rb",
            " lead",
            "  two",
            "x\n y",
            "trail\r",
            "é ü 日本",
            "data: inner",
            ":colon",
            "\u{feff}bom",
        ];
        for value in values {
            let wire = text_record("id1", value.as_bytes());
            assert_eq!(
                parse(&wire),
                vec![ev(Some("id1"), None, &normalized(value))],
                "{value:?}"
            );
        }
    }

    #[test]
    fn tombstone_and_base64_round_trip() {
        let mut wire = Vec::new();
        encode_record(&mut wire, b"1", Some(b"key"), None, ValueEncoding::Text);
        encode_record(&mut wire, b"2", None, None, ValueEncoding::Text);
        encode_record(
            &mut wire,
            b"3",
            None,
            Some(b"\x00\xff\r\n"),
            ValueEncoding::Base64,
        );
        assert_eq!(
            parse(&wire),
            vec![
                ev(Some("1"), Some("delete"), "a2V5"),
                ev(Some("2"), Some("delete"), ""),
                ev(Some("3"), None, "AP8NCg=="),
            ]
        );
    }

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

    /// Text values biased towards the characters that matter to SSE framing.
    fn sse_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("\r".to_owned()),
            Just("\n".to_owned()),
            Just("\r\n".to_owned()),
            Just(" ".to_owned()),
            Just(":".to_owned()),
            "[a-z]{1,5}",
            any::<char>().prop_map(String::from),
        ];
        prop_oneof![
            prop::collection::vec(piece, 0..20).prop_map(|v| v.concat()),
            any::<String>(),
        ]
    }

    proptest! {
        #[test]
        fn prop_text_round_trip(value in sse_text(), split in any::<prop::sample::Index>()) {
            let wire = text_record("p", value.as_bytes());
            let want = vec![ev(Some("p"), None, &normalized(&value))];
            prop_assert_eq!(parse(&wire), want.clone());
            let cut = split.index(wire.len() + 1);
            prop_assert_eq!(parse_all(&[&wire[..cut], &wire[cut..]]).0, want);
        }

        #[test]
        fn prop_base64_and_tombstone_round_trip(
            value in prop::collection::vec(any::<u8>(), 0..300),
            key in prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
        ) {
            let mut wire = Vec::new();
            encode_record(&mut wire, b"v", key.as_deref(), Some(&value), ValueEncoding::Base64);
            encode_record(&mut wire, b"t", key.as_deref(), None, ValueEncoding::Text);
            let events = parse(&wire);
            prop_assert_eq!(events.len(), 2);
            prop_assert_eq!(STANDARD.decode(&events[0].data).unwrap(), value);
            prop_assert_eq!(events[1].event.as_deref(), Some("delete"));
            let key_back = URL_SAFE_NO_PAD.decode(&events[1].data).unwrap();
            prop_assert_eq!(key_back, key.unwrap_or_default());
        }

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
