//! Memories over HTTP: store, recall (GET and POST), get, delete, forget, and the
//! namespace-resolution rule with its 403s.

use serde_json::json;

use crate::support::{key_for, TestServer};

#[test]
#[allow(clippy::too_many_lines)] // one user-visible flow, read top to bottom
fn store_recall_get_delete_and_forget() {
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "tenant-acme"}))).expect(201);
    let key = key_for(&s, &[("tenant-acme", "write")]);
    let k = Some(key.as_str());

    let stored = s
        .call(
            "POST",
            "/v1/memory/store",
            k,
            Some(json!({"namespace": "tenant-acme", "content": "Acme Q3 roadmap: launch Omega in September",
                        "importance": 0.9, "tags": ["roadmap", "q3"], "agent_id": "customer-1",
                        "metadata": {"source": "slack"}})),
        )
        .expect(201)
        .clone();
    let id = stored["id"].as_str().unwrap().to_owned();
    assert_eq!(stored["namespace"], "tenant-acme");
    let batch = s.call(
        "POST",
        "/v1/memory/store_batch",
        k,
        Some(json!({"namespace": "tenant-acme", "memories": [
            {"content": "Lunch menu for Friday: tacos", "tags": ["food"]},
            {"content": "Omega launch checklist and roadmap review", "tags": ["roadmap"], "agent_id": "customer-2"},
        ]})),
    );
    assert_eq!(batch.expect(201)["ids"].as_array().unwrap().len(), 2);
    // All or nothing: one bad memory stores none.
    let bad = s.call(
        "POST",
        "/v1/memory/store_batch",
        k,
        Some(json!({"namespace": "tenant-acme", "memories": [{"content": "ok"}, {"content": "x", "importance": 7}]})),
    );
    bad.expect_error(400, "invalid_argument");
    let ns = s.admin("GET", "/v1/namespaces/tenant-acme", None);
    assert_eq!(ns.expect(200)["memory_count"], 3);

    // GET recall with typed query parameters; tags comma-separated or repeated.
    let hits = s.call(
        "GET",
        "/v1/memory/recall?namespace=tenant-acme&query=product%20roadmap&top_k=5",
        k,
        None,
    );
    let hits = hits.expect(200).as_array().unwrap().clone();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0]["id"], id.as_str(), "the roadmap memory ranks first: {hits:?}");
    for field in
        ["id", "content", "score", "importance", "agent_id", "tags", "metadata", "created_at"]
    {
        assert!(hits[0].get(field).is_some(), "missing {field}");
    }
    let tagged = s.call(
        "GET",
        "/v1/memory/recall?namespace=tenant-acme&query=roadmap&tags=roadmap,q3",
        k,
        None,
    );
    assert_eq!(tagged.expect(200).as_array().unwrap().len(), 1);
    let repeated = s.call(
        "GET",
        "/v1/memory/recall?namespace=tenant-acme&query=roadmap&tags=roadmap&tags=q3",
        k,
        None,
    );
    assert_eq!(repeated.expect(200), &tagged.json);
    let important = s.call(
        "GET",
        "/v1/memory/recall?namespace=tenant-acme&query=roadmap&min_importance=0.8",
        k,
        None,
    );
    assert_eq!(important.expect(200).as_array().unwrap().len(), 1);
    let bad = s.call("GET", "/v1/memory/recall?namespace=tenant-acme&query=x&top_k=lots", k, None);
    assert_eq!(bad.expect_error(400, "invalid_argument")["field"], "top_k");
    let bad = s.call(
        "GET",
        "/v1/memory/recall?namespace=tenant-acme&query=x&min_importance=high",
        k,
        None,
    );
    assert_eq!(bad.expect_error(400, "invalid_argument")["field"], "min_importance");
    let bad = s.call("GET", "/v1/memory/recall?namespace=tenant-acme&query=x&colour=red", k, None);
    assert_eq!(bad.expect_error(400, "invalid_argument")["field"], "colour");

    // POST recall takes the same fields in a body.
    let posted = s.call(
        "POST",
        "/v1/memory/recall",
        k,
        Some(json!({"namespace": "tenant-acme", "query": "roadmap", "tags": ["roadmap", "q3"]})),
    );
    assert_eq!(posted.expect(200), &tagged.json);

    let got = s.call("GET", &format!("/v1/memory/{id}?namespace=tenant-acme"), k, None);
    assert_eq!(got.expect(200)["content"], "Acme Q3 roadmap: launch Omega in September");
    // The key's only namespace is used when none is named.
    s.call("GET", &format!("/v1/memory/{id}"), k, None).expect(200);

    let forgotten = s.call(
        "POST",
        "/v1/memory/forget",
        k,
        Some(json!({"namespace": "tenant-acme", "agent_id": "customer-2"})),
    );
    assert_eq!(forgotten.expect(200)["forgotten"], 1);
    s.call("POST", "/v1/memory/forget", k, Some(json!({"namespace": "tenant-acme"})))
        .expect_error(400, "invalid_argument");

    s.call("DELETE", &format!("/v1/memory/{id}?namespace=tenant-acme"), k, None).expect(200);
    s.call("GET", &format!("/v1/memory/{id}?namespace=tenant-acme"), k, None)
        .expect_error(404, "not_found");
    let left = s.call("GET", "/v1/memory/recall?namespace=tenant-acme&query=anything", k, None);
    assert_eq!(left.expect(200).as_array().unwrap().len(), 1);
}

