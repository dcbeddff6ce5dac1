//! The bad-input catalogue over HTTP, plus what only HTTP can get wrong: bodies that are not
//! UTF-8 or not JSON, oversized bodies, wrong content types, unknown routes and methods.
//! Every refusal is a 4xx with API.md's JSON error body; none is a 5xx; nothing is written.

use memsilo::{Engine, ErrorCode, Options};
use memsilo_reliability::snapshot;
use serde_json::{json, Value};

use crate::catalogue::{cases, fixture, TEXT_NS};
use crate::http::{self, Response, ADMIN_KEY};

/// Checks an error response; returns what is wrong, if anything.
fn judge(what: &str, resp: &Response, field: &str, codes: &[ErrorCode]) -> Option<String> {
    let body = resp.json();
    let text = String::from_utf8_lossy(&resp.body);
    let code = body["error"].as_str().and_then(ErrorCode::from_str_code);
    if resp.status >= 500 {
        return Some(format!("{what}: HTTP {} {text}", resp.status));
    }
    if !(400..500).contains(&resp.status) {
        return Some(format!("{what}: accepted with HTTP {}", resp.status));
    }
    let Some(code) = code else {
        return Some(format!("{what}: HTTP {} without a JSON error body: {text}", resp.status));
    };
    if body["code"] != json!(resp.status) || code.http_status() != resp.status {
        return Some(format!("{what}: status {} disagrees with the body {text}", resp.status));
    }
    if !codes.contains(&code) {
        return Some(format!("{what}: code {code}, wanted one of {codes:?}: {text}"));
    }
    let named = body["field"].as_str().is_some_and(|f| f.contains(field))
        || body["message"].as_str().is_some_and(|m| crate::bad_input::message_names(m, field));
    if !named {
        return Some(format!("{what}: refusal does not name {field:?}: {text}"));
    }
    None
}

/// What, method, target, headers, body, acceptable statuses, the field to name.
type Case<'a> = (&'a str, &'a str, String, Vec<(&'a str, &'a str)>, Vec<u8>, &'a [u16], &'a str);

fn engine(dir: &std::path::Path) -> Engine {
    let engine = Engine::open(dir, Options { background: false, ..Options::default() }).unwrap();
    engine.set_admin_key(ADMIN_KEY).unwrap();
    engine
}

