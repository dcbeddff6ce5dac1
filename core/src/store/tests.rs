use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use heed3::MdbError;

use super::*;
use crate::keyring::Key;
use crate::storage::{Cipher, PageKey, Table};
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
/// Each group's leader syncs the environment for it once, while the next group commits.
#[test]
fn queued_writes_commit_together_and_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::<TestTables>::open(dir.path(), 1 << 20, None).unwrap();
    let before = (store.commits(), store.syncs());
    let results = held_then_queued(&store, 16, every_fourth_refused);
    assert_each_fourth_refused(results);
    assert_eq!(store.commits() - before.0, 2, "the sixteen queued writes took one commit");
    assert_eq!(store.syncs() - before.1, 2, "one sync of the environment per group");
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
/// through it: a group that read its rows is answered only after a sync of the environment
/// (the first group's own, or one of its own if the first group's sync was not done yet).
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
    let syncs = store.syncs() - before.1;
    assert!((1..=2).contains(&syncs), "{syncs} syncs: the first group's, maybe the second's");
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
/// nothing in plain text and is refused with another key or another cipher
/// (`MDB_CRYPTO_FAIL`), with each cipher.
#[test]
fn an_encrypted_environment_grows_compacts_and_refuses_another_key() {
    for (cipher, other) in [
        (Cipher::ChaCha20Poly1305, Cipher::Aes256GcmSiv),
        (Cipher::Aes256GcmSiv, Cipher::ChaCha20Poly1305),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let key = PageKey { cipher, key: Key::from_bytes([7; 32]) };
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
        for wrong in [
            PageKey { cipher, key: Key::from_bytes([8; 32]) },
            PageKey { cipher: other, key: key.key.clone() },
        ] {
            let e = Store::<TestTables>::open(dir.path(), 1 << 20, Some(&wrong)).err().unwrap();
            assert!(matches!(e, Error::Storage(heed3::Error::Mdb(MdbError::CryptoFail))), "{e:?}");
        }
        let store = Store::<TestTables>::open(dir.path(), 1 << 20, Some(&key)).unwrap();
        assert_eq!(store.read(|r, t| Ok(t.rows.len(r)?)).unwrap(), 2000);
    }
}

/// Reads reuse kept read transactions, yet each read sees every write answered before
/// it, commits end the kept ones (no old snapshot holds pages), and growing the map,
/// compacting and destroying the environment go on with transactions kept.
#[test]
fn kept_read_transactions_see_every_commit_and_never_hold_the_environment() {
    for key in [None, Some(PageKey { cipher: Cipher::NEW, key: Key::from_bytes([7; 32]) })] {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::<TestTables>::open(dir.path(), 1 << 20, key.as_ref()).unwrap());
        let kept = |s: &Store<TestTables>| s.inner.read().as_ref().unwrap().readers.lock().len();
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
    assert_eq!(store.syncs() - before.1, 2, "one sync of the environment per group");
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

/// Awaited writes arriving without pause from many threads: the commit thread that
/// committed a group leads the next one at once and hands its group's sync to the other
/// commit thread. Every write is answered (none waits for a sync nobody makes), groups
/// are shared, and every row is stored.
#[test]
fn awaited_writes_without_pause_are_each_answered() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::<TestTables>::open(dir.path(), 1 << 22, None).unwrap());
    let (before, syncs_before) = (store.stats(), store.syncs());
    let (threads, each) = (8u64, 150u64);
    std::thread::scope(|s| {
        for t in 0..threads {
            let store = store.clone();
            s.spawn(move || {
                for i in 0..each {
                    let key = (t * 1000 + i).to_be_bytes();
                    block_on(
                        store.write_ns_async(ANY_NAMESPACE, move |w, c| {
                            Ok(c.rows.put(w, &key, b"v")?)
                        }),
                    )
                    .unwrap();
                }
            });
        }
    });
    let done = store.stats() - before;
    assert_eq!(done.writes, threads * each);
    assert!(done.commits < done.writes, "writes were grouped: {done:?}");
    // The last group has no commit after it: a sync of the environment settled it.
    assert!(store.syncs() > syncs_before, "{done:?}");
    store
        .read(|r, c| {
            assert_eq!(c.rows.len(r)?, threads * each);
            Ok(())
        })
        .unwrap();
}
