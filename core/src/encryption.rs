//! Encryption at open: the key of an environment of its own, recorded beside it, and
//! opening an environment with a key. Which key opens which environment is one rule, the
//! engine's `key_for`:
//!
//! With no key provider every environment is plain. A data directory created with one is
//! encrypted (see [`crate::format`]): the catalog (and the audit log inside it) and the shared
//! shards of `logical` tenants use the instance key. A `hybrid` tenant's environment and a
//! `physical` namespace's environment (and its vector index) use their tenant's own key
//! (`encryption_key_id`) when it has one, else the instance key. An encrypted environment
//! records the id of its key and its cipher in a plain file beside its data ([`KEY_FILE`]),
//! written when it is created or rewritten under another key (a rotation): it is opened with
//! that key for as long as it lives, even once its tenant's record is gone (a deleted
//! tenant's purge). One without that file was made before environments of the instance key
//! recorded it, so it is under the directory's first instance key ([`UNRECORDED_KEY_ID`]) and
//! the directory's cipher (`storage.json`).

use std::fs;
use std::path::Path;

use heed3::MdbError;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keyring::INSTANCE_KEY_ID;
use crate::storage::{Cipher, PageKey};
use crate::store::{Store, Tables};

/// The file in an environment of its own that names its key.
pub(crate) const KEY_FILE: &str = "encryption.json";

/// The key of an encrypted environment (with its cipher), with whose it is (for errors). Its
/// `Debug` shows no byte of the key (see [`PageKey`]).
#[derive(Clone, Debug)]
pub(crate) struct EnvKey {
    /// `instance`, or `tenant <id>`.
    pub owner: String,
    /// The key's id in the key provider.
    pub id: String,
    pub key: PageKey,
}

impl EnvKey {
    /// The instance key, by id `id` in the key provider, under `key`'s cipher.
    pub(crate) fn instance(id: impl Into<String>, key: PageKey) -> EnvKey {
        EnvKey { owner: INSTANCE_OWNER.into(), id: id.into(), key }
    }
}

/// Whose key the instance key is, in errors.
pub(crate) const INSTANCE_OWNER: &str = "instance";

/// The key id of an environment without [`KEY_FILE`] (see the module documentation).
pub(crate) const UNRECORDED_KEY_ID: &str = INSTANCE_KEY_ID;

/// What [`KEY_FILE`] records.
#[derive(Serialize, Deserialize)]
struct KeyRecord {
    /// The page cipher ([`Cipher::name`]).
    cipher: String,
    /// The key's id in the key provider.
    key_id: String,
    /// The tenant whose data it is (none: the catalog, or a shard shared by `logical`
    /// tenants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
}

/// What [`KEY_FILE`] in an environment's directory says: its file's key and cipher.
pub(crate) struct RecordedKey {
    /// The key's id in the key provider.
    pub key_id: String,
    /// The tenant whose data it is (none: the instance's).
    pub tenant_id: Option<String>,
    pub cipher: Cipher,
}

/// What [`KEY_FILE`] in `dir` records, if there is one. A cipher unknown here is refused
/// (see [`Cipher::recorded`]).
pub(crate) fn read_key_record(dir: &Path) -> Result<Option<RecordedKey>> {
    let file = dir.join(KEY_FILE);
    match fs::read(&file) {
        Ok(bytes) => {
            let rec: KeyRecord = serde_json::from_slice(&bytes)
                .map_err(|e| Error::internal_from(format!("reading {}", file.display()), e))?;
            let cipher = Cipher::recorded(&rec.cipher, &file)?;
            Ok(Some(RecordedKey { key_id: rec.key_id, tenant_id: rec.tenant_id, cipher }))
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        Err(_) => Ok(None),
    }
}

/// Records in `dir` (an environment's directory) that its file is under key `key_id`, of
/// tenant `tenant_id` (none: the instance's data), with the cipher of new environments,
/// [`Cipher::NEW`] ([`KEY_FILE`], written and synced atomically): written before the file is
/// created (or, for a key rotation's file, beside it before it replaces the old one).
pub(crate) fn write_key_record(dir: &Path, key_id: &str, tenant_id: Option<&str>) -> Result<()> {
    let rec = KeyRecord {
        cipher: Cipher::NEW.name().into(),
        key_id: key_id.to_owned(),
        tenant_id: tenant_id.map(str::to_owned),
    };
    fs::create_dir_all(dir)?;
    crate::storage::write_synced(dir, &dir.join(KEY_FILE), &serde_json::to_vec_pretty(&rec)?)
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
