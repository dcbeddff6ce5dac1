//! The cache of searchable vectors, one copy per namespace, within a byte budget.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::ivf::Ivf;
use super::vectors::NamespaceVectors;
use crate::datastore::NamespaceId;
use crate::error::Result;
use crate::vector::NewRow;

#[derive(Default)]
struct CacheEntry {
    version: u64,
    vectors: Option<Arc<NamespaceVectors>>,
    /// Tick of the last use (for eviction).
    used: u64,
    /// Held while the copy is loaded, so that callers who miss together wait for one load
    /// instead of each reading the namespace's rows (a cold namespace's first recalls arrive
    /// together).
    loading: Arc<Mutex<()>>,
}

/// What an index step changed, for the cached copies.
pub(crate) enum IndexUpdate {
    /// A new training: the whole partition.
    New(Arc<Ivf>),
    /// Rows of the tail filed into the existing partition: `(slot, cell)` sorted by slot.
    Added { trained: u64, assigned: Vec<(u32, u32)> },
}

/// Per-namespace in-memory vectors. Every committed write bumps the namespace's version and
/// applies its rows to the cached copy (under the namespace's lock, before the write returns);
/// a load records the version before reading and is installed only if no write applied its
/// rows meanwhile, so a recall never serves vectors older than a write that returned before
/// it began. A write that committed before a load read the environment but applies its rows
/// after the load was installed finds them there already (its sequence number is not past the
/// copy's `loaded_seq`) and adds nothing.
///
/// The copies together stay within a byte budget: past it, the least recently used ones are
/// dropped (the next recall of that namespace reloads it from disk).
pub(crate) struct VectorCache {
    entries: RwLock<HashMap<NamespaceId, Arc<Mutex<CacheEntry>>>>,
    budget: usize,
    held: AtomicUsize,
    ticks: AtomicU64,
}

impl VectorCache {
    pub(crate) fn new(budget: usize) -> Self {
        VectorCache {
            entries: RwLock::default(),
            budget,
            held: AtomicUsize::new(0),
            ticks: AtomicU64::new(0),
        }
    }

    fn entry(&self, ns: NamespaceId) -> Arc<Mutex<CacheEntry>> {
        if let Some(e) = self.entries.read().get(&ns) {
            return e.clone();
        }
        self.entries.write().entry(ns).or_default().clone()
    }

    /// Replaces an entry's copy, keeping the byte count.
    fn set(&self, e: &mut CacheEntry, vectors: Option<Arc<NamespaceVectors>>) {
        let old = e.vectors.as_ref().map_or(0, |v| v.bytes());
        let new = vectors.as_ref().map_or(0, |v| v.bytes());
        e.vectors = vectors;
        if new >= old {
            self.held.fetch_add(new - old, Ordering::Relaxed);
        } else {
            self.held.fetch_sub(old - new, Ordering::Relaxed);
        }
    }

    /// Drops least recently used copies, other than `keep`'s, until within the budget.
    fn evict(&self, keep: NamespaceId) {
        if self.held.load(Ordering::Relaxed) <= self.budget {
            return;
        }
        let mut held: Vec<(u64, Arc<Mutex<CacheEntry>>)> = self
            .entries
            .read()
            .iter()
            .filter(|(ns, _)| **ns != keep)
            .filter_map(|(_, e)| {
                let g = e.lock();
                g.vectors.as_ref().map(|_| (g.used, e.clone()))
            })
            .collect();
        held.sort_unstable_by_key(|(used, _)| *used);
        for (_, e) in held {
            if self.held.load(Ordering::Relaxed) <= self.budget {
                break;
            }
            let mut e = e.lock();
            self.set(&mut e, None);
        }
    }

