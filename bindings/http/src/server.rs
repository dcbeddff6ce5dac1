//! The axum server: one handler per entry of the route table. A request is authenticated
//! with `Engine::scoped` and run with `Handle::call` (where: see `dispatch`); every decision
//! about who may do what is made in core.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body as HttpBody;
use axum::extract::{MatchedPath, Path, RawQuery, Request, State};
use axum::http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use memsilo::{Engine, Error};
use serde_json::json;

use crate::dispatch::REQUEST_ID;
use crate::inflight::InFlight;
use crate::log::{self, Level};
use crate::metrics::Metrics;
use crate::response;
use crate::routes::{self, ROUTES};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on, e.g. `127.0.0.1:3300` (port 0 picks a free port).
    pub listen: String,
    /// Largest request body accepted, in bytes (larger: 413 `payload_too_large`).
    pub body_limit: usize,
    /// Longest time a request may take, from its first byte of body to its answer.
    pub request_timeout: Duration,
    /// Time a client has to send a request's headers before the connection is closed.
    pub header_timeout: Duration,
    /// A bearer token that may read `GET /metrics` besides the admin key (for a scraper
    /// that should hold no key to the data).
    pub metrics_token: Option<String>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: "127.0.0.1:3300".into(),
            body_limit: 16 << 20,
            request_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(30),
            metrics_token: None,
        }
    }
}

/// Shared server state.
pub(crate) struct App {
    pub engine: Engine,
    pub inflight: Arc<InFlight>,
    pub metrics: Metrics,
    pub active: AtomicU64,
    pub openapi: axum::body::Bytes,
    pub options: ServeOptions,
}

pub(crate) type Shared = Arc<App>;

/// The router for `engine`: every route of the table, plus `/healthz`, `/metrics`,
/// `/openapi.json`, the admin console under `/console`, and JSON bodies for unknown routes
/// (404) and wrong methods (405).
pub fn router(engine: Engine, options: ServeOptions) -> Router {
    let app = Arc::new(App {
        engine,
        inflight: Arc::default(),
        metrics: Metrics::default(),
        active: AtomicU64::new(0),
        openapi: serde_json::to_vec_pretty(&crate::openapi::document()).unwrap_or_default().into(),
        options,
    });
    build(app)
}

