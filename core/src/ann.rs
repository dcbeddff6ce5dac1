//! Approximate nearest-neighbour search for large namespaces: an arroy index (random
//! projection trees) in the namespace's own LMDB environment, maintained in batches off the
//! request path.
//!
//! Invariants:
//! - Slots below `stats.indexed_until` are in the namespace's arroy index (`stats.ann_index`),
//!   except deleted ones not yet cleaned up; slots from `indexed_until` on (the *tail*) are not,
//!   and are searched exactly from the in-memory copy ([`crate::vector::VectorCache`]). A
//!   memory is therefore recallable the moment its store returns.
//! - A recall takes its tail copy before opening its read transaction, and `indexed_until`
//!   never decreases, so the index it reads covers at least everything the copy leaves out.
//!   Index hits at or above the copy's `from_slot` are dropped (the copy scores them exactly).
//! - Index hits are mapped slot → memory through the vector row, which a delete removes in its
//!   own transaction: a deleted memory never comes back from the index, even before the next
//!   build removes it from the trees (which it does).
//! - Items are added and the trees built in one write transaction (an index with added but
//!   unbuilt items is unreadable), a bounded chunk of items per transaction.
//!
//! Trade-off: LMDB has one writer per environment, and `logical` namespaces share sharded
//! environments. While a chunk is built, writes to other namespaces of the same shard wait for
//! it; namespaces in other shards and in `hybrid`/`physical` environments do not (they only
//! share the CPU and the disk with the build). So the build is split into chunks whose size
//! adapts to keep each transaction near [`TARGET_TXN`], instead of holding the writer for a
//! whole build (~15 s for 100k vectors here, minutes for 1M). A tenant with very large or very
//! busy namespaces should use the `physical` isolation mode, whose environment is its own.

use std::num::NonZeroUsize;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::datastore::{ns_key, DataTables, NamespaceId, NamespaceStats};
use crate::engine::{Engine, EngineInner};
use crate::error::{Error, Result};
use crate::namespace::NamespaceRecord;
use crate::vector::{decode_row, NamespaceVectors, PendingIndex};

/// Items added to an index in its first write transaction; later chunks adapt so that each
/// transaction takes about [`TARGET_TXN`] (measured at 100k × 384: 2,000-item chunks take
/// ~0.35 s each, 10,000-item chunks up to ~2 s; the whole build costs 15-20 s either way).
pub(crate) const CHUNK: u32 = 10_000;
const MIN_CHUNK: u32 = 500;
const MAX_CHUNK: u32 = 50_000;
/// How long one index-maintenance write transaction should hold the environment's writer.
const TARGET_TXN: Duration = Duration::from_millis(500);
/// A tail shorter than this waits for [`QUIET`] without writes before it is indexed.
const MIN_BATCH: u32 = 2_000;
/// How long a namespace must go without writes before a short tail is indexed.
const QUIET: Duration = Duration::from_secs(2);
/// Trees per index (fixed: arroy would otherwise re-estimate, and drop trees, on each build).
/// Measured at 100k × 384 clustered vectors (2 cores): 16 trees build in 15-20 s and, with
/// [`SEARCH_EFFORT`] 4, give recall@10 ≈ 0.98 at ~1.2 ms.
const N_TREES: usize = 16;
/// Search effort: `search_k = top_k × trees × SEARCH_EFFORT` (arroy's default is 1, which
/// gives recall@10 ≈ 0.85 here).
const SEARCH_EFFORT: usize = 4;

/// One candidate of a recall: memory id and cosine similarity.
pub(crate) type Candidate = ([u8; 16], f32);

