//! `memsilo serve --cluster`: the HTTP face of a cluster node (crate `memsilo-cluster`).
//!
//! The routes are those of the route table. A namespace's reads and writes run on its owner:
//! any node accepts them and forwards them there (one hop; the answer comes back unchanged),
//! taking the namespace over first if nobody owns it. Namespaces and keys are created in the
//! control plane (etcd), and so are tenants and members (from any node). Besides the table,
//! every node serves `/healthz`, `/openapi.json`, its own `/metrics`, the console and the
//! Dakera-compatible routes (translated here by one node's adapters, run as the operation's
//! own route, the answer shaped back here); the streaming export and import are refused
//! with an error naming their paged routes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::{Body as HttpBody, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method as HttpMethod, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use memsilo::{Error, ErrorCode};
use memsilo_cluster::{namespace_of, namespace_op, Caller, Node, Target};
use serde_json::{json, Value};

use crate::dakera::{Adapter, Args};
use crate::dispatch::bearer;
use crate::metrics::Metrics;
use crate::response;
use crate::routes::{self, Body, Route, ROUTES};

/// Hops a request has made between nodes; a request is forwarded at most twice (an owner
/// change while it travels), then refused.
const HOPS: &str = "x-memsilo-hops";

struct ClusterApp {
    node: Arc<Node>,
    body_limit: usize,
    /// A bearer token that may read `GET /metrics` besides the admin key.
    metrics_token: Option<String>,
    /// This node's request counters (`/metrics`), as one node keeps them.
    metrics: Metrics,
    active: AtomicU64,
    openapi: Bytes,
}

type Shared = Arc<ClusterApp>;

