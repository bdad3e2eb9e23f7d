//! Bounds on the config input itself, checked before the YAML parser sees
//! it: the file's size (a config is a few KB; `--config /dev/zero` must not
//! grow memory for ever) and its nesting depth (the parser takes quadratic
//! time on deep nesting: 200,000 levels in 400 KB took 103 s). Both errors
//! name the file and line, as every config error does.

use std::io::Read;
use std::path::Path;

use super::error::ConfigError;

/// The largest config file read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The deepest nesting of mappings and sequences accepted (a real config
/// nests five or six levels).
pub const MAX_NESTING: usize = 64;

/// The file's text, refused past [`MAX_CONFIG_BYTES`] without reading more.
pub(super) fn read(path: &Path, file: &str) -> Result<String, ConfigError> {
    let bytes = read_at_most(path, MAX_CONFIG_BYTES).map_err(|e| {
        let message = match e {
            ReadError::Io(e) => format!("cannot read the file: {e}"),
            ReadError::TooLarge => {
                format!("the file is larger than {MAX_CONFIG_BYTES} bytes; a config is a few KB")
            }
        };
        ConfigError::new(file, (0, 0), "-", message)
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        ConfigError::new(file, (line, 0), "-", "the file is not UTF-8".to_owned())
    })
}

/// Why a bounded read gave no bytes.
pub(super) enum ReadError {
    /// The file could not be read.
    Io(std::io::Error),
    /// It holds more than the limit.
    TooLarge,
}

/// A file's bytes, at most `limit` of them: a larger file is refused
/// without reading more (`/dev/zero` must not grow memory for ever).
pub(super) fn read_at_most(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge);
    }
    Ok(bytes)
}

/// Refuses the line breaks YAML counts and `file:line` does not: a
/// carriage return that no line feed follows, NEL (U+0085), and the line
/// and paragraph separators (U+2028, U+2029). With one of them an error
/// would name a line the file does not seem to have; in a config they are
/// corruption anyway (the fuzz target found both mismatches).
pub(super) fn check_line_breaks(text: &str, file: &str) -> Result<(), ConfigError> {
    let bytes = text.as_bytes();
    let Some((at, what)) = text.char_indices().find_map(|(i, c)| match c {
        '\r' if bytes.get(i + 1) != Some(&b'\n') => {
            Some((i, "a carriage return without a line feed after it"))
        }
        '\u{85}' => Some((i, "a NEL (U+0085)")),
        '\u{2028}' | '\u{2029}' => Some((i, "a line or paragraph separator (U+2028, U+2029)")),
        _ => None,
    }) else {
        return Ok(());
    };
    let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
    let line_start = bytes[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = 1 + text[line_start..at].chars().count();
    Err(ConfigError::new(
        file,
        (line, column),
        "-",
        format!("{what}: line breaks are LF or CRLF"),
    ))
}

/// Refuses text nested deeper than [`MAX_NESTING`]: block indentation
/// levels, sequence dashes and flow brackets together, outside quotes,
/// comments and block scalars. Errs on the side of counting: it is a guard
/// against hostile input, and real configs are far below the bound.
pub(super) fn check_nesting(text: &str, file: &str) -> Result<(), ConfigError> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    // A block scalar (`|`, `>`) holds text, not structure, down to the
    // first line indented no deeper than its key.
    let mut scalar_at: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        if body.is_empty() || (flow == 0 && body.starts_with('#')) {
            continue;
        }
        if let Some(at) = scalar_at {
            if indent > at {
                continue;
            }
            scalar_at = None;
        }
        let mut rest = body;
        let mut dashes = 0;
        if flow == 0 {
            while indents.last().is_some_and(|&last| last >= indent) {
                indents.pop();
            }
            indents.push(indent);
            while let Some(after) = rest.strip_prefix("- ").or((rest == "-").then_some("")) {
                dashes += 1;
                rest = after.trim_start_matches(' ');
            }
        }
        let too_deep = |depth: usize| {
            (depth > MAX_NESTING).then(|| {
                ConfigError::new(
                    file,
                    (i + 1, 0),
                    "-",
                    format!("nested deeper than {MAX_NESTING} levels"),
                )
            })
        };
        if let Some(e) = too_deep(indents.len() + dashes + flow) {
            return Err(e);
        }
        let mut quote: Option<char> = None;
        let mut previous = ' ';
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            match (quote, c) {
                (Some('"'), '\\') => {
                    chars.next();
                }
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '#') if previous == ' ' => break,
                (None, '[' | '{') => {
                    flow += 1;
                    if let Some(e) = too_deep(indents.len() + dashes + flow) {
                        return Err(e);
                    }
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            previous = c;
        }
        if flow == 0 {
            let value = rest.split(" #").next().unwrap_or("").trim_end();
            let last = value.rsplit([' ', ':']).next().unwrap_or("");
            if !last.is_empty() && (last.starts_with('|') || last.starts_with('>')) {
                scalar_at = Some(indent);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_error(text: &str) -> Option<(usize, String)> {
        check_nesting(text, "f.yaml")
            .err()
            .map(|e| (e.line, e.message))
    }

    #[test]
    fn real_configs_pass() {
        let text = "kafka:\n  bootstrap: [\"a:1\", \"b:2\"]\nroutes:\n  - path: /x\n    topic: t\n    filters:\n      - { key: \"[{\" }\n      - value: { \"/a\": 1 }  # a [ comment\ndescription: |\n  [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\nlast: 1\n";
        assert_eq!(depth_error(text), None);
    }

    #[test]
    fn deep_flow_block_and_dash_nesting_are_refused_with_a_line() {
        let flow = format!("a: 1\nb: {}{}\n", "[".repeat(200_000), "]".repeat(200_000));
        let start = std::time::Instant::now();
        let (line, message) = depth_error(&flow).unwrap();
        assert_eq!(line, 2);
        assert!(message.contains("deeper than 64"), "{message}");
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        let dashes = format!("x:\n{}1\n", "- ".repeat(100));
        assert_eq!(depth_error(&dashes).unwrap().0, 2);
        let block: String = (0..100)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert_eq!(depth_error(&block).unwrap().0, 65);
    }

    #[test]
    fn line_breaks_yaml_counts_and_file_lines_do_not_are_refused_at_their_place() {
        assert!(check_line_breaks("a: 1\r\nb: 2\r\n", "f.yaml").is_ok());
        let err = check_line_breaks("a: 1\r\nb: 2\rc: 3\n", "f.yaml").unwrap_err();
        assert_eq!((err.line, err.column), (2, 5));
        assert!(err.message.contains("carriage return"), "{err}");
        assert_eq!(check_line_breaks("a: 1\r", "f.yaml").unwrap_err().line, 1);
        let err = check_line_breaks("a: 1\nb: \"é\u{85}\"\n", "f.yaml").unwrap_err();
        assert_eq!((err.line, err.column), (2, 6));
        assert!(err.message.contains("NEL"), "{err}");
        assert_eq!(
            check_line_breaks("a: \u{2028}", "f.yaml")
                .unwrap_err()
                .column,
            4
        );
    }

    #[test]
    fn a_file_past_the_size_bound_is_refused_without_reading_it_all() {
        let err = read(Path::new("/dev/zero"), "/dev/zero").unwrap_err();
        assert_eq!(err.file, "/dev/zero");
        assert!(err.message.contains("larger than 1048576 bytes"), "{err}");
    }
}
