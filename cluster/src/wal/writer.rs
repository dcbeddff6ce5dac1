//! The log's current owner: takes the log over (manifest claimed, log read, fence written after
//! the last object) and appends one group of writes per object at the next position. Once a
//! put is refused the writer is fenced for good: every later append fails.

use std::collections::BTreeSet;

use super::{Checkpointer, Entry, LogError, NamespaceLog, Record};

/// The log as its current owner holds it.
pub struct Writer {
    log: NamespaceLog,
    epoch: i64,
    node: String,
    next: u64,
    fenced: bool,
}

/// What taking over a log found.
pub struct Takeover {
    /// The writer, positioned after its fence.
    pub writer: Writer,
    /// The manifest's snapshot (export lines, JSON Lines), to load first.
    pub snapshot: Option<Vec<u8>>,
    /// Every write logged after the snapshot, in order, to apply after it.
    pub records: Vec<Record>,
    /// Log objects read.
    pub entries: usize,
    /// What moves the manifest from now on.
    pub checkpointer: Checkpointer,
}

impl Writer {
    /// Takes the log over for `epoch`: moves the manifest to `epoch` (refused if a newer owner
    /// did), reads its snapshot and every entry after it, then writes the fence after the last
    /// one (re-reading if a late write of the previous owner got there first).
    pub async fn take_over(
        log: NamespaceLog,
        epoch: i64,
        node: &str,
    ) -> Result<Takeover, LogError> {
        let manifest = log.claim_manifest(epoch, node).await?;
        let snapshot = match &manifest.manifest.snapshot {
            Some(name) => Some(log.read_snapshot(name).await?),
            None => None,
        };
        let from = manifest.manifest.log_from;
        let mut fences = BTreeSet::new();
        let mut records = Vec::new();
        let mut entries = 0;
        let mut next = from;
        loop {
            for (seq, entry) in log.read_from(next).await? {
                if entry.epoch > epoch {
                    return Err(LogError::Superseded {
                        did: "already wrote this log",
                        theirs: entry.epoch,
                        ours: epoch,
                    });
                }
                next = seq + 1;
                entries += 1;
                if entry.records.is_empty() {
                    fences.insert(seq);
                }
                records.extend(entry.records);
            }
            let fence = Entry { epoch, writer: node.to_owned(), records: Vec::new() };
            match log.put(next, &fence).await {
                Ok(()) => {
                    fences.insert(next);
                    let checkpointer = Checkpointer {
                        log: log.clone(),
                        epoch,
                        node: node.to_owned(),
                        state: manifest,
                        fences,
                        known_from: from,
                    };
                    let writer =
                        Writer { log, epoch, node: node.to_owned(), next: next + 1, fenced: false };
                    return Ok(Takeover { writer, snapshot, records, entries, checkpointer });
                }
                // Someone wrote `next` meanwhile: read it and try after it.
                Err(LogError::Fenced(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Appends one group of writes. After `Fenced` every later append fails too.
    pub async fn append(&mut self, records: Vec<Record>) -> Result<(), LogError> {
        if self.fenced {
            return Err(LogError::Fenced(self.next));
        }
        let entry = Entry { epoch: self.epoch, writer: self.node.clone(), records };
        match self.log.put(self.next, &entry).await {
            Ok(()) => {
                self.next += 1;
                Ok(())
            }
            Err(e @ LogError::Fenced(_)) => {
                self.fenced = true;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// The next sequence number this writer would use.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// This writer's epoch.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }
}
