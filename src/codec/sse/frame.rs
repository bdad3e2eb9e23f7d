//! Event frames: a Kafka record as one `text/event-stream` event, the
//! id-only progress event, control events' framing, `retry:`, and the
//! keep-alive comment. The encoders only append to the caller's `Vec<u8>`.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use memchr::memchr2;

use crate::codec::base64::append_base64;
use crate::codec::event_id::EventIdForm;

/// The keep-alive comment: a comment line plus the blank line that ends the
/// block. Clients ignore it, but it keeps proxies from timing out the stream.
pub const KEEPALIVE: &[u8] = b":\n\n";

/// The event type of a tombstone (a Kafka record with a null value).
const DELETE_EVENT: &str = "delete";

/// u64::MAX has 20 decimal digits.
const MAX_U64_DIGITS: usize = 20;

/// How a record's value is written into `data:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueEncoding {
    /// The value is UTF-8 text, written as `data:` lines. Clients see its
    /// line ends as LF. Invalid UTF-8 is passed through as is; browsers will
    /// show U+FFFD for it, so binary topics should use [`ValueEncoding::Base64`].
    Text,
    /// The value is written as one line of standard base64 (with padding).
    Base64,
}

/// How a route renders events: its value encoding and its id form.
/// Streams are grouped by it, so each frame is encoded once per distinct
/// rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Render {
    pub value: ValueEncoding,
    pub id: EventIdForm,
}

impl Render {
    /// Distinct renderings: value encodings × id forms.
    pub const COUNT: usize = 4;

    /// A distinct small number per rendering, `< Render::COUNT`.
    pub fn slot(self) -> usize {
        let value = match self.value {
            ValueEncoding::Text => 0,
            ValueEncoding::Base64 => 1,
        };
        let id = match self.id {
            EventIdForm::Progress => 0,
            EventIdForm::KeyAndProgress => 1,
        };
        value * 2 + id
    }
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

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;
    use crate::codec::sse::testing::{ev, parse, parse_all};
    use proptest::prelude::*;

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
        let cases: &[Case<'_>] = &[
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
    }
}
