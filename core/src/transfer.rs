//! Copy, export and import: a namespace as JSON Lines.
//!
//! An export is one JSON object per line, each with a `kind`:
//!
//! | kind | fields |
//! | --- | --- |
//! | `namespace` | `format` (`memsilo-export/2`), `name`, `dimensions`, `policy` — always the first line |
//! | `entity` | `id`, `name`, `type`, `properties` |
//! | `relation` | `id`, `source`, `target` (entity ids), `source_name`, `target_name`, `type`, `weight`, `properties` |
//! | `memory` | a memory as `get_memory` returns it (`id`, `content`, ...) plus `vector` |
//!
//! A memory's `vector` is written as a string: the standard (padded) base64 of its values as
//! little-endian IEEE 754 f32, 4 bytes each (see [`encode_vector`]) — a fifth of the size of
//! the numbers as JSON text, and neither formatted nor parsed digit by digit. An import reads
//! either that string or a JSON array of numbers (what `memsilo-export/1` files hold, and
//! what a hand-written line gives).
//!
//! [`Handle::export_page`] returns the lines in pages with an opaque cursor, so no face ever
//! holds a whole namespace; [`Handle::import_batch`] takes a batch of lines. Entities come
//! before the relations that name them, and a batch of one kind is one transaction: all of it
//! or none. Importing again is idempotent: memories keep their ids (an upsert), entities are
//! upserted by name and type, relations keep their ids (one already there is left alone).
//! A bad line is `invalid_argument` naming it: `line 50000: vector has 3 dimensions,
//! namespace has 384`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::api::{Request, StoreBatchArgs};
use crate::engine::Handle;
use crate::error::{Error, Result};
use crate::graph::{AddEntity, AddRelation};
use crate::memory::StoreMemory;

/// The `format` of an export's first line (`/2`: vectors as base64 strings).
pub const FORMAT: &str = "memsilo-export/2";
/// Formats an import reads: the current one and `memsilo-export/1` (vectors as arrays).
pub const FORMATS: &[&str] = &["memsilo-export/1", FORMAT];
/// Lines per export page by default, and at most.
pub const DEFAULT_PAGE: usize = 1000;
/// Largest page.
pub const MAX_PAGE: usize = 10_000;
/// Longest line an import reads, in bytes.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// Arguments of `export_namespace`: one page.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ExportArgs {
    /// Namespace.
    pub namespace: String,
    /// Where the previous page stopped (absent: the first page, which starts with the
    /// `namespace` line).
    #[serde(default)]
    pub cursor: Option<String>,
    /// Lines in this page (default 1000, at most 10000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// One page of an export.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ExportPage {
    /// The lines, each a JSON object with a `kind`.
    pub lines: Vec<Value>,
    /// Where the next page starts; `null` after the last page.
    pub next_cursor: Option<String>,
}

/// Arguments of `import_namespace`: one batch of lines.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportArgs {
    /// The namespace to import into (it must exist).
    pub namespace: String,
    /// The lines, as exported: JSON objects, or their text (one line each).
    pub lines: Vec<Value>,
    /// The number of the first line in its file (for error messages; default 1).
    #[serde(default)]
    pub first_line: Option<u64>,
}

/// What an import wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ImportSummary {
    /// Lines read.
    pub lines: u64,
    /// Memories stored or replaced.
    pub memories: u64,
    /// Entities created or updated.
    pub entities: u64,
    /// Relations added (those already there are not counted).
    pub relations: u64,
    /// Memories left out because they had expired.
    pub expired: u64,
}

impl ImportSummary {
    /// Adds another batch's counts.
    pub fn add(&mut self, other: ImportSummary) {
        self.lines += other.lines;
        self.memories += other.memories;
        self.entities += other.entities;
        self.relations += other.relations;
        self.expired += other.expired;
    }
}

/// The kinds of line, in export order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The first line.
    Namespace,
    /// A graph entity.
    Entity,
    /// A graph relation.
    Relation,
    /// A memory.
    Memory,
}

/// Reads one line of an export: a JSON object with a known `kind`. Errors name the line.
pub fn parse_line(number: u64, text: &[u8]) -> Result<(Kind, Map<String, Value>)> {
    let bad = |reason: String| Error::invalid(format!("line {number}"), reason);
    if text.len() > MAX_LINE_BYTES {
        return Err(bad(format!("longer than {MAX_LINE_BYTES} bytes")));
    }
    let value: Value = serde_json::from_slice(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(bad("not a JSON object".into()));
    };
    let kind = line_kind(&map).map_err(bad)?;
    Ok((kind, map))
}

