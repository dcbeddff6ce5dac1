//! Tenants and their members: creation, quotas, status, usage and deletion.

use std::ops::Bound;

use heed3::types::Bytes;
use serde_json::{Map, Value};

use crate::auth::{authorize, Action, Role};
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::page::{Page, Paged};
use crate::storage::scan;
use crate::tenant::{
    check_counted_quota, get_tenant, quota_chain, Counted, CreateTenant, IsolationMode, Member,
    MemberList, Tenant, TenantInfo, TenantStatus, TenantUsage, UpdateTenant, MAX_TENANT_DEPTH,
};

impl Handle {
    /// Creates a tenant (root only).
    pub fn create_tenant(&self, req: CreateTenant) -> Result<TenantInfo> {
        let caller = self.caller()?;
        authorize(caller.principal(), Action::ManageTenants)?;
        let tenant = Tenant::from_request(&req, self.state.options.clock.now())?;
        let own_key = match &tenant.encryption_key_id {
            Some(id) => Some(self.state.tenant_key(id)?),
            None => None,
        };
        let written = self.state.catalog_write(|w, t| {
            if let Some(id) = &tenant.encryption_key_id {
                crate::tenant_keys::check_key_unused(t, w, self.state.key_provider()?, id)?;
            }
            if t.tenant_names.get(w, &tenant.name)?.is_some() {
                return Err(Error::Conflict(format!("Tenant already exists: {}", tenant.name)));
            }
            if let Some(parent) = &tenant.parent_id {
                let p = t.tenants.get(w, parent)?.ok_or_else(|| {
                    Error::invalid("parent_id", format!("no tenant with id {parent}"))
                })?;
                if matches!(p.status, TenantStatus::Deleting | TenantStatus::Deleted) {
                    return Err(Error::invalid("parent_id", "parent tenant is being deleted"));
                }
                if quota_chain(t, w, parent)?.len() >= MAX_TENANT_DEPTH {
                    return Err(Error::invalid("parent_id", "tenant hierarchy is too deep"));
                }
            }
            t.tenants.put(w, &tenant.id, &tenant)?;
            t.tenant_names.put(w, &tenant.name, &tenant.id)?;
            Ok(())
        });
        if let Err(e) = written {
            // A key made for this tenant alone goes with it: nothing is left half-written.
            if let (Some((id, true)), Some(keys)) = (&own_key, &self.state.keys) {
                if let Err(undo) = keys.destroy(id) {
                    tracing::warn!("key {id} made for a tenant that was not created stays: {undo}");
                }
            }
            return Err(e);
        }
        self.state.catalog.read(|r, t| self.state.tenant_info(t, r, tenant.clone()))
    }

    /// One tenant (root, or that tenant's admins).
    pub fn get_tenant(&self, tenant_id: &str) -> Result<TenantInfo> {
        let caller = self.caller()?;
        authorize(caller.principal(), Action::ReadTenant(tenant_id))?;
        self.state.catalog.read(|r, t| {
            let tenant = get_tenant(t, r, tenant_id)?;
            self.state.tenant_info(t, r, tenant)
        })
    }

    /// Tenants (root: all; a tenant admin: its own). Filter by status or parent.
    pub fn list_tenants(
        &self,
        page: Page,
        status: Option<TenantStatus>,
        parent_id: Option<&str>,
    ) -> Result<Paged<TenantInfo>> {
        let caller = self.caller()?;
        let (offset, limit) = page.bounds()?;
        let only = match authorize(caller.principal(), Action::ManageTenants) {
            Ok(()) => None,
            Err(e) => match caller.principal().tenant_id() {
                Some(t) if authorize(caller.principal(), Action::ReadTenant(t)).is_ok() => {
                    Some(t.to_owned())
                }
                _ => return Err(e),
            },
        };
        self.state.catalog.read(|r, t| {
            let mut items = Vec::new();
            let mut total = 0u64;
            let tenants = t.tenants.remap_types::<Bytes, Bytes>();
            scan(&tenants, r, Bound::Unbounded, Bound::Unbounded, false, |r, _, tenant| {
                let tenant: Tenant = serde_json::from_slice(tenant)?;
                let keep = only.as_ref().is_none_or(|id| *id == tenant.id)
                    && status.is_none_or(|s| s == tenant.status)
                    && parent_id.is_none_or(|p| tenant.parent_id.as_deref() == Some(p));
                if keep {
                    if total as usize >= offset && items.len() < limit {
                        items.push(self.state.tenant_info(t, r, tenant)?);
                    }
                    total += 1;
                }
                Ok(true)
            })?;
            Ok(Paged { items, total_count: total, next_cursor: None })
        })
    }

