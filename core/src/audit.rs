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

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use heed3::types::{SerdeJson, Str};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::Request;
use crate::auth::ParsedKey;
use crate::catalog::CatalogTables;
use crate::engine::EngineInner;
use crate::error::{Error, ErrorCode, Result};
use crate::storage::{Environment, RoTxn, Table};
use crate::store::{Store, Tables};

/// The log of events that belong to no tenant (readable by root only).
pub const INSTANCE: &str = "instance";

/// Largest page of [`Handle::list_audit`].
pub const MAX_AUDIT_LIMIT: u64 = 1000;

/// Who made a recorded request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditActor {
    /// `root`, `member` (a tenant or member key), `scoped` (a namespace key) or `anonymous`
    /// (no usable key).
    pub principal: String,
    /// The key's id.
    pub key_id: Option<String>,
    /// The key's displayable prefix (`msk_<id>`), never its secret.
    pub key_prefix: Option<String>,
    /// The member the key was issued to.
    pub member_id: Option<String>,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditEntry {
    /// Position in its tenant's chain (1, 2, ...; never reused).
    pub seq: u64,
    /// When the request was decided.
    pub time: DateTime<Utc>,
    /// The tenant whose log holds it (`instance` for the instance log).
    pub tenant_id: String,
    /// Who asked.
    pub actor: AuditActor,
    /// The operation (`create_key`, `recall`, ...; `authenticate` for a key refused before any
    /// operation).
    pub action: String,
    /// What it was about: a tenant, member, namespace or key id/name.
    pub target: Option<String>,
    /// `ok`, `refused` (401/403/429) or `failed` (any other error).
    pub result: String,
    /// The error code when not `ok`.
    pub error: Option<String>,
    /// HTTP status of the answer.
    pub status: u16,
    /// The request's id (`X-Request-Id` over HTTP).
    pub request_id: String,
    /// Hex SHA-256 of the previous entry (or of the anchor after retention; zeros first).
    pub prev_hash: String,
    /// Hex SHA-256 of this entry's fields and `prev_hash`.
    pub hash: String,
}

/// The first entry at which a chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BrokenEntry {
    /// Its sequence number (for a missing entry, the number that is missing).
    pub seq: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// The answer of [`Handle::verify_audit`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditVerification {
    /// The tenant (or `instance`).
    pub tenant_id: String,
    /// Whether every entry is intact and none is missing.
    pub ok: bool,
    /// Entries checked.
    pub checked: u64,
    /// The first entry that does not verify.
    pub first_broken: Option<BrokenEntry>,
    /// Sequence number of the last entry appended.
    pub head_seq: u64,
    /// Hash of the last entry appended (keep it elsewhere to detect a rewritten chain).
    pub head_hash: String,
}

/// A page of [`Handle::list_audit`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditPage {
    /// The tenant (or `instance`).
    pub tenant_id: String,
    /// Entries, oldest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Filters and page of [`Handle::list_audit`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ListAudit {
    /// Tenant id, or `instance` (root only).
    pub tenant_id: String,
    /// Only entries at or after this time (RFC 3339).
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// Only entries before this time (RFC 3339).
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// Only entries whose actor has this key id, key prefix or member id.
    #[serde(default)]
    pub actor: Option<String>,
    /// Only entries of this action (operation name).
    #[serde(default)]
    pub action: Option<String>,
    /// Where to continue (`next_cursor` of the previous page).
    #[serde(default)]
    pub cursor: Option<String>,
    /// Page size (default 50, at most 1000).
    #[serde(default)]
    pub limit: Option<u64>,
}

impl ListAudit {
    /// The first sequence number of the page (its cursor) and the page size, checked.
    pub fn bounds(&self) -> Result<(u64, u64)> {
        let limit = self.limit.unwrap_or(crate::page::DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_AUDIT_LIMIT {
            return Err(Error::invalid(
                "limit",
                format!("must be between 1 and {MAX_AUDIT_LIMIT}"),
            ));
        }
        let start = match &self.cursor {
            None => 0,
            Some(c) => c.parse::<u64>().map_err(|_| {
                Error::invalid("cursor", "not a cursor returned by an earlier page")
            })?,
        };
        if let (Some(s), Some(u)) = (self.since, self.until) {
            if s > u {
                return Err(Error::invalid("since", "is after until"));
            }
        }
        Ok((start, limit))
    }

    /// Whether entry `e` passes the filters (time range, action, actor).
    pub fn keeps(&self, e: &AuditEntry) -> bool {
        self.since.is_none_or(|s| e.time >= s)
            && self.until.is_none_or(|u| e.time < u)
            && self.action.as_ref().is_none_or(|a| *a == e.action)
            && self.actor.as_ref().is_none_or(|a| {
                [&e.actor.key_id, &e.actor.key_prefix, &e.actor.member_id]
                    .iter()
                    .any(|v| v.as_deref() == Some(a.as_str()))
            })
    }
}

/// A chain's head and retention anchor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Head {
    seq: u64,
    hash: String,
    /// The last entry removed by retention: the first kept entry links to it.
    anchor_seq: u64,
    anchor_hash: String,
}

const GENESIS: &str = GENESIS_HASH;

