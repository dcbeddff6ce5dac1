//! Approximate nearest-neighbour search for large namespaces: an IVF partition (see
//! [`crate::ivf`]) maintained in batches off the request path.
//!
//! What is stored: each indexed namespace has an LMDB environment of its own
//! (`DIR/indexes/<namespace id>/`) holding the trained centroids and each indexed slot's
//! cell. The int8 codes searched live in memory (in the namespace's
//! [`crate::vector::NamespaceVectors`]), rebuilt from the vector rows and the stored cells on
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
//!   version (see [`crate::vector::VectorCache::indexed`]); every slot is in exactly one of
//!   the partition and the tail.
//! - Candidates from the partition are re-scored from the stored f32 rows, which a delete
//!   removes in its own transaction: a deleted memory never comes back, even before a step
//!   removes its cell.
//! - The index environment of a deleted namespace is removed by its purge; it is never created
//!   for a namespace already marked deleted (both happen under the registry's write lock).
//! - The partition is retrained (new centroids, every vector filed again) when the namespace
//!   has grown 4× since the last training, so cells stay near √n vectors.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::datastore::{ns_key, DataTables, NamespaceId, NamespaceStats};
use crate::engine::{Engine, EngineInner};
use crate::error::{Error, Result};
use crate::ivf::Ivf;
use crate::namespace::NamespaceRecord;
use crate::storage::{Environment, RoTxn, Table};
use crate::store::{Store, Tables};
use crate::vector::{decode_row, quantize, IndexUpdate, NamespaceVectors, PendingIndex};
use heed3::types::{Bytes, Str};
use parking_lot::RwLock;

/// Most tail rows filed in one step.
const CHUNK: u32 = 200_000;
/// A tail shorter than this waits for [`QUIET`] without writes before it is indexed.
const MIN_BATCH: u32 = 2_000;
/// How long a namespace must go without writes before a short tail is indexed.
const QUIET: Duration = Duration::from_secs(2);
/// Retrain when the namespace has this many times the vectors of the last training.
const RETRAIN_GROWTH: u64 = 4;
/// Candidates taken from the partition per wanted result, re-scored exactly...
const RESCORE_FACTOR: usize = 4;
/// ...but at most this many beyond the wanted ones (wide requests come from selective filters).
const RESCORE_MAX_EXTRA: usize = 256;
/// Initial map size of an index environment (sparse; grows when full).
const INDEX_MAP_SIZE: usize = 256 << 20;

/// The tables of an index environment.
pub(crate) struct IndexTables {
    /// "centroids" → f32 LE values; "trained" → u64 BE (vectors trained on); "dims" → u32 BE.
    meta: Table<Str, Bytes>,
    /// slot (u32 BE) → cell (u32 BE).
    cells: Table<Bytes, Bytes>,
}

impl Tables for IndexTables {
    const MAX_DBS: u32 = 2;

    fn create(env: &Environment) -> Result<Self> {
        let [meta, cells] = env.create_tables(["meta", "cells"])?;
        Ok(IndexTables { meta: meta.remap_types(), cells })
    }
}

/// The stored training of an index: its empty partition.
fn stored_training(it: &IndexTables, r: &mut RoTxn<'_>) -> Result<Option<Ivf>> {
    // Each value is copied before the next read (see `storage`).
    let c = it.meta.get(r, "centroids")?.map(<[u8]>::to_vec);
    let t = it.meta.get(r, "trained")?.map(<[u8]>::to_vec);
    let d = it.meta.get(r, "dims")?.map(<[u8]>::to_vec);
    let (Some(c), Some(t), Some(d)) = (c, t, d) else {
        return Ok(None);
    };
    let trained = u64::from_be_bytes(t[..].try_into().map_err(|_| corrupt("trained"))?);
    let dims = u32::from_be_bytes(d[..].try_into().map_err(|_| corrupt("dims"))?) as usize;
    let centroids: Vec<f32> =
        c.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    if dims == 0 || centroids.is_empty() || !centroids.len().is_multiple_of(dims) {
        return Err(corrupt("centroids"));
    }
    Ok(Some(Ivf::new(dims, trained, centroids)))
}

fn corrupt(what: &str) -> Error {
    Error::Internal(format!("vector index: stored {what} is malformed"))
}

