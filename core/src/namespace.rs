//! Namespaces: each a complete, isolated memory store with its own vectors, graph and decay
//! policy. Created in one catalog transaction; deleted atomically (see `engine::purge`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::catalog::{
    can_be_key, next_counter, set_tenant_namespace_count, tenant_namespace_count, tenant_ns_key,
    CatalogTables,
};
use crate::datastore::{EnvLocation, NamespaceStats};
use crate::error::{Error, Result};
pub use crate::records::{validate_namespace_name, DecayPolicy, NamespaceRecord, MAX_DIMENSIONS};
use crate::storage::{scan_prefix, RoTxn};
use crate::tenant::{get_tenant, Counted, IsolationMode, TenantStatus};
use heed3::types::Bytes;

/// A namespace as callers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Namespace {
    /// Name.
    pub name: String,
    /// Owning tenant.
    pub tenant_id: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Live memories.
    pub memory_count: u64,
    /// Bytes charged to the namespace.
    pub storage_bytes: u64,
    /// Isolation mode.
    pub isolation_mode: IsolationMode,
    /// Decay policy.
    pub policy: DecayPolicy,
    /// Vector dimension (fixed at creation or by the first vector).
    pub dimensions: Option<u32>,
    /// Embedder that produced its text vectors, once one has.
    pub embedder: Option<String>,
    /// Entities in its graph.
    pub entity_count: u64,
    /// Relations in its graph.
    pub relation_count: u64,
}

/// Options of [`Handle::create_namespace`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NamespaceOptions {
    /// Owning tenant (a tenant admin's own tenant by default).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Decay policy (default: no decay, no TTL).
    #[serde(default)]
    pub policy: Option<DecayPolicy>,
    /// Fix the vector dimension now (otherwise the first vector fixes it).
    #[serde(default)]
    pub dimensions: Option<u32>,
    /// Return the existing namespace instead of `conflict` when the name is taken.
    #[serde(default)]
    pub exist_ok: bool,
}

/// The answer to a namespace deletion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DeletedNamespace {
    /// Name.
    pub name: String,
    /// When it stopped existing (its data is purged in the background from then on).
    pub deleted_at: DateTime<Utc>,
}

/// The answer for a namespace that is gone: only root learns `not_found`.
pub(crate) fn gone(principal: &Principal, name: &str) -> Error {
    match principal {
        Principal::Root => Error::not_found("namespace", name),
        _ => Error::namespace_forbidden(name),
    }
}

/// The description of namespace `rec` whose stats are `stats`.
pub(crate) fn namespace_view_with(rec: NamespaceRecord, stats: NamespaceStats) -> Namespace {
    Namespace {
        name: rec.name,
        tenant_id: rec.tenant_id,
        created_at: rec.created_at,
        memory_count: stats.memory_count,
        storage_bytes: stats.storage_bytes,
        isolation_mode: rec.isolation_mode,
        policy: rec.policy,
        dimensions: stats.dimensions.or(rec.dimensions),
        embedder: stats.embedder,
        entity_count: stats.entity_count,
        relation_count: stats.relation_count,
    }
}

/// A namespace creation checked outside the catalog transaction, run inside it (perhaps
/// more than once: see `Store::write`).
pub(crate) struct NamespaceCreation {
    pub(crate) name: String,
    pub(crate) tenant_id: Option<String>,
    pub(crate) policy: DecayPolicy,
    pub(crate) dimensions: Option<u32>,
    pub(crate) exist_ok: bool,
    pub(crate) now: DateTime<Utc>,
    pub(crate) shards: u32,
}

/// What a creation found in the catalog.
enum Checked {
    /// The namespace exists and `exist_ok` asks for it.
    Exists(NamespaceRecord),
    /// It is new, in this isolation mode.
    New(IsolationMode),
}

impl NamespaceCreation {
    /// Writes the namespace's record: the record and `true`, or the existing one and
    /// `false` (`exist_ok`).
    pub(crate) fn run(
        &self,
        w: &mut heed3::RwTxn<'_>,
        t: &CatalogTables,
    ) -> Result<(NamespaceRecord, bool)> {
        self.run_or_refuse(w, t)?
    }

