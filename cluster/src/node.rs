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

/// A write waiting for its namespace's log: the record, whether it must keep the policy (an
/// import by a key that does not administer the namespace), and where its answer goes.
type Waiting = (Record, bool, oneshot::Sender<Result<Reply>>);

/// A namespace this node owns.
pub struct Owned {
    pub(crate) name: String,
    pub(crate) lease: i64,
    /// When the namespace was created (the control plane's record; the local copy's is the
    /// time this node loaded it).
    created_at: Option<Value>,
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
    pending: Mutex<Vec<Waiting>>,
    pub(crate) checkpoint: tokio::sync::Mutex<Checkpointer>,
    /// The manifest's `log_from` (what the last snapshot holds), read without the lock.
    snapshot_from: AtomicU64,
    /// A snapshot is being taken.
    snapshotting: AtomicBool,
}

impl Owned {
    /// The namespace's tenant (the control plane's record of it).
    pub fn tenant_id(&self) -> Option<&str> {
        self.tenant_id.as_deref()
    }
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
    pub(crate) config: Config,
    pub(crate) engine: Engine,
    etcd: etcd_client::Client,
    pub(crate) store: Arc<dyn ObjectStore>,
    lease: RwLock<Lease>,
    pub(crate) owned: Mutex<HashMap<String, Arc<OnceCell<Arc<Owned>>>>>,
    /// The key sealing namespace list cursors (the same on every node; `namespaces.rs`).
    pub(crate) cursor_key: OnceCell<[u8; 32]>,
    keys: RwLock<KeyCache>,
    /// This node's share of each tenant's `qps_limit` (core's limiter).
    limiter: memsilo::RateLimiter,
    /// The tenants' audit chains in object storage (`audit.rs`).
    pub(crate) audit: Arc<crate::audit::AuditChains>,
    http: reqwest::Client,
}

fn etcd_err(e: etcd_client::Error) -> Error {
    Error::internal_from("etcd", e)
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
            Err(e) => return Err(etcd_err(e)),
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
    "delete_namespace",
    "get_memory_policy",
    "set_memory_policy",
    "batch_forget",
    "import_namespace",
    "list_memories",
    "count_memories",
    "export_namespace",
    "get_entity",
    "neighbors",
    "subgraph",
    "shortest_path",
    "add_entity",
    "add_relation",
    "delete_entity",
    "delete_relation",
    "get_session",
    "list_sessions",
    "session_memories",
    "start_session",
    "end_session",
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
    let field =
        if matches!(op, "get_namespace" | "delete_namespace") { "name" } else { "namespace" };
    let given = args.get(field).and_then(Value::as_str);
    // Core reads the namespace of these calls from `agent_id` when `namespace` is absent
    // (how Dakera's SDKs name it); the owner runs them with the arguments as they are.
    let agent = || {
        AGENT_NAMES_NAMESPACE
            .contains(&op)
            .then(|| args.get("agent_id").and_then(Value::as_str))
            .flatten()
    };
    given
        .or_else(agent)
        .map(str::to_owned)
        .ok_or_else(|| Error::invalid(field, "required in cluster mode"))
}

/// The operations whose missing `namespace` core takes from `agent_id`
/// (`Handle::memory_namespace` with an agent).
const AGENT_NAMES_NAMESPACE: &[&str] =
    &["store_memory", "recall", "batch_forget", "start_session", "list_sessions"];

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::internal_from("worker failed", e))?
}

