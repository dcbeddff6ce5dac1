//! The namespace record, as the catalog stores it, and its decay policy.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::datastore::{EnvLocation, NamespaceId};
use crate::error::{Error, Result};
use crate::records::IsolationMode;

/// Largest vector dimension accepted.
pub const MAX_DIMENSIONS: u32 = 4096;

/// How memories of a namespace fade.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DecayPolicy {
    /// Exponential decay per day since last access: effective importance is
    /// `importance * exp(-decay_rate * days)`. 0 disables decay.
    #[serde(default)]
    pub decay_rate: f64,
    /// Memories whose effective importance falls below this are no longer recalled and are swept.
    #[serde(default)]
    pub min_importance: f64,
    /// Default time-to-live in seconds for new memories (`None`: no expiry).
    #[serde(default)]
    pub ttl_default: Option<u64>,
}

impl Default for DecayPolicy {
    fn default() -> Self {
        DecayPolicy { decay_rate: 0.0, min_importance: 0.0, ttl_default: None }
    }
}

impl DecayPolicy {
    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if !self.decay_rate.is_finite() || !(0.0..=1000.0).contains(&self.decay_rate) {
            return Err(Error::invalid("policy.decay_rate", "must be a number between 0 and 1000"));
        }
        if !self.min_importance.is_finite() || !(0.0..=1.0).contains(&self.min_importance) {
            return Err(Error::invalid("policy.min_importance", "must be between 0 and 1"));
        }
        if self.ttl_default == Some(0) {
            return Err(Error::invalid("policy.ttl_default", "must be at least 1 second, or null"));
        }
        Ok(())
    }
}

/// Checks a namespace name: 1–128 characters of `[A-Za-z0-9_.-]`, and not `.` or `..`
/// (a URL path's dot segments: clients remove them, so `/v1/namespaces/..` could never reach it).
pub fn validate_namespace_name(name: &str, field: &str) -> Result<()> {
    let ok = (1..=128).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !ok {
        return Err(Error::invalid(field, "must be 1-128 characters of A-Z, a-z, 0-9, _, . and -"));
    }
    if name == "." || name == ".." {
        return Err(Error::invalid(field, "cannot be . or .. (a URL path cannot carry them)"));
    }
    Ok(())
}

/// A namespace as the catalog stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    /// Internal id (never reused).
    pub id: NamespaceId,
    /// Name, unique across the store.
    pub name: String,
    /// Owning tenant.
    pub tenant_id: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Decay policy.
    pub policy: DecayPolicy,
    /// Vector dimension, if fixed at creation.
    pub dimensions: Option<u32>,
    /// Isolation mode in force (from the tenant at creation).
    pub isolation_mode: IsolationMode,
    /// Where its rows live.
    pub location: EnvLocation,
}
