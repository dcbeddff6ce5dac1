//! One cluster node: its lease, the namespaces it owns, the key table, and the write path
//! (group commit to the namespace's log, then the local engine, then the answer).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{
    Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
};
use memsilo::api::{Reply, Request};
use memsilo::{Engine, Error, Result};
use object_store::ObjectStore;
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use tokio::sync::{oneshot, OnceCell};

use crate::control::{hex, Caller, Grant, KeyCache, KeyRecord};
use crate::wal::{AppendError, Checkpointer, NamespaceLog, Published, Record, Writer};

/// How a node joins the cluster.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's id (unique in the cluster).
    pub node_id: String,
    /// The URL other nodes use to forward requests here (`http://HOST:PORT`).
    pub advertise_url: String,
    /// etcd client URLs.
    pub etcd: Vec<String>,
    /// Key prefix in etcd and object storage (one cluster per prefix).
    pub prefix: String,
    /// Lease time to live, seconds: how long a dead node keeps its namespaces.
    pub lease_ttl: i64,
    /// A namespace's owner snapshots it once this many log objects were written since the
    /// last snapshot (0: never).
    pub snapshot_every: u64,
}

/// Where a namespace's requests run.
pub enum Target {
    /// Here: this node owns it.
    Local(Arc<Owned>),
    /// On the owner at this URL.
    Remote(String),
}

/// A namespace this node owns.
pub struct Owned {
    name: String,
    lease: i64,
    writer: tokio::sync::Mutex<Writer>,
    pending: Mutex<Vec<(Record, oneshot::Sender<Result<Reply>>)>>,
    checkpoint: tokio::sync::Mutex<Checkpointer>,
    /// The manifest's `log_from` (what the last snapshot holds), read without the lock.
    snapshot_from: AtomicU64,
    /// A snapshot is being taken.
    snapshotting: AtomicBool,
}

/// An answer from the owner, passed through unchanged.
pub struct Forwarded {
    /// HTTP status.
    pub status: u16,
    /// Headers worth passing on (content type, counts, rate limits, retry-after).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

struct Lease {
    id: i64,
    /// Past this instant the lease may have expired in etcd: serve nothing as owner.
    valid_until: Instant,
}

/// A cluster node.
pub struct Node {
    config: Config,
    engine: Engine,
    etcd: etcd_client::Client,
    store: Arc<dyn ObjectStore>,
    lease: RwLock<Lease>,
    owned: Mutex<HashMap<String, Arc<OnceCell<Arc<Owned>>>>>,
    keys: RwLock<KeyCache>,
    http: reqwest::Client,
}

fn etcd_err(e: &etcd_client::Error) -> Error {
    Error::Internal(format!("etcd: {e}"))
}

/// Whether an etcd call failed because the member it went to is down (the client balances
/// over every member, and a dead one fails calls until it is dropped from the pool).
fn member_down(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) => true,
        etcd_client::Error::GRpcStatus(s) => format!("{:?}", s.code()) == "Unavailable",
        _ => false,
    }
}

/// Retries an etcd call on the other members while one is down (up to ~5 s).
async fn with_retry<T, F, Fut>(etcd: &etcd_client::Client, mut call: F) -> Result<T>
where
    F: FnMut(etcd_client::Client) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
{
    let mut tries = 0;
    loop {
        match call(etcd.clone()).await {
            Ok(v) => return Ok(v),
            Err(e) if tries < 50 && member_down(&e) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(etcd_err(&e)),
        }
    }
}

/// The operations of one namespace served in cluster mode, on its owner. Which of them write
/// (and are logged before they are applied) is the operation table's flag
/// ([`memsilo::api::Effect`]).
const SERVED: &[&str] = &[
    "store_memory",
    "store_memories",
    "update_memory",
    "delete_memory",
    "recall",
    "get_memory",
    "get_memories",
    "get_namespace",
    "get_memory_policy",
    "list_memories",
    "count_memories",
    "export_namespace",
    "get_entity",
    "neighbors",
    "subgraph",
    "shortest_path",
    "get_session",
    "list_sessions",
    "session_memories",
];

