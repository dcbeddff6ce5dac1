//! The engine: a data directory, its LMDB environments, the background purger, and the
//! handles through which every operation passes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::auth::{self, ParsedKey, Principal};
use crate::catalog::CatalogTables;
use crate::clock::{Clock, SystemClock};
use crate::datastore::{DataTables, EnvLocation};
use crate::embed::{Embedder, ModelEmbedder};
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::index::VectorCache;
use crate::keyring::KeyProvider;
use crate::keys::Authed;
use crate::quota::{ComputeGate, RateLimiter, StorageUsage};
use crate::store::Store;

mod audit;
mod data;
mod encryption;
mod indexer;
#[cfg(test)]
mod namespace_tests;
mod purge;
mod rotation;
mod sweep;
mod table_bytes;
mod tenant;
mod tenant_keys;

/// How an engine is opened.
#[derive(Clone)]
pub struct Options {
    /// Source of time (tests inject a [`crate::ManualClock`]).
    pub clock: Arc<dyn Clock>,
    /// Embedder for text given without a vector, in namespaces that have no text vectors yet
    /// (a namespace keeps the embedder of its first one). Default: the `MEMSILO_EMBEDDER`
    /// setting, else the potion-base-8M static model, found or fetched on first use (see
    /// [`ModelEmbedder`]).
    pub embedder: Arc<dyn Embedder>,
    /// Number of shared environments `logical` namespaces are spread over.
    pub shards: u32,
    /// Run purges and decay sweeps on a background thread (tests may drive them by hand).
    pub background: bool,
    /// Namespaces with at least this many vectors get an approximate index.
    pub ann_threshold: usize,
    /// Bytes of in-memory vector copies kept across namespaces; past it the least recently
    /// used copies are dropped (and reloaded from disk by their next recall).
    pub vector_cache_bytes: usize,
    /// How long a heavy operation (recall, embedding, batch store) waits for a free slot of
    /// its tenant's `compute_quota_cores` before it is refused with `rate_limited`.
    pub compute_wait: std::time::Duration,
    /// Days audit entries are kept (`None`: forever). Older entries are removed by the
    /// background worker; each chain keeps the last removed entry's hash as its anchor.
    pub audit_retention_days: Option<u32>,
    /// Environments of their own (`hybrid` tenants, `physical` namespaces) kept open at once;
    /// past it the least recently used idle one is closed (and opened again by its next use),
    /// so memory maps and file descriptors stay bounded however many namespaces exist.
    pub max_open_environments: usize,
    /// Where encryption keys are kept: a keyring directory (created if missing; refused
    /// inside the data directory), or `env:` for `MEMSILO_KEY_<ID>` variables (see
    /// [`crate::keyring`]). Needed for tenants with their own `encryption_key_id`. Default:
    /// the `MEMSILO_KEYRING` setting, else none.
    pub keyring: Option<PathBuf>,
    /// A key provider of the application's own (a cloud KMS, say); when set, `keyring` is
    /// not used.
    pub key_provider: Option<Arc<dyn KeyProvider>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: Arc::new(SystemClock),
            embedder: Arc::new(ModelEmbedder::from_env()),
            shards: 4,
            background: true,
            ann_threshold: 20_000,
            vector_cache_bytes: 2 << 30,
            compute_wait: std::time::Duration::from_secs(2),
            audit_retention_days: None,
            max_open_environments: 256,
            keyring: std::env::var_os("MEMSILO_KEYRING")
                .filter(|v| !v.to_string_lossy().trim().is_empty())
                .map(PathBuf::from),
            key_provider: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("clock", &self.clock)
            .field("embedder", &self.embedder.name())
            .field("shards", &self.shards)
            .field("background", &self.background)
            .field("ann_threshold", &self.ann_threshold)
            .field("vector_cache_bytes", &self.vector_cache_bytes)
            .field("compute_wait", &self.compute_wait)
            .field("audit_retention_days", &self.audit_retention_days)
            .field("max_open_environments", &self.max_open_environments)
            .field("keyring", &self.keyring)
            .field("key_provider", &self.key_provider.as_ref().map(|p| p.describe()))
            .finish()
    }
}