fn build(app: Shared) -> Router {
    let mut paths: Vec<(&'static str, MethodRouter<Shared>)> = Vec::new();
    let native = ROUTES.iter().map(|r| (r, None));
    let dakera = crate::dakera::routes().map(|d| (&d.route, Some(d.adapter)));
    for (route, adapter) in native.chain(dakera) {
        let handler = move |state: State<Shared>,
                            path: Result<Path<Vec<(String, String)>>, _>,
                            query: RawQuery,
                            headers: HeaderMap,
                            body: HttpBody| {
            crate::dispatch::dispatch(state, route, adapter, path, query, headers, body)
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
        .route("/v1/namespaces/{name}/export", axum::routing::get(crate::stream::export))
        .route("/v1/namespaces/{name}/import", axum::routing::post(crate::stream::import))
        .route("/console", axum::routing::get(crate::console::index))
        .route("/console/", axum::routing::get(crate::console::index))
        .route("/console/{*path}", axum::routing::get(crate::console::asset));
    for (path, mr) in paths {
        router = router.route(path, mr);
    }
    router
        .fallback(not_found_or_empty)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

async fn healthz() -> Response {
    response::json(200, &json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn openapi(State(app): State<Shared>) -> Response {
    openapi_response(app.openapi.clone())
}

/// `GET /openapi.json`'s answer (also a cluster node's).
pub(crate) fn openapi_response(document: axum::body::Bytes) -> Response {
    let mut resp = (StatusCode::OK, document).into_response();
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// `GET /metrics`'s answer: the Prometheus text (also a cluster node's).
pub(crate) fn metrics_response(text: String) -> Response {
    let mut resp = (StatusCode::OK, text).into_response();
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    resp
}

/// `GET /metrics`: the admin key or the metrics token as a bearer token (401 without a
/// valid one, 403 for any other key); the tenant series name tenants by id only.
async fn metrics(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let key = match crate::dispatch::bearer(&headers) {
        Ok(k) => k,
        Err(e) => return response::error(&e),
    };
    let engine = app.engine.clone();
    let token = app.options.metrics_token.clone();
    let usage = tokio::task::spawn_blocking(move || {
        let by_token = token.is_some_and(|t| memsilo::auth::secrets_equal(&t, &key));
        if !by_token && engine.scoped(&key)?.principal()? != memsilo::Principal::Root {
            return Err(Error::forbidden("metrics need the admin key or the metrics token"));
        }
        Ok(crate::usage::tenant_storage(&engine))
    })
    .await
    .unwrap_or_else(|e| Err(Error::internal_from("metrics failed", e)));
    let usage = match usage {
        Ok(u) => u,
        Err(e) => return response::error(&e),
    };
    metrics_response(app.metrics.render(app.active.load(Ordering::Relaxed), &usage))
}

/// A path the router did not match because a placeholder of a route is empty (`GET
/// /v1/memory/`, what a client builds for an empty id; the router matches no placeholder to
/// an empty segment) is that route with the empty value, so that core answers it as it
/// answers the same call in process (`invalid_argument` naming the field, or `not_found`);
/// any other unknown path is [`not_found`].
async fn not_found_or_empty(State(app): State<Shared>, req: Request) -> Response {
    let matched = with_empty_placeholder(req.method().as_str(), req.uri().path());
    let Some((route, adapter, params)) = matched else { return not_found(req).await };
    let (parts, body) = req.into_parts();
    let query = parts.uri.query().map(str::to_owned);
    crate::dispatch::dispatch_params(&app, route, adapter, Ok(params), query, parts.headers, body)
        .await
}

/// A route of the tables, its adapter (Dakera's routes), and the values of its placeholders.
type Filled =
    (&'static routes::Route, Option<&'static crate::dakera::Adapter>, Vec<(String, String)>);

/// The route of the tables whose template `path` fills with at least one placeholder empty,
/// and the placeholders' values (percent-decoded).
fn with_empty_placeholder(method: &str, path: &str) -> Option<Filled> {
    let native = ROUTES.iter().map(|r| (r, None));
    let dakera = crate::dakera::routes().map(|d| (&d.route, Some(d.adapter)));
    native.chain(dakera).filter(|(r, _)| r.method.as_str() == method).find_map(
        |(route, adapter)| {
            let raw = template_values(route.path, path)?;
            if raw.iter().all(|(_, v)| !v.is_empty()) {
                return None;
            }
            let decode = |(name, value): (&str, &str)| {
                let value = percent_encoding::percent_decode_str(value).decode_utf8().ok()?;
                Some((name.to_owned(), value.into_owned()))
            };
            let params = raw.into_iter().map(decode).collect::<Option<Vec<_>>>()?;
            Some((route, adapter, params))
        },
    )
}

#[allow(clippy::unused_async)] // the cluster's router takes it as its fallback handler
pub(crate) async fn not_found(req: Request) -> Response {
    if let Some(e) = crate::dakera::refusal(req.method().as_str(), req.uri().path()) {
        return response::error(&e);
    }
    let what = format!("{} {}", req.method(), req.uri().path());
    response::error(&Error::not_found("route", what))
}

/// The routes `build` serves besides the route tables, as (method, path template).
const OWN_ROUTES: [(&str, &str); 8] = [
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/v1/namespaces/{name}/export"),
    ("POST", "/v1/namespaces/{name}/import"),
    ("GET", "/console"),
    ("GET", "/console/"),
    ("GET", "/console/{*path}"),
];

pub(crate) async fn method_not_allowed(req: Request) -> Response {
    let path = req.uri().path();
    let matched = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    let tables = ROUTES.iter().chain(crate::dakera::routes().map(|d| &d.route));
    let mut allowed: Vec<&str> = Vec::new();
    for (method, template) in tables.map(|r| (r.method.as_str(), r.path)).chain(OWN_ROUTES) {
        let here = matched.map_or_else(|| template_matches(template, path), |m| m == template);
        if here && !allowed.contains(&method) {
            allowed.push(method);
        }
    }
    let e = Error::from_code(
        memsilo::ErrorCode::MethodNotAllowed,
        format!("{} is not allowed here; allowed: {}", req.method(), allowed.join(", ")),
    );
    let mut resp = response::error(&e);
    if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
        resp.headers_mut().insert(ALLOW, v);
    }
    resp
}

fn template_matches(template: &str, path: &str) -> bool {
    template_values(template, path).is_some_and(|values| values.iter().all(|(_, v)| !v.is_empty()))
}

/// The (name, raw text) of each placeholder of `template` when `path` has its segments (a
/// placeholder's possibly empty), or `None`.
fn template_values<'a>(template: &'a str, path: &'a str) -> Option<Vec<(&'a str, &'a str)>> {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    if t.len() != p.len() {
        return None;
    }
    let mut values = Vec::new();
    for (t, p) in t.into_iter().zip(p) {
        match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            Some(name) => values.push((name, p)),
            None if t == p => {}
            None => return None,
        }
    }
    Some(values)
}

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"];

/// Counts, times and logs every request by its route template (never its concrete path,
/// which may carry ids, and never its headers, which carry keys).
/// Also gives every answer an `X-Request-Id` (the client's when valid, else a new one), and
/// puts that id on the request for the handlers that record it (the audit log). A Dakera
/// client's error answers are put in Dakera's error shape here.
async fn observe(State(app): State<Shared>, req: Request, next: Next) -> Response {
    observed(&app.metrics, &app.active, req, next).await
}

/// [`observe`] with the counters it updates (a cluster node has its own).
pub(crate) async fn observed(
    metrics: &Metrics,
    active: &AtomicU64,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = HeaderValue::from_str(&crate::dispatch::request_id(req.headers())).ok();
    if let Some(id) = &request_id {
        req.headers_mut().insert(REQUEST_ID.clone(), id.clone());
    }
    let method = METHODS.iter().copied().find(|m| *m == req.method().as_str()).unwrap_or("OTHER");
    // A matched path is a shared string: kept without a copy.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let dakera = crate::dakera::wants_dakera_errors(req.headers());
    active.fetch_add(1, Ordering::Relaxed);
    let mut resp = next.run(req).await;
    active.fetch_sub(1, Ordering::Relaxed);
    if dakera {
        resp = in_dakera_shape(resp).await;
    }
    if let Some(id) = request_id {
        resp.headers_mut().entry(&REQUEST_ID).or_insert(id);
    }
    let took = started.elapsed();
    let status = resp.status().as_u16();
    let tenant = resp.extensions().get::<crate::dispatch::TenantLabel>().map(|t| t.0.as_str());
    metrics.record(method, route, status, took, tenant);
    log::log(
        Level::Debug,
        format_args!("{method} {route} {status} {:.3}ms", took.as_secs_f64() * 1000.0),
    );
    resp
}

/// An error response (one [`response::error`] made) in Dakera's error shape; any other
/// response as it is.
async fn in_dakera_shape(resp: Response) -> Response {
    let Some(&response::DakeraCode(code)) = resp.extensions().get() else {
        return resp;
    };
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let body = match serde_json::from_slice(&bytes) {
        Ok(serde_json::Value::Object(body)) => {
            let body = crate::dakera::error_body(body, code);
            serde_json::to_vec(&body).map_or(bytes, Into::into)
        }
        _ => bytes,
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, HttpBody::from(body))
}

/// A running server (see [`serve`]). Dropping it shuts it down.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, finishes the requests in flight, and waits for the server to stop.
    pub fn shutdown(mut self) -> std::io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => {
                t.join().unwrap_or_else(|_| Err(std::io::Error::other("server thread panicked")))
            }
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Binds `options.listen` and serves `engine` on a background thread. Returns once the
/// socket is bound (so a taken port is reported here).
pub fn serve(engine: Engine, options: ServeOptions) -> std::io::Result<Server> {
    let listener = bind(&options.listen)?;
    let header_timeout = options.header_timeout;
    let app = router(engine, options);
    let addr = listener.local_addr()?;
    let runtime = runtime()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new().name("memsilo-http".into()).spawn(move || {
        runtime.block_on(crate::connections::run(app, listener, header_timeout, async {
            let _ = rx.await;
        }))
    })?;
    Ok(Server { addr, shutdown: Some(tx), thread: Some(thread) })
}

/// Binds a listening socket.
pub(crate) fn bind(listen: &str) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The runtime the server runs on. Blocking threads are bounded well below LMDB's reader
/// slots (126).
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .thread_name("memsilo-http")
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_concrete_paths() {
        assert!(template_matches("/v1/keys/{id}", "/v1/keys/abc"));
        assert!(!template_matches("/v1/keys/{id}", "/v1/keys/abc/rotate"));
        assert!(!template_matches("/v1/keys/{id}", "/v1/keys/"));
    }
}
