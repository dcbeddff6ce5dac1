//! Atomic deletion and background erasure.
//!
//! Deleting a namespace is one catalog transaction that removes its routing and queues a
//! purge job; from then on nothing can reach it. The purge removes its approximate index's
//! environment, deletes its rows, then erases them from disk: `physical` namespaces and
//! `hybrid` tenants lose their files; shared environments are rewritten without free pages,
//! because LMDB keeps the old bytes of freed pages and of deleted rows in the unused part of
//! live pages (checked: with the rows deleted and no rewrite, the erasure tests find the
//! deleted content in the file). A namespace that held no rows leaves nothing on disk and
//! causes no rewrite; the jobs found together share one rewrite per environment.
//!
//! The rewrite runs online (see [`crate::store`]): the file is copied from a snapshot while
//! every tenant keeps reading and writing it, the namespaces written meanwhile are copied
//! again, and only the last of those rounds and the swap of the files hold the environment's
//! other transactions up — for the time it takes to copy the namespaces written during the
//! round before (a few ms for single-memory writes), not for the size of the file.
//!
//! How long erasure takes at most: the worker is woken by the deletion (and polls every
//! 0.5 s), deletes the rows in transactions of 5,000, then rewrites the environment, which
//! takes time proportional to its size; the purge reports done (its job leaves the catalog)
//! after the rewrite. Jobs live in the catalog, so a crash before the purge finishes resumes
//! it on the next open.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::EngineInner;
use crate::datastore::EnvLocation;
use crate::error::Result;
use crate::records::PurgeJob;
use crate::state::Affects;

/// Rows deleted per transaction, so a large purge never holds the writer for long.
const PURGE_BATCH: usize = 5_000;