#[test]
fn keys_cannot_reach_other_namespaces_and_get_the_same_403_for_unknown_ones() {
    let s = TestServer::start();
    for ns in ["tenant-acme-corp", "tenant-globex"] {
        s.admin("POST", "/v1/namespaces", Some(json!({"name": ns}))).expect(201);
    }
    let acme = key_for(&s, &[("tenant-acme-corp", "write")]);
    let globex = key_for(&s, &[("tenant-globex", "write")]);
    s.call(
        "POST",
        "/v1/memory/store",
        Some(&acme),
        Some(json!({"agent_id": "tenant-acme-corp", "content": "Acme secret plan"})),
    )
    .expect(201);

    // The seed guide's curl: the agent_id addresses the namespace.
    let seed =
        s.call("GET", "/v1/memory/recall?agent_id=tenant-acme-corp&query=x", Some(&globex), None);
    let body = seed.expect_error(403, "forbidden");
    assert_eq!(body["message"], "Key not authorized for namespace tenant-acme-corp");
    assert_eq!(body["namespace"], "tenant-acme-corp");
    // The owner reaches it the same way.
    let own =
        s.call("GET", "/v1/memory/recall?agent_id=tenant-acme-corp&query=plan", Some(&acme), None);
    assert_eq!(own.expect(200).as_array().unwrap().len(), 1);

    let explicit = s.call(
        "POST",
        "/v1/memory/store",
        Some(&globex),
        Some(json!({"namespace": "tenant-acme-corp", "content": "intrusion"})),
    );
    assert_eq!(
        explicit.expect_error(403, "forbidden")["message"],
        "Key not authorized for namespace tenant-acme-corp"
    );

    // A namespace that does not exist looks exactly like one that is not yours.
    let unknown =
        s.call("GET", "/v1/memory/recall?namespace=tenant-nobody&query=x", Some(&globex), None);
    let unknown = unknown.expect_error(403, "forbidden");
    assert_eq!(unknown["message"], "Key not authorized for namespace tenant-nobody");
    let keys: Vec<_> = unknown.as_object().unwrap().keys().collect();
    let seed_keys: Vec<_> = seed.json.as_object().unwrap().keys().collect();
    assert_eq!(keys, seed_keys);

    // Reads of another namespace's graph are refused the same way.
    let graph = s.call(
        "GET",
        "/v1/namespaces/tenant-acme-corp/graph/neighbors?entity=Acme",
        Some(&globex),
        None,
    );
    graph.expect_error(403, "forbidden");
    // Admins see namespaces that do not exist as 404.
    s.admin("GET", "/v1/memory/recall?namespace=tenant-nobody&query=x", None)
        .expect_error(404, "not_found");
}

