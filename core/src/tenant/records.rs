//! Tenant records in the catalog: validation of names and labels, reading a tenant and the
//! chain of its ancestors, and the counted quotas (namespaces, keys, members) checked on creation.

use serde_json::Value;

use super::{Tenant, MAX_TENANT_DEPTH};
use crate::catalog::CatalogTables;
use crate::error::{Error, Result};
use crate::quota::QuotaLink;
use crate::storage::RoTxn;

pub(crate) fn validate_tenant_name(name: &str) -> Result<()> {
    let refuse =
        |reason: &str| Err(Error::Validation { field: "name".into(), reason: reason.into() });
    if name.len() < 3 {
        return refuse("must be at least 3 characters");
    }
    if name.len() > 64 {
        return refuse("must be at most 64 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return refuse("must contain only A-Z, a-z, 0-9 and _");
    }
    Ok(())
}

pub(super) fn validate_object_or_array(field: &str, v: &Value) -> Result<()> {
    match v {
        Value::Array(items) if items.iter().all(Value::is_string) => Ok(()),
        Value::Object(_) => Ok(()),
        _ => Err(Error::invalid(field, "must be an array of strings or an object")),
    }
}

/// Checks the optional `features` and `tags` of a create or update.
pub(super) fn validate_labels(features: Option<&Value>, tags: Option<&Value>) -> Result<()> {
    for (field, v) in [("features", features), ("tags", tags)] {
        if let Some(v) = v {
            validate_object_or_array(field, v)?;
            validate_json_size(field, v)?;
        }
    }
    Ok(())
}

pub(super) fn validate_json_size(field: &str, v: &Value) -> Result<()> {
    crate::document::check(field, v).map(drop)
}

pub(crate) fn get_tenant(t: &CatalogTables, r: &mut RoTxn<'_>, id: &str) -> Result<Tenant> {
    if !crate::catalog::can_be_key(id) {
        return Err(Error::not_found("tenant", id));
    }
    t.tenants.get(r, id)?.ok_or_else(|| Error::not_found("tenant", id))
}

/// The tenant and its ancestors, each with its storage limit.
pub(crate) fn quota_chain(
    t: &CatalogTables,
    r: &mut RoTxn<'_>,
    tenant_id: &str,
) -> Result<Vec<QuotaLink>> {
    let mut chain = Vec::new();
    let mut next = Some(tenant_id.to_owned());
    while let Some(id) = next.take() {
        if chain.len() > MAX_TENANT_DEPTH {
            break;
        }
        let tenant = get_tenant(t, r, &id)?;
        chain.push(QuotaLink { tenant_id: id, limit: tenant.quotas.storage_quota_bytes });
        next = tenant.parent_id;
    }
    Ok(chain)
}

/// A quota counted in catalog rows keyed `tenant_id/...` (namespaces, members).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counted {
    /// `max_namespaces`, over each tenant's namespace count (`catalog::tenant_namespace_count`).
    Namespaces,
    /// `max_members`, over `members`.
    Members,
}

/// Checks that one more of a counted quota fits `tenant_id` and each of its ancestors, each
/// counting its whole subtree (a child's namespaces and members count against its parents'
/// limits too); refused, the error names the caller's own tenant (see
/// [`crate::quota::chain_exceeded`]).
pub(crate) fn check_counted_quota(
    t: &CatalogTables,
    r: &mut RoTxn<'_>,
    tenant_id: &str,
    what: Counted,
) -> Result<()> {
    let mut children = std::collections::HashMap::<String, Vec<String>>::default();
    for e in t.tenants.iter(r)? {
        let (id, tenant) = e?;
        if let Some(p) = tenant.parent_id {
            children.entry(p).or_default().push(id.to_owned());
        }
    }
    let count = |r: &mut RoTxn<'_>, id: &str| -> Result<u64> {
        let prefix = format!("{id}/");
        match what {
            Counted::Namespaces => crate::catalog::tenant_namespace_count(t, r, id),
            Counted::Members => count_prefix(&t.members, r, &prefix),
        }
    };
    let mut usage = Vec::new();
    let mut next = Some(get_tenant(t, r, tenant_id)?);
    while let Some(tenant) = next.take() {
        if usage.len() >= MAX_TENANT_DEPTH {
            break;
        }
        let mut total = 0;
        let mut stack = vec![tenant.id.clone()];
        while let Some(id) = stack.pop() {
            total += count(r, &id)?;
            stack.extend(children.get(&id).into_iter().flatten().cloned());
        }
        let limit = match what {
            Counted::Namespaces => tenant.quotas.max_namespaces,
            Counted::Members => tenant.quotas.max_members,
        };
        usage.push((u64::from(limit), total));
        next = tenant.parent_id.as_deref().map(|p| get_tenant(t, r, p)).transpose()?;
    }
    let quota = match what {
        Counted::Namespaces => "max_namespaces",
        Counted::Members => "max_members",
    };
    crate::quota::chain_exceeded(tenant_id, quota, &usage, 1)
}

pub(crate) fn count_prefix<V>(
    db: &crate::storage::Table<heed3::types::Str, V>,
    r: &mut RoTxn<'_>,
    prefix: &str,
) -> Result<u64>
where
    V: 'static,
{
    let mut n = 0;
    for item in db.remap_data_type::<heed3::types::DecodeIgnore>().prefix_iter(r, prefix)? {
        item?;
        n += 1;
    }
    Ok(n)
}
