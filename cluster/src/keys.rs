//! API keys in the control plane (`keys/<id>` in etcd, hashes only): creation, listing,
//! rotation and revocation from any node, with core's rules for who may
//! (`memsilo::auth::authorize` on the caller as a [`memsilo::Principal`]) and core's views of
//! a key ([`memsilo::ApiKey`], [`memsilo::CreatedKey`]). A key is stored with a guarded
//! transaction comparing the revisions of everything it depends on (its tenant, member,
//! issuer and namespaces), so it is never stored for one removed meanwhile.

use etcd_client::{Compare, CompareOp, GetOptions, SortOrder, SortTarget, Txn, TxnOp};
use memsilo::api::{ListKeysArgs, Reply, Request};
use memsilo::auth::{authorize, Action, KeyOwner};
use memsilo::{ApiKey, CreatedKey, Error, NamespaceGrant, Page, Result};
use serde_json::Value;

use crate::control::{hex, Caller, Grant, KeyRecord};
use crate::node::Node;

impl KeyRecord {
    /// The key as callers see it (core's view: never its secret or its hash).
    pub fn view(&self) -> ApiKey {
        ApiKey {
            id: self.id.clone(),
            name: self.name.clone(),
            prefix: memsilo::auth::display_prefix(&self.id),
            tenant_id: self.tenant_id.clone(),
            member_id: self.member_id.clone(),
            role: self.role,
            namespaces: self
                .namespaces
                .iter()
                .map(|g| NamespaceGrant { namespace: g.namespace.clone(), access: g.access })
                .collect(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked: self.revoked_at.is_some(),
        }
    }
}

impl Node {
    /// A live (unrevoked) key the caller administers, and its record's revision; any other is
    /// `not_found`, as on one node.
    async fn visible_key(&self, caller: &Caller, id: &str) -> Result<(KeyRecord, i64)> {
        let gone = || Error::not_found("key", id);
        if id.is_empty() || id.len() > 511 {
            return Err(gone());
        }
        let resp = self.get(&self.key("keys", id), None).await?;
        let kv = resp.kvs().first().ok_or_else(gone)?;
        let rec: KeyRecord = serde_json::from_slice(kv.value())?;
        let administers =
            authorize(&caller.principal(), Action::AdministerTenant(rec.tenant_id.as_deref()));
        if rec.revoked_at.is_some() || administers.is_err() {
            return Err(gone());
        }
        Ok((rec, kv.mod_revision()))
    }