fn slot_cell(key: &[u8], value: &[u8]) -> Option<(u32, u32)> {
    Some((u32::from_be_bytes(key.try_into().ok()?), u32::from_be_bytes(value.try_into().ok()?)))
}

/// The open index environments, by namespace.
#[derive(Default)]
pub(crate) struct IndexEnvs {
    open: RwLock<HashMap<NamespaceId, Arc<Store<IndexTables>>>>,
}

fn index_dir(inner: &EngineInner, ns: NamespaceId) -> PathBuf {
    inner.dir.join("indexes").join(ns.to_string())
}

impl EngineInner {
    /// The index environment of `ns`: opened if it exists, created if `create`. `None` if it
    /// does not exist (and is not to be created) or the namespace is deleted.
    fn index_env(
        &self,
        rec: &NamespaceRecord,
        create: bool,
    ) -> Result<Option<Arc<Store<IndexTables>>>> {
        let ns = rec.id;
        if let Some(s) = self.indexes.open.read().get(&ns) {
            return Ok(Some(s.clone()));
        }
        let mut open = self.indexes.open.write();
        if let Some(s) = open.get(&ns) {
            return Ok(Some(s.clone()));
        }
        let dir = index_dir(self, ns);
        if self.is_dead(ns) || !(create || dir.exists()) {
            return Ok(None);
        }
        // The namespace's data key: its index is as secret as its vectors.
        let key = self.key_for(&rec.location, rec.tenant_id.as_deref())?;
        let store = Arc::new(crate::encryption::open_store(&dir, INDEX_MAP_SIZE, key.as_ref())?);
        open.insert(ns, store.clone());
        Ok(Some(store))
    }