/// The `prev_hash` of a chain's first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The audit log's tables, in the catalog's environment (so a control-plane change and its
/// entry share one transaction and one durable commit).
pub(crate) struct AuditTables {
    /// `tenant/seq` (seq zero-padded to 20 digits) → entry.
    pub entries: Table<Str, SerdeJson<AuditEntry>>,
    /// tenant → chain head.
    pub heads: Table<Str, SerdeJson<Head>>,
}

impl AuditTables {
    /// Names of the two tables in the catalog's environment.
    pub(crate) const NAMES: [&'static str; 2] = ["audit_entries", "audit_heads"];

    pub(crate) fn new(
        entries: Table<Str, SerdeJson<AuditEntry>>,
        heads: Table<Str, SerdeJson<Head>>,
    ) -> AuditTables {
        AuditTables { entries, heads }
    }
}

/// The log's own environment of earlier versions (`DIR/audit`): read once, to move its
/// entries into the catalog (see [`adopt_old_log`]).
pub(crate) struct OldAuditTables(AuditTables);

impl Tables for OldAuditTables {
    const MAX_DBS: u32 = 4;

    fn create(env: &Environment) -> Result<Self> {
        let [entries, heads] = env.create_tables(["entries", "heads"])?;
        Ok(OldAuditTables(AuditTables {
            entries: entries.remap_types(),
            heads: heads.remap_types(),
        }))
    }
}

/// Moves the entries of a log kept in its own environment (`DIR/audit`, earlier versions)
/// into the catalog, in one transaction, then removes that environment. A crash between the
/// two steps is harmless: the copy is made only while the catalog holds no chain yet.
pub(crate) fn adopt_old_log(dir: &Path, catalog: &Store<CatalogTables>) -> Result<()> {
    type Rows = Vec<(String, Vec<u8>)>;
    let old_dir = dir.join("audit");
    if !old_dir.join("data.mdb").exists() {
        return Ok(());
    }
    let old = Store::<OldAuditTables>::open(&old_dir, 64 << 20, None)?;
    let (entries, heads): (Rows, Rows) = old.read(|r, t| {
        let mut raw = |db: &Table<Str, heed3::types::Bytes>| -> Result<Rows> {
            db.iter(r)?
                .map(|e| e.map(|(k, v)| (k.to_owned(), v.to_vec())).map_err(Error::from))
                .collect()
        };
        Ok((
            raw(&t.0.entries.remap_data_type::<heed3::types::Bytes>())?,
            raw(&t.0.heads.remap_data_type::<heed3::types::Bytes>())?,
        ))
    })?;
    catalog.write(|w, t| {
        if !t.audit.heads.is_empty(w)? {
            return Ok(());
        }
        let (e, h) = (
            t.audit.entries.remap_data_type::<heed3::types::Bytes>(),
            t.audit.heads.remap_data_type::<heed3::types::Bytes>(),
        );
        for (k, v) in &entries {
            e.put(w, k, v)?;
        }
        for (k, v) in &heads {
            h.put(w, k, v)?;
        }
        Ok(())
    })?;
    old.destroy()
}

/// The key of entry `seq` of `tenant`'s chain.
pub fn entry_key(tenant: &str, seq: u64) -> String {
    format!("{tenant}/{seq:020}")
}

/// An entry before it has its place in the chain (public for chains kept elsewhere: the
/// cluster's, in object storage, seals its entries with [`Draft::seal`] too).
#[derive(Debug, Clone)]
pub struct Draft {
    /// When the request was decided.
    pub time: DateTime<Utc>,
    /// The tenant whose chain gets it (`instance` for the instance log).
    pub tenant_id: String,
    /// Who asked.
    pub actor: AuditActor,
    /// The operation.
    pub action: String,
    /// What it was about.
    pub target: Option<String>,
    /// Its outcome: the error code when refused or failed.
    pub outcome: std::result::Result<(), ErrorCode>,
    /// The request's id.
    pub request_id: String,
}

impl Draft {
    /// The entry at position `seq` of its chain, after the entry whose hash is `prev_hash`
    /// ([`GENESIS_HASH`] first), with its own hash: the one rule of every chain.
    pub fn seal(&self, seq: u64, prev_hash: &str) -> AuditEntry {
        let (result, error, status) = match self.outcome {
            Ok(()) => ("ok", None, 200),
            Err(code) => {
                let result = if is_refusal(code) { "refused" } else { "failed" };
                (result, Some(code.as_str().to_owned()), code.http_status())
            }
        };
        let mut entry = AuditEntry {
            seq,
            time: self.time,
            tenant_id: self.tenant_id.clone(),
            actor: self.actor.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            result: result.into(),
            error,
            status,
            request_id: self.request_id.clone(),
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        entry.hash = entry_hash(&entry);
        entry
    }
}

/// The hash of an entry: SHA-256 over its fields (with `hash` empty) as JSON.
fn entry_hash(entry: &AuditEntry) -> String {
    let mut unhashed = entry.clone();
    unhashed.hash.clear();
    let bytes = serde_json::to_vec(&unhashed).unwrap_or_default();
    crate::keys::to_hex(&Sha256::digest(&bytes))
}

/// Entries waiting for a catalog transaction. They are taken from the queue inside the
/// transaction that writes them (never before), so they reach their chains in the order they
/// were queued, whichever thread's transaction writes them.
#[derive(Default)]
pub(crate) struct AuditLog {
    queue: Mutex<std::collections::VecDeque<Draft>>,
    /// Held by the thread writing refusals (which do not wait for their commit).
    writer: Mutex<()>,
}

impl AuditLog {
    /// Appends `draft`. With `wait`, returns once it is committed; otherwise it may be left
    /// to the writer that is busy now, which commits it in its next transaction.
    pub(crate) fn append(&self, catalog: &Store<CatalogTables>, draft: Draft, wait: bool) {
        self.queue.lock().push_back(draft);
        if wait {
            self.write_queued(catalog, Vec::new()).ok();
            return;
        }
        loop {
            let Some(guard) = self.writer.try_lock() else { return };
            let written = self.write_queued(catalog, Vec::new());
            drop(guard);
            // An entry queued while this writer held the lock is written by this loop.
            if written.is_err() || self.queue.lock().is_empty() {
                return;
            }
        }
    }

