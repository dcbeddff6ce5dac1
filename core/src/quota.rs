//! Quota enforcement: per-tenant storage reservations (a child's usage counts against every
//! ancestor), per-tenant request rates (GCRA, one atomic state per tenant) and per-tenant
//! compute (a bounded number of heavy operations running at once).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use serde::Serialize;

use crate::error::{Error, Result};

/// The rate limiter's answer for one tenant, for `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateInfo {
    /// Requests per second allowed.
    pub limit: u32,
    /// Requests that could be made right now.
    pub remaining: u32,
    /// Seconds until the full burst is available again.
    pub reset_secs: u64,
}

/// Generic cell rate algorithm: a request is admitted when the tenant's theoretical arrival
/// time is at most one second (the burst) ahead of now. The engine keeps one for its tenants;
/// a cluster node keeps one for its share of each tenant's limit.
#[derive(Default)]
pub struct RateLimiter {
    tat: RwLock<HashMap<String, Arc<AtomicI64>>>,
}

const SECOND: i64 = 1_000_000;

impl RateLimiter {
    fn cell(&self, tenant: &str) -> Arc<AtomicI64> {
        if let Some(c) = self.tat.read().get(tenant) {
            return c.clone();
        }
        self.tat.write().entry(tenant.to_owned()).or_default().clone()
    }

    /// Admits one request of `tenant` at `now` (microseconds since the epoch) under `limit`
    /// requests a second, or fails with `rate_limited`.
    pub fn admit(&self, tenant: &str, limit: u32, now: i64) -> Result<RateInfo> {
        let limit = limit.max(1);
        let interval = SECOND / i64::from(limit);
        let tolerance = SECOND - interval;
        let cell = self.cell(tenant);
        let mut tat = cell.load(Ordering::Acquire);
        loop {
            let start = tat.max(now);
            if start - now > tolerance {
                let wait = start - now - tolerance;
                return Err(Error::RateLimited {
                    tenant: tenant.to_owned(),
                    limit,
                    retry_after_secs: ((wait + SECOND - 1) / SECOND).max(1) as u64,
                });
            }
            let next = start + interval;
            match cell.compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(info(limit, interval, next, now)),
                Err(actual) => tat = actual,
            }
        }
    }

    /// The state without charging a request.
    pub(crate) fn peek(&self, tenant: &str, limit: u32, now: i64) -> RateInfo {
        let limit = limit.max(1);
        let interval = SECOND / i64::from(limit);
        let tat = self.cell(tenant).load(Ordering::Acquire).max(now);
        info(limit, interval, tat, now)
    }

    /// Forgets a tenant (deleted, or its limit changed).
    pub(crate) fn reset(&self, tenant: &str) {
        self.tat.write().remove(tenant);
    }
}

fn info(limit: u32, interval: i64, tat: i64, now: i64) -> RateInfo {
    let ahead = (tat - now).max(0);
    let remaining = ((SECOND - ahead) / interval).clamp(0, i64::from(limit));
    RateInfo {
        limit,
        remaining: remaining as u32,
        reset_secs: ((ahead + SECOND - 1) / SECOND) as u64,
    }
}

/// One link of a tenant's ancestry with its storage limit.
#[derive(Debug, Clone)]
pub(crate) struct QuotaLink {
    pub tenant_id: String,
    pub limit: u64,
}

/// Where [`StorageUsage`] reads the figures of a tenant tree it has not seen yet: the
/// engine, from its namespaces' environments.
pub(crate) trait UsageSource: Send + Sync {
    /// The storage figures of the tenants of the tree under `root` (each tenant's includes
    /// its descendants').
    fn tree_usage(&self, root: &str) -> Result<HashMap<String, u64>>;
}

