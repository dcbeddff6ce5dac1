//! The engine's audited catalog writes: a control-plane change and its entry made durable by
//! one commit, the actor behind a key, and the retention of old entries.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::audit::{
    mark_written_in_commit, new_request_id, unwritten_in_commit, AuditActor, Draft, Unfinished,
    INSTANCE,
};
use crate::auth::ParsedKey;
use crate::catalog::CatalogTables;
use crate::engine::EngineInner;
use crate::error::{Error, Result};

impl EngineInner {
    /// A catalog write that is the whole change of a control-plane request (creating a
    /// namespace, a key): when the request is recorded (it runs under
    /// [`Handle::with_entry_in_commit`]), its audit entry is written in the same transaction
    /// as the change, after the entries queued before it, so the change and its entry are
    /// made durable by one commit (shared with the other writes of its group). `made` names
    /// the tenant the change was made in and the id of what it made. If `f` fails, nothing is
    /// written and the request's outcome is recorded afterwards, as for any request.
    pub(crate) fn catalog_write_audited<R: Send>(
        &self,
        affects: crate::engine::Affects<'_>,
        mut f: impl FnMut(&mut heed3::RwTxn<'_>, &CatalogTables) -> Result<R> + Send,
        made: impl Fn(&R) -> (Option<String>, Option<String>) + Sync,
    ) -> Result<R> {
        let Some(pending) = unwritten_in_commit() else {
            return self.catalog_write_affecting(affects, f);
        };
        let mut taken = None;
        let written = self.catalog_write_affecting(affects, |w, t| {
            let r = f(w, t)?;
            let (made_in, made) = made(&r);
            let own = pending.finish(Ok(()), made_in, made);
            self.audit.write_taken(w, &t.audit, &mut taken, std::slice::from_ref(&own))?;
            Ok(r)
        });
        self.audit.settle_taken(taken, &written);
        if written.is_ok() {
            mark_written_in_commit();
        }
        written
    }
}

impl EngineInner {
    /// [`EngineInner::catalog_write_audited`] for a caller on an async executor, whose
    /// request's audit entry is `entry`: `f`'s change and the entry are queued for the
    /// catalog's next group commit and awaited without a thread (see
    /// `Store::write_ns_async`). The change must alter no key's resolution. `f` may refuse
    /// the request after reading the catalog and before writing anything (`Ok(Err(_))`, e.g.
    /// a name taken): the refusal's entry is then written by the same commit, and comes back
    /// as the inner `Err`. If `f` fails otherwise, nothing is written (the caller records the
    /// outcome: [`Handle::record_control_failure_async`]).
    pub(crate) async fn catalog_write_audited_async<R: Send + 'static>(
        self: &Arc<Self>,
        entry: Unfinished,
        mut f: impl FnMut(&mut heed3::RwTxn<'_>, &CatalogTables) -> Result<Result<R>> + Send + 'static,
        made: impl Fn(&R) -> (Option<String>, Option<String>) + Send + 'static,
    ) -> Result<Result<R>> {
        self.catalog_write_with_entries_async(move |w, t| {
            Ok(match f(w, t)? {
                Ok(r) => {
                    let (made_in, made) = made(&r);
                    let own = entry.finish(Ok(()), made_in, made);
                    (Ok(r), Some(own))
                }
                Err(refused) => {
                    let own = entry.finish(Err(refused.code()), None, None);
                    (Err(refused), Some(own))
                }
            })
        })
        .await
    }

    /// An awaited catalog write of `f`'s change, then the queued audit entries, then the
    /// entry `f` returns (see [`AuditLog::write_taken`]).
    pub(crate) async fn catalog_write_with_entries_async<R: Send + 'static>(
        self: &Arc<Self>,
        mut f: impl FnMut(&mut heed3::RwTxn<'_>, &CatalogTables) -> Result<(R, Option<Draft>)>
            + Send
            + 'static,
    ) -> Result<R> {
        let taken = Arc::new(Mutex::new(None));
        let (inner, in_job) = (self.clone(), taken.clone());
        let written = self
            .catalog
            .write_async(move |w, t| {
                let (r, own) = f(w, t)?;
                inner.audit.write_taken(w, &t.audit, &mut in_job.lock(), own.as_slice())?;
                Ok(r)
            })
            .await;
        self.audit.settle_taken(taken.lock().take(), &written);
        written
    }
}

impl EngineInner {
    /// The actor behind key `id` (`None`: root), with the tenant its key belongs to.
    pub(crate) fn actor(&self, key_id: Option<&str>) -> (AuditActor, Option<String>) {
        let Some(id) = key_id else {
            return (AuditActor { principal: "root".into(), ..AuditActor::default() }, None);
        };
        let rec = self.catalog.read(|r, t| Ok(t.keys.get(r, id)?)).ok().flatten();
        let principal = match &rec {
            Some(k) if k.grants.is_empty() => "member",
            Some(_) => "scoped",
            None => "anonymous",
        };
        let actor = AuditActor {
            principal: principal.into(),
            key_id: Some(id.to_owned()),
            key_prefix: Some(crate::auth::display_prefix(id)),
            member_id: rec.as_ref().and_then(|k| k.member_id.clone()),
        };
        (actor, rec.and_then(|k| k.tenant_id))
    }

