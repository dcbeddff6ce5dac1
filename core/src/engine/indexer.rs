//! The engine's side of the approximate index: the background indexer thread, and
//! [`Engine::build_vector_indexes`] (what the index needs of the engine, its `IndexHost`, is
//! the shared state's: see `state::index_host`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Engine, EngineInner};
use crate::error::Result;

/// Starts the index maintenance thread. It holds only a weak reference and ends when the
/// engine is closing (woken by an unpark then).
pub(crate) fn spawn(inner: &Arc<EngineInner>) -> Option<std::thread::JoinHandle<()>> {
    let weak: Weak<EngineInner> = Arc::downgrade(inner);
    let spawned = std::thread::Builder::new().name("memsilo-indexer".into()).spawn(move || loop {
        {
            let Some(inner) = weak.upgrade() else { return };
            if inner.state.stopping() {
                return;
            }
            if let Err(e) = inner.state.indexes.maintain(&*inner.state, &inner.state.vectors, false)
            {
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
        self.inner.state.indexes.maintain(&*self.inner.state, &self.inner.state.vectors, true)
    }
}
