//! Namespaces, policies and keys over HTTP.

use serde_json::json;

use crate::support::TestServer;

#[test]
fn namespace_lifecycle_with_policy_and_bare_array_listing() {
    let s = TestServer::start();
    let ns = s
        .admin(
            "POST",
            "/v1/namespaces",
            Some(json!({"name": "tenant-acme", "policy": {"decay_rate": 0.01}, "dimensions": 8})),
        )
        .expect(201)
        .clone();
    assert_eq!(ns["name"], "tenant-acme");
    assert_eq!(ns["memory_count"], 0);
    assert_eq!(ns["dimensions"], 8);
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "tenant-acme"})))
        .expect_error(409, "conflict");
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "tenant-acme", "exist_ok": true})))
        .expect(201);
    let bad = s.admin("POST", "/v1/namespaces", Some(json!({"name": "no spaces"})));
    assert_eq!(bad.expect_error(400, "invalid_argument")["field"], "name");
    for n in ["b-ns", "c-ns"] {
        s.admin("POST", "/v1/namespaces", Some(json!({"name": n}))).expect(201);
    }

    let list = s.admin("GET", "/v1/namespaces?limit=2", None);
    let items = list.expect(200).as_array().expect("a bare JSON array");
    assert_eq!(items.len(), 2);
    assert_eq!(list.header("x-total-count"), Some("3"));
    for field in
        ["name", "tenant_id", "created_at", "memory_count", "storage_bytes", "isolation_mode"]
    {
        assert!(items[0].get(field).is_some(), "missing {field}");
    }
    let rest = s.admin("GET", "/v1/namespaces?offset=2", None);
    assert_eq!(rest.expect(200).as_array().unwrap().len(), 1);

    let policy = s.admin("GET", "/v1/namespaces/tenant-acme/policy", None);
    assert_eq!(policy.expect(200)["decay_rate"], 0.01);
    let set = s.admin(
        "PUT",
        "/v1/namespaces/tenant-acme/policy",
        Some(json!({"decay_rate": 0.5, "min_importance": 0.1, "ttl_default": 3600})),
    );
    assert_eq!(set.expect(200)["ttl_default"], 3600);
    assert_eq!(
        s.admin("GET", "/v1/namespaces/tenant-acme/policy", None).expect(200)["decay_rate"],
        0.5
    );
    let bad = s.admin("PUT", "/v1/namespaces/tenant-acme/policy", Some(json!({"decay_rate": -1})));
    assert_eq!(bad.expect_error(400, "invalid_argument")["field"], "policy.decay_rate");

    assert_eq!(
        s.admin("GET", "/v1/namespaces/tenant-acme", None).expect(200)["name"],
        "tenant-acme"
    );
    let deleted = s.admin("DELETE", "/v1/namespaces/tenant-acme", None);
    assert_eq!(deleted.expect(200)["name"], "tenant-acme");
    assert!(deleted.json["deleted_at"].is_string());
    s.admin("GET", "/v1/namespaces/tenant-acme", None).expect_error(404, "not_found");
    assert_eq!(s.admin("GET", "/v1/namespaces", None).header("x-total-count"), Some("2"));
}

#[test]
fn keys_are_created_listed_rotated_and_revoked_with_immediate_effect() {
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "ns1"}))).expect(201);
    let created = s
        .admin(
            "POST",
            "/v1/keys",
            Some(
                json!({"name": "backend", "namespaces": [{"namespace": "ns1", "access": "write"}]}),
            ),
        )
        .expect(201)
        .clone();
    let id = created["id"].as_str().unwrap().to_owned();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));

    let keys = s.admin("GET", "/v1/keys", None);
    let listed = keys.expect(200).as_array().expect("a bare JSON array");
    assert_eq!(keys.header("x-total-count"), Some("1"));
    assert!(listed[0].get("key").is_none(), "the full key is returned only once");

    s.call("POST", "/v1/memory/store", Some(&key), Some(json!({"content": "x"}))).expect(201);
    // The key cannot manage keys.
    s.call("GET", "/v1/keys", Some(&key), None).expect_error(403, "forbidden");

    let rotated = s.admin("POST", &format!("/v1/keys/{id}/rotate"), None);
    let new_key = rotated.expect(200)["key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    s.call("GET", "/v1/whoami", Some(&key), None).expect_error(401, "unauthorized");
    s.call("GET", "/v1/whoami", Some(&new_key), None).expect(200);

    s.admin("DELETE", &format!("/v1/keys/{id}"), None).expect(200);
    let after = s.call("POST", "/v1/memory/store", Some(&new_key), Some(json!({"content": "y"})));
    after.expect_error(401, "unauthorized");
    s.admin("DELETE", "/v1/keys/nope", None).expect_error(404, "not_found");
}

