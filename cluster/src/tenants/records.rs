//! Tenant records: creation (names unique through `tenant_names/<hex name>`, created if
//! absent in the same transaction; a child counted in its parent's counts), listing, updates
//! (checked by core's `Tenant::apply_update`) and deletion (refused while the tenant has
//! children or namespaces; its members go with it).

use etcd_client::{Compare, CompareOp, GetOptions, SortOrder, SortTarget, Txn, TxnOp};
use memsilo::{Error, Page, Result, Tenant, TenantInfo, TenantStatus, TenantUsage};
use serde_json::{json, Value};

use super::{changed_meanwhile, to_json, with_message, Counts, TRIES};
use crate::control::hex;
use crate::node::Node;

impl Node {
    pub(super) async fn create_tenant(&self, req: memsilo::CreateTenant) -> Result<Value> {
        if req.isolation_mode.is_some_and(|m| m != memsilo::IsolationMode::Logical) {
            return Err(Error::invalid(
                "isolation_mode",
                "cluster mode keeps each namespace in its owner's environments: only logical",
            ));
        }
        let tenant = Tenant::from_request(&req, chrono::Utc::now())?;
        let name_key = self.key("tenant_names", &hex(tenant.name.as_bytes()));
        let mut when = vec![Compare::create_revision(name_key.clone(), CompareOp::Equal, 0)];
        let mut then = vec![
            TxnOp::put(self.key("tenants", &tenant.id), to_json(&tenant)?, None),
            TxnOp::put(name_key.clone(), tenant.id.clone(), None),
            TxnOp::put(self.key("tenant_counts", &tenant.id), to_json(&Counts::default())?, None),
        ];
        if let Some(parent) = &tenant.parent_id {
            // The parent (as on one node: it exists, is not being deleted, and the tree stays
            // within MAX_TENANT_DEPTH) counts one child more, guarded on its records, so a
            // parent deleted meanwhile refuses the child and a child created meanwhile
            // refuses the parent's deletion.
            let chain = match self.chain(parent).await {
                Err(e) if e.code() == memsilo::ErrorCode::NotFound => {
                    return Err(Error::invalid("parent_id", format!("no tenant with id {parent}")))
                }
                other => other?,
            };
            let link = &chain[0];
            if matches!(link.tenant.status, TenantStatus::Deleting | TenantStatus::Deleted) {
                return Err(Error::invalid("parent_id", "parent tenant is being deleted"));
            }
            if chain.len() >= memsilo::MAX_TENANT_DEPTH {
                return Err(Error::invalid("parent_id", "tenant hierarchy is too deep"));
            }
            let mut counts = link.counts;
            counts.children += 1;
            let counts_key = self.key("tenant_counts", parent);
            when.push(Compare::mod_revision(
                self.key("tenants", parent),
                CompareOp::Equal,
                link.revision,
            ));
            when.push(Compare::mod_revision(
                counts_key.clone(),
                CompareOp::Equal,
                link.counts_revision,
            ));
            then.push(TxnOp::put(counts_key, to_json(&counts)?, None));
        }
        if !self.txn(&Txn::new().when(when).and_then(then)).await?.succeeded() {
            if self.get(&name_key, None).await?.kvs().is_empty() {
                return Err(changed_meanwhile());
            }
            return Err(Error::Conflict(format!("Tenant already exists: {}", tenant.name)));
        }
        let message = format!("Tenant '{}' created successfully", tenant.name);
        let usage = TenantUsage { storage_bytes: 0, namespaces: 0, members: 0 };
        with_message(TenantInfo { tenant, usage }, &message)
    }

    pub(super) async fn list_tenants(
        &self,
        a: memsilo::api::ListTenantsArgs,
        only: Option<String>,
    ) -> Result<Value> {
        let (offset, limit) = Page { offset: a.offset, limit: a.limit }.bounds()?;
        let options = GetOptions::new().with_prefix().with_sort(SortTarget::Key, SortOrder::Ascend);
        let resp = self.get(&self.key("tenants", ""), Some(options)).await?;
        let mut items = Vec::new();
        let mut total = 0u64;
        for kv in resp.kvs() {
            let Ok(tenant) = serde_json::from_slice::<Tenant>(kv.value()) else { continue };
            let keep = only.as_ref().is_none_or(|id| *id == tenant.id)
                && a.status.is_none_or(|s| s == tenant.status)
                && a.parent_id.as_deref().is_none_or(|p| tenant.parent_id.as_deref() == Some(p));
            if !keep {
                continue;
            }
            if total as usize >= offset && items.len() < limit {
                items.push(self.tenant_info(tenant).await?);
            }
            total += 1;
        }
        Ok(json!({
            "tenants": items,
            "total_count": total,
            "offset": a.offset.unwrap_or(0),
            "limit": a.limit.unwrap_or(memsilo::DEFAULT_LIMIT),
        }))
    }

