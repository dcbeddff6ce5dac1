//! Issue 14: the holes a tenant admin or an anonymous caller could use, each tried over HTTP
//! the way a hostile caller would. (Also run by `tests/reliability`, which includes this file.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};

use super::support::{key_for, Resp, TestServer, ADMIN};
use memsilo_http::ServeOptions;

fn tenant(s: &TestServer, name: &str, extra: Value) -> String {
    let mut body = json!({ "name": name });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    s.admin("POST", "/api/v1/tenants", Some(body)).expect(201)["id"].as_str().unwrap().to_owned()
}

fn member(s: &TestServer, tid: &str, user: &str, role: &str) -> String {
    let body = json!({ "user_identifier": user, "role": role });
    let r = s.admin("POST", &format!("/api/v1/tenants/{tid}/members"), Some(body));
    r.expect(201)["member_id"].as_str().unwrap().to_owned()
}

/// Creates a key with `by` (a key, or the admin key); returns (id, key text).
fn mint(s: &TestServer, by: &str, body: Value) -> (String, String) {
    let r = s.call("POST", "/v1/keys", Some(by), Some(body));
    let v = r.expect(201);
    (v["id"].as_str().unwrap().to_owned(), v["key"].as_str().unwrap().to_owned())
}

fn whoami(s: &TestServer, key: &str) -> Resp {
    s.call("GET", "/v1/whoami", Some(key), None)
}

/// Item 1: `/metrics` answers only the admin key or the metrics token, and names tenants by
/// id only (storage, errors, requests by class and latency per tenant); `/healthz` stays open.
#[test]
fn metrics_need_the_admin_key_or_the_metrics_token_and_name_no_tenant() {
    let token = "scrape-token-0123456789";
    let s = TestServer::start_with(ServeOptions {
        metrics_token: Some(token.into()),
        ..ServeOptions::default()
    });
    let tid = tenant(&s, "secret_customer_name", json!({}));
    let (_, tenant_admin) =
        mint(&s, ADMIN, json!({ "name": "ta", "tenant_id": tid, "role": "admin" }));
    s.call("GET", "/v1/namespaces/not-theirs", Some(&tenant_admin), None)
        .expect_error(403, "forbidden");
    whoami(&s, &tenant_admin).expect(200);
    whoami(&s, &tenant_admin).expect(200);

    s.call("GET", "/metrics", None, None).expect_error(401, "unauthorized");
    s.call("GET", "/metrics", Some("junk"), None).expect_error(401, "unauthorized");
    s.call("GET", "/metrics", Some(&format!("{token}x")), None).expect_error(401, "unauthorized");
    s.call("GET", "/metrics", Some(&tenant_admin), None).expect_error(403, "forbidden");
    for key in [ADMIN, token] {
        let m = s.call("GET", "/metrics", Some(key), None);
        assert_eq!(m.status, 200, "{}", m.text);
        assert!(m.text.contains(&format!("memsilo_tenant_storage_bytes{{tenant_id=\"{tid}\"}} 0")));
        assert!(!m.text.contains("secret_customer_name"), "a tenant's name is exposed: {}", m.text);
        let refused = format!(
            "memsilo_http_errors_total{{route=\"/v1/namespaces/{{name}}\",tenant_id=\"{tid}\",class=\"4xx\"}} 1"
        );
        assert!(m.text.contains(&refused), "{}", m.text);
        // Per tenant: its requests by class and their latency, by id only.
        for line in [
            format!("memsilo_tenant_requests_total{{tenant_id=\"{tid}\",class=\"2xx\"}} 2"),
            format!("memsilo_tenant_requests_total{{tenant_id=\"{tid}\",class=\"4xx\"}} 1"),
            format!("memsilo_tenant_request_duration_seconds_count{{tenant_id=\"{tid}\"}} 3"),
        ] {
            assert!(m.text.contains(&line), "{line} missing from {}", m.text);
        }
    }
    s.call("GET", "/healthz", None, None).expect(200);
}