#[test]
fn read_keys_cannot_write() {
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "docs"}))).expect(201);
    let reader = key_for(&s, &[("docs", "read")]);
    s.call(
        "POST",
        "/v1/memory/store",
        Some(&reader),
        Some(json!({"namespace": "docs", "content": "x"})),
    )
    .expect_error(403, "forbidden");
    s.call("GET", "/v1/memory/recall?namespace=docs&query=x", Some(&reader), None).expect(200);
}

#[test]
fn an_empty_namespace_name_is_an_answer_not_a_storage_error() {
    // Found by Schemathesis: an empty name used to reach LMDB as an empty key (500).
    let s = TestServer::start();
    s.admin("GET", "/v1/memory/0?namespace=", None).expect_error(404, "not_found");
    s.admin("POST", "/v1/memory/recall", Some(json!({"agent_id": "", "query": "x"})))
        .expect_error(404, "not_found");
    s.admin("POST", "/v1/memory/forget", Some(json!({"agent_id": ""})))
        .expect_error(404, "not_found");
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "ns"}))).expect(201);
    let key = key_for(&s, &[("ns", "write")]);
    s.call("GET", "/v1/memory/recall?namespace=&query=x", Some(&key), None)
        .expect_error(403, "forbidden");
}

#[test]
fn caller_ids_upsert_get_batch_and_update_over_http() {
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "docs"}))).expect(201);
    let key = key_for(&s, &[("docs", "write")]);
    let k = Some(key.as_str());
    let first = s
        .call("POST", "/v1/memory/store", k,
            Some(json!({"namespace": "docs", "id": "page/1 é", "content": "first text", "session_id": "s1"})))
        .expect(201)
        .clone();
    assert_eq!(first["id"], "page/1 é");
    assert_eq!(first["memory_type"], "episodic");
    assert_eq!(first["session_id"], "s1");
    let again = s
        .call("POST", "/v1/memory/store", k,
            Some(json!({"namespace": "docs", "id": "page/1 é", "content": "second text", "memory_type": "semantic"})))
        .expect(201)
        .clone();
    assert_eq!(again["created_at"], first["created_at"]);
    assert_eq!(again["memory_type"], "semantic");
    s.call(
        "POST",
        "/v1/memory/store",
        k,
        Some(json!({"namespace": "docs", "id": "x".repeat(2000), "content": "t"})),
    )
    .expect_error(400, "invalid_argument");
    // The id travels percent-encoded in the path.
    let got = s.call("GET", "/v1/memory/page%2F1%20%C3%A9?namespace=docs", k, None);
    assert_eq!(got.expect(200)["content"], "second text");
    let batch = s.call(
        "POST",
        "/v1/memory/get_batch",
        k,
        Some(json!({"namespace": "docs", "ids": ["nope", "page/1 é"], "include_vectors": true})),
    );
    let memories = batch.expect(200)["memories"].as_array().unwrap().clone();
    assert_eq!(memories.len(), 1);
    assert!(memories[0]["vector"].as_array().is_some_and(|v| !v.is_empty()));
    let updated = s.call(
        "PUT",
        "/v1/memory/page%2F1%20%C3%A9",
        k,
        Some(json!({"namespace": "docs", "metadata": {"tier": "gold"}, "tags": ["t"]})),
    );
    let updated = updated.expect(200).clone();
    assert_eq!(updated["metadata"], json!({"tier": "gold"}));
    assert_eq!(updated["content"], "second text");
    s.call("PUT", "/v1/memory/absent", k, Some(json!({"namespace": "docs", "importance": 0.1})))
        .expect_error(404, "not_found");
    let bad =
        s.call("PUT", "/v1/memory/absent", k, Some(json!({"namespace": "docs", "importance": 3})));
    assert_eq!(bad.expect_error(400, "invalid_argument")["field"], "importance");
}

