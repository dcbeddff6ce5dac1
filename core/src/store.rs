//! One LMDB environment with typed tables, the only place that opens, grows, compacts or
//! removes environment files.
//!
//! Every transaction runs under a read guard of `inner`; growing the map and compaction take the
//! write guard, so they never race a live transaction (LMDB requires that for `mdb_env_set_mapsize`).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use heed::{CompactionOption, Env, EnvFlags, EnvOpenOptions, MdbError, RoTxn, RwTxn, WithoutTls};
use parking_lot::RwLock;

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
}

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
    /// effects outside the transaction.
    pub(crate) fn write<R>(&self, mut f: impl FnMut(&mut RwTxn<'_>, &T) -> Result<R>) -> Result<R> {
        loop {
            let outcome = {
                let guard = self.inner.read();
                let opened = guard.as_ref().ok_or_else(closed)?;
                let mut wtxn = opened.env.write_txn()?;
                match f(&mut wtxn, &opened.tables) {
                    Ok(_) if self.take_failing_commit() => {
                        wtxn.abort();
                        Err(Error::Internal("injected commit failure".into()))
                    }
                    Ok(r) => wtxn.commit().map(|()| r).map_err(Error::from),
                    Err(e) => Err(e),
                }
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

    /// Rewrites the environment without its free pages, so bytes of deleted records are gone
    /// from the file, then reopens it. Blocks this environment's transactions meanwhile.
    pub(crate) fn compact(&self) -> Result<()> {
        let mut guard = self.inner.write();
        let opened = guard.take().ok_or_else(closed)?;
        let map_size = opened.env.info().map_size;
        let tmp = self.path.join("data.mdb.compact");
        let copied = opened.env.copy_to_path(&tmp, CompactionOption::Enabled).map(|f| f.sync_all());
        let reopen_from = match copied {
            Ok(Ok(())) => {
                close_env(opened);
                fs::rename(&tmp, self.path.join(DATA_FILE))?;
                fsync_dir(&self.path)?;
                true
            }
            Ok(Err(e)) => {
                *guard = Some(opened);
                return Err(e.into());
            }
            Err(e) => {
                *guard = Some(opened);
                return Err(e.into());
            }
        };
        debug_assert!(reopen_from);
        *guard = Some(open_env::<T>(&self.path, map_size)?);
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
