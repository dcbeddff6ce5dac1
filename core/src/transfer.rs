//! Copy, export and import: a namespace as JSON Lines.
//!
//! An export is one JSON object per line, each with a `kind`:
//!
//! | kind | fields |
//! | --- | --- |
//! | `namespace` | `format` (`memsilo-export/3`), `name`, `dimensions`, `embedder`, `policy` — always the first line |
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
//! The namespace line's `embedder` (`memsilo-export/3`) names what made the memories'
//! vectors: the embedder recorded on the namespace (as its stats show it), `caller` for
//! caller-supplied vectors, `null` when it holds none yet. An import keeps the vectors as that
//! embedder's when the target namespace uses the same one (or has none yet and the engine's
//! embedder is that one), so text stores and recalls in the target go on working; keeps them
//! as caller vectors when the source held caller vectors (or the target does); and when the
//! target is embedded with another embedder, drops them and embeds each memory's content again
//! with the target's. The line comes first and the faces split a file into batches, so a
//! batch without it passes the name in [`ImportArgs::embedder`] ([`Batch::embedder`] carries
//! it). Files of the earlier formats (`memsilo-export/1` and `/2`, without `embedder`) import
//! as they always did: their vectors are caller vectors.
//!
//! [`Handle::export_page`] returns the lines in pages with an opaque cursor, so no face ever
//! holds a whole namespace; [`Handle::import_batch`] takes a batch of lines. Entities come
//! before the relations that name them, and a batch of one kind is one transaction: all of it
//! or none. Importing again is idempotent: memories keep their ids (an upsert), entities are
//! upserted by name and type (a new entity keeps its exported id, unless another entity of
//! the namespace has it), relations keep their ids (one already there is left alone) and find
//! their ends by exported id, else by name. So a copy has the same ids as its source.
//! A bad line is `invalid_argument` naming it: `line 50000: vector has 3 dimensions,
//! namespace has 384`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::graph::{AddEntity, AddRelation};
use crate::memory::{StoreMemory, CALLER_EMBEDDER};

/// The `format` of an export's first line (`/2`: vectors as base64 strings; `/3`: the
/// namespace line names the vectors' embedder).
pub const FORMAT: &str = "memsilo-export/3";
/// Formats an import reads: the current one, `memsilo-export/2` (no `embedder`) and
/// `memsilo-export/1` (vectors as arrays).
pub const FORMATS: &[&str] = &["memsilo-export/1", "memsilo-export/2", FORMAT];
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

/// One line of an export: a JSON object with a `kind`, as JSON text. Serialised, it is written
/// as it is (not parsed and formatted again).
pub type Line = Box<serde_json::value::RawValue>;

/// One page of an export.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ExportPage {
    /// The lines, each a JSON object with a `kind`.
    #[cfg_attr(feature = "schema", schemars(with = "Vec<Value>"))]
    pub lines: Vec<Line>,
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
    /// The embedder that made the vectors of these lines, as the export's namespace line
    /// names it (`caller` for caller-supplied vectors), for a batch after the one holding that
    /// line. Absent: the vectors are caller vectors, as in files before `memsilo-export/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedder: Option<String>,
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

/// The kind of one line of an export, as [`parse_line`] reads it (with its errors) but without
/// building the line: a line that is a JSON object with a known `kind` string is only checked.
pub(crate) fn line_head(number: u64, text: &[u8]) -> Result<Kind> {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(borrow)]
        kind: std::borrow::Cow<'a, str>,
    }
    let object = text.len() <= MAX_LINE_BYTES
        && text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        && std::str::from_utf8(text).is_ok();
    if object {
        if let Ok(head) = serde_json::from_slice::<Head<'_>>(text) {
            if let Ok(kind) = kind_named(Some(&head.kind)) {
                return Ok(kind);
            }
        }
    }
    // Anything else (not JSON, not an object, no kind, ...) as parse_line says it.
    parse_line(number, text).map(|(kind, _)| kind)
}

/// The embedder a namespace line names for its file's vectors (`memsilo-export/3` on; lines of
/// earlier formats have none, and their vectors are caller vectors).
pub(crate) fn source_embedder(map: &Map<String, Value>) -> Option<String> {
    map.get("embedder").and_then(Value::as_str).map(str::to_owned)
}

