//! Bearer tokens for the SSE requests of `subscribe`, `run` and `storm`,
//! sent as `authorization: Bearer <token>`: one token for every connection
//! (`--token`), or a file of them, one a line, of which connection `i`
//! sends line `i mod n` (`--token-file`; n distinct tokens make n distinct
//! clients for a guard's token cache). Tokens are credentials: nothing
//! here prints one — an error names the file, the line and the column,
//! and `Debug` only counts them. The file is bounded in size and lines
//! (`MAX_FILE_BYTES`, `MAX_TOKENS`) and every token in length and bytes
//! before a request is built with it.

use std::fmt;
use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

/// The largest token file read: 100,000 RS256 tokens of ~700 bytes (or
/// 10,000 tokens of 16 KiB) with room to spare. A bigger file is a wrong
/// path (a log, a disk image), and all of it would be held in memory.
pub const MAX_FILE_BYTES: u64 = 128 << 20;
/// Tokens one file may hold: one per connection of the largest run a
/// machine holds (a million connections from many source addresses).
pub const MAX_TOKENS: usize = 1 << 20;
/// The longest token sent: the proxy does not even decode a longer one
/// (it answers 401), so a longer line is a mistake, not a test.
pub const MAX_TOKEN_BYTES: usize = sse_kafka::codec::jwt::MAX_TOKEN_BYTES;

/// Why the tokens could not be had. The token itself is never part of
/// the message.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("reading the token file {origin}: {source}")]
    Read {
        origin: String,
        source: std::io::Error,
    },
    #[error("the token file {origin} is larger than {limit} bytes")]
    FileTooLarge { origin: String, limit: u64 },
    #[error("the token file {origin} holds more than {limit} tokens")]
    TooMany { origin: String, limit: usize },
    #[error("{origin} holds no token")]
    NoToken { origin: String },
    #[error("{origin}: line {line} is empty (one token a line: line i is connection i mod n's)")]
    EmptyLine { origin: String, line: usize },
    #[error("{origin}: line {line}: a token of {len} bytes; the proxy reads at most {limit}")]
    TooLong {
        origin: String,
        line: usize,
        len: usize,
        limit: usize,
    },
    #[error(
        "{origin}: line {line}, column {column}: byte 0x{byte:02x} is not visible ASCII \
         (a token goes into a header as it is)"
    )]
    BadByte {
        origin: String,
        line: usize,
        column: usize,
        byte: u8,
    },
}

/// One token: visible ASCII, at most `MAX_TOKEN_BYTES`.
pub struct Token(Box<str>);

impl Token {
    /// The token as it goes after `Bearer `.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({} bytes)", self.0.len())
    }
}

/// The tokens of a run (none: requests without `authorization`). Cheap to
/// clone: every thread shares one list.
#[derive(Clone, Default)]
pub struct Tokens {
    list: Arc<[Token]>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tokens({})", self.list.len())
    }
}

impl Tokens {
    /// The same token for every connection (`--token`).
    pub fn one(token: &str) -> Result<Self, TokenError> {
        let origin = || "--token".to_owned();
        if token.is_empty() {
            return Err(TokenError::NoToken { origin: origin() });
        }
        Ok(Self {
            list: Arc::new([checked(&origin, 1, token.as_bytes())?]),
        })
    }

    /// The tokens of a file, one a line (`--token-file`).
    pub fn from_file(path: &Path) -> Result<Self, TokenError> {
        let origin = path.display().to_string();
        let mut text = Vec::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut text))
            .map_err(|source| TokenError::Read {
                origin: origin.clone(),
                source,
            })?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(TokenError::FileTooLarge {
                origin,
                limit: MAX_FILE_BYTES,
            });
        }
        Self::parse(&origin, &text)
    }

    /// The tokens of a file's bytes: lines end with `\n` or `\r\n`; the
    /// last may lack its end; an empty line is refused (it would shift
    /// every later line's connections).
    pub fn parse(origin: &str, text: &[u8]) -> Result<Self, TokenError> {
        let origin = || origin.to_owned();
        let body = text.strip_suffix(b"\n").unwrap_or(text);
        if body.is_empty() {
            return Err(TokenError::NoToken { origin: origin() });
        }
        let mut list = Vec::new();
        for (n, line) in body.split(|&b| b == b'\n').enumerate() {
            if list.len() == MAX_TOKENS {
                return Err(TokenError::TooMany {
                    origin: origin(),
                    limit: MAX_TOKENS,
                });
            }
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                return Err(TokenError::EmptyLine {
                    origin: origin(),
                    line: n + 1,
                });
            }
            list.push(checked(&origin, n + 1, line)?);
        }
        Ok(Self { list: list.into() })
    }

    /// The token connection `i` sends, if the run has tokens.
    pub fn for_client(&self, i: usize) -> Option<&Token> {
        match self.list.len() {
            0 => None,
            n => Some(&self.list[i % n]),
        }
    }
}