struct CachedKey {
    secret_hash: [u8; 32],
    authed: Arc<Authed>,
}

/// The cached key resolutions a catalog write can change (see
/// [`EngineInner::catalog_write_affecting`]). A write that names too little would let a
/// withdrawn key in, so anything not listed here uses [`Affects::AllKeys`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Affects<'a> {
    /// No key resolution: a new namespace, key or purge job, a policy, the cursor secret.
    NoKeys,
    /// The resolution of this key id (its record revoked, rotated or deleted).
    Key(&'a str),
    /// The resolutions of keys granted this namespace (deleted: their grant is dead).
    Namespace(&'a str),
    /// Every resolution (tenants, members, the admin key).
    AllKeys,
}

impl Affects<'_> {
    fn covers(&self, key_id: &str, authed: &Authed) -> bool {
        match self {
            Affects::NoKeys => false,
            Affects::Key(id) => *id == key_id,
            Affects::Namespace(name) => match &authed.principal {
                Principal::Scoped { grants, .. } => grants.iter().any(|g| g.namespace == *name),
                Principal::Member { .. } | Principal::Root => false,
            },
            Affects::AllKeys => true,
        }
    }
}

/// An open data environment and when it was last used.
struct OpenEnv {
    store: Arc<Store<DataTables>>,
    /// Tick of its last use (of `EngineInner::env_clock`).
    used: AtomicU64,
}

pub(crate) struct EngineInner {
    pub dir: PathBuf,
    pub pid: u32,
    pub options: Options,
    pub catalog: Arc<Store<CatalogTables>>,
    /// Bumped by every catalog write that changes key resolutions (under `key_cache`'s write
    /// lock, when it drops the entries it changes): a resolution read before such a write is
    /// not cached after it.
    generation: AtomicU64,
    data_envs: RwLock<HashMap<EnvLocation, OpenEnv>>,
    /// Ticks of the environments' use (see [`OpenEnv::used`]).
    env_clock: AtomicU64,
    key_cache: RwLock<HashMap<String, CachedKey>>,
    pub usage: StorageUsage,
    pub limiter: RateLimiter,
    pub compute: ComputeGate,
    pub vectors: VectorCache,
    /// Approximate indexes: their environments and work queue (see [`crate::index`]).
    pub indexes: crate::index::Indexes,
    pub graphs: crate::graph::GraphCache,
    /// The audit log (see [`crate::audit`]).
    pub audit: crate::audit::AuditLog,
    /// Wakes the background worker (a purge was queued, or the engine is closing).
    pub wake: (Mutex<bool>, Condvar),
    /// Set when the last [`Engine`] or [`Handle`] is dropped: the background threads end.
    pub stopping: AtomicBool,
    /// SHA-256 of the admin key, mirrored from the catalog.
    admin_hash: RwLock<Option<[u8; 32]>>,
    /// Namespaces deleted while this process runs (see `engine::purge`).
    pub dead: RwLock<std::collections::HashSet<u64>>,
    /// Held by a deletion from its catalog commit until it has read what its namespaces
    /// held, and by the purge while it lists its jobs (see [`EngineInner::retire_namespaces`]).
    pub purge_gate: Mutex<()>,
    /// Held by one run of the queued purges at a time: the background worker and an explicit
    /// `run_pending_purges` never destroy or compact the same environment at once.
    pub purge_run: Mutex<()>,
    /// Name after which the background decay sweep goes on (see [`sweep::sweep_all`]).
    pub sweep_from: Mutex<String>,
    /// Where encryption keys come from ([`Options::key_provider`] or [`Options::keyring`]);
    /// `None` when neither is configured.
    pub keys: Option<Arc<dyn KeyProvider>>,
    /// Set by [`Engine::stop_key_rotations_after_staging`] (tests).
    pub stop_rotations_after_staging: AtomicBool,
    /// Key of the list cursors' MACs (see [`crate::cursor`]), read or made on first use.
    pub cursor_key: crate::cursor::CursorKey,
    /// The key of the catalog and the shared shards (see [`crate::encryption`]); `None` when
    /// the data directory is plain.
    pub instance_key: Option<crate::encryption::EnvKey>,
    /// The exclusive lock on `DIR/LOCK`, released when the engine is dropped.
    _dir_lock: std::fs::File,
}