/// Storage bytes in use per tenant (each tenant's figure includes its descendants').
///
/// Figures are worked out from the data environments a tenant tree at a time, when the tree
/// is first used (a reservation, an adjustment or a read of a figure along a chain): opening
/// an instance with a million namespaces reads none of them.
#[derive(Default)]
pub(crate) struct StorageUsage {
    bytes: Mutex<HashMap<String, u64>>,
    /// Root tenants whose trees' figures are in `bytes`.
    loaded: RwLock<std::collections::HashSet<String>>,
    /// One tree worked out at a time; uses of a tree wait for its figures.
    loading: Mutex<()>,
    engine: std::sync::OnceLock<std::sync::Weak<dyn UsageSource>>,
}

impl StorageUsage {
    /// Lets the figures be worked out from `engine`'s environments.
    pub(crate) fn attach(&self, engine: std::sync::Weak<dyn UsageSource>) {
        let _ = self.engine.set(engine);
    }

    /// Makes sure the figures of the tree `chain` belongs to (its last link is the root) are
    /// loaded.
    fn ensure(&self, chain: &[QuotaLink]) {
        let Some(root) = chain.last().map(|l| l.tenant_id.as_str()) else { return };
        let Some(engine) = self.engine.get() else { return };
        if self.loaded.read().contains(root) {
            return;
        }
        let _one = self.loading.lock();
        if self.loaded.read().contains(root) {
            return;
        }
        let Some(engine) = engine.upgrade() else { return };
        match engine.tree_usage(root) {
            Ok(figures) => {
                let mut bytes = self.bytes.lock();
                for (tenant, b) in figures {
                    *bytes.entry(tenant).or_default() += b;
                }
                self.loaded.write().insert(root.to_owned());
            }
            Err(e) => tracing::warn!("storage use of tenant {root} not read yet: {e}"),
        }
    }

    /// Bytes in use by the first tenant of `chain` and its descendants.
    pub(crate) fn get(&self, chain: &[QuotaLink]) -> u64 {
        self.ensure(chain);
        let Some(first) = chain.first() else { return 0 };
        self.bytes.lock().get(&first.tenant_id).copied().unwrap_or(0)
    }

    /// Reserves `delta` bytes along `chain` (the tenant, then its ancestors), or fails with
    /// `quota_exceeded`, reserving nothing (see [`chain_exceeded`]).
    pub(crate) fn reserve(&self, chain: &[QuotaLink], delta: u64) -> Result<Reservation<'_>> {
        self.ensure(chain);
        let mut bytes = self.bytes.lock();
        let usage: Vec<(u64, u64)> = chain
            .iter()
            .map(|l| (l.limit, bytes.get(&l.tenant_id).copied().unwrap_or(0)))
            .collect();
        if let Some(own) = chain.first() {
            chain_exceeded(&own.tenant_id, "storage_quota_bytes", &usage, delta)?;
        }
        for link in chain {
            *bytes.entry(link.tenant_id.clone()).or_default() += delta;
        }
        Ok(Reservation { usage: self, chain: chain.to_vec(), delta, kept: false })
    }

    /// Adds (or with a negative delta, releases) usage along a chain without checking.
    pub(crate) fn adjust(&self, chain: &[QuotaLink], delta: i64) {
        self.ensure(chain);
        let mut bytes = self.bytes.lock();
        for link in chain {
            let v = bytes.entry(link.tenant_id.clone()).or_default();
            *v = v.saturating_add_signed(delta);
        }
    }

    /// Drops a deleted tenant's figure.
    pub(crate) fn forget(&self, tenant: &str) {
        self.bytes.lock().remove(tenant);
    }
}

/// Checks that `delta` more of a quota fits every `(limit, usage)` of a chain (the caller's
/// tenant first, then its ancestors; each usage includes the descendants'). Refused, the
/// error names the caller's own tenant with the limit that applies to it — its usage plus
/// the smallest headroom along the chain — never an ancestor's id or usage (which would
/// include its siblings').
pub fn chain_exceeded(
    own: &str,
    quota: &'static str,
    usage: &[(u64, u64)],
    delta: u64,
) -> Result<()> {
    let headroom = usage.iter().map(|(limit, used)| limit.saturating_sub(*used)).min();
    match (headroom, usage.first()) {
        (Some(room), Some((_, used))) if delta > room => Err(Error::QuotaExceeded {
            tenant: own.to_owned(),
            quota,
            limit: used + room,
            requested: used + delta,
        }),
        _ => Ok(()),
    }
}

