//! Dakera's shapes over HTTP: which client gets which shape on a shared path, and the
//! Dakera-only routes (memory policy, namespace keys) mapped onto the same core operations.

use serde_json::{json, Value};

use crate::support::{key_for, TestServer, ADMIN};

const DAKERA_UA: (&str, &str) = ("User-Agent", "dakera-py/0.14.1");

fn dakera(
    s: &TestServer,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> crate::support::Resp {
    let body = body.map(|b| b.to_string());
    s.with_headers(method, path, Some(key), body.as_deref(), &[DAKERA_UA])
}

#[test]
fn a_shared_path_answers_each_client_in_its_own_shape() {
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "tenant-a"}))).expect(201);
    let plain = s.admin("GET", "/v1/namespaces", None);
    assert!(plain.expect(200).is_array(), "{}", plain.text);
    assert_eq!(plain.header("x-total-count"), Some("1"));
    let d = dakera(&s, "GET", "/v1/namespaces", ADMIN, None);
    let d = d.expect(200);
    assert_eq!(d["namespaces"][0]["name"], "tenant-a");
    assert_eq!(d["namespaces"][0]["vector_count"], 0);
    assert_eq!(d["total_count"], 1);
    // Any client may ask for Dakera's shapes with the header.
    let h = s.with_headers(
        "GET",
        "/v1/namespaces",
        Some(ADMIN),
        None,
        &[("X-Memsilo-Dialect", "dakera")],
    );
    assert!(h.expect(200)["namespaces"].is_array());

    // Dakera's namespace creation names the dimension `dimension`.
    let created = dakera(
        &s,
        "POST",
        "/v1/namespaces",
        ADMIN,
        Some(json!({"name": "tenant-b", "dimension": 4})),
    );
    assert_eq!(created.expect(201)["dimensions"], 4);
    assert_eq!(created.json["dimension"], 4);
    let refused = dakera(
        &s,
        "POST",
        "/v1/namespaces",
        ADMIN,
        Some(json!({"name": "tenant-c", "distance": "cosine"})),
    );
    assert_eq!(refused.expect_dakera_error(400, "INVALID_REQUEST")["field"], "distance");

    // Recall: a bare array for memsilo's clients, {"memories": [...]} for Dakera's.
    let key = key_for(&s, &[("tenant-a", "write")]);
    s.call(
        "POST",
        "/v1/memory/store",
        Some(&key),
        Some(json!({"namespace": "tenant-a", "content": "Omega launches in September"})),
    )
    .expect(201);
    let q = json!({"agent_id": "tenant-a", "query": "Omega launch", "top_k": 3});
    let plain = s.call("POST", "/v1/memory/recall", Some(&key), Some(q.clone()));
    assert_eq!(plain.expect(200)[0]["content"], "Omega launches in September");
    let d = dakera(&s, "POST", "/v1/memory/recall", &key, Some(q));
    assert_eq!(d.expect(200)["memories"][0]["content"], "Omega launches in September");
    // The scope is the same for both: another namespace is 403 naming it.
    let other = dakera(
        &s,
        "POST",
        "/v1/memory/recall",
        &key,
        Some(json!({"agent_id": "tenant-b", "query": "x"})),
    );
    assert_eq!(
        other.expect_dakera_error(403, "NAMESPACE_ACCESS_DENIED")["error"],
        "Key not authorized for namespace tenant-b"
    );
}

/// A Dakera client reads an error as `{"error": <message>, "code": <Dakera ErrorCode>,
/// "details"}` (its SDK's `error_from_response`); every other client keeps API.md's body.
#[test]
fn a_dakera_client_gets_errors_in_dakeras_shape_and_others_in_ours() {
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "tenant-a"}))).expect(201);
    let key = key_for(&s, &[("tenant-a", "write")]);
    let store = json!({"namespace": "tenant-b", "content": "x"});

    let ours = s.call("POST", "/v1/memory/store", Some(&key), Some(store.clone()));
    assert_eq!(
        *ours.expect_error(403, "forbidden"),
        json!({
            "error": "forbidden",
            "message": "Key not authorized for namespace tenant-b",
            "code": 403,
            "namespace": "tenant-b",
        })
    );
    let theirs = dakera(&s, "POST", "/v1/memory/store", &key, Some(store));
    assert_eq!(
        *theirs.expect_dakera_error(403, "NAMESPACE_ACCESS_DENIED"),
        json!({
            "error": "Key not authorized for namespace tenant-b",
            "code": "NAMESPACE_ACCESS_DENIED",
            "details": "Key not authorized for namespace tenant-b",
            "memsilo_error": "forbidden",
            "namespace": "tenant-b",
        })
    );

    // What was not found picks the code; the dialect header asks for the shape too.
    let missing = dakera(&s, "GET", "/v1/namespaces/nope/memory_policy", ADMIN, None);
    assert_eq!(
        missing.expect_dakera_error(404, "NAMESPACE_NOT_FOUND")["error"],
        "Namespace not found: nope"
    );
    let memory = dakera(&s, "GET", "/v1/memory/get/no-such-memory?agent_id=tenant-a", &key, None);
    assert_eq!(
        memory.expect_dakera_error(404, "VECTOR_NOT_FOUND")["error"],
        "Memory not found: no-such-memory"
    );
    let route = s.with_headers(
        "GET",
        "/v1/no-such-route",
        Some(ADMIN),
        None,
        &[("X-Memsilo-Dialect", "dakera")],
    );
    route.expect_dakera_error(404, "ROUTE_NOT_FOUND");
    let unauthenticated = s.with_headers("GET", "/v1/namespaces", None, None, &[DAKERA_UA]);
    assert!(unauthenticated.expect_dakera_error(401, "AUTHENTICATION_REQUIRED")["error"]
        .as_str()
        .is_some_and(|m| m.starts_with("missing Authorization header")));
    // Without a Dakera user agent the same 404 reads as before.
    s.admin("GET", "/v1/namespaces/nope/memory_policy", None).expect_error(404, "not_found");
}

