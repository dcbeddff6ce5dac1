//! One API request: its id, the bearer key, the body (bounded in size and time), the arguments
//! from path, query and body, then authentication and the operation (keys let in and reads on
//! the receiving thread; a single store there too, awaiting its group commit as a task;
//! refusals and other writes on the blocking pool), and the answer with its rate-limit headers
//! and `X-Request-Id`. Refusals are recorded in core's audit log with the
//! request's id.

use axum::body::Body as HttpBody;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use memsilo::Error;
use serde_json::Value;

use crate::dakera::{Adapter, Args};
use crate::inflight::Slot;
use crate::response;
use crate::routes::{Body, Route};
use crate::server::Shared;

/// The bearer key of a request, or `unauthorized`.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<String, Error> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(Error::Unauthorized(
            "missing Authorization header (expected: Authorization: Bearer <key>)".into(),
        ));
    };
    let text = value.to_str().unwrap_or("");
    // `Bearer ` with no key arrives as `Bearer` (HTTP drops a value's trailing space): an
    // empty key, refused by core as it refuses one in process ("malformed API key").
    let (scheme, key) = text.split_once(' ').unwrap_or((text, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(key.trim().to_owned())
    } else {
        Err(Error::Unauthorized(
            "malformed Authorization header (expected: Authorization: Bearer <key>)".into(),
        ))
    }
}

/// The request id header: taken from the client when it is 1-128 visible ASCII characters,
/// generated otherwise, and always echoed in the answer.
pub(crate) static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub(crate) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(memsilo::new_request_id, str::to_owned)
}

/// How much of a body over the limit is still read, and dropped, before the `413` is sent.
/// Most clients (Go's `net/http`, Node's `fetch`) write the whole body before they read the
/// answer: when the server closes the connection first, they report a broken pipe instead of
/// the `413`. Bodies declared larger than this are not read at all.
const DRAIN_LIMIT: u64 = 256 << 20;

/// Reads a JSON body of at most `limit` bytes before `deadline` (`timeout` after the start).
/// The outer error is answered at once (too large, or not received in time); the inner one
/// is a bad body, reported after the path and query.
async fn read_body(
    headers: &HeaderMap,
    body: HttpBody,
    limit: usize,
    deadline: tokio::time::Instant,
    timeout: std::time::Duration,
) -> Result<Result<Option<Value>, Error>, Error> {
    use http_body_util::BodyExt;
    let too_large = || Error::PayloadTooLarge {
        field: "body".into(),
        reason: format!("request body exceeds the limit of {limit} bytes"),
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = body;
    if declared.is_some_and(|n| n > limit as u64) {
        if declared.is_some_and(|n| n <= DRAIN_LIMIT) {
            let _ = tokio::time::timeout_at(deadline, drain(body)).await;
        }
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            // A client that stops sending is refused like any bad body, not as a fault.
            Err(_) => {
                return Err(Error::invalid(
                    "body",
                    format!("not received within {}s", timeout.as_secs()),
                ))
            }
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                let e = Error::invalid("body", format!("could not read the request body: {e}"));
                return Ok(Err(e));
            }
        };
        let Ok(data) = frame.into_data() else { continue };
        if bytes.len() + data.len() > limit {
            let _ = tokio::time::timeout_at(deadline, drain(body)).await;
            return Err(too_large());
        }
        bytes.extend_from_slice(&data);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Ok(None));
    }
    Ok(crate::json::parse_body(&bytes).map(Some).map_err(|e| match e {
        Error::InvalidArgument { field, reason } if field == "body" => {
            Error::InvalidArgument { field, reason: reason + &declared_type(headers) }
        }
        other => other,
    }))
}

/// For a body that is not JSON, the type it was declared as when that is not JSON either
/// (a form post, plain text), so that the refusal says what was sent.
fn declared_type(headers: &HeaderMap) -> String {
    match headers.get(CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes())) {
        Some(t) if !t.to_ascii_lowercase().contains("json") => {
            let t: String = t.trim().chars().take(100).collect();
            format!(" (sent as Content-Type: {t}; send JSON as application/json)")
        }
        _ => String::new(),
    }
}

/// Reads and drops the rest of a body refused as too large, up to [`DRAIN_LIMIT`] bytes.
async fn drain(mut body: HttpBody) {
    use http_body_util::BodyExt;
    let mut seen = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        seen += frame.data_ref().map_or(0, |d| d.len() as u64);
        if seen > DRAIN_LIMIT {
            break;
        }
    }
}

