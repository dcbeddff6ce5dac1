//! Key rotations, of a tenant's key or of the instance key: starting one and reading its
//! state; the worker that rewrites the environments is [`crate::rotation`]'s.

use crate::auth::{authorize, Action};
use crate::datastore::EnvLocation;
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::rotation::{
    get_record, put_record, tenant_environments, EnvState, InstanceKeyRotation, KeyRotation,
    RotationRecord, RotationState, INSTANCE,
};
use crate::state::Affects;
use crate::tenant::{get_tenant, IsolationMode};

impl Handle {
    /// Rotates tenant `tenant_id`'s encryption key to `new_key_id` (made in the keyring if
    /// absent; default `<tenant name>.<milliseconds>`): from now on the tenant's data is
    /// written under the new key, and the background worker rewrites its files under it
    /// while the tenant keeps working, then destroys the old key. Root and the tenant's
    /// admins only; `physical` and `hybrid` tenants only; `conflict` while a rotation of the
    /// tenant is under way. Poll [`Handle::key_rotation`] for progress.
    pub fn rotate_tenant_key(
        &self,
        tenant_id: &str,
        new_key_id: Option<&str>,
    ) -> Result<KeyRotation> {
        let caller = self.caller()?;
        authorize(caller.principal(), Action::AdministerTenant(Some(tenant_id)))?;
        if let Some(id) = new_key_id {
            crate::keyring::validate_key_id(id).map_err(|e| match e {
                Error::InvalidArgument { reason, .. } => Error::invalid("new_key_id", reason),
                other => other,
            })?;
        }
        let state = &self.state;
        let now = state.options.clock.now();
        let tenant = state.catalog.read(|r, t| get_tenant(t, r, tenant_id))?;
        if tenant.isolation_mode == IsolationMode::Logical {
            return Err(Error::invalid(
                "tenant_id",
                "only physical and hybrid tenants have keys of their own; logical tenants share \
                 the instance key",
            ));
        }
        let new_key_id = match new_key_id {
            Some(id) => id.to_owned(),
            None => format!("{}.{}", tenant.name, now.timestamp_millis()),
        };
        crate::keyring::validate_key_id(&new_key_id)?;
        if new_key_id == crate::keyring::INSTANCE_KEY_ID {
            return Err(Error::invalid(
                "new_key_id",
                format!("{new_key_id} is the instance key's id; choose another"),
            ));
        }
        if tenant.encryption_key_id.as_deref() == Some(&new_key_id) {
            return Err(Error::invalid(
                "new_key_id",
                format!("{new_key_id} is the tenant's key already"),
            ));
        }
        let (_, created) = state.tenant_key(&new_key_id)?;
        let written = state.catalog_write_affecting(Affects::NoKeys, |w, t| {
            let mut tenant = get_tenant(t, w, tenant_id)?;
            if let Some(rec) = get_record(t, w, tenant_id)? {
                if rec.rotation.state == RotationState::Rewriting {
                    return Err(Error::Conflict(format!(
                        "a key rotation of tenant {} is under way ({} of {} environments done)",
                        tenant.name,
                        rec.rotation.environments_done,
                        rec.rotation.environments_total
                    )));
                }
            }
            crate::tenant_keys::check_key_unused(t, w, state.key_provider()?, &new_key_id)?;
            let environments: Vec<(EnvLocation, EnvState)> =
                tenant_environments(t, w, tenant_id, tenant.isolation_mode)?
                    .into_iter()
                    .map(|(loc, _)| (loc, EnvState::Pending))
                    .collect();
            let rotation = KeyRotation {
                tenant_id: tenant_id.to_owned(),
                old_key_id: tenant.encryption_key_id.clone(),
                new_key_id: new_key_id.clone(),
                state: RotationState::Rewriting,
                environments_total: environments.len() as u64,
                environments_done: 0,
                started_at: now,
                finished_at: None,
            };
            let rec = RotationRecord { rotation, environments, catalog: None, unlisted: false };
            put_record(t, w, &rec)?;
            tenant.encryption_key_id = Some(new_key_id.clone());
            tenant.updated_at = now;
            t.tenants.put(w, tenant_id, &tenant)?;
            Ok(rec.rotation)
        });
        match written {
            Ok(rotation) => {
                tracing::info!(
                    "key rotation of tenant {} to key {new_key_id}: {} environment(s) to rewrite",
                    tenant.name,
                    rotation.environments_total
                );
                state.wake_worker();
                Ok(rotation)
            }
            Err(e) => {
                if created {
                    if let Some(keys) = &state.keys {
                        if let Err(undo) = keys.destroy(&new_key_id) {
                            tracing::warn!(
                                "key {new_key_id} made for a refused rotation stays: {undo}"
                            );
                        }
                    }
                }
                Err(e)
            }
        }
    }

    /// The last key rotation of tenant `tenant_id` (root and the tenant's admins):
    /// `not_found` if its key was never rotated.
    pub fn key_rotation(&self, tenant_id: &str) -> Result<KeyRotation> {
        let caller = self.caller()?;
        authorize(caller.principal(), Action::AdministerTenant(Some(tenant_id)))?;
        self.state.catalog.read(|r, t| {
            get_tenant(t, r, tenant_id)?;
            get_record(t, r, tenant_id)?
                .map(|rec| rec.rotation)
                .ok_or_else(|| Error::not_found("key rotation", tenant_id))
        })
    }
}

