//! The engine's audited catalog writes: a control-plane change and its entry made durable by
//! one commit, the actor behind a key, and the retention of old entries.

use std::sync::Arc;

use parking_lot::Mutex;

use super::State;
use crate::audit::{
    mark_written_in_commit, new_request_id, unwritten_in_commit, AuditActor, Draft, Unfinished,
    INSTANCE,
};
use crate::auth::ParsedKey;
use crate::catalog::CatalogTables;
use crate::error::{Error, Result};

impl State {
    /// A catalog write that is the whole change of a control-plane request (creating a
    /// namespace, a key): when the request is recorded (it runs under
    /// [`Handle::with_entry_in_commit`]), its audit entry is written in the same transaction
    /// as the change, after the entries queued before it, so the change and its entry are
    /// made durable by one commit (shared with the other writes of its group). `made` names
    /// the tenant the change was made in and the id of what it made. If `f` fails, nothing is
    /// written and the request's outcome is recorded afterwards, as for any request.
    pub(crate) fn catalog_write_audited<R: Send>(
        &self,
        affects: super::Affects<'_>,
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

impl State {
    /// [`State::catalog_write_audited`] for a caller on an async executor, whose
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

impl State {
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
