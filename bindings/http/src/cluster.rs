//! `memsilo serve --cluster`: the HTTP face of a cluster node (crate `memsilo-cluster`).
//!
//! The routes are those of the route table. A namespace's reads and writes run on its owner:
//! any node accepts them and forwards them there (one hop; the answer comes back unchanged),
//! taking the namespace over first if nobody owns it. Namespaces and keys are created in the
//! control plane (etcd). Operations not yet available in cluster mode (tenants, members, the
//! graph, listings) answer `invalid_argument` naming the operation.

use std::sync::Arc;

use axum::body::{Body as HttpBody, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method as HttpMethod, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use memsilo::{Error, ErrorCode};
use memsilo_cluster::{namespace_of, namespace_op, Caller, Node, Target};
use serde_json::{json, Value};

use crate::dispatch::bearer;
use crate::response;
use crate::routes::{self, Body, Route, ROUTES};

/// Hops a request has made between nodes; a request is forwarded at most twice (an owner
/// change while it travels), then refused.
const HOPS: &str = "x-memsilo-hops";

struct ClusterApp {
    node: Arc<Node>,
    body_limit: usize,
}

type Shared = Arc<ClusterApp>;

/// The router of a cluster node.
pub(crate) fn router(node: Arc<Node>, body_limit: usize) -> Router {
    let app = Arc::new(ClusterApp { node, body_limit });
    let mut paths: Vec<(&'static str, MethodRouter<Shared>)> = Vec::new();
    for route in ROUTES {
        let handler = move |state: State<Shared>,
                            path: Option<Path<Vec<(String, String)>>>,
                            query: RawQuery,
                            method: HttpMethod,
                            uri: Uri,
                            headers: HeaderMap,
                            body: HttpBody| async move {
            let path = path.map(|Path(p)| p).unwrap_or_default();
            match handle(&state.0, route, path, query.0, &method, &uri, &headers, body).await {
                Ok(resp) => resp,
                Err(e) => response::error(&e),
            }
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
    let mut router = Router::new().route("/healthz", axum::routing::get(healthz));
    for (path, mr) in paths {
        router = router.route(path, mr);
    }
    router
        .fallback(|| async { response::error(&Error::not_found("route", "no such route")) })
        .with_state(app)
}

async fn healthz(State(app): State<Shared>) -> Response {
    response::json(200, &json!({ "status": "ok", "node": app.node.id(), "mode": "cluster" }))
}

#[allow(clippy::too_many_arguments)] // the parts of one request
async fn handle(
    app: &Shared,
    route: &'static Route,
    path: Vec<(String, String)>,
    query: Option<String>,
    method: &HttpMethod,
    uri: &Uri,
    headers: &HeaderMap,
    body: HttpBody,
) -> Result<Response, Error> {
    let key = bearer(headers)?;
    let caller = app.node.authenticate(&key).await?;
    let bytes =
        axum::body::to_bytes(body, app.body_limit).await.map_err(|_| Error::PayloadTooLarge {
            field: "body".into(),
            reason: format!("request body exceeds the limit of {} bytes", app.body_limit),
        })?;
    let json_body = match route.body {
        Body::None => None,
        _ if bytes.iter().all(u8::is_ascii_whitespace) => None,
        _ => Some(
            serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| Error::invalid("body", format!("invalid JSON: {e}")))?,
        ),
    };
    let args = route.args_from_request(&path, query.as_deref(), json_body)?;
    let node = &app.node;
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
            Ok(resp)
        }
        "create_key" => Ok(response::json(route.status, &node.create_key(&caller, args).await?)),
        "revoke_key" => {
            let id = args.get("key_id").and_then(Value::as_str).unwrap_or_default().to_owned();
            Ok(response::json(route.status, &node.revoke_key(&caller, &id).await?))
        }
        op if namespace_op(op).is_some() => {
            let target = uri.path_and_query().map_or(uri.path(), |p| p.as_str()).to_owned();
            on_owner(app, &caller, route, args, method.as_str(), &target, headers, bytes).await
        }
        op => Err(Error::invalid("op", format!("{op} is not available in cluster mode yet"))),
    }
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
        Err(e) => return Err(e),
    };
    match target {
        Target::Local(owned) => {
            let reply = if write {
                app.node.write(&owned, route.op, args).await?
            } else {
                app.node.read(route.op, args).await?
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
            for name in ["authorization", "content-type"] {
                if let Some(v) = headers.get(name) {
                    pass.push((name.to_owned(), v.as_bytes().to_vec()));
                }
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
