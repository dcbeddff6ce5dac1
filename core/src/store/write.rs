//! Writes: queued into a group commit and answered once the commit holding them is on disk
//! (see [`Store::join`]).

use std::cell::UnsafeCell;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use heed3::RwTxn;
use parking_lot::Mutex;

use super::queue::{
    commit_thread, result_of, Batch, JobPtr, Member, MemberPtr, Queue, Settled, Task, TaskJob,
    Waiter, COMMITTERS, COMMIT_THREADS,
};
use super::{NamespaceId, Store, Tables, ANY_NAMESPACE};
use crate::error::{Error, Result};

impl<T: Tables> Store<T> {
    /// Runs `f` in a write transaction and commits it if `f` succeeds. When the map is full
    /// the transaction is aborted, the map doubled and `f` run again, so `f` must not have
    /// effects outside the transaction. Data environments use [`Store::write_ns`].
    ///
    /// Group commit: writes that arrive while another is committing wait, then all of them
    /// run on one thread (the group's leader) in one LMDB write transaction, each in a
    /// nested transaction of its own, and are made durable by one commit. `write` returns
    /// only after the commit that holds `f`'s changes is on disk; an error of `f` undoes
    /// `f`'s nested transaction only, never another member's changes.
    pub(crate) fn write<R: Send>(
        &self,
        f: impl FnMut(&mut RwTxn<'_>, &T) -> Result<R> + Send,
    ) -> Result<R> {
        self.write_ns(ANY_NAMESPACE, f)
    }

    /// [`Store::write`] for a transaction that changes only rows of namespace `ns` (every
    /// data write), so that a compaction running meanwhile copies that namespace again.
    pub(crate) fn write_ns<R: Send>(
        &self,
        ns: NamespaceId,
        mut f: impl FnMut(&mut RwTxn<'_>, &T) -> Result<R> + Send,
    ) -> Result<R> {
        let mut value = None;
        let mut job = |w: &mut RwTxn<'_>, t: &T| -> Result<()> {
            value = Some(f(w, t)?);
            Ok(())
        };
        let job: &mut (dyn FnMut(&mut RwTxn<'_>, &T) -> Result<()> + Send) = &mut job;
        // SAFETY: only the lifetime is erased. The pointer is used by the group's leader
        // while this thread waits in `join` below, which returns only after the leader has
        // stopped using it (the member is marked finished under the queue's lock).
        let job: JobPtr<T> = unsafe { std::mem::transmute(job) };
        let mut member = Member { job, ns, outcome: None };
        self.join(&mut member);
        result_of(member.outcome.take(), value)
    }

    /// Queues `member` and waits until a commit has settled it, leading a group when no
    /// other thread is.
    ///
    /// A group's leader runs it and commits; LMDB writes the data pages and syncs them, then
    /// writes the meta page that makes the commit current without syncing it (the
    /// environment is opened with `NO_META_SYNC`). That meta page is made durable by the
    /// next commit's sync of the data file (the same file) or by a sync of the environment
    /// (`mdb_env_sync`), whichever ends first. So a leader whose commit synced settles the
    /// groups committed before it; then it hands the lead on and syncs the environment for
    /// its own group while the next group commits: under load two syncs are in flight at
    /// once, and a write waits for its commit and one more sync, not for two commits one
    /// after the other (on the disks measured, a lone sync took 6 ms and two at once 0.3 to
    /// 0.7 ms each). A write is answered only after its commit is on disk. A crash before
    /// that sync loses only unanswered commits, never the integrity of the file (LMDB's data
    /// pages are durable before any meta page points at them).
    fn join(&self, member: &mut Member<T>) {
        let mut q = self.queue.lock();
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.pending.push((MemberPtr(member), Waiter::Thread(std::thread::current())));
        loop {
            if q.settled > ticket {
                return;
            }
            if q.leading {
                drop(q);
                std::thread::park();
                q = self.queue.lock();
                continue;
            }
            self.lead(q);
            q = self.queue.lock();
        }
    }

    /// Runs the queued writes as one group and settles it (see [`Store::join`]); the caller
    /// found no other thread leading.
    pub(super) fn lead(&self, q: parking_lot::MutexGuard<'_, Queue<T>>) {
        self.lead_group(q, None);
    }

    /// [`Store::lead`] by one of the environment's commit threads: when writes are queued
    /// once its group is committed, it leads their group next and hands its own group's
    /// sync to the other commit thread (see [`Store::settle`]).
    pub(super) fn lead_handing_sync(self: &Arc<Self>, q: parking_lot::MutexGuard<'_, Queue<T>>) {
        self.lead_group(q, Some(self));
    }

    fn lead_group(
        &self,
        mut q: parking_lot::MutexGuard<'_, Queue<T>>,
        handing: Option<&Arc<Self>>,
    ) {
        q.leading = true;
        let group = std::mem::take(&mut q.pending);
        let end = q.next_ticket;
        drop(q);
        // SAFETY: each member stays alive and unaliased until it is settled, which
        // happens after this group's commit is durable.
        let mut members: Vec<&mut Member<T>> =
            group.iter().map(|(m, _)| unsafe { &mut *m.0 }).collect();
        let synced = self.run_group(&mut members);
        drop(members);
        self.settle(group, end, synced, handing);
    }

    /// [`Store::write_ns`] for a caller on an async executor: the write is queued at once
    /// and the returned future resolves when the commit that holds it is on disk, without a
    /// thread waiting for it. The group is led by a thread writing meanwhile, or by the
    /// environment's commit thread (started on demand, ended when idle). `f` may run more
    /// than once, as in `write_ns`. A future dropped before it resolves does not undo the
    /// write: it commits all the same.
    pub(crate) fn write_ns_async<R: Send + 'static>(
        self: &Arc<Self>,
        ns: NamespaceId,
        mut f: impl FnMut(&mut RwTxn<'_>, &T) -> Result<R> + Send + 'static,
    ) -> impl Future<Output = Result<R>> + Send + 'static {
        let value = Arc::new(Mutex::new(None));
        let slot = value.clone();
        let job: TaskJob<T> = Box::new(move |w: &mut RwTxn<'_>, t: &T| {
            *slot.lock() = Some(f(w, t)?);
            Ok(())
        });
        let task = Arc::new(Task {
            member: UnsafeCell::new(None),
            job: UnsafeCell::new(job),
            state: Mutex::new((false, None)),
        });
        // SAFETY: the task is not shared yet; the job's box lives as long as the task.
        unsafe {
            let job: &mut TaskJob<T> = &mut *task.job.get();
            *task.member.get() = Some(Member { job: &raw mut **job, ns, outcome: None });
        }
        let queued = self.enqueue(&task);
        async move {
            queued?;
            Settled(task.clone()).await;
            // SAFETY: settled: the leader is done with the member.
            let outcome = unsafe { (*task.member.get()).as_mut().and_then(|m| m.outcome.take()) };
            let value = value.lock().take();
            result_of(outcome, value)
        }
    }

    /// [`Store::write_ns_async`] of a write that names no namespace (see [`Store::write`]).
    pub(crate) fn write_async<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnMut(&mut RwTxn<'_>, &T) -> Result<R> + Send + 'static,
    ) -> impl Future<Output = Result<R>> + Send + 'static {
        self.write_ns_async(ANY_NAMESPACE, f)
    }

