//! The audit log's public types: an entry, its actor, a page of entries and the arguments of a
//! listing, and the result of verifying a chain.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};
pub use crate::records::{entry_key, AuditActor, AuditEntry};

/// The log of events that belong to no tenant (readable by root only).
pub const INSTANCE: &str = "instance";

/// Largest page of [`Handle::list_audit`].
///
/// [`Handle::list_audit`]: crate::Handle::list_audit
pub const MAX_AUDIT_LIMIT: u64 = 1000;

/// The first entry at which a chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BrokenEntry {
    /// Its sequence number (for a missing entry, the number that is missing).
    pub seq: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// The answer of [`Handle::verify_audit`].
///
/// [`Handle::verify_audit`]: crate::Handle::verify_audit
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditVerification {
    /// The tenant (or `instance`).
    pub tenant_id: String,
    /// Whether every entry is intact and none is missing.
    pub ok: bool,
    /// Entries checked.
    pub checked: u64,
    /// The first entry that does not verify.
    pub first_broken: Option<BrokenEntry>,
    /// Sequence number of the last entry appended.
    pub head_seq: u64,
    /// Hash of the last entry appended (keep it elsewhere to detect a rewritten chain).
    pub head_hash: String,
}

/// A page of [`Handle::list_audit`].
///
/// [`Handle::list_audit`]: crate::Handle::list_audit
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditPage {
    /// The tenant (or `instance`).
    pub tenant_id: String,
    /// Entries, oldest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Filters and page of [`Handle::list_audit`].
///
/// [`Handle::list_audit`]: crate::Handle::list_audit
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ListAudit {
    /// Tenant id, or `instance` (root only).
    pub tenant_id: String,
    /// Only entries at or after this time (RFC 3339).
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// Only entries before this time (RFC 3339).
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// Only entries whose actor has this key id, key prefix or member id.
    #[serde(default)]
    pub actor: Option<String>,
    /// Only entries of this action (operation name).
    #[serde(default)]
    pub action: Option<String>,
    /// Where to continue (`next_cursor` of the previous page).
    #[serde(default)]
    pub cursor: Option<String>,
    /// Page size (default 50, at most 1000).
    #[serde(default)]
    pub limit: Option<u64>,
}

impl ListAudit {
    /// The first sequence number of the page (its cursor) and the page size, checked.
    pub fn bounds(&self) -> Result<(u64, u64)> {
        let limit = self.limit.unwrap_or(crate::page::DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_AUDIT_LIMIT {
            return Err(Error::invalid(
                "limit",
                format!("must be between 1 and {MAX_AUDIT_LIMIT}"),
            ));
        }
        let start = match &self.cursor {
            None => 0,
            Some(c) => c.parse::<u64>().map_err(|_| {
                Error::invalid("cursor", "not a cursor returned by an earlier page")
            })?,
        };
        if let (Some(s), Some(u)) = (self.since, self.until) {
            if s > u {
                return Err(Error::invalid("since", "is after until"));
            }
        }
        Ok((start, limit))
    }

    /// Whether entry `e` passes the filters (time range, action, actor).
    pub fn keeps(&self, e: &AuditEntry) -> bool {
        self.since.is_none_or(|s| e.time >= s)
            && self.until.is_none_or(|u| e.time < u)
            && self.action.as_ref().is_none_or(|a| *a == e.action)
            && self.actor.as_ref().is_none_or(|a| {
                [&e.actor.key_id, &e.actor.key_prefix, &e.actor.member_id]
                    .iter()
                    .any(|v| v.as_deref() == Some(a.as_str()))
            })
    }
}

pub(super) const GENESIS: &str = GENESIS_HASH;

/// The `prev_hash` of a chain's first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Whether an error is a refusal the log records for every operation.
pub fn is_refusal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Unauthorized
            | ErrorCode::Forbidden
            | ErrorCode::QuotaExceeded
            | ErrorCode::RateLimited
    )
}

/// A fresh request id (16 hex digits) for calls that did not bring one.
pub fn new_request_id() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    crate::auth::to_hex(&b)
}
