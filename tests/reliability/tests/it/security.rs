//! Security over HTTP: raw secrets never reach the disk or the server's logs; unknown and
//! forbidden namespaces are indistinguishable (status, body and timing); admin operations
//! refuse non-admin keys; a key for a deleted namespace stops working at once.

use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};

use crate::http::{self, call, Response, ServerProcess, ADMIN_KEY};

fn ok(resp: Option<Response>, what: &str) -> Value {
    let resp = resp.unwrap_or_else(|| panic!("{what}: cannot be encoded"));
    assert!(
        (200..300).contains(&resp.status),
        "{what}: HTTP {} {}",
        resp.status,
        String::from_utf8_lossy(&resp.body)
    );
    resp.json()
}

/// Files under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_containing(&p, needle));
        } else if std::fs::read(&p).unwrap_or_default().windows(needle.len()).any(|w| w == needle) {
            out.push(p.display().to_string());
        }
    }
    out
}

/// The secret part of a key (`msk_<id>_<secret><check>`).
fn secret_of(key: &str) -> &str {
    let rest = key.rsplit('_').next().unwrap();
    &rest[..rest.len().saturating_sub(6)]
}

#[test]
fn raw_secrets_reach_neither_the_disk_nor_the_server_logs() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), None, &["--log-level", "debug"]);
    let addr = server.addr;
    let printed = server.output.lock().unwrap().clone();
    let admin = printed
        .lines()
        .find_map(|l| l.split("admin key: ").nth(1))
        .expect("the generated admin key is printed")
        .trim()
        .to_owned();
    let tenant =
        ok(call(addr, &admin, "create_tenant", &json!({ "name": "secret_corp" })), "create tenant");
    let tid = tenant["id"].as_str().unwrap();
    let member = ok(
        call(
            addr,
            &admin,
            "add_member",
            &json!({ "tenant_id": tid, "user_identifier": "m@x.io", "role": "editor" }),
        ),
        "add member",
    );
    ok(
        call(addr, &admin, "create_namespace", &json!({ "name": "secret-ns", "tenant_id": tid })),
        "create namespace",
    );
    let mut secrets: Vec<String> = Vec::new();
    let mut keys = Vec::new();
    for args in [
        json!({ "name": "ns-key", "namespaces": [{ "namespace": "secret-ns", "access": "write" }] }),
        json!({ "name": "tenant-admin", "tenant_id": tid, "role": "admin" }),
        json!({ "name": "member-key", "tenant_id": tid, "member_id": member["member_id"] }),
    ] {
        let k = ok(call(addr, &admin, "create_key", &args), "create key");
        secrets.push(k["key"].as_str().unwrap().to_owned());
        keys.push((k["id"].as_str().unwrap().to_owned(), k["key"].as_str().unwrap().to_owned()));
    }
    // Every key is used (good and bad requests), one is rotated, one revoked.
    for (_, key) in &keys {
        ok(
            call(
                addr,
                key,
                "store_memory",
                &json!({ "namespace": "secret-ns", "content": "uses the key" }),
            ),
            "store",
        );
        ok(
            call(addr, key, "recall", &json!({ "namespace": "secret-ns", "query": "key" })),
            "recall",
        );
        let _ = call(addr, key, "recall", &json!({ "namespace": "other-ns", "query": "key" }));
        let _ = http::send(
            addr,
            "GET",
            "/v1/whoami",
            &[("Authorization", &format!("Bearer {key}x"))],
            b"",
        );
    }
    let rotated = ok(call(addr, &admin, "rotate_key", &json!({ "key_id": keys[0].0 })), "rotate");
    let new_secret = rotated["key"].as_str().expect("rotation returns the new key").to_owned();
    ok(
        call(addr, &new_secret, "recall", &json!({ "namespace": "secret-ns", "query": "key" })),
        "recall with the rotated key",
    );
    assert_eq!(
        call(addr, &keys[0].1, "whoami", &json!({})).unwrap().status,
        401,
        "the old secret still works after rotation"
    );
    secrets.push(new_secret);
    ok(call(addr, &admin, "revoke_key", &json!({ "key_id": keys[1].0 })), "revoke");
    let logs = server.stop();
    let mut leaks = Vec::new();
    for s in &secrets {
        for needle in [s.as_str(), secret_of(s)] {
            let files = files_containing(data.path(), needle.as_bytes());
            if !files.is_empty() {
                leaks.push(format!("{needle} on disk in {files:?}"));
            }
            if logs.contains(needle) {
                leaks.push(format!("{needle} in the server's output"));
            }
        }
    }
    let admin_prints = logs.matches(admin.as_str()).count();
    assert_eq!(
        admin_prints, 1,
        "the generated admin key must be printed exactly once, at generation"
    );
    let admin_files = files_containing(data.path(), admin.as_bytes());
    assert!(admin_files.is_empty(), "the admin key is on disk: {admin_files:?}");
    eprintln!(
        "secrets checked: {} keys (+ the admin key) over {} bytes of server output",
        secrets.len(),
        logs.len()
    );
    assert!(leaks.is_empty(), "raw secrets leaked:\n{}", leaks.join("\n"));
    // A restart does not print the admin key again.
    let again = ServerProcess::start(data.path(), None, &[]);
    let out = again.stop();
    assert!(!out.contains(&admin), "the admin key was printed again on restart");
}

