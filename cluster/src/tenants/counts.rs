//! Counted quotas (`max_namespaces`, `max_members`): a tenant's own count and its subtree's,
//! stored at `tenant_counts/<id>` and moved only in the transaction that adds or removes what
//! is counted, with compares on the revisions of the tenant and every ancestor's counts read.

use etcd_client::{Compare, CompareOp, TxnOp};
use memsilo::{Error, Result, Tenant};
use serde::{Deserialize, Serialize};

use super::to_json;
use crate::node::Node;

/// A tenant's counted quotas as stored at `tenant_counts/<id>`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Counts {
    /// Its own namespaces and members (`get_tenant`'s usage).
    pub namespaces: u64,
    pub members: u64,
    /// Its descendants' namespaces and members, which count against its limits too.
    #[serde(default)]
    pub below_namespaces: u64,
    #[serde(default)]
    pub below_members: u64,
    /// Its child tenants (a tenant with children is not deleted).
    #[serde(default)]
    pub children: u64,
}

/// A quota counted in `tenant_counts`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counted {
    Namespaces,
    Members,
}

impl Counted {
    fn quota(self) -> &'static str {
        match self {
            Counted::Namespaces => "max_namespaces",
            Counted::Members => "max_members",
        }
    }

    fn limit(self, tenant: &Tenant) -> u64 {
        u64::from(match self {
            Counted::Namespaces => tenant.quotas.max_namespaces,
            Counted::Members => tenant.quotas.max_members,
        })
    }

    /// The tenant's own count.
    fn own(self, c: &mut Counts) -> &mut u64 {
        match self {
            Counted::Namespaces => &mut c.namespaces,
            Counted::Members => &mut c.members,
        }
    }

    /// Its descendants' count.
    fn below(self, c: &mut Counts) -> &mut u64 {
        match self {
            Counted::Namespaces => &mut c.below_namespaces,
            Counted::Members => &mut c.below_members,
        }
    }
}

/// One tenant of a chain (a tenant, its parent, ...), as read with the revisions a guarded
/// change compares.
pub(crate) struct Link {
    pub tenant: Tenant,
    pub revision: i64,
    pub counts: Counts,
    pub counts_revision: i64,
}

impl Node {
    /// A tenant and its record's revision (`not_found` when absent).
    pub(crate) async fn tenant_record(&self, id: &str) -> Result<(Tenant, i64)> {
        let resp = self.get(&self.key("tenants", id), None).await?;
        let kv = resp.kvs().first().ok_or_else(|| Error::not_found("tenant", id))?;
        Ok((serde_json::from_slice(kv.value())?, kv.mod_revision()))
    }

    /// A tenant and its ancestors (the tenant first, at most `MAX_TENANT_DEPTH`), each with
    /// its counts and the revisions a guarded change compares.
    pub(crate) async fn chain(&self, tenant_id: &str) -> Result<Vec<Link>> {
        let mut links = Vec::new();
        let mut next = Some(tenant_id.to_owned());
        while let Some(id) = next.take() {
            if links.len() >= memsilo::MAX_TENANT_DEPTH {
                break;
            }
            let (tenant, revision) = self.tenant_record(&id).await?;
            let (counts, counts_revision) = self.counts(&id).await?;
            next.clone_from(&tenant.parent_id);
            links.push(Link { tenant, revision, counts, counts_revision });
        }
        Ok(links)
    }

    /// The guarded change of a counted quota by one (`add`: one more, checked against the
    /// tenant's limit and every ancestor's, each counting its subtree, as on one node; else
    /// one less) for `tenant_id` and its ancestors: the compares and the puts to put in the
    /// transaction that adds or removes what is counted.
    pub(crate) async fn count(
        &self,
        tenant_id: &str,
        what: Counted,
        add: bool,
    ) -> Result<(Vec<Compare>, Vec<TxnOp>)> {
        let mut links = self.chain(tenant_id).await?;
        if add {
            let usage: Vec<(u64, u64)> = links
                .iter_mut()
                .map(|l| {
                    let used = *what.own(&mut l.counts) + *what.below(&mut l.counts);
                    (what.limit(&l.tenant), used)
                })
                .collect();
            memsilo::chain_exceeded(tenant_id, what.quota(), &usage, 1)?;
        }
        let (mut when, mut then) = (Vec::new(), Vec::new());
        for (depth, mut link) in links.into_iter().enumerate() {
            let n =
                if depth == 0 { what.own(&mut link.counts) } else { what.below(&mut link.counts) };
            *n = if add { *n + 1 } else { n.saturating_sub(1) };
            let (tenant, counts) =
                (self.key("tenants", &link.tenant.id), self.key("tenant_counts", &link.tenant.id));
            when.push(Compare::mod_revision(tenant, CompareOp::Equal, link.revision));
            when.push(Compare::mod_revision(
                counts.clone(),
                CompareOp::Equal,
                link.counts_revision,
            ));
            then.push(TxnOp::put(counts, to_json(&link.counts)?, None));
        }
        Ok((when, then))
    }

    /// A tenant's counted quotas and their record's revision.
    pub(crate) async fn counts(&self, id: &str) -> Result<(Counts, i64)> {
        let resp = self.get(&self.key("tenant_counts", id), None).await?;
        match resp.kvs().first() {
            Some(kv) => Ok((serde_json::from_slice(kv.value())?, kv.mod_revision())),
            None => Ok((Counts::default(), 0)),
        }
    }
}