/// The guide's example over HTTP with the default static model (`make models` fetches it).
#[test]
fn text_recall_finds_memories_by_meaning_with_the_static_model() {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        std::path::PathBuf::from,
    );
    let model = target.join("models/potion-base-8M");
    assert!(model.join("model.safetensors").is_file(), "run `make models` first");
    let embedder = memsilo::load_model(&model, "potion-base-8M").unwrap();
    let s = TestServer::start_engine(
        memsilo::Options { embedder, ..memsilo::Options::default() },
        memsilo_http::ServeOptions::default(),
    );
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "acme"}))).expect(201);
    let memories: Vec<_> =
        ["Q3 roadmap: Omega in Sept", "Hiring 4 ML engineers", "Budget: $2.4M allocated"]
            .iter()
            .map(|c| json!({"content": c}))
            .collect();
    s.admin(
        "POST",
        "/v1/memory/store_batch",
        Some(json!({"namespace": "acme", "memories": memories})),
    )
    .expect(201);
    for (query, want) in [
        ("recruiting", "Hiring 4 ML engineers"),
        ("how much money do we have", "Budget: $2.4M allocated"),
    ] {
        let hits = s.admin(
            "POST",
            "/v1/memory/recall",
            Some(json!({"namespace": "acme", "query": query})),
        );
        let hits = hits.expect(200).as_array().unwrap().clone();
        assert_eq!(hits[0]["content"], want, "{query}: {hits:?}");
    }
    assert_eq!(
        s.admin("GET", "/v1/namespaces/acme", None).expect(200)["embedder"],
        "potion-base-8M"
    );
}

/// Issue 17 over HTTP: `mode=keyword` finds a memory by a word only it contains (and nothing
/// else), `mode=vector` ranks every memory, hybrid puts first the memory both lists hold, and
/// `vector_weight` 0 / 1 follow the keyword / vector order. Each hit carries its scores.
#[test]
fn recall_modes_keyword_vector_and_hybrid() {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        std::path::PathBuf::from,
    );
    let model = target.join("models/potion-base-8M");
    assert!(model.join("model.safetensors").is_file(), "run `make models` first");
    let embedder = memsilo::load_model(&model, "potion-base-8M").unwrap();
    let s = TestServer::start_engine(
        memsilo::Options { embedder, ..memsilo::Options::default() },
        memsilo_http::ServeOptions::default(),
    );
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "acme"}))).expect(201);
    let contents = [
        "Q3 roadmap: Omega in Sept",
        "Hiring 4 ML engineers",
        "Budget: $2.4M allocated",
        "Order ZX-4471 shipped to the Lisbon warehouse",
    ];
    let memories: Vec<_> = contents.iter().map(|c| json!({"content": c})).collect();
    let body = json!({"namespace": "acme", "memories": memories});
    s.admin("POST", "/v1/memory/store_batch", Some(body)).expect(201);
    let recall = |extra: serde_json::Value| {
        let mut body = json!({"namespace": "acme", "top_k": 10});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        s.admin("POST", "/v1/memory/recall", Some(body)).expect(200).as_array().unwrap().clone()
    };
    let contents_of = |hits: &[serde_json::Value]| -> Vec<String> {
        hits.iter().map(|h| h["content"].as_str().unwrap().to_owned()).collect()
    };

    let keyword = recall(json!({"query": "zx-4471", "mode": "keyword"}));
    assert_eq!(contents_of(&keyword), [contents[3]], "{keyword:?}");
    assert!(keyword[0]["keyword_score"].as_f64().unwrap() > 0.0, "{keyword:?}");
    // The GET form takes the mode as a query parameter.
    let got = s.admin("GET", "/v1/memory/recall?namespace=acme&query=zx-4471&mode=keyword", None);
    assert_eq!(contents_of(got.expect(200).as_array().unwrap()), [contents[3]]);
    let vector = recall(json!({"query": "zx-4471", "mode": "vector"}));
    assert_eq!(vector.len(), 4, "vector recall ranks every memory: {vector:?}");

    // "hiring" is a word of one memory; the meaning of "money" is another's. Fused, the
    // memory in both lists comes first, whatever the vector order alone.
    let query = "how much money goes to hiring";
    let hybrid = recall(json!({"query": query, "mode": "hybrid"}));
    assert_eq!(hybrid[0]["content"], contents[1], "{hybrid:?}");
    assert!(hybrid[0]["keyword_score"].as_f64().unwrap() > 0.0, "{hybrid:?}");
    assert!(hybrid[0]["vector_score"].as_f64().is_some(), "{hybrid:?}");
    assert_eq!(recall(json!({"query": query}))[0]["content"], contents[1], "hybrid is the default");
    let vector = recall(json!({"query": query, "mode": "vector"}));
    let keyword = recall(json!({"query": query, "mode": "keyword"}));
    let only_vector = recall(json!({"query": query, "mode": "hybrid", "vector_weight": 1.0}));
    let only_keyword = recall(json!({"query": query, "mode": "hybrid", "vector_weight": 0.0}));
    assert_eq!(only_vector[0]["content"], vector[0]["content"], "{only_vector:?} vs {vector:?}");
    assert_eq!(only_keyword[0]["content"], keyword[0]["content"]);

    let bad = s.admin(
        "POST",
        "/v1/memory/recall",
        Some(json!({"namespace": "acme", "query": "x", "mode": "fuzzy"})),
    );
    assert_eq!(bad.expect_error(400, "invalid_argument")["field"], "mode");
}

