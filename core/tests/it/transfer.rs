//! Export and import: a namespace copied through its JSON Lines with vectors, ids, graph and
//! policy; idempotent re-import; bad lines named by number with nothing of their batch written.

use memsilo::transfer::{Batcher, ExportArgs, ImportArgs, ImportSummary};
use memsilo::{
    Access, AddEntity, AddRelation, CreateKey, DecayPolicy, Embedder, Engine, ErrorCode, Handle,
    HashEmbedder, NamespaceOptions, Neighbors, Options,
};
use serde_json::{json, Value};

fn open() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    (dir, engine)
}

fn export_all(h: &Handle, ns: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page =
            h.export_page(ExportArgs { namespace: ns.into(), cursor, limit: Some(limit) }).unwrap();
        out.extend(page.lines.iter().map(|l| serde_json::from_str::<Value>(l.get()).unwrap()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

fn import_all(h: &Handle, ns: &str, text: &str, size: usize) -> memsilo::Result<ImportSummary> {
    let mut total = ImportSummary::default();
    let mut batcher = Batcher::new(size);
    let mut ready = Vec::new();
    for line in text.lines() {
        ready.extend(batcher.push(line.as_bytes())?);
    }
    ready.extend(batcher.finish());
    for b in ready {
        total.add(h.import_batch(b.into_args(ns))?);
    }
    Ok(total)
}

fn to_text(lines: &[Value]) -> String {
    lines.iter().fold(String::new(), |mut out, l| {
        out.push_str(&l.to_string());
        out.push('\n');
        out
    })
}

fn seed(root: &Handle) {
    let policy = DecayPolicy { decay_rate: 0.0, min_importance: 0.1, ttl_default: None };
    root.create_namespace("src", NamespaceOptions { policy: Some(policy), ..Default::default() })
        .unwrap();
    let memories: Vec<Value> = (0..25)
        .map(|i| {
            json!({"id": format!("m-{i:03}"), "content": format!("note {i}"), "importance": 0.5,
                   "tags": ["t"], "metadata": {"i": i}, "embedding": [i as f32, 1.0, 0.5, 0.25]})
        })
        .collect();
    root.call("store_memories", json!({"namespace": "src", "memories": memories})).unwrap();
    root.add_entity(AddEntity {
        namespace: "src".into(),
        name: "Acme".into(),
        entity_type: Some("company".into()),
        properties: None,
    })
    .unwrap();
    root.add_relation(AddRelation {
        namespace: "src".into(),
        source: "Alice".into(),
        target: "Acme".into(),
        relation_type: "works_at".into(),
        weight: Some(2.0),
        properties: None,
    })
    .unwrap();
}

#[test]
fn a_namespace_is_copied_with_ids_vectors_graph_and_policy_and_reimport_changes_nothing() {
    let (_d, engine) = open();
    let root = engine.root();
    seed(&root);
    let lines = export_all(&root, "src", 7);
    assert_eq!(lines[0]["kind"], "namespace");
    assert_eq!(lines[0]["dimensions"], 4);
    let count = |k: &str| lines.iter().filter(|l| l["kind"] == k).count();
    assert_eq!((count("entity"), count("relation"), count("memory")), (2, 1, 25));
    assert_eq!(lines[0]["format"], "memsilo-export/3");
    assert_eq!(lines[0]["embedder"], "caller", "the vectors came from the caller");
    let m = lines.iter().find(|l| l["id"] == "m-007").unwrap();
    // The stored (normalised) vector, as base64 of its little-endian f32 values.
    let v = memsilo::transfer::decode_vector(m["vector"].as_str().unwrap()).unwrap();
    let norm = (49.0f32 + 1.0 + 0.25 + 0.0625).sqrt();
    let want = [7.0 / norm, 1.0 / norm, 0.5 / norm, 0.25 / norm];
    assert!(v.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{v:?}");

    root.create_namespace("dst", NamespaceOptions::default()).unwrap();
    let text = to_text(&lines);
    let first = import_all(&root, "dst", &text, 10).unwrap();
    assert_eq!((first.memories, first.entities, first.relations), (25, 2, 1));
    let copied = root.get_memory(Some("dst"), "m-007").unwrap();
    assert_eq!(copied.content, "note 7");
    assert_eq!(copied.metadata["i"], 7);
    let policy = root.get_namespace("dst").unwrap().policy;
    assert!((policy.min_importance - 0.1).abs() < 1e-12, "{policy:?}");
    // Recall by the exported vector finds the copy first.
    let hits = root
        .call("recall", json!({"namespace": "dst", "vector": [7.0, 1.0, 0.5, 0.25], "top_k": 1}))
        .unwrap();
    assert_eq!(hits.value[0]["id"], "m-007");
    let path = root.shortest_path("dst", "Alice", "Acme").unwrap();
    assert_eq!(path.relations.len(), 1);

    // Again: nothing new (ids), the same counts in the namespace.
    let again = import_all(&root, "dst", &text, 10).unwrap();
    assert_eq!(again.relations, 0);
    let info = root.get_namespace("dst").unwrap();
    assert_eq!((info.memory_count, info.entity_count, info.relation_count), (25, 2, 1));
    // And the copy exports the same memories.
    let back = export_all(&root, "dst", 1000);
    assert_eq!(back.iter().filter(|l| l["kind"] == "memory").count(), 25);
}

#[test]
fn a_bad_line_is_named_and_its_batch_is_not_written() {
    let (_d, engine) = open();
    let root = engine.root();
    seed(&root);
    let mut lines = export_all(&root, "src", 1000);
    let at = lines.iter().position(|l| l["id"] == "m-020").unwrap();
    lines[at]["vector"] = json!([1.0, 2.0, 3.0]);
    root.create_namespace("dst", NamespaceOptions { dimensions: Some(4), ..Default::default() })
        .unwrap();
    let err = import_all(&root, "dst", &to_text(&lines), 1000).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert_eq!(
        err.to_string(),
        format!("line {}: vector has 3 dimensions, namespace has 4", at + 1)
    );
    assert_eq!(root.get_namespace("dst").unwrap().memory_count, 0, "the batch is all or nothing");

    let mut text = to_text(&lines[..at]);
    text.push_str("{\"kind\": \"memory\", \"content\": \"no id\"\n");
    let err = import_all(&root, "dst", &text, 1000).unwrap_err();
    assert!(err.to_string().starts_with(&format!("line {}: not JSON", at + 1)), "{err}");
    let err =
        import_all(&root, "dst", "{\"kind\": \"memory\", \"content\": \"x\"}\n", 10).unwrap_err();
    assert!(err.to_string().starts_with("line 1: id: "), "{err}");
}

#[test]
fn export_and_import_are_scoped_like_every_operation() {
    let (_d, engine) = open();
    let root = engine.root();
    seed(&root);
    root.create_namespace("other", NamespaceOptions::default()).unwrap();
    let key = root.create_key(CreateKey::namespaces("k", [("other", Access::Write)])).unwrap();
    let scoped = engine.scoped(&key.key).unwrap();
    let err = scoped
        .export_page(ExportArgs { namespace: "src".into(), ..Default::default() })
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    let lines = export_all(&root, "src", 1000);
    let err = scoped
        .import_batch(ImportArgs { namespace: "src".into(), lines, ..Default::default() })
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    let err = root
        .export_page(ExportArgs { namespace: "src".into(), cursor: Some("zz".into()), limit: None })
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
}

/// An import without lines is refused as one with lines is: a key without the namespace gets
/// `forbidden` whether or not it exists, a read-only key too, root `not_found` for a namespace
/// that does not exist; through the single-batch call and the streaming one alike.
#[test]
fn an_empty_import_is_refused_as_a_full_one_would_be() {
    let (_d, engine) = open();
    let root = engine.root();
    seed(&root);
    root.create_namespace("other", NamespaceOptions::default()).unwrap();
    let writer = root.create_key(CreateKey::namespaces("w", [("other", Access::Write)])).unwrap();
    let reader = root.create_key(CreateKey::namespaces("r", [("src", Access::Read)])).unwrap();
    let empty = |h: &Handle, ns: &str| {
        let one = h.import_batch(ImportArgs { namespace: ns.into(), ..Default::default() });
        let streamed = h.import_batches(ns, Vec::new(), |_| {});
        (
            one.map(|s| s.lines).map_err(|e| e.code()),
            streamed.map(|s| s.lines).map_err(|e| e.code()),
        )
    };
    let writer = engine.scoped(&writer.key).unwrap();
    for ns in ["src", "absent"] {
        assert_eq!(empty(&writer, ns), (Err(ErrorCode::Forbidden), Err(ErrorCode::Forbidden)));
    }
    let reader = engine.scoped(&reader.key).unwrap();
    assert_eq!(empty(&reader, "src"), (Err(ErrorCode::Forbidden), Err(ErrorCode::Forbidden)));
    assert_eq!(empty(&root, "absent"), (Err(ErrorCode::NotFound), Err(ErrorCode::NotFound)));
    assert_eq!(empty(&writer, "other"), (Ok(0), Ok(0)));
    assert_eq!(empty(&root, "src"), (Ok(0), Ok(0)));
}

/// Exports written before vectors were base64 (`memsilo-export/1`, vectors as arrays of
/// numbers) still import, and a line may mix in either form; a vector that is neither is named.
#[test]
fn old_exports_with_vectors_as_arrays_still_import() {
    let (_d, engine) = open();
    let root = engine.root();
    seed(&root);
    let mut lines = export_all(&root, "src", 1000);
    lines[0]["format"] = json!("memsilo-export/1");
    for l in lines.iter_mut().filter(|l| l["kind"] == "memory") {
        let v = memsilo::transfer::decode_vector(l["vector"].as_str().unwrap()).unwrap();
        l["vector"] = json!(v);
    }
    root.create_namespace("dst", NamespaceOptions::default()).unwrap();
    let done = import_all(&root, "dst", &to_text(&lines), 10).unwrap();
    assert_eq!(done.memories, 25);
    let hits = root
        .call("recall", json!({"namespace": "dst", "vector": [7.0, 1.0, 0.5, 0.25], "top_k": 1}))
        .unwrap();
    assert_eq!(hits.value[0]["id"], "m-007");
    // The copy exports the same vectors as the source.
    let vectors = |ns: &str| -> Vec<(String, Vec<f32>)> {
        let mut out: Vec<(String, Vec<f32>)> = export_all(&root, ns, 1000)
            .into_iter()
            .filter(|l| l["kind"] == "memory")
            .map(|l| {
                let v = memsilo::transfer::decode_vector(l["vector"].as_str().unwrap()).unwrap();
                (l["id"].as_str().unwrap().to_owned(), v)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    let (copied, source) = (vectors("dst"), vectors("src"));
    assert_eq!(copied.len(), 25);
    for ((id, a), (_, b)) in copied.iter().zip(&source) {
        assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6), "{id}: {a:?} {b:?}");
    }

    let at = lines.iter().position(|l| l["id"] == "m-003").unwrap();
    lines[at]["vector"] = json!("not base64!");
    let err = import_all(&root, "dst", &to_text(&lines), 1000).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert!(err.to_string().starts_with(&format!("line {}: vector: ", at + 1)), "{err}");
    lines[at]["vector"] = json!(["x"]);
    let err = import_all(&root, "dst", &to_text(&lines), 1000).unwrap_err();
    assert!(err.to_string().starts_with(&format!("line {}: vector: ", at + 1)), "{err}");
}

fn open_with(embedder: std::sync::Arc<dyn Embedder>) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let options = Options { background: false, embedder, ..Options::default() };
    let engine = Engine::open(dir.path(), options).unwrap();
    (dir, engine)
}

const TEXTS: [&str; 4] = [
    "the cat sleeps on the warm kitchen mat",
    "quarterly revenue grew in the european market",
    "the hiking trail climbs above the glacier lake",
    "our database backups run every night at two",
];

/// A text namespace: the four texts stored by the engine's embedder under ids t0..t3.
fn seed_text(root: &Handle, ns: &str) {
    root.create_namespace(ns, NamespaceOptions::default()).unwrap();
    let memories: Vec<Value> = TEXTS
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"id": format!("t{i}"), "content": t}))
        .collect();
    root.call("store_memories", json!({"namespace": ns, "memories": memories})).unwrap();
}

fn recall_text(h: &Handle, ns: &str, query: &str) -> memsilo::Result<Vec<String>> {
    let hits = h.call("recall", json!({"namespace": ns, "query": query, "top_k": 4}))?.value;
    Ok(hits.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect())
}

/// The stored vector of memory `id`.
fn vector_of(h: &Handle, ns: &str, id: &str) -> Vec<f32> {
    let got = h.get_memories(Some(ns), &[id.to_owned()], true).unwrap();
    got[0].vector.clone().unwrap()
}

/// An export of a namespace the engine embedded names that embedder; imported into a fresh
/// namespace of the same engine (in batches of 2 lines, so the memory batches come after the
/// namespace line's), the vectors are recorded as that embedder's: storing text and recalling
/// by text work in the copy, and recall finds the imported memories by meaning.
#[test]
fn an_imported_text_namespace_goes_on_taking_text_and_recalls_by_meaning() {
    let (_d, engine) = open_with(std::sync::Arc::new(HashEmbedder::new(384)));
    let root = engine.root();
    seed_text(&root, "src");
    let lines = export_all(&root, "src", 1000);
    assert_eq!(lines[0]["embedder"], "memsilo-hash-384-v1");
    root.create_namespace("dst", NamespaceOptions::default()).unwrap();
    let done = import_all(&root, "dst", &to_text(&lines), 2).unwrap();
    assert_eq!(done.memories, 4);
    let info = root.get_namespace("dst").unwrap();
    assert_eq!(info.embedder.as_deref(), Some("memsilo-hash-384-v1"));
    // The vectors came over as they were.
    assert_eq!(vector_of(&root, "dst", "t2"), vector_of(&root, "src", "t2"));

    root.call("store_memory", json!({"namespace": "dst", "id": "new", "content": "a new note"}))
        .unwrap();
    let hits = recall_text(&root, "dst", "where does the cat sleep? on the mat").unwrap();
    assert_eq!(hits[0], "t0", "{hits:?}");
    let hits = recall_text(&root, "dst", "nightly database backups").unwrap();
    assert_eq!(hits[0], "t3", "{hits:?}");
    assert_eq!(root.get_namespace("dst").unwrap().memory_count, 5);
}

/// An export of caller-supplied vectors says so, and its copy holds caller vectors too: text
/// is refused there as in the source, vectors are taken.
#[test]
fn caller_vector_exports_stay_caller_vectors_on_import() {
    let (_d, engine) = open_with(std::sync::Arc::new(HashEmbedder::new(384)));
    let root = engine.root();
    seed(&root);
    let lines = export_all(&root, "src", 1000);
    assert_eq!(lines[0]["embedder"], "caller");
    root.create_namespace("dst", NamespaceOptions::default()).unwrap();
    assert_eq!(import_all(&root, "dst", &to_text(&lines), 3).unwrap().memories, 25);
    assert_eq!(root.get_namespace("dst").unwrap().embedder.as_deref(), Some("caller"));
    let err = root
        .call("store_memory", json!({"namespace": "dst", "content": "text without a vector"}))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert!(err.to_string().contains("caller-supplied vectors"), "{err}");
    root.call(
        "store_memory",
        json!({"namespace": "dst", "content": "with one", "embedding": [0.0, 1.0, 0.0, 0.0]}),
    )
    .unwrap();
    let hits = root
        .call("recall", json!({"namespace": "dst", "vector": [7.0, 1.0, 0.5, 0.25], "top_k": 1}))
        .unwrap();
    assert_eq!(hits.value[0]["id"], "m-007");
}

/// The hashing embedder's vectors turned around: same dimension, another embedder.
struct Reversed(HashEmbedder);

impl Embedder for Reversed {
    fn name(&self) -> &'static str {
        "reversed-hash-384"
    }
    fn dimensions(&self) -> usize {
        self.0.dimensions()
    }
    fn embed(&self, texts: &[&str]) -> memsilo::Result<Vec<Vec<f32>>> {
        let mut out = self.0.embed(texts)?;
        for v in &mut out {
            v.reverse();
        }
        Ok(out)
    }
}