    /// [`NamespaceCreation::run`], telling a refusal (a name taken, a tenant missing,
    /// inactive or at its quota: `Ok(Err(_))`, decided before anything is written) from a
    /// failure of the transaction.
    pub(crate) fn run_or_refuse(
        &self,
        w: &mut heed3::RwTxn<'_>,
        t: &CatalogTables,
    ) -> Result<Result<(NamespaceRecord, bool)>> {
        let mode = match self.check(w, t)? {
            Ok(Checked::Exists(existing)) => return Ok(Ok((existing, false))),
            Ok(Checked::New(mode)) => mode,
            Err(refused) => return Ok(Err(refused)),
        };
        self.write(w, t, mode).map(Ok)
    }

    /// Reads what decides the creation, writing nothing.
    fn check(&self, w: &mut heed3::RwTxn<'_>, t: &CatalogTables) -> Result<Result<Checked>> {
        let (name, tenant_id) = (&self.name, &self.tenant_id);
        if let Some(existing) = t.namespaces.get(w, name)? {
            if self.exist_ok && existing.tenant_id == *tenant_id {
                return Ok(Ok(Checked::Exists(existing)));
            }
            return Ok(Err(Error::Conflict(format!("namespace {name} already exists"))));
        }
        let Some(tid) = tenant_id else { return Ok(Ok(Checked::New(IsolationMode::Logical))) };
        let Ok(tenant) = get_tenant(t, w, tid) else {
            return Ok(Err(Error::invalid("tenant_id", format!("no tenant with id {tid}"))));
        };
        if tenant.status != TenantStatus::Active {
            return Ok(Err(Error::invalid("tenant_id", "tenant is not active")));
        }
        match crate::tenant::check_counted_quota(t, w, tid, Counted::Namespaces) {
            Ok(()) => Ok(Ok(Checked::New(tenant.isolation_mode))),
            Err(e @ Error::QuotaExceeded { .. }) => Ok(Err(e)),
            Err(e) => Err(e),
        }
    }

    /// Writes a new namespace in isolation mode `mode`.
    fn write(
        &self,
        w: &mut heed3::RwTxn<'_>,
        t: &CatalogTables,
        mode: IsolationMode,
    ) -> Result<(NamespaceRecord, bool)> {
        let (name, tenant_id) = (&self.name, &self.tenant_id);
        let id = next_counter(t, w, "namespace_id")?;
        let location = match (mode, tenant_id) {
            (IsolationMode::Hybrid, Some(tid)) => EnvLocation::Tenant { tenant_id: tid.clone() },
            (IsolationMode::Physical, _) => EnvLocation::Namespace { id },
            _ => EnvLocation::Shard { n: (id % u64::from(self.shards)) as u32 },
        };
        let rec = NamespaceRecord {
            id,
            name: name.clone(),
            tenant_id: tenant_id.clone(),
            created_at: self.now,
            policy: self.policy,
            dimensions: self.dimensions,
            isolation_mode: mode,
            location,
        };
        t.namespaces.put(w, name, &rec)?;
        if let Some(tid) = tenant_id {
            let n = tenant_namespace_count(t, w, tid)?;
            set_tenant_namespace_count(t, w, tid, n + 1)?;
        }
        t.tenant_namespaces.put(w, &tenant_ns_key(tenant_id.as_deref(), name), &[])?;
        Ok((rec, true))
    }

    /// For the audit entry: the tenant the namespace is in.
    pub(crate) fn made((rec, _): &(NamespaceRecord, bool)) -> (Option<String>, Option<String>) {
        (rec.tenant_id.clone(), None)
    }
}

/// First byte of a namespace list's cursor (a memory list's starts with its version, 1).
const NS_CURSOR: u8 = b'n';

