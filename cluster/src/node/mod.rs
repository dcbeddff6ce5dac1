//! One cluster node: its lease in etcd, the namespaces it owns, its copy of the control plane,
//! and the write path of an owned namespace (group commit to the namespace's log, then the
//! local engine, then the answer).
//!
//! - [`etcd`]: every etcd call, retried on the other members while one is down.
//! - [`lease`]: the node's lease (registration, keep-alive, leaving). A namespace is served as
//!   owner only while the lease is valid; when it is lost every owned namespace is dropped.
//! - [`watch`]: the node's copy of the control plane (keys, tenants, members, nodes), read at
//!   one revision and followed by a watch; while the watch is down scoped keys are refused.
//! - [`admission`]: who a key is, and each tenant's share of `qps_limit` on this node.
//! - [`operations`]: which operations run on a namespace's owner, and the namespace they name.
//! - [`ownership`]: routing a namespace to its owner, taking it over (claim in etcd, rebuild
//!   from the log), and the state of an owned namespace.
//! - [`serve`]: reads and writes on an owned namespace; a write is logged before it is applied.
//! - [`snapshots`]: an owned namespace's snapshots (export lines) and loading them back.
//! - [`forward`]: passing a request on to the owner.

mod admission;
mod etcd;
mod forward;
mod lease;
mod operations;
mod ownership;
mod serve;
mod snapshots;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memsilo::{Engine, Error, Result};
use object_store::ObjectStore;
use parking_lot::{Mutex, RwLock};
use tokio::sync::OnceCell;

use crate::control::{hex, KeyCache};

pub use forward::Forwarded;
pub use operations::{namespace_of, namespace_op};
pub use ownership::{Owned, Target};
pub use watch::WATCH_PROGRESS;

use etcd::with_retry;
use lease::{keep_alive, Lease};
use watch::watch_keys;

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

    pub(crate) fn key(&self, kind: &str, name: &str) -> String {
        format!("/{}/{kind}/{name}", self.config.prefix.trim_matches('/'))
    }

    pub(crate) fn ns_key(&self, kind: &str, ns: &str) -> String {
        self.key(kind, &hex(ns.as_bytes()))
    }

    /// The node's id.
    pub fn id(&self) -> &str {
        &self.config.node_id
    }

    /// The local engine (the cache of owned namespaces).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}
