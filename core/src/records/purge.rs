//! The purge queue's jobs, as the catalog stores them.

use serde::{Deserialize, Serialize};

use crate::datastore::{EnvLocation, NamespaceId};

/// Work left after a deletion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum PurgeJob {
    /// Delete a namespace's rows (or files) and erase them from disk.
    Namespace { ns_id: NamespaceId, location: EnvLocation },
    /// Remove a whole environment (a deleted hybrid tenant's file).
    RemoveEnv { location: EnvLocation },
    /// Destroy an encryption key in the key provider once the data under it is gone (a
    /// deleted tenant's own key): run after every other job of its round.
    DestroyKey { key_id: String },
}
