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
//!
//! Snapshots: the owner writes the namespace (as `export_namespace` lines) to
//! `PREFIX/ns/<hex>/snapshots/<log position, 20 digits>-<epoch>.jsonl` and then moves the
//! namespace's **manifest** (`PREFIX/ns/<hex>/manifest`) to it with a compare-and-swap (a put
//! conditional on the manifest's entity tag). The manifest names the snapshot and `log_from`, the first
//! log position the snapshot does not hold; loading a namespace = its snapshot + the log from
//! `log_from` on. A new owner first moves the manifest to its own epoch (same CAS), so an older
//! owner can no longer move it: it reads a newer epoch and stops, or its put fails on the changed
//! entity tag. Log objects below `log_from` are then deleted, except **fences**: an owner that was
//! fenced out always has, as its next position, the fence of the owner after it, so keeping
//! fences keeps every stale owner refused even where the log is gone.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One logged write: an operation of the API table and its arguments, with every id the
/// engine would otherwise choose at random already fixed (so a replay is the same write):
/// memory and session ids in the arguments, the ids of what a graph write creates in `ids`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Operation name (`store_memory`, ...).
    pub op: String,
    /// Its arguments.
    pub args: Value,
    /// The ids a graph write (`add_entity`, `add_relation`) gives the rows it creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<memsilo::GraphIds>,
}

impl Record {
    /// A write with nothing fixed beyond its arguments.
    pub fn new(op: &str, args: Value) -> Record {
        Record { op: op.to_owned(), args, ids: None }
    }

    /// Applies the write to the local engine: the first time on the owner, and again on
    /// replay, with the same ids.
    pub fn apply(self, root: &memsilo::Handle) -> memsilo::Result<memsilo::api::Reply> {
        root.with_graph_ids(self.ids).call(&self.op, self.args)
    }
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

impl std::error::Error for AppendError {}

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

/// A namespace's manifest (`DIR/manifest`): where loading starts. Moved only by
/// compare-and-swap, and only by an owner whose epoch is at least the manifest's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// The epoch of the newest owner that moved it.
    pub epoch: i64,
    /// That owner's node.
    pub writer: String,
    /// The snapshot object (path under the namespace's directory), if one was taken.
    pub snapshot: Option<String>,
    /// The first log position the snapshot does not hold (0 without a snapshot).
    pub log_from: u64,
}

/// The manifest as its owner last wrote it, with the version a compare-and-swap needs.
#[derive(Debug, Clone)]
pub struct ManifestState {
    /// Its content.
    pub manifest: Manifest,
    /// Its ETag/version in the store.
    pub version: UpdateVersion,
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

    fn manifest_path(&self) -> Path {
        Path::from(format!("{}/manifest", self.dir))
    }

    /// The log positions stored below `below`, in order (fences and not yet deleted objects).
    pub async fn positions_below(&self, below: u64) -> Result<Vec<u64>, String> {
        let prefix = Path::from(format!("{}/log", self.dir));
        let metas: Vec<_> =
            self.store.list(Some(&prefix)).try_collect().await.map_err(|e| e.to_string())?;
        let mut seqs: Vec<u64> = metas
            .iter()
            .filter_map(|m| m.location.filename().and_then(|f| f.parse::<u64>().ok()))
            .filter(|s| *s < below)
            .collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// Entry `seq`.
    pub async fn read_entry(&self, seq: u64) -> Result<Entry, String> {
        let bytes = self
            .store
            .get(&self.entry_path(seq))
            .await
            .map_err(|e| e.to_string())?
            .bytes()
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| format!("log entry {seq} is corrupt: {e}"))
    }

