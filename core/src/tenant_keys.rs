//! Tenants' own encryption keys: which key ids are taken, making a tenant's key at its
//! creation and destroying it after its data (crypto-shredding).

use crate::catalog::CatalogTables;
use crate::engine::EngineInner;
use crate::error::{Error, Result};
use crate::records::PurgeJob;
use crate::storage::RoTxn;

/// The field every tenant-key error names.
const FIELD: &str = "encryption_key_id";

/// `conflict` when key `id` belongs to another tenant, or is waiting to be destroyed (a
/// deleted tenant's): two tenants never share a key, so destroying one's never shreds the
/// other's data.
pub(crate) fn check_key_unused(t: &CatalogTables, r: &mut RoTxn<'_>, id: &str) -> Result<()> {
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
    Ok(())
}

impl EngineInner {
    /// The provider, or `invalid_argument` naming `encryption_key_id` when none is configured.
    pub(crate) fn key_provider(&self) -> Result<&dyn crate::KeyProvider> {
        self.keys.as_deref().ok_or_else(|| {
            Error::invalid(
                FIELD,
                "a keyring is needed for a tenant's own key: open with a keyring (--keyring DIR \
                 or MEMSILO_KEYRING; keyring= in the bindings)",
            )
        })
    }

    /// Makes sure key `id` exists for a new tenant: `(id, true)` when it was created now
    /// (and is to be destroyed again if the tenant is not), `(id, false)` when the provider
    /// had it already.
    pub(crate) fn tenant_key(&self, id: &str) -> Result<(String, bool)> {
        let keys = self.key_provider()?;
        if keys.get(id)?.is_some() {
            return Ok((id.to_owned(), false));
        }
        match keys.create(id) {
            Ok(_) => Ok((id.to_owned(), true)),
            Err(Error::Conflict(_)) => Ok((id.to_owned(), false)),
            Err(e) => Err(e),
        }
    }

    /// Destroys key `id` (a deleted tenant's, once its data is purged).
    pub(crate) fn destroy_key(&self, id: &str) -> Result<()> {
        let keys = self.keys.as_deref().ok_or_else(|| {
            Error::Internal(format!(
                "key {id} of a deleted tenant cannot be destroyed: no keyring is configured"
            ))
        })?;
        keys.destroy(id)?;
        tracing::info!("destroyed key {id} in {}", keys.describe());
        Ok(())
    }
}
