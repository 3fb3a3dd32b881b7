//! The layout's one hard rule, checked from the code: no import cycle between the files of
//! `src/` (docs/architecture.md draws the layers; a cycle means two files belong together, or a
//! type lives in the wrong one).
//!
//! Imports are read from the text: `use` trees (nested braces expanded) and inline paths that
//! start with `crate::`, `super::` or `self::`, or with a child module's name in a `use`. A
//! path resolves to the deepest file it names (`crate::kafka::producer::KafkaSink` →
//! `src/kafka/producer.rs`); a path that names only the crate root adds no edge. A file's
//! `#[cfg(test)]` tail (its unit tests, by convention at the end) is left out: tests may reach
//! anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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

/// The module path of a file (`src/a/b.rs`, `src/a/b/mod.rs` → [a, b]; `src/lib.rs` → []).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut segs: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let last = segs.pop().unwrap();
    match last.as_str() {
        "mod.rs" | "lib.rs" | "main.rs" => {}
        other => segs.push(other.trim_end_matches(".rs").to_string()),
    }
    segs
}

/// The deepest file a module path names, and how many segments it used.
fn resolve(src: &Path, segs: &[String]) -> Option<PathBuf> {
    let mut dir = src.to_path_buf();
    let mut found = None;
    for s in segs {
        let file = dir.join(format!("{s}.rs"));
        let modrs = dir.join(s).join("mod.rs");
        if file.is_file() {
            found = Some(file);
        } else if modrs.is_file() {
            found = Some(modrs);
        } else {
            break;
        }
        dir = dir.join(s);
    }
    found
}

/// The code of a file without comments and without its `#[cfg(test)]` tail.
fn code(text: &str) -> String {
    // the first `#[cfg(test)]` on an inline module (`mod tests {`), not on `mod fixtures;`
    let tail = text.match_indices("#[cfg(test)]").find(|(i, m)| {
        let next = text[i + m.len()..].trim_start();
        let next = next.strip_prefix("pub(crate) ").unwrap_or(next);
        next.starts_with("mod ") && next.lines().next().is_some_and(|l| l.contains('{'))
    });
    let body = match tail {
        Some((i, _)) => &text[..i],
        None => text,
    };
    body.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path of a `use` tree: `a::{b::C, d::{e, f}}` → a::b::C, a::d::e, a::d::f.
fn expand(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    let close = tree.rfind('}');
    if let (Some(open), Some(close)) = (tree.find('{'), close) {
        if close < open {
            return;
        }
        let head = tree[..open].trim().trim_end_matches("::");
        let inner = &tree[open + 1..close];
        let base = join(prefix, head);
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..i], &base, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], &base, out);
    } else if !tree.is_empty() {
        let path = tree.split(" as ").next().unwrap().trim();
        out.push(join(prefix, path));
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}::{b}"),
    }
}

/// The files `file` imports.
fn imports(src: &Path, file: &Path) -> BTreeSet<PathBuf> {
    let text = code(&std::fs::read_to_string(file).unwrap());
    let here = module_of(src, file);
    // the module a `self::`/child path starts from: a non-mod file's children live below it
    let mut paths = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        let t = ["pub(crate) ", "pub(super) ", "pub "]
            .iter()
            .find_map(|p| t.strip_prefix(p))
            .unwrap_or(t);
        if let Some(tree) = t.strip_prefix("use ") {
            // a `use` item runs to its `;`, over several lines when its braces are long
            let mut item = tree.to_string();
            while !item.contains(';') && i + 1 < lines.len() {
                i += 1;
                item.push_str(lines[i]);
            }
            let end = item.find(';').unwrap_or(item.len());
            expand(&item[..end], "", &mut paths);
        }
        i += 1;
    }
    let inline = regex_paths(&text);
    let mut out = BTreeSet::new();
    for p in paths.iter().chain(inline.iter()) {
        let segs: Vec<String> = p
            .split("::")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let Some(first) = segs.first() else { continue };
        let absolute: Vec<String> = match first.as_str() {
            "crate" => segs[1..].to_vec(),
            "super" => {
                let mut m = here.clone();
                let mut k = 0;
                while segs.get(k).map(String::as_str) == Some("super") {
                    m.pop();
                    k += 1;
                }
                m.extend(segs[k..].iter().cloned());
                m
            }
            "self" => {
                let mut m = here.clone();
                m.extend(segs[1..].iter().cloned());
                m
            }
            // a child module of this one (`use cursor::Cursor` in mod.rs)
            _ => {
                let mut m = here.clone();
                m.extend(segs.iter().cloned());
                m
            }
        };
        if let Some(target) = resolve(src, &absolute) {
            if target != file {
                out.insert(target);
            }
        }
    }
    out
}