    pub(super) async fn update_tenant(&self, a: memsilo::api::UpdateTenantArgs) -> Result<Value> {
        let (id, req) = a.into_parts();
        req.validate()?;
        for _ in 0..TRIES {
            let (mut tenant, revision) = self.tenant_record(&id).await?;
            let old_name = tenant.name.clone();
            tenant.apply_update(&req, chrono::Utc::now())?;
            let key = self.key("tenants", &id);
            let mut when = vec![Compare::mod_revision(key.clone(), CompareOp::Equal, revision)];
            let mut then = vec![TxnOp::put(key, to_json(&tenant)?, None)];
            let new_name = self.key("tenant_names", &hex(tenant.name.as_bytes()));
            if tenant.name != old_name {
                when.push(Compare::create_revision(new_name.clone(), CompareOp::Equal, 0));
                then.push(TxnOp::delete(self.key("tenant_names", &hex(old_name.as_bytes())), None));
                then.push(TxnOp::put(new_name.clone(), id.clone(), None));
            }
            if self.txn(&Txn::new().when(when).and_then(then)).await?.succeeded() {
                let message = format!("Tenant '{}' updated successfully", tenant.name);
                return with_message(self.tenant_info(tenant).await?, &message);
            }
            if tenant.name != old_name && !self.get(&new_name, None).await?.kvs().is_empty() {
                return Err(Error::Conflict(format!("Tenant already exists: {}", tenant.name)));
            }
        }
        Err(changed_meanwhile())
    }

    pub(super) async fn delete_tenant(&self, tenant_id: String) -> Result<Value> {
        for _ in 0..TRIES {
            let (mut tenant, revision) = self.tenant_record(&tenant_id).await?;
            let (counts, counts_revision) = self.counts(&tenant_id).await?;
            if counts.children > 0 {
                return Err(Error::Conflict(format!(
                    "tenant {tenant_id} has child tenants; delete them first"
                )));
            }
            if counts.namespaces > 0 {
                return Err(Error::Conflict(format!(
                    "tenant {tenant_id} has {} namespaces; delete them first",
                    counts.namespaces
                )));
            }
            let counts_key = self.key("tenant_counts", &tenant_id);
            let tenant_key = self.key("tenants", &tenant_id);
            // Its members leave its ancestors' counts, and its parent has one child less.
            let (mut when, mut then) = (Vec::new(), Vec::new());
            if let Some(parent) = &tenant.parent_id {
                for (depth, link) in self.chain(parent).await?.into_iter().enumerate() {
                    let mut c = link.counts;
                    c.below_members = c.below_members.saturating_sub(counts.members);
                    if depth == 0 {
                        c.children = c.children.saturating_sub(1);
                    }
                    let key = self.key("tenant_counts", &link.tenant.id);
                    when.push(Compare::mod_revision(
                        key.clone(),
                        CompareOp::Equal,
                        link.counts_revision,
                    ));
                    then.push(TxnOp::put(key, to_json(&c)?, None));
                }
            }
            when.push(Compare::mod_revision(tenant_key.clone(), CompareOp::Equal, revision));
            when.push(Compare::mod_revision(counts_key.clone(), CompareOp::Equal, counts_revision));
            then.extend([
                TxnOp::delete(tenant_key, None),
                TxnOp::delete(self.key("tenant_names", &hex(tenant.name.as_bytes())), None),
                TxnOp::delete(counts_key, None),
                TxnOp::delete(
                    self.key("members", &format!("{tenant_id}/")),
                    Some(etcd_client::DeleteOptions::new().with_prefix()),
                ),
                TxnOp::delete(
                    self.key("member_users", &format!("{tenant_id}/")),
                    Some(etcd_client::DeleteOptions::new().with_prefix()),
                ),
                TxnOp::delete(self.key("quota", &tenant_id), None),
            ]);
            if self.txn(&Txn::new().when(when).and_then(then)).await?.succeeded() {
                tenant.status = TenantStatus::Deleted;
                let message = format!("Tenant '{}' has been deleted", tenant.name);
                let usage = TenantUsage { storage_bytes: 0, namespaces: 0, members: 0 };
                let mut out = with_message(TenantInfo { tenant, usage }, &message)?;
                out["deleted_at"] = json!(chrono::Utc::now());
                return Ok(out);
            }
        }
        Err(changed_meanwhile())
    }

    pub(super) async fn tenant_info(&self, tenant: Tenant) -> Result<TenantInfo> {
        let (counts, _) = self.counts(&tenant.id).await?;
        let (reservations, _) = self.reservations(&tenant.id).await?;
        let usage = TenantUsage {
            storage_bytes: reservations.values().map(|r| r.used).sum(),
            namespaces: counts.namespaces,
            members: counts.members,
        };
        Ok(TenantInfo { tenant, usage })
    }
}
