//! Vector rows to file again: notes of the slots whose rows an upsert overwrote in place.
//!
//! A note says that the approximate index's cell of a slot may be stale (the memory kept its
//! slot and got a new vector); the index maintenance files those rows again, and until then a
//! load searches them exactly (see [`crate::index`]). Notes are keyed by the write that made
//! them: `ns ‖ TAG_REFILE ‖ write sequence (u64 BE) ‖ slot (u32 BE) → ()`, so the notes of a
//! batch that overwrites rows all over the namespace are adjacent keys on a few pages instead
//! of one key on each of hundreds of pages. A row overwritten again before it is filed gets
//! another note; the maintenance drops exactly the notes it read, so a later one stays.
//!
//! A namespace not indexed yet has notes keyed by slot instead, `ns ‖ TAG_REFILE_BY_SLOT ‖ slot`
//! (as earlier versions wrote for every namespace, with a checksum of the row as value): one
//! per slot, since nothing files them before the first index is built. Both kinds are read,
//! and dropped once filed or when their slot's row is deleted.

use heed3::{PutFlags, RwTxn};

use crate::datastore::{DataTables, NamespaceId};
use crate::error::Result;
use crate::storage::RoTxn;

/// Tag of the notes keyed by write sequence and slot.
const TAG_REFILE: u8 = 0xF1;
/// Tag of the notes keyed by slot (a namespace without an index; every namespace before).
const TAG_REFILE_BY_SLOT: u8 = 0xF0;

fn prefix(ns: NamespaceId, tag: u8) -> Vec<u8> {
    let mut k = Vec::with_capacity(21);
    k.extend_from_slice(&ns.to_be_bytes());
    k.push(tag);
    k
}

fn by_slot_key(ns: NamespaceId, slot: u32) -> Vec<u8> {
    let mut k = prefix(ns, TAG_REFILE_BY_SLOT);
    k.extend_from_slice(&slot.to_be_bytes());
    k
}

/// One note: the slot it names and its key.
#[derive(Debug, Clone)]
pub(crate) struct RefileNote {
    pub slot: u32,
    key: Vec<u8>,
}