    /// Commits every queued entry, then `own` (entries decided after them), in one catalog
    /// write. On failure the entries go back to the front of the queue for the next writer.
    fn write_queued(&self, catalog: &Store<CatalogTables>, own: Vec<Draft>) -> Result<()> {
        let mut taken: Option<Vec<Draft>> = None;
        let written = catalog.write(|w, t| self.write_taken(w, &t.audit, &mut taken, &own));
        self.settle_taken(taken, &written);
        written
    }

    /// Inside a catalog transaction: takes the queued entries (once: a transaction run again
    /// after the map grew writes the same ones) and writes them, then `own`.
    fn write_taken(
        &self,
        w: &mut heed3::RwTxn<'_>,
        t: &AuditTables,
        taken: &mut Option<Vec<Draft>>,
        own: &[Draft],
    ) -> Result<()> {
        let batch = taken.get_or_insert_with(|| self.queue.lock().drain(..).collect());
        write_batch(w, t, batch)?;
        write_batch(w, t, own)
    }

    /// After the write that took `taken`: on failure they are queued again, first.
    fn settle_taken<R>(&self, taken: Option<Vec<Draft>>, written: &Result<R>) {
        let Some(taken) = taken.filter(|b| !b.is_empty()) else { return };
        if let Err(e) = written {
            tracing::warn!("{} audit entries not written yet, kept queued: {e}", taken.len());
            let mut q = self.queue.lock();
            for d in taken.into_iter().rev() {
                q.push_front(d);
            }
        }
    }

    /// Commits every queued entry.
    pub(crate) fn flush(&self, catalog: &Store<CatalogTables>) {
        if self.queue.lock().is_empty() {
            return;
        }
        if let Err(e) = self.write_queued(catalog, Vec::new()) {
            tracing::error!("audit entries could not be written: {e}");
        }
    }

    /// Removes every entry older than `cutoff`, keeping each chain's last removed hash as
    /// its anchor. Returns how many were removed.
    pub(crate) fn prune(
        &self,
        catalog: &Store<CatalogTables>,
        cutoff: DateTime<Utc>,
    ) -> Result<u64> {
        self.flush(catalog);
        catalog.write(|w, t| {
            let t = &t.audit;
            let heads: Vec<(String, Head)> = t
                .heads
                .iter(w)?
                .map(|e| e.map(|(k, h)| (k.to_owned(), h)))
                .collect::<heed3::Result<_>>()?;
            let mut removed = 0u64;
            for (tenant, mut head) in heads {
                let mut doomed = Vec::new();
                for item in t.entries.prefix_iter(w, &format!("{tenant}/"))? {
                    let (key, entry) = item?;
                    if entry.time >= cutoff {
                        break;
                    }
                    doomed.push((key.to_owned(), entry.seq, entry.hash));
                }
                let Some((_, seq, hash)) = doomed.last().cloned() else { continue };
                for (key, _, _) in &doomed {
                    t.entries.delete(w, key)?;
                }
                removed += doomed.len() as u64;
                head.anchor_seq = seq;
                head.anchor_hash = hash;
                t.heads.put(w, &tenant, &head)?;
            }
            Ok(removed)
        })
    }
}

fn write_batch(w: &mut heed3::RwTxn<'_>, t: &AuditTables, batch: &[Draft]) -> Result<()> {
    let mut heads: HashMap<&str, Head> = HashMap::new();
    for d in batch {
        let head = match heads.entry(d.tenant_id.as_str()) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let h = t.heads.get(w, &d.tenant_id)?.unwrap_or_else(|| Head {
                    hash: GENESIS.into(),
                    anchor_hash: GENESIS.into(),
                    ..Head::default()
                });
                v.insert(h)
            }
        };
        let entry = d.seal(head.seq + 1, &head.hash);
        t.entries.put(w, &entry_key(&d.tenant_id, entry.seq), &entry)?;
        head.seq = entry.seq;
        head.hash.clone_from(&entry.hash);
    }
    for (tenant, head) in heads {
        t.heads.put(w, tenant, &head)?;
    }
    Ok(())
}

/// Whether an error is a refusal the log records for every operation.
pub fn is_refusal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Unauthorized
            | ErrorCode::Forbidden
            | ErrorCode::QuotaExceeded
            | ErrorCode::RateLimited
    )
}

