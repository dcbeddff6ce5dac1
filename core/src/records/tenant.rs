//! What the catalog stores of a tenant that lower layers read.

use serde::{Deserialize, Serialize};

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
