//! The audit log: control-plane actions and refusals recorded per tenant, hash-chained,
//! readable by root and the tenant's admins, filtered and paged, pruned by retention, and
//! free of memory content and secrets.

use std::sync::Arc;

use memsilo::{Clock, Engine, ErrorCode, Handle, ManualClock, Options};
use serde_json::{json, Value};

use crate::keys::files_containing;

fn open(dir: &std::path::Path, clock: Arc<ManualClock>, retention: Option<u32>) -> Engine {
    let options =
        Options { background: false, clock, audit_retention_days: retention, ..Options::default() };
    Engine::open(dir, options).unwrap()
}

fn call(h: &Handle, op: &str, args: Value) -> memsilo::Result<Value> {
    h.call(op, args).map(|r| r.value)
}

fn ok(h: &Handle, op: &str, args: Value) -> Value {
    call(h, op, args).unwrap_or_else(|e| panic!("{op}: {e}"))
}

fn entries(h: &Handle, args: Value) -> Vec<Value> {
    ok(h, "list_audit", args)["entries"].as_array().unwrap().clone()
}

fn actions(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|e| format!("{}:{}", e["action"].as_str().unwrap(), e["result"].as_str().unwrap()))
        .collect()
}

/// A tenant with an admin key, an editor key and a namespace.
struct Setup {
    tenant: String,
    admin: String,
    editor: String,
}

fn setup(root: &Handle, name: &str) -> Setup {
    let tenant =
        ok(root, "create_tenant", json!({ "name": name }))["id"].as_str().unwrap().to_owned();
    ok(root, "create_namespace", json!({ "name": format!("{name}-ns"), "tenant_id": tenant }));
    let key = |role: &str| {
        ok(root, "create_key", json!({ "name": role, "tenant_id": tenant, "role": role }))["key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    Setup { admin: key("admin"), editor: key("editor"), tenant }
}

#[test]
fn control_plane_actions_are_recorded_in_their_tenants_chain() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(ManualClock::starting_now()), None);
    let root = engine.root();
    let acme = setup(&root, "acme");
    let admin = engine.scoped(&acme.admin).unwrap().with_request_id("req-42");
    let member = ok(
        &admin,
        "add_member",
        json!({ "tenant_id": acme.tenant, "user_identifier": "ann@acme.io", "role": "viewer" }),
    );
    let member_id = member["member_id"].as_str().unwrap();
    ok(
        &admin,
        "set_memory_policy",
        json!({ "namespace": "acme-ns", "policy": { "decay_rate": 0.1 } }),
    );
    ok(&root, "update_tenant", json!({ "tenant_id": acme.tenant, "quotas": { "qps_limit": 500 } }));
    let created = ok(
        &admin,
        "create_key",
        json!({ "name": "ann", "tenant_id": acme.tenant, "member_id": member_id }),
    );
    ok(&admin, "revoke_key", json!({ "key_id": created["id"] }));
    ok(&admin, "remove_member", json!({ "tenant_id": acme.tenant, "member_id": member_id }));
    // Moving data out of or into a namespace is recorded like any other control-plane action.
    ok(&admin, "store_memory", json!({ "namespace": "acme-ns", "content": "kept out of the log" }));
    let exported = ok(&admin, "export_namespace", json!({ "namespace": "acme-ns" }));
    ok(&admin, "import_namespace", json!({ "namespace": "acme-ns", "lines": exported["lines"] }));
    ok(&admin, "delete_namespace", json!({ "name": "acme-ns" }));
    // Reads and data-plane calls that succeed are not recorded.
    ok(&admin, "list_members", json!({ "tenant_id": acme.tenant }));

    let log = entries(&root, json!({ "tenant_id": acme.tenant, "limit": 100 }));
    assert_eq!(
        actions(&log),
        [
            "create_tenant:ok",
            "create_namespace:ok",
            "create_key:ok",
            "create_key:ok",
            "add_member:ok",
            "set_memory_policy:ok",
            "update_tenant:ok",
            "create_key:ok",
            "revoke_key:ok",
            "remove_member:ok",
            "export_namespace:ok",
            "import_namespace:ok",
            "delete_namespace:ok",
        ]
    );
    let seqs: Vec<u64> = log.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=13).collect::<Vec<_>>());
    for pair in log.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"], "each entry links to the one before");
    }
    assert_eq!(log[0]["actor"]["principal"], "root");
    assert_eq!(log[0]["target"], acme.tenant.as_str());
    let add = &log[4];
    assert_eq!(add["actor"]["principal"], "member");
    assert_eq!(add["actor"]["key_prefix"], format!("msk_{}", &acme.admin[4..20]));
    assert_eq!(add["request_id"], "req-42");
    assert_eq!(add["target"], member_id);
    assert_eq!(log[8]["target"], created["id"]);
    assert_eq!(log[10]["target"], "acme-ns");
    assert_eq!(log[10]["actor"]["key_prefix"], format!("msk_{}", &acme.admin[4..20]));
    assert_eq!(log[12]["target"], "acme-ns");

    let v = ok(&root, "verify_audit", json!({ "tenant_id": acme.tenant }));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["checked"], 13);
    assert_eq!(v["head_seq"], 13);
    assert_eq!(v["head_hash"], log[12]["hash"]);

    // A failed control-plane action is recorded as failed, with its code.
    let err = call(
        &root,
        "add_member",
        json!({ "tenant_id": acme.tenant, "user_identifier": "", "role": "viewer" }),
    );
    assert_eq!(err.unwrap_err().code(), ErrorCode::InvalidArgument);
    let last = entries(&root, json!({ "tenant_id": acme.tenant, "cursor": "14" }));
    assert_eq!(actions(&last), ["add_member:failed"]);
    assert_eq!(last[0]["error"], "invalid_argument");
    assert_eq!(last[0]["status"], 400);
}

