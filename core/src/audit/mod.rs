//! The audit log: who did what to which tenant, when, and with what result.
//!
//! Every control-plane operation (tenants, members, namespaces, keys, policies, quotas, export
//! pages and import batches) and
//! every refused request (`unauthorized`, `forbidden`, `quota_exceeded`, `rate_limited`) is
//! appended to its tenant's log. Events that belong to no tenant (an unknown or malformed key,
//! root's work on namespaces outside any tenant) go to the instance log, [`INSTANCE`].
//!
//! Each tenant's log is a hash chain: an entry carries the SHA-256 of the one before it and its
//! own hash over its fields and that link, and the chain's head (last sequence number and hash)
//! is kept apart. Editing, removing or reordering an entry breaks the chain at that entry,
//! which [`Handle::verify_audit`] reports. Retention removes whole prefixes of a chain and
//! keeps the last removed entry's hash as the new anchor, so a pruned chain still verifies.
//!
//! What is recorded is chosen field by field: operation names, ids, key prefixes, error codes.
//! Memory content, metadata, settings and secrets never reach an entry. Recall and the other
//! data-plane operations are not recorded unless refused, so the data path pays nothing.
//!
//! The log lives in its own LMDB environment (`DIR/audit`), so audit writes never wait on a
//! catalog or data write. Entries are appended by group commit: a caller that finds another
//! writer busy leaves its entry in the queue for that writer's next transaction.

mod entry;
mod log;
mod request;
#[cfg(test)]
mod tests;
mod verify;

pub use entry::*;
pub use log::*;
pub use request::*;
pub use verify::*;
