//! The route table: for every core operation, its HTTP method, path template and where its
//! arguments travel (path, query string, JSON body). The server is built from this table and
//! the remote client encodes calls with it, so the two cannot drift.

use memsilo::{Error, Result};
use serde_json::{Map, Value};

/// HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
}

impl Method {
    /// The upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// How a query-string value becomes a JSON argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Kept as text.
    Text,
    /// A non-negative integer.
    Integer,
    /// A number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A list of text: comma-separated, repeated, or both.
    List,
}

/// A query parameter of a route; its name is the argument's name.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Name on the wire and in the operation's arguments.
    pub name: &'static str,
    /// How its text is converted.
    pub kind: Kind,
}

/// Where a route's JSON body goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body; arguments come from the path and the query string.
    None,
    /// The body is a JSON object of arguments.
    Object,
    /// The body is the value of this one argument (e.g. the policy of `PUT .../policy`).
    Field(&'static str),
}

/// One route.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The core operation it runs (`memsilo::api::Request::OPERATIONS`).
    pub op: &'static str,
    /// HTTP method.
    pub method: Method,
    /// Path template, placeholders in braces.
    pub path: &'static str,
    /// Each placeholder and the argument it fills.
    pub path_args: &'static [(&'static str, &'static str)],
    /// Where the body goes.
    pub body: Body,
    /// Typed query parameters (others are passed on as text, for core to accept or refuse).
    pub query: &'static [Param],
    /// Status of a success.
    pub status: u16,
    /// One line for the `OpenAPI` document.
    pub summary: &'static str,
    /// `OpenAPI` tag (group).
    pub tag: &'static str,
}

const fn p(name: &'static str, kind: Kind) -> Param {
    Param { name, kind }
}

const LIST: &[Param] =
    &[p("tenant_id", Kind::Text), p("offset", Kind::Integer), p("limit", Kind::Integer)];
const NS_LIST: &[Param] = &[
    p("tenant_id", Kind::Text),
    p("offset", Kind::Integer),
    p("limit", Kind::Integer),
    p("cursor", Kind::Text),
];
const RECALL: &[Param] = &[
    p("namespace", Kind::Text),
    p("agent_id", Kind::Text),
    p("query", Kind::Text),
    p("top_k", Kind::Integer),
    p("tags", Kind::List),
    p("min_importance", Kind::Number),
    p("since", Kind::Text),
    p("until", Kind::Text),
    p("expand", Kind::Integer),
    p("mode", Kind::Text),
    p("vector_weight", Kind::Number),
];
const NEIGHBORS: &[Param] =
    &[p("entity", Kind::Text), p("depth", Kind::Integer), p("type", Kind::Text)];
const NS: &[(&str, &str)] = &[("name", "namespace")];
const SESSION: &[(&str, &str)] = &[("name", "namespace"), ("id", "id")];

macro_rules! route {
    ($op:literal, $method:ident $path:literal, $args:expr, $body:expr, $query:expr, $status:literal, $tag:literal, $summary:literal) => {
        Route {
            op: $op,
            method: Method::$method,
            path: $path,
            path_args: $args,
            body: $body,
            query: $query,
            status: $status,
            summary: $summary,
            tag: $tag,
        }
    };
}
pub(crate) use route;

