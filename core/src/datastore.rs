//! The data plane's tables: memories, vectors and graph rows of the namespaces that share
//! one LMDB environment. Every key starts with the namespace's 8-byte big-endian id, so one
//! namespace's rows are one contiguous key range. (Approximate indexes have environments of
//! their own: see [`crate::index`].)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use heed3::types::{Bytes, SerdeJson};
use heed3::RwTxn;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::storage::{Environment, RoTxn, Table};
pub use crate::store::NamespaceId;
use crate::store::{Decoded, NamespacedTables, Tables};

/// Where a namespace's rows live, chosen from its tenant's isolation mode at creation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EnvLocation {
    /// `logical`: one of the shared, sharded environments.
    Shard {
        /// Shard number.
        n: u32,
    },
    /// `hybrid`: the tenant's own environment.
    Tenant {
        /// The tenant.
        tenant_id: String,
    },
    /// `physical`: the namespace's own environment.
    Namespace {
        /// The namespace.
        id: NamespaceId,
    },
}

impl EnvLocation {
    /// The environment's directory under the data directory.
    pub(crate) fn dir(&self, root: &Path) -> PathBuf {
        match self {
            EnvLocation::Shard { n } => root.join("shards").join(format!("shard-{n}")),
            EnvLocation::Tenant { tenant_id } => root.join("tenants").join(tenant_id),
            EnvLocation::Namespace { id } => root.join("namespaces").join(id.to_string()),
        }
    }

    /// Initial memory map size: large and sparse for shared shards, smaller for own files.
    pub(crate) fn initial_map_size(&self) -> usize {
        match self {
            EnvLocation::Shard { .. } => 8 << 30,
            EnvLocation::Tenant { .. } => 1 << 30,
            EnvLocation::Namespace { .. } => 256 << 20,
        }
    }
}

/// Per-namespace counters kept beside its rows (so they change in the same transaction).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct NamespaceStats {
    /// Live memories.
    pub memory_count: u64,
    /// Live memories with an expiry (the sweep skips namespaces with none and no decay floor).
    #[serde(default)]
    pub expiring: u64,
    /// Bytes of memories, vectors and graph rows charged to the namespace.
    pub storage_bytes: u64,
    /// Next free vector slot (slots are never reused before a rebuild).
    pub next_slot: u32,
    /// Vector dimension fixed by the first vector stored (or at creation).
    pub dimensions: Option<u32>,
    /// Name of the embedder that produced the namespace's text vectors.
    pub embedder: Option<String>,
    /// Memories in the keyword index.
    #[serde(default)]
    pub keyword_docs: u64,
    /// Terms of the memories in the keyword index (BM25's average length).
    #[serde(default)]
    pub keyword_terms: u64,
    /// Whether every memory with a vector slot is in the keyword index. Namespaces written
    /// before it existed (0.1.0) are indexed at their next write, deletion or keyword or
    /// hybrid recall (see [`crate::keyword::ensure_indexed`]); so is every namespace written
    /// before this flag, once (its index is rebuilt as it was).
    #[serde(default)]
    pub keyword_indexed: bool,
    /// Entities in the graph.
    pub entity_count: u64,
    /// Relations in the graph.
    pub relation_count: u64,
    /// Slots below this are in the namespace's approximate index (0: it has none); slots
    /// from here on are scanned exactly. (Stored under a new name: statistics written before
    /// indexes moved to their own environments read as "not indexed", and are re-indexed.)
    #[serde(rename = "index_end", default)]
    pub indexed_until: u32,
    /// Whether every memory has its secondary keys (table `fields`); namespaces written
    /// before they existed get them at their next write or filtered read.
    #[serde(default)]
    pub fields_indexed: bool,
    /// Whether every value key of the namespace holds its memory's slot (see
    /// `filter::keys::full_key`): true once its keys were first written by a version that
    /// writes them so; otherwise it may still hold keys of the earlier layout, which are
    /// deleted beside the current ones.
    #[serde(default)]
    pub fields_by_slot: bool,
    /// Vector rows overwritten in place whose index cell may be stale (see
    /// `filter::mark_refile`); the index maintenance files them again.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refile: u64,
    /// `updated_at` keys left behind by upserts and noted for deletion (see
    /// `filter::stale`); deleted in bulk once they outnumber half the memories.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stale_updated: u64,
    /// Writes that changed the namespace's vector rows so far: each one's sequence number
    /// (see [`crate::index::VectorCache::apply`]), in commit order. Every transaction that
    /// changes the namespace's memory records or vector rows adds one (`memory::write_rows`,
    /// `memory::remove_rows`): a write trusts what it read of them on an earlier snapshot while
    /// this is still the snapshot's number (`memory::write::Ahead`).
    #[serde(default)]
    pub vector_writes: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Data tables of one environment.
