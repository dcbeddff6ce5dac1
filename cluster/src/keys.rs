//! API keys in the control plane (`keys/<id>` in etcd, hashes only): listing, rotation and
//! revocation from any node, with core's rules for who may (`memsilo::auth::authorize` on the
//! caller as a [`memsilo::Principal`]) and core's views of a key ([`memsilo::ApiKey`],
//! [`memsilo::CreatedKey`]).

use etcd_client::{Compare, CompareOp, GetOptions, SortOrder, SortTarget, Txn, TxnOp};
use memsilo::api::{ListKeysArgs, Reply, Request};
use memsilo::auth::{authorize, Action, KeyOwner};
use memsilo::{ApiKey, CreatedKey, Error, NamespaceGrant, Page, Result};
use serde_json::Value;

use crate::control::{hex, Caller, KeyRecord};
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
}
