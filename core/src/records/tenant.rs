//! What the catalog stores of a tenant and its members. Creating and changing them is
//! [`crate::tenant`]'s.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::records::Role;

/// Where a tenant's namespaces keep their data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum IsolationMode {
    /// Shared environments, rows separated by namespace id.
    #[default]
    Logical,
    /// One environment (file) per tenant.
    Hybrid,
    /// One environment per namespace.
    Physical,
}

/// Deepest tenant ancestry allowed (a tenant, its parent, ...).
pub const MAX_TENANT_DEPTH: usize = 8;

/// Tenant lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Serving requests.
    Active,
    /// Being set up; its keys cannot be used yet.
    Provisioning,
    /// Its keys get `forbidden` until it is active again.
    Suspended,
    /// Being deleted.
    Deleting,
    /// Deleted.
    Deleted,
}

/// A tenant's limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Quotas {
    /// Bytes of memories, vectors and graph rows (including child tenants').
    pub storage_quota_bytes: u64,
    /// Requests per second across the tenant's keys.
    pub qps_limit: u32,
    /// Concurrent in-flight HTTP requests.
    pub max_connections: u32,
    /// Cores of compute for heavy operations.
    pub compute_quota_cores: f64,
    /// Members.
    pub max_members: u32,
    /// Namespaces.
    pub max_namespaces: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            storage_quota_bytes: 10_737_418_240,
            qps_limit: 100,
            max_connections: 10,
            compute_quota_cores: 1.0,
            max_members: 100,
            max_namespaces: 1000,
        }
    }
}

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Tenant {
    /// UUID.
    pub id: String,
    /// 3–64 characters of `[A-Za-z0-9_]`, unique.
    pub name: String,
    /// Lifecycle state.
    pub status: TenantStatus,
    /// Where its namespaces keep data.
    pub isolation_mode: IsolationMode,
    /// Parent tenant, whose quotas this tenant's usage also counts against.
    pub parent_id: Option<String>,
    /// Free-form settings object.
    pub settings: Map<String, Value>,
    /// Feature flags (an array of names or an object).
    pub features: Value,
    /// Tags (an array of strings or an object).
    pub tags: Value,
    /// Limits.
    pub quotas: Quotas,
    /// Id of the tenant's own encryption key in the key provider (`physical` and `hybrid`
    /// tenants only; `None`: the instance key). Set at creation, changed by rotation; the
    /// key is destroyed when the tenant is deleted.
    #[serde(default)]
    pub encryption_key_id: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Tenant {
    /// Whether the tenant's keys may be used now: `forbidden` while it is suspended or being
    /// provisioned (naming the tenant and why), `unauthorized` ("invalid API key") once it is
    /// being deleted or deleted. Asked by every key resolution: the engine's, and the cluster's
    /// from its cached copy of the tenant.
    pub fn admits_keys(&self) -> Result<()> {
        let why = match self.status {
            TenantStatus::Active => return Ok(()),
            TenantStatus::Suspended => "suspended",
            TenantStatus::Provisioning => "provisioning",
            TenantStatus::Deleting | TenantStatus::Deleted => {
                return Err(Error::Unauthorized("invalid API key".into()))
            }
        };
        Err(Error::forbidden(format!("tenant {} is {why}", self.name)))
    }
}

/// A member of a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Member {
    /// The tenant.
    pub tenant_id: String,
    /// UUID.
    pub member_id: String,
    /// The user's identifier (e-mail, user id), unique in the tenant.
    pub user_identifier: String,
    /// Role.
    pub role: Role,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
    /// When added.
    pub added_at: DateTime<Utc>,
}
