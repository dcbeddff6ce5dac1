//! The group-commit queue: writes waiting for the next group, who waits for them, and the
//! environment's commit threads that lead the groups of writes awaited by tasks.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use heed3::RwTxn;
use parking_lot::Mutex;

use super::{NamespaceId, Store, Tables};
use crate::error::{Error, Result};

/// A write waiting in (or run by) a commit group; see [`Store::write`].
pub(super) type JobPtr<T> = *mut (dyn FnMut(&mut RwTxn<'_>, &T) -> Result<()> + Send + 'static);

pub(super) enum Outcome {
    Done,
    Failed(Error),
    Panicked(Box<dyn std::any::Any + Send>),
}

pub(super) struct Member<T> {
    pub(super) job: JobPtr<T>,
    /// The namespace it writes ([`ANY_NAMESPACE`] if it did not say).
    pub(super) ns: NamespaceId,
    pub(super) outcome: Option<Outcome>,
}

pub(super) struct MemberPtr<T>(pub(super) *mut Member<T>);

// SAFETY: a member's job is `Send`, and the member is touched by one thread at a time: its
// owner until it is queued, the group's leader until it is settled, then its owner again.
unsafe impl<T> Send for MemberPtr<T> {}

/// Who waits for a queued member: woken when it is settled, or (a thread) to lead the next
/// group.
pub(super) enum Waiter<T> {
    /// A thread parked in [`Store::join`].
    Thread(std::thread::Thread),
    /// A task awaiting [`Store::write_ns_async`]; the environment's commit thread leads
    /// the next group for it.
    Task(Arc<Task<T>>),
}

impl<T> Waiter<T> {
    /// Tells the waiter its member is settled.
    pub(super) fn wake(self) {
        match self {
            Waiter::Thread(t) => t.unpark(),
            Waiter::Task(task) => {
                let waker = {
                    let mut state = task.state.lock();
                    state.0 = true;
                    state.1.take()
                };
                if let Some(w) = waker {
                    w.wake();
                }
            }
        }
    }
}

/// The job of a write that a task awaits: owned, so it outlives a task that stops waiting.
pub(super) type TaskJob<T> = Box<dyn FnMut(&mut RwTxn<'_>, &T) -> Result<()> + Send + 'static>;

/// A write queued by [`Store::write_ns_async`]. Its member points at its job; both are
/// touched by the group's leader only, until the member is settled (`state.0`), then by the
/// awaiting task only.
pub(super) struct Task<T> {
    /// Set before the task is queued.
    pub(super) member: UnsafeCell<Option<Member<T>>>,
    pub(super) job: UnsafeCell<TaskJob<T>>,
    /// Settled; the waker of the task awaiting it.
    pub(super) state: Mutex<(bool, Option<Waker>)>,
}

// SAFETY: the job is `Send`; the cells are used by one thread at a time, handed over under
// `state`'s lock (see the type's documentation).
unsafe impl<T> Send for Task<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Task<T> {}

/// Resolves when a queued task's member is settled.
pub(super) struct Settled<T>(pub(super) Arc<Task<T>>);

impl<T> Future for Settled<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.0.state.lock();
        if state.0 {
            return Poll::Ready(());
        }
        if !state.1.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            state.1 = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// How long an environment's commit thread waits for more tasks' writes before it ends.
const COMMITTER_IDLE: Duration = Duration::from_millis(500);

/// Commit threads per environment: one leads a group while the other syncs the batch before
/// it (see [`Store::settle`]), as two writing threads would.
pub(super) const COMMITTERS: usize = 2;

/// Commit threads running, all environments together (see [`commit_threads`]).
pub(super) static COMMIT_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Commit threads running in the process. A transport sends writes to threads of its own
/// instead of awaiting them while this is at [`MAX_COMMIT_THREADS`] (many environments
/// written at once), so their number stays bounded.
pub(crate) fn commit_threads() -> usize {
    COMMIT_THREADS.load(Ordering::Relaxed)
}

/// See [`commit_threads`].
pub(crate) const MAX_COMMIT_THREADS: usize = 64;

/// Writes waiting for the next group commit.
pub(super) struct Queue<T> {
    /// Queued members, with who waits for them.
    pub(super) pending: Vec<(MemberPtr<T>, Waiter<T>)>,
    /// The environment's commit threads running (they lead the groups that tasks' writes
    /// are queued in: a task cannot lead; see [`Store::write_ns_async`]), and those of them
    /// waiting for work.
    pub(super) committers: usize,
    pub(super) idle: Vec<std::thread::Thread>,
    /// Whether a thread is running a group now.
    pub(super) leading: bool,
    /// Committed groups not known durable yet, in commit order: their data pages are
    /// synced, their meta page is written but maybe not (see [`Store::join`]).
    pub(super) committed: VecDeque<Batch<T>>,
    /// Tickets below this are settled.
    pub(super) settled: u64,
    pub(super) next_ticket: u64,
    /// A sync of the committed groups handed by a commit thread that went on to lead the
    /// next group to another commit thread (see [`Store::settle`]); it holds the
    /// environment open until that thread has synced it.
    pub(super) handed_sync: Option<Arc<Store<T>>>,
}

/// The members of a committed group, settled together.
pub(super) struct Batch<T> {
    pub(super) members: Vec<MemberPtr<T>>,
    pub(super) threads: Vec<Waiter<T>>,
    /// The first ticket after the batch's last member.
    pub(super) end: u64,
}

/// What a settled member's caller gets: the value its job produced, its error, or its panic
/// again.
pub(super) fn result_of<R>(outcome: Option<Outcome>, value: Option<R>) -> Result<R> {
    match outcome {
        Some(Outcome::Done) => value.ok_or_else(|| Error::Internal("write lost its result".into())),
        Some(Outcome::Failed(e)) => Err(e),
        Some(Outcome::Panicked(p)) => std::panic::resume_unwind(p),
        None => Err(Error::Internal("write was not run".into())),
    }
}

/// One of an environment's commit threads: leads the groups that tasks' writes wait in (see
/// [`Store::write_ns_async`]) and syncs the groups another commit thread handed over (see
/// [`Store::settle`]) until it has had nothing to do for [`COMMITTER_IDLE`], or the
/// environment is dropped (it holds no reference to it while it waits).
pub(super) fn commit_thread<T: Tables>(store: &Weak<Store<T>>) {
    let me = std::thread::current();
    let mut busy = Instant::now();
    loop {
        let Some(s) = store.upgrade() else { break };
        let mut q = s.queue.lock();
        q.idle.retain(|t| t.id() != me.id());
        if !q.leading && !q.pending.is_empty() {
            s.lead_handing_sync(q);
            busy = Instant::now();
            continue;
        }
        // A sync handed over by the thread leading now (or by this one, if the other
        // thread took the lead first): it makes every group committed by now durable.
        if let Some(held) = q.handed_sync.take() {
            let end = q.committed.back().map(|b| b.end);
            drop(q);
            if let Some(end) = end {
                for w in held.sync_committed(end) {
                    w.wake();
                }
            }
            busy = Instant::now();
            continue;
        }
        if q.pending.is_empty() && busy.elapsed() >= COMMITTER_IDLE {
            q.committers -= 1;
            break;
        }
        q.idle.push(me.clone());
        drop(q);
        drop(s);
        std::thread::park_timeout(COMMITTER_IDLE);
    }
    COMMIT_THREADS.fetch_sub(1, Ordering::Relaxed);
}
