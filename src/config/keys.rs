//! The YAML key scanner: where each key and list item of the config text sits
//! (`routes[1].topic` → line 8, column 5). serde_yaml_ng gives a position only
//! to errors raised while a value is read; the checks that span several fields
//! run afterwards and find their field's position again here, so that every
//! error still names file, line and column. A leaf: it knows text, not config.

/// Where each key and list item of a block-style YAML text sits, by dotted path
/// (`routes[1].topic`), 1-based line and column.
///
/// It follows indentation only, which is all our config files use: keys
/// (`key:` plain or quoted), list items (`- `, also `- key:` on one line) and
/// comments. It does not look inside flow collections (`{ a: 1 }`, `[x, y]`):
/// their key is indexed, their contents are not, and lookups of paths inside
/// fall back to the nearest indexed parent. Block scalars (`|`, `>`) are
/// skipped. It never fails; at worst an error points at a parent's line.
pub(super) struct KeyIndex {
    entries: Vec<KeyEntry>,
}

#[derive(Debug, PartialEq)]
struct KeyEntry {
    path: String,
    line: usize,
    column: usize,
}

/// One level of the path being built while scanning.
enum Segment {
    Key(String),
    Item(usize),
}

impl KeyIndex {
    pub(super) fn new(text: &str) -> Self {
        let mut entries = Vec::new();
        // (indent column, segment); the path is the segments joined.
        let mut stack: Vec<(usize, Segment)> = Vec::new();
        // Lines more indented than this belong to a block scalar.
        let mut block_scalar_indent: Option<usize> = None;

        for (line_no, raw_line) in text.lines().enumerate() {
            let line = strip_comment(raw_line);
            let indent = line.len() - line.trim_start_matches(' ').len();
            let mut rest = line[indent..].trim_end();
            // Blank lines say nothing; tab-indented ones are not valid YAML and
            // their depth cannot be known, so they are left out.
            if rest.is_empty() || rest.starts_with('\t') {
                continue;
            }
            if let Some(floor) = block_scalar_indent {
                if indent > floor {
                    continue;
                }
                block_scalar_indent = None;
            }
            if indent == 0 && (rest.starts_with("---") || rest.starts_with("...")) {
                stack.clear();
                continue;
            }
            if rest.starts_with('%') {
                continue; // a directive
            }

            let mut col = indent; // 0-based, in bytes (== chars for the ASCII indentation)
            loop {
                if rest == "-" || rest.starts_with("- ") {
                    // A list item at `col`: the next item of an open list at the
                    // same column, or the first item of a new one.
                    while stack.last().is_some_and(|(c, _)| *c > col) {
                        stack.pop();
                    }
                    match stack.last_mut() {
                        Some((c, Segment::Item(i))) if *c == col => *i += 1,
                        _ => stack.push((col, Segment::Item(0))),
                    }
                    entries.push(KeyEntry {
                        path: render_path(&stack),
                        line: line_no + 1,
                        column: raw_line[..col].chars().count() + 1,
                    });
                    let after = &rest[1..];
                    let trimmed = after.trim_start();
                    col += 1 + after.len() - trimmed.len();
                    rest = trimmed;
                    if rest.is_empty() {
                        break;
                    }
                    continue;
                }
                if let Some((key, value)) = split_key(rest) {
                    // A key closes every deeper or sibling level.
                    while stack.last().is_some_and(|(c, _)| *c >= col) {
                        stack.pop();
                    }
                    stack.push((col, Segment::Key(key)));
                    entries.push(KeyEntry {
                        path: render_path(&stack),
                        line: line_no + 1,
                        column: raw_line[..col].chars().count() + 1,
                    });
                    if value.starts_with('|') || value.starts_with('>') {
                        block_scalar_indent = Some(col);
                    }
                }
                break;
            }
        }
        KeyIndex { entries }
    }

    /// Line and column of `path`, or of its nearest indexed parent; (0, 0) when
    /// not even the top-level key is there.
    pub(super) fn locate(&self, path: &str) -> (usize, usize) {
        let mut path = path;
        loop {
            if let Some(e) = self.entries.iter().find(|e| e.path == path) {
                return (e.line, e.column);
            }
            // Drop the last segment: `.key` or `[i]`.
            match path.rfind(['.', '[']) {
                Some(cut) if cut > 0 => path = &path[..cut],
                _ => return (0, 0),
            }
        }
    }

    /// The path of the last key or item that starts on or before `line`.
    pub(super) fn path_at_line(&self, line: usize) -> Option<String> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.line <= line)
            .map(|e| e.path.clone())
    }
}

fn render_path(stack: &[(usize, Segment)]) -> String {
    let mut path = String::new();
    for (_, segment) in stack {
        match segment {
            Segment::Key(k) => path = join_key(&path, k),
            Segment::Item(i) => path.push_str(&format!("[{i}]")),
        }
    }
    path
}

/// The line without its comment. A `#` starts a comment only at the start or
/// after whitespace, and not inside quotes (`path: "/a#b"`).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && prev_space => return &line[..i],
            None => {}
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// Splits `key: value` (or `key:` at the end of the line) into the key, without
/// quotes, and the value. `host:9092` or `http://x` are scalars, not keys: a
/// key's colon is followed by whitespace or the end of the line.
fn split_key(s: &str) -> Option<(String, &str)> {
    if let Some(q) = s.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let close = s[1..].find(q)? + 1;
        let after = s[close + 1..].trim_start();
        let value = after.strip_prefix(':')?;
        if !(value.is_empty() || value.starts_with([' ', '\t'])) {
            return None;
        }
        return Some((s[1..close].to_string(), value.trim_start()));
    }
    if s.starts_with(['{', '[', '&', '*', '!', '|', '>']) {
        return None;
    }
    let bytes = s.as_bytes();
    (0..bytes.len()).find_map(|i| {
        let ends_key = bytes[i] == b':'
            && (i + 1 == bytes.len() || bytes[i + 1] == b' ' || bytes[i + 1] == b'\t');
        ends_key.then(|| (s[..i].trim_end().to_string(), s[i + 1..].trim_start()))
    })
}

