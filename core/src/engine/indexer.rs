//! The engine's side of the approximate index: what the index needs of the engine
//! ([`IndexHost`]), the background indexer thread, and [`Engine::build_vector_indexes`].

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Engine, EngineInner};
use crate::datastore::{DataTables, NamespaceId};
use crate::encryption::EnvKey;
use crate::error::Result;
use crate::index::IndexHost;
use crate::records::NamespaceRecord;
use crate::store::Store;

impl IndexHost for EngineInner {
    fn data_env(&self, rec: &NamespaceRecord) -> Result<Arc<Store<DataTables>>> {
        self.data_env_of(rec)
    }

    fn is_dead(&self, ns: NamespaceId) -> bool {
        EngineInner::is_dead(self, ns)
    }

    fn data_key(&self, rec: &NamespaceRecord) -> Result<Option<EnvKey>> {
        self.key_for(&rec.location, rec.tenant_id.as_deref())
    }
}

/// Starts the index maintenance thread. It holds only a weak reference and ends when the
/// engine is closing (woken by an unpark then).
pub(crate) fn spawn(inner: &Arc<EngineInner>) -> Option<std::thread::JoinHandle<()>> {
    let weak: Weak<EngineInner> = Arc::downgrade(inner);
    let spawned = std::thread::Builder::new().name("memsilo-indexer".into()).spawn(move || loop {
        {
            let Some(inner) = weak.upgrade() else { return };
            if inner.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            if let Err(e) = inner.indexes.maintain(&*inner, &inner.vectors, false) {
                tracing::warn!("vector index maintenance failed, will retry: {e}");
            }
        }
        std::thread::park_timeout(Duration::from_millis(250));
    });
    spawned.map_err(|e| tracing::error!("could not start the vector indexer: {e}")).ok()
}

impl Engine {
    /// Brings every queued approximate vector index up to date now, on this thread, instead
    /// of waiting for the background indexer (which batches: a namespace's newest memories are
    /// indexed once enough have arrived or writes pause). Returns how many index chunks were
    /// built. Recall never depends on this: memories not yet indexed are searched exactly.
    pub fn build_vector_indexes(&self) -> Result<u64> {
        self.inner.indexes.maintain(&*self.inner, &self.inner.vectors, true)
    }
}