/// Item 2: keys a tenant-admin member minted (tenant-wide or scoped) die with its membership.
#[test]
fn keys_minted_by_a_member_die_with_its_membership() {
    let s = TestServer::start();
    let tid = tenant(&s, "removal_corp", json!({}));
    let alice = member(&s, &tid, "alice@x.io", "admin");
    let (_, alice_key) =
        mint(&s, ADMIN, json!({ "name": "alice", "tenant_id": tid, "member_id": alice }));
    let (_, shadow_admin) =
        mint(&s, &alice_key, json!({ "name": "shadow", "tenant_id": tid, "role": "admin" }));
    s.call("POST", "/v1/namespaces", Some(&alice_key), Some(json!({ "name": "held" }))).expect(201);
    let (_, shadow_writer) = mint(
        &s,
        &alice_key,
        json!({ "name": "w", "namespaces": [{ "namespace": "held", "access": "write" }] }),
    );
    // The minted admin key's own mints are bound to alice too.
    let (_, grandchild) =
        mint(&s, &shadow_admin, json!({ "name": "gc", "tenant_id": tid, "role": "editor" }));
    for k in [&alice_key, &shadow_admin, &shadow_writer, &grandchild] {
        whoami(&s, k).expect(200);
    }
    s.admin("DELETE", &format!("/api/v1/tenants/{tid}/members/{alice}"), None).expect(200);
    for (what, k) in [
        ("alice's own key", &alice_key),
        ("the admin key alice minted", &shadow_admin),
        ("the scoped key alice minted", &shadow_writer),
        ("a key minted by alice's minted key", &grandchild),
    ] {
        let r = whoami(&s, k);
        assert_eq!(r.status, 401, "{what} survives its member's removal: {}", r.text);
    }
    let store = json!({ "namespace": "held", "content": "after removal" });
    s.call("POST", "/v1/memory/store", Some(&shadow_writer), Some(store))
        .expect_error(401, "unauthorized");
}

/// Item 2: a tenant admin cannot rotate (and so obtain) another member's key or a tenant key
/// it was not given; it may still revoke them, and rotate its own.
#[test]
fn a_tenant_admin_cannot_rotate_another_members_key() {
    let s = TestServer::start();
    let tid = tenant(&s, "rotation_corp", json!({}));
    let alice = member(&s, &tid, "alice@x.io", "admin");
    let bob = member(&s, &tid, "bob@x.io", "admin");
    let (_, alice_key) =
        mint(&s, ADMIN, json!({ "name": "alice", "tenant_id": tid, "member_id": alice }));
    let (bob_id, bob_key) =
        mint(&s, ADMIN, json!({ "name": "bob", "tenant_id": tid, "member_id": bob }));
    let (ops_id, ops_key) =
        mint(&s, ADMIN, json!({ "name": "ops", "tenant_id": tid, "role": "admin" }));
    for victim in [&bob_id, &ops_id] {
        let r = s.call("POST", &format!("/v1/keys/{victim}/rotate"), Some(&alice_key), None);
        r.expect_error(403, "forbidden");
        assert!(r.json.get("key").is_none(), "{}", r.text);
    }
    whoami(&s, &bob_key).expect(200);
    whoami(&s, &ops_key).expect(200);
    // Alice's own keys, and keys she minted, she may rotate.
    let (minted_id, _) =
        mint(&s, &alice_key, json!({ "name": "mine", "tenant_id": tid, "role": "viewer" }));
    let r = s.call("POST", &format!("/v1/keys/{minted_id}/rotate"), Some(&alice_key), None);
    whoami(&s, r.expect(200)["key"].as_str().unwrap()).expect(200);
    // Revoking another member's key stays possible.
    s.call("DELETE", &format!("/v1/keys/{bob_id}"), Some(&alice_key), None).expect(200);
    whoami(&s, &bob_key).expect_error(401, "unauthorized");
}