/// Takes the data directory's exclusive lock: one process per directory. LMDB itself would
/// allow several, but the engine keeps per-process state that another process's writes
/// would make stale (vector caches, storage usage, key caches), and a purge's compaction
/// replaces files another process still has mapped, losing its later writes. A second
/// process gets `conflict`; it should talk to the first one's server instead.
pub(crate) fn lock_directory(dir: &Path) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = dir.join("LOCK");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    if !try_lock_exclusive(&file)? {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        let by = if holder.is_empty() { String::new() } else { format!(" (pid {holder})") };
        return Err(Error::Conflict(format!(
            "data directory {} is open in another process{by}; one process may open it at a time \
             (connect to that process's server instead)",
            dir.display()
        )));
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

#[cfg(unix)]
fn try_lock_exclusive(file: &std::fs::File) -> Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor this function borrows; no memory is shared.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err.into())
    }
}

#[cfg(not(unix))]
fn try_lock_exclusive(_file: &std::fs::File) -> Result<bool> {
    Ok(true)
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<Life>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Weak<Life>>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

/// An open data directory. Cheap to clone; two `open` calls on one path in one process share
/// one engine (LMDB allows one environment per file per process).
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
    life: Arc<Life>,
}

impl Engine {
    /// The engine a handle was made by (see [`Handle::engine`]).
    pub(crate) fn from_parts(inner: Arc<EngineInner>, life: Arc<Life>) -> Engine {
        Engine { inner, life }
    }
}

/// What keeps an engine open for its users: every [`Engine`] and [`Handle`] holds it, the
/// background threads do not (they hold a weak reference to the engine and take a strong one
/// for each round of work). Dropping the last one stops those threads and waits for them, so
/// a purge or index build under way finishes first and nothing works on the directory once
/// the drop returns (its lock is released then too).
pub(crate) struct Life {
    inner: Arc<EngineInner>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Drop for Life {
    fn drop(&mut self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.wake_worker();
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
        f.debug_struct("Engine").field("dir", &self.inner.dir).finish_non_exhaustive()
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
            life.inner.check_process()?;
            return Ok(Engine { inner: life.inner.clone(), life });
        }
        let keys = match (&options.key_provider, &options.keyring) {
            (Some(provider), _) => Some(provider.clone()),
            (None, Some(setting)) => Some(crate::keyring::provider_for(setting, &dir)?),
            (None, None) => None,
        };
        let dir_lock = lock_directory(&dir)?;
        let instance_key = crate::format::check_or_mark(&dir, keys.as_deref())?
            .map(crate::encryption::EnvKey::instance);
        let catalog = Arc::new(crate::encryption::open_store(
            &dir.join("catalog"),
            1 << 30,
            instance_key.as_ref(),
        )?);
        crate::audit::adopt_old_log(&dir, &catalog)?;
        let inner = Arc::new(EngineInner {
            dir: dir.clone(),
            pid: std::process::id(),
            catalog,
            generation: AtomicU64::new(1),
            data_envs: RwLock::default(),
            env_clock: AtomicU64::new(0),
            key_cache: RwLock::default(),
            usage: StorageUsage::default(),
            limiter: RateLimiter::default(),
            compute: ComputeGate::default(),
            vectors: VectorCache::new(options.vector_cache_bytes),
            indexes: crate::index::Indexes::new(
                dir.join("indexes"),
                options.ann_threshold,
                keys.is_some(),
            ),
            graphs: crate::graph::GraphCache::default(),
            audit: crate::audit::AuditLog::default(),
            wake: (Mutex::new(false), Condvar::new()),
            stopping: AtomicBool::new(false),
            dead: RwLock::default(),
            purge_gate: Mutex::new(()),
            purge_run: Mutex::new(()),
            sweep_from: Mutex::default(),
            cursor_key: crate::cursor::CursorKey::default(),
            stop_rotations_after_staging: AtomicBool::new(false),
            keys,
            instance_key,
            _dir_lock: dir_lock,
            admin_hash: RwLock::default(),
            options,
        });
        inner.usage.attach(Arc::downgrade(&inner));
        // Before anything opens a data environment: a rotation's complete new files that a
        // crash left beside the old ones are moved into place.
        inner.settle_staged_rotations()?;
        *inner.admin_hash.write() = inner.catalog.read(|r, t| {
            Ok(t.meta.get(r, "admin_key_sha256")?.and_then(|b| <[u8; 32]>::try_from(b).ok()))
        })?;
        let life = Arc::new(Life { inner: inner.clone(), workers: Mutex::default() });
        reg.insert(dir, Arc::downgrade(&life));
        drop(reg);
        if inner.options.background {
            let mut workers = purge::spawn_worker(&inner);
            workers.extend(indexer::spawn(&inner));
            *life.workers.lock() = workers;
        }
        Ok(Engine { inner, life })
    }

