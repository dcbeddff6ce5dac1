//! `/openapi.json` describes every route that is served, and only those.

use memsilo_http::routes::ROUTES;

use crate::support::TestServer;

#[test]
fn the_document_lists_every_served_route_with_the_error_body() {
    let s = TestServer::start();
    let doc = s.call("GET", "/openapi.json", None, None);
    let doc = doc.expect(200).clone();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut ids = std::collections::HashSet::new();
    let dakera = memsilo_http::dakera::routes().map(|d| &d.route);
    for route in ROUTES.iter().chain(dakera) {
        let op = &paths[route.path][route.method.as_str().to_ascii_lowercase()];
        assert!(op.is_object(), "{} {} undocumented", route.method.as_str(), route.path);
        assert!(
            ids.insert(op["operationId"].as_str().unwrap().to_owned()),
            "duplicate operationId"
        );
        assert!(op["responses"][route.status.to_string()].is_object());
        assert_eq!(op["responses"]["403"]["$ref"], "#/components/responses/403");
        // Every documented route is routed (a wrong id is fine; an unknown route is not).
        let concrete = route.path.replace(['{', '}'], "");
        let r = s.admin(route.method.as_str(), &concrete, None);
        assert!(
            !(r.status == 405
                || (r.status == 404
                    && r.json["message"].as_str().unwrap_or("").starts_with("route"))),
            "{} {} is documented but not served: {}",
            route.method.as_str(),
            route.path,
            r.text
        );
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    let served = ROUTES.len() + memsilo_http::dakera::routes().count();
    // healthz, metrics, openapi.json and the streamed export and import besides the table.
    assert_eq!(documented, served + 5, "healthz, metrics, openapi.json, export, import");
    // A GET's arguments are in its URL, which the HTTP layer caps (414, empty body): the
    // document says so and points to POST.
    let too_long = &paths["/v1/memory/recall"]["get"]["responses"]["414"]["description"];
    assert!(too_long.as_str().is_some_and(|d| d.contains("65,534") && d.contains("POST")));
    assert!(paths["/v1/memory/recall"]["post"]["responses"]["414"].is_null());
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error", "message", "code"]));
    assert_eq!(
        error["properties"]["error"]["enum"].as_array().unwrap().len(),
        memsilo::ErrorCode::ALL.len()
    );
}
