//! Tenants' own encryption keys: which key ids are taken, making a tenant's key at its
//! creation and destroying it after its data (crypto-shredding).

use crate::catalog::CatalogTables;
use crate::error::{Error, Result};
use crate::keyring::{shared_location, KeyProvider, INSTANCE_KEY_ID};
use crate::records::PurgeJob;
use crate::storage::RoTxn;

/// `conflict` when key `id` belongs to another tenant, or is waiting to be destroyed (a
/// deleted tenant's), or is kept in `keys` where a key in use is (two ids that one
/// environment variable holds): two tenants never share a key, so destroying one's never
/// shreds the other's data.
pub(crate) fn check_key_unused(
    t: &CatalogTables,
    r: &mut RoTxn<'_>,
    keys: &dyn KeyProvider,
    id: &str,
) -> Result<()> {
    let uses = key_uses(t, r)?;
    for (used, by) in &uses {
        let taken = match by {
            _ if used != id => continue,
            // `instance` itself is refused by name, as a tenant's key id.
            KeyUse::Instance if used == INSTANCE_KEY_ID => continue,
            KeyUse::Instance => "is the instance key".to_owned(),
            KeyUse::Tenant(name) => {
                format!("is the key of tenant {name}; each tenant has a key of its own")
            }
            KeyUse::Rotation => "is in use by a key rotation under way".to_owned(),
            KeyUse::Destroying => "belonged to a deleted tenant and is being destroyed".to_owned(),
        };
        return Err(Error::Conflict(format!("encryption_key_id: key {id} {taken}")));
    }
    match shared_location(keys, uses.iter().map(|(used, _)| used.as_str()).chain([id]))? {
        Some(shared) => Err(Error::Conflict(format!("encryption_key_id: {shared}"))),
        None => Ok(()),
    }
}

/// What holds a key id (see [`key_uses`]).
enum KeyUse {
    Instance,
    /// The tenant of this name.
    Tenant(String),
    /// A key rotation under way.
    Rotation,
    /// A deleted tenant's key, waiting to be destroyed.
    Destroying,
}

/// Every key id the directory uses, with what uses it, in one read of the catalog: the
/// instance key's (the first one's id, reserved, and the current one's), the tenants', those of key rotations under way, and those waiting to be
/// destroyed.
fn key_uses(t: &CatalogTables, r: &mut RoTxn<'_>) -> Result<Vec<(String, KeyUse)>> {
    let mut uses = vec![(INSTANCE_KEY_ID.to_owned(), KeyUse::Instance)];
    let instance = crate::rotation::instance_key_id(t, r)?;
    if instance != INSTANCE_KEY_ID {
        uses.push((instance, KeyUse::Instance));
    }
    for entry in t.tenants.iter(r)? {
        let (_, tenant) = entry?;
        if let Some(id) = tenant.encryption_key_id {
            uses.push((id, KeyUse::Tenant(tenant.name)));
        }
    }
    let rotating = crate::rotation::key_ids_in_use(t, r)?;
    uses.extend(rotating.into_iter().map(|id| (id, KeyUse::Rotation)));
    for entry in t.purges.iter(r)? {
        if let (_, PurgeJob::DestroyKey { key_id }) = entry? {
            uses.push((key_id, KeyUse::Destroying));
        }
    }
    Ok(uses)
}

/// Every key id the directory uses (see [`key_uses`]).
pub(crate) fn key_ids_in_use(t: &CatalogTables, r: &mut RoTxn<'_>) -> Result<Vec<String>> {
    Ok(key_uses(t, r)?.into_iter().map(|(id, _)| id).collect())
}