/// Every API route. An operation with two routes (recall) lists first the one the remote
/// client uses.
pub const ROUTES: &[Route] = &[
    route!("create_tenant", Post "/api/v1/tenants", &[], Body::Object, &[], 201, "tenants", "Create a tenant"),
    route!("list_tenants", Get "/api/v1/tenants", &[], Body::None,
        &[p("status", Kind::Text), p("parent_id", Kind::Text), p("offset", Kind::Integer), p("limit", Kind::Integer)],
        200, "tenants", "List tenants"),
    route!("get_tenant", Get "/api/v1/tenants/{id}", &[("id", "tenant_id")], Body::None, &[], 200, "tenants", "Get a tenant with its usage"),
    route!("update_tenant", Put "/api/v1/tenants/{id}", &[("id", "tenant_id")], Body::Object, &[], 200, "tenants", "Update a tenant (partial)"),
    route!("delete_tenant", Delete "/api/v1/tenants/{id}", &[("id", "tenant_id")], Body::None, &[], 200, "tenants",
        "Delete a tenant with its namespaces, keys and members (409 if it has children)"),
    route!("rotate_tenant_key", Post "/api/v1/tenants/{id}/rotate-key", &[("id", "tenant_id")], Body::Object, &[], 202, "tenants",
        "Rotate a physical or hybrid tenant's encryption key: new data at once, its files rewritten in the background, then the old key destroyed (root or the tenant's admins)"),
    route!("get_key_rotation", Get "/api/v1/tenants/{id}/key-rotation", &[("id", "tenant_id")], Body::None, &[], 200, "tenants",
        "The tenant's last key rotation and its progress"),
    route!("rotate_instance_key", Post "/api/v1/instance/rotate-key", &[], Body::Object, &[], 202, "instance",
        "Rotate the instance key (the catalog's, the audit log's, logical tenants' and keyless tenants' files): new files at once, the old ones rewritten in the background, the catalog last, then the old key destroyed (root only)"),
    route!("get_instance_key_rotation", Get "/api/v1/instance/key-rotation", &[], Body::None, &[], 200, "instance",
        "The instance key's last rotation and its progress (root only)"),
    route!("add_member", Post "/api/v1/tenants/{id}/members", &[("id", "tenant_id")], Body::Object, &[], 201, "tenants", "Add a member"),
    route!("list_members", Get "/api/v1/tenants/{id}/members", &[("id", "tenant_id")], Body::None,
        &[p("role", Kind::Text), p("offset", Kind::Integer), p("limit", Kind::Integer)], 200, "tenants", "List members"),
    route!("remove_member", Delete "/api/v1/tenants/{id}/members/{member_id}", &[("id", "tenant_id"), ("member_id", "member_id")],
        Body::None, &[], 200, "tenants", "Remove a member (revokes its keys)"),
    route!("create_namespace", Post "/v1/namespaces", &[], Body::Object, &[], 201, "namespaces", "Create a namespace"),
    route!("list_namespaces", Get "/v1/namespaces", &[], Body::None, NS_LIST, 200, "namespaces",
        "List namespaces (a bare array; the total is in X-Total-Count, the next page's cursor in X-Next-Cursor)"),
    route!("get_namespace", Get "/v1/namespaces/{name}", &[("name", "name")], Body::None, &[], 200, "namespaces", "Get a namespace"),
    route!("delete_namespace", Delete "/v1/namespaces/{name}", &[("name", "name")], Body::None, &[], 200, "namespaces",
        "Delete a namespace (atomic and immediate)"),
    route!("get_memory_policy", Get "/v1/namespaces/{name}/policy", NS, Body::None, &[], 200, "namespaces", "Get a namespace's decay policy"),
    route!("set_memory_policy", Put "/v1/namespaces/{name}/policy", NS, Body::Field("policy"), &[], 200, "namespaces",
        "Replace a namespace's decay policy (the body is the policy)"),
    route!("create_key", Post "/v1/keys", &[], Body::Object, &[], 201, "keys", "Create an API key (the only time the full key is returned)"),
    route!("list_keys", Get "/v1/keys", &[], Body::None, LIST, 200, "keys", "List API keys (a bare array; the total is in X-Total-Count)"),
    route!("revoke_key", Delete "/v1/keys/{id}", &[("id", "key_id")], Body::None, &[], 200, "keys", "Revoke a key (effective at once)"),
    route!("rotate_key", Post "/v1/keys/{id}/rotate", &[("id", "key_id")], Body::None, &[], 200, "keys", "Rotate a key: a new secret, the old one stops working"),
    route!("store_memory", Post "/v1/memory/store", &[], Body::Object, &[], 201, "memory", "Store a memory"),
    route!("store_memories", Post "/v1/memory/store_batch", &[], Body::Object, &[], 201, "memory", "Store memories (all or nothing)"),
    route!("recall", Post "/v1/memory/recall", &[], Body::Object, &[], 200, "memory", "Recall memories by meaning (text or vector)"),
    route!("recall", Get "/v1/memory/recall", &[], Body::None, RECALL, 200, "memory", "Recall memories by meaning (text)"),
    route!("batch_forget", Post "/v1/memory/forget", &[], Body::Object, &[], 200, "memory", "Forget memories matching every given filter"),
    route!("get_memory", Get "/v1/memory/{id}", &[("id", "id")], Body::None, &[p("namespace", Kind::Text)], 200, "memory", "Get a memory"),
    route!("get_memories", Post "/v1/memory/get_batch", &[], Body::Object, &[], 200, "memory",
        "Get memories by id (absent ids are left out)"),
    route!("list_memories", Post "/v1/memory/list", &[], Body::Object, &[], 200, "memory",
        "List memories matching a filter, in a stable order, one cursor page at a time"),
    route!("count_memories", Post "/v1/memory/count", &[], Body::Object, &[], 200, "memory",
        "Count the memories matching a filter"),
    route!("update_memory", Put "/v1/memory/{id}", &[("id", "id")], Body::Object, &[], 200, "memory",
        "Update a memory's given fields (metadata merged unless replace is true)"),
    route!("delete_memory", Delete "/v1/memory/{id}", &[("id", "id")], Body::None, &[p("namespace", Kind::Text)], 200, "memory", "Delete a memory"),
    route!("add_entity", Post "/v1/namespaces/{name}/graph/entities", NS, Body::Object, &[], 201, "graph", "Add an entity (upsert by name and type)"),
    route!("add_relation", Post "/v1/namespaces/{name}/graph/relations", NS, Body::Object, &[], 201, "graph", "Add a relation"),
    route!("get_entity", Get "/v1/namespaces/{name}/graph/entities/{entity}", &[("name", "namespace"), ("entity", "entity")],
        Body::None, &[p("type", Kind::Text)], 200, "graph", "Get an entity by id or name"),
    route!("neighbors", Get "/v1/namespaces/{name}/graph/neighbors", NS, Body::None, NEIGHBORS, 200, "graph", "Entities and relations within depth hops"),
    route!("subgraph", Get "/v1/namespaces/{name}/graph/subgraph", NS, Body::None, NEIGHBORS, 200, "graph", "The subgraph around an entity"),
    route!("shortest_path", Get "/v1/namespaces/{name}/graph/path", NS, Body::None, &[p("from", Kind::Text), p("to", Kind::Text)],
        200, "graph", "Shortest path between two entities (404 if none)"),
    route!("delete_entity", Delete "/v1/namespaces/{name}/graph/entities/{entity}", &[("name", "namespace"), ("entity", "entity")],
        Body::None, &[p("type", Kind::Text)], 200, "graph", "Delete an entity and its relations"),
    route!("delete_relation", Delete "/v1/namespaces/{name}/graph/relations/{id}", &[("name", "namespace"), ("id", "id")],
        Body::None, &[], 200, "graph", "Delete a relation"),
    route!("whoami", Get "/v1/whoami", &[], Body::None, &[], 200, "keys", "Describe the calling key"),
    route!("list_audit", Get "/api/v1/tenants/{id}/audit", &[("id", "tenant_id")], Body::None,
        &[p("since", Kind::Text), p("until", Kind::Text), p("actor", Kind::Text), p("action", Kind::Text),
          p("cursor", Kind::Text), p("limit", Kind::Integer)],
        200, "audit", "A tenant's audit log, oldest first, by cursor pages (root or the tenant's admins; `instance`: root)"),
    route!("verify_audit", Post "/api/v1/tenants/{id}/audit/verify", &[("id", "tenant_id")], Body::None, &[], 200, "audit",
        "Check a tenant's audit hash chain and name the first edited or missing entry"),
    route!("export_namespace", Get "/v1/namespaces/{name}/export/page", NS, Body::None,
        &[p("cursor", Kind::Text), p("limit", Kind::Integer)], 200, "namespaces",
        "One page of the namespace's JSON Lines export (lines and next_cursor)"),
    route!("import_namespace", Post "/v1/namespaces/{name}/import/batch", NS, Body::Object, &[], 200, "namespaces",
        "Import one batch of export lines (a batch of one kind is all or nothing)"),
    route!("start_session", Post "/v1/namespaces/{name}/sessions", NS, Body::Object, &[], 201, "sessions",
        "Start a session (409 if the namespace has one with that id)"),
    route!("list_sessions", Get "/v1/namespaces/{name}/sessions", NS, Body::None,
        &[p("agent_id", Kind::Text), p("active_only", Kind::Boolean), p("offset", Kind::Integer), p("limit", Kind::Integer)],
        200, "sessions", "List a namespace's sessions, oldest first"),
    route!("get_session", Get "/v1/namespaces/{name}/sessions/{id}", SESSION, Body::None, &[], 200, "sessions",
        "Get a session with its memory count"),
    route!("end_session", Post "/v1/namespaces/{name}/sessions/{id}/end", SESSION, Body::Object, &[], 200, "sessions",
        "End a session (ending an ended session returns it unchanged)"),
    route!("session_memories", Get "/v1/namespaces/{name}/sessions/{id}/memories", SESSION, Body::None,
        &[p("offset", Kind::Integer), p("limit", Kind::Integer)], 200, "sessions", "A session's memories, oldest first"),
];

