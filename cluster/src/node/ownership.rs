//! Namespace ownership. An owner key in etcd (`owners/<hex name>`, attached to the owner's
//! lease) names each namespace's owner; it is claimed with a guarded transaction, whose
//! revision is the owner's epoch (a later owner has a larger one). The new owner rebuilds the
//! namespace in its engine from the log (snapshot, then the writes after it) and fences the
//! log before serving it; one takeover per namespace at a time (a `OnceCell` per name).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
use memsilo::{Error, Result};
use parking_lot::Mutex;
use serde_json::{json, Value};

use super::serve::Waiting;
use super::snapshots::{import_snapshot, storage_bytes};
use super::{blocking, Node};
use crate::wal::{Checkpointer, NamespaceLog, Writer};

/// Where a namespace's requests run.
pub enum Target {
    /// Here: this node owns it.
    Local(Arc<Owned>),
    /// On the owner at this URL.
    Remote(String),
}

/// A namespace this node owns.
pub struct Owned {
    pub(crate) name: String,
    pub(crate) lease: i64,
    /// When the namespace was created (the control plane's record; the local copy's is the
    /// time this node loaded it).
    pub(super) created_at: Option<Value>,
    /// Deleted: takes no more writes or reads.
    pub(crate) deleted: AtomicBool,
    /// The namespace's tenant, whose storage limit its writes count against.
    pub(crate) tenant_id: Option<String>,
    /// Bytes the namespace uses (core's figure, read after every group of writes).
    pub(crate) used: AtomicU64,
    /// Bytes reserved for it under its tenant's limit (see `quota.rs`).
    pub(crate) reserved: AtomicU64,
    /// One reservation at a time.
    pub(crate) reserving: tokio::sync::Mutex<()>,
    pub(crate) writer: tokio::sync::Mutex<Writer>,
    /// Writes waiting for the log; `true` marks an import that must leave the policy as it
    /// is (a tenant editor's, see [`Node::write`]).
    pub(super) pending: Mutex<Vec<Waiting>>,
    pub(crate) checkpoint: tokio::sync::Mutex<Checkpointer>,
    /// The manifest's `log_from` (what the last snapshot holds), read without the lock.
    pub(super) snapshot_from: AtomicU64,
    /// A snapshot is being taken.
    pub(super) snapshotting: AtomicBool,
}

impl Owned {
    /// The namespace's tenant (the control plane's record of it).
    pub fn tenant_id(&self) -> Option<&str> {
        self.tenant_id.as_deref()
    }
}

impl Node {
    /// Where namespace `ns` is served, taking it over if nobody owns it.
    pub async fn route(&self, ns: &str) -> Result<Target> {
        let (lease, valid) = {
            let l = self.lease.read();
            (l.id, Instant::now() < l.valid_until)
        };
        let cell = self.owned.lock().get(ns).cloned();
        if let Some(owned) = cell.as_ref().and_then(|c| c.get()) {
            if owned.lease == lease && valid && !owned.deleted.load(Ordering::Acquire) {
                return Ok(Target::Local(owned.clone()));
            }
            self.drop_namespace(ns);
        }
        if !valid {
            return Err(Error::Internal(
                "this node's lease in etcd may have expired; retry on another node".into(),
            ));
        }
        if let Some(url) = self.owner_url(ns, lease).await? {
            return Ok(Target::Remote(url));
        }
        let cell = self.owned.lock().entry(ns.to_owned()).or_default().clone();
        let mut moved_to = None;
        let owned = cell
            .get_or_try_init(|| async {
                match self.acquire(ns, lease).await {
                    Ok(o) => Ok(o),
                    Err(Acquire::Owned(url)) => {
                        moved_to = Some(url);
                        Err(None)
                    }
                    Err(Acquire::Failed(e)) => Err(Some(e)),
                }
            })
            .await;
        match owned {
            Ok(o) => Ok(Target::Local(o.clone())),
            Err(None) => Ok(Target::Remote(moved_to.unwrap_or_default())),
            Err(Some(e)) => Err(e),
        }
    }

    /// The owner's URL if another node owns `ns`.
    async fn owner_url(&self, ns: &str, lease: i64) -> Result<Option<String>> {
        let resp = self.get(&self.ns_key("owners", ns), None).await?;
        let Some(kv) = resp.kvs().first() else { return Ok(None) };
        if kv.lease() == lease {
            // Ours (a takeover in flight on another request): wait for it through the cell.
            return Ok(None);
        }
        let v: Value = serde_json::from_slice(kv.value()).unwrap_or(Value::Null);
        Ok(v.get("url").and_then(Value::as_str).map(str::to_owned))
    }

