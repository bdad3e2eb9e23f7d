//! The error of the config loader, which says where the mistake is: file,
//! line, column and dotted field (`routes[1].topic`), or the command-line flag
//! that gave the faulty value. serde_yaml_ng's own errors are turned into it
//! here, their position and path moved out of the message into the fields.

use std::fmt;

use super::keys::{join_key, KeyIndex};
use super::overrides::Flag;

/// A configuration error: `file:line:column: field: message`, or
/// `--flag (VARIABLE): message` when a flag's value is at fault.
///
/// `line` and `column` are 1-based; 0 means the position is unknown (a file that
/// cannot be read, an empty document, a value from a flag). `field` is a dotted
/// path such as `routes[1].topic` or `kafka.bootstrap`; `-` means no single
/// field (the file itself, or the whole document). For YAML syntax errors, which
/// the parser reports without a path, `field` is the key nearest before the
/// error position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub(crate) file: String,
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) field: String,
    /// The flag that gave `field` its faulty value, when the file did not; the
    /// message then names the flag instead of a place in the file, which
    /// would point at a value that is not in use.
    pub(crate) flag: Option<Flag>,
    pub(crate) message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.flag {
            Some(flag) => write!(f, "{flag}: {}", self.message),
            None => write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file, self.line, self.column, self.field, self.message
            ),
        }
    }
}

impl ConfigError {
    pub(super) fn new(
        file: &str,
        (line, column): (usize, usize),
        field: &str,
        message: String,
    ) -> Self {
        ConfigError {
            file: file.to_string(),
            line,
            column,
            field: field.to_string(),
            flag: None,
            message,
        }
    }

    /// An error in the value `flag` gave `field`, loading `file`.
    pub(super) fn from_flag(file: &str, flag: Flag, field: &str, message: String) -> Self {
        ConfigError {
            flag: Some(flag),
            ..ConfigError::new(file, (0, 0), field, message)
        }
    }

    /// Turns a serde_yaml_ng error into ours. Its text is
    /// `<path>: <message> at line L column C` for type and value errors (the
    /// path is absent at the document root) and `<problem> at line L column C,
    /// <context>` for syntax errors; we move the path into `field` and drop the
    /// position, which is already in `line` and `column`.
    pub(super) fn from_yaml(err: &serde_yaml_ng::Error, text: &str, file: &str) -> Self {
        let (mut line, mut column) = err.location().map_or((0, 0), |l| (l.line(), l.column()));
        let mut full = err.to_string();
        if line == 0 && full.contains("repetition limit exceeded") {
            // Aliases that expand without bound ("billion laughs"): serde
            // knows no position; the first alias is where it starts.
            if let Some((at, col)) = first_alias(text) {
                (line, column) = (at, col);
            }
            full = "aliases expand past the parser's repetition limit (a \"billion laughs\"); write the values out".to_owned();
        }
        if line > 0 {
            let mark = format!(" at line {line} column {column}");
            if let Some(at) = full.find(&mark) {
                full.replace_range(at..at + mark.len(), "");
            }
        }
        let (path, message) = match full.split_once(": ") {
            Some((path, rest)) if looks_like_path(path) => (path.to_string(), rest.to_string()),
            _ => (String::new(), full),
        };
        // serde names the offending key only inside the message; the field is
        // more useful as the full path to that key.
        let named = ["unknown field `", "missing field `", "duplicate field `"]
            .iter()
            .find_map(|prefix| message.strip_prefix(prefix))
            .and_then(|rest| rest.split_once('`'))
            .map(|(key, _)| join_key(&path, key));
        let mut message = message;
        // libyaml's complaint about a tab is cryptic ("found character that
        // cannot start any token"); tabs in indentation are the usual cause.
        let indent_has_tab = line > 0
            && text.lines().nth(line - 1).is_some_and(|l| {
                l.chars()
                    .take_while(|c| c.is_whitespace())
                    .any(|c| c == '\t')
            });
        if indent_has_tab {
            message.push_str(" (YAML does not allow tabs for indentation; use spaces)");
        }
        let field = match named {
            Some(field) => field,
            None if !path.is_empty() => path,
            // No path: a syntax error, or a problem with the document as a
            // whole. The nearest key before the position is the best hint.
            None => KeyIndex::new(text)
                .path_at_line(line)
                .unwrap_or_else(|| "-".to_string()),
        };
        ConfigError::new(file, (line, column), &field, message)
    }
}

/// Line and column (1-based) of the first alias (`*name`) in `text`,
/// outside quotes and comments.
fn first_alias(text: &str) -> Option<(usize, usize)> {
    for (i, line) in text.lines().enumerate() {
        let mut quote = None;
        let mut previous = ' ';
        for (col, c) in line.char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '#') if previous == ' ' => break,
                (None, '*') if matches!(previous, ' ' | '[' | ',' | '{' | ':') => {
                    return Some((i + 1, col + 1));
                }
                _ => {}
            }
            previous = c;
        }
    }
    None
}

/// Whether `s` can be a serde_yaml_ng path (`routes[0].topic`) rather than the
/// first words of a message such as `invalid type: ...`. A path starts with
/// one of our top-level keys, plain identifiers, so a space before the first
/// `.` or `[` rules a path out. Further on a path may hold keys the operator
/// chose — header names, JSON pointers (`routes[0].filters[0].value./a b`) —
/// so anything goes there. (A key holding `": "` would still end the path
/// early: the message then starts with the key's tail, nothing worse.)
fn looks_like_path(s: &str) -> bool {
    let first = &s[..s.find(['.', '[']).unwrap_or(s.len())];
    !first.is_empty()
        && first
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-?".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::config::testing::{assert_errors, ErrorCase, FILE, HEAD};

    #[test]
    fn syntax_errors_name_file_line_and_field() {
        let cases: Vec<ErrorCase> = Vec::from([
            (
                "YAML syntax error",
                format!("{HEAD}routes:\n  - path: /a\n    topic: a\n   keepalive: 1s\n"),
                6,
                4,
                "routes[0].keepalive",
                "did not find expected '-' indicator, while parsing a block collection at line 4",
            ),
            (
                "tab indentation",
                format!("{HEAD}routes:\n\t- path: /a\n"),
                4,
                1,
                "routes",
                "found character that cannot start any token",
            ),
            (
                "empty file",
                "# nothing yet\n\n".into(),
                0,
                0,
                "-",
                "the file is empty",
            ),
        ]);
        assert_errors(cases);
    }

    #[test]
    fn tab_error_explains_itself() {
        let err = parse("kafka:\n\tbootstrap: []\n", FILE).unwrap_err();
        assert!(err.message.contains("YAML does not allow tabs"), "{err}");
    }

    #[test]
    fn error_display() {
        let err = parse(
            "kafka:\n  bootstrap: [\"a:1\"]\nroutes: []\n",
            "/etc/sse-kafka.yaml",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/sse-kafka.yaml:3:9: routes: must list at least one entry"
        );
    }

    #[test]
    fn a_flag_error_names_the_flag_not_the_file() {
        let err = ConfigError::from_flag(
            "/etc/sse-kafka.yaml",
            Flag::Brokers,
            "kafka.bootstrap[0]",
            "invalid broker address 'nohost': no port; expected host:port".into(),
        );
        assert_eq!(
            err.to_string(),
            "--brokers (SSE_KAFKA_BROKERS): invalid broker address 'nohost': no port; expected host:port"
        );
        assert_eq!((err.line, err.column), (0, 0), "not a place in the file");
        assert_eq!(err.field, "kafka.bootstrap[0]");
    }
}
