//! The remote `Client` gives the same results and error codes as an in-process `Handle`.

use memsilo::api::{Backend, Reply};
use memsilo::{Engine, ErrorCode, Options};
use memsilo_http::Client;
use serde_json::{json, Value};

use crate::support::{TestServer, ADMIN};

type Step = Result<Reply, (ErrorCode, String)>;

/// A `SaaS` flow run against any backend; each step's outcome is recorded.
#[allow(clippy::too_many_lines)] // one flow, read top to bottom
fn scenario(root: &dyn Backend) -> Vec<(String, Step)> {
    let mut out = Vec::new();
    let mut run = |b: &dyn Backend, op: &str, args: Value| -> Option<Value> {
        let r = b.call(op, args).map_err(|e| (e.code(), e.to_string()));
        let v = r.as_ref().ok().map(|r| r.value.clone());
        out.push((op.to_owned(), r));
        v
    };
    let tenant =
        run(root, "create_tenant", json!({"name": "acme_corp", "quotas": {"max_members": 2}}))
            .unwrap();
    let tid = tenant["id"].as_str().unwrap().to_owned();
    run(root, "create_tenant", json!({"name": "acme_corp"}));
    run(root, "create_tenant", json!({"name": "x"}));
    run(root, "get_tenant", json!({"tenant_id": tid}));
    run(root, "update_tenant", json!({"tenant_id": tid, "tags": ["gold"]}));
    run(
        root,
        "add_member",
        json!({"tenant_id": tid, "user_identifier": "a@x.com", "role": "editor"}),
    );
    run(
        root,
        "add_member",
        json!({"tenant_id": tid, "user_identifier": "a@x.com", "role": "editor"}),
    );
    run(root, "list_members", json!({"tenant_id": tid, "role": "editor", "limit": 1}));
    run(root, "create_namespace", json!({"name": "tenant-acme", "tenant_id": tid}));
    run(root, "create_namespace", json!({"name": "tenant-globex"}));
    run(root, "create_namespace", json!({"name": "tenant-acme"}));
    run(root, "list_namespaces", json!({"limit": 1}));
    run(
        root,
        "set_memory_policy",
        json!({"namespace": "tenant-acme", "policy": {"decay_rate": 0.1}}),
    );
    run(root, "get_memory_policy", json!({"namespace": "tenant-acme"}));
    run(root, "get_namespace", json!({"name": "nope"}));
    let key = run(
        root,
        "create_key",
        json!({"name": "acme", "namespaces": [{"namespace": "tenant-acme", "access": "write"}]}),
    )
    .unwrap();
    let key_text = key["key"].as_str().unwrap().to_owned();
    run(root, "list_keys", json!({}));
    run(root, "bogus_op", json!({}));
    run(root, "recall", json!({"namespace": "tenant-acme", "top_k": "five"}));
    run(root, "store_memory", json!({"namespace": "tenant-acme", "content": "x", "unknown": 1}));

    let scoped = root.scoped(&key_text).expect("scoped");
    let s: &dyn Backend = scoped.as_ref();
    run(s, "whoami", json!({}));
    run(
        s,
        "store_memory",
        json!({"namespace": "tenant-acme", "content": "Acme roadmap: Omega ships in Q3", "importance": 0.9, "tags": ["roadmap"]}),
    );
    run(
        s,
        "store_memories",
        json!({"namespace": "tenant-acme", "memories": [{"content": "Tacos on Friday"}, {"content": "Roadmap review meeting", "agent_id": "c1"}]}),
    );
    run(
        s,
        "store_memory",
        json!({"namespace": "tenant-acme", "id": "doc-1", "content": "Doc one", "metadata": {"a": 1}}),
    );
    run(
        s,
        "store_memory",
        json!({"namespace": "tenant-acme", "id": "doc-1", "content": "Doc one, again", "memory_type": "semantic"}),
    );
    run(
        s,
        "store_memories",
        json!({"namespace": "tenant-acme", "memories": [{"id": "d", "content": "x"}, {"id": "d", "content": "y"}]}),
    );
    run(s, "get_memories", json!({"namespace": "tenant-acme", "ids": ["doc-1", "absent"]}));
    run(
        s,
        "update_memory",
        json!({"namespace": "tenant-acme", "id": "doc-1", "metadata": {"b": 2}, "importance": 0.2}),
    );
    run(s, "update_memory", json!({"namespace": "tenant-acme", "id": "absent", "importance": 0.2}));
    run(
        s,
        "update_memory",
        json!({"namespace": "tenant-acme", "id": "doc-1", "memory_type": "bogus"}),
    );
    run(s, "start_session", json!({"namespace": "tenant-acme", "id": "chat-1", "agent_id": "bot"}));
    run(s, "start_session", json!({"namespace": "tenant-acme", "id": "chat-1"}));
    run(s, "start_session", json!({"namespace": "tenant-acme", "id": ""}));
    run(
        s,
        "store_memory",
        json!({"namespace": "tenant-acme", "content": "Asked about SSO", "session_id": "chat-1"}),
    );
    run(s, "end_session", json!({"namespace": "tenant-acme", "id": "chat-1", "summary": "SSO"}));
    run(s, "get_session", json!({"namespace": "tenant-acme", "id": "chat-1"}));
    run(s, "get_session", json!({"namespace": "tenant-globex", "id": "chat-1"}));
    run(s, "list_sessions", json!({"namespace": "tenant-acme", "active_only": false}));
    run(s, "session_memories", json!({"namespace": "tenant-acme", "id": "chat-1"}));
    run(s, "session_memories", json!({"namespace": "tenant-acme", "id": "absent"}));
    run(
        s,
        "list_memories",
        json!({"namespace": "tenant-acme", "limit": 2, "filter": {"memory_type": {"$in": ["episodic", "semantic"]}}}),
    );
    run(s, "list_memories", json!({"namespace": "tenant-acme", "cursor": "00ff"}));
    run(
        s,
        "count_memories",
        json!({"namespace": "tenant-acme", "filter": {"metadata.b": {"$gte": 2}}}),
    );
    run(
        s,
        "count_memories",
        json!({"namespace": "tenant-acme", "filter": {"metadata.b": {"$gtx": 2}}}),
    );
    run(
        s,
        "recall",
        json!({"namespace": "tenant-acme", "query": "doc", "filter": {"id": "doc-1"}}),
    );
    run(s, "recall", json!({"namespace": "tenant-acme", "query": "product roadmap", "top_k": 2}));
    run(s, "recall", json!({"query": "roadmap", "tags": ["roadmap"]}));
    run(s, "recall", json!({"agent_id": "tenant-globex", "query": "x"}));
    run(s, "recall", json!({"namespace": "tenant-nowhere", "query": "x"}));
    run(s, "store_memory", json!({"namespace": "tenant-globex", "content": "no"}));
    run(s, "batch_forget", json!({"namespace": "tenant-acme", "agent_id": "c1"}));
    run(s, "batch_forget", json!({"namespace": "tenant-acme"}));
    run(
        s,
        "get_memory",
        json!({"namespace": "tenant-acme", "id": "00000000-0000-0000-0000-000000000000"}),
    );
    run(s, "list_namespaces", json!({}));
    run(s, "create_tenant", json!({"name": "evil_corp"}));
    run(root, "delete_namespace", json!({"name": "tenant-globex"}));
    run(root, "revoke_key", json!({"key_id": key["id"]}));
    run(s, "whoami", json!({}));
    assert!(root.scoped(&key_text).is_err());
    run(root, "create_tenant", json!({"name": "acme_child", "parent_id": tid}));
    run(root, "delete_tenant", json!({"tenant_id": tid}));
    out
}