impl Node {
    /// Joins the cluster: connects to etcd, takes a lease, registers this node and loads the
    /// key table. Spawns the keep-alive and the key watch on the current runtime.
    pub async fn start(
        config: Config,
        engine: Engine,
        store: Arc<dyn ObjectStore>,
    ) -> std::result::Result<Arc<Node>, String> {
        let etcd = etcd_client::Client::connect(&config.etcd, None)
            .await
            .map_err(|e| format!("cannot connect to etcd {:?}: {e}", config.etcd))?;
        // A listed member that is down fails the first call sent its way: the lease, like
        // every etcd call, is tried again on the others.
        let ttl = config.lease_ttl;
        let granted = with_retry(&etcd, |mut c| async move { c.lease_grant(ttl, None).await })
            .await
            .map_err(|e| format!("etcd lease: {e}"))?;
        let lease = Lease {
            id: granted.id(),
            valid_until: Instant::now() + Duration::from_secs(granted.ttl().max(1) as u64),
        };
        let audit = Arc::new(crate::audit::AuditChains::new(store.clone(), &config.prefix));
        let node = Arc::new(Node {
            config,
            engine,
            etcd,
            store,
            lease: RwLock::new(lease),
            owned: Mutex::default(),
            keys: RwLock::default(),
            limiter: memsilo::RateLimiter::default(),
            cursor_key: OnceCell::new(),
            audit,
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

    pub(crate) async fn get(
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

    pub(crate) async fn txn(&self, txn: &Txn) -> Result<etcd_client::TxnResponse> {
        with_retry(&self.etcd, |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
    }

    pub(crate) fn key(&self, kind: &str, name: &str) -> String {
        format!("/{}/{kind}/{name}", self.config.prefix.trim_matches('/'))
    }

    pub(crate) fn ns_key(&self, kind: &str, ns: &str) -> String {
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

    /// Reads the key table and the tenants (at one revision); returns that revision.
    async fn load_keys(&self) -> Result<i64> {
        let resp = self.get(&self.key("keys", ""), Some(GetOptions::new().with_prefix())).await?;
        let mut keys = HashMap::new();
        for kv in resp.kvs() {
            if let Ok(rec) = serde_json::from_slice::<KeyRecord>(kv.value()) {
                keys.insert(rec.id.clone(), rec);
            }
        }
        let revision = resp.header().map_or(0, etcd_client::ResponseHeader::revision);
        let at = GetOptions::new().with_prefix().with_revision(revision);
        let mut tenants = HashMap::new();
        for kv in self.get(&self.key("tenants", ""), Some(at.clone())).await?.kvs() {
            if let Ok(t) = serde_json::from_slice::<memsilo::Tenant>(kv.value()) {
                tenants.insert(t.id.clone(), t);
            }
        }
        let mut members = HashMap::new();
        for kv in self.get(&self.key("members", ""), Some(at.clone())).await?.kvs() {
            if let Ok(m) = serde_json::from_slice::<memsilo::Member>(kv.value()) {
                members.insert(format!("{}/{}", m.tenant_id, m.member_id), m);
            }
        }
        let nodes_prefix = self.key("nodes", "");
        let nodes = (self.get(&nodes_prefix, Some(at.with_keys_only())).await?.kvs().iter())
            .map(|kv| {
                String::from_utf8_lossy(kv.key()).trim_start_matches(&nodes_prefix).to_owned()
            })
            .collect();
        *self.keys.write() = KeyCache { synced: true, keys, tenants, members, nodes };
        Ok(revision)
    }

    /// A key as this node's cache has it.
    pub(crate) fn cached_key(&self, id: &str) -> Option<KeyRecord> {
        self.keys.read().keys.get(id).cloned()
    }

    /// A tenant as this node's cache has it (`None` when not known here).
    pub(crate) fn cached_tenant(&self, id: &str) -> Option<memsilo::Tenant> {
        self.keys.read().tenants.get(id).cloned()
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

    /// Charges one request of `caller` to this node's share of its tenant's `qps_limit`:
    /// `ceil(qps_limit / live nodes)`, with core's limiter (`rate_limited` naming the share
    /// when it is used up). Every node a request passes through charges it, so the cluster
    /// admits at most `live nodes × share` (< `qps_limit` + live nodes) requests a second for
    /// a tenant, however its clients spread them; a client using one node gets its share.
    pub fn admit(&self, caller: &Caller) -> Result<()> {
        let Some(tenant_id) = caller.tenant_id() else { return Ok(()) };
        // The tenant's share and each ancestor's: a child's requests count against every
        // ancestor's `qps_limit` too, as on one node.
        let shares = {
            let cache = self.keys.read();
            let nodes = u32::try_from(cache.nodes.len().max(1)).unwrap_or(u32::MAX);
            let mut shares = Vec::new();
            let mut next = cache.tenants.get(tenant_id);
            while let Some(tenant) = next.take() {
                if shares.len() >= memsilo::MAX_TENANT_DEPTH {
                    break;
                }
                shares.push((tenant.id.clone(), tenant.quotas.qps_limit.div_ceil(nodes).max(1)));
                next = tenant.parent_id.as_ref().and_then(|p| cache.tenants.get(p));
            }
            shares
        };
        let now = chrono::Utc::now().timestamp_micros();
        for (id, share) in &shares {
            if let Err(e) = self.limiter.admit(id, *share, now) {
                // The caller is told about its own tenant and share, whichever link binds.
                return Err(match (e, shares.first()) {
                    (Error::RateLimited { retry_after_secs, .. }, Some((own, limit))) => {
                        Error::RateLimited { tenant: own.clone(), limit: *limit, retry_after_secs }
                    }
                    (other, _) => other,
                });
            }
        }
        Ok(())
    }

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
            .map_err(|e| Error::Internal(format!("namespace {ns}: log: {e}")))?;
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

    /// Snapshots an owned namespace now (what `snapshot_every` does on its own): the export is
    /// read while its writes wait, then stored and published without holding them.
    pub async fn snapshot(&self, owned: &Arc<Owned>) -> Result<Published> {
        snapshot(self.engine.clone(), owned.clone()).await
    }

    pub(crate) fn drop_namespace(&self, ns: &str) {
        self.owned.lock().remove(ns);
    }

    /// Runs a read on an owned namespace.
    pub async fn read(&self, owned: &Owned, op: &str, args: Value) -> Result<Reply> {
        let engine = self.engine.clone();
        let op = op.to_owned();
        let get_namespace = op == "get_namespace";
        if owned.deleted.load(Ordering::Acquire) {
            return Err(Error::not_found("namespace", &owned.name));
        }
        let mut reply = blocking(move || engine.root().call(&op, args)).await?;
        if get_namespace {
            // The local copy has no tenant: the control plane's record has it.
            reply.value["tenant_id"] = owned.tenant_id.clone().map_or(Value::Null, Value::String);
            if let Some(created_at) = &owned.created_at {
                reply.value["created_at"] = created_at.clone();
            }
        }
        Ok(reply)
    }

    /// Runs a write on an owned namespace: logged (grouped with the writes queued meanwhile)
    /// before it is applied; answered once its log object is stored. With `keep_policy` (an
    /// import by a tenant editor, who may import but not change the policy, as on one node)
    /// the import is checked when its group is formed, against the policy every earlier
    /// logged write left: refused (`forbidden`) if a namespace line carries another policy,
    /// or (`conflict`, retry) if a write before it in its group may change the policy; so its
    /// replay never changes the policy either.
    pub async fn write(
        &self,
        owned: &Arc<Owned>,
        op: &str,
        mut args: Value,
        keep_policy: bool,
    ) -> Result<Reply> {
        prepare(op, &owned.name, &mut args)?;
        Request::parse(op, args.clone())?;
        // Deletes and policy changes are never refused for storage.
        if !(op.starts_with("delete_") || matches!(op, "batch_forget" | "set_memory_policy")) {
            self.make_room(owned).await?;
        }
        let (tx, rx) = oneshot::channel();
        let record = Record { op: op.to_owned(), args, ids: memsilo::GraphIds::fresh(op) };
        owned.pending.lock().push((record, keep_policy, tx));
        {
            let mut writer = owned.writer.lock().await;
            let batch = std::mem::take(&mut *owned.pending.lock());
            let batch = if owned.deleted.load(Ordering::Acquire) {
                // Deleted while these waited: nothing of them is logged.
                for (_, _, tx) in batch {
                    let _ = tx.send(Err(Error::not_found("namespace", &owned.name)));
                }
                Vec::new()
            } else {
                self.keeping_policy(&owned.name, batch).await
            };
            if !batch.is_empty() {
                let (records, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                match writer.append(records.clone()).await {
                    Ok(()) => {
                        let engine = self.engine.clone();
                        let name = owned.name.clone();
                        let results = blocking(move || {
                            let root = engine.root();
                            let results =
                                records.into_iter().map(|r| r.apply(&root)).collect::<Vec<_>>();
                            // Read after the group; kept as it was if it cannot be read.
                            Ok((results, storage_bytes(&root, &name).ok()))
                        })
                        .await;
                        match results {
                            Ok((results, used)) => {
                                if let Some(used) = used {
                                    owned.used.store(used, Ordering::Release);
                                }
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

    /// The group of writes `batch` without the imports marked to keep the policy that would
    /// change it (answered with their refusal); the others as they are.
    async fn keeping_policy(
        &self,
        ns: &str,
        batch: Vec<Waiting>,
    ) -> Vec<(Record, oneshot::Sender<Result<Reply>>)> {
        let policy_lines = |r: &Record| -> Vec<(u64, Value)> {
            let lines = r.args.get("lines").and_then(Value::as_array);
            let first = r.args.get("first_line").and_then(Value::as_u64).unwrap_or(1);
            (lines.into_iter().flatten().zip(first..))
                .filter(|(l, _)| l.get("kind").and_then(Value::as_str) == Some("namespace"))
                .map(|(l, n)| (n, l.get("policy").cloned().unwrap_or_else(|| json!({}))))
                .collect()
        };
        let current = if batch.iter().any(|(_, keep, _)| *keep) {
            let engine = self.engine.clone();
            let name = ns.to_owned();
            blocking(move || Ok(serde_json::to_value(engine.root().get_memory_policy(&name)?)?))
                .await
        } else {
            Ok(Value::Null)
        };
        let mut changed = false;
        let mut out = Vec::with_capacity(batch.len());
        for (record, keep, tx) in batch {
            if !keep {
                // Conservatively: any policy write or import with a namespace line may change it.
                changed |= record.op == "set_memory_policy"
                    || (record.op == "import_namespace" && !policy_lines(&record).is_empty());
                out.push((record, tx));
                continue;
            }
            let lines = policy_lines(&record);
            let refusal = match &current {
                _ if lines.is_empty() => None,
                Err(e) => Some(Error::Internal(format!("reading the policy: {e}"))),
                Ok(_) if changed => Some(Error::Conflict(
                    "the namespace's policy may change in the same group of writes; retry".into(),
                )),
                Ok(policy) => lines.iter().find(|(_, p)| p != policy).map(|(line, _)| {
                    Error::Forbidden {
                        message: format!(
                            "line {line}: the export's decay policy differs and setting it needs an admin key"
                        ),
                        namespace: Some(ns.to_owned()),
                    }
                }),
            };
            match refusal {
                Some(e) => {
                    let _ = tx.send(Err(e));
                }
                None => out.push((record, tx)),
            }
        }
        out
    }

    /// Creates a namespace in the control plane: the admin key, or a tenant admin's key in its
    /// tenant (its own tenant when none is given), by core's rule (`CreateNamespace`). Its
    /// owner creates it in its engine when it takes it over.
    pub async fn create_namespace(&self, caller: &Caller, mut args: Value) -> Result<String> {
        if let Caller::Member { tenant_id, .. } = caller {
            if args.is_object() && args.get("tenant_id").is_none_or(Value::is_null) {
                args["tenant_id"] = Value::String(tenant_id.clone());
            }
        }
        let Request::CreateNamespace(req) = Request::parse("create_namespace", args.clone())?
        else {
            return Err(Error::Internal("create_namespace decoded as another operation".into()));
        };
        memsilo::auth::authorize(
            &caller.principal(),
            memsilo::auth::Action::CreateNamespace(req.tenant_id.as_deref()),
        )?;
        let name = namespace_of("get_namespace", &args)?;
        let key = self.ns_key("namespaces", &name);
        // The record is the creation's arguments and its time (the owners' copies are
        // created when they load it).
        let mut record = args.clone();
        record["created_at"] = serde_json::to_value(chrono::Utc::now())?;
        let record = record.to_string();
        // Taken: `conflict`, unless `exist_ok` and it is the same tenant's.
        let tenant = req.tenant_id.clone();
        let exists = |found: &etcd_client::GetResponse| {
            let same_tenant = found.kvs().first().is_some_and(|kv| {
                let rec: Value = serde_json::from_slice(kv.value()).unwrap_or(Value::Null);
                rec.get("tenant_id").and_then(Value::as_str) == tenant.as_deref()
            });
            if req.exist_ok && same_tenant {
                Ok(name.clone())
            } else {
                Err(Error::Conflict(format!("Namespace already exists: {name}")))
            }
        };
        let Some(tenant_id) = req.tenant_id else {
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.clone(), record, None)]);
            if self.txn(&txn).await?.succeeded() {
                return Ok(name);
            }
            return exists(&self.get(&key, None).await?);
        };
        // A tenant's namespace: counted against its `max_namespaces` (and its ancestors') with
        // a compare on the counts' revisions, so concurrent creations through several nodes
        // cannot exceed it.
        for _ in 0..20 {
            let found = self.get(&key, None).await?;
            if !found.kvs().is_empty() {
                return exists(&found);
            }
            let (tenant, _) = match self.tenant_record(&tenant_id).await {
                Err(e) if e.code() == memsilo::ErrorCode::NotFound => {
                    return Err(Error::invalid(
                        "tenant_id",
                        format!("no tenant with id {tenant_id}"),
                    ))
                }
                other => other?,
            };
            if tenant.status != memsilo::TenantStatus::Active {
                return Err(Error::invalid("tenant_id", "the tenant is not active"));
            }
            // Counted against the tenant's limit and every ancestor's (each its subtree).
            let (mut when, mut then) =
                self.count(&tenant_id, crate::tenants::Counted::Namespaces, true).await?;
            when.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0));
            then.push(TxnOp::put(key.clone(), record.clone(), None));
            let txn = Txn::new().when(when).and_then(then);
            if self.txn(&txn).await?.succeeded() {
                return Ok(name);
            }
        }
        Err(Error::Internal("the control plane kept changing under this request; retry".into()))
    }

    /// Whether `caller` may issue the key `req` asks for (core's rules): a tenant key needs
    /// `IssueKey` in its tenant; a namespace-scoped key, administration of each namespace
    /// (`forbidden` otherwise, whether or not it exists). Returns the member the caller's key
    /// is bound to (the new key's issuer) and the guard that it is still a member when the key
    /// is stored.
    async fn may_issue(
        &self,
        caller: &Caller,
        req: &memsilo::CreateKey,
        tenant_key: Option<&str>,
    ) -> Result<(Option<String>, Vec<Compare>)> {
        use memsilo::auth::{authorize, Action};
        let principal = caller.principal();
        if let Some(tid) = tenant_key {
            authorize(&principal, Action::AdministerTenant(Some(tid)))?;
            let role = req.role.unwrap_or(memsilo::Role::Admin);
            authorize(&principal, Action::IssueKey(Some(tid), role))?;
        } else if !matches!(caller, Caller::Admin) {
            for g in req.namespaces.iter().flatten() {
                self.check_manages(caller, &g.namespace).await?;
            }
        }
        let issuer = match &principal {
            memsilo::Principal::Member { member_id, .. } => member_id.clone(),
            _ => None,
        };
        let mut compares = Vec::new();
        if let (Some(mid), Some(tid)) = (&issuer, caller.tenant_id()) {
            let member = self.key("members", &format!("{tid}/{mid}"));
            let found = self.get(&member, None).await?;
            let Some(kv) = found.kvs().first() else {
                return Err(Error::Unauthorized("API key revoked".into()));
            };
            compares.push(Compare::mod_revision(member, CompareOp::Equal, kv.mod_revision()));
        }
        Ok((issuer, compares))
    }

    /// Creates a key in the control plane, by core's rules as on one node: the admin key any
    /// key; a tenant admin's key its tenant's keys (never stronger than its own role, and
    /// namespace-scoped keys only for namespaces it administers). A key issued by a key bound
    /// to a member records that member (`issuer_member_id`) and dies with the membership. The
    /// answer holds the only copy of the secret.
    pub async fn create_key(&self, caller: &Caller, args: Value) -> Result<Value> {
        let Request::CreateKey(req) = Request::parse("create_key", args)? else {
            return Err(Error::Internal("create_key decoded as another operation".into()));
        };
        // The request's shape is checked by core's rules, as on one node.
        let tenant_key = req.check_shape()?.map(str::to_owned);
        req.check_expiry(chrono::Utc::now())?;
        let name = req.name.trim().to_owned();
        let grants = req.namespaces.clone().unwrap_or_default();
        let (issuer_member_id, mut compares) =
            self.may_issue(caller, &req, tenant_key.as_deref()).await?;
        let mut namespaces = Vec::new();
        if let Some(tid) = &tenant_key {
            // A tenant key: its tenant (and member) must exist until the key is stored.
            let tenant = self.key("tenants", tid);
            let found = self.get(&tenant, None).await?;
            let Some(kv) = found.kvs().first() else {
                return Err(Error::invalid("tenant_id", format!("no tenant with id {tid}")));
            };
            compares.push(Compare::mod_revision(tenant, CompareOp::Equal, kv.mod_revision()));
            if let Some(mid) = &req.member_id {
                let member = self.key("members", &format!("{tid}/{mid}"));
                let found = self.get(&member, None).await?;
                let Some(kv) = found.kvs().first() else {
                    return Err(Error::invalid(
                        "member_id",
                        format!("no member {mid} in tenant {tid}"),
                    ));
                };
                compares.push(Compare::mod_revision(member, CompareOp::Equal, kv.mod_revision()));
            }
        }
        // A namespace-scoped key's tenant, as the engine decides it: the one given (every
        // namespace must be its), else the one every namespace belongs to.
        let mut tenants = std::collections::BTreeSet::new();
        for (i, g) in grants.iter().enumerate() {
            let field = format!("namespaces[{i}].namespace");
            let key = self.ns_key("namespaces", &g.namespace);
            let found = self.get(&key, None).await?;
            let Some(kv) = found.kvs().first() else {
                return Err(Error::invalid(field, format!("no namespace {:?}", g.namespace)));
            };
            let record: Value = serde_json::from_slice(kv.value()).unwrap_or(Value::Null);
            let owner = record.get("tenant_id").and_then(Value::as_str).map(str::to_owned);
            match (&req.tenant_id, &owner) {
                (Some(t), Some(o)) if t != o => {
                    return Err(Error::invalid(field, "namespace belongs to another tenant"));
                }
                (Some(_), None) => {
                    return Err(Error::invalid(field, "namespace belongs to no tenant"));
                }
                _ => {}
            }
            tenants.insert(owner);
            compares.push(Compare::mod_revision(key, CompareOp::Equal, kv.mod_revision()));
            namespaces.push(Grant { namespace: g.namespace.clone(), access: g.access });
        }
        let tenant_id = match req.tenant_id.clone() {
            Some(t) => Some(t),
            None if tenants.len() == 1 => tenants.into_iter().next().flatten(),
            None => None,
        };
        let (id, text, hash) = memsilo::auth::issue_external_key()?;
        let rec = KeyRecord {
            id: id.clone(),
            name,
            secret_sha256: hex(&hash),
            tenant_id,
            namespaces,
            role: req.role,
            member_id: req.member_id.clone(),
            issuer_member_id,
            created_at: chrono::Utc::now(),
            expires_at: req.expires_at,
            revoked_at: None,
            rotated_at: None,
        };
        let value = serde_json::to_string(&rec)?;
        let txn =
            Txn::new().when(compares).and_then([TxnOp::put(self.key("keys", &id), value, None)]);
        let resp = self.txn(&txn).await?;
        if !resp.succeeded() {
            return Err(Error::Conflict(
                "the key's namespaces, tenant or member changed meanwhile; retry".into(),
            ));
        }
        Ok(serde_json::to_value(memsilo::CreatedKey { info: rec.view(), key: text })?)
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
            .map_err(|e| Error::internal_from("forwarded method", e))?;
        let mut req = self.http.request(method, format!("{url}{path_and_query}"));
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let resp = req.body(body).send().await.map_err(|e| {
            Error::internal_from(
                format!("the namespace's owner at {url} did not answer (retry)"),
                e,
            )
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
            .map_err(|e| Error::internal_from("reading the owner's answer", e))?
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
        Error::internal_from(format!("namespace {}: snapshot not published", owned.name), e)
    })?;
    owned.snapshot_from.store(published.log_from, Ordering::Relaxed);
    Ok(published)
}

/// The namespace as export lines (JSON Lines), the format of `export_namespace`, vectors
/// included: the namespace line names the embedder that made them (`memsilo-export/3`), so a
/// node loading the snapshot with the same embedder keeps them instead of embedding every
/// memory again (with another embedder, the import embeds them again itself).
fn export_snapshot(root: &memsilo::Handle, ns: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let args =
            json!({ "namespace": ns, "cursor": cursor, "limit": memsilo::transfer::MAX_PAGE });
        let page: memsilo::transfer::ExportPage =
            serde_json::from_value(root.call("export_namespace", args)?.value)?;
        for line in page.lines {
            serde_json::to_writer(&mut out, &line)?;
            out.push(b'\n');
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

/// Bytes namespace `ns` uses in the local engine (core's own figure).
fn storage_bytes(root: &memsilo::Handle, ns: &str) -> Result<u64> {
    Ok(root.get_namespace(ns)?.storage_bytes)
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
        // Later batches name the vectors' embedder too (the namespace line is in the first).
        summary.add(root.import_batch(batch.into_args(ns))?);
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

/// Fills in what the engine would choose at random in the arguments (memory and session ids;
/// a graph write's ids travel beside them, [`Record::ids`]), so the logged write and its
/// replay are the same write; refuses arguments that reach beyond the routed namespace.
fn prepare(op: &str, ns: &str, args: &mut Value) -> Result<()> {
    let new_id = || Value::String(uuid::Uuid::now_v7().to_string());
    match op {
        "store_memory" | "start_session" if args.get("id").is_none_or(Value::is_null) => {
            args["id"] = new_id();
        }
        // Only what is the same at every replay: an effective importance is decayed by the
        // time, so a replay later would forget more.
        "batch_forget" if args.get("below_importance").is_some_and(|v| !v.is_null()) => {
            return Err(Error::invalid(
                "below_importance",
                "not available in cluster mode: the effective importance depends on the time a \
                 logged forget is replayed; forget by ids, tags, agent_id, before or filter",
            ));
        }
        // Memory and entity lines without an id get one now (as a store does), so a replay
        // imports the same ids; lines given as text are logged as the objects they hold.
        "import_namespace" => {
            if let Some(lines) = args.get_mut("lines").and_then(Value::as_array_mut) {
                for line in lines.iter_mut() {
                    if let Some(parsed) =
                        line.as_str().and_then(|t| serde_json::from_str::<Value>(t).ok())
                    {
                        *line = parsed;
                    }
                    let kind = line.get("kind").and_then(Value::as_str);
                    if matches!(kind, Some("memory" | "entity"))
                        && line.get("id").is_none_or(Value::is_null)
                    {
                        line["id"] = new_id();
                    }
                }
            }
        }
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

/// How often a node asks etcd whether its control plane watch is alive (a progress
/// notification). A watch silent for twice this is given up: the node refuses scoped keys
/// until it has read the table again, so a revoked key stops working on every node within
/// three periods even when the node's watch stalls without breaking.
pub const WATCH_PROGRESS: Duration = Duration::from_secs(1);

/// Follows the control plane (the key table and the tenants: one watch on the cluster's
/// prefix). While the watch is down the cache is marked unsynced (scoped keys are refused)
/// until it is read again.
async fn watch_keys(node: Arc<Node>, mut revision: i64) {
    let members = node.key("members", "");
    let namespaces = node.key("namespaces", "");
    let (keys, tenants, nodes) =
        (node.key("keys", ""), node.key("tenants", ""), node.key("nodes", ""));
    loop {
        let mut etcd = node.etcd.clone();
        let options = WatchOptions::new().with_prefix().with_start_revision(revision + 1);
        let all = format!("/{}/", node.config.prefix.trim_matches('/'));
        if let Ok(mut stream) = etcd.watch(all, Some(options)).await {
            // A watch can stay open and say nothing (a half-open connection, a stuck member):
            // ask etcd for a progress notification every WATCH_PROGRESS, and give the watch up
            // (fail closed, then read the table again) when nothing came for twice that.
            let mut heard = Instant::now();
            loop {
                let resp = tokio::select! {
                    msg = stream.message() => match msg {
                        Ok(Some(resp)) => resp,
                        _ => break,
                    },
                    () = tokio::time::sleep(WATCH_PROGRESS) => {
                        if heard.elapsed() > 2 * WATCH_PROGRESS {
                            eprintln!(
                                "memsilo cluster: node {}: the control plane watch was silent for {} ms; reading it again",
                                node.config.node_id,
                                heard.elapsed().as_millis()
                            );
                            break;
                        }
                        let _ = stream.request_progress().await;
                        continue;
                    }
                };
                heard = Instant::now();
                if resp.canceled() {
                    break;
                }
                let mut cache = node.keys.write();
                for event in resp.events() {
                    let Some(kv) = event.kv() else { continue };
                    revision = revision.max(kv.mod_revision());
                    let key = String::from_utf8_lossy(kv.key());
                    let put = event.event_type() == EventType::Put;
                    if let Some(id) = key.strip_prefix(keys.as_str()) {
                        if !put {
                            cache.keys.remove(id);
                        } else if let Ok(rec) = serde_json::from_slice::<KeyRecord>(kv.value()) {
                            cache.keys.insert(rec.id.clone(), rec);
                        }
                    } else if let Some(id) = key.strip_prefix(tenants.as_str()) {
                        if !put {
                            cache.tenants.remove(id);
                        } else if let Ok(t) = serde_json::from_slice::<memsilo::Tenant>(kv.value())
                        {
                            cache.tenants.insert(t.id.clone(), t);
                        }
                    } else if let Some(id) = key.strip_prefix(members.as_str()) {
                        if !put {
                            cache.members.remove(id);
                        } else if let Ok(m) = serde_json::from_slice::<memsilo::Member>(kv.value())
                        {
                            cache.members.insert(id.to_owned(), m);
                        }
                    } else if let Some(name) = key.strip_prefix(namespaces.as_str()) {
                        // Deleted on its owner: a copy left here from an earlier ownership goes.
                        if let Some(name) = crate::namespaces::unhex(name).filter(|_| !put) {
                            node.forget_copy(name);
                        }
                    } else if let Some(id) = key.strip_prefix(nodes.as_str()) {
                        if put {
                            cache.nodes.insert(id.to_owned());
                        } else {
                            cache.nodes.remove(id);
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

#[cfg(test)]
mod tests {
    /// An etcd failure is the internal error's cause (`source`, and `causes` in its body), not
    /// only words in its message.
    #[test]
    fn an_etcd_failure_is_the_internal_errors_cause() {
        let e = super::etcd_err(etcd_client::Error::InvalidArgs("no key".into()));
        assert_eq!(e.code(), memsilo::ErrorCode::Internal);
        assert_eq!(e.to_string(), "internal error: etcd: invalid arguments: no key");
        assert_eq!(e.causes(), ["invalid arguments: no key"]);
        assert!(std::error::Error::source(&e).is_some());
    }
}