/// An operation's answer: JSON text for the native routes (serialised once, in core), a
/// JSON value for an adapter to reshape.
enum Answer {
    Encoded(memsilo::api::EncodedReply),
    Value(memsilo::api::Reply),
}

/// The outcome of the blocking part of a request.
struct Outcome {
    result: Result<Answer, Error>,
    rate: Option<memsilo::RateInfo>,
    /// Replaces the message of a `rate_limited` refusal made at the edge.
    edge_message: Option<String>,
}

impl Outcome {
    fn failed(e: Error) -> Self {
        Outcome { result: Err(e), rate: None, edge_message: None }
    }
}

/// A caller let in: its handle, its tenant (for metrics) and the in-flight slots it holds
/// until the answer is sent.
pub(crate) struct Admitted {
    pub(crate) handle: memsilo::Handle,
    tenant: Option<String>,
    _slots: Vec<Slot>,
}

/// Operations that only read. They run on the thread that received the request: an LMDB
/// read transaction never waits for a writer, and handing them to the blocking pool cost
/// more than most of them take (`make bench-http`). Writes go to the blocking pool, where
/// they wait for the group commit that makes them durable, except single stores and
/// namespace creations (`Handle::awaits_commit`), which await it as a task. A recall that
/// finds its namespace's vectors being scanned awaits a share of the next scan as a task.
const READS: &[&str] = &[
    "whoami",
    "recall",
    "get_memory",
    "get_memories",
    "get_namespace",
    "list_namespaces",
    "get_memory_policy",
    "list_keys",
    "list_tenants",
    "get_tenant",
    "list_members",
    "get_entity",
    "neighbors",
    "subgraph",
    "shortest_path",
];

/// Operations that take a slot of the caller's tenant's `compute_quota_cores`, which may
/// wait for one (`Options::compute_wait`): a recall, a store's embedding.
const COMPUTE: &[&str] = &["recall", "store_memory"];

/// The tenant a request was made for, carried on the response to the metrics layer.
#[derive(Debug, Clone)]
pub(crate) struct TenantLabel(pub String);

pub(crate) async fn dispatch(
    State(app): State<Shared>,
    route: &'static Route,
    adapter: Option<&'static Adapter>,
    path: Result<Path<Vec<(String, String)>>, axum::extract::rejection::PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: HttpBody,
) -> Response {
    let path = match path {
        Ok(Path(p)) => Ok(p),
        Err(_) if route.path_args.is_empty() => Ok(Vec::new()),
        Err(e) => Err(Error::invalid("path", e.body_text())),
    };
    dispatch_params(&app, route, adapter, path, query, headers, body).await
}

/// [`dispatch`] with the path's placeholders already read (`name`, value).
pub(crate) async fn dispatch_params(
    app: &Shared,
    route: &'static Route,
    adapter: Option<&'static Adapter>,
    path: Result<Vec<(String, String)>, Error>,
    query: Option<String>,
    headers: HeaderMap,
    body: HttpBody,
) -> Response {
    let id = request_id(&headers);
    let mut resp = answer(app, route, adapter, path, query, &headers, body, &id).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID.clone(), v);
    }
    resp
}