pub(crate) struct DataTables {
    /// ns ‖ memory uuid → memory record (JSON).
    pub memories: Table<Bytes, Bytes>,
    /// ns ‖ slot (u32 BE) → memory uuid ‖ f32 LE vector.
    pub vectors: Table<Bytes, Bytes>,
    /// ns → stats.
    pub stats: Table<Bytes, SerdeJson<NamespaceStats>>,
    /// ns ‖ entity uuid → entity (JSON).
    pub entities: Table<Bytes, Bytes>,
    /// ns ‖ name-hash (8) ‖ name ‖ 0 ‖ type → entity uuid (see `graph::rows`).
    pub entity_names: Table<Bytes, Bytes>,
    /// ns ‖ relation uuid → relation (JSON).
    pub relations: Table<Bytes, Bytes>,
    /// ns ‖ lowercased entity name ‖ 0 ‖ memory uuid → () (memories that name an entity).
    pub entity_memories: Table<Bytes, Bytes>,
    /// ns ‖ entity uuid ‖ relation uuid → () (each relation under both of its endpoints).
    pub entity_relations: Table<Bytes, Bytes>,
    /// ns ‖ term ‖ 0 ‖ first slot → a block of postings (see [`crate::keyword`]).
    pub postings: Table<Bytes, Bytes>,
    /// ns ‖ field tag ‖ value ‖ slot ‖ memory key → vector slot: secondary keys of the
    /// memories' built-in fields and metadata; the order keys (`importance`, `created_at`,
    /// `updated_at`) have no slot part (see `filter`).
    pub fields: Table<Bytes, Bytes>,
    /// ns ‖ session key (see `session`) → session (JSON).
    pub sessions: Table<Bytes, Bytes>,
}

impl Tables for DataTables {
    const MAX_DBS: u32 = 16;

    fn create(env: &Environment) -> Result<Self> {
        let [memories, vectors, stats, entities, entity_names, relations, entity_memories, entity_relations, postings, fields, sessions] =
            env.create_tables([
                "memories",
                "vectors",
                "stats",
                "entities",
                "entity_names",
                "relations",
                "entity_memories",
                "entity_relations",
                "postings",
                "fields",
                "sessions",
            ])?;
        Ok(DataTables {
            memories,
            vectors,
            stats: stats.remap_types(),
            entities,
            entity_names,
            relations,
            entity_memories,
            entity_relations,
            postings,
            fields,
            sessions,
        })
    }
}

/// `ns ‖ local` key.
pub(crate) fn ns_key(ns: NamespaceId, local: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + local.len());
    k.extend_from_slice(&ns.to_be_bytes());
    k.extend_from_slice(local);
    k
}

/// Puts a row whose key is expected to sort after every key of `db` (a namespace's newest
/// vector slot or memory id): with LMDB's append mode, which fills pages instead of splitting
/// them in half — sequential inserts otherwise leave every page half full, which for 1.5 KB
/// vector rows means one row per 4 KiB page. Falls back to an ordinary put when the key is not
/// the last (another namespace's rows follow it in a shared environment).
pub(crate) fn put_last(
    db: &Table<Bytes, Bytes>,
    wtxn: &mut RwTxn<'_>,
    key: &[u8],
    value: &[u8],
) -> Result<()> {
    match db.put_with_flags(wtxn, heed3::PutFlags::APPEND, key, value) {
        Err(heed3::Error::Mdb(heed3::MdbError::KeyExist)) => Ok(db.put(wtxn, key, value)?),
        other => Ok(other?),
    }
}

impl DataTables {
    /// Reads a namespace's stats (zeroes if it has none yet).
    pub(crate) fn stats_of(&self, rtxn: &mut RoTxn<'_>, ns: NamespaceId) -> Result<NamespaceStats> {
        Ok(self.stats.get(rtxn, &ns.to_be_bytes())?.unwrap_or_default())
    }

    /// [`DataTables::stats_of`], decoded once for the bytes stored (see [`Decoded`]).
    pub(crate) fn shared_stats_of(
        &self,
        rtxn: &mut RoTxn<'_>,
        ns: NamespaceId,
        decoded: &Decoded<NamespaceId, Arc<NamespaceStats>>,
    ) -> Result<Arc<NamespaceStats>> {
        let stats = self.stats.remap_data_type::<Bytes>();
        match stats.get(rtxn, &ns.to_be_bytes())? {
            Some(bytes) => decoded.get(&ns, bytes, |b| Ok(Arc::new(serde_json::from_slice(b)?))),
            None => Ok(Arc::default()),
        }
    }

    /// Writes a namespace's stats.
    pub(crate) fn put_stats(
        &self,
        wtxn: &mut RwTxn<'_>,
        ns: NamespaceId,
        s: &NamespaceStats,
    ) -> Result<()> {
        self.stats.put(wtxn, &ns.to_be_bytes(), s)?;
        Ok(())
    }

