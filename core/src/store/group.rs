//! A group's transaction: its members run, one commit, and the sync that makes it durable.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use heed3::{MdbError, RwTxn};

use super::queue::{Member, Outcome, Waiter};
use super::{closed, Store, Tables};
use crate::error::{Error, Result};

fn run_member<T>(m: &mut Member<T>, w: &mut RwTxn<'_>, tables: &T) -> Outcome {
    // SAFETY: see `Store::write`; the job's owner waits until this member is settled.
    let job = unsafe { &mut *m.job };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(w, tables))) {
        Ok(Ok(())) => Outcome::Done,
        Ok(Err(e)) => Outcome::Failed(e),
        Err(p) => Outcome::Panicked(p),
    }
}

/// How an attempt at a group's transaction ended (see [`Store::run_group`]).
enum Attempt {
    /// Every member has its outcome (the transaction committed, or had nothing to commit);
    /// `synced` when a commit wrote pages, so synced the data file before its meta page.
    Settled { synced: bool },
    /// A member run straight in the shared transaction failed: run them again, isolated.
    Isolate,
}

/// Gives every member still running (or done, but not durable) the group's failure, shared
/// (it reads, codes and keeps its cause as itself).
fn settle_all<T>(members: &mut [&mut Member<T>], e: Error) {
    let e = std::sync::Arc::new(e);
    for m in members.iter_mut() {
        if matches!(m.outcome, None | Some(Outcome::Done)) {
            m.outcome = Some(Outcome::Failed(Error::Shared(e.clone())));
        }
    }
}

impl<T: Tables> Store<T> {
    /// Syncs the environment, then settles every committed batch up to ticket `end` that a
    /// later commit's sync has not settled first (each was committed before this sync
    /// began, so the sync made it durable), failing their members if the sync failed.
    /// Answers who is to be told.
    pub(super) fn sync_committed(&self, end: u64) -> Vec<Waiter<T>> {
        // An environment closed since the commit was destroyed (its namespace deleted) or
        // swapped for its compacted copy (synced before the swap): nothing is left to sync.
        self.syncs.fetch_add(1, Ordering::Relaxed);
        let synced = self.inner.read().as_ref().map_or(Ok(()), |o| o.env.force_sync());
        let failure = synced.err().map(|e| Arc::new(Error::from(e)));
        let mut q = self.queue.lock();
        let mut durable = Vec::new();
        while q.committed.front().is_some_and(|b| b.end <= end) {
            let Some(batch) = q.committed.pop_front() else { break };
            if let Some(e) = &failure {
                for m in &batch.members {
                    // SAFETY: the batch's members wait, unsettled, until it is settled here.
                    let m = unsafe { &mut *m.0 };
                    if matches!(m.outcome, None | Some(Outcome::Done)) {
                        m.outcome = Some(Outcome::Failed(Error::Shared(e.clone())));
                    }
                }
            }
            q.settled = q.settled.max(batch.end);
            durable.extend(batch.threads);
        }
        durable
    }

    /// Runs a group to its end: every member gets an outcome.
    ///
    /// The members first run one after another straight in the group's transaction (no
    /// nested transaction to open, copy pages into and merge per member). If one of them
    /// fails, that attempt is aborted and the group runs again with each member in a nested
    /// transaction of its own, so that the failure undoes its own changes only.
    ///
    /// Returns whether its commit synced the data file (a commit that wrote pages).
    pub(super) fn run_group(&self, members: &mut [&mut Member<T>]) -> bool {
        let mut isolated = false;
        loop {
            match self.try_group(members, isolated) {
                Err(Error::Storage(heed3::Error::Mdb(MdbError::MapFull))) => {
                    for m in members.iter_mut() {
                        if matches!(m.outcome, Some(Outcome::Done)) {
                            m.outcome = None;
                        }
                    }
                    if let Err(e) = self.grow() {
                        settle_all(members, e);
                        return false;
                    }
                }
                Err(e) => {
                    settle_all(members, e);
                    return false;
                }
                Ok(Attempt::Settled { synced }) => return synced,
                Ok(Attempt::Isolate) => {
                    for m in members.iter_mut() {
                        m.outcome = None;
                    }
                    isolated = true;
                }
            }
        }
    }

    /// One attempt at a group's transaction: the members not yet settled run (alone or
    /// straight in the transaction; each in a nested transaction when `isolated`), then one
    /// commit. `MapFull` from anyone aborts the attempt, and so does the failure of a member
    /// run straight in a transaction it shares.
    fn try_group(&self, members: &mut [&mut Member<T>], isolated: bool) -> Result<Attempt> {
        let guard = self.inner.read();
        let opened = guard.as_ref().ok_or_else(closed)?;
        let mut wtxn = opened.env.write_txn()?;
        let runnable = members.iter().filter(|m| m.outcome.is_none()).count();
        for m in members.iter_mut().filter(|m| m.outcome.is_none()) {
            let outcome = if runnable == 1 || !isolated {
                run_member(m, &mut wtxn, &opened.tables)
            } else {
                let mut nested = opened.env.nested_write_txn(&mut wtxn)?;
                let outcome = run_member(m, &mut nested, &opened.tables);
                match outcome {
                    Outcome::Done => nested.commit()?,
                    _ => nested.abort(),
                }
                outcome
            };
            match outcome {
                Outcome::Failed(Error::Storage(heed3::Error::Mdb(MdbError::MapFull))) => {
                    return Err(Error::Storage(heed3::Error::Mdb(MdbError::MapFull)));
                }
                Outcome::Failed(_) | Outcome::Panicked(_) if runnable > 1 && !isolated => {
                    wtxn.abort();
                    return Ok(Attempt::Isolate);
                }
                o => m.outcome = Some(o),
            }
        }
        if !members.iter().any(|m| matches!(m.outcome, Some(Outcome::Done))) {
            wtxn.abort();
            return Ok(Attempt::Settled { synced: false });
        }
        if self.take_failing_commit() {
            wtxn.abort();
            return Err(Error::Internal("injected commit failure".into()));
        }
        let id = wtxn.id();
        let committed = wtxn.commit();
        // Read transactions kept by `read` see the snapshot before this commit now.
        std::mem::take(&mut *opened.readers.lock());
        committed?;
        // A commit that changed nothing writes no page, syncs nothing and leaves the last
        // transaction id where it was.
        let synced = opened.env.info().last_txn_id >= id;
        self.commits.fetch_add(1, Ordering::Relaxed);
        if synced {
            self.synced_commits.fetch_add(1, Ordering::Relaxed);
            let done = members.iter().filter(|m| matches!(m.outcome, Some(Outcome::Done)));
            self.writes.fetch_add(done.count() as u64, Ordering::Relaxed);
        }
        // Noted after the commit and under the read guard: a compaction's snapshot taken
        // before this commit was taken after it began noting, so it sees these.
        if let Some(written) = self.written.lock().as_mut() {
            for m in members.iter().filter(|m| matches!(m.outcome, Some(Outcome::Done))) {
                written.insert(m.ns);
            }
        }
        Ok(Attempt::Settled { synced })
    }

    /// Makes the next `n` write transactions fail instead of committing (the closure runs,
    /// its changes are aborted), as a full disk or an I/O error at commit would.
    pub(crate) fn fail_next_commits(&self, n: u32) {
        self.failing_commits.store(n, Ordering::SeqCst);
    }

    fn take_failing_commit(&self) -> bool {
        self.failing_commits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}
