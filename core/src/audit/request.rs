//! What one request's entry records: its subject (operation, tenant, namespace, target), and
//! the entry a control-plane request writes in the same commit as its change.

use serde_json::Value;

use super::{is_refusal, Draft, INSTANCE};
use crate::error::{Error, ErrorCode};

/// What a control-plane request is about, worked out before it runs (a deleted key or
/// namespace cannot be looked up afterwards).
#[derive(Debug, Clone)]
pub struct Subject {
    /// The tenant the request names (its chain gets the entry), if any.
    pub tenant: Option<String>,
    /// What it is about (a tenant, member, namespace or key id/name).
    pub target: Option<String>,
    /// Recorded whatever the outcome (control plane); otherwise only when refused.
    pub control: bool,
}

impl Subject {
    /// Whether the outcome is recorded at all.
    pub(crate) fn recorded(&self, error: Option<&Error>) -> bool {
        self.control || error.is_some_and(|e| is_refusal(e.code()))
    }

    /// The subject of an export page or an import batch of `namespace` (in the chain of
    /// `tenant`, its tenant): recorded whatever the outcome, so a cursor or a line number
    /// chosen by the caller is no way around the log.
    pub(crate) fn transfer(tenant: Option<String>, namespace: &str) -> Subject {
        Subject { tenant, target: Some(namespace.to_owned()), control: true }
    }

    /// Whether it is a control-plane request (recorded whatever the outcome).
    pub(crate) fn is_control(&self) -> bool {
        self.control
    }

    /// Fills in what only the answer knows (a new tenant's or key's id, a new member's id,
    /// the tenant a namespace was created in).
    pub fn complete(&mut self, op: &str, reply: &Value) {
        let field = |name: &str| reply.get(name).and_then(Value::as_str).map(str::to_owned);
        match op {
            "create_tenant" => {
                self.tenant = field("id");
                self.target = field("id");
            }
            "create_namespace" => self.tenant = self.tenant.take().or_else(|| field("tenant_id")),
            "create_key" => {
                self.tenant = self.tenant.take().or_else(|| field("tenant_id"));
                self.target = field("id");
            }
            "add_member" => self.target = field("member_id"),
            _ => {}
        }
    }
}

/// An entry whose outcome is not known yet.
#[derive(Clone)]
pub(crate) struct Unfinished {
    /// The tenant the request named.
    pub(crate) subject_tenant: Option<String>,
    /// The tenant of the caller's key.
    pub(crate) key_tenant: Option<String>,
    pub(crate) draft: Draft,
}

impl Unfinished {
    /// The entry, given the outcome and what only the change knows (the tenant of what was
    /// made, when the request did not name one; the id of what was made).
    pub(crate) fn finish(
        &self,
        outcome: std::result::Result<(), ErrorCode>,
        made_in: Option<String>,
        made: Option<String>,
    ) -> Draft {
        let mut d = self.draft.clone();
        d.tenant_id = (self.subject_tenant.clone().or(made_in).or_else(|| self.key_tenant.clone()))
            .unwrap_or_else(|| INSTANCE.into());
        if made.is_some() {
            d.target = made;
        }
        d.outcome = outcome;
        d
    }
}

/// The control-plane request this thread runs, whose entry has not been written yet.
struct InCommit {
    pending: Unfinished,
    written: bool,
}

thread_local! {
    /// Set while [`Handle::with_entry_in_commit`] runs a request on this thread. Only
    /// [`run_in_commit`], [`unwritten_in_commit`] and [`mark_written_in_commit`] touch it.
    static IN_COMMIT: std::cell::RefCell<Option<InCommit>> = const { std::cell::RefCell::new(None) };
}

/// Runs `run` as this thread's control-plane request `pending`: a catalog write inside it
/// may write its entry (see `State::catalog_write_audited`). Returns its result and
/// whether that happened.
pub(crate) fn run_in_commit<R>(pending: Unfinished, run: impl FnOnce() -> R) -> (R, bool) {
    let previous = IN_COMMIT.with(|c| c.replace(Some(InCommit { pending, written: false })));
    let out = run();
    let written = IN_COMMIT
        .with(|c| std::mem::replace(&mut *c.borrow_mut(), previous))
        .is_some_and(|c| c.written);
    (out, written)
}

/// The entry of this thread's control-plane request (see [`run_in_commit`]), if it is not
/// written yet: a catalog write may write it in its own transaction.
pub(crate) fn unwritten_in_commit() -> Option<Unfinished> {
    IN_COMMIT.with(|c| c.borrow().as_ref().filter(|c| !c.written).map(|c| c.pending.clone()))
}

/// Notes that the entry of this thread's control-plane request was committed.
pub(crate) fn mark_written_in_commit() {
    IN_COMMIT.with(|c| {
        if let Some(c) = c.borrow_mut().as_mut() {
            c.written = true;
        }
    });
}
