//! Sessions: started, ended once, listed and counted in their namespace; scoped like every
//! namespace's data; deleted with it.

use memsilo::{
    Access, CreateKey, EndSession, Engine, ErrorCode, ListSessions, NamespaceOptions, Options,
    SessionMemories, StartSession, StoreMemory,
};
use serde_json::json;

fn open() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    (dir, engine)
}

fn start(id: &str, agent: Option<&str>) -> StartSession {
    StartSession {
        namespace: Some("chat".into()),
        id: Some(id.into()),
        agent_id: agent.map(str::to_owned),
        metadata: None,
    }
}

fn store(h: &memsilo::Handle, ns: &str, content: &str, session: Option<&str>) {
    h.store_memory(StoreMemory {
        namespace: Some(ns.into()),
        session_id: session.map(str::to_owned),
        ..StoreMemory::text(content)
    })
    .unwrap();
}

#[test]
fn a_session_is_started_filled_ended_once_and_listed() {
    let (_dir, engine) = open();
    let root = engine.root();
    root.create_namespace("chat", NamespaceOptions::default()).unwrap();
    let s = root.start_session(start("s-1", Some("bot"))).unwrap();
    assert_eq!((s.id.as_str(), s.agent_id.as_deref(), s.memory_count), ("s-1", Some("bot"), 0));
    assert!(s.ended_at.is_none());
    let again = root.start_session(start("s-1", None)).unwrap_err();
    assert_eq!(again.code(), ErrorCode::Conflict);

    store(&root, "chat", "asked about SSO", Some("s-1"));
    store(&root, "chat", "asked about billing", Some("s-1"));
    store(&root, "chat", "another session", Some("s-2"));
    store(&root, "chat", "no session", None);
    let got = root.get_session(Some("chat"), "s-1").unwrap();
    assert_eq!(got.memory_count, 2);
    let page = root
        .session_memories(SessionMemories {
            namespace: Some("chat".into()),
            id: "s-1".into(),
            offset: Some(1),
            limit: Some(5),
        })
        .unwrap();
    assert_eq!(page.total_count, 2);
    assert_eq!(
        page.memories.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
        ["asked about billing"]
    );

    let end = |summary: &str| {
        root.end_session(EndSession {
            namespace: Some("chat".into()),
            id: "s-1".into(),
            summary: Some(summary.into()),
        })
    };
    let ended = end("SSO and billing").unwrap();
    assert!(ended.ended_at.is_some());
    assert_eq!((ended.summary.as_deref(), ended.memory_count), (Some("SSO and billing"), 2));
    let twice = end("something else").unwrap();
    assert_eq!((twice.summary, twice.ended_at), (ended.summary, ended.ended_at));

    root.start_session(start("s-3", Some("other-bot"))).unwrap();
    let list = |req: ListSessions| {
        let page = root.list_sessions(ListSessions { namespace: Some("chat".into()), ..req });
        let page = page.unwrap();
        (page.sessions.into_iter().map(|s| s.id).collect::<Vec<_>>(), page.total_count)
    };
    assert_eq!(list(ListSessions::default()), (vec!["s-1".to_owned(), "s-3".to_owned()], 2));
    let active = ListSessions { active_only: Some(true), ..Default::default() };
    assert_eq!(list(active), (vec!["s-3".to_owned()], 1));
    let bots = ListSessions { agent_id: Some("bot".into()), ..Default::default() };
    assert_eq!(list(bots), (vec!["s-1".to_owned()], 1));
    let paged = ListSessions { offset: Some(1), limit: Some(1), ..Default::default() };
    assert_eq!(list(paged), (vec!["s-3".to_owned()], 2));

    // Through the operation table, as every face calls it.
    let r = root.call("get_session", json!({"namespace": "chat", "id": "s-3"})).unwrap();
    assert_eq!(r.value["agent_id"], "other-bot");
    assert_eq!(r.value["ended_at"], serde_json::Value::Null);
}