    /// Calls `f` with each vector row (slot, raw row) of namespace `ns` in slots `from..end`,
    /// in slot order, without holding them all in memory.
    pub(crate) fn each_vector_row(
        &self,
        rtxn: &mut RoTxn<'_>,
        ns: NamespaceId,
        from: u32,
        end: u32,
        mut f: impl FnMut(u32, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let start = ns_key(ns, &from.to_be_bytes());
        let stop = ns_key(ns, &end.to_be_bytes());
        let bounds = (std::ops::Bound::Included(&start[..]), std::ops::Bound::Excluded(&stop[..]));
        for e in self.vectors.range(rtxn, &bounds)? {
            let (key, row) = e?;
            if let Some(slot) = key.get(8..12).and_then(|s| s.try_into().ok()) {
                f(u32::from_be_bytes(slot), row)?;
            }
        }
        Ok(())
    }

    /// Every table whose keys start with the namespace id, except `stats`.
    fn namespace_rows(&self) -> [&Table<Bytes, Bytes>; 10] {
        [
            &self.memories,
            &self.vectors,
            &self.entities,
            &self.entity_names,
            &self.relations,
            &self.entity_memories,
            &self.entity_relations,
            &self.postings,
            &self.fields,
            &self.sessions,
        ]
    }

    /// Deletes every row of a namespace in every table, at most `budget` rows per table per
    /// call; returns whether rows remain. `deleted` counts the rows deleted.
    pub(crate) fn purge_rows(
        &self,
        wtxn: &mut RwTxn<'_>,
        ns: NamespaceId,
        budget: usize,
        deleted: &mut usize,
    ) -> Result<bool> {
        let prefix = ns.to_be_bytes();
        let mut more = false;
        for db in self.namespace_rows() {
            let mut iter = db.prefix_iter_mut(wtxn, &prefix)?;
            let mut n = 0;
            while iter.next().transpose()?.is_some() {
                if n == budget {
                    more = true;
                    break;
                }
                // SAFETY: no reference into the database is kept across this deletion.
                unsafe { iter.del_current()? };
                n += 1;
            }
            *deleted += n;
        }
        if !more {
            self.stats.delete(wtxn, &prefix)?;
        }
        Ok(more)
    }
}

impl DataTables {
    /// Bytes on disk of each table of this environment (its pages times the page size).
    pub(crate) fn table_bytes(&self, r: &mut RoTxn<'_>) -> Result<Vec<(&'static str, u64)>> {
        let mut out = Vec::new();
        let named = ["memories", "vectors", "entities", "entity_names", "relations"];
        let more = ["entity_memories", "entity_relations", "postings", "fields", "sessions"];
        for (name, db) in named.into_iter().chain(more).zip(self.namespace_rows()) {
            let s = db.stat(r)?;
            let pages = s.branch_pages + s.leaf_pages + s.overflow_pages;
            out.push((name, pages as u64 * u64::from(s.page_size)));
        }
        Ok(out)
    }
}

impl NamespacedTables for DataTables {
    /// Makes namespace `ns`'s rows in this environment what they are in `from` (another
    /// environment's tables, read in `rtxn`), writing only the rows that differ.
    fn copy_namespace(
        &self,
        from: &Self,
        rtxn: &mut RoTxn<'_>,
        wtxn: &mut RwTxn<'_>,
        ns: NamespaceId,
    ) -> Result<()> {
        let prefix = ns.to_be_bytes();
        for (to, from) in self.namespace_rows().into_iter().zip(from.namespace_rows()) {
            to.replace_prefix(from, rtxn, wtxn, &prefix)?;
        }
        match from.stats.get(rtxn, &prefix)? {
            Some(stats) => self.stats.put(wtxn, &prefix, &stats)?,
            None => {
                self.stats.delete(wtxn, &prefix)?;
            }
        }
        Ok(())
    }

    /// Copies every row of `from` (another environment's tables, read in `rtxn`) into these
    /// tables, which are empty.
    fn copy_all(&self, from: &Self, rtxn: &mut RoTxn<'_>, wtxn: &mut RwTxn<'_>) -> Result<()> {
        let stats = |t: &DataTables| t.stats.remap_types::<Bytes, Bytes>();
        let (to_stats, from_stats) = (stats(self), stats(from));
        let to_tables = self.namespace_rows().into_iter().chain([&to_stats]);
        for (to, from) in to_tables.zip(from.namespace_rows().into_iter().chain([&from_stats])) {
            for row in from.iter(rtxn)? {
                let (key, value) = row?;
                // In key order into an empty table: appended, pages filled.
                to.put_with_flags(wtxn, heed3::PutFlags::APPEND, key, value)?;
            }
        }
        Ok(())
    }
}
