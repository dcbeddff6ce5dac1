//! Counters of an environment's group commits.

use std::sync::atomic::Ordering;

use super::{Store, Tables};

/// Counters of group commits (see `Engine::commit_stats`): under load, many writes share
/// a commit, and each group's sync runs while the next group commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Writes committed (each the change of one call: a store, a namespace's creation...).
    pub writes: u64,
    /// Commits that wrote pages: each syncs the data file once.
    pub commits: u64,
    /// Disk syncs: one per commit (its data), plus the sync of the environment that makes a
    /// commit's meta page durable (made for each group while the next one commits).
    pub syncs: u64,
}

impl std::ops::Add for CommitStats {
    type Output = CommitStats;

    fn add(self, o: CommitStats) -> CommitStats {
        CommitStats {
            writes: self.writes + o.writes,
            commits: self.commits + o.commits,
            syncs: self.syncs + o.syncs,
        }
    }
}

impl std::ops::Sub for CommitStats {
    type Output = CommitStats;

    fn sub(self, o: CommitStats) -> CommitStats {
        CommitStats {
            writes: self.writes.saturating_sub(o.writes),
            commits: self.commits.saturating_sub(o.commits),
            syncs: self.syncs.saturating_sub(o.syncs),
        }
    }
}

impl<T: Tables> Store<T> {
    /// What the environment's group commits have done so far.
    pub(crate) fn stats(&self) -> CommitStats {
        let synced = self.synced_commits.load(Ordering::Relaxed);
        CommitStats {
            writes: self.writes.load(Ordering::Relaxed),
            commits: synced,
            syncs: synced + self.syncs.load(Ordering::Relaxed),
        }
    }

    /// Durable commits made so far.
    #[cfg(test)]
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Writes queued for the next group.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.queue.lock().pending.len()
    }

    /// Syncs made to settle groups so far.
    #[cfg(test)]
    pub(crate) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}