/// Whether `op` runs on a namespace's owner, and whether it writes.
pub fn namespace_op(op: &str) -> Option<bool> {
    if !SERVED.contains(&op) {
        return None;
    }
    Request::effect_of(op).map(|e| e != memsilo::api::Effect::Read)
}

/// The namespace an operation's arguments name.
pub fn namespace_of(op: &str, args: &Value) -> Result<String> {
    let field = if op == "get_namespace" { "name" } else { "namespace" };
    args.get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Error::invalid(field, "required in cluster mode"))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("worker failed: {e}")))?
}

impl Node {
    /// Joins the cluster: connects to etcd, takes a lease, registers this node and loads the
    /// key table. Spawns the keep-alive and the key watch on the current runtime.
    pub async fn start(
        config: Config,
        engine: Engine,
        store: Arc<dyn ObjectStore>,
    ) -> std::result::Result<Arc<Node>, String> {
        let mut etcd = etcd_client::Client::connect(&config.etcd, None)
            .await
            .map_err(|e| format!("cannot connect to etcd {:?}: {e}", config.etcd))?;
        let granted = etcd
            .lease_grant(config.lease_ttl, None)
            .await
            .map_err(|e| format!("etcd lease: {e}"))?;
        let lease = Lease {
            id: granted.id(),
            valid_until: Instant::now() + Duration::from_secs(granted.ttl().max(1) as u64),
        };
        let node = Arc::new(Node {
            config,
            engine,
            etcd,
            store,
            lease: RwLock::new(lease),
            owned: Mutex::default(),
            keys: RwLock::default(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()
                .map_err(|e| e.to_string())?,
        });
        node.register().await.map_err(|e| e.to_string())?;
        let revision = node.load_keys().await.map_err(|e| e.to_string())?;
        tokio::spawn(keep_alive(node.clone()));
        tokio::spawn(watch_keys(node.clone(), revision));
        Ok(node)
    }

    async fn get(
        &self,
        key: &str,
        options: Option<GetOptions>,
    ) -> Result<etcd_client::GetResponse> {
        with_retry(&self.etcd, |mut c| {
            let (key, options) = (key.to_owned(), options.clone());
            async move { c.get(key, options).await }
        })
        .await
    }

    async fn txn(&self, txn: &Txn) -> Result<etcd_client::TxnResponse> {
        with_retry(&self.etcd, |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("/{}/{kind}/{name}", self.config.prefix.trim_matches('/'))
    }

    fn ns_key(&self, kind: &str, ns: &str) -> String {
        self.key(kind, &hex(ns.as_bytes()))
    }

    async fn register(&self) -> Result<()> {
        let lease = self.lease.read().id;
        let value = json!({ "url": self.config.advertise_url }).to_string();
        let key = self.key("nodes", &self.config.node_id);
        with_retry(&self.etcd, |mut c| {
            let (key, value) = (key.clone(), value.clone());
            async move { c.put(key, value, Some(PutOptions::new().with_lease(lease))).await }
        })
        .await?;
        Ok(())
    }

    /// Reads the key table; returns the etcd revision it was read at.
    async fn load_keys(&self) -> Result<i64> {
        let resp = self.get(&self.key("keys", ""), Some(GetOptions::new().with_prefix())).await?;
        let mut keys = HashMap::new();
        for kv in resp.kvs() {
            if let Ok(rec) = serde_json::from_slice::<KeyRecord>(kv.value()) {
                keys.insert(rec.id.clone(), rec);
            }
        }
        let revision = resp.header().map_or(0, etcd_client::ResponseHeader::revision);
        *self.keys.write() = KeyCache { synced: true, keys };
        Ok(revision)
    }

    /// Leaves the cluster (a graceful stop, after the requests in flight are answered): stops
    /// serving as owner and revokes the lease, which frees every namespace this node owns at
    /// once, so other nodes take them over without waiting for the lease to run out.
    pub async fn leave(&self) {
        let id = {
            let mut lease = self.lease.write();
            lease.valid_until = Instant::now();
            lease.id
        };
        self.owned.lock().clear();
        let mut etcd = self.etcd.clone();
        match tokio::time::timeout(Duration::from_secs(5), etcd.lease_revoke(id)).await {
            Ok(Ok(_)) => eprintln!(
                "memsilo cluster: node {} left the cluster (lease revoked; its namespaces are free)",
                self.config.node_id
            ),
            Ok(Err(e)) => eprintln!(
                "memsilo cluster: node {} could not revoke its lease ({e}); its namespaces are free when it expires",
                self.config.node_id
            ),
            Err(_) => eprintln!(
                "memsilo cluster: node {} could not reach etcd to revoke its lease; its namespaces are free when it expires",
                self.config.node_id
            ),
        }
    }

    /// The node's id.
    pub fn id(&self) -> &str {
        &self.config.node_id
    }

    /// The local engine (the cache of owned namespaces).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Who `key` is: the admin key, or a key of the control plane.
    pub async fn authenticate(&self, key: &str) -> Result<Caller> {
        let engine = self.engine.clone();
        let text = key.to_owned();
        let is_admin = blocking(move || {
            Ok(engine
                .scoped(&text)
                .ok()
                .and_then(|h| h.principal().ok())
                .is_some_and(|p| p == memsilo::Principal::Root))
        })
        .await?;
        if is_admin {
            return Ok(Caller::Admin);
        }
        self.keys.read().authenticate(key)
    }

    /// Where namespace `ns` is served, taking it over if nobody owns it.
    pub async fn route(&self, ns: &str) -> Result<Target> {
        let (lease, valid) = {
            let l = self.lease.read();
            (l.id, Instant::now() < l.valid_until)
        };
        let cell = self.owned.lock().get(ns).cloned();
        if let Some(owned) = cell.as_ref().and_then(|c| c.get()) {
            if owned.lease == lease && valid {
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
            .map_err(|e| Acquire::Failed(Error::Internal(format!("namespace record: {e}"))))?;
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
        create_args: Value,
        epoch: i64,
        lease: i64,
    ) -> Result<Arc<Owned>> {
        let started = Instant::now();
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
            .map_err(|e| Error::Internal(format!("namespace {ns}: log: {e}")))?;
        let fetched = started.elapsed();
        let (snapshot, records) = (takeover.snapshot, takeover.records);
        let (count, snapshot_bytes) = (records.len(), snapshot.as_ref().map_or(0, Vec::len));
        let engine = self.engine.clone();
        let name = ns.to_owned();
        let imported = blocking(move || {
            let root = engine.root();
            let mut imported = memsilo::transfer::ImportSummary::default();
            if let Some(bytes) = snapshot {
                imported = import_snapshot(&root, &name, &bytes)?;
            }
            for r in records {
                // A write refused when it was first made is refused again: same outcome.
                if let Err(e) = root.call(&r.op, r.args) {
                    eprintln!("memsilo cluster: namespace {name}: a logged {} is refused again on replay: {e}", r.op);
                }
            }
            Ok(imported)
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
            writer: tokio::sync::Mutex::new(takeover.writer),
            pending: Mutex::default(),
            snapshot_from: AtomicU64::new(checkpointer.log_from()),
            checkpoint: tokio::sync::Mutex::new(checkpointer),
            snapshotting: AtomicBool::new(false),
        }))
    }

    /// Snapshots an owned namespace now (what `snapshot_every` does on its own): the export is
    /// read while its writes wait, then stored and published without holding them.
    pub async fn snapshot(&self, owned: &Arc<Owned>) -> Result<Published> {
        snapshot(self.engine.clone(), owned.clone()).await
    }

    fn drop_namespace(&self, ns: &str) {
        self.owned.lock().remove(ns);
    }

    /// Runs a read on an owned namespace.
    pub async fn read(&self, op: &str, args: Value) -> Result<Reply> {
        let engine = self.engine.clone();
        let op = op.to_owned();
        blocking(move || engine.root().call(&op, args)).await
    }

    /// Runs a write on an owned namespace: logged (grouped with the writes queued meanwhile)
    /// before it is applied; answered once its log object is stored.
    pub async fn write(&self, owned: &Arc<Owned>, op: &str, mut args: Value) -> Result<Reply> {
        prepare(op, &owned.name, &mut args)?;
        Request::parse(op, args.clone())?;
        let (tx, rx) = oneshot::channel();
        owned.pending.lock().push((Record { op: op.to_owned(), args }, tx));
        {
            let mut writer = owned.writer.lock().await;
            let batch = std::mem::take(&mut *owned.pending.lock());
            if !batch.is_empty() {
                let (records, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                match writer.append(records.clone()).await {
                    Ok(()) => {
                        let engine = self.engine.clone();
                        let results = blocking(move || {
                            let root = engine.root();
                            Ok(records
                                .into_iter()
                                .map(|r| root.call(&r.op, r.args))
                                .collect::<Vec<_>>())
                        })
                        .await;
                        match results {
                            Ok(results) => {
                                for (tx, r) in replies.into_iter().zip(results) {
                                    let _ = tx.send(r);
                                }
                                self.snapshot_if_due(owned, writer.next_seq());
                            }
                            Err(e) => {
                                // Logged but not applied here: this copy is no longer the log's.
                                self.drop_namespace(&owned.name);
                                for tx in replies {
                                    let _ = tx.send(Err(Error::Internal(e.to_string())));
                                }
                            }
                        }
                    }
                    Err(e) => {
                        if matches!(e, AppendError::Fenced(_)) {
                            self.drop_namespace(&owned.name);
                        }
                        let msg = format!("namespace {}: write not stored: {e}; retry", owned.name);
                        for tx in replies {
                            let _ = tx.send(Err(Error::Internal(msg.clone())));
                        }
                    }
                }
            }
        }
        rx.await.map_err(|_| Error::Internal("write abandoned".into()))?
    }

    /// Creates a namespace in the control plane (admin only). Its owner creates it in its
    /// engine when it takes it over.
    pub async fn create_namespace(&self, caller: &Caller, args: Value) -> Result<String> {
        if !matches!(caller, Caller::Admin) {
            return Err(Error::Forbidden {
                message: "only the admin key creates namespaces in cluster mode".into(),
                namespace: None,
            });
        }
        Request::parse("create_namespace", args.clone())?;
        if args.get("tenant_id").is_some_and(|t| !t.is_null()) {
            return Err(Error::invalid(
                "tenant_id",
                "tenants are not available in cluster mode yet",
            ));
        }
        let name = namespace_of("get_namespace", &args)?;
        let key = self.ns_key("namespaces", &name);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, args.to_string(), None)]);
        let resp = self.txn(&txn).await?;
        if !resp.succeeded() {
            return Err(Error::Conflict(format!("Namespace already exists: {name}")));
        }
        Ok(name)
    }

    /// Creates a namespace-scoped key in the control plane (admin only); the answer holds the
    /// only copy of the secret.
    pub async fn create_key(&self, caller: &Caller, args: Value) -> Result<Value> {
        if !matches!(caller, Caller::Admin) {
            return Err(Error::Forbidden {
                message: "only the admin key issues keys in cluster mode".into(),
                namespace: None,
            });
        }
        let Request::CreateKey(req) = Request::parse("create_key", args)? else {
            return Err(Error::Internal("create_key decoded as another operation".into()));
        };
        if req.tenant_id.is_some() || req.role.is_some() || req.member_id.is_some() {
            return Err(Error::invalid(
                "namespaces",
                "cluster mode issues namespace-scoped keys only (no tenant_id, role or member_id)",
            ));
        }
        if req.expires_at.is_some() {
            return Err(Error::invalid("expires_at", "not available in cluster mode yet"));
        }
        let name = req.name.trim().to_owned();
        if name.is_empty() || name.len() > 128 {
            return Err(Error::invalid("name", "must be 1-128 characters"));
        }
        let grants = req.namespaces.unwrap_or_default();
        if grants.is_empty() {
            return Err(Error::invalid("namespaces", "must name at least one namespace"));
        }
        let mut compares = Vec::new();
        let mut namespaces = Vec::new();
        for (i, g) in grants.iter().enumerate() {
            let key = self.ns_key("namespaces", &g.namespace);
            let found = self.get(&key, None).await?;
            if found.kvs().is_empty() {
                return Err(Error::invalid(
                    format!("namespaces[{i}].namespace"),
                    format!("no namespace {:?}", g.namespace),
                ));
            }
            compares.push(Compare::create_revision(key, CompareOp::Greater, 0));
            namespaces.push(Grant { namespace: g.namespace.clone(), access: g.access });
        }
        let (id, text, hash) = memsilo::auth::issue_external_key()?;
        let rec = KeyRecord {
            id: id.clone(),
            name,
            secret_sha256: hex(&hash),
            namespaces,
            created_at: chrono_now(),
            revoked_at: None,
        };
        let value = serde_json::to_string(&rec)?;
        let txn =
            Txn::new().when(compares).and_then([TxnOp::put(self.key("keys", &id), value, None)]);
        let resp = self.txn(&txn).await?;
        if !resp.succeeded() {
            return Err(Error::Conflict("a namespace of the key was deleted meanwhile".into()));
        }
        let mut out = serde_json::to_value(&rec)?;
        out["key"] = Value::String(text);
        if let Some(o) = out.as_object_mut() {
            o.remove("secret_sha256");
        }
        Ok(out)
    }

    /// Revokes a key of the control plane (admin only), for every node.
    pub async fn revoke_key(&self, caller: &Caller, id: &str) -> Result<Value> {
        if !matches!(caller, Caller::Admin) {
            return Err(Error::not_found("key", id));
        }
        let key = self.key("keys", id);
        let resp = self.get(&key, None).await?;
        let Some(kv) = resp.kvs().first() else { return Err(Error::not_found("key", id)) };
        let mut rec: KeyRecord = serde_json::from_slice(kv.value())?;
        if rec.revoked_at.is_some() {
            return Err(Error::not_found("key", id));
        }
        rec.revoked_at = Some(chrono_now());
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, kv.mod_revision())])
            .and_then([TxnOp::put(key, serde_json::to_string(&rec)?, None)]);
        if !self.txn(&txn).await?.succeeded() {
            return Err(Error::Conflict("the key changed meanwhile; retry".into()));
        }
        let mut out = serde_json::to_value(&rec)?;
        if let Some(o) = out.as_object_mut() {
            o.remove("secret_sha256");
        }
        Ok(out)
    }

    /// Sends a request on to the owner at `url`, unchanged but for a hop count.
    pub async fn forward(
        &self,
        url: &str,
        method: &str,
        path_and_query: &str,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    ) -> Result<Forwarded> {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| Error::Internal(e.to_string()))?;
        let mut req = self.http.request(method, format!("{url}{path_and_query}"));
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let resp = req.body(body).send().await.map_err(|e| {
            Error::Internal(format!("the namespace's owner at {url} did not answer ({e}); retry"))
        })?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter(|(n, _)| {
                let n = n.as_str();
                n == "content-type" || n == "retry-after" || n.starts_with("x-")
            })
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Error::Internal(format!("reading the owner's answer: {e}")))?
            .to_vec();
        Ok(Forwarded { status, headers, body })
    }
}

