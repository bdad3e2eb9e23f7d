//! The shape of `src/`, checked: each folder is a layer, imports run only
//! downward between layers, no two files import each other in a circle,
//! and no file is over 1,000 lines (tests included).
//!
//! An import is a `crate::…`, `super::…` or child-module path outside a
//! comment and outside a file's `#[cfg(test)]` module; it is an arrow from
//! the file that writes it to the file that defines the module it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A file may import files of its own folder and
/// of lower layers only. `lib.rs` and `main.rs` stand above them all.
const LAYERS: &[&[&str]] = &[
    &["model", "sys"],
    &["codec"],
    &["config"],
    &["ops"],
    &["guard"],
    &["kafka"],
    &["shard"],
    &["stream"],
    &["server"],
];

/// The longest a file in `src/` may be.
const MAX_LINES: usize = 1000;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/shard/hub.rs` → `["shard", "hub"]`,
/// `src/shard/mod.rs` → `["shard"]`, `src/lib.rs` → `[]`.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    match last.as_str() {
        "mod.rs" | "lib.rs" | "main.rs" => {}
        name => parts.push(name.trim_end_matches(".rs").to_owned()),
    }
    parts
}

/// The text a file contributes to the structure: its lines outside
/// comments and outside `#[cfg(test)]` items (test code may reach anywhere).
fn code_of(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            // Skip the item the attribute is on: one line ending in `;`, or
            // everything up to its braces' balance.
            let mut depth = 0i32;
            for item in lines.by_ref() {
                depth += item.matches('{').count() as i32 - item.matches('}').count() as i32;
                if depth <= 0 && (item.trim_end().ends_with(';') || item.trim_end().ends_with('}'))
                {
                    break;
                }
            }
            continue;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// The module paths a file's code names: after `crate::`, after `super::`
/// (resolved against the file's module), and `use` lines that start with a
/// child module of the file's own.
fn named_paths(module: &[String], is_folder_root: bool, code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        paths.extend(paths_at(&code[i + "crate::".len()..], Vec::new()));
    }
    // `super` of `a::b` (file a/b.rs) is `a`; of a folder root `a` (a/mod.rs)
    // it is the crate root: the module's parent either way.
    let parent: Vec<String> = module[..module.len().saturating_sub(1)].to_vec();
    for (i, _) in code.match_indices("super::") {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        paths.extend(paths_at(&code[i + "super::".len()..], parent.clone()));
    }
    if is_folder_root {
        for line in code.lines() {
            let line = line.trim_start();
            let line = line
                .strip_prefix("pub(crate) ")
                .or_else(|| line.strip_prefix("pub(super) "))
                .or_else(|| line.strip_prefix("pub "))
                .unwrap_or(line);
            let Some(rest) = line.strip_prefix("use ") else {
                continue;
            };
            let rest = rest.trim_start_matches("self::");
            paths.extend(paths_at(rest, module.to_vec()));
        }
    }
    paths
}

/// The paths written at the start of `text`, after `prefix`: `a::b::c`
/// gives one, `a::{b::c, d}` one per item of the group (one level deep).
fn paths_at(text: &str, prefix: Vec<String>) -> Vec<Vec<String>> {
    let ident = |t: &str| -> usize {
        t.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(t.len())
    };
    let mut path = prefix;
    let mut rest = text;
    loop {
        let n = ident(rest);
        if n == 0 {
            break;
        }
        path.push(rest[..n].to_owned());
        rest = &rest[n..];
        match rest.strip_prefix("::") {
            Some(more) => rest = more,
            None => return vec![path],
        }
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            return inner
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty() && *item != "self")
                .flat_map(|item| paths_at(item, path.clone()))
                .collect();
        }
    }
    vec![path]
}

/// The file that defines the longest prefix of `path` (a module path).
fn file_of(path: &[String], modules: &BTreeMap<Vec<String>, PathBuf>) -> Option<PathBuf> {
    (1..=path.len())
        .rev()
        .find_map(|n| modules.get(&path[..n]).cloned())
}

