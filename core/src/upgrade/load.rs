//! Writing one environment of the dump into the new data directory: opened as the engine
//! would (the tables created by core's own definitions, so their names and flags cannot drift
//! from what the engine opens), every row put in the dump's key order, then counted again.

use std::collections::BTreeMap;
use std::path::Path;

use heed3::types::Bytes;
use heed3::{EnvFlags, EnvOpenOptions, MdbError, PutFlags};

use crate::error::{Error, Result};
use crate::storage::{Cipher, Environment, Table};
use crate::store::Tables;

/// Rows put in one write transaction.
const BATCH_ROWS: usize = 20_000;
/// Bytes put in one write transaction.
const BATCH_BYTES: usize = 32 << 20;

/// Which of core's table sets an environment of the data directory holds, by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnvKind {
    Catalog,
    /// A shard (`logical`), a tenant's (`hybrid`) or a namespace's (`physical`) data.
    Data,
    /// A namespace's approximate vector index.
    Index,
    /// The audit log's own environment of earlier versions (adopted by the engine at open).
    OldAudit,
}

impl EnvKind {
    pub(crate) fn of(path: &str) -> Result<EnvKind> {
        let parts: Vec<&str> = path.split('/').collect();
        Ok(match parts.as_slice() {
            ["catalog"] => EnvKind::Catalog,
            ["audit"] => EnvKind::OldAudit,
            ["shards" | "tenants" | "namespaces", _] => EnvKind::Data,
            ["indexes", _] => EnvKind::Index,
            _ => {
                return Err(Error::Internal(format!(
                    "environment {path} of the 0.1.0 directory is not one memsilo writes"
                )))
            }
        })
    }

    fn max_dbs(self) -> u32 {
        match self {
            EnvKind::Catalog => crate::catalog::CatalogTables::MAX_DBS,
            EnvKind::Data => crate::datastore::DataTables::MAX_DBS,
            EnvKind::Index => crate::index::IndexTables::MAX_DBS,
            EnvKind::OldAudit => crate::audit::OldAuditTables::MAX_DBS,
        }
    }

    /// Creates the kind's tables in `env` with core's definitions.
    fn create_tables(self, env: &Environment) -> Result<()> {
        match self {
            EnvKind::Catalog => {
                crate::catalog::CatalogTables::create(env)?;
            }
            EnvKind::Data => {
                crate::datastore::DataTables::create(env)?;
            }
            EnvKind::Index => {
                crate::index::IndexTables::create(env)?;
            }
            EnvKind::OldAudit => {
                crate::audit::OldAuditTables::create(env)?;
            }
        }
        Ok(())
    }
}

/// Every named database of `env` (the keys of its main database), as raw bytes.
fn raw_tables(env: &Environment) -> Result<BTreeMap<String, Table<Bytes, Bytes>>> {
    let main = env.main_table()?;
    let mut rtxn = env.read_txn()?;
    // mdb.master3 keeps a table's name with its terminating NUL.
    let names: Vec<String> = main
        .iter(&mut rtxn)?
        .map(|r| {
            let (name, ()) = r?;
            let name = name.strip_suffix(b"\0").unwrap_or(name);
            String::from_utf8(name.to_vec())
                .map_err(|e| Error::internal_from("a table name that is not UTF-8", e))
        })
        .collect::<Result<_>>()?;
    drop(rtxn);
    let mut tables = BTreeMap::new();
    for name in names {
        // Opens it: every name is a table already (none is created here).
        let [table] = env.create_tables([name.as_str()])?;
        tables.insert(name, table);
    }
    Ok(tables)
}

/// An environment being written.
pub(crate) struct EnvWriter {
    path: String,
    env: Environment,
    tables: BTreeMap<String, Table<Bytes, Bytes>>,
    listed: BTreeMap<String, u64>,
    table: Option<String>,
    batch: Vec<(Vec<u8>, Vec<u8>)>,
    batch_bytes: usize,
}

