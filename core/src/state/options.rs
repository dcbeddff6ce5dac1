//! How an engine is opened: [`Options`] and their defaults.

use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::embed::{Embedder, ModelEmbedder};
use crate::keyring::KeyProvider;

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
