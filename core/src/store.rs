//! One LMDB environment with typed tables, the only place that opens, grows, compacts or
//! removes environment files.
//!
//! Every transaction runs under a read guard of `inner`; growing the map and the last step of a
//! compaction take the write guard, so they never race a live transaction (LMDB requires that for
//! `mdb_env_set_mapsize`).
//!
//! Compaction (erasing deleted rows from a shared file) runs online: the environment is copied
//! without its free pages from a read snapshot while every other transaction goes on; the
//! namespaces written meanwhile (each data write names its namespace: see [`Store::write_ns`])
//! are copied again from a newer snapshot, a few rounds; only the last round — the namespaces
//! written during the round before — and the swap of the files hold the write guard.

use std::cell::UnsafeCell;
use std::collections::BTreeSet;
use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use heed3::{CompactionOption, EnvFlags, EnvOpenOptions, MdbError, RwTxn};
use parking_lot::{Mutex, RwLock, RwLockWriteGuard};

use crate::error::{Error, Result};
use crate::keyring::Key;
use crate::storage::{self, Environment, RoTxn, Turn};

/// Counters of group commits (see `Engine::commit_stats`): under load, many writes share
/// a commit and a commit's sync makes the one before it durable too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Writes committed (each the change of one call: a store, a namespace's creation...).
    pub writes: u64,
    /// Commits that wrote pages: each syncs the data file once.
    pub commits: u64,
    /// Disk syncs: one per commit, plus each sync of the environment made for a commit that
    /// no later commit made durable.
    pub syncs: u64,
}

impl std::ops::Add for CommitStats {
    type Output = CommitStats;

    fn add(self, o: CommitStats) -> CommitStats {
        CommitStats {
            writes: self.writes + o.writes,
            commits: self.commits + o.commits,
            syncs: self.syncs + o.syncs,
        }
    }
}

impl std::ops::Sub for CommitStats {
    type Output = CommitStats;

    fn sub(self, o: CommitStats) -> CommitStats {
        CommitStats {
            writes: self.writes.saturating_sub(o.writes),
            commits: self.commits.saturating_sub(o.commits),
            syncs: self.syncs.saturating_sub(o.syncs),
        }
    }
}

/// Internal numeric id of a namespace, assigned by the catalog and never reused.
pub type NamespaceId = u64;

/// The tables of one kind of environment, created on open.
pub(crate) trait Tables: Sized + Send + Sync + 'static {
    /// How many named databases the environment needs.
    const MAX_DBS: u32;
    /// Creates (or opens) every table, in one committed write transaction.
    fn create(env: &Environment) -> Result<Self>;
}

/// Tables whose rows are each of one namespace (keys begin with its [`NamespaceId`]), so
/// that an online compaction or key rotation copies again only the namespaces written while
/// it ran.
pub(crate) trait NamespacedTables: Tables {
    /// Makes namespace `ns`'s rows in these tables what they are in `from` (another
    /// environment's tables, read in `rtxn`).
    fn copy_namespace(
        &self,
        from: &Self,
        rtxn: &mut RoTxn<'_>,
        wtxn: &mut RwTxn<'_>,
        ns: NamespaceId,
    ) -> Result<()>;

    /// Copies every row of `from` (another environment's tables, read in `rtxn`) into these
    /// tables, which are empty.
    fn copy_all(&self, from: &Self, rtxn: &mut RoTxn<'_>, wtxn: &mut RwTxn<'_>) -> Result<()>;
}

struct Opened<T> {
    /// Read transactions of the last committed snapshot kept between reads (see
    /// [`Store::read`]); each owns a handle of `env`, so they go first (and are emptied
    /// before anything that needs no transaction alive: growing the map, closing).
    readers: Mutex<Vec<RoTxn<'static>>>,
    env: Environment,
    tables: T,
}

/// Read transactions an environment keeps for its next reads (about the readers that run at
/// once; more are ended after their read).
const KEPT_READERS: usize = 4;

