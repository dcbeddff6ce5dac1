//! Tenants' own encryption keys in the key provider: made at a tenant's creation,
//! destroyed after its data (which key ids are taken is [`crate::tenant_keys`]'s).

use super::State;
use crate::error::{Error, Result};

impl State {
    /// The provider, or `invalid_argument` naming `encryption_key_id` when none is configured.
    pub(crate) fn key_provider(&self) -> Result<&dyn crate::KeyProvider> {
        self.keys.as_deref().ok_or_else(|| {
            Error::invalid(
                "encryption_key_id",
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

    /// Refuses to open a directory two of whose key ids in use the provider keeps in one
    /// place (an environment variable): `internal` naming both ids and the variable.
    pub(crate) fn check_key_locations(&self) -> Result<()> {
        let Some(keys) = self.keys.as_deref() else { return Ok(()) };
        let ids = self.catalog.read(|r, t| crate::tenant_keys::key_ids_in_use(t, r))?;
        match crate::keyring::shared_location(keys, ids.iter().map(String::as_str))? {
            Some(shared) => Err(Error::Internal(format!(
                "cannot open data directory {}: {shared}",
                self.dir.display()
            ))),
            None => Ok(()),
        }
    }
}
