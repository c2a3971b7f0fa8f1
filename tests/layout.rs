//! The shape of the crate, checked: imports only point down, `unsafe` only in `src/sys/`, no file
//! with more than ~800 lines of non-test code.
//!
//! The import graph is read from the sources themselves: every `use crate::…`, `use super::…`
//! tree and every inline `crate::…`/`super::…` path of non-test code, resolved to the module
//! file it names (the longest module prefix that exists). Then, at every level of the tree (the
//! crate's top-level modules, and the children of each folder), the modules must form no cycle
//! when each child stands for everything under it. A parent may always use its own children
//! (it owns them); a child's use of its parent counts at the parent's level. On failure the test
//! prints each cycle with the files and lines that make it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path: `["host", "modules"]` for `src/host/modules/mod.rs`, `[]` for `lib.rs`.
type Module = Vec<String>;

/// Cycles that are known and being removed (none once the layout is done).
const KNOWN_CYCLES: &[&[&str]] = &[];

/// Files allowed past [`MAX_LINES`] lines of non-test code for now, with their reason.
const KNOWN_LARGE: &[&str] = &[];

/// Most lines of non-test code (comments included, blank lines not) a file may have.
const MAX_LINES: usize = 800;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn module_of(file: &Path) -> Module {
    let rel = file.strip_prefix(src()).unwrap().with_extension("");
    let mut m: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if m.last().is_some_and(|l| l == "mod") {
        m.pop();
    }
    if m == ["lib"] || m == ["main"] {
        m.clear();
    }
    m
}

/// The source with comments, string and char literals blanked (line structure kept).
fn code_only(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let blank = |c: u8| if c == b'\n' { '\n' } else { ' ' };
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if b[i] == b'r'
            && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            // Raw string r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                out.push(blank(b[j]));
                j += 1;
            }
            out.push_str("\"\"");
            i = j + close.len();
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                }
                i += 1;
            }
            out.push_str("\"\"");
            i += 1;
        } else if b[i] == b'\''
            && ((b.get(i + 2) == Some(&b'\'') && b.get(i + 1) != Some(&b'\\'))
                || (b.get(i + 1) == Some(&b'\\')
                    && b[i + 2..].iter().take(10).any(|c| *c == b'\'')))
        {
            // A char literal ('x', '\n', '\u{1F600}'); a lifetime is left alone.
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            out.push_str("' '");
            i += 1;
        } else {
            let len = s[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&s[i..i + len]);
            i += len;
        }
    }
    out
}