/// `parent.key`, or `key` at the top: how a dotted field path grows.
pub(super) fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_index_records_paths_and_positions() {
        let text = "\
# comment: not a key
listen: 0.0.0.0:8080   # trailing: comment
kafka:
  bootstrap:
  - a:9092
  - 'b:9092'
routes:
  - path: \"/a#b\"
    topic: a
    filters:
      - key: x
        nested:
          deep: 1
  -   path: /b
    note: |
      looks: like a key
      - and an item
    'quoted key': 1
  - {path: /c, topic: c}
  -
    path: /d
connections: {max: 1}
";
        let got: Vec<(String, usize, usize)> = KeyIndex::new(text)
            .entries
            .into_iter()
            .map(|e| (e.path, e.line, e.column))
            .collect();
        let want = [
            ("listen", 2, 1),
            ("kafka", 3, 1),
            ("kafka.bootstrap", 4, 3),
            ("kafka.bootstrap[0]", 5, 3),
            ("kafka.bootstrap[1]", 6, 3),
            ("routes", 7, 1),
            ("routes[0]", 8, 3),
            ("routes[0].path", 8, 5),
            ("routes[0].topic", 9, 5),
            ("routes[0].filters", 10, 5),
            ("routes[0].filters[0]", 11, 7),
            ("routes[0].filters[0].key", 11, 9),
            ("routes[0].filters[0].nested", 12, 9),
            ("routes[0].filters[0].nested.deep", 13, 11),
            ("routes[1]", 14, 3),
            ("routes[1].path", 14, 7),
            ("routes[1].note", 15, 5),
            ("routes[1].quoted key", 18, 5),
            ("routes[2]", 19, 3),
            ("routes[3]", 20, 3),
            ("routes[3].path", 21, 5),
            ("connections", 22, 1),
        ];
        let want: Vec<(String, usize, usize)> = want
            .iter()
            .map(|(p, l, c)| (p.to_string(), *l, *c))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn key_index_lookups() {
        let text = "kafka:\n  bootstrap: [a]\nroutes:\n- path: /a\n  topic: a\n- path: /b\n  topic: b\nlisten: x\n";
        let index = KeyIndex::new(text);
        let cases = [
            ("routes[1].topic", (7, 3)),
            ("routes[1].path", (6, 3)),
            ("routes[0].filters", (4, 1)),  // absent key: its route
            ("routes[9].path", (3, 1)),     // absent route: the list
            ("kafka.bootstrap[0]", (2, 3)), // inside a flow list: the list
            ("listen", (8, 1)),
            ("guards", (0, 0)),
        ];
        for (path, want) in cases {
            assert_eq!(index.locate(path), want, "{path}");
        }
        assert_eq!(index.path_at_line(0), None);
        assert_eq!(index.path_at_line(5).as_deref(), Some("routes[0].topic"));
        assert_eq!(index.path_at_line(100).as_deref(), Some("listen"));
    }

    /// JSON pointers are keys with '/', '~' and sometimes '.' or '[' in them;
    /// header names may hold spaces. Block-style keys are found exactly;
    /// keys inside a flow mapping fall back to the mapping's key.
    #[test]
    fn key_index_finds_pointer_and_header_keys() {
        let text = "\
routes:
  - path: /a
    filters:
      - value:
          /status: open
          \"/a.b\": 1
          '/x[0]/y': 2
          \"\": 3
          /deep/a~1b: 4
        headers:
          \"x tag\": a
          ce.type: b
      - value: {\"/f.g\": 1, /h: 2}
";
        let index = KeyIndex::new(text);
        let cases = [
            ("routes[0].filters[0].value./status", (5, 11)),
            ("routes[0].filters[0].value./a.b", (6, 11)),
            ("routes[0].filters[0].value./x[0]/y", (7, 11)),
            ("routes[0].filters[0].value.", (8, 11)),
            ("routes[0].filters[0].value./deep/a~1b", (9, 11)),
            ("routes[0].filters[0].headers.x tag", (11, 11)),
            ("routes[0].filters[0].headers.ce.type", (12, 11)),
            ("routes[0].filters[0].value./absent", (4, 9)),
            ("routes[0].filters[1].value./f.g", (13, 9)),
            ("routes[0].filters[1].value./h", (13, 9)),
        ];
        for (path, want) in cases {
            assert_eq!(index.locate(path), want, "{path}");
        }
    }

    #[test]
    fn split_key_cases() {
        let cases = [
            ("key: v", Some(("key", "v"))),
            ("key:", Some(("key", ""))),
            ("key :  v", Some(("key", "v"))),
            ("\"a b\": v", Some(("a b", "v"))),
            ("'k':", Some(("k", ""))),
            ("host:9092", None),
            ("http://x", None),
            ("{a: 1}", None),
            ("[a, b]", None),
            ("plain", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                split_key(text).as_ref().map(|(k, v)| (k.as_str(), *v)),
                want,
                "{text}"
            );
        }
    }
}
