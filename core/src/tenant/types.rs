//! Tenants' public types: a tenant, its quotas, members, usage, and the arguments that create
//! and change them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    validate_json_size, validate_labels, validate_tenant_name, IsolationMode, Member, Quotas,
    Tenant, TenantStatus,
};
use crate::auth::Role;
use crate::error::{Error, Result};

/// A partial [`Quotas`]: given fields replace the current (or default) ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct QuotasPatch {
    /// See [`Quotas::storage_quota_bytes`].
    pub storage_quota_bytes: Option<u64>,
    /// See [`Quotas::qps_limit`].
    pub qps_limit: Option<u32>,
    /// See [`Quotas::max_connections`].
    pub max_connections: Option<u32>,
    /// See [`Quotas::compute_quota_cores`].
    pub compute_quota_cores: Option<f64>,
    /// See [`Quotas::max_members`].
    pub max_members: Option<u32>,
    /// See [`Quotas::max_namespaces`].
    pub max_namespaces: Option<u32>,
}

impl QuotasPatch {
    fn apply(&self, q: &mut Quotas) -> Result<()> {
        fn range<T: PartialOrd + std::fmt::Display + Copy>(
            f: &str,
            v: T,
            lo: T,
            hi: T,
        ) -> Result<T> {
            if v < lo || v > hi {
                return Err(Error::invalid(
                    format!("quotas.{f}"),
                    format!("must be between {lo} and {hi}"),
                ));
            }
            Ok(v)
        }
        if let Some(v) = self.storage_quota_bytes {
            q.storage_quota_bytes = v;
        }
        if let Some(v) = self.qps_limit {
            q.qps_limit = range("qps_limit", v, 1, 1_000_000)?;
        }
        if let Some(v) = self.max_connections {
            q.max_connections = range("max_connections", v, 1, 1_000_000)?;
        }
        if let Some(v) = self.compute_quota_cores {
            if !v.is_finite() {
                return Err(Error::invalid(
                    "quotas.compute_quota_cores",
                    "must be a finite number",
                ));
            }
            q.compute_quota_cores = range("compute_quota_cores", v, 0.01, 1024.0)?;
        }
        if let Some(v) = self.max_members {
            q.max_members = range("max_members", v, 1, 1_000_000)?;
        }
        if let Some(v) = self.max_namespaces {
            q.max_namespaces = range("max_namespaces", v, 1, 100_000_000)?;
        }
        Ok(())
    }
}

/// Current usage of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TenantUsage {
    /// Bytes in use, including child tenants'.
    pub storage_bytes: u64,
    /// Namespaces of this tenant.
    pub namespaces: u64,
    /// Members of this tenant.
    pub members: u64,
}

/// A tenant with its usage, as returned by every tenant call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TenantInfo {
    /// The tenant.
    #[serde(flatten)]
    pub tenant: Tenant,
    /// Its usage now.
    pub usage: TenantUsage,
}

/// Arguments of [`Handle::create_tenant`].
///
/// [`Handle::create_tenant`]: crate::Handle::create_tenant
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// 3–64 characters of `[A-Za-z0-9_]`.
    pub name: String,
    /// Limits (defaults for the fields not given).
    #[serde(default)]
    pub quotas: Option<QuotasPatch>,
    /// Default `logical`.
    #[serde(default)]
    pub isolation_mode: Option<IsolationMode>,
    /// Parent tenant id.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// Settings object.
    #[serde(default)]
    pub settings: Option<Map<String, Value>>,
    /// Feature flags.
    #[serde(default)]
    pub features: Option<Value>,
    /// Tags.
    #[serde(default)]
    pub tags: Option<Value>,
    /// The tenant's own encryption key (`physical` and `hybrid` tenants; needs a keyring):
    /// created in the key provider if it has no key by that id. Without it the tenant's data
    /// is under the instance key.
    #[serde(default)]
    pub encryption_key_id: Option<String>,
}

/// Arguments of [`Handle::update_tenant`]: given fields change, others stay.
///
/// [`Handle::update_tenant`]: crate::Handle::update_tenant
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New status (`active`, `suspended` or `provisioning`).
    #[serde(default)]
    pub status: Option<TenantStatus>,
    /// Quota changes.
    #[serde(default)]
    pub quotas: Option<QuotasPatch>,
    /// Settings, merged key by key into the current ones (a `null` value removes a key).
    #[serde(default)]
    pub settings: Option<Map<String, Value>>,
    /// Replaces the feature flags.
    #[serde(default)]
    pub features: Option<Value>,
    /// Replaces the tags.
    #[serde(default)]
    pub tags: Option<Value>,
}

/// A page of members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MemberList {
    /// The tenant.
    pub tenant_id: String,
    /// This page.
    pub members: Vec<Member>,
    /// All members matching the filter.
    pub total_count: u64,
}

