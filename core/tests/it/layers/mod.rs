//! The layering of `core/src`, checked: every `crate::` (and top-level-crossing `super::`) path
//! between two top-level modules is an edge; an edge may only point to a module of the same layer
//! or below, and edges within a layer form no cycle. [`LAYERS`] is the one table of layers.
//! [`KNOWN_UPWARD_EDGES`] lists the violations still to be fixed; it may only shrink: the test
//! fails on a violation not in it, and on an entry that is no longer a violation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use lex::{lex, Tok};

mod lex;

/// Every top-level module of `core/src` and its layer, bottom (0) to top.
const LAYERS: &[(&str, u8)] = &[
    // 0 foundation
    ("error", 0),
    ("clock", 0),
    ("page", 0),
    ("document", 0),
    ("text", 0),
    ("testing", 0),
    // 1 storage: environments, tables, format, keys at rest
    ("storage", 1),
    ("store", 1),
    ("datastore", 1),
    ("format", 1),
    ("keyring", 1),
    ("encryption", 1),
    // 2 records: the persisted types and their codecs, and the catalog tables typed by them
    ("records", 2),
    ("catalog", 2),
    ("cursor", 2),
    // 3 engines of the data
    ("embed", 3),
    ("vector", 3),
    ("index", 3),
    ("keyword", 3),
    ("graph", 3),
    ("filter", 3),
    ("rank", 3),
    // 4 control
    ("auth", 4),
    ("keys", 4),
    ("quota", 4),
    ("audit", 4),
    // 5 the handle's operations
    ("memory", 5),
    ("namespace", 5),
    ("tenant", 5),
    ("tenant_keys", 5),
    ("session", 5),
    ("listing", 5),
    ("transfer", 5),
    ("rotation", 5),
    ("state", 5),
    ("handle", 5),
    // 6 engine and its background workers
    ("engine", 6),
    ("upgrade", 6),
    // 7 api
    ("api", 7),
];

/// Edges `(from, to)` that break the layering today. Remove an entry when its edge is gone.
const KNOWN_UPWARD_EDGES: &[(&str, &str)] = &[];

/// The top-level module each `crate::Name` re-exported by `lib.rs` comes from.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let tokens: Vec<Tok> = lex(lib).into_iter().map(|(t, _)| t).collect();
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i + 2 < tokens.len() {
        if tokens[i] == Tok::Ident("pub".into()) && tokens[i + 1] == Tok::Ident("use".into()) {
            let Tok::Ident(module) = &tokens[i + 2] else {
                panic!("lib.rs: pub use of a non-path")
            };
            let mut j = i + 3;
            while tokens[j] != Tok::Punct(';') {
                if let Tok::Ident(name) = &tokens[j] {
                    let next = &tokens[j + 1];
                    if name != "self" && matches!(next, Tok::Punct(',' | '}' | ';')) {
                        out.insert(name.clone(), module.clone());
                    }
                }
                j += 1;
            }
            i = j;
        }
        i += 1;
    }
    out
}

/// One edge and where it was first seen.
type Edges = BTreeMap<(String, String), String>;

/// The module path of a file under `src`: `graph/rows.rs` is `[graph, rows]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> =
        rel.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The top-level modules named by the paths of one file.