/// The route the remote client uses for `op`.
pub fn route_for(op: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.op == op)
}

impl Route {
    /// The typed parameter named `name`, if declared.
    pub fn param(&self, name: &str) -> Option<&'static Param> {
        self.query.iter().find(|q| q.name == name)
    }

    /// Builds the operation's arguments from what a request carried: path parameters
    /// (already percent-decoded), the raw query string, and the parsed JSON body (if any).
    pub fn args_from_request(
        &self,
        path: &[(String, String)],
        query: Option<&str>,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut args = match (self.body, body) {
            (Body::Object, Some(Value::Object(map))) => map,
            (Body::Object, Some(_)) => {
                return Err(Error::invalid("body", "expected a JSON object"));
            }
            (Body::Field(field), Some(v)) => Map::from_iter([(field.to_owned(), v)]),
            (Body::Object | Body::Field(_) | Body::None, None) | (Body::None, Some(_)) => {
                Map::new()
            }
        };
        for (name, value) in self.query_args(query)? {
            if args.contains_key(&name) {
                return Err(Error::invalid(name, "given in both the query string and the body"));
            }
            args.insert(name, value);
        }
        for (placeholder, arg) in self.path_args {
            let value = path.iter().find(|(k, _)| k == placeholder).map(|(_, v)| v.clone());
            let Some(value) = value else { continue };
            match args.get(*arg) {
                Some(Value::String(given)) if *given == value => {}
                Some(_) => {
                    return Err(Error::invalid(*arg, "differs from the value in the URL path"));
                }
                None => {
                    args.insert((*arg).to_owned(), Value::String(value));
                }
            }
        }
        Ok(Value::Object(args))
    }

    fn query_args(&self, query: Option<&str>) -> Result<Map<String, Value>> {
        let mut out = Map::new();
        let Some(query) = query else { return Ok(out) };
        refuse_non_utf8(query)?;
        for (name, text) in form_urlencoded::parse(query.as_bytes()) {
            let kind = self.param(&name).map_or(Kind::Text, |p| p.kind);
            if kind == Kind::List {
                let list = out.entry(name.into_owned()).or_insert_with(|| Value::Array(vec![]));
                if let Value::Array(items) = list {
                    items.extend(
                        text.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(|s| Value::String(s.to_owned())),
                    );
                }
                continue;
            }
            if out.contains_key(name.as_ref()) {
                return Err(Error::invalid(name, "given more than once"));
            }
            let value = convert(&name, &text, kind)?;
            out.insert(name.into_owned(), value);
        }
        Ok(out)
    }

    /// Splits arguments into the request a client sends: the path (percent-encoded), the
    /// query pairs, and the JSON body.
    pub fn encode(&self, args: &Value) -> Result<Encoded> {
        let mut rest = match args {
            Value::Object(m) => m.clone(),
            Value::Null => Map::new(),
            _ => return Err(Error::invalid("args", "expected a JSON object")),
        };
        let mut path = self.path.to_owned();
        for (placeholder, arg) in self.path_args {
            let value = match rest.remove(*arg) {
                Some(Value::String(s)) => s,
                Some(_) => return Err(Error::invalid(*arg, "expected a string")),
                None => return Err(Error::invalid(*arg, format!("missing field `{arg}`"))),
            };
            let encoded = percent_encoding::utf8_percent_encode(&value, SEGMENT).to_string();
            path = path.replace(&format!("{{{placeholder}}}"), &encoded);
        }
        let mut query = Vec::new();
        let body = match self.body {
            Body::Object => Some(Value::Object(rest)),
            Body::Field(field) => {
                let v = rest.remove(field).unwrap_or(Value::Null);
                if let Some(extra) = rest.keys().next() {
                    return Err(Error::invalid(extra.clone(), format!("unknown field `{extra}`")));
                }
                Some(v)
            }
            Body::None => {
                for (name, value) in rest {
                    match value {
                        Value::Null => {}
                        Value::String(s) => query.push((name, s)),
                        Value::Array(items) => {
                            for item in items {
                                let text = match item {
                                    Value::String(s) => s,
                                    other => other.to_string(),
                                };
                                query.push((name.clone(), text));
                            }
                        }
                        other => query.push((name, other.to_string())),
                    }
                }
                None
            }
        };
        Ok(Encoded { path, query, body })
    }
}