#[test]
fn refused_requests_are_recorded_with_their_key_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(ManualClock::starting_now()), None);
    let root = engine.root();
    let acme = setup(&root, "acme");
    let globex = setup(&root, "globex");
    let editor = engine.scoped(&acme.editor).unwrap();
    let editor_id = &acme.editor[4..20];

    // 403: another tenant's namespace, and an admin-only action.
    let e = call(&editor, "recall", json!({ "namespace": "globex-ns", "query": "x" })).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Forbidden);
    let e = call(
        &editor,
        "add_member",
        json!({ "tenant_id": acme.tenant, "user_identifier": "x", "role": "admin" }),
    );
    assert_eq!(e.unwrap_err().code(), ErrorCode::Forbidden);
    // 429: over the tenant's rate limit.
    ok(&root, "update_tenant", json!({ "tenant_id": acme.tenant, "quotas": { "qps_limit": 1 } }));
    let limited = (0..5).find_map(|_| {
        call(&editor, "recall", json!({ "namespace": "acme-ns", "query": "x" })).err()
    });
    assert_eq!(limited.unwrap().code(), ErrorCode::RateLimited);
    // 401: a revoked key, and a malformed one (no tenant: the instance log).
    ok(&root, "revoke_key", json!({ "key_id": editor_id }));
    assert_eq!(engine.scoped(&acme.editor).unwrap_err().code(), ErrorCode::Unauthorized);
    assert_eq!(engine.scoped("msk_nonsense").unwrap_err().code(), ErrorCode::Unauthorized);

    let refused = entries(&root, json!({ "tenant_id": acme.tenant, "actor": editor_id }));
    assert_eq!(
        actions(&refused),
        ["recall:refused", "add_member:refused", "recall:refused", "authenticate:refused"]
    );
    let statuses: Vec<u64> = refused.iter().map(|e| e["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [403, 403, 429, 401]);
    assert_eq!(refused[0]["target"], "globex-ns");
    assert_eq!(refused[0]["error"], "forbidden");
    assert_eq!(refused[2]["error"], "rate_limited");
    assert!(refused.iter().all(|e| e["actor"]["key_id"] == *editor_id));
    // Nothing of acme's probing lands in globex's log.
    let theirs = entries(&root, json!({ "tenant_id": globex.tenant }));
    assert!(theirs.iter().all(|e| e["result"] == "ok"), "{theirs:?}");

    let instance = entries(&root, json!({ "tenant_id": "instance" }));
    assert_eq!(actions(&instance), ["authenticate:refused"]);
    assert_eq!(instance[0]["actor"]["principal"], "anonymous");
    assert_eq!(instance[0]["actor"]["key_id"], Value::Null);
    assert_eq!(instance[0]["status"], 401);
    assert_eq!(ok(&root, "verify_audit", json!({ "tenant_id": "instance" }))["ok"], true);
}

#[test]
fn only_root_and_the_tenants_admins_read_its_audit() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(ManualClock::starting_now()), None);
    let root = engine.root();
    let acme = setup(&root, "acme");
    let globex = setup(&root, "globex");
    let admin = engine.scoped(&acme.admin).unwrap();
    let editor = engine.scoped(&acme.editor).unwrap();
    assert!(!entries(&admin, json!({ "tenant_id": acme.tenant })).is_empty());
    assert_eq!(ok(&admin, "verify_audit", json!({ "tenant_id": acme.tenant }))["ok"], true);
    for (who, tenant) in
        [(&admin, globex.tenant.as_str()), (&admin, "instance"), (&editor, acme.tenant.as_str())]
    {
        for op in ["list_audit", "verify_audit"] {
            let e = call(who, op, json!({ "tenant_id": tenant })).unwrap_err();
            assert_eq!(e.code(), ErrorCode::Forbidden, "{op} {tenant}");
        }
    }
    // Root learns which tenants do not exist; bad filters name their field.
    let missing = call(&root, "list_audit", json!({ "tenant_id": "no-such-tenant" }));
    assert_eq!(missing.unwrap_err().code(), ErrorCode::NotFound);
    for (args, field) in [
        (json!({ "tenant_id": acme.tenant, "limit": 0 }), "limit"),
        (json!({ "tenant_id": acme.tenant, "cursor": "abc" }), "cursor"),
        (json!({ "tenant_id": acme.tenant, "since": "yesterday" }), "since"),
        (
            json!({ "tenant_id": acme.tenant, "since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z" }),
            "since",
        ),
    ] {
        match call(&root, "list_audit", args).unwrap_err() {
            memsilo::Error::InvalidArgument { field: f, .. } => assert_eq!(f, field),
            other => panic!("{other}"),
        }
    }
    // The admin's refused reads of globex are in acme's log (the actor's tenant).
    let refused = entries(&root, json!({ "tenant_id": acme.tenant, "action": "list_audit" }));
    assert_eq!(actions(&refused), ["list_audit:refused"; 3]);
    assert_eq!(refused[0]["target"], globex.tenant.as_str());
}

