//! The control plane's tables: tenants, members, namespaces, keys, pending purges and the audit
//! log, all in one LMDB environment so that every control-plane change (and its audit entry)
//! is one transaction.

use heed3::byteorder::BigEndian;
use heed3::types::{Bytes, SerdeJson, Str, U64};

use crate::datastore::EnvLocation;
use crate::error::Result;
use crate::records::{AuditTables, KeyRecord, Member, NamespaceRecord, PurgeJob, Tenant};
use crate::storage::{Environment, RoTxn, Table};
use crate::store::{NamespacedTables, Store, Tables};

/// Catalog tables. Composite keys use `/` as separator; every part before it is a UUID or
/// `-`, so prefix scans cannot run into a neighbour.
pub(crate) struct CatalogTables {
    /// tenant id → tenant.
    pub tenants: Table<Str, SerdeJson<Tenant>>,
    /// tenant name → tenant id.
    pub tenant_names: Table<Str, Str>,
    /// `tenant_id/member_id` → member.
    pub members: Table<Str, SerdeJson<Member>>,
    /// `tenant_id/user_identifier` → member id.
    pub member_users: Table<Str, Str>,
    /// namespace name → namespace.
    pub namespaces: Table<Str, SerdeJson<NamespaceRecord>>,
    /// `tenant_id/namespace name` (`-/name` for tenant-less namespaces) → ().
    pub tenant_namespaces: Table<Str, Bytes>,
    /// key id → key.
    pub keys: Table<Str, SerdeJson<KeyRecord>>,
    /// namespace id → purge still to do.
    pub purges: Table<U64<BigEndian>, SerdeJson<PurgeJob>>,
    /// counters and settings.
    pub meta: Table<Str, Bytes>,
    /// The audit log's entries and chain heads.
    pub audit: AuditTables,
}

impl Tables for CatalogTables {
    const MAX_DBS: u32 = 16;

    fn create(env: &Environment) -> Result<Self> {
        let [tenants, tenant_names, members, member_users, namespaces, tenant_namespaces, keys, purges, meta, audit_entries, audit_heads] =
            env.create_tables([
                "tenants",
                "tenant_names",
                "members",
                "member_users",
                "namespaces",
                "tenant_namespaces",
                "keys",
                "purges",
                "meta",
                AuditTables::NAMES[0],
                AuditTables::NAMES[1],
            ])?;
        Ok(CatalogTables {
            tenants: tenants.remap_types(),
            tenant_names: tenant_names.remap_types(),
            members: members.remap_types(),
            member_users: member_users.remap_types(),
            namespaces: namespaces.remap_types(),
            tenant_namespaces: tenant_namespaces.remap_types(),
            keys: keys.remap_types(),
            purges: purges.remap_types(),
            meta: meta.remap_types(),
            audit: AuditTables::new(audit_entries.remap_types(), audit_heads.remap_types()),
        })
    }
}

impl CatalogTables {
    /// Every table, as raw bytes.
    fn raw_tables(&self) -> [Table<Bytes, Bytes>; 11] {
        [
            self.tenants.remap_types(),
            self.tenant_names.remap_types(),
            self.members.remap_types(),
            self.member_users.remap_types(),
            self.namespaces.remap_types(),
            self.tenant_namespaces.remap_types(),
            self.keys.remap_types(),
            self.purges.remap_types(),
            self.meta.remap_types(),
            self.audit.entries.remap_types(),
            self.audit.heads.remap_types(),
        ]
    }
}

/// The catalog is rewritten like a data environment when the instance key is rotated (see
/// `engine::rotation`). Its rows are of no namespace and its writes name none, so an online
/// rewrite copies it whole again under the write guard and never by namespace.
impl NamespacedTables for CatalogTables {
    fn copy_namespace(
        &self,
        _from: &Self,
        _rtxn: &mut RoTxn<'_>,
        _wtxn: &mut heed3::RwTxn<'_>,
        ns: crate::store::NamespaceId,
    ) -> Result<()> {
        Err(crate::error::Error::Internal(format!(
            "the catalog holds no rows of namespace #{ns}: it is copied whole"
        )))
    }

    fn copy_all(
        &self,
        from: &Self,
        rtxn: &mut RoTxn<'_>,
        wtxn: &mut heed3::RwTxn<'_>,
    ) -> Result<()> {
        for (to, from) in self.raw_tables().into_iter().zip(from.raw_tables()) {
            for row in from.iter(rtxn)? {
                let (key, value) = row?;
                // In key order into an empty table: appended, pages filled.
                to.put_with_flags(wtxn, heed3::PutFlags::APPEND, key, value)?;
            }
        }
        Ok(())
    }
}

