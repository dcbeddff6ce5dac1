//! The storage layer under every store: an LMDB environment that is plain or encrypted
//! (LMDB's own page encryption, mdb.master3 through heed3), and typed tables that serve both.
//!
//! An encrypted environment decrypts the pages a read touches into a cycling buffer, so a
//! value read from it is valid only until the next read in the same transaction. [`Table`]
//! holds every read to that rule, whatever the environment: its reads take `&mut RoTxn` and
//! return values that borrow it. Code that reads while it iterates copies or collects first.

use std::fs::File;
use std::ops::{Bound, RangeBounds};
use std::path::Path;

use heed3::types::{Bytes, DecodeIgnore};
use heed3::{
    BytesDecode, BytesEncode, CommitOrAbort, CompactionOption, Database, DatabaseStat,
    EncryptedDatabase, EncryptedEnv, Env, EnvClosingEvent, EnvInfo, EnvOpenOptions, PutFlags,
    RoIter, RoPrefix, RoRange, RoRevRange, RwPrefix, RwTxn, WithoutTls,
};

use parking_lot::{ReentrantMutex, ReentrantMutexGuard};

use crate::error::{Error, Result};

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

/// A table of an [`Environment`], typed by its key and value codecs.
pub(crate) enum Table<K, V> {
    Plain(Database<'static, K, V>),
    Encrypted(EncryptedDatabase<'static, K, V>),
}

impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for Table<K, V> {}

impl<K, V> Table<K, V> {
    /// The same table read and written through other codecs.
    pub(crate) fn remap_types<K2, V2>(self) -> Table<K2, V2> {
        match self {
            Self::Plain(d) => Table::Plain(d.remap_types()),
            Self::Encrypted(d) => Table::Encrypted(d.remap_types()),
        }
    }

    /// The same table with values read through another codec.
    pub(crate) fn remap_data_type<V2>(self) -> Table<K, V2> {
        self.remap_types()
    }

    pub(crate) fn get<'a, 't>(
        &self,
        txn: &'t mut heed3::RoTxn<'_>,
        key: &'a K::EItem,
    ) -> heed3::Result<Option<V::DItem>>
    where
        K: BytesEncode<'a>,
        V: BytesDecode<'t>,
    {
        either!(self, d => d.get(txn, key))
    }

    pub(crate) fn get_lower_than_or_equal_to<'a, 't>(
        &self,
        txn: &'t mut heed3::RoTxn<'_>,
        key: &'a K::EItem,
    ) -> heed3::Result<Option<(K::DItem, V::DItem)>>
    where
        K: BytesEncode<'a> + BytesDecode<'t>,
        V: BytesDecode<'t>,
    {
        either!(self, d => d.get_lower_than_or_equal_to(txn, key))
    }

    pub(crate) fn len(&self, txn: &heed3::RoTxn<'_>) -> heed3::Result<u64> {
        either!(self, d => d.len(txn))
    }

    pub(crate) fn is_empty(&self, txn: &heed3::RoTxn<'_>) -> heed3::Result<bool> {
        either!(self, d => d.is_empty(txn))
    }

    pub(crate) fn stat(&self, txn: &heed3::RoTxn<'_>) -> heed3::Result<DatabaseStat> {
        either!(self, d => d.stat(txn))
    }

    #[allow(clippy::iter_not_returning_iterator)] // heed's name: a `Result` of an iterator
    pub(crate) fn iter<'t>(
        &self,
        txn: &'t mut heed3::RoTxn<'_>,
    ) -> heed3::Result<RoIter<'t, K, V>> {
        either!(self, d => d.iter(txn))
    }

    pub(crate) fn range<'a, 't, R>(
        &self,
        txn: &'t mut heed3::RoTxn<'_>,
        range: &'a R,
    ) -> heed3::Result<RoRange<'t, K, V>>
    where
        K: BytesEncode<'a>,
        R: RangeBounds<K::EItem>,
    {
        either!(self, d => d.range(txn, range))
    }

    pub(crate) fn rev_range<'a, 't, R>(
        &self,
        txn: &'t mut heed3::RoTxn<'_>,
        range: &'a R,
    ) -> heed3::Result<RoRevRange<'t, K, V>>
    where
        K: BytesEncode<'a>,
        R: RangeBounds<K::EItem>,
    {
        either!(self, d => d.rev_range(txn, range))
    }

    pub(crate) fn prefix_iter<'a, 't>(
        &self,
        txn: &'t mut heed3::RoTxn<'_>,
        prefix: &'a K::EItem,
    ) -> heed3::Result<RoPrefix<'t, K, V>>
    where
        K: BytesEncode<'a>,
    {
        either!(self, d => d.prefix_iter(txn, prefix))
    }

