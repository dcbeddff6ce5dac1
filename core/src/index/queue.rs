//! The queue of namespaces with index work to do.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;

use crate::datastore::{NamespaceId, NamespaceStats};
use crate::records::NamespaceRecord;

/// A namespace waiting for approximate-index work.
#[derive(Debug, Clone)]
pub(super) struct PendingIndex {
    pub rec: NamespaceRecord,
    pub last_write: Instant,
}

/// Namespaces with index work to do. A namespace is indexed once it has `threshold` memories.
pub(super) struct IndexQueue {
    pending: Mutex<HashMap<NamespaceId, PendingIndex>>,
    threshold: usize,
}

impl IndexQueue {
    pub(super) fn new(threshold: usize) -> Self {
        IndexQueue { pending: Mutex::default(), threshold }
    }

    /// Queues `rec` (a write to it moves its last write to now).
    pub(super) fn push(&self, rec: &NamespaceRecord, wrote: bool) {
        let now = Instant::now();
        self.pending
            .lock()
            .entry(rec.id)
            .and_modify(|p| {
                if wrote {
                    p.last_write = now;
                }
            })
            .or_insert_with(|| PendingIndex { rec: rec.clone(), last_write: now });
    }

    /// Whether a namespace that has `stats` has index work to do.
    pub(super) fn needs_work(&self, stats: &NamespaceStats) -> bool {
        if stats.indexed_until > 0 {
            stats.next_slot > stats.indexed_until || stats.refile > 0
        } else {
            stats.memory_count >= self.threshold as u64
        }
    }

    /// What is queued now.
    pub(super) fn snapshot(&self) -> Vec<PendingIndex> {
        self.pending.lock().values().cloned().collect()
    }

    /// `p` is done, unless a write since its snapshot queued it again.
    pub(super) fn done(&self, p: &PendingIndex) {
        let mut pending = self.pending.lock();
        if pending.get(&p.rec.id).is_some_and(|q| q.last_write == p.last_write) {
            pending.remove(&p.rec.id);
        }
    }

    /// The namespace is gone.
    pub(super) fn remove(&self, ns: NamespaceId) {
        self.pending.lock().remove(&ns);
    }
}
