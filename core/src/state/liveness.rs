//! Which namespaces are dead: deleted while this process runs. The one owner of that set;
//! a namespace is marked by its deletion (its retirement) or by the purge that finds its job
//! after a restart, and never comes back.

use std::collections::HashSet;

use parking_lot::RwLock;

use crate::datastore::NamespaceId;

/// Namespaces deleted while this process runs.
#[derive(Default)]
pub(super) struct DeadNamespaces(RwLock<HashSet<NamespaceId>>);

impl DeadNamespaces {
    /// Whether namespace `id` has been deleted.
    pub(super) fn is_dead(&self, id: NamespaceId) -> bool {
        self.0.read().contains(&id)
    }

    /// Whether no namespace has been deleted.
    pub(super) fn is_empty(&self) -> bool {
        self.0.read().is_empty()
    }

    /// Marks namespace `id` deleted, for good.
    pub(super) fn mark_dead(&self, id: NamespaceId) {
        self.0.write().insert(id);
    }
}
