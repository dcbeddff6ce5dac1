use chrono::Utc;

use super::*;
use crate::error::ErrorCode;
use crate::store::Store;
use crate::{Engine, Options};

fn chain(n: usize) -> (tempfile::TempDir, Engine, String) {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    let root = engine.root();
    let args = serde_json::json!({ "name": "acme" });
    let id = root.call("create_tenant", args).unwrap().value["id"].as_str().unwrap().to_owned();
    for i in 1..n {
        let args = serde_json::json!({ "name": format!("ns{i}"), "tenant_id": id });
        root.call("create_namespace", args).unwrap();
    }
    assert!(root.verify_audit(&id).unwrap().ok);
    (dir, engine, id)
}

/// Changes one stored row of `tenant`'s chain, as someone with the files could.
fn tamper(engine: &Engine, tenant: &str, seq: u64, f: impl Fn(&mut AuditEntry) -> bool + Sync) {
    engine
        .inner
        .catalog
        .write(|w, t| {
            let t = &t.audit;
            let key = entry_key(tenant, seq);
            let mut entry = t.entries.get(w, &key)?.unwrap();
            if f(&mut entry) {
                t.entries.put(w, &key, &entry)?;
            } else {
                t.entries.delete(w, &key)?;
            }
            Ok(())
        })
        .unwrap();
}

fn broken(engine: &Engine, tenant: &str) -> BrokenEntry {
    let v = engine.root().verify_audit(tenant).unwrap();
    assert!(!v.ok);
    v.first_broken.unwrap()
}

#[test]
fn an_edited_entry_is_named_by_verify() {
    let (_dir, engine, id) = chain(6);
    tamper(&engine, &id, 3, |e| {
        e.actor.principal = "member".into();
        true
    });
    let b = broken(&engine, &id);
    assert_eq!(b.seq, 3);
    assert!(b.reason.contains("edited"), "{}", b.reason);
}

#[test]
fn an_edited_entry_with_a_recomputed_hash_breaks_the_next_link() {
    let (_dir, engine, id) = chain(6);
    tamper(&engine, &id, 2, |e| {
        e.result = "refused".into();
        e.hash = entry_hash(e);
        true
    });
    assert_eq!(broken(&engine, &id).seq, 3);
}

#[test]
fn a_removed_entry_is_named_by_verify_in_the_middle_and_at_the_end() {
    let (_dir, engine, id) = chain(6);
    tamper(&engine, &id, 4, |_| false);
    let b = broken(&engine, &id);
    assert_eq!(b.seq, 4);
    assert!(b.reason.contains("missing"), "{}", b.reason);

    let (_dir, engine, id) = chain(6);
    tamper(&engine, &id, 6, |_| false);
    let b = broken(&engine, &id);
    assert_eq!(b.seq, 6);
    assert!(b.reason.contains("missing"), "{}", b.reason);
}

#[test]
fn an_entry_moved_to_another_tenant_does_not_verify_there() {
    let (_dir, engine, id) = chain(3);
    tamper(&engine, &id, 2, |e| {
        e.tenant_id = "someone-else".into();
        e.hash = entry_hash(e);
        true
    });
    assert_eq!(broken(&engine, &id).seq, 2);
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
    let (_dir, engine, id) = chain(1);
    let root = engine.root().with_request_id("req-1");
    let commits = || engine.inner.catalog.commits();
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
    let (_dir, engine, id) = chain(1);
    let root = engine.root();
    let queued = root
        .draft("store_memory", Subject { tenant: Some(id.clone()), target: None, control: false })
        .finish(Err(ErrorCode::Forbidden), None, None);
    engine.inner.audit.queue.lock().push_back(queued);
    root.call("create_namespace", serde_json::json!({ "name": "two", "tenant_id": id })).unwrap();
    let log = entries(&engine, &id);
    let actions: Vec<&str> = log[log.len() - 2..].iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["store_memory", "create_namespace"]);
    assert!(engine.inner.audit.queue.lock().is_empty());
    assert!(engine.root().verify_audit(&id).unwrap().ok);
}

/// A data directory of an earlier version kept the log in its own environment
/// (`DIR/audit`): opening it moves the chains into the catalog, intact, and removes it.
#[test]
fn a_log_in_its_own_environment_is_moved_into_the_catalog_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let old = Store::<OldAuditTables>::open(&dir.path().join("audit"), 1 << 20, None).unwrap();
        let draft = |action: &str| Draft {
            time: Utc::now(),
            tenant_id: "t1".into(),
            actor: AuditActor { principal: "root".into(), ..AuditActor::default() },
            action: action.into(),
            target: None,
            outcome: Ok(()),
            request_id: "r".into(),
        };
        let batch = [draft("create_tenant"), draft("create_namespace")];
        old.write(|w, t| write_batch(w, &t.0, &batch)).unwrap();
    }
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    assert!(!dir.path().join("audit").exists());
    let actions: Vec<String> = entries(&engine, "t1").into_iter().map(|e| e.action).collect();
    assert_eq!(actions, ["create_tenant", "create_namespace"]);
    let v = engine.root().verify_audit("t1").unwrap();
    assert!(v.ok && v.head_seq == 2, "{v:?}");
}
