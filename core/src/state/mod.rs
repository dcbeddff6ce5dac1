//! What the handles of one open data directory share: the catalog, the data environments,
//! the caches, the quotas' counters, the audit log, the keys, and which namespaces are dead.
//! A [`crate::handle::Handle`] holds an `Arc<State>`; the engine holds it too, beside its
//! background workers' own state, which nothing here sees.
//!
//! Invariants each child keeps: a catalog write drops the cached key resolutions it changes
//! (`key_cache`); a data environment is opened once and a deleted namespace's is never
//! created again (`environments`); a namespace marked dead is never written again
//! ([`liveness`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};

use crate::catalog::CatalogTables;
use crate::datastore::{EnvLocation, NamespaceId, NamespaceStats};
use crate::error::{Error, Result};
use crate::index::VectorCache;
use crate::keyring::KeyProvider;
use crate::quota::{ComputeGate, RateLimiter, StorageUsage};
use crate::records::NamespaceRecord;
use crate::store::{Decoded, Store};
pub(crate) use encryption::key_id_in;
use environments::OpenEnv;
pub(crate) use key_cache::Affects;
use key_cache::CachedKey;
use liveness::DeadNamespaces;
pub use options::Options;

mod audit;
mod data;
mod encryption;
mod environments;
mod index_host;
mod key_cache;
mod liveness;
mod options;
mod tenant;
mod tenant_keys;
mod usage;

/// The state shared by an engine and its handles (see the module documentation).
pub(crate) struct State {
    /// The data directory.
    pub(crate) dir: PathBuf,
    pid: u32,
    pub(crate) options: Options,
    pub(crate) catalog: Arc<Store<CatalogTables>>,
    /// Bumped by every catalog write that changes key resolutions (under `key_cache`'s write
    /// lock, when it drops the entries it changes): a resolution read before such a write is
    /// not cached after it.
    generation: AtomicU64,
    data_envs: RwLock<HashMap<EnvLocation, OpenEnv>>,
    /// Ticks of the environments' use (see [`OpenEnv::used`]).
    env_clock: AtomicU64,
    key_cache: RwLock<HashMap<String, CachedKey>>,
    /// Namespace records by name, decoded once for the bytes the catalog holds (every
    /// request that names a namespace reads its record).
    pub(crate) decoded_records: Decoded<String, NamespaceRecord>,
    /// Namespace statistics by namespace, decoded once for the bytes stored (every recall
    /// reads them).
    pub(crate) decoded_stats: Decoded<NamespaceId, Arc<NamespaceStats>>,
    pub(crate) usage: StorageUsage,
    pub(crate) limiter: RateLimiter,
    pub(crate) compute: ComputeGate,
    pub(crate) vectors: VectorCache,
    /// Approximate indexes: their environments and work queue (see [`crate::index`]).
    pub(crate) indexes: crate::index::Indexes,
    pub(crate) graphs: crate::graph::GraphCache,
    /// The audit log (see [`crate::audit`]).
    pub(crate) audit: crate::audit::AuditLog,
    /// Wakes the engine's background worker, and tells its threads to end.
    worker: WorkerSignal,
    /// SHA-256 of the admin key, mirrored from the catalog.
    admin_hash: RwLock<Option<[u8; 32]>>,
    /// Namespaces deleted while this process runs.
    dead: DeadNamespaces,
    /// Held by a deletion from its catalog commit until it has read what its namespaces
    /// held, and by the purge while it lists its jobs (see [`State::retire_namespaces`]).
    purge_gate: Mutex<()>,
    /// Where encryption keys come from ([`Options::key_provider`] or [`Options::keyring`]);
    /// `None` when neither is configured.
    pub(crate) keys: Option<Arc<dyn KeyProvider>>,
    /// Key of the list cursors' MACs (see [`crate::cursor`]), read or made on first use.
    pub(crate) cursor_key: crate::cursor::CursorKey,
    /// The instance key: the key of the instance's files made from now on (see
    /// [`crate::encryption`]); `None` when the data directory is plain. A rotation of the
    /// instance key replaces it under the lock of the open environments (see
    /// [`State::replace_instance_key`]).
    instance_key: RwLock<Option<crate::encryption::EnvKey>>,
    /// Held by the start of an instance key rotation until its files are listed (see
    /// [`State::instance_rotation_start`]).
    instance_rotation_start: Mutex<()>,
    /// The cipher of files without a record of their key (`storage.json`'s).
    unrecorded_cipher: crate::storage::Cipher,
}

/// The background worker's wake-up call and the engine's stop signal.
#[derive(Default)]
struct WorkerSignal {
    woken: Mutex<bool>,
    cv: Condvar,
    /// Set when the last `Engine` or `Handle` is dropped: the background threads end.
    stopping: AtomicBool,
}

