//! What the catalog stores of the audit log: its entries and each chain's head, and the two
//! tables that hold them. Writing and verifying the chains is [`crate::audit`]'s.

use chrono::{DateTime, Utc};
use heed3::types::{SerdeJson, Str};
use serde::{Deserialize, Serialize};

use crate::storage::Table;

/// Who made a recorded request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditActor {
    /// `root`, `member` (a tenant or member key), `scoped` (a namespace key) or `anonymous`
    /// (no usable key).
    pub principal: String,
    /// The key's id.
    pub key_id: Option<String>,
    /// The key's displayable prefix (`msk_<id>`), never its secret.
    pub key_prefix: Option<String>,
    /// The member the key was issued to.
    pub member_id: Option<String>,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditEntry {
    /// Position in its tenant's chain (1, 2, ...; never reused).
    pub seq: u64,
    /// When the request was decided.
    pub time: DateTime<Utc>,
    /// The tenant whose log holds it (`instance` for the instance log).
    pub tenant_id: String,
    /// Who asked.
    pub actor: AuditActor,
    /// The operation (`create_key`, `recall`, ...; `authenticate` for a key refused before any
    /// operation).
    pub action: String,
    /// What it was about: a tenant, member, namespace or key id/name.
    pub target: Option<String>,
    /// `ok`, `refused` (401/403/429) or `failed` (any other error).
    pub result: String,
    /// The error code when not `ok`.
    pub error: Option<String>,
    /// HTTP status of the answer.
    pub status: u16,
    /// The request's id (`X-Request-Id` over HTTP).
    pub request_id: String,
    /// Hex SHA-256 of the previous entry (or of the anchor after retention; zeros first).
    pub prev_hash: String,
    /// Hex SHA-256 of this entry's fields and `prev_hash`.
    pub hash: String,
}

/// The key of entry `seq` of `tenant`'s chain.
pub fn entry_key(tenant: &str, seq: u64) -> String {
    format!("{tenant}/{seq:020}")
}

/// A chain's head and retention anchor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Head {
    pub(crate) seq: u64,
    pub(crate) hash: String,
    /// The last entry removed by retention: the first kept entry links to it.
    pub(crate) anchor_seq: u64,
    pub(crate) anchor_hash: String,
}

/// The audit log's tables, in the catalog's environment (so a control-plane change and its
/// entry share one transaction and one durable commit).
pub(crate) struct AuditTables {
    /// `tenant/seq` (seq zero-padded to 20 digits) → entry.
    pub entries: Table<Str, SerdeJson<AuditEntry>>,
    /// tenant → chain head.
    pub heads: Table<Str, SerdeJson<Head>>,
}

impl AuditTables {
    /// Names of the two tables in the catalog's environment.
    pub(crate) const NAMES: [&'static str; 2] = ["audit_entries", "audit_heads"];

    pub(crate) fn new(
        entries: Table<Str, SerdeJson<AuditEntry>>,
        heads: Table<Str, SerdeJson<Head>>,
    ) -> AuditTables {
        AuditTables { entries, heads }
    }
}