/// Vectors of another embedder than the target's are dropped and the content embedded again
/// with the target's, whether the target has its embedder already or takes the engine's now,
/// and whatever the source's dimension: the copy's vectors are the target embedder's, and
/// text recall finds the memories by meaning.
#[test]
fn an_export_of_another_embedder_is_embedded_again() {
    let hash = std::sync::Arc::new(HashEmbedder::new(384));
    let (_d, target) = open_with(hash.clone());
    let root = target.root();
    for (source, name) in [
        (
            std::sync::Arc::new(Reversed(HashEmbedder::new(384))) as std::sync::Arc<dyn Embedder>,
            "reversed-hash-384",
        ),
        (std::sync::Arc::new(HashEmbedder::new(64)), "memsilo-hash-64-v1"),
    ] {
        let (_s, from) = open_with(source);
        seed_text(&from.root(), "src");
        let lines = export_all(&from.root(), "src", 1000);
        assert_eq!(lines[0]["embedder"], name);
        let text = to_text(&lines);
        // A fresh target (the engine's embedder), then one whose embedder is already fixed.
        let fresh = format!("fresh-{name}");
        root.create_namespace(&fresh, NamespaceOptions::default()).unwrap();
        let fixed = format!("fixed-{name}");
        seed_text(&root, &fixed);
        root.call("delete_memory", json!({"namespace": fixed, "id": "t1"})).unwrap();
        for ns in [&fresh, &fixed] {
            assert_eq!(import_all(&root, ns, &text, 2).unwrap().memories, 4, "{ns}");
            let info = root.get_namespace(ns).unwrap();
            assert_eq!(info.embedder.as_deref(), Some("memsilo-hash-384-v1"), "{ns}");
            assert_eq!(info.dimensions, Some(384), "{ns}");
            let mut want = hash.embed(&[TEXTS[1]]).unwrap().pop().unwrap();
            memsilo::normalize(&mut want);
            let got = vector_of(&root, ns, "t1");
            assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6), "{ns}");
            let hits = recall_text(&root, ns, "revenue in european markets").unwrap();
            assert_eq!(hits[0], "t1", "{ns}: {hits:?}");
            root.call("store_memory", json!({"namespace": ns, "content": "more text"})).unwrap();
        }
    }
}

