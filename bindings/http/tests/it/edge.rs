//! What the edge does: rate limits and their headers, `max_connections`, body limits, JSON
//! errors for bad input, unknown routes and wrong methods, metrics.

use std::sync::{Arc, Barrier};

use memsilo_http::ServeOptions;
use serde_json::json;

use crate::support::TestServer;

fn tenant_with_key(s: &TestServer, name: &str, quotas: &serde_json::Value) -> (String, String) {
    let t = s.admin("POST", "/api/v1/tenants", Some(json!({"name": name, "quotas": quotas})));
    let tenant = t.expect(201)["id"].as_str().unwrap().to_owned();
    let ns = format!("{name}-ns").replace('_', "-");
    s.admin("POST", "/v1/namespaces", Some(json!({"name": ns, "tenant_id": tenant}))).expect(201);
    let k = s.admin(
        "POST",
        "/v1/keys",
        Some(json!({"name": "k", "tenant_id": tenant, "role": "editor"})),
    );
    (ns, k.expect(201)["key"].as_str().unwrap().to_owned())
}

#[test]
fn a_tiny_qps_quota_gives_429_with_retry_after_and_rate_headers() {
    let s = TestServer::start();
    let (ns, key) = tenant_with_key(&s, "slow_tenant", &json!({"qps_limit": 2}));
    let path = format!("/v1/memory/recall?namespace={ns}&query=x");
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..6 {
        let r = s.call("GET", &path, Some(&key), None);
        statuses.push(r.status);
        assert_eq!(r.header("x-ratelimit-limit"), Some("2"), "{:?}", r.headers);
        assert!(r.header("x-ratelimit-remaining").is_some());
        assert!(r.header("x-ratelimit-reset").is_some());
        if r.status == 429 {
            limited = Some(r);
            break;
        }
    }
    assert_eq!(statuses[0], 200, "{statuses:?}");
    let r = limited.unwrap_or_else(|| panic!("never limited: {statuses:?}"));
    r.expect_error(429, "rate_limited");
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    // The admin is not rate limited and gets no rate headers.
    let admin = s.admin("GET", "/v1/namespaces", None);
    assert_eq!(admin.status, 200);
    assert_eq!(admin.header("x-ratelimit-limit"), None);
}

#[test]
fn requests_beyond_max_connections_are_429() {
    let s = TestServer::start();
    let (ns, key) =
        tenant_with_key(&s, "busy_tenant", &json!({"max_connections": 1, "qps_limit": 100_000}));
    let memories: Vec<_> =
        (0..300).map(|i| json!({"content": format!("memory number {i} about things")})).collect();
    let body = json!({"namespace": ns, "memories": memories});
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let s = Arc::new(s);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (s, key, body, barrier) = (s.clone(), key.clone(), body.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let r = s.call("POST", "/v1/memory/store_batch", Some(&key), Some(body));
                (r.status, r.json)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|(st, _)| *st == 201).count();
    let refused: Vec<_> = results.iter().filter(|(st, _)| *st == 429).collect();
    assert!(ok >= 1, "{results:?}");
    assert!(!refused.is_empty(), "8 concurrent slow requests never overlapped: {results:?}");
    for (_, body) in &refused {
        assert_eq!(body["error"], "rate_limited");
        assert!(body["message"].as_str().unwrap().contains("max_connections 1"), "{body}");
    }
    assert_eq!(ok + refused.len(), threads, "{results:?}");
}

#[test]
fn oversized_malformed_and_misdirected_requests_get_json_errors() {
    let s = TestServer::start_with(ServeOptions { body_limit: 1024, ..ServeOptions::default() });
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "ns"}))).expect(201);

    let big = json!({"namespace": "ns", "content": "x".repeat(4096)});
    let r = s.admin("POST", "/v1/memory/store", Some(big));
    assert_eq!(r.expect_error(413, "payload_too_large")["field"], "body");

    let r = s.raw(
        "POST",
        "/v1/memory/store",
        Some(crate::support::ADMIN),
        Some("{\"namespace\": \"ns\", "),
    );
    assert_eq!(r.expect_error(400, "invalid_argument")["field"], "body");
    // The key is checked first: without a valid one, a bad body is still 401.
    s.raw("POST", "/v1/memory/store", None, Some("{oops")).expect_error(401, "unauthorized");
    s.raw("POST", "/v1/memory/store", Some("msk_bad"), Some("{oops"))
        .expect_error(401, "unauthorized");
    let r = s.raw("POST", "/v1/memory/store", Some(crate::support::ADMIN), Some("[1, 2]"));
    r.expect_error(400, "invalid_argument");
    let r = s.raw("POST", "/v1/memory/store", Some(crate::support::ADMIN), Some("not json at all"));
    r.expect_error(400, "invalid_argument");
    let r = s.admin(
        "POST",
        "/v1/memory/store",
        Some(json!({"namespace": "ns", "content": "x", "colour": 1})),
    );
    assert_eq!(r.expect_error(400, "invalid_argument")["field"], "colour");
    let r = s.admin("POST", "/v1/memory/store", Some(json!({"namespace": "ns", "content": 5})));
    r.expect_error(400, "invalid_argument");
    let r = s.admin("POST", "/v1/memory/store", None);
    assert_eq!(r.expect_error(400, "invalid_argument")["field"], "content");

    s.admin("GET", "/v1/nothing/here", None).expect_error(404, "not_found");
    s.call("GET", "/nothing", None, None).expect_error(404, "not_found");
    let r = s.admin("PATCH", "/v1/namespaces/ns", None);
    r.expect_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, DELETE"));
    let r = s.admin("GET", "/v1/memory/store", None);
    assert_eq!(r.status, 405, "{}", r.text);
}

