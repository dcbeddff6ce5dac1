//! Which key opens which environment: one rule, [`State::key_for`] (see
//! [`crate::encryption`] for what each environment is under).

use super::State;
use crate::datastore::EnvLocation;
use crate::encryption::{read_key_record, write_key_record, EnvKey};
use crate::error::{Error, Result};
use crate::keyring::INSTANCE_KEY_ID;
use crate::storage::{Cipher, PageKey};

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
        if let Some(rec) = read_key_record(&dir)? {
            return self.resolve_key(&rec.key_id, &rec.tenant_id, rec.cipher).map(Some);
        }
        // No record: an environment created plain or with the instance key (under the data
        // directory's cipher), or a new one.
        if dir.join("data.mdb").exists() {
            return Ok(self.instance_key.clone());
        }
        let own = match tenant {
            Some(tid) => self.catalog.read(|r, t| {
                Ok(t.tenants.get(r, tid)?.and_then(|tenant| tenant.encryption_key_id))
            })?,
            None => None,
        };
        // A new environment with a record of its own is made with the cipher of new
        // environments (the record says so); one without stays with the directory's.
        let key = match (own, tenant) {
            (Some(id), Some(tid)) => Some(self.resolve_key(&id, tid, Cipher::NEW)?),
            (None, Some(tid)) if self.instance_key.is_some() => {
                Some(self.resolve_key(INSTANCE_KEY_ID, tid, Cipher::NEW)?)
            }
            _ => self.instance_key.clone(),
        };
        if let (Some(key), Some(tid)) = (&key, tenant) {
            write_key_record(&dir, &key.id, tid)?;
        }
        Ok(key)
    }

    /// Key `id` of tenant `tenant` from the key provider, for a file about to be written under
    /// it (a key rotation's new file, recorded with [`Cipher::NEW`]).
    pub(crate) fn tenant_env_key(&self, id: &str, tenant: &str) -> Result<EnvKey> {
        self.resolve_key(id, tenant, Cipher::NEW)
    }

    /// Key `id` of `tenant` from the key provider (the instance key for [`INSTANCE_KEY_ID`]),
    /// for a file under `cipher`.
    fn resolve_key(&self, id: &str, tenant: &str, cipher: Cipher) -> Result<EnvKey> {
        let owner = format!("tenant {tenant}");
        if id == INSTANCE_KEY_ID {
            return match &self.instance_key {
                Some(instance) => Ok(EnvKey {
                    owner,
                    id: id.into(),
                    key: PageKey { cipher, key: instance.key.key.clone() },
                }),
                None => Err(Error::EncryptionKey {
                    owner,
                    key_id: id.into(),
                    problem: "is needed and the data directory has no instance key".into(),
                }),
            };
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
            Some(key) => Ok(EnvKey { owner, id: id.into(), key: PageKey { cipher, key } }),
            None => Err(Error::EncryptionKey {
                owner,
                key_id: id.into(),
                problem: format!("is not in {}", keys.describe()),
            }),
        }
    }
}
