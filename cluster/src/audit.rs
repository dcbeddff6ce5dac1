//! The audit log in cluster mode: one hash chain per tenant in object storage, under
//! `PREFIX/audit/<tenant id>/`, the entries of core's log ([`memsilo::AuditEntry`], sealed by
//! core's [`memsilo::AuditDraft::seal`]) with the same fields and the same chaining.
//!
//! Each object holds one group of consecutive entries and is named by the sequence number of
//! its first entry (20 digits). It is created with a conditional put (create-if-absent), so two
//! nodes appending at once cannot both extend the chain from the same head: a node's head is
//! always the end of an object it read, so the next object of the real chain starts exactly
//! where it would put its own; the loser reads the objects it missed and puts after them.
//! Entries waiting on one node for a tenant go out as one object (group commit).

use std::collections::HashMap;
use std::sync::Arc;

use futures::TryStreamExt;
use memsilo::api::{Reply, Request};
use memsilo::auth::{authorize, Action};
use memsilo::{
    AuditActor, AuditDraft, AuditEntry, AuditPage, AuditSubject, AuditVerification, Error,
    ErrorCode, Result, GENESIS_HASH, INSTANCE,
};
use object_store::path::{Path, PathPart};
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::control::{Caller, KeyRecord};
use crate::node::Node;

/// How many times an append reads the objects another node put first and tries again.
const TRIES: usize = 50;

/// Where a chain ends, as this node last read or wrote it.
#[derive(Debug, Clone)]
struct Head {
    seq: u64,
    hash: String,
}

type Waiting = (AuditDraft, Option<oneshot::Sender<()>>);

/// One tenant's chain on this node: entries waiting to be stored and the head.
#[derive(Default)]
struct Chain {
    pending: Mutex<Vec<Waiting>>,
    /// Held by the node's one appender to this chain; `None` until read from the store.
    head: tokio::sync::Mutex<Option<Head>>,
}

/// The cluster's audit chains in object storage.
pub(crate) struct AuditChains {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    chains: Mutex<HashMap<String, Arc<Chain>>>,
}

impl AuditChains {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> AuditChains {
        let prefix = prefix.trim_matches('/').to_owned();
        AuditChains { store, prefix, chains: Mutex::default() }
    }

    /// `PREFIX/audit/<tenant>` and, with `first_seq`, the object it names (each part
    /// escaped, so no tenant id can reach outside its chain).
    fn path(&self, tenant: &str, first_seq: Option<u64>) -> Path {
        let mut parts: Vec<PathPart<'_>> =
            self.prefix.split('/').filter(|p| !p.is_empty()).map(PathPart::from).collect();
        parts.push(PathPart::from("audit"));
        parts.push(PathPart::from(tenant));
        if let Some(seq) = first_seq {
            parts.push(PathPart::from(format!("{seq:020}")));
        }
        Path::from_iter(parts)
    }

    fn dir(&self, tenant: &str) -> Path {
        self.path(tenant, None)
    }

    fn object(&self, tenant: &str, first_seq: u64) -> Path {
        self.path(tenant, Some(first_seq))
    }