/// Item 3: changing retention is namespace administration; a write key may only read it.
#[test]
fn a_write_key_cannot_change_retention() {
    let s = TestServer::start();
    let tid = tenant(&s, "retention_corp", json!({}));
    s.admin("POST", "/v1/namespaces", Some(json!({ "name": "kept", "tenant_id": tid })))
        .expect(201);
    let writer = key_for(&s, &[("kept", "write")]);
    let reader = key_for(&s, &[("kept", "read")]);
    let (_, tenant_admin) =
        mint(&s, ADMIN, json!({ "name": "ta", "tenant_id": tid, "role": "admin" }));
    let (_, editor) = mint(&s, ADMIN, json!({ "name": "ed", "tenant_id": tid, "role": "editor" }));
    let wipe = json!({ "min_importance": 1.0, "ttl_default": 1 });
    for k in [&writer, &editor] {
        s.call("PUT", "/v1/namespaces/kept/policy", Some(k), Some(wipe.clone()))
            .expect_error(403, "forbidden");
    }
    let policy = s.call("GET", "/v1/namespaces/kept/policy", Some(&reader), None);
    assert_eq!(policy.expect(200)["min_importance"], 0.0);
    let set = s.call("PUT", "/v1/namespaces/kept/policy", Some(&tenant_admin), Some(wipe));
    assert_eq!(set.expect(200)["ttl_default"], 1);
}

/// Sends a request head announcing a 15 MB body and none of it; returns what the server
/// answers before any body byte (or panics after 20 s of silence).
fn head_only(s: &TestServer, key: &str) -> (TcpStream, String) {
    let addr = s.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST /v1/memory/store HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 15000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream
        .read(&mut buf)
        .unwrap_or_else(|e| panic!("no answer while the body was still unsent: {e}"));
    (stream, String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Item 8: the key and the tenant's in-flight limit are checked from the headers; a junk
/// key or a tenant at its limit is refused before the (large, slow) body is sent.
#[test]
fn keys_and_inflight_limits_are_checked_before_the_body_is_read() {
    let s = TestServer::start();
    let (_, answer) = head_only(&s, "junk");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("\"unauthorized\""), "{answer}");

    let tid = tenant(&s, "inflight_corp", json!({ "quotas": { "max_connections": 1 } }));
    s.admin("POST", "/v1/namespaces", Some(json!({ "name": "slow", "tenant_id": tid })))
        .expect(201);
    let key = key_for(&s, &[("slow", "write")]);
    // A first upload that never finishes holds the tenant's only slot...
    let addr = s.url.trim_start_matches("http://");
    let mut first = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /v1/memory/store HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"namespace\""
    );
    first.write_all(head.as_bytes()).unwrap();
    // ...(given a second to be admitted)...
    std::thread::sleep(Duration::from_secs(1));
    // ...so the next one is refused at once, its body unsent.
    let (_, answer) = head_only(&s, &key);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("max_connections 1"), "{answer}");
    drop(first);
}

/// Item 6: `DELETE .../graph/entities/{name}?type=` deletes only an entity of that type; a
/// name several types share needs the type.
#[test]
fn deleting_an_entity_respects_its_type() {
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({ "name": "g" }))).expect(201);
    let add = |name: &str, ty: &str| {
        let body = json!({ "name": name, "type": ty });
        let r = s.admin("POST", "/v1/namespaces/g/graph/entities", Some(body));
        r.expect(201)["id"].as_str().unwrap().to_owned()
    };
    let (org, person, bob) = (add("Acme", "org"), add("Acme", "person"), add("Bob", "person"));
    let rel = json!({ "source": bob, "target": org, "type": "works_at" });
    s.admin("POST", "/v1/namespaces/g/graph/relations", Some(rel)).expect(201);

    s.admin("DELETE", "/v1/namespaces/g/graph/entities/Acme?type=place", None)
        .expect_error(404, "not_found");
    let ambiguous = s.admin("DELETE", "/v1/namespaces/g/graph/entities/Acme", None);
    let msg = ambiguous.expect_error(400, "invalid_argument")["message"].as_str().unwrap();
    assert!(msg.contains("org") && msg.contains("person"), "{msg}");
    let gone = s.admin("DELETE", "/v1/namespaces/g/graph/entities/Acme?type=person", None);
    assert_eq!(gone.expect(200)["id"], person.as_str());
    let left = s.admin("GET", "/v1/namespaces/g/graph/entities/Acme", None);
    assert_eq!(left.expect(200)["id"], org.as_str());
    let around = s.admin("GET", &format!("/v1/namespaces/g/graph/neighbors?entity={org}"), None);
    assert_eq!(around.expect(200)["relations"].as_array().unwrap().len(), 1, "{}", around.text);
}

