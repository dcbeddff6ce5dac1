//! Preparing an import: lines checked and turned into the operations' arguments; an error names
//! the line it comes from.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{base64_vector, parse_line, Kind, FORMATS, MAX_LINE_BYTES};
use crate::error::{Error, Result};
use crate::graph::{AddEntity, AddRelation};
use crate::memory::{StoreMemory, CALLER_EMBEDDER};

/// Checks a memory line's vector against the namespace's dimensions.
pub(super) fn check_dims(v: &[f32], dims: Option<u32>) -> std::result::Result<(), String> {
    match dims {
        Some(d) if v.len() != d as usize => {
            Err(format!("vector has {} dimensions, namespace has {d}", v.len()))
        }
        _ => Ok(()),
    }
}

/// A memory line's `expires_at` as the seconds it has left to live; `None` once expired.
pub(super) fn seconds_left(
    expires_at: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> std::result::Result<Option<u64>, String> {
    let t =
        chrono::DateTime::parse_from_rfc3339(expires_at).map_err(|e| format!("expires_at: {e}"))?;
    let left = t.timestamp() - now.timestamp();
    Ok((left > 0).then_some(left as u64))
}

/// A memory line's `vector`: base64 text or an array of numbers.
pub(super) fn line_vector(v: Value) -> std::result::Result<Vec<f32>, String> {
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

/// An import line: a JSON object, the text of a memory line, or a memory line read typed
/// from its text (see [`MemoryLineIn::read`]).
pub(crate) enum LineIn {
    Object(Map<String, Value>),
    Text(String),
    Typed(Box<MemoryLineIn>),
}

impl LineIn {
    /// The line as an object (a text line is parsed). A typed line is a memory line, whose
    /// group reads it typed (see [`prepare_memories`]).
    fn into_object(self, number: u64) -> Result<Map<String, Value>> {
        match self {
            LineIn::Object(map) => Ok(map),
            LineIn::Text(text) => Ok(parse_line(number, text.as_bytes())?.1),
            LineIn::Typed(_) => {
                Err(Error::Internal(format!("line {number}: a memory line in another group")))
            }
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
pub(super) const MEMORY_FIELDS: &[&str] = &[
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
pub(super) const MEMORY_DERIVED: &[&str] =
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
            crate::document::decode::<crate::records::DecayPolicy>(policy.clone())
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
                let entity = crate::document::decode::<AddEntity>(Value::Object(map))
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
                let relation = crate::document::decode::<AddRelation>(Value::Object(map))
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
pub(crate) struct MemoryLineIn {
    id: String,
    content: String,
    importance: Option<f64>,
    tags: Option<Vec<String>>,
    metadata: Option<Map<String, Value>>,
    agent_id: Option<String>,
    memory_type: Option<crate::memory::MemoryType>,
    session_id: Option<String>,
    entities: Option<Vec<String>>,
    expires_at: Option<String>,
    vector: Option<String>,
    /// Read and checked by [`MemoryLineIn::read`].
    kind: Option<String>,
    #[allow(dead_code)] // read and left: derived or set again by the import
    #[allow(dead_code)]
    created_at: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    updated_at: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    namespace: Option<serde::de::IgnoredAny>,
}

impl MemoryLineIn {
    /// The memory line `text` read typed, when it reads so and its `kind` is `memory`: a line
    /// that [`line_head`] finds a memory line (a JSON object, one `kind`, no longer than
    /// [`MAX_LINE_BYTES`]), so read once instead of checked first. `None` otherwise: the line
    /// is checked and read as before.
    ///
    /// [`line_head`]: super::line_head
    pub(crate) fn read(text: &str) -> Option<Box<MemoryLineIn>> {
        if text.len() > MAX_LINE_BYTES {
            return None;
        }
        let line: MemoryLineIn = serde_json::from_str(text).ok()?;
        (line.kind.as_deref() == Some("memory")).then(|| Box::new(line))
    }
}

/// What [`typed_memory`] made of a memory line.
pub(crate) enum Typed {
    Item(Box<StoreMemory>),
    /// Left out: expired.
    Expired,
}

/// A memory line read typed from its text (see [`MemoryLineIn`]), checked as
/// [`prepare_memories`] checks an object.
pub(crate) fn typed_memory(
    line: MemoryLineIn,
    n: u64,
    dims: Option<u32>,
    plan: &Vectors,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Typed> {
    let at = |r: String| Error::invalid(format!("line {n}"), r);
    let mut ttl = None;
    if let Some(t) = &line.expires_at {
        match seconds_left(t, now).map_err(at)? {
            Some(left) => ttl = Some(left),
            None => return Ok(Typed::Expired),
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
    Ok(Typed::Item(Box::new(StoreMemory {
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
    })))
}

/// Memory lines as `store_memories` items, checked (vector size, fields); expired ones are
/// counted and left out. Their vectors are dropped when `plan` says to embed again.
pub(super) fn prepare_memories(
    items: Numbered,
    dims: Option<u32>,
    plan: &Vectors,
) -> Result<Group> {
    let now = chrono::Utc::now();
    let mut out = Vec::with_capacity(items.len());
    let mut kept = Vec::with_capacity(items.len());
    let mut expired = 0;
    for (n, line) in items {
        let at = |r: String| Error::invalid(format!("line {n}"), r);
        let (typed, mut map) = match line {
            LineIn::Typed(line) => (Some(*line), Map::new()),
            LineIn::Text(text) => match MemoryLineIn::read(&text) {
                Some(line) => (Some(*line), Map::new()),
                None => (None, parse_line(n, text.as_bytes())?.1),
            },
            LineIn::Object(map) => (None, map),
        };
        if let Some(line) = typed {
            match typed_memory(line, n, dims, plan, now)? {
                Typed::Item(item) => {
                    out.push(*item);
                    kept.push(n);
                }
                Typed::Expired => expired += 1,
            }
            continue;
        }
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
            crate::document::decode(Value::Object(item)).map_err(|e| at_line(n, e))?;
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
