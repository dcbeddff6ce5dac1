//! Table sizes of a namespace's environment, for benchmarks.

use super::Engine;
use crate::error::{Error, Result};

impl Engine {
    /// Bytes on disk of each table of the environment holding `namespace` (its pages times
    /// the page size; the whole environment's, so of the namespace alone only in `physical`
    /// mode). For benchmarks; not a stable API.
    #[doc(hidden)]
    pub fn table_bytes(&self, namespace: &str) -> Result<Vec<(&'static str, u64)>> {
        let state = &self.inner.state;
        let rec = state
            .catalog
            .read(|r, t| Ok(t.namespaces.get(r, namespace)?))?
            .ok_or_else(|| Error::not_found("namespace", namespace))?;
        state.data_env_of(&rec)?.read(|r, t| t.table_bytes(r))
    }
}
