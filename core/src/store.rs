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

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use heed::{CompactionOption, Env, EnvFlags, EnvOpenOptions, MdbError, RoTxn, RwTxn, WithoutTls};
use parking_lot::{Mutex, RwLock};

use crate::datastore::{DataTables, NamespaceId};
use crate::error::{Error, Result};

/// The tables of one kind of environment, created on open.
pub(crate) trait Tables: Sized + Send + Sync {
    /// How many named databases the environment needs.
    const MAX_DBS: u32;
    /// Creates (or opens) every table, in one committed write transaction.
    fn create(env: &Env<WithoutTls>) -> Result<Self>;
}

struct Opened<T> {
    env: Env<WithoutTls>,
    tables: T,
}

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

/// Writes waiting for the next group commit.
struct Queue<T> {
    /// Queued members, with the threads that wait for them (woken when settled, or to lead
    /// the next group).
    pending: Vec<(MemberPtr<T>, std::thread::Thread)>,
    /// Whether a thread is running a group now.
    leading: bool,
    /// Tickets below this are settled.
    settled: u64,
    next_ticket: u64,
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
    /// Every member has its outcome (the transaction committed, or had nothing to commit).
    Settled,
    /// A member run straight in the shared transaction failed: run them again, isolated.
    Isolate,
}

/// Gives every member still running (or done, but not durable) the group's failure.
fn settle_all<T>(members: &mut [&mut Member<T>], e: &Error) {
    for m in members.iter_mut() {
        if matches!(m.outcome, None | Some(Outcome::Done)) {
            m.outcome = Some(Outcome::Failed(Error::Internal(e.to_string())));
        }
    }
}

/// An LMDB environment and its tables.
pub(crate) struct Store<T> {
    path: PathBuf,
    inner: RwLock<Option<Opened<T>>>,
    queue: Mutex<Queue<T>>,
    /// Held by a group's leader from its commit until its members are settled, so groups are
    /// made durable (and settled) in commit order while the next group already runs.
    syncing: Mutex<()>,
    /// Durable commits made (each may hold many writes).
    commits: AtomicU64,
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
    /// Opens (creating if needed) the environment in directory `path`.
    pub(crate) fn open(path: &Path, initial_map_size: usize) -> Result<Self> {
        fs::create_dir_all(path)?;
        let opened = open_env::<T>(path, initial_map_size)?;
        Ok(Store {
            path: path.to_owned(),
            inner: RwLock::new(Some(opened)),
            queue: Mutex::new(Queue {
                pending: Vec::new(),
                leading: false,
                settled: 0,
                next_ticket: 0,
            }),
            syncing: Mutex::new(()),
            commits: AtomicU64::new(0),
            failing_commits: AtomicU32::new(0),
            written: Mutex::new(None),
            compacting: Mutex::new(()),
        })
    }

    /// Runs `f` in a read transaction.
    pub(crate) fn read<R>(
        &self,
        f: impl FnOnce(&RoTxn<'_, WithoutTls>, &T) -> Result<R>,
    ) -> Result<R> {
        let guard = self.inner.read();
        let opened = guard.as_ref().ok_or_else(closed)?;
        let rtxn = opened.env.read_txn()?;
        f(&rtxn, &opened.tables)
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
        match member.outcome.take() {
            Some(Outcome::Done) => {
                value.ok_or_else(|| Error::Internal("write lost its result".into()))
            }
            Some(Outcome::Failed(e)) => Err(e),
            Some(Outcome::Panicked(p)) => std::panic::resume_unwind(p),
            None => Err(Error::Internal("write was not run".into())),
        }
    }

    /// Queues `member` and waits until a commit has settled it, leading a group when no
    /// other thread is.
    ///
    /// A group's leader runs it and commits; LMDB writes the data pages and syncs them, then
    /// writes the meta page that makes the commit current without syncing it (the
    /// environment is opened with `NO_META_SYNC`). The leader then hands the lead to a
    /// waiting member, so the next group runs its transaction and its data sync while this
    /// one syncs again (`mdb_env_sync`, which makes the meta page durable), and only then
    /// settles its members: a write is answered after its commit is on disk, as with a
    /// synchronous commit, but the environment's writer is held for one sync per commit
    /// instead of two. A crash before the second sync loses only unanswered commits, never
    /// the integrity of the file (LMDB's data pages are durable before any meta page points
    /// at them).
    fn join(&self, member: &mut Member<T>) {
        let mut q = self.queue.lock();
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.pending.push((MemberPtr(member), std::thread::current()));
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
            q.leading = true;
            let (group, waiting): (Vec<_>, Vec<_>) =
                std::mem::take(&mut q.pending).into_iter().unzip();
            let last = q.next_ticket;
            drop(q);
            // SAFETY: each member stays alive and unaliased until it is settled, which
            // happens below, after this group's commit and sync.
            let mut members: Vec<&mut Member<T>> =
                group.into_iter().map(|m| unsafe { &mut *m.0 }).collect();
            self.run_group(&mut members);
            // Syncs (and so settlements) happen in commit order: the next leader waits here.
            let in_order = self.syncing.lock();
            q = self.queue.lock();
            q.leading = false;
            let next_leader = q.pending.first().map(|(_, t)| t.clone());
            drop(q);
            if let Some(t) = next_leader {
                t.unpark();
            }
            self.sync_group(&mut members);
            drop(members);
            q = self.queue.lock();
            q.settled = q.settled.max(last);
            drop(q);
            drop(in_order);
            for t in waiting {
                t.unpark();
            }
            q = self.queue.lock();
        }
    }