/// What a control-plane request is about, worked out before it runs (a deleted key or
/// namespace cannot be looked up afterwards).
#[derive(Debug, Clone)]
pub struct Subject {
    /// The tenant the request names (its chain gets the entry), if any.
    pub tenant: Option<String>,
    /// What it is about (a tenant, member, namespace or key id/name).
    pub target: Option<String>,
    /// Recorded whatever the outcome (control plane); otherwise only when refused.
    pub control: bool,
}

impl Subject {
    /// The subject of `req`. Data-plane requests only note their namespace.
    pub(crate) fn of(inner: &EngineInner, req: &Request) -> Subject {
        let namespace_tenant = |name: &str| {
            inner
                .catalog
                .read(|r, t| Ok(t.namespaces.get(r, name)?.and_then(|n| n.tenant_id)))
                .ok()
                .flatten()
        };
        let key_tenant = |id: &str| {
            inner
                .catalog
                .read(|r, t| Ok(t.keys.get(r, id)?.and_then(|k| k.tenant_id)))
                .ok()
                .flatten()
        };
        Subject::of_request(req, namespace_tenant, key_tenant)
    }

    /// The subject of `req`, the tenants of namespaces and keys told by the lookups (for logs
    /// kept outside an engine: the cluster's control plane knows them).
    pub fn of_request(
        req: &Request,
        namespace_tenant: impl Fn(&str) -> Option<String>,
        key_tenant: impl Fn(&str) -> Option<String>,
    ) -> Subject {
        let control = |tenant: Option<String>, target: Option<String>| Subject {
            tenant,
            target,
            control: true,
        };
        let data = |namespace: Option<&str>| Subject {
            tenant: None,
            target: namespace.map(str::to_owned),
            control: false,
        };
        match req {
            Request::CreateTenant(a) => control(None, Some(a.name.clone())),
            Request::UpdateTenant(a) => {
                control(Some(a.tenant_id.clone()), Some(a.tenant_id.clone()))
            }
            Request::DeleteTenant(a) => {
                control(Some(a.tenant_id.clone()), Some(a.tenant_id.clone()))
            }
            Request::RotateTenantKey(a) => {
                control(Some(a.tenant_id.clone()), Some(a.tenant_id.clone()))
            }
            Request::AddMember(a) => control(Some(a.tenant_id.clone()), None),
            Request::RemoveMember(a) => {
                control(Some(a.tenant_id.clone()), Some(a.member_id.clone()))
            }
            Request::CreateNamespace(a) => control(a.tenant_id.clone(), Some(a.name.clone())),
            Request::DeleteNamespace(a) => control(namespace_tenant(&a.name), Some(a.name.clone())),
            Request::SetMemoryPolicy(a) => {
                control(namespace_tenant(&a.namespace), Some(a.namespace.clone()))
            }
            Request::CreateKey(a) => control(a.tenant_id.clone(), None),
            Request::RevokeKey(a) => control(key_tenant(&a.key_id), Some(a.key_id.clone())),
            Request::RotateKey(a) => control(key_tenant(&a.key_id), Some(a.key_id.clone())),
            Request::ListTenants(_)
            | Request::ListMembers(_)
            | Request::ListNamespaces(_)
            | Request::ListKeys(_)
            | Request::WhoAmI(_) => data(None),
            Request::ListAudit(ListAudit { tenant_id, .. })
            | Request::VerifyAudit(crate::api::TenantArgs { tenant_id }) => data(Some(tenant_id)),
            Request::GetTenant(a) | Request::GetKeyRotation(a) => data(Some(&a.tenant_id)),
            Request::GetNamespace(a) => data(Some(&a.name)),
            Request::GetMemoryPolicy(a) => data(Some(&a.namespace)),
            Request::StoreMemory(a) => data(a.namespace.as_deref()),
            Request::StoreMemories(a) => data(Some(&a.namespace)),
            Request::Recall(a) => data(a.namespace.as_deref()),
            Request::GetMemory(a) | Request::DeleteMemory(a) => data(a.namespace.as_deref()),
            Request::GetMemories(a) => data(a.namespace.as_deref()),
            Request::UpdateMemory(a) => data(a.namespace.as_deref()),
            Request::BatchForget(a) => data(a.namespace.as_deref()),
            Request::ListMemories(a) => data(a.namespace.as_deref()),
            Request::CountMemories(a) => data(a.namespace.as_deref()),
            Request::AddEntity(a) => data(Some(&a.namespace)),
            Request::AddRelation(a) => data(Some(&a.namespace)),
            Request::Neighbors(a) | Request::Subgraph(a) => data(Some(&a.namespace)),
            Request::GetEntity(a) | Request::DeleteEntity(a) => data(Some(&a.namespace)),
            Request::ShortestPath(a) => data(Some(&a.namespace)),
            Request::DeleteRelation(a) => data(Some(&a.namespace)),
            // Every page of an export and every batch of an import is recorded: a cursor or a
            // line number chosen by the caller must not be a way around the log.
            Request::ExportNamespace(a) => {
                control(namespace_tenant(&a.namespace), Some(a.namespace.clone()))
            }
            Request::ImportNamespace(a) => {
                control(namespace_tenant(&a.namespace), Some(a.namespace.clone()))
            }
            Request::StartSession(a) => data(a.namespace.as_deref()),
            Request::EndSession(a) => data(a.namespace.as_deref()),
            Request::GetSession(a) => data(a.namespace.as_deref()),
            Request::ListSessions(a) => data(a.namespace.as_deref()),
            Request::SessionMemories(a) => data(a.namespace.as_deref()),
        }
    }