/// A GET whose URL is over 65,534 bytes (hyper's fixed limit, and `http::Uri`'s) is refused
/// by the HTTP layer before memsilo reads the request: 414 with an empty body, which cannot
/// name the field (documented: long queries go by POST). The same query by POST is the JSON
/// error naming `query`; a long query under the limit works by GET.
#[test]
fn a_recall_url_over_the_uri_limit_is_414_and_the_same_query_by_post_names_the_field() {
    use std::io::{Read, Write};
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "ns"}))).expect(201);
    s.admin("POST", "/v1/memory/store", Some(json!({"namespace": "ns", "content": "xyz"})))
        .expect(201);
    let get = |query: &str| {
        let addr = s.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let head = format!(
            "GET /v1/memory/recall?namespace=ns&query={query} HTTP/1.1\r\nHost: {addr}\r\n\
             Authorization: Bearer {}\r\nConnection: close\r\n\r\n",
            crate::support::ADMIN
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    let long = "xyz+".repeat(17_500);
    let answer = get(&long);
    assert!(answer.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n"), "an empty body: {answer}");
    let r = s.admin("POST", "/v1/memory/recall", Some(json!({"namespace": "ns", "query": long})));
    assert_eq!(r.expect_error(400, "invalid_argument")["field"], "query");
    let answer = get(&long[..60_000]);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.contains("\"xyz\""), "{answer}");
}

#[test]
fn metrics_count_requests_by_route_template() {
    let s = TestServer::start();
    s.admin("POST", "/v1/namespaces", Some(json!({"name": "m1"}))).expect(201);
    s.admin("GET", "/v1/namespaces/m1", None).expect(200);
    s.admin("GET", "/v1/namespaces/zz", None).expect_error(404, "not_found");
    s.admin("POST", "/api/v1/tenants", Some(json!({"name": "metered"}))).expect(201);
    let m = s.admin("GET", "/metrics", None);
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    assert!(
        m.text.contains("memsilo_http_requests_total{method=\"GET\",route=\"/v1/namespaces/{name}\",status=\"200\"} 1"),
        "{}",
        m.text
    );
    assert!(m.text.contains("memsilo_http_requests_total{method=\"GET\",route=\"/v1/namespaces/{name}\",status=\"404\"} 1"));
    assert!(m.text.contains(
        "memsilo_http_request_duration_seconds_bucket{route=\"/v1/namespaces\",le=\"+Inf\"} 1"
    ));
    assert!(m.text.contains("memsilo_tenant_storage_bytes{tenant_id="), "{}", m.text);
    assert!(!m.text.contains("metered"), "tenant names are not labels");
    assert!(!m.text.contains("zz"), "concrete paths are not labels");
}

#[test]
fn a_body_that_stops_arriving_is_refused_after_the_request_timeout() {
    use std::io::{Read, Write};
    let s = TestServer::start_with(ServeOptions {
        request_timeout: std::time::Duration::from_secs(1),
        ..ServeOptions::default()
    });
    let addr = s.url.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    let started = std::time::Instant::now();
    write!(
        conn,
        "POST /v1/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        crate::support::ADMIN
    )
    .unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains('}') {
        let n = conn.read(&mut buf).expect("an answer before the read timeout");
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("\"error\":\"invalid_argument\""), "{text}");
    assert!(text.contains("not received within 1s"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_client_that_trickles_its_headers_is_disconnected() {
    use std::io::{Read, Write};
    let s = TestServer::start_with(ServeOptions {
        header_timeout: std::time::Duration::from_secs(1),
        ..ServeOptions::default()
    });
    let mut conn = std::net::TcpStream::connect(s.url.trim_start_matches("http://")).unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    // The server closes the connection (possibly after a 408) instead of waiting forever.
    let _ = conn.read_to_end(&mut rest);
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(5), "still open after {took:?}");
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
}
