//! Tenant key rotation: starting one and reading its state; the worker that rewrites the
//! environments is [`crate::rotation`]'s.

use crate::auth::{authorize, Action};
use crate::datastore::EnvLocation;
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::rotation::{
    get_record, put_record, tenant_environments, EnvState, KeyRotation, RotationRecord,
    RotationState,
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
        authorize(&caller.principal, Action::AdministerTenant(Some(tenant_id)))?;
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
            let rec = RotationRecord { rotation, environments };
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
        authorize(&caller.principal, Action::AdministerTenant(Some(tenant_id)))?;
        self.state.catalog.read(|r, t| {
            get_tenant(t, r, tenant_id)?;
            get_record(t, r, tenant_id)?
                .map(|rec| rec.rotation)
                .ok_or_else(|| Error::not_found("key rotation", tenant_id))
        })
    }
}