pub(crate) fn line_kind(map: &Map<String, Value>) -> std::result::Result<Kind, String> {
    kind_named(map.get("kind").and_then(Value::as_str))
}

fn kind_named(kind: Option<&str>) -> std::result::Result<Kind, String> {
    match kind {
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
    embedder: Option<String>,
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
    /// The vectors' embedder named by the file's namespace line (see [`ImportArgs::embedder`]).
    pub embedder: Option<String>,
}

impl Batch {
    /// The `import_namespace` arguments of this batch into `namespace`.
    pub fn into_args(self, namespace: &str) -> ImportArgs {
        ImportArgs {
            namespace: namespace.to_owned(),
            lines: self.lines,
            first_line: Some(self.first_line),
            embedder: self.embedder,
        }
    }
}

impl Batcher {
    /// A batcher of `size` lines (at least 1).
    pub fn new(size: usize) -> Self {
        Batcher {
            size: size.max(1),
            embedder: None,
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
        let kind = line_head(number, text)?;
        if kind == Kind::Namespace {
            self.embedder = source_embedder(&parse_line(number, text)?.1);
        }
        // The line goes on as its text (an import reads a memory line once, typed).
        let line = match std::str::from_utf8(text) {
            Ok(t) => Value::String(t.to_owned()),
            Err(_) => Value::Object(parse_line(number, text)?.1),
        };
        let mut out = None;
        if self.pending_kind.is_some_and(|k| k != kind) || self.pending.len() >= self.size {
            out = self.take();
        }
        if self.pending.is_empty() {
            self.first = number;
        }
        self.pending_kind = Some(kind);
        self.pending.push(line);
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
        Some(Batch {
            first_line: self.first,
            lines: std::mem::take(&mut self.pending),
            embedder: self.embedder.clone(),
        })
    }
}

/// Cursor phases: entities, relations, memories; each with where it stopped.
pub(crate) fn encode_cursor(phase: char, after: &str) -> String {
    format!("{phase}:{after}")
}

pub(crate) fn decode_cursor(c: &str) -> Result<(char, &str)> {
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

pub(crate) fn export_graph_row(kind: &str, mut row: Value) -> Value {
    if let Value::Object(m) = &mut row {
        // Timestamps are set again on import.
        for f in ["created_at", "updated_at"] {
            m.remove(f);
        }
    }
    with_kind(kind, row)
}

/// A memory's export line: its fields without `namespace`, its vector as base64, and `kind`.
/// The keys are in the order of a JSON object's keys (sorted), as lines were written when
/// they were built as objects: the text of an export does not depend on how it was made.
#[derive(Serialize)]
struct MemoryLine<'a> {
    agent_id: &'a Option<String>,
    content: &'a str,
    created_at: &'a chrono::DateTime<chrono::Utc>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    entities: &'a [String],
    expires_at: &'a Option<chrono::DateTime<chrono::Utc>>,
    id: &'a str,
    importance: f64,
    kind: &'static str,
    memory_type: crate::memory::MemoryType,
    metadata: &'a Map<String, Value>,
    session_id: &'a Option<String>,
    tags: &'a [String],
    updated_at: &'a chrono::DateTime<chrono::Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vector: Option<String>,
}

/// A memory's export line (see [`MemoryLine`]), serialised once.
pub(crate) fn export_memory(m: &crate::memory::Memory) -> Result<Line> {
    let line = MemoryLine {
        agent_id: &m.agent_id,
        content: &m.content,
        created_at: &m.created_at,
        entities: &m.entities,
        expires_at: &m.expires_at,
        id: &m.id,
        importance: m.importance,
        kind: "memory",
        memory_type: m.memory_type,
        metadata: &m.metadata,
        session_id: &m.session_id,
        tags: &m.tags,
        updated_at: &m.updated_at,
        vector: m.vector.as_deref().map(encode_vector),
    };
    Ok(serde_json::value::to_raw_value(&line)?)
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

/// A memory line's `vector` given as text.
fn base64_vector(text: &str) -> std::result::Result<Vec<f32>, String> {
    decode_vector(text).ok_or_else(|| {
        "vector: not the base64 of little-endian f32 values (nor an array of numbers)".into()
    })
}

/// Checks a memory line's vector against the namespace's dimensions.
fn check_dims(v: &[f32], dims: Option<u32>) -> std::result::Result<(), String> {
    match dims {
        Some(d) if v.len() != d as usize => {
            Err(format!("vector has {} dimensions, namespace has {d}", v.len()))
        }
        _ => Ok(()),
    }
}

/// A memory line's `expires_at` as the seconds it has left to live; `None` once expired.
fn seconds_left(
    expires_at: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> std::result::Result<Option<u64>, String> {
    let t =
        chrono::DateTime::parse_from_rfc3339(expires_at).map_err(|e| format!("expires_at: {e}"))?;
    let left = t.timestamp() - now.timestamp();
    Ok((left > 0).then_some(left as u64))
}

/// A memory line's `vector`: base64 text or an array of numbers.
fn line_vector(v: Value) -> std::result::Result<Vec<f32>, String> {
    match v {
        Value::String(text) => base64_vector(&text),
        Value::Array(items) => items
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32))
            .collect::<Option<Vec<f32>>>()
            .ok_or_else(|| "vector: expected an array of numbers (or base64 text)".into()),
        _ => Err("vector: expected an array of numbers or base64 text".into()),
    }
}

/// An import line: a JSON object, or the text of a memory line (read in `typed_memory`).
pub(crate) enum LineIn {
    Object(Map<String, Value>),
    Text(String),
}

impl LineIn {
    /// The line as an object (a text line is parsed).
    fn into_object(self, number: u64) -> Result<Map<String, Value>> {
        match self {
            LineIn::Object(map) => Ok(map),
            LineIn::Text(text) => Ok(parse_line(number, text.as_bytes())?.1),
        }
    }
}

/// Lines of one kind with their numbers.
pub(crate) type Numbered = Vec<(u64, LineIn)>;

/// What an import does with the memory lines' vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Vectors {
    /// Stored as caller-supplied vectors.
    Caller,
    /// Stored as vectors of this embedder, the target namespace's (or the engine's, for a
    /// target without one yet).
    Embedder(String),
    /// Made by another embedder than the target's: dropped, and the content embedded again.
    Reembed,
}

impl Vectors {
    /// The plan for vectors made by `source` (from the namespace line; `None`: a file that
    /// does not say) imported into a namespace embedded with `target` (`None`: none yet,
    /// which the engine's `default` embedder would fix).
    pub(crate) fn plan(source: Option<&str>, target: Option<&str>, default: &str) -> Vectors {
        match (source, target) {
            (None | Some(CALLER_EMBEDDER), _) | (_, Some(CALLER_EMBEDDER)) => Vectors::Caller,
            (Some(s), Some(t)) if s == t => Vectors::Embedder(s.to_owned()),
            (Some(s), None) if s == default => Vectors::Embedder(s.to_owned()),
            _ => Vectors::Reembed,
        }
    }
}

pub(crate) enum Group {
    /// Line number and the policy.
    Policy(u64, Value),
    Entities(Vec<u64>, Vec<(Option<String>, AddEntity)>),
    Relations(Vec<u64>, Vec<crate::graph::ImportedRelation>),
    /// Line numbers, `store_memories` items, how many were left out as expired, and what
    /// made the items' vectors.
    Memories(Vec<u64>, Vec<StoreMemory>, u64, String),
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

pub(crate) fn prepare_group(
    kind: Kind,
    items: Numbered,
    dims: Option<u32>,
    plan: &Vectors,
) -> Result<Group> {
    let numbers: Vec<u64> = items.iter().map(|(n, _)| *n).collect();
    if kind == Kind::Memory {
        return prepare_memories(items, dims, plan);
    }
    let items = items
        .into_iter()
        .map(|(n, line)| Ok((n, line.into_object(n)?)))
        .collect::<Result<Vec<_>>>()?;
    match kind {
        Kind::Namespace => {
            let (n, map) =
                items.into_iter().last().ok_or_else(|| Error::Internal("empty group".into()))?;
            let at = |r: String| Error::invalid(format!("line {n}"), r);
            match map.get("format").and_then(Value::as_str) {
                Some(f) if FORMATS.contains(&f) => {}
                other => return Err(at(format!("format {other:?} is not one of {FORMATS:?}"))),
            }
            let export_dims = map.get("dimensions").and_then(Value::as_u64);
            if let (Some(want), Some(got), false) = (dims, export_dims, *plan == Vectors::Reembed) {
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
                let id = match map.remove("id") {
                    Some(Value::String(id)) => Some(id),
                    _ => None,
                };
                map.insert("namespace".into(), Value::String(String::new()));
                let entity = crate::api::decode::<AddEntity>(Value::Object(map))
                    .map_err(|e| at_line(n, e))?;
                out.push((id, entity));
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
                // Each end by its exported id, else by its name (an entity of the target that
                // kept another id); a line without ids names its ends.
                let mut names = [None, None];
                for (side, end) in ["source", "target"].into_iter().enumerate() {
                    let is_id = map
                        .get(end)
                        .and_then(Value::as_str)
                        .is_some_and(|v| uuid::Uuid::parse_str(v).is_ok());
                    match map.remove(&format!("{end}_name")) {
                        Some(Value::String(name)) if is_id => names[side] = Some(name),
                        Some(name) => {
                            map.insert(end.into(), name);
                        }
                        None => {}
                    }
                }
                map.insert("namespace".into(), Value::String(String::new()));
                let relation = crate::api::decode::<AddRelation>(Value::Object(map))
                    .map_err(|e| at_line(n, e))?;
                out.push(crate::graph::ImportedRelation { id, relation, names });
            }
            Ok(Group::Relations(numbers, out))
        }
        Kind::Memory => unreachable!("memory lines are prepared above"),
    }
}

/// A memory line's fields, read straight from its text. A `null` is an absent field, as in
/// the object path of [`prepare_memories`]; any line this does not read (an unknown field, a
/// field of another type, a vector as an array of numbers, ...) goes that path, which names
/// what is wrong.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryLineIn<'a> {
    id: String,
    content: String,
    importance: Option<f64>,
    tags: Option<Vec<String>>,
    metadata: Option<Map<String, Value>>,
    agent_id: Option<String>,
    memory_type: Option<crate::memory::MemoryType>,
    session_id: Option<String>,
    entities: Option<Vec<String>>,
    #[serde(borrow)]
    expires_at: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    vector: Option<std::borrow::Cow<'a, str>>,
    #[allow(dead_code)] // read and left: derived or set again by the import
    kind: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    created_at: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    updated_at: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    namespace: Option<serde::de::IgnoredAny>,
}

/// What [`typed_memory`] made of a memory line.
pub(crate) enum Typed {
    Item(Box<StoreMemory>),
    /// Left out: expired.
    Expired,
}

/// A memory line read typed from its text (see [`MemoryLineIn`]) and checked as
/// [`prepare_memories`] checks an object; `None` when it is not read that way.
pub(crate) fn typed_memory(
    text: &str,
    n: u64,
    dims: Option<u32>,
    plan: &Vectors,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Typed>> {
    let Ok(line) = serde_json::from_str::<MemoryLineIn<'_>>(text) else { return Ok(None) };
    let at = |r: String| Error::invalid(format!("line {n}"), r);
    let mut ttl = None;
    if let Some(t) = &line.expires_at {
        match seconds_left(t, now).map_err(at)? {
            Some(left) => ttl = Some(left),
            None => return Ok(Some(Typed::Expired)),
        }
    }
    let embedding = match &line.vector {
        None => None,
        Some(_) if *plan == Vectors::Reembed => None,
        Some(text) => {
            let v = base64_vector(text).map_err(at)?;
            check_dims(&v, dims).map_err(at)?;
            Some(v)
        }
    };
    Ok(Some(Typed::Item(Box::new(StoreMemory {
        namespace: None,
        id: Some(line.id),
        agent_id: line.agent_id,
        content: line.content,
        importance: line.importance,
        tags: line.tags.unwrap_or_default(),
        metadata: line.metadata,
        ttl,
        embedding,
        entities: line.entities.unwrap_or_default(),
        memory_type: line.memory_type,
        session_id: line.session_id,
    }))))
}

/// Memory lines as `store_memories` items, checked (vector size, fields); expired ones are
/// counted and left out. Their vectors are dropped when `plan` says to embed again.
fn prepare_memories(items: Numbered, dims: Option<u32>, plan: &Vectors) -> Result<Group> {
    let now = chrono::Utc::now();
    let mut out = Vec::with_capacity(items.len());
    let mut kept = Vec::with_capacity(items.len());
    let mut expired = 0;
    for (n, line) in items {
        let at = |r: String| Error::invalid(format!("line {n}"), r);
        let mut map = match line {
            LineIn::Text(text) => match typed_memory(&text, n, dims, plan, now)? {
                Some(Typed::Item(item)) => {
                    out.push(*item);
                    kept.push(n);
                    continue;
                }
                Some(Typed::Expired) => {
                    expired += 1;
                    continue;
                }
                None => parse_line(n, text.as_bytes())?.1,
            },
            LineIn::Object(map) => map,
        };
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
                let Some(left) = seconds_left(&t, now).map_err(at)? else {
                    expired += 1;
                    continue;
                };
                item.insert("ttl".into(), json!(left));
            }
            None | Some(Value::Null) => {}
            Some(_) => return Err(at("expires_at: expected an RFC 3339 time or null".into())),
        }
        let vector = match map.remove("vector") {
            None | Some(Value::Null) => None,
            Some(_) if *plan == Vectors::Reembed => None,
            Some(v) => {
                let v = line_vector(v).map_err(at)?;
                check_dims(&v, dims).map_err(at)?;
                Some(v)
            }
        };
        let mut item: StoreMemory =
            crate::api::decode(Value::Object(item)).map_err(|e| at_line(n, e))?;
        item.embedding = vector;
        out.push(item);
        kept.push(n);
    }
    let by = match plan {
        Vectors::Embedder(name) => name.clone(),
        Vectors::Caller | Vectors::Reembed => CALLER_EMBEDDER.to_owned(),
    };
    Ok(Group::Memories(kept, out, expired, by))
}