/// A `memsilo-export/2` file (no `embedder` on its namespace line) imports as it always did:
/// its vectors are caller vectors.
#[test]
fn exports_without_an_embedder_import_their_vectors_as_caller_vectors() {
    let (_d, engine) = open_with(std::sync::Arc::new(HashEmbedder::new(384)));
    let root = engine.root();
    seed_text(&root, "src");
    let mut lines = export_all(&root, "src", 1000);
    lines[0]["format"] = json!("memsilo-export/2");
    lines[0].as_object_mut().unwrap().remove("embedder");
    root.create_namespace("dst", NamespaceOptions::default()).unwrap();
    assert_eq!(import_all(&root, "dst", &to_text(&lines), 2).unwrap().memories, 4);
    assert_eq!(root.get_namespace("dst").unwrap().embedder.as_deref(), Some("caller"));
    assert_eq!(vector_of(&root, "dst", "t0"), vector_of(&root, "src", "t0"));
}

/// A copy keeps its entities' ids, and a relation's ends are found by id: two entities that
/// share a name (of different types) no longer make the copy of their relations ambiguous.
#[test]
fn a_copy_keeps_entity_ids_and_finds_relation_ends_by_id() {
    let (_d, engine) = open();
    let root = engine.root();
    root.create_namespace("src", NamespaceOptions::default()).unwrap();
    let add = |name: &str, ty: &str| {
        root.call("add_entity", json!({"namespace": "src", "name": name, "type": ty}))
            .unwrap()
            .value
    };
    let (planet, element) = (add("Mercury", "planet"), add("Mercury", "element"));
    let relate = |source: &Value, target: &str, ty: &str| {
        let args =
            json!({"namespace": "src", "source": source["id"], "target": target, "type": ty});
        root.call("add_relation", args).unwrap().value
    };
    let orbits = relate(&planet, "Sun", "orbits");
    let symbol = relate(&element, "Hg", "symbol");
    let text = to_text(&export_all(&root, "src", 1000));
    root.create_namespace("dst", NamespaceOptions::default()).unwrap();
    let done = import_all(&root, "dst", &text, 1000).unwrap();
    assert_eq!((done.entities, done.relations), (4, 2));
    for e in [&planet, &element] {
        let copied = root.get_entity("dst", e["id"].as_str().unwrap(), None).unwrap();
        assert_eq!(
            (copied.name.as_str(), copied.entity_type.as_str()),
            ("Mercury", e["type"].as_str().unwrap())
        );
    }
    for r in [&orbits, &symbol] {
        let view = root
            .neighbors(Neighbors {
                namespace: "dst".into(),
                entity: r["source"].as_str().unwrap().into(),
                depth: Some(1),
                relation_type: None,
            })
            .unwrap();
        let ids: Vec<&str> = view.relations.iter().map(|x| x.id.as_str()).collect();
        assert_eq!(ids, [r["id"].as_str().unwrap()]);
        assert_eq!(view.entities[1].id, r["target"].as_str().unwrap(), "the same end, same id");
    }
    // Again: the same graph (ids kept, nothing doubled).
    import_all(&root, "dst", &text, 1000).unwrap();
    let info = root.get_namespace("dst").unwrap();
    assert_eq!((info.entity_count, info.relation_count), (4, 2));
}

