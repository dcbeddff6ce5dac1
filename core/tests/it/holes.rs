//! Issue 14, the holes found by reading the engine: namespace deletion racing a recreation
//! by another tenant, in-memory state changed by a transaction that then fails, and quota
//! usage driven down by racing deletes. (Also run by `tests/reliability`, which includes this
//! file.)

use std::sync::Barrier;
use std::time::{Duration, Instant};

use memsilo::{
    CreateKey, CreateTenant, Engine, ErrorCode, Handle, NamespaceOptions, Options, QuotasPatch,
    Recall, Role, StoreMemory,
};

fn open(dir: &std::path::Path) -> Engine {
    Engine::open(dir, Options { background: false, ..Options::default() }).unwrap()
}

fn tenant(root: &Handle, name: &str) -> String {
    root.create_tenant(CreateTenant { name: name.into(), ..Default::default() }).unwrap().tenant.id
}

/// A tenant whose request rate never limits a test's tight loops.
fn unlimited_tenant(root: &Handle, name: &str) -> String {
    let quotas = QuotasPatch { qps_limit: Some(1_000_000), ..Default::default() };
    let req = CreateTenant { name: name.into(), quotas: Some(quotas), ..Default::default() };
    root.create_tenant(req).unwrap().tenant.id
}

fn tenant_admin(engine: &Engine, tid: &str) -> Handle {
    let key = engine.root().create_key(CreateKey::tenant_role("admin", tid, Role::Admin)).unwrap();
    engine.scoped(&key.key).unwrap()
}

fn in_tenant(tid: &str) -> NamespaceOptions {
    NamespaceOptions { tenant_id: Some(tid.to_owned()), ..Default::default() }
}

fn store(h: &Handle, ns: &str, content: &str) -> memsilo::Result<memsilo::Memory> {
    h.store_memory(StoreMemory { namespace: Some(ns.into()), ..StoreMemory::text(content) })
}

fn usage(root: &Handle, tid: &str) -> u64 {
    root.get_tenant(tid).unwrap().usage.storage_bytes
}

/// Item 4: tenant A deletes "contested" twice at once (a retried delete) while tenant B
/// tries to take that name; A's second delete must never remove B's namespace, nor release
/// usage from the wrong tenant.
#[test]
fn racing_deletes_never_remove_another_tenants_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let root = engine.root();
    let (a_id, b_id) = (unlimited_tenant(&root, "racer_a"), unlimited_tenant(&root, "racer_b"));
    let (a, b) = (&tenant_admin(&engine, &a_id), &tenant_admin(&engine, &b_id));
    let mut b_won = 0;
    for round in 0..150_u64 {
        a.create_namespace("contested", NamespaceOptions::default()).unwrap();
        let start = &Barrier::new(3);
        let b_has_it = std::thread::scope(|s| {
            // The retry starts a little later each round, so that across rounds it reads the
            // namespace while the first delete commits and B waits to take the name.
            for delay in [0, (round % 15) * 20] {
                s.spawn(move || {
                    start.wait();
                    let t0 = Instant::now();
                    while t0.elapsed() < Duration::from_micros(delay) {
                        std::hint::spin_loop();
                    }
                    let _ = a.delete_namespace("contested");
                });
            }
            let taker = s.spawn(move || {
                start.wait();
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline {
                    if b.create_namespace("contested", NamespaceOptions::default()).is_ok() {
                        return true;
                    }
                }
                false
            });
            taker.join().unwrap()
        });
        assert!(b_has_it, "round {round}: tenant B never got the freed name");
        b_won += 1;
        let ns = b.get_namespace("contested").unwrap_or_else(|e| {
            panic!("round {round}: tenant A's delete removed tenant B's namespace: {e}")
        });
        assert_eq!(ns.tenant_id.as_deref(), Some(b_id.as_str()));
        store(b, "contested", "b's memory").unwrap();
        b.delete_namespace("contested").unwrap();
    }
    eprintln!("{b_won} rounds");
    // Usage was charged and released to the right tenant: neither holds anything now.
    assert_eq!(usage(&root, &a_id), 0);
    assert_eq!(usage(&root, &b_id), 0);
}

