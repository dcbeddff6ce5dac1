//! Memories: store (single and all-or-nothing batch), get, delete, recall, forget, and the
//! decay/TTL sweep.
//!
//! Ranking: `score = similarity * (0.7 + 0.3 * effective_importance)`, where similarity is
//! cosine in [-1, 1] and `effective_importance = importance * exp(-decay_rate * days)` with
//! `days` the time since the memory was created or last updated. Memories whose effective
//! importance is below the namespace's `min_importance`, or whose expiry has passed, are
//! never returned and are removed by the background sweep.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::Principal;
use crate::datastore::{ns_key, put_last, DataTables, NamespaceStats};
use crate::embed::Embedder;
pub use crate::embed::CALLER_EMBEDDER;
use crate::engine::EngineInner;
use crate::error::{Error, Result};
pub use crate::keyword::RecallMode;
use crate::namespace::{DecayPolicy, NamespaceRecord};
use crate::quota::{QuotaLink, Reservation};
pub(crate) use crate::records::memory::{
    decode_record, decode_record as decode_stored, encode_record, judge_at, memory_key,
    read_memory, scan_memories, split_record, StoredMemory, RECORD_HEADER,
};
pub use crate::records::{Memory, MemoryType};
use crate::storage::RoTxn;
use crate::store::Store;
use crate::vector::encode_row;

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

const IMPORTANCE_WEIGHT: f64 = 0.3;
/// A recall filter whose secondary keys name at most this many memories is answered by scoring
/// exactly those memories' vectors; a broader one by the vector search with the filter applied
/// to its candidates.
pub(crate) const FILTERED_EXACT_MAX: usize = 20_000;
const MICROS_PER_DAY: f64 = 86_400_000_000.0;

/// Longest caller-chosen memory id, in characters.
pub const MAX_ID_CHARS: usize = 256;
/// Most ids in one `get_memories`.
pub const MAX_GET: usize = 1000;

/// Arguments of [`Handle::store_memory`] (and one item of a batch).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StoreMemory {
    /// Target namespace (see [`Handle::store_memory`] for how it is chosen when absent).
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Recall {
    /// Namespace (see [`Handle::store_memory`] for how it is chosen when absent).
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

/// One recall result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RecallHit {
    /// Memory id.
    pub id: String,
    /// The text.
    pub content: String,
    /// Ranking score (see the module docs).
    pub score: f64,
    /// Cosine similarity to the query.
    pub similarity: f64,
    /// Stored importance.
    pub importance: f64,
    /// Importance after decay.
    pub effective_importance: f64,
    /// Agent label.
    pub agent_id: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Metadata.
    pub metadata: Map<String, Value>,
    /// Kind of memory.
    pub memory_type: MemoryType,
    /// Session label.
    pub session_id: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last update.
    pub updated_at: DateTime<Utc>,
    /// Whether this hit was reached through the knowledge graph rather than by similarity.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub via_graph: bool,
    /// BM25 score of the query's words in this memory (keyword and hybrid recall; 0 when
    /// none of them occurs in it).
    #[serde(default)]
    pub keyword_score: Option<f64>,
    /// Cosine similarity to the query vector (vector and hybrid recall).
    #[serde(default)]
    pub vector_score: Option<f64>,
}

/// Arguments of [`Handle::batch_forget`]. At least one filter is required; given filters
/// must all match.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Forget {
    /// Namespace (see [`Handle::store_memory`] for how it is chosen when absent).
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

/// Which namespace a memory call addresses: the explicit namespace; else the `agent_id`
/// value; else the key's only namespace. The flag says whether `agent_id` was used as the
/// namespace (then it is not also a filter).
pub(crate) fn target_namespace(
    principal: &Principal,
    namespace: Option<&str>,
    agent_id: Option<&str>,
) -> Result<(String, bool)> {
    match (namespace, agent_id) {
        (Some(ns), _) => Ok((ns.to_owned(), false)),
        (None, Some(agent)) => Ok((agent.to_owned(), true)),
        (None, None) => {
            principal.only_namespace().map(|n| (n.to_owned(), false)).ok_or_else(|| {
                Error::invalid(
                    "namespace",
                    "required (the key does not reach exactly one namespace)",
                )
            })
        }
    }
}

