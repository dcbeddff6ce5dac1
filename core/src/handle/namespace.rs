//! Namespaces: creation, listing, deletion and memory policies. A deleted namespace is
//! unreachable once its catalog commit returns; its rows go with the purge.

use std::ops::Bound;

use heed3::types::Bytes;

use crate::auth::{authorize, Action, NamespaceAction, Principal};
use crate::datastore::NamespaceStats;
use crate::error::{Error, Result};
use crate::handle::{Caller, Handle};
use crate::namespace::{
    gone, namespace_view_with, not_utf8, validate_namespace_name, DecayPolicy, DeletedNamespace,
    Namespace, NamespaceCreation, NamespaceOptions, NamespaceRecord, Pager, MAX_DIMENSIONS,
};
use crate::page::{Page, Paged};
use crate::state::Affects;
use crate::storage::scan;

impl Handle {
    /// Looks a namespace up and authorizes `action` on it in one step. The lookup happens
    /// before the decision either way, so a refusal takes the same path whether or not the
    /// namespace exists.
    pub(crate) fn namespace_for(
        &self,
        caller: &Caller,
        name: &str,
        action: NamespaceAction,
    ) -> Result<NamespaceRecord> {
        // LMDB refuses empty keys (MDB_BAD_VALSIZE): an empty name simply matches nothing.
        let rec = if (1..=128).contains(&name.len()) {
            self.state.catalog.read(|r, t| {
                let Some(bytes) = t.namespaces.remap_data_type::<Bytes>().get(r, name)? else {
                    return Ok(None);
                };
                let decode = |b: &[u8]| Ok(serde_json::from_slice(b)?);
                self.state.decoded_records.get(name, bytes, decode).map(Some)
            })?
        } else {
            None
        };
        authorize(caller.principal(), action.on(name, rec.as_ref()))?;
        let rec = rec.ok_or_else(|| Error::not_found("namespace", name))?;
        if self.state.is_dead(rec.id) {
            return Err(gone(caller.principal(), name));
        }
        Ok(rec)
    }

    fn namespace_view(&self, rec: NamespaceRecord) -> Result<Namespace> {
        let stats = self.state.namespace_stats(&rec)?;
        Ok(namespace_view_with(rec, stats))
    }
}

impl Handle {
    /// Creates a namespace. `conflict` if the name is taken (unless `exist_ok`),
    /// `quota_exceeded` beyond the tenant's `max_namespaces`.
    pub fn create_namespace(&self, name: &str, opts: NamespaceOptions) -> Result<Namespace> {
        let creation = self.namespace_creation(name, opts)?;
        // A new namespace changes no key's resolution: a grant names a namespace by id too, so
        // a name taken again does not revive a grant of the namespace deleted under it.
        let made = self.state.catalog_write_audited(
            Affects::NoKeys,
            |w, t| creation.run(w, t),
            NamespaceCreation::made,
        )?;
        self.created_namespace(made)
    }