/// Notes that the rows of `slots` were overwritten in place by write number `seq` of the
/// namespace (its `vector_writes` once committed); `slots` hold no slot twice. A namespace
/// without an index yet (`indexed` false) gets notes keyed by slot, one per slot however often
/// it is overwritten: nothing files them before its first index is built, so notes per write
/// would pile up. Returns how many notes were added.
pub(crate) fn mark_refile(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    seq: u64,
    indexed: bool,
    slots: &mut [u32],
) -> Result<u64> {
    // In key order: each note lands beside the one before it.
    slots.sort_unstable();
    let mut added = 0;
    if !indexed {
        for slot in slots.iter() {
            // Only where the slot has no note yet: one search, which finds a note without
            // touching its page (LMDB's no-overwrite put), instead of a get and then a put.
            let key = by_slot_key(ns, *slot);
            match t.fields.put_with_flags(w, PutFlags::NO_OVERWRITE, &key, &[]) {
                Ok(()) => added += 1,
                Err(heed3::Error::Mdb(heed3::MdbError::KeyExist)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(added);
    }
    let mut key = prefix(ns, TAG_REFILE);
    key.extend_from_slice(&seq.to_be_bytes());
    let at = key.len();
    for slot in slots.iter() {
        key.truncate(at);
        key.extend_from_slice(&slot.to_be_bytes());
        t.fields.put(w, &key, &[])?;
        added += 1;
    }
    Ok(added)
}

/// Drops the note keyed by `slot` (the slot's row is deleted). Notes keyed by write stay until
/// the maintenance finds their row gone. Returns whether a note was dropped.
pub(crate) fn unmark_refile(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    slot: u32,
) -> Result<bool> {
    Ok(t.fields.delete(w, &by_slot_key(ns, slot))?)
}

/// Drops `note` (read by [`refile_notes`]) once its row is filed or gone. An overwrite since the
/// note was read made a note of its own (the namespace is indexed: notes keyed by write), so
/// the row it wrote is filed at the next step. Returns whether it was dropped (not already,
/// by a deletion of its row).
pub(crate) fn drop_note(t: &DataTables, w: &mut RwTxn<'_>, note: &RefileNote) -> Result<bool> {
    Ok(t.fields.delete(w, &note.key)?)
}

/// Every note of the namespace, oldest first (those keyed by slot before the others).
pub(crate) fn refile_notes(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
) -> Result<Vec<RefileNote>> {
    let mut out = Vec::new();
    for e in t.fields.prefix_iter(r, &prefix(ns, TAG_REFILE_BY_SLOT))? {
        let (k, _) = e?;
        if let Some(slot) = k.get(9..13).and_then(|s| <[u8; 4]>::try_from(s).ok()) {
            out.push(RefileNote { slot: u32::from_be_bytes(slot), key: k.to_vec() });
        }
    }
    for e in t.fields.prefix_iter(r, &prefix(ns, TAG_REFILE))? {
        let (k, _) = e?;
        if let Some(slot) = k.get(17..21).and_then(|s| <[u8; 4]>::try_from(s).ok()) {
            out.push(RefileNote { slot: u32::from_be_bytes(slot), key: k.to_vec() });
        }
    }
    Ok(out)
}

/// The slots with a note, ascending, each once.
pub(crate) fn refile_slots(t: &DataTables, r: &mut RoTxn<'_>, ns: NamespaceId) -> Result<Vec<u32>> {
    let mut slots: Vec<u32> = refile_notes(t, r, ns)?.into_iter().map(|n| n.slot).collect();
    slots.sort_unstable();
    slots.dedup();
    Ok(slots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// Notes keyed by write: one per overwrite, dropped exactly (a later overwrite's note
    /// stays); a note an earlier version keyed by slot is read beside them, and dropped with
    /// its slot's row.
    #[test]
    fn notes_are_kept_per_write_and_dropped_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let env: Store<DataTables> = Store::open(dir.path(), 1 << 24, None).unwrap();
        let ns = 7;
        env.write(|w, t| {
            // What an earlier version wrote for slot 9 (a checksum of its row).
            t.fields.put(w, &by_slot_key(ns, 9), &42u64.to_be_bytes())?;
            assert_eq!(mark_refile(t, w, ns, 3, true, &mut [40, 2])?, 2);
            assert_eq!(mark_refile(t, w, ns, 4, true, &mut [2])?, 1);
            // Another namespace's notes are not this one's; without an index, one per slot.
            assert_eq!(mark_refile(t, w, ns + 1, 1, false, &mut [5, 6])?, 2);
            assert_eq!(mark_refile(t, w, ns + 1, 2, false, &mut [5])?, 0);
            Ok(())
        })
        .unwrap();
        // A slot's note is found in a later write too, and left as it is.
        env.write(|w, t| {
            assert_eq!(mark_refile(t, w, ns + 1, 3, false, &mut [6, 7])?, 1);
            t.fields.put(w, &by_slot_key(ns + 1, 7), &[1])?;
            assert_eq!(mark_refile(t, w, ns + 1, 4, false, &mut [7])?, 0);
            assert_eq!(t.fields.get(w, &by_slot_key(ns + 1, 7))?, Some(&[1][..]));
            t.fields.delete(w, &by_slot_key(ns + 1, 7))?;
            Ok(())
        })
        .unwrap();
        let notes = env.read(|r, t| refile_notes(t, r, ns)).unwrap();
        let slots: Vec<u32> = notes.iter().map(|n| n.slot).collect();
        assert_eq!(slots, [9, 2, 40, 2]);
        assert_eq!(env.read(|r, t| refile_slots(t, r, ns)).unwrap(), [2, 9, 40]);
        env.write(|w, t| {
            // Write 3's notes are filed; write 4's note of slot 2 stays.
            assert!(drop_note(t, w, &notes[1])?);
            assert!(drop_note(t, w, &notes[2])?);
            assert!(!drop_note(t, w, &notes[2])?, "dropped once");
            Ok(())
        })
        .unwrap();
        let left: Vec<u32> =
            env.read(|r, t| refile_notes(t, r, ns)).unwrap().iter().map(|n| n.slot).collect();
        assert_eq!(left, [9, 2]);
        // A deleted row drops the note keyed by its slot.
        env.write(|w, t| {
            assert!(unmark_refile(t, w, ns, 9)?);
            assert!(!unmark_refile(t, w, ns, 9)?);
            Ok(())
        })
        .unwrap();
        assert_eq!(env.read(|r, t| refile_slots(t, r, ns)).unwrap(), [2]);
        assert_eq!(env.read(|r, t| refile_notes(t, r, ns + 1)).unwrap().len(), 2);
        assert_eq!(env.read(|r, t| refile_slots(t, r, ns + 1)).unwrap(), [5, 6]);
    }
}
