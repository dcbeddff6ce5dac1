//! Reading and verifying the audit log: who may read which chain, and the listing and
//! verification of a chain's entries (the log itself is [`crate::audit`]).

use std::ops::Bound;

use serde_json::Value;

use crate::audit::{
    entry_key, new_request_id, verify_chain, AuditEntry, AuditPage, AuditVerification, Draft,
    ListAudit, Subject, Unfinished, INSTANCE,
};
use crate::auth::{authorize, Action};
use crate::error::{Error, ErrorCode, Result};
use crate::handle::Handle;

impl Handle {
    /// Records the outcome of `op` about `subject` (see [`Subject::recorded`]).
    pub(crate) fn audit(
        &self,
        op: &str,
        subject: Subject,
        outcome: std::result::Result<&Value, ErrorCode>,
    ) {
        let control = subject.control;
        let draft = self.entry(op, subject, outcome);
        // Control-plane entries are committed before the answer; refusals may ride along
        // with the next commit, so a flood of refused calls costs one transaction per batch.
        self.state.audit.append(&self.state.catalog, draft, control);
    }

    /// [`Handle::audit`] of a request whose caller commits the entry itself before it
    /// answers (with [`AuditLog::flush`](crate::audit::AuditLog::flush)): the entry is
    /// queued, and rides along with the next catalog commit, whoever makes it.
    pub(crate) fn audit_queued(
        &self,
        op: &str,
        subject: Subject,
        outcome: std::result::Result<&Value, ErrorCode>,
    ) {
        let draft = self.entry(op, subject, outcome);
        self.state.audit.enqueue(draft);
    }

    /// The entry of `op` about `subject` with its outcome.
    fn entry(
        &self,
        op: &str,
        mut subject: Subject,
        outcome: std::result::Result<&Value, ErrorCode>,
    ) -> Draft {
        if let Ok(reply) = outcome {
            subject.complete(op, reply);
        }
        self.draft(op, subject).finish(outcome.map(drop), None, None)
    }

    /// [`Handle::audit`] of a control-plane request's failure (`entry` is its entry) for a
    /// caller on an async executor: committed before it returns, without a thread waiting.
    pub(crate) async fn record_control_failure_async(&self, entry: &Unfinished, code: ErrorCode) {
        let draft = entry.finish(Err(code), None, None);
        let written =
            self.state.catalog_write_with_entries_async(move |_, _| Ok(((), Some(draft.clone()))));
        if let Err(e) = written.await {
            tracing::error!("audit entry could not be written: {e}");
        }
    }

    /// The entry of `op` about `subject`, before its outcome is known.
    pub(crate) fn draft(&self, op: &str, subject: Subject) -> Unfinished {
        let (actor, key_tenant) = self.state.actor(self.key_id());
        Unfinished {
            subject_tenant: subject.tenant,
            key_tenant,
            draft: Draft {
                time: self.state.options.clock.now(),
                tenant_id: INSTANCE.into(),
                actor,
                action: op.into(),
                target: subject.target,
                outcome: Ok(()),
                request_id: self.request_id().map_or_else(new_request_id, str::to_owned),
            },
        }
    }

    /// Runs a control-plane request whose entry may be written by the catalog transaction
    /// that makes its change (see [`State::catalog_write_audited`]). Returns the
    /// result and whether that happened (otherwise the caller records the outcome).
    pub(crate) fn with_entry_in_commit<R>(
        &self,
        op: &str,
        subject: &Subject,
        run: impl FnOnce() -> R,
    ) -> (R, bool) {
        let pending = self.draft(op, Subject { control: true, ..subject.clone() });
        crate::audit::run_in_commit(pending, run)
    }

    /// Records a refusal made by a transport on this handle's behalf (e.g. the HTTP
    /// server's `max_connections`), as if `op` had been refused by core.
    pub fn record_refusal(&self, op: &str, error: &Error) {
        let subject = Subject { tenant: None, target: None, control: false };
        self.audit(op, subject, Err(error.code()));
    }

    fn audit_tenant_allowed(&self, tenant_id: &str) -> Result<()> {
        let caller = self.caller()?;
        if tenant_id == INSTANCE {
            return authorize(caller.principal(), Action::ManageTenants);
        }
        authorize(caller.principal(), Action::AdministerTenant(Some(tenant_id)))?;
        if tenant_id.is_empty() {
            // No tenant has it (and LMDB refuses an empty key: MDB_BAD_VALSIZE, `internal`).
            return Err(Error::not_found("tenant", tenant_id));
        }
        let known = self.state.catalog.read(|r, t| Ok(t.tenants.get(r, tenant_id)?.is_some()))?
            || self.state.catalog.read(|r, t| Ok(t.audit.heads.get(r, tenant_id)?.is_some()))?;
        if known {
            Ok(())
        } else {
            Err(Error::not_found("tenant", tenant_id))
        }
    }

    /// A tenant's audit entries, oldest first, filtered and paged by cursor (root, or the
    /// tenant's admins; the `instance` log: root only).
    pub fn list_audit(&self, q: ListAudit) -> Result<AuditPage> {
        self.audit_tenant_allowed(&q.tenant_id)?;
        let (start, limit) = q.bounds()?;
        self.state.audit.flush(&self.state.catalog);
        let keep = |e: &AuditEntry| q.keeps(e);
        let prefix = format!("{}/", q.tenant_id);
        let from = entry_key(&q.tenant_id, start);
        self.state.catalog.read(|r, t| {
            let t = &t.audit;
            let mut entries = Vec::new();
            let mut next_cursor = None;
            for item in t.entries.range(r, &(Bound::Included(from.as_str()), Bound::Unbounded))? {
                let (key, entry) = item?;
                if !key.starts_with(&prefix) {
                    break;
                }
                if !keep(&entry) {
                    continue;
                }
                if entries.len() as u64 == limit {
                    next_cursor = Some(entry.seq.to_string());
                    break;
                }
                entries.push(entry);
            }
            Ok(AuditPage { tenant_id: q.tenant_id.clone(), entries, next_cursor })
        })
    }

    /// Checks a tenant's chain from its anchor to its head and names the first entry that
    /// was edited, removed or moved (same access as [`Handle::list_audit`]).
    pub fn verify_audit(&self, tenant_id: &str) -> Result<AuditVerification> {
        self.audit_tenant_allowed(tenant_id)?;
        self.state.audit.flush(&self.state.catalog);
        self.state.catalog.read(|r, t| verify_chain(r, &t.audit, tenant_id))
    }
}
