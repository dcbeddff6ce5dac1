//! The control plane cached from etcd: the cluster's API keys (hashes only). Every node loads
//! the table at start and follows it with a watch, so a key revoked through any node is
//! refused by every node as soon as the watch event arrives. While the watch is down, the node
//! refuses every key but the admin key (fail closed) until it has re-read the table.

use std::collections::HashMap;

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
    /// Namespaces and access.
    pub namespaces: Vec<Grant>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Set when revoked.
    #[serde(default)]
    pub revoked_at: Option<String>,
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
}

impl Caller {
    /// Whether this caller may read (or, with `write`, change) namespace `ns`. A key that lacks
    /// the namespace gets `forbidden` whether or not it exists.
    pub fn authorize(&self, ns: &str, write: bool) -> Result<()> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Scoped(rec) => {
                let grant = rec.namespaces.iter().find(|g| g.namespace == ns);
                match grant {
                    Some(g) if !write || g.access == Access::Write => Ok(()),
                    _ => Err(Error::namespace_forbidden(ns)),
                }
            }
        }
    }

    /// `whoami`'s answer.
    pub fn describe(&self) -> serde_json::Value {
        match self {
            Caller::Admin => serde_json::json!({ "principal": "root" }),
            Caller::Scoped(rec) => serde_json::json!({
                "principal": "scoped",
                "key_id": rec.id,
                "tenant_id": null,
                "namespaces": rec.namespaces,
            }),
        }
    }
}

/// The cached key table.
#[derive(Default)]
pub(crate) struct KeyCache {
    /// False until loaded, and while the watch is down.
    pub synced: bool,
    pub keys: HashMap<String, KeyRecord>,
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
        Ok(Caller::Scoped(rec.clone()))
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
