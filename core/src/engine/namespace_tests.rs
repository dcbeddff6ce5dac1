//! Namespace operations tested through a whole engine: creations awaited together share one
//! catalog commit, a tenant's namespace count, and a deletion authorised on a namespace since
//! replaced.

use crate::auth::NamespaceAction;
use crate::error::Error;
use crate::keys::CreateKey;
use crate::namespace::NamespaceOptions;
use crate::page::Page;
use crate::tenant::{CreateTenant, QuotasPatch};
use crate::{Engine, Options, Role, StoreMemory};

/// Namespace creations awaited together (as the HTTP server awaits them) are queued
/// without a thread each and share one catalog commit, each with its audit entry. A
/// taken name and an unknown tenant, refused inside that commit, fail alone, their
/// entries written by the same commit; a bad field is refused before anything is queued.
/// Every outcome is in the audit log.
#[test]
fn awaited_creations_commit_together_and_fail_alone() {
    use std::future::Future;
    use std::task::{Context, Waker};
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    let root = engine.root();
    let catalog = engine.inner.state.catalog.clone();
    // A running catalog write holds the environment until the creations are queued.
    let held =
        crate::store::tests::HeldWrite::start(&catalog, |w, c| Ok(c.meta.put(w, "held", b"1")?));
    let before = catalog.commits();
    let mut args: Vec<_> =
        (0..16).map(|i| serde_json::json!({ "name": format!("t-{i}") })).collect();
    args.push(serde_json::json!({ "name": "t-3" }));
    args.push(serde_json::json!({ "name": "u", "tenant_id": "no-such-tenant" }));
    args.push(serde_json::json!({ "name": "d", "dimensions": 0 }));
    let mut futures: Vec<_> = args
        .into_iter()
        .map(|a| Box::pin(root.call_encoded_async("create_namespace", a)))
        .collect();
    let mut cx = Context::from_waker(Waker::noop());
    for f in &mut futures {
        assert!(f.as_mut().poll(&mut cx).is_pending(), "nothing is committed yet");
    }
    // Sixteen creations, the duplicate, the unknown tenant, and the entry of the
    // creation refused before its write.
    assert_eq!(catalog.queued(), 19, "queued without a thread each");
    held.release();
    let results: Vec<_> = futures.into_iter().map(crate::store::tests::block_on).collect();
    for (i, r) in results[..16].iter().enumerate() {
        let body: serde_json::Value = serde_json::from_slice(&r.as_ref().unwrap().body).unwrap();
        assert_eq!(body["name"], format!("t-{i}"));
    }
    let codes: Vec<_> = results[16..].iter().map(|r| r.as_ref().unwrap_err()).collect();
    assert_eq!(codes[0].code(), crate::ErrorCode::Conflict);
    assert!(matches!(codes[1], Error::InvalidArgument { field, .. } if field == "tenant_id"));
    assert!(matches!(codes[2], Error::InvalidArgument { field, .. } if field == "dimensions"));
    // One commit for the whole group: the creations refused in it wrote their entries in
    // it, as the others did, and nothing else.
    assert_eq!(catalog.commits() - before, 2, "the held write, then the group");
    let names = root.list_namespaces(Page { offset: None, limit: Some(100) }, None).unwrap();
    let mut names: Vec<_> = names.items.into_iter().map(|n| n.name).collect();
    names.sort();
    let mut expected: Vec<_> = (0..16).map(|i| format!("t-{i}")).collect();
    expected.sort();
    assert_eq!(names, expected, "the refused creations left nothing");
    let query = crate::audit::ListAudit {
        tenant_id: "instance".into(),
        action: Some("create_namespace".into()),
        limit: Some(100),
        ..Default::default()
    };
    let entries = root.list_audit(query).unwrap().entries;
    let ok = entries.iter().filter(|e| e.result == "ok").count();
    // The creation for an unknown tenant is recorded in that tenant's log.
    assert_eq!((ok, entries.len()), (16, 18), "every outcome is recorded");
}