fn line_kind(map: &Map<String, Value>) -> std::result::Result<Kind, String> {
    match map.get("kind").and_then(Value::as_str) {
        Some("namespace") => Ok(Kind::Namespace),
        Some("entity") => Ok(Kind::Entity),
        Some("relation") => Ok(Kind::Relation),
        Some("memory") => Ok(Kind::Memory),
        Some(other) => Err(format!("unknown kind {other:?}")),
        None => Err("no `kind` (namespace, entity, relation or memory)".into()),
    }
}

/// Splits a stream of lines into import batches: at most `size` lines, one kind each (so a
/// batch is one transaction). Blank lines are skipped but counted.
pub struct Batcher {
    size: usize,
    next_line: u64,
    pending: Vec<Value>,
    pending_kind: Option<Kind>,
    first: u64,
}

/// A batch ready to import.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Number of its first line.
    pub first_line: u64,
    /// Its lines.
    pub lines: Vec<Value>,
}

impl Batcher {
    /// A batcher of `size` lines (at least 1).
    pub fn new(size: usize) -> Self {
        Batcher {
            size: size.max(1),
            next_line: 1,
            pending: Vec::new(),
            pending_kind: None,
            first: 1,
        }
    }

    /// Takes the next line; returns a batch when one is full or the kind changes.
    pub fn push(&mut self, text: &[u8]) -> Result<Option<Batch>> {
        let number = self.next_line;
        self.next_line += 1;
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let (kind, map) = parse_line(number, text)?;
        let mut out = None;
        if self.pending_kind.is_some_and(|k| k != kind) || self.pending.len() >= self.size {
            out = self.take();
        }
        if self.pending.is_empty() {
            self.first = number;
        }
        self.pending_kind = Some(kind);
        self.pending.push(Value::Object(map));
        Ok(out)
    }

    /// The last, partial batch.
    pub fn finish(&mut self) -> Option<Batch> {
        self.take()
    }

    fn take(&mut self) -> Option<Batch> {
        self.pending_kind = None;
        if self.pending.is_empty() {
            return None;
        }
        Some(Batch { first_line: self.first, lines: std::mem::take(&mut self.pending) })
    }
}

/// Cursor phases: entities, relations, memories; each with where it stopped.
fn encode_cursor(phase: char, after: &str) -> String {
    format!("{phase}:{after}")
}

fn decode_cursor(c: &str) -> Result<(char, &str)> {
    let bad = || Error::invalid("cursor", "malformed or from another export");
    let (phase, rest) = c.split_once(':').ok_or_else(bad)?;
    match phase {
        "e" | "r" | "m" => Ok((phase.chars().next().unwrap_or('m'), rest)),
        _ => Err(bad()),
    }
}

fn with_kind(kind: &str, mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.insert("kind".into(), json!(kind));
    }
    v
}