pub(crate) fn at_line(n: u64, e: Error) -> Error {
    match e {
        Error::InvalidArgument { field, reason } => {
            Error::invalid(format!("line {n}"), format!("{field}: {reason}"))
        }
        other => other,
    }
}

/// `memories[3].embedding: ...` from a batch write becomes `line 1203: embedding: ...`.
pub(crate) fn name_line(e: Error, list: &str, numbers: &[u64]) -> Error {
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

    /// A memory's line as it was built before lines were typed: the memory as a JSON
    /// object, without `namespace`, with its vector as base64 and its `kind`.
    fn line_as_an_object(mut m: crate::memory::Memory) -> String {
        let vector = m.vector.take();
        let mut line = serde_json::to_value(m).unwrap();
        let map = line.as_object_mut().unwrap();
        map.remove("namespace");
        if let Some(v) = vector {
            map.insert("vector".into(), Value::String(encode_vector(&v)));
        }
        with_kind("memory", line).to_string()
    }

    #[test]
    fn a_memory_line_is_the_text_it_was_when_built_as_an_object() {
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let full = crate::memory::Memory {
            id: "m-1 \"quoted\"".into(),
            namespace: "ns".into(),
            agent_id: Some("agent".into()),
            content: "caf\u{e9} \n line".into(),
            importance: 0.123_456_789,
            tags: vec!["b".into(), "a".into()],
            metadata: json!({"z": 1, "a": {"y": [1.5, null, "x"], "b": true}, "kind": "mine"})
                .as_object()
                .cloned()
                .unwrap(),
            entities: vec!["Ada".into()],
            memory_type: crate::memory::MemoryType::Procedural,
            session_id: Some("s".into()),
            created_at: at("2020-01-02T03:04:05.678Z"),
            updated_at: at("2021-01-02T03:04:05.678912Z"),
            expires_at: Some(at("2030-01-02T03:04:05Z")),
            vector: Some(vec![0.5, -1.0, 3.25e-8]),
        };
        let bare = crate::memory::Memory {
            agent_id: None,
            tags: Vec::new(),
            metadata: Map::new(),
            entities: Vec::new(),
            session_id: None,
            expires_at: None,
            vector: None,
            importance: 1.0,
            ..full.clone()
        };
        for m in [full, bare] {
            assert_eq!(export_memory(&m).unwrap().get(), line_as_an_object(m));
        }
    }

    #[test]
    fn batch_errors_name_the_line_of_the_item() {
        let e = name_line(Error::invalid("memories[1].embedding", "bad"), "memories", &[10, 11]);
        assert_eq!(e.to_string(), "line 11: embedding: bad");
        let e = name_line(Error::invalid("namespace", "bad"), "memories", &[10]);
        assert_eq!(e.to_string(), "namespace: bad");
    }
}
