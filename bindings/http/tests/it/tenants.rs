//! Tenants and members over HTTP, as API.md describes them.

use serde_json::json;

use crate::support::TestServer;

#[test]
fn tenant_lifecycle_with_members_children_and_deletion() {
    let s = TestServer::start();
    let created = s
        .admin(
            "POST",
            "/api/v1/tenants",
            Some(json!({"name": "acme_corp", "quotas": {"qps_limit": 50, "max_members": 3}, "tags": ["gold"]})),
        )
        .expect(201)
        .clone();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["name"], "acme_corp");
    assert_eq!(created["status"], "active");
    assert_eq!(created["isolation_mode"], "logical");
    assert_eq!(created["quotas"]["qps_limit"], 50);
    assert_eq!(created["quotas"]["storage_quota_bytes"], 10_737_418_240_u64);
    // The wording of the tenant API's reference, with API.md's snake_case codes.
    assert_eq!(created["message"], "Tenant 'acme_corp' created successfully");

    // Duplicate name, bad name.
    let dup = s.admin("POST", "/api/v1/tenants", Some(json!({"name": "acme_corp"})));
    assert_eq!(dup.expect_error(409, "conflict")["message"], "Tenant already exists: acme_corp");
    let bad = s.admin("POST", "/api/v1/tenants", Some(json!({"name": "a!"})));
    let bad = bad.expect_error(400, "invalid_argument");
    assert_eq!(bad["field"], "name");
    assert_eq!(bad["message"], "Validation error: name must be at least 3 characters");
    let bad = s.admin("POST", "/api/v1/tenants", Some(json!({"name": "acme corp"})));
    assert_eq!(bad.expect_error(400, "invalid_argument")["field"], "name");

    let got = s.admin("GET", &format!("/api/v1/tenants/{id}"), None);
    assert_eq!(got.expect(200)["name"], "acme_corp");
    assert_eq!(got.json["usage"]["members"], 0);
    let missing = "00000000-0000-0000-0000-000000000000";
    let absent = s.admin("GET", &format!("/api/v1/tenants/{missing}"), None);
    let absent = absent.expect_error(404, "not_found");
    assert_eq!(absent["message"], format!("Tenant not found: {missing}"));
    assert_eq!(absent["tenant_id"], missing);

    // Partial update keeps what is not named.
    let updated = s.admin(
        "PUT",
        &format!("/api/v1/tenants/{id}"),
        Some(json!({"quotas": {"max_connections": 4}})),
    );
    let updated = updated.expect(200);
    assert_eq!(updated["quotas"]["max_connections"], 4);
    assert_eq!(updated["quotas"]["qps_limit"], 50);
    assert_eq!(updated["message"], "Tenant 'acme_corp' updated successfully");

    // Members: add, duplicate, list with a role filter and pagination, remove.
    let members = format!("/api/v1/tenants/{id}/members");
    let alice = s
        .admin(
            "POST",
            &members,
            Some(json!({"user_identifier": "alice@acme.com", "role": "admin"})),
        )
        .expect(201)
        .clone();
    assert_eq!(alice["tenant_id"], id.as_str());
    assert_eq!(alice["role"], "admin");
    assert_eq!(alice["message"], format!("Member added successfully to tenant {id}"));
    for who in ["bob@acme.com", "carol@acme.com"] {
        s.admin("POST", &members, Some(json!({"user_identifier": who, "role": "viewer"})))
            .expect(201);
    }
    s.admin("POST", &members, Some(json!({"user_identifier": "bob@acme.com", "role": "editor"})))
        .expect_error(409, "conflict");
    s.admin("POST", &members, Some(json!({"user_identifier": "dave@acme.com", "role": "viewer"})))
        .expect_error(403, "quota_exceeded");
    s.admin("POST", &members, Some(json!({"user_identifier": "eve@acme.com", "role": "owner"})))
        .expect_error(400, "invalid_argument");

    let viewers = s.admin("GET", &format!("{members}?role=viewer&limit=1"), None);
    let viewers = viewers.expect(200);
    assert_eq!(viewers["total_count"], 2);
    assert_eq!(viewers["members"].as_array().unwrap().len(), 1);
    let second = s.admin("GET", &format!("{members}?role=viewer&limit=1&offset=1"), None);
    assert_ne!(second.expect(200)["members"][0]["member_id"], viewers["members"][0]["member_id"]);
    s.admin("GET", &format!("{members}?limit=101"), None).expect_error(400, "invalid_argument");
    s.admin("GET", &format!("{members}?limit=ten"), None).expect_error(400, "invalid_argument");

    let alice_id = alice["member_id"].as_str().unwrap();
    let removed = s.admin("DELETE", &format!("{members}/{alice_id}"), None);
    let removed = removed.expect(200);
    assert_eq!(removed["member_id"], alice_id);
    assert_eq!(removed["message"], format!("Member {alice_id} removed from tenant {id}"));
    assert!(removed["removed_at"].is_string());
    s.admin("DELETE", &format!("{members}/{alice_id}"), None).expect_error(404, "not_found");
    assert_eq!(s.admin("GET", &members, None).expect(200)["total_count"], 2);

    // A child tenant blocks its parent's deletion.
    let child = s
        .admin("POST", "/api/v1/tenants", Some(json!({"name": "acme_eu", "parent_id": id})))
        .expect(201)
        .clone();
    let child_id = child["id"].as_str().unwrap();
    let listed = s.admin("GET", &format!("/api/v1/tenants?parent_id={id}"), None);
    let listed = listed.expect(200);
    assert_eq!(listed["total_count"], 1);
    assert_eq!(listed["tenants"][0]["id"], child_id);
    assert_eq!(s.admin("GET", "/api/v1/tenants?status=active", None).expect(200)["total_count"], 2);
    s.admin("GET", "/api/v1/tenants?status=sleepy", None).expect_error(400, "invalid_argument");

    s.admin("DELETE", &format!("/api/v1/tenants/{id}"), None).expect_error(409, "conflict");
    let gone = s.admin("DELETE", &format!("/api/v1/tenants/{child_id}"), None);
    assert!(gone.expect(200)["deleted_at"].is_string());
    let deleted = s.admin("DELETE", &format!("/api/v1/tenants/{id}"), None);
    assert_eq!(deleted.expect(200)["message"], "Tenant 'acme_corp' has been deleted");
    s.admin("GET", &format!("/api/v1/tenants/{id}"), None).expect_error(404, "not_found");
}