pub(crate) fn validate_tags(tags: &[String], field: &str) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::invalid(field, format!("at most {MAX_TAGS} tags")));
    }
    for (i, t) in tags.iter().enumerate() {
        if t.is_empty() || t.len() > MAX_TAG_BYTES {
            return Err(Error::invalid(
                format!("{field}[{i}]"),
                format!("must be 1-{MAX_TAG_BYTES} bytes"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn validate_content(content: &str, field: &str) -> Result<()> {
    if content.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if content.len() > MAX_CONTENT_BYTES {
        return Err(Error::invalid(field, format!("must be at most {MAX_CONTENT_BYTES} bytes")));
    }
    Ok(())
}

pub(crate) fn validate_ttl(ttl: Option<u64>, field: &str) -> Result<()> {
    if ttl.is_some_and(|t| t == 0 || t > 100 * 365 * 86_400) {
        return Err(Error::invalid(field, "must be between 1 second and 100 years"));
    }
    Ok(())
}

/// A caller-chosen memory id: 1-256 characters, none of them a control character.
pub(crate) fn validate_id(id: &str, field: &str) -> Result<()> {
    let chars = id.chars().count();
    if chars == 0 || chars > MAX_ID_CHARS {
        return Err(Error::invalid(field, format!("must be 1-{MAX_ID_CHARS} characters")));
    }
    if id.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must be printable (no control characters)"));
    }
    Ok(())
}

/// Every id of a list asked for (`field[i]` names a bad one): an id no memory can have is a
/// mistake to report, not an absent memory.
pub(crate) fn validate_ids(ids: &[String], field: &str) -> Result<()> {
    ids.iter().enumerate().try_for_each(|(i, id)| validate_id(id, &format!("{field}[{i}]")))
}

pub(crate) fn validate_session(session: Option<&str>, field: &str) -> Result<()> {
    if session.is_some_and(|s| s.is_empty() || s.len() > 256 || s.chars().any(char::is_control)) {
        return Err(Error::invalid(field, "must be 1-256 bytes of printable characters"));
    }
    Ok(())
}

pub(crate) fn validate_agent(agent: Option<&str>) -> Result<()> {
    if agent.is_some_and(|a| a.is_empty() || a.len() > 256) {
        return Err(Error::invalid("agent_id", "must be 1-256 bytes"));
    }
    Ok(())
}

pub(crate) fn validate_importance(v: f64, field: &str) -> Result<()> {
    if !v.is_finite() || !(0.0..=1.0).contains(&v) {
        return Err(Error::invalid(field, "must be a number between 0 and 1"));
    }
    Ok(())
}

pub(crate) fn effective_importance(m: &Memory, policy: &DecayPolicy, now: i64) -> f64 {
    decayed(m.importance, m.updated_at, policy, now)
}

/// Importance `importance` of a memory last updated at `updated_at`, decayed to `now`.
pub(crate) fn decayed(
    importance: f64,
    updated_at: DateTime<Utc>,
    policy: &DecayPolicy,
    now: i64,
) -> f64 {
    if policy.decay_rate <= 0.0 {
        return importance;
    }
    let days = ((now - updated_at.timestamp_micros()).max(0) as f64) / MICROS_PER_DAY;
    importance * (-policy.decay_rate * days).exp()
}

pub(crate) fn is_live(m: &Memory, policy: &DecayPolicy, now: i64) -> bool {
    m.expires_at.is_none_or(|e| e.timestamp_micros() > now)
        && effective_importance(m, policy, now) >= policy.min_importance
}

/// A validated memory ready to be written, serialised once.
pub(crate) struct Prepared {
    pub memory: Memory,
    /// The memory's key (see [`memory_key`]).
    pub id: [u8; 16],
    pub json: Vec<u8>,
    pub vector: Option<Vec<f32>>,
    /// Whether the content is embedded when no vector is given (an update that leaves the
    /// content alone keeps the stored vector instead).
    pub embed: bool,
}

impl Prepared {
    pub(crate) fn new(memory: Memory, vector: Option<Vec<f32>>) -> Result<Prepared> {
        let json = serde_json::to_vec(&memory)?;
        Ok(Prepared { id: memory_key(&memory.id), memory, json, vector, embed: true })
    }

    /// Bytes the memory will be charged (see [`charged_size`]), without its keyword
    /// postings (see [`postings_charge`]).
    fn charge(&self) -> u64 {
        charged_size(
            RECORD_HEADER + self.json.len(),
            self.vector.as_ref().map_or(0, |v| row_len(v.len())),
        )
    }

    /// What a new memory is expected to be charged, its postings included (written with a
    /// vector, it has a slot and so is in the keyword index).
    pub(crate) fn estimate(&self) -> u64 {
        self.charge() + postings_charge(self.vector.as_ref().map(|_| 0), &self.memory.content)
    }
}

/// Builds an updated memory from the stored one (see [`Handle::update_memory`]).
pub(crate) type Patch<'a> = dyn Fn(Memory, &mut Prepared) -> Result<Memory> + Sync + 'a;

/// A write of memories between [`Handle::begin_write`] and [`Handle::finish_write`].
pub(crate) struct WriteStart<'a> {
    pub(crate) env: Arc<Store<DataTables>>,
    /// What made the items' vectors.
    pub(crate) embedder_name: String,
    pub(crate) chain: Vec<QuotaLink>,
    pub(crate) reservation: Reservation<'a>,
}

/// A write of memories inside the namespace's transaction: each item through
/// [`put_memory`], then the namespace's stats.
pub(crate) fn write_rows(
    inner: &EngineInner,
    rec: &NamespaceRecord,
    items: &mut [Prepared],
    embedder_name: &str,
    patch: Option<&Patch<'_>>,
    w: &mut heed3::RwTxn<'_>,
    t: &DataTables,
) -> Result<(WriteEffects, NamespaceStats)> {
    if inner.is_dead(rec.id) {
        return Err(Error::namespace_forbidden(&rec.name));
    }
    let mut stats = t.stats_of(w, rec.id)?;
    if !stats.fields_indexed {
        crate::filter::build_all(t, w, rec.id)?;
        stats.fields_indexed = true;
    }
    // A namespace's first memory: nothing to index before it (see `ensure_keywords`).
    stats.keyword_indexed |= stats.memory_count == 0;
    let dims = items.iter().find_map(|p| p.vector.as_ref()).map(Vec::len);
    check_vector_space(rec, &mut stats, dims, embedder_name)?;
    let mut effects = WriteEffects::default();
    for (i, p) in items.iter_mut().enumerate() {
        if let Some(v) = &p.vector {
            if Some(v.len()) != dims {
                return Err(Error::invalid(
                    format!("memories[{i}].embedding"),
                    format!("has {} dimensions, the namespace uses {}", v.len(), dims.unwrap_or(0)),
                ));
            }
        }
        match put_memory(t, w, rec.id, &mut stats, p, patch, &mut effects)? {
            RowWrite::New(slot) => effects.added.push((slot, i)),
            RowWrite::Replaced(slot) => effects.replaced.push((slot, i)),
            RowWrite::None => {}
        }
    }
    stats.vector_writes += 1;
    t.put_stats(w, rec.id, &stats)?;
    Ok((effects, stats))
}

/// What a transaction's memory writes did, for the quota and the cached vectors.
#[derive(Default)]
pub(crate) struct WriteEffects {
    /// Bytes charged for the written memories.
    pub charged: u64,
    /// Bytes released by the memories they replaced.
    pub freed: u64,
    /// New vector rows: (slot, index of the item).
    pub added: Vec<(u32, usize)>,
    /// Vector rows overwritten in place (a stored id with a new vector keeps its slot):
    /// (slot, index of the item).
    pub replaced: Vec<(u32, usize)>,
    /// Vector rows of replaced memories, deleted.
    pub removed_slots: Vec<u32>,
}

/// What [`put_memory`] did with the memory's vector.
pub(crate) enum RowWrite {
    /// No vector row written.
    None,
    /// A new row in this (new) slot.
    New(u32),
    /// The stored memory's row, overwritten in place in its slot.
    Replaced(u32),
}

/// Applies one memory write inside the namespace's write transaction — the one place every
/// write path (store, batch, update, import) goes through. A memory already stored under the
/// same id is replaced in place: it keeps its `created_at` and its vector slot (a new vector
/// overwrites the row), and only what changed is written again — the secondary keys whose
/// value changed, the keyword postings if the content changed, the graph links if the
/// entities changed. With `patch`, the new memory is built from the stored one (`not_found`
/// if absent), and a memory given no new vector keeps its row.
#[allow(clippy::many_single_char_names, clippy::too_many_lines)] // t, w, p as in every transaction body
pub(crate) fn put_memory(
    t: &DataTables,
    w: &mut heed3::RwTxn<'_>,
    ns: u64,
    stats: &mut NamespaceStats,
    p: &mut Prepared,
    patch: Option<&Patch<'_>>,
    effects: &mut WriteEffects,
) -> Result<RowWrite> {
    let key = ns_key(ns, &p.id);
    let old = match t.memories.get(w, &key)? {
        Some(bytes) => Some((bytes.len(), decode_record(bytes)?)),
        None => None,
    };
    let Some((len, stored)) = old else {
        if patch.is_some() {
            return Err(Error::not_found("memory", &p.memory.id));
        }
        stats.memory_count += 1;
        let slot = match &p.vector {
            Some(v) => {
                let s = stats.next_slot;
                stats.next_slot += 1;
                put_last(&t.vectors, w, &ns_key(ns, &s.to_be_bytes()), &encode_row(&p.id, v))?;
                Some(s)
            }
            None => None,
        };
        // Generated ids (UUID v7) sort by time: a new one goes at the end of the table. A
        // caller's id is hashed, so its key lands anywhere and is put without trying that.
        let record = encode_record(slot, &p.json);
        if uuid::Uuid::from_bytes(p.id).get_version_num() == 7 {
            put_last(&t.memories, w, &key, &record)?;
        } else {
            t.memories.put(w, &key, &record)?;
        }
        // A memory with a vector slot is in the keyword index (see [`postings_charge`]).
        let terms = slot.map(|_| crate::keyword::Terms::of(&p.memory.content));
        if let (Some(s), Some(terms)) = (slot, &terms) {
            crate::keyword::index(t, w, ns, s, terms, stats)?;
        }
        for e in &p.memory.entities {
            crate::graph::link_memory(t, w, ns, e, &p.id)?;
        }
        crate::filter::put_keys(t, w, ns, &p.id, &p.memory, slot)?;
        stats.expiring += u64::from(p.memory.expires_at.is_some());
        let size = p.charge() + terms.as_ref().map_or(0, crate::keyword::Terms::charge);
        stats.storage_bytes += size;
        effects.charged += size;
        return Ok(slot.map_or(RowWrite::None, RowWrite::New));
    };
    if let Some(patch) = patch {
        p.memory = patch(stored.memory.clone(), p)?;
        p.json = serde_json::to_vec(&p.memory)?;
    } else if p.memory.created_at != stored.memory.created_at {
        p.memory.created_at = stored.memory.created_at;
        set_created_at(&mut p.json, &p.memory.created_at)?;
    }
    // The stored row: overwritten by a new vector, kept by an update that gives none, deleted
    // by a store without a vector (an import line without one).
    let mut old_row = 0;
    let mut row_kept = false;
    let (slot, write) = match (stored.slot, &p.vector) {
        (Some(s), Some(v)) => {
            let vkey = ns_key(ns, &s.to_be_bytes());
            // The row overwritten has the namespace's dimensions, as the new one.
            old_row = row_len(v.len());
            let row = encode_row(&p.id, v);
            // The same vector again (an import run again, a document added again): its row
            // and index cell stay as they are, and only a new agent reaches the cached copy.
            if t.vectors.get(w, &vkey)? == Some(row.as_slice()) {
                let same_agent = p.memory.agent_id == stored.memory.agent_id;
                (Some(s), if same_agent { RowWrite::None } else { RowWrite::Replaced(s) })
            } else {
                t.vectors.put(w, &vkey, &row)?;
                if crate::filter::mark_refile(t, w, ns, s, &row)? {
                    stats.refile += 1;
                }
                (Some(s), RowWrite::Replaced(s))
            }
        }
        (Some(s), None) if patch.is_some() => {
            row_kept = true;
            (Some(s), RowWrite::None)
        }
        (Some(s), None) => {
            let vkey = ns_key(ns, &s.to_be_bytes());
            if let Some(r) = t.vectors.get(w, &vkey)? {
                old_row = r.len() as u64;
            }
            t.vectors.delete(w, &vkey)?;
            if crate::filter::unmark_refile(t, w, ns, s, None)? {
                stats.refile = stats.refile.saturating_sub(1);
            }
            effects.removed_slots.push(s);
            (None, RowWrite::None)
        }
        (None, Some(v)) => {
            let s = stats.next_slot;
            stats.next_slot += 1;
            put_last(&t.vectors, w, &ns_key(ns, &s.to_be_bytes()), &encode_row(&p.id, v))?;
            (Some(s), RowWrite::New(s))
        }
        (None, None) => (None, RowWrite::None),
    };
    t.memories.put(w, &key, &encode_record(slot, &p.json))?;
    // Keyword postings (keyed by slot): written again only if the slot or the content changed.
    let reindex = slot != stored.slot || p.memory.content != stored.memory.content;
    let mut postings_freed = 0;
    let mut postings_charged = 0;
    if reindex {
        if let Some(s) = stored.slot {
            crate::keyword::unindex(t, w, ns, s, &stored.memory.content, stats)?;
            postings_freed = postings_charge(stored.slot, &stored.memory.content);
        }
        if let Some(s) = slot {
            let terms = crate::keyword::Terms::of(&p.memory.content);
            crate::keyword::index(t, w, ns, s, &terms, stats)?;
            postings_charged = terms.charge();
        }
    }
    if p.memory.entities != stored.memory.entities {
        for e in &stored.memory.entities {
            crate::graph::unlink_memory(t, w, ns, e, &p.id)?;
        }
        for e in &p.memory.entities {
            crate::graph::link_memory(t, w, ns, e, &p.id)?;
        }
    }
    if slot == stored.slot {
        crate::filter::update_keys(t, w, ns, &p.id, &stored.memory, &p.memory, slot)?;
    } else {
        crate::filter::delete_keys(t, w, ns, &p.id, &stored.memory)?;
        crate::filter::put_keys(t, w, ns, &p.id, &p.memory, slot)?;
    }
    stats.expiring = stats.expiring.saturating_sub(u64::from(stored.memory.expires_at.is_some()))
        + u64::from(p.memory.expires_at.is_some());
    // A kept row is neither released nor charged again (the prepared memory has no vector).
    let size = charged_size(len, if row_kept { 0 } else { old_row }) + postings_freed;
    let freed = size.min(stats.storage_bytes);
    stats.storage_bytes -= freed;
    effects.freed += freed;
    let size = p.charge() + postings_charged;
    stats.storage_bytes += size;
    effects.charged += size;
    Ok(write)
}

/// What a stored record is charged (its row of `row` bytes and its keyword postings
/// included), read without decoding the memory: only its slot and content are looked at.
pub(crate) fn stored_charge(bytes: &[u8], row: u64) -> Result<u64> {
    #[derive(Deserialize)]
    struct Content<'a> {
        #[serde(borrow)]
        content: std::borrow::Cow<'a, str>,
    }
    let (slot, content) = if let Some((slot, json)) = split_record(bytes) {
        (slot, serde_json::from_slice::<Content<'_>>(json)?.content)
    } else {
        let s = decode_record(bytes)?;
        (s.slot, s.memory.content.into())
    };
    Ok(charged_size(bytes.len(), slot.map_or(0, |_| row)) + postings_charge(slot, &content))
}

/// Sets the `created_at` of a memory's JSON (as [`Prepared::new`] serialised it) to `t`
/// without serialising the memory again. The field is the last `"created_at":` of the text:
/// only `updated_at` and `expires_at` (timestamps or null) follow it, nothing a caller wrote.
fn set_created_at(json: &mut Vec<u8>, t: &DateTime<Utc>) -> Result<()> {
    const FIELD: &[u8] = b"\"created_at\":\"";
    let value = json
        .windows(FIELD.len())
        .rposition(|w| w == FIELD)
        .map(|at| at + FIELD.len() - 1)
        .and_then(|start| {
            let len = json[start + 1..].iter().position(|b| *b == b'"')?;
            Some(start..start + len + 2)
        })
        .ok_or_else(|| Error::Internal("a memory's JSON has no created_at".into()))?;
    json.splice(value, serde_json::to_vec(t)?);
    Ok(())
}

/// Bytes charged for a memory's keyword postings: a memory with a vector slot is in the
/// keyword index (see [`crate::keyword::index`]).
fn postings_charge(slot: Option<u32>, content: &str) -> u64 {
    slot.map_or(0, |_| crate::keyword::charge(content))
}

/// Bytes charged for a memory: its record, its vector row, the vector's entry in an
/// approximate index (its cell, [`INDEX_ENTRY`]) and a fixed per-entry overhead. The index entry
/// is charged whether or not the namespace is large enough to be indexed yet, so its usage does
/// not jump when the background indexer builds one.
fn charged_size(record_len: usize, row_len: u64) -> u64 {
    let index_entry = if row_len == 0 { 0 } else { INDEX_ENTRY };
    record_len as u64 + row_len + index_entry + 64
}

/// Bytes an indexed vector's cell takes on disk (key, value and LMDB node overhead).
const INDEX_ENTRY: u64 = 24;

/// Bytes of a stored vector row of `dims` dimensions.
pub(crate) fn row_len(dims: usize) -> u64 {
    16 + 4 * dims as u64
}

/// What a memory's effective importance multiplies its relevance by.
pub(crate) fn importance_factor(eff: f64) -> f64 {
    1.0 - IMPORTANCE_WEIGHT + IMPORTANCE_WEIGHT * eff
}

pub(crate) fn hit(m: Memory, sim: f64, eff: f64, via_graph: bool) -> RecallHit {
    RecallHit {
        id: m.id,
        content: m.content,
        score: sim * importance_factor(eff),
        similarity: sim,
        importance: m.importance,
        effective_importance: eff,
        agent_id: m.agent_id,
        tags: m.tags,
        metadata: m.metadata,
        memory_type: m.memory_type,
        session_id: m.session_id,
        created_at: m.created_at,
        updated_at: m.updated_at,
        via_graph,
        keyword_score: None,
        vector_score: (!via_graph).then_some(sim),
    }
}

/// Fixes the namespace's dimension and embedder on first write; refuses a mismatch after.
fn check_vector_space(
    rec: &NamespaceRecord,
    stats: &mut NamespaceStats,
    dims: Option<usize>,
    embedder: &str,
) -> Result<()> {
    let Some(dims) = dims else { return Ok(()) };
    match stats.embedder.as_deref() {
        Some(CALLER_EMBEDDER) if embedder != CALLER_EMBEDDER => {
            return Err(Error::invalid(
                "embedding",
                "this namespace holds caller-supplied vectors; pass embedding",
            ));
        }
        Some(e) if e != CALLER_EMBEDDER && embedder != CALLER_EMBEDDER && e != embedder => {
            return Err(Error::invalid(
                "content",
                format!("this namespace was embedded with {e}, not {embedder}"),
            ));
        }
        _ => {}
    }
    if let Some(want) = stats.dimensions.or(rec.dimensions) {
        if want as usize != dims {
            let field = if embedder == CALLER_EMBEDDER { "embedding" } else { "content" };
            return Err(Error::invalid(
                field,
                format!("vector has {dims} dimensions, the namespace uses {want}"),
            ));
        }
    }
    stats.embedder.get_or_insert_with(|| embedder.to_owned());
    stats.dimensions = Some(dims as u32);
    Ok(())
}

/// What ranking and the liveness check read of a record, without decoding it whole: a
/// recall ranks many more candidates than it returns, and decodes only those it returns.
#[derive(Deserialize)]
pub(crate) struct RankView<'a> {
    pub(crate) importance: f64,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) expires_at: Option<DateTime<Utc>>,
    #[serde(borrow, default)]
    pub(crate) agent_id: Option<std::borrow::Cow<'a, str>>,
    /// A legacy record's slot (a current record has it in its header).
    #[serde(default)]
    slot: Option<u32>,
}

/// A record's slot and [`RankView`].
pub(crate) fn rank_view(bytes: &[u8]) -> Result<(Option<u32>, RankView<'_>)> {
    if let Some((slot, json)) = split_record(bytes) {
        return Ok((slot, serde_json::from_slice(json)?));
    }
    let view: RankView<'_> = serde_json::from_slice(bytes)?;
    Ok((view.slot, view))
}

/// A recall candidate, ranked before its record is decoded (see [`materialize`]).
#[derive(Debug, Clone)]
pub(crate) struct Ranked {
    /// The memory's key (see [`memory_key`]).
    pub key: [u8; 16],
    /// Its vector slot.
    pub slot: Option<u32>,
    /// The hit's `similarity`.
    pub sim: f64,
    /// Its effective importance.
    pub eff: f64,
    /// The hit's score (relevance times the importance factor).
    pub score: f64,
    /// The hit's `keyword_score`.
    pub keyword: Option<f64>,
    /// The hit's `vector_score`.
    pub vector: Option<f64>,
}

impl Ranked {
    /// A vector candidate: ranked by similarity `sim` times the importance factor.
    pub(crate) fn by_vector(key: [u8; 16], slot: Option<u32>, sim: f64, eff: f64) -> Ranked {
        let score = sim * importance_factor(eff);
        Ranked { key, slot, sim, eff, score, keyword: None, vector: Some(sim) }
    }
}

/// The hits of ranked candidates (best first): their records decoded, in the same read
/// transaction. A candidate removed since it was ranked is left out.
pub(crate) fn materialize(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: u64,
    ranked: Vec<Ranked>,
) -> Result<Vec<RecallHit>> {
    let mut out = Vec::with_capacity(ranked.len());
    for c in ranked {
        let Some(s) = read_memory(t, r, &ns_key(ns, &c.key))? else { continue };
        let mut h = hit(s.memory, c.sim, c.eff, false);
        h.score = c.score;
        h.keyword_score = c.keyword;
        h.vector_score = c.vector;
        out.push(h);
    }
    Ok(out)
}

/// Sorts candidates best first (stable: equal scores keep their order) and keeps `k`.
pub(crate) fn best(ranked: &mut Vec<Ranked>, k: usize) {
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    ranked.truncate(k);
}

/// The stored vector of slot `slot`, if any.
pub(crate) fn read_vector(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: u64,
    slot: Option<u32>,
) -> Result<Option<Vec<f32>>> {
    let Some(slot) = slot else { return Ok(None) };
    Ok(t.vectors
        .get(r, &ns_key(ns, &slot.to_be_bytes()))?
        .and_then(crate::vector::decode_row)
        .map(|(_, v)| v))
}

/// Removes memories by id in one transaction and releases their storage.
pub(crate) fn remove_memories(
    inner: &EngineInner,
    rec: &NamespaceRecord,
    ids: &[[u8; 16]],
) -> Result<Vec<Memory>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let chain = match &rec.tenant_id {
        Some(tid) => inner.catalog.read(|r, c| crate::tenant::quota_chain(c, r, tid))?,
        None => Vec::new(),
    };
    crate::listing::ensure_keywords(inner, rec)?;
    let env = inner.data_env_of(rec)?;
    let (removed, freed, slots, stats) = env.write_ns(rec.id, |w, t| {
        // As for writes: once its namespace is deleted, a forget releases nothing (the
        // deletion releases what the namespace still holds).
        if inner.is_dead(rec.id) {
            return Err(Error::namespace_forbidden(&rec.name));
        }
        let mut stats = t.stats_of(w, rec.id)?;
        let mut removed = Vec::new();
        let mut slots = Vec::new();
        let mut freed = 0u64;
        for id in ids {
            let key = ns_key(rec.id, id);
            let Some(bytes) = t.memories.get(w, &key)?.map(<[u8]>::to_vec) else { continue };
            let stored = decode_record(&bytes)?;
            t.memories.delete(w, &key)?;
            let mut row = 0;
            if let Some(slot) = stored.slot {
                let vkey = ns_key(rec.id, &slot.to_be_bytes());
                if let Some(r) = t.vectors.get(w, &vkey)? {
                    row = r.len() as u64;
                }
                t.vectors.delete(w, &vkey)?;
                if crate::filter::unmark_refile(t, w, rec.id, slot, None)? {
                    stats.refile = stats.refile.saturating_sub(1);
                }
                crate::keyword::unindex(t, w, rec.id, slot, &stored.memory.content, &mut stats)?;
                slots.push(slot);
            }
            let size = charged_size(bytes.len(), row)
                + postings_charge(stored.slot, &stored.memory.content);
            for e in &stored.memory.entities {
                crate::graph::unlink_memory(t, w, rec.id, e, id)?;
            }
            crate::filter::delete_keys(t, w, rec.id, id, &stored.memory)?;
            stats.memory_count = stats.memory_count.saturating_sub(1);
            if stored.memory.expires_at.is_some() {
                stats.expiring = stats.expiring.saturating_sub(1);
            }
            let charged = size.min(stats.storage_bytes);
            stats.storage_bytes -= charged;
            freed += charged;
            removed.push(stored.memory);
        }
        stats.vector_writes += 1;
        t.put_stats(w, rec.id, &stats)?;
        Ok((removed, freed, slots, stats))
    })?;
    inner.usage.adjust(&chain, -(freed as i64));
    inner.vectors.apply(rec.id, stats.vector_writes, &[], &[], &slots);
    inner.indexes.note_delete(rec, &stats);
    Ok(removed)
}