    /// The first sequence numbers of a chain's objects, in order.
    async fn objects(&self, tenant: &str) -> Result<Vec<u64>> {
        let metas: Vec<_> = self
            .store
            .list(Some(&self.dir(tenant)))
            .try_collect()
            .await
            .map_err(|e| Error::internal_from("audit log: listing", e))?;
        let mut seqs: Vec<u64> = metas
            .iter()
            .filter_map(|m| m.location.filename().and_then(|f| f.parse::<u64>().ok()))
            .collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// The entries of one object, as stored (`None` when it does not exist).
    async fn read(&self, tenant: &str, first_seq: u64) -> Result<Option<Vec<Value>>> {
        match self.store.get(&self.object(tenant, first_seq)).await {
            Ok(got) => {
                let bytes =
                    got.bytes().await.map_err(|e| Error::internal_from("audit log: reading", e))?;
                // A damaged object is one unreadable entry for `verify` to name.
                Ok(Some(serde_json::from_slice(&bytes).unwrap_or_else(|_| vec![Value::Null])))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::internal_from("audit log: reading", e)),
        }
    }

    /// The head after the objects from `first_seq` on (`head` when there are none).
    async fn catch_up(&self, tenant: &str, mut head: Head) -> Result<Head> {
        while let Some(entries) = self.read(tenant, head.seq + 1).await? {
            let last = entries
                .last()
                .and_then(|v| serde_json::from_value::<AuditEntry>(v.clone()).ok())
                .ok_or_else(|| {
                    Error::Internal(format!(
                        "audit log of {tenant}: object {} cannot be read; the chain is damaged",
                        head.seq + 1
                    ))
                })?;
            head = Head { seq: last.seq, hash: last.hash };
        }
        Ok(head)
    }

    /// The head of a chain read from the store: the last entry of its last object.
    async fn read_head(&self, tenant: &str) -> Result<Head> {
        let start = Head { seq: 0, hash: GENESIS_HASH.to_owned() };
        let Some(&last) = self.objects(tenant).await?.last() else { return Ok(start) };
        self.catch_up(tenant, Head { seq: last.saturating_sub(1), hash: String::new() }).await
    }

    /// Appends `draft` to its tenant's chain. With `wait`, returns once it is stored (or
    /// storing failed: then it is reported on stderr and kept, first in the queue, for the
    /// chain's next append; a request is never refused because its entry could not be
    /// written); otherwise it is stored in the background.
    pub(crate) async fn append(self: &Arc<Self>, draft: AuditDraft, wait: bool) {
        let tenant = draft.tenant_id.clone();
        let chain = self.chains.lock().entry(tenant.clone()).or_default().clone();
        let (tx, rx) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        chain.pending.lock().push((draft, tx));
        let chains = self.clone();
        let write = async move {
            let mut head = chain.head.lock().await;
            let group = std::mem::take(&mut *chain.pending.lock());
            if group.is_empty() {
                return; // Stored by the appender before this one.
            }
            let started = std::time::Instant::now();
            let (drafts, waiters): (Vec<_>, Vec<_>) = group.into_iter().unzip();
            match chains.put_group(&tenant, &mut head, &drafts).await {
                Ok(()) => {
                    if std::env::var_os("MEMSILO_CLUSTER_AUDIT_TIMES").is_some() {
                        eprintln!(
                            "memsilo cluster: audit append of {} entries for {tenant}: {} us",
                            drafts.len(),
                            started.elapsed().as_micros()
                        );
                    }
                }
                Err(e) => {
                    eprintln!(
                        "memsilo cluster: {} audit entries of {tenant} not stored yet ({e}); kept \
                         for the next append",
                        drafts.len()
                    );
                    // First in the queue again, so the chain keeps the order of the decisions.
                    let kept = drafts.into_iter().map(|d| (d, None));
                    chain.pending.lock().splice(0..0, kept);
                }
            }
            for tx in waiters.into_iter().flatten() {
                let _ = tx.send(());
            }
        };
        match rx {
            Some(rx) => {
                write.await;
                let _ = rx.await;
            }
            None => {
                tokio::spawn(write);
            }
        }
    }

    /// Stores `drafts` as one object after the chain's head, reading the objects other nodes
    /// put first when the position is taken.
    async fn put_group(
        &self,
        tenant: &str,
        head: &mut Option<Head>,
        drafts: &[AuditDraft],
    ) -> Result<()> {
        for _ in 0..TRIES {
            let at = match head.take() {
                Some(h) => h,
                None => self.read_head(tenant).await?,
            };
            let mut entries = Vec::with_capacity(drafts.len());
            let mut prev = at.clone();
            for d in drafts {
                let entry = d.seal(prev.seq + 1, &prev.hash);
                prev = Head { seq: entry.seq, hash: entry.hash.clone() };
                entries.push(entry);
            }
            let bytes = serde_json::to_vec(&entries)?;
            let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
            let path = self.object(tenant, at.seq + 1);
            match self.store.put_opts(&path, PutPayload::from(bytes), options).await {
                Ok(_) => {
                    *head = Some(prev);
                    return Ok(());
                }
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. },
                ) => *head = Some(self.catch_up(tenant, at).await?),
                Err(e) => return Err(Error::internal_from("audit log: storing", e)),
            }
        }
        Err(Error::Internal("audit log: the chain kept moving under this append".into()))
    }

    /// Every stored entry of a chain with the sequence number its position implies (the
    /// object's first sequence number, plus its index there), in order.
    async fn stored(&self, tenant: &str, from: u64) -> Result<Vec<(u64, Value)>> {
        let objects = self.objects(tenant).await?;
        // Objects whose successor starts at or before `from` hold nothing wanted.
        let skip = objects.iter().skip(1).take_while(|next| **next <= from).count();
        let mut out = Vec::new();
        for first in objects.into_iter().skip(skip) {
            if let Some(entries) = self.read(tenant, first).await? {
                out.extend(entries.into_iter().enumerate().map(|(i, e)| (first + i as u64, e)));
            }
        }
        Ok(out)
    }
}