/// `bytes` as a token, if it fits in a header as it is: visible ASCII
/// (RFC 9110's field-vchar without obs-text), no space or control byte.
fn checked(origin: &dyn Fn() -> String, line: usize, bytes: &[u8]) -> Result<Token, TokenError> {
    if bytes.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong {
            origin: origin(),
            line,
            len: bytes.len(),
            limit: MAX_TOKEN_BYTES,
        });
    }
    if let Some(at) = bytes.iter().position(|b| !b.is_ascii_graphic()) {
        return Err(TokenError::BadByte {
            origin: origin(),
            line,
            column: at + 1,
            byte: bytes[at],
        });
    }
    let text = std::str::from_utf8(bytes).expect("visible ASCII is UTF-8");
    Ok(Token(text.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(tokens: &Tokens, clients: usize) -> Vec<Option<&str>> {
        (0..clients)
            .map(|i| tokens.for_client(i).map(Token::as_str))
            .collect()
    }

    /// (what, the file, what connections 0, 1, ... send)
    type Case<'a> = (&'a str, &'a [u8], Vec<Option<&'a str>>);

    #[test]
    fn connection_i_takes_line_i_mod_n() {
        let cases: &[Case<'_>] = &[
            ("no tokens", b"", vec![None, None]),
            ("one line", b"a.b.c\n", vec![Some("a.b.c"), Some("a.b.c")]),
            (
                "three lines, no final newline",
                b"t0\nt1\nt2",
                vec![Some("t0"), Some("t1"), Some("t2"), Some("t0")],
            ),
            (
                "CRLF lines",
                b"t0\r\nt1\r\n",
                vec![Some("t0"), Some("t1"), Some("t0")],
            ),
        ];
        for (what, text, want) in cases {
            let tokens = if text.is_empty() {
                Tokens::default()
            } else {
                Tokens::parse("f", text).unwrap()
            };
            assert_eq!(&sent(&tokens, want.len()), want, "{what}");
        }
        assert_eq!(sent(&Tokens::one("x.y.z").unwrap(), 2), [Some("x.y.z"); 2]);
    }

    #[test]
    fn bad_files_are_refused_without_their_tokens() {
        let long = vec![b'a'; MAX_TOKEN_BYTES + 1];
        let cases: &[(&str, &[u8], &str)] = &[
            ("empty", b"", "f holds no token"),
            ("only a newline", b"\n", "f holds no token"),
            (
                "a blank line",
                b"secret1\n\nsecret2\n",
                "f: line 2 is empty",
            ),
            (
                "a trailing blank line",
                b"secret1\n\n",
                "f: line 2 is empty",
            ),
            (
                "a space",
                b"secret1\nsec ret2\n",
                "f: line 2, column 4: byte 0x20",
            ),
            ("a tab", b"\tsecret1", "f: line 1, column 1: byte 0x09"),
            (
                "a bare CR",
                b"sec\rret1\n",
                "f: line 1, column 4: byte 0x0d",
            ),
            (
                "not ASCII",
                "sécret".as_bytes(),
                "f: line 1, column 2: byte 0xc3",
            ),
            ("too long", &long, "f: line 1: a token of 16385 bytes"),
        ];
        for (what, text, want) in cases {
            let e = Tokens::parse("f", text).unwrap_err().to_string();
            assert!(e.starts_with(want), "{what}: {e}");
            assert!(!e.contains("secret") && !e.contains("ret"), "{what}: {e}");
        }
        let e = Tokens::one("a b").unwrap_err().to_string();
        assert!(e.starts_with("--token: line 1, column 2"), "{e}");
        assert!(Tokens::one("").is_err());
    }

    #[test]
    fn files_are_bounded() {
        let many = "t\n".repeat(MAX_TOKENS + 1);
        let e = Tokens::parse("f", many.as_bytes()).unwrap_err();
        assert!(
            matches!(
                e,
                TokenError::TooMany {
                    limit: MAX_TOKENS,
                    ..
                }
            ),
            "{e}"
        );
        let exactly = "t\n".repeat(MAX_TOKENS);
        assert_eq!(
            Tokens::parse("f", exactly.as_bytes()).unwrap().list.len(),
            MAX_TOKENS
        );
        let e = Tokens::from_file(Path::new("/nonexistent/tokens")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("reading the token file /nonexistent/tokens"),
            "{e}"
        );
    }

    #[test]
    fn debug_never_shows_a_token() {
        let tokens = Tokens::parse("f", b"secret1\nsecret2\n").unwrap();
        assert_eq!(format!("{tokens:?}"), "Tokens(2)");
        let token = tokens.for_client(0).unwrap();
        assert_eq!(format!("{token:?}"), "Token(7 bytes)");
    }
}