#[test]
fn every_bad_input_of_the_catalogue_is_a_4xx_over_http_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let root = engine.root();
    let fx = fixture(&root);
    let server = http::serve(&engine);
    let cases = cases(&fx);
    let (mut sent, mut not_expressible) = (0, 0);
    let mut failures = Vec::new();
    for case in &cases {
        let before = snapshot(&root).unwrap();
        let what = format!("{} / {}", case.op, case.what);
        let Some(resp) = http::call(server.addr(), ADMIN_KEY, case.op, &case.args) else {
            not_expressible += 1;
            continue;
        };
        sent += 1;
        // JSON that deep never reaches core over HTTP: the body parser refuses it first. An
        // empty path segment (`GET .../graph/entities/`) is the route with the empty value,
        // answered as in process.
        let field = if case.what.contains("nested 200") { "body" } else { case.field };
        if let Some(f) = judge(&what, &resp, field, case.codes) {
            failures.push(f);
        }
        if snapshot(&root).unwrap() != before {
            failures.push(format!("{what}: the store changed"));
        }
    }
    eprintln!("bad inputs sent over HTTP: {sent} ({not_expressible} of the catalogue have no HTTP form, e.g. a missing path parameter)");
    assert!(sent > 150, "too few catalogue cases reached the server: {sent}");
    assert!(
        failures.is_empty(),
        "{} of {sent} bad inputs mishandled over HTTP:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn malformed_bodies_and_requests_get_a_json_4xx_never_a_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let root = engine.root();
    let _fx = fixture(&root);
    let server = http::serve(&engine);
    let addr = server.addr();
    let auth = format!("Bearer {ADMIN_KEY}");
    let json_ct = ("Content-Type", "application/json");
    let bearer = ("Authorization", auth.as_str());
    let store = "/v1/memory/store";
    let valid = br#"{"namespace":"bad-input-text","content":"hello"}"#.to_vec();
    let mut big = br#"{"namespace":"bad-input-text","content":""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', 20 << 20));
    big.extend_from_slice(b"\"}");
    let mut bad_utf8 = br#"{"namespace":"bad-input-text","content":"ab"#.to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    bad_utf8.extend_from_slice(b"\"}");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let meta_127 = format!(
        r#"{{"namespace":"bad-input-text","content":"deep","metadata":{}}}"#,
        serde_json::to_string(&crate::catalogue::nested(100)).unwrap()
    );
    let cases: Vec<Case> = vec![
        (
            "invalid UTF-8 body",
            "POST",
            store.into(),
            vec![bearer, json_ct],
            bad_utf8,
            &[400],
            "body",
        ),
        (
            "non-JSON body",
            "POST",
            store.into(),
            vec![bearer, json_ct],
            b"content=hello".to_vec(),
            &[400],
            "body",
        ),
        ("empty body", "POST", store.into(), vec![bearer, json_ct], Vec::new(), &[400], "content"),
        (
            "truncated JSON",
            "POST",
            store.into(),
            vec![bearer, json_ct],
            br#"{"namespace":"bad-input-text","con"#.to_vec(),
            &[400],
            "body",
        ),
        (
            "JSON array body",
            "POST",
            store.into(),
            vec![bearer, json_ct],
            b"[1,2,3]".to_vec(),
            &[400],
            "body",
        ),
        (
            "JSON string body",
            "POST",
            store.into(),
            vec![bearer, json_ct],
            b"\"hello\"".to_vec(),
            &[400],
            "body",
        ),
        (
            "number beyond f64 (1e400)",
            "POST",
            store.into(),
            vec![bearer, json_ct],
            br#"{"namespace":"bad-input-text","content":"x","importance":1e400}"#.to_vec(),
            &[400],
            "body",
        ),
        (
            "NaN literal",
            "POST",
            store.into(),
            vec![bearer, json_ct],
            br#"{"namespace":"bad-input-text","content":"x","importance":NaN}"#.to_vec(),
            &[400],
            "body",
        ),
        (
            "arrays nested 10,000 deep",
            "POST",
            store.into(),
            vec![bearer, json_ct],
            deep.into_bytes(),
            &[400],
            "body",
        ),
        (
            "metadata nested 100 deep (parses, then refused by core)",
            "POST",
            store.into(),
            vec![bearer, json_ct],
            meta_127.into_bytes(),
            &[400],
            "metadata",
        ),
        ("20 MiB body", "POST", store.into(), vec![bearer, json_ct], big.clone(), &[413], "body"),
        (
            "20 MiB body without a content type",
            "POST",
            store.into(),
            vec![bearer],
            big,
            &[413, 415],
            "",
        ),
        (
            "text/plain content type, not JSON",
            "POST",
            store.into(),
            vec![bearer, ("Content-Type", "text/plain")],
            b"hello".to_vec(),
            &[400, 415],
            "",
        ),
        (
            "form content type, form body",
            "POST",
            store.into(),
            vec![bearer, ("Content-Type", "application/x-www-form-urlencoded")],
            b"content=hello&namespace=bad-input-text".to_vec(),
            &[400, 415],
            "",
        ),
        ("no key", "POST", store.into(), vec![json_ct], valid.clone(), &[401], ""),
        (
            "malformed key",
            "POST",
            store.into(),
            vec![("Authorization", "Bearer msk_not-a-key"), json_ct],
            valid.clone(),
            &[401],
            "",
        ),
        (
            "basic auth",
            "POST",
            store.into(),
            vec![("Authorization", "Basic YWRtaW46YWRtaW4="), json_ct],
            valid.clone(),
            &[401],
            "",
        ),
        ("unknown route", "GET", "/v1/drop_database".into(), vec![bearer], Vec::new(), &[404], ""),
        (
            "wrong method",
            "PATCH",
            "/v1/namespaces".into(),
            vec![bearer],
            Vec::new(),
            &[404, 405],
            "",
        ),
        (
            "top_k not a number in the query",
            "GET",
            "/v1/memory/recall?namespace=bad-input-text&query=x&top_k=ten".into(),
            vec![bearer],
            Vec::new(),
            &[400],
            "top_k",
        ),
        (
            "top_k given twice",
            "GET",
            "/v1/memory/recall?namespace=bad-input-text&query=x&top_k=1&top_k=2".into(),
            vec![bearer],
            Vec::new(),
            &[400],
            "top_k",
        ),
        (
            "invalid UTF-8 percent-encoded in a namespace",
            "GET",
            "/v1/memory/recall?namespace=%FF%FE&query=x".into(),
            vec![bearer],
            Vec::new(),
            &[400, 404],
            "",
        ),
        (
            "unknown query parameter",
            "GET",
            "/v1/memory/recall?namespace=bad-input-text&query=x&rerank=1".into(),
            vec![bearer],
            Vec::new(),
            &[400],
            "rerank",
        ),
        (
            "namespace name of 10,000 chars in the path",
            "GET",
            format!("/v1/namespaces/{}", "n".repeat(10_000)),
            vec![bearer],
            Vec::new(),
            &[400, 404, 414, 431],
            "",
        ),
        (
            "percent-encoded slash in a name",
            "GET",
            "/v1/namespaces/..%2F..%2Fcatalog".into(),
            vec![bearer],
            Vec::new(),
            &[400, 404],
            "",
        ),
        (
            "memory id not a UUID",
            "GET",
            "/v1/memory/%00?namespace=bad-input-text".into(),
            vec![bearer],
            Vec::new(),
            &[400, 404],
            "",
        ),
        (
            "body and query give the same field",
            "POST",
            "/v1/memory/recall?top_k=3".into(),
            vec![bearer, json_ct],
            br#"{"namespace":"bad-input-text","query":"x","top_k":4}"#.to_vec(),
            &[400],
            "top_k",
        ),
        (
            "path and body disagree",
            "POST",
            "/v1/namespaces/bad-input-text/graph/entities".into(),
            vec![bearer, json_ct],
            br#"{"namespace":"other","name":"Bob"}"#.to_vec(),
            &[400],
            "namespace",
        ),
        (
            "policy body not an object",
            "PUT",
            "/v1/namespaces/bad-input-text/policy".into(),
            vec![bearer, json_ct],
            b"17".to_vec(),
            &[400],
            "policy",
        ),
    ];
    let before = snapshot(&root).unwrap();
    let mut failures = Vec::new();
    for (what, method, target, headers, body, statuses, field) in &cases {
        let resp = match http::send(addr, method, target, headers, body) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{what}: no answer ({e})"));
                continue;
            }
        };
        let text = String::from_utf8_lossy(&resp.body[..resp.body.len().min(300)]).into_owned();
        let parsed: Value = resp.json();
        if resp.status >= 500 || !statuses.contains(&resp.status) {
            failures.push(format!("{what}: HTTP {}, wanted {statuses:?}: {text}", resp.status));
        } else if parsed["error"].as_str().and_then(ErrorCode::from_str_code).is_none()
            || parsed["code"] != json!(resp.status)
        {
            failures
                .push(format!("{what}: HTTP {} without API.md's error body: {text}", resp.status));
        } else if !(field.is_empty()
            || parsed["field"].as_str().is_some_and(|f| f.contains(field))
            || parsed["message"]
                .as_str()
                .is_some_and(|m| crate::bad_input::message_names(m, field)))
        {
            failures.push(format!("{what}: refusal does not name {field:?}: {text}"));
        }
    }
    assert_eq!(snapshot(&root).unwrap(), before, "a refused request changed the store");
    // The server reads any body as JSON whatever its content type (so `curl -d '{...}'`,
    // which says form-urlencoded, works): a JSON body under another content type is either
    // refused with a 4xx or stored exactly as with `application/json`, never a 5xx.
    for (what, ct) in [
        ("text/plain", Some("text/plain")),
        ("form", Some("application/x-www-form-urlencoded")),
        ("none", None),
    ] {
        let mut headers = vec![bearer];
        headers.extend(ct.map(|c| ("Content-Type", c)));
        let resp = http::send(addr, "POST", store, &headers, &valid).unwrap();
        let body = resp.json();
        let ok = match resp.status {
            201 => body["content"] == "hello" && body["namespace"] == TEXT_NS,
            400 | 415 => body["error"].is_string(),
            _ => false,
        };
        if !ok {
            failures
                .push(format!("JSON body with content type {what}: HTTP {} {body}", resp.status));
        }
    }
    // The server still answers normally afterwards.
    let ok =
        http::call(addr, ADMIN_KEY, "recall", &json!({ "namespace": TEXT_NS, "query": "roadmap" }))
            .unwrap();
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    eprintln!("malformed HTTP requests tried: {}", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} malformed requests mishandled:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