#[test]
fn filters_cursor_pages_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let engine = open(dir.path(), clock.clone(), Some(30));
    let root = engine.root();
    let acme = setup(&root, "acme"); // 4 entries at day 0
    let t0 = clock.now();
    clock.advance_secs(10.0 * 86400.0);
    for i in 0..25 {
        ok(&root, "create_namespace", json!({ "name": format!("n{i}"), "tenant_id": acme.tenant }));
    }
    clock.advance_secs(10.0 * 86400.0);
    let t20 = clock.now();
    ok(&root, "update_tenant", json!({ "tenant_id": acme.tenant, "name": "acme_two" }));

    // Cursor pages walk the whole chain once, in order.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let mut args = json!({ "tenant_id": acme.tenant, "limit": 7 });
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let page = ok(&root, "list_audit", args);
        seen.extend(page["entries"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, (1..=30).collect::<Vec<_>>());
    let window = entries(&root, json!({ "tenant_id": acme.tenant, "since": t20, "limit": 100 }));
    assert_eq!(actions(&window), ["update_tenant:ok"]);
    let window = entries(
        &root,
        json!({ "tenant_id": acme.tenant, "since": t0, "until": t20, "action": "create_namespace", "limit": 100 }),
    );
    assert_eq!(window.len(), 26, "setup's namespace and the 25 later ones");

    // Past the retention of 30 days only the old prefix goes; the chain still verifies.
    clock.advance_secs(15.0 * 86400.0); // day 35: day-0 entries are past 30 days
    assert_eq!(engine.audit_maintenance().unwrap(), 4);
    let left = entries(&root, json!({ "tenant_id": acme.tenant, "limit": 100 }));
    assert_eq!(left.first().unwrap()["seq"], 5);
    assert_eq!(left.len(), 26);
    let v = ok(&root, "verify_audit", json!({ "tenant_id": acme.tenant }));
    assert_eq!((v["ok"].clone(), v["checked"].clone()), (json!(true), json!(26)), "{v}");
    ok(&root, "delete_namespace", json!({ "name": "n0" }));
    assert_eq!(ok(&root, "verify_audit", json!({ "tenant_id": acme.tenant }))["head_seq"], 31);
}