/// Candidates for a recall: the index's nearest items over the indexed part, merged with an
/// exact scan of the tail copy `tail`. Returns at most `want`, best first, and whether fewer
/// than `want` exist at all.
pub(crate) fn candidates(
    t: &DataTables,
    r: &heed::RoTxn<'_, heed::WithoutTls>,
    ns: NamespaceId,
    tail: &NamespaceVectors,
    query: &[f32],
    want: usize,
) -> Result<(Vec<Candidate>, bool)> {
    let exact = tail.search(query, want);
    let mut exhausted = exact.len() < want;
    let mut out: Vec<Candidate> = exact.into_iter().map(|h| (h.id, h.similarity)).collect();
    let stats = t.stats_of(r, ns)?;
    if let (Some(index), true) = (stats.ann_index, tail.from_slot > 0) {
        let reader = match arroy::Reader::open(r, index, t.ann) {
            Ok(reader) => Some(reader),
            // Never built: empty.
            Err(arroy::Error::MissingMetadata(_)) => None,
            Err(e) => return Err(e.into()),
        };
        if let Some(reader) = reader.filter(|rd| rd.dimensions() == query.len()) {
            let search_k =
                want.saturating_mul(reader.n_trees().max(1)).saturating_mul(SEARCH_EFFORT);
            let mut q = reader.nns(want);
            if let Some(k) = NonZeroUsize::new(search_k) {
                q.search_k(k);
            }
            let found = q.by_vector(r, query)?;
            if found.len() >= want {
                exhausted = false;
            }
            for (slot, distance) in found {
                if slot >= tail.from_slot {
                    continue;
                }
                // A missing row is a deleted memory not yet removed from the trees.
                let Some(row) = t.vectors.get(r, &ns_key(ns, &slot.to_be_bytes()))? else {
                    continue;
                };
                let Some(id) = row.get(..16).and_then(|b| <[u8; 16]>::try_from(b).ok()) else {
                    continue;
                };
                // arroy's cosine distance is (1 - cos) / 2.
                out.push((id, (1.0 - 2.0 * distance).clamp(-1.0, 1.0)));
            }
            out.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
            out.truncate(want);
        }
    }
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
    if stats.ann_index.is_some() {
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
        .or_insert_with(|| PendingIndex { rec: rec.clone(), last_write: now, chunk: CHUNK });
}

fn needs_work(inner: &EngineInner, stats: &NamespaceStats) -> bool {
    match stats.ann_index {
        Some(_) => stats.next_slot > stats.indexed_until,
        None => stats.memory_count >= inner.options.ann_threshold as u64,
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
            let started = Instant::now();
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
                    let took = started.elapsed();
                    if let Some(q) = inner.vectors.pending.lock().get_mut(&p.rec.id) {
                        q.chunk = if took > TARGET_TXN {
                            (q.chunk / 2).max(MIN_CHUNK)
                        } else if took < TARGET_TXN / 4 {
                            q.chunk.saturating_mul(2).min(MAX_CHUNK)
                        } else {
                            q.chunk
                        };
                    }
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
    let env = inner.data_env(&rec.location)?;
    let stats = env.read(|r, t| t.stats_of(r, rec.id))?;
    let Some(dims) = stats.dimensions.map(|d| d as usize) else { return Ok(Step::Done) };
    if !needs_work(inner, &stats) && stats.ann_index.is_none() {
        return Ok(Step::Done);
    }
    let tail = stats.next_slot - stats.indexed_until;
    let due =
        force || stats.ann_index.is_none() || tail >= MIN_BATCH || p.last_write.elapsed() >= QUIET;
    if !due {
        return Ok(Step::Wait);
    }
    let cleanup =
        stats.ann_index.is_some() && env.read(|r, t| has_deleted_items(t, r, rec.id, &stats))?;
    if tail == 0 && !cleanup {
        return Ok(Step::Done);
    }
    let (end, changed) = env.write(|w, t| {
        if inner.is_dead(rec.id) {
            return Err(Error::namespace_forbidden(&rec.name));
        }
        let mut stats = t.stats_of(w, rec.id)?;
        let index = match stats.ann_index {
            Some(i) => i,
            None => allocate_index(t, w, rec.id, dims)?,
        };
        let writer = arroy::Writer::new(t.ann, index, dims);
        let from = stats.indexed_until;
        let mut changed = stats.ann_index.is_none();
        if stats.ann_index.is_some() {
            for slot in deleted_items(t, w, rec.id, index, from)? {
                changed |= writer.del_item(w, slot)?;
            }
        }
        let end = stats.next_slot.min(from.saturating_add(p.chunk.max(MIN_CHUNK)));
        let rows: Vec<(u32, Vec<f32>)> = slot_rows(t, w, rec.id, from, end)?;
        for (slot, v) in rows {
            if v.len() == dims {
                writer.add_item(w, slot, &v)?;
                changed = true;
            }
        }
        if !changed && end == from {
            return Ok((end, false));
        }
        if changed {
            let mut rng = StdRng::seed_from_u64(rec.id ^ u64::from(end));
            writer.builder(&mut rng).n_trees(N_TREES).build(w)?;
        }
        stats.ann_index = Some(index);
        stats.indexed_until = end;
        t.put_stats(w, rec.id, &stats)?;
        Ok((end, true))
    })?;
    if !changed {
        return Ok(Step::Done);
    }
    inner.vectors.advance(rec.id, end);
    Ok(Step::Built)
}

/// The vector rows of slots `from..end`.
fn slot_rows(
    t: &DataTables,
    r: &heed::RoTxn<'_, heed::WithoutTls>,
    ns: NamespaceId,
    from: u32,
    end: u32,
) -> Result<Vec<(u32, Vec<f32>)>> {
    let start = ns_key(ns, &from.to_be_bytes());
    let stop = ns_key(ns, &end.to_be_bytes());
    let bounds = (std::ops::Bound::Included(&start[..]), std::ops::Bound::Excluded(&stop[..]));
    let mut out = Vec::new();
    for e in t.vectors.range(r, &bounds)? {
        let (key, row) = e?;
        let Some(slot) = key.get(8..12).and_then(|s| s.try_into().ok()).map(u32::from_be_bytes)
        else {
            continue;
        };
        if let Some((_, v)) = decode_row(row) {
            out.push((slot, v));
        }
    }
    Ok(out)
}

/// Live vector slots below `end`, ascending.
fn live_slots(
    t: &DataTables,
    r: &heed::RoTxn<'_, heed::WithoutTls>,
    ns: NamespaceId,
    end: u32,
) -> Result<Vec<u32>> {
    let start = ns_key(ns, &0u32.to_be_bytes());
    let stop = ns_key(ns, &end.to_be_bytes());
    let bounds = (std::ops::Bound::Included(&start[..]), std::ops::Bound::Excluded(&stop[..]));
    let mut out = Vec::new();
    for e in t.vectors.lazily_decode_data().range(r, &bounds)? {
        let (key, _) = e?;
        if let Some(slot) = key.get(8..12).and_then(|s| s.try_into().ok()).map(u32::from_be_bytes) {
            out.push(slot);
        }
    }
    Ok(out)
}

/// Whether the index holds items whose memory was deleted: it has more items than there are
/// live vectors below `indexed_until` (every memory has exactly one vector row).
fn has_deleted_items(
    t: &DataTables,
    r: &heed::RoTxn<'_, heed::WithoutTls>,
    ns: NamespaceId,
    stats: &NamespaceStats,
) -> Result<bool> {
    let Some(index) = stats.ann_index else { return Ok(false) };
    let items = match arroy::Reader::open(r, index, t.ann) {
        Ok(reader) => reader.n_items(),
        Err(arroy::Error::MissingMetadata(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let tail_rows = {
        let start = ns_key(ns, &stats.indexed_until.to_be_bytes());
        let stop = (ns + 1).to_be_bytes();
        let bounds = (std::ops::Bound::Included(&start[..]), std::ops::Bound::Excluded(&stop[..]));
        t.vectors.lazily_decode_data().range(r, &bounds)?.count() as u64
    };
    Ok(items > stats.memory_count.saturating_sub(tail_rows))
}

/// Index items below `end` whose vector row is gone.
fn deleted_items(
    t: &DataTables,
    w: &heed::RwTxn<'_>,
    ns: NamespaceId,
    index: u16,
    end: u32,
) -> Result<Vec<u32>> {
    let items: Vec<u32> = match arroy::Reader::open(w, index, t.ann) {
        Ok(reader) => reader.item_ids().iter().collect(),
        Err(arroy::Error::MissingMetadata(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let live = live_slots(t, w, ns, end)?;
    Ok(items.into_iter().filter(|s| live.binary_search(s).is_err()).collect())
}

/// Takes the lowest free index number of this environment for namespace `ns`.
fn allocate_index(
    t: &DataTables,
    w: &mut heed::RwTxn<'_>,
    ns: NamespaceId,
    dims: usize,
) -> Result<u16> {
    let mut free: u32 = 0;
    for e in t.ann_owners.iter(w)? {
        let (k, _) = e?;
        let Some(n) = k.get(..2).and_then(|b| b.try_into().ok()).map(u16::from_be_bytes) else {
            continue;
        };
        if u32::from(n) != free {
            break;
        }
        free += 1;
    }
    let index = u16::try_from(free).map_err(|_| {
        Error::Internal("no free vector index numbers in this storage environment".into())
    })?;
    t.ann_owners.put(w, &index.to_be_bytes(), &ns.to_be_bytes())?;
    // Leftovers of an earlier owner are normally cleared by its purge; make sure.
    arroy::Writer::new(t.ann, index, dims).clear(w)?;
    Ok(index)
}

/// Starts the index maintenance thread. It holds only a weak reference, so it ends when the
/// engine is dropped.
pub(crate) fn spawn_indexer(inner: &Arc<EngineInner>) {
    let weak: Weak<EngineInner> = Arc::downgrade(inner);
    let spawned = std::thread::Builder::new().name("memsilo-indexer".into()).spawn(move || loop {
        {
            let Some(inner) = weak.upgrade() else { return };
            if let Err(e) = maintain(&inner, false) {
                eprintln!("memsilo: vector index maintenance failed, will retry: {e}");
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    });
    if let Err(e) = spawned {
        eprintln!("memsilo: could not start the vector indexer: {e}");
    }
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