    /// Makes a committed group durable: syncs the environment if any member's changes were
    /// committed, failing those members if the sync fails.
    fn sync_group(&self, members: &mut [&mut Member<T>]) {
        if !members.iter().any(|m| matches!(m.outcome, Some(Outcome::Done))) {
            return;
        }
        // An environment closed since the commit was destroyed (its namespace deleted): there
        // is nothing left to make durable.
        let synced = self.inner.read().as_ref().map_or(Ok(()), |o| o.env.force_sync());
        if let Err(e) = synced {
            settle_all(members, &Error::from(e));
        }
    }

    /// Runs a group to its end: every member gets an outcome.
    ///
    /// The members first run one after another straight in the group's transaction (no
    /// nested transaction to open, copy pages into and merge per member). If one of them
    /// fails, that attempt is aborted and the group runs again with each member in a nested
    /// transaction of its own, so that the failure undoes its own changes only.
    fn run_group(&self, members: &mut [&mut Member<T>]) {
        let mut isolated = false;
        loop {
            match self.try_group(members, isolated) {
                Err(Error::Storage(heed::Error::Mdb(MdbError::MapFull))) => {
                    for m in members.iter_mut() {
                        if matches!(m.outcome, Some(Outcome::Done)) {
                            m.outcome = None;
                        }
                    }
                    if let Err(e) = self.grow() {
                        settle_all(members, &e);
                        return;
                    }
                }
                Err(e) => {
                    settle_all(members, &e);
                    return;
                }
                Ok(Attempt::Settled) => return,
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
                Outcome::Failed(Error::Storage(heed::Error::Mdb(MdbError::MapFull))) => {
                    return Err(Error::Storage(heed::Error::Mdb(MdbError::MapFull)));
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
            return Ok(Attempt::Settled);
        }
        if self.take_failing_commit() {
            wtxn.abort();
            return Err(Error::Internal("injected commit failure".into()));
        }
        wtxn.commit()?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        // Noted after the commit and under the read guard: a compaction's snapshot taken
        // before this commit was taken after it began noting, so it sees these.
        if let Some(written) = self.written.lock().as_mut() {
            for m in members.iter().filter(|m| matches!(m.outcome, Some(Outcome::Done))) {
                written.insert(m.ns);
            }
        }
        Ok(Attempt::Settled)
    }

    /// Durable commits made so far.
    #[cfg(test)]
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
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
        // SAFETY: the write guard excludes every transaction of this environment.
        unsafe { opened.env.resize(new_size)? };
        Ok(())
    }

    /// Closes the environment and deletes its directory. Later calls fail.
    pub(crate) fn destroy(&self) -> Result<()> {
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

impl Store<DataTables> {
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
        match fs::remove_dir_all(next_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => fs::create_dir_all(next_dir)?,
        }
        // A compacted copy of a snapshot: other transactions go on meanwhile.
        let map_size = {
            let guard = self.inner.read();
            let opened = guard.as_ref().ok_or_else(closed)?;
            opened
                .env
                .copy_to_path(next_dir.join(DATA_FILE), CompactionOption::Enabled)?
                .sync_all()?;
            opened.env.info().map_size
        };
        let next = open_env::<DataTables>(next_dir, map_size)?;
        let caught_up = self.catch_up_online(&next);
        let mut guard = self.inner.write();
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
            let opened = guard.as_ref().ok_or_else(closed)?;
            let copy = next_dir.join(DATA_FILE);
            opened.env.copy_to_path(&copy, CompactionOption::Enabled)?.sync_all()?;
        }
        let opened = guard.take().ok_or_else(closed)?;
        close_env(opened);
        let swapped = fs::rename(next_dir.join(DATA_FILE), self.path.join(DATA_FILE))
            .map_err(Error::from)
            .and_then(|()| fsync_dir(&self.path));
        // Reopened whatever happened: on a failed rename the old file is still in place.
        *guard = Some(open_env::<DataTables>(&self.path, map_size)?);
        swapped?;
        drop(guard);
        fs::remove_dir_all(next_dir)?;
        Ok(())
    }

    /// Copies again, from newer snapshots, the namespaces written since the last one, while
    /// other transactions go on; stops when a round finds none or after a few rounds.
    fn catch_up_online(&self, next: &Opened<DataTables>) -> Result<()> {
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

/// Replaces the rows of each namespace of `which` in `to` with its rows in `from` now.
fn copy_namespaces(
    from: &Opened<DataTables>,
    to: &Opened<DataTables>,
    which: &BTreeSet<NamespaceId>,
) -> Result<()> {
    if which.is_empty() {
        return Ok(());
    }
    let rtxn = from.env.read_txn()?;
    let mut wtxn = to.env.write_txn()?;
    for ns in which {
        to.tables.copy_namespace(&from.tables, &rtxn, &mut wtxn, *ns)?;
    }
    wtxn.commit()?;
    Ok(())
}

fn open_env<T: Tables>(path: &Path, map_size: usize) -> Result<Opened<T>> {
    let page = 4096;
    let existing = fs::metadata(path.join(DATA_FILE)).map_or(0, |m| m.len() as usize);
    let size = map_size.max(existing.next_power_of_two()).div_ceil(page) * page;
    // SAFETY: each environment path is opened once per process (the engine registry
    // guarantees it) and the files are never truncated while mapped.
    let env = unsafe {
        EnvOpenOptions::new()
            .read_txn_without_tls()
            .map_size(size)
            .max_dbs(T::MAX_DBS)
            .max_readers(1024)
            .flags(EnvFlags::NO_READ_AHEAD | EnvFlags::NO_META_SYNC)
            .open(path)?
    };
    let tables = T::create(&env)?;
    // Commits do not sync their meta page (see `Store::join`): the tables' creation is made
    // durable here.
    env.force_sync()?;
    Ok(Opened { env, tables })
}

fn close_env<T>(opened: Opened<T>) {
    let Opened { env, tables } = opened;
    drop(tables);
    env.prepare_for_closing().wait();
}

fn fsync_dir(path: &Path) -> Result<()> {
    fs::File::open(path)?.sync_all()?;
    Ok(())
}

fn closed() -> Error {
    Error::Internal("storage environment is closed (namespace deleted or engine shut down)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CatalogTables;

    /// Sixteen writes queued behind a running one form one group: one more commit for all of
    /// them, and the ones that fail inside it leave no trace and cost the others nothing.
    #[test]
    fn queued_writes_commit_together_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::<CatalogTables>::open(dir.path(), 1 << 20).unwrap();
        let queued = || store.queue.lock().pending.len();
        let before = store.commits();
        std::thread::scope(|s| {
            let first = s.spawn(|| {
                store.write(|w, c| {
                    // Holds the environment until the others are all waiting.
                    let started = std::time::Instant::now();
                    while queued() < 16 && started.elapsed() < std::time::Duration::from_secs(30) {
                        std::thread::yield_now();
                    }
                    Ok(c.meta.put(w, "first", b"1")?)
                })
            });
            while !store.queue.lock().leading {
                std::thread::yield_now();
            }
            let others: Vec<_> = (0..16)
                .map(|i| {
                    let store = &store;
                    s.spawn(move || {
                        store.write(|w, c| {
                            c.meta.put(w, &format!("k{i}"), b"v")?;
                            if i % 4 == 3 {
                                return Err(Error::invalid("k", format!("refused {i}")));
                            }
                            Ok(i)
                        })
                    })
                })
                .collect();
            first.join().unwrap().unwrap();
            for (i, h) in others.into_iter().enumerate() {
                match h.join().unwrap() {
                    Ok(v) => assert_eq!(v, i),
                    Err(e) => {
                        assert_eq!(i % 4, 3, "write {i} failed: {e}");
                        assert_eq!(e.to_string(), format!("k: refused {i}"));
                    }
                }
            }
        });
        assert_eq!(store.commits() - before, 2, "the sixteen queued writes took one commit");
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
}
