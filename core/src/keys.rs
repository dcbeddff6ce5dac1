//! API keys: creation (shown once), listing, revocation, rotation, and resolution of a
//! presented key to its [`Principal`]. Only SHA-256 hashes of secrets are stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::{self, from_hex, Access, Grant, Issuer, ParsedKey, Principal, Role};
use crate::catalog::CatalogTables;
use crate::error::{Error, Result};
pub(crate) use crate::records::KeyRecord;
use crate::records::MAX_TENANT_DEPTH;
use crate::store::Store;

/// One namespace of a scoped key, as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NamespaceGrant {
    /// Namespace name.
    pub namespace: String,
    /// `read` or `write`.
    pub access: Access,
}

/// A key's description (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ApiKey {
    /// Key id (part of the key text).
    pub id: String,
    /// Human name.
    pub name: String,
    /// Displayable start of the key text.
    pub prefix: String,
    /// Tenant the key belongs to.
    pub tenant_id: Option<String>,
    /// Member the key was issued to.
    pub member_id: Option<String>,
    /// Role (tenant and member keys).
    pub role: Option<Role>,
    /// Namespaces (scoped keys).
    pub namespaces: Vec<NamespaceGrant>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// A newly created or rotated key: the only time the full key text is returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CreatedKey {
    /// The description.
    #[serde(flatten)]
    pub info: ApiKey,
    /// The full key text. Store it now; it cannot be shown again.
    pub key: String,
}

