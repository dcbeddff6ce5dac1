//! Per-tenant count of requests in flight, enforcing the tenant's `max_connections` quota at
//! the edge: a request beyond the limit is refused with `rate_limited` (429).

use std::collections::HashMap;
use std::sync::Arc;

use memsilo::Error;
use parking_lot::Mutex;

/// In-flight requests per tenant.
#[derive(Debug, Default)]
pub struct InFlight {
    counts: Mutex<HashMap<String, u32>>,
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<InFlight>,
    tenant: String,
}

impl InFlight {
    /// Takes a slot for `tenant`, or fails when `limit` requests are already in flight.
    pub fn acquire(self: &Arc<Self>, tenant: &str, limit: u32) -> Result<Slot, Error> {
        let mut counts = self.counts.lock();
        let n = counts.entry(tenant.to_owned()).or_insert(0);
        if *n >= limit {
            return Err(Error::RateLimited {
                tenant: tenant.to_owned(),
                limit,
                retry_after_secs: 1,
            });
        }
        *n += 1;
        Ok(Slot { owner: self.clone(), tenant: tenant.to_owned() })
    }

    /// Requests in flight for `tenant`.
    #[cfg(test)]
    pub fn count(&self, tenant: &str) -> u32 {
        self.counts.lock().get(tenant).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.owner.counts.lock();
        if let Some(n) = counts.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_per_tenant_and_freed_on_drop() {
        let f = Arc::new(InFlight::default());
        let a = f.acquire("t1", 2).unwrap();
        let _b = f.acquire("t1", 2).unwrap();
        let err = f.acquire("t1", 2).unwrap_err();
        assert_eq!(err.code(), memsilo::ErrorCode::RateLimited);
        let _other = f.acquire("t2", 2).unwrap();
        drop(a);
        assert_eq!(f.count("t1"), 1);
        f.acquire("t1", 2).unwrap();
    }
}
