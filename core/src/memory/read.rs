//! Reading a stored vector, and removing memories with everything they hold.

use heed3::RwTxn;

use super::{charged_size, decode_record, postings_charge, Memory};
use crate::datastore::{ns_key, DataTables, NamespaceId, NamespaceStats};
use crate::error::Result;
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

/// What [`remove_rows`] removed.
pub(crate) struct Removed {
    /// The memories removed.
    pub memories: Vec<Memory>,
    /// The bytes they were charged.
    pub freed: u64,
    /// Their vector slots.
    pub slots: Vec<u32>,
}

/// Removes memories by key inside namespace `ns`'s write transaction: each record, its
/// vector row, postings, graph links and secondary keys; the namespace's stats (returned)
/// count them out. The caller releases the bytes freed and tells the vector cache and the
/// index.
pub(crate) fn remove_rows(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    ids: &[[u8; 16]],
) -> Result<(Removed, NamespaceStats)> {
    let mut stats = t.stats_of(w, ns)?;
    let mut removed = Vec::new();
    let mut slots = Vec::new();
    let mut freed = 0u64;
    for id in ids {
        let key = ns_key(ns, id);
        let Some(bytes) = t.memories.get(w, &key)?.map(<[u8]>::to_vec) else { continue };
        let stored = decode_record(&bytes)?;
        t.memories.delete(w, &key)?;
        let mut row = 0;
        if let Some(slot) = stored.slot {
            let vkey = ns_key(ns, &slot.to_be_bytes());
            if let Some(r) = t.vectors.get(w, &vkey)? {
                row = r.len() as u64;
            }
            t.vectors.delete(w, &vkey)?;
            if crate::filter::unmark_refile(t, w, ns, slot)? {
                stats.refile = stats.refile.saturating_sub(1);
            }
            crate::keyword::unindex(t, w, ns, slot, &stored.memory.content, &mut stats)?;
            slots.push(slot);
        }
        let size =
            charged_size(bytes.len(), row) + postings_charge(stored.slot, &stored.memory.content);
        for e in &stored.memory.entities {
            crate::graph::unlink_memory(t, w, ns, e, id)?;
        }
        let layout = crate::filter::Layout::of(&stats);
        crate::filter::delete_keys(t, w, ns, (id, stored.slot), &stored.memory, layout)?;
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
    t.put_stats(w, ns, &stats)?;
    Ok((Removed { memories: removed, freed, slots }, stats))
}
