//! Vector search state: the searchable copy of each namespace's vectors and its cache, and,
//! for large namespaces, the approximate index, an IVF partition (see [`ivf`]) maintained in
//! batches off the request path.
//!
//! What is stored: each indexed namespace has an LMDB environment of its own
//! (`DIR/indexes/<namespace id>/`) holding the trained centroids and each indexed slot's
//! cell. The int8 codes searched live in memory (in the namespace's
//! [`NamespaceVectors`]), rebuilt from the vector rows and the stored cells on
//! load. Keeping the index out of the data environment means index maintenance never holds a
//! data environment's writer (LMDB has one writer per environment): memory writes go on while
//! an index is trained, and erasing the index is a file removal, whatever the isolation mode.
//!
//! Invariants:
//! - Slots below `stats.indexed_until` have a cell in the index environment (deleted ones
//!   until cleaned up); slots from `indexed_until` on (the *tail*) may not, and are searched
//!   exactly. A memory is therefore recallable the moment its store returns.
//! - A step commits the index environment before it raises `indexed_until`, so any copy
//!   loaded from a data snapshot finds a cell for every slot below its `indexed_until` (a
//!   slot without one is searched exactly). The in-memory copy is moved forward under its
//!   version (see [`VectorCache::indexed`]); every slot is in exactly one of
//!   the partition and the tail.
//! - Candidates from the partition are re-scored from the stored f32 rows, which a delete
//!   removes in its own transaction: a deleted memory never comes back, even before a step
//!   removes its cell.
//! - The index environment of a deleted namespace is removed by its purge; it is never created
//!   for a namespace already marked deleted (both happen under the registry's write lock).
//! - The partition is retrained (new centroids, every vector filed again) when the namespace
//!   has grown 4× since the last training, so cells stay near √n vectors.

mod build;
mod cache;
mod env;
pub(crate) mod ivf;
mod queue;
mod search;
mod segment;
mod topk;
mod vectors;

#[cfg(test)]
pub(crate) use build::WHILE_BUILDING;
pub(crate) use cache::VectorCache;
pub(crate) use env::IndexTables;
pub(crate) use search::{candidates, Rescore};
pub(crate) use vectors::NamespaceVectors;

use std::path::PathBuf;
use std::sync::Arc;

use crate::datastore::{DataTables, NamespaceId, NamespaceStats};
use crate::encryption::EnvKey;
use crate::error::Result;
use crate::records::NamespaceRecord;
use crate::store::Store;

/// What the index needs of the engine that owns it.
pub(crate) trait IndexHost: Sync {
    /// The data environment of namespace `rec`.
    fn data_env(&self, rec: &NamespaceRecord) -> Result<Arc<Store<DataTables>>>;
    /// Whether namespace `ns` is deleted.
    fn is_dead(&self, ns: NamespaceId) -> bool;
    /// The key of namespace `rec`'s data (`None`: plain); its index is as secret as its vectors.
    fn data_key(&self, rec: &NamespaceRecord) -> Result<Option<EnvKey>>;
}

/// The approximate indexes of an engine: their environments (under `DIR/indexes`) and the
/// queue of namespaces with index work to do.
pub(crate) struct Indexes {
    envs: env::IndexEnvs,
    queue: queue::IndexQueue,
}

impl Indexes {
    /// Indexes under `dir`; a namespace is indexed once it has `threshold` memories.
    pub(crate) fn new(dir: PathBuf, threshold: usize) -> Self {
        Indexes { envs: env::IndexEnvs::new(dir), queue: queue::IndexQueue::new(threshold) }
    }

    /// After a write to `rec` committed leaving `stats`: queue index work if the namespace is
    /// (now) large enough.
    pub(crate) fn note_write(&self, rec: &NamespaceRecord, stats: &NamespaceStats) {
        if self.queue.needs_work(stats) {
            self.queue.push(rec, true);
        }
    }

    /// After a delete from `rec` committed leaving `stats`: queue the removal of deleted items
    /// from the namespace's index (they are already filtered out at read time).
    pub(crate) fn note_delete(&self, rec: &NamespaceRecord, stats: &NamespaceStats) {
        if stats.indexed_until > 0 {
            self.queue.push(rec, true);
        }
    }

    /// A recall saw `stats`: queue index work that is due but not queued (e.g. after a
    /// restart).
    pub(crate) fn note_recall(&self, rec: &NamespaceRecord, stats: &NamespaceStats) {
        if self.queue.needs_work(stats) {
            self.queue.push(rec, false);
        }
    }

    /// Loads a namespace's searchable vectors: the tail rows, and the partition of the
    /// indexed rows rebuilt from their stored cells.
    pub(crate) fn load_vectors(
        &self,
        host: &dyn IndexHost,
        rec: &NamespaceRecord,
    ) -> Result<NamespaceVectors> {
        search::load_vectors(self, host, rec)
    }

    /// Runs one step for every queued namespace (every step until done when `force`),
    /// moving the copies in `cache` forward. Returns how many chunks were built.
    pub(crate) fn maintain(
        &self,
        host: &dyn IndexHost,
        cache: &VectorCache,
        force: bool,
    ) -> Result<u64> {
        build::maintain(self, host, cache, force)
    }

    /// The namespace is deleted: no more index work for it.
    pub(crate) fn forget(&self, ns: NamespaceId) {
        self.queue.remove(ns);
    }

    /// Closes and removes the index environment of a deleted namespace (idempotent).
    pub(crate) fn destroy(&self, ns: NamespaceId) -> Result<()> {
        self.envs.destroy(ns)
    }
}
