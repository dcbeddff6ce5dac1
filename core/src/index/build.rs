//! Index maintenance: training a partition, filing the tail in it, and removing the cells of
//! deleted memories, one bounded step per queued namespace.

use std::sync::Arc;
use std::time::Duration;

use super::cache::{IndexUpdate, VectorCache};
use super::env::{slot_cell, stored_training, IndexTables};
use super::ivf::Ivf;
use super::queue::PendingIndex;
use super::{IndexHost, Indexes};
use crate::datastore::{ns_key, DataTables, NamespaceId, NamespaceStats};
use crate::error::{Error, Result};
use crate::records::memory::slot_agents;
use crate::records::NamespaceRecord;
use crate::storage::RoTxn;
use crate::store::Store;
use crate::vector::{decode_row, quantize};

/// Most tail rows filed in one step.
const CHUNK: u32 = 200_000;
/// A tail shorter than this waits for [`QUIET`] without writes before it is indexed.
const MIN_BATCH: u32 = 2_000;
/// How long a namespace must go without writes before a short tail is indexed.
const QUIET: Duration = Duration::from_secs(2);
/// Retrain when the namespace has this many times the vectors of the last training.
const RETRAIN_GROWTH: u64 = 4;

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
pub(super) fn maintain(
    indexes: &Indexes,
    host: &dyn IndexHost,
    cache: &VectorCache,
    force: bool,
) -> Result<u64> {
    let mut built = 0;
    loop {
        let queued = indexes.queue.snapshot();
        if queued.is_empty() {
            return Ok(built);
        }
        let mut progressed = false;
        for p in queued {
            let step = match step(indexes, host, cache, &p, force) {
                Ok(s) => s,
                Err(_) if host.is_dead(p.rec.id) => Step::Done,
                Err(e) => return Err(e),
            };
            match step {
                Step::Done => indexes.queue.done(&p),
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

fn step(
    index: &Indexes,
    host: &dyn IndexHost,
    cache: &VectorCache,
    p: &PendingIndex,
    force: bool,
) -> Result<Step> {
    let rec = &p.rec;
    if host.is_dead(rec.id) {
        return Ok(Step::Done);
    }
    let data = host.data_env(rec)?;
    let stats = data.read(|r, t| t.stats_of(r, rec.id))?;
    let Some(dims) = stats.dimensions.map(|d| d as usize) else { return Ok(Step::Done) };
    let indexed = stats.indexed_until > 0;
    if !indexed && !index.queue.needs_work(&stats) {
        return Ok(Step::Done);
    }
    let tail =
        (stats.next_slot - stats.indexed_until).max(stats.refile.min(u64::from(u32::MAX)) as u32);
    let due = force || !indexed || tail >= MIN_BATCH || p.last_write.elapsed() >= QUIET;
    if !due {
        return Ok(Step::Wait);
    }
    let Some(env) = index.envs.get(host, rec, true)? else { return Ok(Step::Done) };
    #[cfg(test)]
    if let Some(meanwhile) = WHILE_BUILDING.take() {
        meanwhile();
    }
    // A key rotation that rewrote the namespace's data environment drops its index (under the
    // old key), closing it: what this step built into it is discarded, and the namespace is
    // indexed again under the new key (the rotation marks it unindexed). Checked again in the
    // transaction that would record the step, which the rotation's mark is ordered with.
    let dropped = || env.read(|_, _| Ok(())).is_err();
    let training = env.read(|r, it| stored_training(it, r));
    let done = training.and_then(|training| match training.filter(|i| i.dims() == dims) {
        Some(ivf) if indexed && stats.memory_count < RETRAIN_GROWTH * ivf.trained.max(1) => {
            file_tail(host, rec, &data, &env, &ivf, &stats)
        }
        _ => retrain(rec, &data, &env, dims, &stats),
    });
    let done = match done {
        Err(_) if dropped() => return Ok(Step::Wait),
        done => done?,
    };
    let Some((end, update)) = done else { return Ok(Step::Done) };
    let kept = if end > stats.indexed_until {
        data.write_ns(rec.id, |w, t| {
            if host.is_dead(rec.id) {
                return Err(Error::namespace_forbidden(&rec.name));
            }
            if dropped() {
                return Ok(false);
            }
            let mut stats = t.stats_of(w, rec.id)?;
            stats.indexed_until = stats.indexed_until.max(end);
            t.put_stats(w, rec.id, &stats)?;
            Ok(true)
        })?
    } else {
        !dropped()
    };
    if !kept {
        return Ok(Step::Wait);
    }
    cache.indexed(rec.id, end, &update);
    Ok(Step::Built)
}

#[cfg(test)]
thread_local! {
    /// Tests: run by the next step on this thread once it has opened the namespace's index
    /// environment, before it builds (what a key rotation does meanwhile).
    pub(crate) static WHILE_BUILDING: std::cell::Cell<Option<Box<dyn FnOnce()>>> =
        const { std::cell::Cell::new(None) };
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
    let k = super::ivf::cells_for(stats.memory_count as usize);
    let stride = (stats.memory_count as usize / super::ivf::sample_size(k)).max(1);
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
    let centroids = super::ivf::train(&sample, dims, k, rec.id ^ u64::from(end));
    drop(sample);
    let mut ivf = Ivf::new(dims, stats.memory_count, centroids);
    let agents = data.read(|r, t| slot_agents(t, r, rec.id))?;
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
    host: &dyn IndexHost,
    rec: &NamespaceRecord,
    data: &Store<DataTables>,
    env: &Store<IndexTables>,
    ivf: &Ivf,
    stats: &NamespaceStats,
) -> Result<Option<(u32, IndexUpdate)>> {
    let from = stats.indexed_until;
    let end = stats.next_slot.min(from.saturating_add(CHUNK));
    let (rows, live, (notes, refile)) = data.read(|r, t| {
        Ok((
            slot_rows(t, r, rec.id, from, end)?,
            live_slots(t, r, rec.id, from)?,
            refile_rows(t, r, rec.id)?,
        ))
    })?;
    // Rows overwritten in place: their cells again, from the rows as they are now.
    let refiled: Vec<(u32, u32)> = refile
        .iter()
        .filter(|(_, v)| v.len() == ivf.dims())
        .map(|(slot, v)| {
            let mut codes = Vec::with_capacity(v.len());
            quantize(v, &mut codes);
            (*slot, ivf.nearest(&codes))
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
    if assigned.is_empty() && stale.is_empty() && notes.is_empty() && end == from {
        if stats.refile > 0 {
            count_notes(host, rec, data, &[], &[], end)?;
        }
        return Ok(None);
    }
    env.write(|w, it| {
        if host.is_dead(rec.id) {
            return Err(Error::namespace_forbidden(&rec.name));
        }
        for slot in &stale {
            it.cells.delete(w, &slot.to_be_bytes())?;
        }
        for (slot, cell) in &assigned {
            it.cells.put(w, &slot.to_be_bytes(), &cell.to_be_bytes())?;
        }
        for (slot, cell) in &refiled {
            if *slot < end {
                it.cells.put(w, &slot.to_be_bytes(), &cell.to_be_bytes())?;
            }
        }
        Ok(())
    })?;
    if !notes.is_empty() || stats.refile > 0 {
        count_notes(host, rec, data, &notes, &refiled, end)?;
    }
    Ok(Some((end, IndexUpdate::Added { trained: ivf.trained, assigned })))
}

/// Drops the refile notes read (`notes`) whose rows are now filed (`refiled` below `end`; a
/// slot at or past `end` is filed with the tail) or gone, and sets the namespace's count of
/// notes to those left. A row overwritten since the notes were read has a note of its own,
/// filed at the next step.
fn count_notes(
    host: &dyn IndexHost,
    rec: &NamespaceRecord,
    data: &Store<DataTables>,
    notes: &[crate::filter::RefileNote],
    refiled: &[(u32, u32)],
    end: u32,
) -> Result<()> {
    data.write_ns(rec.id, |w, t| {
        if host.is_dead(rec.id) {
            return Err(Error::namespace_forbidden(&rec.name));
        }
        for note in notes {
            let slot = note.slot;
            let filed = slot < end && refiled.binary_search_by_key(&slot, |f| f.0).is_ok();
            if filed || t.vectors.get(w, &ns_key(rec.id, &slot.to_be_bytes()))?.is_none() {
                crate::filter::drop_note(t, w, note)?;
            }
        }
        let mut stats = t.stats_of(w, rec.id)?;
        stats.refile = crate::filter::refile_notes(t, w, rec.id)?.len() as u64;
        t.put_stats(w, rec.id, &stats)
    })
}

/// A stored vector row: slot, memory id, vector.
type Row = (u32, [u8; 16], Vec<f32>);

/// The rows overwritten in place (see [`crate::filter::mark_refile`]): every note, and the
/// row of each slot they name (ascending, each once; a row that is gone comes with an empty
/// vector).
#[allow(clippy::type_complexity)]
fn refile_rows(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
) -> Result<(Vec<crate::filter::RefileNote>, Vec<(u32, Vec<f32>)>)> {
    let notes = crate::filter::refile_notes(t, r, ns)?;
    let mut slots: Vec<u32> = notes.iter().map(|n| n.slot).collect();
    slots.sort_unstable();
    slots.dedup();
    let mut rows = Vec::with_capacity(slots.len());
    for slot in slots {
        let v = t
            .vectors
            .get(r, &ns_key(ns, &slot.to_be_bytes()))?
            .and_then(decode_row)
            .map(|(_, v)| v)
            .unwrap_or_default();
        rows.push((slot, v));
    }
    Ok((notes, rows))
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
