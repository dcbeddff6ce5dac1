//! A tenant as its readers see it: the record with its usage (storage charged to it and its
//! descendants, namespaces, members).

use crate::catalog::CatalogTables;
use crate::error::Result;
use crate::storage::RoTxn;
use crate::tenant::{count_prefix, quota_chain, Tenant, TenantInfo, TenantUsage};

use super::State;

impl State {
    pub(crate) fn tenant_info(
        &self,
        t: &CatalogTables,
        r: &mut RoTxn<'_>,
        tenant: Tenant,
    ) -> Result<TenantInfo> {
        let prefix = format!("{}/", tenant.id);
        let usage = TenantUsage {
            storage_bytes: self.usage.get(&quota_chain(t, r, &tenant.id)?),
            namespaces: crate::catalog::tenant_namespace_count(t, r, &tenant.id)?,
            members: count_prefix(&t.members, r, &prefix)?,
        };
        Ok(TenantInfo { tenant, usage })
    }
}
