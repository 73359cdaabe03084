//! The module graph of the workspace's library crates has no cycles: for each crate (agent,
//! cni, ebpf) every file's `crate::`/`super::` paths are resolved to the module file they
//! name, and the graph of those edges between modules that are not ancestor and descendant
//! of each other (a parent declares its children; children use their parent's items) must be
//! acyclic. A cycle such as `pod/running.rs` ↔ `pod/worker.rs` means a shared item belongs in
//! a module both depend on. Reads source files only.
//!
//! What it does not see: paths through a parent's re-export (`use super::Item` where the
//! parent has `pub use child::Item`) and inline modules' own `super::` (each file is cut at
//! its first inline `mod name {`, which by convention is the test module at the bottom).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type ModPath = Vec<String>;

/// Every `.rs` file under `src` (except `bin/`) by its module path (`a/mod.rs` and `a.rs` →
/// `[a]`; `lib.rs`/`main.rs` → `[]`).
fn module_files(src: &Path) -> BTreeMap<ModPath, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read src dir").flatten() {
            let path = e.path();
            if path.is_dir() {
                if path != src.join("bin") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let mut segs: ModPath = rel
                .iter()
                .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if matches!(
                segs.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                segs.pop();
            }
            if segs.is_empty() && out.contains_key(&segs) {
                continue; // lib.rs and main.rs: one root is enough for resolution
            }
            out.insert(segs, path);
        }
    }
    out
}

#[derive(Debug, PartialEq)]
enum Tok {
    Ident(String),
    Path, // ::
    Open,
    Close,
    Comma,
    Semi,
    Other,
}