/// Item 5: a deletion whose catalog commit fails changes nothing, in memory either: the
/// namespace (or tenant) stays fully usable without a restart.
#[test]
fn a_delete_whose_commit_fails_leaves_everything_alive() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let root = engine.root();
    let tid = tenant(&root, "survivor");
    root.create_namespace("survivor-ns", in_tenant(&tid)).unwrap();
    store(&root, "survivor-ns", "before the failed delete").unwrap();
    let charged = usage(&root, &tid);
    assert!(charged > 0);

    engine.fail_next_catalog_commits(1);
    assert_eq!(root.delete_namespace("survivor-ns").unwrap_err().code(), ErrorCode::Internal);
    store(&root, "survivor-ns", "after the failed namespace delete").unwrap();
    engine.fail_next_catalog_commits(1);
    assert_eq!(root.delete_tenant(&tid).unwrap_err().code(), ErrorCode::Internal);
    store(&root, "survivor-ns", "after the failed tenant delete").unwrap();

    let hits =
        root.recall(Recall::text("failed delete").namespace("survivor-ns").top_k(10)).unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(root.get_namespace("survivor-ns").unwrap().memory_count, 3);
    assert!(usage(&root, &tid) > charged, "usage was released by a delete that did not happen");
    assert_eq!(engine.pending_purges().unwrap(), 0);
}

/// Item 9: forgetting memories while their namespace is deleted releases each byte once;
/// the tenant's usage ends equal to what its remaining namespace holds.
#[test]
fn forgets_racing_a_namespace_delete_release_each_byte_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let root = engine.root();
    let tid = tenant(&root, "churner");
    root.create_namespace("keep", in_tenant(&tid)).unwrap();
    for i in 0..20 {
        store(&root, "keep", &format!("kept memory {i}")).unwrap();
    }
    let kept = root.get_namespace("keep").unwrap().storage_bytes;
    assert_eq!(usage(&root, &tid), kept);
    for round in 0..20_u64 {
        let ns = format!("churn-{round}");
        root.create_namespace(&ns, in_tenant(&tid)).unwrap();
        let ids: Vec<String> =
            (0..40).map(|i| store(&root, &ns, &format!("churn {round} {i}")).unwrap().id).collect();
        let forgetter = {
            let (root, ns) = (root.clone(), ns.clone());
            std::thread::spawn(move || {
                for id in ids {
                    let _ = root.delete_memory(Some(&ns), &id);
                }
            })
        };
        std::thread::sleep(Duration::from_millis(round % 4));
        root.delete_namespace(&ns).unwrap();
        forgetter.join().unwrap();
        assert_eq!(usage(&root, &tid), kept, "round {round}: usage drifted from what is stored");
    }
}

/// Item 10 (the part done): deleting a namespace that never held a row does not rewrite the
/// shard file it shared with other tenants (before, every deletion copied the whole file under
/// a lock blocking every tenant of the shard).
#[cfg(unix)]
#[test]
fn purging_an_empty_namespace_leaves_the_shared_shard_file_alone() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, shards: 1, ..Options::default() })
            .unwrap();
    let root = engine.root();
    root.create_namespace("busy", NamespaceOptions::default()).unwrap();
    store(&root, "busy", "another tenant's memory").unwrap();
    root.create_namespace("empty", NamespaceOptions::default()).unwrap();
    let file = dir.path().join("shards").join("shard-0").join("data.mdb");
    let before = std::fs::metadata(&file).unwrap().ino();
    root.delete_namespace("empty").unwrap();
    assert_eq!(engine.run_pending_purges().unwrap(), 1);
    assert_eq!(std::fs::metadata(&file).unwrap().ino(), before, "the shard file was rewritten");
    assert_eq!(root.get_namespace("busy").unwrap().memory_count, 1);
}
