//! Memories: decay and TTL with an injectable clock, forget filters, validation that writes
//! nothing, the namespace-resolution rule, vector-space checks, lexical recall.

use std::sync::Arc;

use memsilo::{
    Access, CreateKey, DecayPolicy, Engine, Error, ErrorCode, Forget, ManualClock,
    NamespaceOptions, Options, Recall, StoreMemory,
};

fn open(clock: Arc<ManualClock>) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, clock, ..Options::default() })
            .unwrap();
    (dir, engine)
}

fn mem(ns: &str, content: &str) -> StoreMemory {
    StoreMemory { namespace: Some(ns.into()), ..StoreMemory::text(content) }
}

fn field_of(e: &Error) -> String {
    match e {
        Error::InvalidArgument { field, .. } | Error::PayloadTooLarge { field, .. } => {
            field.clone()
        }
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn ttl_and_decay_hide_memories_at_once_and_the_sweep_removes_them() {
    let clock = Arc::new(ManualClock::starting_now());
    let (_d, engine) = open(clock.clone());
    let root = engine.root();
    let policy = DecayPolicy { decay_rate: 0.1, min_importance: 0.3, ttl_default: Some(3600) };
    root.create_namespace(
        "fading",
        NamespaceOptions { policy: Some(policy), ..Default::default() },
    )
    .unwrap();
    root.store_memory(StoreMemory {
        importance: Some(1.0),
        ttl: Some(100 * 86_400),
        ..mem("fading", "strong memory about rust")
    })
    .unwrap();
    root.store_memory(StoreMemory {
        importance: Some(0.35),
        ttl: Some(100 * 86_400),
        ..mem("fading", "weak memory about rust")
    })
    .unwrap();
    root.store_memory(StoreMemory {
        importance: Some(1.0),
        ..mem("fading", "short-lived memory about rust")
    })
    .unwrap();
    let recall =
        || root.recall(Recall::text("memory about rust").namespace("fading").top_k(10)).unwrap();
    assert_eq!(recall().len(), 3);

    // After two hours the default TTL (1 h) has expired the third one: hidden before any sweep.
    clock.advance_secs(7200.0);
    let hits = recall();
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|h| !h.content.starts_with("short-lived")));
    // Effective importance decays: 0.35 * exp(-0.1 * 2 days) ≈ 0.287 < 0.3 after two days.
    clock.advance_secs(2.0 * 86_400.0);
    let hits = recall();
    assert_eq!(
        hits.iter().map(|h| h.content.as_str()).collect::<Vec<_>>(),
        ["strong memory about rust"]
    );
    let strong = &hits[0];
    assert!(
        (strong.effective_importance - (-0.1f64 * (2.0 + 2.0 / 24.0)).exp()).abs() < 1e-3,
        "{strong:?}"
    );

    let before = root.get_namespace("fading").unwrap();
    assert_eq!(before.memory_count, 3);
    assert_eq!(engine.sweep_now().unwrap(), 2);
    let after = root.get_namespace("fading").unwrap();
    assert_eq!(after.memory_count, 1);
    assert!(after.storage_bytes < before.storage_bytes);
}

#[test]
fn higher_importance_ranks_first_among_equally_similar_memories() {
    let (_d, engine) = open(Arc::new(ManualClock::starting_now()));
    let root = engine.root();
    root.create_namespace("rank", NamespaceOptions::default()).unwrap();
    root.store_memory(StoreMemory {
        importance: Some(0.1),
        ..mem("rank", "quarterly planning notes")
    })
    .unwrap();
    root.store_memory(StoreMemory {
        importance: Some(0.9),
        ..mem("rank", "quarterly planning notes")
    })
    .unwrap();
    let hits = root.recall(Recall::text("quarterly planning").namespace("rank")).unwrap();
    assert_eq!(hits.len(), 2);
    assert!(hits[0].importance > hits[1].importance);
    assert!(hits[0].score > hits[1].score);
}

