//! Rotation of an encryption key, online: a tenant's own key, or the instance key.
//!
//! [`Handle::rotate_tenant_key`] makes the new key, and in one catalog transaction makes it
//! the tenant's key (environments made from then on are under it) and writes a durable
//! rotation record listing the tenant's environments still under the old key. The background
//! worker then rewrites each of them into a new file under the new key while the tenant keeps
//! reading and writing it (see [`crate::store::Store::rekey`]), records it `staged`, swaps the
//! files and records it `done`. When every environment is done, the rotation is `done` and the
//! old key's destruction is queued behind the purges (see `engine::purge`).
//!
//! A crash at any point leaves each environment wholly under one key, and the record says
//! which: `pending` (the old file is in place), `staged` (the new file is complete; if it is
//! still beside the old one the next open moves it into place before anything opens the
//! environment), `done`. On the next open the worker goes on from there: a rotation is always
//! finished, never left half done.
//!
//! The instance key's rotation ([`Handle::rotate_instance_key`]) is the same record, of scope
//! [`INSTANCE`] instead of a tenant id: its environments are every file under the old
//! instance key (found by the key each file records, see [`crate::encryption`]), and last the
//! catalog itself (`catalog`), rewritten by the same machinery once every other file is done.
//!
//! [`Handle::rotate_tenant_key`]: crate::Handle::rotate_tenant_key
//! [`Handle::rotate_instance_key`]: crate::Handle::rotate_instance_key

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::CatalogTables;
use crate::datastore::{EnvLocation, NamespaceId};
use crate::error::Result;
use crate::records::IsolationMode;
use crate::storage::RoTxn;

/// Catalog `meta` key prefix of rotation records (`key_rotation/<tenant id>`).
const RECORD_PREFIX: &str = "key_rotation/";

/// Catalog `meta` key of the instance key's rotation record (outside [`RECORD_PREFIX`]).
const INSTANCE_RECORD: &str = "instance_key_rotation";

/// The scope (in place of a tenant id) of the instance key's rotation. Tenant ids are never
/// empty.
pub(crate) const INSTANCE: &str = "";

#[cfg(test)]
thread_local! {
    /// Tests: run by the next start of an instance key rotation on this thread once the
    /// rotation is recorded, before the new key is made the instance key (what the worker
    /// does meanwhile).
    pub(crate) static RECORDED: std::cell::Cell<Option<Box<dyn FnOnce()>>> =
        const { std::cell::Cell::new(None) };
}

/// Where a rotation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RotationState {
    /// Environments are being rewritten under the new key.
    Rewriting,
    /// Every environment is under the new key; the old key is destroyed.
    Done,
}

/// A tenant's key rotation, as [`Handle::rotate_tenant_key`] and [`Handle::key_rotation`]
/// report it.
///
/// [`Handle::rotate_tenant_key`]: crate::Handle::rotate_tenant_key
/// [`Handle::key_rotation`]: crate::Handle::key_rotation
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct KeyRotation {
    /// The tenant.
    pub tenant_id: String,
    /// The key the data was under (`None`: the instance key, which is never destroyed).
    pub old_key_id: Option<String>,
    /// The tenant's key now.
    pub new_key_id: String,
    /// Where the rotation stands.
    pub state: RotationState,
    /// The tenant's environments (files) to rewrite.
    pub environments_total: u64,
    /// Those under the new key already.
    pub environments_done: u64,
    /// When it was asked for.
    pub started_at: DateTime<Utc>,
    /// When the last environment was done.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Where one environment stands in a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum EnvState {
    /// Under the old key.
    Pending,
    /// Its new file, under the new key, is complete; it replaces the old one.
    Staged,
    /// Under the new key.
    Done,
}

