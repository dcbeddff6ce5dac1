//! Export and import: a namespace copied through its JSON Lines with vectors, ids, graph and
//! policy; idempotent re-import; bad lines named by number with nothing of their batch written.

use memsilo::transfer::{Batcher, ExportArgs, ImportArgs, ImportSummary};
use memsilo::{
    Access, AddEntity, AddRelation, CreateKey, DecayPolicy, Engine, ErrorCode, Handle,
    NamespaceOptions, Options,
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
        out.extend(page.lines);
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
        let args =
            ImportArgs { namespace: ns.into(), lines: b.lines, first_line: Some(b.first_line) };
        total.add(h.import_batch(args)?);
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
    assert_eq!(lines[0]["format"], "memsilo-export/2");
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
        .import_batch(ImportArgs { namespace: "src".into(), lines, first_line: None })
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    let err = root
        .export_page(ExportArgs { namespace: "src".into(), cursor: Some("zz".into()), limit: None })
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
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