/// Bytes reserved for a write in progress; released on drop unless kept.
pub(crate) struct Reservation<'a> {
    usage: &'a StorageUsage,
    chain: Vec<QuotaLink>,
    delta: u64,
    kept: bool,
}

impl Reservation<'_> {
    /// The write committed: the bytes stay charged. `actual` corrects an estimate.
    pub(crate) fn keep(mut self, actual: u64) {
        self.kept = true;
        if actual != self.delta {
            self.usage.adjust(&self.chain, actual as i64 - self.delta as i64);
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.usage.adjust(&self.chain, -(self.delta as i64));
        }
    }
}

/// One link of a caller's ancestry with its compute quota.
#[derive(Debug, Clone)]
pub(crate) struct ComputeLink {
    pub tenant_id: String,
    /// `compute_quota_cores` as stored.
    pub cores: f64,
}

impl ComputeLink {
    /// Heavy operations the tenant may run at once: its cores rounded down, at least one.
    pub(crate) fn slots(&self) -> usize {
        (self.cores.floor() as usize).max(1)
    }
}

/// Heavy operations (recalls, embedding, batch stores) running per tenant. A tenant's
/// `compute_quota_cores` bounds how many run at once across it and its descendants, so one
/// tenant cannot occupy every core; an operation beyond the bound waits up to the engine's
/// `compute_wait` for a slot, then is refused with `rate_limited`.
#[derive(Default)]
pub(crate) struct ComputeGate {
    running: Mutex<HashMap<String, usize>>,
    freed: Condvar,
}

impl ComputeGate {
    /// Takes a slot in every link of `chain` (the caller's tenant, then its ancestors), all
    /// or none, waiting up to `wait` for them. Refused, the error names the caller's own
    /// tenant and quota, whichever link is full.
    pub(crate) fn acquire(
        &self,
        chain: &[ComputeLink],
        wait: Duration,
    ) -> Result<ComputePermit<'_>> {
        let Some(own) = chain.first() else {
            return Ok(ComputePermit { gate: self, tenants: Vec::new() });
        };
        let deadline = Instant::now() + wait;
        let mut running = self.running.lock();
        loop {
            let full =
                chain.iter().any(|l| running.get(&l.tenant_id).copied().unwrap_or(0) >= l.slots());
            if !full {
                for l in chain {
                    *running.entry(l.tenant_id.clone()).or_default() += 1;
                }
                let tenants = chain.iter().map(|l| l.tenant_id.clone()).collect();
                return Ok(ComputePermit { gate: self, tenants });
            }
            if self.freed.wait_until(&mut running, deadline).timed_out() {
                let own_full = running.get(&own.tenant_id).copied().unwrap_or(0) >= own.slots();
                return Err(Error::ComputeBusy {
                    tenant: own.tenant_id.clone(),
                    cores: own.cores,
                    shared: !own_full,
                    retry_after_secs: 1,
                });
            }
        }
    }

    /// Heavy operations running for `tenant` (its descendants' included).
    #[cfg(test)]
    pub(crate) fn running(&self, tenant: &str) -> usize {
        self.running.lock().get(tenant).copied().unwrap_or(0)
    }
}

/// Slots held by one heavy operation; dropping it frees them and wakes a waiter.
pub(crate) struct ComputePermit<'a> {
    gate: &'a ComputeGate,
    tenants: Vec<String>,
}

