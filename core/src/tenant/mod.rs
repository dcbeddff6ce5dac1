//! Tenants (quotas, status, parents, settings) and their members.

mod records;
mod types;

pub(crate) use records::*;
pub use types::*;

pub use crate::records::IsolationMode;
