//! One LMDB environment with typed tables, the only place that opens, grows, compacts or
//! removes environment files.
//!
//! Every transaction runs under a read guard of `inner`; growing the map and the last step of a
//! compaction take the write guard, so they never race a live transaction (LMDB requires that for
//! `mdb_env_set_mapsize`).
//!
//! Compaction (erasing deleted rows from a shared file) runs online: the environment is copied
//! without its free pages from a read snapshot while every other transaction goes on; the
//! namespaces written meanwhile (each data write names its namespace: see [`Store::write_ns`])
//! are copied again from a newer snapshot, a few rounds; only the last round — the namespaces
//! written during the round before — and the swap of the files hold the write guard.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use heed::{CompactionOption, Env, EnvFlags, EnvOpenOptions, MdbError, RoTxn, RwTxn, WithoutTls};
use parking_lot::{Mutex, RwLock};

use crate::datastore::{DataTables, NamespaceId};
use crate::error::{Error, Result};

/// The tables of one kind of environment, created on open.
pub(crate) trait Tables: Sized + Send + Sync {
    /// How many named databases the environment needs.
    const MAX_DBS: u32;
    /// Creates (or opens) every table, in one committed write transaction.
    fn create(env: &Env<WithoutTls>) -> Result<Self>;
}

struct Opened<T> {
    env: Env<WithoutTls>,
    tables: T,
}

/// An LMDB environment and its tables.
pub(crate) struct Store<T> {
    path: PathBuf,
    inner: RwLock<Option<Opened<T>>>,
    /// Commits still to fail on purpose (fault-injection tests: see
    /// `Engine::fail_next_catalog_commits`).
    failing_commits: AtomicU32,
    /// While an online compaction runs: the namespaces written since its last snapshot
    /// ([`ANY_NAMESPACE`] for a write that named none).
    written: Mutex<Option<BTreeSet<NamespaceId>>>,
    /// One compaction at a time.
    compacting: Mutex<()>,
}

/// Marks a write that did not say which namespace it changed: the compaction that sees it
/// copies the whole environment again under the write guard.
const ANY_NAMESPACE: NamespaceId = NamespaceId::MAX;

/// Rounds of catching up online before the last one, under the write guard.
const CATCH_UP_ROUNDS: usize = 4;

const DATA_FILE: &str = "data.mdb";

impl<T: Tables> Store<T> {
    /// Opens (creating if needed) the environment in directory `path`.
    pub(crate) fn open(path: &Path, initial_map_size: usize) -> Result<Self> {
        fs::create_dir_all(path)?;
        let opened = open_env::<T>(path, initial_map_size)?;
        Ok(Store {
            path: path.to_owned(),
            inner: RwLock::new(Some(opened)),
            failing_commits: AtomicU32::new(0),
            written: Mutex::new(None),
            compacting: Mutex::new(()),
        })
    }