impl Drop for ComputePermit<'_> {
    fn drop(&mut self) {
        if self.tenants.is_empty() {
            return;
        }
        let mut running = self.gate.running.lock();
        for t in &self.tenants {
            if let Some(n) = running.get_mut(t) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    running.remove(t);
                }
            }
        }
        drop(running);
        self.gate.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_admits_one_seconds_burst_then_throttles_and_recovers() {
        let rl = RateLimiter::default();
        let t0 = 1_000_000_000;
        for i in 0..10 {
            let info = rl.admit("t", 10, t0).unwrap_or_else(|e| panic!("request {i}: {e}"));
            assert_eq!(info.remaining, 9 - i);
        }
        let err = rl.admit("t", 10, t0).unwrap_err();
        assert_eq!(err.retry_after(), Some(1));
        // Another tenant is unaffected.
        assert!(rl.admit("quiet", 10, t0).is_ok());
        // One interval later exactly one more request fits.
        assert!(rl.admit("t", 10, t0 + 100_000).is_ok());
        assert!(rl.admit("t", 10, t0 + 100_000).is_err());
    }

    #[test]
    fn storage_reservation_checks_every_ancestor_and_releases_on_drop() {
        let u = StorageUsage::default();
        let chain = [
            QuotaLink { tenant_id: "child".into(), limit: 100 },
            QuotaLink { tenant_id: "parent".into(), limit: 150 },
        ];
        u.reserve(&chain, 80).unwrap().keep(80);
        assert_eq!(u.get(&chain[1..]), 80);
        u.adjust(&chain[1..], 60);
        // The parent binds (140 of 150 used), but the child is told of its own applicable
        // limit: its 80 bytes plus the 10 left above it.
        let err = u.reserve(&chain, 20).err().unwrap();
        assert!(
            matches!(err, Error::QuotaExceeded { ref tenant, limit: 90, requested: 100, .. } if tenant == "child"),
            "{err}"
        );
        drop(u.reserve(&chain, 5).unwrap());
        assert_eq!(u.get(&chain), 80);
    }

    fn link(tenant: &str, cores: f64) -> ComputeLink {
        ComputeLink { tenant_id: tenant.into(), cores }
    }

    #[test]
    fn compute_slots_bound_each_tenant_and_its_parent_and_a_waiter_gets_a_freed_slot() {
        let gate = ComputeGate::default();
        let child = [link("child", 1.0), link("p-1", 2.5)];
        let sibling = [link("sibling", 4.0), link("p-1", 2.5)];
        let held = gate.acquire(&child, Duration::ZERO).unwrap();
        // The child's one core is busy: refused after the wait, naming the child.
        let err = gate.acquire(&child, Duration::from_millis(20)).err().unwrap();
        assert_eq!(err.code(), crate::ErrorCode::RateLimited);
        assert!(
            err.to_string().contains("child") && err.to_string().contains("compute_quota_cores"),
            "{err}"
        );
        assert_eq!(err.retry_after(), Some(1));
        // The parent has two slots (2.5 cores rounded down): the sibling gets the second.
        let sib = gate.acquire(&sibling, Duration::ZERO).unwrap();
        assert_eq!(gate.running("p-1"), 2);
        let err = gate.acquire(&sibling, Duration::ZERO).err().unwrap();
        let message = err.to_string();
        assert!(message.contains("sibling") && !message.contains("p-1"), "{message}");
        assert!(message.contains("shared with its parent tenant"), "{message}");
        // Another tenant is not affected.
        drop(gate.acquire(&[link("other", 0.5)], Duration::ZERO).unwrap());
        // A waiter is admitted as soon as a slot is freed within its wait.
        std::thread::scope(|s| {
            let waiter = s.spawn(|| gate.acquire(&sibling, Duration::from_secs(10)).map(drop));
            std::thread::sleep(Duration::from_millis(50));
            drop(held);
            waiter.join().unwrap().unwrap();
        });
        drop(sib);
        assert_eq!(gate.running("p-1"), 0);
    }
}