fn layer_of(folder: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&folder))
}

struct Graph {
    arrows: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
}

fn graph() -> Graph {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let mut modules = BTreeMap::new();
    for f in &all {
        if f.file_name().unwrap() != "main.rs" {
            modules.insert(module_of(f), f.clone());
        }
    }
    let mut arrows: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for f in &all {
        let text = std::fs::read_to_string(f).unwrap();
        let module = module_of(f);
        let folder_root = matches!(
            f.file_name().unwrap().to_str().unwrap(),
            "mod.rs" | "lib.rs" | "main.rs"
        );
        let code = code_of(&text);
        let to = arrows.entry(f.clone()).or_default();
        for path in named_paths(&module, folder_root, &code) {
            if let Some(target) = file_of(&path, &modules) {
                if &target != f {
                    to.insert(target);
                }
            }
        }
    }
    Graph { arrows }
}

fn rel(p: &Path) -> String {
    p.strip_prefix(src()).unwrap().display().to_string()
}

#[test]
fn imports_run_only_downward_between_layers() {
    let g = graph();
    let mut wrong = Vec::new();
    for (from, targets) in &g.arrows {
        let from_module = module_of(from);
        let Some(from_layer) = from_module.first().and_then(|f| layer_of(f)) else {
            continue; // lib.rs, main.rs: the top
        };
        for to in targets {
            let to_module = module_of(to);
            let to_folder = to_module.first().map(String::as_str);
            if to_folder == from_module.first().map(String::as_str) {
                continue;
            }
            match to_folder.and_then(layer_of) {
                Some(to_layer) if to_layer < from_layer => {}
                _ => wrong.push(format!("{} -> {}", rel(from), rel(to))),
            }
        }
    }
    assert!(wrong.is_empty(), "imports that do not run down: {wrong:#?}");
}

#[test]
fn no_two_files_import_each_other_in_a_circle() {
    let g = graph();
    // Depth-first search; a file met again on the current path closes a
    // circle.
    fn visit(
        g: &Graph,
        at: &PathBuf,
        path: &mut Vec<PathBuf>,
        done: &mut BTreeSet<PathBuf>,
        circles: &mut Vec<String>,
    ) {
        if done.contains(at) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == at) {
            let names: Vec<String> = path[i..].iter().map(|p| rel(p)).collect();
            circles.push(names.join(" -> "));
            return;
        }
        path.push(at.clone());
        for next in g.arrows.get(at).into_iter().flatten() {
            visit(g, next, path, done, circles);
        }
        path.pop();
        done.insert(at.clone());
    }
    let mut done = BTreeSet::new();
    let mut circles = Vec::new();
    for file in g.arrows.keys() {
        visit(&g, file, &mut Vec::new(), &mut done, &mut circles);
    }
    assert!(circles.is_empty(), "import circles: {circles:#?}");
}

#[test]
fn no_file_is_over_1000_lines() {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let long: Vec<String> = all
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > MAX_LINES).then(|| format!("{}: {n} lines", rel(f)))
        })
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:#?}");
}

/// The checker itself: a circle and an upward import it must see.
#[test]
fn the_checker_sees_paths_of_each_kind() {
    let module = vec!["shard".to_owned(), "hub".to_owned()];
    let code = code_of(
        "use crate::stream::life;\n#[cfg(test)]\nuse crate::ops;\nuse super::feed::Feed;\n// use crate::server;\nfn f() { crate::model::Offset(1); }\n#[cfg(test)]\nmod tests {\n use crate::server;\n}\n",
    );
    let paths = named_paths(&module, false, &code);
    let want: Vec<Vec<String>> = [
        &["stream", "life"][..],
        &["model", "Offset"],
        &["shard", "feed", "Feed"],
    ]
    .iter()
    .map(|p| p.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(paths, want);
    let root = named_paths(&["shard".to_owned()], true, "use hub::Hub;\n");
    assert_eq!(
        root,
        [vec!["shard".to_owned(), "hub".to_owned(), "Hub".to_owned()]]
    );
}
