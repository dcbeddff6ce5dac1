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

mod counts;
mod members;
mod records;

use memsilo::api::{Request, TenantArgs};
use memsilo::auth::{authorize, Action};
use memsilo::{Error, Result};
use serde::Serialize;
use serde_json::Value;

use crate::control::Caller;
use crate::node::Node;

pub(crate) use counts::{Counted, Counts};

/// How many times a guarded change is tried again when another node changed what it read.
const TRIES: usize = 20;

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
}

pub(crate) fn to_json(v: &impl Serialize) -> Result<String> {
    Ok(serde_json::to_string(v)?)
}
