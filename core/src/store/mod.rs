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
//! are brought up to date from a newer snapshot, a few rounds, writing only the rows that
//! differ (so a round costs a read of those namespaces, not their rewrite, and the rounds
//! converge while writers go on: a physical namespace is its whole file); only the last round
//! — the namespaces written during the round before — and the swap of the files hold the write
//! guard.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64};

use heed3::{EnvFlags, EnvOpenOptions, RwTxn};
use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::storage::{Environment, PageKey, RoTxn};

use queue::Queue;

mod compact;
mod decoded;
mod group;
mod queue;
mod stats;
#[cfg(test)]
pub(crate) mod tests;
mod write;

pub(crate) use compact::finish_rekey;
pub(crate) use decoded::Decoded;
pub(crate) use queue::{commit_threads, MAX_COMMIT_THREADS};
pub use stats::CommitStats;

/// Internal numeric id of a namespace, assigned by the catalog and never reused.
pub type NamespaceId = u64;

/// The tables of one kind of environment, created on open.
pub(crate) trait Tables: Sized + Send + Sync + 'static {
    /// How many named databases the environment needs.
    const MAX_DBS: u32;
    /// Creates (or opens) every table, in one committed write transaction.
    fn create(env: &Environment) -> Result<Self>;
}

/// Tables whose rows are each of one namespace (keys begin with its [`NamespaceId`]), so
/// that an online compaction or key rotation copies again only the namespaces written while
/// it ran.
pub(crate) trait NamespacedTables: Tables {
    /// Makes namespace `ns`'s rows in these tables what they are in `from` (another
    /// environment's tables, read in `rtxn`).
    fn copy_namespace(
        &self,
        from: &Self,
        rtxn: &mut RoTxn<'_>,
        wtxn: &mut RwTxn<'_>,
        ns: NamespaceId,
    ) -> Result<()>;

    /// Copies every row of `from` (another environment's tables, read in `rtxn`) into these
    /// tables, which are empty.
    fn copy_all(&self, from: &Self, rtxn: &mut RoTxn<'_>, wtxn: &mut RwTxn<'_>) -> Result<()>;
}

struct Opened<T> {
    /// Read transactions of the last committed snapshot kept between reads (see
    /// [`Store::read`]); each owns a handle of `env`, so they go first (and are emptied
    /// before anything that needs no transaction alive: growing the map, closing).
    readers: Mutex<Vec<RoTxn<'static>>>,
    env: Environment,
    tables: T,
}

/// Read transactions an environment keeps for its next reads (about the readers that run at
/// once; more are ended after their read).
const KEPT_READERS: usize = 4;

/// An LMDB environment and its tables.
pub(crate) struct Store<T> {
    path: PathBuf,
    /// The key and cipher of an encrypted environment (kept to reopen it after a compaction).
    key: Mutex<Option<PageKey>>,
    inner: RwLock<Option<Opened<T>>>,
    queue: Mutex<Queue<T>>,
    /// Durable commits made (each may hold many writes).
    commits: AtomicU64,
    /// Syncs of the environment made to settle groups (see [`Store::join`]).
    syncs: AtomicU64,
    /// Commits that wrote pages (so synced the data file), and the writes they held.
    synced_commits: AtomicU64,
    writes: AtomicU64,
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

const DATA_FILE: &str = "data.mdb";

impl<T: Tables> Store<T> {
    /// Opens (creating if needed) the environment in directory `path`, encrypted with `key`
    /// (under its cipher) when one is given.
    pub(crate) fn open(
        path: &Path,
        initial_map_size: usize,
        key: Option<&PageKey>,
    ) -> Result<Self> {
        fs::create_dir_all(path)?;
        let opened = open_env::<T>(path, initial_map_size, key)?;
        Ok(Store {
            path: path.to_owned(),
            key: Mutex::new(key.cloned()),
            inner: RwLock::new(Some(opened)),
            queue: Mutex::new(Queue {
                pending: Vec::new(),
                committers: 0,
                idle: Vec::new(),
                leading: false,
                committed: std::collections::VecDeque::new(),
                settled: 0,
                next_ticket: 0,
                handed_sync: None,
            }),
            commits: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            synced_commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            failing_commits: AtomicU32::new(0),
            written: Mutex::new(None),
            compacting: Mutex::new(()),
        })
    }

    /// Runs `f` in a read transaction of the last committed snapshot.
    ///
    /// The transaction is kept for the next read while nothing is committed (a few of them,
    /// for readers that run at once), sparing the next reads a new transaction (released
    /// mdb.master3 also decrypted again the pages of every new one; the patched LMDB keeps
    /// decrypted pages across transactions, see third_party/lmdb-master3-sys). A kept transaction older than the last commit is ended, never
    /// reused (a read sees every write answered before it), and a commit ends the kept ones
    /// (so no old snapshot keeps pages from being reused).
    pub(crate) fn read<R>(&self, f: impl FnOnce(&mut RoTxn<'_>, &T) -> Result<R>) -> Result<R> {
        let guard = self.inner.read();
        let opened = guard.as_ref().ok_or_else(closed)?;
        let kept = {
            let mut readers = opened.readers.lock();
            let last = opened.env.info().last_txn_id;
            readers.retain(|t| t.id() == last);
            readers.pop()
        };
        let mut rtxn = match kept {
            Some(t) => t,
            // SAFETY: the transaction ends in this call or is kept in `opened.readers`,
            // dropped before `opened.env` (first field; `close_env` drops it first).
            None => unsafe { opened.env.static_read_txn()? },
        };
        let out = f(&mut rtxn, &opened.tables)?;
        // Checked under the lock a commit empties the kept ones under (after it committed),
        // so a snapshot older than a commit is never put back.
        let mut readers = opened.readers.lock();
        if readers.len() < KEPT_READERS && rtxn.id() == opened.env.info().last_txn_id {
            readers.push(rtxn);
        }
        Ok(out)
    }

    /// Doubles the memory map.
    fn grow(&self) -> Result<()> {
        let guard = self.inner.write();
        let opened = guard.as_ref().ok_or_else(closed)?;
        let new_size = opened.env.info().map_size.saturating_mul(2);
        std::mem::take(&mut *opened.readers.lock());
        // SAFETY: the write guard excludes every transaction of this environment but the
        // kept read transactions, ended just above.
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

fn open_env<T: Tables>(path: &Path, map_size: usize, key: Option<&PageKey>) -> Result<Opened<T>> {
    let page = 4096;
    let existing = fs::metadata(path.join(DATA_FILE)).map_or(0, |m| m.len() as usize);
    let size = map_size.max(existing.next_power_of_two()).div_ceil(page) * page;
    // SAFETY: each environment path is opened once per process (the engine registry
    // guarantees it) and the files are never truncated while mapped.
    let env = unsafe {
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options
            .map_size(size)
            .max_dbs(T::MAX_DBS)
            .max_readers(1024)
            .flags(EnvFlags::NO_READ_AHEAD | EnvFlags::NO_META_SYNC);
        Environment::open(&options, path, key.map(|k| (k.cipher, k.key.as_bytes())))?
    };
    let tables = T::create(&env)?;
    // Commits do not sync their meta page (see `Store::join`): the tables' creation is made
    // durable here.
    env.force_sync()?;
    Ok(Opened { readers: Mutex::new(Vec::new()), env, tables })
}

fn close_env<T>(opened: Opened<T>) {
    let Opened { readers, env, tables } = opened;
    // A kept read transaction holds the environment open.
    drop(readers);
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