    /// Writes a changed key record if it is still at `revision`.
    async fn put_key(&self, rec: &KeyRecord, revision: i64) -> Result<()> {
        let key = self.key("keys", &rec.id);
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, revision)])
            .and_then([TxnOp::put(key, serde_json::to_string(rec)?, None)]);
        if self.txn(&txn).await?.succeeded() {
            Ok(())
        } else {
            Err(Error::Conflict("the key changed meanwhile; retry".into()))
        }
    }

    /// `list_keys`: the keys the caller administers (the admin key: all, or one tenant's; a
    /// tenant admin: its tenant's), revoked ones left out, in id order, paged by offset.
    pub async fn list_keys(&self, caller: &Caller, args: Value) -> Result<Reply> {
        let Request::ListKeys(a) = Request::parse("list_keys", args)? else {
            return Err(Error::Internal("list_keys decoded as another operation".into()));
        };
        let ListKeysArgs { tenant_id, namespace, offset, limit } = a;
        let (offset, limit) = Page { offset, limit }.bounds()?;
        let principal = caller.principal();
        if let Some(ns) = &namespace {
            // Like every call naming a namespace: `forbidden` outside the caller's
            // administration, whether or not it exists.
            self.check_manages(caller, ns).await?;
        }
        let scope = match (caller, tenant_id) {
            (Caller::Admin, t) => t,
            (_, t) => {
                let want = t.or_else(|| principal.tenant_id().map(str::to_owned));
                authorize(&principal, Action::AdministerTenant(want.as_deref()))?;
                want
            }
        };
        let options = GetOptions::new().with_prefix().with_sort(SortTarget::Key, SortOrder::Ascend);
        let resp = self.get(&self.key("keys", ""), Some(options)).await?;
        let mut items = Vec::new();
        let mut total = 0u64;
        for kv in resp.kvs() {
            let Ok(k) = serde_json::from_slice::<KeyRecord>(kv.value()) else { continue };
            if k.revoked_at.is_some()
                || scope.as_ref().is_some_and(|s| k.tenant_id.as_ref() != Some(s))
                || namespace
                    .as_ref()
                    .is_some_and(|ns| !k.namespaces.iter().any(|g| g.namespace == *ns))
            {
                continue;
            }
            if total as usize >= offset && items.len() < limit {
                items.push(k.view());
            }
            total += 1;
        }
        Ok(Reply {
            value: serde_json::to_value(items)?,
            total_count: Some(total),
            next_cursor: None,
        })
    }

    /// `forbidden` unless the caller administers namespace `ns` (the admin key; a tenant admin
    /// for its tenant's), whether or not it exists; `not_found` for the admin key.
    pub(crate) async fn check_manages(&self, caller: &Caller, ns: &str) -> Result<()> {
        let found = self.get(&self.ns_key("namespaces", ns), None).await?;
        let tenant = found.kvs().first().map(|kv| {
            let rec: Value = serde_json::from_slice(kv.value()).unwrap_or(Value::Null);
            rec.get("tenant_id").and_then(Value::as_str).map(str::to_owned)
        });
        match (caller, tenant) {
            (Caller::Admin, None) => Err(Error::not_found("namespace", ns)),
            (_, Some(tenant)) => caller.authorize_manage(ns, tenant.as_deref()),
            _ => Err(Error::namespace_forbidden(ns)),
        }
    }

    /// Revokes a key of the control plane, for every node (the admin key; a tenant admin its
    /// tenant's keys); with `namespace`, only a key granted it. Others are `not_found`.
    pub async fn revoke_key(
        &self,
        caller: &Caller,
        id: &str,
        namespace: Option<&str>,
    ) -> Result<ApiKey> {
        if let Some(ns) = namespace {
            self.check_manages(caller, ns).await?;
        }
        let (mut rec, revision) = self.visible_key(caller, id).await?;
        if namespace.is_some_and(|ns| !rec.namespaces.iter().any(|g| g.namespace == ns)) {
            return Err(Error::not_found("key", id));
        }
        rec.revoked_at = Some(chrono::Utc::now());
        self.put_key(&rec, revision).await?;
        Ok(rec.view())
    }

    /// Gives a key a new secret (the old one is refused on every node once the watch brings
    /// the change); the answer holds the only copy of the new key text. Who may: core's
    /// `RotateKey` rule (the admin key; a tenant admin its own key and keys bound to its member).
    pub async fn rotate_key(&self, caller: &Caller, id: &str) -> Result<CreatedKey> {
        let (mut rec, revision) = self.visible_key(caller, id).await?;
        let owner = KeyOwner {
            key_id: id,
            tenant_id: rec.tenant_id.as_deref(),
            member_id: rec.member_id.as_deref().or(rec.issuer_member_id.as_deref()),
        };
        authorize(&caller.principal(), Action::RotateKey(&owner))?;
        let (text, hash) = memsilo::auth::issue_external_secret_for(id)?;
        rec.secret_sha256 = hex(&hash);
        rec.rotated_at = Some(chrono::Utc::now());
        self.put_key(&rec, revision).await?;
        Ok(CreatedKey { info: rec.view(), key: text })
    }

    /// Whether `caller` may issue the key `req` asks for (core's rules): a tenant key needs
    /// `IssueKey` in its tenant; a namespace-scoped key, administration of each namespace
    /// (`forbidden` otherwise, whether or not it exists). Returns the member the caller's key
    /// is bound to (the new key's issuer) and the guard that it is still a member when the key
    /// is stored.
    async fn may_issue(
        &self,
        caller: &Caller,
        req: &memsilo::CreateKey,
        tenant_key: Option<&str>,
    ) -> Result<(Option<String>, Vec<Compare>)> {
        use memsilo::auth::{authorize, Action};
        let principal = caller.principal();
        if let Some(tid) = tenant_key {
            authorize(&principal, Action::AdministerTenant(Some(tid)))?;
            let role = req.role.unwrap_or(memsilo::Role::Admin);
            authorize(&principal, Action::IssueKey(Some(tid), role))?;
        } else if !matches!(caller, Caller::Admin) {
            for g in req.namespaces.iter().flatten() {
                self.check_manages(caller, &g.namespace).await?;
            }
        }
        let issuer = match &principal {
            memsilo::Principal::Member { member_id, .. } => member_id.clone(),
            _ => None,
        };
        let mut compares = Vec::new();
        if let (Some(mid), Some(tid)) = (&issuer, caller.tenant_id()) {
            let member = self.key("members", &format!("{tid}/{mid}"));
            let found = self.get(&member, None).await?;
            let Some(kv) = found.kvs().first() else {
                return Err(Error::Unauthorized("API key revoked".into()));
            };
            compares.push(Compare::mod_revision(member, CompareOp::Equal, kv.mod_revision()));
        }
        Ok((issuer, compares))
    }

    /// Creates a key in the control plane, by core's rules as on one node: the admin key any
    /// key; a tenant admin's key its tenant's keys (never stronger than its own role, and
    /// namespace-scoped keys only for namespaces it administers). A key issued by a key bound
    /// to a member records that member (`issuer_member_id`) and dies with the membership. The
    /// answer holds the only copy of the secret.
    pub async fn create_key(&self, caller: &Caller, args: Value) -> Result<Value> {
        let Request::CreateKey(req) = Request::parse("create_key", args)? else {
            return Err(Error::Internal("create_key decoded as another operation".into()));
        };
        // The request's shape is checked by core's rules, as on one node.
        let tenant_key = req.check_shape()?.map(str::to_owned);
        req.check_expiry(chrono::Utc::now())?;
        let name = req.name.trim().to_owned();
        let grants = req.namespaces.clone().unwrap_or_default();
        let (issuer_member_id, mut compares) =
            self.may_issue(caller, &req, tenant_key.as_deref()).await?;
        let mut namespaces = Vec::new();
        if let Some(tid) = &tenant_key {
            // A tenant key: its tenant (and member) must exist until the key is stored.
            let tenant = self.key("tenants", tid);
            let found = self.get(&tenant, None).await?;
            let Some(kv) = found.kvs().first() else {
                return Err(Error::invalid("tenant_id", format!("no tenant with id {tid}")));
            };
            compares.push(Compare::mod_revision(tenant, CompareOp::Equal, kv.mod_revision()));
            if let Some(mid) = &req.member_id {
                let member = self.key("members", &format!("{tid}/{mid}"));
                let found = self.get(&member, None).await?;
                let Some(kv) = found.kvs().first() else {
                    return Err(Error::invalid(
                        "member_id",
                        format!("no member {mid} in tenant {tid}"),
                    ));
                };
                compares.push(Compare::mod_revision(member, CompareOp::Equal, kv.mod_revision()));
            }
        }
        // A namespace-scoped key's tenant, as the engine decides it: the one given (every
        // namespace must be its), else the one every namespace belongs to.
        let mut tenants = std::collections::BTreeSet::new();
        for (i, g) in grants.iter().enumerate() {
            let field = format!("namespaces[{i}].namespace");
            let key = self.ns_key("namespaces", &g.namespace);
            let found = self.get(&key, None).await?;
            let Some(kv) = found.kvs().first() else {
                return Err(Error::invalid(field, format!("no namespace {:?}", g.namespace)));
            };
            let record: Value = serde_json::from_slice(kv.value()).unwrap_or(Value::Null);
            let owner = record.get("tenant_id").and_then(Value::as_str).map(str::to_owned);
            match (&req.tenant_id, &owner) {
                (Some(t), Some(o)) if t != o => {
                    return Err(Error::invalid(field, "namespace belongs to another tenant"));
                }
                (Some(_), None) => {
                    return Err(Error::invalid(field, "namespace belongs to no tenant"));
                }
                _ => {}
            }
            tenants.insert(owner);
            compares.push(Compare::mod_revision(key, CompareOp::Equal, kv.mod_revision()));
            namespaces.push(Grant { namespace: g.namespace.clone(), access: g.access });
        }
        let tenant_id = match req.tenant_id.clone() {
            Some(t) => Some(t),
            None if tenants.len() == 1 => tenants.into_iter().next().flatten(),
            None => None,
        };
        let (id, text, hash) = memsilo::auth::issue_external_key()?;
        let rec = KeyRecord {
            id: id.clone(),
            name,
            secret_sha256: hex(&hash),
            tenant_id,
            namespaces,
            role: req.role,
            member_id: req.member_id.clone(),
            issuer_member_id,
            created_at: chrono::Utc::now(),
            expires_at: req.expires_at,
            revoked_at: None,
            rotated_at: None,
        };
        let value = serde_json::to_string(&rec)?;
        let txn =
            Txn::new().when(compares).and_then([TxnOp::put(self.key("keys", &id), value, None)]);
        let resp = self.txn(&txn).await?;
        if !resp.succeeded() {
            return Err(Error::Conflict(
                "the key's namespaces, tenant or member changed meanwhile; retry".into(),
            ));
        }
        Ok(serde_json::to_value(memsilo::CreatedKey { info: rec.view(), key: text })?)
    }
}