    /// Changes a tenant (root only).
    pub fn update_tenant(&self, tenant_id: &str, req: UpdateTenant) -> Result<TenantInfo> {
        let caller = self.caller()?;
        authorize(caller.principal(), Action::ManageTenants)?;
        req.validate()?;
        let now = self.state.options.clock.now();
        let updated = self.state.catalog_write(|w, t| {
            let mut tenant = get_tenant(t, w, tenant_id)?;
            let old_name = tenant.name.clone();
            tenant.apply_update(&req, now)?;
            if tenant.name != old_name {
                if t.tenant_names.get(w, &tenant.name)?.is_some() {
                    return Err(Error::Conflict(format!("Tenant already exists: {}", tenant.name)));
                }
                t.tenant_names.delete(w, &old_name)?;
                t.tenant_names.put(w, &tenant.name, &tenant.id)?;
            }
            t.tenants.put(w, tenant_id, &tenant)?;
            Ok(tenant)
        })?;
        if req.quotas.is_some() {
            self.state.limiter.reset(tenant_id);
        }
        self.state.catalog.read(|r, t| self.state.tenant_info(t, r, updated.clone()))
    }

    /// Deletes a tenant with its namespaces, keys and members (root only). Fails with
    /// `conflict` while it has child tenants. The data is purged in the background.
    pub fn delete_tenant(&self, tenant_id: &str) -> Result<TenantInfo> {
        let caller = self.caller()?;
        authorize(caller.principal(), Action::ManageTenants)?;
        let gate = self.state.purge_gate();
        let (mut tenant, purged) = self.state.catalog_write(|w, t| {
            let tenant = get_tenant(t, w, tenant_id)?;
            for entry in t.tenants.iter(w)? {
                let (_, other) = entry?;
                if other.parent_id.as_deref() == Some(tenant_id) {
                    return Err(Error::Conflict(format!(
                        "tenant {tenant_id} has child tenants; delete them first"
                    )));
                }
            }
            let chain = quota_chain(t, w, tenant_id)?;
            let prefix = format!("{tenant_id}/");
            let names: Vec<String> = t
                .tenant_namespaces
                .prefix_iter(w, &prefix)?
                .map(|e| e.map(|(k, _)| k[prefix.len()..].to_owned()))
                .collect::<heed3::Result<_>>()?;
            let mut purged = Vec::new();
            for name in &names {
                let rec = t.namespaces.get(w, name)?.ok_or_else(|| {
                    Error::Internal(format!("namespace {name} is listed but has no record"))
                })?;
                crate::catalog::unlink_namespace(t, w, &rec)?;
                purged.push(rec);
            }
            if tenant.isolation_mode == IsolationMode::Hybrid {
                crate::catalog::queue_env_removal(
                    t,
                    w,
                    crate::datastore::EnvLocation::Tenant { tenant_id: tenant_id.to_owned() },
                )?;
            }
            // Crypto-shredding: the key goes after the data it encrypts, so that even a copy
            // of the tenant's files made before the deletion can never be read again.
            if let Some(key_id) = &tenant.encryption_key_id {
                crate::catalog::queue_key_destruction(t, w, key_id)?;
            }
            // A rotation under way: the key it was moving away from goes too.
            if let Some(old) = crate::rotation::forget_tenant(t, w, tenant_id)? {
                crate::catalog::queue_key_destruction(t, w, &old)?;
            }
            crate::keys::revoke_where(t, w, |k| k.tenant_id.as_deref() == Some(tenant_id), None)?;
            let members: Vec<String> = t
                .members
                .prefix_iter(w, &prefix)?
                .map(|e| e.map(|(k, _)| k.to_owned()))
                .collect::<heed3::Result<_>>()?;
            for m in members {
                t.members.delete(w, &m)?;
            }
            let users: Vec<String> = t
                .member_users
                .prefix_iter(w, &prefix)?
                .map(|e| e.map(|(k, _)| k.to_owned()))
                .collect::<heed3::Result<_>>()?;
            for u in users {
                t.member_users.delete(w, &u)?;
            }
            t.tenants.delete(w, tenant_id)?;
            t.tenant_names.delete(w, &tenant.name)?;
            Ok((tenant, (chain, purged)))
        })?;
        let (chain, namespaces) = purged;
        let freed = self.state.retire_namespaces(&namespaces);
        drop(gate);
        self.state.usage.forget(tenant_id);
        self.state.usage.adjust(&chain[1..], -(freed? as i64));
        self.state.limiter.reset(tenant_id);
        self.state.wake_worker();
        tenant.status = TenantStatus::Deleted;
        let usage = TenantUsage { storage_bytes: 0, namespaces: 0, members: 0 };
        Ok(TenantInfo { tenant, usage })
    }