impl Node {
    /// Starts a snapshot in the background once `snapshot_every` log objects were written
    /// since the last one; the task goes on while more are due (writes that came in while it
    /// ran do not start a second one).
    fn snapshot_if_due(&self, owned: &Arc<Owned>, next: u64) {
        let every = self.config.snapshot_every;
        let due = move |owned: &Owned, next: u64| {
            every > 0 && next.saturating_sub(owned.snapshot_from.load(Ordering::Relaxed)) >= every
        };
        if !due(owned, next) || owned.snapshotting.swap(true, Ordering::AcqRel) {
            return;
        }
        let (engine, owned, node) =
            (self.engine.clone(), owned.clone(), self.config.node_id.clone());
        tokio::spawn(async move {
            loop {
                let started = Instant::now();
                let result = snapshot(engine.clone(), owned.clone()).await;
                match &result {
                    Ok(p) => eprintln!(
                        "memsilo cluster: node {node} snapshot of namespace {} up to log position {}: {} log objects deleted, {} ms",
                        owned.name,
                        p.log_from,
                        p.deleted,
                        started.elapsed().as_millis()
                    ),
                    Err(e) => eprintln!(
                        "memsilo cluster: node {node} snapshot of namespace {} failed: {e}",
                        owned.name
                    ),
                }
                owned.snapshotting.store(false, Ordering::Release);
                let next = owned.writer.lock().await.next_seq();
                if result.is_err()
                    || !due(&owned, next)
                    || owned.snapshotting.swap(true, Ordering::AcqRel)
                {
                    return;
                }
            }
        });
    }
}