/// Arguments of [`Handle::create_key`]: either `namespaces`, or `tenant_id` with `role`
/// and/or `member_id`.
///
/// [`Handle::create_key`]: crate::Handle::create_key
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Human name, 1–128 characters.
    pub name: String,
    /// Namespaces the key may reach.
    #[serde(default)]
    pub namespaces: Option<Vec<NamespaceGrant>>,
    /// The tenant (required for role and member keys).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Role over every namespace of the tenant (or a cap on the member's role).
    #[serde(default)]
    pub role: Option<Role>,
    /// The member the key is issued to; its role decides what the key may do.
    #[serde(default)]
    pub member_id: Option<String>,
    /// When the key stops working.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl CreateKey {
    /// `expires_at`, if given, must be after `now` (the same for every issuer: the engine, a
    /// cluster's control plane).
    pub fn check_expiry(&self, now: DateTime<Utc>) -> Result<()> {
        if self.expires_at.is_some_and(|e| e <= now) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        Ok(())
    }

    /// Checks the request's shape, the same for every issuer (the engine, a cluster's control
    /// plane): the name (1-128 characters), then either namespaces (1-1000 valid names, each
    /// once, no role or `member_id`) or a tenant key (a `tenant_id` with a role or a `member_id`).
    /// Returns the tenant of a tenant key, `None` for a namespace-scoped key.
    pub fn check_shape(&self) -> Result<Option<&str>> {
        let name = self.name.trim();
        if name.is_empty() || name.len() > 128 {
            return Err(Error::invalid("name", "must be 1-128 characters"));
        }
        let grants = self.namespaces.as_deref().unwrap_or_default();
        if grants.len() > 1000 {
            return Err(Error::invalid("namespaces", "at most 1000 namespaces per key"));
        }
        if grants.is_empty() {
            if self.namespaces.is_some() && self.tenant_id.is_none() {
                return Err(Error::invalid("namespaces", "must name at least one namespace"));
            }
            let tid = self.tenant_id.as_deref().ok_or_else(|| {
                Error::invalid(
                    "namespaces",
                    "a key needs namespaces, or a tenant_id with a role or member_id",
                )
            })?;
            if self.role.is_none() && self.member_id.is_none() {
                return Err(Error::invalid("role", "a tenant key needs a role or a member_id"));
            }
            return Ok(Some(tid));
        }
        if self.role.is_some() || self.member_id.is_some() {
            return Err(Error::invalid(
                "role",
                "a namespace-scoped key takes no role or member_id",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, g) in grants.iter().enumerate() {
            let field = format!("namespaces[{i}].namespace");
            crate::records::validate_namespace_name(&g.namespace, &field)?;
            if !seen.insert(g.namespace.as_str()) {
                return Err(Error::invalid(field, "namespace listed twice"));
            }
        }
        Ok(None)
    }

    /// A key scoped to namespaces.
    pub fn namespaces<'a>(
        name: impl Into<String>,
        grants: impl IntoIterator<Item = (&'a str, Access)>,
    ) -> Self {
        CreateKey {
            name: name.into(),
            namespaces: Some(
                grants
                    .into_iter()
                    .map(|(n, access)| NamespaceGrant { namespace: n.to_owned(), access })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    /// A key with a role over every namespace of a tenant.
    pub fn tenant_role(name: impl Into<String>, tenant_id: impl Into<String>, role: Role) -> Self {
        CreateKey {
            name: name.into(),
            tenant_id: Some(tenant_id.into()),
            role: Some(role),
            ..Default::default()
        }
    }

    /// A key issued to a member: it acts with the member's role.
    pub fn member(
        name: impl Into<String>,
        tenant_id: impl Into<String>,
        member_id: impl Into<String>,
    ) -> Self {
        CreateKey {
            name: name.into(),
            tenant_id: Some(tenant_id.into()),
            member_id: Some(member_id.into()),
            ..Default::default()
        }
    }
}

impl KeyRecord {
    pub(crate) fn view(&self) -> ApiKey {
        ApiKey {
            id: self.id.clone(),
            name: self.name.clone(),
            prefix: auth::display_prefix(&self.id),
            tenant_id: self.tenant_id.clone(),
            member_id: self.member_id.clone(),
            role: self.role,
            namespaces: self
                .grants
                .iter()
                .map(|g| NamespaceGrant { namespace: g.namespace.clone(), access: g.access })
                .collect(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked: self.revoked_at.is_some(),
        }
    }
}

/// Revokes (with `now`) or deletes (without) every key matching `pred`.
pub(crate) fn revoke_where(
    t: &CatalogTables,
    w: &mut heed3::RwTxn<'_>,
    pred: impl Fn(&KeyRecord) -> bool,
    now: Option<DateTime<Utc>>,
) -> Result<usize> {
    let matching: Vec<KeyRecord> =
        t.keys.iter(w)?.filter_map(|e| e.ok().map(|(_, k)| k)).filter(|k| pred(k)).collect();
    for mut k in matching.iter().cloned() {
        match now {
            Some(now) => {
                k.revoked_at.get_or_insert(now);
                t.keys.put(w, &k.id.clone(), &k)?;
            }
            None => {
                t.keys.delete(w, &k.id)?;
            }
        }
    }
    Ok(matching.len())
}

/// What a valid key resolves to, cached until the catalog changes.
#[derive(Debug)]
pub(crate) struct Authed {
    pub principal: Principal,
    /// The rate and connection limits of the principal's tenant, then of each ancestor (a
    /// child's requests count against its parents' limits too). Empty: not limited.
    pub limits: Vec<TenantLimits>,
    /// When the key expires (micros since epoch).
    pub expires_at: Option<i64>,
}

/// One tenant's request limits.
#[derive(Debug, Clone)]
pub(crate) struct TenantLimits {
    pub tenant_id: String,
    pub qps_limit: u32,
    pub max_connections: u32,
    pub compute_quota_cores: f64,
}

/// Resolves a presented key against the catalog.
pub(crate) fn resolve_key(
    catalog: &Store<CatalogTables>,
    key: &ParsedKey,
    now: i64,
) -> Result<Authed> {
    let invalid = || Error::Unauthorized("invalid API key".into());
    catalog.read(|r, t| {
        let rec = t.keys.get(r, &key.id)?;
        // Compare against a fixed hash when the id is unknown, so both paths do the same work.
        let stored = rec.as_ref().and_then(|k| from_hex(&k.secret_sha256)).unwrap_or([0xA5; 32]);
        let matches = auth::hashes_equal(&stored, &key.secret_hash);
        let rec = rec.filter(|_| matches).ok_or_else(invalid)?;
        if rec.revoked_at.is_some() {
            return Err(Error::Unauthorized("API key revoked".into()));
        }
        let expires_at = rec.expires_at.map(|e| e.timestamp_micros());
        if expires_at.is_some_and(|e| e <= now) {
            return Err(Error::Unauthorized("API key expired".into()));
        }
        let tenant = match &rec.tenant_id {
            Some(tid) => {
                let tenant = t.tenants.get(r, tid)?.ok_or_else(invalid)?;
                tenant.admits_keys()?;
                Some(tenant)
            }
            None => None,
        };
        let mut member_role = |mid: &str| -> Result<Option<Role>> {
            let tid = rec.tenant_id.as_deref().ok_or_else(invalid)?;
            Ok(t.members.get(r, &format!("{tid}/{mid}"))?.map(|m| m.role))
        };
        let issuer = match rec.issuer_member_id.as_deref() {
            None => Issuer::Nobody,
            Some(mid) => member_role(mid)?.map_or(Issuer::Gone, Issuer::Member),
        };
        let bound = auth::issuer_bound(issuer)?;
        let principal = if rec.grants.is_empty() {
            let tenant_id = rec.tenant_id.clone().ok_or_else(invalid)?;
            let own = match &rec.member_id {
                Some(mid) => {
                    let role = member_role(mid)?
                        .ok_or_else(|| Error::Unauthorized("API key revoked".into()))?;
                    rec.role.map_or(role, |cap| cap.min(role))
                }
                None => rec.role.ok_or_else(invalid)?,
            };
            Principal::Member {
                key_id: rec.id.clone(),
                tenant_id,
                role: auth::bound_role(own, bound),
                member_id: rec.member_id.clone().or_else(|| rec.issuer_member_id.clone()),
            }
        } else {
            let mut live = Vec::new();
            for g in &rec.grants {
                if t.namespaces.get(r, &g.namespace)?.is_some_and(|n| n.id == g.namespace_id) {
                    let access = auth::bound_access(g.access, bound);
                    live.push(Grant { access, ..g.clone() });
                }
            }
            // A key whose namespaces were all deleted stays a valid key that reaches nothing:
            // every namespace answer is then `forbidden`, as for any namespace that does not
            // exist (API.md), so the answer does not tell a deleted namespace from a foreign one.
            Principal::Scoped {
                key_id: rec.id.clone(),
                tenant_id: rec.tenant_id.clone(),
                grants: live,
            }
        };
        let mut limits = Vec::new();
        let mut next = tenant;
        while let Some(link) = next.take() {
            if limits.len() >= MAX_TENANT_DEPTH {
                break;
            }
            next = match &link.parent_id {
                Some(p) => t.tenants.get(r, p)?,
                None => None,
            };
            limits.push(TenantLimits {
                tenant_id: link.id,
                qps_limit: link.quotas.qps_limit,
                max_connections: link.quotas.max_connections,
                compute_quota_cores: link.quotas.compute_quota_cores,
            });
        }
        Ok(Authed { principal, limits, expires_at })
    })
}
