//! A hostile or careless caller over HTTP: every odd request gets a clear 4xx naming what is
//! wrong, never a 500 or a hang, and nothing is half-written.

use serde_json::json;

use crate::support::{TestServer, ADMIN};

#[test]
fn a_key_sent_twice_in_a_body_is_refused_naming_it_and_nothing_is_stored() {
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "ns"}))).expect(201);
    // A proxy that keeps the first value sees importance 0.1; memsilo would have stored 0.9.
    let body = r#"{"namespace": "ns", "content": "twice", "importance": 0.1, "importance": 0.9}"#;
    let r = s.raw("POST", "/v1/memory/store", Some(ADMIN), Some(body));
    let e = r.expect_error(400, "invalid_argument");
    assert_eq!(e["field"], "importance", "{}", r.text);
    assert!(e["message"].as_str().unwrap().contains("more than once"), "{}", r.text);
    // Nested: the path names the memory.
    let body =
        r#"{"namespace": "ns", "memories": [{"content": "a"}, {"content": "b", "content": "c"}]}"#;
    let r = s.raw("POST", "/v1/memory/store_batch", Some(ADMIN), Some(body));
    assert_eq!(r.expect_error(400, "invalid_argument")["field"], "memories[1].content");
    let count = s.admin("POST", "/v1/memory/count", Some(json!({"namespace": "ns"})));
    assert_eq!(count.expect(200)["count"], 0, "{}", count.text);
    // The same key in two different objects is fine.
    let body = r#"{"namespace": "ns", "memories": [{"content": "a"}, {"content": "b"}]}"#;
    s.raw("POST", "/v1/memory/store_batch", Some(ADMIN), Some(body)).expect(201);
}

/// The request id header as sent, on a raw connection (no client library cleans it up).
fn raw_request(s: &TestServer, head: &[u8]) -> String {
    use std::io::{Read, Write};
    let addr = s.url.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    conn.write_all(head).unwrap();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn odd_bodies_are_refused_naming_the_body_or_the_field() {
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "ns"}))).expect(201);
    // A form post (curl -d without a JSON content type) says what it was sent as.
    let r = s.with_headers(
        "POST",
        "/v1/memory/store",
        Some(ADMIN),
        Some("namespace=ns&content=hello"),
        &[("content-type", "application/x-www-form-urlencoded")],
    );
    let e = r.expect_error(400, "invalid_argument");
    assert_eq!(e["field"], "body");
    assert!(
        e["message"].as_str().unwrap().contains("application/x-www-form-urlencoded"),
        "{}",
        r.text
    );
    // JSON sent as text/plain is still JSON: it is read.
    let r = s.with_headers(
        "POST",
        "/v1/memory/store",
        Some(ADMIN),
        Some(r#"{"namespace": "ns", "content": "plain"}"#),
        &[("content-type", "text/plain")],
    );
    r.expect(201);
    // Empty bodies: the first required field is named.
    for (path, field) in [
        ("/v1/memory/store", "content"),
        ("/v1/namespaces", "name"),
        ("/v1/keys", "name"),
        ("/api/v1/tenants", "name"),
    ] {
        let r = s.raw("POST", path, Some(ADMIN), Some(""));
        assert_eq!(r.expect_error(400, "invalid_argument")["field"], field, "{path}");
    }
    // A JSON array, string, number or null where an object belongs.
    for body in
        ["[]", "[{\"namespace\": \"ns\", \"content\": \"x\"}]", "\"text\"", "42", "null", "true"]
    {
        let r = s.raw("POST", "/v1/memory/store", Some(ADMIN), Some(body));
        let e = r.expect_error(400, "invalid_argument");
        assert!(e["field"] == "body" || e["field"] == "content", "{body}: {}", r.text);
    }
    let count = s.admin("POST", "/v1/memory/count", Some(json!({"namespace": "ns"})));
    assert_eq!(count.expect(200)["count"], 1, "only the text/plain JSON store: {}", count.text);
}