/// The code with every `#[cfg(test)]` item removed (its lines blanked).
fn without_tests(code: &str) -> String {
    let lines: Vec<&str> = code.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_start().starts_with("#[cfg(test)]") {
            let mut j = i + 1;
            while j < lines.len() && lines[j].trim_start().starts_with("#[") {
                j += 1;
            }
            let (mut depth, mut opened) = (0i32, false);
            while j < lines.len() {
                for c in lines[j].chars() {
                    match c {
                        '{' => {
                            depth += 1;
                            opened = true;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                if (opened && depth <= 0) || (!opened && lines[j].trim_end().ends_with(';')) {
                    break;
                }
                j += 1;
            }
            out.extend(std::iter::repeat_n(String::new(), j + 1 - i));
            i = j + 1;
        } else {
            out.push(lines[i].to_string());
            i += 1;
        }
    }
    out.join("\n")
}

/// Files declared as `#[cfg(test)] mod name;` (whole test-only files).
fn test_only_files(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for f in files {
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        let lines: Vec<&str> = code.lines().map(str::trim).collect();
        for (i, l) in lines.iter().enumerate() {
            let decl = l
                .strip_prefix("pub(crate) mod ")
                .or_else(|| l.strip_prefix("mod "))
                .and_then(|r| r.strip_suffix(';'));
            let Some(name) = decl else { continue };
            if i == 0 || !lines[i - 1].starts_with("#[cfg(test)]") {
                continue;
            }
            let stem = f.file_stem().unwrap().to_string_lossy();
            let dir = f.parent().unwrap();
            let base = if stem == "mod" || stem == "lib" {
                dir.to_path_buf()
            } else {
                dir.join(&*stem)
            };
            out.insert(base.join(format!("{name}.rs")));
            out.insert(base.join(name).join("mod.rs"));
        }
    }
    out
}

/// Every path of a `use` tree (`a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`).
fn expand_use(tree: &str) -> Vec<String> {
    // Drop renames (`x as y`, `Trait as _`) first, then all whitespace.
    let mut plain = String::with_capacity(tree.len());
    let mut rest = tree;
    while let Some(i) = rest.find(" as ") {
        plain.push_str(&rest[..i]);
        let after = rest[i + 4..].trim_start();
        let skip = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        rest = &after[skip..];
    }
    plain.push_str(rest);
    let t: String = plain.chars().filter(|c| !c.is_whitespace()).collect();
    fn rec(prefix: &str, t: &str, out: &mut Vec<String>) {
        let Some(open) = t.find('{') else {
            out.push(format!("{prefix}{t}"));
            return;
        };
        let head = &t[..open];
        let body = &t[open + 1..t.rfind('}').unwrap_or(t.len())];
        let (mut depth, mut start) = (0, 0);
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    rec(&format!("{prefix}{head}"), &body[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        if start < body.len() {
            rec(&format!("{prefix}{head}"), &body[start..], out);
        }
    }
    let mut out = Vec::new();
    rec("", &t, &mut out);
    out
}

/// The module file a path names, seen from `from`; `None` for other crates.
fn resolve(from: &Module, path: &str, modules: &BTreeSet<Module>) -> Option<Module> {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let (mut base, rest): (Module, &[&str]) = match segs.first() {
        Some(&"crate") => (Vec::new(), &segs[1..]),
        Some(&"super") => {
            let mut b = from.clone();
            let mut k = 0;
            while segs.get(k) == Some(&"super") {
                b.pop();
                k += 1;
            }
            (b, &segs[k..])
        }
        Some(&"self") => (from.clone(), &segs[1..]),
        _ => return None,
    };
    for s in rest {
        let mut next = base.clone();
        next.push((*s).to_string());
        if modules.contains(&next) {
            base = next;
        } else {
            break;
        }
    }
    Some(base)
}

/// One import: from `from` to `to`, at `file:line`.
#[derive(Debug, Clone)]
struct Edge {
    to: Module,
    file: PathBuf,
    line: usize,
}

fn import_graph() -> BTreeMap<Module, Vec<Edge>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<Module> = files.iter().map(|f| module_of(f)).collect();
    let tests = test_only_files(&files);
    let mut graph: BTreeMap<Module, Vec<Edge>> = BTreeMap::new();
    for f in &files {
        if tests.contains(f) || f.file_name().is_some_and(|n| n == "main.rs") {
            continue;
        }
        let from = module_of(f);
        let code = without_tests(&code_only(&std::fs::read_to_string(f).unwrap()));
        let mut found: Vec<(String, usize)> = Vec::new();
        // `use` trees (may span lines).
        let mut rest = code.as_str();
        let mut offset = 0;
        while let Some(i) = rest.find("use ") {
            let before = code[..offset + i].chars().last();
            let at = offset + i;
            rest = &rest[i + 4..];
            offset = at + 4;
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let Some(end) = rest.find(';') else { break };
            let line = code[..at].lines().count().max(1);
            for p in expand_use(&rest[..end]) {
                found.push((p, line));
            }
        }
        // Inline paths.
        for (n, l) in code.lines().enumerate() {
            for start in ["crate::", "super::"] {
                let mut from_i = 0;
                while let Some(i) = l[from_i..].find(start) {
                    let i = from_i + i;
                    from_i = i + start.len();
                    if l[..i]
                        .chars()
                        .last()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
                    {
                        continue;
                    }
                    let end = l[i..]
                        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                        .map_or(l.len(), |e| i + e);
                    found.push((l[i..end].to_string(), n + 1));
                }
            }
        }
        for (p, line) in found {
            if let Some(to) = resolve(&from, &p, &modules) {
                if to != from && !to.is_empty() {
                    graph.entry(from.clone()).or_default().push(Edge {
                        to,
                        file: f.clone(),
                        line,
                    });
                }
            }
        }
    }
    graph
}

/// The cycles among the children of `prefix` (each child standing for its whole subtree), with
/// an example import for each edge of a cycle.
fn cycles_at(
    graph: &BTreeMap<Module, Vec<Edge>>,
    prefix: &[String],
) -> Vec<(Vec<String>, Vec<String>)> {
    let mut g: BTreeMap<String, BTreeMap<String, &Edge>> = BTreeMap::new();
    for (from, edges) in graph {
        if from.len() <= prefix.len() || !from.starts_with(prefix) {
            continue;
        }
        for e in edges {
            if e.to.len() <= prefix.len() || !e.to.starts_with(prefix) {
                continue;
            }
            let (a, b) = (&from[prefix.len()], &e.to[prefix.len()]);
            if a != b {
                g.entry(a.clone())
                    .or_default()
                    .entry(b.clone())
                    .or_insert(e);
            }
        }
    }
    // Tarjan's strongly connected components.
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeMap<String, &'a Edge>>,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        on: BTreeSet<String>,
        out: Vec<Vec<String>>,
    }
    fn visit(t: &mut T<'_>, v: &str) {
        let n = t.index.len();
        t.index.insert(v.to_string(), n);
        t.low.insert(v.to_string(), n);
        t.stack.push(v.to_string());
        t.on.insert(v.to_string());
        let next: Vec<String> =
            t.g.get(v)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
        for w in next {
            if !t.index.contains_key(&w) {
                visit(t, &w);
                let lw = t.low[&w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(&w) {
                let iw = t.index[&w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(&w);
                let done = w == v;
                comp.push(w);
                if done {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g: &g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    let nodes: Vec<String> = g.keys().cloned().collect();
    for v in nodes {
        if !t.index.contains_key(&v) {
            visit(&mut t, &v);
        }
    }
    t.out
        .into_iter()
        .map(|comp| {
            let mut why = Vec::new();
            for a in &comp {
                for (b, e) in g.get(a).into_iter().flatten() {
                    if comp.contains(b) {
                        why.push(format!(
                            "{a} -> {b} ({}:{})",
                            e.file.strip_prefix(src()).unwrap().display(),
                            e.line
                        ));
                    }
                }
            }
            (comp, why)
        })
        .collect()
}

#[test]
fn imports_only_point_down() {
    let graph = import_graph();
    assert!(
        graph.len() > 50,
        "the graph reader found too few modules: {}",
        graph.len()
    );
    let mut prefixes: BTreeSet<Vec<String>> = BTreeSet::new();
    for m in graph.keys() {
        for i in 0..m.len() {
            prefixes.insert(m[..i].to_vec());
        }
    }
    let mut unexpected = Vec::new();
    let mut seen_known = BTreeSet::new();
    for p in &prefixes {
        for (comp, why) in cycles_at(&graph, p) {
            let known = KNOWN_CYCLES
                .iter()
                .any(|k| p.is_empty() && k.iter().map(|s| s.to_string()).eq(comp.iter().cloned()));
            if known {
                seen_known.insert(comp.join(","));
                continue;
            }
            unexpected.push(format!(
                "in {}: {}\n    {}",
                if p.is_empty() {
                    "src/".to_string()
                } else {
                    format!("src/{}/", p.join("/"))
                },
                comp.join(" <-> "),
                why.join("\n    ")
            ));
        }
    }
    assert!(
        unexpected.is_empty(),
        "import cycles (imports must only point down):\n{}",
        unexpected.join("\n")
    );
    for k in KNOWN_CYCLES {
        assert!(
            seen_known.contains(&k.join(",")),
            "the known cycle {k:?} is gone: remove it from KNOWN_CYCLES"
        );
    }
}

#[test]
fn the_graph_reader_sees_uses_and_inline_paths() {
    assert_eq!(
        expand_use("crate::a::{b, c::{d, e as f}, self}"),
        [
            "crate::a::b",
            "crate::a::c::d",
            "crate::a::c::e",
            "crate::a::self"
        ]
        .map(String::from)
    );
    let modules: BTreeSet<Module> = [vec![], vec!["a".into()], vec!["a".into(), "b".into()]]
        .into_iter()
        .collect();
    let ab: Module = vec!["a".into(), "b".into()];
    assert_eq!(resolve(&ab, "super::X", &modules), Some(vec!["a".into()]));
    assert_eq!(
        resolve(&vec![], "crate::a::b::Y", &modules),
        Some(ab.clone())
    );
    assert_eq!(resolve(&vec![], "std::fs", &modules), None);
    let code = code_only("let s = \"crate::x\"; // crate::y\nuse crate::a;");
    assert!(!code.contains("crate::x") && !code.contains("crate::y") && code.contains("crate::a"));
    let t = without_tests("fn a() {}\n#[cfg(test)]\nmod tests {\n    use crate::z;\n}\nfn b() {}");
    assert!(!t.contains("crate::z") && t.contains("fn b()"));
}

/// Lines of non-test code (comments included, blank lines not).
fn non_test_lines(file: &Path) -> usize {
    let text = std::fs::read_to_string(file).unwrap();
    without_tests(&text)
        .lines()
        .filter(|l| !l.is_empty())
        .count()
}

#[test]
fn no_file_is_past_the_line_budget() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let tests = test_only_files(&files);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut over = Vec::new();
    for f in &files {
        if tests.contains(f) {
            continue;
        }
        let rel = f.strip_prefix(root).unwrap().display().to_string();
        let n = non_test_lines(f);
        let known = KNOWN_LARGE.contains(&rel.as_str());
        if n > MAX_LINES && !known {
            over.push(format!("{rel}: {n} lines of non-test code"));
        }
        if known && n <= MAX_LINES {
            over.push(format!(
                "{rel} is within the budget now ({n}): remove it from KNOWN_LARGE"
            ));
        }
    }
    assert!(over.is_empty(), "{}", over.join("\n"));
}

/// `app.rs` dispatches commands only: the join's phases (discovery, bootstrap, install, handoff,
/// host preparation) are run by `join/`, for `kubejoin join` and PID 1 alike.
#[test]
fn app_dispatches_and_join_owns_the_phases() {
    let app = code_only(&without_tests(
        &std::fs::read_to_string(src().join("app.rs")).unwrap(),
    ));
    for stage in ["bootstrap", "discovery", "install", "handoff", "host"] {
        for path in [format!("crate::{stage}::"), format!("crate::{stage};")] {
            assert!(
                !app.contains(&path),
                "app.rs uses {path}: a join phase belongs in src/join/"
            );
        }
    }
    // PID 1 hands the phases it does not run itself to the orchestrator.
    let stages = code_only(&without_tests(
        &std::fs::read_to_string(src().join("init/stages.rs")).unwrap(),
    ));
    for call in ["bootstrap_and_install", "discovery::discover("] {
        assert!(!stages.contains(call), "init/stages.rs calls {call}");
    }
    assert!(stages.contains("Phase::from_name"));
}

#[test]
fn unsafe_code_only_in_sys() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut found = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(src()).unwrap();
        if rel.starts_with("sys") {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        for (n, l) in code.lines().enumerate() {
            let t = l.trim();
            if t.contains("unsafe {")
                || t.starts_with("unsafe fn")
                || t.contains("unsafe impl")
                || t.contains("allow(unsafe_code)")
            {
                found.push(format!("src/{}:{}: {t}", rel.display(), n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "unsafe outside src/sys/:\n{}",
        found.join("\n")
    );
}