/// The router of a cluster node: the route table, `/healthz`, `/metrics` (this node's
/// requests), `/openapi.json` and the console, as on one node.
pub(crate) fn router(node: Arc<Node>, body_limit: usize, metrics_token: Option<String>) -> Router {
    let app = Arc::new(ClusterApp {
        node,
        body_limit,
        metrics_token,
        metrics: Metrics::default(),
        active: AtomicU64::new(0),
        openapi: serde_json::to_vec_pretty(&crate::openapi::document()).unwrap_or_default().into(),
    });
    let mut paths: Vec<(&'static str, MethodRouter<Shared>)> = Vec::new();
    // Dakera's routes run their operation as its own route does, in Dakera's shapes.
    let native = ROUTES.iter().map(|r| (r, None));
    let dakera = crate::dakera::routes().map(|d| (&d.route, Some(d.adapter)));
    for (route, adapter) in native.chain(dakera) {
        let handler = move |state: State<Shared>,
                            path: Option<Path<Vec<(String, String)>>>,
                            query: RawQuery,
                            method: HttpMethod,
                            uri: Uri,
                            headers: HeaderMap,
                            body: HttpBody| async move {
            let path = path.map(|Path(p)| p).unwrap_or_default();
            let request_id = crate::dispatch::request_id(&headers);
            let mut seen = Seen::default();
            let result = handle(
                &state.0,
                route,
                adapter,
                path,
                query.0,
                &method,
                &uri,
                &headers,
                body,
                &mut seen,
                &request_id,
            )
            .await;
            let mut resp = match result {
                Ok(resp) => resp,
                Err(e) => {
                    seen.error = Some(e.code());
                    response::error(&e)
                }
            };
            // Recorded where the answer was made: a forwarded answer is the owner's to record.
            if resp.extensions_mut().remove::<ForwardedAnswer>().is_none() {
                let outcome = match seen.error {
                    Some(code) => Err(code),
                    // Only `unavailable` answers an error without an `Error` (503).
                    None if !resp.status().is_success() => Err(ErrorCode::Internal),
                    None => Ok(seen.reply.as_ref()),
                };
                let node = &state.0.node;
                let (caller, key) = (seen.caller.as_ref(), seen.key.as_deref());
                node.audit(route.op, seen.subject, caller, key, &request_id, outcome).await;
            }
            if let Ok(v) = HeaderValue::from_str(&request_id) {
                resp.headers_mut().insert(crate::dispatch::REQUEST_ID.clone(), v);
            }
            // The tenant the request was made for, for `/metrics`' per-tenant series.
            if let Some(tenant) = seen.caller.as_ref().and_then(Caller::tenant_id) {
                resp.extensions_mut().insert(crate::dispatch::TenantLabel(tenant.to_owned()));
            }
            resp
        };
        let filter = match route.method {
            routes::Method::Get => MethodFilter::GET,
            routes::Method::Post => MethodFilter::POST,
            routes::Method::Put => MethodFilter::PUT,
            routes::Method::Delete => MethodFilter::DELETE,
        };
        match paths.iter_mut().find(|(p, _)| *p == route.path) {
            Some((_, mr)) => *mr = std::mem::take(mr).on(filter, handler),
            None => paths.push((route.path, on(filter, handler))),
        }
    }
    let mut router = Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/metrics", axum::routing::get(metrics))
        .route("/openapi.json", axum::routing::get(openapi))
        .route("/v1/namespaces/{name}/export", axum::routing::get(streaming_refused))
        .route("/v1/namespaces/{name}/import", axum::routing::post(streaming_refused))
        .route("/console", axum::routing::get(crate::console::index))
        .route("/console/", axum::routing::get(crate::console::index))
        .route("/console/{*path}", axum::routing::get(crate::console::asset));
    for (path, mr) in paths {
        router = router.route(path, mr);
    }
    router
        .fallback(crate::server::not_found)
        .method_not_allowed_fallback(crate::server::method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

/// Counts and times every request this node answers (forwarded ones included), by route
/// template, as one node does.
async fn observe(State(app): State<Shared>, req: Request, next: Next) -> Response {
    crate::server::observed(&app.metrics, &app.active, req, next).await
}

async fn openapi(State(app): State<Shared>) -> Response {
    crate::server::openapi_response(app.openapi.clone())
}

/// `GET /metrics`: this node's counters, for the admin key or the metrics token (401 without
/// a valid key, 403 for any other key). Tenants' storage is not among them in cluster mode
/// (it is each namespace owner's: `get_tenant`'s `usage`).
async fn metrics(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let key = match bearer(&headers) {
        Ok(k) => k,
        Err(e) => return response::error(&e),
    };
    let by_token =
        app.metrics_token.as_deref().is_some_and(|t| memsilo::auth::secrets_equal(t, &key));
    if !by_token {
        match app.node.authenticate(&key).await {
            Ok(Caller::Admin) => {}
            Ok(_) => {
                let e = Error::forbidden("metrics need the admin key or the metrics token");
                return response::error(&e);
            }
            Err(e) => return response::error(&e),
        }
    }
    crate::server::metrics_response(app.metrics.render(app.active.load(Ordering::Relaxed), ""))
}

/// The streaming export and import (NDJSON bodies) are not served by a cluster node: a
/// forwarded request is buffered whole, which would defeat streaming. Their paged forms are.
async fn streaming_refused(method: HttpMethod) -> Response {
    let (route, paged) = if method == HttpMethod::GET {
        (
            "GET /v1/namespaces/{name}/export",
            "GET /v1/namespaces/{name}/export/page (export_namespace)",
        )
    } else {
        (
            "POST /v1/namespaces/{name}/import",
            "POST /v1/namespaces/{name}/import/batch (import_namespace)",
        )
    };
    let e = Error::invalid(
        "route",
        format!(
            "{route} (a streamed NDJSON body) is not served in cluster mode; use {paged}, \
             page by page, as the remote clients' export and import do"
        ),
    );
    response::error(&e)
}

async fn healthz(State(app): State<Shared>) -> Response {
    response::json(200, &json!({ "status": "ok", "node": app.node.id(), "mode": "cluster" }))
}

/// What the audit log needs of a request, gathered while it is served.
#[derive(Default)]
struct Seen {
    key: Option<String>,
    caller: Option<Caller>,
    subject: Option<memsilo::AuditSubject>,
    /// The answer of a control-plane action served here (the id of what it made).
    reply: Option<Value>,
    error: Option<ErrorCode>,
}

/// Marks an answer passed through from the namespace's owner (which recorded it).
#[derive(Clone, Copy)]
struct ForwardedAnswer;

#[allow(clippy::too_many_arguments)] // the parts of one request
async fn handle(
    app: &Shared,
    route: &'static Route,
    adapter: Option<&'static Adapter>,
    path: Vec<(String, String)>,
    query: Option<String>,
    method: &HttpMethod,
    uri: &Uri,
    headers: &HeaderMap,
    body: HttpBody,
    seen: &mut Seen,
    request_id: &str,
) -> Result<Response, Error> {
    let key = bearer(headers)?;
    seen.key = Some(key.clone());
    let caller = app.node.authenticate(&key).await?;
    seen.caller = Some(caller.clone());
    app.node.admit(&caller)?;
    let bytes =
        axum::body::to_bytes(body, app.body_limit).await.map_err(|_| Error::PayloadTooLarge {
            field: "body".into(),
            reason: format!("request body exceeds the limit of {} bytes", app.body_limit),
        })?;
    let json_body = match route.body {
        Body::None => None,
        _ if bytes.iter().all(u8::is_ascii_whitespace) => None,
        _ => Some(crate::json::parse_body(&bytes)?),
    };
    let args = route.args_from_request(&path, query.as_deref(), json_body)?;
    // Dakera's shapes, as on one node (`dakera::adapter_for`): its arguments become the
    // operation's here, the operation runs as from its own route (forwarded to the owner as
    // that route), and its answer is shaped back here.
    let adapter = crate::dakera::adapter_for(route, adapter, headers);
    let mut notes = Vec::new();
    let args = match (adapter, args) {
        (Some(a), Value::Object(m)) => Value::Object((a.args)(m, &mut notes)?),
        (_, args) => args,
    };
    let answer = run(
        app,
        route,
        adapter.is_some(),
        args.clone(),
        method,
        uri,
        headers,
        bytes,
        &caller,
        seen,
        request_id,
    )
    .await?;
    match adapter {
        Some(a) => {
            let ran_with = match args {
                Value::Object(m) => m,
                _ => Args::new(),
            };
            shape(answer, a, route.status, &ran_with, notes).await
        }
        None => Ok(answer),
    }
}

/// Runs a request's operation (its arguments those of the operation: `translated` when a
/// Dakera adapter made them, then the owner is sent the operation's own route).
#[allow(clippy::too_many_arguments)] // the parts of one request
async fn run(
    app: &Shared,
    route: &'static Route,
    translated: bool,
    args: Value,
    method: &HttpMethod,
    uri: &Uri,
    headers: &HeaderMap,
    bytes: Bytes,
    caller: &Caller,
    seen: &mut Seen,
    request_id: &str,
) -> Result<Response, Error> {
    let caller = caller.clone();
    let node = &app.node;
    seen.subject = node.audit_subject(route.op, &args).await;
    let mut headers = headers.clone();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        // The owner records a forwarded request under the same id.
        headers.insert(crate::dispatch::REQUEST_ID.clone(), v);
    }
    let headers = &headers;
    match route.op {
        "whoami" => Ok(response::json(200, &caller.describe())),
        "create_namespace" => {
            let name = node.create_namespace(&caller, args).await?;
            // The owner creates it in its engine as it takes it over; answer with its record.
            let get = routes::route_for("get_namespace").expect("get_namespace is routed");
            let args = json!({ "name": name });
            let path = get.encode(&args)?.path;
            let mut resp =
                on_owner(app, &caller, get, args, "GET", &path, headers, Bytes::new()).await?;
            if resp.status() == StatusCode::OK {
                *resp.status_mut() = StatusCode::CREATED;
            }
            // The creation is this node's to record, wherever its description came from.
            resp.extensions_mut().remove::<ForwardedAnswer>();
            Ok(resp)
        }
        "create_key" => {
            let made = node.create_key(&caller, args).await?;
            seen.reply = Some(json!({ "id": made["id"], "tenant_id": made["tenant_id"] }));
            Ok(response::json(route.status, &made))
        }
        "create_tenant" | "get_tenant" | "list_tenants" | "update_tenant" | "delete_tenant"
        | "add_member" | "list_members" | "remove_member" => {
            let answer = node.tenant_op(&caller, route.op, args).await?;
            if matches!(route.op, "create_tenant" | "add_member") {
                seen.reply = Some(answer.clone());
            }
            Ok(response::json(route.status, &answer))
        }
        "list_audit" => Ok(response::reply(route.status, &node.list_audit(&caller, args).await?)),
        "verify_audit" => {
            let tenant = args.get("tenant_id").and_then(Value::as_str).unwrap_or_default();
            let verified = serde_json::to_value(node.verify_audit(&caller, tenant).await?)?;
            Ok(response::json(route.status, &verified))
        }
        "list_namespaces" => list_namespaces(app, &caller, args, headers).await,
        "list_keys" => Ok(response::reply(route.status, &node.list_keys(&caller, args).await?)),
        "revoke_key" | "rotate_key" => {
            let str_arg = |name: &str| args.get(name).and_then(Value::as_str);
            let id = str_arg("key_id").unwrap_or_default();
            let answer = if route.op == "rotate_key" {
                serde_json::to_value(node.rotate_key(&caller, id).await?)?
            } else {
                serde_json::to_value(node.revoke_key(&caller, id, str_arg("namespace")).await?)?
            };
            Ok(response::json(route.status, &answer))
        }
        op if namespace_op(op).is_some() => {
            let mut args = with_only_namespace(&caller, op, args);
            if translated {
                let own = routes::route_for(op).expect("every operation is routed");
                // A route with the namespace in its path (`start_session`) names the one the
                // call resolves to (its `agent_id`: the same session, the agent recorded).
                let in_path = own.path_args.iter().any(|(_, arg)| *arg == "namespace");
                if let (true, Ok(ns), Value::Object(m)) =
                    (in_path, namespace_of(op, &args), &mut args)
                {
                    m.entry("namespace").or_insert(Value::String(ns));
                }
                let encoded = own.encode(&args)?;
                let target = encoded.target();
                let body = encoded.body.as_ref().map(serde_json::to_vec).transpose()?;
                let body = Bytes::from(body.unwrap_or_default());
                on_owner(app, &caller, own, args, own.method.as_str(), &target, headers, body).await
            } else {
                let target = uri.path_and_query().map_or(uri.path(), |p| p.as_str()).to_owned();
                on_owner(app, &caller, route, args, method.as_str(), &target, headers, bytes).await
            }
        }
        op => Err(Error::invalid("op", format!("{op} is not served in cluster mode"))),
    }
}

/// The arguments with the namespace of a key that reaches exactly one, when they name none
/// (core's rule: "else the key's only namespace"); as they are otherwise.
fn with_only_namespace(caller: &Caller, op: &str, mut args: Value) -> Value {
    if namespace_of(op, &args).is_err() {
        if let (Caller::Scoped(rec), Value::Object(m)) = (caller, &mut args) {
            if let [grant] = rec.namespaces.as_slice() {
                m.insert("namespace".into(), Value::String(grant.namespace.clone()));
            }
        }
    }
    args
}

/// A success answered in the operation's own shape, reshaped by a Dakera adapter (with the
/// arguments the operation ran with and the adapter's notes), as one node answers it.
async fn shape(
    resp: Response,
    adapter: &Adapter,
    status: u16,
    ran_with: &Args,
    notes: Vec<String>,
) -> Result<Response, Error> {
    if !resp.status().is_success() {
        return Ok(resp);
    }
    let forwarded = resp.extensions().get::<ForwardedAnswer>().is_some();
    let (total_count, next_cursor) = {
        let header = |name: &HeaderName| resp.headers().get(name).and_then(|v| v.to_str().ok());
        let total = header(&response::TOTAL_COUNT).and_then(|t| t.parse().ok());
        (total, header(&response::NEXT_CURSOR).map(str::to_owned))
    };
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .map_err(|e| Error::Internal(format!("reading an answer: {e}")))?;
    let value = serde_json::from_slice(&body)?;
    let reply = memsilo::api::Reply { value, total_count, next_cursor };
    let mut out = response::json(status, &(adapter.reply)(reply, ran_with, notes));
    if forwarded {
        out.extensions_mut().insert(ForwardedAnswer);
    }
    Ok(out)
}

/// `list_namespaces`: the page of names from the control plane, each namespace as its owner
/// describes it (`get_namespace` there, which loads a namespace nobody holds), so the figures
/// are exact. A namespace deleted meanwhile is left out.
async fn list_namespaces(
    app: &Shared,
    caller: &Caller,
    args: Value,
    headers: &HeaderMap,
) -> Result<Response, Error> {
    let page = app.node.list_namespace_names(caller, args).await?;
    let get = routes::route_for("get_namespace").expect("get_namespace is routed");
    let mut items = Vec::with_capacity(page.names.len());
    for name in page.names {
        let args = json!({ "name": name });
        let path = get.encode(&args)?.path;
        let resp = on_owner(app, caller, get, args, "GET", &path, headers, Bytes::new()).await?;
        match resp.status() {
            StatusCode::OK => {
                let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .map_err(|e| Error::Internal(format!("reading a namespace's owner: {e}")))?;
                items.push(serde_json::from_slice::<Value>(&body)?);
            }
            StatusCode::NOT_FOUND => {}
            _ => return Ok(resp),
        }
    }
    let reply = memsilo::api::Reply {
        value: Value::Array(items),
        total_count: Some(page.total_count),
        next_cursor: page.next_cursor,
    };
    Ok(response::reply(200, &reply))
}

/// Runs a namespace operation on the namespace's owner: here, or forwarded.
#[allow(clippy::too_many_arguments)] // the parts of one request
async fn on_owner(
    app: &Shared,
    caller: &Caller,
    route: &'static Route,
    args: Value,
    method: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let write = namespace_op(route.op).unwrap_or(true);
    let ns = namespace_of(route.op, &args)?;
    caller.authorize(&ns, write)?;
    let target = match app.node.route(&ns).await {
        Ok(target) => target,
        Err(e) if e.code() == ErrorCode::Internal => return Ok(unavailable(&e)),
        // A tenant key is told `forbidden` whether or not the namespace exists.
        Err(e) if e.code() == ErrorCode::NotFound && matches!(caller, Caller::Member { .. }) => {
            return Err(Error::namespace_forbidden(&ns))
        }
        Err(e) => return Err(e),
    };
    match target {
        Target::Local(owned) => {
            caller.authorize_owned(&ns, owned.tenant_id(), write)?;
            // Namespace administration (the engine's `ManageNamespace`): the admin key or the
            // tenant's admins. Others with write access import only what keeps the policy.
            if matches!(route.op, "set_memory_policy" | "delete_namespace") {
                caller.authorize_manage(&ns, owned.tenant_id())?;
            }
            let keep_policy = route.op == "import_namespace"
                && caller.authorize_manage(&ns, owned.tenant_id()).is_err();
            if route.op == "delete_namespace" {
                let started = std::time::Instant::now();
                let (reply, erased) = app.node.delete_namespace(&owned).await?;
                eprintln!(
                    "memsilo cluster: node {} deleted namespace {ns}: {erased} objects erased, {} ms",
                    app.node.id(),
                    started.elapsed().as_millis()
                );
                return Ok(response::reply(route.status, &reply));
            }
            let reply = if write {
                app.node.write(&owned, route.op, args, keep_policy).await?
            } else {
                app.node.read(&owned, route.op, args).await?
            };
            Ok(response::reply(route.status, &reply))
        }
        Target::Remote(url) => {
            let hops = headers
                .get(HOPS)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0);
            if hops >= 2 || url.is_empty() {
                let e = Error::Internal(format!("namespace {ns} is changing owner; retry"));
                return Ok(unavailable(&e));
            }
            let mut pass = vec![(HOPS.to_owned(), (hops + 1).to_string().into_bytes())];
            for name in ["authorization", "content-type", "x-request-id"] {
                if let Some(v) = headers.get(name) {
                    pass.push((name.to_owned(), v.as_bytes().to_vec()));
                }
            }
            if crate::dakera::is_dakera_client(headers) {
                let dialect = crate::dakera::ERROR_DIALECT_HEADER.to_owned();
                pass.push((dialect, b"dakera".to_vec()));
            }
            let answer =
                match app.node.forward(&url, method, path_and_query, pass, body.to_vec()).await {
                    Ok(answer) => answer,
                    Err(e) => return Ok(unavailable(&e)),
                };
            let mut resp = (
                StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY),
                answer.body,
            )
                .into_response();
            for (name, value) in answer.headers {
                if let (Ok(n), Ok(v)) =
                    (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(&value))
                {
                    resp.headers_mut().insert(n, v);
                }
            }
            resp.extensions_mut().insert(ForwardedAnswer);
            Ok(resp)
        }
    }
}

/// `503 Service Unavailable` (body: the `internal` error, `Retry-After: 1`): this node cannot
/// serve the namespace now (its owner unreachable or changing, this node's lease in doubt);
/// another node may. The remote client moves to its next URL on it (when resending is safe).
fn unavailable(e: &Error) -> Response {
    let mut resp = response::error(e);
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    resp.headers_mut().insert(axum::http::header::RETRY_AFTER, HeaderValue::from(1u32));
    resp
}