    /// [`Handle::create_namespace`] for a caller on an async executor: checked on the calling
    /// thread, then queued for the catalog's next group commit (shared with the creations
    /// and other catalog writes arriving meanwhile) and awaited without a thread; answered
    /// after that commit is on disk. `entry`: the request's audit entry, written with its
    /// outcome whatever it is: by the same commit as the namespace, or as the refusal (a name
    /// taken, the tenant's quota reached), so that a refused creation costs no commit of its
    /// own; by a commit of its own only for a creation refused before it was queued or one
    /// whose commit failed.
    pub(crate) async fn create_namespace_async(
        &self,
        name: &str,
        opts: NamespaceOptions,
        entry: crate::audit::Unfinished,
    ) -> Result<Namespace> {
        let written = match self.namespace_creation(name, opts) {
            Ok(creation) => {
                self.state
                    .catalog_write_audited_async(
                        entry.clone(),
                        move |w, t| creation.run_or_refuse(w, t),
                        NamespaceCreation::made,
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        let answer = match written {
            Ok(Ok(made)) => self.created_namespace(made),
            Ok(Err(refused)) => return Err(refused), // recorded by its commit
            Err(e) => Err(e),
        };
        if let Err(e) = &answer {
            self.record_control_failure_async(&entry, e.code()).await;
        }
        answer
    }

    /// A creation checked (name, caller's right, policy, dimensions), ready to write.
    fn namespace_creation(&self, name: &str, opts: NamespaceOptions) -> Result<NamespaceCreation> {
        let caller = self.caller()?;
        validate_namespace_name(name, "name")?;
        let tenant_id = opts.tenant_id.clone().or_else(|| match caller.principal() {
            Principal::Member { tenant_id, .. } => Some(tenant_id.clone()),
            _ => None,
        });
        authorize(caller.principal(), Action::CreateNamespace(tenant_id.as_deref()))?;
        let policy = opts.policy.unwrap_or_default();
        policy.validate()?;
        if let Some(d) = opts.dimensions {
            if d == 0 || d > MAX_DIMENSIONS {
                return Err(Error::invalid(
                    "dimensions",
                    format!("must be between 1 and {MAX_DIMENSIONS}"),
                ));
            }
        }
        Ok(NamespaceCreation {
            name: name.to_owned(),
            tenant_id,
            policy,
            dimensions: opts.dimensions,
            exist_ok: opts.exist_ok,
            now: self.state.options.clock.now(),
            shards: self.state.options.shards.max(1),
        })
    }

    /// The answer to a creation: the namespace made, or the one that existed (`exist_ok`).
    fn created_namespace(&self, (rec, new): (NamespaceRecord, bool)) -> Result<Namespace> {
        if new {
            // Nothing is stored under a new id: its environment (one of its own in hybrid
            // and physical modes) is opened, created if need be, on first use, not here.
            return Ok(namespace_view_with(rec, NamespaceStats::default()));
        }
        self.namespace_view(rec)
    }

    /// One namespace (root; the owning tenant's admins). Others get `forbidden`.
    pub fn get_namespace(&self, name: &str) -> Result<Namespace> {
        let caller = self.caller()?;
        let rec =
            self.namespace_for(&caller, name, NamespaceAction::Manage).or_else(|e| match e {
                // A key that may read a namespace may also see its description.
                Error::Forbidden { .. } => self.namespace_for(&caller, name, NamespaceAction::Read),
                other => Err(other),
            })?;
        self.namespace_view(rec)
    }

    /// Namespaces the caller can see: root all (or one tenant's), a tenant's members their
    /// tenant's, a scoped key those in its scope. Paged by offset, in name order (see
    /// [`Handle::list_namespaces_from`] for pages by cursor).
    pub fn list_namespaces(&self, page: Page, tenant_id: Option<&str>) -> Result<Paged<Namespace>> {
        self.list_namespaces_from(page, tenant_id, None)
    }

    /// [`Handle::list_namespaces`] from `cursor` (the `next_cursor` of the page before), which
    /// is a position in the name order: a page by cursor costs the same however deep it is,
    /// and namespaces created or deleted meanwhile shift no other across it. `offset` cannot
    /// be combined with a cursor.
    pub fn list_namespaces_from(
        &self,
        page: Page,
        tenant_id: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<Paged<Namespace>> {
        let caller = self.caller()?;
        let (offset, limit) = page.bounds()?;
        let after = match cursor {
            Some(c) => {
                if offset > 0 {
                    return Err(Error::invalid("offset", "cannot be combined with cursor"));
                }
                Some(crate::cursor::unseal_after_name(&self.state.cursor_key()?, c)?)
            }
            None => None,
        };
        let after = after.as_deref();
        // Only the page's records are read: with a million namespaces a page by offset costs
        // a walk over the names before it (keys only), one by cursor a seek.
        let (total, recs, more) = self.state.catalog.read(|r, t| {
            let is_dead = |id| self.state.is_dead(id);
            let none_dead = self.state.none_dead();
            let mut pager = Pager::new(&is_dead, none_dead, offset, limit, after);
            match caller.principal() {
                Principal::Root => {
                    if let Some(tid) = tenant_id {
                        pager.tenant(t, r, tid)?;
                    } else {
                        let names = t.namespaces.remap_types::<Bytes, Bytes>();
                        let from = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.into()));
                        scan(&names, r, from, Bound::Unbounded, false, |r, name, _| {
                            pager.offer(t, r, std::str::from_utf8(name).map_err(not_utf8)?)?;
                            Ok(!pager.more)
                        })?;
                        pager.total = t.namespaces.len(r)?;
                    }
                }
                Principal::Member { tenant_id: own, .. } => {
                    if tenant_id.is_some_and(|t| t != own) {
                        return Err(Error::forbidden("Key not authorized for this tenant"));
                    }
                    pager.tenant(t, r, own)?;
                }
                Principal::Scoped { grants, .. } => {
                    let mut names: Vec<&str> =
                        grants.iter().map(|g| g.namespace.as_str()).collect();
                    names.sort_unstable();
                    names.dedup();
                    for name in names {
                        let Some(rec) = t.namespaces.get(r, name)? else { continue };
                        let granted =
                            grants.iter().any(|g| g.namespace == name && g.namespace_id == rec.id);
                        if granted && tenant_id.is_none_or(|t| rec.tenant_id.as_deref() == Some(t))
                        {
                            pager.total += 1;
                            pager.offer(t, r, name)?;
                        }
                    }
                }
            }
            Ok((pager.total, pager.page, pager.more))
        })?;
        let next_cursor = match recs.last() {
            Some(last) if more => {
                Some(crate::cursor::seal_after_name(&self.state.cursor_key()?, &last.name))
            }
            _ => None,
        };
        let items = recs.into_iter().map(|r| self.namespace_view(r)).collect::<Result<_>>()?;
        Ok(Paged { items, total_count: total, next_cursor })
    }

    /// Deletes a namespace atomically: from the moment this returns, every call on it fails
    /// and a namespace created under the same name starts empty. Its data is purged and
    /// erased from disk in the background.
    pub fn delete_namespace(&self, name: &str) -> Result<DeletedNamespace> {
        let caller = self.caller()?;
        let rec = self.namespace_for(&caller, name, NamespaceAction::Manage)?;
        self.remove_namespace(&caller, &rec)
    }

    /// Removes the namespace `rec` that `caller` was authorised to delete, if it is still the
    /// one under its name.
    pub(crate) fn remove_namespace(
        &self,
        caller: &Caller,
        rec: &NamespaceRecord,
    ) -> Result<DeletedNamespace> {
        let name = rec.name.as_str();
        let gate = self.state.purge_gate();
        let chain = self.state.catalog_write_affecting(Affects::Namespace(name), |w, t| {
            // What was authorised is what is removed: the same namespace id, in this one
            // transaction (the name may have been deleted and taken by another tenant since).
            let cur = t
                .namespaces
                .get(w, name)?
                .filter(|c| c.id == rec.id)
                .ok_or_else(|| gone(caller.principal(), name))?;
            let chain = match &cur.tenant_id {
                Some(tid) => crate::tenant::quota_chain(t, w, tid)?,
                None => Vec::new(),
            };
            crate::catalog::unlink_namespace(t, w, &cur)?;
            Ok(chain)
        })?;
        let held = self.state.retire_namespaces(std::slice::from_ref(rec));
        drop(gate);
        self.state.wake_worker();
        self.state.usage.adjust(&chain, -(held? as i64));
        Ok(DeletedNamespace { name: name.to_owned(), deleted_at: self.state.options.clock.now() })
    }

    /// The namespace's decay policy.
    pub fn get_memory_policy(&self, name: &str) -> Result<DecayPolicy> {
        let caller = self.caller()?;
        Ok(self.namespace_for(&caller, name, NamespaceAction::Read)?.policy)
    }

    /// Replaces the namespace's decay policy. Retention is namespace administration (root, or
    /// an admin of the owning tenant): a policy can make the sweeper delete every memory.
    pub fn set_memory_policy(&self, name: &str, policy: DecayPolicy) -> Result<DecayPolicy> {
        let caller = self.caller()?;
        policy.validate()?;
        let rec = self.namespace_for(&caller, name, NamespaceAction::Manage)?;
        self.state.catalog_write_affecting(Affects::NoKeys, |w, t| {
            let mut cur = t
                .namespaces
                .get(w, name)?
                .filter(|c| c.id == rec.id)
                .ok_or_else(|| Error::namespace_forbidden(name))?;
            cur.policy = policy;
            t.namespaces.put(w, name, &cur)?;
            Ok(policy)
        })
    }
}