    /// Queues a task's write and, when no group is running, wakes a commit thread to lead
    /// one (else the running group's leader hands the lead on; see [`Store::settle`]).
    /// Starts the environment's commit threads if they are not running.
    fn enqueue(self: &Arc<Self>, task: &Arc<Task<T>>) -> Result<()> {
        let mut q = self.queue.lock();
        while q.committers < COMMITTERS {
            let weak = Arc::downgrade(self);
            COMMIT_THREADS.fetch_add(1, Ordering::Relaxed);
            let spawned = std::thread::Builder::new()
                .name("memsilo-commit".into())
                .spawn(move || commit_thread(&weak));
            if let Err(e) = spawned {
                COMMIT_THREADS.fetch_sub(1, Ordering::Relaxed);
                if q.committers == 0 {
                    return Err(Error::internal_from("cannot start a commit thread", e));
                }
                break;
            }
            q.committers += 1;
        }
        // SAFETY: the member was set before the task was shared (see `write_ns_async`).
        let member = unsafe { (*task.member.get()).as_mut() }
            .ok_or_else(|| Error::Internal("write queued without its job".into()))?;
        q.next_ticket += 1;
        q.pending.push((MemberPtr(member), Waiter::Task(task.clone())));
        if !q.leading {
            if let Some(t) = q.idle.pop() {
                t.unpark();
            }
        }
        Ok(())
    }