impl EnvWriter {
    /// Creates the environment `rel` (of the dump's listing `listed`) under `root`, with the
    /// tables core defines for its kind, encrypted with `key` if one is given; refuses a table
    /// core does not define.
    pub(crate) fn create(
        root: &Path,
        rel: &str,
        listed: &BTreeMap<String, u64>,
        source_bytes: u64,
        key: Option<&[u8; 32]>,
    ) -> Result<EnvWriter> {
        let kind = EnvKind::of(rel)?;
        let dir = root.join(rel);
        std::fs::create_dir_all(&dir)?;
        let map_size = usize::try_from((source_bytes * 2).max(64 << 20).next_power_of_two())
            .map_err(|_| Error::Internal(format!("{rel}: too large to map")))?;
        // SAFETY: the new directory is opened once, by this process, which holds the data
        // directory's lock; nothing else maps it. NO_SYNC: the environment is synced once,
        // at its end (`finish`), before anything depends on it.
        let env = unsafe {
            let mut options = EnvOpenOptions::new().read_txn_without_tls();
            options
                .map_size(map_size)
                .max_dbs(kind.max_dbs())
                .flags(EnvFlags::NO_READ_AHEAD | EnvFlags::NO_SYNC);
            Environment::open(&options, &dir, key.map(|k| (Cipher::NEW, k)))?
        };
        kind.create_tables(&env)?;
        let tables = raw_tables(&env)?;
        if let Some(unknown) = listed.keys().find(|t| !tables.contains_key(*t)) {
            let known: Vec<&str> = tables.keys().map(String::as_str).collect();
            return Err(Error::Internal(format!(
                "{rel}: table {unknown} of the 0.1.0 directory is not one this memsilo defines \
                 for it ({})",
                known.join(", ")
            )));
        }
        Ok(EnvWriter {
            path: rel.to_owned(),
            env,
            tables,
            listed: listed.clone(),
            table: None,
            batch: Vec::new(),
            batch_bytes: 0,
        })
    }

    /// The rows that follow go to `table`.
    pub(crate) fn table(&mut self, table: String) -> Result<()> {
        self.flush()?;
        self.table = Some(table);
        Ok(())
    }

    pub(crate) fn row(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.batch_bytes += key.len() + value.len();
        self.batch.push((key, value));
        if self.batch.len() >= BATCH_ROWS || self.batch_bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Puts the batch in one transaction; a full map is doubled and the batch put again.
    fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let name = self.table.as_deref().unwrap_or_default();
        let db = *self
            .tables
            .get(name)
            .ok_or_else(|| Error::Internal(format!("{}: rows before a table", self.path)))?;
        loop {
            let mut wtxn = self.env.write_txn()?;
            // Rows come in the source's key order, the order of the same default comparator
            // here: each is appended (a key out of order fails, never lands misplaced).
            let put = self
                .batch
                .iter()
                .try_for_each(|(k, v)| db.put_with_flags(&mut wtxn, PutFlags::APPEND, k, v));
            match put.and_then(|()| wtxn.commit()) {
                Ok(()) => break,
                Err(heed3::Error::Mdb(MdbError::MapFull)) => {
                    let size = self.env.info().map_size.saturating_mul(2);
                    // SAFETY: the transaction above is gone (aborted on drop or failed commit);
                    // no other transaction of this environment exists.
                    unsafe { self.env.resize(size)? };
                }
                Err(e) => {
                    return Err(Error::internal_from(
                        format!("writing {} table {name}", self.path),
                        e,
                    ))
                }
            }
        }
        self.batch.clear();
        self.batch_bytes = 0;
        Ok(())
    }

    /// Writes what is left, syncs, and counts every table again against the dump's listing.
    /// Returns the rows written.
    pub(crate) fn finish(mut self) -> Result<u64> {
        self.flush()?;
        self.env.force_sync()?;
        let rtxn = self.env.read_txn()?;
        let mut rows = 0;
        for (name, db) in &self.tables {
            let have = db.len(&rtxn)?;
            let want = self.listed.get(name).copied().unwrap_or(0);
            if have != want {
                return Err(Error::Internal(format!(
                    "{} table {name}: {have} rows written, the 0.1.0 directory has {want}",
                    self.path
                )));
            }
            rows += have;
        }
        drop(rtxn);
        let EnvWriter { env, tables, .. } = self;
        drop(tables);
        env.prepare_for_closing().wait();
        Ok(rows)
    }
}
