//! The audit log over HTTP: refusals recorded with the request's `X-Request-Id`, the
//! `/api/v1/tenants/{id}/audit` filters and cursor, verification, and who may read it.

use serde_json::{json, Value};

use crate::support::{agent, TestServer};

fn tenant_with_admin(s: &TestServer, name: &str) -> (String, String) {
    let t = s.admin("POST", "/api/v1/tenants", Some(json!({ "name": name })));
    let id = t.expect(201)["id"].as_str().unwrap().to_owned();
    let ns = json!({ "name": format!("{name}-ns"), "tenant_id": id });
    s.admin("POST", "/v1/namespaces", Some(ns)).expect(201);
    let k =
        s.admin("POST", "/v1/keys", Some(json!({ "name": "a", "tenant_id": id, "role": "admin" })));
    (id, k.expect(201)["key"].as_str().unwrap().to_owned())
}

#[test]
fn refusals_and_actions_are_listed_by_request_id_filters_and_cursor() {
    let s = TestServer::start();
    let (acme, acme_admin) = tenant_with_admin(&s, "acme");
    let (globex, _) = tenant_with_admin(&s, "globex");

    // A refused recall with the caller's own request id, echoed back.
    let resp = agent()
        .post(format!("{}/v1/memory/recall", s.url))
        .header("Authorization", format!("Bearer {acme_admin}"))
        .header("X-Request-Id", "trace-7781")
        .header("Content-Type", "application/json")
        .send(json!({ "namespace": "globex-ns", "query": "secret plans" }).to_string())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert_eq!(resp.headers().get("x-request-id").unwrap(), "trace-7781");
    // No key at all: the instance log; every answer carries a generated id.
    let anon = s.call("GET", "/v1/whoami", None, None);
    anon.expect_error(401, "unauthorized");
    let anon_id = anon.header("x-request-id").unwrap().to_owned();
    assert_eq!(anon_id.len(), 16);

    let path = format!("/api/v1/tenants/{acme}/audit");
    let refused = s.call("GET", &format!("{path}?action=recall"), Some(&acme_admin), None);
    let entries = refused.expect(200)["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["request_id"], "trace-7781");
    assert_eq!(entries[0]["status"], 403);
    assert_eq!(entries[0]["target"], "globex-ns");
    assert!(!refused.text.contains("secret plans"));

    let instance = s.admin("GET", "/api/v1/tenants/instance/audit", None);
    let last = instance.expect(200)["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["request_id"].as_str(), last["action"].as_str()),
        (Some(anon_id.as_str()), Some("whoami"))
    );

    // Cursor pages of two over acme's four entries.
    let mut seqs = Vec::new();
    let mut url = format!("{path}?limit=2");
    loop {
        let page = s.admin("GET", &url, None);
        let body = page.expect(200);
        seqs.extend(body["entries"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()));
        match body["next_cursor"].as_str() {
            Some(c) => url = format!("{path}?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seqs, [1, 2, 3, 4]);
    let since = s.admin("GET", &format!("{path}?since=2999-01-01T00:00:00Z"), None);
    assert_eq!(since.expect(200)["entries"], json!([]));
    s.admin("GET", &format!("{path}?limit=abc"), None).expect_error(400, "invalid_argument");

    let v = s.call("POST", &format!("{path}/verify"), Some(&acme_admin), None);
    let v: &Value = v.expect(200);
    assert_eq!((v["ok"].clone(), v["head_seq"].clone()), (json!(true), json!(4)));
    // Another tenant's log is forbidden to acme's admin (and that refusal is recorded too).
    let theirs = format!("/api/v1/tenants/{globex}/audit");
    s.call("GET", &theirs, Some(&acme_admin), None).expect_error(403, "forbidden");
    s.call("POST", &format!("{theirs}/verify"), Some(&acme_admin), None)
        .expect_error(403, "forbidden");
    let after = s.admin("GET", &format!("{path}?action=list_audit"), None);
    assert_eq!(after.expect(200)["entries"][0]["target"], globex.as_str());
}
