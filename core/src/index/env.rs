//! The index environments: one LMDB environment per indexed namespace
//! (`DIR/indexes/<namespace id>/`) holding its trained centroids and each indexed slot's cell.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use heed3::types::{Bytes, Str};
use parking_lot::RwLock;

use super::ivf::Ivf;
use super::IndexHost;
use crate::datastore::NamespaceId;
use crate::error::{Error, Result};
use crate::records::NamespaceRecord;
use crate::storage::{Environment, RoTxn, Table};
use crate::store::{Store, Tables};

/// Initial map size of an index environment (sparse; grows when full).
const INDEX_MAP_SIZE: usize = 256 << 20;

/// The tables of an index environment.
pub(crate) struct IndexTables {
    /// "centroids" → f32 LE values; "trained" → u64 BE (vectors trained on); "dims" → u32 BE.
    pub(super) meta: Table<Str, Bytes>,
    /// slot (u32 BE) → cell (u32 BE).
    pub(super) cells: Table<Bytes, Bytes>,
}

impl Tables for IndexTables {
    const MAX_DBS: u32 = 2;

    fn create(env: &Environment) -> Result<Self> {
        let [meta, cells] = env.create_tables(["meta", "cells"])?;
        Ok(IndexTables { meta: meta.remap_types(), cells })
    }
}

/// The stored training of an index: its empty partition.
pub(super) fn stored_training(it: &IndexTables, r: &mut RoTxn<'_>) -> Result<Option<Ivf>> {
    // Each value is copied before the next read (see `storage`).
    let c = it.meta.get(r, "centroids")?.map(<[u8]>::to_vec);
    let t = it.meta.get(r, "trained")?.map(<[u8]>::to_vec);
    let d = it.meta.get(r, "dims")?.map(<[u8]>::to_vec);
    let (Some(c), Some(t), Some(d)) = (c, t, d) else {
        return Ok(None);
    };
    let trained = u64::from_be_bytes(t[..].try_into().map_err(|_| corrupt("trained"))?);
    let dims = u32::from_be_bytes(d[..].try_into().map_err(|_| corrupt("dims"))?) as usize;
    let centroids: Vec<f32> =
        c.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    if dims == 0 || centroids.is_empty() || !centroids.len().is_multiple_of(dims) {
        return Err(corrupt("centroids"));
    }
    Ok(Some(Ivf::new(dims, trained, centroids)))
}

fn corrupt(what: &str) -> Error {
    Error::Internal(format!("vector index: stored {what} is malformed"))
}

pub(super) fn slot_cell(key: &[u8], value: &[u8]) -> Option<(u32, u32)> {
    Some((u32::from_be_bytes(key.try_into().ok()?), u32::from_be_bytes(value.try_into().ok()?)))
}

/// The open index environments, by namespace, under `dir`.
pub(super) struct IndexEnvs {
    dir: PathBuf,
    open: RwLock<HashMap<NamespaceId, Arc<Store<IndexTables>>>>,
}

impl IndexEnvs {
    pub(super) fn new(dir: PathBuf) -> Self {
        IndexEnvs { dir, open: RwLock::default() }
    }

    fn dir_of(&self, ns: NamespaceId) -> PathBuf {
        self.dir.join(ns.to_string())
    }

    /// The index environment of `rec`: opened if it exists, created if `create`. `None` if it
    /// does not exist (and is not to be created) or the namespace is deleted.
    pub(super) fn get(
        &self,
        host: &dyn IndexHost,
        rec: &NamespaceRecord,
        create: bool,
    ) -> Result<Option<Arc<Store<IndexTables>>>> {
        let ns = rec.id;
        if let Some(s) = self.open.read().get(&ns) {
            return Ok(Some(s.clone()));
        }
        let mut open = self.open.write();
        if let Some(s) = open.get(&ns) {
            return Ok(Some(s.clone()));
        }
        let dir = self.dir_of(ns);
        if host.is_dead(ns) || !(create || dir.exists()) {
            return Ok(None);
        }
        let key = host.data_key(rec)?;
        let store = Arc::new(crate::encryption::open_store(&dir, INDEX_MAP_SIZE, key.as_ref())?);
        open.insert(ns, store.clone());
        Ok(Some(store))
    }

    /// Closes and removes the index environment of a deleted namespace (idempotent).
    pub(super) fn destroy(&self, ns: NamespaceId) -> Result<()> {
        let mut open = self.open.write();
        if let Some(s) = open.remove(&ns) {
            return s.destroy();
        }
        match std::fs::remove_dir_all(self.dir_of(ns)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}