/// Runs every queued job; returns how many ran. Environments that lost rows are compacted
/// once at the end, then the jobs are removed from the catalog.
pub(crate) fn run_pending(inner: &EngineInner) -> Result<usize> {
    let _one_run = inner.purge_run.lock();
    // Under the gate: a job is seen only once its deletion has read what the namespace held.
    let jobs: Vec<(u64, PurgeJob)> = {
        let _gate = inner.state.purge_gate();
        inner
            .state
            .catalog
            .read(|r, t| Ok(t.purges.iter(r)?.collect::<heed3::Result<Vec<_>>>()?))?
    };
    if jobs.is_empty() {
        return Ok(0);
    }
    let mut to_compact = HashSet::new();
    let mut keys_to_destroy = Vec::new();
    for (job_id, job) in &jobs {
        match job {
            PurgeJob::Namespace { ns_id, location: loc @ EnvLocation::Namespace { .. } } => {
                inner.state.mark_dead(*ns_id);
                inner.state.indexes.destroy(*ns_id)?;
                inner.state.destroy_data_env(loc)?;
            }
            PurgeJob::Namespace { ns_id, location } => {
                inner.state.mark_dead(*ns_id);
                inner.state.indexes.destroy(*ns_id)?;
                if !location.dir(&inner.state.dir).exists() {
                    continue;
                }
                let env = inner.state.data_env(location)?;
                let mut deleted = 0;
                while env
                    .write_ns(*ns_id, |w, t| t.purge_rows(w, *ns_id, PURGE_BATCH, &mut deleted))?
                {
                }
                // Nothing of a namespace that held no rows is on disk: no rewrite for it.
                if deleted > 0 {
                    to_compact.insert(location.clone());
                }
            }
            PurgeJob::RemoveEnv { location } => {
                to_compact.remove(location);
                inner.state.destroy_data_env(location)?;
            }
            PurgeJob::DestroyKey { key_id } => keys_to_destroy.push((*job_id, key_id)),
        }
    }
    for loc in to_compact {
        if loc.dir(&inner.state.dir).exists() {
            inner.state.data_env(&loc)?.compact()?;
        }
    }
    // Last, once no file of this round needs them. Destroying is idempotent, so a crash
    // after it and before the jobs leave the catalog repeats it harmlessly. A key that cannot
    // be destroyed now (no keyring configured, the provider failing) keeps its job, to be
    // retried; the other jobs are done.
    let mut kept = HashSet::new();
    let mut failure = None;
    for (job_id, key_id) in keys_to_destroy {
        if let Err(e) = inner.state.destroy_key(key_id) {
            kept.insert(job_id);
            failure = Some(e);
        }
    }
    inner.state.catalog_write_affecting(Affects::NoKeys, |w, t| {
        for (id, _) in jobs.iter().filter(|(id, _)| !kept.contains(id)) {
            t.purges.delete(w, id)?;
        }
        Ok(())
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(jobs.len()),
    }
}

/// Namespaces the background decay sweep visits per round (every 5 s).
const SWEEP_STEP: usize = 2_000;

/// Starts the background worker: purges, key rotations, decay sweeps and audit retention. It
/// holds only a weak reference and ends when the engine is closing (see
/// [`crate::engine::Life`], which joins the threads returned).
pub(crate) fn spawn_worker(inner: &Arc<EngineInner>) -> Vec<std::thread::JoinHandle<()>> {
    let mut threads = Vec::new();
    let weak: Weak<EngineInner> = Arc::downgrade(inner);
    let spawned = std::thread::Builder::new().name("memsilo-worker".into()).spawn(move || {
        let mut ticks: u64 = 0;
        loop {
            let Some(inner) = weak.upgrade() else { return };
            if inner.state.stopping() {
                return;
            }
            if !inner.state.dir.exists() {
                return; // the data directory was removed under a closing engine
            }
            if let Err(e) = run_pending(&inner) {
                tracing::warn!("purge failed, will retry: {e}");
            }
            if let Err(e) = inner.run_rotations() {
                tracing::warn!("key rotation failed, will retry: {e}");
            }
            if ticks.is_multiple_of(10) {
                if let Err(e) = super::sweep::sweep_all(&inner, 10_000, Some(SWEEP_STEP)) {
                    tracing::warn!("decay sweep failed, will retry: {e}");
                }
            }
            if ticks.is_multiple_of(7200) {
                if let Err(e) = inner.state.audit_maintenance() {
                    tracing::warn!("audit retention failed, will retry: {e}");
                }
            }
            ticks += 1;
            inner.state.wait_for_worker_wake(Duration::from_millis(500));
        }
    });
    match spawned {
        Ok(t) => threads.push(t),
        Err(e) => tracing::error!("could not start the background worker: {e}"),
    }
    threads
}

#[cfg(test)]
mod tests {
    use crate::datastore::EnvLocation;
    use crate::error::ErrorCode;
    use crate::memory::StoreMemory;
    use crate::namespace::NamespaceOptions;
    use crate::tenant::{CreateTenant, IsolationMode};
    use crate::{Engine, Options};

    /// A reader that found a namespace before it was deleted (the vector indexer, a request in
    /// flight) asks for its environment after the purge removed the files: it is told the
    /// namespace is gone, and the directory is not created again (it was, and the purge of a
    /// second pass then failed on a directory that was not empty).
    #[test]
    fn a_late_reader_of_a_purged_namespace_does_not_create_its_files_again() {
        let dir = tempfile::tempdir().unwrap();
        let engine =
            Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
        let root = engine.root();
        let tenant = root
            .create_tenant(CreateTenant {
                name: "own_files".into(),
                isolation_mode: Some(IsolationMode::Physical),
                ..Default::default()
            })
            .unwrap()
            .tenant;
        let opts = NamespaceOptions { tenant_id: Some(tenant.id), ..Default::default() };
        root.create_namespace("doomed", opts).unwrap();
        root.store_memory(StoreMemory {
            namespace: Some("doomed".into()),
            ..StoreMemory::text("kept until the purge")
        })
        .unwrap();
        let own: Vec<_> = std::fs::read_dir(dir.path().join("namespaces"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(own.len(), 1, "one namespace with its own files: {own:?}");
        let location = EnvLocation::Namespace { id: own[0].parse().unwrap() };
        let files = location.dir(&engine.inner.state.dir);

        root.delete_namespace("doomed").unwrap();
        assert_eq!(engine.run_pending_purges().unwrap(), 1);
        assert!(!files.exists(), "the purge removed the namespace's directory");

        let late =
            engine.inner.state.data_env(&location).err().expect("a purged namespace is not opened");
        assert_eq!(late.code(), ErrorCode::NotFound);
        assert!(!files.exists(), "a late reader created {} again", files.display());
    }
}
