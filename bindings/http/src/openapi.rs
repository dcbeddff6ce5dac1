//! `GET /openapi.json`: an `OpenAPI` 3.1 document built from the route table, with request and
//! response schemas derived from core's Rust types, so it cannot drift from what is served.

use serde_json::{json, Map, Value};

use crate::routes::{Body, Kind, Route, ROUTES};
use crate::schemas;

/// The whole document.
#[allow(clippy::too_many_lines)] // the table routes, then the hand-written ones, in order
pub fn document() -> Value {
    let mut components = schemas::Components::default();
    let mut paths: Map<String, Value> = Map::new();
    for route in ROUTES {
        let op = operation(route, &mut components);
        let entry = paths.entry(route.path.to_owned()).or_insert_with(|| json!({}));
        entry[route.method.as_str().to_ascii_lowercase()] = op;
    }
    for d in crate::dakera::routes() {
        let entry = paths.entry(d.route.path.to_owned()).or_insert_with(|| json!({}));
        entry[d.route.method.as_str().to_ascii_lowercase()] = dakera_operation(d);
    }
    let name_param = json!({ "name": "name", "in": "path", "required": true,
        "description": "The `namespace` argument", "schema": { "type": "string" } });
    let page_size = json!({ "name": "page_size", "in": "query", "required": false,
        "description": "Lines per page or batch (default 1000, at most 10000)",
        "schema": { "type": "integer", "minimum": 1, "maximum": 10000 } });
    let errors = || {
        let mut out = Map::new();
        for status in ["400", "401", "403", "404", "409", "413", "429", "500"] {
            out.insert(
                status.into(),
                json!({ "$ref": format!("#/components/responses/{status}") }),
            );
        }
        out
    };
    let mut export = errors();
    export.insert(
        "200".into(),
        json!({ "description": "The namespace as JSON Lines, streamed",
        "content": { "application/x-ndjson": { "schema": { "type": "string" } } } }),
    );
    paths.insert(
        "/v1/namespaces/{name}/export".into(),
        json!({ "get": {
            "operationId": "export_namespace_stream", "tags": ["namespaces"],
            "summary": "The namespace as JSON Lines (streamed; a cut body means the export failed midway)",
            "parameters": [name_param.clone(), page_size.clone()], "responses": export,
        }}),
    );
    let mut import = errors();
    import.insert(
        "200".into(),
        json!({ "description": "What was written",
        "content": { "application/json": { "schema": { "type": "object" } } } }),
    );
    paths.insert(
        "/v1/namespaces/{name}/import".into(),
        json!({ "post": {
            "operationId": "import_namespace_stream", "tags": ["namespaces"],
            "summary": "Import a JSON Lines body as it arrives, in batches (a bad line is a 4xx naming it)",
            "parameters": [name_param, page_size],
            "requestBody": { "required": true, "content": { "application/x-ndjson": { "schema": { "type": "string" } } } },
            "responses": import,
        }}),
    );
    paths.insert(
        "/healthz".into(),
        json!({ "get": {
            "operationId": "healthz", "summary": "Liveness (no authentication)", "tags": ["operations"],
            "security": [],
            "responses": { "200": { "description": "Alive", "content": { "application/json": { "schema": {
                "type": "object", "properties": { "status": { "type": "string" }, "version": { "type": "string" } },
                "required": ["status"] } } } } }
        }}),
    );
    paths.insert(
        "/metrics".into(),
        json!({ "get": {
            "operationId": "metrics", "summary": "Prometheus metrics (the admin key, or the token given with --metrics-token)", "tags": ["operations"],
            "responses": {
                "200": { "description": "Prometheus text format", "content": { "text/plain": { "schema": { "type": "string" } } } },
                "401": { "$ref": "#/components/responses/401" },
                "403": { "$ref": "#/components/responses/403" }
            }
        }}),
    );
    paths.insert(
        "/openapi.json".into(),
        json!({ "get": {
            "operationId": "openapi", "summary": "This document (no authentication)", "tags": ["operations"],
            "security": [],
            "responses": { "200": { "description": "OpenAPI document", "content": { "application/json": { "schema": { "type": "object" } } } } }
        }}),
    );
    let mut paths = Value::Object(paths);
    let mut schemas = Value::Object(components.finish(&mut [&mut paths]));
    schemas["Error"] = error_schema();
    plain_descriptions(&mut schemas);
    plain_descriptions(&mut paths);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "memsilo",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Multi-tenant memory store for AI applications. Every error has the body \
                `Error`; its `error` field is a stable code whose HTTP status is fixed (docs/src/api/errors.md).",
        },
        "servers": [{ "url": "http://127.0.0.1:3300" }],
        "security": [{ "bearer": [] }],
        "tags": [
            { "name": "tenants" }, { "name": "namespaces" }, { "name": "keys" },
            { "name": "memory" }, { "name": "graph" }, { "name": "audit" }, { "name": "operations" },
            { "name": "dakera", "description": "Routes Dakera's SDKs call (same core operations, Dakera's shapes)" },
        ],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "An API key (msk_...) or the admin key" } },
            "schemas": schemas,
            "responses": error_responses(),
        },
    })
}