    /// Iterates the rows under `prefix` in a write transaction, deleting with
    /// `del_current` (unsafe: no value read before may be used after it).
    pub(crate) fn prefix_iter_mut<'a, 't>(
        &self,
        txn: &'t mut RwTxn<'_>,
        prefix: &'a K::EItem,
    ) -> heed3::Result<RwPrefix<'t, K, V>>
    where
        K: BytesEncode<'a>,
    {
        match self {
            Self::Plain(d) => d.prefix_iter_mut(txn, prefix),
            Self::Encrypted(d) => d.prefix_iter_mut::<WithoutTls>(txn, prefix),
        }
    }

    pub(crate) fn put<'a>(
        &self,
        txn: &mut RwTxn<'_>,
        key: &'a K::EItem,
        value: &'a V::EItem,
    ) -> heed3::Result<()>
    where
        K: BytesEncode<'a>,
        V: BytesEncode<'a>,
    {
        either!(self, d => d.put(txn, key, value))
    }

    pub(crate) fn put_with_flags<'a>(
        &self,
        txn: &mut RwTxn<'_>,
        flags: PutFlags,
        key: &'a K::EItem,
        value: &'a V::EItem,
    ) -> heed3::Result<()>
    where
        K: BytesEncode<'a>,
        V: BytesEncode<'a>,
    {
        either!(self, d => d.put_with_flags(txn, flags, key, value))
    }

    pub(crate) fn delete<'a>(&self, txn: &mut RwTxn<'_>, key: &'a K::EItem) -> heed3::Result<bool>
    where
        K: BytesEncode<'a>,
    {
        either!(self, d => d.delete(txn, key))
    }

    pub(crate) fn clear(&self, txn: &mut RwTxn<'_>) -> heed3::Result<()> {
        either!(self, d => d.clear(txn))
    }
}

impl Table<Bytes, Bytes> {
    /// Makes the rows under `prefix` here what they are in `from` (a table of another
    /// environment, read in `rtxn`): deletes them here, then copies them.
    pub(crate) fn replace_prefix(
        &self,
        from: &Self,
        rtxn: &mut RoTxn<'_>,
        wtxn: &mut RwTxn<'_>,
        prefix: &[u8],
    ) -> heed3::Result<()> {
        let mut stale = self.prefix_iter_mut(wtxn, prefix)?;
        while stale.next().transpose()?.is_some() {
            // SAFETY: no reference into the database is kept across this deletion.
            unsafe { stale.del_current()? };
        }
        drop(stale);
        for row in from.prefix_iter(rtxn, prefix)? {
            let (key, value) = row?;
            self.put(wtxn, key, value)?;
        }
        Ok(())
    }
}

/// Rows copied per batch by [`scan`].
const SCAN_BATCH: usize = 64;

/// Visits the rows of `table` between `lo` and `hi` in key order (descending when `rev`),
/// copying them a batch at a time so that `f` may read the same transaction between rows
/// (an iterator cannot stay open across other reads: see the module documentation). `f`
/// returns whether to go on. Rows written by `f` itself are not guaranteed to be visited.
pub(crate) fn scan(
    table: &Table<Bytes, Bytes>,
    r: &mut RoTxn<'_>,
    mut lo: Bound<Vec<u8>>,
    mut hi: Bound<Vec<u8>>,
    rev: bool,
    mut f: impl FnMut(&mut RoTxn<'_>, &[u8], &[u8]) -> Result<bool>,
) -> Result<()> {
    let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(SCAN_BATCH);
    loop {
        batch.clear();
        let bounds = (as_slice(&lo), as_slice(&hi));
        if rev {
            for row in table.rev_range(r, &bounds)?.take(SCAN_BATCH) {
                let (k, v) = row?;
                batch.push((k.to_vec(), v.to_vec()));
            }
        } else {
            for row in table.range(r, &bounds)?.take(SCAN_BATCH) {
                let (k, v) = row?;
                batch.push((k.to_vec(), v.to_vec()));
            }
        }
        let full = batch.len() == SCAN_BATCH;
        for (k, v) in &batch {
            if !f(r, k, v)? {
                return Ok(());
            }
        }
        match batch.pop() {
            Some((last, _)) if full => {
                if rev {
                    hi = Bound::Excluded(last);
                } else {
                    lo = Bound::Excluded(last);
                }
            }
            _ => return Ok(()),
        }
    }
}

fn as_slice(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v),
        Bound::Excluded(v) => Bound::Excluded(v),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// [`scan`] of the rows whose keys start with `prefix`, in key order.
pub(crate) fn scan_prefix(
    table: &Table<Bytes, Bytes>,
    r: &mut RoTxn<'_>,
    prefix: &[u8],
    f: impl FnMut(&mut RoTxn<'_>, &[u8], &[u8]) -> Result<bool>,
) -> Result<()> {
    // The first key after every key with the prefix: the prefix with its last byte below
    // 0xFF incremented and the bytes after it dropped (none: no upper bound).
    let mut end = prefix.to_vec();
    let hi = loop {
        match end.pop() {
            Some(0xFF) => {}
            Some(b) => {
                end.push(b + 1);
                break Bound::Excluded(end);
            }
            None => break Bound::Unbounded,
        }
    };
    scan(table, r, Bound::Included(prefix.to_vec()), hi, false, f)
}
