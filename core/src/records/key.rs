//! What the catalog stores of an API key: the record, its grants and the roles and access
//! levels they name. Hashing, parsing and deciding are [`crate::auth`]'s; key operations
//! [`crate::keys`]'s.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A member's role in a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads the tenant's namespaces.
    Viewer,
    /// Reads and writes the tenant's namespaces.
    Editor,
    /// Reads, writes and manages the tenant's namespaces, members and keys.
    Admin,
}

impl Role {
    /// Parses `admin`, `editor` or `viewer`.
    pub fn parse(s: &str, field: &str) -> Result<Self> {
        match s {
            "admin" => Ok(Role::Admin),
            "editor" => Ok(Role::Editor),
            "viewer" => Ok(Role::Viewer),
            other => Err(Error::invalid(
                field,
                format!("must be one of admin, editor, viewer (got {other:?})"),
            )),
        }
    }
}

/// Access a namespace-scoped key has to one namespace. `Write` implies `Read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Read memories and the graph.
    Read,
    /// Read and change memories and the graph.
    Write,
}

impl Access {
    /// Parses `read` or `write`.
    pub fn parse(s: &str, field: &str) -> Result<Self> {
        match s {
            "read" => Ok(Access::Read),
            "write" => Ok(Access::Write),
            other => Err(Error::invalid(field, format!("must be read or write (got {other:?})"))),
        }
    }
}

/// One namespace a scoped key may reach. Bound to the namespace's internal id, so a key for
/// a deleted namespace never reaches a new namespace created later under the same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Namespace name.
    pub namespace: String,
    /// Internal id of the namespace the grant was made for.
    pub namespace_id: u64,
    /// What the key may do there.
    pub access: Access,
}

/// A key as the catalog stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct KeyRecord {
    pub id: String,
    pub name: String,
    /// Hex SHA-256 of the secret part.
    pub secret_sha256: String,
    pub tenant_id: Option<String>,
    pub member_id: Option<String>,
    /// For member keys a cap on the member's role; for tenant keys the role itself.
    pub role: Option<Role>,
    /// The member whose key minted this one: the key never acts with more than that
    /// member's live role and dies with its membership.
    #[serde(default)]
    pub issuer_member_id: Option<String>,
    pub grants: Vec<Grant>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub rotated_at: Option<DateTime<Utc>>,
}
