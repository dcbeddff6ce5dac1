//! What the engine does with a namespace's data for several groups of operations and the
//! background sweep: its stats and embedder, bringing an older namespace's secondary keys and
//! postings up to date, removing memories, the tenants' storage figures, and the list
//! cursors' key.

use std::sync::Arc;

use super::State;
use crate::datastore::NamespaceStats;
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::records::{Memory, NamespaceRecord};

impl State {
    /// A namespace's counters from its data environment.
    pub(crate) fn namespace_stats(&self, rec: &NamespaceRecord) -> Result<NamespaceStats> {
        let env = self.data_env_of(rec)?;
        env.read(|r, t| t.stats_of(r, rec.id))
    }

    /// The key the list cursors are sealed with (see [`crate::cursor`]).
    pub(crate) fn cursor_key(&self) -> Result<[u8; 32]> {
        self.cursor_key.get(&self.catalog)
    }

    /// Gives every memory of a namespace written before secondary keys existed its keys.
    pub(crate) fn ensure_fields(&self, rec: &NamespaceRecord) -> Result<()> {
        let env = self.data_env_of(rec)?;
        crate::filter::ensure_indexed(&env, rec.id)
    }

    /// Gives the namespace's memories their keyword postings if some may lack them (see
    /// [`crate::keyword::ensure_indexed`]), and charges the tenant's storage for the postings
    /// added. A no-op once done, or for a namespace without memories.
    pub(crate) fn ensure_keywords(&self, rec: &NamespaceRecord) -> Result<()> {
        let env = self.data_env_of(rec)?;
        let added = crate::keyword::ensure_indexed(&env, rec.id)?;
        if added > 0 {
            let chain = match &rec.tenant_id {
                Some(t) => self.catalog.read(|r, c| crate::tenant::quota_chain(c, r, t))?,
                None => Vec::new(),
            };
            self.usage.adjust(&chain, i64::try_from(added).unwrap_or(i64::MAX));
        }
        Ok(())
    }

    /// Removes memories by id in one transaction and releases their storage.
    pub(crate) fn remove_memories(
        &self,
        rec: &NamespaceRecord,
        ids: &[[u8; 16]],
    ) -> Result<Vec<Memory>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let chain = match &rec.tenant_id {
            Some(tid) => self.catalog.read(|r, c| crate::tenant::quota_chain(c, r, tid))?,
            None => Vec::new(),
        };
        self.ensure_keywords(rec)?;
        let env = self.data_env_of(rec)?;
        let (removed, stats) = env.write_ns(rec.id, |w, t| {
            // As for writes: once its namespace is deleted, a forget releases nothing (the
            // deletion releases what the namespace still holds).
            if self.is_dead(rec.id) {
                return Err(Error::namespace_forbidden(&rec.name));
            }
            crate::memory::remove_rows(t, w, rec.id, ids)
        })?;
        self.usage.adjust(&chain, -(removed.freed as i64));
        self.vectors.apply(rec.id, stats.vector_writes, &[], &[], &removed.slots);
        self.indexes.note_delete(rec, &stats);
        Ok(removed.memories)
    }

    /// The embedder of a namespace's text (see [`crate::embed::for_namespace`]).
    pub(crate) fn embedder_for(&self, rec: &NamespaceRecord) -> Result<Arc<dyn Embedder>> {
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