impl Node {
    /// What request `op` with `args` is about, for its audit entry (core's rule,
    /// [`AuditSubject::of_request`]), with the tenants of the namespaces and keys it names
    /// read from the control plane now (before the request may delete them). `None` when the
    /// arguments do not decode (such a request is recorded only if refused).
    pub async fn audit_subject(&self, op: &str, args: &Value) -> Option<AuditSubject> {
        let req = Request::parse(op, args.clone()).ok()?;
        let asked = Mutex::new(Vec::new());
        AuditSubject::of_request(
            &req,
            |ns| {
                asked.lock().push(ns.to_owned());
                None
            },
            |_| None,
        );
        let mut tenants = HashMap::new();
        for ns in asked.into_inner() {
            let found = self.get(&self.ns_key("namespaces", &ns), None).await.ok();
            let tenant = found.and_then(|r| {
                let kv = r.kvs().first()?;
                let rec: Value = serde_json::from_slice(kv.value()).ok()?;
                rec.get("tenant_id").and_then(Value::as_str).map(str::to_owned)
            });
            tenants.insert(ns, tenant);
        }
        Some(AuditSubject::of_request(
            &req,
            |ns| tenants.get(ns).cloned().flatten(),
            |id| self.cached_key(id).and_then(|k| k.tenant_id),
        ))
    }

    /// Records the outcome of a request this node decided, as core does on one node: a
    /// control-plane action whatever its outcome (stored before the answer), any other
    /// request only when refused (`unauthorized`, `forbidden`, `quota_exceeded`,
    /// `rate_limited`; stored in the background). `caller` is who the key was (`None` when it
    /// did not authenticate: then `key` is the text sent, if any); `reply` the answer's body.
    #[allow(clippy::too_many_arguments)] // the parts of one request's outcome
    pub async fn audit(
        &self,
        op: &str,
        subject: Option<AuditSubject>,
        caller: Option<&Caller>,
        key: Option<&str>,
        request_id: &str,
        outcome: std::result::Result<Option<&Value>, ErrorCode>,
    ) {
        let mut subject =
            subject.unwrap_or(AuditSubject { tenant: None, target: None, control: false });
        let refused = outcome.is_err_and(memsilo::is_refusal);
        if !subject.control && !refused {
            return;
        }
        if let Ok(Some(reply)) = outcome {
            subject.complete(op, reply);
        }
        let (actor, key_tenant) = match caller {
            Some(Caller::Admin) => audit_actor(None, None),
            Some(Caller::Scoped(rec) | Caller::Member { key: rec, .. }) => {
                audit_actor(Some(rec), Some(&rec.id))
            }
            None => match key.and_then(|k| memsilo::auth::parse_external_key(k).ok()) {
                Some((id, _)) => {
                    let rec = self.cached_key(&id);
                    audit_actor(rec.as_ref(), Some(&id))
                }
                None => {
                    (AuditActor { principal: "anonymous".into(), ..AuditActor::default() }, None)
                }
            },
        };
        let draft = AuditDraft {
            time: chrono::Utc::now(),
            tenant_id: subject.tenant.or(key_tenant).unwrap_or_else(|| INSTANCE.to_owned()),
            actor,
            action: op.to_owned(),
            target: subject.target,
            outcome: outcome.map(drop),
            request_id: request_id.to_owned(),
        };
        self.audit.append(draft, subject.control).await;
    }

