//! Tenants (quotas, status, parents, settings) and their members.

mod records;
mod types;

pub(crate) use records::*;
pub use types::*;

pub use crate::records::{IsolationMode, Member, Quotas, Tenant, TenantStatus, MAX_TENANT_DEPTH};