/// A write waiting in (or run by) a commit group; see [`Store::write`].
type JobPtr<T> = *mut (dyn FnMut(&mut RwTxn<'_>, &T) -> Result<()> + Send + 'static);

enum Outcome {
    Done,
    Failed(Error),
    Panicked(Box<dyn std::any::Any + Send>),
}

struct Member<T> {
    job: JobPtr<T>,
    /// The namespace it writes ([`ANY_NAMESPACE`] if it did not say).
    ns: NamespaceId,
    outcome: Option<Outcome>,
}

struct MemberPtr<T>(*mut Member<T>);

// SAFETY: a member's job is `Send`, and the member is touched by one thread at a time: its
// owner until it is queued, the group's leader until it is settled, then its owner again.
unsafe impl<T> Send for MemberPtr<T> {}

/// Who waits for a queued member: woken when it is settled, or (a thread) to lead the next
/// group.
enum Waiter<T> {
    /// A thread parked in [`Store::join`].
    Thread(std::thread::Thread),
    /// A task awaiting [`Store::write_ns_async`]; the environment's commit thread leads
    /// the next group for it.
    Task(Arc<Task<T>>),
}

impl<T> Waiter<T> {
    /// Tells the waiter its member is settled.
    fn wake(self) {
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
type TaskJob<T> = Box<dyn FnMut(&mut RwTxn<'_>, &T) -> Result<()> + Send + 'static>;

/// A write queued by [`Store::write_ns_async`]. Its member points at its job; both are
/// touched by the group's leader only, until the member is settled (`state.0`), then by the
/// awaiting task only.
struct Task<T> {
    /// Set before the task is queued.
    member: UnsafeCell<Option<Member<T>>>,
    job: UnsafeCell<TaskJob<T>>,
    /// Settled; the waker of the task awaiting it.
    state: Mutex<(bool, Option<Waker>)>,
}

// SAFETY: the job is `Send`; the cells are used by one thread at a time, handed over under
// `state`'s lock (see the type's documentation).
unsafe impl<T> Send for Task<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Task<T> {}

/// Resolves when a queued task's member is settled.
struct Settled<T>(Arc<Task<T>>);

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
const COMMITTERS: usize = 2;

/// Commit threads running, all environments together (see [`commit_threads`]).
static COMMIT_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Commit threads running in the process. A transport sends writes to threads of its own
/// instead of awaiting them while this is at [`MAX_COMMIT_THREADS`] (many environments
/// written at once), so their number stays bounded.
pub(crate) fn commit_threads() -> usize {
    COMMIT_THREADS.load(Ordering::Relaxed)
}

/// See [`commit_threads`].
pub(crate) const MAX_COMMIT_THREADS: usize = 64;

/// Writes waiting for the next group commit.
struct Queue<T> {
    /// Queued members, with who waits for them.
    pending: Vec<(MemberPtr<T>, Waiter<T>)>,
    /// The environment's commit threads running (they lead the groups that tasks' writes
    /// are queued in: a task cannot lead; see [`Store::write_ns_async`]), and those of them
    /// waiting for work.
    committers: usize,
    idle: Vec<std::thread::Thread>,
    /// Whether a thread is running a group now.
    leading: bool,
    /// Committed groups not yet durable: their data pages are synced, their meta page is
    /// written but not (see [`Store::join`]).
    awaiting: Batch<T>,
    /// Tickets below this are settled.
    settled: u64,
    next_ticket: u64,
}

/// Members of one or more groups, settled together.
struct Batch<T> {
    members: Vec<MemberPtr<T>>,
    threads: Vec<Waiter<T>>,
    /// The first ticket after the batch's last member.
    end: u64,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch { members: Vec::new(), threads: Vec::new(), end: 0 }
    }
}

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

/// What a settled member's caller gets: the value its job produced, its error, or its panic
/// again.
fn result_of<R>(outcome: Option<Outcome>, value: Option<R>) -> Result<R> {
    match outcome {
        Some(Outcome::Done) => value.ok_or_else(|| Error::Internal("write lost its result".into())),
        Some(Outcome::Failed(e)) => Err(e),
        Some(Outcome::Panicked(p)) => std::panic::resume_unwind(p),
        None => Err(Error::Internal("write was not run".into())),
    }
}

/// One of an environment's commit threads: leads the groups that tasks' writes wait in (see
/// [`Store::write_ns_async`]) until it has had nothing to do for [`COMMITTER_IDLE`], or the
/// environment is dropped (it holds no reference to it while it waits).
fn commit_thread<T: Tables>(store: &Weak<Store<T>>) {
    let me = std::thread::current();
    let mut busy = Instant::now();
    loop {
        let Some(s) = store.upgrade() else { break };
        // Taken before the queue, as a writer does (see `Store::join`).
        let turn = s.turn();
        let mut q = s.queue.lock();
        q.idle.retain(|t| t.id() != me.id());
        if !q.leading && !q.pending.is_empty() {
            s.lead(q);
            busy = Instant::now();
            continue;
        }
        if q.pending.is_empty() && busy.elapsed() >= COMMITTER_IDLE {
            q.committers -= 1;
            break;
        }
        q.idle.push(me.clone());
        drop(q);
        drop(turn);
        drop(s);
        std::thread::park_timeout(COMMITTER_IDLE);
    }
    COMMIT_THREADS.fetch_sub(1, Ordering::Relaxed);
}

/// An LMDB environment and its tables.
pub(crate) struct Store<T> {
    path: PathBuf,
    /// The key of an encrypted environment (kept to reopen it after a compaction).
    key: Mutex<Option<Key>>,
    inner: RwLock<Option<Opened<T>>>,
    queue: Mutex<Queue<T>>,
    /// Held by a group's leader while it settles groups (and syncs the environment for
    /// them), so groups are settled in commit order while the next group already runs.
    syncing: Mutex<()>,
    /// Durable commits made (each may hold many writes).
    commits: AtomicU64,
    /// Syncs of the environment made to settle groups (see [`Store::join`]).
    syncs: AtomicU64,
    /// Commits that wrote pages (so synced the data file), and the writes they held.
    synced_commits: AtomicU64,
    writes: AtomicU64,
    /// Commits still to fail on purpose (fault-injection tests: see
    /// `Engine::fail_next_catalog_commits`).
    failing_commits: AtomicU32,
    /// While an online compaction runs: the namespaces written since its last snapshot
    /// ([`ANY_NAMESPACE`] for a write that named none).
    written: Mutex<Option<BTreeSet<NamespaceId>>>,
    /// One compaction at a time.
    compacting: Mutex<()>,
}

/// Marks a write that did not say which namespace it changed: the compaction that sees it
/// copies the whole environment again under the write guard.
const ANY_NAMESPACE: NamespaceId = NamespaceId::MAX;

/// Rounds of catching up online before the last one, under the write guard.
const CATCH_UP_ROUNDS: usize = 4;

const DATA_FILE: &str = "data.mdb";

impl<T: Tables> Store<T> {
    /// Opens (creating if needed) the environment in directory `path`, encrypted with `key`
    /// when one is given.
    pub(crate) fn open(path: &Path, initial_map_size: usize, key: Option<&Key>) -> Result<Self> {
        fs::create_dir_all(path)?;
        let opened = open_env::<T>(path, initial_map_size, key)?;
        Ok(Store {
            path: path.to_owned(),
            key: Mutex::new(key.cloned()),
            inner: RwLock::new(Some(opened)),
            queue: Mutex::new(Queue {
                pending: Vec::new(),
                committers: 0,
                idle: Vec::new(),
                leading: false,
                awaiting: Batch::default(),
                settled: 0,
                next_ticket: 0,
            }),
            syncing: Mutex::new(()),
            commits: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            synced_commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            failing_commits: AtomicU32::new(0),
            written: Mutex::new(None),
            compacting: Mutex::new(()),
        })
    }

    /// The turn this environment's transactions need (see `storage::Turn`): taken before
    /// its guard, its commit queue or its compaction's copy, and held while they are.
    pub(crate) fn turn(&self) -> Turn {
        // Not under the key's lock: a thread holding the turn takes it.
        let encrypted = self.key.lock().is_some();
        storage::encrypted_turn(encrypted)
    }

    /// Runs `f` in a read transaction of the last committed snapshot.
    ///
    /// The transaction is kept for the next read while nothing is committed (a few of them,
    /// for readers that run at once): an encrypted environment decrypts a page once per
    /// transaction that reads it (mdb.master3 forgets decrypted pages when the last
    /// transaction using them ends), so a transaction reused by the next reads spares them
    /// decrypting again. A kept transaction older than the last commit is ended, never
    /// reused (a read sees every write answered before it), and a commit ends the kept ones
    /// (so no old snapshot keeps pages from being reused).
    pub(crate) fn read<R>(&self, f: impl FnOnce(&mut RoTxn<'_>, &T) -> Result<R>) -> Result<R> {
        // Transactions of an encrypted environment take turns (see `storage::ENCRYPTED_TXNS`),
        // kept ones included: the turn is held from taking one to putting it back. It is
        // taken before the guard (see `storage::Turn`).
        let _turn = self.turn();
        let guard = self.inner.read();
        let opened = guard.as_ref().ok_or_else(closed)?;
        let kept = {
            let mut readers = opened.readers.lock();
            let last = opened.env.info().last_txn_id;
            readers.retain(|t| t.id() == last);
            readers.pop()
        };
        let mut rtxn = match kept {
            Some(t) => t,
            // SAFETY: the transaction ends in this call or is kept in `opened.readers`,
            // dropped before `opened.env` (first field; `close_env` drops it first).
            None => unsafe { opened.env.static_read_txn()? },
        };
        let out = f(&mut rtxn, &opened.tables)?;
        // Checked under the lock a commit empties the kept ones under (after it committed),
        // so a snapshot older than a commit is never put back.
        let mut readers = opened.readers.lock();
        if readers.len() < KEPT_READERS && rtxn.id() == opened.env.info().last_txn_id {
            readers.push(rtxn);
        }
        Ok(out)
    }

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
    /// (`mdb_env_sync`). So a leader whose commit synced settles the groups committed before
    /// it; then, when more writes are queued, it leaves its own group to the next commit
    /// (led by the next writer, an idle commit thread or itself), else it hands the lead on
    /// and syncs the environment itself. Under load a group costs one sync, not two, and a
    /// write is still answered only after its commit is on disk. A crash before that sync
    /// loses only unanswered commits, never the integrity of the file (LMDB's data pages are
    /// durable before any meta page points at them).
    ///
    /// A writer of an encrypted environment holds the turn (see `storage::Turn`) from
    /// queueing to settling, and so does the commit thread that leads a group: one group of
    /// theirs runs at a time, whose leader syncs it itself (a follower holding the turn
    /// would wait for a leader that waits for the turn).
    fn join(&self, member: &mut Member<T>) {
        let _turn = self.turn();
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
    fn lead(&self, mut q: parking_lot::MutexGuard<'_, Queue<T>>) {
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
        self.settle(group, end, synced);
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

    /// A leader's last step, after its group ran: settles what is durable now and leaves
    /// its own group to the next commit, or syncs the environment and settles it (see
    /// [`Store::join`]). `synced`: the group's commit synced the data file.
    fn settle(&self, group: Vec<(MemberPtr<T>, Waiter<T>)>, end: u64, synced: bool) {
        // Settlements happen in commit order: a leader still syncing an earlier batch holds
        // this.
        let in_order = self.syncing.lock();
        let mut q = self.queue.lock();
        let mut durable = Vec::new();
        if synced {
            // The meta pages of the commits before this one were synced with its data.
            let before = std::mem::take(&mut q.awaiting);
            q.settled = q.settled.max(before.end);
            durable = before.threads;
        }
        let mut batch = std::mem::take(&mut q.awaiting);
        for (m, t) in group {
            batch.members.push(m);
            batch.threads.push(t);
        }
        batch.end = end;
        q.leading = false;
        // A task's write is led by an idle commit thread; with none idle, by a busy one when
        // it is done (each looks for queued writes before it waits).
        let mut next_leader = match q.pending.first() {
            Some((_, Waiter::Thread(t))) => Some(t.clone()),
            Some((_, Waiter::Task(_))) => q.idle.pop(),
            None => None,
        };
        // More writes are queued: the next group's commit makes this one durable, whoever
        // leads it, this thread included (a commit thread and a writer in `join` both look
        // for queued writes after this returns; a task's write waits for no idle thread).
        // A sync of its own here would delay that commit and cost one more sync per group.
        // An encrypted environment's leader holds the turn the next leader needs: it syncs
        // its group itself (see `Store::join`).
        if synced && !q.pending.is_empty() && self.key.lock().is_none() {
            // The next group's commit makes this one durable.
            q.awaiting = batch;
            drop(q);
            drop(in_order);
        } else {
            drop(q);
            // The next group runs its transaction while this batch syncs.
            if let Some(t) = next_leader.take() {
                t.unpark();
            }
            self.sync_batch(&batch);
            let mut q = self.queue.lock();
            q.settled = q.settled.max(batch.end);
            drop(q);
            drop(in_order);
            durable.extend(batch.threads);
        }
        if let Some(t) = next_leader {
            t.unpark();
        }
        for w in durable {
            w.wake();
        }
    }

    /// Makes a batch durable: syncs the environment if any member's changes were committed,
    /// failing those members if the sync fails.
    fn sync_batch(&self, batch: &Batch<T>) {
        // SAFETY: the batch's members wait, unsettled, until this leader settles them.
        let mut members: Vec<&mut Member<T>> =
            batch.members.iter().map(|m| unsafe { &mut *m.0 }).collect();
        if !members.iter().any(|m| matches!(m.outcome, Some(Outcome::Done))) {
            return;
        }
        // An environment closed since the commit was destroyed (its namespace deleted) or
        // swapped for its compacted copy (synced before the swap): nothing is left to sync.
        self.syncs.fetch_add(1, Ordering::Relaxed);
        let synced = self.inner.read().as_ref().map_or(Ok(()), |o| o.env.force_sync());
        if let Err(e) = synced {
            settle_all(&mut members, Error::from(e));
        }
    }

    /// Runs a group to its end: every member gets an outcome.
    ///
    /// The members first run one after another straight in the group's transaction (no
    /// nested transaction to open, copy pages into and merge per member). If one of them
    /// fails, that attempt is aborted and the group runs again with each member in a nested
    /// transaction of its own, so that the failure undoes its own changes only.
    ///
    /// Returns whether its commit synced the data file (a commit that wrote pages).
    fn run_group(&self, members: &mut [&mut Member<T>]) -> bool {
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

    /// What the environment's group commits have done so far.
    pub(crate) fn stats(&self) -> CommitStats {
        let synced = self.synced_commits.load(Ordering::Relaxed);
        CommitStats {
            writes: self.writes.load(Ordering::Relaxed),
            commits: synced,
            syncs: synced + self.syncs.load(Ordering::Relaxed),
        }
    }

    /// Durable commits made so far.
    #[cfg(test)]
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Writes queued for the next group.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.queue.lock().pending.len()
    }

    /// Syncs made to settle groups so far.
    #[cfg(test)]
    pub(crate) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
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

    /// Doubles the memory map.
    fn grow(&self) -> Result<()> {
        let guard = self.inner.write();
        let opened = guard.as_ref().ok_or_else(closed)?;
        let new_size = opened.env.info().map_size.saturating_mul(2);
        std::mem::take(&mut *opened.readers.lock());
        // SAFETY: the write guard excludes every transaction of this environment but the
        // kept read transactions, ended just above.
        unsafe { opened.env.resize(new_size)? };
        Ok(())
    }

    /// Closes the environment and deletes its directory. Later calls fail.
    pub(crate) fn destroy(&self) -> Result<()> {
        let _turn = self.turn();
        let mut guard = self.inner.write();
        if let Some(opened) = guard.take() {
            close_env(opened);
        }
        match fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

impl<T: NamespacedTables> Store<T> {
    /// Rewrites the environment without its free pages, so bytes of deleted rows are gone
    /// from the file, holding up the environment's other transactions only for the last
    /// catch-up round and the swap of the files (see the module documentation).
    pub(crate) fn compact(&self) -> Result<()> {
        let _one = self.compacting.lock();
        *self.written.lock() = Some(BTreeSet::new());
        let next_dir = self.path.join("compacting");
        let outcome = self.compact_into(&next_dir);
        *self.written.lock() = None;
        if outcome.is_err() {
            let _ = fs::remove_dir_all(&next_dir);
        }
        outcome
    }

    fn compact_into(&self, next_dir: &Path) -> Result<()> {
        // Held throughout: the copy's transactions need it, and it comes before the guard.
        let _turn = self.turn();
        let key = self.key.lock().clone();
        // A compacted copy of a snapshot: other transactions go on meanwhile.
        let (mut guard, map_size) =
            self.copy_online(next_dir, key.as_ref(), |opened, map_size| {
                self.compacted_copy(opened, next_dir, map_size)
            })?;
        let opened = guard.take().ok_or_else(closed)?;
        close_env(opened);
        let swapped = fs::rename(next_dir.join(DATA_FILE), self.path.join(DATA_FILE))
            .map_err(Error::from)
            .and_then(|()| fsync_dir(&self.path));
        // Reopened whatever happened: on a failed rename the old file is still in place.
        *guard = Some(open_env::<T>(&self.path, map_size, key.as_ref())?);
        swapped?;
        drop(guard);
        fs::remove_dir_all(next_dir)?;
        Ok(())
    }

    /// Writes a copy of `opened` without its free pages in `next_dir` (replacing any there).
    /// A plain environment is copied by LMDB; an encrypted one row by row into a new
    /// environment with the same key, because LMDB's compacting copy does not encrypt the
    /// pages it renumbers again (its copy fails to decrypt).
    fn compacted_copy(&self, opened: &Opened<T>, next_dir: &Path, map_size: usize) -> Result<()> {
        if !opened.env.is_encrypted() {
            let copy = next_dir.join(DATA_FILE);
            opened.env.copy_to_path(&copy, CompactionOption::Enabled)?.sync_all()?;
            return Ok(());
        }
        let key = self.key.lock().clone();
        copy_rows_into(opened, next_dir, map_size, key.as_ref())
    }

    /// Rewrites the environment into a new file under `key` (a key rotation), online as
    /// [`Store::compact`] is: every row is copied from a snapshot while other transactions go
    /// on, then the namespaces written meanwhile, the last of them under the write guard.
    /// Then `staged` gets the new file's directory (to add what goes with the file, and to
    /// record that it is complete), and the new files replace the old ones; from then on the
    /// environment is under `key`. A crash after `staged` leaves the new files beside the
    /// old: [`finish_rekey`] moves them at the next open. If the move fails here the
    /// environment stays closed (a write under the old key now would be lost at that move).
    /// `staged` answering `false` stops there as a crash would (tests), the environment
    /// closed.
    pub(crate) fn rekey(
        &self,
        key: &Key,
        staged: impl FnOnce(&Path) -> Result<bool>,
    ) -> Result<()> {
        let _one = self.compacting.lock();
        *self.written.lock() = Some(BTreeSet::new());
        let next_dir = self.path.join(REKEY_DIR);
        let mut is_staged = false;
        let outcome = self.rekey_into(&next_dir, key, staged, &mut is_staged);
        *self.written.lock() = None;
        if outcome.is_err() && !is_staged {
            let _ = fs::remove_dir_all(&next_dir);
        }
        outcome
    }

    fn rekey_into(
        &self,
        next_dir: &Path,
        key: &Key,
        staged: impl FnOnce(&Path) -> Result<bool>,
        is_staged: &mut bool,
    ) -> Result<()> {
        // Held throughout: the copy's transactions need it, it comes before the guard, and
        // `staged` writes the catalog under the guard.
        let _turn = self.turn();
        // Row by row from a snapshot: a copy of the file would keep the old key's pages.
        let (mut guard, map_size) = self.copy_online(next_dir, Some(key), |opened, map_size| {
            copy_rows_into(opened, next_dir, map_size, Some(key))
        })?;
        fsync_dir(next_dir)?;
        let go_on = staged(next_dir)?;
        *is_staged = true;
        let opened = guard.take().ok_or_else(closed)?;
        close_env(opened);
        if !go_on {
            return Err(Error::Internal("key rotation stopped after staging (test)".into()));
        }
        finish_rekey(&self.path)?;
        *self.key.lock() = Some(key.clone());
        *guard = Some(open_env::<T>(&self.path, map_size, Some(key))?);
        Ok(())
    }

    /// Copies the environment into `next_dir` (emptied first) under `key` while other
    /// transactions go on: `full_copy` copies a snapshot (given the map size), then the
    /// namespaces written meanwhile are copied again from newer snapshots, the last of them
    /// under the write guard — or, when a write named no namespace, `full_copy` runs again
    /// under it. Answers the write guard, for the caller to swap the files under, and the
    /// map size.
    fn copy_online(
        &self,
        next_dir: &Path,
        key: Option<&Key>,
        full_copy: impl Fn(&Opened<T>, usize) -> Result<()>,
    ) -> Result<(RwLockWriteGuard<'_, Option<Opened<T>>>, usize)> {
        match fs::remove_dir_all(next_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => fs::create_dir_all(next_dir)?,
        }
        let map_size = {
            let guard = self.inner.read();
            let opened = guard.as_ref().ok_or_else(closed)?;
            let map_size = opened.env.info().map_size;
            full_copy(opened, map_size)?;
            map_size
        };
        let next = open_env::<T>(next_dir, map_size, key)?;
        let caught_up = self.catch_up_online(&next);
        let guard = self.inner.write();
        let copied_under_guard = caught_up.and_then(|()| {
            let opened = guard.as_ref().ok_or_else(closed)?;
            let written = self.written.lock().replace(BTreeSet::new()).unwrap_or_default();
            if written.contains(&ANY_NAMESPACE) {
                return Ok(false); // a write named no namespace: copy all again under the guard
            }
            copy_namespaces(opened, &next, &written)?;
            next.env.force_sync()?;
            Ok(true)
        });
        close_env(next);
        if !copied_under_guard? {
            full_copy(guard.as_ref().ok_or_else(closed)?, map_size)?;
        }
        Ok((guard, map_size))
    }

    /// Copies again, from newer snapshots, the namespaces written since the last one, while
    /// other transactions go on; stops when a round finds none or after a few rounds.
    fn catch_up_online(&self, next: &Opened<T>) -> Result<()> {
        for _ in 0..CATCH_UP_ROUNDS {
            let guard = self.inner.read();
            let opened = guard.as_ref().ok_or_else(closed)?;
            // Taken before the snapshot: a write committed after it is noted in the new set.
            let written = self.written.lock().replace(BTreeSet::new()).unwrap_or_default();
            if written.is_empty() || written.contains(&ANY_NAMESPACE) {
                self.written.lock().get_or_insert_with(BTreeSet::new).extend(written);
                return Ok(());
            }
            copy_namespaces(opened, next, &written)?;
        }
        Ok(())
    }
}

/// Writes every row of `opened` into a new environment in `next_dir` (replacing any there)
/// under `key`: a compacted copy of an encrypted environment, or its copy under another key.
fn copy_rows_into<T: NamespacedTables>(
    opened: &Opened<T>,
    next_dir: &Path,
    map_size: usize,
    key: Option<&Key>,
) -> Result<()> {
    for file in [DATA_FILE, "lock.mdb"] {
        match fs::remove_file(next_dir.join(file)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    let next = open_env::<T>(next_dir, map_size, key)?;
    let copied = (|| {
        let mut rtxn = opened.env.read_txn()?;
        let mut wtxn = next.env.write_txn()?;
        next.tables.copy_all(&opened.tables, &mut rtxn, &mut wtxn)?;
        wtxn.commit()?;
        Ok(next.env.force_sync()?)
    })();
    close_env(next);
    copied
}

/// Replaces the rows of each namespace of `which` in `to` with its rows in `from` now.
fn copy_namespaces<T: NamespacedTables>(
    from: &Opened<T>,
    to: &Opened<T>,
    which: &BTreeSet<NamespaceId>,
) -> Result<()> {
    if which.is_empty() {
        return Ok(());
    }
    let mut rtxn = from.env.read_txn()?;
    let mut wtxn = to.env.write_txn()?;
    for ns in which {
        to.tables.copy_namespace(&from.tables, &mut rtxn, &mut wtxn, *ns)?;
    }
    wtxn.commit()?;
    Ok(())
}

fn open_env<T: Tables>(path: &Path, map_size: usize, key: Option<&Key>) -> Result<Opened<T>> {
    let page = 4096;
    let existing = fs::metadata(path.join(DATA_FILE)).map_or(0, |m| m.len() as usize);
    let size = map_size.max(existing.next_power_of_two()).div_ceil(page) * page;
    // SAFETY: each environment path is opened once per process (the engine registry
    // guarantees it) and the files are never truncated while mapped.
    let env = unsafe {
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options
            .map_size(size)
            .max_dbs(T::MAX_DBS)
            .max_readers(1024)
            .flags(EnvFlags::NO_READ_AHEAD | EnvFlags::NO_META_SYNC);
        Environment::open(&options, path, key.map(Key::as_bytes))?
    };
    let tables = T::create(&env)?;
    // Commits do not sync their meta page (see `Store::join`): the tables' creation is made
    // durable here.
    env.force_sync()?;
    Ok(Opened { readers: Mutex::new(Vec::new()), env, tables })
}

fn close_env<T>(opened: Opened<T>) {
    let Opened { readers, env, tables } = opened;
    // A kept read transaction holds the environment open.
    drop(readers);
    drop(tables);
    env.prepare_for_closing().wait();
}

/// Directory of a key rotation's new files, beside the environment's (see [`Store::rekey`]).
const REKEY_DIR: &str = "rekeying";

/// Moves a rotation's complete new files (see [`Store::rekey`]) into place if they are still
/// beside the environment's (the data file last), then drops their directory; nothing to do
/// if they were moved already. The environment must be closed.
pub(crate) fn finish_rekey(env_dir: &Path) -> Result<()> {
    let next_dir = env_dir.join(REKEY_DIR);
    let mut files = Vec::new();
    match fs::read_dir(&next_dir) {
        Ok(entries) => {
            for entry in entries {
                let name = entry?.file_name();
                if name != "lock.mdb" && name != DATA_FILE {
                    files.push(name);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    files.push(DATA_FILE.into());
    for name in files {
        let from = next_dir.join(&name);
        if from.exists() {
            fs::rename(&from, env_dir.join(&name))?;
        }
    }
    fsync_dir(env_dir)?;
    fs::remove_dir_all(&next_dir)?;
    Ok(())
}

fn fsync_dir(path: &Path) -> Result<()> {
    fs::File::open(path)?.sync_all()?;
    Ok(())
}

fn closed() -> Error {
    Error::Internal("storage environment is closed (namespace deleted or engine shut down)".into())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::storage::Table;
    use heed3::types::{Bytes, Str};

    /// Tables of the tests: settings in `meta`, and `rows` whose keys begin with their
    /// namespace id.
    struct TestTables {
        meta: Table<Str, Bytes>,
        rows: Table<Bytes, Bytes>,
    }

    impl Tables for TestTables {
        const MAX_DBS: u32 = 2;

        fn create(env: &Environment) -> Result<Self> {
            let [meta, rows] = env.create_tables(["meta", "rows"])?;
            Ok(TestTables { meta: meta.remap_types(), rows })
        }
    }

    impl NamespacedTables for TestTables {
        fn copy_namespace(
            &self,
            from: &Self,
            rtxn: &mut RoTxn<'_>,
            wtxn: &mut RwTxn<'_>,
            ns: NamespaceId,
        ) -> Result<()> {
            Ok(self.rows.replace_prefix(&from.rows, rtxn, wtxn, &ns.to_be_bytes())?)
        }

        fn copy_all(&self, from: &Self, rtxn: &mut RoTxn<'_>, wtxn: &mut RwTxn<'_>) -> Result<()> {
            for row in from.rows.iter(rtxn)? {
                let (key, value) = row?;
                self.rows.put(wtxn, key, value)?;
            }
            for row in from.meta.iter(rtxn)? {
                let (key, value) = row?;
                self.meta.put(wtxn, key, value)?;
            }
            Ok(())
        }
    }

    /// A running write that holds a store's environment, so that later writes queue behind
    /// it, until [`HeldWrite::release`].
    pub(crate) struct HeldWrite {
        go: Arc<std::sync::atomic::AtomicBool>,
        thread: std::thread::JoinHandle<Result<()>>,
    }

    impl HeldWrite {
        /// Starts the write (`put` once let go: it must change a row, so that its commit
        /// writes pages and syncs as a real write does) and returns once it leads the
        /// store's group.
        pub(crate) fn start<T: Tables>(
            store: &Arc<Store<T>>,
            put: impl Fn(&mut RwTxn<'_>, &T) -> Result<()> + Send + Sync + 'static,
        ) -> HeldWrite {
            let go = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let thread = {
                let (store, go) = (store.clone(), go.clone());
                std::thread::spawn(move || {
                    store.write(|w, t| {
                        while !go.load(Ordering::SeqCst) {
                            std::thread::yield_now();
                        }
                        put(w, t)
                    })
                })
            };
            while !store.queue.lock().leading {
                std::thread::yield_now();
            }
            HeldWrite { go, thread }
        }

        /// Lets the write commit and waits for it.
        pub(crate) fn release(self) {
            self.go.store(true, Ordering::SeqCst);
            self.thread.join().unwrap().unwrap();
        }
    }

    /// Runs a write that holds the environment until `n` more are queued, and those `n`
    /// writes (`job(i)` each) behind it; returns the first's result and theirs.
    fn held_then_queued<R: Send>(
        store: &Store<TestTables>,
        n: usize,
        job: impl Fn(usize, &mut RwTxn<'_>, &TestTables) -> Result<R> + Sync,
    ) -> Vec<Result<R>> {
        let queued = || store.queued();
        std::thread::scope(|s| {
            let first = s.spawn(|| {
                store.write(|w, c| {
                    // Holds the environment until the others are all waiting.
                    let started = std::time::Instant::now();
                    while queued() < n && started.elapsed() < std::time::Duration::from_secs(30) {
                        std::thread::yield_now();
                    }
                    Ok(c.meta.put(w, "first", b"1")?)
                })
            });
            while !store.queue.lock().leading {
                std::thread::yield_now();
            }
            let others: Vec<_> = (0..n)
                .map(|i| {
                    let job = &job;
                    s.spawn(move || store.write(|w, c| job(i, w, c)))
                })
                .collect();
            first.join().unwrap().unwrap();
            others.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    /// Write `i` of a group: puts `k{i}`, and fails every fourth write after its put.
    fn every_fourth_refused(i: usize, w: &mut RwTxn<'_>, c: &TestTables) -> Result<usize> {
        c.meta.put(w, &format!("k{i}"), b"v")?;
        if i % 4 == 3 {
            return Err(Error::invalid("k", format!("refused {i}")));
        }
        Ok(i)
    }

    /// Each write of [`every_fourth_refused`] got its own outcome.
    fn assert_each_fourth_refused(results: impl IntoIterator<Item = Result<usize>>) {
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(v) => assert_eq!(v, i),
                Err(e) => {
                    assert_eq!(i % 4, 3, "write {i} failed: {e}");
                    assert_eq!(e.to_string(), format!("k: refused {i}"));
                }
            }
        }
    }

    /// Sixteen writes queued behind a running one form one group: one more commit for all of
    /// them, and the ones that fail inside it leave no trace and cost the others nothing.
    /// The second commit's sync of the data file makes the first durable: one sync of the
    /// environment settles both.
    #[test]
    fn queued_writes_commit_together_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::<TestTables>::open(dir.path(), 1 << 20, None).unwrap();
        let before = (store.commits(), store.syncs());
        let results = held_then_queued(&store, 16, every_fourth_refused);
        assert_each_fourth_refused(results);
        assert_eq!(store.commits() - before.0, 2, "the sixteen queued writes took one commit");
        // Writes were queued when the first commit settled: the second commit's write of
        // the data file makes it durable, whether or not a commit thread was idle then.
        assert_eq!(store.syncs() - before.1, 1, "the first commit was synced by the second");
        store
            .read(|r, c| {
                for i in 0..16 {
                    let kept = c.meta.get(r, &format!("k{i}"))?.is_some();
                    assert_eq!(kept, i % 4 != 3, "k{i}");
                }
                Ok(())
            })
            .unwrap();
    }

    /// A commit that wrote nothing syncs nothing, so the group before it is not durable
    /// through it: that group is settled only after a sync of the environment.
    #[test]
    fn a_commit_that_writes_nothing_leaves_the_group_before_it_to_a_sync() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::<TestTables>::open(dir.path(), 1 << 20, None).unwrap();
        let before = (store.commits(), store.syncs());
        let results = held_then_queued(&store, 8, |i, w, c| Ok(c.meta.get(w, "first")?.map(|_| i)));
        for (i, r) in results.into_iter().enumerate() {
            assert_eq!(r.unwrap(), Some(i));
        }
        assert_eq!(store.commits() - before.0, 2);
        assert_eq!(store.syncs() - before.1, 1, "the first group was made durable by a sync");
        assert!(store.read(|r, c| Ok(c.meta.get(r, "first")?.is_some())).unwrap());
    }

    /// Writes memory rows `batch * 100 .. (batch + 1) * 100` of namespace 1, each `row`, in
    /// one write.
    fn put_hundred_rows(store: &Store<TestTables>, batch: u64, row: &[u8]) {
        store
            .write_ns(1, |w, t| {
                for i in batch * 100..(batch + 1) * 100 {
                    let key = [1u64.to_be_bytes(), i.to_be_bytes()].concat();
                    t.rows.put(w, &key, row)?;
                }
                Ok(())
            })
            .unwrap();
    }

    /// An encrypted environment grows when its map is full, compacts (row by row), keeps
    /// nothing in plain text and is refused with another key (`MDB_CRYPTO_FAIL`).
    #[test]
    fn an_encrypted_environment_grows_compacts_and_refuses_another_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = Key::from_bytes([7; 32]);
        let store = Store::<TestTables>::open(dir.path(), 1 << 20, Some(&key)).unwrap();
        let row = b"SECRET-ROW-MARKER ".repeat(64);
        for batch in 0u64..20 {
            put_hundred_rows(&store, batch, &row);
        }
        let map_size = store.inner.read().as_ref().unwrap().env.info().map_size;
        assert!(map_size > 1 << 20, "the map grew");
        store.compact().unwrap();
        let count = store.read(|r, t| Ok(t.rows.len(r)?)).unwrap();
        assert_eq!(count, 2000);
        drop(store);
        let data = std::fs::read(dir.path().join(DATA_FILE)).unwrap();
        assert!(!data.windows(17).any(|w| w == b"SECRET-ROW-MARKER"), "plain text on disk");
        let wrong = Key::from_bytes([8; 32]);
        let e = Store::<TestTables>::open(dir.path(), 1 << 20, Some(&wrong)).err().unwrap();
        assert!(matches!(e, Error::Storage(heed3::Error::Mdb(MdbError::CryptoFail))), "{e:?}");
        let store = Store::<TestTables>::open(dir.path(), 1 << 20, Some(&key)).unwrap();
        assert_eq!(store.read(|r, t| Ok(t.rows.len(r)?)).unwrap(), 2000);
    }

    /// Reads reuse kept read transactions, yet each read sees every write answered before
    /// it, commits end the kept ones (no old snapshot holds pages), and growing the map,
    /// compacting and destroying the environment go on with transactions kept.
    #[test]
    fn kept_read_transactions_see_every_commit_and_never_hold_the_environment() {
        for key in [None, Some(Key::from_bytes([7; 32]))] {
            let dir = tempfile::tempdir().unwrap();
            let store =
                Arc::new(Store::<TestTables>::open(dir.path(), 1 << 20, key.as_ref()).unwrap());
            let kept =
                |s: &Store<TestTables>| s.inner.read().as_ref().unwrap().readers.lock().len();
            let count = |s: &Store<TestTables>| s.read(|r, t| Ok(t.rows.len(r)?)).unwrap();
            let row = b"ROW ".repeat(256);
            for batch in 0u64..20 {
                // Readers at once, each in a transaction of its own, all kept after.
                std::thread::scope(|scope| {
                    for _ in 0..3 {
                        scope.spawn(|| assert_eq!(count(&store), batch * 100));
                    }
                });
                assert!((1..=KEPT_READERS).contains(&kept(&store)), "{key:?}");
                put_hundred_rows(&store, batch, &row);
                assert_eq!(kept(&store), 0, "a commit ends the kept transactions");
                assert_eq!(count(&store), (batch + 1) * 100, "the read sees the write");
            }
            let map_size = store.inner.read().as_ref().unwrap().env.info().map_size;
            assert!(map_size > 1 << 20, "the map grew");
            assert_eq!(kept(&store), 1);
            store.compact().unwrap();
            assert_eq!(count(&store), 2000);
            store.destroy().unwrap();
            assert!(!dir.path().exists());
        }
    }

    /// Polls a future on this thread, parking it between wakes (core has no executor).
    pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }

    /// Writes awaited by tasks hold no thread: queued behind a running write they form one
    /// group, led by the environment's commit thread, and fail alone; each future resolves
    /// with its own result after the commit. A write whose future is dropped unawaited
    /// commits all the same.
    #[test]
    fn awaited_writes_commit_together_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::<TestTables>::open(dir.path(), 1 << 20, None).unwrap());
        let held = HeldWrite::start(&store, |w, c| Ok(c.meta.put(w, "held", b"1")?));
        let before = (store.commits(), store.syncs());
        let futures: Vec<_> = (0..16)
            .map(|i| store.write_ns_async(ANY_NAMESPACE, move |w, c| every_fourth_refused(i, w, c)))
            .collect();
        drop(store.write_ns_async(ANY_NAMESPACE, |w, c| Ok(c.meta.put(w, "dropped", b"1")?)));
        assert_eq!(store.queued(), 17, "queued without a thread each");
        held.release();
        assert_each_fourth_refused(futures.into_iter().map(block_on));
        assert_eq!(store.commits() - before.0, 2, "the seventeen queued writes took one commit");
        // Writes were queued when the first commit settled: the second commit's write of
        // the data file makes it durable, whether or not a commit thread was idle then.
        assert_eq!(store.syncs() - before.1, 1, "the first commit was synced by the second");
        store
            .read(|r, c| {
                for i in 0..16 {
                    assert_eq!(c.meta.get(r, &format!("k{i}"))?.is_some(), i % 4 != 3, "k{i}");
                }
                assert!(c.meta.get(r, "dropped")?.is_some(), "the dropped write committed");
                Ok(())
            })
            .unwrap();
    }
}