/// The cursor of the namespace list's position just after `name`.
pub(crate) fn encode_ns_cursor(inner: &crate::engine::EngineInner, name: &str) -> Result<String> {
    let mut body = Vec::with_capacity(1 + name.len());
    body.push(NS_CURSOR);
    body.extend_from_slice(name.as_bytes());
    crate::listing::seal(inner, body)
}

/// The name a namespace list's cursor continues after.
pub(crate) fn decode_ns_cursor(inner: &crate::engine::EngineInner, text: &str) -> Result<String> {
    crate::listing::unseal(inner, text)?
        .filter(|b| b.first() == Some(&NS_CURSOR))
        .and_then(|b| String::from_utf8(b[1..].to_vec()).ok())
        .filter(|name| can_be_key(name))
        .ok_or_else(|| {
            Error::invalid(
                "cursor",
                "not a cursor of a namespace list (altered, or of another list)",
            )
        })
}

/// One page of namespaces, gathered in name order from the names offered.
pub(crate) struct Pager<'a> {
    inner: &'a crate::engine::EngineInner,
    offset: usize,
    limit: usize,
    /// The page starts after this name (a cursor's position).
    after: Option<&'a str>,
    /// Whether no namespace is being deleted (names can then be skipped unread).
    none_dead: bool,
    skipped: usize,
    pub(crate) page: Vec<NamespaceRecord>,
    /// A name was offered once the page was full: a next page may follow.
    pub(crate) more: bool,
    /// Names in the whole list.
    pub(crate) total: u64,
}

impl<'a> Pager<'a> {
    pub(crate) fn new(
        inner: &'a crate::engine::EngineInner,
        offset: usize,
        limit: usize,
        after: Option<&'a str>,
    ) -> Self {
        let none_dead = inner.dead.read().is_empty();
        Pager {
            inner,
            offset,
            limit,
            after,
            none_dead,
            skipped: 0,
            page: Vec::new(),
            more: false,
            total: 0,
        }
    }

    /// Takes namespace `name` into the page, unless it falls before the page (or after it).
    pub(crate) fn offer(&mut self, t: &CatalogTables, r: &mut RoTxn<'_>, name: &str) -> Result<()> {
        if self.more || self.after.is_some_and(|a| name <= a) {
            return Ok(());
        }
        if self.page.len() >= self.limit {
            self.more = true;
            return Ok(());
        }
        if self.none_dead && self.skipped < self.offset {
            self.skipped += 1;
            return Ok(());
        }
        let Some(rec) = t.namespaces.get(r, name)? else { return Ok(()) };
        if self.inner.is_dead(rec.id) {
            return Ok(());
        }
        if self.skipped < self.offset {
            self.skipped += 1;
        } else {
            self.page.push(rec);
        }
        Ok(())
    }

    /// Offers a tenant's namespaces (and counts them all, keys only).
    pub(crate) fn tenant(
        &mut self,
        t: &CatalogTables,
        r: &mut RoTxn<'_>,
        tenant_id: &str,
    ) -> Result<()> {
        let prefix = format!("{tenant_id}/");
        let keys = t.tenant_namespaces.remap_types::<Bytes, Bytes>();
        scan_prefix(&keys, r, prefix.as_bytes(), |r, k, _| {
            self.total += 1;
            self.offer(t, r, std::str::from_utf8(&k[prefix.len()..]).map_err(not_utf8)?)?;
            Ok(true)
        })
    }
}

/// A catalog key that is not UTF-8 (keys are written from `&str`: a damaged file).
pub(crate) fn not_utf8(e: std::str::Utf8Error) -> Error {
    Error::internal_from("catalog key is not UTF-8", e)
}

