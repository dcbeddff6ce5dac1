//! Writing memories: one transaction per namespace puts each record, its vector row, its
//! secondary keys and postings, and charges the bytes to the tenant's storage quota.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{
    check_vector_space, decode_record, encode_record, memory_key, split_record, Memory,
    StoredMemory, RECORD_HEADER,
};
use crate::datastore::{ns_key, put_last, DataTables, NamespaceId, NamespaceStats};
use crate::error::{Error, Result};
use crate::quota::{QuotaLink, Reservation};
use crate::records::memory::chrono_written;
use crate::records::NamespaceRecord;
use crate::store::Store;
use crate::vector::encode_row;

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
    /// What [`look_ahead`] did for the transaction before it.
    ahead: Option<Ahead>,
}

/// The part of a memory's write done before the write transaction, on the last committed
/// snapshot (see [`look_ahead`]); the transaction uses it where its own read of the memory's
/// record finds what the snapshot held, and does the work itself where not.
struct Ahead {
    /// The namespace's `vector_writes` in the snapshot. Every transaction that changes a
    /// namespace's memory records or vector rows adds one to it (see
    /// [`crate::datastore::NamespaceStats::vector_writes`]), so while the transaction finds
    /// the same number, nothing has changed them since: what the snapshot held is what the
    /// transaction would read, and it is not read again.
    seq: u64,
    /// The memory's vector row (see [`encode_row`]).
    row: Option<Vec<u8>>,
    /// The record stored under the memory's key in the snapshot, and what follows from it.
    seen: Option<Seen>,
    /// The memory's secondary keys ([`crate::filter::keys_of`]), with the `created_at` of the
    /// record seen if there was one.
    keys: Vec<Vec<u8>>,
}

/// A stored record a memory will replace, read and decoded before the transaction.
struct Seen {
    record: Vec<u8>,
    stored: StoredMemory,
    /// The stored memory's secondary keys.
    keys: Vec<Vec<u8>>,
    /// The new memory's JSON with the stored memory's `created_at` (which a replacement keeps).
    json: Vec<u8>,
    /// Whether the stored memory's vector row is the new row (`None`: one of them has none).
    same_row: Option<bool>,
}