impl Handle {
    /// One page of the JSON Lines export of a namespace (see the module docs).
    pub fn export_page(&self, args: ExportArgs) -> Result<ExportPage> {
        let limit = args.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Error::invalid("limit", format!("must be between 1 and {MAX_PAGE}")));
        }
        let ns = args.namespace.as_str();
        let mut lines = Vec::new();
        let (mut phase, mut after) = match &args.cursor {
            None => {
                let info = self.get_namespace(ns)?;
                lines.push(json!({
                    "kind": "namespace", "format": FORMAT, "name": info.name,
                    "dimensions": info.dimensions, "policy": info.policy,
                }));
                ('e', String::new())
            }
            Some(c) => {
                let (p, a) = decode_cursor(c)?;
                (p, a.to_owned())
            }
        };
        loop {
            let room = limit.saturating_sub(lines.len());
            if room == 0 {
                return Ok(ExportPage { lines, next_cursor: Some(encode_cursor(phase, &after)) });
            }
            match phase {
                'e' | 'r' => {
                    let relations = phase == 'r';
                    let from = (!after.is_empty()).then_some(after.as_str());
                    let rows = self.graph_rows(ns, relations, from, room)?;
                    let full = rows.len() == room;
                    if let Some(last) = rows.last() {
                        last["id"].as_str().unwrap_or("").clone_into(&mut after);
                    }
                    let kind = if relations { "relation" } else { "entity" };
                    lines.extend(rows.into_iter().map(|r| export_graph_row(kind, r)));
                    if !full {
                        phase = if relations { 'm' } else { 'r' };
                        after.clear();
                    }
                }
                _ => {
                    let from = (!after.is_empty()).then_some(after.as_str());
                    let (memories, next) = self.memory_rows(ns, from, room)?;
                    for m in memories {
                        lines.push(export_memory(m)?);
                    }
                    match next {
                        Some(next) => after = next,
                        None => return Ok(ExportPage { lines, next_cursor: None }),
                    }
                }
            }
        }
    }

    /// Imports one batch of export lines into `namespace` (see the module docs).
    pub fn import_batch(&self, args: ImportArgs) -> Result<ImportSummary> {
        let first = args.first_line.unwrap_or(1);
        let ns = args.namespace.as_str();
        let mut summary = ImportSummary { lines: args.lines.len() as u64, ..Default::default() };
        let mut groups: Vec<(Kind, Numbered)> = Vec::new();
        for (i, line) in args.lines.into_iter().enumerate() {
            let number = first + i as u64;
            let (kind, map) = match line {
                // A line as text (what a file holds) is parsed here, so its errors name it.
                Value::String(text) => parse_line(number, text.as_bytes())?,
                Value::Object(map) => {
                    let kind =
                        line_kind(&map).map_err(|r| Error::invalid(format!("line {number}"), r))?;
                    (kind, map)
                }
                _ => {
                    return Err(Error::invalid(
                        format!("line {number}"),
                        "not a JSON object (or its text)",
                    ))
                }
            };
            match groups.last_mut() {
                Some((k, items)) if *k == kind => items.push((number, map)),
                _ => groups.push((kind, vec![(number, map)])),
            }
        }
        // Check every line before writing any.
        let dims = self.get_namespace(ns)?.dimensions;
        let mut prepared = Vec::with_capacity(groups.len());
        for (kind, items) in groups {
            prepared.push(prepare_group(kind, items, dims)?);
        }
        for group in prepared {
            match group {
                Group::Policy(line, policy) => {
                    // Retention is administration: only a changed policy needs the right.
                    let current = serde_json::to_value(self.get_memory_policy(ns)?)?;
                    if policy != current {
                        let set = json!({ "namespace": ns, "policy": policy });
                        self.call("set_memory_policy", set).map_err(|e| match e {
                            Error::Forbidden { namespace, .. } => Error::Forbidden {
                                message: format!(
                                    "line {line}: the export's decay policy differs and setting \
                                     it needs an admin key"
                                ),
                                namespace,
                            },
                            other => at_line(line, other),
                        })?;
                    }
                }
                Group::Entities(numbers, items) => {
                    let done = self
                        .add_entities(ns, items)
                        .map_err(|e| name_line(e, "entities", &numbers))?;
                    summary.entities += done.len() as u64;
                }
                Group::Relations(numbers, items) => {
                    let done = self
                        .import_relations(ns, items, |i| format!("relations[{i}]"))
                        .map_err(|e| name_line(e, "relations", &numbers))?;
                    summary.relations += done.len() as u64;
                }
                Group::Memories(numbers, items, expired) => {
                    summary.expired += expired;
                    if items.is_empty() {
                        continue;
                    }
                    let n = items.len() as u64;
                    let batch = StoreBatchArgs { namespace: ns.to_owned(), memories: items };
                    self.execute(Request::StoreMemories(batch))
                        .map_err(|e| name_line(e, "memories", &numbers))?;
                    summary.memories += n;
                }
            }
        }
        Ok(summary)
    }
}

fn export_graph_row(kind: &str, mut row: Value) -> Value {
    if let Value::Object(m) = &mut row {
        // Timestamps are set again on import.
        for f in ["created_at", "updated_at"] {
            m.remove(f);
        }
    }
    with_kind(kind, row)
}

/// A memory's export line: its fields without `namespace`, its vector as base64.
fn export_memory(mut m: crate::memory::Memory) -> Result<Value> {
    let vector = m.vector.take();
    let mut line = serde_json::to_value(m)?;
    if let Value::Object(map) = &mut line {
        map.remove("namespace");
        if let Some(v) = vector {
            map.insert("vector".into(), Value::String(encode_vector(&v)));
        }
    }
    Ok(with_kind("memory", line))
}

/// The export encoding of a vector: standard base64 of its little-endian f32 values.
pub fn encode_vector(v: &[f32]) -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Reads [`encode_vector`]'s text; `None` if it is not base64 of a whole number of f32.
pub fn decode_vector(text: &str) -> Option<Vec<f32>> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).ok()?;
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// A memory line's `vector`: base64 text or an array of numbers.
fn line_vector(v: Value) -> std::result::Result<Vec<f32>, String> {
    match v {
        Value::String(text) => decode_vector(&text).ok_or_else(|| {
            "vector: not the base64 of little-endian f32 values (nor an array of numbers)".into()
        }),
        Value::Array(items) => items
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32))
            .collect::<Option<Vec<f32>>>()
            .ok_or_else(|| "vector: expected an array of numbers (or base64 text)".into()),
        _ => Err("vector: expected an array of numbers or base64 text".into()),
    }
}

