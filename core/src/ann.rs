//! Approximate nearest-neighbour search for large namespaces: an arroy index (random
//! projection trees) maintained in batches off the request path.
//!
//! Each indexed namespace's trees live in an LMDB environment of their own
//! (`DIR/indexes/<namespace id>/`), not beside its rows. LMDB has one writer per environment
//! and a build holds it for seconds (a first build of 100k × 384-d vectors: ~8 s here), so
//! this way a build stalls no write at all: memory writes go to the data environment, which
//! the indexer only touches with short read transactions and one tiny stats update per
//! chunk. It also makes erasure of the index a file removal, whatever the isolation mode.
//!
//! Invariants:
//! - Slots below `stats.indexed_until` are in the namespace's index, except deleted ones not
//!   yet cleaned up; slots from `indexed_until` on (the *tail*) may not be, and are searched
//!   exactly from the in-memory copy ([`crate::vector::VectorCache`]). A memory is therefore
//!   recallable the moment its store returns.
//! - The index commits a chunk before `indexed_until` (data environment) and the in-memory
//!   copy's `from_slot` advance past it. A recall takes its tail copy before opening the index's
//!   read transaction, so the index it reads covers at least everything the copy leaves out.
//!   Index hits at or above the copy's `from_slot` are dropped (the copy scores them exactly).
//! - Index hits are mapped slot → memory through the vector row, which a delete removes in its
//!   own transaction: a deleted memory never comes back from the index, even before the next
//!   build removes it from the trees (which it does).
//! - Items are added and the trees built in one write transaction (an index with added but
//!   unbuilt items is unreadable). A crash between the index commit and the stats update only
//!   makes the next build add those items again (adding is idempotent).
//! - The index environment of a deleted namespace is removed by its purge; it is never created
//!   for a namespace already marked deleted (both happen under the registry's write lock).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use heed::{Env, WithoutTls};
use parking_lot::RwLock;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::datastore::{ns_key, DataTables, NamespaceId, NamespaceStats};
use crate::engine::{Engine, EngineInner};
use crate::error::{Error, Result};
use crate::namespace::NamespaceRecord;
use crate::store::{Store, Tables};
use crate::vector::{decode_row, NamespaceVectors, PendingIndex};

/// Most items added to an index in one write transaction (bounds the rows held in memory
/// during a build: 100k × 384-d is ~150 MB).
pub(crate) const CHUNK: u32 = 100_000;
/// A tail shorter than this waits for [`QUIET`] without writes before it is indexed.
const MIN_BATCH: u32 = 2_000;
/// How long a namespace must go without writes before a short tail is indexed.
const QUIET: Duration = Duration::from_secs(2);
/// Trees per index (fixed: arroy would otherwise re-estimate, and drop trees, on each build).
/// Measured at 100k × 384 clustered vectors (2 cores): 16 trees build in ~8 s and, with
/// [`SEARCH_EFFORT`] 4, give recall@10 ≈ 0.98.
const N_TREES: usize = 16;
/// Search effort: `search_k = top_k × trees × SEARCH_EFFORT` (arroy's default is 1, which
/// gives recall@10 ≈ 0.85 here).
const SEARCH_EFFORT: usize = 4;
/// The arroy index number inside an index environment (one index per environment).
const INDEX: u16 = 0;
/// Initial map size of an index environment (sparse; grows when full).
const INDEX_MAP_SIZE: usize = 1 << 30;

/// The tables of an index environment.
pub(crate) struct IndexTables {
    ann: arroy::Database<'static, arroy::distances::Cosine>,
}

impl Tables for IndexTables {
    const MAX_DBS: u32 = 2;