    /// Adds a member (root, or the tenant's admins). `conflict` for a duplicate user,
    /// `quota_exceeded` over `max_members`, `invalid_argument` for an inactive tenant.
    pub fn add_member(
        &self,
        tenant_id: &str,
        user_identifier: &str,
        role: Role,
        metadata: Option<Map<String, Value>>,
    ) -> Result<Member> {
        let caller = self.caller()?;
        authorize(caller.principal(), Action::AdministerTenant(Some(tenant_id)))?;
        let member = Member::new(
            tenant_id,
            user_identifier,
            role,
            metadata,
            self.state.options.clock.now(),
        )?;
        let user = member.user_identifier.as_str();
        self.state.catalog_write(|w, t| {
            get_tenant(t, w, tenant_id)?.accepts_members()?;
            let user_key = format!("{tenant_id}/{user}");
            if t.member_users.get(w, &user_key)?.is_some() {
                return Err(Error::Conflict(format!("member {user} already exists in tenant")));
            }
            check_counted_quota(t, w, tenant_id, Counted::Members)?;
            t.members.put(w, &format!("{tenant_id}/{}", member.member_id), &member)?;
            t.member_users.put(w, &user_key, &member.member_id)?;
            Ok(())
        })?;
        Ok(member)
    }

    /// Members of a tenant, optionally only one role, paged.
    pub fn list_members(
        &self,
        tenant_id: &str,
        role: Option<Role>,
        page: Page,
    ) -> Result<MemberList> {
        let caller = self.caller()?;
        authorize(caller.principal(), Action::AdministerTenant(Some(tenant_id)))?;
        let (offset, limit) = page.bounds()?;
        self.state.catalog.read(|r, t| {
            get_tenant(t, r, tenant_id)?;
            let mut members = Vec::new();
            let mut total = 0u64;
            for entry in t.members.prefix_iter(r, &format!("{tenant_id}/"))? {
                let (_, m) = entry?;
                if role.is_some_and(|want| want != m.role) {
                    continue;
                }
                if total as usize >= offset && members.len() < limit {
                    members.push(m);
                }
                total += 1;
            }
            Ok(MemberList { tenant_id: tenant_id.to_owned(), members, total_count: total })
        })
    }

    /// Removes a member and revokes, at once, every key issued to it or minted by its keys.
    pub fn remove_member(&self, tenant_id: &str, member_id: &str) -> Result<Member> {
        let caller = self.caller()?;
        authorize(caller.principal(), Action::AdministerTenant(Some(tenant_id)))?;
        let now = self.state.options.clock.now();
        self.state.catalog_write(|w, t| {
            get_tenant(t, w, tenant_id)?;
            let key = format!("{tenant_id}/{member_id}");
            let found = if crate::catalog::can_be_key(member_id) && crate::catalog::can_be_key(&key)
            {
                t.members.get(w, &key)?
            } else {
                None
            };
            let member = found.ok_or_else(|| Error::not_found("member", member_id))?;
            t.members.delete(w, &key)?;
            t.member_users.delete(w, &format!("{tenant_id}/{}", member.user_identifier))?;
            crate::keys::revoke_where(
                t,
                w,
                |k| {
                    k.member_id.as_deref() == Some(member_id)
                        || k.issuer_member_id.as_deref() == Some(member_id)
                },
                Some(now),
            )?;
            Ok(member)
        })
    }
}
