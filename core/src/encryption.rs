//! Which key opens which environment: one rule, [`EngineInner::key_for`].
//!
//! With no key provider every environment is plain. A data directory created with one is
//! encrypted (see [`crate::format`]): the catalog (and the audit log inside it) and the shared
//! shards of `logical` tenants use the instance key. A `hybrid` tenant's environment and a
//! `physical` namespace's environment (and its vector index) use their tenant's own key
//! (`encryption_key_id`) when it has one, else the instance key. An environment of its own
//! records the id of its key in a plain file beside its data ([`KEY_FILE`]), written when it
//! is created: it is opened with that key for as long as it lives, even once its tenant's
//! record is gone (a deleted tenant's purge).

use std::fs;
use std::path::Path;

use heed3::MdbError;
use serde::{Deserialize, Serialize};

use crate::datastore::EnvLocation;
use crate::engine::EngineInner;
use crate::error::{Error, Result};
use crate::keyring::{Key, INSTANCE_KEY_ID};
use crate::store::{Store, Tables};

/// The file in an environment of its own that names its key.
pub(crate) const KEY_FILE: &str = "encryption.json";

/// The key of an encrypted environment, with whose it is (for errors).
#[derive(Clone)]
pub(crate) struct EnvKey {
    /// `instance`, or `tenant <id>`.
    pub owner: String,
    /// The key's id in the key provider.
    pub id: String,
    pub key: Key,
}

impl EnvKey {
    /// The instance key.
    pub(crate) fn instance(key: Key) -> EnvKey {
        EnvKey { owner: "instance".into(), id: INSTANCE_KEY_ID.into(), key }
    }
}

/// What [`KEY_FILE`] records.
#[derive(Serialize, Deserialize)]
struct KeyRecord {
    /// The page cipher.
    cipher: String,
    /// The key's id in the key provider.
    key_id: String,
    /// The tenant whose data it is.
    tenant_id: String,
}

impl EngineInner {
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
        let file = dir.join(KEY_FILE);
        match fs::read(&file) {
            Ok(bytes) => {
                let rec: KeyRecord = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::internal_from(format!("reading {}", file.display()), e))?;
                return self.resolve_key(&rec.key_id, &rec.tenant_id).map(Some);
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            Err(_) => {}
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

/// Records in `dir` (an environment of its own) that its file is under key `key_id` of tenant
/// `tenant_id` ([`KEY_FILE`], written and synced atomically).
pub(crate) fn write_key_record(dir: &Path, key_id: &str, tenant_id: &str) -> Result<()> {
    let rec = KeyRecord {
        cipher: crate::format::CIPHER.into(),
        key_id: key_id.to_owned(),
        tenant_id: tenant_id.to_owned(),
    };
    fs::create_dir_all(dir)?;
    crate::format::write_synced(dir, &dir.join(KEY_FILE), &serde_json::to_vec_pretty(&rec)?)
}

/// Opens the environment in `path` with `key`. A key that does not decrypt it is refused
/// (LMDB checks each page's authentication tag) with an error naming whose key it is.
pub(crate) fn open_store<T: Tables>(
    path: &Path,
    map_size: usize,
    key: Option<&EnvKey>,
) -> Result<Store<T>> {
    Store::open(path, map_size, key.map(|k| &k.key)).map_err(|e| match (key, e) {
        (Some(k), Error::Storage(heed3::Error::Mdb(MdbError::CryptoFail))) => {
            Error::EncryptionKey {
                owner: k.owner.clone(),
                key_id: k.id.clone(),
                problem: format!("does not decrypt {} (another key by that id?)", path.display()),
            }
        }
        (_, e) => e,
    })
}