    fn create(env: &Env<WithoutTls>) -> Result<Self> {
        let wtxn = env.write_txn()?;
        let ann = env
            .create_databases_and_commit(wtxn, |o, w| -> heed::Result<_> {
                Ok(heed::CommitOrAbort::<_, ()>::Commit(o.create_database(w, Some("ann"))?))
            })?
            .unwrap_commit();
        Ok(IndexTables { ann })
    }
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
    fn index_env(&self, ns: NamespaceId, create: bool) -> Result<Option<Arc<Store<IndexTables>>>> {
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
        let store = Arc::new(Store::open(&dir, INDEX_MAP_SIZE)?);
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

/// Candidates for a recall: the index's nearest items over the indexed part, merged with an
/// exact scan of the tail copy `tail`. Returns at most `want`, best first, and whether fewer
/// than `want` exist at all. `r` is a read transaction of the namespace's data environment.
pub(crate) fn candidates(
    inner: &EngineInner,
    t: &DataTables,
    r: &heed::RoTxn<'_, WithoutTls>,
    ns: NamespaceId,
    tail: &NamespaceVectors,
    query: &[f32],
    want: usize,
) -> Result<(Vec<Candidate>, bool)> {
    let exact = tail.search(query, want);
    let mut exhausted = exact.len() < want;
    let mut out: Vec<Candidate> = exact.into_iter().map(|h| (h.id, h.similarity)).collect();
    if tail.from_slot == 0 {
        return Ok((out, exhausted));
    }
    let Some(env) = inner.index_env(ns, false)? else { return Ok((out, exhausted)) };
    let found = env.read(|ir, it| {
        let reader = match arroy::Reader::open(ir, INDEX, it.ann) {
            Ok(reader) => reader,
            // Never built: empty.
            Err(arroy::Error::MissingMetadata(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        if reader.dimensions() != query.len() {
            return Ok(Vec::new());
        }
        let search_k = want.saturating_mul(reader.n_trees().max(1)).saturating_mul(SEARCH_EFFORT);
        let mut q = reader.nns(want);
        if let Some(k) = NonZeroUsize::new(search_k) {
            q.search_k(k);
        }
        Ok(q.by_vector(ir, query)?)
    })?;
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
        stats.next_slot > stats.indexed_until
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
    let data = inner.data_env(&rec.location)?;
    let stats = data.read(|r, t| t.stats_of(r, rec.id))?;
    let Some(dims) = stats.dimensions.map(|d| d as usize) else { return Ok(Step::Done) };
    let indexed = stats.indexed_until > 0;
    if !indexed && !needs_work(inner, &stats) {
        return Ok(Step::Done);
    }
    let tail = stats.next_slot - stats.indexed_until;
    let due = force || !indexed || tail >= MIN_BATCH || p.last_write.elapsed() >= QUIET;
    if !due {
        return Ok(Step::Wait);
    }
    let Some(env) = inner.index_env(rec.id, true)? else { return Ok(Step::Done) };
    let from = stats.indexed_until;
    let end = stats.next_slot.min(from.saturating_add(CHUNK));
    // Read what the build needs from the data environment first (short read transactions),
    // so the data environment's writer is never held during the build.
    let (rows, live) = data.read(|r, t| {
        let rows = slot_rows(t, r, rec.id, from, end)?;
        let live = if indexed { Some(live_slots(t, r, rec.id, from)?) } else { None };
        Ok((rows, live))
    })?;
    let changed = env.write(|w, it| {
        if inner.is_dead(rec.id) {
            return Err(Error::namespace_forbidden(&rec.name));
        }
        let writer = arroy::Writer::new(it.ann, INDEX, dims);
        let mut changed = false;
        if let Some(live) = &live {
            let items: Vec<u32> = match arroy::Reader::open(w, INDEX, it.ann) {
                Ok(reader) => reader.item_ids().iter().take_while(|s| *s < from).collect(),
                Err(arroy::Error::MissingMetadata(_)) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            // Items below `from` whose vector row is gone were deleted.
            for slot in items {
                if live.binary_search(&slot).is_err() {
                    changed |= writer.del_item(w, slot)?;
                }
            }
        }
        for (slot, v) in &rows {
            if v.len() == dims {
                writer.add_item(w, *slot, v)?;
                changed = true;
            }
        }
        if changed || !indexed {
            let mut rng = StdRng::seed_from_u64(rec.id ^ u64::from(end));
            writer.builder(&mut rng).n_trees(N_TREES).build(w)?;
        }
        Ok(changed)
    })?;
    if end == from {
        // Only removed deleted items (or found nothing to do).
        return Ok(if changed { Step::Built } else { Step::Done });
    }
    data.write(|w, t| {
        if inner.is_dead(rec.id) {
            return Err(Error::namespace_forbidden(&rec.name));
        }
        let mut stats = t.stats_of(w, rec.id)?;
        stats.indexed_until = stats.indexed_until.max(end);
        t.put_stats(w, rec.id, &stats)
    })?;
    inner.vectors.advance(rec.id, end);
    Ok(Step::Built)
}

/// The vector rows of slots `from..end`.
fn slot_rows(
    t: &DataTables,
    r: &heed::RoTxn<'_, WithoutTls>,
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
    r: &heed::RoTxn<'_, WithoutTls>,
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