/// Drops what differs between two runs by nature (ids, times, secrets, scores' last bits).
fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let volatile = k == "id"
                        || k.ends_with("_id")
                        || k.ends_with("_at")
                        || k == "key"
                        || k == "next_cursor"
                        || k == "prefix";
                    let value = match v {
                        _ if volatile => Value::String("*".into()),
                        // Messages may name an id (`... to tenant <uuid>`).
                        Value::String(text) if k == "message" => Value::String(without_ids(text)),
                        _ => normalize(v),
                    };
                    (k.clone(), value)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        // Four decimals: the namespace decays (0.1 a day), so an effective importance or a
        // score read a second or two later on the other side differs in the sixth decimal.
        Value::Number(n) if n.is_f64() => json!((n.as_f64().unwrap() * 1e4).round() / 1e4),
        Value::String(s) if is_uuid(s) => json!("*"),
        other => other.clone(),
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

fn without_ids(message: &str) -> String {
    message.split(' ').map(|w| if is_uuid(w) { "*" } else { w }).collect::<Vec<_>>().join(" ")
}

#[test]
fn the_remote_client_matches_the_in_process_handle_step_by_step() {
    let dir = tempfile::tempdir().unwrap();
    let local = Engine::open(dir.path(), Options::default()).unwrap();
    let local_steps = scenario(&local.root());

    let s = TestServer::start();
    let client = Client::connect(&s.url, ADMIN).unwrap();
    let remote_steps = scenario(&client);

    assert_eq!(local_steps.len(), remote_steps.len());
    for (i, ((op, l), (_, r))) in local_steps.iter().zip(&remote_steps).enumerate() {
        match (l, r) {
            (Ok(l), Ok(r)) => {
                assert_eq!(normalize(&l.value), normalize(&r.value), "step {i} {op}");
                assert_eq!(l.total_count, r.total_count, "step {i} {op}");
                // Cursors are sealed with each data directory's own key: only whether a
                // page follows compares.
                assert_eq!(l.next_cursor.is_some(), r.next_cursor.is_some(), "step {i} {op}");
            }
            (Err((lc, lm)), Err((rc, rm))) => {
                assert_eq!(lc, rc, "step {i} {op}: {lm} vs {rm}");
                assert_eq!(without_ids(lm), without_ids(rm), "step {i} {op}");
            }
            _ => panic!("step {i} {op}: in-process {l:?} vs remote {r:?}"),
        }
    }
    // The scenario exercised both outcomes.
    assert!(remote_steps.iter().any(|(_, r)| r.is_err()));
    let forbidden = remote_steps
        .iter()
        .filter(|(_, r)| matches!(r, Err((ErrorCode::Forbidden, m)) if m.starts_with("Key not authorized for namespace")))
        .count();
    assert!(forbidden >= 3, "{forbidden}");
}

