//! Turning core results into HTTP responses: API.md's error body with the status of
//! `ErrorCode::http_status`, `Retry-After` on 429, `X-RateLimit-*`, `X-Total-Count` and
//! `X-Next-Cursor`.

use axum::http::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use memsilo::api::{EncodedReply, Reply};
use memsilo::{Error, RateInfo};
use serde_json::Value;

/// `X-Total-Count`.
pub const TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");
/// `X-Next-Cursor`: where the next page of a bare-array list paged by cursor starts.
pub const NEXT_CURSOR: HeaderName = HeaderName::from_static("x-next-cursor");
const RATE_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const RATE_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RATE_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// A JSON response with `status`.
pub fn json(status: u16, value: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A request handler's task that failed (it panicked or was cancelled): an `internal`
/// error whose source is the task's failure (`internal error: request handler failed: ...`).
pub fn handler_failed(e: tokio::task::JoinError) -> Error {
    Error::internal_from("request handler failed", e)
}

/// On an error response: the code a Dakera SDK reads for its error
/// ([`memsilo::Error::dakera_code`]), for the server to answer a Dakera client in Dakera's
/// error shape ([`crate::dakera::error_body`]).
#[derive(Debug, Clone, Copy)]
pub struct DakeraCode(pub Option<&'static str>);

/// The error response for `e`.
pub fn error(e: &Error) -> Response {
    error_with_message(e, None)
}

/// The error response for `e`, with its message replaced (the body keeps `e`'s code and
/// fields).
pub fn error_with_message(e: &Error, message: Option<String>) -> Response {
    let mut body = memsilo::api::error_body(e);
    if let Some(m) = message {
        body["message"] = Value::String(m);
    }
    let mut resp = json(e.code().http_status(), &body);
    resp.extensions_mut().insert(DakeraCode(e.dakera_code()));
    if let Some(secs) = e.retry_after() {
        resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// The success response for a reply.
pub fn reply(status: u16, reply: &Reply) -> Response {
    let mut resp = json(status, &reply.value);
    add_list_headers(&mut resp, reply.total_count, reply.next_cursor.as_deref());
    resp
}

/// `X-Total-Count` and `X-Next-Cursor` of a bare-array list.
fn add_list_headers(resp: &mut Response, total: Option<u64>, next_cursor: Option<&str>) {
    if let Some(total) = total {
        resp.headers_mut().insert(TOTAL_COUNT, HeaderValue::from(total));
    }
    // A cursor is hex, always a valid header value.
    if let Some(v) = next_cursor.and_then(|c| HeaderValue::from_str(c).ok()) {
        resp.headers_mut().insert(NEXT_CURSOR, v);
    }
}

/// The success response for a reply already serialised.
pub fn encoded(status: u16, reply: EncodedReply) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut resp = (status, reply.body).into_response();
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    add_list_headers(&mut resp, reply.total_count, reply.next_cursor.as_deref());
    resp
}

/// Adds `X-RateLimit-*` headers.
pub fn add_rate_headers(resp: &mut Response, info: &RateInfo) {
    let h = resp.headers_mut();
    h.insert(RATE_LIMIT, HeaderValue::from(info.limit));
    h.insert(RATE_REMAINING, HeaderValue::from(info.remaining));
    h.insert(RATE_RESET, HeaderValue::from(info.reset_secs));
}