/// A memory line given as its text (what a file holds: read typed) and the same line given
/// as a JSON object store the same memory, nulls, expiry, metadata and vector included; a text
/// line the typed reading does not take (a vector as numbers, an unknown field) goes the
/// object's way, with its error.
#[test]
fn memory_lines_as_text_and_as_objects_import_alike() {
    let (_d, engine) = open();
    let root = engine.root();
    seed(&root);
    root.call(
        "store_memory",
        json!({"namespace": "src", "id": "odd \"one\"", "content": "caf\u{e9}\nnew line",
               "metadata": {"a": {"b": [1, null, "x"]}}, "ttl": 3600, "session_id": "s",
               "memory_type": "procedural", "agent_id": "ag", "entities": ["Acme"],
               "embedding": [0.5, 0.5, 0.5, 0.5]}),
    )
    .unwrap();
    let mut lines = export_all(&root, "src", 1000);
    let nulls = lines.iter().position(|l| l["id"] == "m-001").unwrap();
    lines[nulls]["importance"] = Value::Null;
    lines[nulls]["tags"] = Value::Null;
    lines[nulls]["metadata"] = Value::Null;
    let arrays = lines.iter().position(|l| l["id"] == "m-002").unwrap();
    let v = memsilo::transfer::decode_vector(lines[arrays]["vector"].as_str().unwrap()).unwrap();
    lines[arrays]["vector"] = json!(v);
    for ns in ["as_text", "as_objects"] {
        root.create_namespace(ns, NamespaceOptions::default()).unwrap();
    }
    let as_text = import_all(&root, "as_text", &to_text(&lines), 1000).unwrap();
    let as_objects = root
        .import_batch(ImportArgs {
            namespace: "as_objects".into(),
            lines: lines.clone(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!((as_text.memories, as_objects.memories), (26, 26));
    let memories = |ns: &str| -> Vec<Value> {
        let mut out: Vec<Value> = export_all(&root, ns, 1000)
            .into_iter()
            .filter(|l| l["kind"] == "memory")
            .map(|mut l| {
                // Times are set again by an import; an expiry is kept as time left.
                let o = l.as_object_mut().unwrap();
                o.remove("created_at");
                o.remove("updated_at");
                let expires = o.remove("expires_at").is_some_and(|t| !t.is_null());
                o.insert("expires".into(), json!(expires));
                l
            })
            .collect();
        out.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        out
    };
    let (text, objects) = (memories("as_text"), memories("as_objects"));
    assert_eq!(text, objects);
    let odd = text.iter().find(|l| l["id"] == "odd \"one\"").unwrap();
    assert_eq!(
        (odd["expires"].as_bool(), odd["content"].as_str()),
        (Some(true), Some("caf\u{e9}\nnew line"))
    );
    let m001 = text.iter().find(|l| l["id"] == "m-001").unwrap();
    assert_eq!(
        (m001["importance"].as_f64(), m001["tags"].as_array().map(Vec::len)),
        (Some(0.5), Some(0))
    );

    lines[nulls]["colour"] = json!("red");
    let err = import_all(&root, "as_text", &to_text(&lines), 1000).unwrap_err();
    assert_eq!(err.to_string(), format!("line {}: colour: unknown field of a memory", nulls + 1));
}

/// The batches a file of `text` is read as, as `memsilo import` reads them: up to the first
/// bad line, which ends them.
fn batches_of(text: &str, size: usize) -> Vec<memsilo::Result<memsilo::transfer::Batch>> {
    let mut batcher = Batcher::new(size);
    let mut out = Vec::new();
    for line in text.lines() {
        match batcher.push(line.as_bytes()) {
            Ok(batch) => out.extend(batch.map(Ok)),
            Err(e) => {
                out.push(Err(e));
                return out;
            }
        }
    }
    out.extend(batcher.finish().map(Ok));
    out
}

/// A memory line's fields an import keeps (its times are set again; its vector is normalised
/// again, to within a rounding).
fn kept(lines: &[Value]) -> Vec<Value> {
    let rounded = |v: &Value| -> Vec<i64> {
        let v = memsilo::transfer::decode_vector(v.as_str().unwrap()).unwrap();
        v.iter().map(|x| (x * 1e5).round() as i64).collect()
    };
    let mut out: Vec<Value> = lines
        .iter()
        .filter(|l| l["kind"] == "memory")
        .map(|l| json!([l["id"], l["content"], rounded(&l["vector"]), l["metadata"], l["tags"]]))
        .collect();
    out.sort_by_key(ToString::to_string);
    out
}

fn import_entries(root: &Handle) -> Vec<String> {
    let page = root.call("list_audit", json!({ "tenant_id": "instance", "limit": 1000 })).unwrap();
    page.value["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "import_namespace")
        .map(|e| e["result"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn batches_imported_while_the_one_before_is_written_make_the_same_copy() {
    let (_d, engine) = open();
    let root = engine.root();
    seed(&root);
    let lines = export_all(&root, "src", 1000);
    root.create_namespace("dst", NamespaceOptions::default()).unwrap();
    let batches = batches_of(&to_text(&lines), 4);
    // The namespace line, the entities, the relation, then 25 memories in batches of 4.
    assert_eq!(batches.len(), 3 + 7);
    let mut told = Vec::new();
    let total = root.import_batches("dst", batches, |t| told.push(t.memories)).unwrap();
    assert_eq!((total.memories, total.entities, total.relations), (25, 2, 1));
    assert_eq!(told, [0, 0, 0, 4, 8, 12, 16, 20, 24, 25], "the running total after each batch");
    assert_eq!(kept(&export_all(&root, "dst", 1000)), kept(&lines));
    let policy = root.get_namespace("dst").unwrap().policy;
    assert!((policy.min_importance - 0.1).abs() < 1e-12, "{policy:?}");
    assert_eq!(root.shortest_path("dst", "Alice", "Acme").unwrap().relations.len(), 1);
    // Each batch is recorded as the `import_namespace` it stands for.
    assert_eq!(import_entries(&root), vec!["ok"; 10]);

    // A bad line in the fifth batch of memories: the four before it are written, nothing of
    // its own batch or after it, and the error names the line.
    let mut bad = lines.clone();
    let memory_lines: Vec<usize> = (0..bad.len()).filter(|i| bad[*i]["kind"] == "memory").collect();
    let at = memory_lines[17];
    bad[at]["vector"] = json!([1.0, 2.0, 3.0]);
    let err = root.import_batches("dst2", batches_of(&to_text(&bad), 4), |_| {});
    assert_eq!(err.unwrap_err().code(), ErrorCode::NotFound, "no namespace dst2 yet");
    root.create_namespace("dst2", NamespaceOptions::default()).unwrap();
    let err = root.import_batches("dst2", batches_of(&to_text(&bad), 4), |_| {}).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("line {}: vector has 3 dimensions, namespace has 4", at + 1)
    );
    assert_eq!(root.get_namespace("dst2").unwrap().memory_count, 16);
    let after: Vec<String> = memory_lines[16..]
        .iter()
        .filter_map(|i| bad[*i]["id"].as_str().map(str::to_owned))
        .collect();
    assert!(root.get_memories(Some("dst2"), &after, false).unwrap().is_empty());
    let recorded = import_entries(&root);
    assert_eq!(recorded.len(), 10 + 1 + 3 + 5, "{recorded:?}");
    assert_eq!(recorded.iter().filter(|r| *r != "ok").count(), 2, "{recorded:?}");
}

/// Memory lines of `n` memories with 4-dimension vectors and 2,000 characters of content.
fn large_memories(n: usize) -> String {
    (0..n).fold(String::new(), |mut out, i| {
        let vector = memsilo::transfer::encode_vector(&[i as f32 + 1.0, 1.0, 0.5, 0.25]);
        let line = json!({"kind": "memory", "id": format!("m-{i:03}"),
                          "content": format!("{i} {}", "y".repeat(2_000)), "vector": vector});
        out.push_str(&line.to_string());
        out.push('\n');
        out
    })
}

/// An import that runs into its tenant's storage quota: the batch that would exceed it fails
/// with nothing of it written, after every batch before it is written, and no batch after it
/// is; whether the batches were written together or one at a time (one `import_namespace`
/// call each) makes no difference.
#[test]
fn a_batch_over_the_storage_quota_fails_alone_after_the_batches_before_it() {
    let (_d, engine) = open();
    let root = engine.root();
    let text = large_memories(40);
    let mut counts = Vec::new();
    for (ns, together) in [("together", true), ("one_by_one", false)] {
        let quotas =
            memsilo::QuotasPatch { storage_quota_bytes: Some(60_000), ..Default::default() };
        let tenant = root
            .create_tenant(memsilo::CreateTenant {
                name: format!("tenant_{ns}"),
                quotas: Some(quotas),
                ..Default::default()
            })
            .unwrap()
            .tenant;
        let options = NamespaceOptions {
            tenant_id: Some(tenant.id),
            dimensions: Some(4),
            ..Default::default()
        };
        root.create_namespace(ns, options).unwrap();
        let err = if together {
            root.import_batches(ns, batches_of(&text, 4), |_| {}).unwrap_err()
        } else {
            // As a cluster node's client imports: one `import_namespace` call a batch.
            let backend = Box::new(root.clone());
            let mut importer = memsilo::api::Importer::by_calls(backend, ns, 4).unwrap();
            importer.feed(text.as_bytes()).and_then(|()| importer.finish()).unwrap_err()
        };
        assert_eq!(err.code(), ErrorCode::QuotaExceeded, "{err}");
        let count = root.get_namespace(ns).unwrap().memory_count;
        assert!(count > 0 && count < 40 && count % 4 == 0, "{count} memories: whole batches");
        // The error says what was written before it, and names no line.
        let written = ImportSummary { lines: count, memories: count, ..Default::default() };
        assert_eq!((err.imported(), err.line()), (Some(written), None));
        // The memories written are the first ones, in the file's order.
        let ids: Vec<String> = (0..40).map(|i| format!("m-{i:03}")).collect();
        let got = root.get_memories(Some(ns), &ids, false).unwrap();
        let mut got: Vec<String> = got.into_iter().map(|m| m.id).collect();
        got.sort();
        assert_eq!(got, ids[..count as usize]);
        counts.push(count);
    }
    assert_eq!(counts[0], counts[1]);
}

/// `text` fed to an importer of `root` in chunks of `chunk` bytes (cut inside lines).
fn import_chunked(
    root: &Handle,
    ns: &str,
    text: &str,
    size: usize,
    chunk: usize,
) -> memsilo::Result<ImportSummary> {
    let mut importer = root.importer(ns, size)?;
    for part in text.as_bytes().chunks(chunk) {
        importer.feed(part)?;
    }
    importer.finish()
}

#[test]
fn an_importer_fed_chunks_cut_anywhere_makes_the_same_copy() {
    let (_d, engine) = open();
    let root = engine.root();
    seed(&root);
    let lines = export_all(&root, "src", 1000);
    let mut text = to_text(&lines);
    text.insert(text.find('\n').unwrap() + 1, '\n'); // a blank line is counted, not imported
    text.pop(); // the last line without its newline
    for (ns, chunk) in [("dst", 7), ("dst2", 1 << 20)] {
        root.create_namespace(ns, NamespaceOptions::default()).unwrap();
        let total = import_chunked(&root, ns, &text, 4, chunk).unwrap();
        assert_eq!((total.lines, total.memories, total.entities, total.relations), (29, 25, 2, 1));
        assert_eq!(kept(&export_all(&root, ns, 1000)), kept(&lines), "chunks of {chunk}");
        assert_eq!(root.shortest_path(ns, "Alice", "Acme").unwrap().relations.len(), 1);
    }
    // The namespace line named the vectors' embedder for the batches after it.
    let copy = root.get_namespace("dst").unwrap();
    assert_eq!(copy.embedder, root.get_namespace("src").unwrap().embedder);
    // Nothing more once finished; a batch size out of range is refused at once.
    let mut importer = root.importer("dst", 10).unwrap();
    assert_eq!(importer.finish().unwrap(), ImportSummary::default());
    assert_eq!(importer.feed(b"\n").unwrap_err().code(), ErrorCode::InvalidArgument);
    let e = root.importer("dst", 0).unwrap_err();
    assert!(e.to_string().starts_with("batch_size: "), "{e}");
}

#[test]
fn an_importer_stops_at_a_bad_line_3500_keeping_the_batches_before_it() {
    let (_d, engine) = open();
    let root = engine.root();
    root.create_namespace("dst", NamespaceOptions { dimensions: Some(3), ..Default::default() })
        .unwrap();
    let line = |i: usize, v: Value| {
        json!({"kind": "memory", "id": format!("m{i}"), "content": format!("note {i}"), "vector": v})
            .to_string()
    };
    let mut lines: Vec<String> =
        (1..=5_000).map(|i| line(i, json!([1.0, i as f32, 0.0]))).collect();
    lines[3_499] = line(3_500, json!([1.0]));
    let text = lines.join("\n");
    let err = import_chunked(&root, "dst", &text, 1000, 64 << 10).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert_eq!(err.to_string(), "line 3500: vector has 1 dimensions, namespace has 3");
    // The error says what the three batches before it wrote, and the line.
    let written = ImportSummary { lines: 3_000, memories: 3_000, ..Default::default() };
    assert_eq!((err.imported(), err.line()), (Some(written), Some(3_500)));
    let body = memsilo::api::error_body(&err);
    assert_eq!((&body["imported"]["memories"], &body["line"]), (&json!(3_000), &json!(3_500)));
    // Lines 1-3000 (three whole batches) are written; the bad line's batch and after are not.
    assert_eq!(root.get_namespace("dst").unwrap().memory_count, 3_000);
    let ids = |r: std::ops::RangeInclusive<usize>| r.map(|i| format!("m{i}")).collect::<Vec<_>>();
    assert_eq!(root.get_memories(Some("dst"), &ids(2_991..=3_000), false).unwrap().len(), 10);
    assert!(root.get_memories(Some("dst"), &ids(3_001..=3_010), false).unwrap().is_empty());
    // Text that is not a line of an export, however it is cut, names its line.
    let err =
        import_chunked(&root, "dst", &format!("{}\nnot json\n", lines[0]), 10, 3).unwrap_err();
    assert!(err.to_string().starts_with("line 2: not JSON"), "{err}");
    assert_eq!((err.imported(), err.line()), (Some(ImportSummary::default()), Some(2)));
    // Fixed, the import runs again from the start: idempotent through the ids.
    lines[3_499] = line(3_500, json!([1.0, 3_500.0, 0.0]));
    let total = import_chunked(&root, "dst", &lines.join("\n"), 1000, 1 << 20).unwrap();
    assert_eq!(total.memories, 5_000);
    assert_eq!(root.get_namespace("dst").unwrap().memory_count, 5_000);
}

/// Lines given one an item (what Python's and Node's iterables give): each item is one line
/// and one number in errors, a JSON object written over several lines included; a line break
/// inside a string is refused as it is in a file, naming the item.
#[test]
fn an_importer_fed_items_counts_each_as_one_line() {
    let (_d, engine) = open();
    let root = engine.root();
    root.create_namespace("dst", NamespaceOptions { dimensions: Some(3), ..Default::default() })
        .unwrap();
    let memory = |i: usize, v: Value| json!({"kind": "memory", "id": format!("m{i}"), "content": format!("note {i}"), "vector": v});
    let items = [
        memory(1, json!([1.0, 1.0, 0.0])).to_string(),
        serde_json::to_string_pretty(&memory(2, json!([1.0, 2.0, 0.0]))).unwrap(),
        memory(3, json!([1.0, 3.0, 0.0])).to_string() + "\n",
        serde_json::to_string_pretty(&memory(4, json!([1.0]))).unwrap(),
    ];
    let import = |items: &[String], size: usize| {
        let mut importer = root.importer("dst", size)?;
        importer.feed_lines(items.iter().map(String::as_bytes))?;
        importer.finish()
    };
    let err = import(&items, 2).unwrap_err();
    assert_eq!(err.to_string(), "line 4: vector has 1 dimensions, namespace has 3");
    assert_eq!((err.imported().map(|done| done.memories), err.line()), (Some(2), Some(4)));
    assert_eq!(root.get_memory(Some("dst"), "m2").unwrap().content, "note 2");
    let bad =
        [items[0].clone(), "{\"kind\": \"memory\",\n\"id\": \"x\", \"content\": \"a\nb\"}".into()];
    let err = import(&bad, 10).unwrap_err();
    assert!(err.to_string().starts_with("line 2: not JSON: control character"), "{err}");
}
