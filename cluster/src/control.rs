//! The control plane cached from etcd: the cluster's API keys (hashes only) and tenants. Every node loads
//! the table at start and follows it with a watch, so a key revoked (or its tenant suspended)
//! through any node is refused by every node as soon as the watch event arrives. While the watch is down, the node
//! refuses every key but the admin key (fail closed) until it has re-read the table.

use std::collections::HashMap;

use memsilo::auth::{bound_access, bound_role, issuer_bound, Issuer};
use memsilo::{Access, Error, Result};
use serde::{Deserialize, Serialize};

/// A key of the cluster's control plane (stored at `PREFIX/keys/<id>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Key id (the public part of the key text).
    pub id: String,
    /// Label.
    pub name: String,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
    /// The tenant whose key it is (given, or the one every namespace of the key belongs to):
    /// its status is checked on every use, as the engine does ([`memsilo::Tenant::admits_keys`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Namespaces and access (empty for a tenant key).
    pub namespaces: Vec<Grant>,
    /// A tenant key's role over the tenant's namespaces (a cap on its member's role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<memsilo::Role>,
    /// The member a tenant key is issued to: its live role decides what the key may do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    /// The member whose key issued this one (a tenant admin's key bound to a member): the key
    /// acts with at most that member's live role and dies with the membership, as on one node
    /// (core's [`memsilo::auth::issuer_bound`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_member_id: Option<String>,
    /// Creation time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When the key stops working (checked by every node on every use, against its clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Set when revoked.
    #[serde(default)]
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Set when its secret was last replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// One namespace a key reaches.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    /// Namespace name.
    pub namespace: String,
    /// Read or write (write implies read).
    pub access: Access,
}

/// Who is calling, as the cluster layer sees it.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The admin key (the same `MEMSILO_ADMIN_KEY` on every node).
    Admin,
    /// A namespace-scoped key of the control plane.
    Scoped(KeyRecord),
    /// A tenant key: `role` over every namespace of `tenant_id` (checked on the owner, which
    /// knows a namespace's tenant).
    Member {
        /// The key.
        key: KeyRecord,
        /// Its tenant.
        tenant_id: String,
        /// The role in force: the key's, or its member's live role capped by the key's.
        role: memsilo::Role,
    },
}

impl Caller {
    /// The tenant whose limits apply to this caller's requests.
    pub fn tenant_id(&self) -> Option<&str> {
        match self {
            Caller::Admin => None,
            Caller::Scoped(rec) => rec.tenant_id.as_deref(),
            Caller::Member { tenant_id, .. } => Some(tenant_id),
        }
    }

    /// Whether this caller may read (or, with `write`, change) namespace `ns`, as far as the
    /// receiving node can tell: a key that lacks the namespace gets `forbidden` whether or not
    /// it exists. A tenant key is checked on the owner ([`Caller::authorize_owned`]).
    pub fn authorize(&self, ns: &str, write: bool) -> Result<()> {
        match self {
            Caller::Admin | Caller::Member { .. } => Ok(()),
            Caller::Scoped(rec) => {
                let grant = rec.namespaces.iter().find(|g| g.namespace == ns);
                match grant {
                    Some(g) if !write || g.access == Access::Write => Ok(()),
                    _ => Err(Error::namespace_forbidden(ns)),
                }
            }
        }
    }

    /// On the owner, which knows namespace `ns`'s tenant: a tenant key reaches its own
    /// tenant's namespaces, reading as `viewer` and writing as `editor` or `admin` (the roles
    /// of the engine), and gets `forbidden` for any other, existing or not.
    pub fn authorize_owned(&self, ns: &str, tenant: Option<&str>, write: bool) -> Result<()> {
        let Caller::Member { tenant_id, role, .. } = self else { return Ok(()) };
        let need = if write { memsilo::Role::Editor } else { memsilo::Role::Viewer };
        if tenant == Some(tenant_id.as_str()) && *role >= need {
            Ok(())
        } else {
            Err(Error::namespace_forbidden(ns))
        }
    }

