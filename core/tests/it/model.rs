//! The memory model: caller-chosen ids with upsert, update, get by ids.

use memsilo::{
    Engine, Error, ErrorCode, MemoryType, NamespaceOptions, Options, Recall, StoreMemory,
    UpdateMemory,
};
use serde_json::json;

fn open() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    (dir, engine)
}

fn with_id(ns: &str, id: &str, content: &str, v: [f32; 3]) -> StoreMemory {
    StoreMemory {
        namespace: Some(ns.into()),
        id: Some(id.into()),
        embedding: Some(v.to_vec()),
        ..StoreMemory::text(content)
    }
}

fn field_of(e: &Error) -> String {
    match e {
        Error::InvalidArgument { field, .. } => field.clone(),
        other => panic!("expected invalid_argument, got {other:?}"),
    }
}

#[test]
fn storing_an_id_again_replaces_the_memory_and_its_vector_at_once() {
    let (_d, engine) = open();
    let root = engine.root();
    root.create_namespace("ns", NamespaceOptions::default()).unwrap();
    let first =
        root.store_memory(with_id("ns", "doc-1/chunk 7", "old text", [1.0, 0.0, 0.0])).unwrap();
    assert_eq!(first.id, "doc-1/chunk 7");
    assert_eq!(first.memory_type, MemoryType::Episodic);
    root.store_memory(with_id("ns", "other", "unrelated", [0.0, 0.0, 1.0])).unwrap();
    let bytes_before = root.get_namespace("ns").unwrap().storage_bytes;

    std::thread::sleep(std::time::Duration::from_millis(5));
    let second = root
        .store_memory(StoreMemory {
            tags: vec!["t".into()],
            memory_type: Some(MemoryType::Semantic),
            session_id: Some("s-1".into()),
            ..with_id("ns", "doc-1/chunk 7", "new text", [0.0, 1.0, 0.0])
        })
        .unwrap();
    assert_eq!(second.created_at, first.created_at, "created_at is kept");
    assert!(second.updated_at > first.updated_at, "updated_at moves");
    let ns = root.get_namespace("ns").unwrap();
    assert_eq!(ns.memory_count, 2, "an upsert does not add a memory");
    // Charged by the difference: same vector size, content 8 -> 8 bytes, one tag more.
    assert!(ns.storage_bytes.abs_diff(bytes_before) < 64, "{} vs {bytes_before}", ns.storage_bytes);

    // Read-your-writes: the old vector is gone from recall, the new one answers, once.
    let hits = root.recall(Recall::vector(vec![1.0, 0.0, 0.0]).namespace("ns").top_k(10)).unwrap();
    assert_eq!(hits.iter().filter(|h| h.id == "doc-1/chunk 7").count(), 1);
    let hit = hits.iter().find(|h| h.id == "doc-1/chunk 7").unwrap();
    assert_eq!(hit.content, "new text");
    assert!(hit.similarity.abs() < 1e-6, "scored against the new vector: {hit:?}");
    assert_eq!(hit.memory_type, MemoryType::Semantic);
    assert_eq!(hit.session_id.as_deref(), Some("s-1"));
    let top = root.recall(Recall::vector(vec![0.0, 1.0, 0.0]).namespace("ns").top_k(1)).unwrap();
    assert_eq!(top[0].id, "doc-1/chunk 7");
}

#[test]
fn batches_with_ids_are_all_or_nothing_and_refuse_repeated_ids() {
    let (_d, engine) = open();
    let root = engine.root();
    root.create_namespace("ns", NamespaceOptions::default()).unwrap();
    let batch = |ids: &[&str]| -> Vec<StoreMemory> {
        ids.iter().map(|id| with_id("ns", id, &format!("text {id}"), [1.0, 0.5, 0.0])).collect()
    };
    let err = root.store_memories("ns", batch(&["a", "b", "a"])).unwrap_err();
    assert_eq!(field_of(&err), "memories[2].id");
    let long = "x".repeat(257);
    let err = root.store_memories("ns", batch(&["a", &long])).unwrap_err();
    assert_eq!(field_of(&err), "memories[1].id");
    let err = root.store_memories("ns", batch(&["a", "bad\nid"])).unwrap_err();
    assert_eq!(field_of(&err), "memories[1].id");
    assert_eq!(root.get_namespace("ns").unwrap().memory_count, 0, "nothing half-written");

    let ids = root.store_memories("ns", batch(&["a", "b", "c"])).unwrap();
    assert_eq!(ids, ["a", "b", "c"]);
    // Re-running the same batch (an import run twice) changes nothing in the count.
    root.store_memories("ns", batch(&["a", "b", "c"])).unwrap();
    assert_eq!(root.get_namespace("ns").unwrap().memory_count, 3);
    let hits = root.recall(Recall::vector(vec![1.0, 0.5, 0.0]).namespace("ns").top_k(10)).unwrap();
    assert_eq!(hits.len(), 3, "no duplicate hits after an upsert: {hits:?}");
}

#[test]
fn get_memories_returns_the_present_ids_in_order_with_vectors_on_request() {
    let (_d, engine) = open();
    let root = engine.root();
    root.create_namespace("ns", NamespaceOptions::default()).unwrap();
    root.create_namespace("other", NamespaceOptions::default()).unwrap();
    root.store_memory(with_id("ns", "a", "alpha", [1.0, 0.0, 0.0])).unwrap();
    root.store_memory(with_id("ns", "b", "beta", [0.0, 1.0, 0.0])).unwrap();
    root.store_memory(with_id("other", "c", "gamma", [0.0, 1.0, 0.0])).unwrap();
    let generated = root.store_memory(StoreMemory {
        namespace: Some("ns".into()),
        embedding: Some(vec![0.0, 0.0, 1.0]),
        ..StoreMemory::text("generated id")
    });
    let generated = generated.unwrap().id;
    assert!(uuid::Uuid::parse_str(&generated).is_ok());
    let ids: Vec<String> =
        ["b", "missing", "c", "a", &generated, "b"].iter().map(|s| (*s).to_string()).collect();
    let got = root.get_memories(Some("ns"), &ids, false).unwrap();
    let got_ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(got_ids, ["b", "a", generated.as_str()], "c lives in another namespace");
    assert!(got.iter().all(|m| m.vector.is_none()));
    let with = root.get_memories(Some("ns"), &ids[..1], true).unwrap();
    assert_eq!(with[0].vector.as_deref(), Some(&[0.0f32, 1.0, 0.0][..]));
    assert_eq!(root.get_memory(Some("ns"), "a").unwrap().content, "alpha");
    assert_eq!(root.get_memory(Some("ns"), "c").unwrap_err().code(), ErrorCode::NotFound);
    let many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    assert_eq!(field_of(&root.get_memories(Some("ns"), &many, false).unwrap_err()), "ids");
    // Delete by a caller id.
    root.delete_memory(Some("ns"), "a").unwrap();
    assert!(root.get_memories(Some("ns"), &ids, false).unwrap().iter().all(|m| m.id != "a"));
}