/// Removes expired and decayed-away memories, at most `budget` per namespace. Returns how
/// many were removed.
pub(crate) fn sweep_all(inner: &EngineInner, budget: usize, step: Option<usize>) -> Result<u64> {
    // The background sweep takes `step` namespaces per round, in name order from where the
    // last round stopped (with a million namespaces, a round reads a few thousand, not all).
    let namespaces: Vec<NamespaceRecord> = inner.catalog.read(|r, t| {
        let Some(step) = step else {
            return Ok(t.namespaces.iter(r)?.filter_map(|e| e.ok().map(|(_, v)| v)).collect());
        };
        let mut from = inner.sweep_from.lock();
        let start = if from.is_empty() {
            std::ops::Bound::Unbounded
        } else {
            std::ops::Bound::Excluded(from.as_str())
        };
        let out: Vec<NamespaceRecord> = t
            .namespaces
            .range(r, &(start, std::ops::Bound::Unbounded))?
            .take(step)
            .filter_map(|e| e.ok().map(|(_, v)| v))
            .collect();
        *from = if out.len() < step {
            String::new()
        } else {
            out.last().map(|n| n.name.clone()).unwrap_or_default()
        };
        Ok(out)
    })?;
    let now = inner.now_micros();
    let mut total = 0;
    for rec in namespaces {
        if inner.is_dead(rec.id) {
            continue;
        }
        // Only a decay floor or an expiry can make a memory go; most namespaces have neither,
        // and then the sweep reads none of their rows.
        let decays = rec.policy.min_importance > 0.0;
        let env = inner.data_env_of(&rec)?;
        if !decays && env.read(|r, t| t.stats_of(r, rec.id))?.expiring == 0 {
            continue;
        }
        let doomed: Vec<[u8; 16]> = env.read(|r, t| {
            let mut out = Vec::new();
            for s in scan_memories(t, r, rec.id)? {
                let m = s?.memory;
                if !decays && m.expires_at.is_none() {
                    continue;
                }
                if !is_live(&m, &rec.policy, now) {
                    out.push(memory_key(&m.id));
                    if out.len() >= budget {
                        break;
                    }
                }
            }
            Ok(out)
        })?;
        match remove_memories(inner, &rec, &doomed) {
            Ok(removed) => total += removed.len() as u64,
            Err(_) if inner.is_dead(rec.id) => {} // deleted meanwhile: the purge takes its rows
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

impl EngineInner {
    /// The embedder of a namespace's text (see [`crate::embed::for_namespace`]).
    pub(crate) fn embedder_for(
        &self,
        rec: &NamespaceRecord,
    ) -> Result<std::sync::Arc<dyn Embedder>> {
        let stats = self.data_env_of(rec)?.read(|r, t| t.stats_of(r, rec.id))?;
        crate::embed::for_namespace(&self.options.embedder, stats.embedder.as_deref())
    }

    /// The storage figures of the tenants of the tree under `root` (each tenant's includes
    /// its descendants'), read from their namespaces' environments.
    pub(crate) fn tree_usage(&self, root: &str) -> Result<std::collections::HashMap<String, u64>> {
        let namespaces: Vec<(NamespaceRecord, Vec<crate::quota::QuotaLink>)> =
            self.catalog.read(|r, t| {
                let mut out = Vec::new();
                let ids = t.tenants.remap_data_type::<heed3::types::DecodeIgnore>();
                let ids: Vec<String> = ids
                    .iter(r)?
                    .map(|e| e.map(|(id, ())| id.to_owned()))
                    .collect::<heed3::Result<_>>()?;
                for id in ids {
                    let chain = crate::tenant::quota_chain(t, r, &id)?;
                    if chain.last().map(|l| l.tenant_id.as_str()) != Some(root) {
                        continue;
                    }
                    let prefix = format!("{id}/");
                    let names = t.tenant_namespaces.remap_data_type::<heed3::types::DecodeIgnore>();
                    let names: Vec<String> = names
                        .prefix_iter(r, &prefix)?
                        .map(|e| e.map(|(k, ())| k[prefix.len()..].to_owned()))
                        .collect::<heed3::Result<_>>()?;
                    for name in names {
                        if let Some(rec) = t.namespaces.get(r, &name)? {
                            out.push((rec, chain.clone()));
                        }
                    }
                }
                Ok(out)
            })?;
        let mut usage = std::collections::HashMap::<String, u64>::new();
        for (rec, chain) in namespaces {
            if !rec.location.dir(&self.dir).exists() {
                continue;
            }
            let bytes = self.namespace_stats(&rec)?.storage_bytes;
            for link in chain {
                *usage.entry(link.tenant_id).or_default() += bytes;
            }
        }
        Ok(usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Memory {
        let now = Utc::now();
        Memory {
            id: uuid::Uuid::now_v7().to_string(),
            namespace: "ns".into(),
            agent_id: Some("agent".into()),
            content: "text".into(),
            importance: 0.25,
            tags: vec!["t".into()],
            metadata: serde_json::Map::new(),
            entities: Vec::new(),
            memory_type: MemoryType::Episodic,
            session_id: None,
            created_at: now,
            updated_at: now,
            expires_at: None,
            vector: None,
        }
    }

    #[test]
    fn an_upsert_sets_created_at_in_the_json_as_serialising_it_again_would() {
        let mut m = memory();
        // Caller text that looks like the field must not be taken for it.
        m.content = r#"{"created_at":"2001-01-01T00:00:00Z"}"#.into();
        m.metadata.insert("created_at".into(), Value::String("2001-01-01T00:00:00Z".into()));
        m.expires_at = Some(m.created_at + chrono::Duration::seconds(60));
        let mut json = serde_json::to_vec(&m).unwrap();
        for earlier in [
            "2020-05-06T07:08:09Z",
            "2020-05-06T07:08:09.123Z",
            "2020-05-06T07:08:09.123456Z",
            "2020-05-06T07:08:09.123456789Z",
        ] {
            m.created_at = earlier.parse().unwrap();
            set_created_at(&mut json, &m.created_at).unwrap();
            assert_eq!(String::from_utf8_lossy(&json), serde_json::to_string(&m).unwrap());
        }
    }

    #[test]
    fn a_stored_record_is_charged_the_same_read_whole_or_in_part() {
        let mut m = memory();
        m.content = "three \"distinct\" words, words".into();
        let json = serde_json::to_vec(&m).unwrap();
        let legacy =
            serde_json::to_vec(&StoredMemory { memory: m.clone(), slot: Some(3) }).unwrap();
        for bytes in [encode_record(Some(3), &json), legacy] {
            let want = charged_size(bytes.len(), 100) + postings_charge(Some(3), &m.content);
            assert_eq!(stored_charge(&bytes, 100).unwrap(), want);
        }
        let bytes = encode_record(None, &json);
        assert_eq!(stored_charge(&bytes, 100).unwrap(), charged_size(bytes.len(), 0));
    }
}