    /// The namespace's vectors, loading them with `load` on a miss.
    pub(crate) fn get_or_load(
        &self,
        ns: NamespaceId,
        load: impl FnOnce() -> Result<NamespaceVectors>,
    ) -> Result<Arc<NamespaceVectors>> {
        let entry = self.entry(ns);
        let tick = self.ticks.fetch_add(1, Ordering::Relaxed);
        let loading = {
            let mut e = entry.lock();
            e.used = tick;
            match &e.vectors {
                Some(v) => return Ok(v.clone()),
                None => e.loading.clone(),
            }
        };
        let _loading = loading.lock();
        // The load this caller waited for may have installed the copy.
        let version = {
            let e = entry.lock();
            match &e.vectors {
                Some(v) => return Ok(v.clone()),
                None => e.version,
            }
        };
        let loaded = Arc::new(load()?);
        {
            let mut e = entry.lock();
            if e.version == version {
                self.set(&mut e, Some(loaded.clone()));
            }
        }
        self.evict(ns);
        Ok(loaded)
    }

    /// Write `seq` (its `NamespaceStats::vector_writes`) committed: `added` rows (slot, memory
    /// id, normalised vector), `replaced` rows (vectors overwritten in their slot) and
    /// `removed` slots. Writes may apply in another order than they committed.
    pub(crate) fn apply(
        &self,
        ns: NamespaceId,
        seq: u64,
        added: &[NewRow<'_>],
        replaced: &[NewRow<'_>],
        removed: &[u32],
    ) {
        let entry = self.entry(ns);
        {
            let mut e = entry.lock();
            e.version += 1;
            if let Some(v) = e.vectors.clone() {
                self.set(&mut e, v.with_delta(seq, added, replaced, removed).map(Arc::new));
            }
        }
        self.evict(ns);
    }

    /// The approximate index now covers every slot below `end` (see [`IndexUpdate`]).
    pub(crate) fn indexed(&self, ns: NamespaceId, end: u32, update: &IndexUpdate) {
        let entry = self.entry(ns);
        {
            let mut e = entry.lock();
            e.version += 1;
            if let Some(v) = e.vectors.clone() {
                if v.from_slot < end {
                    self.set(&mut e, v.indexed(end, update).map(Arc::new));
                }
            }
        }
        self.evict(ns);
    }

    /// Drops the namespace's copy (the next recall reloads it).
    pub(crate) fn invalidate(&self, ns: NamespaceId) {
        let entry = self.entry(ns);
        let mut e = entry.lock();
        e.version += 1;
        self.set(&mut e, None);
    }

    /// The namespace is gone.
    pub(crate) fn forget(&self, ns: NamespaceId) {
        self.invalidate(ns);
        self.entries.write().remove(&ns);
    }

    /// Bytes currently held by copies.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::vectors::tests::build;
    use crate::vector::tests::random_rows;

    #[test]
    fn the_cache_keeps_within_its_budget_dropping_the_least_recently_used() {
        let rows = random_rows(1000, 16, 4);
        let one = build(&rows, 1000);
        let cache = VectorCache::new(one.bytes() * 2 + 1);
        let loads = std::cell::Cell::new(0);
        let load = || {
            loads.set(loads.get() + 1);
            Ok(build(&rows, 1000))
        };
        cache.get_or_load(1, load).unwrap();
        cache.get_or_load(2, load).unwrap();
        cache.get_or_load(1, load).unwrap(); // 1 is now the most recently used
        assert_eq!(loads.get(), 2);
        cache.get_or_load(3, load).unwrap(); // over budget: 2 goes
        assert_eq!(cache.held(), one.bytes() * 2);
        cache.get_or_load(1, load).unwrap();
        assert_eq!(loads.get(), 3, "1 stayed cached");
        cache.get_or_load(2, load).unwrap();
        assert_eq!(loads.get(), 4, "2 was evicted and reloaded");
        // Writes keep the count exact; forgetting releases it.
        cache.apply(2, 100, &[(5000, [9; 16], rows[0].as_slice(), 0)], &[], &[]);
        cache.forget(1);
        cache.forget(2);
        cache.forget(3);
        assert_eq!(cache.held(), 0);
    }

    /// Recalls that miss together wait for one load of the namespace instead of each loading
    /// it; a load that fails leaves the next caller to load again.
    #[test]
    fn callers_that_miss_together_share_one_load() {
        let rows = random_rows(500, 16, 7);
        let cache = VectorCache::new(usize::MAX);
        let loads = AtomicUsize::new(0);
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    start.wait();
                    let copy = cache
                        .get_or_load(1, || {
                            loads.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            Ok(build(&rows, 500))
                        })
                        .unwrap();
                    assert_eq!(copy.len(), 500);
                });
            }
        });
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        let failed = cache.get_or_load(2, || Err(crate::Error::Internal("disk".into())));
        assert!(failed.is_err());
        assert_eq!(cache.get_or_load(2, || Ok(build(&rows, 500))).unwrap().len(), 500);
    }

    /// A write commits, a recall loads the namespace from a snapshot that holds that write and
    /// installs it, then the write applies its rows: the row is in the copy once, not twice
    /// (a recall listed the newest memory twice when the two raced).
    #[test]
    fn a_write_applied_after_a_load_that_holds_it_is_not_added_twice() {
        let rows = random_rows(3, 8, 5);
        let cache = VectorCache::new(usize::MAX);
        let loaded = || {
            let mut nv = build(&rows, 3);
            nv.loaded_seq = 3; // the snapshot's last vector write: writes 1..=3 committed
            Ok(nv)
        };
        cache.get_or_load(1, loaded).unwrap();
        cache.apply(1, 3, &[(2, [2; 16], rows[2].as_slice(), 0)], &[], &[]);
        let copy = cache.get_or_load(1, || unreachable!("cached")).unwrap();
        assert_eq!(copy.len(), 3);
        let hits = copy.search(&rows[2], 3, None);
        assert_eq!(hits.iter().filter(|h| h.slot == 2).count(), 1);
        // A write committed after the load still adds its row.
        cache.apply(1, 4, &[(3, [3; 16], rows[0].as_slice(), 0)], &[], &[]);
        assert_eq!(cache.get_or_load(1, || unreachable!("cached")).unwrap().len(), 4);
    }

    /// Upserts overwrite a row in its slot, so slots no longer tell which writes a load
    /// holds: an overwrite the load holds adds nothing, and of two overwrites of one slot that
    /// apply out of commit order the later-committed one stays live.
    #[test]
    fn overwrites_apply_once_and_the_last_committed_one_wins() {
        let rows = random_rows(6, 8, 11);
        let cache = VectorCache::new(usize::MAX);
        let loaded = || {
            // Slot 1 holds rows[3]: written by write 2, which the load holds.
            let mut nv = build(&[rows[0].clone(), rows[3].clone(), rows[2].clone()], 3);
            nv.loaded_seq = 2;
            Ok(nv)
        };
        cache.get_or_load(1, loaded).unwrap();
        cache.apply(1, 2, &[], &[(1, [1; 16], rows[3].as_slice(), 0)], &[]);
        let copy = cache.get_or_load(1, || unreachable!("cached")).unwrap();
        assert_eq!(copy.rows, 3, "the held overwrite added no row");
        assert!(copy.current.is_empty());
        // Write 4 (rows[5]) applies before write 3 (rows[4]).
        cache.apply(1, 4, &[], &[(1, [1; 16], rows[5].as_slice(), 0)], &[]);
        cache.apply(1, 3, &[], &[(1, [1; 16], rows[4].as_slice(), 0)], &[]);
        let copy = cache.get_or_load(1, || unreachable!("cached")).unwrap();
        let top = copy.search(&rows[5], 3, None);
        assert_eq!((top[0].slot, top.iter().filter(|h| h.slot == 1).count()), (1, 1));
        assert!((top[0].similarity - 1.0).abs() < 1e-5);
        for stale in [&rows[3], &rows[4]] {
            let hits = copy.search(stale, 3, None);
            assert_eq!(hits.iter().filter(|h| h.slot == 1).count(), 1);
            assert!(hits.iter().all(|h| h.slot != 1 || h.similarity < 0.999));
        }
    }
}
