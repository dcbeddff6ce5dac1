//! [`Table`]: a table of a plain or an encrypted environment, typed by its codecs.

use std::ops::RangeBounds;

use heed3::types::Bytes;
use heed3::{
    BytesDecode, BytesEncode, Database, DatabaseStat, EncryptedDatabase, PutFlags, RoIter,
    RoPrefix, RoRange, RoRevRange, RwPrefix, RwTxn, WithoutTls,
};

use super::{either, RoTxn};

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
    /// environment, read in `rtxn`), writing only what differs: the rows `from` lacks are
    /// deleted, those it holds otherwise are put. A compaction or key rotation catches up
    /// with writes made during its copy this way, so a round costs reads of both plus the
    /// changed rows, not a rewrite of every row (a physical namespace is its whole file).
    pub(crate) fn replace_prefix(
        &self,
        from: &Self,
        rtxn: &mut RoTxn<'_>,
        wtxn: &mut RwTxn<'_>,
        prefix: &[u8],
    ) -> heed3::Result<()> {
        let mut ours = self.prefix_iter_mut(wtxn, prefix)?;
        while let Some((key, _)) = ours.next().transpose()? {
            if from.get(rtxn, key)?.is_none() {
                // SAFETY: no reference into the database is kept across this deletion.
                unsafe { ours.del_current()? };
            }
        }
        drop(ours);
        for row in from.prefix_iter(rtxn, prefix)? {
            let (key, value) = row?;
            let same = self.get(wtxn, key)? == Some(value);
            if !same {
                self.put(wtxn, key, value)?;
            }
        }
        Ok(())
    }
}