    /// The embedded owner: may do anything.
    pub fn root(&self) -> Handle {
        Handle::new(self.inner.clone(), self.life.clone(), None, None)
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
        self.inner.check_process()?;
        let request_id = request_id.map(Arc::from);
        if self.inner.is_admin_key(api_key) {
            return Ok(self.root().with_request(request_id));
        }
        let parsed = match auth::parse_key(api_key) {
            Ok(p) => p,
            Err(e) => {
                self.inner.audit_unauthenticated(None, "authenticate", &e, request_id.as_deref());
                return Err(e);
            }
        };
        if let Err(e) = self.inner.authenticate(&parsed) {
            if crate::audit::is_refusal(e.code()) {
                self.inner.audit_unauthenticated(
                    Some(&parsed),
                    "authenticate",
                    &e,
                    request_id.as_deref(),
                );
            }
            return Err(e);
        }
        Ok(Handle::new(self.inner.clone(), self.life.clone(), Some(parsed), request_id))
    }

    /// [`Engine::scoped_request`] for a key that is let in: its handle, or `None` for a key
    /// that would be refused. Records nothing and never writes (a cached key costs a hash
    /// and a map look-up, an uncached one an LMDB read), so a transport may call it on a
    /// thread that must not block, then call `scoped_request` elsewhere for the refusal and
    /// its audit entry.
    pub fn scoped_if_valid(&self, api_key: &str, request_id: Option<&str>) -> Option<Handle> {
        self.inner.check_process().ok()?;
        let request_id = request_id.map(Arc::from);
        if self.inner.is_admin_key(api_key) {
            return Some(self.root().with_request(request_id));
        }
        let parsed = auth::parse_key(api_key).ok()?;
        self.inner.authenticate(&parsed).ok()?;
        Some(Handle::new(self.inner.clone(), self.life.clone(), Some(parsed), request_id))
    }

    /// Records a request refused by a transport before it had a handle (e.g. no
    /// `Authorization` header) in the instance audit log.
    pub fn record_unauthenticated(&self, action: &str, error: &Error, request_id: Option<&str>) {
        self.inner.audit_unauthenticated(None, action, error, request_id);
    }

    /// Commits pending audit entries and removes those past the retention setting now (the
    /// background worker does this on its own). Returns how many were removed.
    pub fn audit_maintenance(&self) -> Result<u64> {
        self.inner.audit_maintenance()
    }

    /// Sets the key that authenticates as root (the server's admin key). Only its hash is kept.
    pub fn set_admin_key(&self, key: &str) -> Result<()> {
        if key.trim().is_empty() {
            return Err(Error::invalid("admin_key", "must not be empty"));
        }
        let hash = auth::hash_secret(key.as_bytes());
        self.inner.catalog_write(|w, t| Ok(t.meta.put(w, "admin_key_sha256", &hash)?))?;
        *self.inner.admin_hash.write() = Some(hash);
        Ok(())
    }

    /// Whether an admin key has been set.
    pub fn has_admin_key(&self) -> bool {
        self.inner.admin_hash.read().is_some()
    }

    /// Generates a new admin key, stores its hash, and returns the text (shown once).
    pub fn generate_admin_key(&self) -> Result<String> {
        let key = auth::generate_key()?;
        self.set_admin_key(&key.text)?;
        Ok(key.text)
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
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
        self.inner.open_env_count()
    }

