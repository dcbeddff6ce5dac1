//! The storage layer under every store: an LMDB environment that is plain or encrypted
//! (LMDB's own page encryption, mdb.master3 through heed3), and typed tables that serve both.
//!
//! An encrypted environment decrypts the pages a read touches into a cycling buffer, so a
//! value read from it is valid only until the next read in the same transaction. [`Table`]
//! holds every read to that rule, whatever the environment: its reads take `&mut RoTxn` and
//! return values that borrow it. Code that reads while it iterates copies or collects first.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use heed3::types::{Bytes, DecodeIgnore};
use heed3::{
    CommitOrAbort, CompactionOption, EncryptedEnv, Env, EnvClosingEvent, EnvInfo, EnvOpenOptions,
    RwTxn, WithoutTls,
};

use crate::error::{Error, Result};
use crate::keyring::Key;

mod cipher;
mod scan;
mod table;

pub(crate) use cipher::Cipher;
pub(crate) use scan::{scan, scan_prefix};
pub(crate) use table::Table;

/// A read transaction of any environment (reads in a write transaction pass the `RwTxn`).
pub(crate) type RoTxn<'e> = heed3::RoTxn<'e, WithoutTls>;

/// The key of an encrypted environment and its cipher (its `Debug` shows no byte of the key).
#[derive(Debug, Clone)]
pub(crate) struct PageKey {
    pub cipher: Cipher,
    pub key: Key,
}

/// An open LMDB environment, plain or encrypted.
pub(crate) enum Environment {
    Plain(Env<WithoutTls>),
    /// Boxed: a kept read transaction borrows it, at an address that does not change when
    /// the environment moves (see [`Environment::static_read_txn`]).
    Encrypted(Box<EncryptedEnv<WithoutTls>>),
}

/// Runs `$body` with `$e` bound to the environment (or table) of either kind, and `$table`
/// (when named) to the [`Table`] variant of that kind.
macro_rules! either {
    ($self:expr, $e:ident => $body:expr) => {
        match $self {
            Self::Plain($e) => $body,
            Self::Encrypted($e) => $body,
        }
    };
    ($self:expr, $e:ident, $table:ident => $body:expr) => {
        match $self {
            Self::Plain($e) => {
                let $table = Table::Plain;
                $body
            }
            Self::Encrypted($e) => {
                let $table = Table::Encrypted;
                $body
            }
        }
    };
}
pub(crate) use either;

impl Environment {
    /// Opens (creating if needed) the environment in directory `path`, encrypted with `key`
    /// under `cipher` when a key is given.
    ///
    /// # Safety
    ///
    /// As [`EnvOpenOptions::open`]: the path is opened once per process and its files are
    /// never truncated while mapped.
    pub(crate) unsafe fn open(
        options: &EnvOpenOptions<WithoutTls>,
        path: &Path,
        key: Option<(Cipher, &[u8; 32])>,
    ) -> Result<Environment> {
        Ok(match key {
            None => Environment::Plain(unsafe { options.open(path)? }),
            Some((cipher, key)) => Environment::Encrypted(Box::new(unsafe {
                cipher::open_encrypted(options, path, cipher, key)?
            })),
        })
    }

    pub(crate) fn is_encrypted(&self) -> bool {
        matches!(self, Self::Encrypted(_))
    }