/// Each request's status and body, with the namespace name replaced by `{ns}`.
fn normalized(resp: &Response, name: &str) -> (u16, String) {
    (resp.status, String::from_utf8_lossy(&resp.body).replace(name, "{ns}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn unknown_and_forbidden_namespaces_look_the_same_in_status_body_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let engine = memsilo::Engine::open(
        dir.path(),
        memsilo::Options { background: false, ..Default::default() },
    )
    .unwrap();
    engine.set_admin_key(ADMIN_KEY).unwrap();
    let server = http::serve(&engine);
    let addr = server.addr();
    ok(call(addr, ADMIN_KEY, "create_namespace", &json!({ "name": "mine" })), "ns");
    ok(call(addr, ADMIN_KEY, "create_namespace", &json!({ "name": "theirs-ab12" })), "ns");
    for i in 0..50 {
        ok(
            call(
                addr,
                ADMIN_KEY,
                "store_memory",
                &json!({ "namespace": "theirs-ab12", "content": format!("their secret {i}") }),
            ),
            "store",
        );
    }
    ok(
        call(
            addr,
            ADMIN_KEY,
            "add_entity",
            &json!({ "namespace": "theirs-ab12", "name": "Alice" }),
        ),
        "entity",
    );
    let key = ok(
        call(
            addr,
            ADMIN_KEY,
            "create_key",
            &json!({ "name": "k", "namespaces": [{ "namespace": "mine", "access": "write" }] }),
        ),
        "key",
    );
    let key = key["key"].as_str().unwrap().to_owned();
    let (exists, missing) = ("theirs-ab12", "ghost-zz99");
    let probes = |ns: &str| -> Vec<(&'static str, Value)> {
        vec![
            ("recall", json!({ "namespace": ns, "query": "secret" })),
            ("store_memory", json!({ "namespace": ns, "content": "x" })),
            ("get_namespace", json!({ "name": ns })),
            ("delete_namespace", json!({ "name": ns })),
            ("get_memory_policy", json!({ "namespace": ns })),
            ("batch_forget", json!({ "namespace": ns, "tags": ["a"] })),
            ("neighbors", json!({ "namespace": ns, "entity": "Alice" })),
            ("add_entity", json!({ "namespace": ns, "name": "Bob" })),
            (
                "get_memory",
                json!({ "namespace": ns, "id": "01a208b8-4926-764f-81ba-ab8dc8698bef" }),
            ),
            ("recall", json!({ "agent_id": ns, "query": "secret" })),
        ]
    };
    let mut differences = Vec::new();
    for ((op, a), (_, b)) in probes(exists).into_iter().zip(probes(missing)) {
        let ra = normalized(&call(addr, &key, op, &a).unwrap(), exists);
        let rb = normalized(&call(addr, &key, op, &b).unwrap(), missing);
        if ra != rb || ra.0 != 403 {
            differences.push(format!("{op}: existing {ra:?} vs missing {rb:?}"));
        }
    }
    assert!(differences.is_empty(), "answers differ:\n{}", differences.join("\n"));
    // Timing: interleaved requests, medians compared with a generous tolerance.
    let (mut t_exists, mut t_missing) = (Vec::new(), Vec::new());
    let n = 500;
    let mut rng =
        memsilo_reliability::Rng::new(memsilo_reliability::seed_from_env("MEMSILO_TIMING_SEED", 5));
    for _ in 0..n {
        // Each pair in a random order, so neither side always pays for going first.
        let first_exists = rng.chance(0.5);
        for side in [first_exists, !first_exists] {
            let ns = if side { exists } else { missing };
            let started = Instant::now();
            let r =
                call(addr, &key, "recall", &json!({ "namespace": ns, "query": "secret" })).unwrap();
            let took = started.elapsed().as_secs_f64() * 1e6;
            assert_eq!(r.status, 403);
            if side {
                t_exists.push(took);
            } else {
                t_missing.push(took);
            }
        }
    }
    let (me, mm) = (median(t_exists), median(t_missing));
    eprintln!("forbidden-namespace timing over {n} requests each: existing median {me:.0} µs, missing median {mm:.0} µs (ratio {:.2})", me / mm);
    assert!(
        me / mm < 1.5 && mm / me < 1.5 || (me - mm).abs() < 300.0,
        "timing reveals which namespaces exist: {me:.0} µs vs {mm:.0} µs"
    );
}

#[test]
fn admin_operations_refuse_keys_that_are_not_admin() {
    let dir = tempfile::tempdir().unwrap();
    let engine = memsilo::Engine::open(
        dir.path(),
        memsilo::Options { background: false, ..Default::default() },
    )
    .unwrap();
    engine.set_admin_key(ADMIN_KEY).unwrap();
    let server = http::serve(&engine);
    let addr = server.addr();
    let a = ok(call(addr, ADMIN_KEY, "create_tenant", &json!({ "name": "tenant_a" })), "tenant a");
    let b = ok(call(addr, ADMIN_KEY, "create_tenant", &json!({ "name": "tenant_b" })), "tenant b");
    let (ta, tb) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    ok(
        call(addr, ADMIN_KEY, "create_namespace", &json!({ "name": "a-ns", "tenant_id": ta })),
        "ns a",
    );
    ok(
        call(addr, ADMIN_KEY, "create_namespace", &json!({ "name": "b-ns", "tenant_id": tb })),
        "ns b",
    );
    let mb = ok(
        call(
            addr,
            ADMIN_KEY,
            "add_member",
            &json!({ "tenant_id": tb, "user_identifier": "b@b.io", "role": "admin" }),
        ),
        "member b",
    );
    let key = |args: Value| ok(call(addr, ADMIN_KEY, "create_key", &args), "key");
    let b_key =
        key(json!({ "name": "b-key", "namespaces": [{ "namespace": "b-ns", "access": "write" }] }));
    let b_key_id = b_key["id"].as_str().unwrap();
    let callers = [
        (
            "namespace key of a",
            key(
                json!({ "name": "a-ns-key", "namespaces": [{ "namespace": "a-ns", "access": "write" }] }),
            ),
        ),
        ("tenant admin of a", key(json!({ "name": "a-admin", "tenant_id": ta, "role": "admin" }))),
        (
            "tenant editor of a",
            key(json!({ "name": "a-editor", "tenant_id": ta, "role": "editor" })),
        ),
        (
            "tenant viewer of a",
            key(json!({ "name": "a-viewer", "tenant_id": ta, "role": "viewer" })),
        ),
    ];
    let before = memsilo_reliability::snapshot(&engine.root()).unwrap();
    let mut failures = Vec::new();
    let mut tried = 0;
    for (who, k) in &callers {
        let k = k["key"].as_str().unwrap();
        let attempts = vec![
            ("create_tenant", json!({ "name": "rogue_tenant" })),
            ("create_tenant", json!({ "name": "rogue_child", "parent_id": tb })),
            ("get_tenant", json!({ "tenant_id": tb })),
            ("update_tenant", json!({ "tenant_id": tb, "status": "suspended" })),
            ("update_tenant", json!({ "tenant_id": tb, "quotas": { "qps_limit": 1 } })),
            ("delete_tenant", json!({ "tenant_id": tb })),
            (
                "add_member",
                json!({ "tenant_id": tb, "user_identifier": "rogue@x.io", "role": "admin" }),
            ),
            ("list_members", json!({ "tenant_id": tb })),
            ("remove_member", json!({ "tenant_id": tb, "member_id": mb["member_id"] })),
            ("create_namespace", json!({ "name": "rogue-ns", "tenant_id": tb })),
            ("get_namespace", json!({ "name": "b-ns" })),
            ("delete_namespace", json!({ "name": "b-ns" })),
            ("set_memory_policy", json!({ "namespace": "b-ns", "policy": { "decay_rate": 5.0 } })),
            (
                "create_key",
                json!({ "name": "rogue", "namespaces": [{ "namespace": "b-ns", "access": "write" }] }),
            ),
            ("create_key", json!({ "name": "rogue", "tenant_id": tb, "role": "admin" })),
            ("revoke_key", json!({ "key_id": b_key_id })),
            ("rotate_key", json!({ "key_id": b_key_id })),
        ];
        for (op, args) in attempts {
            tried += 1;
            let r = call(addr, k, op, &args).unwrap();
            if ![401, 403, 404].contains(&r.status) {
                failures.push(format!(
                    "{who}: {op} {args} → HTTP {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
            }
        }
        // Listing shows nothing of tenant b.
        for op in ["list_tenants", "list_keys", "list_namespaces"] {
            tried += 1;
            let r = call(addr, k, op, &json!({})).unwrap();
            let text = String::from_utf8_lossy(&r.body);
            if r.status < 400
                && (text.contains(tb) || text.contains("b-ns") || text.contains(b_key_id))
            {
                failures.push(format!("{who}: {op} shows tenant b: {text}"));
            }
        }
    }
    assert_eq!(
        memsilo_reliability::snapshot(&engine.root()).unwrap(),
        before,
        "a refused admin operation changed something"
    );
    // Tenant b's key still works: the attempted revoke/rotate did nothing.
    ok(
        call(
            addr,
            b_key["key"].as_str().unwrap(),
            "recall",
            &json!({ "namespace": "b-ns", "query": "x" }),
        ),
        "b's key",
    );
    eprintln!("admin operations tried with non-admin keys: {tried}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_key_for_a_deleted_namespace_stops_working_at_once_and_never_reaches_a_namesake() {
    let dir = tempfile::tempdir().unwrap();
    let engine = memsilo::Engine::open(
        dir.path(),
        memsilo::Options { background: false, ..Default::default() },
    )
    .unwrap();
    engine.set_admin_key(ADMIN_KEY).unwrap();
    let server = http::serve(&engine);
    let addr = server.addr();
    ok(call(addr, ADMIN_KEY, "create_namespace", &json!({ "name": "ephemeral" })), "ns");
    let key = ok(
        call(
            addr,
            ADMIN_KEY,
            "create_key",
            &json!({ "name": "k", "namespaces": [{ "namespace": "ephemeral", "access": "write" }] }),
        ),
        "key",
    );
    let key = key["key"].as_str().unwrap().to_owned();
    let remote = memsilo_http::Client::connect(&server.url(), &key).unwrap();
    remote
        .call("store_memory", json!({ "namespace": "ephemeral", "content": "before the deletion" }))
        .unwrap();
    remote.call("recall", json!({ "namespace": "ephemeral", "query": "deletion" })).unwrap();
    ok(call(addr, ADMIN_KEY, "delete_namespace", &json!({ "name": "ephemeral" })), "delete");
    // The very next requests (same client, same connection pool) are refused.
    for (op, args) in [
        ("recall", json!({ "namespace": "ephemeral", "query": "deletion" })),
        ("store_memory", json!({ "namespace": "ephemeral", "content": "after" })),
        ("store_memory", json!({ "content": "after, no namespace named" })),
    ] {
        let e = remote.call(op, args).expect_err("a key for a deleted namespace still works");
        assert!(
            matches!(
                e.code(),
                memsilo::ErrorCode::Forbidden
                    | memsilo::ErrorCode::Unauthorized
                    | memsilo::ErrorCode::InvalidArgument
            ),
            "{op}: {e}"
        );
    }
    // A new namespace with the same name is a different namespace: the old key has no access.
    ok(call(addr, ADMIN_KEY, "create_namespace", &json!({ "name": "ephemeral" })), "namesake");
    ok(
        call(
            addr,
            ADMIN_KEY,
            "store_memory",
            &json!({ "namespace": "ephemeral", "content": "the namesake's memory" }),
        ),
        "namesake store",
    );
    let e = remote
        .call("recall", json!({ "namespace": "ephemeral", "query": "memory" }))
        .expect_err("the old key reaches the namesake");
    assert!(
        matches!(e.code(), memsilo::ErrorCode::Forbidden | memsilo::ErrorCode::Unauthorized),
        "{e}"
    );
    assert!(remote
        .call("store_memory", json!({ "namespace": "ephemeral", "content": "x" }))
        .is_err());
}
