//! Namespaces: each a complete, isolated memory store with its own vectors, graph and decay
//! policy. Created in one catalog transaction; deleted atomically (see `engine::purge`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::catalog::{
    next_counter, set_tenant_namespace_count, tenant_namespace_count, tenant_ns_key, CatalogTables,
};
use crate::datastore::{EnvLocation, NamespaceId, NamespaceStats};
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
///
/// [`Handle::create_namespace`]: crate::Handle::create_namespace
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

/// One page of namespaces, gathered in name order from the names offered.
pub(crate) struct Pager<'a> {
    is_dead: &'a dyn Fn(NamespaceId) -> bool,
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
    /// A pager skipping the namespaces `is_dead` tells (`none_dead`: it tells none).
    pub(crate) fn new(
        is_dead: &'a dyn Fn(NamespaceId) -> bool,
        none_dead: bool,
        offset: usize,
        limit: usize,
        after: Option<&'a str>,
    ) -> Self {
        Pager {
            is_dead,
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
        if (self.is_dead)(rec.id) {
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