    /// Whether the outcome is recorded at all.
    pub(crate) fn recorded(&self, error: Option<&Error>) -> bool {
        self.control || error.is_some_and(|e| is_refusal(e.code()))
    }

    /// Whether it is a control-plane request (recorded whatever the outcome).
    pub(crate) fn is_control(&self) -> bool {
        self.control
    }

    /// Fills in what only the answer knows (a new tenant's or key's id, a new member's id,
    /// the tenant a namespace was created in).
    pub fn complete(&mut self, op: &str, reply: &Value) {
        let field = |name: &str| reply.get(name).and_then(Value::as_str).map(str::to_owned);
        match op {
            "create_tenant" => {
                self.tenant = field("id");
                self.target = field("id");
            }
            "create_namespace" => self.tenant = self.tenant.take().or_else(|| field("tenant_id")),
            "create_key" => {
                self.tenant = self.tenant.take().or_else(|| field("tenant_id"));
                self.target = field("id");
            }
            "add_member" => self.target = field("member_id"),
            _ => {}
        }
    }
}

/// A fresh request id (16 hex digits) for calls that did not bring one.
pub fn new_request_id() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    crate::keys::to_hex(&b)
}

/// An entry whose outcome is not known yet.
#[derive(Clone)]
pub(crate) struct Unfinished {
    /// The tenant the request named.
    pub(crate) subject_tenant: Option<String>,
    /// The tenant of the caller's key.
    pub(crate) key_tenant: Option<String>,
    pub(crate) draft: Draft,
}

impl Unfinished {
    /// The entry, given the outcome and what only the change knows (the tenant of what was
    /// made, when the request did not name one; the id of what was made).
    pub(crate) fn finish(
        &self,
        outcome: std::result::Result<(), ErrorCode>,
        made_in: Option<String>,
        made: Option<String>,
    ) -> Draft {
        let mut d = self.draft.clone();
        d.tenant_id = (self.subject_tenant.clone().or(made_in).or_else(|| self.key_tenant.clone()))
            .unwrap_or_else(|| INSTANCE.into());
        if made.is_some() {
            d.target = made;
        }
        d.outcome = outcome;
        d
    }
}

/// The control-plane request this thread runs, whose entry has not been written yet.
pub(crate) struct InCommit {
    pending: Unfinished,
    written: bool,
}

thread_local! {
    /// Set while [`Handle::with_entry_in_commit`] runs a request on this thread.
    static IN_COMMIT: std::cell::RefCell<Option<InCommit>> = const { std::cell::RefCell::new(None) };
}

/// Runs `run` as this thread's control-plane request `pending`: a catalog write inside it
/// may write its entry (see [`EngineInner::catalog_write_audited`]). Returns its result and
/// whether that happened.
pub(crate) fn run_in_commit<R>(pending: Unfinished, run: impl FnOnce() -> R) -> (R, bool) {
    let previous = IN_COMMIT.with(|c| c.replace(Some(InCommit { pending, written: false })));
    let out = run();
    let written = IN_COMMIT
        .with(|c| std::mem::replace(&mut *c.borrow_mut(), previous))
        .is_some_and(|c| c.written);
    (out, written)
}

impl EngineInner {
    /// A catalog write that is the whole change of a control-plane request (creating a
    /// namespace, a key): when the request is recorded (it runs under
    /// [`Handle::with_entry_in_commit`]), its audit entry is written in the same transaction
    /// as the change, after the entries queued before it, so the change and its entry are
    /// made durable by one commit (shared with the other writes of its group). `made` names
    /// the tenant the change was made in and the id of what it made. If `f` fails, nothing is
    /// written and the request's outcome is recorded afterwards, as for any request.
    pub(crate) fn catalog_write_audited<R: Send>(
        &self,
        affects: crate::engine::Affects<'_>,
        mut f: impl FnMut(&mut heed3::RwTxn<'_>, &CatalogTables) -> Result<R> + Send,
        made: impl Fn(&R) -> (Option<String>, Option<String>) + Sync,
    ) -> Result<R> {
        let pending = IN_COMMIT.with(|c| {
            c.borrow().as_ref().filter(|c| !c.written).map(|c| Unfinished {
                subject_tenant: c.pending.subject_tenant.clone(),
                key_tenant: c.pending.key_tenant.clone(),
                draft: c.pending.draft.clone(),
            })
        });
        let Some(pending) = pending else { return self.catalog_write_affecting(affects, f) };
        let mut taken = None;
        let written = self.catalog_write_affecting(affects, |w, t| {
            let r = f(w, t)?;
            let (made_in, made) = made(&r);
            let own = pending.finish(Ok(()), made_in, made);
            self.audit.write_taken(w, &t.audit, &mut taken, std::slice::from_ref(&own))?;
            Ok(r)
        });
        self.audit.settle_taken(taken, &written);
        if written.is_ok() {
            IN_COMMIT.with(|c| {
                if let Some(c) = c.borrow_mut().as_mut() {
                    c.written = true;
                }
            });
        }
        written
    }
}

impl EngineInner {
    /// [`EngineInner::catalog_write_audited`] for a caller on an async executor, whose
    /// request's audit entry is `entry`: `f`'s change and the entry are queued for the
    /// catalog's next group commit and awaited without a thread (see
    /// `Store::write_ns_async`). The change must alter no key's resolution. `f` may refuse
    /// the request after reading the catalog and before writing anything (`Ok(Err(_))`, e.g.
    /// a name taken): the refusal's entry is then written by the same commit, and comes back
    /// as the inner `Err`. If `f` fails otherwise, nothing is written (the caller records the
    /// outcome: [`Handle::record_control_failure_async`]).
    pub(crate) async fn catalog_write_audited_async<R: Send + 'static>(
        self: &Arc<Self>,
        entry: Unfinished,
        mut f: impl FnMut(&mut heed3::RwTxn<'_>, &CatalogTables) -> Result<Result<R>> + Send + 'static,
        made: impl Fn(&R) -> (Option<String>, Option<String>) + Send + 'static,
    ) -> Result<Result<R>> {
        self.catalog_write_with_entries_async(move |w, t| {
            Ok(match f(w, t)? {
                Ok(r) => {
                    let (made_in, made) = made(&r);
                    let own = entry.finish(Ok(()), made_in, made);
                    (Ok(r), Some(own))
                }
                Err(refused) => {
                    let own = entry.finish(Err(refused.code()), None, None);
                    (Err(refused), Some(own))
                }
            })
        })
        .await
    }

