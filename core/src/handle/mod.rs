//! The operations of a [`Handle`], one child module per group (lancedb's `table/` layout):
//! a child holds the `impl Handle` block of its operations and calls the logic of the module
//! it is named after. Every operation starts with [`Handle::caller`] (key re-checked, request
//! counted against its tenant's rate) and is decided by [`crate::auth::authorize`].

mod audit;
mod forget;
mod graph;
mod keys;
mod listing;
mod memory;
mod namespace;
mod recall;
mod rotation;
mod session;
mod tenant;
mod transfer;

use std::any::Any;
use std::sync::Arc;

use crate::auth::{self, ParsedKey, Principal};
use crate::error::{Error, Result};
use crate::keys::Authed;
use crate::quota::{ComputeLink, ComputePermit, RateInfo};
use crate::state::State;

#[derive(Clone)]
enum Who {
    Root,
    /// A key, with the resolution it was let in with.
    Key(Arc<ParsedKey>, Resolved),
}

/// A key's resolution and the key generation it holds at (see `State::authenticate_at`):
/// a handle's operations check the key again by comparing the generation, and look it up
/// again only after a catalog write that changed key resolutions (a revocation, say).
#[derive(Clone)]
pub(crate) struct Resolved {
    generation: u64,
    authed: Arc<Authed>,
}

impl From<(u64, Arc<Authed>)> for Resolved {
    fn from((generation, authed): (u64, Arc<Authed>)) -> Self {
        Resolved { generation, authed }
    }
}

/// A principal's view of the engine: every operation goes through [`auth::authorize`].
#[derive(Clone)]
pub struct Handle {
    /// What the handles of its engine share.
    pub(crate) state: Arc<State>,
    /// Keeps the engine that made it open (the engine's own type: see `Handle::engine`).
    life: Arc<dyn Any + Send + Sync>,
    who: Who,
    /// The request this handle serves, for its audit entries.
    request_id: Option<Arc<str>>,
    /// Ids its graph writes use instead of new random ones ([`Handle::with_graph_ids`]).
    pub(crate) graph_ids: Option<Arc<crate::graph::GraphIds>>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = match &self.who {
            Who::Root => "root".to_owned(),
            Who::Key(k, _) => auth::display_prefix(&k.id),
        };
        f.debug_struct("Handle").field("who", &who).finish_non_exhaustive()
    }
}

/// A checked caller for one operation: its principal, and the compute quotas its heavy
/// work counts against (its tenant's, then each ancestor's; none for root).
pub(crate) struct Caller {
    /// The key's resolution (`None`: root), shared rather than copied.
    authed: Option<Arc<Authed>>,
    compute: Vec<ComputeLink>,
}

impl Caller {
    /// Who the caller is.
    pub(crate) fn principal(&self) -> &Principal {
        static ROOT: Principal = Principal::Root;
        self.authed.as_ref().map_or(&ROOT, |a| &a.principal)
    }
}

impl Handle {
    /// A handle acting as `key`'s principal (`None`: root), serving `request_id`.
    pub(crate) fn new(
        state: Arc<State>,
        life: Arc<dyn Any + Send + Sync>,
        key: Option<(ParsedKey, Resolved)>,
        request_id: Option<Arc<str>>,
    ) -> Handle {
        let who = key.map_or(Who::Root, |(k, resolved)| Who::Key(Arc::new(k), resolved));
        Handle { state, life, who, request_id, graph_ids: None }
    }

    /// The same principal, serving `request_id`.
    pub(crate) fn with_request(self, request_id: Option<Arc<str>>) -> Handle {
        Handle { request_id, ..self }
    }

    /// What keeps the engine behind this handle open.
    pub(crate) fn life(&self) -> &Arc<dyn Any + Send + Sync> {
        &self.life
    }

