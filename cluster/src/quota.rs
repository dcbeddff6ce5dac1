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
        let limit = match self.cached_tenant(tenant) {
            Some(t) => t.quotas.storage_quota_bytes,
            None => self.tenant_record(tenant).await?.0.quotas.storage_quota_bytes,
        };
        let me = hex(owned.name.as_bytes());
        let key = self.key("quota", tenant);
        for _ in 0..20 {
            let (mut map, revision) = self.reservations(tenant).await?;
            let used = owned.used.load(Ordering::Acquire);
            let others = map.iter().filter(|(k, _)| **k != me);
            let (others_reserved, others_used) =
                others.fold((0u64, 0u64), |(r, u), (_, v)| (r + v.reserved, u + v.used));
            let want = used.saturating_add(slice(limit)).min(limit.saturating_sub(others_reserved));
            if want <= used {
                return Err(Error::QuotaExceeded {
                    tenant: tenant.to_owned(),
                    quota: "storage_quota_bytes",
                    limit,
                    requested: others_used + used + 1,
                });
            }
            map.insert(me.clone(), Reservation { reserved: want, used });
            let guard = if revision == 0 {
                Compare::create_revision(key.clone(), CompareOp::Equal, 0)
            } else {
                Compare::mod_revision(key.clone(), CompareOp::Equal, revision)
            };
            let txn =
                Txn::new().when([guard]).and_then([TxnOp::put(key.clone(), to_json(&map)?, None)]);
            if self.txn(&txn).await?.succeeded() {
                owned.reserved.store(want, Ordering::Release);
                return Ok(());
            }
        }
        Err(Error::Internal("the tenant's reservations kept changing; retry".into()))
    }
}
