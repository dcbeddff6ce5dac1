//! The argument types of the operations that take more than one existing type: each names
//! its fields (`deny_unknown_fields`), so a misspelt field is `invalid_argument` naming it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::Role;
use crate::memory::StoreMemory;
use crate::namespace::{DecayPolicy, NamespaceOptions};
use crate::tenant::{TenantStatus, UpdateTenant};

/// Arguments naming one namespace.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NamespaceArgs {
    /// Namespace name.
    pub name: String,
}

/// Arguments of `create_namespace`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateNamespaceArgs {
    /// Namespace name.
    pub name: String,
    /// Owning tenant (a tenant admin's own tenant by default).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Decay policy.
    #[serde(default)]
    pub policy: Option<DecayPolicy>,
    /// Fix the vector dimension now.
    #[serde(default)]
    pub dimensions: Option<u32>,
    /// Return the existing namespace instead of `conflict`.
    #[serde(default)]
    pub exist_ok: bool,
}

// The fields are spelled out rather than `#[serde(flatten)]`ed: serde loses the field path of
// an error inside a flattened struct, and the error must name the field.
impl CreateNamespaceArgs {
    pub(crate) fn into_parts(self) -> (String, NamespaceOptions) {
        let opts = NamespaceOptions {
            tenant_id: self.tenant_id,
            policy: self.policy,
            dimensions: self.dimensions,
            exist_ok: self.exist_ok,
        };
        (self.name, opts)
    }
}

/// Arguments of `list_namespaces`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// Only this tenant's.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Items to skip (not with `cursor`).
    #[serde(default)]
    pub offset: Option<u64>,
    /// Page size.
    #[serde(default)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page: the page starts after it.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Arguments of `list_keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ListKeysArgs {
    /// Only this tenant's.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Only the keys granted this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Items to skip.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Page size.
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Arguments of `revoke_key`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RevokeKeyArgs {
    /// Key id.
    pub key_id: String,
    /// Only if the key is granted this namespace (else `not_found`).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// Arguments of `list_tenants`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ListTenantsArgs {
    /// Only tenants in this state.
    #[serde(default)]
    pub status: Option<TenantStatus>,
    /// Only children of this tenant.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// Items to skip.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Page size.
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Arguments naming one tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TenantArgs {
    /// Tenant id.
    pub tenant_id: String,
}

/// Arguments of `update_tenant`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateTenantArgs {
    /// Tenant id.
    pub tenant_id: String,
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New status (`active`, `suspended` or `provisioning`).
    #[serde(default)]
    pub status: Option<TenantStatus>,
    /// Quota changes.
    #[serde(default)]
    pub quotas: Option<crate::tenant::QuotasPatch>,
    /// Settings merged key by key (a `null` value removes a key).
    #[serde(default)]
    pub settings: Option<Map<String, Value>>,
    /// Replaces the feature flags.
    #[serde(default)]
    pub features: Option<Value>,
    /// Replaces the tags.
    #[serde(default)]
    pub tags: Option<Value>,
}

impl UpdateTenantArgs {
    /// The tenant's id and the changes.
    pub fn into_parts(self) -> (String, UpdateTenant) {
        let changes = UpdateTenant {
            name: self.name,
            status: self.status,
            quotas: self.quotas,
            settings: self.settings,
            features: self.features,
            tags: self.tags,
        };
        (self.tenant_id, changes)
    }
}

/// Arguments of `add_member`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AddMemberArgs {
    /// Tenant id.
    pub tenant_id: String,
    /// User identifier.
    pub user_identifier: String,
    /// Role.
    pub role: Role,
    /// Metadata.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// Arguments of `list_members`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ListMembersArgs {
    /// Tenant id.
    pub tenant_id: String,
    /// Only this role.
    #[serde(default)]
    pub role: Option<Role>,
    /// Items to skip.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Page size.
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Arguments of `remove_member`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MemberArgs {
    /// Tenant id.
    pub tenant_id: String,
    /// Member id.
    pub member_id: String,
}

/// Arguments naming one key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyArgs {
    /// Key id.
    pub key_id: String,
}

/// Arguments naming a namespace's policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyArgs {
    /// Namespace name.
    pub namespace: String,
}

/// Arguments of `set_memory_policy`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SetPolicyArgs {
    /// Namespace name.
    pub namespace: String,
    /// The new policy.
    pub policy: DecayPolicy,
}

/// Arguments of `store_memories`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StoreBatchArgs {
    /// Namespace name.
    pub namespace: String,
    /// The memories (all stored, or none).
    pub memories: Vec<StoreMemory>,
}

/// Arguments naming one memory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MemoryArgs {
    /// Namespace (optional for a key with exactly one namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Memory id.
    pub id: String,
}

/// Arguments of `get_memories`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GetMemoriesArgs {
    /// Namespace (optional for a key with exactly one namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Memory ids (at most 1000); absent ones are left out of the answer.
    pub ids: Vec<String>,
    /// Return each memory's stored vector too.
    #[serde(default)]
    pub include_vectors: bool,
}

/// Arguments of `get_entity`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EntityArgs {
    /// Namespace.
    pub namespace: String,
    /// Entity id or name.
    pub entity: String,
    /// Entity type, to pick among same-named entities.
    #[serde(default, rename = "type")]
    pub entity_type: Option<String>,
}

/// Arguments of `shortest_path`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PathArgs {
    /// Namespace.
    pub namespace: String,
    /// Start entity (id or name).
    pub from: String,
    /// End entity (id or name).
    pub to: String,
}

/// Arguments of `delete_relation`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RelationArgs {
    /// Namespace.
    pub namespace: String,
    /// Relation id.
    pub id: String,
}

/// Arguments of `rotate_tenant_key`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateTenantKeyArgs {
    /// The tenant.
    pub tenant_id: String,
    /// The new key's id (made in the keyring if absent); default `<tenant name>.<ms>`.
    #[serde(default)]
    pub new_key_id: Option<String>,
}

/// Arguments of `rotate_instance_key`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateInstanceKeyArgs {
    /// The new instance key's id (made in the keyring if absent); default
    /// `instance.<ms>`.
    #[serde(default)]
    pub new_key_id: Option<String>,
}

/// Arguments of operations that take none.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}