/// Lines of one kind with their numbers.
type Numbered = Vec<(u64, Map<String, Value>)>;

enum Group {
    /// Line number and the policy.
    Policy(u64, Value),
    Entities(Vec<u64>, Vec<AddEntity>),
    Relations(Vec<u64>, Vec<(String, AddRelation)>),
    /// Line numbers, `store_memories` items, and how many were left out as expired.
    Memories(Vec<u64>, Vec<StoreMemory>, u64),
}

/// Fields of a memory line that become `store_memories` fields as they are.
const MEMORY_FIELDS: &[&str] = &[
    "id",
    "content",
    "importance",
    "tags",
    "metadata",
    "agent_id",
    "memory_type",
    "session_id",
    "entities",
];
/// Fields of a memory line that are derived or set again by the import.
const MEMORY_DERIVED: &[&str] =
    &["kind", "created_at", "updated_at", "expires_at", "vector", "namespace"];

fn prepare_group(kind: Kind, items: Numbered, dims: Option<u32>) -> Result<Group> {
    let numbers: Vec<u64> = items.iter().map(|(n, _)| *n).collect();
    match kind {
        Kind::Namespace => {
            let (n, map) =
                items.into_iter().last().ok_or_else(|| Error::Internal("empty group".into()))?;
            let at = |r: String| Error::invalid(format!("line {n}"), r);
            match map.get("format").and_then(Value::as_str) {
                Some(f) if FORMATS.contains(&f) => {}
                other => return Err(at(format!("format {other:?} is not one of {FORMATS:?}"))),
            }
            if let (Some(want), Some(got)) = (dims, map.get("dimensions").and_then(Value::as_u64)) {
                if u64::from(want) != got {
                    return Err(at(format!(
                        "the export's vectors have {got} dimensions, namespace has {want}"
                    )));
                }
            }
            let policy = map.get("policy").cloned().unwrap_or(json!({}));
            crate::api::decode::<crate::namespace::DecayPolicy>(policy.clone())
                .map_err(|e| at_line(n, e))?;
            Ok(Group::Policy(n, policy))
        }
        Kind::Entity => {
            let mut out = Vec::with_capacity(items.len());
            for (n, mut map) in items {
                map.remove("kind");
                map.remove("id");
                map.insert("namespace".into(), Value::String(String::new()));
                out.push(
                    crate::api::decode::<AddEntity>(Value::Object(map))
                        .map_err(|e| at_line(n, e))?,
                );
            }
            Ok(Group::Entities(numbers, out))
        }
        Kind::Relation => {
            let mut out = Vec::with_capacity(items.len());
            for (n, mut map) in items {
                map.remove("kind");
                let Some(Value::String(id)) = map.remove("id") else {
                    return Err(Error::invalid(format!("line {n}"), "id: a relation needs its id"));
                };
                // Entities get new ids in another namespace: the ends are found by name.
                for end in ["source", "target"] {
                    if let Some(name) = map.remove(&format!("{end}_name")) {
                        map.insert(end.into(), name);
                    }
                }
                map.insert("namespace".into(), Value::String(String::new()));
                let rel = crate::api::decode::<AddRelation>(Value::Object(map))
                    .map_err(|e| at_line(n, e))?;
                out.push((id, rel));
            }
            Ok(Group::Relations(numbers, out))
        }
        Kind::Memory => prepare_memories(items, dims),
    }
}