/// Exports an owned namespace while its writes wait (so the export is the state after every
/// logged write so far), then stores it and moves the manifest to it.
async fn snapshot(engine: Engine, owned: Arc<Owned>) -> Result<Published> {
    let mut checkpoint = owned.checkpoint.lock().await;
    let (log_from, bytes) = {
        let writer = owned.writer.lock().await;
        let name = owned.name.clone();
        let bytes = blocking(move || export_snapshot(&engine.root(), &name)).await?;
        (writer.next_seq(), bytes)
    };
    let published = checkpoint.publish(log_from, bytes).await.map_err(|e| {
        Error::Internal(format!("namespace {}: snapshot not published: {e}", owned.name))
    })?;
    owned.snapshot_from.store(published.log_from, Ordering::Relaxed);
    Ok(published)
}

/// The namespace as export lines (JSON Lines), the format of `export_namespace`. Vectors the
/// namespace's embedder made are left out and made again on load (an imported vector marks a
/// namespace as holding caller-supplied vectors, which would refuse the text writes after it);
/// caller-supplied vectors are kept.
fn export_snapshot(root: &memsilo::Handle, ns: &str) -> Result<Vec<u8>> {
    let info = root.get_namespace(ns)?;
    let keep_vectors = info.embedder.as_deref().is_none_or(|e| e == memsilo::CALLER_EMBEDDER);
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let args =
            json!({ "namespace": ns, "cursor": cursor, "limit": memsilo::transfer::MAX_PAGE });
        let page: memsilo::transfer::ExportPage =
            serde_json::from_value(root.call("export_namespace", args)?.value)?;
        for mut line in page.lines {
            if !keep_vectors {
                if let Some(m) = line.as_object_mut() {
                    m.remove("vector");
                }
            }
            serde_json::to_writer(&mut out, &line)?;
            out.push(b'\n');
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

/// Loads a snapshot into namespace `ns` (created empty) with `import_namespace`.
fn import_snapshot(
    root: &memsilo::Handle,
    ns: &str,
    bytes: &[u8],
) -> Result<memsilo::transfer::ImportSummary> {
    let mut summary = memsilo::transfer::ImportSummary::default();
    let mut batcher = memsilo::transfer::Batcher::new(memsilo::transfer::DEFAULT_PAGE);
    let mut import = |batch: memsilo::transfer::Batch| -> Result<()> {
        let args = json!({ "namespace": ns, "lines": batch.lines, "first_line": batch.first_line });
        let done: memsilo::transfer::ImportSummary =
            serde_json::from_value(root.call("import_namespace", args)?.value)?;
        summary.add(done);
        Ok(())
    };
    for line in bytes.split(|b| *b == b'\n') {
        if let Some(batch) = batcher.push(line)? {
            import(batch)?;
        }
    }
    if let Some(batch) = batcher.finish() {
        import(batch)?;
    }
    Ok(summary)
}

enum Acquire {
    Owned(String),
    Failed(Error),
}

fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Fills in what the engine would choose at random (memory ids), so the logged write and its
/// replay are the same write; refuses arguments that reach beyond the routed namespace.
fn prepare(op: &str, ns: &str, args: &mut Value) -> Result<()> {
    let new_id = || Value::String(uuid::Uuid::now_v7().to_string());
    match op {
        "store_memory" if args.get("id").is_none_or(Value::is_null) => args["id"] = new_id(),
        "store_memories" => {
            if let Some(items) = args.get_mut("memories").and_then(Value::as_array_mut) {
                for (i, item) in items.iter_mut().enumerate() {
                    if !item.is_object() {
                        continue;
                    }
                    match item.get("namespace").and_then(Value::as_str) {
                        Some(other) if other != ns => {
                            return Err(Error::invalid(
                                format!("memories[{i}].namespace"),
                                "must be the batch's namespace",
                            ))
                        }
                        _ => {}
                    }
                    if item.get("id").is_none_or(Value::is_null) {
                        item["id"] = new_id();
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Keeps the lease alive; when it is lost, drops every namespace and joins again with a new one.
async fn keep_alive(node: Arc<Node>) {
    let ttl = node.config.lease_ttl.max(1);
    let period = Duration::from_millis((ttl as u64 * 1000 / 3).max(200));
    loop {
        let id = node.lease.read().id;
        let mut etcd = node.etcd.clone();
        if let Ok((mut keeper, mut stream)) = etcd.lease_keep_alive(id).await {
            loop {
                let sent = Instant::now();
                if keeper.keep_alive().await.is_err() {
                    break;
                }
                match tokio::time::timeout(period, stream.message()).await {
                    Ok(Ok(Some(resp))) if resp.ttl() > 0 => {
                        node.lease.write().valid_until =
                            sent + Duration::from_secs(resp.ttl() as u64);
                    }
                    Ok(Ok(Some(_))) => {
                        // Expired in etcd: stop serving as owner now.
                        node.lease.write().valid_until = Instant::now();
                        break;
                    }
                    _ => {
                        if Instant::now() >= node.lease.read().valid_until {
                            break;
                        }
                        continue;
                    }
                }
                tokio::time::sleep(period.saturating_sub(sent.elapsed())).await;
            }
        }
        // Lost (or cannot renew before it runs out): nothing is ours any more.
        if Instant::now() >= node.lease.read().valid_until {
            node.owned.lock().clear();
            match etcd.lease_grant(ttl, None).await {
                Ok(granted) => {
                    *node.lease.write() = Lease {
                        id: granted.id(),
                        valid_until: Instant::now()
                            + Duration::from_secs(granted.ttl().max(1) as u64),
                    };
                    let _ = node.register().await;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Follows the key table. While the watch is down the table is marked unsynced (scoped keys
/// are refused) until it is read again.
async fn watch_keys(node: Arc<Node>, mut revision: i64) {
    loop {
        let mut etcd = node.etcd.clone();
        let options = WatchOptions::new().with_prefix().with_start_revision(revision + 1);
        if let Ok(mut stream) = etcd.watch(node.key("keys", ""), Some(options)).await {
            while let Ok(Some(resp)) = stream.message().await {
                if resp.canceled() {
                    break;
                }
                let mut cache = node.keys.write();
                for event in resp.events() {
                    let Some(kv) = event.kv() else { continue };
                    revision = revision.max(kv.mod_revision());
                    match event.event_type() {
                        EventType::Put => {
                            if let Ok(rec) = serde_json::from_slice::<KeyRecord>(kv.value()) {
                                cache.keys.insert(rec.id.clone(), rec);
                            }
                        }
                        EventType::Delete => {
                            let key = String::from_utf8_lossy(kv.key()).into_owned();
                            if let Some(id) = key.rsplit('/').next() {
                                cache.keys.remove(id);
                            }
                        }
                    }
                }
            }
        }
        node.keys.write().synced = false;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Ok(r) = node.load_keys().await {
                revision = r;
                break;
            }
        }
    }
}
