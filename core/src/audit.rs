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
use std::ops::Bound;
use std::path::Path;

use chrono::{DateTime, Utc};
use heed::types::{SerdeJson, Str};
use heed::{Database, Env, WithoutTls};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::Request;
use crate::auth::{authorize, Action, ParsedKey};
use crate::engine::{EngineInner, Handle};
use crate::error::{Error, ErrorCode, Result};
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

/// A chain's head and retention anchor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Head {
    seq: u64,
    hash: String,
    /// The last entry removed by retention: the first kept entry links to it.
    anchor_seq: u64,
    anchor_hash: String,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The audit environment's tables.
pub(crate) struct AuditTables {
    /// `tenant/seq` (seq zero-padded to 20 digits) → entry.
    pub entries: Database<'static, Str, SerdeJson<AuditEntry>>,
    /// tenant → chain head.
    heads: Database<'static, Str, SerdeJson<Head>>,
}

impl Tables for AuditTables {
    const MAX_DBS: u32 = 4;

    fn create(env: &Env<WithoutTls>) -> Result<Self> {
        let wtxn = env.write_txn()?;
        let (entries, heads) = env
            .create_databases_and_commit(wtxn, |o, w| -> heed::Result<_> {
                Ok(heed::CommitOrAbort::<_, ()>::Commit((
                    o.create_database(w, Some("entries"))?,
                    o.create_database(w, Some("heads"))?,
                )))
            })?
            .unwrap_commit();
        Ok(AuditTables { entries, heads })
    }
}

/// The key of entry `seq` of `tenant`'s chain.
pub fn entry_key(tenant: &str, seq: u64) -> String {
    format!("{tenant}/{seq:020}")
}

/// An entry before it has its place in the chain.
struct Draft {
    time: DateTime<Utc>,
    tenant_id: String,
    actor: AuditActor,
    action: String,
    target: Option<String>,
    outcome: std::result::Result<(), ErrorCode>,
    request_id: String,
}

/// The hash of an entry: SHA-256 over its fields (with `hash` empty) as JSON.
fn entry_hash(entry: &AuditEntry) -> String {
    let mut unhashed = entry.clone();
    unhashed.hash.clear();
    let bytes = serde_json::to_vec(&unhashed).unwrap_or_default();
    crate::keys::to_hex(&Sha256::digest(&bytes))
}

/// The audit log of one data directory.
pub(crate) struct AuditLog {
    store: Store<AuditTables>,
    queue: Mutex<Vec<Draft>>,
    writer: Mutex<()>,
}

impl AuditLog {
    pub(crate) fn open(dir: &Path) -> Result<AuditLog> {
        Ok(AuditLog {
            store: Store::open(&dir.join("audit"), 64 << 20)?,
            queue: Mutex::default(),
            writer: Mutex::default(),
        })
    }

    /// Appends `draft`. With `wait`, returns once it is committed; otherwise it may be left
    /// to the writer that is busy now, which commits it in its next transaction.
    fn append(&self, draft: Draft, wait: bool) {
        self.queue.lock().push(draft);
        let mut wait = wait;
        loop {
            let guard = if wait { Some(self.writer.lock()) } else { self.writer.try_lock() };
            let Some(guard) = guard else { return };
            let batch = std::mem::take(&mut *self.queue.lock());
            if !batch.is_empty() {
                if let Err(e) = self.store.write(|w, t| write_batch(w, t, &batch)) {
                    eprintln!("memsilo: {} audit entries could not be written: {e}", batch.len());
                }
            }
            drop(guard);
            // An entry queued while this writer held the lock is written by this loop.
            if self.queue.lock().is_empty() {
                return;
            }
            wait = false;
        }
    }

    /// Commits every queued entry.
    fn flush(&self) {
        let _guard = self.writer.lock();
        let batch = std::mem::take(&mut *self.queue.lock());
        if !batch.is_empty() {
            if let Err(e) = self.store.write(|w, t| write_batch(w, t, &batch)) {
                eprintln!("memsilo: {} audit entries could not be written: {e}", batch.len());
            }
        }
    }

