//! Reading a stored vector, and removing memories with everything they hold.

use super::{charged_size, decode_record, postings_charge, Memory};
use crate::datastore::{ns_key, DataTables};
use crate::engine::EngineInner;
use crate::error::{Error, Result};
use crate::namespace::NamespaceRecord;
use crate::storage::RoTxn;

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
