//! The engine's side of key rotations: rewriting the environments of a tenant (or, for the
//! instance key, every file under the old instance key and then the catalog) under the new
//! key, settling what a crash left staged, and the rotation's records as the rewrite goes on
//! (the records themselves are [`crate::rotation`]'s).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;

use super::EngineInner;
use crate::catalog::CatalogTables;
use crate::datastore::{EnvLocation, NamespaceId};
use crate::encryption::{read_key_record, write_key_record, EnvKey};
use crate::error::{Error, Result};
use crate::keyring::KeyProvider;
use crate::records::PurgeJob;
use crate::rotation::{
    all_records, get_record, namespaces_at, put_record, set_state, tenant_environments, EnvState,
    RotationRecord, RotationState, INSTANCE,
};
use crate::state::Affects;
use crate::storage::{Cipher, PageKey};
use crate::store::Store;

/// In the catalog's directory while its new file (under the new instance key) is complete in
/// its `rekeying` directory and not yet moved into place: the catalog cannot record that in
/// itself, since it is the file being replaced.
const CATALOG_STAGED: &str = "rekeyed.json";

impl EngineInner {
    /// Moves into place the new files of environments a crash left `staged` (complete under
    /// the new key, beside the old file) and records them `done`. Run at open, before
    /// anything opens a data environment.
    pub(crate) fn settle_staged_rotations(&self) -> Result<()> {
        let records = self.state.catalog.read(|r, t| all_records(t, r))?;
        for mut rec in records {
            let mut changed = false;
            let scope = rec.rotation.tenant_id.clone();
            for (loc, state) in &mut rec.environments {
                if *state != EnvState::Staged {
                    continue;
                }
                crate::store::finish_rekey(&loc.dir(&self.state.dir))?;
                let namespaces =
                    self.state.catalog.read(|r, t| env_namespaces(t, r, &scope, loc))?;
                self.drop_indexes(loc, &namespaces)?;
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
        let scope = rec.rotation.tenant_id.clone();
        let tenant = (scope != INSTANCE).then_some(scope.as_str());
        let new_key_id = rec.rotation.new_key_id.clone();
        let key = self.state.tenant_env_key(&new_key_id, tenant)?;
        if rec.unlisted {
            // Recorded, and its files not listed yet: a start under way lists them (and wakes
            // the worker); one a crash or an error stopped is finished here.
            let Some(start) = self.state.try_instance_rotation_start() else { return Ok(0) };
            rec = self.state.finish_instance_rotation_start(&new_key_id, &start)?;
        }
        let mut rewritten = 0;
        for i in 0..rec.environments.len() {
            let (loc, state) = rec.environments[i].clone();
            if state == EnvState::Done {
                continue;
            }
            let namespaces = || -> Result<BTreeSet<NamespaceId>> {
                self.state.catalog.read(|r, t| env_namespaces(t, r, &scope, &loc))
            };
            // A file a queued purge erases (a deleted `physical` namespace's, a deleted
            // `hybrid` tenant's) is not rewritten: it stays under the old key until the purge
            // erases it, and that is before the old key is destroyed (its destruction is queued
            // behind that purge when the rotation ends, and a round of purges destroys keys
            // only once every file of the round is erased).
            let erased = self.state.catalog.read(|r, t| erased_by_purge(t, r, &loc))?;
            let rewrite = !erased
                && loc.dir(&self.state.dir).exists()
                && match tenant {
                    // A hybrid tenant's file is rewritten even with no namespace left in it
                    // (one made later opens it under the new key); a deleted namespace's file
                    // is not.
                    Some(_) => {
                        matches!(loc, EnvLocation::Tenant { .. }) || !namespaces()?.is_empty()
                    }
                    // Still under the old instance key (a tenant's own rotation may have
                    // moved it meanwhile; a crash may have left it done but not recorded).
                    None => self.state.env_key_id(&loc)? == rec.rotation.old_key_id,
                };
            if rewrite {
                let store = self.state.data_env_with(&loc, tenant)?;
                // The file's owner, as its record names it (a physical namespace's tenant).
                let owner = match (tenant, read_key_record(&loc.dir(&self.state.dir))?) {
                    (Some(t), _) => Some(t.to_owned()),
                    (None, Some(rec)) => rec.tenant_id,
                    (None, None) => match &loc {
                        EnvLocation::Tenant { tenant_id } => Some(tenant_id.clone()),
                        _ => None,
                    },
                };
                let mark_staged = |next_dir: &Path| {
                    write_key_record(next_dir, &new_key_id, owner.as_deref())?;
                    self.save_env_state(&scope, &loc, EnvState::Staged)?;
                    Ok(!self.stop_rotations_after_staging.load(Ordering::SeqCst))
                };
                store.rekey(&key.key, mark_staged)?;
            }
            let rewritten_before = !erased
                && tenant.is_none()
                && self.state.env_key_id(&loc)?.as_deref() == Some(&new_key_id);
            if rewrite || rewritten_before {
                // Its namespaces' vector indexes were under the old key: rebuilt under the new.
                self.drop_indexes(&loc, &namespaces()?)?;
            }
            if !self.save_env_state(&scope, &loc, EnvState::Done).map(|()| true).or_else(|e| {
                if e.code() == crate::ErrorCode::NotFound {
                    Ok(false)
                } else {
                    Err(e)
                }
            })? {
                return Ok(rewritten); // the tenant was deleted meanwhile, its record with it
            }
            set_state(&mut rec, &loc, EnvState::Done);
            rewritten += 1;
            tracing::info!(
                "key rotation of {} to key {new_key_id}: {} of {} file(s) done",
                whose(&scope),
                rec.rotation.environments_done,
                rec.rotation.environments_total
            );
        }
        if rec.catalog.is_some_and(|s| s != EnvState::Done) {
            self.rekey_catalog(&key)?;
            rewritten += 1;
        }
        let now = self.state.options.clock.now();
        let finished = self.state.catalog_write_affecting(Affects::NoKeys, |w, t| {
            let Some(mut current) = get_record(t, w, &scope)? else { return Ok(false) };
            if current.rotation.state == RotationState::Done
                || current.environments.iter().any(|(_, s)| *s != EnvState::Done)
            {
                return Ok(false);
            }
            if current.catalog.is_some() {
                // The catalog is written under the new key: this very write says so.
                current.catalog = Some(EnvState::Done);
                current.count_done();
            }
            current.rotation.state = RotationState::Done;
            current.rotation.finished_at = Some(now);
            // The old key goes once no environment uses it (never the instance key a
            // tenant's rotation moved away from).
            if let Some(old) = &current.rotation.old_key_id {
                crate::catalog::queue_key_destruction(t, w, old)?;
            }
            put_record(t, w, &current)?;
            Ok(true)
        })?;
        if finished {
            tracing::info!("key rotation of {} to key {new_key_id} done", whose(&scope));
            self.state.wake_worker();
        }
        Ok(rewritten)
    }

    /// Rewrites the catalog under the instance key `key`, as any environment is rewritten
    /// (see [`Store::rekey`]); every catalog write made meanwhile names no namespace, so the
    /// last round copies the whole catalog again under its write guard (every catalog read
    /// and write waits for that copy). The catalog cannot record its own new file as staged:
    /// [`CATALOG_STAGED`] beside it does, and the next open finishes the move (see
    /// [`open_catalog`]).
    fn rekey_catalog(&self, key: &EnvKey) -> Result<()> {
        let dir = self.state.dir.join("catalog");
        let staged = |next_dir: &Path| {
            write_key_record(next_dir, &key.id, None)?;
            crate::storage::write_synced(&dir, &dir.join(CATALOG_STAGED), b"{}")?;
            Ok(!self.stop_rotations_after_staging.load(Ordering::SeqCst))
        };
        if crate::state::key_id_in(&dir, true)?.as_deref() != Some(key.id.as_str()) {
            self.state.catalog.rekey(&key.key, staged)?;
        }
        remove_if_there(&dir.join(CATALOG_STAGED))?;
        tracing::info!("key rotation of the instance to key {}: the catalog is done", key.id);
        Ok(())
    }
}

/// Opens the catalog of the data directory `dir`, whose instance key is `instance` (`None`:
/// plain), finishing first the move of a new catalog file a crash left staged; answers it
/// and the instance key, which is the new key of an instance key rotation whose start a crash
/// kept from reaching `storage.json`.
pub(crate) fn open_catalog(
    dir: &Path,
    keys: Option<&dyn KeyProvider>,
    instance: Option<EnvKey>,
) -> Result<(Store<CatalogTables>, Option<EnvKey>)> {
    let catalog_dir = dir.join("catalog");
    if catalog_dir.join(CATALOG_STAGED).exists() {
        crate::store::finish_rekey(&catalog_dir)?;
        remove_if_there(&catalog_dir.join(CATALOG_STAGED))?;
    } else {
        // An unfinished copy: the catalog stays under the key it was under.
        match std::fs::remove_dir_all(catalog_dir.join("rekeying")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    let Some(instance) = instance else {
        return Ok((crate::encryption::open_store(&catalog_dir, 1 << 30, None)?, None));
    };
    // The instance key's `cipher` is the directory's: that of files without a record.
    let key_of = |id: &str, cipher: Cipher| -> Result<EnvKey> {
        let key = if id == instance.id {
            instance.key.key.clone()
        } else {
            keys.map(|k| k.get(id)).transpose()?.flatten().ok_or_else(|| Error::EncryptionKey {
                owner: crate::encryption::INSTANCE_OWNER.into(),
                key_id: id.into(),
                problem: keys.map_or_else(
                    || "is needed and no key provider is configured".into(),
                    |k| format!("is not in {}", k.describe()),
                ),
            })?
        };
        Ok(EnvKey::instance(id, PageKey { cipher, key }))
    };
    let catalog_key = match read_key_record(&catalog_dir)? {
        Some(rec) => key_of(&rec.key_id, rec.cipher)?,
        None => key_of(crate::encryption::UNRECORDED_KEY_ID, instance.key.cipher)?,
    };
    let catalog = crate::encryption::open_store(&catalog_dir, 1 << 30, Some(&catalog_key))?;
    let rotated = catalog.read(|r, t| get_record(t, r, INSTANCE))?;
    let instance = match rotated {
        Some(rec) if rec.rotation.new_key_id != instance.id => {
            crate::format::set_instance_key_id(dir, &rec.rotation.new_key_id)?;
            key_of(&rec.rotation.new_key_id, instance.key.cipher)?
        }
        _ => instance,
    };
    Ok((catalog, Some(instance)))
}

/// The namespaces whose rows environment `loc` of a rotation of `scope` holds.
fn env_namespaces(
    t: &CatalogTables,
    r: &mut crate::storage::RoTxn<'_>,
    scope: &str,
    loc: &EnvLocation,
) -> Result<BTreeSet<NamespaceId>> {
    if scope == INSTANCE {
        return Ok(namespaces_at(t, r, loc)?.into_iter().collect());
    }
    let Some(tenant) = t.tenants.get(r, scope)? else { return Ok(BTreeSet::new()) };
    let envs = tenant_environments(t, r, scope, tenant.isolation_mode)?;
    Ok(envs.into_iter().filter(|(l, _)| l == loc).flat_map(|(_, ns)| ns).collect())
}

fn whose(scope: &str) -> String {
    if scope == INSTANCE {
        "the instance".into()
    } else {
        format!("tenant {scope}")
    }
}

fn remove_if_there(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

impl EngineInner {
    /// Records environment `loc` of the rotation of `scope` (a tenant id, or [`INSTANCE`])
    /// in `state`; `not_found` when the record is gone (the tenant was deleted).
    fn save_env_state(&self, scope: &str, loc: &EnvLocation, state: EnvState) -> Result<()> {
        self.state.catalog_write_affecting(Affects::NoKeys, |w, t| {
            let Some(mut rec) = get_record(t, w, scope)? else {
                return Err(Error::not_found("key rotation", scope));
            };
            set_state(&mut rec, loc, state);
            put_record(t, w, &rec)
        })
    }
}

impl EngineInner {
    /// Drops the vector indexes of `namespaces`, whose rows environment `loc` holds, just
    /// rewritten under a new key: each index file (under the old key) is removed, closing it,
    /// so a build under way into it is discarded (see `index::build`), then the namespace is
    /// marked unindexed in `loc`, so its next recall or write queues it to be built again,
    /// under the new key (recall is exact meanwhile).
    fn drop_indexes(&self, loc: &EnvLocation, namespaces: &BTreeSet<NamespaceId>) -> Result<()> {
        for ns in namespaces {
            self.state.indexes.destroy(*ns)?;
        }
        // A file purged meanwhile is not made again here.
        if !namespaces.is_empty() && loc.dir(&self.state.dir).join("data.mdb").exists() {
            self.mark_unindexed(loc, namespaces)?;
        }
        for ns in namespaces {
            self.state.forget_namespace_caches(*ns);
        }
        Ok(())
    }

    /// Records in environment `loc` that none of `namespaces` has an index (see
    /// [`EngineInner::drop_indexes`]). Read once their indexes are closed: a build that
    /// recorded its step before is seen here, one after it records nothing.
    fn mark_unindexed(&self, loc: &EnvLocation, namespaces: &BTreeSet<NamespaceId>) -> Result<()> {
        let data = self.state.data_env(loc)?;
        let indexed: Vec<NamespaceId> = data.read(|r, t| {
            let mut indexed = Vec::new();
            for ns in namespaces {
                if t.stats_of(r, *ns)?.indexed_until > 0 {
                    indexed.push(*ns);
                }
            }
            Ok(indexed)
        })?;
        for ns in indexed {
            data.write_ns(ns, |w, t| {
                let mut stats = t.stats_of(w, ns)?;
                stats.indexed_until = 0;
                t.put_stats(w, ns, &stats)
            })?;
        }
        Ok(())
    }
}

/// Whether a queued purge erases environment `loc`'s files (see `engine::purge`): a deleted
/// `physical` namespace's, a deleted `hybrid` tenant's.
fn erased_by_purge(
    t: &CatalogTables,
    r: &mut crate::storage::RoTxn<'_>,
    loc: &EnvLocation,
) -> Result<bool> {
    for job in t.purges.iter(r)? {
        let erased = match job?.1 {
            PurgeJob::Namespace { location, .. } => {
                matches!(location, EnvLocation::Namespace { .. }) && location == *loc
            }
            PurgeJob::RemoveEnv { location } => location == *loc,
            PurgeJob::DestroyKey { .. } => false,
        };
        if erased {
            return Ok(true);
        }
    }
    Ok(false)
}
