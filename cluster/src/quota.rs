//! A tenant's storage limit across nodes: reservations in etcd.
//!
//! Each namespace has one writer (its owner), which knows the namespace's storage exactly
//! (core's own figure, read after every group of writes). The tenant-wide limit is shared out
//! by reservations: `quota/<tenant id>` holds, per namespace, the bytes its owner reserved and
//! the bytes it used when it last reserved. The map is moved with a compare on its revision,
//! and a reservation is granted only while the sum of every namespace's reservation stays
//! within the tenant's `storage_quota_bytes`. An owner admits a write while its namespace uses
//! less than it reserved, and reserves again (used + one slice, or what is left) when it does
//! not: one etcd transaction per slice of writes, not per write.
//!
//! The overshoot is bounded: the reservations never add up to more than the limit, and a
//! namespace can exceed its own reservation only by the writes admitted while it was below
//! it, i.e. the writes in flight on that namespace when it crossed it (a group). A namespace
//! keeps its reservation when its owner dies: the entry is the namespace's, and its next
//! owner reserves again from the namespace's usage as loaded, so dead nodes leak nothing.
//!
//! A child tenant's namespace reserves the same bytes under its tenant and every ancestor
//! (`quota/<ancestor>` holds its descendants' namespaces too), in one transaction guarded on
//! every map, so each ancestor's limit holds over its whole subtree with the same bound.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use memsilo::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::control::hex;
use crate::node::{Node, Owned};
use crate::tenants::to_json;

/// One namespace's share of its tenant's storage limit.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Reservation {
    /// Bytes the namespace's owner may use.
    pub reserved: u64,
    /// Bytes it used when it last reserved.
    pub used: u64,
}

/// Per namespace (hex name), its reservation.
pub(crate) type Reservations = BTreeMap<String, Reservation>;

/// Bytes reserved at a time: a thirty-second of the limit, between 16 KiB and 64 MiB.
pub fn slice(limit: u64) -> u64 {
    (limit / 32).clamp(16 << 10, 64 << 20)
}

impl Node {
    /// A tenant's reservations and their record's revision (0 when there is none yet).
    pub(crate) async fn reservations(&self, tenant: &str) -> Result<(Reservations, i64)> {
        let resp = self.get(&self.key("quota", tenant), None).await?;
        match resp.kvs().first() {
            Some(kv) => Ok((serde_json::from_slice(kv.value())?, kv.mod_revision())),
            None => Ok((Reservations::new(), 0)),
        }
    }

    /// A tenant and its ancestors (the tenant first), each with its storage limit: a
    /// namespace reserves under every one of them, as a write on one node counts against every
    /// ancestor's `storage_quota_bytes`. Read from this node's cache (a tenant's parent never
    /// changes), else from etcd.
    pub(crate) async fn quota_chain(&self, tenant: &str) -> Result<Vec<(String, u64)>> {
        let mut chain = Vec::new();
        let mut next = Some(tenant.to_owned());
        while let Some(id) = next.take() {
            if chain.len() >= memsilo::MAX_TENANT_DEPTH {
                break;
            }
            let t = match self.cached_tenant(&id) {
                Some(t) => t,
                None => self.tenant_record(&id).await?.0,
            };
            next.clone_from(&t.parent_id);
            chain.push((id, t.quotas.storage_quota_bytes));
        }
        Ok(chain)
    }

    /// Makes sure an owned namespace may take one more write under its tenant's storage limit
    /// (reserving another slice in etcd when it has used its reservation), or fails with
    /// `quota_exceeded`.
    pub(crate) async fn make_room(&self, owned: &Owned) -> Result<()> {
        let Some(tenant) = owned.tenant_id.as_deref() else { return Ok(()) };
        let fits = || owned.used.load(Ordering::Acquire) < owned.reserved.load(Ordering::Acquire);
        if fits() {
            return Ok(());
        }
        let _one = owned.reserving.lock().await;
        if fits() {
            return Ok(());
        }
        let chain = self.quota_chain(tenant).await?;
        let own_limit = chain.first().map_or(u64::MAX, |(_, limit)| *limit);
        let me = hex(owned.name.as_bytes());
        for _ in 0..20 {
            let used = owned.used.load(Ordering::Acquire);
            // Under every link: the most the others' reservations leave, and the usage.
            let mut want = used.saturating_add(slice(own_limit));
            let mut maps = Vec::with_capacity(chain.len());
            let mut usage = Vec::with_capacity(chain.len());
            for (id, limit) in &chain {
                let (map, revision) = self.reservations(id).await?;
                let others = map.iter().filter(|(k, _)| **k != me);
                let (others_reserved, others_used) =
                    others.fold((0u64, 0u64), |(r, u), (_, v)| (r + v.reserved, u + v.used));
                want = want.min(limit.saturating_sub(others_reserved));
                usage.push((*limit, others_used + used));
                maps.push((id, map, revision));
            }
            if want <= used {
                // Named as on one node: the caller's tenant, with the limit that applies to it.
                memsilo::chain_exceeded(tenant, "storage_quota_bytes", &usage, 1)?;
                let (limit, used_all) = usage.first().copied().unwrap_or((own_limit, used));
                return Err(Error::QuotaExceeded {
                    tenant: tenant.to_owned(),
                    quota: "storage_quota_bytes",
                    limit,
                    requested: used_all + 1,
                });
            }
            let (mut when, mut then) = (Vec::new(), Vec::new());
            for (id, mut map, revision) in maps {
                map.insert(me.clone(), Reservation { reserved: want, used });
                let key = self.key("quota", id);
                when.push(if revision == 0 {
                    Compare::create_revision(key.clone(), CompareOp::Equal, 0)
                } else {
                    Compare::mod_revision(key.clone(), CompareOp::Equal, revision)
                });
                then.push(TxnOp::put(key, to_json(&map)?, None));
            }
            if self.txn(&Txn::new().when(when).and_then(then)).await?.succeeded() {
                owned.reserved.store(want, Ordering::Release);
                return Ok(());
            }
        }
        Err(Error::Internal("the tenant's reservations kept changing; retry".into()))
    }
}