#[allow(clippy::too_many_arguments)] // the request's parts, as axum hands them over
async fn answer(
    app: &Shared,
    route: &'static Route,
    adapter: Option<&'static Adapter>,
    path: Result<Vec<(String, String)>, Error>,
    query: Option<String>,
    headers: &HeaderMap,
    body: HttpBody,
    request_id: &str,
) -> Response {
    let key = match bearer(headers) {
        Ok(k) => k,
        Err(e) => return unauthenticated(app, route.op, request_id, e).await,
    };
    let timeout = app.options.request_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    // The key and the tenant's in-flight limit are checked from the headers alone: a bad key
    // or a tenant at its limit is refused before a byte of the body is read or buffered. A
    // key let in is checked on this thread; a refusal, which is written to the audit log, is
    // made on the blocking pool.
    let admitted = if let Some(admitted) = admit_here(app, &key, request_id) {
        admitted
    } else {
        let admission = tokio::task::spawn_blocking({
            let app = app.clone();
            let request_id = request_id.to_owned();
            move || admit(&app, &key, &request_id, route.op)
        });
        match tokio::time::timeout_at(deadline, admission).await {
            Ok(Ok(Ok(admitted))) => admitted,
            Ok(Ok(Err(refused))) => return respond(route, *refused, None, None),
            Ok(Err(e)) => return response::error(&response::handler_failed(e)),
            Err(_) => return timed_out(timeout),
        }
    };
    // A bad body or path is reported after the key is checked (401 comes first); only an
    // oversized body is refused before, so it is never buffered.
    let body = match route.body {
        Body::None => Ok(None),
        Body::Object | Body::Field(_) => {
            match read_body(headers, body, app.options.body_limit, deadline, timeout).await {
                Ok(body) => body,
                Err(e) => return response::error(&e),
            }
        }
    };
    let args = path.and_then(|path| route.args_from_request(&path, query.as_deref(), body?));
    // Dakera's shapes: always on its own routes, on shared ones for a Dakera client.
    let adapter = crate::dakera::adapter_for(route, adapter, headers);
    let mut notes = Vec::new();
    let args = match adapter {
        Some(a) => args.and_then(|v| match v {
            Value::Object(m) => (a.args)(m, &mut notes).map(Value::Object),
            other => Ok(other),
        }),
        None => args,
    };
    let shape = adapter.map(|a| {
        let ran_with = args.as_ref().ok().and_then(Value::as_object).cloned().unwrap_or_default();
        (a, ran_with, notes)
    });
    let tenant = admitted.tenant.clone();
    // A tenant's recall or store may wait for a slot of its compute quota: that wait is
    // never made on the receiving thread.
    let waits = COMPUTE.contains(&route.op) && admitted.tenant.is_some();
    let encoded = shape.is_none();
    // A store or a namespace's creation awaits its group commit without a thread (unless
    // it may wait for a compute slot). It is spawned so that it runs to its end (a store's
    // cached vectors updated) even when its client goes away or the request times out.
    let awaits_commit = encoded && !waits && admitted.handle.awaits_commit(route.op);
    let outcome = if READS.contains(&route.op) && !waits {
        if encoded {
            // A recall may await a share of a scan running on another thread.
            execute_async(admitted, route.op, args).await
        } else {
            execute(&admitted, route.op, args, encoded)
        }
    } else {
        let work = if awaits_commit {
            tokio::spawn(execute_async(admitted, route.op, args))
        } else {
            tokio::task::spawn_blocking(move || execute(&admitted, route.op, args, encoded))
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => return response::error(&response::handler_failed(e)),
            Err(_) => return timed_out(timeout),
        }
    };
    respond(route, outcome, tenant, shape)
}

fn timed_out(timeout: std::time::Duration) -> Response {
    response::error(&Error::Internal(format!(
        "request timed out after {}s (a write may still complete)",
        timeout.as_secs()
    )))
}