    /// A leader's last step, after its group ran: settles the groups its commit made
    /// durable, hands the lead on, then syncs the environment for its own group while the
    /// next group commits, and settles it (see [`Store::join`]). `synced`: the group's
    /// commit synced the data file.
    ///
    /// A commit thread (`handing`) that finds tasks' writes queued does it the other way
    /// round: it hands the sync to the environment's other commit thread and returns to
    /// lead the next group itself. The next commit then begins at once instead of after
    /// the other thread has woken up, a wait that is part of every group's cycle when the
    /// cores are busy; the sync waits for it instead, and runs beside that commit all the
    /// same. Its group is answered after that sync, or after the next commit's, whichever
    /// ends first.
    fn settle(
        &self,
        group: Vec<(MemberPtr<T>, Waiter<T>)>,
        end: u64,
        synced: bool,
        handing: Option<&Arc<Self>>,
    ) {
        let mut q = self.queue.lock();
        let mut durable = Vec::new();
        if synced {
            // The meta pages of the commits before this one were synced with its data.
            while let Some(before) = q.committed.pop_front() {
                q.settled = q.settled.max(before.end);
                durable.extend(before.threads);
            }
        }
        // A commit that wrote nothing has nothing of its own to make durable: its group is
        // settled now unless a group committed before it still waits (its members may have
        // read that group's rows), then after a sync that begins after this commit.
        let sync = synced || !q.committed.is_empty();
        let (members, threads) = group.into_iter().unzip();
        let batch = Batch { members, threads, end };
        if sync {
            q.committed.push_back(batch);
        } else {
            q.settled = q.settled.max(end);
            durable.extend(batch.threads);
        }
        q.leading = false;
        let hand = match handing {
            Some(me) if sync && q.committers >= 2 => {
                matches!(q.pending.first(), Some((_, Waiter::Task(_)))).then(|| me.clone())
            }
            _ => None,
        };
        if let Some(me) = hand {
            // The other commit thread is idle (woken here) or syncing (it looks for a
            // handed sync before it waits); it syncs every group committed by then.
            q.handed_sync = Some(me);
            let other = q.idle.pop();
            drop(q);
            if let Some(t) = other {
                t.unpark();
            }
            for w in durable {
                w.wake();
            }
            return;
        }
        // A task's write is led by an idle commit thread; with none idle, by a busy one when
        // it is done (each looks for queued writes before it waits).
        let next_leader = match q.pending.first() {
            Some((_, Waiter::Thread(t))) => Some(t.clone()),
            Some((_, Waiter::Task(_))) => q.idle.pop(),
            None => None,
        };
        drop(q);
        if let Some(t) = next_leader {
            t.unpark();
        }
        for w in durable {
            w.wake();
        }
        if sync {
            // Two syncs are in flight at once under load: this one and the next group's
            // commit's (which settles this group first if it ends first).
            for w in self.sync_committed(end) {
                w.wake();
            }
        }
    }
}
