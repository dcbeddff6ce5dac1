//! The open data environments: opened on first use, the least recently used of their own
//! closed past [`super::Options::max_open_environments`], deleted by a purge.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::State;
use crate::datastore::{DataTables, EnvLocation};
use crate::error::{Error, Result};
use crate::store::Store;

/// An open data environment and when it was last used.
pub(super) struct OpenEnv {
    pub(super) store: Arc<Store<DataTables>>,
    /// Tick of its last use (of `State::env_clock`).
    pub(super) used: AtomicU64,
}

impl State {
    /// The data environment at `loc`, opened on first use. Environments of their own
    /// (hybrid, physical) are closed least recently used first past
    /// [`Options::max_open_environments`]; the shared shards stay open.
    pub(crate) fn data_env(&self, loc: &EnvLocation) -> Result<Arc<Store<DataTables>>> {
        self.data_env_with(loc, None)
    }

    /// The data environment of namespace `rec` (see [`State::data_env`]).
    pub(crate) fn data_env_of(
        &self,
        rec: &crate::namespace::NamespaceRecord,
    ) -> Result<Arc<Store<DataTables>>> {
        self.data_env_with(&rec.location, rec.tenant_id.as_deref())
    }

    /// [`State::data_env`]; `tenant`: the tenant of a `physical` namespace, whose key
    /// its environment is created with (see [`State::key_for`]).
    pub(crate) fn data_env_with(
        &self,
        loc: &EnvLocation,
        tenant: Option<&str>,
    ) -> Result<Arc<Store<DataTables>>> {
        if let Some(e) = self.data_envs.read().get(loc) {
            self.touch(loc, e);
            return Ok(e.store.clone());
        }
        let mut envs = self.data_envs.write();
        if let Some(e) = envs.get(loc) {
            self.touch(loc, e);
            return Ok(e.store.clone());
        }
        if let EnvLocation::Namespace { id } = loc {
            // Checked under the lock `destroy_data_env` holds while it deletes the files: a
            // late reader of a deleted namespace cannot create its directory again (one not
            // yet purged is still read, for the bytes it held).
            if self.is_dead(*id) && !loc.dir(&self.dir).exists() {
                return Err(Error::not_found("namespace", format!("#{id} (deleted)")));
            }
        }
        if !matches!(loc, EnvLocation::Shard { .. }) {
            self.close_idle_envs(&mut envs);
        }
        let key = self.key_for(loc, tenant)?;
        let store = Arc::new(crate::encryption::open_store(
            &loc.dir(&self.dir),
            loc.initial_map_size(),
            key.as_ref(),
        )?);
        let used = AtomicU64::new(self.env_clock.fetch_add(1, Ordering::Relaxed));
        envs.insert(loc.clone(), OpenEnv { store: store.clone(), used });
        Ok(store)
    }

    fn touch(&self, loc: &EnvLocation, e: &OpenEnv) {
        if !matches!(loc, EnvLocation::Shard { .. }) {
            e.used.store(self.env_clock.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// Closes the least recently used environments of their own that nobody is using until
    /// one more fits under the limit (one in use stays open: it is closed by a later call).
    fn close_idle_envs(&self, envs: &mut HashMap<EnvLocation, OpenEnv>) {
        let limit = self.options.max_open_environments.max(1);
        let own = envs.keys().filter(|l| !matches!(l, EnvLocation::Shard { .. })).count();
        if own < limit {
            return;
        }
        let mut idle: Vec<(u64, EnvLocation)> = envs
            .iter()
            .filter(|(l, e)| {
                !matches!(l, EnvLocation::Shard { .. }) && Arc::strong_count(&e.store) == 1
            })
            .map(|(l, e)| (e.used.load(Ordering::Relaxed), l.clone()))
            .collect();
        idle.sort_unstable_by_key(|(used, _)| *used);
        for (_, loc) in idle.into_iter().take(own + 1 - limit) {
            // The last reference: dropping it closes the environment (no transaction can be
            // running on it, and none can start while `envs` is locked).
            envs.remove(&loc);
        }
    }

    /// Environments open now (tests and benchmarks: the bound of
    /// [`Options::max_open_environments`]).
    pub(crate) fn open_env_count(&self) -> usize {
        self.data_envs.read().len()
    }

    /// Group-commit counters of the catalog and of the data environments open now.
    pub(crate) fn commit_stats(&self) -> crate::store::CommitStats {
        let data = self.data_envs.read();
        data.values().fold(self.catalog.stats(), |sum, e| sum + e.store.stats())
    }

    /// Closes and deletes an environment's files (hybrid/physical purge).
    /// The lock on the open environments is held throughout, so no one opens (and so
    /// creates) the directory again while its files are being deleted.
    pub(crate) fn destroy_data_env(&self, loc: &EnvLocation) -> Result<()> {
        let mut envs = self.data_envs.write();
        if let Some(e) = envs.remove(loc) {
            return e.store.destroy();
        }
        match std::fs::remove_dir_all(loc.dir(&self.dir)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}