/// Characters escaped in a path segment.
pub(crate) const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// A request as the client sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Path with placeholders filled.
    pub path: String,
    /// Query pairs (not yet encoded).
    pub query: Vec<(String, String)>,
    /// JSON body, if the route takes one.
    pub body: Option<Value>,
}

impl Encoded {
    /// The request target: the path, and `?` with the query form-encoded when there is one.
    pub fn target(&self) -> String {
        let mut target = self.path.clone();
        if !self.query.is_empty() {
            target.push('?');
            target.push_str(
                &form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(self.query.iter())
                    .finish(),
            );
        }
        target
    }
}

fn convert(name: &str, text: &str, kind: Kind) -> Result<Value> {
    match kind {
        Kind::Text | Kind::List => Ok(Value::String(text.to_owned())),
        Kind::Integer => text.trim().parse::<u64>().map(Value::from).map_err(|_| {
            Error::invalid(name, format!("expected a non-negative integer, got {text:?}"))
        }),
        Kind::Number => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::from)
            .ok_or_else(|| Error::invalid(name, format!("expected a number, got {text:?}"))),
        Kind::Boolean => match text.trim() {
            "true" | "1" => Ok(Value::Bool(true)),
            "false" | "0" => Ok(Value::Bool(false)),
            _ => Err(Error::invalid(name, format!("expected true or false, got {text:?}"))),
        },
    }
}

