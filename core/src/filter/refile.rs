//! Vector rows to file again: notes of the slots whose rows an upsert overwrote in place.

use heed3::RwTxn;

use crate::datastore::{DataTables, NamespaceId};
use crate::error::Result;
use crate::storage::RoTxn;

/// Tag of the keys naming a vector slot whose row was overwritten in place (an upsert kept
/// the memory's slot), so the approximate index's cell of that slot may be stale: ns ‖ tag ‖
/// slot (u32 BE) → a checksum of the row written. The index maintenance files those rows
/// again; until then a load searches them exactly (see [`crate::index`]).
const TAG_REFILE: u8 = 0xF0;

fn refile_key(ns: NamespaceId, slot: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(13);
    k.extend_from_slice(&ns.to_be_bytes());
    k.push(TAG_REFILE);
    k.extend_from_slice(&slot.to_be_bytes());
    k
}

/// A checksum of a vector row (FNV-1a over 8-byte words, then the rest byte by byte): tells
/// whether a row was overwritten again. Only ever compared with the value it gave for the same
/// note, never recomputed from a stored row, so its definition may change between versions.
pub(crate) fn row_sum(row: &[u8]) -> u64 {
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = row.chunks_exact(8);
    for w in &mut words {
        let w: [u8; 8] = w.try_into().unwrap_or_default();
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(PRIME);
    }
    for b in words.remainder() {
        h = (h ^ u64::from(*b)).wrapping_mul(PRIME);
    }
    h
}

/// Notes that `slot`'s row was overwritten with `row`. Returns whether the slot was not
/// noted already.
pub(crate) fn mark_refile(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    slot: u32,
    row: &[u8],
) -> Result<bool> {
    let key = refile_key(ns, slot);
    let fresh = t.fields.get(w, &key)?.is_none();
    t.fields.put(w, &key, &row_sum(row).to_be_bytes())?;
    Ok(fresh)
}

/// Drops the note of `slot` if its checksum is still `sum` (any sum when `None`). Returns
/// whether a note was dropped.
pub(crate) fn unmark_refile(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    slot: u32,
    sum: Option<u64>,
) -> Result<bool> {
    let key = refile_key(ns, slot);
    let Some(v) = t.fields.get(w, &key)? else { return Ok(false) };
    let stored = <[u8; 8]>::try_from(v).ok().map(u64::from_be_bytes);
    if sum.is_some_and(|s| stored != Some(s)) {
        return Ok(false);
    }
    t.fields.delete(w, &key)?;
    Ok(true)
}

/// The noted slots (ascending) with their rows' checksums.
pub(crate) fn refile_slots(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
) -> Result<Vec<(u32, u64)>> {
    let mut prefix = ns.to_be_bytes().to_vec();
    prefix.push(TAG_REFILE);
    let mut out = Vec::new();
    for e in t.fields.prefix_iter(r, &prefix)? {
        let (k, v) = e?;
        let slot = k.get(9..13).and_then(|s| <[u8; 4]>::try_from(s).ok()).map(u32::from_be_bytes);
        let sum = <[u8; 8]>::try_from(v).ok().map(u64::from_be_bytes);
        if let (Some(slot), Some(sum)) = (slot, sum) {
            out.push((slot, sum));
        }
    }
    Ok(out)
}