#[test]
fn connect_checks_the_key_and_scoped_switches_it() {
    let s = TestServer::start();
    let err = Client::connect(&s.url, "msk_0000000000000000_nope").unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthorized);
    let admin = Client::connect(&format!("{}/", s.url), ADMIN).unwrap();
    admin.call("create_namespace", json!({"name": "n1"})).unwrap();
    let key = admin
        .call(
            "create_key",
            json!({"name": "k", "namespaces": [{"namespace": "n1", "access": "read"}]}),
        )
        .unwrap()
        .value["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let scoped = Backend::scoped(&admin, &key).unwrap();
    assert_eq!(scoped.call("whoami", json!({})).unwrap().value["principal"], "scoped");
    let err = scoped.call("store_memory", json!({"namespace": "n1", "content": "x"})).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    assert!(Backend::scoped(&admin, "msk_bad").is_err());
    let listed = admin.call("list_namespaces", json!({})).unwrap();
    assert_eq!(listed.total_count, Some(1));
}

#[test]
fn a_rate_limited_remote_call_carries_retry_after() {
    let s = TestServer::start();
    let admin = Client::connect(&s.url, ADMIN).unwrap();
    let t = admin
        .call("create_tenant", json!({"name": "tiny", "quotas": {"qps_limit": 1}}))
        .unwrap()
        .value;
    let key = admin
        .call("create_key", json!({"name": "k", "tenant_id": t["id"], "role": "viewer"}))
        .unwrap()
        .value["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = Client::connect(&s.url, &key).unwrap();
    let err = (0..5).find_map(|_| c.call("list_namespaces", json!({})).err()).expect("limited");
    assert_eq!(err.code(), ErrorCode::RateLimited);
    assert!(err.retry_after().is_some_and(|s| s >= 1));
}

#[test]
fn an_empty_id_is_answered_remotely_as_in_process() {
    // A client builds `GET /v1/memory/` for an empty id, which no route matches as it stands:
    // the server takes it as the route with the empty value, so core gives the same answer.
    let calls = |ns: &str| {
        vec![
            ("get_memory", json!({"namespace": ns, "id": ""})),
            ("update_memory", json!({"namespace": ns, "id": "", "content": "x"})),
            ("delete_memory", json!({"namespace": ns, "id": ""})),
            ("get_session", json!({"namespace": ns, "id": ""})),
            ("end_session", json!({"namespace": ns, "id": ""})),
            ("session_memories", json!({"namespace": ns, "id": ""})),
            ("list_sessions", json!({"namespace": ""})),
            ("get_entity", json!({"namespace": ns, "entity": ""})),
            ("delete_relation", json!({"namespace": ns, "id": ""})),
            ("get_namespace", json!({"name": ""})),
            ("delete_namespace", json!({"name": ""})),
            ("get_tenant", json!({"tenant_id": ""})),
            ("list_members", json!({"tenant_id": ""})),
            ("remove_member", json!({"tenant_id": "", "member_id": "m"})),
            ("revoke_key", json!({"key_id": ""})),
            ("rotate_key", json!({"key_id": ""})),
        ]
    };
    let outcomes = |b: &dyn Backend| -> Vec<(String, ErrorCode, String)> {
        b.call("create_namespace", json!({"name": "n1"})).unwrap();
        calls("n1")
            .into_iter()
            .map(|(op, args)| {
                let e = b.call(op, args).expect_err(op);
                (op.to_owned(), e.code(), e.to_string())
            })
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let local = outcomes(&Engine::open(dir.path(), Options::default()).unwrap().root());
    let s = TestServer::start();
    let remote = outcomes(&Client::connect(&s.url, ADMIN).unwrap());
    for (l, r) in local.iter().zip(&remote) {
        assert_eq!(l, r, "in process vs remote");
        assert!(!l.2.contains("Route not found"), "{l:?}");
    }
    // A path that is no route's template stays unknown.
    s.admin("GET", "/v1/nothing/", None).expect_error(404, "not_found");
}

#[test]
fn an_empty_key_is_refused_remotely_as_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), Options::default()).unwrap();
    let local = engine.scoped("").map(|_| ()).unwrap_err();
    let s = TestServer::start();
    let admin = Client::connect(&s.url, ADMIN).unwrap();
    let remote = Backend::scoped(&admin, "").map(|_| ()).unwrap_err();
    assert_eq!((local.code(), local.to_string()), (remote.code(), remote.to_string()));
    assert_eq!(local.code(), ErrorCode::Unauthorized);
    // `Bearer` with nothing after it is that empty key; another scheme is still refused as such.
    let r = s.with_headers("GET", "/v1/whoami", None, None, &[("Authorization", "Bearer ")]);
    assert_eq!(r.expect_error(401, "unauthorized")["message"], "malformed API key");
    let r = s.with_headers("GET", "/v1/whoami", None, None, &[("Authorization", "Basic abc")]);
    let message = r.expect_error(401, "unauthorized")["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("malformed Authorization header"), "{message}");
}