#[test]
fn forget_filters_combine_and_an_empty_filter_is_refused() {
    let (_d, engine) = open(Arc::new(ManualClock::starting_now()));
    let root = engine.root();
    root.create_namespace("f", NamespaceOptions::default()).unwrap();
    let mut ids = Vec::new();
    for (agent, tags, importance) in [
        ("customer-a", vec!["billing"], 0.9),
        ("customer-a", vec!["billing", "urgent"], 0.2),
        ("customer-b", vec!["billing"], 0.2),
        ("customer-b", vec!["support"], 0.8),
    ] {
        let m = root
            .store_memory(StoreMemory {
                agent_id: Some(agent.into()),
                tags: tags.into_iter().map(String::from).collect(),
                importance: Some(importance),
                ..mem("f", &format!("{agent} note"))
            })
            .unwrap();
        ids.push(m.id);
    }
    let forget = |f: Forget| root.batch_forget(Forget { namespace: Some("f".into()), ..f });
    let err = forget(Forget::default()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert_eq!(root.get_namespace("f").unwrap().memory_count, 4);

    let n = forget(Forget {
        agent_id: Some("customer-a".into()),
        tags: Some(vec!["urgent".into()]),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(n.forgotten, 1);
    let n = forget(Forget { below_importance: Some(0.5), ..Default::default() }).unwrap();
    assert_eq!(n.forgotten, 1, "only customer-b's billing note is below 0.5 now");
    let n = forget(Forget {
        ids: Some(vec![ids[0].clone(), "not-a-uuid".into(), uuid_v4()]),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(n.forgotten, 1);
    let left = root.recall(Recall::text("note").namespace("f")).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, ids[3]);
}

fn uuid_v4() -> String {
    "00000000-0000-4000-8000-000000000000".into()
}

#[test]
fn invalid_input_names_the_field_and_writes_nothing() {
    let (_d, engine) = open(Arc::new(ManualClock::starting_now()));
    let root = engine.root();
    root.create_namespace("v", NamespaceOptions { dimensions: Some(3), ..Default::default() })
        .unwrap();
    let ok = StoreMemory { embedding: Some(vec![1.0, 0.0, 0.0]), ..mem("v", "fine") };
    root.store_memory(ok.clone()).unwrap();
    let cases: Vec<(StoreMemory, &str)> = vec![
        (StoreMemory { content: String::new(), ..ok.clone() }, "content"),
        (StoreMemory { content: "  \n".into(), ..ok.clone() }, "content"),
        (StoreMemory { content: "x".repeat(65_537), ..ok.clone() }, "content"),
        (StoreMemory { importance: Some(1.5), ..ok.clone() }, "importance"),
        (StoreMemory { importance: Some(f64::NAN), ..ok.clone() }, "importance"),
        (StoreMemory { embedding: Some(vec![f32::NAN, 0.0, 1.0]), ..ok.clone() }, "embedding"),
        (StoreMemory { embedding: Some(vec![f32::INFINITY, 0.0, 1.0]), ..ok.clone() }, "embedding"),
        (StoreMemory { embedding: Some(vec![0.0, 0.0, 0.0]), ..ok.clone() }, "embedding"),
        (StoreMemory { embedding: Some(vec![1.0, 0.0]), ..ok.clone() }, "embedding"),
        (StoreMemory { tags: vec!["t".repeat(129)], ..ok.clone() }, "tags[0]"),
        (StoreMemory { tags: (0..65).map(|i| i.to_string()).collect(), ..ok.clone() }, "tags"),
        (StoreMemory { agent_id: Some("a".repeat(257)), ..ok.clone() }, "agent_id"),
        (StoreMemory { ttl: Some(0), ..ok.clone() }, "ttl"),
    ];
    for (bad, field) in cases {
        let err = root.store_memory(bad).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{field}: {err}");
        assert_eq!(field_of(&err), field, "{err}");
    }
    // A batch with one bad item writes none of them.
    let mut batch: Vec<StoreMemory> = (0..10)
        .map(|i| StoreMemory {
            embedding: Some(vec![1.0, i as f32, 0.0]),
            ..StoreMemory::text(format!("b{i}"))
        })
        .collect();
    batch[7].importance = Some(-0.1);
    let err = root.store_memories("v", batch).unwrap_err();
    assert_eq!(field_of(&err), "memories[7].importance");
    let too_many = (0..1001)
        .map(|i| StoreMemory {
            embedding: Some(vec![1.0, 0.0, i as f32]),
            ..StoreMemory::text("x")
        })
        .collect();
    assert_eq!(root.store_memories("v", too_many).unwrap_err().code(), ErrorCode::PayloadTooLarge);
    assert_eq!(root.get_namespace("v").unwrap().memory_count, 1);
    // Recall input.
    for (bad, field) in [
        (Recall::vector(vec![1.0, 0.0]).namespace("v"), "vector"),
        (Recall::vector(vec![1.0, 0.0, 0.0]).namespace("v").top_k(0), "top_k"),
        (Recall::vector(vec![1.0, 0.0, 0.0]).namespace("v").top_k(1001), "top_k"),
        (Recall::text("text into caller vectors").namespace("v"), "query"),
        (Recall { namespace: Some("v".into()), ..Default::default() }, "query"),
    ] {
        assert_eq!(field_of(&root.recall(bad).unwrap_err()), field);
    }
}

#[test]
fn the_namespace_comes_from_namespace_then_agent_id_then_the_keys_only_namespace() {
    let (_d, engine) = open(Arc::new(ManualClock::starting_now()));
    let root = engine.root();
    root.create_namespace("tenant-acme-corp", NamespaceOptions::default()).unwrap();
    root.create_namespace("tenant-globex", NamespaceOptions::default()).unwrap();
    let acme = engine
        .scoped(
            &root
                .create_key(CreateKey::namespaces("acme", [("tenant-acme-corp", Access::Write)]))
                .unwrap()
                .key,
        )
        .unwrap();
    let globex = engine
        .scoped(
            &root
                .create_key(CreateKey::namespaces("globex", [("tenant-globex", Access::Write)]))
                .unwrap()
                .key,
        )
        .unwrap();
    // agent_id addresses the namespace, as in the guide's curl examples.
    acme.store_memory(StoreMemory {
        agent_id: Some("tenant-acme-corp".into()),
        ..StoreMemory::text("acme plan")
    })
    .unwrap();
    // No namespace and no agent_id: the key's only namespace.
    acme.store_memory(StoreMemory::text("acme second plan")).unwrap();
    assert_eq!(acme.recall(Recall::text("plan")).unwrap().len(), 2);
    let by_agent = Recall { agent_id: Some("tenant-acme-corp".into()), ..Recall::text("plan") };
    assert_eq!(acme.recall(by_agent.clone()).unwrap().len(), 2);
    let err = globex.recall(by_agent).unwrap_err();
    assert_eq!(err.to_string(), "Key not authorized for namespace tenant-acme-corp");
    // With an explicit namespace, agent_id is a filter inside it.
    let filtered = Recall {
        namespace: Some("tenant-acme-corp".into()),
        agent_id: Some("tenant-acme-corp".into()),
        ..Recall::text("plan")
    };
    assert_eq!(acme.recall(filtered).unwrap().len(), 1);
    // Root reaches many namespaces: it must say which.
    assert_eq!(field_of(&root.recall(Recall::text("plan")).unwrap_err()), "namespace");
}

#[test]
fn a_namespace_keeps_one_vector_space() {
    let (_d, engine) = open(Arc::new(ManualClock::starting_now()));
    let root = engine.root();
    root.create_namespace("text", NamespaceOptions::default()).unwrap();
    root.store_memory(mem("text", "embedded by the built-in embedder")).unwrap();
    let ns = root.get_namespace("text").unwrap();
    // The engine's default embedder (the static model if installed, else hashing).
    let default = Options::default().embedder;
    assert_eq!(ns.embedder.as_deref(), Some(default.name()));
    assert_eq!(ns.dimensions, Some(default.dimensions() as u32));
    let wrong = StoreMemory { embedding: Some(vec![0.5; 8]), ..mem("text", "eight dims") };
    assert_eq!(field_of(&root.store_memory(wrong).unwrap_err()), "embedding");

    root.create_namespace("vectors", NamespaceOptions::default()).unwrap();
    root.store_memory(StoreMemory {
        embedding: Some(vec![0.1, 0.2, 0.3, 0.4]),
        ..mem("vectors", "caller vector")
    })
    .unwrap();
    let err = root.store_memory(mem("vectors", "text without a vector")).unwrap_err();
    assert_eq!(field_of(&err), "embedding");
    let hits = root.recall(Recall::vector(vec![0.1, 0.2, 0.3, 0.4]).namespace("vectors")).unwrap();
    assert!((hits[0].similarity - 1.0).abs() < 1e-5);
}

#[test]
fn the_default_embedder_recalls_by_shared_words_and_subwords() {
    let (_d, engine) = open(Arc::new(ManualClock::starting_now()));
    let root = engine.root();
    root.create_namespace("lex", NamespaceOptions::default()).unwrap();
    for text in [
        "Acme Q3 roadmap: launch Omega in September",
        "Invoice #4411 was paid by bank transfer",
        "The new hire starts on the backend team on Monday",
        "Customer asked about refund policy for annual plans",
    ] {
        root.store_memory(mem("lex", text)).unwrap();
    }
    let top =
        |q: &str| root.recall(Recall::text(q).namespace("lex").top_k(1)).unwrap().remove(0).content;
    assert_eq!(top("product roadmaps"), "Acme Q3 roadmap: launch Omega in September");
    assert_eq!(
        top("refunds for annual plan"),
        "Customer asked about refund policy for annual plans"
    );
    assert_eq!(top("invoices paid"), "Invoice #4411 was paid by bank transfer");
}
