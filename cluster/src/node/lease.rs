//! The node's lease in etcd. The node's registration (`nodes/<id>`) and every owner key it
//! claims are attached to it; the node serves as owner only before `valid_until`, an instant
//! taken before each renewal was sent, so it stops serving before etcd can expire the lease.
//! When the lease is lost every owned namespace is dropped and the node joins again with a new
//! one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::PutOptions;
use memsilo::Result;
use serde_json::json;

use super::{with_retry, Node};

pub(super) struct Lease {
    pub(super) id: i64,
    /// Past this instant the lease may have expired in etcd: serve nothing as owner.
    pub(super) valid_until: Instant,
}

impl Node {
    pub(super) async fn register(&self) -> Result<()> {
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
}

/// Keeps the lease alive; when it is lost, drops every namespace and joins again with a new one.
pub(super) async fn keep_alive(node: Arc<Node>) {
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
