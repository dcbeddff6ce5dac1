//! Snapshots and the manifest: the owner stores a snapshot, moves the manifest to it by
//! compare-and-swap, then deletes the previous snapshot and the log below it, never a fence.
//! A manifest moved by a newer owner stops this one before anything is deleted.

use std::collections::BTreeSet;

use super::objects::ManifestState;
use super::{LogError, Manifest, NamespaceLog};

/// What a snapshot published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The manifest's new `log_from`.
    pub log_from: u64,
    /// Log objects deleted (below `log_from`, fences kept).
    pub deleted: usize,
}

/// The owner's hold on the manifest: publishes snapshots and deletes the log they cover.
pub struct Checkpointer {
    pub(super) log: NamespaceLog,
    pub(super) epoch: i64,
    pub(super) node: String,
    pub(super) state: ManifestState,
    /// Log positions known to hold fences (never deleted).
    pub(super) fences: BTreeSet<u64>,
    /// Every position from here on was read at takeover or written by this owner: those not in
    /// `fences` hold writes.
    pub(super) known_from: u64,
}

impl Checkpointer {
    /// The manifest's `log_from`: where loading reads the log from.
    pub fn log_from(&self) -> u64 {
        self.state.manifest.log_from
    }

    /// The manifest as this owner last wrote it.
    pub fn manifest(&self) -> &Manifest {
        &self.state.manifest
    }

    /// Stores `snapshot` (the namespace after every write below log position `log_from`) and
    /// moves the manifest to it with a compare-and-swap, then deletes the previous snapshot and
    /// the log below `log_from` (fences kept). `Fenced` if a newer owner moved the manifest:
    /// nothing is deleted then.
    pub async fn publish(
        &mut self,
        log_from: u64,
        snapshot: Vec<u8>,
    ) -> Result<Published, LogError> {
        if log_from <= self.state.manifest.log_from {
            return Ok(Published { log_from: self.state.manifest.log_from, deleted: 0 });
        }
        let name = self.log.put_snapshot(log_from, self.epoch, snapshot).await?;
        let next = Manifest {
            epoch: self.epoch,
            writer: self.node.clone(),
            snapshot: Some(name.clone()),
            log_from,
        };
        let state = match self.log.swap_manifest(&next, Some(&self.state.version)).await {
            Ok(state) => state,
            Err(e) => {
                let _ = self.log.delete_snapshot(&name).await;
                return Err(e);
            }
        };
        let previous = std::mem::replace(&mut self.state, state);
        if let Some(old) = previous.manifest.snapshot.filter(|old| *old != name) {
            let _ = self.log.delete_snapshot(&old).await;
        }
        let mut deleted = 0;
        for seq in self.log.positions_below(log_from).await? {
            if self.fences.contains(&seq) {
                continue;
            }
            if seq < self.known_from {
                // Left by an earlier owner (a fence, or garbage of one that died mid-way).
                match self.log.read_entry(seq).await {
                    Ok(e) if e.records.is_empty() => {
                        self.fences.insert(seq);
                        continue;
                    }
                    Ok(_) => {}
                    Err(_) => continue,
                }
            }
            if self.log.delete_entry(seq).await.is_ok() {
                deleted += 1;
            }
        }
        Ok(Published { log_from, deleted })
    }
}