#[test]
fn no_memory_content_or_secret_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(ManualClock::starting_now()), None);
    let root = engine.root();
    let marker = "AUDIT-CONTENT-MARKER-51c2";
    let tenant =
        ok(&root, "create_tenant", json!({ "name": "acme", "settings": { "sso": marker } }))["id"]
            .as_str()
            .unwrap()
            .to_owned();
    ok(&root, "create_namespace", json!({ "name": "ns", "tenant_id": tenant }));
    let key = ok(&root, "create_key", json!({ "name": "w", "namespaces": [{ "namespace": "ns", "access": "write" }], "tenant_id": tenant }))["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let scoped = engine.scoped(&key).unwrap();
    ok(
        &scoped,
        "store_memory",
        json!({ "namespace": "ns", "content": marker, "metadata": { "m": marker } }),
    );
    let rotated = ok(&root, "rotate_key", json!({ "key_id": &key[4..20] }))["key"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(
        &root,
        "add_member",
        json!({ "tenant_id": tenant, "user_identifier": "u", "role": "viewer", "metadata": { "m": marker } }),
    );
    // Refused calls carrying content are recorded without it.
    let forbidden =
        call(&scoped, "store_memory", json!({ "namespace": "other", "content": marker }));
    assert_eq!(forbidden.unwrap_err().code(), ErrorCode::Unauthorized); // rotated: old key dead
                                                                        // One character changed (never to itself: a key ending in `x` stayed valid 1 time in 62).
    let last = if rotated.ends_with('x') { "y" } else { "x" };
    assert!(engine.scoped(&format!("{}{last}", &rotated[..rotated.len() - 1])).is_err());

    let log = ok(&root, "list_audit", json!({ "tenant_id": tenant, "limit": 100 })).to_string()
        + &ok(&root, "list_audit", json!({ "tenant_id": "instance" })).to_string();
    assert!(log.contains("rotate_key") && log.contains("store_memory"), "{log}");
    for secret in [marker, &key[21..], &rotated[21..]] {
        assert!(!log.contains(secret), "{secret} in the audit log");
    }
    drop((scoped, root));
    drop(engine);
    // The log shares the catalog's files, where the tenant's settings and the member's
    // metadata (the marker) rightly are; no key secret is anywhere in them.
    let audit_dir = dir.path().join("catalog");
    for secret in [&key[21..], &rotated[21..]] {
        assert!(
            files_containing(&audit_dir, secret.as_bytes()).is_empty(),
            "{secret} in the audit files"
        );
    }
}

/// A request whose change (and its `ok` entry) committed, but which then failed, is not left
/// as `ok` alone: a `failed` entry with its code follows, as the caller was told.
#[test]
fn a_request_that_fails_after_its_change_committed_is_recorded_as_failed() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Arc::new(ManualClock::starting_now()), None);
    let root = engine.root();
    let tenant =
        ok(&root, "create_tenant", json!({ "name": "late_fail", "isolation_mode": "physical" }));
    let tenant = tenant["id"].as_str().unwrap().to_owned();
    // A new physical namespace's files are made on first use: none are open yet.
    ok(&root, "create_namespace", json!({ "name": "phys-ns", "tenant_id": tenant }));
    let files = dir.path().join("namespaces");
    if files.exists() {
        std::fs::remove_dir_all(&files).unwrap();
    }
    std::fs::write(&files, b"not a directory").unwrap();
    // exist_ok: the catalog transaction (with its entry) commits, then describing the
    // namespace needs its files, which cannot be opened.
    let args = json!({ "name": "phys-ns", "tenant_id": tenant, "exist_ok": true });
    let e = call(&root, "create_namespace", args).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Internal, "{e}");
    let logged = entries(&root, json!({ "tenant_id": tenant }));
    let last = logged.last().unwrap();
    assert_eq!(
        (last["action"].as_str(), last["result"].as_str(), last["error"].as_str(), &last["status"]),
        (Some("create_namespace"), Some("failed"), Some("internal"), &json!(500)),
        "{:?}",
        actions(&logged)
    );
    assert_eq!(ok(&root, "verify_audit", json!({ "tenant_id": tenant }))["ok"], true);
}
