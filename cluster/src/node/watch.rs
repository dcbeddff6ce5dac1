//! The node's copy of the control plane: API keys (hashes only), tenants, members and live
//! nodes, read at one etcd revision and followed from the next one by a single watch on the
//! cluster's prefix. While the watch is down (or silent past its progress deadline) the copy
//! is marked unsynced and scoped keys are refused until it is read again, so a revoked key
//! stops working on every node within a bounded time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{EventType, GetOptions, WatchOptions};
use memsilo::Result;

use super::Node;
use crate::control::{KeyCache, KeyRecord};

impl Node {
    /// Reads the key table and the tenants (at one revision); returns that revision.
    pub(super) async fn load_keys(&self) -> Result<i64> {
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
}

/// How often a node asks etcd whether its control plane watch is alive (a progress
/// notification). A watch silent for twice this is given up: the node refuses scoped keys
/// until it has read the table again, so a revoked key stops working on every node within
/// three periods even when the node's watch stalls without breaking.
pub const WATCH_PROGRESS: Duration = Duration::from_secs(1);

/// Follows the control plane (the key table and the tenants: one watch on the cluster's
/// prefix). While the watch is down the cache is marked unsynced (scoped keys are refused)
/// until it is read again.
pub(super) async fn watch_keys(node: Arc<Node>, mut revision: i64) {
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