    /// Records a refusal made before any operation ran: a key that does not authenticate
    /// (`key` is `None` when none was given or it could not be parsed).
    pub(crate) fn audit_unauthenticated(
        &self,
        key: Option<&ParsedKey>,
        action: &str,
        error: &Error,
        request_id: Option<&str>,
    ) {
        let (actor, tenant) = match key {
            Some(k) => self.actor(Some(&k.id)),
            None => (AuditActor { principal: "anonymous".into(), ..AuditActor::default() }, None),
        };
        self.audit.append(
            &self.catalog,
            Draft {
                time: self.options.clock.now(),
                tenant_id: tenant.unwrap_or_else(|| INSTANCE.into()),
                actor,
                action: action.into(),
                target: None,
                outcome: Err(error.code()),
                request_id: request_id.map_or_else(new_request_id, str::to_owned),
            },
            false,
        );
    }

    /// Commits queued entries and applies the retention setting (the background worker).
    pub(crate) fn audit_maintenance(&self) -> Result<u64> {
        self.audit.flush(&self.catalog);
        match self.options.audit_retention_days {
            Some(days) => {
                let cutoff = self.options.clock.now() - chrono::Duration::days(i64::from(days));
                self.audit.prune(&self.catalog, cutoff)
            }
            None => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::audit::{AuditEntry, ListAudit, Subject};
    use crate::error::ErrorCode;
    use crate::{Engine, Options};

    /// An engine with one tenant (whose creation is the first entry of its chain).
    fn tenant() -> (tempfile::TempDir, Engine, String) {
        let dir = tempfile::tempdir().unwrap();
        let engine =
            Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
        let args = serde_json::json!({ "name": "acme" });
        let made = engine.root().call("create_tenant", args).unwrap();
        let id = made.value["id"].as_str().unwrap().to_owned();
        (dir, engine, id)
    }

    fn entries(engine: &Engine, tenant: &str) -> Vec<AuditEntry> {
        let q = ListAudit { tenant_id: tenant.into(), limit: Some(1000), ..ListAudit::default() };
        engine.root().list_audit(q).unwrap().entries
    }

    /// Issue 19: a namespace or key created through the operation table is made durable with
    /// its audit entry by one catalog commit (one fsync'd commit, not two), the entry names
    /// what was made; a refused creation still gets its entry.
    #[test]
    fn a_creation_and_its_entry_share_one_commit_and_a_refused_one_is_recorded() {
        let (_dir, engine, id) = tenant();
        let root = engine.root().with_request_id("req-1");
        let commits = || engine.inner.catalog.commits();
        let before = commits();
        root.call("create_namespace", serde_json::json!({ "name": "one", "tenant_id": id }))
            .unwrap();
        assert_eq!(commits(), before + 1, "the namespace and its entry: one commit");
        let key = crate::CreateKey::tenant_role("k", &id, crate::Role::Viewer);
        let made = root.call("create_key", serde_json::to_value(key).unwrap()).unwrap();
        let key_id = made.value["id"].as_str().unwrap().to_owned();
        assert_eq!(commits(), before + 2, "the key and its entry: one commit");
        let args = serde_json::json!({ "name": "one", "tenant_id": id });
        assert_eq!(root.call("create_namespace", args).unwrap_err().code(), ErrorCode::Conflict);

        let log = entries(&engine, &id);
        let last: Vec<(&str, Option<&str>, &str, Option<&str>)> = log[log.len() - 3..]
            .iter()
            .map(|e| {
                (e.action.as_str(), e.target.as_deref(), e.result.as_str(), e.error.as_deref())
            })
            .collect();
        assert_eq!(
            last,
            [
                ("create_namespace", Some("one"), "ok", None),
                ("create_key", Some(key_id.as_str()), "ok", None),
                ("create_namespace", Some("one"), "failed", Some("conflict")),
            ]
        );
        assert!(log.iter().rev().take(3).all(|e| e.request_id == "req-1"));
        assert!(engine.root().verify_audit(&id).unwrap().ok);
    }

    /// An entry still queued (a refusal does not wait for its commit) is written before the
    /// entry of a creation decided after it: the chain keeps the order of the decisions.
    #[test]
    fn queued_entries_go_into_the_chain_before_a_later_creations_entry() {
        let (_dir, engine, id) = tenant();
        let root = engine.root();
        let queued = root
            .draft(
                "store_memory",
                Subject { tenant: Some(id.clone()), target: None, control: false },
            )
            .finish(Err(ErrorCode::Forbidden), None, None);
        engine.inner.audit.queue.lock().push_back(queued);
        root.call("create_namespace", serde_json::json!({ "name": "two", "tenant_id": id }))
            .unwrap();
        let log = entries(&engine, &id);
        let actions: Vec<&str> = log[log.len() - 2..].iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["store_memory", "create_namespace"]);
        assert!(engine.inner.audit.queue.lock().is_empty());
        assert!(engine.root().verify_audit(&id).unwrap().ok);
    }
}