    /// Removes every entry older than `cutoff`, keeping each chain's last removed hash as
    /// its anchor. Returns how many were removed.
    pub(crate) fn prune(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        self.flush();
        let _guard = self.writer.lock();
        self.store.write(|w, t| {
            let heads: Vec<(String, Head)> = t
                .heads
                .iter(w)?
                .map(|e| e.map(|(k, h)| (k.to_owned(), h)))
                .collect::<heed::Result<_>>()?;
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

fn write_batch(w: &mut heed::RwTxn<'_>, t: &AuditTables, batch: &[Draft]) -> Result<()> {
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
        let (result, error, status) = match d.outcome {
            Ok(()) => ("ok", None, 200),
            Err(code) => {
                let result = if is_refusal(code) { "refused" } else { "failed" };
                (result, Some(code.as_str().to_owned()), code.http_status())
            }
        };
        let mut entry = AuditEntry {
            seq: head.seq + 1,
            time: d.time,
            tenant_id: d.tenant_id.clone(),
            actor: d.actor.clone(),
            action: d.action.clone(),
            target: d.target.clone(),
            result: result.into(),
            error,
            status,
            request_id: d.request_id.clone(),
            prev_hash: head.hash.clone(),
            hash: String::new(),
        };
        entry.hash = entry_hash(&entry);
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
pub(crate) fn is_refusal(code: ErrorCode) -> bool {
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
pub(crate) struct Subject {
    tenant: Option<String>,
    target: Option<String>,
    /// Recorded whatever the outcome (control plane); otherwise only when refused.
    control: bool,
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
            Request::GetTenant(a) => data(Some(&a.tenant_id)),
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
    fn complete(&mut self, op: &str, reply: &Value) {
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

impl EngineInner {
    /// The actor behind key `id` (`None`: root), with the tenant its key belongs to.
    fn actor(&self, key_id: Option<&str>) -> (AuditActor, Option<String>) {
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
        self.audit.flush();
        match self.options.audit_retention_days {
            Some(days) => {
                let cutoff = self.options.clock.now() - chrono::Duration::days(i64::from(days));
                self.audit.prune(cutoff)
            }
            None => Ok(0),
        }
    }
}

impl Handle {
    /// Records the outcome of `op` about `subject` (see [`Subject::recorded`]).
    pub(crate) fn audit(
        &self,
        op: &str,
        mut subject: Subject,
        outcome: std::result::Result<&Value, ErrorCode>,
    ) {
        if let Ok(reply) = outcome {
            subject.complete(op, reply);
        }
        let (actor, key_tenant) = self.inner.actor(self.key_id());
        let tenant = subject.tenant.or(key_tenant).unwrap_or_else(|| INSTANCE.into());
        let draft = Draft {
            time: self.inner.options.clock.now(),
            tenant_id: tenant,
            actor,
            action: op.into(),
            target: subject.target,
            outcome: outcome.map(drop),
            request_id: self.request_id().map_or_else(new_request_id, str::to_owned),
        };
        // Control-plane entries are committed before the answer; refusals may ride along
        // with the next commit, so a flood of refused calls costs one transaction per batch.
        self.inner.audit.append(draft, subject.control);
    }

    /// Records a refusal made by a transport on this handle's behalf (e.g. the HTTP
    /// server's `max_connections`), as if `op` had been refused by core.
    pub fn record_refusal(&self, op: &str, error: &Error) {
        let subject = Subject { tenant: None, target: None, control: false };
        self.audit(op, subject, Err(error.code()));
    }

    fn audit_tenant_allowed(&self, tenant_id: &str) -> Result<()> {
        let caller = self.caller()?;
        if tenant_id == INSTANCE {
            return authorize(&caller.principal, Action::ManageTenants);
        }
        authorize(&caller.principal, Action::AdministerTenant(Some(tenant_id)))?;
        let known = self.inner.catalog.read(|r, t| Ok(t.tenants.get(r, tenant_id)?.is_some()))?
            || self.inner.audit.store.read(|r, t| Ok(t.heads.get(r, tenant_id)?.is_some()))?;
        if known {
            Ok(())
        } else {
            Err(Error::not_found("tenant", tenant_id))
        }
    }

    /// A tenant's audit entries, oldest first, filtered and paged by cursor (root, or the
    /// tenant's admins; the `instance` log: root only).
    pub fn list_audit(&self, q: ListAudit) -> Result<AuditPage> {
        self.audit_tenant_allowed(&q.tenant_id)?;
        let limit = q.limit.unwrap_or(crate::page::DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_AUDIT_LIMIT {
            return Err(Error::invalid(
                "limit",
                format!("must be between 1 and {MAX_AUDIT_LIMIT}"),
            ));
        }
        let start = match &q.cursor {
            None => 0,
            Some(c) => c.parse::<u64>().map_err(|_| {
                Error::invalid("cursor", "not a cursor returned by an earlier page")
            })?,
        };
        if let (Some(s), Some(u)) = (q.since, q.until) {
            if s > u {
                return Err(Error::invalid("since", "is after until"));
            }
        }
        self.inner.audit.flush();
        let keep = |e: &AuditEntry| {
            q.since.is_none_or(|s| e.time >= s)
                && q.until.is_none_or(|u| e.time < u)
                && q.action.as_ref().is_none_or(|a| *a == e.action)
                && q.actor.as_ref().is_none_or(|a| {
                    [&e.actor.key_id, &e.actor.key_prefix, &e.actor.member_id]
                        .iter()
                        .any(|v| v.as_deref() == Some(a.as_str()))
                })
        };
        let prefix = format!("{}/", q.tenant_id);
        let from = entry_key(&q.tenant_id, start);
        self.inner.audit.store.read(|r, t| {
            let mut entries = Vec::new();
            let mut next_cursor = None;
            for item in t.entries.range(r, &(Bound::Included(from.as_str()), Bound::Unbounded))? {
                let (key, entry) = item?;
                if !key.starts_with(&prefix) {
                    break;
                }
                if !keep(&entry) {
                    continue;
                }
                if entries.len() as u64 == limit {
                    next_cursor = Some(entry.seq.to_string());
                    break;
                }
                entries.push(entry);
            }
            Ok(AuditPage { tenant_id: q.tenant_id.clone(), entries, next_cursor })
        })
    }

    /// Checks a tenant's chain from its anchor to its head and names the first entry that
    /// was edited, removed or moved (same access as [`Handle::list_audit`]).
    pub fn verify_audit(&self, tenant_id: &str) -> Result<AuditVerification> {
        self.audit_tenant_allowed(tenant_id)?;
        self.inner.audit.flush();
        self.inner.audit.store.read(|r, t| verify_chain(r, t, tenant_id))
    }
}

fn verify_chain(
    r: &heed::RoTxn<'_, WithoutTls>,
    t: &AuditTables,
    tenant_id: &str,
) -> Result<AuditVerification> {
    let head = t.heads.get(r, tenant_id)?.unwrap_or_else(|| Head {
        hash: GENESIS.into(),
        anchor_hash: GENESIS.into(),
        ..Head::default()
    });
    let mut expect_seq = head.anchor_seq + 1;
    let mut expect_prev = head.anchor_hash.clone();
    let mut checked = 0u64;
    let mut broken = None;
    let raw = t.entries.remap_data_type::<heed::types::Bytes>();
    for item in raw.prefix_iter(r, &format!("{tenant_id}/"))? {
        let (key, bytes) = item?;
        let key_seq = key.rsplit('/').next().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        checked += 1;
        let fail = |seq: u64, reason: String| Some(BrokenEntry { seq, reason });
        let entry: AuditEntry = match serde_json::from_slice(bytes) {
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
    if broken.is_none() && (expect_seq != head.seq + 1 || expect_prev != head.hash) {
        broken = Some(BrokenEntry {
            seq: expect_seq,
            reason: format!(
                "the chain ends before its head (entry {} was appended; entries from {expect_seq} are missing)",
                head.seq
            ),
        });
    }
    Ok(AuditVerification {
        tenant_id: tenant_id.to_owned(),
        ok: broken.is_none(),
        checked,
        first_broken: broken,
        head_seq: head.seq,
        head_hash: head.hash,
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
            .audit
            .store
            .write(|w, t| {
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
}
