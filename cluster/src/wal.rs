//! A namespace's write-ahead log on object storage: numbered objects
//! `PREFIX/ns/<hex of the name>/log/<seq, 20 digits>`, each created with a conditional put
//! (create-if-absent). Each object holds one group of writes and the epoch of the owner that
//! wrote it.
//!
//! Fencing needs no lock service: an owner only ever writes the sequence number right after
//! the last one it saw. A new owner replays the log, then claims the next number with a
//! fence object (no writes, its own epoch). From then on an older owner's next put lands on a
//! number that exists and is refused by the store itself (`AlreadyExists`), so two owners
//! never both append. A new owner that loses the race for the fence number to the old owner's
//! last group replays that group too (it may have been acknowledged) and tries the next number.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One logged write: an operation of the API table and its arguments, with every id the
/// engine would otherwise choose at random already filled in (so a replay is the same write).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Operation name (`store_memory`, ...).
    pub op: String,
    /// Its arguments.
    pub args: Value,
}

/// One log object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The owner epoch that wrote it (the etcd revision of its ownership claim).
    pub epoch: i64,
    /// The node that wrote it.
    pub writer: String,
    /// The writes, in order; empty for a fence.
    pub records: Vec<Record>,
}

/// Why an append failed.
#[derive(Debug)]
pub enum AppendError {
    /// Another owner wrote this sequence number: this owner is fenced and must stop.
    Fenced(u64),
    /// The store failed (nothing is known to be written; the caller may retry).
    Store(String),
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppendError::Fenced(seq) => {
                write!(f, "fenced: log position {seq} was written by a newer owner")
            }
            AppendError::Store(e) => write!(f, "object store: {e}"),
        }
    }
}

/// The object-storage layout of one namespace.
#[derive(Clone)]
pub struct NamespaceLog {
    store: Arc<dyn ObjectStore>,
    dir: String,
}

impl NamespaceLog {
    /// The log of namespace `name` under `prefix` in `store`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, name: &str) -> Self {
        let prefix = prefix.trim_matches('/');
        let dir = if prefix.is_empty() {
            format!("ns/{}", crate::control::hex(name.as_bytes()))
        } else {
            format!("{prefix}/ns/{}", crate::control::hex(name.as_bytes()))
        };
        NamespaceLog { store, dir }
    }

    fn entry_path(&self, seq: u64) -> Path {
        Path::from(format!("{}/log/{seq:020}", self.dir))
    }

    /// Every entry from `from` on, in order, with its sequence number.
    pub async fn read_from(&self, from: u64) -> Result<Vec<(u64, Entry)>, String> {
        let prefix = Path::from(format!("{}/log", self.dir));
        let metas: Vec<_> =
            self.store.list(Some(&prefix)).try_collect().await.map_err(|e| e.to_string())?;
        let mut seqs: Vec<u64> = metas
            .iter()
            .filter_map(|m| m.location.filename().and_then(|f| f.parse::<u64>().ok()))
            .filter(|s| *s >= from)
            .collect();
        seqs.sort_unstable();
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let bytes = self
                .store
                .get(&self.entry_path(seq))
                .await
                .map_err(|e| e.to_string())?
                .bytes()
                .await
                .map_err(|e| e.to_string())?;
            let entry: Entry = serde_json::from_slice(&bytes)
                .map_err(|e| format!("log entry {seq} is corrupt: {e}"))?;
            out.push((seq, entry));
        }
        Ok(out)
    }

    /// Creates entry `seq`; refused if it exists.
    pub async fn put(&self, seq: u64, entry: &Entry) -> Result<(), AppendError> {
        let bytes = serde_json::to_vec(entry).map_err(|e| AppendError::Store(e.to_string()))?;
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.store.put_opts(&self.entry_path(seq), PutPayload::from(bytes), options).await {
            Ok(_) => Ok(()),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(AppendError::Fenced(seq)),
            Err(e) => Err(AppendError::Store(e.to_string())),
        }
    }
}

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
    /// Every write logged so far, in order, to apply before serving.
    pub records: Vec<Record>,
    /// Log objects read.
    pub entries: usize,
}

impl Writer {
    /// Takes the log over for `epoch`: reads every entry, then writes the fence after the last
    /// one (re-reading if a late write of the previous owner got there first).
    pub async fn take_over(log: NamespaceLog, epoch: i64, node: &str) -> Result<Takeover, String> {
        let mut records = Vec::new();
        let mut entries = 0;
        let mut next = 0;
        loop {
            for (seq, entry) in log.read_from(next).await? {
                if entry.epoch > epoch {
                    return Err(format!(
                        "a newer owner (epoch {}) already wrote this log; ours is {epoch}",
                        entry.epoch
                    ));
                }
                next = seq + 1;
                entries += 1;
                records.extend(entry.records);
            }
            let fence = Entry { epoch, writer: node.to_owned(), records: Vec::new() };
            match log.put(next, &fence).await {
                Ok(()) => {
                    let writer =
                        Writer { log, epoch, node: node.to_owned(), next: next + 1, fenced: false };
                    return Ok(Takeover { writer, records, entries });
                }
                // Someone wrote `next` meanwhile: read it and try after it.
                Err(AppendError::Fenced(_)) => {}
                Err(AppendError::Store(e)) => return Err(e),
            }
        }
    }

    /// Appends one group of writes. After `Fenced` every later append fails too.
    pub async fn append(&mut self, records: Vec<Record>) -> Result<(), AppendError> {
        if self.fenced {
            return Err(AppendError::Fenced(self.next));
        }
        let entry = Entry { epoch: self.epoch, writer: self.node.clone(), records };
        match self.log.put(self.next, &entry).await {
            Ok(()) => {
                self.next += 1;
                Ok(())
            }
            Err(e @ AppendError::Fenced(_)) => {
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