/// `form_urlencoded::parse` turns percent-encoded bytes that are not UTF-8 into U+FFFD, so
/// `query=%ff` would search for a replacement character: such a parameter is refused instead,
/// named when its name is readable.
fn refuse_non_utf8(query: &str) -> Result<()> {
    let text = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .ok()
            .map(std::borrow::Cow::into_owned)
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(name) = text(name) else {
            return Err(Error::invalid("query", "a parameter name is not valid UTF-8"));
        };
        if text(value).is_none() {
            return Err(Error::invalid(name, "not valid UTF-8 (percent-encoded bytes)"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_operation_has_exactly_one_client_route() {
        for op in memsilo::api::Request::OPERATIONS {
            assert!(route_for(op).is_some(), "no route for {op}");
        }
        for r in ROUTES {
            assert!(
                memsilo::api::Request::OPERATIONS.contains(&r.op),
                "{} is not an operation",
                r.op
            );
            for (placeholder, _) in r.path_args {
                assert!(r.path.contains(&format!("{{{placeholder}}}")), "{}", r.path);
            }
        }
    }

    #[test]
    fn one_path_shape_has_one_set_of_placeholder_names() {
        // The router refuses `/x/{a}` beside `/x/{b}`.
        let shape = |p: &str| {
            p.split('/')
                .map(|s| if s.starts_with('{') { "{}" } else { s })
                .collect::<Vec<_>>()
                .join("/")
        };
        for a in ROUTES {
            for b in ROUTES {
                if shape(a.path) == shape(b.path) {
                    assert_eq!(a.path, b.path);
                }
            }
        }
    }

    #[test]
    fn methods_and_paths_are_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {}",
                    a.method.as_str(),
                    a.path
                );
            }
        }
    }

    #[test]
    fn client_encoding_and_server_decoding_agree() {
        let cases = [
            ("set_memory_policy", json!({"namespace": "a b/c", "policy": {"decay_rate": 0.5}})),
            ("recall", json!({"namespace": "n", "query": "q", "top_k": 3, "vector": [0.5, 1.0]})),
            (
                "neighbors",
                json!({"namespace": "n", "entity": "Acme", "depth": 2, "type": "works_at"}),
            ),
            ("list_members", json!({"tenant_id": "t", "role": "viewer", "offset": 1, "limit": 2})),
            ("delete_entity", json!({"namespace": "n", "entity": "e1"})),
            ("whoami", json!({})),
        ];
        for (op, args) in cases {
            let route = route_for(op).unwrap();
            let enc = route.encode(&args).unwrap();
            let path_values = decode_path(route.path, &enc.path);
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(enc.query.iter())
                .finish();
            let back = route
                .args_from_request(
                    &path_values,
                    Some(query.as_str()).filter(|q| !q.is_empty()),
                    enc.body,
                )
                .unwrap();
            assert_eq!(back, args, "{op}");
        }
    }

    fn decode_path(template: &str, path: &str) -> Vec<(String, String)> {
        template
            .split('/')
            .zip(path.split('/'))
            .filter_map(|(t, v)| {
                let name = t.strip_prefix('{')?.strip_suffix('}')?;
                let value = percent_encoding::percent_decode_str(v).decode_utf8().ok()?;
                Some((name.to_owned(), value.into_owned()))
            })
            .collect()
    }

    #[test]
    fn query_values_are_typed_and_bad_ones_name_the_field() {
        let route = ROUTES.iter().find(|r| r.op == "recall" && r.method == Method::Get).unwrap();
        let args = route
            .args_from_request(
                &[],
                Some("agent_id=x&top_k=5&tags=a,b&tags=c&min_importance=0.5"),
                None,
            )
            .unwrap();
        assert_eq!(
            args,
            json!({"agent_id": "x", "top_k": 5, "tags": ["a", "b", "c"], "min_importance": 0.5})
        );
        let err = route.args_from_request(&[], Some("top_k=many"), None).unwrap_err();
        assert_eq!(err.code(), memsilo::ErrorCode::InvalidArgument);
        assert!(err.to_string().starts_with("top_k: "), "{err}");
        let err = route.args_from_request(&[], Some("query=a&query=b"), None).unwrap_err();
        assert!(err.to_string().starts_with("query: "), "{err}");
    }

    #[test]
    fn a_path_value_cannot_be_contradicted_by_the_body() {
        let route = route_for("add_entity").unwrap();
        let path = [("name".to_owned(), "ns1".to_owned())];
        let err = route
            .args_from_request(&path, None, Some(json!({"namespace": "ns2", "name": "x"})))
            .unwrap_err();
        assert!(err.to_string().starts_with("namespace: "), "{err}");
    }
}