impl Prepared {
    pub(crate) fn new(memory: Memory, vector: Option<Vec<f32>>) -> Result<Prepared> {
        let json = serde_json::to_vec(&memory)?;
        Ok(Prepared { id: memory_key(&memory.id), memory, json, vector, embed: true, ahead: None })
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

/// What a write of `items` to namespace `ns` can do before its transaction, on the last
/// committed snapshot of `env`, shared among cores (see [`split_mut`]): encode the vector rows,
/// read and decode the records the items replace, and build both sides' secondary keys and the
/// JSON that keeps the stored `created_at` — so the transaction, which one writer holds at a
/// time, mostly finds its work done (see [`put_memory`]). With `charge_row` (the bytes of the
/// namespace's vector row), also sums what the replaced records are charged now (see
/// [`stored_charge`]), for the quota's reservation.
pub(crate) fn look_ahead(
    env: &Store<DataTables>,
    ns: NamespaceId,
    items: &mut [Prepared],
    charge_row: Option<u64>,
) -> Result<u64> {
    let charged = split_mut(items, |share| {
        env.read(|r, t| {
            let seq = t.stats_of(r, ns)?.vector_writes;
            let mut charged = 0;
            for p in share.iter_mut() {
                let row = p.vector.as_ref().map(|v| encode_row(&p.id, v));
                let seen = match t.memories.get(r, &ns_key(ns, &p.id))? {
                    Some(record) => {
                        let (stored, json, same_fields) =
                            replaced(record, p, charge_row, &mut charged)?;
                        let record = record.to_vec();
                        let keys = crate::filter::keys_of(&stored.memory);
                        let same_row = match (stored.slot, &row) {
                            (Some(s), Some(row)) => Some(
                                t.vectors.get(r, &ns_key(ns, &s.to_be_bytes()))?
                                    == Some(row.as_slice()),
                            ),
                            _ => None,
                        };
                        Some((Seen { record, stored, keys, json, same_row }, same_fields))
                    }
                    None => None,
                };
                let keys = match &seen {
                    // The new memory with the stored `created_at` is the stored one but for
                    // its `updated_at` (and `expires_at`, which has no key).
                    Some((s, true)) => crate::filter::with_updated_at(&s.keys, p.memory.updated_at),
                    Some((s, false)) => {
                        let now =
                            std::mem::replace(&mut p.memory.created_at, s.stored.memory.created_at);
                        let keys = crate::filter::keys_of(&p.memory);
                        p.memory.created_at = now;
                        keys
                    }
                    None => crate::filter::keys_of(&p.memory),
                };
                let seen = seen.map(|(s, _)| s);
                p.ahead = Some(Ahead { seq, row, seen, keys });
            }
            Ok(charged)
        })
    })?;
    Ok(charged.into_iter().sum())
}

/// The stored memory that item `p` replaces, read from its record `record`; the item's JSON
/// with the stored `created_at` (which a replacement keeps); and whether the stored memory is
/// the item's but for its times (see [`same_but_times`]). With `charge_row`, adds what the
/// record is charged now to `charged` (see [`stored_charge`]).
fn replaced(
    record: &[u8],
    p: &Prepared,
    charge_row: Option<u64>,
    charged: &mut u64,
) -> Result<(StoredMemory, Vec<u8>, bool)> {
    if let Some((slot, times, json)) = same_but_times(record, &p.json) {
        if let Some(row) = charge_row {
            *charged += charged_size(record.len(), slot.map_or(0, |_| row))
                + postings_charge(slot, &p.memory.content);
        }
        return Ok((times.of(&p.memory, slot), json, true));
    }
    if let Some(row) = charge_row {
        *charged += stored_charge(record, row)?;
    }
    let stored = decode_record(record)?;
    let mut json = p.json.clone();
    if stored.memory.created_at != p.memory.created_at {
        set_created_at(&mut json, &stored.memory.created_at)?;
    }
    Ok((stored, json, false))
}

/// Items per thread below which [`split_mut`] starts no thread for them.
const MIN_SHARE: usize = 64;
/// Threads [`split_mut`] uses at most, the calling one included.
const MAX_SPLIT: usize = 4;

/// `f` over shares of `items`: up to [`MAX_SPLIT`] of them (as many as the machine has cores
/// and the items make shares of [`MIN_SHARE`]), each on a thread of its own but the first,
/// which the calling thread takes. A batch's work before its write transaction (checks,
/// serialising, reading what it replaces) so runs beside a commit on another core instead of
/// after it. Returns each share's result in order; with failures, the first share's error.
pub(crate) fn split_mut<T: Send, R: Send>(
    items: &mut [T],
    f: impl Fn(&mut [T]) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from));
    let threads = cores.min(MAX_SPLIT).min(items.len() / MIN_SHARE).max(1);
    if threads == 1 {
        return Ok(vec![f(items)?]);
    }
    let mut shares = items.chunks_mut(items.len().div_ceil(threads));
    let first = shares.next().unwrap_or_default();
    std::thread::scope(|s| {
        let f = &f;
        let others: Vec<_> = shares.map(|share| s.spawn(move || f(share))).collect();
        let mut out = vec![f(first)?];
        for other in others {
            out.push(other.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?);
        }
        Ok(out)
    })
}