    /// An awaited catalog write of `f`'s change, then the queued audit entries, then the
    /// entry `f` returns (see [`AuditLog::write_taken`]).
    pub(crate) async fn catalog_write_with_entries_async<R: Send + 'static>(
        self: &Arc<Self>,
        mut f: impl FnMut(&mut heed3::RwTxn<'_>, &CatalogTables) -> Result<(R, Option<Draft>)>
            + Send
            + 'static,
    ) -> Result<R> {
        let taken = Arc::new(Mutex::new(None));
        let (inner, in_job) = (self.clone(), taken.clone());
        let written = self
            .catalog
            .write_async(move |w, t| {
                let (r, own) = f(w, t)?;
                inner.audit.write_taken(w, &t.audit, &mut in_job.lock(), own.as_slice())?;
                Ok(r)
            })
            .await;
        self.audit.settle_taken(taken.lock().take(), &written);
        written
    }
}

impl EngineInner {
    /// The actor behind key `id` (`None`: root), with the tenant its key belongs to.
    pub(crate) fn actor(&self, key_id: Option<&str>) -> (AuditActor, Option<String>) {
        let Some(id) = key_id else {
            return (AuditActor { principal: "root".into(), ..AuditActor::default() }, None);
        };
        let rec = self.catalog.read(|r, t| Ok(t.keys.get(r, id)?)).ok().flatten();
        let principal = match &rec {
            Some(k) if k.grants.is_empty() => "member",
            Some(_) => "scoped",
            None => "anonymous",
        };
        let actor = AuditActor {
            principal: principal.into(),
            key_id: Some(id.to_owned()),
            key_prefix: Some(crate::auth::display_prefix(id)),
            member_id: rec.as_ref().and_then(|k| k.member_id.clone()),
        };
        (actor, rec.and_then(|k| k.tenant_id))
    }

    /// Records a refusal made before any operation ran: a key that does not authenticate
    /// (`key` is `None` when none was given or it could not be parsed).
    pub(crate) fn audit_unauthenticated(
        &self,
        key: Option<&ParsedKey>,
        action: &str,
        error: &Error,
        request_id: Option<&str>,
    ) {
        let (actor, tenant) = match key {
            Some(k) => self.actor(Some(&k.id)),
            None => (AuditActor { principal: "anonymous".into(), ..AuditActor::default() }, None),
        };
        self.audit.append(
            &self.catalog,
            Draft {
                time: self.options.clock.now(),
                tenant_id: tenant.unwrap_or_else(|| INSTANCE.into()),
                actor,
                action: action.into(),
                target: None,
                outcome: Err(error.code()),
                request_id: request_id.map_or_else(new_request_id, str::to_owned),
            },
            false,
        );
    }