fn assert_own_quota_error(r: &Resp, child: &str, parent: &str, quota: &str) {
    let body = r.expect_error(403, "quota_exceeded");
    assert_eq!(body["tenant_id"], child, "{}", r.text);
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(quota) && message.contains(child), "{message}");
    assert!(!message.contains(parent), "a child is told about its parent: {message}");
}

/// Items 7 and 11: a child's namespaces, members, storage, requests and connections count
/// against its parent's quotas; the child is told of its own applicable limit, never of its
/// parent's id or usage.
#[test]
fn a_childs_usage_counts_against_its_parent_and_errors_name_the_child() {
    let s = TestServer::start();
    let quotas = json!({ "max_namespaces": 1, "max_members": 1, "storage_quota_bytes": 60_000 });
    let parent = tenant(&s, "parent_co", json!({ "quotas": quotas }));
    let child = tenant(&s, "child_co", json!({ "parent_id": parent }));
    let (_, child_admin) =
        mint(&s, ADMIN, json!({ "name": "ca", "tenant_id": child, "role": "admin" }));

    let create = |name: &str| {
        s.call("POST", "/v1/namespaces", Some(&child_admin), Some(json!({ "name": name })))
    };
    create("child-1").expect(201);
    let r = create("child-2");
    assert_own_quota_error(&r, &child, &parent, "max_namespaces");
    assert_eq!(
        r.json["message"],
        format!("max_namespaces quota exceeded for tenant {child}: limit 1, would be 2")
    );

    member(&s, &child, "a@x.io", "viewer");
    let body = json!({ "user_identifier": "b@x.io", "role": "viewer" });
    let r =
        s.call("POST", &format!("/api/v1/tenants/{child}/members"), Some(&child_admin), Some(body));
    assert_own_quota_error(&r, &child, &parent, "max_members");

    let mut refused = None;
    for i in 0..40 {
        let body =
            json!({ "namespace": "child-1", "content": format!("{i} {}", "y".repeat(5_000)) });
        let r = s.call("POST", "/v1/memory/store", Some(&child_admin), Some(body));
        if r.status != 201 {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("the parent's storage quota never bound");
    assert_own_quota_error(&r, &child, &parent, "storage_quota_bytes");

    // Connections: the parent allows one request in flight across its subtree.
    let quotas = json!({ "quotas": { "max_connections": 1 } });
    s.admin("PUT", &format!("/api/v1/tenants/{parent}"), Some(quotas)).expect(200);
    let addr = s.url.trim_start_matches("http://");
    let mut slow_upload = TcpStream::connect(addr).unwrap();
    let request_head = format!(
        "POST /v1/memory/store HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {child_admin}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    slow_upload.write_all(request_head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let (_, answer) = head_only(&s, &child_admin);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains(&child) && !answer.contains(&parent), "{answer}");
    drop(slow_upload);

    // Requests per second: the child's draw from the parent's bucket too.
    let quotas = json!({ "quotas": { "qps_limit": 2, "max_connections": 10 } });
    s.admin("PUT", &format!("/api/v1/tenants/{parent}"), Some(quotas)).expect(200);
    // Eight requests at once (under max_connections), so a slow machine cannot spread them
    // below the rate.
    let answers: Vec<_> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| s.call("GET", "/v1/namespaces", Some(&child_admin), None)))
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let limited = answers
        .into_iter()
        .find(|r| r.status == 429)
        .expect("the parent's qps_limit never bound its child");
    assert_eq!(limited.json["tenant_id"], child.as_str(), "{}", limited.text);
    assert!(!limited.text.contains(&parent), "{}", limited.text);
}

/// Item 7 (compute): a tenant's heavy operations (recalls, embedding, batch stores) run at
/// most `compute_quota_cores` at once; a burst beyond that waits up to the engine's
/// `compute_wait` (zero here) and is then refused with 429 `rate_limited` naming the quota,
/// while another tenant's recalls go on unrefused.
#[test]
fn compute_quota_cores_bounds_a_tenants_concurrent_heavy_work() {
    let engine = memsilo::Options { compute_wait: Duration::ZERO, ..memsilo::Options::default() };
    let s = TestServer::start_engine(engine, ServeOptions::default());
    let quotas = json!({ "quotas": {
        "compute_quota_cores": 1.0, "qps_limit": 100_000, "max_connections": 100 } });
    let busy = tenant(&s, "busy_co", quotas.clone());
    let quiet = tenant(&s, "quiet_co", quotas);
    let setup = |tid: &str, ns: &str| {
        let (_, key) = mint(&s, ADMIN, json!({ "name": ns, "tenant_id": tid, "role": "admin" }));
        s.call("POST", "/v1/namespaces", Some(&key), Some(json!({ "name": ns }))).expect(201);
        // Enough memories that a recall is real work.
        for chunk in 0..4 {
            let memories: Vec<Value> = (0..1000)
                .map(|i| json!({ "content": format!("note {chunk}-{i} on topic {} and {}", i % 37, i % 11) }))
                .collect();
            let body = json!({ "namespace": ns, "memories": memories });
            s.call("POST", "/v1/memory/store_batch", Some(&key), Some(body)).expect(201);
        }
        key
    };
    let busy_key = setup(&busy, "busy-ns");
    let quiet_key = setup(&quiet, "quiet-ns");
    let recall = |key: &str, ns: &str| {
        let body = json!({ "namespace": ns, "query": "topic 7 and 3", "top_k": 20 });
        s.call("POST", "/v1/memory/recall", Some(key), Some(body))
    };
    // Eight recalls at once by one tenant, while the other tenant recalls too.
    let burst = || -> (Vec<Resp>, Vec<Resp>) {
        std::thread::scope(|scope| {
            let quiet_calls =
                scope.spawn(|| (0..3).map(|_| recall(&quiet_key, "quiet-ns")).collect());
            let calls: Vec<_> =
                (0..8).map(|_| scope.spawn(|| recall(&busy_key, "busy-ns"))).collect();
            let busy = calls.into_iter().map(|c| c.join().unwrap()).collect();
            (busy, quiet_calls.join().unwrap())
        })
    };
    let mut refused = None;
    for _ in 0..10 {
        let (busy_answers, quiet_answers) = burst();
        for r in &quiet_answers {
            r.expect(200);
        }
        for r in &busy_answers {
            assert!(r.status == 200 || r.status == 429, "{}", r.text);
        }
        if let Some(r) = busy_answers.into_iter().find(|r| r.status == 429) {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("eight concurrent recalls ran under a one-core compute quota");
    assert_eq!(r.json["error"], "rate_limited", "{}", r.text);
    assert_eq!(r.json["tenant_id"], busy.as_str(), "{}", r.text);
    let message = r.json["message"].as_str().unwrap();
    assert!(message.contains("compute_quota_cores 1"), "{message}");
    assert_eq!(r.header("retry-after"), Some("1"));

    // With sixteen cores' worth the same burst runs whole.
    let quotas = json!({ "quotas": { "compute_quota_cores": 16.0 } });
    s.admin("PUT", &format!("/api/v1/tenants/{busy}"), Some(quotas)).expect(200);
    let (busy_answers, _) = burst();
    for r in &busy_answers {
        r.expect(200);
    }
}
