use memsilo::{
    Access, CreateKey, CreateTenant, Engine, ErrorCode, NamespaceOptions, Options, QuotasPatch,
    Recall, Role, StoreMemory,
};

fn open() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    (dir, engine)
}

fn store(ns: &str, content: &str) -> StoreMemory {
    StoreMemory { namespace: Some(ns.into()), ..StoreMemory::text(content) }
}

#[test]
fn saas_flow_keeps_tenants_apart() {
    let (_dir, engine) = open();
    let root = engine.root();
    let acme = root
        .create_tenant(CreateTenant {
            name: "acme_corp".into(),
            quotas: Some(QuotasPatch { qps_limit: Some(1000), ..Default::default() }),
            ..Default::default()
        })
        .unwrap();
    root.create_namespace(
        "tenant-acme",
        NamespaceOptions { tenant_id: Some(acme.tenant.id.clone()), ..Default::default() },
    )
    .unwrap();
    root.create_namespace("tenant-globex", NamespaceOptions::default()).unwrap();
    let key = root
        .create_key(CreateKey::namespaces("acme-backend", [("tenant-acme", Access::Write)]))
        .unwrap();
    assert_eq!(key.info.tenant_id.as_deref(), Some(acme.tenant.id.as_str()));

    let scoped = engine.scoped(&key.key).unwrap();
    let listed = scoped.list_namespaces(memsilo::Page::default(), None).unwrap();
    assert_eq!(listed.items.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["tenant-acme"]);

    scoped
        .store_memory(StoreMemory {
            importance: Some(0.9),
            ..store("tenant-acme", "Acme Q3 roadmap: launch Omega in September")
        })
        .unwrap();
    scoped.store_memory(store("tenant-acme", "The office coffee machine is broken")).unwrap();
    root.store_memory(store("tenant-globex", "Globex roadmap: secret project")).unwrap();

    let hits =
        scoped.recall(Recall::text("product roadmap").namespace("tenant-acme").top_k(5)).unwrap();
    assert_eq!(hits[0].content, "Acme Q3 roadmap: launch Omega in September");
    assert!(hits.iter().all(|h| !h.content.contains("Globex")));

    for ns in ["tenant-globex", "does-not-exist"] {
        let err = scoped.recall(Recall::text("roadmap").namespace(ns)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::Forbidden);
        assert_eq!(err.to_string(), format!("Key not authorized for namespace {ns}"));
    }
    // Root learns not_found for a missing namespace.
    assert_eq!(
        root.recall(Recall::text("x").namespace("nope")).unwrap_err().code(),
        ErrorCode::NotFound
    );

    // Revocation takes effect on the existing handle at once.
    root.revoke_key(&key.info.id).unwrap();
    assert_eq!(
        scoped.recall(Recall::text("roadmap").namespace("tenant-acme")).unwrap_err().code(),
        ErrorCode::Unauthorized
    );
    assert_eq!(engine.scoped(&key.key).unwrap_err().code(), ErrorCode::Unauthorized);
}

#[test]
fn member_keys_follow_the_role_and_die_with_the_member() {
    let (_dir, engine) = open();
    let root = engine.root();
    let t = root
        .create_tenant(CreateTenant { name: "acme_corp".into(), ..Default::default() })
        .unwrap()
        .tenant;
    root.create_namespace(
        "acme-a",
        NamespaceOptions { tenant_id: Some(t.id.clone()), ..Default::default() },
    )
    .unwrap();
    let viewer = root.add_member(&t.id, "v@acme.com", Role::Viewer, None).unwrap();
    let key = root.create_key(CreateKey::member("viewer-key", &t.id, &viewer.member_id)).unwrap();
    let h = engine.scoped(&key.key).unwrap();
    assert!(h.recall(Recall::text("x").namespace("acme-a")).unwrap().is_empty());
    assert_eq!(h.store_memory(store("acme-a", "x")).unwrap_err().code(), ErrorCode::Forbidden);
    root.remove_member(&t.id, &viewer.member_id).unwrap();
    assert_eq!(
        h.recall(Recall::text("x").namespace("acme-a")).unwrap_err().code(),
        ErrorCode::Unauthorized
    );
}

#[test]
fn deleted_namespace_is_gone_and_its_name_starts_empty() {
    let (_dir, engine) = open();
    let root = engine.root();
    root.create_namespace("ns", NamespaceOptions::default()).unwrap();
    let key = root.create_key(CreateKey::namespaces("k", [("ns", Access::Read)])).unwrap();
    root.store_memory(store("ns", "secret marker")).unwrap();
    root.delete_namespace("ns").unwrap();
    assert_eq!(
        root.recall(Recall::text("marker").namespace("ns")).unwrap_err().code(),
        ErrorCode::NotFound
    );
    root.create_namespace("ns", NamespaceOptions::default()).unwrap();
    assert!(root.recall(Recall::text("marker").namespace("ns")).unwrap().is_empty());
    // The old key was for the old namespace: it does not reach the new one.
    let old = engine.scoped(&key.key).unwrap();
    assert_eq!(
        old.recall(Recall::text("marker").namespace("ns")).unwrap_err().code(),
        ErrorCode::Forbidden
    );
    assert!(old.list_namespaces(memsilo::Page::default(), None).unwrap().items.is_empty());
    assert_eq!(engine.run_pending_purges().unwrap(), 1);
}