#[test]
fn memory_policy_maps_what_memsilo_can_express_and_notes_the_rest() {
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "ns"}))).expect(201);
    let got = s.admin("GET", "/v1/namespaces/ns/memory_policy", None);
    let got = got.expect(200);
    assert_eq!(got["episodic_ttl_seconds"], Value::Null);
    assert_eq!(got["semantic_decay"], "flat");

    let mut uniform = json!({"dedup_on_store": false, "consolidation_enabled": false, "spaced_repetition_factor": 1.0});
    for t in ["working", "episodic", "semantic", "procedural"] {
        uniform[format!("{t}_ttl_seconds")] = json!(3600);
        uniform[format!("{t}_decay")] = json!("flat");
    }
    let set = s.admin("PUT", "/v1/namespaces/ns/memory_policy", Some(uniform.clone()));
    let set = set.expect(200);
    assert_eq!(set["procedural_ttl_seconds"], 3600);
    assert!(set.get("warnings").is_none(), "{set}");
    // The native policy route sees the same policy: one operation behind both.
    assert_eq!(s.admin("GET", "/v1/namespaces/ns/policy", None).expect(200)["ttl_default"], 3600);

    // Dakera's defaults differ per type: not applied, and said so.
    uniform["working_ttl_seconds"] = json!(14_400);
    uniform["dedup_on_store"] = json!(true);
    let partial = s.admin("PUT", "/v1/namespaces/ns/memory_policy", Some(uniform));
    let partial = partial.expect(200);
    assert_eq!(partial["warnings"].as_array().unwrap().len(), 2, "{partial}");
    assert_eq!(partial["working_ttl_seconds"], Value::Null);
    let bad = s.admin("PUT", "/v1/namespaces/ns/memory_policy", Some(json!({"decay_rate": -1})));
    bad.expect_error(400, "invalid_argument");
    s.admin("GET", "/v1/namespaces/nope/memory_policy", None).expect_error(404, "not_found");
}

#[test]
fn namespace_keys_are_created_listed_and_revoked_under_their_namespace() {
    let s = TestServer::start();
    for ns in ["tenant-a", "tenant-b"] {
        s.admin("POST", "/v1/namespaces", Some(json!({"name": ns}))).expect(201);
    }
    let created = s.admin(
        "POST",
        "/v1/namespaces/tenant-a/keys",
        Some(json!({"name": "a-backend", "scope": "write", "expires_in_days": 30})),
    );
    let created = created.expect(201).clone();
    let (key, key_id) = (created["key"].as_str().unwrap(), created["key_id"].as_str().unwrap());
    assert_eq!(created["namespaces"], json!(["tenant-a"]));
    assert!(
        created["created_at"].is_i64()
            && created["expires_at"].as_i64().unwrap() > created["created_at"].as_i64().unwrap()
    );
    s.admin("POST", "/v1/namespaces/tenant-a/keys", Some(json!({"name": "x", "scope": "admin"})))
        .expect_error(400, "invalid_argument");
    let b_key = key_for(&s, &[("tenant-b", "read")]);

    // The key works on its namespace only.
    s.call(
        "POST",
        "/v1/memory/store",
        Some(key),
        Some(json!({"namespace": "tenant-a", "content": "x"})),
    )
    .expect(201);
    s.call(
        "POST",
        "/v1/memory/store",
        Some(key),
        Some(json!({"namespace": "tenant-b", "content": "x"})),
    )
    .expect_error(403, "forbidden");

    let listed = s.admin("GET", "/v1/namespaces/tenant-a/keys", None);
    let listed = listed.expect(200);
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["keys"][0]["key_id"], key_id);
    assert!(listed["keys"][0].get("key").is_none());
    // A scoped key manages no keys.
    s.call("GET", "/v1/namespaces/tenant-a/keys", Some(key), None).expect_error(403, "forbidden");

    // Revoking under another namespace finds no such key; under its own it works at once.
    let b_id = s.admin("GET", "/v1/namespaces/tenant-b/keys", None).expect(200)["keys"][0]
        ["key_id"]
        .clone();
    s.admin("DELETE", &format!("/v1/namespaces/tenant-a/keys/{}", b_id.as_str().unwrap()), None)
        .expect_error(404, "not_found");
    s.call("GET", "/v1/whoami", Some(&b_key), None).expect(200);
    let revoked = s.admin("DELETE", &format!("/v1/namespaces/tenant-a/keys/{key_id}"), None);
    assert_eq!(revoked.expect(200)["success"], true);
    s.call("GET", "/v1/whoami", Some(key), None).expect_error(401, "unauthorized");
    assert_eq!(s.admin("GET", "/v1/namespaces/tenant-a/keys", None).expect(200)["total"], 0);
}
