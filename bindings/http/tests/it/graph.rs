//! The knowledge graph routes over HTTP.

use serde_json::json;

use crate::support::{key_for, TestServer};

#[test]
fn entities_relations_neighbors_paths_and_deletion() {
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "kg"}))).expect(201);
    let key = key_for(&s, &[("kg", "write")]);
    let k = Some(key.as_str());
    let base = "/v1/namespaces/kg/graph";

    let acme = s
        .call(
            "POST",
            &format!("{base}/entities"),
            k,
            Some(json!({"name": "Acme", "type": "org", "properties": {"hq": "Berlin"}})),
        )
        .expect(201)
        .clone();
    assert_eq!(acme["name"], "Acme");
    assert_eq!(acme["type"], "org");
    let works = s
        .call(
            "POST",
            &format!("{base}/relations"),
            k,
            Some(json!({"source": "Alice", "target": "Acme", "type": "works_at"})),
        )
        .expect(201)
        .clone();
    s.call(
        "POST",
        &format!("{base}/relations"),
        k,
        Some(json!({"source": "Bob", "target": "Alice", "type": "knows", "weight": 2.0})),
    )
    .expect(201);
    // The path names the namespace; a body naming another one is refused.
    s.call(
        "POST",
        &format!("{base}/entities"),
        k,
        Some(json!({"namespace": "other", "name": "X"})),
    )
    .expect_error(400, "invalid_argument");

    let got = s.call("GET", &format!("{base}/entities/Acme"), k, None);
    assert_eq!(got.expect(200)["properties"]["hq"], "Berlin");
    s.call("GET", &format!("{base}/entities/Nobody"), k, None).expect_error(404, "not_found");

    let one = s.call("GET", &format!("{base}/neighbors?entity=Acme&depth=1"), k, None);
    assert_eq!(one.expect(200)["entities"].as_array().unwrap().len(), 2, "{}", one.text);
    let two = s.call("GET", &format!("{base}/neighbors?entity=Acme&depth=2"), k, None);
    assert_eq!(two.expect(200)["entities"].as_array().unwrap().len(), 3, "{}", two.text);
    let typed =
        s.call("GET", &format!("{base}/neighbors?entity=Alice&depth=1&type=knows"), k, None);
    assert_eq!(typed.expect(200)["relations"].as_array().unwrap().len(), 1, "{}", typed.text);
    s.call("GET", &format!("{base}/neighbors?entity=Acme&depth=deep"), k, None)
        .expect_error(400, "invalid_argument");
    let sub = s.call("GET", &format!("{base}/subgraph?entity=Alice&depth=1"), k, None);
    assert!(sub.expect(200)["entities"].as_array().unwrap().len() >= 2);

    let path = s.call("GET", &format!("{base}/path?from=Bob&to=Acme"), k, None);
    let path = path.expect(200);
    let names: Vec<_> =
        path["entities"].as_array().unwrap().iter().map(|e| e["name"].clone()).collect();
    assert_eq!(names, vec![json!("Bob"), json!("Alice"), json!("Acme")]);
    s.call("POST", &format!("{base}/entities"), k, Some(json!({"name": "Island"}))).expect(201);
    s.call("GET", &format!("{base}/path?from=Bob&to=Island"), k, None)
        .expect_error(404, "not_found");

    let rel = works["id"].as_str().unwrap();
    s.call("DELETE", &format!("{base}/relations/{rel}"), k, None).expect(200);
    s.call("GET", &format!("{base}/path?from=Bob&to=Acme"), k, None).expect_error(404, "not_found");
    let acme_id = acme["id"].as_str().unwrap();
    s.call("DELETE", &format!("{base}/entities/{acme_id}"), k, None).expect(200);
    s.call("GET", &format!("{base}/entities/Acme"), k, None).expect_error(404, "not_found");

    // Another namespace's key is refused before anything is looked up.
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "kg2"}))).expect(201);
    let other = key_for(&s, &[("kg2", "write")]);
    let r = s.call("GET", &format!("{base}/entities/Alice"), Some(&other), None);
    assert_eq!(r.expect_error(403, "forbidden")["message"], "Key not authorized for namespace kg");
}
