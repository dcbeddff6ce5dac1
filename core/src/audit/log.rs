//! The log's tables and its writer: entries are hash-chained per tenant (each names the hash
//! of the one before it), queued in memory and written by the next catalog commit.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use heed3::types::Str;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::{entry_key, is_refusal, AuditActor, AuditEntry, GENESIS};
use crate::catalog::CatalogTables;
use crate::error::{Error, ErrorCode, Result};
pub(crate) use crate::records::{AuditTables, Head};
use crate::storage::{Environment, Table};
use crate::store::{Store, Tables};

/// The log's own environment of earlier versions (`DIR/audit`): read once, to move its
/// entries into the catalog (see [`adopt_old_log`]).
pub(crate) struct OldAuditTables(pub(crate) AuditTables);

impl Tables for OldAuditTables {
    const MAX_DBS: u32 = 4;

    fn create(env: &Environment) -> Result<Self> {
        let [entries, heads] = env.create_tables(["entries", "heads"])?;
        Ok(OldAuditTables(AuditTables {
            entries: entries.remap_types(),
            heads: heads.remap_types(),
        }))
    }
}

/// Moves the entries of a log kept in its own environment (`DIR/audit`, earlier versions)
/// into the catalog, in one transaction, then removes that environment. A crash between the
/// two steps is harmless: the copy is made only while the catalog holds no chain yet.
pub(crate) fn adopt_old_log(dir: &Path, catalog: &Store<CatalogTables>) -> Result<()> {
    type Rows = Vec<(String, Vec<u8>)>;
    let old_dir = dir.join("audit");
    if !old_dir.join("data.mdb").exists() {
        return Ok(());
    }
    let old = Store::<OldAuditTables>::open(&old_dir, 64 << 20, None)?;
    let (entries, heads): (Rows, Rows) = old.read(|r, t| {
        let mut raw = |db: &Table<Str, heed3::types::Bytes>| -> Result<Rows> {
            db.iter(r)?
                .map(|e| e.map(|(k, v)| (k.to_owned(), v.to_vec())).map_err(Error::from))
                .collect()
        };
        Ok((
            raw(&t.0.entries.remap_data_type::<heed3::types::Bytes>())?,
            raw(&t.0.heads.remap_data_type::<heed3::types::Bytes>())?,
        ))
    })?;
    catalog.write(|w, t| {
        if !t.audit.heads.is_empty(w)? {
            return Ok(());
        }
        let (e, h) = (
            t.audit.entries.remap_data_type::<heed3::types::Bytes>(),
            t.audit.heads.remap_data_type::<heed3::types::Bytes>(),
        );
        for (k, v) in &entries {
            e.put(w, k, v)?;
        }
        for (k, v) in &heads {
            h.put(w, k, v)?;
        }
        Ok(())
    })?;
    old.destroy()
}

/// An entry before it has its place in the chain (public for chains kept elsewhere: the
/// cluster's, in object storage, seals its entries with [`Draft::seal`] too).
#[derive(Debug, Clone)]
pub struct Draft {
    /// When the request was decided.
    pub time: DateTime<Utc>,
    /// The tenant whose chain gets it (`instance` for the instance log).
    pub tenant_id: String,
    /// Who asked.
    pub actor: AuditActor,
    /// The operation.
    pub action: String,
    /// What it was about.
    pub target: Option<String>,
    /// Its outcome: the error code when refused or failed.
    pub outcome: std::result::Result<(), ErrorCode>,
    /// The request's id.
    pub request_id: String,
}

impl Draft {
    /// The entry at position `seq` of its chain, after the entry whose hash is `prev_hash`
    /// ([`GENESIS_HASH`] first), with its own hash: the one rule of every chain.
    ///
    /// [`GENESIS_HASH`]: super::GENESIS_HASH
    pub fn seal(&self, seq: u64, prev_hash: &str) -> AuditEntry {
        let (result, error, status) = match self.outcome {
            Ok(()) => ("ok", None, 200),
            Err(code) => {
                let result = if is_refusal(code) { "refused" } else { "failed" };
                (result, Some(code.as_str().to_owned()), code.http_status())
            }
        };
        let mut entry = AuditEntry {
            seq,
            time: self.time,
            tenant_id: self.tenant_id.clone(),
            actor: self.actor.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            result: result.into(),
            error,
            status,
            request_id: self.request_id.clone(),
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        entry.hash = entry_hash(&entry);
        entry
    }
}

/// The hash of an entry: SHA-256 over its fields (with `hash` empty) as JSON.
pub(super) fn entry_hash(entry: &AuditEntry) -> String {
    let mut unhashed = entry.clone();
    unhashed.hash.clear();
    let bytes = serde_json::to_vec(&unhashed).unwrap_or_default();
    crate::auth::to_hex(&Sha256::digest(&bytes))
}

/// Entries waiting for a catalog transaction. They are taken from the queue inside the
/// transaction that writes them (never before), so they reach their chains in the order they
/// were queued, whichever thread's transaction writes them.
#[derive(Default)]
pub(crate) struct AuditLog {
    pub(crate) queue: Mutex<std::collections::VecDeque<Draft>>,
    /// Held by the thread writing refusals (which do not wait for their commit).
    writer: Mutex<()>,
}

impl AuditLog {
    /// Appends `draft`. With `wait`, returns once it is committed; otherwise it may be left
    /// to the writer that is busy now, which commits it in its next transaction.
    pub(crate) fn append(&self, catalog: &Store<CatalogTables>, draft: Draft, wait: bool) {
        self.queue.lock().push_back(draft);
        if wait {
            self.write_queued(catalog, Vec::new()).ok();
            return;
        }
        loop {
            let Some(guard) = self.writer.try_lock() else { return };
            let written = self.write_queued(catalog, Vec::new());
            drop(guard);
            // An entry queued while this writer held the lock is written by this loop.
            if written.is_err() || self.queue.lock().is_empty() {
                return;
            }
        }
    }