/// An adapter with the arguments the operation ran with and its notes for `warnings`.
type Shape = (&'static Adapter, Args, Vec<String>);

fn respond(
    route: &Route,
    outcome: Outcome,
    tenant: Option<String>,
    shape: Option<Shape>,
) -> Response {
    let Outcome { result, rate, edge_message } = outcome;
    let mut resp = match (result, shape) {
        (Ok(Answer::Value(reply)), Some((a, args, notes))) => {
            response::json(route.status, &(a.reply)(reply, &args, notes))
        }
        (Ok(Answer::Value(reply)), None) => response::reply(route.status, &reply),
        (Ok(Answer::Encoded(reply)), _) => response::encoded(route.status, reply),
        (Err(e), _) => response::error_with_message(&e, edge_message),
    };
    if let Some(info) = &rate {
        response::add_rate_headers(&mut resp, info);
    }
    if let Some(t) = tenant {
        resp.extensions_mut().insert(TenantLabel(t));
    }
    resp
}

/// The refusal of a request without a usable key, recorded in the audit log first.
async fn unauthenticated(app: &Shared, op: &'static str, request_id: &str, e: Error) -> Response {
    let engine = app.engine.clone();
    let id = request_id.to_owned();
    let recorded = tokio::task::spawn_blocking(move || {
        engine.record_unauthenticated(op, &e, Some(&id));
        e
    });
    match recorded.await {
        Ok(e) => response::error(&e),
        Err(e) => response::error(&response::handler_failed(e)),
    }
}

/// For the streaming routes (running `op`): the key checked and the caller admitted (its
/// in-flight slots are held until the returned value is dropped), or the refusal to send.
pub(crate) async fn admit_streaming(
    app: &Shared,
    headers: &HeaderMap,
    op: &'static str,
) -> Result<Admitted, Response> {
    let id = request_id(headers);
    let key = match bearer(headers) {
        Ok(k) => k,
        Err(e) => return Err(unauthenticated(app, op, &id, e).await),
    };
    let app = app.clone();
    match tokio::task::spawn_blocking(move || admit(&app, &key, &id, op)).await {
        Ok(Ok(admitted)) => Ok(admitted),
        Ok(Err(refused)) => match *refused {
            Outcome { result: Err(e), edge_message, .. } => {
                Err(response::error_with_message(&e, edge_message))
            }
            Outcome { .. } => Err(response::error(&Error::Internal("admission failed".into()))),
        },
        Err(e) => Err(response::error(&response::handler_failed(e))),
    }
}

/// [`admit`] for a caller let in, on the receiving thread: `None` when the key would be
/// refused or a tenant is at its limit (then `admit` refuses it and records the refusal).
fn admit_here(app: &Shared, key: &str, request_id: &str) -> Option<Admitted> {
    let handle = app.engine.scoped_if_valid(key, Some(request_id))?;
    let limits = handle.connection_limits().ok()?;
    let slots = take_slots(app, &limits).ok()?;
    Some(Admitted { handle, tenant: limits.first().map(|(t, _)| t.clone()), _slots: slots })
}

/// A slot under each `(tenant, max_connections)` of `limits`, all or none; else the index
/// of the first link at its limit.
fn take_slots(app: &Shared, limits: &[(String, u32)]) -> Result<Vec<Slot>, usize> {
    limits
        .iter()
        .enumerate()
        .map(|(i, (holder, limit))| app.inflight.acquire(holder, *limit).map_err(|_| i))
        .collect()
}

/// Authenticates and takes a slot under `max_connections` of the caller's tenant and of
/// each of its ancestors (on a blocking thread: a refusal is written to the audit log). The
/// refusal is boxed: an `Outcome` is large and the admission of a caller let in is the path
/// taken.
fn admit(app: &Shared, key: &str, request_id: &str, op: &str) -> Result<Admitted, Box<Outcome>> {
    let refused = |e| Box::new(Outcome::failed(e));
    let handle = app.engine.scoped_request(key, Some(request_id)).map_err(refused)?;
    let limits = handle.connection_limits().map_err(refused)?;
    let tenant = limits.first().map(|(t, _)| t.clone());
    match take_slots(app, &limits) {
        Ok(slots) => Ok(Admitted { handle, tenant, _slots: slots }),
        Err(i) => {
            // The caller is told about its own tenant, whichever link of the chain is full.
            let (own, own_limit) = &limits[0];
            let whose = if i == 0 { "" } else { ", shared with its parent tenant" };
            let message = format!(
                "too many concurrent requests for tenant {own} (max_connections {own_limit}{whose}); retry after 1s"
            );
            let e =
                Error::RateLimited { tenant: own.clone(), limit: *own_limit, retry_after_secs: 1 };
            handle.record_refusal(op, &e);
            Err(Box::new(Outcome {
                result: Err(e),
                rate: handle.rate_info().ok().flatten(),
                edge_message: Some(message),
            }))
        }
    }
}

/// Runs the operation (reads on the receiving thread, writes on the blocking pool),
/// answering JSON text when `encoded`.
fn execute(admitted: &Admitted, op: &str, args: Result<Value, Error>, encoded: bool) -> Outcome {
    let handle = &admitted.handle;
    let result = args.and_then(|args| {
        if encoded {
            handle.call_encoded(op, args).map(Answer::Encoded)
        } else {
            handle.call(op, args).map(Answer::Value)
        }
    });
    let rate = handle.rate_info().ok().flatten();
    Outcome { result, rate, edge_message: None }
}

/// [`execute`] of an operation that awaits its commit (`Handle::awaits_commit`) or may await
/// a share of a scan (a recall; see `Handle::call_encoded_async`).
async fn execute_async(
    admitted: Admitted,
    op: &'static str,
    args: Result<Value, Error>,
) -> Outcome {
    let handle = &admitted.handle;
    let result = match args {
        Ok(args) => handle.call_encoded_async(op, args).await.map(Answer::Encoded),
        Err(e) => Err(e),
    };
    let rate = handle.rate_info().ok().flatten();
    Outcome { result, rate, edge_message: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_keys_are_required_and_well_formed() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h).unwrap_err().code(), memsilo::ErrorCode::Unauthorized);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h).unwrap_err().code(), memsilo::ErrorCode::Unauthorized);
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer  msk_x "));
        assert_eq!(bearer(&h).unwrap(), "msk_x");
    }
}