    /// Every entry from `from` on, in order, with its sequence number (the listing starts at
    /// `from`: positions below it are not even listed).
    pub async fn read_from(&self, from: u64) -> Result<Vec<(u64, Entry)>, String> {
        let prefix = Path::from(format!("{}/log", self.dir));
        let listing = match from.checked_sub(1) {
            Some(before) => self.store.list_with_offset(Some(&prefix), &self.entry_path(before)),
            None => self.store.list(Some(&prefix)),
        };
        let metas: Vec<_> = listing.try_collect().await.map_err(|e| e.to_string())?;
        let mut seqs: Vec<u64> = metas
            .iter()
            .filter_map(|m| m.location.filename().and_then(|f| f.parse::<u64>().ok()))
            .filter(|s| *s >= from)
            .collect();
        seqs.sort_unstable();
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            out.push((seq, self.read_entry(seq).await?));
        }
        Ok(out)
    }

    /// The manifest and its version (`None` before the first owner wrote one).
    pub async fn read_manifest(&self) -> Result<Option<ManifestState>, String> {
        match self.store.get(&self.manifest_path()).await {
            Ok(got) => {
                let version = UpdateVersion {
                    e_tag: got.meta.e_tag.clone(),
                    version: got.meta.version.clone(),
                };
                let bytes = got.bytes().await.map_err(|e| e.to_string())?;
                let manifest = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("manifest is corrupt: {e}"))?;
                Ok(Some(ManifestState { manifest, version }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Writes `manifest` if the stored one is still `prev` (or, with `None`, if there is none).
    /// `Fenced` when it moved meanwhile.
    pub async fn swap_manifest(
        &self,
        manifest: &Manifest,
        prev: Option<&UpdateVersion>,
    ) -> Result<ManifestState, AppendError> {
        let bytes = serde_json::to_vec(manifest).map_err(|e| AppendError::Store(e.to_string()))?;
        let mode = prev.map_or(PutMode::Create, |v| PutMode::Update(v.clone()));
        let options = PutOptions { mode, ..PutOptions::default() };
        match self.store.put_opts(&self.manifest_path(), PutPayload::from(bytes), options).await {
            Ok(put) => Ok(ManifestState { manifest: manifest.clone(), version: put.into() }),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(AppendError::Fenced(manifest.log_from)),
            Err(e) => Err(AppendError::Store(e.to_string())),
        }
    }

    /// Moves the manifest to `epoch` (keeping its snapshot), refusing if a newer owner did.
    pub async fn claim_manifest(&self, epoch: i64, node: &str) -> Result<ManifestState, String> {
        loop {
            let current = self.read_manifest().await?;
            let mut next = current.as_ref().map(|c| c.manifest.clone()).unwrap_or_default();
            if next.epoch > epoch {
                return Err(format!(
                    "a newer owner (epoch {}) moved the manifest; ours is {epoch}",
                    next.epoch
                ));
            }
            next.epoch = epoch;
            node.clone_into(&mut next.writer);
            match self.swap_manifest(&next, current.as_ref().map(|c| &c.version)).await {
                Ok(state) => return Ok(state),
                Err(AppendError::Fenced(_)) => {} // moved meanwhile: read it again
                Err(AppendError::Store(e)) => return Err(e),
            }
        }
    }

    /// Stores a snapshot (export lines, JSON Lines) of the state after log position `log_from`
    /// - 1, written by `epoch`; returns its name for the manifest.
    pub async fn put_snapshot(
        &self,
        log_from: u64,
        epoch: i64,
        bytes: Vec<u8>,
    ) -> Result<String, String> {
        let name = format!("snapshots/{log_from:020}-{epoch}.jsonl");
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        let path = Path::from(format!("{}/{name}", self.dir));
        self.store
            .put_opts(&path, PutPayload::from(bytes), options)
            .await
            .map_err(|e| e.to_string())?;
        Ok(name)
    }

    /// A snapshot's bytes.
    pub async fn read_snapshot(&self, name: &str) -> Result<Vec<u8>, String> {
        let path = Path::from(format!("{}/{name}", self.dir));
        let got = self.store.get(&path).await.map_err(|e| format!("snapshot {name}: {e}"))?;
        Ok(got.bytes().await.map_err(|e| format!("snapshot {name}: {e}"))?.to_vec())
    }

    /// Deletes a snapshot no manifest names any more.
    pub async fn delete_snapshot(&self, name: &str) -> Result<(), String> {
        let path = Path::from(format!("{}/{name}", self.dir));
        self.store.delete(&path).await.map_err(|e| e.to_string())
    }

    /// Deletes log entry `seq`.
    pub async fn delete_entry(&self, seq: u64) -> Result<(), String> {
        self.store.delete(&self.entry_path(seq)).await.map_err(|e| e.to_string())
    }

    /// Deletes every object of the namespace that holds data: log objects with writes,
    /// snapshots and the manifest. Fences (log objects without writes) are kept: they hold
    /// nothing of the namespace and keep an older owner's appends refused. Returns the number
    /// of objects deleted.
    pub async fn erase(&self) -> Result<usize, String> {
        let prefix = Path::from(self.dir.as_str());
        let metas: Vec<_> =
            self.store.list(Some(&prefix)).try_collect().await.map_err(|e| e.to_string())?;
        let log = format!("{}/log/", self.dir);
        let mut deleted = 0;
        for meta in metas {
            let seq = meta.location.as_ref().strip_prefix(&log).and_then(|f| f.parse::<u64>().ok());
            if let Some(seq) = seq {
                match self.read_entry(seq).await {
                    Ok(e) if e.records.is_empty() => continue,
                    Ok(_) => {}
                    Err(e) if e.contains("corrupt") => {}
                    Err(e) => return Err(e),
                }
            }
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(deleted)
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
    pub async fn take_over(log: NamespaceLog, epoch: i64, node: &str) -> Result<Takeover, String> {
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
                    return Err(format!(
                        "a newer owner (epoch {}) already wrote this log; ours is {epoch}",
                        entry.epoch
                    ));
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
    log: NamespaceLog,
    epoch: i64,
    node: String,
    state: ManifestState,
    /// Log positions known to hold fences (never deleted).
    fences: BTreeSet<u64>,
    /// Every position from here on was read at takeover or written by this owner: those not in
    /// `fences` hold writes.
    known_from: u64,
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
    ) -> Result<Published, AppendError> {
        if log_from <= self.state.manifest.log_from {
            return Ok(Published { log_from: self.state.manifest.log_from, deleted: 0 });
        }
        let name = self
            .log
            .put_snapshot(log_from, self.epoch, snapshot)
            .await
            .map_err(AppendError::Store)?;
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
        for seq in self.log.positions_below(log_from).await.map_err(AppendError::Store)? {
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