impl Tenant {
    /// A new, active tenant from a create request, checked (name, quotas, labels, settings).
    /// Whoever stores it keeps names unique and checks the parent: the engine in its catalog,
    /// a cluster in its control plane.
    pub fn from_request(req: &CreateTenant, now: DateTime<Utc>) -> Result<Tenant> {
        validate_tenant_name(&req.name)?;
        let mut quotas = Quotas::default();
        if let Some(p) = &req.quotas {
            p.apply(&mut quotas)?;
        }
        validate_labels(req.features.as_ref(), req.tags.as_ref())?;
        let settings = req.settings.clone().unwrap_or_default();
        validate_json_size("settings", &Value::Object(settings.clone()))?;
        let isolation_mode = req.isolation_mode.unwrap_or_default();
        if let Some(id) = &req.encryption_key_id {
            crate::keyring::validate_key_id(id)?;
            if isolation_mode == IsolationMode::Logical {
                return Err(Error::invalid(
                    "encryption_key_id",
                    "only physical and hybrid tenants have keys of their own; logical tenants \
                     share the instance key",
                ));
            }
            if id == crate::keyring::INSTANCE_KEY_ID {
                return Err(Error::invalid(
                    "encryption_key_id",
                    format!("{id} is the instance key's id; choose another"),
                ));
            }
        }
        Ok(Tenant {
            id: uuid::Uuid::now_v7().to_string(),
            name: req.name.clone(),
            status: TenantStatus::Active,
            isolation_mode,
            parent_id: req.parent_id.clone(),
            settings,
            features: req.features.clone().unwrap_or(Value::Array(vec![])),
            tags: req.tags.clone().unwrap_or(Value::Array(vec![])),
            quotas,
            encryption_key_id: req.encryption_key_id.clone(),
            created_at: now,
            updated_at: now,
        })
    }

    /// `invalid_argument` unless the tenant is active (members join active tenants only).
    pub fn accepts_members(&self) -> Result<()> {
        if self.status == TenantStatus::Active {
            return Ok(());
        }
        Err(Error::invalid(
            "tenant_id",
            format!("tenant is {:?}, members can only be added to active tenants", self.status)
                .to_lowercase(),
        ))
    }

    /// Applies an update's changes (checked; the name too: whoever stores the tenant keeps
    /// names unique). On error the tenant may be half changed: apply it to a copy.
    pub fn apply_update(&mut self, req: &UpdateTenant, now: DateTime<Utc>) -> Result<()> {
        req.validate()?;
        if let Some(name) = &req.name {
            self.name.clone_from(name);
        }
        if let Some(s) = req.status {
            self.status = s;
        }
        if let Some(q) = &req.quotas {
            q.apply(&mut self.quotas)?;
        }
        if let Some(settings) = &req.settings {
            for (k, v) in settings {
                if v.is_null() {
                    self.settings.remove(k);
                } else {
                    self.settings.insert(k.clone(), v.clone());
                }
            }
            validate_json_size("settings", &Value::Object(self.settings.clone()))?;
        }
        if let Some(f) = &req.features {
            self.features = f.clone();
        }
        if let Some(tags) = &req.tags {
            self.tags = tags.clone();
        }
        self.updated_at = now;
        Ok(())
    }
}

impl UpdateTenant {
    /// Checks what can be checked without the tenant: the name, labels and status.
    pub fn validate(&self) -> Result<()> {
        if let Some(name) = &self.name {
            validate_tenant_name(name)?;
        }
        validate_labels(self.features.as_ref(), self.tags.as_ref())?;
        if let Some(s) = self.status {
            if matches!(s, TenantStatus::Deleting | TenantStatus::Deleted) {
                return Err(Error::invalid("status", "use DELETE to delete a tenant"));
            }
        }
        Ok(())
    }
}

impl Member {
    /// A new member, checked (`user_identifier` 1-256 characters once trimmed, metadata size).
    /// Whoever stores it checks the tenant, uniqueness and `max_members`.
    pub fn new(
        tenant_id: &str,
        user_identifier: &str,
        role: Role,
        metadata: Option<Map<String, Value>>,
        now: DateTime<Utc>,
    ) -> Result<Member> {
        let user = user_identifier.trim();
        if user.is_empty() || user.len() > 256 {
            return Err(Error::invalid("user_identifier", "must be 1-256 characters"));
        }
        let metadata = metadata.unwrap_or_default();
        validate_json_size("metadata", &Value::Object(metadata.clone()))?;
        Ok(Member {
            tenant_id: tenant_id.to_owned(),
            member_id: uuid::Uuid::now_v7().to_string(),
            user_identifier: user.to_owned(),
            role,
            metadata,
            added_at: now,
        })
    }
}
