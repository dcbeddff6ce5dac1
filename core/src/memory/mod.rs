//! Memories: store (single and all-or-nothing batch), get, delete, recall, forget, and the
//! decay/TTL sweep.
//!
//! Ranking: `score = similarity * (0.7 + 0.3 * effective_importance)`, where similarity is
//! cosine in [-1, 1] and `effective_importance = importance * exp(-decay_rate * days)` with
//! `days` the time since the memory was created or last updated. Memories whose effective
//! importance is below the namespace's `min_importance`, or whose expiry has passed, are
//! never returned and are removed by the background sweep.

mod rank;
mod read;
mod sweep;
#[cfg(test)]
mod tests;
mod types;
mod validate;
mod write;

pub(crate) use rank::*;
pub(crate) use read::*;
pub(crate) use sweep::*;
pub use types::*;
pub(crate) use validate::*;
pub(crate) use write::*;

pub use crate::embed::CALLER_EMBEDDER;

pub use crate::keyword::RecallMode;

pub(crate) use crate::records::memory::{
    decode_record, decode_record as decode_stored, encode_record, judge_at, memory_key,
    read_memory, scan_memories, split_record, StoredMemory, RECORD_HEADER,
};

pub use crate::records::{Memory, MemoryType};

/// Longest content, in bytes.
pub const MAX_CONTENT_BYTES: usize = 64 * 1024;

/// Most tags on one memory.
pub const MAX_TAGS: usize = 64;

/// Longest tag, in bytes.
pub const MAX_TAG_BYTES: usize = 128;

/// Most memories in one batch.
pub const MAX_BATCH: usize = 1000;

/// Largest `top_k`.
pub const MAX_TOP_K: usize = 1000;

/// A recall filter whose secondary keys name at most this many memories is answered by scoring
/// exactly those memories' vectors; a broader one by the vector search with the filter applied
/// to its candidates.
pub(crate) const FILTERED_EXACT_MAX: usize = 20_000;

/// Longest caller-chosen memory id, in characters.
pub const MAX_ID_CHARS: usize = 256;

/// Most ids in one `get_memories`.
pub const MAX_GET: usize = 1000;
