//! Sessions over HTTP: memsilo's namespace routes (status codes, query parameters, errors).

use serde_json::json;

use crate::support::{key_for, TestServer};

#[test]
fn sessions_are_started_listed_ended_and_read_over_http() {
    let s = TestServer::start();
    for ns in ["acme", "globex"] {
        s.admin("POST", "/v1/namespaces", Some(json!({"name": ns}))).expect(201);
    }
    let started = s
        .admin(
            "POST",
            "/v1/namespaces/acme/sessions",
            Some(json!({"id": "chat/1", "agent_id": "bot"})),
        )
        .expect(201)
        .clone();
    assert_eq!(
        (started["id"].as_str(), started["namespace"].as_str()),
        (Some("chat/1"), Some("acme"))
    );
    s.admin("POST", "/v1/namespaces/acme/sessions", Some(json!({"id": "chat/1"})))
        .expect_error(409, "conflict");
    s.admin(
        "POST",
        "/v1/memory/store",
        Some(json!({"namespace": "acme", "content": "asked about SSO", "session_id": "chat/1"})),
    )
    .expect(201);
    // The id travels percent-encoded in the path.
    let got = s.admin("GET", "/v1/namespaces/acme/sessions/chat%2F1", None).expect(200).clone();
    assert_eq!(got["memory_count"], 1);
    let memories = s.admin("GET", "/v1/namespaces/acme/sessions/chat%2F1/memories?limit=10", None);
    let memories = memories.expect(200).clone();
    assert_eq!(memories["total_count"], 1);
    assert_eq!(memories["memories"][0]["content"], "asked about SSO");
    let ended = s
        .admin("POST", "/v1/namespaces/acme/sessions/chat%2F1/end", Some(json!({"summary": "SSO"})))
        .expect(200)
        .clone();
    assert_eq!(ended["summary"], "SSO");
    assert!(ended["ended_at"].is_string());
    let active =
        s.admin("GET", "/v1/namespaces/acme/sessions?active_only=true", None).expect(200).clone();
    assert_eq!(active["total_count"], 0);
    let all = s
        .admin("GET", "/v1/namespaces/acme/sessions?agent_id=bot&limit=5", None)
        .expect(200)
        .clone();
    assert_eq!(all["sessions"][0]["id"], "chat/1");
    let bad = s.admin("GET", "/v1/namespaces/acme/sessions?active_only=maybe", None);
    assert_eq!(bad.expect_error(400, "invalid_argument")["field"], "active_only");
    s.admin("GET", "/v1/namespaces/acme/sessions/absent", None).expect_error(404, "not_found");
    s.admin("POST", "/v1/namespaces/acme/sessions/absent/end", Some(json!({})))
        .expect_error(404, "not_found");

    // A key scoped to globex gets 403 for acme's sessions, whether or not the id exists.
    let key = key_for(&s, &[("globex", "write")]);
    for path in ["/v1/namespaces/acme/sessions/chat%2F1", "/v1/namespaces/acme/sessions/absent"] {
        s.call("GET", path, Some(&key), None).expect_error(403, "forbidden");
    }
    s.call("GET", "/v1/namespaces/acme/sessions", Some(&key), None).expect_error(403, "forbidden");

    // Deleting the namespace deletes its sessions.
    s.admin("DELETE", "/v1/namespaces/acme", None).expect(200);
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "acme"}))).expect(201);
    s.admin("GET", "/v1/namespaces/acme/sessions/chat%2F1", None).expect_error(404, "not_found");
}