impl Handle {
    /// Rotates the instance key (the key of the catalog, the audit log, the shared files of
    /// `logical` tenants and the files of tenants without a key of their own) to
    /// `new_key_id` (made in the keyring if absent; default `instance.<milliseconds>`): files
    /// made from now on are under the new key, and the background worker rewrites every file
    /// under the old key while the engine keeps working, the catalog last, then destroys the
    /// old key. Root only; an encrypted data directory only; `conflict` while one is under
    /// way. Poll [`Handle::instance_key_rotation`] for progress.
    pub fn rotate_instance_key(&self, new_key_id: Option<&str>) -> Result<InstanceKeyRotation> {
        let caller = self.caller()?;
        authorize(caller.principal(), Action::ManageInstance)?;
        let state = &self.state;
        // Held until the files are listed: the worker leaves the start to this call. Taken
        // first, so the instance key read next stays the instance key until then.
        let start = state.instance_rotation_start();
        let Some(old) = state.instance_key() else {
            return Err(Error::invalid(
                "new_key_id",
                "the data directory is not encrypted (it was created without a keyring): there is \
                 no instance key to rotate",
            ));
        };
        let now = state.options.clock.now();
        let new_key_id = match new_key_id {
            Some(id) => id.to_owned(),
            None => format!("instance.{}", now.timestamp_millis()),
        };
        crate::keyring::validate_key_id(&new_key_id).map_err(|e| match e {
            Error::InvalidArgument { reason, .. } => Error::invalid("new_key_id", reason),
            other => other,
        })?;
        if new_key_id == old.id {
            return Err(Error::invalid(
                "new_key_id",
                format!("{new_key_id} is the instance key already"),
            ));
        }
        if new_key_id == crate::keyring::INSTANCE_KEY_ID {
            // The first instance key's id names the key of files that record none.
            return Err(Error::invalid(
                "new_key_id",
                format!("{new_key_id} is reserved for a data directory's first instance key"),
            ));
        }
        let under_way = |rec: &RotationRecord| {
            Error::Conflict(format!(
                "a rotation of the instance key is under way ({} of {} files done)",
                rec.rotation.environments_done, rec.rotation.environments_total
            ))
        };
        if let Some(rec) = state.catalog.read(|r, t| get_record(t, r, INSTANCE))? {
            if rec.rotation.state == RotationState::Rewriting {
                return Err(under_way(&rec));
            }
        }
        let (_, created) = state.tenant_key(&new_key_id)?;
        // Recorded first, with no file listed yet: the record holds the new key's id (no
        // tenant can take it) and keeps a second rotation out.
        let written = state.catalog_write_affecting(Affects::NoKeys, |w, t| {
            if let Some(rec) = get_record(t, w, INSTANCE)? {
                if rec.rotation.state == RotationState::Rewriting {
                    return Err(under_way(&rec));
                }
            }
            crate::tenant_keys::check_key_unused(t, w, state.key_provider()?, &new_key_id)?;
            let rotation = KeyRotation {
                tenant_id: INSTANCE.to_owned(),
                old_key_id: Some(old.id.clone()),
                new_key_id: new_key_id.clone(),
                state: RotationState::Rewriting,
                environments_total: 0,
                environments_done: 0,
                started_at: now,
                finished_at: None,
            };
            let mut rec = RotationRecord {
                rotation,
                environments: Vec::new(),
                catalog: Some(EnvState::Pending),
                unlisted: true,
            };
            rec.count_done();
            put_record(t, w, &rec)
        });
        if let Err(e) = written {
            if created {
                if let Some(keys) = &state.keys {
                    if let Err(undo) = keys.destroy(&new_key_id) {
                        tracing::warn!(
                            "key {new_key_id} made for a refused rotation stays: {undo}"
                        );
                    }
                }
            }
            return Err(e);
        }
        #[cfg(test)]
        if let Some(meanwhile) = crate::rotation::RECORDED.take() {
            meanwhile();
        }
        // From here on the rotation happens, whatever fails: the next open (or the worker,
        // once this call has returned) picks it up from its record.
        let rec = state.finish_instance_rotation_start(&new_key_id, &start)?;
        drop(start);
        tracing::info!(
            "key rotation of the instance to key {new_key_id}: {} file(s) to rewrite",
            rec.rotation.environments_total
        );
        state.wake_worker();
        Ok(rec.rotation.into())
    }

    /// The last rotation of the instance key (root only): `not_found` if it was never
    /// rotated.
    pub fn instance_key_rotation(&self) -> Result<InstanceKeyRotation> {
        let caller = self.caller()?;
        authorize(caller.principal(), Action::ManageInstance)?;
        self.state.catalog.read(|r, t| {
            get_record(t, r, INSTANCE)?
                .map(|rec| rec.rotation.into())
                .ok_or_else(|| Error::not_found("key rotation", "instance"))
        })
    }
}