/// Inline paths starting with `crate::`, `super::` or `self::`.
fn regex_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(start) {
            let i = from + i;
            from = i + start.len();
            if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
                continue;
            }
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b':') {
                j += 1;
            }
            out.push(text[i..j].trim_end_matches(':').to_string());
        }
    }
    out
}

/// Strongly connected components of more than one file (Tarjan).
fn cycles(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct T<'a> {
        g: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on: BTreeSet<&'a PathBuf>,
        n: usize,
        out: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a PathBuf) {
        t.index.insert(v, t.n);
        t.low.insert(v, t.n);
        t.n += 1;
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let Some((w, _)) = t.g.get_key_value(w) else {
                continue;
            };
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                comp.push(w.clone());
                if w == v {
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
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        n: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn graph() -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .iter()
        .map(|f| (f.clone(), imports(&src, f)))
        .collect()
}

#[test]
fn no_import_cycle_between_files() {
    let g = graph();
    assert!(g.len() > 80, "read {} files", g.len());
    let found = cycles(&g);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let show = |p: &PathBuf| p.strip_prefix(&src).unwrap().display().to_string();
    let text: Vec<String> = found
        .iter()
        .map(|c| {
            let set: BTreeSet<&PathBuf> = c.iter().collect();
            let edges: Vec<String> = c
                .iter()
                .flat_map(|a| {
                    g[a].iter()
                        .filter(|b| set.contains(b))
                        .map(move |b| format!("{} -> {}", show(a), show(b)))
                })
                .collect();
            edges.join(", ")
        })
        .collect();
    assert!(
        found.is_empty(),
        "import cycles (move the shared type below both, or merge the files):\n{}",
        text.join("\n")
    );
}

/// The check sees a cycle when there is one, and the edges it reads are real.
#[test]
fn the_cycle_check_sees_cycles() {
    let a = PathBuf::from("a.rs");
    let b = PathBuf::from("b.rs");
    let c = PathBuf::from("c.rs");
    let mut g = BTreeMap::new();
    g.insert(a.clone(), BTreeSet::from([b.clone()]));
    g.insert(b.clone(), BTreeSet::from([c.clone()]));
    g.insert(c.clone(), BTreeSet::from([a.clone()]));
    assert_eq!(cycles(&g), vec![vec![a.clone(), b.clone(), c.clone()]]);
    g.insert(c.clone(), BTreeSet::new());
    assert!(cycles(&g).is_empty());
    // edges read from the real code
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph();
    let run = &g[&src.join("connect/run.rs")];
    for dep in ["connect/control.rs", "kafka/mod.rs", "checkpoint/store.rs"] {
        assert!(
            run.contains(&src.join(dep)),
            "run.rs imports {dep}: {run:?}"
        );
    }
    let stream = &g[&src.join("source/mysql/stream.rs")];
    for dep in [
        "source/mysql/cursor.rs",
        "source/mysql/mod.rs",
        "model/position.rs",
    ] {
        assert!(
            stream.contains(&src.join(dep)),
            "stream.rs imports {dep}: {stream:?}"
        );
    }
    let mut paths = Vec::new();
    expand("crate::a::{b::C, d::{e, f as g}}", "", &mut paths);
    assert_eq!(
        paths,
        ["crate::a::b::C", "crate::a::d::e", "crate::a::d::f"]
    );
}
