//! The persisted types and their codecs: what the catalog and the data tables store. Records
//! use only the storage and foundation layers, so every layer above reads them the same way.

mod audit;
mod key;
pub(crate) mod memory;
mod namespace;
mod purge;
mod tenant;

pub use audit::{entry_key, AuditActor, AuditEntry};
pub(crate) use audit::{AuditTables, Head};
pub(crate) use key::KeyRecord;
pub use key::{Access, Grant, Role};
pub use memory::{Memory, MemoryType};
pub use namespace::{validate_namespace_name, DecayPolicy, NamespaceRecord, MAX_DIMENSIONS};
pub(crate) use purge::PurgeJob;
pub use tenant::{IsolationMode, Member, Quotas, Tenant, TenantStatus, MAX_TENANT_DEPTH};