    /// The same principal, serving request `request_id` (recorded in its audit entries).
    #[must_use]
    pub fn with_request_id(&self, request_id: &str) -> Handle {
        Handle { request_id: Some(Arc::from(request_id)), ..self.clone() }
    }

    /// The same principal, whose graph writes (`add_entity`, `add_relation`) give what they
    /// create the ids in `ids` instead of new random ones. A replicated log (cluster mode) picks
    /// them before it logs a write, so applying the write and replaying it later on another
    /// node write the same rows.
    #[must_use]
    pub fn with_graph_ids(&self, ids: Option<crate::graph::GraphIds>) -> Handle {
        Handle { graph_ids: ids.map(Arc::new), ..self.clone() }
    }

    /// The id of the key this handle acts as (`None`: root).
    pub(crate) fn key_id(&self) -> Option<&str> {
        match &self.who {
            Who::Root => None,
            Who::Key(k, _) => Some(&k.id),
        }
    }

    /// The request this handle serves, if a transport named one.
    pub(crate) fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// Who this handle acts as, re-checked now (revocation, expiry, tenant status).
    pub fn principal(&self) -> Result<Principal> {
        Ok(self.authed()?.map_or(Principal::Root, |a| a.principal.clone()))
    }

    fn authed(&self) -> Result<Option<Arc<Authed>>> {
        self.state.check_process()?;
        match &self.who {
            Who::Root => Ok(None),
            Who::Key(k, resolved) => {
                match self.state.recheck(resolved.generation, &resolved.authed) {
                    Some(checked) => checked.map(Some),
                    None => self.state.authenticate(k).map(Some),
                }
            }
        }
    }

    /// Checks the key and charges one request to the tenant's rate limit.
    pub(crate) fn caller(&self) -> Result<Caller> {
        let Some(authed) = self.authed()? else {
            return Ok(Caller { authed: None, compute: Vec::new() });
        };
        let now = self.state.now_micros();
        for link in &authed.limits {
            if let Err(e) = self.state.limiter.admit(&link.tenant_id, link.qps_limit, now) {
                // The caller is told about its own tenant and limit, whichever link binds.
                return Err(match (e, authed.limits.first()) {
                    (Error::RateLimited { retry_after_secs, .. }, Some(own)) => {
                        Error::RateLimited {
                            tenant: own.tenant_id.clone(),
                            limit: own.qps_limit,
                            retry_after_secs,
                        }
                    }
                    (other, _) => other,
                });
            }
        }
        let compute = authed
            .limits
            .iter()
            .map(|l| ComputeLink { tenant_id: l.tenant_id.clone(), cores: l.compute_quota_cores })
            .collect();
        Ok(Caller { authed: Some(authed), compute })
    }

    /// A slot for one heavy operation of `caller` under its tenants' `compute_quota_cores`,
    /// held until the permit is dropped; waits up to [`Options::compute_wait`], then fails
    /// with `rate_limited`.
    pub(crate) fn compute_slot(&self, caller: &Caller) -> Result<ComputePermit<'_>> {
        self.state.compute.acquire(&caller.compute, self.state.options.compute_wait)
    }

    /// The rate-limit state the last admitted call of this handle's tenant left, without
    /// charging a request (for `X-RateLimit-*` headers).
    pub fn rate_info(&self) -> Result<Option<RateInfo>> {
        let Some(authed) = self.authed()? else { return Ok(None) };
        Ok(authed
            .limits
            .first()
            .map(|l| self.state.limiter.peek(&l.tenant_id, l.qps_limit, self.state.now_micros())))
    }

    /// The concurrent-connection limits a request of this handle counts against, for
    /// transports that enforce them: its tenant's first, then each ancestor's.
    pub fn connection_limits(&self) -> Result<Vec<(String, u32)>> {
        let Some(authed) = self.authed()? else { return Ok(Vec::new()) };
        Ok(authed.limits.iter().map(|l| (l.tenant_id.clone(), l.max_connections)).collect())
    }
}