    /// Runs `f` in a read transaction.
    pub(crate) fn read<R>(
        &self,
        f: impl FnOnce(&RoTxn<'_, WithoutTls>, &T) -> Result<R>,
    ) -> Result<R> {
        let guard = self.inner.read();
        let opened = guard.as_ref().ok_or_else(closed)?;
        let rtxn = opened.env.read_txn()?;
        f(&rtxn, &opened.tables)
    }

    /// Runs `f` in a write transaction and commits it if `f` succeeds. When the map is full
    /// the transaction is aborted, the map doubled and `f` run again, so `f` must not have
    /// effects outside the transaction. Data environments use [`Store::write_ns`].
    pub(crate) fn write<R>(&self, f: impl FnMut(&mut RwTxn<'_>, &T) -> Result<R>) -> Result<R> {
        self.write_ns(ANY_NAMESPACE, f)
    }

    /// [`Store::write`] for a transaction that changes only rows of namespace `ns` (every
    /// data write), so that a compaction running meanwhile copies that namespace again.
    pub(crate) fn write_ns<R>(
        &self,
        ns: NamespaceId,
        mut f: impl FnMut(&mut RwTxn<'_>, &T) -> Result<R>,
    ) -> Result<R> {
        loop {
            let outcome = {
                let guard = self.inner.read();
                let opened = guard.as_ref().ok_or_else(closed)?;
                let mut wtxn = opened.env.write_txn()?;
                let committed = match f(&mut wtxn, &opened.tables) {
                    Ok(_) if self.take_failing_commit() => {
                        wtxn.abort();
                        Err(Error::Internal("injected commit failure".into()))
                    }
                    Ok(r) => wtxn.commit().map(|()| r).map_err(Error::from),
                    Err(e) => Err(e),
                };
                // Noted after the commit and under the read guard: a compaction's snapshot
                // taken before this commit was taken after it began noting, so it sees this.
                if committed.is_ok() {
                    if let Some(written) = self.written.lock().as_mut() {
                        written.insert(ns);
                    }
                }
                committed
            };
            match outcome {
                Err(Error::Storage(heed::Error::Mdb(MdbError::MapFull))) => self.grow()?,
                other => return other,
            }
        }
    }

    /// Makes the next `n` write transactions fail instead of committing (the closure runs,
    /// its changes are aborted), as a full disk or an I/O error at commit would.
    pub(crate) fn fail_next_commits(&self, n: u32) {
        self.failing_commits.store(n, Ordering::SeqCst);
    }

    fn take_failing_commit(&self) -> bool {
        self.failing_commits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Doubles the memory map.
    fn grow(&self) -> Result<()> {
        let guard = self.inner.write();
        let opened = guard.as_ref().ok_or_else(closed)?;
        let new_size = opened.env.info().map_size.saturating_mul(2);
        // SAFETY: the write guard excludes every transaction of this environment.
        unsafe { opened.env.resize(new_size)? };
        Ok(())
    }

    /// Closes the environment and deletes its directory. Later calls fail.
    pub(crate) fn destroy(&self) -> Result<()> {
        let mut guard = self.inner.write();
        if let Some(opened) = guard.take() {
            close_env(opened);
        }
        match fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

impl Store<DataTables> {
    /// Rewrites the environment without its free pages, so bytes of deleted rows are gone
    /// from the file, holding up the environment's other transactions only for the last
    /// catch-up round and the swap of the files (see the module documentation).
    pub(crate) fn compact(&self) -> Result<()> {
        let _one = self.compacting.lock();
        *self.written.lock() = Some(BTreeSet::new());
        let next_dir = self.path.join("compacting");
        let outcome = self.compact_into(&next_dir);
        *self.written.lock() = None;
        if outcome.is_err() {
            let _ = fs::remove_dir_all(&next_dir);
        }
        outcome
    }

    fn compact_into(&self, next_dir: &Path) -> Result<()> {
        match fs::remove_dir_all(next_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => fs::create_dir_all(next_dir)?,
        }
        // A compacted copy of a snapshot: other transactions go on meanwhile.
        let map_size = {
            let guard = self.inner.read();
            let opened = guard.as_ref().ok_or_else(closed)?;
            opened
                .env
                .copy_to_path(next_dir.join(DATA_FILE), CompactionOption::Enabled)?
                .sync_all()?;
            opened.env.info().map_size
        };
        let next = open_env::<DataTables>(next_dir, map_size)?;
        let caught_up = self.catch_up_online(&next);
        let mut guard = self.inner.write();
        let copied_under_guard = caught_up.and_then(|()| {
            let opened = guard.as_ref().ok_or_else(closed)?;
            let written = self.written.lock().replace(BTreeSet::new()).unwrap_or_default();
            if written.contains(&ANY_NAMESPACE) {
                return Ok(false); // a write named no namespace: copy all again under the guard
            }
            copy_namespaces(opened, &next, &written)?;
            next.env.force_sync()?;
            Ok(true)
        });
        close_env(next);
        if !copied_under_guard? {
            let opened = guard.as_ref().ok_or_else(closed)?;
            let copy = next_dir.join(DATA_FILE);
            opened.env.copy_to_path(&copy, CompactionOption::Enabled)?.sync_all()?;
        }
        let opened = guard.take().ok_or_else(closed)?;
        close_env(opened);
        let swapped = fs::rename(next_dir.join(DATA_FILE), self.path.join(DATA_FILE))
            .map_err(Error::from)
            .and_then(|()| fsync_dir(&self.path));
        // Reopened whatever happened: on a failed rename the old file is still in place.
        *guard = Some(open_env::<DataTables>(&self.path, map_size)?);
        swapped?;
        drop(guard);
        fs::remove_dir_all(next_dir)?;
        Ok(())
    }

    /// Copies again, from newer snapshots, the namespaces written since the last one, while
    /// other transactions go on; stops when a round finds none or after a few rounds.
    fn catch_up_online(&self, next: &Opened<DataTables>) -> Result<()> {
        for _ in 0..CATCH_UP_ROUNDS {
            let guard = self.inner.read();
            let opened = guard.as_ref().ok_or_else(closed)?;
            // Taken before the snapshot: a write committed after it is noted in the new set.
            let written = self.written.lock().replace(BTreeSet::new()).unwrap_or_default();
            if written.is_empty() || written.contains(&ANY_NAMESPACE) {
                self.written.lock().get_or_insert_with(BTreeSet::new).extend(written);
                return Ok(());
            }
            copy_namespaces(opened, next, &written)?;
        }
        Ok(())
    }
}

/// Replaces the rows of each namespace of `which` in `to` with its rows in `from` now.
fn copy_namespaces(
    from: &Opened<DataTables>,
    to: &Opened<DataTables>,
    which: &BTreeSet<NamespaceId>,
) -> Result<()> {
    if which.is_empty() {
        return Ok(());
    }
    let rtxn = from.env.read_txn()?;
    let mut wtxn = to.env.write_txn()?;
    for ns in which {
        to.tables.copy_namespace(&from.tables, &rtxn, &mut wtxn, *ns)?;
    }
    wtxn.commit()?;
    Ok(())
}

fn open_env<T: Tables>(path: &Path, map_size: usize) -> Result<Opened<T>> {
    let page = 4096;
    let existing = fs::metadata(path.join(DATA_FILE)).map_or(0, |m| m.len() as usize);
    let size = map_size.max(existing.next_power_of_two()).div_ceil(page) * page;
    // SAFETY: each environment path is opened once per process (the engine registry
    // guarantees it) and the files are never truncated while mapped.
    let env = unsafe {
        EnvOpenOptions::new()
            .read_txn_without_tls()
            .map_size(size)
            .max_dbs(T::MAX_DBS)
            .max_readers(1024)
            .flags(EnvFlags::NO_READ_AHEAD)
            .open(path)?
    };
    let tables = T::create(&env)?;
    Ok(Opened { env, tables })
}

fn close_env<T>(opened: Opened<T>) {
    let Opened { env, tables } = opened;
    drop(tables);
    env.prepare_for_closing().wait();
}

fn fsync_dir(path: &Path) -> Result<()> {
    fs::File::open(path)?.sync_all()?;
    Ok(())
}

fn closed() -> Error {
    Error::Internal("storage environment is closed (namespace deleted or engine shut down)".into())
}