    /// Group-commit counters since the engine opened, of the catalog and of the data
    /// environments open now (benchmarks print the writes per commit and syncs per second
    /// they give).
    pub fn commit_stats(&self) -> crate::store::CommitStats {
        let data = self.inner.data_envs.read();
        data.values().fold(self.inner.catalog.stats(), |sum, e| sum + e.store.stats())
    }

    /// Fault injection for tests: the next `n` catalog transactions fail at commit (their
    /// changes are dropped), as on a full disk. Not for production use.
    #[doc(hidden)]
    pub fn fail_next_catalog_commits(&self, n: u32) {
        self.inner.catalog.fail_next_commits(n);
    }

    /// Number of namespaces whose deletion is still being purged.
    pub fn pending_purges(&self) -> Result<u64> {
        self.inner.catalog.read(|r, t| Ok(t.purges.len(r)?))
    }
}

impl EngineInner {
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

    /// A write to the catalog; invalidates every cached key resolution.
    pub(crate) fn catalog_write<R: Send>(
        &self,
        f: impl FnMut(&mut heed3::RwTxn<'_>, &CatalogTables) -> Result<R> + Send,
    ) -> Result<R> {
        self.catalog_write_affecting(Affects::AllKeys, f)
    }

    /// A write to the catalog that changes at most the key resolutions `affects` names:
    /// those are dropped from the cache once it is committed (before it returns, so the next
    /// request resolves the key again), the others stay.
    pub(crate) fn catalog_write_affecting<R: Send>(
        &self,
        affects: Affects<'_>,
        f: impl FnMut(&mut heed3::RwTxn<'_>, &CatalogTables) -> Result<R> + Send,
    ) -> Result<R> {
        let r = self.catalog.write(f);
        self.forget_keys(affects);
        r
    }

    /// Drops the cached key resolutions `affects` names.
    fn forget_keys(&self, affects: Affects<'_>) {
        if matches!(affects, Affects::NoKeys) {
            return;
        }
        let mut cache = self.key_cache.write();
        self.generation.fetch_add(1, Ordering::SeqCst);
        match affects {
            Affects::AllKeys => cache.clear(),
            Affects::Key(id) => {
                cache.remove(id);
            }
            _ => cache.retain(|id, c| !affects.covers(id, &c.authed)),
        }
    }

    /// Whether key `id`'s resolution is cached (tests of what a write keeps).
    #[cfg(test)]
    pub(crate) fn key_cached(&self, id: &str) -> bool {
        self.key_cache.read().contains_key(id)
    }

    /// The data environment at `loc`, opened on first use. Environments of their own
    /// (hybrid, physical) are closed least recently used first past
    /// [`Options::max_open_environments`]; the shared shards stay open.
    pub(crate) fn data_env(&self, loc: &EnvLocation) -> Result<Arc<Store<DataTables>>> {
        self.data_env_with(loc, None)
    }

    /// The data environment of namespace `rec` (see [`EngineInner::data_env`]).
    pub(crate) fn data_env_of(
        &self,
        rec: &crate::namespace::NamespaceRecord,
    ) -> Result<Arc<Store<DataTables>>> {
        self.data_env_with(&rec.location, rec.tenant_id.as_deref())
    }

    /// [`EngineInner::data_env`]; `tenant`: the tenant of a `physical` namespace, whose key
    /// its environment is created with (see [`EngineInner::key_for`]).
    pub(crate) fn data_env_with(
        &self,
        loc: &EnvLocation,
        tenant: Option<&str>,
    ) -> Result<Arc<Store<DataTables>>> {
        if let Some(e) = self.data_envs.read().get(loc) {
            self.touch(loc, e);
            return Ok(e.store.clone());
        }
        // Opening one may run a transaction: the turn comes first (see `storage::Turn`).
        let _turn = self.turn();
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

    /// The turn of encrypted environments when any may be open (a key provider is set):
    /// taken before a lock that is held while an environment is opened or read, whose
    /// holder could otherwise wait for a turn held by a thread waiting for that lock (see
    /// `storage::Turn`).
    pub(crate) fn turn(&self) -> crate::storage::Turn {
        crate::storage::encrypted_turn(self.keys.is_some())
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

    /// Closes and deletes an environment's files (hybrid/physical purge).
    /// The lock on the open environments is held throughout, so no one opens (and so
    /// creates) the directory again while its files are being deleted.
    pub(crate) fn destroy_data_env(&self, loc: &EnvLocation) -> Result<()> {
        let _turn = self.turn();
        let mut envs = self.data_envs.write();
        if let Some(e) = envs.remove(loc) {
            return e.store.destroy();
        }
        match std::fs::remove_dir_all(loc.dir(&self.dir)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn is_admin_key(&self, text: &str) -> bool {
        let stored = *self.admin_hash.read();
        stored.is_some_and(|h| auth::hashes_equal(&h, &auth::hash_secret(text.as_bytes())))
    }

    /// Resolves a parsed key to its principal, from the cache unless a catalog write changed
    /// it since it was cached (see [`EngineInner::catalog_write_affecting`]).
    pub(crate) fn authenticate(&self, key: &ParsedKey) -> Result<Arc<Authed>> {
        let generation = self.generation.load(Ordering::SeqCst);
        let now = self.now_micros();
        if let Some(c) = self.key_cache.read().get(&key.id) {
            if auth::hashes_equal(&c.secret_hash, &key.secret_hash) {
                return match c.authed.expires_at {
                    Some(exp) if exp <= now => Err(Error::Unauthorized("API key expired".into())),
                    _ => Ok(c.authed.clone()),
                };
            }
        }
        let authed = Arc::new(crate::keys::resolve_key(&self.catalog, key, now)?);
        let mut cache = self.key_cache.write();
        // A write that changed resolutions committed while this one was read: it may be
        // stale, so it is not cached (the next request reads it again).
        if self.generation.load(Ordering::SeqCst) != generation {
            return Ok(authed);
        }
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(
            key.id.clone(),
            CachedKey { secret_hash: key.secret_hash, authed: authed.clone() },
        );
        Ok(authed)
    }

    /// Wakes the background worker.
    pub(crate) fn wake_worker(&self) {
        let (lock, cv) = &self.wake;
        *lock.lock() = true;
        cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Access;
    use crate::keys::CreateKey;
    use crate::namespace::NamespaceOptions;

    /// A catalog write drops only the cached key resolutions it changes: new namespaces and
    /// keys, a policy or another key's revocation keep a key's resolution; its own rotation
    /// or revocation, or the deletion of a namespace it is granted, drop it.
    #[test]
    fn catalog_writes_drop_only_the_key_resolutions_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let engine =
            Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
        let root = engine.root();
        for ns in ["a", "b"] {
            root.create_namespace(ns, NamespaceOptions::default()).unwrap();
        }
        let mint = |name: &str, ns: &[&str]| {
            root.create_key(CreateKey::namespaces(name, ns.iter().map(|n| (*n, Access::Write))))
                .unwrap()
        };
        let on_a = mint("on-a", &["a"]);
        let on_b = mint("on-b", &["b"]);
        let other = mint("other", &["a"]);
        let cached = |k: &crate::keys::CreatedKey| engine.inner.key_cached(&k.info.id);
        for k in [&on_a, &on_b, &other] {
            engine.scoped(&k.key).unwrap().whoami().unwrap();
            assert!(cached(k));
        }

        root.create_namespace("c", NamespaceOptions::default()).unwrap();
        mint("new", &["c"]);
        root.set_memory_policy("a", crate::namespace::DecayPolicy::default()).unwrap();
        root.revoke_key(&other.info.id).unwrap();
        assert!(cached(&on_a) && cached(&on_b), "kept across writes that do not change them");
        assert!(!cached(&other), "a revoked key's resolution is dropped");
        assert!(engine.scoped(&other.key).is_err());

        root.delete_namespace("b").unwrap();
        assert!(cached(&on_a));
        assert!(!cached(&on_b), "a key granted a deleted namespace is resolved again");

        let rotated = root.rotate_key(&on_a.info.id).unwrap();
        assert!(!cached(&on_a));
        assert!(engine.scoped(&on_a.key).is_err());
        assert!(engine.scoped(&rotated.key).is_ok());
    }
}
