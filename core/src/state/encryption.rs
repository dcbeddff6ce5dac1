//! Which key opens which environment: one rule, [`State::key_for`] (see
//! [`crate::encryption`] for what each environment is under).

use super::State;
use crate::datastore::EnvLocation;
use crate::encryption::{read_key_record, write_key_record, EnvKey};
use crate::error::{Error, Result};
use crate::keyring::INSTANCE_KEY_ID;

impl State {
    /// The key that opens the environment at `loc` (`None`: plain). `tenant` is the tenant of
    /// a `physical` namespace, needed when its environment is created.
    pub(crate) fn key_for(
        &self,
        loc: &EnvLocation,
        tenant: Option<&str>,
    ) -> Result<Option<EnvKey>> {
        let tenant = match loc {
            EnvLocation::Shard { .. } => return Ok(self.instance_key.clone()),
            EnvLocation::Tenant { tenant_id } => Some(tenant_id.as_str()),
            EnvLocation::Namespace { .. } => tenant,
        };
        let dir = loc.dir(&self.dir);
        if let Some((key_id, tenant_id)) = read_key_record(&dir)? {
            return self.resolve_key(&key_id, &tenant_id).map(Some);
        }
        // No record: an environment created plain or with the instance key, or a new one.
        if dir.join("data.mdb").exists() {
            return Ok(self.instance_key.clone());
        }
        let own = match tenant {
            Some(tid) => self.catalog.read(|r, t| {
                Ok(t.tenants.get(r, tid)?.and_then(|tenant| tenant.encryption_key_id))
            })?,
            None => None,
        };
        let key = match (own, tenant) {
            (Some(id), Some(tid)) => Some(self.resolve_key(&id, tid)?),
            _ => self.instance_key.clone(),
        };
        if let (Some(key), Some(tid)) = (&key, tenant) {
            write_key_record(&dir, &key.id, tid)?;
        }
        Ok(key)
    }

    /// Key `id` of tenant `tenant` from the key provider, for a file about to be written under
    /// it (a key rotation's new file).
    pub(crate) fn tenant_env_key(&self, id: &str, tenant: &str) -> Result<EnvKey> {
        self.resolve_key(id, tenant)
    }

    /// Key `id` of `tenant` from the key provider (the instance key for [`INSTANCE_KEY_ID`]).
    fn resolve_key(&self, id: &str, tenant: &str) -> Result<EnvKey> {
        let owner = format!("tenant {tenant}");
        if id == INSTANCE_KEY_ID {
            return self.instance_key.clone().ok_or_else(|| Error::EncryptionKey {
                owner,
                key_id: id.into(),
                problem: "is needed and the data directory has no instance key".into(),
            });
        }
        let Some(keys) = self.keys.as_deref() else {
            return Err(Error::EncryptionKey {
                owner,
                key_id: id.into(),
                problem: "is needed and no key provider is configured (--keyring or \
                          MEMSILO_KEYRING)"
                    .into(),
            });
        };
        match keys.get(id)? {
            Some(key) => Ok(EnvKey { owner, id: id.into(), key }),
            None => Err(Error::EncryptionKey {
                owner,
                key_id: id.into(),
                problem: format!("is not in {}", keys.describe()),
            }),
        }
    }
}