/// Memory lines as `store_memories` items, checked (vector size, fields); expired ones are
/// counted and left out.
fn prepare_memories(items: Numbered, dims: Option<u32>) -> Result<Group> {
    let now = chrono::Utc::now();
    let mut out = Vec::with_capacity(items.len());
    let mut kept = Vec::with_capacity(items.len());
    let mut expired = 0;
    for (n, mut map) in items {
        let at = |r: String| Error::invalid(format!("line {n}"), r);
        if let Some(extra) = map
            .keys()
            .find(|k| !MEMORY_FIELDS.contains(&k.as_str()) && !MEMORY_DERIVED.contains(&k.as_str()))
        {
            return Err(at(format!("{extra}: unknown field of a memory")));
        }
        if !matches!(map.get("id"), Some(Value::String(_))) {
            return Err(at("id: a memory needs its id (imports are idempotent by id)".into()));
        }
        let mut item = Map::new();
        for f in MEMORY_FIELDS {
            if let Some(v) = map.remove(*f) {
                if !v.is_null() {
                    item.insert((*f).to_owned(), v);
                }
            }
        }
        match map.remove("expires_at") {
            Some(Value::String(t)) => {
                let t = chrono::DateTime::parse_from_rfc3339(&t)
                    .map_err(|e| at(format!("expires_at: {e}")))?;
                let left = t.timestamp() - now.timestamp();
                if left <= 0 {
                    expired += 1;
                    continue;
                }
                item.insert("ttl".into(), json!(left));
            }
            None | Some(Value::Null) => {}
            Some(_) => return Err(at("expires_at: expected an RFC 3339 time or null".into())),
        }
        let vector = match map.remove("vector") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let v = line_vector(v).map_err(at)?;
                if let Some(d) = dims {
                    if v.len() != d as usize {
                        return Err(at(format!(
                            "vector has {} dimensions, namespace has {d}",
                            v.len()
                        )));
                    }
                }
                Some(v)
            }
        };
        let mut item: StoreMemory =
            crate::api::decode(Value::Object(item)).map_err(|e| at_line(n, e))?;
        item.embedding = vector;
        out.push(item);
        kept.push(n);
    }
    Ok(Group::Memories(kept, out, expired))
}

fn at_line(n: u64, e: Error) -> Error {
    match e {
        Error::InvalidArgument { field, reason } => {
            Error::invalid(format!("line {n}"), format!("{field}: {reason}"))
        }
        other => other,
    }
}

/// `memories[3].embedding: ...` from a batch write becomes `line 1203: embedding: ...`.
fn name_line(e: Error, list: &str, numbers: &[u64]) -> Error {
    let (field, reason, large) = match e {
        Error::InvalidArgument { field, reason } => (field, reason, false),
        Error::PayloadTooLarge { field, reason } => (field, reason, true),
        other => return other,
    };
    let Some(rest) = field.strip_prefix(list).and_then(|r| r.strip_prefix('[')) else {
        return if large {
            Error::PayloadTooLarge { field, reason }
        } else {
            Error::invalid(field, reason)
        };
    };
    let (index, inner) = rest.split_once(']').unwrap_or((rest, ""));
    let Some(n) = index.parse::<usize>().ok().and_then(|i| numbers.get(i)) else {
        return Error::invalid(field, reason);
    };
    let inner = inner.trim_start_matches('.');
    let reason = if inner.is_empty() { reason } else { format!("{inner}: {reason}") };
    if large {
        Error::PayloadTooLarge { field: format!("line {n}"), reason }
    } else {
        Error::invalid(format!("line {n}"), reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed_with_their_number_in_every_error() {
        let e = parse_line(7, b"{nope").unwrap_err();
        assert!(e.to_string().starts_with("line 7: not JSON"), "{e}");
        let e = parse_line(8, b"[1]").unwrap_err();
        assert_eq!(e.to_string(), "line 8: not a JSON object");
        let e = parse_line(9, br#"{"kind": "tensor"}"#).unwrap_err();
        assert!(e.to_string().starts_with("line 9: unknown kind"), "{e}");
        assert_eq!(parse_line(1, br#"{"kind": "memory"}"#).unwrap().0, Kind::Memory);
    }

    #[test]
    fn batches_hold_one_kind_and_at_most_size_lines() {
        let mut b = Batcher::new(2);
        let mut out = Vec::new();
        for l in [
            r#"{"kind":"namespace"}"#,
            r#"{"kind":"entity"}"#,
            "",
            r#"{"kind":"entity"}"#,
            r#"{"kind":"entity"}"#,
            r#"{"kind":"memory"}"#,
        ] {
            out.extend(b.push(l.as_bytes()).unwrap());
        }
        out.extend(b.finish());
        let shape: Vec<(u64, usize)> = out.iter().map(|b| (b.first_line, b.lines.len())).collect();
        assert_eq!(shape, vec![(1, 1), (2, 2), (5, 1), (6, 1)]);
    }

    #[test]
    fn batch_errors_name_the_line_of_the_item() {
        let e = name_line(Error::invalid("memories[1].embedding", "bad"), "memories", &[10, 11]);
        assert_eq!(e.to_string(), "line 11: embedding: bad");
        let e = name_line(Error::invalid("namespace", "bad"), "memories", &[10]);
        assert_eq!(e.to_string(), "namespace: bad");
    }
}
