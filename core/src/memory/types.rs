//! The arguments and results of the memory operations (store, update, recall, forget); the
//! stored [`Memory`] itself is a record (see [`crate::records`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{MemoryType, RecallMode};

/// Arguments of [`Handle::store_memory`] (and one item of a batch).
///
/// [`Handle::store_memory`]: crate::Handle::store_memory
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StoreMemory {
    /// Target namespace (see [`Handle::store_memory`] for how it is chosen when absent).
    ///
    /// [`Handle::store_memory`]: crate::Handle::store_memory
    #[serde(default)]
    pub namespace: Option<String>,
    /// The memory's id (1-256 printable characters, unique in the namespace): storing an id
    /// again replaces that memory, keeping its `created_at`. Default: a new UUID v7.
    #[serde(default)]
    pub id: Option<String>,
    /// Agent or end-user label.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The text (1 to 65,536 bytes).
    pub content: String,
    /// In [0, 1]; default 0.5.
    #[serde(default)]
    pub importance: Option<f64>,
    /// Up to 64 tags of up to 128 bytes.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Metadata object (up to 64 KiB).
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// Seconds to live (default: the namespace's `ttl_default`).
    #[serde(default)]
    pub ttl: Option<u64>,
    /// Caller-supplied vector (otherwise the engine's embedder embeds `content`).
    #[serde(default)]
    pub embedding: Option<Vec<f32>>,
    /// Entity names this memory mentions.
    #[serde(default)]
    pub entities: Vec<String>,
    /// Kind of memory (default `episodic`).
    #[serde(default)]
    pub memory_type: Option<MemoryType>,
    /// Session label (1-256 bytes).
    #[serde(default)]
    pub session_id: Option<String>,
}

impl StoreMemory {
    /// A memory with just content.
    pub fn text(content: impl Into<String>) -> Self {
        StoreMemory { content: content.into(), ..Default::default() }
    }
}

/// Arguments of [`Handle::update_memory`]: the fields given change, the others stay.
///
/// [`Handle::update_memory`]: crate::Handle::update_memory
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateMemory {
    /// Namespace (optional for a key with exactly one namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The memory's id.
    pub id: String,
    /// New text (re-embedded unless `embedding` is given).
    #[serde(default)]
    pub content: Option<String>,
    /// New caller-supplied vector.
    #[serde(default)]
    pub embedding: Option<Vec<f32>>,
    /// New importance in [0, 1].
    #[serde(default)]
    pub importance: Option<f64>,
    /// New tags (replace the old ones).
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Metadata merged key by key into the stored metadata (a `null` value removes a key),
    /// or replacing it whole with `replace: true`.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// Replace the metadata instead of merging it.
    #[serde(default)]
    pub replace: bool,
    /// Seconds to live from now.
    #[serde(default)]
    pub ttl: Option<u64>,
    /// New kind of memory.
    #[serde(default)]
    pub memory_type: Option<MemoryType>,
    /// New session label.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// Arguments of [`Handle::recall`].
///
/// [`Handle::recall`]: crate::Handle::recall
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Recall {
    /// Namespace (see [`Handle::store_memory`] for how it is chosen when absent).
    ///
    /// [`Handle::store_memory`]: crate::Handle::store_memory
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only memories with this agent label.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Query text (embedded with the namespace's embedder).
    #[serde(default)]
    pub query: Option<String>,
    /// Query vector, instead of text.
    #[serde(default)]
    pub vector: Option<Vec<f32>>,
    /// Results wanted (default 10, at most 1000).
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Only memories carrying every one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only memories whose effective importance is at least this.
    #[serde(default)]
    pub min_importance: Option<f64>,
    /// Only memories created at or after this time.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// Only memories created before this time.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// Also return memories linked to entities within this many graph hops of the entities
    /// the best hits mention.
    #[serde(default)]
    pub expand: Option<u32>,
    /// How candidates are found: `vector`, `keyword` (BM25 over the memories' words) or
    /// `hybrid` (both, fused). Default: hybrid for a text query, vector for a vector query.
    #[serde(default)]
    pub mode: Option<RecallMode>,
    /// Hybrid recall: the weight in [0, 1] of the vector score in a weighted sum with the
    /// keyword score, each scaled to [0, 1] over the candidates. With a static model the
    /// vector side also holds how well the memory's tokens match the query's (default 0.95);
    /// otherwise the default is 0.6.
    #[serde(default)]
    pub vector_weight: Option<f64>,
    /// Only memories matching this filter (the filter language of `list_memories`).
    #[serde(default)]
    pub filter: Option<Value>,
    /// Only memories of this kind.
    #[serde(default)]
    pub memory_type: Option<MemoryType>,
    /// Only memories with this session label.
    #[serde(default)]
    pub session_id: Option<String>,
}

impl Recall {
    /// A text query.
    pub fn text(query: impl Into<String>) -> Self {
        Recall { query: Some(query.into()), ..Default::default() }
    }

    /// A vector query.
    pub fn vector(v: Vec<f32>) -> Self {
        Recall { vector: Some(v), ..Default::default() }
    }

    /// In namespace `ns`.
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = Some(ns.into());
        self
    }

    /// At most `k` results.
    pub fn top_k(mut self, k: usize) -> Self {
        self.top_k = Some(k);
        self
    }
}

/// Arguments of [`Handle::batch_forget`]. At least one filter is required; given filters
/// must all match.
///
/// [`Handle::batch_forget`]: crate::Handle::batch_forget
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Forget {
    /// Namespace (see [`Handle::store_memory`] for how it is chosen when absent).
    ///
    /// [`Handle::store_memory`]: crate::Handle::store_memory
    #[serde(default)]
    pub namespace: Option<String>,
    /// These memory ids.
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    /// Memories with this agent label.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Memories carrying every one of these tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Memories created before this time.
    #[serde(default)]
    pub before: Option<DateTime<Utc>>,
    /// Memories whose effective importance is below this.
    #[serde(default)]
    pub below_importance: Option<f64>,
    /// Memories matching this filter (the filter language of `list_memories`).
    #[serde(default)]
    pub filter: Option<Value>,
}

/// The answer to a forget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Forgotten {
    /// How many memories were removed.
    pub forgotten: u64,
}
