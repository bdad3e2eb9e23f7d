//! Topic names and topic glob patterns: pure functions of text. The config
//! checks the topics a route names with them when the file is loaded, and a
//! connection checks the topic a request names through a route's topic
//! template at run time, so both sides refuse exactly what Kafka refuses.

/// Kafka refuses topic names longer than 249 characters.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Why a text is not a Kafka topic name. The texts are shown to operators (in
/// config errors) and to clients (in the body of a 404), so each says what
/// Kafka allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    #[error("topic name must not be empty")]
    Empty,
    /// The name's length in bytes, counted before its characters are
    /// checked (every allowed character is one byte, so Kafka's limit in
    /// characters is one in bytes).
    #[error("topic name is {0} bytes long; Kafka allows at most {MAX_TOPIC_NAME_LEN}")]
    TooLong(usize),
    /// `.` or `..`, which Kafka keeps for itself.
    #[error("'{0}' is not a valid Kafka topic name")]
    Reserved(String),
    #[error(
        "invalid topic name '{name}': {bad:?} is not allowed; \
         Kafka topic names use only a-z, A-Z, 0-9, '.', '_' and '-'"
    )]
    Character { name: String, bad: char },
}

/// Checks a Kafka topic name: 1 to 249 of `a-z A-Z 0-9 . _ -`, not `.` or
/// `..` — exactly what the broker accepts, so a typo fails here rather than
/// at the first fetch. Also used on the names a route's topic template
/// resolves to.
pub fn check_topic_name(s: &str) -> Result<(), TopicNameError> {
    if s.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if s.len() > MAX_TOPIC_NAME_LEN {
        return Err(TopicNameError::TooLong(s.len()));
    }
    if s == "." || s == ".." {
        return Err(TopicNameError::Reserved(s.to_string()));
    }
    if let Some(bad) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(TopicNameError::Character {
            name: s.to_string(),
            bad,
        });
    }
    Ok(())
}

/// Whether `name` matches the glob `pattern`: `*` matches any run of
/// characters (none included), `?` exactly one, anything else itself.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and where in `name` its match ends so far.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            // Let the last `*` take one more character.
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_patterns_glob() {
        for (pattern, name, want) in [
            ("public.*", "public.a", true),
            ("public.*", "public.", true),
            ("public.*", "public", false),
            ("public.*", "xpublic.a", false),
            ("*", "anything", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*.events.*", "eu.events.orders", true),
            ("*.events.*", "eu.event.orders", false),
            ("news", "news", true),
            ("news", "news2", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXcYb", false),
        ] {
            assert_eq!(glob_matches(pattern, name), want, "{pattern} {name}");
        }
    }

    #[test]
    fn topic_names() {
        let longest = "t".repeat(MAX_TOPIC_NAME_LEN);
        let too_long = "t".repeat(MAX_TOPIC_NAME_LEN + 1);
        let wide = "é".repeat(125);
        // (name, the error's text, or None when valid)
        let cases: &[(&str, Option<&str>)] = &[
            ("items", None),
            ("orders.v2_eu-1", None),
            ("...", None),
            (&longest, None),
            ("", Some("topic name must not be empty")),
            (
                &too_long,
                Some("topic name is 250 bytes long; Kafka allows at most 249"),
            ),
            // 125 characters, 250 bytes: refused for its length in bytes,
            // which is what the message says.
            (
                &wide,
                Some("topic name is 250 bytes long; Kafka allows at most 249"),
            ),
            (".", Some("'.' is not a valid Kafka topic name")),
            ("..", Some("'..' is not a valid Kafka topic name")),
            (
                "my items",
                Some(
                    "invalid topic name 'my items': ' ' is not allowed; \
                     Kafka topic names use only a-z, A-Z, 0-9, '.', '_' and '-'",
                ),
            ),
            (
                "a/b",
                Some(
                    "invalid topic name 'a/b': '/' is not allowed; \
                     Kafka topic names use only a-z, A-Z, 0-9, '.', '_' and '-'",
                ),
            ),
            (
                "é",
                Some(
                    "invalid topic name 'é': 'é' is not allowed; \
                     Kafka topic names use only a-z, A-Z, 0-9, '.', '_' and '-'",
                ),
            ),
        ];
        for (name, want) in cases {
            let got = check_topic_name(name).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), *want, "{name:?}");
        }
    }
}