    /// Closes and removes the index environment of a deleted namespace (idempotent).
    pub(crate) fn destroy_index_env(&self, ns: NamespaceId) -> Result<()> {
        let mut open = self.indexes.open.write();
        if let Some(s) = open.remove(&ns) {
            return s.destroy();
        }
        match std::fs::remove_dir_all(index_dir(self, ns)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// One candidate of a recall: memory id and cosine similarity.
pub(crate) type Candidate = ([u8; 16], f32);

/// Loads a namespace's searchable vectors: the tail rows, and the partition of the indexed
/// rows rebuilt from their stored cells.
pub(crate) fn load_vectors(inner: &EngineInner, rec: &NamespaceRecord) -> Result<NamespaceVectors> {
    let data = inner.data_env_of(rec)?;
    data.read(|r, t| {
        let agents = crate::memory::slot_agents(t, r, rec.id)?;
        let mut nv = NamespaceVectors::load(t, r, rec.id, &agents)?;
        if nv.from_slot == 0 {
            return Ok(nv);
        }
        // Rows overwritten in place since their cell was stored: searched exactly.
        let refile: Vec<u32> =
            crate::filter::refile_slots(t, r, rec.id)?.into_iter().map(|e| e.0).collect();
        let index = match inner.index_env(rec, false)? {
            Some(env) => env.read(|ir, it| {
                let Some(ivf) = stored_training(it, ir)? else { return Ok(None) };
                let mut cells = Vec::new();
                for e in it.cells.iter(ir)? {
                    let (k, v) = e?;
                    cells.extend(slot_cell(k, v));
                }
                Ok(Some((ivf, cells)))
            })?,
            None => None,
        };
        let (mut ivf, cells) = match index {
            Some((ivf, cells)) => (Some(ivf), cells),
            None => (None, Vec::new()),
        };
        let mut unfiled = Vec::new();
        let mut batch: Vec<(u32, u32, Vec<i8>, f32)> = Vec::new();
        let flush = |ivf: &mut Option<Ivf>, batch: &mut Vec<(u32, u32, Vec<i8>, f32)>| {
            if let Some(ivf) = ivf {
                ivf.add(batch.iter().map(|(s, c, codes, scale)| {
                    (*s, *c, codes.as_slice(), *scale, agents.get(*s))
                }));
            }
            batch.clear();
        };
        t.each_vector_row(r, rec.id, 0, nv.from_slot, |slot, row| {
            let Some((id, v)) = decode_row(row) else { return Ok(()) };
            let cell = ivf
                .as_ref()
                .filter(|i| i.dims() == v.len() && refile.binary_search(&slot).is_err())
                .and_then(|_| {
                    cells.binary_search_by_key(&slot, |c| c.0).ok().map(|at| cells[at].1)
                });
            match cell {
                Some(cell) => {
                    let mut codes = Vec::with_capacity(v.len());
                    let scale = quantize(&v, &mut codes);
                    batch.push((slot, cell, codes, scale));
                    if batch.len() >= 10_000 {
                        flush(&mut ivf, &mut batch);
                    }
                }
                None => unfiled.push((slot, id, v)),
            }
            Ok(())
        })?;
        flush(&mut ivf, &mut batch);
        if ivf.is_none() {
            // The index's files are gone (or its training does not fit): train a new one.
            queue(inner, rec, false);
        }
        nv.ivf = ivf.map(Arc::new);
        nv.push_tail(&unfiled, &agents, &refile);
        Ok(nv)
    })
}

/// Candidates for a recall: the exact best of the tail copy `vectors`, merged with the
/// partition's candidates re-scored exactly from their stored rows; only memories of agent key
/// `agent` when given (the caller still checks every filter on the record). Returns at most `want`,
/// best first, and whether fewer than `want` exist at all. `r` is a read transaction of the
/// namespace's data environment.
pub(crate) fn candidates(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
    vectors: &NamespaceVectors,
    query: &[f32],
    want: usize,
    agent: Option<u64>,
) -> Result<(Vec<Candidate>, bool)> {
    let exact = vectors.search(query, want, agent);
    let mut exhausted = exact.len() < want;
    let mut out: Vec<Candidate> = exact.into_iter().map(|h| (h.id, h.similarity)).collect();
    let Some(ivf) = &vectors.ivf else { return Ok((out, exhausted)) };
    let extra = want.saturating_mul(RESCORE_FACTOR - 1).min(RESCORE_MAX_EXTRA) + 32;
    let (found, complete) = ivf.search(query, want + extra, agent, |s| vectors.skip_indexed(s));
    // Not every cell probed: a wider request (the caller's next round) may find more.
    if found.len() >= want || !complete {
        exhausted = false;
    }
    let mut buf = Vec::with_capacity(query.len());
    for (slot, _) in found {
        // A missing row is a deleted memory.
        let Some(row) = t.vectors.get(r, &ns_key(ns, &slot.to_be_bytes()))? else {
            continue;
        };
        let Some(id) = row.get(..16).and_then(|id| <[u8; 16]>::try_from(id).ok()) else {
            continue;
        };
        let Some(sim) = crate::vector::row_dot(row, query, &mut buf) else { continue };
        out.push((id, sim));
    }
    out.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
    out.truncate(want);
    Ok((out, exhausted))
}

/// After a write to `rec` committed leaving `stats`: queue index work if the namespace is
/// (now) large enough.
pub(crate) fn note_write(inner: &EngineInner, rec: &NamespaceRecord, stats: &NamespaceStats) {
    if needs_work(inner, stats) {
        queue(inner, rec, true);
    }
}

/// After a delete from `rec` committed leaving `stats`: queue the removal of deleted items
/// from the namespace's index (they are already filtered out at read time).
pub(crate) fn note_delete(inner: &EngineInner, rec: &NamespaceRecord, stats: &NamespaceStats) {
    if stats.indexed_until > 0 {
        queue(inner, rec, true);
    }
}

/// A recall saw `stats`: queue index work that is due but not queued (e.g. after a restart).
pub(crate) fn note_recall(inner: &EngineInner, rec: &NamespaceRecord, stats: &NamespaceStats) {
    if needs_work(inner, stats) {
        queue(inner, rec, false);
    }
}

fn queue(inner: &EngineInner, rec: &NamespaceRecord, wrote: bool) {
    let now = Instant::now();
    inner
        .vectors
        .pending
        .lock()
        .entry(rec.id)
        .and_modify(|p| {
            if wrote {
                p.last_write = now;
            }
        })
        .or_insert_with(|| PendingIndex { rec: rec.clone(), last_write: now });
}

fn needs_work(inner: &EngineInner, stats: &NamespaceStats) -> bool {
    if stats.indexed_until > 0 {
        stats.next_slot > stats.indexed_until || stats.refile > 0
    } else {
        stats.memory_count >= inner.options.ann_threshold as u64
    }
}

/// What one maintenance step did.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Nothing (more) to do for this namespace.
    Done,
    /// Not yet due (short tail, recent writes).
    Wait,
    /// Indexed a chunk; more may follow.
    Built,
}

/// Runs one step for every queued namespace (every step until done when `force`). Returns
/// how many chunks were built.
pub(crate) fn maintain(inner: &EngineInner, force: bool) -> Result<u64> {
    let mut built = 0;
    loop {
        let queued: Vec<PendingIndex> = inner.vectors.pending.lock().values().cloned().collect();
        if queued.is_empty() {
            return Ok(built);
        }
        let mut progressed = false;
        for p in queued {
            let step = match step(inner, &p, force) {
                Ok(s) => s,
                Err(_) if inner.is_dead(p.rec.id) => Step::Done,
                Err(e) => return Err(e),
            };
            match step {
                Step::Done => {
                    let mut pending = inner.vectors.pending.lock();
                    // A write since the snapshot re-queued it: keep it.
                    if pending.get(&p.rec.id).is_some_and(|q| q.last_write == p.last_write) {
                        pending.remove(&p.rec.id);
                    }
                }
                Step::Wait => {}
                Step::Built => {
                    built += 1;
                    progressed = true;
                }
            }
        }
        if !force || !progressed {
            return Ok(built);
        }
    }
}

fn step(inner: &EngineInner, p: &PendingIndex, force: bool) -> Result<Step> {
    let rec = &p.rec;
    if inner.is_dead(rec.id) {
        return Ok(Step::Done);
    }
    let data = inner.data_env_of(rec)?;
    let stats = data.read(|r, t| t.stats_of(r, rec.id))?;
    let Some(dims) = stats.dimensions.map(|d| d as usize) else { return Ok(Step::Done) };
    let indexed = stats.indexed_until > 0;
    if !indexed && !needs_work(inner, &stats) {
        return Ok(Step::Done);
    }
    let tail =
        (stats.next_slot - stats.indexed_until).max(stats.refile.min(u64::from(u32::MAX)) as u32);
    let due = force || !indexed || tail >= MIN_BATCH || p.last_write.elapsed() >= QUIET;
    if !due {
        return Ok(Step::Wait);
    }
    let Some(env) = inner.index_env(rec, true)? else { return Ok(Step::Done) };
    let training = env.read(|r, it| stored_training(it, r))?.filter(|i| i.dims() == dims);
    let done = match training {
        Some(ivf) if indexed && stats.memory_count < RETRAIN_GROWTH * ivf.trained.max(1) => {
            file_tail(inner, rec, &data, &env, &ivf, &stats)?
        }
        _ => retrain(rec, &data, &env, dims, &stats)?,
    };
    let Some((end, update)) = done else { return Ok(Step::Done) };
    if end > stats.indexed_until {
        data.write_ns(rec.id, |w, t| {
            if inner.is_dead(rec.id) {
                return Err(Error::namespace_forbidden(&rec.name));
            }
            let mut stats = t.stats_of(w, rec.id)?;
            stats.indexed_until = stats.indexed_until.max(end);
            t.put_stats(w, rec.id, &stats)
        })?;
    }
    inner.vectors.indexed(rec.id, end, &update);
    Ok(Step::Built)
}

/// Trains a new partition on the namespace's vectors and files every vector below
/// `stats.next_slot` in it. `None` if there is no vector to train on.
fn retrain(
    rec: &NamespaceRecord,
    data: &Store<DataTables>,
    env: &Store<IndexTables>,
    dims: usize,
    stats: &NamespaceStats,
) -> Result<Option<(u32, IndexUpdate)>> {
    let end = stats.next_slot;
    let k = crate::ivf::cells_for(stats.memory_count as usize);
    let stride = (stats.memory_count as usize / crate::ivf::sample_size(k)).max(1);
    let sample: Vec<f32> = data.read(|r, t| {
        let mut sample = Vec::new();
        let mut i = 0usize;
        t.each_vector_row(r, rec.id, 0, end, |_, row| {
            if i.is_multiple_of(stride) {
                if let Some((_, v)) = decode_row(row).filter(|(_, v)| v.len() == dims) {
                    sample.extend_from_slice(&v);
                }
            }
            i += 1;
            Ok(())
        })?;
        Ok(sample)
    })?;
    if sample.is_empty() {
        return Ok(None); // no vector of the namespace's dimension left
    }
    let centroids = crate::ivf::train(&sample, dims, k, rec.id ^ u64::from(end));
    drop(sample);
    let mut ivf = Ivf::new(dims, stats.memory_count, centroids);
    let agents = data.read(|r, t| crate::memory::slot_agents(t, r, rec.id))?;
    let mut filed: Vec<(u32, u32)> = Vec::new();
    let mut start = 0;
    while start < end {
        let stop = start.saturating_add(50_000).min(end);
        let rows = data.read(|r, t| slot_rows(t, r, rec.id, start, stop))?;
        let coded: Vec<(u32, Vec<i8>, f32)> = rows
            .into_iter()
            .filter(|(_, _, v)| v.len() == dims)
            .map(|(slot, _, v)| {
                let mut codes = Vec::with_capacity(dims);
                let scale = quantize(&v, &mut codes);
                (slot, codes, scale)
            })
            .collect();
        let cells: Vec<u32> = coded.iter().map(|(_, codes, _)| ivf.nearest(codes)).collect();
        ivf.add(
            coded
                .iter()
                .zip(&cells)
                .map(|((s, codes, scale), c)| (*s, *c, codes.as_slice(), *scale, agents.get(*s))),
        );
        filed.extend(coded.iter().map(|(s, _, _)| *s).zip(cells));
        start = stop;
    }
    env.write(|w, it| {
        it.cells.clear(w)?;
        for (slot, cell) in &filed {
            it.cells.put(w, &slot.to_be_bytes(), &cell.to_be_bytes())?;
        }
        let bytes: Vec<u8> = ivf.centroids().iter().flat_map(|x| x.to_le_bytes()).collect();
        it.meta.put(w, "centroids", &bytes)?;
        it.meta.put(w, "trained", &ivf.trained.to_be_bytes())?;
        it.meta.put(w, "dims", &(dims as u32).to_be_bytes())?;
        Ok(())
    })?;
    Ok(Some((end, IndexUpdate::New(Arc::new(ivf)))))
}

/// Files the tail (up to [`CHUNK`] rows) in the stored partition `ivf` and removes the cells
/// of deleted memories. `None` if there was nothing to do.
fn file_tail(
    inner: &EngineInner,
    rec: &NamespaceRecord,
    data: &Store<DataTables>,
    env: &Store<IndexTables>,
    ivf: &Ivf,
    stats: &NamespaceStats,
) -> Result<Option<(u32, IndexUpdate)>> {
    let from = stats.indexed_until;
    let end = stats.next_slot.min(from.saturating_add(CHUNK));
    let (rows, live, refile) = data.read(|r, t| {
        Ok((
            slot_rows(t, r, rec.id, from, end)?,
            live_slots(t, r, rec.id, from)?,
            refile_rows(t, r, rec.id)?,
        ))
    })?;
    // Rows overwritten in place: their cells again, from the rows as they are now.
    let refiled: Vec<(u32, u32, u64)> = refile
        .iter()
        .filter(|(_, v, _)| v.len() == ivf.dims())
        .map(|(slot, v, sum)| {
            let mut codes = Vec::with_capacity(v.len());
            quantize(v, &mut codes);
            (*slot, ivf.nearest(&codes), *sum)
        })
        .collect();
    let assigned: Vec<(u32, u32)> = rows
        .iter()
        .filter(|(_, _, v)| v.len() == ivf.dims())
        .map(|(slot, _, v)| {
            let mut codes = Vec::with_capacity(v.len());
            quantize(v, &mut codes);
            (*slot, ivf.nearest(&codes))
        })
        .collect();
    let stale: Vec<u32> = env.read(|r, it| {
        if it.cells.len(r)? <= live.len() as u64 {
            return Ok(Vec::new());
        }
        let mut stale = Vec::new();
        for e in it.cells.iter(r)? {
            let (k, v) = e?;
            if let Some((slot, _)) = slot_cell(k, v) {
                if slot < from && live.binary_search(&slot).is_err() {
                    stale.push(slot);
                }
            }
        }
        Ok(stale)
    })?;
    if assigned.is_empty() && stale.is_empty() && refile.is_empty() && end == from {
        return Ok(None);
    }
    env.write(|w, it| {
        if inner.is_dead(rec.id) {
            return Err(Error::namespace_forbidden(&rec.name));
        }
        for slot in &stale {
            it.cells.delete(w, &slot.to_be_bytes())?;
        }
        for (slot, cell) in &assigned {
            it.cells.put(w, &slot.to_be_bytes(), &cell.to_be_bytes())?;
        }
        for (slot, cell, _) in &refiled {
            if *slot < end {
                it.cells.put(w, &slot.to_be_bytes(), &cell.to_be_bytes())?;
            }
        }
        Ok(())
    })?;
    if !refile.is_empty() {
        // The notes go once their cells are stored, unless the row was overwritten again
        // meanwhile (its note's checksum changed: filed again at the next step). A slot at or
        // past `end` is filed with the tail.
        data.write_ns(rec.id, |w, t| {
            if inner.is_dead(rec.id) {
                return Err(Error::namespace_forbidden(&rec.name));
            }
            let mut stats = t.stats_of(w, rec.id)?;
            let mut dropped = 0;
            for (slot, _, sum) in &refile {
                let filed = refiled.iter().any(|f| f.0 == *slot) && *slot < end;
                let gone = t.vectors.get(w, &ns_key(rec.id, &slot.to_be_bytes()))?.is_none();
                if (filed || gone) && crate::filter::unmark_refile(t, w, rec.id, *slot, Some(*sum))?
                {
                    dropped += 1;
                }
            }
            stats.refile = stats.refile.saturating_sub(dropped);
            t.put_stats(w, rec.id, &stats)
        })?;
    }
    Ok(Some((end, IndexUpdate::Added { trained: ivf.trained, assigned })))
}

/// A stored vector row: slot, memory id, vector.
type Row = (u32, [u8; 16], Vec<f32>);

/// The rows overwritten in place (see [`crate::filter::mark_refile`]): slot, vector, and the
/// checksum of the note. A note whose row is gone comes with an empty vector.
fn refile_rows(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
) -> Result<Vec<(u32, Vec<f32>, u64)>> {
    let mut out = Vec::new();
    for (slot, sum) in crate::filter::refile_slots(t, r, ns)? {
        let v = t
            .vectors
            .get(r, &ns_key(ns, &slot.to_be_bytes()))?
            .and_then(decode_row)
            .map(|(_, v)| v)
            .unwrap_or_default();
        out.push((slot, v, sum));
    }
    Ok(out)
}

/// The vector rows of slots `from..end`.
fn slot_rows(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
    from: u32,
    end: u32,
) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    t.each_vector_row(r, ns, from, end, |slot, row| {
        out.extend(decode_row(row).map(|(id, v)| (slot, id, v)));
        Ok(())
    })?;
    Ok(out)
}

/// Live vector slots below `end`, ascending.
fn live_slots(t: &DataTables, r: &mut RoTxn<'_>, ns: NamespaceId, end: u32) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    t.each_vector_row(r, ns, 0, end, |slot, _| {
        out.push(slot);
        Ok(())
    })?;
    Ok(out)
}

/// Starts the index maintenance thread. It holds only a weak reference and ends when the
/// engine is closing (woken by an unpark then).
pub(crate) fn spawn_indexer(inner: &Arc<EngineInner>) -> Option<std::thread::JoinHandle<()>> {
    let weak: Weak<EngineInner> = Arc::downgrade(inner);
    let spawned = std::thread::Builder::new().name("memsilo-indexer".into()).spawn(move || loop {
        {
            let Some(inner) = weak.upgrade() else { return };
            if inner.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            if let Err(e) = maintain(&inner, false) {
                tracing::warn!("vector index maintenance failed, will retry: {e}");
            }
        }
        std::thread::park_timeout(Duration::from_millis(250));
    });
    spawned.map_err(|e| tracing::error!("could not start the vector indexer: {e}")).ok()
}

impl Engine {
    /// Brings every queued approximate vector index up to date now, on this thread, instead
    /// of waiting for the background indexer (which batches: a namespace's newest memories are
    /// indexed once enough have arrived or writes pause). Returns how many index chunks were
    /// built. Recall never depends on this: memories not yet indexed are searched exactly.
    pub fn build_vector_indexes(&self) -> Result<u64> {
        maintain(&self.inner, true)
    }
}