#[test]
fn bad_session_input_is_refused_naming_the_field() {
    let (_dir, engine) = open();
    let root = engine.root();
    root.create_namespace("chat", NamespaceOptions::default()).unwrap();
    let cases = [
        ("start_session", json!({"namespace": "chat", "id": "x".repeat(2000)}), "id"),
        ("start_session", json!({"namespace": "chat", "id": "a\nb"}), "id"),
        ("start_session", json!({"namespace": "chat", "agent_id": ""}), "agent_id"),
        ("start_session", json!({"namespace": "chat", "metadata": [1]}), "metadata"),
        ("start_session", json!({"namespace": "chat", "colour": "red"}), "colour"),
        ("end_session", json!({"namespace": "chat"}), "id"),
        (
            "end_session",
            json!({"namespace": "chat", "id": "s", "summary": "x".repeat(70_000)}),
            "summary",
        ),
        ("list_sessions", json!({"namespace": "chat", "limit": 0}), "limit"),
        ("list_sessions", json!({"namespace": "chat", "active_only": "yes"}), "active_only"),
        ("session_memories", json!({"namespace": "chat", "id": "s", "limit": 1000}), "limit"),
    ];
    for (op, args, field) in cases {
        let e = root.call(op, args.clone()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{op} {args}: {e}");
        let body = memsilo::api::error_body(&e);
        assert_eq!(body["field"], field, "{op} {args}: {e}");
    }
    for (op, args) in [
        ("get_session", json!({"namespace": "chat", "id": "absent"})),
        ("end_session", json!({"namespace": "chat", "id": "absent"})),
        ("session_memories", json!({"namespace": "chat", "id": "absent"})),
    ] {
        assert_eq!(root.call(op, args).unwrap_err().code(), ErrorCode::NotFound, "{op}");
    }
    // Nothing was written by the refusals.
    assert_eq!(
        root.list_sessions(ListSessions { namespace: Some("chat".into()), ..Default::default() })
            .unwrap()
            .total_count,
        0
    );
}

#[test]
fn sessions_keep_to_their_namespace_and_go_with_it() {
    let (_dir, engine) = open();
    let root = engine.root();
    for ns in ["chat", "other"] {
        root.create_namespace(ns, NamespaceOptions::default()).unwrap();
    }
    root.start_session(start("shared-id", None)).unwrap();
    // The same id in another namespace is another session.
    let other = StartSession { namespace: Some("other".into()), ..start("shared-id", None) };
    root.start_session(other).unwrap();
    store(&root, "other", "in other", Some("shared-id"));
    assert_eq!(root.get_session(Some("chat"), "shared-id").unwrap().memory_count, 0);
    assert_eq!(root.get_session(Some("other"), "shared-id").unwrap().memory_count, 1);

    let key = root.create_key(CreateKey::namespaces("k", [("chat", Access::Read)])).unwrap();
    let reader = engine.scoped(&key.key).unwrap();
    // A read key reads its namespace's sessions (its only namespace by default) ...
    assert_eq!(reader.get_session(None, "shared-id").unwrap().namespace, "chat");
    // ... cannot start or end one ...
    let e = reader.start_session(start("mine", None)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Forbidden);
    // ... and another namespace's session is forbidden whether or not it exists.
    for id in ["shared-id", "absent"] {
        let e = reader.get_session(Some("other"), id).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Forbidden, "{id}");
    }
    let e = reader
        .list_sessions(ListSessions { namespace: Some("other".into()), ..Default::default() });
    assert_eq!(e.unwrap_err().code(), ErrorCode::Forbidden);

    root.delete_namespace("other").unwrap();
    root.create_namespace("other", NamespaceOptions::default()).unwrap();
    let e = root.get_session(Some("other"), "shared-id").unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
    let listed =
        root.list_sessions(ListSessions { namespace: Some("other".into()), ..Default::default() });
    assert_eq!(listed.unwrap().total_count, 0);
    assert_eq!(root.get_session(Some("chat"), "shared-id").unwrap().namespace, "chat");
}

/// A session's memory count comes from the `session_id` keys while every memory is live, and
/// from the records once one may be hidden (expiry): both agree with what is stored, for ids
/// that prefix one another, an id too long for an exact key, moved and deleted memories.
#[test]
fn session_counts_follow_writes_prefixes_long_ids_and_expiry() {
    use std::sync::Arc;
    let clock = Arc::new(memsilo::ManualClock::new(chrono::Utc::now()));
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        dir.path(),
        Options { background: false, clock: clock.clone(), ..Options::default() },
    )
    .unwrap();
    let root = engine.root();
    root.create_namespace("chat", NamespaceOptions::default()).unwrap();
    let long = "L".repeat(250);
    for id in ["s-1", "s-10", long.as_str()] {
        root.start_session(start(id, None)).unwrap();
    }
    let with = |content: &str, session: &str, ttl: Option<u64>| StoreMemory {
        namespace: Some("chat".into()),
        id: Some(content.into()),
        session_id: Some(session.into()),
        ttl,
        ..StoreMemory::text(content)
    };
    for (content, session) in [("a", "s-1"), ("b", "s-1"), ("c", "s-10"), ("d", long.as_str())] {
        root.store_memory(with(content, session, None)).unwrap();
    }
    let counts = || -> Vec<(String, u64)> {
        let page = root
            .list_sessions(ListSessions { namespace: Some("chat".into()), ..Default::default() });
        let mut v: Vec<_> =
            page.unwrap().sessions.into_iter().map(|s| (s.id, s.memory_count)).collect();
        v.sort();
        v
    };
    let want = |a: u64, b: u64, l: u64| {
        let mut v = vec![("s-1".to_owned(), a), ("s-10".to_owned(), b), (long.clone(), l)];
        v.sort();
        v
    };
    assert_eq!(counts(), want(2, 1, 1));
    // Moved to another session, deleted.
    root.update_memory(memsilo::UpdateMemory {
        namespace: Some("chat".into()),
        id: "b".into(),
        session_id: Some("s-10".into()),
        ..Default::default()
    })
    .unwrap();
    root.delete_memory(Some("chat"), "d").unwrap();
    assert_eq!(counts(), want(1, 2, 0));
    assert_eq!(root.get_session(Some("chat"), "s-10").unwrap().memory_count, 2);
    // A memory that expires: counted while it lives, not after.
    root.store_memory(with("e", "s-1", Some(60))).unwrap();
    assert_eq!(counts(), want(2, 2, 0));
    clock.advance_micros(61_000_000);
    assert_eq!(counts(), want(1, 2, 0));
    let page = root
        .session_memories(SessionMemories {
            namespace: Some("chat".into()),
            id: "s-1".into(),
            offset: None,
            limit: None,
        })
        .unwrap();
    assert_eq!(page.total_count, 1);
    assert_eq!(page.memories[0].id, "a");
}