    /// Queues `draft` without writing it: the next catalog commit writes it, whoever makes
    /// it. For a caller that commits the queue itself ([`AuditLog::flush`]) before it answers.
    pub(crate) fn enqueue(&self, draft: Draft) {
        self.queue.lock().push_back(draft);
    }

    /// Commits every queued entry, then `own` (entries decided after them), in one catalog
    /// write. On failure the entries go back to the front of the queue for the next writer.
    fn write_queued(&self, catalog: &Store<CatalogTables>, own: Vec<Draft>) -> Result<()> {
        let mut taken: Option<Vec<Draft>> = None;
        let written = catalog.write(|w, t| self.write_taken(w, &t.audit, &mut taken, &own));
        self.settle_taken(taken, &written);
        written
    }

    /// Inside a catalog transaction: takes the queued entries (once: a transaction run again
    /// after the map grew writes the same ones) and writes them, then `own`.
    pub(crate) fn write_taken(
        &self,
        w: &mut heed3::RwTxn<'_>,
        t: &AuditTables,
        taken: &mut Option<Vec<Draft>>,
        own: &[Draft],
    ) -> Result<()> {
        let batch = taken.get_or_insert_with(|| self.queue.lock().drain(..).collect());
        write_batch(w, t, batch)?;
        write_batch(w, t, own)
    }

    /// After the write that took `taken`: on failure they are queued again, first.
    pub(crate) fn settle_taken<R>(&self, taken: Option<Vec<Draft>>, written: &Result<R>) {
        let Some(taken) = taken.filter(|b| !b.is_empty()) else { return };
        if let Err(e) = written {
            tracing::warn!("{} audit entries not written yet, kept queued: {e}", taken.len());
            let mut q = self.queue.lock();
            for d in taken.into_iter().rev() {
                q.push_front(d);
            }
        }
    }

    /// Commits every queued entry.
    pub(crate) fn flush(&self, catalog: &Store<CatalogTables>) {
        if self.queue.lock().is_empty() {
            return;
        }
        if let Err(e) = self.write_queued(catalog, Vec::new()) {
            tracing::error!("audit entries could not be written: {e}");
        }
    }

    /// Removes every entry older than `cutoff`, keeping each chain's last removed hash as
    /// its anchor. Returns how many were removed.
    pub(crate) fn prune(
        &self,
        catalog: &Store<CatalogTables>,
        cutoff: DateTime<Utc>,
    ) -> Result<u64> {
        self.flush(catalog);
        catalog.write(|w, t| {
            let t = &t.audit;
            let heads: Vec<(String, Head)> = t
                .heads
                .iter(w)?
                .map(|e| e.map(|(k, h)| (k.to_owned(), h)))
                .collect::<heed3::Result<_>>()?;
            let mut removed = 0u64;
            for (tenant, mut head) in heads {
                let mut doomed = Vec::new();
                for item in t.entries.prefix_iter(w, &format!("{tenant}/"))? {
                    let (key, entry) = item?;
                    if entry.time >= cutoff {
                        break;
                    }
                    doomed.push((key.to_owned(), entry.seq, entry.hash));
                }
                let Some((_, seq, hash)) = doomed.last().cloned() else { continue };
                for (key, _, _) in &doomed {
                    t.entries.delete(w, key)?;
                }
                removed += doomed.len() as u64;
                head.anchor_seq = seq;
                head.anchor_hash = hash;
                t.heads.put(w, &tenant, &head)?;
            }
            Ok(removed)
        })
    }
}

pub(super) fn write_batch(
    w: &mut heed3::RwTxn<'_>,
    t: &AuditTables,
    batch: &[Draft],
) -> Result<()> {
    let mut heads: HashMap<&str, Head> = HashMap::new();
    for d in batch {
        let head = match heads.entry(d.tenant_id.as_str()) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let h = t.heads.get(w, &d.tenant_id)?.unwrap_or_else(|| Head {
                    hash: GENESIS.into(),
                    anchor_hash: GENESIS.into(),
                    ..Head::default()
                });
                v.insert(h)
            }
        };
        let entry = d.seal(head.seq + 1, &head.hash);
        t.entries.put(w, &entry_key(&d.tenant_id, entry.seq), &entry)?;
        head.seq = entry.seq;
        head.hash.clone_from(&entry.hash);
    }
    for (tenant, head) in heads {
        t.heads.put(w, tenant, &head)?;
    }
    Ok(())
}
