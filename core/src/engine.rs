//! The engine: a data directory held open, the state its handles share (`state::State`),
//! and the background workers (purge, key rotation, sweep, indexer) it starts and stops.

use std::any::Any;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;

use crate::auth;
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::state::{Options, State};
pub(crate) use directory::lock_directory;

#[cfg(test)]
mod audit_tests;
mod directory;
mod indexer;
#[cfg(test)]
mod key_cache_tests;
#[cfg(test)]
mod listing_tests;
#[cfg(test)]
mod namespace_tests;
mod purge;
mod rotation;
#[cfg(test)]
mod rotation_tests;
mod sweep;
mod table_bytes;
#[cfg(test)]
mod transfer_tests;

/// The engine's own state, beside the [`State`] its handles share: what only its
/// background workers and its own operations touch.
pub(crate) struct EngineInner {
    state: Arc<State>,
    /// Held by one run of the queued purges at a time: the background worker and an explicit
    /// `run_pending_purges` never destroy or compact the same environment at once.
    purge_run: Mutex<()>,
    /// Name after which the background decay sweep goes on (see [`sweep::sweep_all`]).
    sweep_from: Mutex<String>,
    /// Set by [`Engine::stop_key_rotations_after_staging`] (tests).
    stop_rotations_after_staging: AtomicBool,
    /// The exclusive lock on `DIR/LOCK`, released when the engine is dropped.
    _dir_lock: std::fs::File,
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<Life>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Weak<Life>>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

/// An open data directory. Cheap to clone; two `open` calls on one path in one process share
/// one engine (LMDB allows one environment per file per process).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
    life: Arc<Life>,
}

impl Handle {
    /// The engine behind this handle.
    pub fn engine(&self) -> Engine {
        // A handle keeps alive the `Life` of the engine that made it (see `Engine::handle`).
        let life = Arc::clone(self.life())
            .downcast::<Life>()
            .unwrap_or_else(|_| unreachable!("a handle is kept alive by its engine's Life"));
        Engine { inner: life.inner.clone(), life }
    }
}

/// What keeps an engine open for its users: every [`Engine`] and [`Handle`] holds it, the
/// background threads do not (they hold a weak reference to the engine and take a strong one
/// for each round of work). Dropping the last one stops those threads and waits for them, so
/// a purge or index build under way finishes first and nothing works on the directory once
/// the drop returns (its lock is released then too).
struct Life {
    inner: Arc<EngineInner>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Drop for Life {
    fn drop(&mut self) {
        self.inner.state.stop_workers();
        for worker in std::mem::take(&mut *self.workers.lock()) {
            worker.thread().unpark();
            if worker.thread().id() != std::thread::current().id() {
                let _ = worker.join();
            }
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("dir", &self.inner.state.dir).finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens (creating if needed) the data directory at `dir`. If this process already has
    /// the directory open, the same engine is returned and `options` are ignored.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Engine> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::invalid("path", format!("cannot create data directory {}: {e}", dir.display()))
        })?;
        let dir = dir.canonicalize()?;
        let mut reg = registry().lock();
        if let Some(life) = reg.get(&dir).and_then(Weak::upgrade) {
            life.inner.state.check_process()?;
            return Ok(Engine { inner: life.inner.clone(), life });
        }
        let keys = match (&options.key_provider, &options.keyring) {
            (Some(provider), _) => Some(provider.clone()),
            (None, Some(setting)) => Some(crate::keyring::provider_for(setting, &dir)?),
            (None, None) => None,
        };
        let dir_lock = lock_directory(&dir)?;
        let instance_key = crate::format::check_or_mark(&dir, keys.as_deref())?;
        let (catalog, instance_key) = rotation::open_catalog(&dir, keys.as_deref(), instance_key)?;
        let catalog = Arc::new(catalog);
        crate::audit::adopt_old_log(&dir, &catalog)?;
        let state = State::new(dir.clone(), options, catalog, keys, instance_key)?;
        state.check_key_locations()?;
        let inner = Arc::new(EngineInner {
            state,
            purge_run: Mutex::new(()),
            sweep_from: Mutex::default(),
            stop_rotations_after_staging: AtomicBool::new(false),
            _dir_lock: dir_lock,
        });
        // Before anything opens a data environment: a rotation's complete new files that a
        // crash left beside the old ones are moved into place.
        inner.settle_staged_rotations()?;
        let life = Arc::new(Life { inner: inner.clone(), workers: Mutex::default() });
        reg.insert(dir, Arc::downgrade(&life));
        drop(reg);
        if inner.state.options.background {
            let mut workers = purge::spawn_worker(&inner);
            workers.extend(indexer::spawn(&inner));
            *life.workers.lock() = workers;
        }
        Ok(Engine { inner, life })
    }

    /// A handle of this engine acting as `key`'s principal (`None`: root).
    /// `key`: the key with the resolution it was let in with (see `State::authenticate_at`).
    fn handle(
        &self,
        key: Option<(crate::auth::ParsedKey, crate::handle::Resolved)>,
        request_id: Option<Arc<str>>,
    ) -> Handle {
        let life: Arc<dyn Any + Send + Sync> = self.life.clone();
        Handle::new(self.inner.state.clone(), life, key, request_id)
    }

    /// The embedded owner: may do anything.
    pub fn root(&self) -> Handle {
        self.handle(None, None)
    }

    /// A handle limited to what `api_key` allows. Fails with `unauthorized` at once for a
    /// malformed, unknown, expired or revoked key; every later call re-checks it, so a
    /// revocation takes effect on handles already made. A refused key is recorded in the
    /// audit log (its key's tenant's, or the instance log).
    pub fn scoped(&self, api_key: &str) -> Result<Handle> {
        self.scoped_request(api_key, None)
    }

