//! The object-storage layout of one namespace (`PREFIX/ns/<hex of the name>/`): numbered log
//! objects, snapshots and the manifest. Log objects and snapshots are only ever created with a
//! create-if-absent put and the manifest only moved with a put conditional on its entity tag,
//! so a store refusal ([`LogError::Fenced`]) means another owner got there first.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::{Entry, LogError, Manifest};

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
    pub async fn positions_below(&self, below: u64) -> Result<Vec<u64>, LogError> {
        let prefix = Path::from(format!("{}/log", self.dir));
        let metas: Vec<_> = (self.store.list(Some(&prefix)).try_collect().await)
            .map_err(LogError::store("listing the log"))?;
        let mut seqs: Vec<u64> = metas
            .iter()
            .filter_map(|m| m.location.filename().and_then(|f| f.parse::<u64>().ok()))
            .filter(|s| *s < below)
            .collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// Entry `seq`.
    pub async fn read_entry(&self, seq: u64) -> Result<Entry, LogError> {
        let reading = || LogError::store(format!("reading log entry {seq}"));
        let got = self.store.get(&self.entry_path(seq)).await.map_err(reading())?;
        let bytes = got.bytes().await.map_err(reading())?;
        serde_json::from_slice(&bytes)
            .map_err(|source| LogError::Corrupt { object: format!("log entry {seq}"), source })
    }

    /// Every entry from `from` on, in order, with its sequence number (the listing starts at
    /// `from`: positions below it are not even listed).
    pub async fn read_from(&self, from: u64) -> Result<Vec<(u64, Entry)>, LogError> {
        let prefix = Path::from(format!("{}/log", self.dir));
        let listing = match from.checked_sub(1) {
            Some(before) => self.store.list_with_offset(Some(&prefix), &self.entry_path(before)),
            None => self.store.list(Some(&prefix)),
        };
        let metas: Vec<_> =
            listing.try_collect().await.map_err(LogError::store("listing the log"))?;
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
    pub async fn read_manifest(&self) -> Result<Option<ManifestState>, LogError> {
        match self.store.get(&self.manifest_path()).await {
            Ok(got) => {
                let version = UpdateVersion {
                    e_tag: got.meta.e_tag.clone(),
                    version: got.meta.version.clone(),
                };
                let bytes = got.bytes().await.map_err(LogError::store("reading the manifest"))?;
                let manifest = serde_json::from_slice(&bytes)
                    .map_err(|source| LogError::Corrupt { object: "manifest".into(), source })?;
                Ok(Some(ManifestState { manifest, version }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(LogError::store("reading the manifest")(e)),
        }
    }

    /// Writes `manifest` if the stored one is still `prev` (or, with `None`, if there is none).
    /// `Fenced` when it moved meanwhile.
    pub async fn swap_manifest(
        &self,
        manifest: &Manifest,
        prev: Option<&UpdateVersion>,
    ) -> Result<ManifestState, LogError> {
        let bytes = serde_json::to_vec(manifest)
            .map_err(|source| LogError::Encoding { object: "manifest".into(), source })?;
        let mode = prev.map_or(PutMode::Create, |v| PutMode::Update(v.clone()));
        let options = PutOptions { mode, ..PutOptions::default() };
        match self.store.put_opts(&self.manifest_path(), PutPayload::from(bytes), options).await {
            Ok(put) => Ok(ManifestState { manifest: manifest.clone(), version: put.into() }),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(LogError::Fenced(manifest.log_from)),
            Err(e) => Err(LogError::store("moving the manifest")(e)),
        }
    }

    /// Moves the manifest to `epoch` (keeping its snapshot), refusing if a newer owner did.
    pub async fn claim_manifest(&self, epoch: i64, node: &str) -> Result<ManifestState, LogError> {
        loop {
            let current = self.read_manifest().await?;
            let mut next = current.as_ref().map(|c| c.manifest.clone()).unwrap_or_default();
            if next.epoch > epoch {
                return Err(LogError::Superseded {
                    did: "moved the manifest",
                    theirs: next.epoch,
                    ours: epoch,
                });
            }
            next.epoch = epoch;
            node.clone_into(&mut next.writer);
            match self.swap_manifest(&next, current.as_ref().map(|c| &c.version)).await {
                Ok(state) => return Ok(state),
                Err(LogError::Fenced(_)) => {} // moved meanwhile: read it again
                Err(e) => return Err(e),
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
    ) -> Result<String, LogError> {
        let name = format!("snapshots/{log_from:020}-{epoch}.jsonl");
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        let path = Path::from(format!("{}/{name}", self.dir));
        self.store
            .put_opts(&path, PutPayload::from(bytes), options)
            .await
            .map_err(LogError::store(format!("storing {name}")))?;
        Ok(name)
    }

    /// A snapshot's bytes.
    pub async fn read_snapshot(&self, name: &str) -> Result<Vec<u8>, LogError> {
        let path = Path::from(format!("{}/{name}", self.dir));
        let reading = || LogError::store(format!("reading {name}"));
        let got = self.store.get(&path).await.map_err(reading())?;
        Ok(got.bytes().await.map_err(reading())?.to_vec())
    }

    /// Deletes a snapshot no manifest names any more.
    pub async fn delete_snapshot(&self, name: &str) -> Result<(), LogError> {
        let path = Path::from(format!("{}/{name}", self.dir));
        self.store.delete(&path).await.map_err(LogError::store(format!("deleting {name}")))
    }

    /// Deletes log entry `seq`.
    pub async fn delete_entry(&self, seq: u64) -> Result<(), LogError> {
        let deleting = LogError::store(format!("deleting log entry {seq}"));
        self.store.delete(&self.entry_path(seq)).await.map_err(deleting)
    }

    /// Deletes every object of the namespace that holds data: log objects with writes,
    /// snapshots and the manifest. Fences (log objects without writes) are kept: they hold
    /// nothing of the namespace and keep an older owner's appends refused. Returns the number
    /// of objects deleted.
    pub async fn erase(&self) -> Result<usize, LogError> {
        let prefix = Path::from(self.dir.as_str());
        let metas: Vec<_> = (self.store.list(Some(&prefix)).try_collect().await)
            .map_err(LogError::store("listing the namespace's objects"))?;
        let log = format!("{}/log/", self.dir);
        let mut deleted = 0;
        for meta in metas {
            let seq = meta.location.as_ref().strip_prefix(&log).and_then(|f| f.parse::<u64>().ok());
            if let Some(seq) = seq {
                match self.read_entry(seq).await {
                    Ok(e) if e.records.is_empty() => continue,
                    // A corrupt object holds no readable fence: it goes too.
                    Ok(_) | Err(LogError::Corrupt { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(e) => return Err(LogError::store(format!("deleting {}", meta.location))(e)),
            }
        }
        Ok(deleted)
    }

    /// Creates entry `seq`; refused if it exists.
    pub async fn put(&self, seq: u64, entry: &Entry) -> Result<(), LogError> {
        let bytes = serde_json::to_vec(entry)
            .map_err(|source| LogError::Encoding { object: format!("log entry {seq}"), source })?;
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.store.put_opts(&self.entry_path(seq), PutPayload::from(bytes), options).await {
            Ok(_) => Ok(()),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(LogError::Fenced(seq)),
            Err(e) => Err(LogError::store(format!("writing log entry {seq}"))(e)),
        }
    }
}