impl State {
    /// The state of the data directory `dir` (locked and checked by the caller), whose
    /// catalog is open.
    pub(crate) fn new(
        dir: PathBuf,
        options: Options,
        catalog: Arc<Store<CatalogTables>>,
        keys: Option<Arc<dyn KeyProvider>>,
        instance_key: Option<crate::encryption::EnvKey>,
    ) -> Result<Arc<State>> {
        let state = Arc::new(State {
            pid: std::process::id(),
            catalog,
            generation: AtomicU64::new(1),
            data_envs: RwLock::default(),
            env_clock: AtomicU64::new(0),
            key_cache: RwLock::default(),
            decoded_records: Decoded::default(),
            decoded_stats: Decoded::default(),
            usage: StorageUsage::default(),
            limiter: RateLimiter::default(),
            compute: ComputeGate::default(),
            vectors: VectorCache::new(options.vector_cache_bytes),
            indexes: crate::index::Indexes::new(dir.join("indexes"), options.ann_threshold),
            graphs: crate::graph::GraphCache::default(),
            audit: crate::audit::AuditLog::default(),
            worker: WorkerSignal::default(),
            dead: DeadNamespaces::default(),
            purge_gate: Mutex::new(()),
            cursor_key: crate::cursor::CursorKey::default(),
            keys,
            unrecorded_cipher: instance_key
                .as_ref()
                .map_or(crate::storage::Cipher::NEW, |k| k.key.cipher),
            instance_key: RwLock::new(instance_key),
            instance_rotation_start: Mutex::new(()),
            admin_hash: RwLock::default(),
            options,
            dir,
        });
        let source: std::sync::Weak<State> = Arc::downgrade(&state);
        state.usage.attach(source);
        *state.admin_hash.write() = state.catalog.read(|r, t| {
            Ok(t.meta.get(r, "admin_key_sha256")?.and_then(|b| <[u8; 32]>::try_from(b).ok()))
        })?;
        Ok(state)
    }

    /// Refuses use in a forked child: LMDB environments must not cross `fork()`.
    pub(crate) fn check_process(&self) -> Result<()> {
        if std::process::id() == self.pid {
            Ok(())
        } else {
            Err(Error::Internal(
                "this engine was opened in a parent process; open it again after fork()".into(),
            ))
        }
    }

    pub(crate) fn now_micros(&self) -> i64 {
        self.options.clock.now_micros()
    }

    /// Sets the hash of the key that authenticates as root (after the catalog stored it).
    pub(crate) fn set_admin_hash(&self, hash: [u8; 32]) {
        *self.admin_hash.write() = Some(hash);
    }

    /// Whether an admin key has been set.
    pub(crate) fn has_admin_key(&self) -> bool {
        self.admin_hash.read().is_some()
    }

    /// Wakes the background worker.
    pub(crate) fn wake_worker(&self) {
        *self.worker.woken.lock() = true;
        self.worker.cv.notify_all();
    }

    /// Tells the background threads to end, and wakes the worker to see it.
    pub(crate) fn stop_workers(&self) {
        self.worker.stopping.store(true, Ordering::SeqCst);
        self.wake_worker();
    }

    /// Whether the background threads are to end.
    pub(crate) fn stopping(&self) -> bool {
        self.worker.stopping.load(Ordering::SeqCst)
    }

    /// The background worker's wait between rounds: until woken, or `timeout`.
    pub(crate) fn wait_for_worker_wake(&self, timeout: Duration) {
        let mut woken = self.worker.woken.lock();
        if !*woken {
            self.worker.cv.wait_for(&mut woken, timeout);
        }
        *woken = false;
    }

    /// Held by a deletion from its catalog commit until it has read what its namespaces
    /// held, and by the purge while it lists its jobs: a purge job is seen only once its
    /// deletion has read what the namespace held.
    pub(crate) fn purge_gate(&self) -> MutexGuard<'_, ()> {
        self.purge_gate.lock()
    }

    /// Whether a namespace id has been deleted in this process.
    pub(crate) fn is_dead(&self, id: NamespaceId) -> bool {
        self.dead.is_dead(id)
    }

    /// Whether no namespace has been deleted in this process.
    pub(crate) fn none_dead(&self) -> bool {
        self.dead.is_empty()
    }

    /// Marks a namespace deleted: data writes check this inside their transaction, so none
    /// can land after the purge of its rows has begun.
    pub(crate) fn mark_dead(&self, id: NamespaceId) {
        self.dead.mark_dead(id);
    }

    /// After the catalog committed the unlinking of `recs`: stops every write to them, drops
    /// their caches, and returns the bytes they held. The bytes are read in a write
    /// transaction of each namespace's environment begun after it was marked dead, so every
    /// write or forget that passed its liveness check has committed by then and none can
    /// follow: each byte is released exactly once. The caller holds
    /// [`State::purge_gate`], so the purge cannot remove the counters first.
    pub(crate) fn retire_namespaces(&self, recs: &[NamespaceRecord]) -> Result<u64> {
        let mut held = 0;
        for rec in recs {
            self.mark_dead(rec.id);
            self.forget_namespace_caches(rec.id);
            if rec.location.dir(&self.dir).exists() {
                let env = self.data_env_of(rec)?;
                held += env.write_ns(rec.id, |w, t| Ok(t.stats_of(w, rec.id)?.storage_bytes))?;
            }
        }
        Ok(held)
    }

    /// Drops the in-memory vector and graph caches of a namespace.
    pub(crate) fn forget_namespace_caches(&self, id: NamespaceId) {
        self.vectors.forget(id);
        self.indexes.forget(id);
        self.graphs.forget(id);
    }
}
