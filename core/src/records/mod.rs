//! The persisted types and their codecs: what the catalog and the data tables store. Records
//! use only the storage and foundation layers, so every layer above reads them the same way.

pub(crate) mod memory;
mod namespace;
mod purge;
mod tenant;

pub use memory::{Memory, MemoryType};
pub use namespace::{DecayPolicy, NamespaceRecord, MAX_DIMENSIONS};
pub(crate) use purge::PurgeJob;
pub use tenant::IsolationMode;
