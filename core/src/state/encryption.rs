//! Which key opens which environment: one rule, [`State::key_for`] (see
//! [`crate::encryption`] for what each environment is under).

use parking_lot::MutexGuard;

use super::State;
use crate::datastore::EnvLocation;
use crate::encryption::{
    read_key_record, write_key_record, EnvKey, INSTANCE_OWNER, UNRECORDED_KEY_ID,
};
use crate::error::{Error, Result};
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
            EnvLocation::Shard { .. } => None,
            EnvLocation::Tenant { tenant_id } => Some(tenant_id.as_str()),
            EnvLocation::Namespace { .. } => tenant,
        };
        let dir = loc.dir(&self.dir);
        if let Some(rec) = read_key_record(&dir)? {
            return self.resolve_key(&rec.key_id, rec.tenant_id.as_deref(), rec.cipher).map(Some);
        }
        // No record: an environment created plain, or with the first instance key (under the
        // data directory's cipher) before environments recorded it, or a new one.
        if dir.join("data.mdb").exists() {
            return self.unrecorded_key(tenant);
        }
        let own = match tenant {
            Some(tid) => self.catalog.read(|r, t| {
                Ok(t.tenants.get(r, tid)?.and_then(|tenant| tenant.encryption_key_id))
            })?,
            None => None,
        };
        // A new environment is made with the cipher of new environments and records it.
        let instance = self.instance_key();
        let key = match (own, tenant, instance) {
            (Some(id), Some(tid), _) => Some(self.resolve_key(&id, Some(tid), Cipher::NEW)?),
            (_, _, Some(instance)) => Some(self.resolve_key(&instance.id, tenant, Cipher::NEW)?),
            (_, _, None) => None,
        };
        if let Some(key) = &key {
            write_key_record(&dir, &key.id, tenant)?;
        }
        Ok(key)
    }

    /// The key of an environment without a record of its key (`None`: the directory is
    /// plain): the first instance key, under the data directory's cipher.
    pub(crate) fn unrecorded_key(&self, tenant: Option<&str>) -> Result<Option<EnvKey>> {
        let Some(cipher) = self.instance_key.read().as_ref().map(|_| self.unrecorded_cipher) else {
            return Ok(None);
        };
        self.resolve_key(UNRECORDED_KEY_ID, tenant, cipher).map(Some)
    }

    /// The instance key now (`None`: a plain directory).
    pub(crate) fn instance_key(&self) -> Option<EnvKey> {
        self.instance_key.read().clone()
    }

    /// Makes `key` the instance key, under the lock of the open environments: an environment
    /// made before this returns was made under the old key (and has recorded it), one made
    /// after under `key`. Answers the old key.
    fn replace_instance_key(&self, key: EnvKey) -> Option<EnvKey> {
        let _envs = self.data_envs.write();
        self.instance_key.write().replace(key)
    }

    /// Key `id` of tenant `tenant` (none: the instance) from the key provider, for a file
    /// about to be written under it (a key rotation's new file, recorded with
    /// [`Cipher::NEW`]).
    pub(crate) fn tenant_env_key(&self, id: &str, tenant: Option<&str>) -> Result<EnvKey> {
        self.resolve_key(id, tenant, Cipher::NEW)
    }

    /// Key `id` from the key provider (the instance key by its id), for the data of `tenant`
    /// (none: the instance's) in a file under `cipher`.
    fn resolve_key(&self, id: &str, tenant: Option<&str>, cipher: Cipher) -> Result<EnvKey> {
        let owner = tenant.map_or_else(|| INSTANCE_OWNER.to_owned(), |t| format!("tenant {t}"));
        let instance = self.instance_key();
        if let Some(instance) = instance.as_ref().filter(|k| k.id == id) {
            let key = PageKey { cipher, key: instance.key.key.clone() };
            return Ok(EnvKey { owner, id: id.into(), key });
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

impl State {
    /// The id of the key environment `loc`'s file is under (`None`: it has no file, or the
    /// directory is plain).
    pub(crate) fn env_key_id(&self, loc: &EnvLocation) -> Result<Option<String>> {
        key_id_in(&loc.dir(&self.dir), self.instance_key.read().is_some())
    }

    /// Every environment whose file is under key `key_id` (the instance key's rotation lists
    /// them by the key each records): the shards, `hybrid` tenants' files and `physical`
    /// namespaces' files in the data directory.
    pub(crate) fn environments_under(&self, key_id: &str) -> Result<Vec<EnvLocation>> {
        let mut found = Vec::new();
        for (kind, make) in ENV_KINDS {
            let parent = self.dir.join(kind);
            let entries = match std::fs::read_dir(&parent) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            for entry in entries {
                let name = entry?.file_name();
                let Some(loc) = name.to_str().and_then(make) else { continue };
                if self.env_key_id(&loc)?.as_deref() == Some(key_id) {
                    found.push(loc);
                }
            }
        }
        found.sort_by_key(|l| format!("{l:?}"));
        Ok(found)
    }
}

impl State {
    /// Held by the start of an instance key rotation (`Handle::rotate_instance_key`) from
    /// before it records the rotation until [`State::finish_instance_rotation_start`] has
    /// listed its files.
    pub(crate) fn instance_rotation_start(&self) -> MutexGuard<'_, ()> {
        self.instance_rotation_start.lock()
    }

    /// [`State::instance_rotation_start`], unless a start under way holds it: the worker
    /// finishes a start only when none is under way (one a crash or an error stopped). Both
    /// at once made the new key the instance key and wrote `storage.json` through its one
    /// temporary file at the same time: the second rename found the file gone, and the
    /// rotation was answered `internal` ("io: No such file or directory").
    pub(crate) fn try_instance_rotation_start(&self) -> Option<MutexGuard<'_, ()>> {
        self.instance_rotation_start.try_lock()
    }

    /// The rest of the start of the instance key's rotation to `new_key_id`, recorded in the
    /// catalog: the new key made the instance key, here and in `storage.json`, then the files
    /// under the old key listed in the record (see [`State::list_instance_environments`]);
    /// answers the record. A step done already is skipped, so the worker finishes a start
    /// that a crash or an error stopped. `_start`: the caller holds
    /// [`State::instance_rotation_start`].
    pub(crate) fn finish_instance_rotation_start(
        &self,
        new_key_id: &str,
        _start: &MutexGuard<'_, ()>,
    ) -> Result<crate::rotation::RotationRecord> {
        if self.instance_key().is_none_or(|k| k.id != new_key_id) {
            self.replace_instance_key(self.tenant_env_key(new_key_id, None)?);
        }
        crate::format::set_instance_key_id(&self.dir, new_key_id)?;
        self.list_instance_environments()
    }

    /// Lists, in the instance key rotation's record, the files under its old key, unless it
    /// lists them already; answers the record. Called once the rotation is recorded and the
    /// new key made the instance key (so no file is made under the old key after the list).
    fn list_instance_environments(&self) -> Result<crate::rotation::RotationRecord> {
        use crate::rotation::{get_record, put_record, EnvState, INSTANCE};
        let rec = self.catalog.read(|r, t| get_record(t, r, INSTANCE))?;
        let Some(old) = rec.and_then(|rec| rec.rotation.old_key_id) else {
            return Err(Error::not_found("key rotation", "instance"));
        };
        let found = self.environments_under(&old)?;
        self.catalog_write_affecting(super::Affects::NoKeys, |w, t| {
            let Some(mut current) = get_record(t, w, INSTANCE)? else {
                return Err(Error::not_found("key rotation", "instance"));
            };
            if current.unlisted {
                current.environments =
                    found.iter().map(|loc| (loc.clone(), EnvState::Pending)).collect();
                current.unlisted = false;
                current.count_done();
                put_record(t, w, &current)?;
            }
            Ok(current)
        })
    }
}

/// The directories holding environments, and the location of an environment by its
/// directory's name.
type EnvKind = (&'static str, fn(&str) -> Option<EnvLocation>);
const ENV_KINDS: [EnvKind; 3] = [
    ("shards", |name| name.strip_prefix("shard-")?.parse().ok().map(|n| EnvLocation::Shard { n })),
    ("tenants", |name| Some(EnvLocation::Tenant { tenant_id: name.to_owned() })),
    ("namespaces", |name| name.parse().ok().map(|id| EnvLocation::Namespace { id })),
];

/// The id of the key the environment in `dir` is under: the one its record names, else
/// (a file without a record) the first instance key's when the directory is `encrypted`.
pub(crate) fn key_id_in(dir: &std::path::Path, encrypted: bool) -> Result<Option<String>> {
    if let Some(rec) = read_key_record(dir)? {
        return Ok(Some(rec.key_id));
    }
    Ok((encrypted && dir.join("data.mdb").exists()).then(|| UNRECORDED_KEY_ID.to_owned()))
}
