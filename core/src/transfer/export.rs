//! Writing an export: memory and graph rows as lines, vectors as base64 of little-endian f32,
//! and the cursor an export goes on from.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::Line;
use crate::error::{Error, Result};

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

pub(super) fn with_kind(kind: &str, mut v: Value) -> Value {
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
pub(super) struct MemoryLine<'a> {
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
pub(super) fn base64_vector(text: &str) -> std::result::Result<Vec<f32>, String> {
    decode_vector(text).ok_or_else(|| {
        "vector: not the base64 of little-endian f32 values (nor an array of numbers)".into()
    })
}
