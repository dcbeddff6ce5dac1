//! What a client written outside the team sees on the wire for requests no route table
//! handler answers: wrong methods on every kind of route, the request id on every answer,
//! query strings that are not text.

use serde_json::json;

use crate::support::{key_for, TestServer, ADMIN};

#[test]
fn a_wrong_method_names_the_allowed_ones_on_every_kind_of_route() {
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "ns"}))).expect(201);
    for (method, path, allowed) in [
        // a Dakera route, the streamed export and import, the server's own routes
        ("POST", "/v1/memories/forget/batch", "DELETE"),
        ("DELETE", "/v1/namespaces/ns/export", "GET"),
        ("GET", "/v1/namespaces/ns/import", "POST"),
        ("POST", "/healthz", "GET"),
        ("DELETE", "/openapi.json", "GET"),
        ("POST", "/metrics", "GET"),
        ("PATCH", "/v1/namespaces/ns", "GET, DELETE"),
    ] {
        let r = s.admin(method, path, None);
        r.expect_error(405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some(allowed), "{method} {path}");
        let message = r.json["message"].as_str().unwrap();
        assert!(message.ends_with(&format!("allowed: {allowed}")), "{method} {path}: {message}");
    }
}

#[test]
fn every_answer_carries_a_request_id_and_the_streams_echo_the_callers() {
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "ns"}))).expect(201);
    let key = key_for(&s, &[("ns", "write")]);
    for (method, path, auth) in [
        ("GET", "/healthz", None),
        ("GET", "/openapi.json", None),
        ("GET", "/metrics", Some(ADMIN)),
        ("GET", "/metrics", None),
        ("GET", "/nothing/here", Some(ADMIN)),
        ("POST", "/healthz", None),
        ("GET", "/v1/namespaces/ns/export", Some(key.as_str())),
        ("GET", "/v1/namespaces/other/export", Some(key.as_str())),
    ] {
        let r = s.call(method, path, auth, None);
        let id = r.header("x-request-id").unwrap_or_else(|| panic!("{method} {path}: none"));
        assert!((1..=128).contains(&id.len()), "{method} {path}: {id:?}");
        let mine = s.with_headers(method, path, auth, None, &[("X-Request-Id", "trace-42")]);
        assert_eq!(mine.header("x-request-id"), Some("trace-42"), "{method} {path}");
    }
    // The streamed import records the caller's id in the audit log, as every other route.
    let export = s.call("GET", "/v1/namespaces/ns/export", Some(&key), None);
    let r = s.with_headers(
        "POST",
        "/v1/namespaces/ns/import",
        Some(ADMIN),
        Some(&export.text),
        &[("X-Request-Id", "import-7"), ("Content-Type", "application/x-ndjson")],
    );
    assert_eq!((r.status, r.header("x-request-id")), (200, Some("import-7")), "{}", r.text);
    let log = s.admin("GET", "/api/v1/tenants/instance/audit?action=import_namespace", None);
    let entries = log.expect(200)["entries"].as_array().unwrap().clone();
    assert!(entries.iter().any(|e| e["request_id"] == "import-7"), "{entries:?}");
    // An id that is not 1-128 visible characters is replaced, never echoed.
    let too_long = "x".repeat(129);
    let r = s.with_headers("GET", "/healthz", None, None, &[("X-Request-Id", &too_long)]);
    let id = r.header("x-request-id").unwrap();
    assert!(id != too_long && !id.is_empty(), "{id}");
}

#[test]
fn a_query_value_that_is_not_utf8_is_refused_naming_its_parameter() {
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "ns"}))).expect(201);
    let key = key_for(&s, &[("ns", "write")]);
    let stored = json!({"namespace": "ns", "content": "caf\u{e9} opening hours"});
    s.call("POST", "/v1/memory/store", Some(&key), Some(stored)).expect(201);
    let r = s.call("GET", "/v1/memory/recall?namespace=ns&query=caf%E9", Some(&key), None);
    assert_eq!(r.expect_error(400, "invalid_argument")["field"], "query", "{}", r.text);
    let r = s.call("GET", "/v1/namespaces/ns/sessions?agent_id=%ff%fe", Some(&key), None);
    assert_eq!(r.expect_error(400, "invalid_argument")["field"], "agent_id", "{}", r.text);
    let r = s.call("GET", "/v1/namespaces?%ff=1", Some(ADMIN), None);
    assert_eq!(r.expect_error(400, "invalid_argument")["field"], "query", "{}", r.text);
    // Percent-encoded UTF-8 and `+` for a space still read as text.
    let r =
        s.call("GET", "/v1/memory/recall?namespace=ns&query=caf%C3%A9+opening", Some(&key), None);
    assert_eq!(r.expect(200)[0]["content"], "caf\u{e9} opening hours");
}

