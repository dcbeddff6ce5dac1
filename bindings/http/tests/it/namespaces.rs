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

/// `GET /v1/namespaces` pages by cursor: each page's `X-Next-Cursor` starts the next, the
/// last page has none, and the remote client carries the cursor both ways.
#[test]
fn namespaces_page_by_the_next_cursor_header_and_through_the_remote_client() {
    let s = TestServer::start();
    let names: Vec<String> = (0..7).map(|i| format!("page-{i}")).collect();
    for n in &names {
        s.admin("POST", "/v1/namespaces", Some(json!({"name": n}))).expect(201);
    }
    let (mut seen, mut path) = (Vec::new(), "/v1/namespaces?limit=3".to_owned());
    loop {
        let page = s.admin("GET", &path, None);
        let items = page.expect(200).as_array().expect("a bare JSON array");
        seen.extend(items.iter().map(|ns| ns["name"].as_str().unwrap().to_owned()));
        assert_eq!(page.header("x-total-count"), Some("7"));
        match page.header("x-next-cursor") {
            Some(c) => path = format!("/v1/namespaces?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, names);

    let bad = s.admin("GET", "/v1/namespaces?cursor=6e00", None);
    assert_eq!(bad.expect_error(400, "invalid_argument")["field"], "cursor");

    let client = memsilo_http::Client::connect(&s.url, crate::support::ADMIN).unwrap();
    let first = client.call("list_namespaces", json!({"limit": 4})).unwrap();
    let cursor = first.next_cursor.expect("a page follows");
    let rest = client.call("list_namespaces", json!({"limit": 4, "cursor": cursor})).unwrap();
    let rest: Vec<&str> =
        rest.value.as_array().unwrap().iter().map(|ns| ns["name"].as_str().unwrap()).collect();
    assert_eq!((rest, first.total_count), (vec!["page-4", "page-5", "page-6"], Some(7)));
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

    // A namespace deleted: a key granted it (and another) is refused there on the next
    // request, its other namespace still answers; a namespace made again under that name is
    // not the one granted.
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "ns2", "tenant_id": tenant})))
        .expect(201);
    let two = mint(json!({"name": "two", "namespaces": [
        {"namespace": "ns1", "access": "write"}, {"namespace": "ns2", "access": "write"}]}));
    let key = two["key"].as_str().unwrap();
    let store = |ns: &str| {
        s.call(
            "POST",
            "/v1/memory/store",
            Some(key),
            Some(json!({"namespace": ns, "content": "x"})),
        )
    };
    for _ in 0..5 {
        store("ns2").expect(201);
    }
    s.admin("DELETE", "/v1/namespaces/ns2", None).expect(200);
    store("ns2").expect_error(403, "forbidden");
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "ns2", "tenant_id": tenant})))
        .expect(201);
    store("ns2").expect_error(403, "forbidden");
    store("ns1").expect(201);

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

#[test]
fn a_tenants_namespace_pages_by_cursor_each_carry_the_total_of_that_tenants_whole_list() {
    let s = TestServer::start();
    let tenant = |name: &str| {
        let t = s.admin("POST", "/api/v1/tenants", Some(json!({"name": name})));
        t.expect(201)["id"].as_str().unwrap().to_owned()
    };
    let (acme, globex) = (tenant("acme_corp"), tenant("globex_corp"));
    for (name, owner) in [
        ("acme-1", Some(&acme)),
        ("acme-2", Some(&acme)),
        ("acme-3", Some(&acme)),
        ("acme-4", Some(&acme)),
        ("acme-5", Some(&acme)),
        ("globex-1", Some(&globex)),
        ("globex-2", Some(&globex)),
        ("shared-1", None),
    ] {
        let mut body = json!({ "name": name });
        if let Some(t) = owner {
            body["tenant_id"] = json!(t);
        }
        s.admin("POST", "/v1/namespaces", Some(body)).expect(201);
    }
    let admin_key = s.admin(
        "POST",
        "/v1/keys",
        Some(json!({"name": "acme-admin", "tenant_id": acme, "role": "admin"})),
    );
    let admin_key = admin_key.expect(201)["key"].as_str().unwrap().to_owned();
    // Root asking for one tenant, and that tenant's admin: every page, the first and those
    // by cursor, says 5 (the tenant's whole list), never 8 (every namespace) nor what is left.
    for (key, query) in
        [(crate::support::ADMIN, format!("tenant_id={acme}&")), (admin_key.as_str(), String::new())]
    {
        let (mut seen, mut path) = (Vec::new(), format!("/v1/namespaces?{query}limit=2"));
        loop {
            let page = s.call("GET", &path, Some(key), None);
            let items = page.expect(200).as_array().unwrap();
            seen.extend(items.iter().map(|ns| ns["name"].as_str().unwrap().to_owned()));
            assert_eq!(page.header("x-total-count"), Some("5"), "{path}");
            match page.header("x-next-cursor") {
                Some(c) => path = format!("/v1/namespaces?{query}limit=2&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(seen, ["acme-1", "acme-2", "acme-3", "acme-4", "acme-5"], "{query}");
    }
}
