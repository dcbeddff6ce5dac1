//! Tenants and members in the control plane (etcd), changed with guarded transactions.
//!
//! Keys, under `/PREFIX/`:
//! - `tenants/<id>`: the tenant (core's [`Tenant`]), cached on every node through the watch;
//! - `tenant_names/<hex name>`: its id (names are unique: created if absent);
//! - `tenant_counts/<id>`: `{namespaces, members}`, moved with a compare on its revision so
//!   `max_namespaces` and `max_members` hold exactly however many nodes add at once;
//! - `members/<tenant id>/<member id>`: a member (core's [`Member`]);
//! - `member_users/<tenant id>/<hex user>`: its id (one member per user and tenant);
//! - `quota/<tenant id>`: each namespace's storage reservation (see `quota.rs`).
//!
//! Checking the requests (names, quotas, labels, sizes) is core's code ([`Tenant::from_request`],
//! [`Tenant::apply_update`], [`Member::new`]); this module stores the result.

use etcd_client::{Compare, CompareOp, GetOptions, SortOrder, SortTarget, Txn, TxnOp};
use memsilo::api::{Request, TenantArgs};
use memsilo::auth::{authorize, Action};
use memsilo::{
    Error, Member, MemberList, Page, Result, Tenant, TenantInfo, TenantStatus, TenantUsage,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::control::{hex, Caller};
use crate::node::Node;

/// How many times a guarded change is tried again when another node changed what it read.
const TRIES: usize = 20;

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

/// Core's rule for `action` by `caller` (the engine's `authorize`, on the caller as a
/// [`memsilo::Principal`]): the admin key manages tenants; a tenant admin reads its tenant and
/// administers its members.
fn allowed(caller: &Caller, action: Action<'_>) -> Result<()> {
    authorize(&caller.principal(), action)
}

fn with_message(value: impl Serialize, message: &str) -> Result<Value> {
    let mut value = serde_json::to_value(value)?;
    value["message"] = Value::String(message.to_owned());
    Ok(value)
}

fn changed_meanwhile() -> Error {
    Error::Internal("the control plane kept changing under this request; retry".into())
}

impl Node {
    /// A tenant/member operation of the control plane, from any node, allowed by core's rules:
    /// the admin key manages tenants; a tenant admin's key reads its tenant and manages its
    /// members, as on one node.
    pub async fn tenant_op(&self, caller: &Caller, op: &str, args: Value) -> Result<Value> {
        match Request::parse(op, args)? {
            Request::CreateTenant(req) => {
                allowed(caller, Action::ManageTenants)?;
                self.create_tenant(req).await
            }
            Request::GetTenant(TenantArgs { tenant_id }) => {
                allowed(caller, Action::ReadTenant(&tenant_id))?;
                let (tenant, _) = self.tenant_record(&tenant_id).await?;
                Ok(serde_json::to_value(self.tenant_info(tenant).await?)?)
            }
            Request::ListTenants(a) => {
                // The admin key: every tenant; a tenant admin: its own (as on one node).
                let only = match allowed(caller, Action::ManageTenants) {
                    Ok(()) => None,
                    Err(e) => match caller.tenant_id() {
                        Some(t) if allowed(caller, Action::ReadTenant(t)).is_ok() => {
                            Some(t.to_owned())
                        }
                        _ => return Err(e),
                    },
                };
                self.list_tenants(a, only).await
            }
            Request::UpdateTenant(a) => {
                allowed(caller, Action::ManageTenants)?;
                self.update_tenant(a).await
            }
            Request::DeleteTenant(TenantArgs { tenant_id }) => {
                allowed(caller, Action::ManageTenants)?;
                self.delete_tenant(tenant_id).await
            }
            Request::AddMember(a) => {
                allowed(caller, Action::AdministerTenant(Some(&a.tenant_id)))?;
                self.add_member(a).await
            }
            Request::ListMembers(a) => {
                allowed(caller, Action::AdministerTenant(Some(&a.tenant_id)))?;
                self.list_members(a).await
            }
            Request::RemoveMember(a) => {
                allowed(caller, Action::AdministerTenant(Some(&a.tenant_id)))?;
                self.remove_member(a).await
            }
            other => {
                Err(Error::invalid("op", format!("{} is not a tenant operation", other.name())))
            }
        }
    }

    async fn create_tenant(&self, req: memsilo::CreateTenant) -> Result<Value> {
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

    async fn list_tenants(
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

    async fn update_tenant(&self, a: memsilo::api::UpdateTenantArgs) -> Result<Value> {
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

    async fn delete_tenant(&self, tenant_id: String) -> Result<Value> {
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

    async fn add_member(&self, a: memsilo::api::AddMemberArgs) -> Result<Value> {
        let member =
            Member::new(&a.tenant_id, &a.user_identifier, a.role, a.metadata, chrono::Utc::now())?;
        let user_key = self.key(
            "member_users",
            &format!("{}/{}", a.tenant_id, hex(member.user_identifier.as_bytes())),
        );
        for _ in 0..TRIES {
            let (tenant, _) = self.tenant_record(&a.tenant_id).await?;
            tenant.accepts_members()?;
            let (mut when, mut then) = self.count(&a.tenant_id, Counted::Members, true).await?;
            when.push(Compare::create_revision(user_key.clone(), CompareOp::Equal, 0));
            then.extend([
                TxnOp::put(
                    self.key("members", &format!("{}/{}", a.tenant_id, member.member_id)),
                    to_json(&member)?,
                    None,
                ),
                TxnOp::put(user_key.clone(), member.member_id.clone(), None),
            ]);
            if self.txn(&Txn::new().when(when).and_then(then)).await?.succeeded() {
                let message = format!("Member added successfully to tenant {}", member.tenant_id);
                return with_message(&member, &message);
            }
            if !self.get(&user_key, None).await?.kvs().is_empty() {
                return Err(Error::Conflict(format!(
                    "member {} already exists in tenant",
                    member.user_identifier
                )));
            }
        }
        Err(changed_meanwhile())
    }

    async fn list_members(&self, a: memsilo::api::ListMembersArgs) -> Result<Value> {
        let (offset, limit) = Page { offset: a.offset, limit: a.limit }.bounds()?;
        self.tenant_record(&a.tenant_id).await?;
        let options = GetOptions::new().with_prefix().with_sort(SortTarget::Key, SortOrder::Ascend);
        let resp =
            self.get(&self.key("members", &format!("{}/", a.tenant_id)), Some(options)).await?;
        let mut members = Vec::new();
        let mut total = 0u64;
        for kv in resp.kvs() {
            let Ok(m) = serde_json::from_slice::<Member>(kv.value()) else { continue };
            if a.role.is_some_and(|want| want != m.role) {
                continue;
            }
            if total as usize >= offset && members.len() < limit {
                members.push(m);
            }
            total += 1;
        }
        Ok(serde_json::to_value(MemberList {
            tenant_id: a.tenant_id,
            members,
            total_count: total,
        })?)
    }

    async fn remove_member(&self, a: memsilo::api::MemberArgs) -> Result<Value> {
        self.tenant_record(&a.tenant_id).await?;
        let member_key = self.key("members", &format!("{}/{}", a.tenant_id, a.member_id));
        for _ in 0..TRIES {
            let found = self.get(&member_key, None).await?;
            let Some(kv) = found.kvs().first() else {
                return Err(Error::not_found("member", &a.member_id));
            };
            let member: Member = serde_json::from_slice(kv.value())?;
            let (mut when, mut then) = self.count(&a.tenant_id, Counted::Members, false).await?;
            let user_key = self.key(
                "member_users",
                &format!("{}/{}", a.tenant_id, hex(member.user_identifier.as_bytes())),
            );
            when.push(Compare::mod_revision(
                member_key.clone(),
                CompareOp::Equal,
                kv.mod_revision(),
            ));
            then.extend([TxnOp::delete(member_key.clone(), None), TxnOp::delete(user_key, None)]);
            if self.txn(&Txn::new().when(when).and_then(then)).await?.succeeded() {
                return Ok(json!({
                    "tenant_id": member.tenant_id,
                    "member_id": member.member_id,
                    "message": format!("Member {} removed from tenant {}", member.member_id, member.tenant_id),
                    "removed_at": chrono::Utc::now(),
                }));
            }
        }
        Err(changed_meanwhile())
    }

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

    async fn tenant_info(&self, tenant: Tenant) -> Result<TenantInfo> {
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

pub(crate) fn to_json(v: &impl Serialize) -> Result<String> {
    Ok(serde_json::to_string(v)?)
}
