//! Bad input under load: 64 clients at once store and recall, with 1% malformed requests
//! mixed in. Only those fail, each with a 400 naming its field; every well-formed request
//! succeeds, and every memory acknowledged is there afterwards, nothing else.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::support::{key_for, TestServer};

const CLIENTS: usize = 64;
const PER_CLIENT: usize = 25;
const PRELOADED: usize = 200;

/// What request `n` is: a store or a recall, and if malformed, the field it gets wrong.
fn request(n: usize) -> (Value, &'static str, Option<&'static str>) {
    let store = |extra: Value| {
        let mut body =
            json!({"namespace": "load", "content": format!("note {n} about topic {}", n % 7)});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        (body, "/v1/memory/store", None)
    };
    let recall = |top_k: u32| {
        let body =
            json!({"namespace": "load", "query": format!("topic {}", n % 7), "top_k": top_k});
        (body, "/v1/memory/recall", None)
    };
    if n % 100 != 37 {
        return if n.is_multiple_of(2) { store(json!({})) } else { recall(5) };
    }
    let (body, path, _) = match (n / 100) % 3 {
        // Refused while the request is checked, before it joins a commit group.
        0 => store(json!({"importance": 7})),
        // Refused inside the commit group's transaction, beside well-formed stores.
        1 => store(json!({"embedding": [0.1, 0.2, 0.3]})),
        _ => recall(0),
    };
    let field = match (n / 100) % 3 {
        0 => "importance",
        1 => "embedding",
        _ => "top_k",
    };
    (body, path, Some(field))
}

#[test]
fn one_percent_malformed_requests_among_64_clients_fail_alone() {
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "load"}))).expect(201);
    let key = key_for(&s, &[("load", "write")]);
    let k = Some(key.as_str());
    let memories: Vec<Value> = (0..PRELOADED)
        .map(|i| json!({"content": format!("preloaded {i} topic {}", i % 7)}))
        .collect();
    s.call(
        "POST",
        "/v1/memory/store_batch",
        k,
        Some(json!({"namespace": "load", "memories": memories})),
    )
    .expect(201);

    let outcomes: Vec<(usize, u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|t| {
                let s = &s;
                scope.spawn(move || {
                    (0..PER_CLIENT)
                        .map(|i| {
                            let n = i * CLIENTS + t;
                            let (body, path, _) = request(n);
                            let resp = s.call("POST", path, k, Some(body));
                            (n, resp.status, resp.json)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });

    let mut acknowledged = HashSet::new();
    let mut malformed = 0;
    for (n, status, body) in &outcomes {
        let (_, path, field) = request(*n);
        match field {
            Some(field) => {
                malformed += 1;
                assert_eq!(*status, 400, "malformed request {n}: {body}");
                assert_eq!(body["error"], "invalid_argument", "request {n}: {body}");
                assert_eq!(body["field"], field, "request {n}: {body}");
            }
            None if path.ends_with("store") => {
                assert_eq!(*status, 201, "store {n} failed: {body}");
                acknowledged.insert(body["id"].as_str().unwrap().to_owned());
            }
            None => {
                assert_eq!(*status, 200, "recall {n} failed: {body}");
                assert_eq!(body.as_array().map(Vec::len), Some(5), "recall {n}: {body}");
            }
        }
    }
    assert_eq!(malformed, CLIENTS * PER_CLIENT / 100, "1% of the requests were malformed");

    // Every acknowledged store is there, and nothing else was written.
    let ns = s.call("GET", "/v1/namespaces/load", k, None).expect(200).clone();
    assert_eq!(ns["memory_count"], PRELOADED + acknowledged.len(), "{ns}");
    for id in &acknowledged {
        s.call("GET", &format!("/v1/memory/{id}?namespace=load"), k, None).expect(200);
    }
}