/// A tenant's namespace count is kept beside its namespaces, in the transactions that
/// add and remove them, so `max_namespaces` is checked without counting them; a catalog
/// without the count (namespaces made before it was kept) is counted, and the count is
/// kept again from its next change.
#[test]
fn a_tenants_namespace_count_is_kept_or_counted() {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    let root = engine.root();
    let quotas = QuotasPatch { max_namespaces: Some(3), ..Default::default() };
    let req = CreateTenant { name: "counted".into(), quotas: Some(quotas), ..Default::default() };
    let tid = root.create_tenant(req).unwrap().tenant.id;
    let opts = || NamespaceOptions { tenant_id: Some(tid.clone()), ..Default::default() };
    let key = format!("namespaces_of/{tid}");
    let kept = || {
        let bytes =
            engine.inner.state.catalog.read(|r, t| Ok(t.meta.get(r, &key)?.map(<[u8]>::to_vec)));
        bytes.unwrap().map(|b| u64::from_be_bytes(b.try_into().unwrap()))
    };
    let usage = || root.get_tenant(&tid).unwrap().usage.namespaces;
    let refused = |name: &str| root.create_namespace(name, opts()).unwrap_err().code();
    for name in ["a", "b", "c"] {
        root.create_namespace(name, opts()).unwrap();
    }
    assert_eq!((kept(), usage()), (Some(3), 3));
    assert_eq!(refused("d"), crate::ErrorCode::QuotaExceeded);
    // As written before the count was kept.
    engine.inner.state.catalog.write(|w, t| Ok(t.meta.delete(w, &key)?)).unwrap();
    assert_eq!((kept(), usage()), (None, 3), "counted");
    assert_eq!(refused("d"), crate::ErrorCode::QuotaExceeded);
    root.delete_namespace("a").unwrap();
    assert_eq!(kept(), Some(2), "kept again from the deletion on");
    root.create_namespace("d", opts()).unwrap();
    assert_eq!((kept(), usage()), (Some(3), 3));
    assert_eq!(refused("e"), crate::ErrorCode::QuotaExceeded);
    for name in ["b", "c", "d"] {
        root.delete_namespace(name).unwrap();
    }
    assert_eq!((kept(), usage()), (None, 0), "none kept for none");
}

/// Item 4 of issue 14, made deterministic: a retried delete that was authorised on one
/// namespace runs after that namespace was deleted and its name taken by another tenant.
#[test]
fn a_delete_authorised_on_one_namespace_never_removes_its_namesake() {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    let root = engine.root();
    let admin_of = |name: &str| {
        let quotas = QuotasPatch { qps_limit: Some(1_000_000), ..Default::default() };
        let req = CreateTenant { name: name.into(), quotas: Some(quotas), ..Default::default() };
        let tid = root.create_tenant(req).unwrap().tenant.id;
        let key = root.create_key(CreateKey::tenant_role("a", &tid, Role::Admin)).unwrap();
        (tid, engine.scoped(&key.key).unwrap())
    };
    let ((_, a), (b_id, b)) = (admin_of("tenant_a"), admin_of("tenant_b"));
    a.create_namespace("contested", NamespaceOptions::default()).unwrap();
    // The retried delete has been authorised on A's namespace...
    let caller = a.caller().unwrap();
    let stale = a.namespace_for(&caller, "contested", NamespaceAction::Manage).unwrap();
    // ...when the first delete removes it and B takes the name.
    a.delete_namespace("contested").unwrap();
    b.create_namespace("contested", NamespaceOptions::default()).unwrap();
    let memory = StoreMemory { namespace: Some("contested".into()), ..StoreMemory::text("b") };
    b.store_memory(memory).unwrap();
    let used = root.get_tenant(&b_id).unwrap().usage.storage_bytes;

    let err = a.remove_namespace(&caller, &stale).unwrap_err();
    assert_eq!(err.code(), crate::ErrorCode::Forbidden);
    let ns = b.get_namespace("contested").unwrap();
    assert_eq!((ns.tenant_id.as_deref(), ns.memory_count), (Some(b_id.as_str()), 1));
    assert_eq!(root.get_tenant(&b_id).unwrap().usage.storage_bytes, used);
}
