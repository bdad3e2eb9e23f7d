//! The record value the producer writes and the subscriber reads back:
//! `{"p":<partition>,"seq":<per-partition sequence>,"ts":<unix ns at send>,"pad":"xxx…"}`,
//! padded with `x` to an exact byte size so that a run's payload size is a
//! controlled variable. Parsing uses a small hand-written scanner rather than
//! serde_json: it runs once per delivered event (millions per second across
//! connections), stops as soon as the three integers are found (so the pad,
//! usually most of the value, is never scanned) and allocates nothing. It
//! accepts any flat JSON object whose `p`, `seq` and `ts` are non-negative
//! integers, in any order, with any whitespace; anything else yields `None`.
//! The tests cross-check it against serde_json.

use std::io::Write as _;

/// Bytes of the value without any pad characters and with the widest numbers:
/// `{"p":` (5) + u32 (10) + `,"seq":` (7) + u64 (20) + `,"ts":` (6) + u64 (20)
/// + `,"pad":"` (8) + `"}` (2). A requested size at least this large is always
///   met exactly.
pub const MAX_UNPADDED_LEN: usize = 5 + 10 + 7 + 20 + 6 + 20 + 8 + 2;

/// The three fields a subscriber needs from a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub partition: u32,
    pub seq: u64,
    pub ts_ns: u64,
}

/// Builds the value for one record, padded to exactly `size` bytes; when
/// `size` is below the unpadded length the value is that long (no pad).
pub fn encode(stamp: Stamp, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size.max(MAX_UNPADDED_LEN));
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "{{\"p\":{},\"seq\":{},\"ts\":{},\"pad\":\"",
        stamp.partition, stamp.seq, stamp.ts_ns
    );
    let closing = b"\"}";
    let pad = size.saturating_sub(out.len() + closing.len());
    out.resize(out.len() + pad, b'x');
    out.extend_from_slice(closing);
    out
}

/// Extracts `p`, `seq` and `ts` from a value (see the module comment for what
/// is accepted).
pub fn parse(data: &[u8]) -> Option<Stamp> {
    let mut s = Scanner { data, at: 0 };
    s.skip_ws();
    s.expect(b'{')?;
    let (mut p, mut seq, mut ts) = (None, None, None);
    loop {
        s.skip_ws();
        let key = s.string()?;
        s.skip_ws();
        s.expect(b':')?;
        s.skip_ws();
        match s.peek()? {
            b'0'..=b'9' => {
                let n = s.integer()?;
                match key {
                    b"p" => p = Some(u32::try_from(n).ok()?),
                    b"seq" => seq = Some(n),
                    b"ts" => ts = Some(n),
                    _ => {}
                }
            }
            b'"' => {
                if matches!(key, b"p" | b"seq" | b"ts") {
                    return None;
                }
                s.string()?;
            }
            _ => return None,
        }
        if let (Some(partition), Some(seq), Some(ts_ns)) = (p, seq, ts) {
            return Some(Stamp {
                partition,
                seq,
                ts_ns,
            });
        }
        s.skip_ws();
        match s.next()? {
            b',' => continue,
            _ => return None, // `}` before all three fields, or garbage
        }
    }
}

struct Scanner<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.data.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A JSON string; returns its raw (still escaped) contents, which is
    /// enough to compare against the plain ASCII keys we look for.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            match self.next()? {
                b'"' => return Some(&self.data[start..self.at - 1]),
                b'\\' => {
                    self.next()?;
                }
                _ => {}
            }
        }
    }

    /// A non-negative integer without fraction or exponent; `None` on
    /// overflow or when a fraction/exponent follows.
    fn integer(&mut self) -> Option<u64> {
        let mut n: u64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.at += 1;
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(partition: u32, seq: u64, ts_ns: u64) -> Stamp {
        Stamp {
            partition,
            seq,
            ts_ns,
        }
    }

    #[test]
    fn round_trip_and_exact_size() {
        let stamps = [
            stamp(0, 0, 0),
            stamp(3, 17, 1_700_000_000_123_456_789),
            stamp(u32::MAX, u64::MAX, u64::MAX),
        ];
        let sizes = [MAX_UNPADDED_LEN, 100, 150, 1024, 65_536];
        for s in stamps {
            for size in sizes {
                let v = encode(s, size);
                assert_eq!(v.len(), size, "{s:?} size {size}");
                assert_eq!(parse(&v), Some(s), "{}", String::from_utf8_lossy(&v));
                // It is valid JSON with the same numbers.
                let j: serde_json::Value = serde_json::from_slice(&v).unwrap();
                assert_eq!(j["p"].as_u64(), Some(u64::from(s.partition)));
                assert_eq!(j["seq"].as_u64(), Some(s.seq));
                assert_eq!(j["ts"].as_u64(), Some(s.ts_ns));
            }
        }
    }

    #[test]
    fn small_size_gives_unpadded_value() {
        let v = encode(stamp(1, 2, 3), 1);
        assert_eq!(v, br#"{"p":1,"seq":2,"ts":3,"pad":""}"#);
    }

    #[test]
    fn parses_variants() {
        let cases: &[(&str, Option<Stamp>)] = &[
            (r#"{"p":1,"seq":2,"ts":3}"#, Some(stamp(1, 2, 3))),
            (r#" { "ts" : 3 , "seq":2, "p" :1 } "#, Some(stamp(1, 2, 3))),
            (
                r#"{"name":"a \"q\" b","p":1,"seq":2,"ts":3}"#,
                Some(stamp(1, 2, 3)),
            ),
            (r#"{"x":5,"p":1,"seq":2,"ts":3}"#, Some(stamp(1, 2, 3))),
            (r#"{"p":1,"seq":2}"#, None),
            (r#"{"p":1,"seq":2.5,"ts":3}"#, None),
            (r#"{"p":-1,"seq":2,"ts":3}"#, None),
            (r#"{"p":"1","seq":2,"ts":3}"#, None),
            (r#"{"p":4294967296,"seq":2,"ts":3}"#, None),
            (r#"{"p":1,"seq":99999999999999999999999,"ts":3}"#, None),
            (r#"{"o":{"p":1},"seq":2,"ts":3}"#, None),
            ("hello", None),
            ("", None),
            ("{", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text.as_bytes()), *want, "{text}");
        }
    }
}