    /// Who may read a chain, as on one node: the `instance` log the admin key only; a
    /// tenant's, the admin key and the tenant's admins; `not_found` for a chain of no tenant.
    async fn audit_allowed(&self, caller: &Caller, tenant: &str) -> Result<()> {
        let principal = caller.principal();
        if tenant == INSTANCE {
            return authorize(&principal, Action::ManageTenants);
        }
        authorize(&principal, Action::AdministerTenant(Some(tenant)))?;
        if self.cached_tenant(tenant).is_some() || !self.audit.objects(tenant).await?.is_empty() {
            Ok(())
        } else {
            Err(Error::not_found("tenant", tenant))
        }
    }

    /// `list_audit`: a tenant's entries from any node, oldest first, filtered and paged by
    /// cursor (core's rules: [`ListAudit::bounds`], [`ListAudit::keeps`]).
    pub async fn list_audit(&self, caller: &Caller, args: Value) -> Result<Reply> {
        let Request::ListAudit(q) = Request::parse("list_audit", args)? else {
            return Err(Error::Internal("list_audit decoded as another operation".into()));
        };
        self.audit_allowed(caller, &q.tenant_id).await?;
        let (start, limit) = q.bounds()?;
        let mut entries = Vec::new();
        let mut next_cursor = None;
        for (_, value) in self.audit.stored(&q.tenant_id, start).await? {
            let Ok(entry) = serde_json::from_value::<AuditEntry>(value) else { continue };
            if entry.seq < start || !q.keeps(&entry) {
                continue;
            }
            if entries.len() as u64 == limit {
                next_cursor = Some(entry.seq.to_string());
                break;
            }
            entries.push(entry);
        }
        let page = AuditPage { tenant_id: q.tenant_id.clone(), entries, next_cursor };
        Ok(Reply { value: serde_json::to_value(page)?, total_count: None, next_cursor: None })
    }

    /// `verify_audit`: core's check ([`memsilo::verify_entries`]) over the chain's objects in
    /// order; an object removed from the middle is a missing entry, an edited entry breaks its
    /// hash or the next link. The chain's end is its last object: keep `head_hash` elsewhere
    /// to tell a chain cut short at its end.
    pub async fn verify_audit(&self, caller: &Caller, tenant: &str) -> Result<AuditVerification> {
        self.audit_allowed(caller, tenant).await?;
        let stored = self.audit.stored(tenant, 0).await?;
        let items = stored.into_iter().map(|(seq, value)| Ok((seq, serde_json::to_vec(&value)?)));
        memsilo::verify_entries(tenant, (0, GENESIS_HASH), None, items)
    }
}

/// The actor of a key (`None`: the admin key) and the tenant the key belongs to, as core
/// records them: `member` for a tenant key, `scoped` for a namespace key, `anonymous` for
/// a key the control plane does not know.
fn audit_actor(rec: Option<&KeyRecord>, key_id: Option<&str>) -> (AuditActor, Option<String>) {
    let Some(id) = key_id else {
        return (AuditActor { principal: "root".into(), ..AuditActor::default() }, None);
    };
    let principal = match rec {
        Some(k) if k.namespaces.is_empty() => "member",
        Some(_) => "scoped",
        None => "anonymous",
    };
    let actor = AuditActor {
        principal: principal.into(),
        key_id: Some(id.to_owned()),
        key_prefix: Some(memsilo::auth::display_prefix(id)),
        member_id: rec.and_then(|k| k.member_id.clone()),
    };
    (actor, rec.and_then(|k| k.tenant_id.clone()))
}
