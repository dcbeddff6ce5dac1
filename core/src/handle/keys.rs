//! API keys: creating, listing, rotating and revoking scoped and member keys, and who the
//! caller is. Records and resolution are [`crate::keys`]'s.

use crate::auth::to_hex;
use crate::auth::{self, authorize, Action, Grant, NamespaceAction, Principal, Role};
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::keys::ApiKey;
use crate::keys::CreateKey;
use crate::keys::CreatedKey;
use crate::keys::KeyRecord;
use crate::page::{Page, Paged};
use crate::state::Affects;
use crate::tenant::TenantStatus;

impl Handle {
    /// Creates a key. The returned [`CreatedKey::key`] is the only copy of the secret.
    #[allow(clippy::too_many_lines)] // the validation of the two key kinds, in order
    pub fn create_key(&self, req: CreateKey) -> Result<CreatedKey> {
        let caller = self.caller()?;
        let tenant_key = req.check_shape()?;
        let name = req.name.trim();
        let now = self.state.options.clock.now();
        req.check_expiry(now)?;
        let grants_req = req.namespaces.clone().unwrap_or_default();
        let mut grants = Vec::with_capacity(grants_req.len());
        let mut tenant_id = req.tenant_id.clone();
        if let Some(tid) = tenant_key {
            authorize(caller.principal(), Action::AdministerTenant(Some(tid)))?;
            authorize(
                caller.principal(),
                Action::IssueKey(Some(tid), req.role.unwrap_or(Role::Admin)),
            )?;
        } else {
            for (i, g) in grants_req.iter().enumerate() {
                let field = format!("namespaces[{i}].namespace");
                let rec = self.namespace_for(&caller, &g.namespace, NamespaceAction::Manage)?;
                match (&tenant_id, &rec.tenant_id) {
                    (Some(t), Some(r)) if t != r => {
                        return Err(Error::invalid(field, "namespace belongs to another tenant"));
                    }
                    (Some(_), None) => {
                        return Err(Error::invalid(field, "namespace belongs to no tenant"));
                    }
                    _ => {}
                }
                grants.push(Grant {
                    namespace: g.namespace.clone(),
                    namespace_id: rec.id,
                    access: g.access,
                });
            }
            if tenant_id.is_none() {
                let first = self.state.catalog.read(|r, t| {
                    let mut tenants = std::collections::BTreeSet::new();
                    for g in &grants {
                        tenants
                            .insert(t.namespaces.get(r, &g.namespace)?.and_then(|n| n.tenant_id));
                    }
                    Ok(if tenants.len() == 1 { tenants.into_iter().next().flatten() } else { None })
                })?;
                tenant_id = first;
            }
        }
        let issuer_member_id = match caller.principal() {
            Principal::Member { member_id, .. } => member_id.clone(),
            _ => None,
        };
        let new = auth::generate_key()?;
        let rec = KeyRecord {
            id: new.parsed.id.clone(),
            name: name.to_owned(),
            secret_sha256: to_hex(&new.parsed.secret_hash),
            tenant_id: tenant_id.clone(),
            member_id: req.member_id.clone(),
            role: req.role,
            issuer_member_id,
            grants,
            created_at: now,
            expires_at: req.expires_at,
            revoked_at: None,
            rotated_at: None,
        };
        let create = |w: &mut heed3::RwTxn<'_>, t: &crate::catalog::CatalogTables| {
            if let Some(tid) = &rec.tenant_id {
                let tenant = crate::tenant::get_tenant(t, w, tid)
                    .map_err(|_| Error::invalid("tenant_id", format!("no tenant with id {tid}")))?;
                if matches!(tenant.status, TenantStatus::Deleting | TenantStatus::Deleted) {
                    return Err(Error::invalid("tenant_id", "tenant is being deleted"));
                }
            }
            if let (Some(tid), Some(mid)) = (&rec.tenant_id, &rec.member_id) {
                if t.members.get(w, &format!("{tid}/{mid}"))?.is_none() {
                    return Err(Error::invalid(
                        "member_id",
                        format!("no member {mid} in tenant {tid}"),
                    ));
                }
            }
            for g in &rec.grants {
                if t.namespaces.get(w, &g.namespace)?.is_none_or(|n| n.id != g.namespace_id) {
                    return Err(Error::namespace_forbidden(&g.namespace));
                }
            }
            t.keys.put(w, &rec.id, &rec)?;
            Ok(())
        };
        self.state.catalog_write_audited(Affects::NoKeys, create, |()| {
            (rec.tenant_id.clone(), Some(rec.id.clone()))
        })?;
        Ok(CreatedKey { info: rec.view(), key: new.text })
    }

    fn visible_key(&self, principal: &Principal, id: &str) -> Result<KeyRecord> {
        if !crate::catalog::can_be_key(id) {
            return Err(Error::not_found("key", id));
        }
        let rec = self
            .state
            .catalog
            .read(|r, t| Ok(t.keys.get(r, id)?))?
            .filter(|k| k.revoked_at.is_none())
            .filter(|k| {
                authorize(principal, Action::AdministerTenant(k.tenant_id.as_deref())).is_ok()
            });
        rec.ok_or_else(|| Error::not_found("key", id))
    }

    /// Keys the caller administers (root: all, or one tenant's), paged; revoked keys are left out.
    pub fn list_keys(&self, page: Page, tenant_id: Option<&str>) -> Result<Paged<ApiKey>> {
        self.list_keys_granting(page, tenant_id, None)
    }

    /// [`Handle::list_keys`], only the keys granted `namespace` when one is given.
    pub fn list_keys_granting(
        &self,
        page: Page,
        tenant_id: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Paged<ApiKey>> {
        let caller = self.caller()?;
        let (offset, limit) = page.bounds()?;
        if let Some(ns) = namespace {
            // Like every call naming a namespace: `forbidden` outside the caller's
            // administration, whether or not it exists.
            self.namespace_for(&caller, ns, NamespaceAction::Manage)?;
        }
        let scope = match (caller.principal(), tenant_id) {
            (Principal::Root, t) => t.map(str::to_owned),
            (p, t) => {
                let own = p.tenant_id().map(str::to_owned);
                let want = t.map(str::to_owned).or(own);
                authorize(p, Action::AdministerTenant(want.as_deref()))?;
                want
            }
        };
        self.state.catalog.read(|r, t| {
            let mut items = Vec::new();
            let mut total = 0u64;
            for e in t.keys.iter(r)? {
                let (_, k) = e?;
                if k.revoked_at.is_some()
                    || scope.as_ref().is_some_and(|s| k.tenant_id.as_ref() != Some(s))
                    || namespace.is_some_and(|ns| !k.grants.iter().any(|g| g.namespace == ns))
                {
                    continue;
                }
                if total as usize >= offset && items.len() < limit {
                    items.push(k.view());
                }
                total += 1;
            }
            Ok(Paged { items, total_count: total, next_cursor: None })
        })
    }

    /// [`Handle::revoke_key`] for a key granted `namespace`; any other key is `not_found`.
    /// A namespace the caller does not administer is `forbidden`, whether or not it exists.
    pub fn revoke_namespace_key(&self, key_id: &str, namespace: &str) -> Result<ApiKey> {
        let caller = self.caller()?;
        self.namespace_for(&caller, namespace, NamespaceAction::Manage)?;
        let rec = self.visible_key(caller.principal(), key_id)?;
        if !rec.grants.iter().any(|g| g.namespace == namespace) {
            return Err(Error::not_found("key", key_id));
        }
        self.revoke_key(key_id)
    }

    /// Revokes a key; it fails with `unauthorized` from this moment, in every handle.
    pub fn revoke_key(&self, key_id: &str) -> Result<ApiKey> {
        let caller = self.caller()?;
        self.visible_key(caller.principal(), key_id)?;
        let now = self.state.options.clock.now();
        self.state.catalog_write_affecting(Affects::Key(key_id), |w, t| {
            let mut k = t.keys.get(w, key_id)?.ok_or_else(|| Error::not_found("key", key_id))?;
            k.revoked_at = Some(now);
            t.keys.put(w, key_id, &k)?;
            Ok(k.view())
        })
    }

    /// Gives a key a new secret; the old one fails at once. Returns the new key text (once).
    pub fn rotate_key(&self, key_id: &str) -> Result<CreatedKey> {
        let caller = self.caller()?;
        let rec = self.visible_key(caller.principal(), key_id)?;
        let owner = auth::KeyOwner {
            key_id,
            tenant_id: rec.tenant_id.as_deref(),
            member_id: rec.member_id.as_deref().or(rec.issuer_member_id.as_deref()),
        };
        authorize(caller.principal(), Action::RotateKey(&owner))?;
        let new = auth::generate_secret_for(key_id)?;
        let now = self.state.options.clock.now();
        let info = self.state.catalog_write_affecting(Affects::Key(key_id), |w, t| {
            let mut k = t.keys.get(w, key_id)?.ok_or_else(|| Error::not_found("key", key_id))?;
            k.secret_sha256 = to_hex(&new.parsed.secret_hash);
            k.rotated_at = Some(now);
            t.keys.put(w, key_id, &k)?;
            Ok(k.view())
        })?;
        Ok(CreatedKey { info, key: new.text })
    }
}