#[test]
fn missing_malformed_and_unknown_keys_are_401() {
    let s = TestServer::start();
    s.call("GET", "/v1/namespaces", None, None).expect_error(401, "unauthorized");
    let r = s.raw("GET", "/v1/namespaces", None, None);
    assert_eq!(r.status, 401);
    let mut agent_req = ureq::http::Request::builder()
        .uri(format!("{}/v1/namespaces", s.url))
        .header("Authorization", "Basic dXNlcjpwYXNz");
    agent_req = agent_req.method("GET");
    let resp = crate::support::agent().run(agent_req.body(()).unwrap()).unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    s.call("GET", "/v1/namespaces", Some("msk_nothing_here"), None)
        .expect_error(401, "unauthorized");
    s.call(
        "GET",
        "/v1/namespaces",
        Some("msk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        None,
    )
    .expect_error(401, "unauthorized");
    // Health needs no key.
    s.call("GET", "/healthz", None, None).expect(200);
}

/// Every way a key stops working — revoked (deleted), rotated, its member removed, its tenant
/// suspended — is refused on the very next request, although the key was just let in many
/// times (its resolution cached by the server).
#[test]
fn a_withdrawn_key_is_refused_on_the_very_next_request() {
    let s = TestServer::start();
    let tenant = s.admin("POST", "/api/v1/tenants", Some(json!({"name": "acme"}))).expect(201)
        ["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "ns1", "tenant_id": tenant})))
        .expect(201);
    let mint =
        |body: serde_json::Value| s.admin("POST", "/v1/keys", Some(body)).expect(201).clone();
    let scoped = |name: &str| {
        mint(json!({"name": name, "namespaces": [{"namespace": "ns1", "access": "write"}]}))
    };
    let warm = |key: &str| {
        for _ in 0..20 {
            s.call("GET", "/v1/whoami", Some(key), None).expect(200);
        }
    };
    let refused = |key: &str, status: u16, how: &str| {
        let r = s.call("GET", "/v1/whoami", Some(key), None);
        assert_eq!(r.status, status, "a key {how} was not refused: {}", r.json);
    };

    let revoked = scoped("revoked");
    let key = revoked["key"].as_str().unwrap();
    warm(key);
    s.admin("DELETE", &format!("/v1/keys/{}", revoked["id"].as_str().unwrap()), None).expect(200);
    refused(key, 401, "revoked");

    let rotated = scoped("rotated");
    let key = rotated["key"].as_str().unwrap();
    warm(key);
    let new_key = s
        .admin("POST", &format!("/v1/keys/{}/rotate", rotated["id"].as_str().unwrap()), None)
        .expect(200)["key"]
        .as_str()
        .unwrap()
        .to_owned();
    refused(key, 401, "rotated");
    warm(&new_key);

    let member = s
        .admin(
            "POST",
            &format!("/api/v1/tenants/{tenant}/members"),
            Some(json!({"user_identifier": "ann@acme.com", "role": "editor"})),
        )
        .expect(201)["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let of_member = mint(json!({"name": "ann", "tenant_id": tenant, "member_id": member}));
    let key = of_member["key"].as_str().unwrap();
    warm(key);
    s.admin("DELETE", &format!("/api/v1/tenants/{tenant}/members/{member}"), None).expect(200);
    refused(key, 401, "of a removed member");

    let of_tenant = mint(json!({"name": "ops", "tenant_id": tenant, "role": "editor"}));
    let key = of_tenant["key"].as_str().unwrap();
    warm(key);
    s.admin("PUT", &format!("/api/v1/tenants/{tenant}"), Some(json!({"status": "suspended"})))
        .expect(200);
    // Refused as forbidden: the key is genuine, its tenant may not act.
    refused(key, 403, "of a suspended tenant");
}
