//! The admin console at `/console`: served with a strict Content-Security-Policy, its files
//! embedded in the binary; without a built console, a 503 that says how to build it.

use crate::support::{Resp, TestServer};

#[track_caller]
fn assert_strict_policy(r: &Resp) {
    let csp = r.header("content-security-policy").expect("a Content-Security-Policy header");
    for directive in
        ["default-src 'self'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]
    {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
}

#[test]
fn console_is_served_with_a_strict_policy_or_explains_how_to_build_it() {
    let s = TestServer::start();
    let page = s.call("GET", "/console", None, None);
    assert_strict_policy(&page);
    match page.status {
        200 => {
            assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
            assert!(!page.text.contains("<script>"), "no inline script: {}", page.text);
            // Every file the page loads is served by the binary itself, under /console.
            let assets: Vec<&str> = page
                .text
                .split(['"', '\''])
                .filter(|part| part.starts_with("/console/assets/"))
                .collect();
            let ext = |a: &str| a.rsplit('.').next().unwrap_or("").to_owned();
            assert!(assets.iter().any(|a| ext(a) == "js"), "{}", page.text);
            assert!(assets.iter().any(|a| ext(a) == "css"), "{}", page.text);
            for asset in assets {
                let r = s.call("GET", asset, None, None);
                assert_eq!(r.status, 200, "{asset}");
                assert_strict_policy(&r);
                assert!(r.header("cache-control").unwrap_or("").contains("immutable"), "{asset}");
                let want = if ext(asset) == "js" { "text/javascript" } else { "text/css" };
                assert!(r.header("content-type").unwrap_or("").starts_with(want), "{asset}");
            }
            assert_eq!(s.call("GET", "/console/", None, None).status, 200);
            let missing = s.call("GET", "/console/assets/nope.js", None, None);
            assert_eq!(missing.status, 404);
            assert_strict_policy(&missing);
        }
        503 => {
            assert!(page.text.contains("make console"), "{}", page.text);
            assert_strict_policy(&s.call("GET", "/console/assets/x.js", None, None));
        }
        other => panic!("GET /console answered {other}: {}", page.text),
    }
}