/// LMDB refuses empty keys and keys over 511 bytes (`MDB_BAD_VALSIZE`); an identifier that
/// cannot be a key names nothing, so lookups answer "not found" for it instead of failing.
/// The tenant of namespace `name`, read from `catalog` (`None`: no tenant, no such namespace,
/// or the catalog not readable — for an audit subject, which must not fail its request).
pub(crate) fn namespace_tenant(catalog: &Store<CatalogTables>, name: &str) -> Option<String> {
    catalog.read(|r, t| Ok(t.namespaces.get(r, name)?.and_then(|n| n.tenant_id))).ok().flatten()
}

pub(crate) fn can_be_key(id: &str) -> bool {
    !id.is_empty() && id.len() <= 511
}

/// The `tenant_namespaces` key of a namespace.
pub(crate) fn tenant_ns_key(tenant_id: Option<&str>, name: &str) -> String {
    format!("{}/{name}", tenant_id.unwrap_or("-"))
}

/// The `meta` key of tenant `tid`'s namespace count (`None`: too long to be a key, so the
/// count is not kept).
fn tenant_ns_count_key(tid: &str) -> Option<String> {
    let key = format!("namespaces_of/{tid}");
    can_be_key(&key).then_some(key)
}

/// How many namespaces tenant `tid` holds itself (not its children's): the count kept beside
/// them, so that checking `max_namespaces` costs the same with a million of them, or, for a
/// tenant that has none or whose namespaces were made before the count was kept, counted.
pub(crate) fn tenant_namespace_count(
    t: &CatalogTables,
    r: &mut RoTxn<'_>,
    tid: &str,
) -> Result<u64> {
    if let Some(key) = tenant_ns_count_key(tid) {
        if let Some(n) = t.meta.get(r, &key)?.and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            return Ok(u64::from_be_bytes(n));
        }
    }
    let rows = t.tenant_namespaces.remap_data_type::<heed3::types::DecodeIgnore>();
    let mut n = 0;
    for item in rows.prefix_iter(r, &format!("{tid}/"))? {
        item?;
        n += 1;
    }
    Ok(n)
}

/// Stores tenant `tid`'s namespace count, in the transaction that adds or removes one of
/// them (none is stored for zero).
pub(crate) fn set_tenant_namespace_count(
    t: &CatalogTables,
    w: &mut heed3::RwTxn<'_>,
    tid: &str,
    n: u64,
) -> Result<()> {
    let Some(key) = tenant_ns_count_key(tid) else { return Ok(()) };
    if n == 0 {
        t.meta.delete(w, &key)?;
    } else {
        t.meta.put(w, &key, &n.to_be_bytes())?;
    }
    Ok(())
}

/// Reads a big-endian u64 counter from `meta`.
pub(crate) fn read_counter(t: &CatalogTables, rtxn: &mut RoTxn<'_>, name: &str) -> Result<u64> {
    Ok(t.meta
        .get(rtxn, name)?
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes))
}

/// Increments a counter in `meta` and returns the new value.
pub(crate) fn next_counter(
    t: &CatalogTables,
    wtxn: &mut heed3::RwTxn<'_>,
    name: &str,
) -> Result<u64> {
    let next = read_counter(t, wtxn, name)? + 1;
    t.meta.put(wtxn, name, &next.to_be_bytes())?;
    Ok(next)
}

/// Removes a namespace's routing and queues its purge, inside the caller's catalog
/// transaction. Nothing outside the transaction changes: once it has committed, the caller
/// retires the namespace (`State::retire_namespaces`).
pub(crate) fn unlink_namespace(
    t: &CatalogTables,
    w: &mut heed3::RwTxn<'_>,
    rec: &NamespaceRecord,
) -> Result<()> {
    t.namespaces.delete(w, &rec.name)?;
    if let Some(tid) = rec.tenant_id.as_deref() {
        let n = tenant_namespace_count(t, w, tid)?;
        set_tenant_namespace_count(t, w, tid, n.saturating_sub(1))?;
    }
    t.tenant_namespaces.delete(w, &tenant_ns_key(rec.tenant_id.as_deref(), &rec.name))?;
    let job = PurgeJob::Namespace { ns_id: rec.id, location: rec.location.clone() };
    let id = next_counter(t, w, "purge_job")?;
    t.purges.put(w, &id, &job)?;
    Ok(())
}

/// Queues removal of a whole environment, after the namespace jobs queued before it.
pub(crate) fn queue_env_removal(
    t: &CatalogTables,
    w: &mut heed3::RwTxn<'_>,
    location: EnvLocation,
) -> Result<()> {
    let id = next_counter(t, w, "purge_job")?;
    t.purges.put(w, &id, &PurgeJob::RemoveEnv { location })?;
    Ok(())
}

/// Queues destruction of encryption key `key_id`, after the jobs queued before it.
pub(crate) fn queue_key_destruction(
    t: &CatalogTables,
    w: &mut heed3::RwTxn<'_>,
    key_id: &str,
) -> Result<()> {
    let id = next_counter(t, w, "purge_job")?;
    t.purges.put(w, &id, &PurgeJob::DestroyKey { key_id: key_id.to_owned() })?;
    Ok(())
}