    /// Commits queued entries and applies the retention setting (the background worker).
    pub(crate) fn audit_maintenance(&self) -> Result<u64> {
        self.audit.flush(&self.catalog);
        match self.options.audit_retention_days {
            Some(days) => {
                let cutoff = self.options.clock.now() - chrono::Duration::days(i64::from(days));
                self.audit.prune(&self.catalog, cutoff)
            }
            None => Ok(0),
        }
    }
}

pub(crate) fn verify_chain(
    r: &mut RoTxn<'_>,
    t: &AuditTables,
    tenant_id: &str,
) -> Result<AuditVerification> {
    let head = t.heads.get(r, tenant_id)?.unwrap_or_else(|| Head {
        hash: GENESIS.into(),
        anchor_hash: GENESIS.into(),
        ..Head::default()
    });
    let raw = t.entries.remap_data_type::<heed3::types::Bytes>();
    let stored = raw.prefix_iter(r, &format!("{tenant_id}/"))?.map(|item| {
        let (key, bytes) = item?;
        let key_seq = key.rsplit('/').next().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        Ok((key_seq, bytes))
    });
    verify_entries(
        tenant_id,
        (head.anchor_seq, &head.anchor_hash),
        Some((head.seq, &head.hash)),
        stored,
    )
}

/// Checks a chain from its anchor on and names the first entry that was edited, removed or
/// moved. `stored` is the chain's entries in order, each with the position it is stored at and
/// its bytes; `anchor` is the sequence number and hash the first entry links to (`(0,`
/// [`GENESIS_HASH`]`)` when nothing was pruned); `head` is the last appended entry when it is
/// kept apart from the entries (then a chain cut short at its end is reported), else the
/// last entry read is taken as the head. The check of the engine's log and of the cluster's.
pub fn verify_entries<B: AsRef<[u8]>>(
    tenant_id: &str,
    anchor: (u64, &str),
    head: Option<(u64, &str)>,
    stored: impl IntoIterator<Item = Result<(u64, B)>>,
) -> Result<AuditVerification> {
    let mut expect_seq = anchor.0 + 1;
    let mut expect_prev = anchor.1.to_owned();
    let mut checked = 0u64;
    let mut broken = None;
    for item in stored {
        let (key_seq, bytes) = item?;
        checked += 1;
        let fail = |seq: u64, reason: String| Some(BrokenEntry { seq, reason });
        let entry: AuditEntry = match serde_json::from_slice(bytes.as_ref()) {
            Ok(e) => e,
            Err(e) => {
                broken = fail(key_seq, format!("entry cannot be read: {e}"));
                break;
            }
        };
        if key_seq > expect_seq || entry.seq > expect_seq {
            broken = fail(expect_seq, "entry is missing".into());
            break;
        }
        if entry.seq != key_seq || entry.seq != expect_seq || entry.tenant_id != tenant_id {
            broken = fail(key_seq, "entry was moved (its sequence or tenant changed)".into());
            break;
        }
        if entry.prev_hash != expect_prev {
            broken = fail(
                entry.seq,
                "prev_hash does not match the entry before (an entry was edited or removed)".into(),
            );
            break;
        }
        if entry_hash(&entry) != entry.hash {
            broken = fail(entry.seq, "entry was edited (its hash does not match)".into());
            break;
        }
        expect_seq += 1;
        expect_prev = entry.hash;
    }
    let (head_seq, head_hash) = match head {
        Some((seq, hash)) => (seq, hash.to_owned()),
        None => (expect_seq - 1, expect_prev.clone()),
    };
    if broken.is_none() && (expect_seq != head_seq + 1 || expect_prev != head_hash) {
        broken = Some(BrokenEntry {
            seq: expect_seq,
            reason: format!(
                "the chain ends before its head (entry {head_seq} was appended; entries from {expect_seq} are missing)"
            ),
        });
    }
    Ok(AuditVerification {
        tenant_id: tenant_id.to_owned(),
        ok: broken.is_none(),
        checked,
        first_broken: broken,
        head_seq,
        head_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, Options};

    fn chain(n: usize) -> (tempfile::TempDir, Engine, String) {
        let dir = tempfile::tempdir().unwrap();
        let engine =
            Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
        let root = engine.root();
        let args = serde_json::json!({ "name": "acme" });
        let id = root.call("create_tenant", args).unwrap().value["id"].as_str().unwrap().to_owned();
        for i in 1..n {
            let args = serde_json::json!({ "name": format!("ns{i}"), "tenant_id": id });
            root.call("create_namespace", args).unwrap();
        }
        assert!(root.verify_audit(&id).unwrap().ok);
        (dir, engine, id)
    }

    /// Changes one stored row of `tenant`'s chain, as someone with the files could.
    fn tamper(engine: &Engine, tenant: &str, seq: u64, f: impl Fn(&mut AuditEntry) -> bool + Sync) {
        engine
            .inner
            .catalog
            .write(|w, t| {
                let t = &t.audit;
                let key = entry_key(tenant, seq);
                let mut entry = t.entries.get(w, &key)?.unwrap();
                if f(&mut entry) {
                    t.entries.put(w, &key, &entry)?;
                } else {
                    t.entries.delete(w, &key)?;
                }
                Ok(())
            })
            .unwrap();
    }

    fn broken(engine: &Engine, tenant: &str) -> BrokenEntry {
        let v = engine.root().verify_audit(tenant).unwrap();
        assert!(!v.ok);
        v.first_broken.unwrap()
    }

    #[test]
    fn an_edited_entry_is_named_by_verify() {
        let (_dir, engine, id) = chain(6);
        tamper(&engine, &id, 3, |e| {
            e.actor.principal = "member".into();
            true
        });
        let b = broken(&engine, &id);
        assert_eq!(b.seq, 3);
        assert!(b.reason.contains("edited"), "{}", b.reason);
    }

    #[test]
    fn an_edited_entry_with_a_recomputed_hash_breaks_the_next_link() {
        let (_dir, engine, id) = chain(6);
        tamper(&engine, &id, 2, |e| {
            e.result = "refused".into();
            e.hash = entry_hash(e);
            true
        });
        assert_eq!(broken(&engine, &id).seq, 3);
    }

    #[test]
    fn a_removed_entry_is_named_by_verify_in_the_middle_and_at_the_end() {
        let (_dir, engine, id) = chain(6);
        tamper(&engine, &id, 4, |_| false);
        let b = broken(&engine, &id);
        assert_eq!(b.seq, 4);
        assert!(b.reason.contains("missing"), "{}", b.reason);

        let (_dir, engine, id) = chain(6);
        tamper(&engine, &id, 6, |_| false);
        let b = broken(&engine, &id);
        assert_eq!(b.seq, 6);
        assert!(b.reason.contains("missing"), "{}", b.reason);
    }

    #[test]
    fn an_entry_moved_to_another_tenant_does_not_verify_there() {
        let (_dir, engine, id) = chain(3);
        tamper(&engine, &id, 2, |e| {
            e.tenant_id = "someone-else".into();
            e.hash = entry_hash(e);
            true
        });
        assert_eq!(broken(&engine, &id).seq, 2);
    }

    fn entries(engine: &Engine, tenant: &str) -> Vec<AuditEntry> {
        let q = ListAudit { tenant_id: tenant.into(), limit: Some(1000), ..ListAudit::default() };
        engine.root().list_audit(q).unwrap().entries
    }

    /// Issue 19: a namespace or key created through the operation table is made durable with
    /// its audit entry by one catalog commit (one fsync'd commit, not two), the entry names
    /// what was made; a refused creation still gets its entry.
    #[test]
    fn a_creation_and_its_entry_share_one_commit_and_a_refused_one_is_recorded() {
        let (_dir, engine, id) = chain(1);
        let root = engine.root().with_request_id("req-1");
        let commits = || engine.inner.catalog.commits();
        let before = commits();
        root.call("create_namespace", serde_json::json!({ "name": "one", "tenant_id": id }))
            .unwrap();
        assert_eq!(commits(), before + 1, "the namespace and its entry: one commit");
        let key = crate::CreateKey::tenant_role("k", &id, crate::Role::Viewer);
        let made = root.call("create_key", serde_json::to_value(key).unwrap()).unwrap();
        let key_id = made.value["id"].as_str().unwrap().to_owned();
        assert_eq!(commits(), before + 2, "the key and its entry: one commit");
        let args = serde_json::json!({ "name": "one", "tenant_id": id });
        assert_eq!(root.call("create_namespace", args).unwrap_err().code(), ErrorCode::Conflict);

        let log = entries(&engine, &id);
        let last: Vec<(&str, Option<&str>, &str, Option<&str>)> = log[log.len() - 3..]
            .iter()
            .map(|e| {
                (e.action.as_str(), e.target.as_deref(), e.result.as_str(), e.error.as_deref())
            })
            .collect();
        assert_eq!(
            last,
            [
                ("create_namespace", Some("one"), "ok", None),
                ("create_key", Some(key_id.as_str()), "ok", None),
                ("create_namespace", Some("one"), "failed", Some("conflict")),
            ]
        );
        assert!(log.iter().rev().take(3).all(|e| e.request_id == "req-1"));
        assert!(engine.root().verify_audit(&id).unwrap().ok);
    }

    /// An entry still queued (a refusal does not wait for its commit) is written before the
    /// entry of a creation decided after it: the chain keeps the order of the decisions.
    #[test]
    fn queued_entries_go_into_the_chain_before_a_later_creations_entry() {
        let (_dir, engine, id) = chain(1);
        let root = engine.root();
        let queued = root
            .draft(
                "store_memory",
                Subject { tenant: Some(id.clone()), target: None, control: false },
            )
            .finish(Err(ErrorCode::Forbidden), None, None);
        engine.inner.audit.queue.lock().push_back(queued);
        root.call("create_namespace", serde_json::json!({ "name": "two", "tenant_id": id }))
            .unwrap();
        let log = entries(&engine, &id);
        let actions: Vec<&str> = log[log.len() - 2..].iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["store_memory", "create_namespace"]);
        assert!(engine.inner.audit.queue.lock().is_empty());
        assert!(engine.root().verify_audit(&id).unwrap().ok);
    }

    /// A data directory of an earlier version kept the log in its own environment
    /// (`DIR/audit`): opening it moves the chains into the catalog, intact, and removes it.
    #[test]
    fn a_log_in_its_own_environment_is_moved_into_the_catalog_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let old =
                Store::<OldAuditTables>::open(&dir.path().join("audit"), 1 << 20, None).unwrap();
            let draft = |action: &str| Draft {
                time: Utc::now(),
                tenant_id: "t1".into(),
                actor: AuditActor { principal: "root".into(), ..AuditActor::default() },
                action: action.into(),
                target: None,
                outcome: Ok(()),
                request_id: "r".into(),
            };
            let batch = [draft("create_tenant"), draft("create_namespace")];
            old.write(|w, t| write_batch(w, &t.0, &batch)).unwrap();
        }
        let engine =
            Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
        assert!(!dir.path().join("audit").exists());
        let actions: Vec<String> = entries(&engine, "t1").into_iter().map(|e| e.action).collect();
        assert_eq!(actions, ["create_tenant", "create_namespace"]);
        let v = engine.root().verify_audit("t1").unwrap();
        assert!(v.ok && v.head_seq == 2, "{v:?}");
    }
}