fn edges_of(
    rel: &Path,
    src: &str,
    names: &BTreeMap<String, String>,
    modules: &[String],
    edges: &mut Edges,
) {
    let file_path = module_path(rel);
    let from = file_path[0].clone();
    let toks = lex(src);
    let tok = |i: usize| toks.get(i).map(|t| &t.0);
    let ident = |i: usize, s: &str| matches!(tok(i), Some(Tok::Ident(x)) if x == s);
    // Inline `mod name {` blocks open at the current brace depth.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let add = |name: &str, line: usize, edges: &mut Edges| {
        let to = if modules.iter().any(|m| m == name) {
            name.to_string()
        } else if let Some(module) = names.get(name) {
            module.clone()
        } else {
            panic!(
                "{}:{line}: crate::{name} is neither a module nor re-exported by lib.rs",
                rel.display()
            )
        };
        if to != from {
            edges.entry((from.clone(), to)).or_insert_with(|| format!("{}:{line}", rel.display()));
        }
    };
    let mut i = 0;
    while i < toks.len() {
        let line = toks[i].1;
        match &toks[i].0 {
            Tok::Punct('{') => {
                if ident(i.wrapping_sub(2), "mod") {
                    if let Some(Tok::Ident(name)) = tok(i - 1) {
                        inline.push((name.clone(), depth));
                    }
                }
                depth += 1;
            }
            Tok::Punct('}') => {
                depth -= 1;
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            Tok::Ident(word)
                if (word == "crate" || word == "super")
                    && tok(i + 1) == Some(&Tok::Path)
                    && tok(i.wrapping_sub(1)) != Some(&Tok::Path) =>
            {
                // Resolve the path's start to a module path from the crate root.
                let mut j = i;
                let mut here: Vec<String> = file_path
                    .iter()
                    .cloned()
                    .chain(inline.iter().map(|(n, _)| n.clone()))
                    .collect();
                if word == "crate" {
                    here.clear();
                    j += 2;
                } else {
                    while ident(j, "super") && tok(j + 1) == Some(&Tok::Path) {
                        here.pop().unwrap_or_else(|| {
                            panic!("{}:{line}: super above the crate", rel.display())
                        });
                        j += 2;
                    }
                }
                if here.is_empty() {
                    match tok(j) {
                        Some(Tok::Ident(name)) => add(name, line, edges),
                        Some(Tok::Punct('{')) => {
                            let (names, end) = group_heads(&toks, j);
                            for (name, line) in names {
                                add(&name, line, edges);
                            }
                            j = end;
                        }
                        other => {
                            panic!("{}:{line}: unexpected {other:?} after crate::", rel.display())
                        }
                    }
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

/// `{a, b::c, self}` starting at `toks[open]`: the first name of each item but `self`, and
/// the index after the closing brace.
fn group_heads(toks: &[(Tok, usize)], open: usize) -> (Vec<(String, usize)>, usize) {
    let mut out = Vec::new();
    let (mut j, mut depth, mut item_start) = (open, 0, true);
    loop {
        match &toks.get(j).expect("unclosed use group").0 {
            Tok::Punct('{') => {
                depth += 1;
                item_start = depth == 1;
            }
            Tok::Punct('}') => {
                depth -= 1;
                if depth == 0 {
                    return (out, j + 1);
                }
            }
            Tok::Punct(',') => item_start = depth == 1,
            Tok::Ident(name) if item_start => {
                if name != "self" {
                    out.push((name.clone(), toks[j].1));
                }
                item_start = false;
            }
            _ => {}
        }
        j += 1;
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every edge between two top-level modules of `core/src`.
fn crate_edges() -> (Vec<String>, Edges) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let names = reexports(&lib);
    let mut modules: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_name().unwrap().to_string_lossy().trim_end_matches(".rs").to_string())
        .filter(|m| m != "lib")
        .collect();
    modules.sort();
    modules.dedup();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges = Edges::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        if rel == Path::new("lib.rs") {
            continue;
        }
        edges_of(rel, &std::fs::read_to_string(&file).unwrap(), &names, &modules, &mut edges);
    }
    (modules, edges)
}

/// Edges that point upward, or lie on a cycle of edges within a layer.
fn violations(edges: &Edges, layer: &BTreeMap<&str, u8>) -> BTreeSet<(String, String)> {
    let lay = |m: &str| layer[m];
    let level: Vec<(&str, &str)> = edges
        .keys()
        .filter(|(a, b)| lay(b) <= lay(a))
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::from([from]);
        let mut stack = vec![from];
        while let Some(m) = stack.pop() {
            if m == to {
                return true;
            }
            for &(a, b) in &level {
                if a == m && seen.insert(b) {
                    stack.push(b);
                }
            }
        }
        false
    };
    edges.keys().filter(|(a, b)| lay(b) > lay(a) || reaches(b, a)).cloned().collect()
}

#[test]
fn no_module_reaches_up_or_forms_a_cycle() {
    let (modules, edges) = crate_edges();
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let missing: Vec<&String> =
        modules.iter().filter(|m| !layer.contains_key(m.as_str())).collect();
    assert!(missing.is_empty(), "modules without a layer in LAYERS: {missing:?}");
    let gone: Vec<&str> =
        layer.keys().copied().filter(|l| !modules.iter().any(|m| m == l)).collect();
    assert!(gone.is_empty(), "LAYERS names modules that do not exist: {gone:?}");

    let bad = violations(&edges, &layer);
    let known: BTreeSet<(String, String)> =
        KNOWN_UPWARD_EDGES.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    let new: Vec<String> = bad
        .difference(&known)
        .map(|e| {
            format!(
                "(\"{}\", \"{}\"), // {} (layer {} -> {})",
                e.0,
                e.1,
                edges[e],
                layer[e.0.as_str()],
                layer[e.1.as_str()]
            )
        })
        .collect();
    let stale: Vec<&(String, String)> = known.difference(&bad).collect();
    assert!(
        new.is_empty() && stale.is_empty(),
        "edges breaking the layering (upward or on a cycle):\n{}\nKNOWN_UPWARD_EDGES entries that are no longer violations (remove them): {stale:?}",
        new.join("\n")
    );
}

#[test]
fn the_edge_reader_sees_groups_super_and_reexports() {
    let names = reexports("pub use engine::{Engine, Handle as H};\npub use error::Result;");
    let modules: Vec<String> = ["a", "b", "c", "engine", "error", "x"].map(String::from).to_vec();
    let src = r#"
        use crate::{a, b::c, H};
        // use crate::x;
        fn f() -> crate::Result<()> { let s = "crate::x"; let c = 'x'; Ok(()) }
        fn g<'a>(v: &'a str) { super::super::c::go() }
        mod tests { use super::super::super::x; }
    "#;
    let mut edges = Edges::new();
    edges_of(Path::new("m/n.rs"), src, &names, &modules, &mut edges);
    let found: Vec<&str> = edges.keys().map(|(_, b)| b.as_str()).collect();
    assert_eq!(found, ["a", "b", "c", "engine", "error", "x"]);
}