#[test]
fn list_pages_count_and_filtered_recall_over_http() {
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "a"}))).expect(201);
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "b"}))).expect(201);
    let key = key_for(&s, &[("a", "write"), ("b", "write")]);
    let k = Some(key.as_str());
    let memories: Vec<_> = (0..7)
        .map(|i| {
            json!({"id": format!("m{i}"), "content": format!("note {i}"), "metadata": {"n": i},
                        "session_id": if i % 2 == 0 { "even" } else { "odd" }})
        })
        .collect();
    s.call(
        "POST",
        "/v1/memory/store_batch",
        k,
        Some(json!({"namespace": "a", "memories": memories})),
    )
    .expect(201);
    let mut ids = Vec::new();
    let mut cursor = serde_json::Value::Null;
    loop {
        let page = s
            .call(
                "POST",
                "/v1/memory/list",
                k,
                Some(json!({"namespace": "a", "limit": 3, "cursor": cursor})),
            )
            .expect(200)
            .clone();
        ids.extend(
            page["memories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned()),
        );
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
        // A cursor of namespace a is refused in namespace b.
        let other =
            s.call("POST", "/v1/memory/list", k, Some(json!({"namespace": "b", "cursor": cursor})));
        assert_eq!(other.expect_error(400, "invalid_argument")["field"], "cursor");
    }
    // One batch shares one created_at; ties are ordered by memory key, each memory once.
    ids.sort();
    assert_eq!(ids, ["m0", "m1", "m2", "m3", "m4", "m5", "m6"]);
    let count = s.call(
        "POST",
        "/v1/memory/count",
        k,
        Some(json!({"namespace": "a", "filter": {"session_id": "even", "metadata.n": {"$gt": 0}}})),
    );
    assert_eq!(count.expect(200)["count"], 3);
    let bad = s.call(
        "POST",
        "/v1/memory/count",
        k,
        Some(json!({"namespace": "a", "filter": {"metadata.n": {"$near": 1}}})),
    );
    assert_eq!(bad.expect_error(400, "invalid_argument")["field"], "filter.metadata.n.$near");
    let hits = s.call(
        "POST",
        "/v1/memory/recall",
        k,
        Some(json!({"namespace": "a", "query": "note", "session_id": "odd", "top_k": 10})),
    );
    let hits = hits.expect(200).as_array().unwrap().clone();
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().all(|h| h["session_id"] == "odd"));
    let forgot = s.call(
        "POST",
        "/v1/memory/forget",
        k,
        Some(json!({"namespace": "a", "filter": {"metadata.n": {"$lt": 2}}})),
    );
    assert_eq!(forgot.expect(200)["forgotten"], 2);
}

