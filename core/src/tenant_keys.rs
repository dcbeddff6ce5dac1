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
    for entry in t.tenants.iter(r)? {
        let (_, tenant) = entry?;
        if tenant.encryption_key_id.as_deref() == Some(id) {
            return Err(Error::Conflict(format!(
                "encryption_key_id: key {id} is the key of tenant {}; each tenant has a key of its own",
                tenant.name
            )));
        }
    }
    if crate::rotation::key_ids_in_use(t, r)?.iter().any(|k| k == id) {
        return Err(Error::Conflict(format!(
            "encryption_key_id: key {id} is in use by a key rotation under way"
        )));
    }
    for entry in t.purges.iter(r)? {
        if let (_, PurgeJob::DestroyKey { key_id }) = entry? {
            if key_id == id {
                return Err(Error::Conflict(format!(
                    "encryption_key_id: key {id} belonged to a deleted tenant and is being destroyed"
                )));
            }
        }
    }
    let used = key_ids_in_use(t, r)?;
    match shared_location(keys, used.iter().map(String::as_str).chain([id]))? {
        Some(shared) => Err(Error::Conflict(format!("encryption_key_id: {shared}"))),
        None => Ok(()),
    }
}

/// Every key id the directory uses: the instance key's, the tenants', those of key rotations
/// under way, and those waiting to be destroyed.
pub(crate) fn key_ids_in_use(t: &CatalogTables, r: &mut RoTxn<'_>) -> Result<Vec<String>> {
    let mut ids = vec![INSTANCE_KEY_ID.to_owned()];
    for entry in t.tenants.iter(r)? {
        ids.extend(entry?.1.encryption_key_id);
    }
    ids.extend(crate::rotation::key_ids_in_use(t, r)?);
    for entry in t.purges.iter(r)? {
        if let (_, PurgeJob::DestroyKey { key_id }) = entry? {
            ids.push(key_id);
        }
    }
    Ok(ids)
}