    /// On the owner: whether this caller administers namespace `ns` (deletes it): the admin
    /// key, or a tenant key with the `admin` role in the namespace's tenant, as the engine's
    /// `NamespaceAction::Manage`; others get `forbidden`, existing or not.
    pub fn authorize_manage(&self, ns: &str, tenant: Option<&str>) -> Result<()> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Member { tenant_id, role, .. }
                if tenant == Some(tenant_id.as_str()) && *role >= memsilo::Role::Admin =>
            {
                Ok(())
            }
            _ => Err(Error::namespace_forbidden(ns)),
        }
    }

    /// The caller as core's [`memsilo::Principal`], for core's rules (`memsilo::auth::authorize`)
    /// on tenant administration and keys. A scoped key's grants carry no namespace id (the
    /// control plane has none): it is checked on namespaces by [`Caller::authorize`] instead.
    pub fn principal(&self) -> memsilo::Principal {
        match self {
            Caller::Admin => memsilo::Principal::Root,
            Caller::Scoped(rec) => memsilo::Principal::Scoped {
                key_id: rec.id.clone(),
                tenant_id: rec.tenant_id.clone(),
                grants: Vec::new(),
            },
            Caller::Member { key, tenant_id, role } => memsilo::Principal::Member {
                key_id: key.id.clone(),
                tenant_id: tenant_id.clone(),
                role: *role,
                // Bound to the member it was issued to, else the one whose key minted it.
                member_id: key.member_id.clone().or_else(|| key.issuer_member_id.clone()),
            },
        }
    }

    /// `whoami`'s answer.
    pub fn describe(&self) -> serde_json::Value {
        match self {
            Caller::Admin => serde_json::json!({ "principal": "root" }),
            Caller::Scoped(rec) => serde_json::json!({
                "principal": "scoped",
                "key_id": rec.id,
                "tenant_id": rec.tenant_id,
                "namespaces": rec.namespaces,
            }),
            Caller::Member { key, tenant_id, role } => serde_json::json!({
                "principal": "member",
                "key_id": key.id,
                "tenant_id": tenant_id,
                "role": role,
            }),
        }
    }
}

/// The cached control plane: the key table and the tenants.
#[derive(Default)]
pub(crate) struct KeyCache {
    /// False until loaded, and while the watch is down.
    pub synced: bool,
    pub keys: HashMap<String, KeyRecord>,
    pub tenants: HashMap<String, memsilo::Tenant>,
    /// The tenants' members, by `<tenant id>/<member id>` (a member key's live role).
    pub members: HashMap<String, memsilo::Member>,
    /// The live nodes (their `nodes/<id>` keys), which share each tenant's `qps_limit`.
    pub nodes: std::collections::HashSet<String>,
}

impl KeyCache {
    /// The caller for a (non-admin) key text.
    pub fn authenticate(&self, text: &str) -> Result<Caller> {
        let (id, hash) = memsilo::auth::parse_external_key(text)?;
        if !self.synced {
            return Err(Error::Unauthorized(
                "this node cannot check keys right now (control plane unreachable); retry".into(),
            ));
        }
        let refused = || Error::Unauthorized("invalid, expired or revoked API key".into());
        let rec = self.keys.get(&id).ok_or_else(refused)?;
        let stored = hex32(&rec.secret_sha256).ok_or_else(refused)?;
        if !memsilo::auth::hashes_match(&stored, &hash) || rec.revoked_at.is_some() {
            return Err(refused());
        }
        if rec.expires_at.is_some_and(|e| e <= chrono::Utc::now()) {
            return Err(Error::Unauthorized("API key expired".into()));
        }
        if let Some(tenant_id) = &rec.tenant_id {
            // A suspended tenant's keys stop on every node once the watch brings its status.
            self.tenants.get(tenant_id).ok_or_else(refused)?.admits_keys()?;
        }
        let member_role = |mid: &str| {
            let tenant_id = rec.tenant_id.as_deref().unwrap_or_default();
            self.members.get(&format!("{tenant_id}/{mid}")).map(|m| m.role)
        };
        // A key issued by a member's key acts with at most that member's live role, and dies
        // with the membership (core's rule, as the engine applies it on one node).
        let issuer = match rec.issuer_member_id.as_deref() {
            None => Issuer::Nobody,
            Some(mid) => member_role(mid).map_or(Issuer::Gone, Issuer::Member),
        };
        let bound = issuer_bound(issuer)?;
        if !rec.namespaces.is_empty() {
            let mut rec = rec.clone();
            for g in &mut rec.namespaces {
                g.access = bound_access(g.access, bound);
            }
            return Ok(Caller::Scoped(rec));
        }
        // A tenant key: its role, or its member's live role capped by it (as the engine does).
        let tenant_id = rec.tenant_id.clone().ok_or_else(refused)?;
        let own = match &rec.member_id {
            Some(mid) => {
                let role = member_role(mid)
                    .ok_or_else(|| Error::Unauthorized("API key revoked".into()))?;
                rec.role.map_or(role, |cap| cap.min(role))
            }
            None => rec.role.ok_or_else(refused)?,
        };
        Ok(Caller::Member { key: rec.clone(), tenant_id, role: bound_role(own, bound) })
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