/// The bad inputs over HTTP, each a 400 naming its field with nothing written: a
/// 2,000-character id wherever an id goes (body, path, list of ids), an altered cursor, and an
/// unknown filter operator (a forget with one deletes nothing).
#[test]
fn bad_ids_cursors_and_operators_are_named_and_change_nothing_over_http() {
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "a"}))).expect(201);
    let key = key_for(&s, &[("a", "write")]);
    let k = Some(key.as_str());
    let memories: Vec<_> = (0..5)
        .map(|i| json!({"id": format!("m{i}"), "content": format!("note {i}"), "tags": ["t"]}))
        .collect();
    s.call(
        "POST",
        "/v1/memory/store_batch",
        k,
        Some(json!({"namespace": "a", "memories": memories})),
    )
    .expect(201);
    let long = "x".repeat(2000);
    let field = |r: crate::support::Resp| r.expect_error(400, "invalid_argument")["field"].clone();

    let batch = json!({"namespace": "a", "memories": [{"id": "new", "content": "n"}, {"id": long, "content": "n"}]});
    assert_eq!(field(s.call("POST", "/v1/memory/store_batch", k, Some(batch))), "memories[1].id");
    let path = format!("/v1/memory/{long}?namespace=a");
    assert_eq!(field(s.call("GET", &path, k, None)), "id");
    assert_eq!(field(s.call("DELETE", &path, k, None)), "id");
    let put = s.call(
        "PUT",
        &format!("/v1/memory/{long}"),
        k,
        Some(json!({"namespace": "a", "importance": 0.2})),
    );
    assert_eq!(field(put), "id");
    let get = json!({"namespace": "a", "ids": ["m1", long]});
    assert_eq!(field(s.call("POST", "/v1/memory/get_batch", k, Some(get))), "ids[1]");
    let forget = json!({"namespace": "a", "ids": [long]});
    assert_eq!(field(s.call("POST", "/v1/memory/forget", k, Some(forget))), "ids[0]");

    let page = s.call("POST", "/v1/memory/list", k, Some(json!({"namespace": "a", "limit": 2})));
    let cursor = page.expect(200)["next_cursor"].as_str().unwrap().to_owned();
    let mut bytes = cursor.into_bytes();
    let last = bytes.len() - 1;
    bytes[last] = if bytes[last] == b'0' { b'1' } else { b'0' };
    let altered = String::from_utf8(bytes).unwrap();
    let refused =
        s.call("POST", "/v1/memory/list", k, Some(json!({"namespace": "a", "cursor": altered})));
    let body = refused.expect_error(400, "invalid_argument").clone();
    assert_eq!(body["field"], "cursor");
    assert!(body.get("memories").is_none(), "no data with the refusal: {body}");

    let bad = json!({"tags": {"$contains": "t"}, "metadata.n": {"$regex": "^1"}});
    for path in ["/v1/memory/forget", "/v1/memory/list", "/v1/memory/count", "/v1/memory/recall"] {
        let args = json!({"namespace": "a", "query": "note", "filter": bad});
        let mut args = args.as_object().unwrap().clone();
        if path != "/v1/memory/recall" {
            args.remove("query");
        }
        assert_eq!(
            field(s.call("POST", path, k, Some(args.into()))),
            "filter.metadata.n.$regex",
            "{path}"
        );
    }
    // Nothing was written, changed or deleted.
    assert_eq!(s.call("GET", "/v1/namespaces/a", k, None).expect(200)["memory_count"], 5);
    s.call("GET", "/v1/memory/new?namespace=a", k, None).expect_error(404, "not_found");
    let m1 = s.call("GET", "/v1/memory/m1?namespace=a", k, None);
    assert_eq!(m1.expect(200)["importance"], json!(0.5));
}
