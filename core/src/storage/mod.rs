//! The storage layer under every store: an LMDB environment that is plain or encrypted
//! (LMDB's own page encryption, mdb.master3 through heed3), and typed tables that serve both.
//!
//! An encrypted environment decrypts the pages a read touches into a cycling buffer, so a
//! value read from it is valid only until the next read in the same transaction. [`Table`]
//! holds every read to that rule, whatever the environment: its reads take `&mut RoTxn` and
//! return values that borrow it. Code that reads while it iterates copies or collects first.

use std::fs::File;
use std::path::Path;

use heed3::types::{Bytes, DecodeIgnore};
use heed3::{
    CommitOrAbort, CompactionOption, EncryptedEnv, Env, EnvClosingEvent, EnvInfo, EnvOpenOptions,
    RwTxn, WithoutTls,
};

use parking_lot::{ReentrantMutex, ReentrantMutexGuard};

use crate::error::{Error, Result};

mod scan;
mod table;

pub(crate) use scan::{scan, scan_prefix};
pub(crate) use table::Table;

/// A read transaction of any environment (reads in a write transaction pass the `RwTxn`).
pub(crate) type RoTxn<'e> = heed3::RoTxn<'e, WithoutTls>;

/// Held by every live transaction of an encrypted environment, so that no two run at once
/// in this process.
///
/// mdb.master3 corrupts pages when transactions of an encrypted environment run in parallel
/// threads (meilisearch/heed#336, open upstream): values read back as garbage, and a write
/// transaction could copy such a page into the file. Until that is fixed, transactions of
/// encrypted environments take turns. One lock for every encrypted environment, not one per
/// environment, so that code holding a transaction of one environment while it opens one of
/// another (the catalog, then a namespace's rows) can never wait in a cycle; reentrant, so
/// that the same thread may do that. Plain environments never take it.
static ENCRYPTED_TXNS: ReentrantMutex<()> = ReentrantMutex::new(());

/// A turn of encrypted environments (see [`ENCRYPTED_TXNS`]), or none.
///
/// Lock order: the turn comes before every other lock that a thread holding a transaction
/// may wait for. Code that takes such a lock and then opens a transaction (a store's
/// environment guard, its commit queue, the registries of open environments) takes the turn
/// first, with [`encrypted_turn`]: else it could hold that lock while waiting for the turn,
/// held by a thread in a transaction waiting for that lock.
pub(crate) type Turn = Option<ReentrantMutexGuard<'static, ()>>;

/// The turn of encrypted environments when `encrypted`, else none (see [`Turn`]).
pub(crate) fn encrypted_turn(encrypted: bool) -> Turn {
    encrypted.then(|| ENCRYPTED_TXNS.lock())
}

/// A transaction of an [`Environment`]: heed3's, plus the turn of an encrypted environment
/// (see [`ENCRYPTED_TXNS`]), released after the transaction ends.
pub(crate) struct Txn<T> {
    txn: T,
    _turn: Turn,
}

impl<T> std::ops::Deref for Txn<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.txn
    }
}

impl<T> std::ops::DerefMut for Txn<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.txn
    }
}

impl Txn<RwTxn<'_>> {
    /// Commits the transaction, then gives up the turn.
    pub(crate) fn commit(self) -> heed3::Result<()> {
        self.txn.commit()
    }

    /// Aborts the transaction, then gives up the turn.
    pub(crate) fn abort(self) {
        self.txn.abort();
    }
}

/// The cipher of encrypted environments: authenticated, so a page that fails its tag is an
/// error (`MDB_CRYPTO_FAIL`), never garbage.
pub(crate) type Cipher = chacha20poly1305::ChaCha20Poly1305;

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
    /// when one is given.
    ///
    /// # Safety
    ///
    /// As [`EnvOpenOptions::open`]: the path is opened once per process and its files are
    /// never truncated while mapped.
    pub(crate) unsafe fn open(
        options: &EnvOpenOptions<WithoutTls>,
        path: &Path,
        key: Option<&[u8; 32]>,
    ) -> Result<Environment> {
        Ok(match key {
            None => Environment::Plain(unsafe { options.open(path)? }),
            Some(key) => {
                let key = chacha20poly1305::Key::from(*key);
                Environment::Encrypted(Box::new(unsafe {
                    options.open_encrypted::<Cipher, _>(key, path)?
                }))
            }
        })
    }

    pub(crate) fn is_encrypted(&self) -> bool {
        matches!(self, Self::Encrypted(_))
    }

    /// The turn a transaction of this environment must hold (none for a plain one).
    pub(crate) fn turn(&self) -> Turn {
        encrypted_turn(self.is_encrypted())
    }

    /// A read transaction that may be kept beyond a borrow of the environment.
    ///
    /// # Safety
    ///
    /// The transaction ends before the environment is dropped (it may move meanwhile), and
    /// for an encrypted environment the caller holds [`Environment::turn`] whenever it uses it.
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

    pub(crate) fn read_txn(&self) -> heed3::Result<Txn<RoTxn<'_>>> {
        let turn = self.turn();
        Ok(Txn { txn: either!(self, e => e.read_txn())?, _turn: turn })
    }

    pub(crate) fn write_txn(&self) -> heed3::Result<Txn<RwTxn<'_>>> {
        let turn = self.turn();
        Ok(Txn { txn: either!(self, e => e.write_txn())?, _turn: turn })
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
        let _turn = self.turn();
        let wtxn = either!(self, e => e.write_txn())?;
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
        let _turn = self.turn();
        let rtxn = either!(self, e => e.read_txn())?;
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
