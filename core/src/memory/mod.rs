//! Memories: store (single and all-or-nothing batch), get, delete, recall, forget. How recall
//! ranks, and which memories are live, is [`crate::rank`]; the background decay/TTL sweep is
//! the engine's.

mod hits;
mod read;
#[cfg(test)]
mod tests;
mod types;
mod validate;
mod write;

pub(crate) use hits::encode_hits;
pub(crate) use read::*;
pub use types::*;
pub(crate) use validate::*;
pub(crate) use write::*;

pub use crate::embed::CALLER_EMBEDDER;

pub use crate::keyword::RecallMode;

pub use crate::rank::RecallHit;
pub(crate) use crate::rank::*;

pub(crate) use crate::records::memory::{
    decode_record, encode_record, memory_key, read_memory, scan_memories, split_record,
    StoredMemory, RECORD_HEADER,
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