/// `f` over `items` (with each one's index), shared among threads as [`split_mut`] shares
/// them. The results are in the items' order; with failures, the first failing item's error.
pub(crate) fn split_map<T: Send, U: Send>(
    items: Vec<T>,
    f: impl Fn(usize, T) -> Result<U> + Sync,
) -> Result<Vec<U>> {
    let mut work: Vec<(usize, Option<T>, Option<U>)> =
        items.into_iter().enumerate().map(|(i, t)| (i, Some(t), None)).collect();
    split_mut(&mut work, |share| {
        for (i, t, u) in share.iter_mut() {
            if let Some(t) = t.take() {
                *u = Some(f(*i, t)?);
            }
        }
        Ok(())
    })?;
    Ok(work.into_iter().filter_map(|(_, _, u)| u).collect())
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
/// `is_dead` tells a deleted namespace: once it is, nothing more is written to it (asked
/// inside the transaction, so no write lands after the purge of its rows has begun).
pub(crate) fn write_rows(
    is_dead: &dyn Fn(NamespaceId) -> bool,
    rec: &NamespaceRecord,
    items: &mut [Prepared],
    embedder_name: &str,
    patch: Option<&Patch<'_>>,
    w: &mut heed3::RwTxn<'_>,
    t: &DataTables,
) -> Result<(WriteEffects, NamespaceStats)> {
    if is_dead(rec.id) {
        return Err(Error::namespace_forbidden(&rec.name));
    }
    let mut stats = t.stats_of(w, rec.id)?;
    if !stats.fields_indexed {
        crate::filter::build_all(t, w, rec.id, &mut stats)?;
    }
    // A namespace without memories holds no keys of an earlier layout.
    stats.fields_by_slot |= stats.memory_count == 0;
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
    effects.postings.flush(t, w, rec.id, &mut stats)?;
    stats.vector_writes += 1;
    if !effects.refile.is_empty() {
        let (seq, indexed) = (stats.vector_writes, stats.indexed_until > 0);
        stats.refile +=
            crate::filter::mark_refile(t, w, rec.id, seq, indexed, &mut effects.refile)?;
    }
    if !effects.stale.is_empty() {
        let seq = stats.vector_writes;
        stats.stale_updated += crate::filter::note_stale(t, w, rec.id, seq, &mut effects.stale)?;
    }
    if crate::filter::stale_due(&stats) {
        crate::filter::drop_stale(t, w, rec.id)?;
        stats.stale_updated = 0;
    }
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
    /// Slots whose rows were overwritten in place (their index cells may be stale), noted
    /// for the index maintenance once the items are written (see [`crate::filter::mark_refile`]).
    pub refile: Vec<u32>,
    /// Keyword postings of the new memories, not written yet.
    pub postings: crate::keyword::Pending,
    /// `updated_at` keys left in place by upserts: (memory key, old value), noted once the
    /// items are written (see [`crate::filter::note_stale`]).
    pub stale: Vec<([u8; 16], [u8; 8])>,
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
    // What [`look_ahead`] did holds if the record is still the one it saw (or still absent):
    // it is, without reading it again, while no write has changed the namespace's records
    // since its snapshot (see [`Ahead::seq`]; the items before this one in the same write
    // have other ids, which the batch checks). An update builds its memory from the stored
    // one here, so its keys are built here too.
    let ahead = p.ahead.take().filter(|_| patch.is_none());
    let (mut row, seen, keys, unchanged) = match ahead {
        Some(a) => (a.row, a.seen, Some(a.keys), a.seq == stats.vector_writes),
        None => (None, None, None, false),
    };
    let id = p.id;
    let mut row_of = |v: &[f32]| row.take().unwrap_or_else(|| encode_row(&id, v));
    let (old, keys) = match seen {
        Some(s) if unchanged => {
            (Some((s.record.len(), s.stored, Some((s.keys, s.json, s.same_row)))), keys)
        }
        None if unchanged => (None, keys),
        seen => match (t.memories.get(w, &key)?, seen) {
            (None, None) => (None, keys),
            (None, Some(_)) => (None, None),
            // The row may have changed with the record still the same (a clock that did not
            // move): it is compared here.
            (Some(bytes), Some(s)) if bytes == s.record.as_slice() => {
                (Some((bytes.len(), s.stored, Some((s.keys, s.json, None)))), keys)
            }
            (Some(bytes), _) => (Some((bytes.len(), decode_record(bytes)?, None)), None),
        },
    };
    let Some((len, stored, seen)) = old else {
        if patch.is_some() {
            return Err(Error::not_found("memory", &p.memory.id));
        }
        stats.memory_count += 1;
        let slot = match &p.vector {
            Some(v) => {
                let s = stats.next_slot;
                stats.next_slot += 1;
                put_last(&t.vectors, w, &ns_key(ns, &s.to_be_bytes()), &row_of(v))?;
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
        // A memory with a vector slot is in the keyword index (see [`postings_charge`]); its
        // postings are written with the transaction's other new memories' (see `Pending`).
        let terms = slot.map(|_| crate::keyword::Terms::of(&p.memory.content));
        let postings = terms.as_ref().map_or(0, crate::keyword::Terms::charge);
        if let (Some(s), Some(terms)) = (slot, terms) {
            effects.postings.add(s, terms);
        }
        for e in &p.memory.entities {
            crate::graph::link_memory(t, w, ns, e, &p.id)?;
        }
        let parts = keys.unwrap_or_else(|| crate::filter::keys_of(&p.memory));
        crate::filter::put_keys(t, w, ns, &p.id, &parts, slot)?;
        stats.expiring += u64::from(p.memory.expires_at.is_some());
        let size = p.charge() + postings;
        stats.storage_bytes += size;
        effects.charged += size;
        return Ok(slot.map_or(RowWrite::None, RowWrite::New));
    };
    // A replacement changes postings in place: those of the new memories before it first.
    effects.postings.flush(t, w, ns, stats)?;
    let (seen_keys, same_row) = match seen {
        Some((keys, json, same_row)) => {
            p.json = json;
            p.memory.created_at = stored.memory.created_at;
            (Some(keys), same_row)
        }
        None => (None, None),
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
            let row = row_of(v);
            // The same vector again (an import run again, a document added again): its row
            // and index cell stay as they are, and only a new agent reaches the cached copy.
            let same = match same_row {
                Some(same) => same,
                None => t.vectors.get(w, &vkey)? == Some(row.as_slice()),
            };
            if same {
                let same_agent = p.memory.agent_id == stored.memory.agent_id;
                (Some(s), if same_agent { RowWrite::None } else { RowWrite::Replaced(s) })
            } else {
                t.vectors.put(w, &vkey, &row)?;
                effects.refile.push(s);
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
            if crate::filter::unmark_refile(t, w, ns, s)? {
                stats.refile = stats.refile.saturating_sub(1);
            }
            effects.removed_slots.push(s);
            (None, RowWrite::None)
        }
        (None, Some(v)) => {
            let s = stats.next_slot;
            stats.next_slot += 1;
            put_last(&t.vectors, w, &ns_key(ns, &s.to_be_bytes()), &row_of(v))?;
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
    let layout = crate::filter::Layout::of(stats);
    let new_keys = keys.unwrap_or_else(|| crate::filter::keys_of(&p.memory));
    if slot == stored.slot {
        let old_keys = seen_keys.unwrap_or_else(|| crate::filter::keys_of(&stored.memory));
        let parts = (&old_keys[..], &new_keys[..]);
        if let Some(old) = crate::filter::update_keys(t, w, ns, (&p.id, slot), parts, layout)? {
            effects.stale.push((p.id, old));
        }
    } else {
        crate::filter::delete_keys(t, w, ns, (&p.id, stored.slot), &stored.memory, layout)?;
        crate::filter::put_keys(t, w, ns, &p.id, &new_keys, slot)?;
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

/// The times of a stored memory, read from its record without decoding the rest (see
/// [`same_but_times`]).
#[allow(clippy::struct_field_names)] // the record's field names
pub(super) struct Times {
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
}

impl Times {
    /// The times of `tail`, the JSON object of a record's fields from `created_at` on, when
    /// each is written as chrono writes it (as every stored time is; `None` otherwise).
    fn read(tail: &[u8]) -> Option<Times> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(clippy::struct_field_names)] // the record's field names
        struct Text<'a> {
            #[serde(borrow)]
            created_at: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            updated_at: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            expires_at: Option<std::borrow::Cow<'a, str>>,
        }
        let text: Text<'_> = serde_json::from_slice(tail).ok()?;
        let expires_at = match &text.expires_at {
            Some(t) => Some(chrono_written(t)?),
            None => None,
        };
        Some(Times {
            created_at: chrono_written(&text.created_at)?,
            updated_at: chrono_written(&text.updated_at)?,
            expires_at,
        })
    }

    /// The stored memory that is `m` but for these times, with vector `slot`.
    pub(super) fn of(self, m: &Memory, slot: Option<u32>) -> StoredMemory {
        let memory = Memory {
            created_at: self.created_at,
            updated_at: self.updated_at,
            expires_at: self.expires_at,
            ..m.clone()
        };
        StoredMemory { memory, slot }
    }
}

/// Where the value of the `created_at` field of a memory's JSON (as [`Prepared::new`]
/// serialised it) lies, its quotes included. The field is the last `"created_at":` of the
/// text: only `updated_at` and `expires_at` (timestamps or null) follow it, nothing a caller
/// wrote.
fn created_at_value(json: &[u8]) -> Option<std::ops::Range<usize>> {
    let start = json.windows(CREATED_AT.len()).rposition(|w| w == CREATED_AT)? + CREATED_AT.len();
    let len = json[start..].iter().position(|b| *b == b'"')?;
    Some(start - 1..start + len + 1)
}

/// `"created_at":"`, as a memory's JSON has it.
const CREATED_AT: &[u8] = b"\"created_at\":\"";

/// When a stored record (`record`, current format) holds the JSON of the memory that `json`
/// serialises but for its times — the same bytes up to its `created_at` — its slot, its times
/// and the new memory's JSON with the stored `created_at` (which a replacement keeps), read
/// without decoding the rest: the stored memory is the new one with those times. So is every
/// record an upsert of the same fields replaces (a new vector for the same text, an import run
/// again). The same bytes are the same fields: both were written by the same serialiser from
/// one type, whose map keys are sorted. `None` otherwise, the record to be decoded whole.
pub(super) fn same_but_times(record: &[u8], json: &[u8]) -> Option<(Option<u32>, Times, Vec<u8>)> {
    let (slot, stored) = split_record(record)?;
    let new = created_at_value(json)?;
    if stored.get(..new.start)? != &json[..new.start] {
        return None;
    }
    let len = stored.get(new.start + 1..)?.iter().position(|b| *b == b'"')?;
    let old = new.start..new.start + len + 2;
    // The fields from `created_at` on, as an object of their own.
    let mut tail = Vec::with_capacity(1 + stored.len() - new.start + CREATED_AT.len());
    tail.push(b'{');
    tail.extend_from_slice(&stored[new.start + 1 - CREATED_AT.len()..]);
    let times = Times::read(&tail)?;
    let mut out = Vec::with_capacity(json.len() - new.len() + old.len());
    out.extend_from_slice(&json[..new.start]);
    out.extend_from_slice(&stored[old]);
    out.extend_from_slice(&json[new.end..]);
    Some((slot, times, out))
}

/// Sets the `created_at` of a memory's JSON (as [`Prepared::new`] serialised it) to `t`
/// without serialising the memory again (see [`created_at_value`]).
pub(super) fn set_created_at(json: &mut Vec<u8>, t: &DateTime<Utc>) -> Result<()> {
    let value = created_at_value(json)
        .ok_or_else(|| Error::Internal("a memory's JSON has no created_at".into()))?;
    json.splice(value, serde_json::to_vec(t)?);
    Ok(())
}

/// Bytes charged for a memory's keyword postings: a memory with a vector slot is in the
/// keyword index (see [`crate::keyword::index`]).
pub(super) fn postings_charge(slot: Option<u32>, content: &str) -> u64 {
    slot.map_or(0, |_| crate::keyword::charge(content))
}

/// Bytes charged for a memory: its record, its vector row, the vector's entry in an
/// approximate index (its cell, [`INDEX_ENTRY`]) and a fixed per-entry overhead. The index entry
/// is charged whether or not the namespace is large enough to be indexed yet, so its usage does
/// not jump when the background indexer builds one.
pub(super) fn charged_size(record_len: usize, row_len: u64) -> u64 {
    let index_entry = if row_len == 0 { 0 } else { INDEX_ENTRY };
    record_len as u64 + row_len + index_entry + 64
}

/// Bytes an indexed vector's cell takes on disk (key, value and LMDB node overhead).
pub(super) const INDEX_ENTRY: u64 = 24;

/// Bytes of a stored vector row of `dims` dimensions.
pub(crate) fn row_len(dims: usize) -> u64 {
    16 + 4 * dims as u64
}
