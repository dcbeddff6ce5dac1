//! Online compaction and key rotation: the environment rewritten into new files while
//! other transactions go on (see the module documentation of `store`).

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use heed3::CompactionOption;
use parking_lot::RwLockWriteGuard;

use super::{
    close_env, closed, fsync_dir, open_env, NamespaceId, NamespacedTables, Opened, Store,
    ANY_NAMESPACE, DATA_FILE,
};
use crate::error::{Error, Result};
use crate::storage::PageKey;

/// Rounds of catching up online before the last one, under the write guard.
const CATCH_UP_ROUNDS: usize = 4;

impl<T: NamespacedTables> Store<T> {
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
        let key = self.key.lock().clone();
        // A compacted copy of a snapshot: other transactions go on meanwhile.
        let (mut guard, map_size) =
            self.copy_online(next_dir, key.as_ref(), |opened, map_size| {
                self.compacted_copy(opened, next_dir, map_size)
            })?;
        let opened = guard.take().ok_or_else(closed)?;
        close_env(opened);
        let swapped = fs::rename(next_dir.join(DATA_FILE), self.path.join(DATA_FILE))
            .map_err(Error::from)
            .and_then(|()| fsync_dir(&self.path));
        // Reopened whatever happened: on a failed rename the old file is still in place.
        *guard = Some(open_env::<T>(&self.path, map_size, key.as_ref())?);
        swapped?;
        drop(guard);
        fs::remove_dir_all(next_dir)?;
        Ok(())
    }

    /// Writes a copy of `opened` without its free pages in `next_dir` (replacing any there).
    /// A plain environment is copied by LMDB; an encrypted one row by row into a new
    /// environment with the same key, because LMDB's compacting copy does not encrypt the
    /// pages it renumbers again (its copy fails to decrypt).
    fn compacted_copy(&self, opened: &Opened<T>, next_dir: &Path, map_size: usize) -> Result<()> {
        if !opened.env.is_encrypted() {
            let copy = next_dir.join(DATA_FILE);
            opened.env.copy_to_path(&copy, CompactionOption::Enabled)?.sync_all()?;
            return Ok(());
        }
        let key = self.key.lock().clone();
        copy_rows_into(opened, next_dir, map_size, key.as_ref())
    }

    /// Rewrites the environment into a new file under `key` (a key rotation), online as
    /// [`Store::compact`] is: every row is copied from a snapshot while other transactions go
    /// on, then the namespaces written meanwhile, the last of them under the write guard.
    /// Then `staged` gets the new file's directory (to add what goes with the file, and to
    /// record that it is complete), and the new files replace the old ones; from then on the
    /// environment is under `key`. A crash after `staged` leaves the new files beside the
    /// old: [`finish_rekey`] moves them at the next open. If the move fails here the
    /// environment stays closed (a write under the old key now would be lost at that move).
    /// `staged` answering `false` stops there as a crash would (tests), the environment
    /// closed.
    pub(crate) fn rekey(
        &self,
        key: &PageKey,
        staged: impl FnOnce(&Path) -> Result<bool>,
    ) -> Result<()> {
        let _one = self.compacting.lock();
        *self.written.lock() = Some(BTreeSet::new());
        let next_dir = self.path.join(REKEY_DIR);
        let mut is_staged = false;
        let outcome = self.rekey_into(&next_dir, key, staged, &mut is_staged);
        *self.written.lock() = None;
        if outcome.is_err() && !is_staged {
            let _ = fs::remove_dir_all(&next_dir);
        }
        outcome
    }

    fn rekey_into(
        &self,
        next_dir: &Path,
        key: &PageKey,
        staged: impl FnOnce(&Path) -> Result<bool>,
        is_staged: &mut bool,
    ) -> Result<()> {
        // Row by row from a snapshot: a copy of the file would keep the old key's pages.
        let (mut guard, map_size) = self.copy_online(next_dir, Some(key), |opened, map_size| {
            copy_rows_into(opened, next_dir, map_size, Some(key))
        })?;
        fsync_dir(next_dir)?;
        let go_on = staged(next_dir)?;
        *is_staged = true;
        let opened = guard.take().ok_or_else(closed)?;
        close_env(opened);
        if !go_on {
            return Err(Error::Internal("key rotation stopped after staging (test)".into()));
        }
        finish_rekey(&self.path)?;
        *self.key.lock() = Some(key.clone());
        *guard = Some(open_env::<T>(&self.path, map_size, Some(key))?);
        Ok(())
    }

    /// Copies the environment into `next_dir` (emptied first) under `key` while other
    /// transactions go on: `full_copy` copies a snapshot (given the map size), then the
    /// namespaces written meanwhile are copied again from newer snapshots, the last of them
    /// under the write guard — or, when a write named no namespace, `full_copy` runs again
    /// under it. Answers the write guard, for the caller to swap the files under, and the
    /// map size.
    fn copy_online(
        &self,
        next_dir: &Path,
        key: Option<&PageKey>,
        full_copy: impl Fn(&Opened<T>, usize) -> Result<()>,
    ) -> Result<(RwLockWriteGuard<'_, Option<Opened<T>>>, usize)> {
        match fs::remove_dir_all(next_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => fs::create_dir_all(next_dir)?,
        }
        let map_size = {
            let guard = self.inner.read();
            let opened = guard.as_ref().ok_or_else(closed)?;
            let map_size = opened.env.info().map_size;
            full_copy(opened, map_size)?;
            map_size
        };
        let next = open_env::<T>(next_dir, map_size, key)?;
        let caught_up = self.catch_up_online(&next);
        let guard = self.inner.write();
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
            full_copy(guard.as_ref().ok_or_else(closed)?, map_size)?;
        }
        Ok((guard, map_size))
    }

    /// Copies again, from newer snapshots, the namespaces written since the last one, while
    /// other transactions go on; stops when a round finds none or after a few rounds.
    fn catch_up_online(&self, next: &Opened<T>) -> Result<()> {
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

/// Writes every row of `opened` into a new environment in `next_dir` (replacing any there)
/// under `key`: a compacted copy of an encrypted environment, or its copy under another key.
fn copy_rows_into<T: NamespacedTables>(
    opened: &Opened<T>,
    next_dir: &Path,
    map_size: usize,
    key: Option<&PageKey>,
) -> Result<()> {
    for file in [DATA_FILE, "lock.mdb"] {
        match fs::remove_file(next_dir.join(file)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    let next = open_env::<T>(next_dir, map_size, key)?;
    let copied = (|| {
        let mut rtxn = opened.env.read_txn()?;
        let mut wtxn = next.env.write_txn()?;
        next.tables.copy_all(&opened.tables, &mut rtxn, &mut wtxn)?;
        wtxn.commit()?;
        Ok(next.env.force_sync()?)
    })();
    close_env(next);
    copied
}

/// Replaces the rows of each namespace of `which` in `to` with its rows in `from` now.
fn copy_namespaces<T: NamespacedTables>(
    from: &Opened<T>,
    to: &Opened<T>,
    which: &BTreeSet<NamespaceId>,
) -> Result<()> {
    if which.is_empty() {
        return Ok(());
    }
    let mut rtxn = from.env.read_txn()?;
    let mut wtxn = to.env.write_txn()?;
    for ns in which {
        to.tables.copy_namespace(&from.tables, &mut rtxn, &mut wtxn, *ns)?;
    }
    wtxn.commit()?;
    Ok(())
}

/// Directory of a key rotation's new files, beside the environment's (see [`Store::rekey`]).
const REKEY_DIR: &str = "rekeying";

/// Moves a rotation's complete new files (see [`Store::rekey`]) into place if they are still
/// beside the environment's (the data file last), then drops their directory; nothing to do
/// if they were moved already. The environment must be closed.
pub(crate) fn finish_rekey(env_dir: &Path) -> Result<()> {
    let next_dir = env_dir.join(REKEY_DIR);
    let mut files = Vec::new();
    match fs::read_dir(&next_dir) {
        Ok(entries) => {
            for entry in entries {
                let name = entry?.file_name();
                if name != "lock.mdb" && name != DATA_FILE {
                    files.push(name);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    files.push(DATA_FILE.into());
    for name in files {
        let from = next_dir.join(&name);
        if from.exists() {
            fs::rename(&from, env_dir.join(&name))?;
        }
    }
    fsync_dir(env_dir)?;
    fs::remove_dir_all(&next_dir)?;
    Ok(())
}