/// Tokens of `text` without comments, string and char literals.
fn tokens(text: &str) -> Vec<Tok> {
    let b: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        match c {
            '/' if next == Some('/') => {
                while i < b.len() && b[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            'r' if next == Some('#') || (next == Some('"')) => {
                // raw string r"…" / r#"…"#
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&'"') {
                    out.push(Tok::Ident("r".into()));
                    i += 1;
                    continue;
                }
                j += 1;
                loop {
                    if j >= b.len() {
                        break;
                    }
                    if b[j] == '"' && (1..=hashes).all(|k| b.get(j + k) == Some(&'#')) {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                i = j;
            }
            '"' => {
                i += 1;
                while i < b.len() && b[i] != '"' {
                    i += if b[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '\'' => {
                if next == Some('\\') {
                    i += 2;
                    while i < b.len() && b[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if b.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    out.push(Tok::Other); // a lifetime
                    i += 1;
                }
            }
            ':' if next == Some(':') => {
                out.push(Tok::Path);
                i += 2;
            }
            '{' => {
                out.push(Tok::Open);
                i += 1;
            }
            '}' => {
                out.push(Tok::Close);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ';' => {
                out.push(Tok::Semi);
                i += 1;
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Ident(b[start..i].iter().collect()));
            }
            _ => {
                if !c.is_whitespace() {
                    out.push(Tok::Other);
                }
                i += 1;
            }
        }
    }
    out
}

/// Expands a use tree starting at `toks[*i]` with `prefix` into full paths.
fn use_tree(toks: &[Tok], i: &mut usize, prefix: ModPath, out: &mut Vec<ModPath>) {
    let mut path = prefix;
    loop {
        match toks.get(*i) {
            Some(Tok::Ident(s)) if s == "as" => {
                *i += 2; // alias
                out.push(path);
                return;
            }
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                *i += 1;
                if toks.get(*i) == Some(&Tok::Path) {
                    *i += 1;
                    continue;
                }
                out.push(path);
                return;
            }
            Some(Tok::Open) => {
                *i += 1;
                loop {
                    match toks.get(*i) {
                        Some(Tok::Close) => {
                            *i += 1;
                            return;
                        }
                        Some(Tok::Comma) => *i += 1,
                        None => return,
                        _ => use_tree(toks, i, path.clone(), out),
                    }
                }
            }
            _ => {
                // `*` or the end
                out.push(path);
                if toks.get(*i).is_some_and(|t| *t == Tok::Other) {
                    *i += 1;
                }
                return;
            }
        }
    }
}

/// Every `crate::…`/`super::…` path in `text` (use declarations expanded).
fn paths(text: &str) -> Vec<ModPath> {
    let toks = tokens(text);
    // Cut at the first inline module (`mod name {`): its `super::` means this file.
    let end = (0..toks.len())
        .find(|&k| {
            toks[k] == Tok::Ident("mod".into())
                && matches!(toks.get(k + 1), Some(Tok::Ident(_)))
                && toks.get(k + 2) == Some(&Tok::Open)
        })
        .unwrap_or(toks.len());
    let toks = &toks[..end];
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Ident(s) if s == "use" => {
                i += 1;
                let mut found = Vec::new();
                use_tree(toks, &mut i, Vec::new(), &mut found);
                out.extend(found);
            }
            Tok::Ident(s) if s == "crate" || s == "super" => {
                let prev_is_path = i > 0 && toks[i - 1] == Tok::Path;
                let mut path = vec![s.clone()];
                i += 1;
                while toks.get(i) == Some(&Tok::Path) {
                    match toks.get(i + 1) {
                        Some(Tok::Ident(n)) => {
                            path.push(n.clone());
                            i += 2;
                        }
                        _ => break,
                    }
                }
                if !prev_is_path {
                    out.push(path);
                }
            }
            _ => i += 1,
        }
    }
    out.retain(|p| matches!(p.first().map(String::as_str), Some("crate" | "super")));
    out
}

/// The module a path used in module `from` names: the longest prefix that is a module file.
fn resolve(
    modules: &BTreeMap<ModPath, PathBuf>,
    from: &ModPath,
    path: &ModPath,
) -> Option<ModPath> {
    let mut base: ModPath;
    let mut rest = path.as_slice();
    if rest.first().map(String::as_str) == Some("crate") {
        base = Vec::new();
        rest = &rest[1..];
    } else {
        base = from.clone();
        while rest.first().map(String::as_str) == Some("super") {
            base.pop()?;
            rest = &rest[1..];
        }
    }
    for seg in rest {
        let mut next = base.clone();
        next.push(seg.clone());
        if !modules.contains_key(&next) {
            break;
        }
        base = next;
    }
    Some(base)
}

fn is_prefix(a: &ModPath, b: &ModPath) -> bool {
    a.len() <= b.len() && a[..] == b[..a.len()]
}

/// The module graph of the crate under `src`, without ancestor/descendant edges.
fn graph(src: &Path) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let modules = module_files(src);
    let mut g: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (m, file) in &modules {
        let text = std::fs::read_to_string(file).expect("read source");
        for p in paths(&text) {
            let Some(target) = resolve(&modules, m, &p) else {
                continue;
            };
            if is_prefix(&target, m) || is_prefix(m, &target) {
                continue;
            }
            g.entry(m.clone()).or_default().insert(target);
        }
    }
    g
}

/// One cycle of `g`, as the list of modules around it.
fn find_cycle(g: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Option<Vec<ModPath>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        n: &ModPath,
        g: &BTreeMap<ModPath, BTreeSet<ModPath>>,
        marks: &mut BTreeMap<ModPath, Mark>,
        stack: &mut Vec<ModPath>,
    ) -> Option<Vec<ModPath>> {
        match marks.get(n) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = stack.iter().position(|s| s == n).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(n.clone());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(n.clone(), Mark::Open);
        stack.push(n.clone());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(n.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in g.keys() {
        let mut stack = Vec::new();
        if let Some(c) = visit(n, g, &mut marks, &mut stack) {
            return Some(c);
        }
    }
    None
}

fn show(cycle: &[ModPath]) -> String {
    cycle
        .iter()
        .map(|m| m.join("::"))
        .collect::<Vec<_>>()
        .join(" -> ")
}

#[test]
fn library_crates_have_no_module_cycles() {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for krate in ["agent", "cni", "ebpf"] {
        let g = graph(&ws.join(krate).join("src"));
        assert!(g.len() > 2, "{krate}: the scan found no edges: {g:?}");
        if let Some(c) = find_cycle(&g) {
            panic!("{krate}/src has an import cycle: {}", show(&c));
        }
    }
}

#[test]
fn a_sibling_cycle_is_found_and_parent_child_edges_are_not_cycles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("pod")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "pub mod pod;\n").expect("write");
    std::fs::write(
        src.join("pod/mod.rs"),
        "mod running;\nmod worker;\npub use worker::Worker;\npub struct Ctx;\n",
    )
    .expect("write");
    std::fs::write(
        src.join("pod/worker.rs"),
        "//! uses super::running in a comment only\nuse super::{Ctx, running::{Running as R}};\nlet s = \"crate::pod::running\";\n",
    )
    .expect("write");
    std::fs::write(
        src.join("pod/running.rs"),
        "fn f() { let _ = crate::pod::worker::unix_ms(0); }\nmod tests { use super::*; }\n",
    )
    .expect("write");
    let g = graph(src);
    let cycle = find_cycle(&g).expect("the worker/running cycle");
    assert_eq!(show(&cycle).matches("pod::").count(), 3, "{}", show(&cycle));
    // Without the back edge there is none (the parent's `pub use` and children's
    // `super::Ctx` are not cycles).
    std::fs::write(src.join("pod/running.rs"), "use super::Ctx;\n").expect("write");
    assert_eq!(find_cycle(&graph(src)), None, "{:?}", graph(src));
}