impl crate::engine::EngineInner {
    /// A namespace's counters from its data environment.
    pub(crate) fn namespace_stats(&self, rec: &NamespaceRecord) -> Result<NamespaceStats> {
        let env = self.data_env_of(rec)?;
        env.read(|r, t| t.stats_of(r, rec.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::NamespaceAction;
    use crate::keys::CreateKey;
    use crate::page::Page;
    use crate::tenant::{CreateTenant, QuotasPatch};
    use crate::{Engine, Options, Role, StoreMemory};

    /// Namespace creations awaited together (as the HTTP server awaits them) are queued
    /// without a thread each and share one catalog commit, each with its audit entry. A
    /// taken name and an unknown tenant, refused inside that commit, fail alone, their
    /// entries written by the same commit; a bad field is refused before anything is queued.
    /// Every outcome is in the audit log.
    #[test]
    fn awaited_creations_commit_together_and_fail_alone() {
        use std::future::Future;
        use std::task::{Context, Waker};
        let dir = tempfile::tempdir().unwrap();
        let engine =
            Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
        let root = engine.root();
        let catalog = engine.inner.catalog.clone();
        // A running catalog write holds the environment until the creations are queued.
        let held = crate::store::tests::HeldWrite::start(&catalog, |w, c| {
            Ok(c.meta.put(w, "held", b"1")?)
        });
        let before = catalog.commits();
        let mut args: Vec<_> =
            (0..16).map(|i| serde_json::json!({ "name": format!("t-{i}") })).collect();
        args.push(serde_json::json!({ "name": "t-3" }));
        args.push(serde_json::json!({ "name": "u", "tenant_id": "no-such-tenant" }));
        args.push(serde_json::json!({ "name": "d", "dimensions": 0 }));
        let mut futures: Vec<_> = args
            .into_iter()
            .map(|a| Box::pin(root.call_encoded_async("create_namespace", a)))
            .collect();
        let mut cx = Context::from_waker(Waker::noop());
        for f in &mut futures {
            assert!(f.as_mut().poll(&mut cx).is_pending(), "nothing is committed yet");
        }
        // Sixteen creations, the duplicate, the unknown tenant, and the entry of the
        // creation refused before its write.
        assert_eq!(catalog.queued(), 19, "queued without a thread each");
        held.release();
        let results: Vec<_> = futures.into_iter().map(crate::store::tests::block_on).collect();
        for (i, r) in results[..16].iter().enumerate() {
            let body: serde_json::Value =
                serde_json::from_slice(&r.as_ref().unwrap().body).unwrap();
            assert_eq!(body["name"], format!("t-{i}"));
        }
        let codes: Vec<_> = results[16..].iter().map(|r| r.as_ref().unwrap_err()).collect();
        assert_eq!(codes[0].code(), crate::ErrorCode::Conflict);
        assert!(matches!(codes[1], Error::InvalidArgument { field, .. } if field == "tenant_id"));
        assert!(matches!(codes[2], Error::InvalidArgument { field, .. } if field == "dimensions"));
        // One commit for the whole group: the creations refused in it wrote their entries in
        // it, as the others did, and nothing else.
        assert_eq!(catalog.commits() - before, 2, "the held write, then the group");
        let names = root.list_namespaces(Page { offset: None, limit: Some(100) }, None).unwrap();
        let mut names: Vec<_> = names.items.into_iter().map(|n| n.name).collect();
        names.sort();
        let mut expected: Vec<_> = (0..16).map(|i| format!("t-{i}")).collect();
        expected.sort();
        assert_eq!(names, expected, "the refused creations left nothing");
        let query = crate::audit::ListAudit {
            tenant_id: "instance".into(),
            action: Some("create_namespace".into()),
            limit: Some(100),
            ..Default::default()
        };
        let entries = root.list_audit(query).unwrap().entries;
        let ok = entries.iter().filter(|e| e.result == "ok").count();
        // The creation for an unknown tenant is recorded in that tenant's log.
        assert_eq!((ok, entries.len()), (16, 18), "every outcome is recorded");
    }

    /// A tenant's namespace count is kept beside its namespaces, in the transactions that
    /// add and remove them, so `max_namespaces` is checked without counting them; a catalog
    /// without the count (namespaces made before it was kept) is counted, and the count is
    /// kept again from its next change.
    #[test]
    fn a_tenants_namespace_count_is_kept_or_counted() {
        let dir = tempfile::tempdir().unwrap();
        let engine =
            Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
        let root = engine.root();
        let quotas = QuotasPatch { max_namespaces: Some(3), ..Default::default() };
        let req =
            CreateTenant { name: "counted".into(), quotas: Some(quotas), ..Default::default() };
        let tid = root.create_tenant(req).unwrap().tenant.id;
        let opts = || NamespaceOptions { tenant_id: Some(tid.clone()), ..Default::default() };
        let key = format!("namespaces_of/{tid}");
        let kept = || {
            let bytes =
                engine.inner.catalog.read(|r, t| Ok(t.meta.get(r, &key)?.map(<[u8]>::to_vec)));
            bytes.unwrap().map(|b| u64::from_be_bytes(b.try_into().unwrap()))
        };
        let usage = || root.get_tenant(&tid).unwrap().usage.namespaces;
        let refused = |name: &str| root.create_namespace(name, opts()).unwrap_err().code();
        for name in ["a", "b", "c"] {
            root.create_namespace(name, opts()).unwrap();
        }
        assert_eq!((kept(), usage()), (Some(3), 3));
        assert_eq!(refused("d"), crate::ErrorCode::QuotaExceeded);
        // As written before the count was kept.
        engine.inner.catalog.write(|w, t| Ok(t.meta.delete(w, &key)?)).unwrap();
        assert_eq!((kept(), usage()), (None, 3), "counted");
        assert_eq!(refused("d"), crate::ErrorCode::QuotaExceeded);
        root.delete_namespace("a").unwrap();
        assert_eq!(kept(), Some(2), "kept again from the deletion on");
        root.create_namespace("d", opts()).unwrap();
        assert_eq!((kept(), usage()), (Some(3), 3));
        assert_eq!(refused("e"), crate::ErrorCode::QuotaExceeded);
        for name in ["b", "c", "d"] {
            root.delete_namespace(name).unwrap();
        }
        assert_eq!((kept(), usage()), (None, 0), "none kept for none");
    }

    /// Item 4 of issue 14, made deterministic: a retried delete that was authorised on one
    /// namespace runs after that namespace was deleted and its name taken by another tenant.
    #[test]
    fn a_delete_authorised_on_one_namespace_never_removes_its_namesake() {
        let dir = tempfile::tempdir().unwrap();
        let engine =
            Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
        let root = engine.root();
        let admin_of = |name: &str| {
            let quotas = QuotasPatch { qps_limit: Some(1_000_000), ..Default::default() };
            let req =
                CreateTenant { name: name.into(), quotas: Some(quotas), ..Default::default() };
            let tid = root.create_tenant(req).unwrap().tenant.id;
            let key = root.create_key(CreateKey::tenant_role("a", &tid, Role::Admin)).unwrap();
            (tid, engine.scoped(&key.key).unwrap())
        };
        let ((_, a), (b_id, b)) = (admin_of("tenant_a"), admin_of("tenant_b"));
        a.create_namespace("contested", NamespaceOptions::default()).unwrap();
        // The retried delete has been authorised on A's namespace...
        let caller = a.caller().unwrap();
        let stale = a.namespace_for(&caller, "contested", NamespaceAction::Manage).unwrap();
        // ...when the first delete removes it and B takes the name.
        a.delete_namespace("contested").unwrap();
        b.create_namespace("contested", NamespaceOptions::default()).unwrap();
        let memory = StoreMemory { namespace: Some("contested".into()), ..StoreMemory::text("b") };
        b.store_memory(memory).unwrap();
        let used = root.get_tenant(&b_id).unwrap().usage.storage_bytes;

        let err = a.remove_namespace(&caller, &stale).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::Forbidden);
        let ns = b.get_namespace("contested").unwrap();
        assert_eq!((ns.tenant_id.as_deref(), ns.memory_count), (Some(b_id.as_str()), 1));
        assert_eq!(root.get_tenant(&b_id).unwrap().usage.storage_bytes, used);
    }
}