#[test]
fn update_changes_only_the_given_fields_and_merges_metadata() {
    let (_d, engine) = open();
    let root = engine.root();
    root.create_namespace("ns", NamespaceOptions::default()).unwrap();
    let stored = root
        .store_memory(StoreMemory {
            id: Some("m".into()),
            namespace: Some("ns".into()),
            tags: vec!["keep".into()],
            importance: Some(0.9),
            metadata: Some(json!({"a": 1, "b": {"c": 2}}).as_object().unwrap().clone()),
            ..StoreMemory::text("the cat sat on the mat")
        })
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let update = |u: UpdateMemory| {
        root.update_memory(UpdateMemory { namespace: Some("ns".into()), id: "m".into(), ..u })
    };
    let merged = update(UpdateMemory {
        metadata: Some(json!({"b": null, "d": "x"}).as_object().unwrap().clone()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(json!(merged.metadata), json!({"a": 1, "d": "x"}));
    assert_eq!(merged.content, stored.content);
    assert_eq!(merged.tags, ["keep"]);
    assert!((merged.importance - 0.9).abs() < 1e-12);
    assert_eq!(merged.created_at, stored.created_at);
    assert!(merged.updated_at > stored.updated_at);

    let replaced = update(UpdateMemory {
        metadata: Some(json!({"z": true}).as_object().unwrap().clone()),
        replace: true,
        memory_type: Some(MemoryType::Procedural),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(json!(replaced.metadata), json!({"z": true}));
    assert_eq!(replaced.memory_type, MemoryType::Procedural);

    // New content is re-embedded: a query for it now finds it first.
    root.store_memory(StoreMemory {
        namespace: Some("ns".into()),
        ..StoreMemory::text("quantum chromodynamics lecture")
    })
    .unwrap();
    update(UpdateMemory {
        content: Some("quantum chromodynamics notes".into()),
        ..Default::default()
    })
    .unwrap();
    let hits =
        root.recall(Recall::text("quantum chromodynamics notes").namespace("ns").top_k(5)).unwrap();
    assert_eq!(hits[0].id, "m");
    assert_eq!(hits.iter().filter(|h| h.id == "m").count(), 1);
    assert_eq!(root.get_namespace("ns").unwrap().memory_count, 2);

    let missing = root.update_memory(UpdateMemory {
        namespace: Some("ns".into()),
        id: "nope".into(),
        importance: Some(0.1),
        ..Default::default()
    });
    assert_eq!(missing.unwrap_err().code(), ErrorCode::NotFound);
    let bad = update(UpdateMemory { importance: Some(2.0), ..Default::default() }).unwrap_err();
    assert_eq!(field_of(&bad), "importance");
    assert_eq!(root.get_memory(Some("ns"), "m").unwrap().content, "quantum chromodynamics notes");
}

fn fill(engine: &Engine, ns: &str, n: usize) {
    let root = engine.root();
    root.create_namespace(ns, NamespaceOptions::default()).unwrap();
    let batch: Vec<StoreMemory> = (0..n)
        .map(|i| StoreMemory {
            namespace: Some(ns.into()),
            id: Some(format!("m{i:03}")),
            importance: Some((i % 10) as f64 / 10.0),
            tags: if i % 2 == 0 { vec!["even".into()] } else { vec!["odd".into()] },
            session_id: (i % 5 == 0).then(|| "s5".to_owned()),
            metadata: Some(
                json!({"customer": {"tier": if i % 7 == 0 { "gold" } else { "basic" }}, "n": i})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            embedding: Some(vec![1.0, i as f32 / n as f32, 0.5]),
            ..StoreMemory::text(format!("memory {i}"))
        })
        .collect();
    root.store_memories(ns, batch).unwrap();
}

#[test]
fn list_pages_by_cursor_neither_skip_nor_repeat_while_others_write() {
    use memsilo::{ListMemories, OrderBy};
    let (_d, engine) = open();
    fill(&engine, "ns", 120);
    let root = engine.root();
    let list = |cursor: Option<String>| {
        root.list_memories(ListMemories {
            namespace: Some("ns".into()),
            limit: Some(25),
            cursor,
            ..Default::default()
        })
        .unwrap()
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut round = 0;
    loop {
        let page = list(cursor.take());
        seen.extend(page.memories.iter().map(|m| m.id.clone()));
        // Others write meanwhile: new memories, an upsert of a seen one, a delete of an unseen one.
        root.store_memory(StoreMemory {
            namespace: Some("ns".into()),
            id: Some(format!("new{round}")),
            embedding: Some(vec![0.0, 1.0, 0.0]),
            ..StoreMemory::text("written during the scan")
        })
        .unwrap();
        root.store_memory(StoreMemory {
            namespace: Some("ns".into()),
            id: Some("m000".into()),
            embedding: Some(vec![0.0, 1.0, 0.0]),
            ..StoreMemory::text("upserted")
        })
        .unwrap();
        round += 1;
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a memory came twice");
    for i in 0..120 {
        assert!(unique.contains(&format!("m{i:03}")), "m{i:03} skipped");
    }
    // Descending importance, filtered, in order.
    let page = root
        .list_memories(ListMemories {
            namespace: Some("ns".into()),
            filter: Some(json!({"metadata.customer.tier": "gold"})),
            order_by: Some(OrderBy::Importance),
            descending: true,
            limit: Some(1000),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.memories.len(), 17); // multiples of 7 below 120, less m000 (upserted without metadata)
    assert!(page.memories.windows(2).all(|w| w[0].importance >= w[1].importance));
    assert!(page.next_cursor.is_none());
}

#[test]
fn cursors_are_bound_to_their_namespace_and_tamper_evident() {
    use memsilo::{ListMemories, OrderBy};
    let (_d, engine) = open();
    fill(&engine, "a", 10);
    fill(&engine, "b", 10);
    let root = engine.root();
    let page = root
        .list_memories(ListMemories {
            namespace: Some("a".into()),
            limit: Some(3),
            ..Default::default()
        })
        .unwrap();
    let cursor = page.next_cursor.unwrap();
    let with = |ns: &str, c: String, order: Option<OrderBy>| {
        root.list_memories(ListMemories {
            namespace: Some(ns.into()),
            cursor: Some(c),
            order_by: order,
            ..Default::default()
        })
    };
    assert_eq!(with("a", cursor.clone(), None).unwrap().memories.len(), 7);
    assert_eq!(field_of(&with("b", cursor.clone(), None).unwrap_err()), "cursor");
    assert_eq!(
        field_of(&with("a", cursor.clone(), Some(OrderBy::Importance)).unwrap_err()),
        "cursor"
    );
    let mut bytes = cursor.into_bytes();
    bytes[30] = if bytes[30] == b'0' { b'1' } else { b'0' };
    assert_eq!(
        field_of(&with("a", String::from_utf8(bytes).unwrap(), None).unwrap_err()),
        "cursor"
    );
    assert_eq!(field_of(&with("a", "zz".into(), None).unwrap_err()), "cursor");
    let too_many = root.list_memories(ListMemories {
        namespace: Some("a".into()),
        limit: Some(1001),
        ..Default::default()
    });
    assert_eq!(field_of(&too_many.unwrap_err()), "limit");
}

#[test]
fn one_filter_language_for_recall_count_list_and_forget() {
    use memsilo::{CountMemories, Forget};
    let (_d, engine) = open();
    fill(&engine, "ns", 100);
    let root = engine.root();
    let count = |f: serde_json::Value| {
        root.count_memories(CountMemories { namespace: Some("ns".into()), filter: Some(f) })
            .unwrap()
    };
    assert_eq!(
        root.count_memories(CountMemories { namespace: Some("ns".into()), filter: None }).unwrap(),
        100
    );
    assert_eq!(count(json!({"session_id": "s5"})), 20);
    assert_eq!(count(json!({"tags": {"$contains": "even"}, "importance": {"$gte": 0.5}})), 20);
    assert_eq!(
        count(json!({"$or": [{"metadata.n": {"$lt": 10}}, {"metadata.n": {"$gte": 95}}]})),
        15
    );
    assert_eq!(count(json!({"$not": {"tags": "even"}})), 50);
    assert_eq!(count(json!({"metadata.n": {"$in": [1, 2, 3]}, "id": {"$ne": "m002"}})), 2);
    assert_eq!(
        count(json!({"metadata.customer.tier": {"$ne": "gold"}, "memory_type": "episodic"})),
        85
    );
    assert_eq!(count(json!({"id": {"$in": ["m001", "m050", "nope"]}})), 2);
    let bad = root.count_memories(CountMemories {
        namespace: Some("ns".into()),
        filter: Some(json!({"metadata.n": {"$between": 1}})),
    });
    assert_eq!(field_of(&bad.unwrap_err()), "filter.metadata.n.$between");

    // Recall with a filter returns only matches, best first, exactly like a filtered exact scan.
    let hits = root
        .recall(Recall {
            filter: Some(json!({"metadata.customer.tier": "gold"})),
            ..Recall::vector(vec![1.0, 1.0, 0.5]).namespace("ns").top_k(3)
        })
        .unwrap();
    let ids: Vec<String> = hits.iter().map(|h| h.id.clone()).collect();
    let q = [1.0f32, 1.0, 0.5];
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let mut exact: Vec<(f64, String)> = (0..100)
        .filter(|i| i % 7 == 0)
        .map(|i| {
            let v = [1.0f32, i as f32 / 100.0, 0.5];
            let sim = f64::from(
                v.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>() / (norm(&v) * norm(&q)),
            );
            (sim * (0.7 + 0.3 * (f64::from(i % 10) / 10.0)), format!("m{i:03}"))
        })
        .collect();
    exact.sort_by(|a, b| b.0.total_cmp(&a.0));
    let want: Vec<String> = exact.into_iter().take(3).map(|e| e.1).collect();
    assert_eq!(ids, want, "{hits:?}");
    let by_session = root
        .recall(Recall {
            session_id: Some("s5".into()),
            memory_type: Some(MemoryType::Episodic),
            ..Recall::vector(vec![1.0, 0.0, 0.5]).namespace("ns").top_k(100)
        })
        .unwrap();
    assert_eq!(by_session.len(), 20);
    let bad = root.recall(Recall {
        filter: Some(json!({"tags": {"$gt": "a"}})),
        ..Recall::vector(vec![1.0, 0.0, 0.5]).namespace("ns")
    });
    assert_eq!(field_of(&bad.unwrap_err()), "filter.tags.$gt");

    // Forget by filter alone.
    let gone = root
        .batch_forget(Forget {
            namespace: Some("ns".into()),
            filter: Some(json!({"session_id": "s5"})),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(gone.forgotten, 20);
    assert_eq!(count(json!({"session_id": "s5"})), 0);
    assert_eq!(root.get_namespace("ns").unwrap().memory_count, 80);
}

/// The bad inputs, each refused naming its field with nothing written: an id no memory
/// can have (2,000 characters) in every operation that takes one, and an unknown filter
/// operator in every operation that takes a filter (forget deletes nothing).
#[test]
fn a_2000_char_id_and_an_unknown_operator_are_refused_by_name_and_change_nothing() {
    use memsilo::{CountMemories, Forget, ListMemories};
    let (_d, engine) = open();
    fill(&engine, "ns", 20);
    let root = engine.root();
    let long = "x".repeat(2000);
    let before = root.get_memory(Some("ns"), "m001").unwrap();

    let stored = root.store_memory(with_id("ns", &long, "text", [1.0, 0.0, 0.0]));
    assert_eq!(field_of(&stored.unwrap_err()), "id");
    let batch =
        vec![with_id("ns", "fine", "t", [1.0, 0.0, 0.0]), with_id("ns", &long, "t", [1.0; 3])];
    assert_eq!(field_of(&root.store_memories("ns", batch).unwrap_err()), "memories[1].id");
    let update = root.update_memory(UpdateMemory {
        namespace: Some("ns".into()),
        id: long.clone(),
        content: Some("changed".into()),
        ..Default::default()
    });
    assert_eq!(field_of(&update.unwrap_err()), "id");
    assert_eq!(field_of(&root.get_memory(Some("ns"), &long).unwrap_err()), "id");
    let ids = vec!["m001".to_owned(), long.clone()];
    assert_eq!(field_of(&root.get_memories(Some("ns"), &ids, false).unwrap_err()), "ids[1]");
    assert_eq!(field_of(&root.delete_memory(Some("ns"), &long).unwrap_err()), "id");
    let forget = root.batch_forget(Forget {
        namespace: Some("ns".into()),
        ids: Some(ids.clone()),
        ..Default::default()
    });
    assert_eq!(field_of(&forget.unwrap_err()), "ids[1]");

    let bad = json!({"$and": [{"tags": "even"}, {"metadata.customer.tier": {"$regex": "g.*"}}]});
    let path = "filter.$and[1].metadata.customer.tier.$regex";
    let forget = root.batch_forget(Forget {
        namespace: Some("ns".into()),
        filter: Some(bad.clone()),
        ..Default::default()
    });
    assert_eq!(field_of(&forget.unwrap_err()), path);
    let list = root.list_memories(ListMemories {
        namespace: Some("ns".into()),
        filter: Some(bad.clone()),
        ..Default::default()
    });
    assert_eq!(field_of(&list.unwrap_err()), path);
    let count = root
        .count_memories(CountMemories { namespace: Some("ns".into()), filter: Some(bad.clone()) });
    assert_eq!(field_of(&count.unwrap_err()), path);
    let recall = root.recall(Recall {
        filter: Some(bad),
        ..Recall::vector(vec![1.0, 0.0, 0.0]).namespace("ns")
    });
    assert_eq!(field_of(&recall.unwrap_err()), path);

    // Nothing was written, changed or deleted by any of them.
    assert_eq!(root.get_namespace("ns").unwrap().memory_count, 20);
    assert_eq!(root.get_memory(Some("ns"), "m001").unwrap(), before);
    assert_eq!(root.get_memory(Some("ns"), "fine").unwrap_err().code(), ErrorCode::NotFound);
}

/// An upsert or an update that changes a memory's agent moves it to the new agent at once in
/// agent-filtered recall (the cached vectors' agent keys follow the record), by the `agent_id`
/// shorthand and by the filter language.
#[test]
fn agent_filtered_recall_follows_an_agent_changed_by_upsert_or_update() {
    let (_d, engine) = open();
    let root = engine.root();
    root.create_namespace("ns", NamespaceOptions::default()).unwrap();
    let with_agent = |id: &str, agent: &str, v: [f32; 3]| StoreMemory {
        agent_id: Some(agent.into()),
        ..with_id("ns", id, "text", v)
    };
    root.store_memory(with_agent("m", "alice", [1.0, 0.0, 0.0])).unwrap();
    root.store_memory(with_agent("a2", "alice", [0.0, 1.0, 0.0])).unwrap();
    root.store_memory(with_agent("b2", "bob", [0.0, 0.0, 1.0])).unwrap();
    let ids_of = |agent: &str, by_filter: bool| -> Vec<String> {
        let base = Recall::vector(vec![1.0, 0.1, 0.1]).namespace("ns").top_k(10);
        let req = if by_filter {
            Recall { filter: Some(json!({ "agent_id": agent })), ..base }
        } else {
            Recall { agent_id: Some(agent.into()), ..base }
        };
        root.recall(req).unwrap().into_iter().map(|h| h.id).collect()
    };
    for by_filter in [false, true] {
        assert_eq!(ids_of("alice", by_filter), ["m", "a2"]);
        assert_eq!(ids_of("bob", by_filter), ["b2"]);
    }
    // Upsert: same id, same vector, another agent.
    root.store_memory(with_agent("m", "bob", [1.0, 0.0, 0.0])).unwrap();
    for by_filter in [false, true] {
        assert_eq!(ids_of("alice", by_filter), ["a2"], "by filter: {by_filter}");
        assert_eq!(ids_of("bob", by_filter), ["m", "b2"], "by filter: {by_filter}");
    }
    // An update that gives no vector keeps the memory's row and its agent.
    root.update_memory(UpdateMemory {
        namespace: Some("ns".into()),
        id: "m".into(),
        importance: Some(0.9),
        tags: Some(vec!["x".into()]),
        ..Default::default()
    })
    .unwrap();
    for by_filter in [false, true] {
        assert_eq!(ids_of("alice", by_filter), ["a2"], "by filter: {by_filter}");
        assert_eq!(ids_of("bob", by_filter), ["m", "b2"], "by filter: {by_filter}");
    }
    // And an upsert back to the first agent with a new vector.
    root.store_memory(with_agent("m", "alice", [0.9, 0.0, 0.1])).unwrap();
    for by_filter in [false, true] {
        assert_eq!(ids_of("alice", by_filter), ["m", "a2"], "by filter: {by_filter}");
        assert_eq!(ids_of("bob", by_filter), ["b2"], "by filter: {by_filter}");
    }
}

/// One memory as the model expects it.
#[derive(Clone, Debug)]
struct Expected {
    content: String,
    vector: Vec<f32>,
    importance: f64,
    tags: Vec<String>,
    agent: Option<String>,
}

/// A seeded sequence of ~300 stores, upserts, batch upserts, updates and deletes on a pool of
/// ids in one namespace (with index builds and restarts between them), checked at intervals
/// against a from-scratch expectation: list by importance with a tags filter (paged by
/// cursor), counts, and vector, keyword and agent recall with a filter. Upserts overwrite
/// vector rows in place, so this is what catches a stale or doubled vector in the cached copy,
/// the index or the secondary keys.
#[test]
#[allow(clippy::too_many_lines)] // the sequence, its model and the check read as one story
fn random_writes_agree_with_a_from_scratch_model_in_lists_counts_and_recall() {
    use crate::synthetic::Rng;
    use memsilo::{CountMemories, Forget, ListMemories, OrderBy, RecallMode};
    use std::collections::BTreeMap;

    const DIMS: usize = 8;
    const WORDS: [&str; 6] = ["apple", "banana", "cherry", "damson", "elder", "fig"];
    const TAGS: [&str; 3] = ["red", "blue", "green"];
    let dir = tempfile::tempdir().unwrap();
    let opts = || Options { background: false, ann_threshold: 16, ..Options::default() };
    let mut engine = Some(Engine::open(dir.path(), opts()).unwrap());
    engine
        .as_ref()
        .unwrap()
        .root()
        .create_namespace(
            "m",
            NamespaceOptions { dimensions: Some(DIMS as u32), ..Default::default() },
        )
        .unwrap();
    let mut rng = Rng(0x5eed_0016);
    let mut pick = |rng: &mut Rng, n: usize| (rng.next_u64() % n as u64) as usize;
    let mut model: BTreeMap<String, Expected> = BTreeMap::new();
    let random_memory = |rng: &mut Rng, pick: &mut dyn FnMut(&mut Rng, usize) -> usize| {
        let words: Vec<&str> = (0..2).map(|_| WORDS[pick(rng, WORDS.len())]).collect();
        let tags: Vec<String> =
            TAGS.iter().filter(|_| pick(rng, 2) == 0).map(|t| (*t).to_owned()).collect();
        Expected {
            content: words.join(" "),
            vector: rng.unit(DIMS),
            importance: pick(rng, 21) as f64 / 20.0,
            tags,
            agent: [None, Some("a0"), Some("a1")][pick(rng, 3)].map(str::to_owned),
        }
    };
    let store = |id: &str, m: &Expected| StoreMemory {
        namespace: Some("m".into()),
        id: Some(id.into()),
        embedding: Some(m.vector.clone()),
        importance: Some(m.importance),
        tags: m.tags.clone(),
        agent_id: m.agent.clone(),
        ..StoreMemory::text(m.content.clone())
    };
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let cos = |a: &[f32], b: &[f32]| {
        f64::from(a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (norm(a) * norm(b)))
    };
    let red = |m: &Expected| m.tags.iter().any(|t| t == "red");

    let check = |engine: &Engine, model: &BTreeMap<String, Expected>, rng: &mut Rng, at: usize| {
        let root = engine.root();
        // List by importance (descending) with a tags filter, page by page.
        let mut listed = Vec::new();
        let mut cursor = None;
        loop {
            let page = root
                .list_memories(ListMemories {
                    namespace: Some("m".into()),
                    filter: Some(json!({"tags": {"$contains": "red"}})),
                    order_by: Some(OrderBy::Importance),
                    descending: true,
                    limit: Some(7),
                    cursor: cursor.take(),
                    ..Default::default()
                })
                .unwrap();
            listed.extend(page.memories);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let mut want: Vec<(&String, &Expected)> = model.iter().filter(|(_, m)| red(m)).collect();
        want.sort_by(|a, b| b.1.importance.total_cmp(&a.1.importance));
        let got_ids: std::collections::BTreeSet<&str> =
            listed.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(got_ids.len(), listed.len(), "op {at}: a memory listed twice");
        assert_eq!(got_ids, want.iter().map(|w| w.0.as_str()).collect(), "op {at}: listed ids");
        let importances =
            |v: Vec<f64>| v.into_iter().map(|i| (i * 20.0).round() as i64).collect::<Vec<_>>();
        assert_eq!(
            importances(listed.iter().map(|m| m.importance).collect()),
            importances(want.iter().map(|w| w.1.importance).collect()),
            "op {at}: list order"
        );
        for m in &listed {
            let e = &model[&m.id];
            assert_eq!(
                (&m.content, &m.tags, &m.agent_id),
                (&e.content, &e.tags, &e.agent),
                "op {at}"
            );
        }
        // Counts.
        let count = |filter: Option<serde_json::Value>| {
            root.count_memories(CountMemories { namespace: Some("m".into()), filter }).unwrap()
        };
        assert_eq!(count(None), model.len() as u64, "op {at}: count");
        assert_eq!(
            count(Some(json!({"tags": {"$contains": "red"}}))),
            want.len() as u64,
            "op {at}"
        );
        let high = model.values().filter(|m| m.importance >= 0.5).count() as u64;
        assert_eq!(count(Some(json!({"importance": {"$gte": 0.5}}))), high, "op {at}");
        // Vector recall with a filter, and by agent: every match, scored with its current vector.
        for (label, req, keep) in [
            (
                "filtered vector recall",
                Recall { filter: Some(json!({"tags": {"$contains": "red"}})), ..Recall::default() },
                &(|m: &Expected| red(m)) as &dyn Fn(&Expected) -> bool,
            ),
            (
                "agent recall",
                Recall { agent_id: Some("a0".into()), ..Recall::default() },
                &|m: &Expected| m.agent.as_deref() == Some("a0"),
            ),
        ] {
            let q = rng.unit(DIMS);
            let hits = root
                .recall(Recall {
                    namespace: Some("m".into()),
                    vector: Some(q.clone()),
                    top_k: Some(1000),
                    ..req
                })
                .unwrap();
            let mut want: Vec<(f64, &str)> = model
                .iter()
                .filter(|(_, m)| keep(m))
                .map(|(id, m)| (cos(&q, &m.vector) * (0.7 + 0.3 * m.importance), id.as_str()))
                .collect();
            want.sort_by(|a, b| b.0.total_cmp(&a.0));
            let got: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
            let mut sorted_got = got.clone();
            sorted_got.sort_unstable();
            let mut sorted_want: Vec<&str> = want.iter().map(|w| w.1).collect();
            sorted_want.sort_unstable();
            assert_eq!(sorted_got, sorted_want, "op {at}: {label} ids");
            for (h, w) in hits.iter().zip(&want) {
                let e = &model[&h.id];
                assert!(
                    (h.similarity - cos(&q, &e.vector)).abs() < 1e-4,
                    "op {at}: {label}: {} scored with a stale vector",
                    h.id
                );
                assert!(
                    (h.score - w.0).abs() < 1e-4,
                    "op {at}: {label} order: {got:?} vs {want:?}"
                );
            }
        }
        // Keyword recall with a filter.
        let word = WORDS[(rng.next_u64() % WORDS.len() as u64) as usize];
        let hits = root
            .recall(Recall {
                mode: Some(RecallMode::Keyword),
                filter: Some(json!({"tags": {"$contains": "red"}})),
                ..Recall::text(word).namespace("m").top_k(1000)
            })
            .unwrap();
        let mut got: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        got.sort_unstable();
        let want: Vec<&str> = model
            .iter()
            .filter(|(_, m)| red(m) && m.content.split(' ').any(|w| w == word))
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(got, want, "op {at}: keyword recall of {word}");
    };

    let mut built = 0;
    for op in 0..300 {
        let e = engine.as_ref().unwrap();
        let root = e.root();
        let id = format!("id-{}", pick(&mut rng, 60));
        match pick(&mut rng, 20) {
            // Store, or upsert an id already stored.
            0..=6 => {
                let m = random_memory(&mut rng, &mut pick);
                root.store_memory(store(&id, &m)).unwrap();
                model.insert(id, m);
            }
            // A batch of distinct ids, stored and upserted together.
            7..=9 => {
                let mut batch = BTreeMap::new();
                for _ in 0..=pick(&mut rng, 8) {
                    batch.insert(
                        format!("id-{}", pick(&mut rng, 60)),
                        random_memory(&mut rng, &mut pick),
                    );
                }
                root.store_memories("m", batch.iter().map(|(id, m)| store(id, m)).collect())
                    .unwrap();
                model.extend(batch);
            }
            // A partial update: importance and tags, or new content with its vector.
            10..=14 => {
                let fresh = random_memory(&mut rng, &mut pick);
                let content = pick(&mut rng, 2) == 0;
                let req = UpdateMemory {
                    namespace: Some("m".into()),
                    id: id.clone(),
                    importance: Some(fresh.importance),
                    tags: Some(fresh.tags.clone()),
                    content: content.then(|| fresh.content.clone()),
                    embedding: content.then(|| fresh.vector.clone()),
                    ..Default::default()
                };
                match (root.update_memory(req), model.get_mut(&id)) {
                    (Ok(_), Some(m)) => {
                        m.importance = fresh.importance;
                        m.tags = fresh.tags;
                        if content {
                            m.content = fresh.content;
                            m.vector = fresh.vector;
                        }
                    }
                    (Err(err), None) => assert_eq!(err.code(), ErrorCode::NotFound),
                    (got, _) => panic!("op {op}: update of {id}: {got:?}"),
                }
            }
            // Deletes (some of ids never stored or gone).
            _ => {
                let ids: Vec<String> =
                    (0..=pick(&mut rng, 3)).map(|_| format!("id-{}", pick(&mut rng, 60))).collect();
                root.batch_forget(Forget {
                    namespace: Some("m".into()),
                    ids: Some(ids.clone()),
                    ..Default::default()
                })
                .unwrap();
                for id in ids {
                    model.remove(&id);
                }
            }
        }
        if op % 40 == 39 {
            built += e.build_vector_indexes().unwrap();
        }
        if op % 15 == 14 {
            check(e, &model, &mut rng, op);
        }
        if op == 149 || op == 299 {
            drop(engine.take());
            engine = Some(Engine::open(dir.path(), opts()).unwrap());
            check(engine.as_ref().unwrap(), &model, &mut rng, op);
        }
    }
    assert!(model.len() > 20, "the sequence kept some memories: {}", model.len());
    assert!(built > 0, "the approximate index was built (and refiled overwritten rows)");
}

/// Every memory `list_memories` gives, page by page (`limit` a page), following the cursor.
fn list_pages(
    root: &memsilo::Handle,
    ns: &str,
    filter: Option<serde_json::Value>,
    order: memsilo::OrderBy,
    descending: bool,
    limit: usize,
) -> Vec<memsilo::Memory> {
    let (mut out, mut cursor) = (Vec::new(), None);
    loop {
        let page = root
            .list_memories(memsilo::ListMemories {
                namespace: Some(ns.into()),
                filter: filter.clone(),
                order_by: Some(order),
                descending,
                limit: Some(limit),
                cursor: cursor.take(),
                ..Default::default()
            })
            .unwrap();
        out.extend(page.memories);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

/// An upsert leaves a memory's old `updated_at` key behind (deleted later, in bulk, with the
/// other keys left so: twice over in this run). Listing by `updated_at` still lists each
/// memory once, at its last update; a range of `updated_at` counts, lists and recalls exactly
/// the memories whose last update is in it, with their current vectors — also for an id
/// deleted and stored again, whose old keys name a vector slot it no longer has.
#[test]
#[allow(clippy::too_many_lines)] // the writes and the check read as one story
fn upserts_move_a_memory_in_the_updated_at_order_and_leave_nothing_at_its_old_place() {
    use memsilo::{CountMemories, Forget, OrderBy};
    use std::collections::BTreeSet;

    let (_d, engine) = open();
    let root = engine.root();
    root.create_namespace("ns", NamespaceOptions::default()).unwrap();
    let vector = |i: usize, round: usize| [1.0, i as f32, round as f32];
    let list = |filter: Option<serde_json::Value>, order: OrderBy, descending: bool| {
        list_pages(&root, "ns", filter, order, descending, 3)
    };
    let all: BTreeSet<String> = (0..10).map(|i| format!("m{i}")).collect();
    for round in 0..60 {
        // Every memory upserted with a new vector, in an order that changes with the round.
        let batch: Vec<StoreMemory> = (0..10)
            .map(|j| {
                let i = (j * 3 + round) % 10;
                with_id("ns", &format!("m{i}"), "text", vector(i, round))
            })
            .collect();
        if round % 2 == 0 {
            root.store_memories("ns", batch).unwrap();
        } else {
            for m in batch {
                root.store_memory(m).unwrap();
            }
        }
        if round % 7 == 3 {
            // Deleted and stored again: a new vector slot.
            let id = format!("m{}", round % 10);
            let ids = Some(vec![id.clone()]);
            root.batch_forget(Forget { namespace: Some("ns".into()), ids, ..Default::default() })
                .unwrap();
            root.store_memory(with_id("ns", &id, "text", vector(round % 10, round))).unwrap();
        }
        let by_update = list(None, OrderBy::UpdatedAt, false);
        let ids: Vec<&str> = by_update.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids.iter().map(|i| (*i).to_owned()).collect::<BTreeSet<_>>(), all);
        assert_eq!(ids.len(), all.len(), "round {round}: each listed once: {ids:?}");
        assert!(
            by_update.windows(2).all(|p| p[0].updated_at <= p[1].updated_at),
            "round {round}: by updated_at: {ids:?}"
        );
        let mut down: Vec<String> =
            list(None, OrderBy::UpdatedAt, true).into_iter().map(|m| m.id).collect();
        down.reverse();
        let up: Vec<String> = by_update.iter().map(|m| m.id.clone()).collect();
        assert_eq!(down, up, "round {round}: descending is the reverse");
        let mid = by_update[5].updated_at;
        for (filter, newer) in [
            (json!({"updated_at": {"$gte": mid}}), true),
            (json!({"updated_at": {"$lt": mid}}), false),
        ] {
            let want: BTreeSet<&str> = by_update
                .iter()
                .filter(|m| (m.updated_at >= mid) == newer)
                .map(|m| m.id.as_str())
                .collect();
            let count = root
                .count_memories(CountMemories {
                    namespace: Some("ns".into()),
                    filter: Some(filter.clone()),
                })
                .unwrap();
            assert_eq!(count, want.len() as u64, "round {round}: count {filter}");
            let listed = list(Some(filter.clone()), OrderBy::CreatedAt, false);
            let got: BTreeSet<&str> = listed.iter().map(|m| m.id.as_str()).collect();
            assert_eq!(
                (got, listed.len()),
                (want.clone(), want.len()),
                "round {round}: list {filter}"
            );
            let hits = root
                .recall(Recall {
                    filter: Some(filter.clone()),
                    ..Recall::vector(vec![1.0, 0.0, 0.0]).namespace("ns").top_k(100)
                })
                .unwrap();
            let got: BTreeSet<&str> = hits.iter().map(|h| h.id.as_str()).collect();
            let n = want.len();
            assert_eq!((got, hits.len()), (want, n), "round {round}: recall {filter}");
            for h in &hits {
                let i: usize = h.id[1..].parse().unwrap();
                let v = vector(i, round);
                let cos = 1.0 / f64::from(v.iter().map(|x| x * x).sum::<f32>()).sqrt();
                assert!((h.similarity - cos).abs() < 1e-4, "round {round}: {} stale vector", h.id);
            }
        }
    }
}

/// A memory's fields as the field-by-field test expects them.
#[derive(Clone, Debug)]
struct Fields {
    content: String,
    vector: [f32; 3],
    importance: f64,
    tags: Vec<String>,
    agent: Option<String>,
    session: Option<String>,
    kind: MemoryType,
    tier: Option<String>,
}

impl Fields {
    fn store(&self, id: &str) -> StoreMemory {
        StoreMemory {
            importance: Some(self.importance),
            tags: self.tags.clone(),
            agent_id: self.agent.clone(),
            session_id: self.session.clone(),
            memory_type: Some(self.kind),
            metadata: self
                .tier
                .as_ref()
                .map(|t| json!({ "tier": t, "n": 1 }).as_object().unwrap().clone()),
            ..with_id("ns", id, &self.content, self.vector)
        }
    }
}

/// Which memories a filter of the field-by-field test matches.
type KeepFields = fn(&Fields) -> bool;
/// A change of one field in the field-by-field test.
type ChangeFields = fn(&mut Fields);

/// Every secondary key follows its field through upserts and updates that change it, and
/// through ones that leave it alone: for each field in turn, an upsert changing only it, an
/// upsert changing nothing, and (where `update_memory` has the field) an update changing it.
/// After each write, every order of `list_memories` (unfiltered: the walk of the order keys)
/// lists each memory once in order, and each filter on each field lists, counts and recalls
/// exactly the memories the fields say. (An upsert keeps the memory's vector slot and writes
/// only the keys whose value changed: a key left behind or missing shows up here.)
#[test]
#[allow(clippy::too_many_lines)] // the fields, the writes and the check read as one story
fn secondary_keys_follow_each_field_through_upserts_and_updates_that_change_it_or_not() {
    use memsilo::{CountMemories, OrderBy, SessionMemories, StartSession};
    use std::collections::BTreeMap;

    let (_d, engine) = open();
    let root = engine.root();
    root.create_namespace("ns", NamespaceOptions::default()).unwrap();
    let base = |i: usize| Fields {
        content: format!("apple number {i}"),
        vector: [1.0, i as f32 * 0.1, 0.2],
        importance: 0.1 * i as f64,
        tags: vec![["red", "blue"][i % 2].to_owned(), "all".to_owned()],
        agent: Some(format!("agent-{}", i % 2)),
        session: Some(format!("s{}", i % 2)),
        kind: [MemoryType::Episodic, MemoryType::Semantic][i % 2],
        tier: Some(["gold", "silver"][i % 2].to_owned()),
    };
    for s in ["s0", "s1", "s9"] {
        let id = Some(s.to_owned());
        root.start_session(StartSession { namespace: Some("ns".into()), id, ..Default::default() })
            .unwrap();
    }
    let mut model: BTreeMap<String, Fields> = BTreeMap::new();
    for i in 0..6 {
        let id = format!("m{i}");
        root.store_memory(base(i).store(&id)).unwrap();
        model.insert(id, base(i));
    }
    let filters: Vec<(serde_json::Value, KeepFields)> = vec![
        (json!({"agent_id": "agent-0"}), |f| f.agent.as_deref() == Some("agent-0")),
        (json!({"agent_id": "agent-1"}), |f| f.agent.as_deref() == Some("agent-1")),
        (json!({"agent_id": "agent-9"}), |f| f.agent.as_deref() == Some("agent-9")),
        (json!({"session_id": "s0"}), |f| f.session.as_deref() == Some("s0")),
        (json!({"session_id": "s9"}), |f| f.session.as_deref() == Some("s9")),
        (json!({"memory_type": "semantic"}), |f| f.kind == MemoryType::Semantic),
        (json!({"memory_type": "procedural"}), |f| f.kind == MemoryType::Procedural),
        (json!({"tags": {"$contains": "red"}}), |f| f.tags.iter().any(|t| t == "red")),
        (json!({"tags": {"$contains": "blue"}}), |f| f.tags.iter().any(|t| t == "blue")),
        (json!({"tags": {"$contains": "green"}}), |f| f.tags.iter().any(|t| t == "green")),
        (json!({"importance": {"$gte": 0.3}}), |f| f.importance >= 0.3),
        (json!({"importance": 0.95}), |f| (f.importance - 0.95).abs() < 1e-9),
        (json!({"metadata.tier": "gold"}), |f| f.tier.as_deref() == Some("gold")),
        (json!({"metadata.tier": "platinum"}), |f| f.tier.as_deref() == Some("platinum")),
        (json!({"metadata.tier": {"$exists": false}}), |f| f.tier.is_none()),
        (json!({"$and": [{"tags": {"$contains": "red"}}, {"importance": {"$lt": 0.5}}]}), |f| {
            f.tags.iter().any(|t| t == "red") && f.importance < 0.5
        }),
    ];
    let check = |model: &BTreeMap<String, Fields>, what: &str| {
        let list = |filter: Option<serde_json::Value>, order: OrderBy, descending: bool| {
            list_pages(&root, "ns", filter, order, descending, 2)
        };
        for order in [OrderBy::CreatedAt, OrderBy::UpdatedAt, OrderBy::Importance] {
            for descending in [false, true] {
                let listed = list(None, order, descending);
                let ids: Vec<&str> = listed.iter().map(|m| m.id.as_str()).collect();
                let mut sorted = ids.clone();
                sorted.sort_unstable();
                assert_eq!(
                    sorted,
                    model.keys().map(String::as_str).collect::<Vec<_>>(),
                    "{what}: list by {order:?} (descending: {descending}) lists each once"
                );
                let key = |m: &memsilo::Memory| match order {
                    OrderBy::CreatedAt => m.created_at.timestamp_micros() as f64,
                    OrderBy::UpdatedAt => m.updated_at.timestamp_micros() as f64,
                    OrderBy::Importance => m.importance,
                };
                for pair in listed.windows(2) {
                    let (a, b) = (key(&pair[0]), key(&pair[1]));
                    assert!(
                        if descending { a >= b } else { a <= b },
                        "{what}: list by {order:?} (descending: {descending}) out of order: {ids:?}"
                    );
                }
                for m in &listed {
                    let want = model[&m.id].importance;
                    assert!((m.importance - want).abs() < 1e-9, "{what}: {}", m.id);
                }
            }
        }
        for (filter, keep) in &filters {
            let want: Vec<&str> =
                model.iter().filter(|(_, f)| keep(f)).map(|(id, _)| id.as_str()).collect();
            let listed = list(Some(filter.clone()), OrderBy::Importance, true);
            let mut got: Vec<&str> = listed.iter().map(|m| m.id.as_str()).collect();
            assert!(
                listed.windows(2).all(|p| p[0].importance >= p[1].importance),
                "{what}: {filter} by importance: {got:?}"
            );
            got.sort_unstable();
            assert_eq!(got, want, "{what}: list {filter}");
            let count = root
                .count_memories(CountMemories {
                    namespace: Some("ns".into()),
                    filter: Some(filter.clone()),
                })
                .unwrap();
            assert_eq!(count, want.len() as u64, "{what}: count {filter}");
            let hits = root
                .recall(Recall {
                    filter: Some(filter.clone()),
                    ..Recall::vector(vec![1.0, 0.3, 0.2]).namespace("ns").top_k(100)
                })
                .unwrap();
            let mut got: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
            got.sort_unstable();
            assert_eq!(got, want, "{what}: recall {filter}");
            for h in &hits {
                let v = model[&h.id].vector;
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                let cos = f64::from((v[0] + 0.3 * v[1] + 0.2 * v[2]) / norm / 1.13f32.sqrt());
                assert!((h.similarity - cos).abs() < 1e-4, "{what}: {} has a stale vector", h.id);
            }
        }
        for s in ["s0", "s1", "s9"] {
            let want = model.values().filter(|f| f.session.as_deref() == Some(s)).count();
            let got = root
                .session_memories(SessionMemories {
                    namespace: Some("ns".into()),
                    id: s.into(),
                    limit: Some(100),
                    ..Default::default()
                })
                .unwrap()
                .total_count;
            assert_eq!(got, want as u64, "{what}: session {s}");
        }
        let apple = root
            .recall(Recall {
                mode: Some(memsilo::RecallMode::Keyword),
                ..Recall::text("apple").namespace("ns").top_k(100)
            })
            .unwrap();
        let want = model.values().filter(|f| f.content.contains("apple")).count();
        assert_eq!(apple.len(), want, "{what}: keyword recall of apple");
    };
    check(&model, "as stored");

    let changes: Vec<(&str, ChangeFields)> = vec![
        ("agent_id", |f| f.agent = Some("agent-9".into())),
        ("agent_id removed", |f| f.agent = None),
        ("session_id", |f| f.session = Some("s9".into())),
        ("memory_type", |f| f.kind = MemoryType::Procedural),
        ("tags", |f| f.tags = vec!["green".into(), "red".into()]),
        ("tags removed", |f| f.tags.clear()),
        ("importance", |f| f.importance = 0.95),
        ("metadata", |f| f.tier = Some("platinum".into())),
        ("metadata removed", |f| f.tier = None),
        ("content", |f| f.content = "cherry pie".into()),
        ("vector", |f| f.vector = [0.0, 1.0, 0.0]),
    ];
    for (round, (field, change)) in changes.iter().enumerate() {
        // Each round writes another memory, so earlier rounds' changes stay beside it.
        let id = format!("m{}", round % 6);
        let mut f = model[&id].clone();
        change(&mut f);
        root.store_memory(f.store(&id)).unwrap();
        model.insert(id.clone(), f.clone());
        check(&model, &format!("upsert of {id} changing {field}"));

        root.store_memory(f.store(&id)).unwrap();
        check(&model, &format!("upsert of {id} changing nothing after {field}"));

        // The same change by update_memory, on the next memory (fields it has).
        let next = format!("m{}", (round + 1) % 6);
        let mut g = model[&next].clone();
        change(&mut g);
        let update = UpdateMemory {
            namespace: Some("ns".into()),
            id: next.clone(),
            content: (g.content != model[&next].content).then(|| g.content.clone()),
            embedding: (g.vector.map(f32::to_bits) != model[&next].vector.map(f32::to_bits)
                || g.content != model[&next].content)
                .then(|| g.vector.to_vec()),
            importance: Some(g.importance),
            tags: Some(g.tags.clone()),
            metadata: Some(
                g.tier
                    .as_ref()
                    .map(|t| json!({ "tier": t, "n": 1 }))
                    .unwrap_or(json!({ "n": 1 }))
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            replace: true,
            memory_type: Some(g.kind),
            session_id: g.session.clone(),
            ..Default::default()
        };
        if g.agent != model[&next].agent || (g.session.is_none() && model[&next].session.is_some())
        {
            continue; // update_memory has no agent, and cannot remove a session
        }
        root.update_memory(update).unwrap();
        model.insert(next.clone(), g);
        check(&model, &format!("update of {next} changing {field}"));
    }
}