fn operation(route: &Route, components: &mut schemas::Components) -> Value {
    let path_args: Vec<&str> = route.path_args.iter().map(|(_, arg)| *arg).collect();
    let args = components.request(route.op, &path_args).unwrap_or_default();
    let mut parameters = Vec::new();
    for (placeholder, arg) in route.path_args {
        parameters.push(json!({
            "name": placeholder, "in": "path", "required": true,
            "description": format!("The `{arg}` argument"),
            "schema": { "type": "string" },
        }));
    }
    if route.body == Body::None {
        for param in route.query {
            let required = args.required.iter().any(|r| r == param.name);
            let schema = match param.kind {
                Kind::Text => json!({ "type": "string" }),
                Kind::Integer => json!({ "type": "integer", "minimum": 0 }),
                Kind::Number => json!({ "type": "number" }),
                Kind::Boolean => json!({ "type": "boolean" }),
                Kind::List => json!({ "type": "array", "items": { "type": "string" } }),
            };
            // Prefer the argument's own schema (enums, ranges, descriptions) when it is a
            // scalar; a query value is never null.
            let field = args.fields.get(param.name).map(non_null);
            let description = field.as_ref().and_then(|f| f.get("description").cloned());
            let schema = match field {
                Some(f) if param.kind != Kind::List && is_scalar(&f) => f,
                _ => schema,
            };
            let mut p = json!({ "name": param.name, "in": "query", "required": required, "schema": schema });
            if let Some(d) = description {
                p["description"] = d;
            }
            if param.kind == Kind::List {
                p["style"] = json!("form");
                p["explode"] = json!(true);
                p["description"] = json!("Repeat the parameter or separate values with commas");
            }
            parameters.push(p);
        }
    }
    let mut op = json!({
        "operationId": operation_id(route),
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": parameters,
        "responses": responses(route, components),
    });
    match route.body {
        Body::None => {}
        Body::Object => {
            op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": args.body } } });
        }
        Body::Field(field) => {
            let schema = args.fields.get(field).cloned().unwrap_or_else(|| json!({}));
            op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema } } });
        }
    }
    op
}

/// Descriptions come from rustdoc comments, whose intra-doc link brackets are dropped here.
/// A Dakera route: its path and query parameters, the body fields the SDK sends, and a
/// JSON object answer (Dakera's shape; see `dakera.rs`).
fn dakera_operation(d: &crate::dakera::DakeraRoute) -> Value {
    let route = &d.route;
    let mut parameters: Vec<Value> = route
        .path_args
        .iter()
        .map(|(placeholder, arg)| {
            json!({ "name": placeholder, "in": "path", "required": true,
                "description": format!("The `{arg}` argument"), "schema": { "type": "string" } })
        })
        .collect();
    for param in route.query {
        let schema = match param.kind {
            Kind::Integer => json!({ "type": "integer", "minimum": 0 }),
            Kind::Number => json!({ "type": "number" }),
            Kind::Boolean => json!({ "type": "boolean" }),
            Kind::Text | Kind::List => json!({ "type": "string" }),
        };
        parameters.push(
            json!({ "name": param.name, "in": "query", "required": false, "schema": schema }),
        );
    }
    let mut ok = json!({ "description": "Success (Dakera's shape)",
        "content": { "application/json": { "schema": {} } } });
    ok["content"]["application/json"]["schema"] = json!({ "type": ["object", "array"] });
    let mut responses = json!({ route.status.to_string(): ok });
    for status in ["400", "401", "403", "404", "409", "413", "429", "500"] {
        responses[status] = json!({ "$ref": format!("#/components/responses/{status}") });
    }
    let mut op = json!({
        "operationId": format!("dakera_{}", route.op),
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": parameters,
        "responses": responses,
    });
    if route.body == Body::Object {
        let props: Map<String, Value> =
            d.body_fields.iter().map(|f| ((*f).to_owned(), json!({}))).collect();
        op["requestBody"] = json!({ "required": false, "content": { "application/json": {
            "schema": { "type": "object", "properties": props } } } });
    }
    op
}

