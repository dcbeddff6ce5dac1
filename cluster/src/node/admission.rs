//! Admission: who a key is (the admin key, or a key of the control plane), and the charge of
//! each request against this node's share of its tenant's `qps_limit` and its ancestors'.

use memsilo::{Error, Result};

use super::{blocking, Node};
use crate::control::Caller;

impl Node {
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
}