/// The instance key's rotation, as [`Handle::rotate_instance_key`] and
/// [`Handle::instance_key_rotation`] report it.
///
/// [`Handle::rotate_instance_key`]: crate::Handle::rotate_instance_key
/// [`Handle::instance_key_rotation`]: crate::Handle::instance_key_rotation
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InstanceKeyRotation {
    /// The instance key before.
    pub old_key_id: String,
    /// The instance key now: the key of every file made since the rotation began.
    pub new_key_id: String,
    /// Where the rotation stands.
    pub state: RotationState,
    /// The files to rewrite: every environment that was under the old key, and the catalog.
    pub environments_total: u64,
    /// Those under the new key already.
    pub environments_done: u64,
    /// When it was asked for.
    pub started_at: DateTime<Utc>,
    /// When the last file was done.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<KeyRotation> for InstanceKeyRotation {
    fn from(r: KeyRotation) -> InstanceKeyRotation {
        InstanceKeyRotation {
            old_key_id: r.old_key_id.unwrap_or_default(),
            new_key_id: r.new_key_id,
            state: r.state,
            environments_total: r.environments_total,
            environments_done: r.environments_done,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

/// The durable record of a rotation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RotationRecord {
    /// Its `tenant_id` is [`INSTANCE`] for the instance key's.
    pub rotation: KeyRotation,
    pub environments: Vec<(EnvLocation, EnvState)>,
    /// The instance key's rotation: where the catalog stands (rewritten last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<EnvState>,
    /// The instance key's rotation: its environments are still to be listed (the rotation
    /// was recorded, then the process stopped before it listed them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unlisted: bool,
}

impl RotationRecord {
    pub(crate) fn count_done(&mut self) {
        let catalog = self.catalog.iter().filter(|s| **s == EnvState::Done).count();
        self.rotation.environments_done =
            (self.environments.iter().filter(|(_, s)| *s == EnvState::Done).count() + catalog)
                as u64;
        self.rotation.environments_total =
            (self.environments.len() + usize::from(self.catalog.is_some())) as u64;
    }
}

fn record_key(tenant_id: &str) -> String {
    if tenant_id == INSTANCE {
        return INSTANCE_RECORD.to_owned();
    }
    format!("{RECORD_PREFIX}{tenant_id}")
}

pub(crate) fn get_record(
    t: &CatalogTables,
    r: &mut RoTxn<'_>,
    tenant_id: &str,
) -> Result<Option<RotationRecord>> {
    if !crate::catalog::can_be_key(&record_key(tenant_id)) {
        return Ok(None);
    }
    match t.meta.get(r, &record_key(tenant_id))? {
        Some(bytes) => Ok(Some(serde_json::from_slice(bytes)?)),
        None => Ok(None),
    }
}

pub(crate) fn put_record(
    t: &CatalogTables,
    w: &mut heed3::RwTxn<'_>,
    rec: &RotationRecord,
) -> Result<()> {
    t.meta.put(w, &record_key(&rec.rotation.tenant_id), &serde_json::to_vec(rec)?)?;
    Ok(())
}

/// Every rotation record (the instance key's first).
pub(crate) fn all_records(t: &CatalogTables, r: &mut RoTxn<'_>) -> Result<Vec<RotationRecord>> {
    let mut out = Vec::new();
    out.extend(get_record(t, r, INSTANCE)?);
    for entry in t.meta.prefix_iter(r, RECORD_PREFIX)? {
        let (_, bytes) = entry?;
        out.push(serde_json::from_slice(bytes)?);
    }
    Ok(out)
}

/// The instance key's id as the catalog knows it: the new key of its last rotation, or the
/// first instance key's id.
pub(crate) fn instance_key_id(t: &CatalogTables, r: &mut RoTxn<'_>) -> Result<String> {
    Ok(get_record(t, r, INSTANCE)?
        .map_or_else(|| crate::keyring::INSTANCE_KEY_ID.to_owned(), |rec| rec.rotation.new_key_id))
}

/// Removes a deleted tenant's rotation record, inside the deletion's transaction; returns the
/// key an unfinished rotation was moving away from (to be destroyed with the tenant's).
pub(crate) fn forget_tenant(
    t: &CatalogTables,
    w: &mut heed3::RwTxn<'_>,
    tenant_id: &str,
) -> Result<Option<String>> {
    let Some(rec) = get_record(t, w, tenant_id)? else { return Ok(None) };
    t.meta.delete(w, &record_key(tenant_id))?;
    Ok(match rec.rotation.state {
        RotationState::Rewriting => rec.rotation.old_key_id,
        RotationState::Done => None,
    })
}

/// Key ids a rotation still uses: the old key of an unfinished one and every new key.
pub(crate) fn key_ids_in_use(t: &CatalogTables, r: &mut RoTxn<'_>) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for rec in all_records(t, r)? {
        if rec.rotation.state == RotationState::Rewriting {
            ids.extend(rec.rotation.old_key_id);
            ids.push(rec.rotation.new_key_id);
        }
    }
    Ok(ids)
}

/// The tenant's own environments, with the namespaces whose rows each holds: its file
/// (`hybrid`) or each namespace's (`physical`).
pub(crate) fn tenant_environments(
    t: &CatalogTables,
    r: &mut RoTxn<'_>,
    tenant_id: &str,
    mode: IsolationMode,
) -> Result<Vec<(EnvLocation, Vec<NamespaceId>)>> {
    let prefix = format!("{tenant_id}/");
    let names: Vec<String> = t
        .tenant_namespaces
        .prefix_iter(r, &prefix)?
        .map(|e| e.map(|(k, _)| k[prefix.len()..].to_owned()))
        .collect::<heed3::Result<_>>()?;
    let mut namespaces = Vec::new();
    for name in names {
        if let Some(rec) = t.namespaces.get(r, &name)? {
            namespaces.push(rec);
        }
    }
    Ok(match mode {
        IsolationMode::Logical => Vec::new(),
        IsolationMode::Hybrid => vec![(
            EnvLocation::Tenant { tenant_id: tenant_id.to_owned() },
            namespaces.iter().map(|n| n.id).collect(),
        )],
        IsolationMode::Physical => {
            namespaces.into_iter().map(|n| (n.location, vec![n.id])).collect()
        }
    })
}

/// Records environment `loc` of a rotation in `state`.
pub(crate) fn set_state(rec: &mut RotationRecord, loc: &EnvLocation, state: EnvState) {
    for (l, s) in &mut rec.environments {
        if l == loc {
            *s = state;
        }
    }
    rec.count_done();
}

/// The namespaces whose rows environment `loc` holds now (a shard's: a scan of the
/// namespaces; a shard is one of a few).
pub(crate) fn namespaces_at(
    t: &CatalogTables,
    r: &mut RoTxn<'_>,
    loc: &EnvLocation,
) -> Result<Vec<NamespaceId>> {
    Ok(match loc {
        EnvLocation::Namespace { id } => vec![*id],
        EnvLocation::Tenant { tenant_id } => {
            tenant_environments(t, r, tenant_id, IsolationMode::Hybrid)?
                .into_iter()
                .flat_map(|(_, ns)| ns)
                .collect()
        }
        EnvLocation::Shard { .. } => {
            let mut ids = Vec::new();
            for entry in t.namespaces.iter(r)? {
                let (_, rec) = entry?;
                if rec.location == *loc {
                    ids.push(rec.id);
                }
            }
            ids
        }
    })
}