#[test]
fn a_tenant_admin_key_reads_its_own_tenant_only() {
    let s = TestServer::start();
    let a = s.admin("POST", "/api/v1/tenants", Some(json!({"name": "tenant_a"}))).expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = s.admin("POST", "/api/v1/tenants", Some(json!({"name": "tenant_b"}))).expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = s
        .admin(
            "POST",
            "/v1/keys",
            Some(json!({"name": "a-admin", "tenant_id": a, "role": "admin"})),
        )
        .expect(201)["key"]
        .as_str()
        .unwrap()
        .to_owned();
    s.call("GET", &format!("/api/v1/tenants/{a}"), Some(&key), None).expect(200);
    s.call("GET", &format!("/api/v1/tenants/{b}"), Some(&key), None).expect_error(403, "forbidden");
    s.call("POST", "/api/v1/tenants", Some(&key), Some(json!({"name": "sneaky"})))
        .expect_error(403, "forbidden");
    let me = s.call("GET", "/v1/whoami", Some(&key), None);
    assert_eq!(me.expect(200)["tenant_id"], a.as_str());
    assert_eq!(me.json["role"], "admin");
}

#[test]
fn ids_that_cannot_exist_are_not_found_not_internal_errors() {
    // An empty or over-long id in the path names nothing: 404, never LMDB's 500 for keys it
    // cannot store (empty, or over 511 bytes).
    let s = TestServer::start();
    let created =
        s.admin("POST", "/api/v1/tenants", Some(json!({"name": "acme_corp"}))).expect(201).clone();
    let id = created["id"].as_str().unwrap().to_owned();
    let long = "x".repeat(600);
    for path in [
        "/api/v1/tenants//members".to_owned(),
        format!("/api/v1/tenants/{long}"),
        format!("/api/v1/tenants/{long}/members"),
        format!("/api/v1/tenants/{id}/members/{long}"),
    ] {
        let method = if path.ends_with("/members") { "GET" } else { "DELETE" };
        s.admin(method, &path, None).expect_error(404, "not_found");
    }
    s.admin(
        "POST",
        "/api/v1/tenants//members",
        Some(json!({"user_identifier": "a@x.com", "role": "viewer"})),
    )
    .expect_error(404, "not_found");
    s.admin("POST", "/v1/keys//rotate", None).expect_error(404, "not_found");
    s.admin("POST", &format!("/v1/keys/{long}/rotate"), None).expect_error(404, "not_found");
    s.admin("DELETE", &format!("/v1/keys/{long}"), None).expect_error(404, "not_found");
}