    /// [`Engine::scoped`] for one request of a transport: the handle's audit entries (and a
    /// refusal of the key) carry `request_id`.
    pub fn scoped_request(&self, api_key: &str, request_id: Option<&str>) -> Result<Handle> {
        self.inner.state.check_process()?;
        let request_id = request_id.map(Arc::from);
        if self.inner.state.is_admin_key(api_key) {
            return Ok(self.root().with_request(request_id));
        }
        let parsed = match auth::parse_key(api_key) {
            Ok(p) => p,
            Err(e) => {
                self.inner.state.audit_unauthenticated(
                    None,
                    "authenticate",
                    &e,
                    request_id.as_deref(),
                );
                return Err(e);
            }
        };
        let resolved = match self.inner.state.authenticate_at(&parsed) {
            Ok(r) => r,
            Err(e) => {
                if crate::audit::is_refusal(e.code()) {
                    self.inner.state.audit_unauthenticated(
                        Some(&parsed),
                        "authenticate",
                        &e,
                        request_id.as_deref(),
                    );
                }
                return Err(e);
            }
        };
        Ok(self.handle(Some((parsed, resolved.into())), request_id))
    }

    /// [`Engine::scoped_request`] for a key that is let in: its handle, or `None` for a key
    /// that would be refused. Records nothing and never writes (a cached key costs a hash
    /// and a map look-up, an uncached one an LMDB read), so a transport may call it on a
    /// thread that must not block, then call `scoped_request` elsewhere for the refusal and
    /// its audit entry.
    pub fn scoped_if_valid(&self, api_key: &str, request_id: Option<&str>) -> Option<Handle> {
        self.inner.state.check_process().ok()?;
        let request_id = request_id.map(Arc::from);
        if self.inner.state.is_admin_key(api_key) {
            return Some(self.root().with_request(request_id));
        }
        let parsed = auth::parse_key(api_key).ok()?;
        let resolved = self.inner.state.authenticate_at(&parsed).ok()?;
        Some(self.handle(Some((parsed, resolved.into())), request_id))
    }

    /// Records a request refused by a transport before it had a handle (e.g. no
    /// `Authorization` header) in the instance audit log.
    pub fn record_unauthenticated(&self, action: &str, error: &Error, request_id: Option<&str>) {
        self.inner.state.audit_unauthenticated(None, action, error, request_id);
    }

    /// Commits pending audit entries and removes those past the retention setting now (the
    /// background worker does this on its own). Returns how many were removed.
    pub fn audit_maintenance(&self) -> Result<u64> {
        self.inner.state.audit_maintenance()
    }

    /// Sets the key that authenticates as root (the server's admin key). Only its hash is kept.
    pub fn set_admin_key(&self, key: &str) -> Result<()> {
        if key.trim().is_empty() {
            return Err(Error::invalid("admin_key", "must not be empty"));
        }
        let hash = auth::hash_secret(key.as_bytes());
        self.inner.state.catalog_write(|w, t| Ok(t.meta.put(w, "admin_key_sha256", &hash)?))?;
        self.inner.state.set_admin_hash(hash);
        Ok(())
    }

    /// Whether an admin key has been set.
    pub fn has_admin_key(&self) -> bool {
        self.inner.state.has_admin_key()
    }

    /// Generates a new admin key, stores its hash, and returns the text (shown once).
    pub fn generate_admin_key(&self) -> Result<String> {
        let key = auth::generate_key()?;
        self.set_admin_key(&key.text)?;
        Ok(key.text)
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.inner.state.dir
    }

    /// Runs pending purges (and their compaction) now, on this thread. Returns how many
    /// namespaces were purged. The background worker does the same on its own.
    pub fn run_pending_purges(&self) -> Result<usize> {
        purge::run_pending(&self.inner)
    }

    /// Goes on with unfinished key rotations now, on this thread; returns how many
    /// environments were rewritten. The background worker does the same on its own.
    pub fn run_key_rotations(&self) -> Result<usize> {
        self.inner.run_rotations()
    }

    /// Fault injection for tests: key rotations stop as a crash would, once an environment's
    /// new file is complete and recorded, before it replaces the old one (that environment
    /// is left closed). Not for production use.
    #[doc(hidden)]
    pub fn stop_key_rotations_after_staging(&self) {
        self.inner.stop_rotations_after_staging.store(true, Ordering::SeqCst);
    }

    /// Runs one bounded decay/TTL sweep over every namespace now; returns memories removed.
    pub fn sweep_now(&self) -> Result<u64> {
        sweep::sweep_all(&self.inner, usize::MAX, None)
    }

    /// Data environments open now (shared shards included): bounded by
    /// [`Options::max_open_environments`] plus the shards. For tests and benchmarks.
    #[doc(hidden)]
    pub fn open_environments(&self) -> usize {
        self.inner.state.open_env_count()
    }

    /// Group-commit counters since the engine opened, of the catalog and of the data
    /// environments open now (benchmarks print the writes per commit and syncs per second
    /// they give).
    pub fn commit_stats(&self) -> crate::store::CommitStats {
        self.inner.state.commit_stats()
    }

    /// Fault injection for tests: the next `n` catalog transactions fail at commit (their
    /// changes are dropped), as on a full disk. Not for production use.
    #[doc(hidden)]
    pub fn fail_next_catalog_commits(&self, n: u32) {
        self.inner.state.catalog.fail_next_commits(n);
    }

    /// Number of namespaces whose deletion is still being purged.
    pub fn pending_purges(&self) -> Result<u64> {
        self.inner.state.catalog.read(|r, t| Ok(t.purges.len(r)?))
    }
}