fn plain_descriptions(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                match v {
                    Value::String(text) if k == "description" => {
                        *text = text.replace("[`", "`").replace("`]", "`");
                    }
                    _ => plain_descriptions(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(plain_descriptions),
        _ => {}
    }
}

/// `schema` without its `null` alternative (`Option<T>` fields).
fn non_null(schema: &Value) -> Value {
    let mut s = schema.clone();
    if let Some(Value::Array(types)) = s.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            s["type"] = types[0].clone();
        }
    }
    if let Some(Value::Array(any)) = s.get("anyOf") {
        let rest: Vec<&Value> = any.iter().filter(|b| b["type"] != "null").collect();
        if let [only] = rest.as_slice() {
            let mut out = (*only).clone();
            if let (Some(d), Value::Object(m)) = (s.get("description"), &mut out) {
                m.entry("description").or_insert(d.clone());
            }
            return out;
        }
    }
    if let Value::Object(m) = &mut s {
        m.remove("default");
    }
    s
}

/// Whether a schema describes one string, number, integer or boolean (or a named enum).
fn is_scalar(schema: &Value) -> bool {
    schema.get("$ref").is_some()
        || matches!(schema["type"].as_str(), Some("string" | "number" | "integer" | "boolean"))
}

fn operation_id(route: &Route) -> String {
    // recall has a GET and a POST route; operationIds must be unique.
    if ROUTES.iter().filter(|r| r.op == route.op).count() > 1 {
        format!("{}_{}", route.op, route.method.as_str().to_ascii_lowercase())
    } else {
        route.op.to_owned()
    }
}

fn responses(route: &Route, components: &mut schemas::Components) -> Value {
    let mut ok = json!({
        "description": "Success",
        "content": { "application/json": { "schema": components.response(route.op).unwrap_or_else(|| json!({})) } },
    });
    if matches!(route.op, "list_namespaces" | "list_keys") {
        ok["headers"] = json!({ "X-Total-Count": { "description": "Items in all pages", "schema": { "type": "integer" } } });
    }
    if route.op == "list_namespaces" {
        ok["headers"]["X-Next-Cursor"] = json!({
            "description": "Pass as `cursor` for the next page; absent on the last page",
            "schema": { "type": "string" },
        });
    }
    let mut out = json!({ route.status.to_string(): ok });
    for status in ["400", "401", "403", "404", "409", "413", "429", "500"] {
        out[status] = json!({ "$ref": format!("#/components/responses/{status}") });
    }
    if route.method.as_str() == "GET" && !route.query.is_empty() {
        out["414"] = json!({
            "description": "URI Too Long: the URL is over 65,534 bytes, the HTTP layer's fixed \
                limit, checked before memsilo reads the request: the body is empty, so it names \
                no field. Send long arguments (a long `query`) with the POST form.",
        });
    }
    out
}

fn error_schema() -> Value {
    let codes: Vec<&str> = memsilo::ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    json!({
        "type": "object",
        "description": "Every error response has this body. A Dakera client (User-Agent `dakera...` or `X-Memsilo-Dialect: dakera`) gets it in Dakera's shape instead: `error` and `details` are the message, `code` is Dakera's ErrorCode string, `memsilo_error` is `error` here; the other fields stay.",
        "properties": {
            "error": { "type": "string", "enum": codes, "description": "Stable error code" },
            "message": { "type": "string" },
            "code": { "type": "integer", "description": "The HTTP status" },
            "tenant_id": { "type": "string" },
            "namespace": { "type": "string" },
            "field": { "type": "string", "description": "The offending field (invalid_argument, payload_too_large)" },
            "retry_after": { "type": "integer", "description": "Seconds to wait (rate_limited)" },
            "causes": {
                "type": "array",
                "items": { "type": "string" },
                "description": "The failures underneath (an I/O, storage or encoding error's own words), nearest first",
            },
        },
        "required": ["error", "message", "code"],
    })
}

fn error_responses() -> Value {
    let mut out = Map::new();
    let rate_headers = json!({
        "Retry-After": { "schema": { "type": "integer" }, "description": "Seconds to wait" },
    });
    for (status, what) in [
        ("400", "invalid_argument: validation failed (the message names the field)"),
        ("401", "unauthorized: missing, malformed, unknown, expired or revoked key"),
        (
            "403",
            "forbidden (not allowed, or a namespace outside the key's scope) or quota_exceeded",
        ),
        ("404", "not_found"),
        ("409", "conflict"),
        ("413", "payload_too_large"),
        ("429", "rate_limited: over the tenant's qps limit or max_connections"),
        ("500", "internal"),
    ] {
        let mut r = json!({
            "description": what,
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
        });
        if status == "429" {
            r["headers"] = rate_headers.clone();
        }
        out.insert(status.into(), r);
    }
    Value::Object(out)
}