    /// A read transaction that may be kept beyond a borrow of the environment.
    ///
    /// # Safety
    ///
    /// The transaction ends before the environment is dropped (it may move meanwhile).
    pub(crate) unsafe fn static_read_txn(&self) -> heed3::Result<RoTxn<'static>> {
        match self {
            Self::Plain(e) => e.clone().static_read_txn(),
            Self::Encrypted(e) => {
                // heed3 cannot clone an encrypted environment (its `Clone` wants the TLS
                // marker to be `Clone`), so the transaction borrows the box's contents.
                let txn = e.read_txn()?;
                // SAFETY: the borrowed `EncryptedEnv` stays where it is until `self` is
                // dropped (it is boxed), and the caller ends the transaction before that.
                Ok(unsafe { std::mem::transmute::<RoTxn<'_>, RoTxn<'static>>(txn) })
            }
        }
    }

    pub(crate) fn read_txn(&self) -> heed3::Result<RoTxn<'_>> {
        either!(self, e => e.read_txn())
    }

    pub(crate) fn write_txn(&self) -> heed3::Result<RwTxn<'_>> {
        either!(self, e => e.write_txn())
    }

    pub(crate) fn nested_write_txn<'p>(
        &'p self,
        parent: &'p mut RwTxn,
    ) -> heed3::Result<RwTxn<'p>> {
        either!(self, e => e.nested_write_txn(parent))
    }

    pub(crate) fn info(&self) -> EnvInfo {
        either!(self, e => e.info())
    }

    /// Sets the memory map's size.
    ///
    /// # Safety
    ///
    /// As [`Env::resize`]: no transaction of this environment is alive.
    pub(crate) unsafe fn resize(&self, size: usize) -> heed3::Result<()> {
        either!(self, e => unsafe { e.resize(size) })
    }

    pub(crate) fn force_sync(&self) -> heed3::Result<()> {
        either!(self, e => e.force_sync())
    }

    /// Copies a plain environment into the file `path`, without free pages when compacting.
    /// An encrypted one is refused: LMDB's compacting copy does not encrypt the pages it
    /// renumbers again (see `Store::compacted_copy`).
    pub(crate) fn copy_to_path(&self, path: &Path, option: CompactionOption) -> Result<File> {
        match self {
            Self::Plain(e) => Ok(e.copy_to_path(path, option)?),
            Self::Encrypted(_) => {
                Err(Error::Internal("an encrypted environment is copied row by row".into()))
            }
        }
    }

    pub(crate) fn prepare_for_closing(self) -> EnvClosingEvent {
        match self {
            Self::Plain(e) => e.prepare_for_closing(),
            Self::Encrypted(e) => e.prepare_for_closing(),
        }
    }

    /// Creates (or opens) the named tables in one committed write transaction.
    pub(crate) fn create_tables<const N: usize>(
        &self,
        names: [&str; N],
    ) -> Result<[Table<Bytes, Bytes>; N]> {
        let wtxn = self.write_txn()?;
        Ok(either!(self, e, table => e
            .create_databases_and_commit(wtxn, |o, w| -> heed3::Result<_> {
                let mut dbs = Vec::with_capacity(N);
                for name in names {
                    dbs.push(o.create_database::<Bytes, Bytes>(w, Some(name))?);
                }
                Ok(CommitOrAbort::<_, ()>::Commit(array(dbs)))
            })?
            .unwrap_commit()
            .map(table)))
    }

    /// The main (unnamed) table, whose keys are the names of the named tables.
    pub(crate) fn main_table(&self) -> Result<Table<Bytes, DecodeIgnore>> {
        let rtxn = self.read_txn()?;
        either!(self, e, table => e
            .open_databases_and_commit(rtxn, |o, r| -> heed3::Result<_> {
                Ok(CommitOrAbort::<_, ()>::Commit(o.open_database::<Bytes, DecodeIgnore>(r, None)?))
            })?
            .unwrap_commit()
            .map(table))
        .ok_or_else(|| Error::Internal("an environment without its main database".into()))
    }
}

/// The `N` items of `v` (which has `N`) as an array.
fn array<T, const N: usize>(v: Vec<T>) -> [T; N] {
    v.try_into().unwrap_or_else(|_| unreachable!("one table per name"))
}

/// Writes `bytes` to `path` (in directory `dir`) through a temporary file, synced and
/// renamed, so the file is whole or absent after a crash. One writer of `path` at a time:
/// the temporary file's name is `path`'s, so a second writer writes into the first one's
/// temporary file and finds it gone when it renames it.
pub(crate) fn write_synced(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    #[cfg(test)]
    if let Some(meanwhile) = WRITTEN_NOT_RENAMED.take() {
        meanwhile();
    }
    std::fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
thread_local! {
    /// Tests: run by the next [`write_synced`] on this thread once its temporary file is
    /// written and synced, before it is renamed into place.
    pub(crate) static WRITTEN_NOT_RENAMED: std::cell::Cell<Option<Box<dyn FnOnce()>>> =
        const { std::cell::Cell::new(None) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value on overflow pages of an encrypted environment reads back whole, after its
    /// commit and after the environment is opened again: also one that ends in the last 16
    /// bytes of its last page, where LMDB writes the page's tag (mdb.c had the tag overwrite
    /// the last 1-16 bytes of such a value, 16 sizes in every 4,096; PATCHES.md, eleventh
    /// change).
    #[test]
    fn values_ending_where_an_encrypted_overflow_page_keeps_its_tag_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options.map_size(1 << 24).max_dbs(1);
        // Values of 1 to 3 pages (a 24-byte header first) ending 0 to 64 bytes short of the end.
        let sizes: Vec<usize> =
            [4096, 8192, 12288].iter().flat_map(|end| end - 88..=end - 24).collect();
        let value = |len: usize| -> Vec<u8> { (0..len).map(|i| (i * 7 + len) as u8 | 1).collect() };
        // SAFETY: a fresh directory, opened once at a time, never truncated.
        let open = || {
            unsafe { Environment::open(&options, dir.path(), Some((Cipher::NEW, &[7; 32]))) }
                .unwrap()
        };
        let wrong = |env: &Environment, table: Table<Bytes, Bytes>| -> Vec<usize> {
            let mut rtxn = env.read_txn().unwrap();
            sizes
                .iter()
                .copied()
                .filter(|&len| {
                    table.get(&mut rtxn, &(len as u32).to_be_bytes()).unwrap()
                        != Some(&value(len)[..])
                })
                .collect()
        };
        let env = open();
        let [table] = env.create_tables(["values"]).unwrap();
        let mut wtxn = env.write_txn().unwrap();
        for &len in &sizes {
            table.put(&mut wtxn, &(len as u32).to_be_bytes(), &value(len)).unwrap();
        }
        wtxn.commit().unwrap();
        assert_eq!(wrong(&env, table), Vec::<usize>::new(), "after the commit");
        env.prepare_for_closing().wait();
        let env = open();
        let [table] = env.create_tables(["values"]).unwrap();
        assert_eq!(wrong(&env, table), Vec::<usize>::new(), "opened again");
    }
}