#[test]
fn huge_negative_and_fractional_numbers_are_refused_naming_the_field() {
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "ns"}))).expect(201);
    for (query, field) in [
        ("limit=1000000", "limit"),
        ("limit=18446744073709551616", "limit"),
        ("limit=99999999999999999999999999999", "limit"),
        ("limit=-1", "limit"),
        ("limit=1.5", "limit"),
        ("limit=1e3", "limit"),
        ("offset=-5", "offset"),
        ("offset=18446744073709551616", "offset"),
    ] {
        let r = s.admin("GET", &format!("/v1/namespaces?{query}"), None);
        assert_eq!(r.expect_error(400, "invalid_argument")["field"], field, "{query}: {}", r.text);
    }
    for (query, field) in [
        ("top_k=1000000000", "top_k"),
        ("top_k=-1", "top_k"),
        ("top_k=18446744073709551616", "top_k"),
        ("top_k=0", "top_k"),
    ] {
        let path = format!("/v1/memory/recall?namespace=ns&query=x&{query}");
        let r = s.admin("GET", &path, None);
        assert_eq!(r.expect_error(400, "invalid_argument")["field"], field, "{query}: {}", r.text);
    }
    for (args, field) in [
        (r#""top_k": 1e300"#, "top_k"),
        (r#""top_k": -1"#, "top_k"),
        (r#""top_k": 18446744073709551616"#, "top_k"),
        (r#""top_k": 99999999999999999999999999999999999999"#, "top_k"),
        (r#""top_k": 2.5"#, "top_k"),
        (r#""top_k": "10""#, "top_k"),
        (r#""min_importance": 1e400"#, "body"),
    ] {
        let body = format!(r#"{{"namespace": "ns", "query": "x", {args}}}"#);
        let r = s.raw("POST", "/v1/memory/recall", Some(ADMIN), Some(&body));
        assert_eq!(r.expect_error(400, "invalid_argument")["field"], field, "{args}: {}", r.text);
    }
    for (args, field) in [
        (r#""limit": -1"#, "limit"),
        (r#""limit": 1e20"#, "limit"),
        (r#""limit": 18446744073709551616"#, "limit"),
    ] {
        let body = format!(r#"{{"namespace": "ns", {args}}}"#);
        let r = s.raw("POST", "/v1/memory/list", Some(ADMIN), Some(&body));
        assert_eq!(r.expect_error(400, "invalid_argument")["field"], field, "{args}: {}", r.text);
    }
}

#[test]
fn odd_namespace_names_are_refused_or_not_found_never_a_fault() {
    let s = TestServer::start();
    let long = "n".repeat(10 * 1024);
    for name in [
        "ñame",
        "名前",
        "emoji-🦀",
        "../../etc/passwd",
        "..",
        ".",
        "a/b",
        "a\\b",
        "",
        long.as_str(),
        "a\u{0}b",
        "a b",
    ] {
        let r = s.admin("POST", "/v1/namespaces", Some(json!({"name": name})));
        assert_eq!(
            r.expect_error(400, "invalid_argument")["field"],
            "name",
            "{name:.40}: {}",
            r.text
        );
    }
    // In the path, percent-encoded or not: refused or unknown, never a 500 or a file outside.
    for path in [
        "/v1/namespaces/%C3%B1ame",
        "/v1/namespaces/..%2F..%2Fetc%2Fpasswd",
        "/v1/namespaces/%2E%2E",
        "/v1/namespaces/a%00b",
        &format!("/v1/namespaces/{long}"),
        "/v1/namespaces/..%5C..%5Cwindows",
    ] {
        let r = s.admin("GET", path, None);
        assert!(matches!(r.status, 400 | 404), "{path:.60}: {} {}", r.status, r.text);
        assert!(r.json["error"].is_string(), "{path:.60}: {}", r.text);
        let r = s.admin("DELETE", path, None);
        assert!(matches!(r.status, 400 | 404), "{path:.60}: {} {}", r.status, r.text);
        let r = s.admin(
            "POST",
            "/v1/memory/store",
            Some(json!({"namespace": path.rsplit('/').next().unwrap(), "content": "x"})),
        );
        assert!(matches!(r.status, 400 | 404), "{path:.60}: {} {}", r.status, r.text);
    }
    // A scoped key gets 403 for any such name, as for any namespace outside its scope.
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "mine"}))).expect(201);
    let key = crate::support::key_for(&s, &[("mine", "write")]);
    for name in ["../mine", "mine/..", "MINE", "mine%00"] {
        let path = format!("/v1/memory/recall?namespace={name}&query=x");
        let r = s.call("GET", &path, Some(&key), None);
        assert!(matches!(r.status, 400 | 403), "{name}: {} {}", r.status, r.text);
    }
}

#[test]
fn a_request_id_that_could_inject_a_header_is_replaced_never_echoed() {
    let s = TestServer::start();
    let sent = [
        "evil\r\nSet-Cookie: pwned=1",
        "evil\nX-Injected: 1",
        "with space",
        "tab\there",
        "caf\u{e9}",
    ];
    for id in sent {
        let head = format!(
            "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nX-Request-Id: {id}\r\nConnection: close\r\n\r\n"
        );
        let answer = raw_request(&s, head.as_bytes());
        let lower = answer.to_ascii_lowercase();
        assert!(!lower.contains("set-cookie") && !lower.contains("x-injected"), "{id:?}: {answer}");
        assert!(
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.1 400"),
            "{id:?}: {answer}"
        );
        let echoed = answer
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .unwrap_or_else(|| panic!("{id:?}: no request id: {answer}"));
        assert_ne!(echoed, id, "{id:?}");
        assert!(echoed.bytes().all(|b| b.is_ascii_graphic()), "{echoed:?}");
    }
    // Too long: replaced as well.
    let long = "a".repeat(4096);
    let r = s.with_headers("GET", "/v1/whoami", Some(ADMIN), None, &[("x-request-id", &long)]);
    r.expect(200);
    assert!(
        r.header("x-request-id").is_some_and(|id| id.len() <= 128),
        "{:?}",
        r.header("x-request-id")
    );
    // A fine one is echoed as sent.
    let r =
        s.with_headers("GET", "/v1/whoami", Some(ADMIN), None, &[("x-request-id", "req-42.a_b")]);
    assert_eq!(r.header("x-request-id"), Some("req-42.a_b"));
}