/// Writes a whole request the way Go's `net/http` and Node's `fetch` do (the body entirely
/// before reading the answer) and returns the answer's text; a write the server cut off is
/// the error a client reports instead of the answer.
fn post_whole(url: &str, chunked: bool, body_len: usize) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(url.trim_start_matches("http://"))?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {body_len}")
    };
    let head = format!(
        "POST /v1/memory/store HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\n{framing}\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes())?;
    let piece = vec![b' '; 1 << 20];
    for _ in 0..body_len / piece.len() {
        if chunked {
            conn.write_all(format!("{:x}\r\n", piece.len()).as_bytes())?;
        }
        conn.write_all(&piece)?;
        if chunked {
            conn.write_all(b"\r\n")?;
        }
    }
    if chunked {
        conn.write_all(b"0\r\n\r\n")?;
    }
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    Ok(answer)
}

#[test]
fn a_client_that_writes_a_whole_oversized_body_reads_the_413() {
    let s = TestServer::start_with(memsilo_http::ServeOptions {
        body_limit: 1 << 20,
        ..memsilo_http::ServeOptions::default()
    });
    for chunked in [false, true] {
        // 48 MiB: far more than the socket buffers hold, so a server that stops reading at
        // the limit and closes makes the client's write fail before it reads anything.
        let answer = post_whole(&s.url, chunked, 48 << 20)
            .unwrap_or_else(|e| panic!("chunked {chunked}: the write failed: {e}"));
        assert!(answer.starts_with("HTTP/1.1 413"), "chunked {chunked}: {answer}");
        assert!(answer.contains("\"payload_too_large\""), "{answer}");
    }
    // The connection is still answered normally afterwards.
    s.admin("GET", "/v1/namespaces", None).expect(200);
}

#[test]
fn namespace_key_routes_refuse_a_namespace_outside_the_callers_scope_whether_or_not_it_exists() {
    let s = TestServer::start();
    let mut tenants = Vec::new();
    for (name, ns) in [("acme_corp", "acme-ns"), ("globex_inc", "globex-ns")] {
        let t = s.admin("POST", "/api/v1/tenants", Some(json!({"name": name}))).expect(201).clone();
        let tenant = t["id"].as_str().unwrap().to_owned();
        s.admin("POST", "/v1/namespaces", Some(json!({"name": ns, "tenant_id": tenant})))
            .expect(201);
        tenants.push(tenant);
    }
    let victim = s.admin(
        "POST",
        "/v1/keys",
        Some(json!({"name": "g", "namespaces": [{"namespace": "globex-ns", "access": "read"}]})),
    );
    let victim_id = victim.expect(201)["id"].as_str().unwrap().to_owned();
    let tenant_admin = s.admin(
        "POST",
        "/v1/keys",
        Some(json!({"name": "a", "tenant_id": tenants[0], "role": "admin"})),
    );
    let tenant_admin = tenant_admin.expect(201)["key"].as_str().unwrap().to_owned();
    let scoped = key_for(&s, &[("acme-ns", "write")]);
    for key in [&tenant_admin, &scoped] {
        for (method, path) in
            [("GET", "/v1/namespaces/{ns}/keys"), ("DELETE", "/v1/namespaces/{ns}/keys/{id}")]
        {
            let answer = |ns: &str| {
                let path = path.replace("{ns}", ns).replace("{id}", &victim_id);
                let r = s.call(method, &path, Some(key), None);
                r.expect_error(403, "forbidden");
                r.json.to_string().replace(ns, "NS")
            };
            assert_eq!(answer("globex-ns"), answer("ghost-ns"), "{method} {path}");
            assert!(answer("globex-ns").contains("\"namespace\":\"NS\""), "{method} {path}");
        }
    }
    // The victim's key still works: nothing was revoked.
    let victim = s.admin("GET", "/v1/namespaces/globex-ns/keys", None);
    assert_eq!(victim.expect(200)["total"], 1);
}
