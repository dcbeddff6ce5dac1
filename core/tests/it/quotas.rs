//! Quotas are enforced: storage (with parents), members, namespaces, request rate.

use std::sync::Arc;

use memsilo::{
    Access, CreateKey, CreateTenant, Engine, Error, ErrorCode, ManualClock, NamespaceOptions,
    Options, QuotasPatch, Recall, Role, StoreMemory,
};

fn engine_with(clock: Arc<ManualClock>) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, clock, ..Options::default() })
            .unwrap();
    (dir, engine)
}

#[test]
fn storage_quota_refuses_the_write_that_would_exceed_it_and_writes_nothing() {
    let (_d, engine) = engine_with(Arc::new(ManualClock::starting_now()));
    let root = engine.root();
    let parent = root
        .create_tenant(CreateTenant {
            name: "parent".into(),
            quotas: Some(QuotasPatch { storage_quota_bytes: Some(60_000), ..Default::default() }),
            ..Default::default()
        })
        .unwrap()
        .tenant;
    let child = root
        .create_tenant(CreateTenant {
            name: "child".into(),
            parent_id: Some(parent.id.clone()),
            quotas: Some(QuotasPatch {
                storage_quota_bytes: Some(1_000_000),
                ..Default::default()
            }),
            ..Default::default()
        })
        .unwrap()
        .tenant;
    root.create_namespace(
        "child-ns",
        NamespaceOptions { tenant_id: Some(child.id.clone()), ..Default::default() },
    )
    .unwrap();
    let store = |content: String| {
        root.store_memory(StoreMemory {
            namespace: Some("child-ns".into()),
            ..StoreMemory::text(content)
        })
    };
    let mut stored = 0;
    let err = loop {
        match store(format!("{stored} {}", "y".repeat(5_000))) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 100, "quota never enforced");
    };
    // The parent's quota binds, though the child's own is far away; the child is told of
    // the limit that applies to it, under its own id.
    match &err {
        Error::QuotaExceeded { tenant, quota, limit, .. } => {
            assert_eq!(tenant, &child.id);
            assert_eq!(*quota, "storage_quota_bytes");
            assert!(*limit <= 60_000, "{err}");
            assert!(!err.to_string().contains(&parent.id), "{err}");
        }
        other => panic!("expected quota_exceeded, got {other}"),
    }
    let ns = root.get_namespace("child-ns").unwrap();
    assert_eq!(ns.memory_count, stored);
    assert!(root.get_tenant(&parent.id).unwrap().usage.storage_bytes <= 60_000);
    // A batch that would exceed is refused whole.
    let batch = (0..5).map(|i| StoreMemory::text(format!("b{i} {}", "z".repeat(5_000)))).collect();
    assert_eq!(
        root.store_memories("child-ns", batch).unwrap_err().code(),
        ErrorCode::QuotaExceeded
    );
    assert_eq!(root.get_namespace("child-ns").unwrap().memory_count, stored);
    // Forgetting frees room again.
    let forgotten = root
        .batch_forget(memsilo::Forget {
            namespace: Some("child-ns".into()),
            before: Some(chrono::Utc::now() + chrono::Duration::days(1)),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(forgotten.forgotten, stored);
    assert_eq!(root.get_tenant(&parent.id).unwrap().usage.storage_bytes, 0);
    store("fits again".into()).unwrap();
}

#[test]
fn the_member_after_the_limit_is_refused() {
    let (_d, engine) = engine_with(Arc::new(ManualClock::starting_now()));
    let root = engine.root();
    let t = root
        .create_tenant(CreateTenant { name: "crowded".into(), ..Default::default() })
        .unwrap()
        .tenant;
    for i in 0..100 {
        root.add_member(&t.id, &format!("user{i}@x.com"), Role::Viewer, None).unwrap();
    }
    let err = root.add_member(&t.id, "user100@x.com", Role::Viewer, None).unwrap_err();
    assert_eq!(err.code(), ErrorCode::QuotaExceeded);
    assert_eq!(
        root.add_member(&t.id, "user1@x.com", Role::Admin, None).unwrap_err().code(),
        ErrorCode::Conflict
    );
    let page = root.list_members(&t.id, Some(Role::Viewer), memsilo::Page::new(90, 50)).unwrap();
    assert_eq!((page.members.len(), page.total_count), (10, 100));
    assert_eq!(
        root.list_members(&t.id, None, memsilo::Page::new(0, 101)).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn duplicate_members_conflict_and_inactive_tenants_refuse_members() {
    let (_d, engine) = engine_with(Arc::new(ManualClock::starting_now()));
    let root = engine.root();
    let t = root
        .create_tenant(CreateTenant { name: "dupes".into(), ..Default::default() })
        .unwrap()
        .tenant;
    root.add_member(&t.id, "a@x.com", Role::Editor, None).unwrap();
    assert_eq!(
        root.add_member(&t.id, "a@x.com", Role::Viewer, None).unwrap_err().code(),
        ErrorCode::Conflict
    );
    root.update_tenant(
        &t.id,
        memsilo::UpdateTenant {
            status: Some(memsilo::TenantStatus::Suspended),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        root.add_member(&t.id, "b@x.com", Role::Viewer, None).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn namespace_limit_is_enforced() {
    let (_d, engine) = engine_with(Arc::new(ManualClock::starting_now()));
    let root = engine.root();
    let t = root
        .create_tenant(CreateTenant {
            name: "small".into(),
            quotas: Some(QuotasPatch { max_namespaces: Some(2), ..Default::default() }),
            ..Default::default()
        })
        .unwrap()
        .tenant;
    let opts = || NamespaceOptions { tenant_id: Some(t.id.clone()), ..Default::default() };
    root.create_namespace("s1", opts()).unwrap();
    root.create_namespace("s2", opts()).unwrap();
    assert_eq!(root.create_namespace("s3", opts()).unwrap_err().code(), ErrorCode::QuotaExceeded);
    root.delete_namespace("s1").unwrap();
    root.create_namespace("s3", opts()).unwrap();
}

#[test]
fn rate_limit_throttles_a_noisy_tenant_and_recovers_with_the_clock() {
    let clock = Arc::new(ManualClock::starting_now());
    let (_d, engine) = engine_with(clock.clone());
    let root = engine.root();
    let mut handles = Vec::new();
    for name in ["noisy", "quiet"] {
        let t = root
            .create_tenant(CreateTenant {
                name: name.into(),
                quotas: Some(QuotasPatch { qps_limit: Some(5), ..Default::default() }),
                ..Default::default()
            })
            .unwrap()
            .tenant;
        let ns = format!("{name}-ns");
        root.create_namespace(
            &ns,
            NamespaceOptions { tenant_id: Some(t.id.clone()), ..Default::default() },
        )
        .unwrap();
        let k =
            root.create_key(CreateKey::namespaces(name, [(ns.as_str(), Access::Read)])).unwrap();
        handles.push((engine.scoped(&k.key).unwrap(), ns));
    }
    let (noisy, noisy_ns) = &handles[0];
    let (quiet, quiet_ns) = &handles[1];
    let recall = |h: &memsilo::Handle, ns: &str| h.recall(Recall::text("x").namespace(ns));
    for _ in 0..5 {
        recall(noisy, noisy_ns).unwrap();
    }
    let err = recall(noisy, noisy_ns).unwrap_err();
    assert_eq!(err.code(), ErrorCode::RateLimited);
    assert_eq!(err.retry_after(), Some(1));
    recall(quiet, quiet_ns).unwrap();
    let info = noisy.rate_info().unwrap().unwrap();
    assert_eq!((info.limit, info.remaining), (5, 0));
    clock.advance_secs(1.0);
    recall(noisy, noisy_ns).unwrap();
    // Root is never rate limited.
    for _ in 0..50 {
        root.get_namespace(noisy_ns).unwrap();
    }
}

/// Issue 17: a memory's keyword postings (one per distinct word) count against its
/// namespace's and tenant's storage, and are released with it.
#[test]
fn keyword_postings_count_in_the_storage_quota() {
    let (_d, engine) = engine_with(Arc::new(ManualClock::starting_now()));
    let root = engine.root();
    let t =
        root.create_tenant(CreateTenant { name: "words".into(), ..Default::default() }).unwrap();
    let opts = || NamespaceOptions { tenant_id: Some(t.tenant.id.clone()), ..Default::default() };
    root.create_namespace("one-word", opts()).unwrap();
    root.create_namespace("many-words", opts()).unwrap();
    // The same number of bytes: one word fifty times, or fifty different words.
    let one = vec!["w000"; 50].join(" ");
    let many = (0..50).map(|i| format!("w{i:03}")).collect::<Vec<_>>().join(" ");
    assert_eq!(one.len(), many.len());
    let store = |ns: &str, content: &str| {
        root.store_memory(StoreMemory {
            namespace: Some(ns.into()),
            id: Some("0190a5b2-7c1d-7e3f-8a4b-5c6d7e8f9a0b".into()),
            ..StoreMemory::text(content)
        })
        .unwrap()
    };
    store("one-word", &one);
    store("many-words", &many);
    let bytes = |ns: &str| root.get_namespace(ns).unwrap().storage_bytes;
    let (one_b, many_b) = (bytes("one-word"), bytes("many-words"));
    assert!(many_b >= one_b + 49 * 7, "49 more postings of 7 bytes each: {one_b} vs {many_b}");
    assert_eq!(root.get_tenant(&t.tenant.id).unwrap().usage.storage_bytes, one_b + many_b);
    // Rewriting the memory with fewer words releases their postings.
    store("many-words", &one);
    assert!(bytes("many-words") < one_b + 49 * 7, "{} vs {one_b}", bytes("many-words"));
    // The quota counts them: a tenant with room for the record but not its postings.
    let limit = Some(one_b + bytes("many-words") + one_b + 49 * 7);
    let quotas = QuotasPatch { storage_quota_bytes: limit, ..Default::default() };
    root.update_tenant(
        &t.tenant.id,
        memsilo::UpdateTenant { quotas: Some(quotas), ..Default::default() },
    )
    .unwrap();
    let refused = root.store_memory(StoreMemory {
        namespace: Some("one-word".into()),
        ..StoreMemory::text(many.replace('w', "v"))
    });
    assert_eq!(refused.unwrap_err().code(), ErrorCode::QuotaExceeded);
    for ns in ["one-word", "many-words"] {
        root.delete_memory(Some(ns), "0190a5b2-7c1d-7e3f-8a4b-5c6d7e8f9a0b").unwrap();
        assert_eq!(bytes(ns), 0);
    }
    assert_eq!(root.get_tenant(&t.tenant.id).unwrap().usage.storage_bytes, 0);
}
