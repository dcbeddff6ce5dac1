//! memsilo: a multi-tenant memory store for AI applications.
//!
//! One [`Engine`] holds tenants, members, namespaces, scoped API keys and quotas, and in
//! every namespace memories (recalled by meaning) and a knowledge graph. Every operation goes
//! through a [`Handle`] bound to a principal, and every handle call is decided by
//! [`auth::authorize`]: a key scoped to one namespace can never read or change another.
//!
//! ```
//! use memsilo::{Access, CreateKey, Engine, NamespaceOptions, Options, Recall, StoreMemory};
//!
//! # fn main() -> memsilo::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let engine = Engine::open(dir.path(), Options::default())?;
//! let root = engine.root();
//! root.create_namespace("tenant-acme", NamespaceOptions::default())?;
//! let key = root.create_key(CreateKey::namespaces("acme-backend", [("tenant-acme", Access::Write)]))?;
//!
//! let acme = engine.scoped(&key.key)?;
//! acme.store_memory(StoreMemory { namespace: Some("tenant-acme".into()), importance: Some(0.9),
//!     ..StoreMemory::text("Acme Q3 roadmap: launch Omega in September") })?;
//! let hits = acme.recall(Recall::text("product roadmap").namespace("tenant-acme").top_k(5))?;
//! assert_eq!(hits.len(), 1);
//! assert!(acme.recall(Recall::text("roadmap").namespace("tenant-globex")).is_err()); // forbidden
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod api;
mod audit;
pub mod auth;
mod catalog;
mod clock;
pub mod cursor;
mod datastore;
mod document;
mod embed;
mod encryption;
mod engine;
pub mod error;
mod filter;
mod format;
mod graph;
mod handle;
mod index;
pub mod keyring;
mod keys;
mod keyword;
mod listing;
mod memory;
mod namespace;
mod page;
mod quota;
mod rank;
mod records;
mod rotation;
mod session;
mod state;
mod storage;
mod store;
mod tenant;
mod tenant_keys;
#[cfg(test)]
mod testing;
mod text;
pub mod transfer;
pub mod upgrade;
mod vector;

pub use audit::{
    is_refusal, new_request_id, verify_entries, AuditActor, AuditEntry, AuditPage,
    AuditVerification, BrokenEntry, Draft as AuditDraft, ListAudit, Subject as AuditSubject,
    GENESIS_HASH, INSTANCE,
};
pub use auth::{Access, Principal, Role};
pub use clock::{Clock, ManualClock, SystemClock};
pub use datastore::NamespaceId;
#[cfg(feature = "minilm")]
pub use embed::MiniLmEmbedder;
pub use embed::{
    embedder_from_env, embedder_from_setting, load_model, pull_model, Embedder, HashEmbedder,
    ModelEmbedder, ModelPaths, StaticEmbedder, DEFAULT_MODEL, DOWNLOAD_PROGRESS,
};
pub use engine::Engine;
pub use error::{Error, ErrorCode, Result};
pub use graph::{
    AddEntity, AddRelation, Entity, GraphIds, GraphPath, GraphView, Neighbors, Relation,
};
pub use handle::Handle;
pub use keyring::{Key, KeyProvider};
pub use keys::{ApiKey, CreateKey, CreatedKey, NamespaceGrant};
pub use listing::{CountMemories, ListMemories, MemoryPage, OrderBy};
pub use memory::{
    Forget, Forgotten, Memory, MemoryType, Recall, RecallHit, RecallMode, StoreMemory,
    UpdateMemory, CALLER_EMBEDDER,
};
pub use namespace::{DecayPolicy, DeletedNamespace, Namespace, NamespaceOptions, NamespaceRecord};
pub use page::{Page, Paged, DEFAULT_LIMIT};
pub use quota::{chain_exceeded, RateInfo, RateLimiter};
pub use rotation::{InstanceKeyRotation, KeyRotation, RotationState};
pub use session::{
    EndSession, ListSessions, MemoryList, Session, SessionArgs, SessionMemories, SessionPage,
    StartSession,
};
pub use state::Options;
pub use store::CommitStats;
pub use tenant::{
    CreateTenant, IsolationMode, Member, MemberList, Quotas, QuotasPatch, Tenant, TenantInfo,
    TenantStatus, TenantUsage, UpdateTenant, MAX_TENANT_DEPTH,
};
pub use vector::{dot, normalize};
