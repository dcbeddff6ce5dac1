use crate::audit::{AuditEntry, ListAudit, Subject};
use crate::error::ErrorCode;
use crate::{Engine, Options};

/// An engine with one tenant (whose creation is the first entry of its chain).
fn tenant() -> (tempfile::TempDir, Engine, String) {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    let args = serde_json::json!({ "name": "acme" });
    let made = engine.root().call("create_tenant", args).unwrap();
    let id = made.value["id"].as_str().unwrap().to_owned();
    (dir, engine, id)
}

fn entries(engine: &Engine, tenant: &str) -> Vec<AuditEntry> {
    let q = ListAudit { tenant_id: tenant.into(), limit: Some(1000), ..ListAudit::default() };
    engine.root().list_audit(q).unwrap().entries
}

/// Issue 19: a namespace or key created through the operation table is made durable with
/// its audit entry by one catalog commit (one fsync'd commit, not two), the entry names
/// what was made; a refused creation still gets its entry.
#[test]
fn a_creation_and_its_entry_share_one_commit_and_a_refused_one_is_recorded() {
    let (_dir, engine, id) = tenant();
    let root = engine.root().with_request_id("req-1");
    let commits = || engine.inner.state.catalog.commits();
    let before = commits();
    root.call("create_namespace", serde_json::json!({ "name": "one", "tenant_id": id })).unwrap();
    assert_eq!(commits(), before + 1, "the namespace and its entry: one commit");
    let key = crate::CreateKey::tenant_role("k", &id, crate::Role::Viewer);
    let made = root.call("create_key", serde_json::to_value(key).unwrap()).unwrap();
    let key_id = made.value["id"].as_str().unwrap().to_owned();
    assert_eq!(commits(), before + 2, "the key and its entry: one commit");
    let args = serde_json::json!({ "name": "one", "tenant_id": id });
    assert_eq!(root.call("create_namespace", args).unwrap_err().code(), ErrorCode::Conflict);

    let log = entries(&engine, &id);
    let last: Vec<(&str, Option<&str>, &str, Option<&str>)> = log[log.len() - 3..]
        .iter()
        .map(|e| (e.action.as_str(), e.target.as_deref(), e.result.as_str(), e.error.as_deref()))
        .collect();
    assert_eq!(
        last,
        [
            ("create_namespace", Some("one"), "ok", None),
            ("create_key", Some(key_id.as_str()), "ok", None),
            ("create_namespace", Some("one"), "failed", Some("conflict")),
        ]
    );
    assert!(log.iter().rev().take(3).all(|e| e.request_id == "req-1"));
    assert!(engine.root().verify_audit(&id).unwrap().ok);
}

/// An entry still queued (a refusal does not wait for its commit) is written before the
/// entry of a creation decided after it: the chain keeps the order of the decisions.
#[test]
fn queued_entries_go_into_the_chain_before_a_later_creations_entry() {
    let (_dir, engine, id) = tenant();
    let root = engine.root();
    let queued = root
        .draft("store_memory", Subject { tenant: Some(id.clone()), target: None, control: false })
        .finish(Err(ErrorCode::Forbidden), None, None);
    engine.inner.state.audit.queue.lock().push_back(queued);
    root.call("create_namespace", serde_json::json!({ "name": "two", "tenant_id": id })).unwrap();
    let log = entries(&engine, &id);
    let actions: Vec<&str> = log[log.len() - 2..].iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["store_memory", "create_namespace"]);
    assert!(engine.inner.state.audit.queue.lock().is_empty());
    assert!(engine.root().verify_audit(&id).unwrap().ok);
}

/// An import records each batch as the `import_namespace` it stands for, but the entries of
/// its batches share catalog commits (and syncs) instead of taking one each; all of them are
/// in the chain when the import returns.
#[test]
fn an_imports_batches_are_recorded_one_entry_each_in_few_commits() {
    let (_dir, engine, id) = tenant();
    let root = engine.root();
    let args = serde_json::json!({ "name": "ns", "tenant_id": id, "dimensions": 2 });
    root.call("create_namespace", args).unwrap();
    let mut lines = crate::transfer::Batcher::new(2);
    let mut batches = Vec::new();
    for i in 0..80 {
        let line = serde_json::json!({
            "kind": "memory", "id": format!("m{i}"), "content": format!("memory {i}"),
            "vector": [1.0, f64::from(i)],
        });
        batches.extend(lines.push(line.to_string().as_bytes()).unwrap().map(Ok));
    }
    batches.extend(lines.finish().map(Ok));
    assert_eq!(batches.len(), 40);
    let commits = || engine.inner.state.catalog.commits();
    let before = commits();
    assert_eq!(root.import_batches("ns", batches, |_| {}).unwrap().memories, 80);
    // One commit at the end, and one a second meanwhile on a slow machine.
    let made = commits() - before;
    assert!(made <= 10, "{made} catalog commits for the entries of 40 batches");
    let log = entries(&engine, &id);
    let recorded = log.iter().filter(|e| e.action == "import_namespace" && e.result == "ok");
    assert_eq!(recorded.count(), 40);
    assert!(engine.inner.state.audit.queue.lock().is_empty());
    assert!(root.verify_audit(&id).unwrap().ok);
}
