//! The data directory's storage format, recorded in a plain file at its top (`storage.json`)
//! so that a directory is known before any environment in it is opened: its format, and
//! whether its environments are encrypted, with which cipher and instance key id (never key
//! material).
//!
//! Format 2 is LMDB mdb.master3 (heed3), the first with page encryption. Directories of
//! memsilo 0.1.0 (LMDB 0.9 through heed 0.23, which mdb.master3 does not read) have no such
//! file but have a catalog: they are refused at open, with the command that converts them.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::encryption::EnvKey;
use crate::error::{Error, Result};
use crate::keyring::{KeyProvider, INSTANCE_KEY_ID};
use crate::storage::{write_synced, Cipher, PageKey};

/// The file's name under the data directory.
pub(crate) const FILE: &str = "storage.json";

/// The format this version writes and opens.
pub(crate) const CURRENT: u32 = 2;

/// What `storage.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Format {
    /// Storage format number ([`CURRENT`]).
    #[serde(rename = "format")]
    pub version: u32,
    /// The LMDB branch the environments are written with.
    pub lmdb: String,
    /// Present when the environments are encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

impl Format {
    /// The current format, plain.
    fn current() -> Format {
        Format { version: CURRENT, lmdb: "mdb.master3".into(), encryption: None }
    }
}

/// How a directory's environments are encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Encryption {
    /// The page cipher of the catalog and the shared shards, and of every environment
    /// without a record of its own ([`Cipher::name`]).
    pub cipher: String,
    /// The id of the instance key in the key provider: the key of files made from now on
    /// for the instance (a rotation changes it; each file records its own key, see
    /// [`crate::encryption`]).
    pub instance_key_id: String,
}

/// Checks the data directory `dir` before its environments are opened and gets its instance
/// key (`None`: a plain directory) from `keys`, with the directory's cipher. A new directory
/// is marked with the current format, encrypted with [`Cipher::NEW`] (its instance key
/// created if the provider has none) when there is a provider. A directory of
/// another format, an encrypted one without a provider or its key, or a plain one opened with
/// a provider are refused, naming what is wrong.
pub(crate) fn check_or_mark(dir: &Path, keys: Option<&dyn KeyProvider>) -> Result<Option<EnvKey>> {
    let path = dir.join(FILE);
    let format = match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<Format>(&bytes)
            .map_err(|e| Error::internal_from(format!("reading {}", path.display()), e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if dir.join("catalog").join("data.mdb").exists() {
                return Err(Error::UpgradeRequired {
                    dir: dir.display().to_string(),
                    version: "0.1.0".into(),
                });
            }
            let instance_key = match keys {
                Some(k) => Some(crate::keyring::get_or_create(k, INSTANCE_KEY_ID)?),
                None => None,
            };
            let format = Format {
                encryption: instance_key.as_ref().map(|_| Encryption {
                    cipher: Cipher::NEW.name().into(),
                    instance_key_id: INSTANCE_KEY_ID.into(),
                }),
                ..Format::current()
            };
            write_synced(dir, &path, &serde_json::to_vec_pretty(&format)?)?;
            return Ok(instance_key.map(|key| {
                EnvKey::instance(INSTANCE_KEY_ID, PageKey { cipher: Cipher::NEW, key })
            }));
        }
        Err(e) => return Err(e.into()),
    };
    if format.version != CURRENT {
        return Err(Error::invalid(
            "path",
            format!(
                "data directory {} is in storage format {}; this version of memsilo opens format \
                 {CURRENT} only",
                dir.display(),
                format.version
            ),
        ));
    }
    let instance_key = match (&format.encryption, keys) {
        (None, None) => None,
        (None, Some(k)) => {
            // Created without a key provider: the catalog and shards stay plain (the pages
            // are not rewritten); tenants' own keys still encrypt their environments.
            tracing::warn!(
                "data directory {} is not encrypted (created without a key provider); {} is \
                 used for tenants' own keys only",
                dir.display(),
                k.describe()
            );
            None
        }
        (Some(enc), None) => {
            return Err(Error::EncryptionKey {
                owner: "instance".into(),
                key_id: enc.instance_key_id.clone(),
                problem: format!(
                    "is needed: data directory {} is encrypted and no key provider is \
                     configured (--keyring or MEMSILO_KEYRING)",
                    dir.display()
                ),
            })
        }
        (Some(enc), Some(k)) => {
            let cipher = Cipher::recorded(&enc.cipher, &dir.join(FILE))?;
            let key = k.get(&enc.instance_key_id)?.ok_or_else(|| Error::EncryptionKey {
                owner: "instance".into(),
                key_id: enc.instance_key_id.clone(),
                problem: format!("is not in {}", k.describe()),
            })?;
            Some(EnvKey::instance(enc.instance_key_id.clone(), PageKey { cipher, key }))
        }
    };
    Ok(instance_key)
}

/// Whether `dir` is marked as in the current format (its `storage.json` says so).
pub(crate) fn is_current(dir: &Path) -> Result<bool> {
    let path = dir.join(FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            let found: Format = serde_json::from_slice(&bytes)
                .map_err(|e| Error::internal_from(format!("reading {}", path.display()), e))?;
            Ok(found.version == CURRENT)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Records in `dir`'s `storage.json` (synced) that its instance key is now `key_id` (a
/// rotation of the instance key).
pub(crate) fn set_instance_key_id(dir: &Path, key_id: &str) -> Result<()> {
    let path = dir.join(FILE);
    let bytes = fs::read(&path)?;
    let mut format: Format = serde_json::from_slice(&bytes)
        .map_err(|e| Error::internal_from(format!("reading {}", path.display()), e))?;
    let Some(enc) = format.encryption.as_mut() else {
        return Err(Error::Internal(format!("data directory {} is not encrypted", dir.display())));
    };
    if enc.instance_key_id == key_id {
        return Ok(());
    }
    key_id.clone_into(&mut enc.instance_key_id);
    write_synced(dir, &path, &serde_json::to_vec_pretty(&format)?)
}

/// Marks `dir` as in the current format (`encrypted` with the instance key under
/// [`Cipher::NEW`], or plain), synced: the last step of `memsilo upgrade`'s copy.
pub(crate) fn mark_current(dir: &Path, encrypted: bool) -> Result<()> {
    let format = Format {
        encryption: encrypted.then(|| Encryption {
            cipher: Cipher::NEW.name().into(),
            instance_key_id: INSTANCE_KEY_ID.into(),
        }),
        ..Format::current()
    };
    write_synced(dir, &dir.join(FILE), &serde_json::to_vec_pretty(&format)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_directory_is_marked_and_opens_again() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_or_mark(dir.path(), None).unwrap().is_none());
        let written: Format =
            serde_json::from_slice(&fs::read(dir.path().join(FILE)).unwrap()).unwrap();
        assert_eq!((written.version, written.encryption), (CURRENT, None));
        assert!(check_or_mark(dir.path(), None).unwrap().is_none());
    }

    #[test]
    fn a_directory_of_another_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), r#"{"format": 3, "lmdb": "x"}"#).unwrap();
        let e = check_or_mark(dir.path(), None).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::InvalidArgument);
        assert!(e.to_string().contains("storage format 3"), "{e}");
    }
}