    async fn acquire(&self, ns: &str, lease: i64) -> std::result::Result<Arc<Owned>, Acquire> {
        let record =
            self.get(&self.ns_key("namespaces", ns), None).await.map_err(Acquire::Failed)?;
        let Some(kv) = record.kvs().first() else {
            return Err(Acquire::Failed(Error::not_found("namespace", ns)));
        };
        let create_args: Value = serde_json::from_slice(kv.value())
            .map_err(|e| Acquire::Failed(Error::internal_from("namespace record", e)))?;
        let owner_key = self.ns_key("owners", ns);
        let me = json!({ "node": self.config.node_id, "url": self.config.advertise_url });
        let txn = Txn::new()
            .when([Compare::create_revision(owner_key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                owner_key.clone(),
                me.to_string(),
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(owner_key.clone(), None)]);
        let mut resp = self.txn(&txn).await.map_err(Acquire::Failed)?;
        if !resp.succeeded() {
            // Still ours from before (a copy dropped after a failure): claim it again, which
            // gives a new, larger epoch.
            let again = Txn::new()
                .when([Compare::lease(owner_key.clone(), CompareOp::Equal, lease)])
                .and_then([TxnOp::put(
                    owner_key.clone(),
                    me.to_string(),
                    Some(PutOptions::new().with_lease(lease)),
                )]);
            resp = self.txn(&again).await.map_err(Acquire::Failed)?;
        }
        if !resp.succeeded() {
            return match self.owner_url(ns, lease).await {
                Ok(Some(url)) => Err(Acquire::Owned(url)),
                Ok(None) => Err(Acquire::Failed(Error::Internal(format!(
                    "namespace {ns} is changing owner; retry"
                )))),
                Err(e) => Err(Acquire::Failed(e)),
            };
        }
        // The claim's revision orders owners: a later owner has a larger epoch.
        let epoch = resp.header().map_or(0, etcd_client::ResponseHeader::revision);
        match self.load(ns, create_args, epoch, lease).await {
            Ok(owned) => Ok(owned),
            Err(e) => {
                // Give the namespace back so another node (or a retry) can take it.
                let release = Txn::new()
                    .when([Compare::lease(owner_key.clone(), CompareOp::Equal, lease)])
                    .and_then([TxnOp::delete(owner_key, None)]);
                let _ = self.txn(&release).await;
                Err(Acquire::Failed(e))
            }
        }
    }

    /// Rebuilds namespace `ns` in the local engine from its log and fences the log.
    async fn load(
        &self,
        ns: &str,
        mut create_args: Value,
        epoch: i64,
        lease: i64,
    ) -> Result<Arc<Owned>> {
        let started = Instant::now();
        // The tenant is the control plane's (its limits are shared out across nodes, see
        // `quota.rs`): the local copy is created without one.
        let tenant_id = create_args
            .as_object_mut()
            .and_then(|o| o.remove("tenant_id"))
            .and_then(|t| t.as_str().map(str::to_owned));
        let created_at = create_args.as_object_mut().and_then(|o| o.remove("created_at"));
        let engine = self.engine.clone();
        let name = ns.to_owned();
        // The local copy may be stale (owned earlier, then lost): start from nothing.
        blocking(move || {
            let root = engine.root();
            if root.call("get_namespace", json!({ "name": name })).is_ok() {
                root.call("delete_namespace", json!({ "name": name }))?;
            }
            root.call("create_namespace", create_args)?;
            Ok(())
        })
        .await?;
        let log = NamespaceLog::new(self.store.clone(), &self.config.prefix, ns);
        let takeover = Writer::take_over(log, epoch, &self.config.node_id)
            .await
            .map_err(|e| Error::internal_from(format!("namespace {ns}: log"), e))?;
        let fetched = started.elapsed();
        let (snapshot, records) = (takeover.snapshot, takeover.records);
        let (count, snapshot_bytes) = (records.len(), snapshot.as_ref().map_or(0, Vec::len));
        let engine = self.engine.clone();
        let name = ns.to_owned();
        let (imported, used) = blocking(move || {
            let root = engine.root();
            let mut imported = memsilo::transfer::ImportSummary::default();
            if let Some(bytes) = snapshot {
                imported = import_snapshot(&root, &name, &bytes)?;
            }
            for r in records {
                // A write refused when it was first made is refused again: same outcome.
                let op = r.op.clone();
                if let Err(e) = r.apply(&root) {
                    eprintln!("memsilo cluster: namespace {name}: a logged {op} is refused again on replay: {e}");
                }
            }
            Ok((imported, storage_bytes(&root, &name)?))
        })
        .await?;
        let checkpointer = takeover.checkpointer;
        eprintln!(
            "memsilo cluster: node {} owns namespace {ns} (epoch {epoch}): snapshot of {} memories ({snapshot_bytes} bytes) + {count} writes from {} log objects from position {} in {} ms ({} ms reading object storage)",
            self.config.node_id,
            imported.memories,
            takeover.entries,
            checkpointer.log_from(),
            started.elapsed().as_millis(),
            fetched.as_millis(),
        );
        Ok(Arc::new(Owned {
            name: ns.to_owned(),
            lease,
            created_at,
            deleted: AtomicBool::new(false),
            tenant_id,
            used: AtomicU64::new(used),
            reserved: AtomicU64::new(0),
            reserving: tokio::sync::Mutex::default(),
            writer: tokio::sync::Mutex::new(takeover.writer),
            pending: Mutex::default(),
            snapshot_from: AtomicU64::new(checkpointer.log_from()),
            checkpoint: tokio::sync::Mutex::new(checkpointer),
            snapshotting: AtomicBool::new(false),
        }))
    }

    pub(crate) fn drop_namespace(&self, ns: &str) {
        self.owned.lock().remove(ns);
    }
}

enum Acquire {
    Owned(String),
    Failed(Error),
}
