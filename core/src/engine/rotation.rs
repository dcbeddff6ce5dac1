//! The engine's side of key rotations: rewriting a tenant's environments under its new key,
//! settling what a crash left staged, and the rotation's records as the rewrite goes on (the
//! records themselves are [`crate::rotation`]'s).

use std::sync::atomic::Ordering;

use super::EngineInner;
use crate::datastore::{EnvLocation, NamespaceId};
use crate::error::{Error, Result};
use crate::rotation::{
    all_records, get_record, put_record, set_state, tenant_environments, EnvState, RotationRecord,
    RotationState,
};
use crate::state::Affects;

impl EngineInner {
    /// Moves into place the new files of environments a crash left `staged` (complete under
    /// the new key, beside the old file) and records them `done`. Run at open, before
    /// anything opens a data environment.
    pub(crate) fn settle_staged_rotations(&self) -> Result<()> {
        let records = self.state.catalog.read(|r, t| all_records(t, r))?;
        for mut rec in records {
            let mut changed = false;
            for (loc, state) in &mut rec.environments {
                if *state != EnvState::Staged {
                    continue;
                }
                crate::store::finish_rekey(&loc.dir(&self.state.dir))?;
                let namespaces = self.state.catalog.read(|r, t| {
                    let Some(tenant) = t.tenants.get(r, &rec.rotation.tenant_id)? else {
                        return Ok(std::collections::BTreeSet::new());
                    };
                    let envs =
                        tenant_environments(t, r, &rec.rotation.tenant_id, tenant.isolation_mode)?;
                    Ok(envs
                        .into_iter()
                        .filter(|(l, _)| l == loc)
                        .flat_map(|(_, ns)| ns)
                        .collect::<std::collections::BTreeSet<_>>())
                })?;
                self.drop_indexes(&namespaces)?;
                *state = EnvState::Done;
                changed = true;
            }
            if changed {
                rec.count_done();
                self.state
                    .catalog_write_affecting(Affects::NoKeys, |w, t| put_record(t, w, &rec))?;
            }
        }
        Ok(())
    }

    /// Goes on with every unfinished rotation (the background worker calls it each round);
    /// returns how many environments were rewritten.
    pub(crate) fn run_rotations(&self) -> Result<usize> {
        let records = self.state.catalog.read(|r, t| all_records(t, r))?;
        let mut rewritten = 0;
        for rec in records {
            if rec.rotation.state != RotationState::Rewriting || self.state.stopping() {
                continue;
            }
            rewritten += self.run_rotation(rec)?;
        }
        Ok(rewritten)
    }

    fn run_rotation(&self, mut rec: RotationRecord) -> Result<usize> {
        let tenant_id = rec.rotation.tenant_id.clone();
        let new_key_id = rec.rotation.new_key_id.clone();
        let key = self.state.tenant_env_key(&new_key_id, &tenant_id)?;
        let mut rewritten = 0;
        for i in 0..rec.environments.len() {
            let (loc, state) = rec.environments[i].clone();
            if state == EnvState::Done {
                continue;
            }
            let namespaces = || -> Result<std::collections::BTreeSet<NamespaceId>> {
                let found = self.state.catalog.read(|r, t| {
                    let Some(tenant) = t.tenants.get(r, &tenant_id)? else {
                        return Ok(None);
                    };
                    let envs = tenant_environments(t, r, &tenant_id, tenant.isolation_mode)?;
                    Ok(envs.into_iter().find(|(l, _)| *l == loc).map(|(_, ns)| ns))
                })?;
                Ok(found.unwrap_or_default().into_iter().collect())
            };
            // A hybrid tenant's file is rewritten even with no namespace left in it (one made
            // later opens it under the new key); a deleted namespace's file is not.
            let rewrite = loc.dir(&self.state.dir).exists()
                && (matches!(loc, EnvLocation::Tenant { .. }) || !namespaces()?.is_empty());
            if rewrite {
                let store = self.state.data_env_with(&loc, Some(&tenant_id))?;
                let mark_staged = |next_dir: &std::path::Path| {
                    crate::encryption::write_key_record(next_dir, &new_key_id, &tenant_id)?;
                    self.save_env_state(&tenant_id, &loc, EnvState::Staged)?;
                    Ok(!self.stop_rotations_after_staging.load(Ordering::SeqCst))
                };
                store.rekey(&key.key, mark_staged)?;
                // Its namespaces' vector indexes were under the old key: rebuilt under the new.
                self.drop_indexes(&namespaces()?)?;
            }
            if !self.save_env_state(&tenant_id, &loc, EnvState::Done).map(|()| true).or_else(
                |e| if e.code() == crate::ErrorCode::NotFound { Ok(false) } else { Err(e) },
            )? {
                return Ok(rewritten); // the tenant was deleted meanwhile, its record with it
            }
            set_state(&mut rec, &loc, EnvState::Done);
            rewritten += 1;
            tracing::info!(
                "key rotation of tenant {tenant_id} to key {new_key_id}: {} of {} environment(s) done",
                rec.rotation.environments_done,
                rec.rotation.environments_total
            );
        }
        let now = self.state.options.clock.now();
        let finished = self.state.catalog_write_affecting(Affects::NoKeys, |w, t| {
            let Some(mut current) = get_record(t, w, &tenant_id)? else { return Ok(false) };
            if current.rotation.state == RotationState::Done
                || current.environments.iter().any(|(_, s)| *s != EnvState::Done)
            {
                return Ok(false);
            }
            current.rotation.state = RotationState::Done;
            current.rotation.finished_at = Some(now);
            // The old key goes once no environment uses it (never the instance key).
            if let Some(old) = &current.rotation.old_key_id {
                crate::catalog::queue_key_destruction(t, w, old)?;
            }
            put_record(t, w, &current)?;
            Ok(true)
        })?;
        if finished {
            tracing::info!("key rotation of tenant {tenant_id} to key {new_key_id} done");
            self.state.wake_worker();
        }
        Ok(rewritten)
    }
}

impl EngineInner {
    /// Records environment `loc` of tenant `tenant_id`'s rotation in `state`; `not_found`
    /// when the record is gone (the tenant was deleted).
    fn save_env_state(&self, tenant_id: &str, loc: &EnvLocation, state: EnvState) -> Result<()> {
        self.state.catalog_write_affecting(Affects::NoKeys, |w, t| {
            let Some(mut rec) = get_record(t, w, tenant_id)? else {
                return Err(Error::not_found("key rotation", tenant_id));
            };
            set_state(&mut rec, loc, state);
            put_record(t, w, &rec)
        })
    }
}

impl EngineInner {
    /// Drops the vector indexes of `namespaces` (rebuilt by the indexer; recall is exact
    /// meanwhile).
    fn drop_indexes(&self, namespaces: &std::collections::BTreeSet<NamespaceId>) -> Result<()> {
        for ns in namespaces {
            self.state.forget_namespace_caches(*ns);
            self.state.indexes.destroy(*ns)?;
        }
        Ok(())
    }
}
