//! The API reference in `docs/src/api/` and the server's `/openapi.json` agree: every served
//! route has a section, every section is a served route, each section names every parameter
//! and top-level body field of its route, and the error page lists every error code with its
//! status. The README and the docs link only to files inside the repository.
//!
//! A route section is a Markdown heading whose text starts with the method and path in
//! backticks, e.g. "### `POST /v1/memory/store`"; it runs to the next heading of the same or a
//! higher level. Routes go in `docs/src/api/<tag>.md`, the tag being the route's `OpenAPI` tag.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A documented route: where its section is and what it says.
struct Section {
    file: String,
    line: usize,
    text: String,
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// `"### `GET /v1/x` ..."` → `(3, "GET", "/v1/x")`.
fn route_heading(line: &str) -> Option<(usize, String, String)> {
    let level = line.chars().take_while(|c| *c == '#').count();
    let rest = line[level..].strip_prefix(' ')?.trim_start().strip_prefix('`')?;
    let (inner, _) = rest.split_once('`')?;
    let (method, path) = inner.split_once(' ')?;
    (level > 0 && METHODS.contains(&method) && path.starts_with('/'))
        .then(|| (level, method.to_owned(), path.trim().to_owned()))
}

fn heading_level(line: &str) -> usize {
    let level = line.chars().take_while(|c| *c == '#').count();
    if level > 0 && line[level..].starts_with(' ') {
        level
    } else {
        0
    }
}

fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(markdown_files(&path));
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Every route section of docs/src/api, keyed by (method, path); duplicates are reported.
fn documented(errors: &mut Vec<String>) -> BTreeMap<(String, String), Section> {
    let root = repo();
    let mut out: BTreeMap<(String, String), Section> = BTreeMap::new();
    for file in markdown_files(&root.join("docs/src/api")) {
        let rel = file.strip_prefix(&root).unwrap().display().to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut in_code = false;
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
            }
            if in_code {
                continue;
            }
            let Some((level, method, path)) = route_heading(line) else { continue };
            let mut end = i + 1;
            let mut fence = false;
            while end < lines.len() {
                if lines[end].trim_start().starts_with("```") {
                    fence = !fence;
                }
                if !fence && (1..=level).contains(&heading_level(lines[end])) {
                    break;
                }
                end += 1;
            }
            let section =
                Section { file: rel.clone(), line: i + 1, text: lines[i..end].join("\n") };
            if let Some(first) = out.get(&(method.clone(), path.clone())) {
                errors.push(format!(
                    "`{method} {path}` is documented twice: {}:{} and {rel}:{}",
                    first.file,
                    first.line,
                    i + 1
                ));
            } else {
                out.insert((method, path), section);
            }
        }
    }
    out
}

/// Resolves `$ref`s into `#/components/schemas` and collects top-level property names,
/// through `allOf`/`anyOf`/`oneOf`.
fn body_fields(doc: &Value, schema: &Value, out: &mut BTreeSet<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        body_fields(doc, &doc["components"]["schemas"][name], out);
        return;
    }
    if let Some(props) = schema["properties"].as_object() {
        out.extend(props.keys().cloned());
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        for sub in schema[combinator].as_array().into_iter().flatten() {
            body_fields(doc, sub, out);
        }
    }
}

/// The query parameters and body fields of one `OpenAPI` operation (path placeholders are
/// named by the heading itself).
fn fields(doc: &Value, op: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for p in op["parameters"].as_array().into_iter().flatten() {
        if p["in"] != "path" {
            out.insert(p["name"].as_str().unwrap().to_owned());
        }
    }
    body_fields(doc, &op["requestBody"]["content"]["application/json"]["schema"], &mut out);
    out
}

#[test]
fn the_api_reference_documents_exactly_the_openapi_routes_and_their_fields() {
    let doc = memsilo_http::openapi_document();
    let mut errors = Vec::new();
    let docs = documented(&mut errors);
    let mut served = BTreeSet::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for (method, op) in methods.as_object().unwrap() {
            let method = method.to_ascii_uppercase();
            served.insert((method.clone(), path.clone()));
            let tag = op["tags"][0].as_str().unwrap_or("operations");
            let Some(section) = docs.get(&(method.clone(), path.clone())) else {
                errors.push(format!(
                    "`{method} {path}` is in /openapi.json but not documented: add a section \
                     headed \"### `{method} {path}`\" to docs/src/api/{tag}.md (its fields, an \
                     example request and response)"
                ));
                continue;
            };
            let missing: Vec<String> = fields(&doc, op)
                .into_iter()
                .filter(|f| !section.text.contains(&format!("`{f}`")))
                .map(|f| format!("`{f}`"))
                .collect();
            if !missing.is_empty() {
                errors.push(format!(
                    "{}:{} `{method} {path}` does not mention its field(s) {} (from /openapi.json); \
                     document them in that section, each in backticks",
                    section.file,
                    section.line,
                    missing.join(", ")
                ));
            }
        }
    }
    for ((method, path), section) in &docs {
        if !served.contains(&(method.clone(), path.clone())) {
            errors.push(format!(
                "{}:{} documents `{method} {path}`, which is not in /openapi.json: fix the \
                 heading's method or path, or remove the section",
                section.file, section.line
            ));
        }
    }
    assert!(
        errors.is_empty(),
        "docs/src/api and /openapi.json disagree:\n- {}",
        errors.join("\n- ")
    );
}

#[test]
fn the_error_page_lists_every_code_with_its_status() {
    let text = std::fs::read_to_string(repo().join("docs/src/api/errors.md")).unwrap();
    let mut missing = String::new();
    for code in memsilo::ErrorCode::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.http_status());
        if !text.lines().any(|l| l.starts_with(&row)) {
            writeln!(missing, "- a table row starting `{row}`").unwrap();
        }
    }
    assert!(missing.is_empty(), "docs/src/api/errors.md lacks:\n{missing}");
}

/// The prose of a Markdown text: code blocks and inline code removed.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fence = !fence;
            continue;
        }
        if !fence {
            // Odd-numbered pieces between backticks are inline code.
            out.extend(line.split('`').step_by(2));
            out.push('\n');
        }
    }
    out
}

/// Relative link targets of a Markdown text: `](target)` with no scheme, outside code.
fn relative_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let text = prose(text);
    let mut rest = text.as_str();
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split('#').next().unwrap().trim();
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            out.push(target.to_owned());
        }
        rest = &rest[end..];
    }
    out
}

#[test]
fn readme_and_docs_link_only_to_files_in_the_repository() {
    let root = repo();
    let mut files = vec![root.join("README.md"), root.join("CHANGELOG.md")];
    files.extend(markdown_files(&root.join("docs/src")));
    let summary = std::fs::read_to_string(root.join("docs/src/SUMMARY.md")).unwrap();
    let mut errors = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&root).unwrap().display().to_string();
        let text = std::fs::read_to_string(file).unwrap();
        if text.contains("../shared") || text.contains("/work/") {
            errors.push(format!("{rel} points outside the repository (../shared or /work/)"));
        }
        for target in relative_links(&text) {
            let resolved = file.parent().unwrap().join(&target);
            if !resolved.exists() || !resolved.canonicalize().unwrap().starts_with(&root) {
                errors.push(format!(
                    "{rel} links to {target}, which is not a file in the repository"
                ));
            }
        }
        let in_book = file.strip_prefix(root.join("docs/src")).ok();
        if let Some(page) = in_book.filter(|p| *p != Path::new("SUMMARY.md")) {
            if !summary.contains(&format!("]({})", page.display())) {
                errors.push(format!("{rel} is not listed in docs/src/SUMMARY.md"));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
