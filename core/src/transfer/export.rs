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
    decode_whole_groups(text.as_bytes()).or_else(|| decode_any(text))
}

/// Each byte's value in standard base64's alphabet as the `i`-th character of a group of
/// four (the 6 bits it gives the group's 24, in place), or [`NOT_BASE64`] for a byte outside
/// the alphabet (padding included).
const BASE64_VALUES: [[u32; 256]; 4] = {
    let mut values = [[NOT_BASE64; 256]; 4];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < 4 {
        let mut c = 0;
        while c < alphabet.len() {
            values[i][alphabet[c] as usize] = (c as u32) << (18 - 6 * i);
            c += 1;
        }
        i += 1;
    }
    values
};

/// What [`BASE64_VALUES`] gives a byte outside the alphabet: bits above a group's 24.
const NOT_BASE64: u32 = 0xFF00_0000;

/// [`decode_vector`] of text that is groups of 16 characters of the alphabet only, without
/// padding (every export's vector: 12 bytes, three f32, a group), decoded straight into the
/// values — what the base64 engine decodes it to, read as f32, without its general decoder
/// and the bytes in between (the import's largest cost of a line after reading its JSON).
/// `None` for any other text, which [`decode_any`] reads.
#[allow(clippy::many_single_char_names)] // a group's twelve bytes
fn decode_whole_groups(text: &[u8]) -> Option<Vec<f32>> {
    if !text.len().is_multiple_of(16) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 16 * 3);
    let mut outside = 0;
    for group in text.chunks_exact(16) {
        let mut bytes = [0u8; 12];
        for (quad, three) in group.chunks_exact(4).zip(bytes.chunks_exact_mut(3)) {
            let bits = BASE64_VALUES[0][usize::from(quad[0])]
                | BASE64_VALUES[1][usize::from(quad[1])]
                | BASE64_VALUES[2][usize::from(quad[2])]
                | BASE64_VALUES[3][usize::from(quad[3])];
            outside |= bits;
            three.copy_from_slice(&bits.to_be_bytes()[1..]);
        }
        // The twelve bytes by name: mapped over their offsets instead, the decoding took 2.7
        // times the instructions (callgrind).
        let [a, b, c, d, e, f, g, h, i, j, k, l] = bytes;
        out.extend_from_slice(&[
            f32::from_le_bytes([a, b, c, d]),
            f32::from_le_bytes([e, f, g, h]),
            f32::from_le_bytes([i, j, k, l]),
        ]);
    }
    (outside & NOT_BASE64 == 0).then_some(out)
}

/// [`decode_vector`] by the base64 engine: any text it reads (padding included).
fn decode_any(text: &str) -> Option<Vec<f32>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The base64 engine's reading of `text` as f32 values, as vectors were read before
    /// [`decode_whole_groups`].
    fn by_the_engine(text: &str) -> Option<Vec<u32>> {
        decode_any(text).map(|v| v.iter().map(|x| x.to_bits()).collect())
    }

    fn decoded(text: &str) -> Option<Vec<u32>> {
        decode_vector(text).map(|v| v.iter().map(|x| x.to_bits()).collect())
    }

    /// Vectors of every length up to 40 values, with any bits (NaNs, infinities, subnormals),
    /// read back as written; and every text made from them by changing, adding or removing a
    /// character reads as the base64 engine reads it (the same values, or `None` alike).
    #[test]
    fn vectors_are_read_as_the_base64_engine_reads_them() {
        let mut next = crate::testing::xorshift(0x2545_f491_4f6c_dd1d);
        for len in 0..=40 {
            let v: Vec<f32> = (0..len).map(|_| f32::from_bits(next() as u32)).collect();
            let text = encode_vector(&v);
            let bits: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
            assert_eq!(decoded(&text), Some(bits), "{text}");
            let mut variants = vec![format!("{text}A"), format!("{text}AAAA"), format!("{text}=")];
            for at in (0..text.len()).step_by(1 + text.len() / 24) {
                for c in ["A", "/", "+", "=", "-", "_", " ", "\n", "é", "\0"] {
                    let mut changed = text.clone();
                    changed.replace_range(at..=at, c);
                    variants.push(changed);
                }
                let mut shorter = text.clone();
                shorter.remove(at);
                variants.push(shorter);
            }
            for t in &variants {
                assert_eq!(decoded(t), by_the_engine(t), "{t:?}");
            }
        }
        for t in ["", "====", "AAAA====AAAAAAAA", "AAAAAAAAAAAAAAA=", "AAAAAAAAAAAAAA=="] {
            assert_eq!(decoded(t), by_the_engine(t), "{t:?}");
        }
    }
}
